//! Runs a [`Case`] against the mock device through its exported C
//! functions (resolved with `ascend_mock::resolve` into `ascend_sys`'s
//! function tables) and checks the contract every call must keep:
//!
//! - every call either succeeds or returns an error code and leaves a
//!   non-empty message for `aclGetRecentErrMsg` (never a panic: the fuzz
//!   target's panic hook aborts even on panics the mock would catch);
//! - a successful phase one hands out an executor; phase two either queues
//!   it or fails cleanly; a non-repeatable executor is consumed by its
//!   phase two (successful or not) and refused afterwards, a repeatable
//!   one stays until destroyed;
//! - a NULL workspace with a non-zero size is refused;
//! - after the case, every descriptor, list and executor is destroyed and
//!   every allocation freed, and the mock's counts of live aclnn objects
//!   and device and pinned allocations are back where they started.
//!
//! A broken rule panics with a description of what happened (the fuzzer
//! reports it as a crash). Sizes are bounded: a view holds at most
//! [`MAX_ELEMENTS`] elements unless its element count overflows (which the
//! mock must refuse), and an allocation holds at most [`MAX_ALLOC`] bytes,
//! so a case never needs much memory or time.
//!
//! Invariant: the device, context and stream are set up once per process
//! ([`setup`]); each case runs on the calling thread, which holds the
//! context.

use std::ffi::{CStr, c_void};
use std::sync::{Mutex, MutexGuard, OnceLock};

use ascend_mock::memory::MemKind;
use ascend_sys::*;

use crate::spec::*;

/// Most elements in a view whose element count fits in 64 bits.
pub const MAX_ELEMENTS: i128 = 4096;
/// Most bytes of one allocation.
pub const MAX_ALLOC: usize = 256 << 10;
/// Most dimensions passed to `aclCreateTensor` (one more than the mock's
/// maximum of 25, so the refusal is reached).
pub const MAX_RANK: usize = 26;

/// The function tables over the mock.
pub(crate) fn api() -> &'static Api {
    static API: OnceLock<Api> = OnceLock::new();
    API.get_or_init(|| Api::from_resolver(ascend_mock::resolve, "ascend-mock"))
}

/// The exported function `$name` of table `$table`.
macro_rules! f {
    ($table:ident . $name:ident) => {
        api()
            .$table
            .$name()
            .expect(concat!("the mock exports ", stringify!($name)))
    };
}

/// The process-wide device state the cases run on.
struct Device {
    /// A stream created on device 0.
    stream: usize,
}

/// Initialises the mock once (aclInit, device 0, a stream, aclnnInit) and
/// returns the stream.
pub(crate) fn setup() -> aclrtStream {
    static DEVICE: OnceLock<Device> = OnceLock::new();
    let d = DEVICE.get_or_init(|| {
        // SAFETY: NULL is a valid config path for aclInit and aclnnInit; the
        // stream output is a local.
        unsafe {
            let rc = f!(acl.aclInit)(std::ptr::null());
            assert!(
                rc == ACL_SUCCESS || rc == ACL_ERROR_REPEAT_INITIALIZE,
                "aclInit: {rc}"
            );
            assert_eq!(f!(acl.aclrtSetDevice)(0), ACL_SUCCESS);
            let mut s: aclrtStream = std::ptr::null_mut();
            assert_eq!(f!(acl.aclrtCreateStream)(&mut s), ACL_SUCCESS);
            assert_eq!(f!(nnopbase.aclnnInit)(std::ptr::null()), ACL_SUCCESS);
            Device { stream: s as usize }
        }
    });
    // The context is per thread: make device 0 current on this one too
    // (a no-op after the first time).
    // SAFETY: no pointer arguments.
    let rc = unsafe { f!(acl.aclrtSetDevice)(0) };
    assert_eq!(rc, ACL_SUCCESS, "aclrtSetDevice");
    d.stream as aclrtStream
}

/// The pending error message of this thread, which a failed call must
/// have left.
pub(crate) fn take_message(call: &str, code: i64) -> String {
    // SAFETY: no arguments; the result is NULL or a NUL-terminated string
    // valid until the next aclGetRecentErrMsg on this thread.
    let p = unsafe { f!(acl.aclGetRecentErrMsg)() };
    assert!(
        !p.is_null(),
        "{call} failed with {code} but left no message"
    );
    // SAFETY: non-NULL, so a NUL-terminated string (see above); copied at once.
    let msg = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
    assert!(
        !msg.trim().is_empty(),
        "{call} failed with {code} but its message is empty"
    );
    assert!(
        !msg.contains("internal error in the mock device"),
        "{call} panicked inside the mock: {msg}"
    );
    msg
}

/// Checks a status: `true` on success; a failure must carry a message,
/// which is kept in `stats`.
fn status(call: &str, code: i32, stats: &mut Stats) -> bool {
    if code == 0 {
        return true;
    }
    let msg = take_message(call, i64::from(code));
    if stats.messages.len() < 16 {
        stats.messages.push(format!("{call} -> {code}: {msg}"));
    }
    false
}

/// The size a [`Dim`] stands for.
fn dim(d: Dim, vars: &[i64; 4]) -> i64 {
    match d {
        Dim::Var(i) => vars[usize::from(i % 4)],
        Dim::Small(n) => i64::from(n % 9),
        Dim::Raw(v) => v,
    }
}

/// The `aclDataType` a spec names.
fn dtype(d: DTypeSpec) -> aclDataType {
    match d {
        DTypeSpec::F32 => ACL_FLOAT,
        DTypeSpec::F16 => ACL_FLOAT16,
        DTypeSpec::Bf16 => ACL_BF16,
        DTypeSpec::I32 => ACL_INT32,
        DTypeSpec::I64 => ACL_INT64,
        DTypeSpec::F64 => ACL_DOUBLE,
        DTypeSpec::I8 => ACL_INT8,
        DTypeSpec::U8 => ACL_UINT8,
        DTypeSpec::I16 => ACL_INT16,
        DTypeSpec::Bool => ACL_BOOL,
        DTypeSpec::Raw(v) => v,
    }
}

/// Bytes per element of `d` (4 for types the harness does not fill).
fn elem_size(d: aclDataType) -> usize {
    match d {
        ACL_DOUBLE | ACL_INT64 | ACL_UINT64 | ACL_COMPLEX64 => 8,
        ACL_FLOAT16 | ACL_BF16 | ACL_INT16 | ACL_UINT16 => 2,
        ACL_INT8 | ACL_UINT8 | ACL_BOOL => 1,
        _ => 4,
    }
}

/// Caps the element count of a view with non-negative dimensions at
/// [`MAX_ELEMENTS`], unless the count overflows 64 bits (kept, for the mock
/// to refuse) or is zero.
fn cap_view(view: &mut [i64]) {
    if view.iter().any(|&d| d <= 0) {
        return;
    }
    let total = view.iter().try_fold(1i64, |acc, &d| acc.checked_mul(d));
    let Some(total) = total else { return };
    if i128::from(total) <= MAX_ELEMENTS {
        return;
    }
    let mut prod: i128 = 1;
    for d in view.iter_mut() {
        let room = (MAX_ELEMENTS / prod).max(1);
        if i128::from(*d) > room {
            *d = room as i64;
        }
        prod *= i128::from(*d);
    }
}

/// Contiguous strides of `view` (as the mock computes them).
fn contiguous(view: &[i64]) -> Vec<i64> {
    let mut s = vec![1i64; view.len()];
    for d in (0..view.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1].saturating_mul(view[d + 1].max(1));
    }
    s
}

/// The lowest and one past the highest element offset of a view, in exact
/// arithmetic (saturating at the `i128` range), or `None` when it is empty
/// or has a negative dimension.
pub fn extent(view: &[i64], strides: &[i64], offset: i64) -> Option<(i128, i128)> {
    if view.iter().any(|&d| d <= 0) {
        return None;
    }
    let (mut lo, mut hi) = (i128::from(offset), i128::from(offset));
    for (&n, &s) in view.iter().zip(strides) {
        let span = i128::from(n - 1) * i128::from(s);
        if span < 0 {
            lo = lo.saturating_add(span);
        } else {
            hi = hi.saturating_add(span);
        }
    }
    Some((lo, hi.saturating_add(1)))
}

/// The bytes of one element of dtype `d` holding `v`.
fn encode(d: aclDataType, v: f64, out: &mut Vec<u8>) {
    match d {
        ACL_FLOAT => out.extend_from_slice(&(v as f32).to_le_bytes()),
        ACL_DOUBLE => out.extend_from_slice(&v.to_le_bytes()),
        ACL_FLOAT16 => out.extend_from_slice(&half::f16::from_f64(v).to_le_bytes()),
        ACL_BF16 => out.extend_from_slice(&half::bf16::from_f64(v).to_le_bytes()),
        ACL_INT64 => out.extend_from_slice(&(v as i64).to_le_bytes()),
        ACL_INT32 => out.extend_from_slice(&(v as i32).to_le_bytes()),
        ACL_INT16 => out.extend_from_slice(&(v as i16).to_le_bytes()),
        ACL_INT8 => out.extend_from_slice(&(v as i8).to_le_bytes()),
        ACL_UINT8 => out.push(v as u8),
        ACL_BOOL => out.push(u8::from(v != 0.0)),
        _ => out.extend_from_slice(&(v as f32).to_le_bytes()),
    }
}

/// The contents of an allocation of `bytes` bytes holding `fill` in `d`,
/// or `None` for all zeros.
fn fill_bytes(fill: &Fill, d: aclDataType, bytes: usize) -> Option<Vec<u8>> {
    const SPECIAL: [f64; 9] = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
        65504.0,
        1e-45,
        9.3e18,
        -9.3e18,
        -1.0,
    ];
    let es = elem_size(d);
    let n = bytes / es;
    let value = |i: usize| -> Option<f64> {
        match fill {
            Fill::Zeros => None,
            Fill::Iota => Some(i as f64),
            Fill::Values(v) if v.is_empty() => None,
            Fill::Values(v) => Some(f64::from(v[i % v.len()])),
            Fill::Special => Some(SPECIAL[i % SPECIAL.len()]),
        }
    };
    value(0)?;
    let mut out = Vec::with_capacity(bytes);
    for i in 0..n {
        encode(d, value(i).unwrap_or(0.0), &mut out);
    }
    out.resize(bytes, 0);
    Some(out)
}

/// Memory the harness owns for the length of a case.
enum Memory {
    /// `aclrtMalloc`.
    Device(usize),
    /// `aclrtMallocHost`.
    Pinned(usize),
    /// A host vector (pageable memory).
    Pageable(Vec<u64>),
}

/// What a case created, for the operator calls and the teardown.
struct World {
    stream: aclrtStream,
    /// The pool: each created descriptor (NULL when refused) and its data
    /// address.
    tensors: Vec<(*mut aclTensor, usize)>,
    /// Whether a pool tensor belongs to a list (the list destroys it).
    owned: Vec<bool>,
    /// The lists (NULL where creation was refused).
    lists: Vec<*mut aclTensorList>,
    scalars: Vec<*mut aclScalar>,
    int_arrays: Vec<*mut aclIntArray>,
    /// The strings passed as `char*`, alive until the case ends.
    texts: Vec<std::ffi::CString>,
    memory: Vec<Memory>,
    /// A descriptor destroyed before the calls.
    destroyed: usize,
    /// A live `aclIntArray`, passed where a tensor is expected.
    wrong_kind: usize,
}

/// What a case reached, for tests and statistics.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Descriptors `aclCreateTensor` accepted.
    pub tensors_created: usize,
    /// Lists `aclCreateTensorList` accepted.
    pub lists_created: usize,
    /// Phase-one calls that succeeded.
    pub phase_one_ok: usize,
    /// Phase-two calls that queued a kernel.
    pub launched: usize,
    /// Synchronisations that reported a kernel's failure.
    pub kernel_errors: usize,
    /// Address setters that accepted their new address.
    pub readdressed: usize,
    /// The first messages of failed operator calls and synchronisations.
    pub messages: Vec<String>,
}

impl World {
    fn alloc_device(&mut self, bytes: usize) -> usize {
        let mut p: *mut c_void = std::ptr::null_mut();
        // SAFETY: `p` is a valid output location.
        let rc = unsafe { f!(acl.aclrtMalloc)(&mut p, bytes.max(1), ACL_MEM_MALLOC_HUGE_FIRST) };
        assert_eq!(rc, ACL_SUCCESS, "aclrtMalloc({bytes})");
        self.memory.push(Memory::Device(p as usize));
        p as usize
    }

    fn alloc_pinned(&mut self, bytes: usize) -> usize {
        let mut p: *mut c_void = std::ptr::null_mut();
        // SAFETY: `p` is a valid output location.
        let rc = unsafe { f!(acl.aclrtMallocHost)(&mut p, bytes.max(1)) };
        assert_eq!(rc, ACL_SUCCESS, "aclrtMallocHost({bytes})");
        self.memory.push(Memory::Pinned(p as usize));
        p as usize
    }

    /// A pageable host buffer of at least `bytes` bytes, 32-byte aligned.
    fn alloc_pageable(&mut self, bytes: usize) -> usize {
        let v = vec![0u64; bytes.div_ceil(8) + 4];
        let p = (v.as_ptr() as usize).next_multiple_of(32);
        self.memory.push(Memory::Pageable(v));
        p
    }

    /// Writes `data` at `dst`, which is device memory when `device`.
    fn upload(&self, dst: usize, data: &[u8], device: bool) {
        if device {
            // SAFETY: `dst` is the start of a device allocation of at least
            // `data.len()` bytes made by this case; `data` is a host slice.
            let rc = unsafe {
                f!(acl.aclrtMemcpy)(
                    dst as *mut c_void,
                    data.len(),
                    data.as_ptr().cast(),
                    data.len(),
                    ACL_MEMCPY_HOST_TO_DEVICE,
                )
            };
            assert_eq!(rc, ACL_SUCCESS, "aclrtMemcpy of a fill");
        } else {
            // SAFETY: `dst` is the start of a host buffer of at least
            // `data.len()` bytes owned by this case.
            unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst as *mut u8, data.len()) };
        }
    }

    /// Makes the memory of pool tensor `t` and returns its data address.
    fn place(&mut self, t: &TensorSpec, view: &[i64], strides: &[i64], offset: i64) -> usize {
        let d = dtype(t.dtype);
        let es = elem_size(d) as i128;
        // Bytes before the address (negative strides reach below it) and
        // from it to the end of the view.
        let (below, above) = match extent(view, strides, offset) {
            Some((lo, hi)) => (
                lo.saturating_neg().max(0).saturating_mul(es),
                hi.max(0).saturating_mul(es),
            ),
            None => (0, 32),
        };
        let fits = below.saturating_add(above) <= MAX_ALLOC as i128;
        let (below, need) = if fits {
            let below = (below as usize).next_multiple_of(32);
            (below, below + above as usize)
        } else {
            (0, 64)
        };
        let fill = |w: &World, base: usize, bytes: usize, device: bool| {
            if let Some(data) = fill_bytes(&t.fill, d, bytes) {
                w.upload(base, &data, device);
            }
        };
        match t.placement {
            Placement::Null => 0,
            Placement::Fits { pad, shift } => {
                let bytes = need + usize::from(pad) * 32;
                let base = self.alloc_device(bytes);
                fill(self, base, bytes, true);
                base + below + usize::from(shift) * 32
            }
            Placement::Bytes { bytes, shift } => {
                let bytes = usize::from(bytes).max(1);
                let base = self.alloc_device(bytes);
                fill(self, base, bytes, true);
                base + usize::from(shift) * 32
            }
            Placement::Misaligned(by) => {
                let base = self.alloc_device(need + 32);
                base + below + usize::from(by % 31) + 1
            }
            Placement::Freed => {
                let base = self.alloc_device(need);
                let Some(Memory::Device(p)) = self.memory.pop() else {
                    unreachable!("alloc_device pushed a device block")
                };
                // SAFETY: `p` is a live device allocation of this case, not
                // used by anything yet.
                let rc = unsafe { f!(acl.aclrtFree)(p as *mut c_void) };
                assert_eq!(rc, ACL_SUCCESS, "aclrtFree");
                base + below
            }
            Placement::Pinned => {
                let base = self.alloc_pinned(need);
                fill(self, base, need, false);
                base + below
            }
            Placement::Pageable => {
                let base = self.alloc_pageable(need);
                fill(self, base, need, false);
                base + below
            }
            Placement::SameAs(i) => {
                if self.tensors.is_empty() {
                    0
                } else {
                    self.tensors[usize::from(i) % self.tensors.len()].1
                }
            }
            Placement::Wild(a) => (a as usize) & !31,
        }
    }

    /// Creates pool tensor `t`.
    fn create_tensor(&mut self, t: &TensorSpec, vars: &[i64; 4], stats: &mut Stats) {
        let mut view: Vec<i64> = t
            .view
            .iter()
            .take(MAX_RANK)
            .map(|&d| dim(d, vars))
            .collect();
        cap_view(&mut view);
        let strides: Option<Vec<i64>> = match &t.strides {
            Strides::Null => None,
            Strides::Contiguous => Some(contiguous(&view)),
            Strides::Transposed => {
                let mut s = contiguous(&view);
                let r = s.len();
                if r >= 2 {
                    s.swap(r - 1, r - 2);
                }
                Some(s)
            }
            Strides::Given(given) => Some(
                (0..view.len())
                    .map(|i| match given.get(i) {
                        Some(Stride::Small(v)) => i64::from(*v),
                        Some(Stride::Raw(v)) => *v,
                        None => 1,
                    })
                    .collect(),
            ),
        };
        let offset = match t.offset {
            Offset::Zero => 0,
            Offset::Small(v) => i64::from(v),
            Offset::Raw(v) => v,
        };
        let effective = strides.clone().unwrap_or_else(|| contiguous(&view));
        let data = self.place(t, &view, &effective, offset);
        let storage: Vec<i64> = match &t.storage {
            StorageSpec::SameAsView => view.clone(),
            StorageSpec::Flat => vec![
                extent(&view, &effective, offset)
                    .map_or(0, |(_, hi)| hi.clamp(0, i128::from(i64::MAX)) as i64),
            ],
            StorageSpec::Given(dims) => dims.iter().take(MAX_RANK).map(|&d| dim(d, vars)).collect(),
        };
        // SAFETY: every array pointer is valid for its stated length (the
        // stride array has one entry per view dimension, or is NULL).
        let p = unsafe {
            f!(nnopbase.aclCreateTensor)(
                view.as_ptr(),
                view.len() as u64,
                dtype(t.dtype),
                strides.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
                offset,
                match t.format {
                    FormatSpec::Nd => ACL_FORMAT_ND,
                    FormatSpec::Nchw => ACL_FORMAT_NCHW,
                    FormatSpec::Raw(v) => v,
                },
                storage.as_ptr(),
                storage.len() as u64,
                data as *mut c_void,
            )
        };
        if p.is_null() {
            take_message("aclCreateTensor", 0);
        } else {
            stats.tensors_created += 1;
            self.check_getters(p, &view, &effective, offset);
        }
        self.tensors.push((p, data));
        self.owned.push(false);
    }

    /// The getters return what the descriptor was created with.
    fn check_getters(&self, p: *mut aclTensor, view: &[i64], strides: &[i64], offset: i64) {
        let mut dims: *mut i64 = std::ptr::null_mut();
        let mut n = 0u64;
        // SAFETY: `p` is a live descriptor; the outputs are locals.
        let rc = unsafe { f!(nnopbase.aclGetViewShape)(p, &mut dims, &mut n) };
        assert_eq!(rc, 0, "aclGetViewShape");
        // SAFETY: on success `dims` holds `n` values from malloc, freed here.
        let got = unsafe { std::slice::from_raw_parts(dims, n as usize) }.to_vec();
        // SAFETY: `dims` came from the mock's malloc; the caller frees it.
        unsafe { libc_free(dims.cast()) };
        assert_eq!(got, view, "aclGetViewShape");
        // SAFETY: as above.
        let rc = unsafe { f!(nnopbase.aclGetViewStrides)(p, &mut dims, &mut n) };
        assert_eq!(rc, 0, "aclGetViewStrides");
        // SAFETY: as above.
        let got = unsafe { std::slice::from_raw_parts(dims, n as usize) }.to_vec();
        // SAFETY: as above.
        unsafe { libc_free(dims.cast()) };
        assert_eq!(got, strides, "aclGetViewStrides");
        let mut off = -1i64;
        // SAFETY: `p` is live; `off` is a local.
        let rc = unsafe { f!(nnopbase.aclGetViewOffset)(p, &mut off) };
        assert_eq!((rc, off), (0, offset), "aclGetViewOffset");
    }

    /// Creates a list of the pool tensors `picked` (NULL in the list pool
    /// when refused); a created list owns its members.
    fn create_list(&mut self, picked: &[usize], stats: &mut Stats) {
        let ptrs: Vec<*const aclTensor> = picked
            .iter()
            .map(|&i| self.tensors[i].0.cast_const())
            .collect();
        // SAFETY: `ptrs` holds `ptrs.len()` readable pointers.
        let p = unsafe { f!(nnopbase.aclCreateTensorList)(ptrs.as_ptr(), ptrs.len() as u64) };
        if p.is_null() {
            take_message("aclCreateTensorList", 0);
        } else {
            stats.lists_created += 1;
            for &i in picked {
                self.owned[i] = true;
            }
        }
        self.lists.push(p);
    }

    /// The tensor a [`TRef`] names.
    fn t(&self, r: TRef) -> *mut aclTensor {
        match r {
            TRef::Null => std::ptr::null_mut(),
            TRef::Pool(_) if self.tensors.is_empty() => std::ptr::null_mut(),
            TRef::Pool(i) => self.tensors[usize::from(i) % self.tensors.len()].0,
            TRef::Destroyed => self.destroyed as *mut aclTensor,
            TRef::WrongKind => self.wrong_kind as *mut aclTensor,
            TRef::Wild(a) => a as usize as *mut aclTensor,
        }
    }

    /// The list an [`LRef`] names.
    fn l(&self, r: LRef) -> *mut aclTensorList {
        match r {
            LRef::Null => std::ptr::null_mut(),
            LRef::Pool(_) if self.lists.is_empty() => std::ptr::null_mut(),
            LRef::Pool(i) => self.lists[usize::from(i) % self.lists.len()],
            LRef::Tensor(_) if self.tensors.is_empty() => std::ptr::null_mut(),
            LRef::Tensor(i) => self.tensors[usize::from(i) % self.tensors.len()].0.cast(),
        }
    }

    /// A scalar for `s` (NULL for [`ScalarSpec::Null`] or when refused).
    fn scalar(&mut self, s: ScalarSpec) -> *mut aclScalar {
        let mut bytes = [0u8; 8];
        let d = match s {
            ScalarSpec::Null => return std::ptr::null_mut(),
            ScalarSpec::F32(v) => {
                bytes[..4].copy_from_slice(&v.to_le_bytes());
                ACL_FLOAT
            }
            ScalarSpec::I64(v) => {
                bytes.copy_from_slice(&v.to_le_bytes());
                ACL_INT64
            }
            ScalarSpec::F16(v) => {
                bytes[..2].copy_from_slice(&v.to_le_bytes());
                ACL_FLOAT16
            }
            ScalarSpec::Bool(v) => {
                bytes[0] = u8::from(v);
                ACL_BOOL
            }
            ScalarSpec::Raw(d) => d,
        };
        // SAFETY: `bytes` holds 8 readable bytes, enough for any scalar type
        // the mock accepts.
        let p = unsafe { f!(nnopbase.aclCreateScalar)(bytes.as_mut_ptr().cast(), d) };
        if p.is_null() {
            take_message("aclCreateScalar", 0);
        } else {
            self.scalars.push(p);
        }
        p
    }

    /// An integer array holding `v` (NULL for `None`).
    fn int_array(&mut self, v: &Option<Vec<Int>>) -> *mut aclIntArray {
        let Some(v) = v else {
            return std::ptr::null_mut();
        };
        let values: Vec<i64> = v.iter().take(16).map(|i| i.value()).collect();
        // SAFETY: `values` holds `values.len()` readable values.
        let p = unsafe { f!(nnopbase.aclCreateIntArray)(values.as_ptr(), values.len() as u64) };
        assert!(!p.is_null(), "aclCreateIntArray of {} values", values.len());
        self.int_arrays.push(p);
        p
    }
}

unsafe extern "C" {
    #[link_name = "free"]
    fn libc_free(p: *mut c_void);
}

/// Serialises the cases of every target in this process: they compare
/// process-wide counts of live objects.
pub(crate) fn one_at_a_time() -> MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs one case; panics when the mock breaks its contract.
pub fn run_case(case: &Case) -> Stats {
    // The counts compared below are process-wide: one case at a time.
    let _serial = one_at_a_time();
    let stream = setup();
    let start_device = ascend_mock::memory::live_allocations(MemKind::Device(0));
    let start_pinned = ascend_mock::memory::live_allocations(MemKind::PinnedHost);
    let start_objects = ascend_mock::aclnn_live_objects().len();
    let vars = case.vars.map(|v| i64::from(v % 9));
    let mut stats = Stats::default();
    let mut w = World {
        stream,
        tensors: Vec::new(),
        owned: Vec::new(),
        lists: Vec::new(),
        scalars: Vec::new(),
        int_arrays: Vec::new(),
        texts: Vec::new(),
        memory: Vec::new(),
        destroyed: 0,
        wrong_kind: 0,
    };
    for t in case.tensors.iter().take(MAX_TENSORS) {
        w.create_tensor(t, &vars, &mut stats);
    }
    for members in case.lists.iter().take(MAX_LISTS) {
        let picked: Vec<usize> = if w.tensors.is_empty() {
            Vec::new()
        } else {
            members
                .iter()
                .take(MAX_LIST_LEN)
                .map(|&i| usize::from(i) % w.tensors.len())
                .collect()
        };
        w.create_list(&picked, &mut stats);
    }
    let range = Some(vec![Int::Small(1), Int::Small(2), Int::Small(3)]);
    w.wrong_kind = w.int_array(&range) as usize;
    {
        let one = [1i64];
        // SAFETY: a one-dimensional descriptor without data, destroyed at once.
        unsafe {
            let p = f!(nnopbase.aclCreateTensor)(
                one.as_ptr(),
                1,
                ACL_FLOAT,
                std::ptr::null(),
                0,
                ACL_FORMAT_ND,
                one.as_ptr(),
                1,
                std::ptr::null_mut(),
            );
            assert!(!p.is_null(), "aclCreateTensor of a plain descriptor");
            assert_eq!(f!(nnopbase.aclDestroyTensor)(p), 0);
            w.destroyed = p as usize;
        }
    }
    for call in case.calls.iter().take(MAX_CALLS) {
        run_call(&mut w, call, &mut stats);
    }
    for sh in case.shaped.iter().take(MAX_SHAPED) {
        let lay = crate::template::layout(sh, w.tensors.len(), w.lists.len());
        for (t, &null) in lay.tensors.iter().zip(&lay.nulls) {
            if null {
                w.tensors.push((std::ptr::null_mut(), 0));
                w.owned.push(false);
            } else {
                w.create_tensor(t, &vars, &mut stats);
            }
        }
        for members in &lay.lists {
            let picked: Vec<usize> = members.iter().map(|&i| usize::from(i)).collect();
            w.create_list(&picked, &mut stats);
        }
        let call = Call {
            op: lay.op,
            launch: sh.launch.clone(),
        };
        run_call(&mut w, &call, &mut stats);
    }
    teardown(w, &mut stats);
    let end_device = ascend_mock::memory::live_allocations(MemKind::Device(0));
    let end_pinned = ascend_mock::memory::live_allocations(MemKind::PinnedHost);
    let live = ascend_mock::aclnn_live_objects();
    assert_eq!(
        end_device, start_device,
        "live device allocations: {start_device} before the case, {end_device} after"
    );
    assert_eq!(
        end_pinned, start_pinned,
        "live pinned allocations: {start_pinned} before the case, {end_pinned} after"
    );
    assert_eq!(
        live.len(),
        start_objects,
        "live aclnn objects after the case: {live:?}"
    );
    let _ = ascend_mock::sanitizer::take_reports();
    stats
}

/// Phase one of `call`'s operator, then phase two as its launch spec says.
fn run_call(w: &mut World, call: &Call, stats: &mut Stats) {
    let mut ws = u64::MAX;
    let mut ex: *mut aclOpExecutor = std::ptr::null_mut();
    let (name, rc) = phase_one(w, &call.op, &mut ws, &mut ex);
    if !status(name, rc, stats) {
        return;
    }
    stats.phase_one_ok += 1;
    assert!(!ex.is_null(), "{name} succeeded without an executor");
    assert!(
        ws as usize <= MAX_ALLOC,
        "{name} asked for a workspace of {ws} bytes"
    );
    // The workspace phase one asked for (none so far), in device memory.
    let workspace = if ws == 0 {
        std::ptr::null_mut()
    } else {
        w.alloc_device(ws as usize) as *mut c_void
    };
    let launch = &call.launch;
    // SAFETY: `ex` came from phase one; the mock only looks it up in its
    // registry (a consumed one is refused).
    let destroy = |ex| unsafe { f!(nnopbase.aclDestroyAclOpExecutor)(ex) };
    if launch.skip {
        assert_eq!(destroy(ex), 0, "aclDestroyAclOpExecutor after {name}");
        return;
    }
    if launch.repeatable {
        // SAFETY: `ex` is live.
        let rc = unsafe { f!(nnopbase.aclSetAclOpExecutorRepeatable)(ex) };
        assert_eq!(rc, 0, "aclSetAclOpExecutorRepeatable after {name}");
    }
    if let Some(r) = launch.readdress {
        readdress(w, ex, &r, stats);
    }
    let stream = match launch.stream {
        StreamSpec::Ours => w.stream,
        StreamSpec::Default => std::ptr::null_mut(),
        StreamSpec::Wild(a) => a as usize as aclrtStream,
    };
    if let Some(bogus) = launch.bogus_workspace {
        let size = u64::from(bogus).max(1);
        let rc = phase_two(&call.op, std::ptr::null_mut(), size, ex, stream);
        assert_ne!(
            rc, 0,
            "{name}: phase two accepted a NULL workspace of {size} bytes"
        );
        take_message(name, i64::from(rc));
    }
    let runs = if launch.repeatable { 2 } else { 1 };
    for _ in 0..runs {
        let rc = phase_two(&call.op, workspace, ws, ex, stream);
        if !status(name, rc, stats) {
            break;
        }
        stats.launched += 1;
    }
    // SAFETY: no pointer arguments beyond the harness's stream.
    let sync = unsafe { f!(acl.aclrtSynchronizeStream)(w.stream) };
    if !status("aclrtSynchronizeStream", sync, stats) {
        stats.kernel_errors += 1;
    }
    // SAFETY: no arguments.
    let sync = unsafe { f!(acl.aclrtSynchronizeDevice)() };
    if !status("aclrtSynchronizeDevice", sync, stats) {
        stats.kernel_errors += 1;
    }
    // Phase two of its own operator consumes a non-repeatable executor,
    // whether it succeeds or fails (as CANN releases it there).
    let rc = destroy(ex);
    if !launch.repeatable {
        assert_ne!(rc, 0, "{name}: a consumed executor was destroyed again");
        take_message("aclDestroyAclOpExecutor", i64::from(rc));
    } else {
        assert_eq!(rc, 0, "aclDestroyAclOpExecutor after {name}");
    }
}

/// Calls the address setter `r` names on the live executor `ex`.
fn readdress(w: &World, ex: *mut aclOpExecutor, r: &Readdress, stats: &mut Stats) {
    let addr = match r.addr {
        NewAddr::Null => 0,
        NewAddr::OfTensor(_) if w.tensors.is_empty() => 0,
        NewAddr::OfTensor(i) => w.tensors[usize::from(i) % w.tensors.len()].1,
        NewAddr::Wild(a) => (a as usize) & !31,
    } as *mut c_void;
    let (index, rel) = (usize::from(r.index), usize::from(r.relative));
    let (t, l) = (w.t(r.tensor), w.l(r.list));
    // SAFETY (every call): `ex` is a live executor; the tensor and list are
    // addresses the mock looks up in its registry; the new address is only
    // classified and range-checked by the mock before any use.
    let (name, rc) = unsafe {
        match r.setter {
            Setter::Input => (
                "aclSetInputTensorAddr",
                f!(nnopbase.aclSetInputTensorAddr)(ex, index, t, addr),
            ),
            Setter::Output => (
                "aclSetOutputTensorAddr",
                f!(nnopbase.aclSetOutputTensorAddr)(ex, index, t, addr),
            ),
            Setter::Tensor => (
                "aclSetTensorAddr",
                f!(nnopbase.aclSetTensorAddr)(ex, index, t, addr),
            ),
            Setter::DynamicInput => (
                "aclSetDynamicInputTensorAddr",
                f!(nnopbase.aclSetDynamicInputTensorAddr)(ex, index, rel, l, addr),
            ),
            Setter::DynamicOutput => (
                "aclSetDynamicOutputTensorAddr",
                f!(nnopbase.aclSetDynamicOutputTensorAddr)(ex, index, rel, l, addr),
            ),
        }
    };
    if status(name, rc, stats) {
        stats.readdressed += 1;
    }
}

/// Destroys everything the case created and frees its memory.
fn teardown(w: World, stats: &mut Stats) {
    // SAFETY: the harness's stream is live.
    let rc = unsafe { f!(acl.aclrtSynchronizeStream)(w.stream) };
    status("aclrtSynchronizeStream", rc, stats);
    for &l in w.lists.iter().filter(|l| !l.is_null()) {
        // SAFETY: `l` is a live list of this case.
        let rc = unsafe { f!(nnopbase.aclDestroyTensorList)(l) };
        assert_eq!(rc, 0, "aclDestroyTensorList");
    }
    for (&(t, _), &owned) in w.tensors.iter().zip(&w.owned) {
        if !t.is_null() && !owned {
            // SAFETY: `t` is a live descriptor of this case, in no list.
            let rc = unsafe { f!(nnopbase.aclDestroyTensor)(t) };
            assert_eq!(rc, 0, "aclDestroyTensor");
        }
    }
    for &s in &w.scalars {
        // SAFETY: `s` is a live scalar of this case.
        assert_eq!(unsafe { f!(nnopbase.aclDestroyScalar)(s) }, 0);
    }
    for &a in &w.int_arrays {
        // SAFETY: `a` is a live array of this case.
        assert_eq!(unsafe { f!(nnopbase.aclDestroyIntArray)(a) }, 0);
    }
    for m in w.memory {
        match m {
            // SAFETY: a live device allocation of this case; the stream work
            // that used it was synchronised (and the mock defers a free
            // until queued work ran anyway).
            Memory::Device(p) => assert_eq!(unsafe { f!(acl.aclrtFree)(p as *mut c_void) }, 0),
            // SAFETY: a live pinned allocation of this case, as above.
            Memory::Pinned(p) => {
                assert_eq!(unsafe { f!(acl.aclrtFreeHost)(p as *mut c_void) }, 0)
            }
            Memory::Pageable(v) => drop(v),
        }
    }
}

/// A phase-one argument of C type `Self`, made from the [`Param`] at its
/// position (or a default of the kind when the entry is missing or of
/// another kind). A parameter type without an implementation here is a
/// compile error in [`generic_calls`], naming the type.
trait FromParam: Sized {
    fn from_param(w: &mut World, p: Option<&Param>, position: usize) -> Self;
}

/// The pool index a defaulted tensor or list parameter takes.
fn pool_index(position: usize) -> u8 {
    position as u8
}

impl FromParam for *mut aclTensor {
    fn from_param(w: &mut World, p: Option<&Param>, position: usize) -> Self {
        match p {
            Some(Param::Tensor(r)) => w.t(*r),
            _ => w.t(TRef::Pool(pool_index(position))),
        }
    }
}

impl FromParam for *const aclTensor {
    fn from_param(w: &mut World, p: Option<&Param>, position: usize) -> Self {
        <*mut aclTensor>::from_param(w, p, position).cast_const()
    }
}

impl FromParam for *mut aclTensorList {
    fn from_param(w: &mut World, p: Option<&Param>, position: usize) -> Self {
        match p {
            Some(Param::List(r)) => w.l(*r),
            _ => w.l(LRef::Pool(pool_index(position))),
        }
    }
}

impl FromParam for *const aclTensorList {
    fn from_param(w: &mut World, p: Option<&Param>, position: usize) -> Self {
        <*mut aclTensorList>::from_param(w, p, position).cast_const()
    }
}

impl FromParam for *const aclScalar {
    fn from_param(w: &mut World, p: Option<&Param>, _: usize) -> Self {
        match p {
            Some(Param::Scalar(s)) => w.scalar(*s),
            _ => w.scalar(ScalarSpec::F32(1.0)),
        }
    }
}

impl FromParam for *const aclIntArray {
    fn from_param(w: &mut World, p: Option<&Param>, _: usize) -> Self {
        match p {
            Some(Param::IntArray(v)) => w.int_array(v),
            _ => std::ptr::null(),
        }
    }
}

impl FromParam for *mut std::ffi::c_char {
    fn from_param(w: &mut World, p: Option<&Param>, _: usize) -> Self {
        let bytes: Vec<u8> = match p {
            Some(Param::Text(Text::Null)) => return std::ptr::null_mut(),
            Some(Param::Text(Text::Known(i))) => {
                TEXTS[usize::from(*i) % TEXTS.len()].as_bytes().to_vec()
            }
            Some(Param::Text(Text::Raw(b))) => b.iter().take_while(|&&c| c != 0).copied().collect(),
            _ => TEXTS[0].as_bytes().to_vec(),
        };
        let text = std::ffi::CString::new(bytes).expect("cut at the first NUL");
        // The CString's heap buffer does not move when the CString does.
        let p = text.as_ptr().cast_mut();
        w.texts.push(text);
        p
    }
}

impl FromParam for *const std::ffi::c_char {
    fn from_param(w: &mut World, p: Option<&Param>, position: usize) -> Self {
        <*mut std::ffi::c_char>::from_param(w, p, position).cast_const()
    }
}

/// Integers: the value truncated to the C type (as C would convert it).
macro_rules! int_params {
    ($($t:ty),*) => {$(
        impl FromParam for $t {
            fn from_param(_: &mut World, p: Option<&Param>, _: usize) -> Self {
                match p {
                    Some(Param::Int(i)) => i.value() as $t,
                    _ => 0,
                }
            }
        }
    )*};
}
int_params!(i8, i16, i32, i64, u8, u32, u64);

impl FromParam for f64 {
    fn from_param(_: &mut World, p: Option<&Param>, _: usize) -> Self {
        match p {
            Some(Param::Real(v)) => *v,
            _ => 0.0,
        }
    }
}

impl FromParam for f32 {
    fn from_param(w: &mut World, p: Option<&Param>, position: usize) -> Self {
        f64::from_param(w, p, position) as f32
    }
}

impl FromParam for bool {
    fn from_param(_: &mut World, p: Option<&Param>, _: usize) -> Self {
        matches!(p, Some(Param::Flag(true)))
    }
}

/// Generates, from the declared operators, [`OPERATORS`] and the two
/// phases of an [`Op`] call.
macro_rules! generic_calls {
    ($($op:ident / $phase_one:ident ($($p:ident : $t:ty),*);)*) => {
        /// Every two-phase operator the headers declare, in the order
        /// [`Op::which`] indexes them.
        pub const OPERATORS: &[&str] = &[$(stringify!($op)),*];

        /// Phase one of operator `which` with `params`.
        fn any_phase_one(
            w: &mut World,
            which: usize,
            params: &[Param],
            ws: &mut u64,
            ex: &mut *mut aclOpExecutor,
        ) -> (&'static str, i32) {
            let mut index = 0usize;
            $(
                if which == index {
                    let mut position = 0usize;
                    $(
                        let $p = <$t as FromParam>::from_param(w, params.get(position), position);
                        position += 1;
                    )*
                    let _ = position;
                    // SAFETY: each pointer argument is NULL, an object
                    // address the mock only looks up in its registry, or
                    // one of the two output locations (valid locals).
                    let rc = unsafe { f!(opapi.$phase_one)($($p,)* ws, ex) };
                    return (stringify!($phase_one), rc);
                }
                index += 1;
            )*
            let _ = index;
            unreachable!("operator index {which} is taken modulo {}", OPERATORS.len())
        }

        /// Phase two of operator `which`.
        fn any_phase_two(which: usize) -> ascend_sys::pfn::opapi::aclnnAdd {
            let mut index = 0usize;
            $(
                if which == index {
                    return f!(opapi.$op);
                }
                index += 1;
            )*
            let _ = index;
            unreachable!("operator index {which} is taken modulo {}", OPERATORS.len())
        }
    };
}

ascend_sys::for_each_operator!(generic_calls);

/// The call of the operator named `name` (phase two's name, `aclnnAdd`)
/// with `params`.
///
/// # Panics
/// When no declared operator has that name.
pub fn any(name: &str, params: Vec<Param>) -> Op {
    let which = OPERATORS
        .iter()
        .position(|n| *n == name)
        .unwrap_or_else(|| panic!("{name} is not a declared operator"));
    Op {
        which: which as u16,
        params,
    }
}

/// Calls phase one of `op`; returns the function's name and its status.
fn phase_one(
    w: &mut World,
    op: &Op,
    ws: &mut u64,
    ex: &mut *mut aclOpExecutor,
) -> (&'static str, i32) {
    let which = usize::from(op.which) % OPERATORS.len();
    any_phase_one(w, which, &op.params, ws, ex)
}

/// Calls phase two of `op` with the given workspace, executor and stream.
fn phase_two(
    op: &Op,
    workspace: *mut c_void,
    size: u64,
    ex: *mut aclOpExecutor,
    stream: aclrtStream,
) -> i32 {
    let f = any_phase_two(usize::from(op.which) % OPERATORS.len());
    // SAFETY: `ex` is a live executor (or the mock refuses it after a
    // registry lookup); the workspace is NULL or a device allocation of
    // `size` bytes; the stream is a handle the mock looks up.
    unsafe { f(workspace, size, ex, stream) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(view: Vec<Dim>, dtype: DTypeSpec, placement: Placement, fill: Fill) -> TensorSpec {
        TensorSpec {
            dtype,
            format: FormatSpec::Nd,
            view,
            strides: Strides::Null,
            offset: Offset::Zero,
            storage: StorageSpec::SameAsView,
            placement,
            fill,
        }
    }

    fn fits() -> Placement {
        Placement::Fits { pad: 0, shift: 0 }
    }

    fn launch() -> LaunchSpec {
        LaunchSpec {
            stream: StreamSpec::Ours,
            repeatable: false,
            bogus_workspace: None,
            skip: false,
            readdress: None,
        }
    }

    #[test]
    fn a_valid_matmul_runs() {
        let case = Case {
            vars: [2, 3, 4, 0],
            tensors: vec![
                tensor(
                    vec![Dim::Var(0), Dim::Var(1)],
                    DTypeSpec::F32,
                    fits(),
                    Fill::Iota,
                ),
                tensor(
                    vec![Dim::Var(1), Dim::Var(2)],
                    DTypeSpec::F32,
                    fits(),
                    Fill::Iota,
                ),
                tensor(
                    vec![Dim::Var(0), Dim::Var(2)],
                    DTypeSpec::F32,
                    fits(),
                    Fill::Zeros,
                ),
            ],
            lists: vec![],
            calls: vec![Call {
                op: any(
                    "aclnnMatmul",
                    vec![
                        Param::Tensor(TRef::Pool(0)),
                        Param::Tensor(TRef::Pool(1)),
                        Param::Tensor(TRef::Pool(2)),
                        Param::Int(Int::Raw(i64::from(0))),
                    ],
                ),
                launch: LaunchSpec {
                    repeatable: true,
                    bogus_workspace: Some(64),
                    ..launch()
                },
            }],
            shaped: vec![],
        };
        let stats = run_case(&case);
        assert_eq!(stats.tensors_created, 3);
        assert_eq!(stats.phase_one_ok, 1);
        assert_eq!(stats.launched, 2);
        assert_eq!(stats.kernel_errors, 0);
    }

    #[test]
    fn every_declared_operator_is_reached() {
        // Three small tensors and a list in the pools; each operator called
        // with defaulted parameters must be reached (phase one succeeds, or
        // fails under its own name with a message) and leave nothing behind.
        for (which, name) in OPERATORS.iter().enumerate() {
            let case = Case {
                vars: [2, 2, 2, 2],
                tensors: (0..3)
                    .map(|_| {
                        tensor(
                            vec![Dim::Var(0), Dim::Var(1)],
                            DTypeSpec::F32,
                            fits(),
                            Fill::Iota,
                        )
                    })
                    .collect(),
                lists: vec![vec![0]],
                calls: vec![Call {
                    op: Op {
                        which: which as u16,
                        params: vec![],
                    },
                    launch: launch(),
                }],
                shaped: vec![],
            };
            let stats = run_case(&case);
            let phase_one = format!("{name}GetWorkspaceSize -> ");
            assert!(
                stats.phase_one_ok == 1 || stats.messages.iter().any(|m| m.starts_with(&phase_one)),
                "{name} was not called: {stats:?}"
            );
        }
    }

    #[test]
    fn a_call_runs_or_is_refused_under_its_name() {
        let pool = || {
            vec![
                tensor(
                    vec![Dim::Var(0), Dim::Var(1)],
                    DTypeSpec::F32,
                    fits(),
                    Fill::Iota,
                ),
                tensor(
                    vec![Dim::Var(1), Dim::Var(2)],
                    DTypeSpec::F32,
                    fits(),
                    Fill::Iota,
                ),
                tensor(
                    vec![Dim::Var(0), Dim::Var(2)],
                    DTypeSpec::F32,
                    fits(),
                    Fill::Zeros,
                ),
            ]
        };
        let which = OPERATORS.iter().position(|n| *n == "aclnnMatmul").unwrap() as u16;
        let params = vec![
            Param::Tensor(TRef::Pool(0)),
            Param::Tensor(TRef::Pool(1)),
            Param::Tensor(TRef::Pool(2)),
            Param::Int(Int::Small(0)),
        ];
        let case = |op| Case {
            vars: [2, 3, 4, 0],
            tensors: pool(),
            lists: vec![],
            calls: vec![Call {
                op,
                launch: LaunchSpec {
                    repeatable: true,
                    ..launch()
                },
            }],
            shaped: vec![],
        };
        let any = run_case(&case(Op { which, params }));
        assert_eq!(
            (any.phase_one_ok, any.launched, any.kernel_errors),
            (1, 2, 0)
        );
        // Shapes that disagree are refused under the operator's name.
        let bad = vec![
            Param::Tensor(TRef::Pool(1)),
            Param::Tensor(TRef::Pool(1)),
            Param::Tensor(TRef::Pool(2)),
        ];
        let refused = run_case(&case(Op { which, params: bad }));
        assert_eq!(refused.phase_one_ok, 0);
        assert!(
            refused.messages[0].starts_with("aclnnMatmulGetWorkspaceSize -> 161002"),
            "{:?}",
            refused.messages
        );
    }

    #[test]
    fn address_setters_retarget_or_refuse() {
        let t = |dims: [u8; 2]| {
            tensor(
                vec![Dim::Small(dims[0]), Dim::Small(dims[1])],
                DTypeSpec::F32,
                fits(),
                Fill::Iota,
            )
        };
        let matmul = |readdress| Call {
            op: any(
                "aclnnMatmul",
                vec![
                    Param::Tensor(TRef::Pool(0)),
                    Param::Tensor(TRef::Pool(1)),
                    Param::Tensor(TRef::Pool(2)),
                    Param::Int(Int::Raw(i64::from(0))),
                ],
            ),
            launch: LaunchSpec {
                repeatable: true,
                readdress: Some(readdress),
                ..launch()
            },
        };
        let to_tensor_3 = Readdress {
            setter: Setter::Input,
            index: 0,
            relative: 0,
            tensor: TRef::Pool(0),
            list: LRef::Null,
            addr: NewAddr::OfTensor(3),
        };
        let case = Case {
            vars: [0; 4],
            tensors: vec![t([2, 3]), t([3, 4]), t([2, 4]), t([2, 3])],
            lists: vec![],
            calls: vec![
                // Input 0 moves to tensor 3's memory (same size).
                matmul(to_tensor_3),
                // Refused: a dynamic setter on a single tensor, an output
                // index past the last, a wild address (not device memory).
                matmul(Readdress {
                    setter: Setter::DynamicInput,
                    ..to_tensor_3
                }),
                matmul(Readdress {
                    setter: Setter::Output,
                    index: 7,
                    ..to_tensor_3
                }),
                matmul(Readdress {
                    addr: NewAddr::Wild(0x4000),
                    ..to_tensor_3
                }),
            ],
            shaped: vec![],
        };
        let stats = run_case(&case);
        assert_eq!(
            (stats.phase_one_ok, stats.readdressed, stats.launched),
            (4, 1, 8),
            "{stats:?}"
        );
    }

    #[test]
    fn bad_placements_are_refused_cleanly() {
        // 8 x 8 f32: 256 bytes; aclrtMalloc(n) makes round_up(n, 32) + 32
        // bytes addressable.
        let view = vec![Dim::Small(8), Dim::Small(8)];
        for placement in [
            Placement::Null,
            Placement::Bytes { bytes: 8, shift: 0 },
            Placement::Fits { pad: 0, shift: 2 },
            Placement::Misaligned(3),
            Placement::Freed,
            Placement::Pinned,
            Placement::Pageable,
            Placement::Wild(0x1000),
        ] {
            let case = Case {
                vars: [0; 4],
                tensors: vec![
                    tensor(view.clone(), DTypeSpec::F32, placement, Fill::Special),
                    tensor(view.clone(), DTypeSpec::F32, fits(), Fill::Zeros),
                ],
                lists: vec![],
                calls: vec![Call {
                    op: any(
                        "aclnnSoftmax",
                        vec![
                            Param::Tensor(TRef::Pool(0)),
                            Param::Int(Int::Small(-1)),
                            Param::Tensor(TRef::Pool(1)),
                        ],
                    ),
                    launch: launch(),
                }],
                shaped: vec![],
            };
            let stats = run_case(&case);
            assert_eq!(stats.phase_one_ok, 0, "{placement:?} was accepted");
        }
    }

    #[test]
    fn lists_own_their_members_and_bad_refs_are_refused() {
        let t = |d| tensor(vec![Dim::Small(2), Dim::Small(2)], d, fits(), Fill::Iota);
        let case = Case {
            vars: [0; 4],
            tensors: vec![t(DTypeSpec::F32), t(DTypeSpec::F32), t(DTypeSpec::F32)],
            // The second list reuses a member of the first: refused.
            lists: vec![vec![0], vec![0, 1], vec![1], vec![2]],
            calls: vec![
                Call {
                    op: any(
                        "aclnnGroupedMatmulV4",
                        vec![
                            Param::List(LRef::Pool(0)),
                            Param::List(LRef::Pool(2)),
                            Param::List(LRef::Null),
                            Param::List(LRef::Null),
                            Param::List(LRef::Null),
                            Param::List(LRef::Null),
                            Param::List(LRef::Null),
                            Param::List(LRef::Null),
                            Param::Tensor(TRef::Null),
                            Param::List(LRef::Null),
                            Param::List(LRef::Null),
                            Param::List(LRef::Null),
                            Param::Int(Int::Small(0)),
                            Param::Int(Int::Small(-1)),
                            Param::Int(Int::Small(0)),
                            Param::Int(Int::Small(0)),
                            Param::List(LRef::Pool(3)),
                            Param::List(LRef::Null),
                            Param::List(LRef::Null),
                        ],
                    ),
                    launch: launch(),
                },
                Call {
                    op: any(
                        "aclnnAdd",
                        vec![
                            Param::Tensor(TRef::Destroyed),
                            Param::Tensor(TRef::WrongKind),
                            Param::Scalar(ScalarSpec::F32(1.0)),
                            Param::Tensor(TRef::Wild(0xdead_0000)),
                        ],
                    ),
                    launch: launch(),
                },
            ],
            shaped: vec![],
        };
        let stats = run_case(&case);
        assert_eq!(
            (stats.lists_created, stats.phase_one_ok, stats.launched),
            (3, 1, 1),
            "{stats:?}"
        );
    }

    #[test]
    fn view_caps_keep_overflowing_counts() {
        let mut v = vec![100, 100, 100];
        cap_view(&mut v);
        assert!(v.iter().product::<i64>() <= MAX_ELEMENTS as i64, "{v:?}");
        let mut huge = vec![i64::MAX, 4];
        cap_view(&mut huge);
        assert_eq!(huge, vec![i64::MAX, 4]);
        let mut empty = vec![0, i64::MAX];
        cap_view(&mut empty);
        assert_eq!(empty, vec![0, i64::MAX]);
    }
}
