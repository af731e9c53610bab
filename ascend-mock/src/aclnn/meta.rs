//! The aclnn meta API of `libnnopbase`: `aclnnInit`/`aclnnFinalize`, the
//! descriptor objects (`aclTensor`, `aclScalar`, `aclIntArray`,
//! `aclFloatArray`, `aclBoolArray`, `aclTensorList`, `aclScalarList`), their
//! getters, and the registry that holds every live descriptor and executor.
//!
//! Each object is boxed and kept in the registry under the address of its
//! box, which is the opaque pointer handed to C. The mock never
//! dereferences a caller's pointer: it looks the address up, so a pointer
//! that is unknown, already destroyed, or of another kind is refused with
//! `ACLNN_ERR_PARAM_INVALID` (NULL: `ACLNN_ERR_PARAM_NULLPTR`) and a
//! message. The registry also records the call that created each object,
//! so [`live_objects`] can report leaks.
//!
//! Invariants:
//! - An address is in the registry exactly while its object is alive.
//! - A list owns its members: they stay registered (as tensors or scalars
//!   with `owner` set), cannot be destroyed on their own, and are destroyed
//!   with the list.
//! - Arrays returned by `aclGetViewShape`, `aclGetStorageShape` and
//!   `aclGetViewStrides` come from C `malloc`; the caller frees them.
//!
//! Deliberately unchecked: an address freed and then reused by a new
//! object of the same kind is indistinguishable from the new object.

use std::collections::HashMap;
use std::ffi::{CStr, c_char, c_void};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, Once};

use ascend_kernels::{DType, Scalar};
use ascend_sys::*;

use super::executor::Executor;
use super::{aclnn_call, aclnn_call_value, invalid, null_err};
use crate::error::{MockError, MockResult};
use crate::memory::Allocation;
use crate::runtime;

/// The most dimensions a tensor descriptor may have.
pub const MAX_DIMS: usize = 25;

/// Required alignment of a tensor's data address (CANN: 32 bytes).
pub const DATA_ALIGN: usize = 32;

/// What a registered address holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `aclTensor`.
    Tensor,
    /// `aclScalar`.
    Scalar,
    /// `aclIntArray`.
    IntArray,
    /// `aclFloatArray`.
    FloatArray,
    /// `aclBoolArray`.
    BoolArray,
    /// `aclTensorList`.
    TensorList,
    /// `aclScalarList`.
    ScalarList,
    /// `aclOpExecutor`.
    Executor,
}

impl Kind {
    /// The C type name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Tensor => "aclTensor",
            Kind::Scalar => "aclScalar",
            Kind::IntArray => "aclIntArray",
            Kind::FloatArray => "aclFloatArray",
            Kind::BoolArray => "aclBoolArray",
            Kind::TensorList => "aclTensorList",
            Kind::ScalarList => "aclScalarList",
            Kind::Executor => "aclOpExecutor",
        }
    }
}

/// An `aclTensor`: a description of a strided view of device memory.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorDesc {
    /// View shape.
    pub view: Vec<i64>,
    /// Stride of each view dimension, in elements.
    pub strides: Vec<i64>,
    /// Element offset of the view's first element from `data`.
    pub offset: i64,
    /// Element type.
    pub dtype: aclDataType,
    /// Memory format.
    pub format: aclFormat,
    /// Shape of the underlying storage.
    pub storage: Vec<i64>,
    /// Data address (0 when only a descriptor is needed).
    pub data: usize,
}

/// A registered object.
pub enum Object {
    /// An `aclTensor`.
    Tensor(TensorDesc),
    /// An `aclScalar` (its value is copied at creation).
    Scalar(Scalar),
    /// An `aclIntArray`.
    IntArray(Vec<i64>),
    /// An `aclFloatArray`.
    FloatArray(Vec<f32>),
    /// An `aclBoolArray`.
    BoolArray(Vec<bool>),
    /// An `aclTensorList`: the addresses of its member tensors.
    TensorList(Vec<usize>),
    /// An `aclScalarList`: the addresses of its member scalars.
    ScalarList(Vec<usize>),
    /// An `aclOpExecutor`.
    Executor(Executor),
}

impl Object {
    /// The kind of the object.
    pub fn kind(&self) -> Kind {
        match self {
            Object::Tensor(_) => Kind::Tensor,
            Object::Scalar(_) => Kind::Scalar,
            Object::IntArray(_) => Kind::IntArray,
            Object::FloatArray(_) => Kind::FloatArray,
            Object::BoolArray(_) => Kind::BoolArray,
            Object::TensorList(_) => Kind::TensorList,
            Object::ScalarList(_) => Kind::ScalarList,
            Object::Executor(_) => Kind::Executor,
        }
    }
}

/// One registry entry.
pub struct Entry {
    /// The object; its box's address is the key.
    pub object: Box<Object>,
    /// The exported function that created it.
    pub created_by: &'static str,
    /// Process-unique creation number.
    pub serial: u64,
    /// The list that owns it, if it is a list member.
    pub owner: Option<usize>,
}

/// A live object, as reported by [`live_objects`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveObject {
    /// Its address (the C pointer).
    pub address: usize,
    /// What it is.
    pub kind: Kind,
    /// The call that created it.
    pub created_by: &'static str,
    /// Creation number (increasing).
    pub serial: u64,
    /// The owning list, if any.
    pub owner: Option<usize>,
}

/// How many retired executor addresses are remembered for messages.
const RETIRED_LIMIT: usize = 4096;

/// Every live descriptor and executor.
#[derive(Default)]
pub struct Registry {
    /// Live objects by address.
    pub objects: HashMap<usize, Entry>,
    /// Executors consumed by phase two or destroyed, with their operator
    /// name, for clearer messages (bounded, forgotten when the address is
    /// reused).
    pub retired: HashMap<usize, (&'static str, &'static str)>,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);
static SERIAL: AtomicU64 = AtomicU64::new(1);
static ACLNN_INITIALIZED: AtomicBool = AtomicBool::new(false);

/// The live aclnn descriptors and executors, as leak-report lines: every
/// one not owned by a list (`blocks`: `None`), or only the executors and
/// tensors whose memory lies in `blocks` (a device being reset).
fn leaked_objects(blocks: Option<&[Allocation]>) -> Vec<String> {
    let in_blocks = |addr: usize| {
        blocks.is_none_or(|b| b.iter().any(|a| addr >= a.base && addr < a.base + a.size))
    };
    let mut found: Vec<(u64, String)> = with_registry(|r| {
        r.objects
            .iter()
            .filter(|(_, e)| e.owner.is_none())
            .filter_map(|(&address, e)| {
                let kind = e.object.kind().name();
                let detail = match &*e.object {
                    Object::Tensor(t) => {
                        if blocks.is_some() && (t.data == 0 || !in_blocks(t.data)) {
                            return None;
                        }
                        let bytes: i64 = t.storage.iter().product::<i64>().max(0)
                            * ascend_sys::dtype::size_of(t.dtype) as i64;
                        format!(" (data {:#x}, storage of {bytes} bytes)", t.data)
                    }
                    Object::Executor(ex) => {
                        if blocks.is_some()
                            && !ex.slots.iter().any(|s| in_blocks(s.arg.ptr as usize))
                        {
                            return None;
                        }
                        format!(" (of {}, device {})", ex.op, ex.device)
                    }
                    _ if blocks.is_some() => return None,
                    _ => String::new(),
                };
                Some((
                    e.serial,
                    format!(
                        "{kind} {address:#x}{detail} created by {} (object #{})",
                        e.created_by, e.serial
                    ),
                ))
            })
            .collect()
    });
    found.sort_by_key(|(serial, _)| *serial);
    found.into_iter().map(|(_, line)| line).collect()
}

/// Runs `f` with the registry locked.
pub fn with_registry<T>(f: impl FnOnce(&mut Registry) -> T) -> T {
    // The first use registers the live objects as a leak source of the
    // runtime (reported at reset and finalize).
    static LEAK_SOURCE: Once = Once::new();
    LEAK_SOURCE.call_once(|| runtime::register_leak_source("aclnn", leaked_objects));
    let mut guard: MutexGuard<'_, Option<Registry>> =
        REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(Registry::default))
}

impl Registry {
    /// Registers `object`, created by `created_by`; returns its address.
    pub fn insert(&mut self, object: Object, created_by: &'static str) -> usize {
        let object = Box::new(object);
        let address = &*object as *const Object as usize;
        self.retired.remove(&address);
        self.objects.insert(
            address,
            Entry {
                object,
                created_by,
                serial: SERIAL.fetch_add(1, Ordering::Relaxed),
                owner: None,
            },
        );
        address
    }

    /// The entry at `address`, which must hold a `kind`; `what` names the
    /// parameter in messages.
    pub fn entry(&mut self, address: usize, kind: Kind, what: &str) -> MockResult<&mut Entry> {
        if address == 0 {
            return Err(null_err(format!("{what} ({}) is NULL", kind.name())));
        }
        match self.objects.get_mut(&address) {
            Some(e) if e.object.kind() == kind => Ok(e),
            Some(e) => Err(invalid(format!(
                "{what} {address:#x} is an {}, not an {}",
                e.object.kind().name(),
                kind.name()
            ))),
            None => Err(invalid(match self.retired.get(&address) {
                Some((op, how)) => format!(
                    "{what} {address:#x} is the executor of {op}, already {how}; a non-repeatable executor runs once (call aclSetAclOpExecutorRepeatable to reuse it)"
                ),
                None => format!(
                    "{what} {address:#x} is not a live {} (never created, or already destroyed)",
                    kind.name()
                ),
            })),
        }
    }

    /// The tensor descriptor at `address`.
    pub fn tensor(&mut self, address: usize, what: &str) -> MockResult<&mut TensorDesc> {
        match &mut *self.entry(address, Kind::Tensor, what)?.object {
            Object::Tensor(t) => Ok(t),
            _ => unreachable!("entry() checked the kind"),
        }
    }

    /// Removes the object at `address` (of `kind`) and, for a list, its
    /// members. Members of a list cannot be removed on their own.
    pub fn destroy(&mut self, address: usize, kind: Kind, what: &str) -> MockResult<()> {
        let entry = self.entry(address, kind, what)?;
        if let Some(owner) = entry.owner {
            return Err(invalid(format!(
                "{what} {address:#x} belongs to the list {owner:#x}, which destroys it; destroy the list instead"
            )));
        }
        let entry = self
            .objects
            .remove(&address)
            .expect("entry() found the address");
        match *entry.object {
            Object::TensorList(members) | Object::ScalarList(members) => {
                for m in members {
                    self.objects.remove(&m);
                }
            }
            Object::Executor(ex) => self.retire(address, ex.op, "destroyed"),
            _ => {}
        }
        Ok(())
    }

    /// Remembers that the executor at `address` (of `op`) ended `how`.
    pub fn retire(&mut self, address: usize, op: &'static str, how: &'static str) {
        if self.retired.len() >= RETIRED_LIMIT {
            self.retired.clear();
        }
        self.retired.insert(address, (op, how));
    }
}

/// Every live descriptor and executor, oldest first (for leak reports).
pub fn live_objects() -> Vec<LiveObject> {
    let mut out: Vec<LiveObject> = with_registry(|r| {
        r.objects
            .iter()
            .map(|(&address, e)| LiveObject {
                address,
                kind: e.object.kind(),
                created_by: e.created_by,
                serial: e.serial,
                owner: e.owner,
            })
            .collect()
    });
    out.sort_by_key(|o| o.serial);
    out
}

/// Whether `aclnnInit` was called (and `aclnnFinalize` not since).
pub fn aclnn_initialized() -> bool {
    ACLNN_INITIALIZED.load(Ordering::SeqCst)
}

/// The kernels' dtype for an `aclDataType` the kernels compute on.
pub fn kernel_dtype(dtype: aclDataType) -> Option<DType> {
    DType::from_acl(dtype)
}

/// Whether `dtype` is one of the `aclDataType` values (other than
/// `ACL_DT_UNDEFINED`): an entry of `ascend_sys::dtype`'s table.
pub fn known_dtype(dtype: aclDataType) -> bool {
    ascend_sys::dtype::by_acl(dtype).is_some()
}

/// Copies `n` values from the C array `ptr` (`what` names it), refusing a
/// NULL pointer with `n > 0`.
///
/// # Safety
/// `ptr` must be NULL or valid for reads of `n` values of `T`.
unsafe fn read_array<T: Copy>(ptr: *const T, n: u64, what: &str) -> MockResult<Vec<T>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    if ptr.is_null() {
        return Err(null_err(format!("{what} is NULL but its length is {n}")));
    }
    if n > (isize::MAX as u64) / std::mem::size_of::<T>().max(1) as u64 {
        return Err(invalid(format!("{what}: length {n} is too large")));
    }
    // SAFETY: non-NULL, and the caller guarantees `n` readable values.
    Ok(unsafe { std::slice::from_raw_parts(ptr, n as usize) }.to_vec())
}

/// Refuses view dimensions (each counted as at least 1, as contiguous
/// strides count them) whose product exceeds `i64::MAX`: element counts,
/// strides and offsets are 64-bit everywhere (in CANN's API and in the
/// kernels), so such a view has no representable layout.
fn check_element_count(view: &[i64]) -> MockResult<()> {
    let mut product: i128 = 1;
    for &d in view {
        product *= i128::from(d.max(1));
        if product > i128::from(i64::MAX) {
            return Err(invalid(format!(
                "viewDims {view:?} multiply to more than {} elements; the layout does not fit in 64 bits",
                i64::MAX
            )));
        }
    }
    Ok(())
}

/// Refuses a non-empty view whose element span, `offset + Σ (dim - 1) *
/// |stride|`, does not fit in an `i64`: the placement checks and the
/// kernels compute element offsets in 64 bits.
fn check_span(view: &[i64], strides: &[i64], offset: i64) -> MockResult<()> {
    if view.contains(&0) {
        return Ok(());
    }
    let span = view
        .iter()
        .zip(strides)
        .map(|(&n, &s)| i128::from(n - 1) * i128::from(s).abs())
        .sum::<i128>()
        + i128::from(offset);
    if span >= i128::from(i64::MAX) {
        return Err(invalid(format!(
            "view (shape {view:?}, strides {strides:?}, offset {offset}) spans {span} elements, more than 64-bit offsets can address"
        )));
    }
    Ok(())
}

/// Validates and builds a tensor descriptor from `aclCreateTensor`'s
/// arguments.
///
/// # Safety
/// Each non-NULL pointer must be valid for reads of its stated length.
#[allow(clippy::too_many_arguments)]
unsafe fn describe(
    view_dims: *const i64,
    view_num: u64,
    dtype: aclDataType,
    stride: *const i64,
    offset: i64,
    format: aclFormat,
    storage_dims: *const i64,
    storage_num: u64,
    data: *mut c_void,
) -> MockResult<TensorDesc> {
    for (n, what) in [(view_num, "viewDimsNum"), (storage_num, "storageDimsNum")] {
        if n > MAX_DIMS as u64 {
            return Err(invalid(format!(
                "{what} {n} exceeds the maximum of {MAX_DIMS} dimensions"
            )));
        }
    }
    // SAFETY: forwarded from the caller.
    let view = unsafe { read_array(view_dims, view_num, "viewDims") }?;
    if let Some((i, d)) = view.iter().enumerate().find(|(_, d)| **d < 0) {
        return Err(invalid(format!(
            "viewDims[{i}] is {d}; dimensions must be non-negative"
        )));
    }
    check_element_count(&view)?;
    let strides = if stride.is_null() {
        ascend_kernels::tensor::contiguous_strides(&view)
    } else {
        // SAFETY: a non-NULL stride array has one entry per view dimension
        // by the aclCreateTensor contract.
        unsafe { read_array(stride, view_num, "stride") }?
    };
    // SAFETY: forwarded from the caller.
    let storage = unsafe { read_array(storage_dims, storage_num, "storageDims") }?;
    if let Some((i, d)) = storage.iter().enumerate().find(|(_, d)| **d < 0) {
        return Err(invalid(format!(
            "storageDims[{i}] is {d}; dimensions must be non-negative"
        )));
    }
    if !known_dtype(dtype) {
        return Err(invalid(format!("dataType {dtype} is not an aclDataType")));
    }
    if offset < 0 {
        return Err(invalid(format!(
            "offset {offset} is negative; it counts elements from tensorData"
        )));
    }
    check_span(&view, &strides, offset)?;
    let data = data as usize;
    if data % DATA_ALIGN != 0 {
        return Err(invalid(format!(
            "tensorData {data:#x} is not {DATA_ALIGN}-byte aligned (CANN leaves unaligned addresses undefined; the mock refuses them)"
        )));
    }
    Ok(TensorDesc {
        view,
        strides,
        offset,
        dtype,
        format,
        storage,
        data,
    })
}

/// Initialises the aclnn layer. `configPath` may be NULL; otherwise it
/// must name a readable file (its content is not interpreted). Calling it
/// again is harmless.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclnnInit(configPath: *const c_char) -> aclnnStatus {
    aclnn_call("aclnnInit", || {
        if !configPath.is_null() {
            // SAFETY: a non-NULL configPath is a NUL-terminated string by the
            // aclnnInit contract.
            let path = unsafe { CStr::from_ptr(configPath) }.to_string_lossy();
            if !path.is_empty() && std::fs::metadata(&*path).is_err() {
                return Err(invalid(format!("config file {path:?} cannot be read")));
            }
        }
        ACLNN_INITIALIZED.store(true, Ordering::SeqCst);
        Ok(())
    })
}

/// Ends the aclnn layer. Live descriptors stay valid (they are reported by
/// [`live_objects`]).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclnnFinalize() -> aclnnStatus {
    aclnn_call("aclnnFinalize", || {
        ACLNN_INITIALIZED.store(false, Ordering::SeqCst);
        Ok(())
    })
}

/// Creates a tensor descriptor; NULL on failure (message set). NULL
/// `stride` means contiguous; `tensorData` may be NULL and must otherwise
/// be 32-byte aligned.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclCreateTensor(
    viewDims: *const i64,
    viewDimsNum: u64,
    dataType: aclDataType,
    stride: *const i64,
    offset: i64,
    format: aclFormat,
    storageDims: *const i64,
    storageDimsNum: u64,
    tensorData: *mut c_void,
) -> *mut aclTensor {
    aclnn_call_value("aclCreateTensor", std::ptr::null_mut(), || {
        // SAFETY: the caller passes arrays of the stated lengths (or NULL).
        let desc = unsafe {
            describe(
                viewDims,
                viewDimsNum,
                dataType,
                stride,
                offset,
                format,
                storageDims,
                storageDimsNum,
                tensorData,
            )
        }?;
        let addr = with_registry(|r| r.insert(Object::Tensor(desc), "aclCreateTensor"));
        Ok(addr as *mut aclTensor)
    })
}

/// Re-describes an existing tensor descriptor (same validation as
/// `aclCreateTensor`; the descriptor is unchanged on failure).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclInitTensor(
    tensor: *mut aclTensor,
    viewDims: *const i64,
    viewDimsNum: u64,
    dataType: aclDataType,
    stride: *const i64,
    offset: i64,
    format: aclFormat,
    storageDims: *const i64,
    storageDimsNum: u64,
    tensorDataAddr: *mut c_void,
) -> aclnnStatus {
    aclnn_call("aclInitTensor", || {
        // SAFETY: the caller passes arrays of the stated lengths (or NULL).
        let desc = unsafe {
            describe(
                viewDims,
                viewDimsNum,
                dataType,
                stride,
                offset,
                format,
                storageDims,
                storageDimsNum,
                tensorDataAddr,
            )
        }?;
        with_registry(|r| {
            *r.tensor(tensor as usize, "tensor")? = desc;
            Ok(())
        })
    })
}

/// Creates a scalar holding a copy of the value at `value`, read with the
/// width of `dataType`; NULL on failure.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclCreateScalar(
    value: *mut c_void,
    dataType: aclDataType,
) -> *mut aclScalar {
    aclnn_call_value("aclCreateScalar", std::ptr::null_mut(), || {
        if value.is_null() {
            return Err(null_err("value is NULL"));
        }
        let dtype = kernel_dtype(dataType).ok_or_else(|| {
            invalid(format!(
                "dataType {dataType} is not supported for scalars (the mock supports FLOAT, FLOAT16, BF16, DOUBLE, INT8/16/32/64, UINT8, BOOL)"
            ))
        })?;
        // SAFETY: `value` is non-NULL and points to one host value of
        // `dataType` by the aclCreateScalar contract.
        let scalar =
            unsafe { Scalar::from_raw(value as *const u8, dtype) }.map_err(super::kernel_err)?;
        let addr = with_registry(|r| r.insert(Object::Scalar(scalar), "aclCreateScalar"));
        Ok(addr as *mut aclScalar)
    })
}

macro_rules! create_array {
    ($(#[$doc:meta])* $name:ident, $elem:ty, $ret:ty, $variant:ident) => {
        $(#[$doc])*
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(value: *const $elem, size: u64) -> *mut $ret {
            aclnn_call_value(stringify!($name), std::ptr::null_mut(), || {
                // SAFETY: the caller passes `size` readable values (or NULL
                // with size 0).
                let values = unsafe { read_array(value, size, "value") }?;
                let addr = with_registry(|r| r.insert(Object::$variant(values), stringify!($name)));
                Ok(addr as *mut $ret)
            })
        }
    };
}

create_array!(
    /// Creates an integer array holding a copy of `value[0..size]`.
    aclCreateIntArray, i64, aclIntArray, IntArray
);
create_array!(
    /// Creates a float array holding a copy of `value[0..size]`.
    aclCreateFloatArray, f32, aclFloatArray, FloatArray
);
create_array!(
    /// Creates a bool array holding a copy of `value[0..size]`.
    aclCreateBoolArray, bool, aclBoolArray, BoolArray
);

/// Builds a list object owning the members in `value[0..size]`.
///
/// # Safety
/// `value` must be NULL or valid for reads of `size` pointers.
unsafe fn create_list(
    value: *const *const c_void,
    size: u64,
    member: Kind,
    name: &'static str,
) -> MockResult<usize> {
    // SAFETY: forwarded from the caller.
    let members: Vec<usize> = unsafe { read_array(value, size, "value") }?
        .into_iter()
        .map(|p| p as usize)
        .collect();
    with_registry(|r| {
        for (i, &m) in members.iter().enumerate() {
            let what = format!("value[{i}]");
            let entry = r.entry(m, member, &what)?;
            if let Some(owner) = entry.owner {
                return Err(invalid(format!(
                    "{what} {m:#x} already belongs to the list {owner:#x}"
                )));
            }
            if members[..i].contains(&m) {
                return Err(invalid(format!("{what} {m:#x} appears twice in the list")));
            }
        }
        let object = match member {
            Kind::Tensor => Object::TensorList(members.clone()),
            _ => Object::ScalarList(members.clone()),
        };
        let addr = r.insert(object, name);
        for m in members {
            if let Some(e) = r.objects.get_mut(&m) {
                e.owner = Some(addr);
            }
        }
        Ok(addr)
    })
}

/// Creates a tensor list that takes ownership of `value[0..size]`
/// (destroying the list destroys them); NULL on failure.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclCreateTensorList(
    value: *const *const aclTensor,
    size: u64,
) -> *mut aclTensorList {
    aclnn_call_value("aclCreateTensorList", std::ptr::null_mut(), || {
        // SAFETY: the caller passes `size` readable pointers (or NULL, 0).
        let a = unsafe { create_list(value.cast(), size, Kind::Tensor, "aclCreateTensorList") }?;
        Ok(a as *mut aclTensorList)
    })
}

/// Creates a scalar list that takes ownership of `value[0..size]`; NULL on
/// failure.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclCreateScalarList(
    value: *const *const aclScalar,
    size: u64,
) -> *mut aclScalarList {
    aclnn_call_value("aclCreateScalarList", std::ptr::null_mut(), || {
        // SAFETY: the caller passes `size` readable pointers (or NULL, 0).
        let a = unsafe { create_list(value.cast(), size, Kind::Scalar, "aclCreateScalarList") }?;
        Ok(a as *mut aclScalarList)
    })
}

macro_rules! destroy {
    ($(#[$doc:meta])* $name:ident, $ty:ty, $kind:ident, $what:literal) => {
        $(#[$doc])*
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(object: *const $ty) -> aclnnStatus {
            aclnn_call(stringify!($name), || {
                with_registry(|r| r.destroy(object as usize, Kind::$kind, $what))
            })
        }
    };
}

destroy!(
    /// Destroys a tensor descriptor (not a list member).
    aclDestroyTensor, aclTensor, Tensor, "tensor"
);
destroy!(
    /// Destroys a scalar (not a list member).
    aclDestroyScalar, aclScalar, Scalar, "scalar"
);
destroy!(
    /// Destroys an integer array.
    aclDestroyIntArray, aclIntArray, IntArray, "array"
);
destroy!(
    /// Destroys a float array.
    aclDestroyFloatArray, aclFloatArray, FloatArray, "array"
);
destroy!(
    /// Destroys a bool array.
    aclDestroyBoolArray, aclBoolArray, BoolArray, "array"
);
destroy!(
    /// Destroys a tensor list and its member tensors.
    aclDestroyTensorList, aclTensorList, TensorList, "array"
);
destroy!(
    /// Destroys a scalar list and its member scalars.
    aclDestroyScalarList, aclScalarList, ScalarList, "array"
);

unsafe extern "C" {
    fn malloc(size: usize) -> *mut c_void;
}

/// Writes `values` into a `malloc`ed array stored at `*out` and its length
/// at `*len`.
///
/// # Safety
/// `out` and `len` must be NULL or valid for writes.
unsafe fn write_malloced(values: &[i64], out: *mut *mut i64, len: *mut u64) -> MockResult<()> {
    if out.is_null() || len.is_null() {
        return Err(null_err("an output pointer is NULL"));
    }
    let bytes = std::mem::size_of_val(values).max(std::mem::size_of::<i64>());
    // SAFETY: malloc has no preconditions; the result is checked for NULL.
    let p = unsafe { malloc(bytes) } as *mut i64;
    if p.is_null() {
        return Err(MockError::new(
            ACLNN_ERR_INNER,
            format!("malloc of {bytes} bytes failed"),
        ));
    }
    // SAFETY: `p` holds at least `values.len()` i64 (malloc returns memory
    // aligned for any fundamental type); `out` and `len` are non-NULL and
    // writable by the caller's contract.
    unsafe {
        std::ptr::copy_nonoverlapping(values.as_ptr(), p, values.len());
        out.write(p);
        len.write(values.len() as u64);
    }
    Ok(())
}

/// Reads one field of a tensor descriptor.
fn tensor_field<T>(tensor: *const aclTensor, f: impl FnOnce(&TensorDesc) -> T) -> MockResult<T> {
    with_registry(|r| r.tensor(tensor as usize, "tensor").map(|t| f(t)))
}

/// Writes `value` through `out`, refusing NULL with `ACLNN_ERR_PARAM_NULLPTR`.
///
/// # Safety
/// `out` must be NULL or valid for a write of `T`.
pub(crate) unsafe fn put<T>(out: *mut T, value: T, what: &str) -> MockResult<()> {
    if out.is_null() {
        return Err(null_err(format!("{what} is NULL")));
    }
    // SAFETY: non-NULL and writable by the caller's contract.
    unsafe { out.write(value) };
    Ok(())
}

/// The view shape in a `malloc`ed array the caller frees.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclGetViewShape(
    tensor: *const aclTensor,
    viewDims: *mut *mut i64,
    viewDimsNum: *mut u64,
) -> aclnnStatus {
    aclnn_call("aclGetViewShape", || {
        let v = tensor_field(tensor, |t| t.view.clone())?;
        // SAFETY: the output pointers are NULL or writable.
        unsafe { write_malloced(&v, viewDims, viewDimsNum) }
    })
}

/// The storage shape in a `malloc`ed array the caller frees.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclGetStorageShape(
    tensor: *const aclTensor,
    storageDims: *mut *mut i64,
    storageDimsNum: *mut u64,
) -> aclnnStatus {
    aclnn_call("aclGetStorageShape", || {
        let v = tensor_field(tensor, |t| t.storage.clone())?;
        // SAFETY: the output pointers are NULL or writable.
        unsafe { write_malloced(&v, storageDims, storageDimsNum) }
    })
}

/// The view strides in a `malloc`ed array the caller frees.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclGetViewStrides(
    tensor: *const aclTensor,
    stridesValue: *mut *mut i64,
    stridesNum: *mut u64,
) -> aclnnStatus {
    aclnn_call("aclGetViewStrides", || {
        let v = tensor_field(tensor, |t| t.strides.clone())?;
        // SAFETY: the output pointers are NULL or writable.
        unsafe { write_malloced(&v, stridesValue, stridesNum) }
    })
}

macro_rules! tensor_getter {
    ($(#[$doc:meta])* $name:ident, $out:ty, $field:ident) => {
        $(#[$doc])*
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(tensor: *const aclTensor, out: *mut $out) -> aclnnStatus {
            aclnn_call(stringify!($name), || {
                let v = tensor_field(tensor, |t| t.$field)?;
                // SAFETY: `out` is NULL or writable by the caller's contract.
                unsafe { put(out, v, "the output pointer") }
            })
        }
    };
}

tensor_getter!(
    /// The view offset in elements.
    aclGetViewOffset, i64, offset
);
tensor_getter!(
    /// The tensor's format.
    aclGetFormat, aclFormat, format
);
tensor_getter!(
    /// The tensor's data type.
    aclGetDataType, aclDataType, dtype
);

macro_rules! size_getter {
    ($(#[$doc:meta])* $name:ident, $ty:ty, $kind:ident, $variant:ident) => {
        $(#[$doc])*
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(object: *const $ty, size: *mut u64) -> aclnnStatus {
            aclnn_call(stringify!($name), || {
                let n = with_registry(|r| {
                    match &*r.entry(object as usize, Kind::$kind, "the object")?.object {
                        Object::$variant(v) => Ok(v.len() as u64),
                        _ => unreachable!("entry() checked the kind"),
                    }
                })?;
                // SAFETY: `size` is NULL or writable by the caller's contract.
                unsafe { put(size, n, "size") }
            })
        }
    };
}

size_getter!(
    /// The number of values of an integer array.
    aclGetIntArraySize, aclIntArray, IntArray, IntArray
);
size_getter!(
    /// The number of values of a float array.
    aclGetFloatArraySize, aclFloatArray, FloatArray, FloatArray
);
size_getter!(
    /// The number of values of a bool array.
    aclGetBoolArraySize, aclBoolArray, BoolArray, BoolArray
);
size_getter!(
    /// The number of tensors of a tensor list.
    aclGetTensorListSize, aclTensorList, TensorList, TensorList
);
size_getter!(
    /// The number of scalars of a scalar list.
    aclGetScalarListSize, aclScalarList, ScalarList, ScalarList
);

/// Sets a tensor descriptor's data address (NULL or 32-byte aligned).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclSetRawTensorAddr(
    tensor: *mut aclTensor,
    addr: *mut c_void,
) -> aclnnStatus {
    aclnn_call("aclSetRawTensorAddr", || {
        let addr = addr as usize;
        if addr % DATA_ALIGN != 0 {
            return Err(invalid(format!(
                "addr {addr:#x} is not {DATA_ALIGN}-byte aligned"
            )));
        }
        with_registry(|r| {
            r.tensor(tensor as usize, "tensor")?.data = addr;
            Ok(())
        })
    })
}

/// A tensor descriptor's data address.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclGetRawTensorAddr(
    tensor: *const aclTensor,
    addr: *mut *mut c_void,
) -> aclnnStatus {
    aclnn_call("aclGetRawTensorAddr", || {
        let data = tensor_field(tensor, |t| t.data)?;
        // SAFETY: `addr` is NULL or writable by the caller's contract.
        unsafe { put(addr, data as *mut c_void, "addr") }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests_support::take_message;

    /// `aclCreateTensor` with a contiguous (NULL) or given stride array;
    /// the refusal's message when it returns NULL.
    fn create(view: &[i64], strides: Option<&[i64]>, offset: i64) -> Result<usize, String> {
        // SAFETY: the arrays hold `view.len()` values; no data address.
        let p = unsafe {
            aclCreateTensor(
                view.as_ptr(),
                view.len() as u64,
                ACL_FLOAT,
                strides.map_or(std::ptr::null(), |s| s.as_ptr()),
                offset,
                ACL_FORMAT_ND,
                view.as_ptr(),
                view.len() as u64,
                std::ptr::null_mut(),
            )
        };
        if p.is_null() {
            return Err(take_message().unwrap_or_default());
        }
        // SAFETY: `p` is the live descriptor just created.
        assert_eq!(unsafe { aclDestroyTensor(p) }, ACLNN_SUCCESS);
        Ok(p as usize)
    }

    #[test]
    fn layouts_beyond_64_bits_are_refused() {
        // Found by fuzzing: contiguous strides of these shapes overflowed.
        let err = create(&[1 << 32, 1 << 32], None, 0).unwrap_err();
        assert!(err.contains("multiply to more than"), "{err}");
        let err = create(&[0, 1 << 40, 1 << 40], Some(&[1, 1, 1]), 0).unwrap_err();
        assert!(err.contains("multiply to more than"), "{err}");
        let err = create(&[3, 2], Some(&[i64::MAX / 2, 1]), 0).unwrap_err();
        assert!(err.contains("more than 64-bit offsets"), "{err}");
        let err = create(&[2], Some(&[-i64::MAX]), 1).unwrap_err();
        assert!(err.contains("more than 64-bit offsets"), "{err}");
        let err = create(&[2], Some(&[1]), i64::MAX - 1).unwrap_err();
        assert!(err.contains("more than 64-bit offsets"), "{err}");
        // The largest layouts that fit are accepted, and empty views span
        // nothing whatever their strides.
        create(&[1 << 31, 1 << 31], None, 0).unwrap();
        create(&[2], Some(&[i64::MAX / 2]), 0).unwrap();
        create(&[0, 5], Some(&[i64::MAX, i64::MAX]), 0).unwrap();
    }
}
