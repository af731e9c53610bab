//! `aclOpExecutor` and the two phases every operator shares.
//!
//! Phase one ([`get_workspace_size`]) checks the output pointers, lets the
//! operator bind its parameters through a [`Binder`] (which converts each
//! descriptor into an `ascend_kernels::TensorArg` and checks that every
//! non-empty view lies inside a live device allocation of the current
//! device), runs the kernel's `check`, and registers an [`Executor`]
//! holding its own copy of every tensor argument. Phase two ([`launch`])
//! validates the executor, the workspace and the stream, re-checks the
//! tensors against the allocation registry, and queues the kernel on the
//! stream; a kernel error becomes the stream's error.
//!
//! Slots: each tensor the operator binds is one [`Slot`], numbered by role
//! (input or output) and IR index — the position of the parameter among the
//! operator's tensor inputs (or outputs), counting absent optional ones —
//! plus, for list members, the position in the list. `aclSetInputTensorAddr`
//! and friends address slots this way.
//!
//! Invariants:
//! - An executor is in the registry from phase one until phase two
//!   consumes it (non-repeatable) or `aclDestroyAclOpExecutor` destroys it.
//!   A phase two of the executor's own operator consumes a non-repeatable
//!   executor whether it succeeds or fails (also by an injected failure):
//!   CANN releases such an executor in its phase-two call, so a caller has
//!   no way to release it after a failed one.
//! - A slot's address was checked (alignment, device, extent inside its
//!   allocation) when it was set, and is checked again by every phase two.
//! - The queued task owns copies of the tensor arguments and of the kernel
//!   closure, so descriptors and the executor may go away once phase two
//!   returned.
//!
//! Race detection (`sanitizer::race`, reached through the core's
//! `hooks::queue`): phase two queues its task as device work and hands the
//! hull of every tensor view to the race detector as it queues: inputs are read,
//! outputs and in-place inputs (bound with [`Binder::inout`]) written, a
//! non-empty workspace written.
//!
//! Deliberately unchecked (as on the device, this is the caller's
//! contract): outputs that overlap inputs in ways an operator does not
//! document.

use std::ffi::c_void;
use std::sync::Arc;

use ascend_kernels::{DType, KernelError, Scalar, TensorArg};
use ascend_sys::*;

use super::meta::{DATA_ALIGN, Kind, Object, Registry, TensorDesc, kernel_dtype, with_registry};
use super::{aclnn_call, invalid, kernel_err, null_err, runtime_err};
use crate::error::ReportClass;
use crate::error::{MockError, MockResult};
use crate::gate::current_call_text;
use crate::hooks::{self, Access};
use crate::memory::{self, Location};
use crate::report::violation;
use crate::runtime;
use crate::stream::TaskKind;

/// Whether a slot is an operator input or output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An input tensor.
    Input,
    /// An output tensor.
    Output,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Input => "input",
            Role::Output => "output",
        }
    }
}

/// One tensor argument of an executor.
#[derive(Debug, Clone)]
pub struct Slot {
    /// Input or output.
    pub role: Role,
    /// IR index of the parameter among the operator's inputs or outputs.
    pub ir: usize,
    /// Position inside a tensor list parameter, `None` for a single tensor.
    pub rel: Option<usize>,
    /// The parameter's name, for messages.
    pub param: &'static str,
    /// Address of the `aclTensor` it was bound from.
    pub desc: usize,
    /// Creation number of that descriptor (tells it from a later object
    /// at the same address).
    pub desc_serial: u64,
    /// Address of the `aclTensorList` it belongs to (0 for none).
    pub list: usize,
    /// The executor's own copy of the tensor.
    pub arg: TensorArg,
    /// Whether the kernel writes it (outputs, and inputs updated in
    /// place such as `selfRef`), for race detection.
    pub written: bool,
}

/// Type-erased kernel: rebuilds its argument struct from the slots and
/// checks or runs it.
pub trait Launch: Send + Sync {
    /// The kernel's phase-one check.
    fn check(&self, tensors: &[TensorArg]) -> Result<(), KernelError>;
    /// Runs the kernel.
    ///
    /// # Safety
    /// Every tensor must satisfy `ascend_kernels::tensor`'s invariant
    /// (inside a live allocation, not written by anyone else meanwhile).
    unsafe fn run(&self, tensors: &[TensorArg]) -> Result<(), KernelError>;
}

/// The checking function of a kernel.
pub type CheckFn<A> = fn(&A) -> Result<(), KernelError>;
/// The running function of a kernel.
pub type RunFn<A> = unsafe fn(&A) -> Result<(), KernelError>;

struct Kernel<A, B> {
    build: B,
    check: CheckFn<A>,
    run: RunFn<A>,
}

impl<A, B> Launch for Kernel<A, B>
where
    B: Fn(&[TensorArg]) -> A + Send + Sync,
{
    fn check(&self, tensors: &[TensorArg]) -> Result<(), KernelError> {
        (self.check)(&(self.build)(tensors))
    }

    unsafe fn run(&self, tensors: &[TensorArg]) -> Result<(), KernelError> {
        let args = (self.build)(tensors);
        // SAFETY: forwarded from the caller.
        unsafe { (self.run)(&args) }
    }
}

/// A kernel whose arguments `build` makes from the executor's tensors.
pub fn kernel<A: 'static, B>(build: B, check: CheckFn<A>, run: RunFn<A>) -> Box<dyn Launch>
where
    B: Fn(&[TensorArg]) -> A + Send + Sync + 'static,
{
    Box::new(Kernel { build, check, run })
}

/// A bound single tensor: its slot number.
#[derive(Debug, Clone, Copy)]
pub struct TRef(usize);

impl TRef {
    /// The tensor in `tensors`.
    pub fn get(self, tensors: &[TensorArg]) -> TensorArg {
        tensors[self.0].clone()
    }
}

/// A bound tensor list: its slot numbers.
#[derive(Debug, Clone)]
pub struct LRef(Vec<usize>);

impl LRef {
    /// The tensors of the list.
    pub fn get(&self, tensors: &[TensorArg]) -> Vec<TensorArg> {
        self.0.iter().map(|&i| tensors[i].clone()).collect()
    }
}

/// An operator's executor.
pub struct Executor {
    /// The operator (`aclnnAdd`, ...).
    pub op: &'static str,
    /// Workspace bytes phase one reported.
    pub workspace: u64,
    /// Whether phase two may run it more than once.
    pub repeatable: bool,
    /// The device whose memory the tensors live in.
    pub device: u32,
    /// The tensor arguments.
    pub slots: Vec<Slot>,
    /// Number of input IR parameters (absent optional ones included).
    pub inputs: usize,
    /// Number of output IR parameters.
    pub outputs: usize,
    /// The kernel.
    pub launch: Arc<dyn Launch>,
}

/// Binds an operator's parameters during phase one.
pub struct Binder<'r> {
    op: &'static str,
    device: u32,
    slots: Vec<Slot>,
    inputs: usize,
    outputs: usize,
    reg: &'r mut Registry,
}

/// Formats the kernels treat as plain row-major (ND) layouts.
fn plain_format(format: aclFormat) -> bool {
    matches!(
        format,
        ACL_FORMAT_UNDEFINED
            | ACL_FORMAT_ND
            | ACL_FORMAT_NCHW
            | ACL_FORMAT_NHWC
            | ACL_FORMAT_NCDHW
            | ACL_FORMAT_NDHWC
            | ACL_FORMAT_HWCN
            | ACL_FORMAT_NC
            | ACL_FORMAT_NCL
    )
}

/// Converts a descriptor into a kernel argument.
fn to_arg(op: &str, param: &str, t: &TensorDesc) -> MockResult<TensorArg> {
    let dtype: DType = kernel_dtype(t.dtype).ok_or_else(|| {
        invalid(format!(
            "{op}: {param} has dataType {}, which the mock's kernels do not support",
            t.dtype
        ))
    })?;
    if !plain_format(t.format) {
        return Err(invalid(format!(
            "{op}: {param} has format {}, a private (fractal/blocked) layout the mock does not implement; use ACL_FORMAT_ND",
            t.format
        )));
    }
    Ok(TensorArg {
        ptr: t.data as *mut u8,
        dtype,
        shape: t.view.clone(),
        strides: t.strides.clone(),
        offset: t.offset,
    })
}

/// Checks that the view of `arg` lies inside one live device allocation of
/// `device` (empty views need no memory).
pub fn check_placement(op: &str, param: &str, arg: &TensorArg, device: u32) -> MockResult<()> {
    let Some((lo, hi)) = arg.extent() else {
        return Ok(());
    };
    let ptr = arg.ptr as usize;
    if ptr == 0 {
        return Err(null_err(format!(
            "{op}: {param} has {} elements but a NULL data address",
            arg.numel()
        )));
    }
    if ptr % DATA_ALIGN != 0 {
        return Err(invalid(format!(
            "{op}: {param} data address {ptr:#x} is not {DATA_ALIGN}-byte aligned"
        )));
    }
    let es = arg.dtype.size() as i128;
    let span = ((i128::from(hi) - i128::from(lo)) * es).clamp(0, usize::MAX as i128) as usize;
    memory::check_not_freed(ptr, span, param)
        .map_err(|e| MockError::new(ACLNN_ERR_PARAM_INVALID, e.message))?;
    let loc = memory::classify(ptr);
    let (base, size) = match loc {
        Location::Device {
            device: d,
            base,
            size,
        } if d == device => (base, size),
        other => {
            return Err(violation(
                ReportClass::WrongMemoryKind,
                ACLNN_ERR_PARAM_INVALID,
                &format!(
                    "{}: {op} {param} data address {ptr:#x} is {}, not device memory of device {device}",
                    current_call_text(),
                    other.describe()
                ),
            ));
        }
    };
    let start = ptr as i128 + i128::from(lo) * es;
    let end = ptr as i128 + i128::from(hi) * es;
    let (b, e) = (base as i128, base as i128 + size as i128);
    if start < b || end > e {
        return Err(violation(
            ReportClass::OutOfBounds,
            ACLNN_ERR_PARAM_INVALID,
            &format!(
                "{}: {op} {param} (shape {:?}, strides {:?}, offset {}, {}) at {ptr:#x} spans bytes [{:#x}, {:#x}) ({} bytes), outside its allocation {base:#x} of {size} bytes",
                current_call_text(),
                arg.shape,
                arg.strides,
                arg.offset,
                arg.dtype.name(),
                start,
                end,
                end - start
            ),
        ));
    }
    Ok(())
}

impl Binder<'_> {
    fn next_ir(&mut self, role: Role) -> usize {
        let counter = match role {
            Role::Input => &mut self.inputs,
            Role::Output => &mut self.outputs,
        };
        *counter += 1;
        *counter - 1
    }

    fn bind_tensor(
        &mut self,
        role: Role,
        ir: usize,
        rel: Option<usize>,
        param: &'static str,
        desc: usize,
        list: usize,
    ) -> MockResult<usize> {
        let what = match rel {
            Some(i) => format!("{param}[{i}]"),
            None => param.to_string(),
        };
        let desc_serial = self.reg.entry(desc, Kind::Tensor, &what)?.serial;
        let t = self.reg.tensor(desc, &what)?;
        let arg = to_arg(self.op, &what, t)?;
        check_placement(self.op, &what, &arg, self.device)?;
        self.slots.push(Slot {
            role,
            ir,
            rel,
            param,
            desc,
            desc_serial,
            list,
            arg,
            written: role == Role::Output,
        });
        Ok(self.slots.len() - 1)
    }

    fn tensor(
        &mut self,
        role: Role,
        param: &'static str,
        p: *const aclTensor,
        optional: bool,
    ) -> MockResult<Option<TRef>> {
        let ir = self.next_ir(role);
        if p.is_null() {
            return if optional {
                Ok(None)
            } else {
                Err(null_err(format!("{}: {param} is NULL", self.op)))
            };
        }
        self.bind_tensor(role, ir, None, param, p as usize, 0)
            .map(|i| Some(TRef(i)))
    }

    fn list(
        &mut self,
        role: Role,
        param: &'static str,
        p: *const aclTensorList,
        optional: bool,
    ) -> MockResult<Option<LRef>> {
        let ir = self.next_ir(role);
        if p.is_null() {
            return if optional {
                Ok(None)
            } else {
                Err(null_err(format!("{}: {param} is NULL", self.op)))
            };
        }
        let members = match &*self.reg.entry(p as usize, Kind::TensorList, param)?.object {
            Object::TensorList(m) => m.clone(),
            _ => unreachable!("entry() checked the kind"),
        };
        let mut refs = Vec::with_capacity(members.len());
        for (i, m) in members.into_iter().enumerate() {
            refs.push(self.bind_tensor(role, ir, Some(i), param, m, p as usize)?);
        }
        Ok(Some(LRef(refs)))
    }

    /// A required input tensor.
    pub fn input(&mut self, param: &'static str, p: *const aclTensor) -> MockResult<TRef> {
        Ok(self
            .tensor(Role::Input, param, p, false)?
            .expect("required"))
    }

    /// A required input tensor the kernel also writes (an in-place
    /// `xxxRef` parameter): an input slot, read and written.
    pub fn inout(&mut self, param: &'static str, p: *const aclTensor) -> MockResult<TRef> {
        let r = self
            .tensor(Role::Input, param, p, false)?
            .expect("required");
        self.slots[r.0].written = true;
        Ok(r)
    }

    /// An optional input tensor (NULL: absent).
    pub fn opt_input(
        &mut self,
        param: &'static str,
        p: *const aclTensor,
    ) -> MockResult<Option<TRef>> {
        self.tensor(Role::Input, param, p, true)
    }

    /// A required output tensor.
    pub fn output(&mut self, param: &'static str, p: *const aclTensor) -> MockResult<TRef> {
        Ok(self
            .tensor(Role::Output, param, p, false)?
            .expect("required"))
    }

    /// An optional output tensor (NULL: absent).
    pub fn opt_output(
        &mut self,
        param: &'static str,
        p: *const aclTensor,
    ) -> MockResult<Option<TRef>> {
        self.tensor(Role::Output, param, p, true)
    }

    /// A required input tensor list.
    pub fn input_list(&mut self, param: &'static str, p: *const aclTensorList) -> MockResult<LRef> {
        Ok(self.list(Role::Input, param, p, false)?.expect("required"))
    }

    /// An optional input tensor list.
    pub fn opt_input_list(
        &mut self,
        param: &'static str,
        p: *const aclTensorList,
    ) -> MockResult<Option<LRef>> {
        self.list(Role::Input, param, p, true)
    }

    /// A required output tensor list.
    pub fn output_list(
        &mut self,
        param: &'static str,
        p: *const aclTensorList,
    ) -> MockResult<LRef> {
        Ok(self.list(Role::Output, param, p, false)?.expect("required"))
    }

    /// An optional output tensor list.
    pub fn opt_output_list(
        &mut self,
        param: &'static str,
        p: *const aclTensorList,
    ) -> MockResult<Option<LRef>> {
        self.list(Role::Output, param, p, true)
    }

    /// A required scalar (its value is copied).
    pub fn scalar(&mut self, param: &'static str, p: *const aclScalar) -> MockResult<Scalar> {
        if p.is_null() {
            return Err(null_err(format!("{}: {param} is NULL", self.op)));
        }
        match &*self.reg.entry(p as usize, Kind::Scalar, param)?.object {
            Object::Scalar(s) => Ok(*s),
            _ => unreachable!("entry() checked the kind"),
        }
    }

    /// An optional integer array (its values are copied).
    pub fn opt_int_array(
        &mut self,
        param: &'static str,
        p: *const aclIntArray,
    ) -> MockResult<Option<Vec<i64>>> {
        if p.is_null() {
            return Ok(None);
        }
        match &*self.reg.entry(p as usize, Kind::IntArray, param)?.object {
            Object::IntArray(v) => Ok(Some(v.clone())),
            _ => unreachable!("entry() checked the kind"),
        }
    }
}

/// The device of the calling thread's current context.
fn current_device() -> MockResult<u32> {
    runtime::with_runtime(|rt| rt.current_context().map(|c| c.device)).map_err(runtime_err)
}

/// Phase one of operator `op`, exported as `api`: binds the parameters
/// with `bind`, checks them, and hands out a new executor.
pub fn get_workspace_size(
    api: &'static str,
    op: &'static str,
    workspace_size: *mut u64,
    executor: *mut *mut aclOpExecutor,
    bind: impl FnOnce(&mut Binder<'_>) -> MockResult<Box<dyn Launch>>,
) -> aclnnStatus {
    aclnn_call(api, || {
        if workspace_size.is_null() {
            return Err(null_err("workspaceSize is NULL"));
        }
        if executor.is_null() {
            return Err(null_err("executor is NULL"));
        }
        let device = current_device()?;
        let addr = with_registry(|reg| {
            let mut b = Binder {
                op,
                device,
                slots: Vec::new(),
                inputs: 0,
                outputs: 0,
                reg,
            };
            let launch = bind(&mut b)?;
            let Binder {
                slots,
                inputs,
                outputs,
                reg,
                ..
            } = b;
            let tensors: Vec<TensorArg> = slots.iter().map(|s| s.arg.clone()).collect();
            launch.check(&tensors).map_err(kernel_err)?;
            let ex = Executor {
                op,
                workspace: 0,
                repeatable: false,
                device,
                slots,
                inputs,
                outputs,
                launch: Arc::from(launch),
            };
            Ok::<_, MockError>(reg.insert(Object::Executor(ex), api))
        })?;
        // SAFETY: both output pointers were checked non-NULL and are
        // writable by the phase-one contract.
        unsafe {
            workspace_size.write(0);
            executor.write(addr as *mut aclOpExecutor);
        }
        Ok(())
    })
}

/// The byte ranges the tensors of `slots` span (the hull of each view):
/// inputs read, outputs and in-place tensors written.
fn tensor_accesses(slots: &[Slot]) -> Vec<Access> {
    let mut out = Vec::with_capacity(slots.len() * 2);
    for slot in slots {
        let arg = &slot.arg;
        let Some((lo, hi)) = arg.extent() else {
            continue;
        };
        let es = arg.dtype.size() as i128;
        let start = arg.ptr as i128 + i128::from(lo) * es;
        let len = (i128::from(hi) - i128::from(lo)) * es;
        let (Ok(start), Ok(len)) = (usize::try_from(start), usize::try_from(len)) else {
            continue;
        };
        out.push(Access::read(start, len));
        if slot.written {
            out.push(Access::write(start, len));
        }
    }
    out
}

/// The executor at `addr`.
fn executor_mut(reg: &mut Registry, addr: usize) -> MockResult<&mut Executor> {
    match &mut *reg.entry(addr, Kind::Executor, "executor")?.object {
        Object::Executor(ex) => Ok(ex),
        _ => unreachable!("entry() checked the kind"),
    }
}

/// Phase two of operator `op`, exported as `api`: queues the executor's
/// kernel on `stream` (NULL: the current context's default stream).
pub fn launch(
    api: &'static str,
    op: &'static str,
    workspace: *mut c_void,
    workspace_size: u64,
    executor: *mut aclOpExecutor,
    stream: aclrtStream,
) -> aclnnStatus {
    let status = queue(api, op, workspace, workspace_size, executor, stream);
    if status != 0 {
        // A failed phase two still ends a single-use executor of this
        // operator (see the module docs); anything else stays as it was.
        let addr = executor as usize;
        with_registry(|reg| {
            let single_use = matches!(
                reg.objects.get(&addr).map(|e| &*e.object),
                Some(Object::Executor(ex)) if ex.op == op && !ex.repeatable
            );
            if single_use {
                reg.objects.remove(&addr);
                reg.retire(addr, op, "consumed by its failed phase-two call");
            }
        });
    }
    status
}

/// The body of [`launch`]: checks and queues.
fn queue(
    api: &'static str,
    op: &'static str,
    workspace: *mut c_void,
    workspace_size: u64,
    executor: *mut aclOpExecutor,
    stream: aclrtStream,
) -> aclnnStatus {
    aclnn_call(api, || {
        let addr = executor as usize;
        if addr == 0 {
            return Err(null_err("executor is NULL"));
        }
        let s = runtime::with_runtime(|rt| rt.stream(stream)).map_err(runtime_err)?;
        with_registry(|reg| {
            let ex = executor_mut(reg, addr)?;
            if ex.op != op {
                return Err(invalid(format!(
                    "executor {addr:#x} was made by {}GetWorkspaceSize, not by {op}GetWorkspaceSize",
                    ex.op
                )));
            }
            if workspace_size < ex.workspace {
                return Err(invalid(format!(
                    "workspaceSize {workspace_size} is smaller than the {} bytes phase one asked for",
                    ex.workspace
                )));
            }
            // Nothing is read or written through a 0-byte workspace, so its
            // pointer (NULL, host, stale) is not judged.
            if workspace_size > 0 {
                if workspace.is_null() {
                    return Err(null_err(format!(
                        "workspace is NULL but workspaceSize is {workspace_size}"
                    )));
                }
                let w = workspace as usize;
                let loc = memory::classify(w);
                if !matches!(loc, Location::Device { device, .. } if device == ex.device) {
                    return Err(invalid(format!(
                        "workspace {w:#x} is {}, not device memory of device {}",
                        loc.describe(),
                        ex.device
                    )));
                }
                memory::check_range(&loc, w, workspace_size as usize, "workspace")
                    .map_err(|e| invalid(e.message))?;
            }
            if s.device != ex.device {
                return Err(invalid(format!(
                    "stream {:p} belongs to device {}, but the executor's tensors live on device {}",
                    stream, s.device, ex.device
                )));
            }
            for slot in &ex.slots {
                let what = match slot.rel {
                    Some(i) => format!("{}[{i}]", slot.param),
                    None => slot.param.to_string(),
                };
                check_placement(op, &what, &slot.arg, ex.device)?;
            }
            let tensors: Vec<TensorArg> = ex.slots.iter().map(|s| s.arg.clone()).collect();
            let kernel = ex.launch.clone();
            let repeatable = ex.repeatable;
            let mut accesses = tensor_accesses(&ex.slots);
            if !workspace.is_null() && workspace_size > 0 {
                accesses.push(Access::write(workspace as usize, workspace_size as usize));
            }
            hooks::queue(s.handle.id(), &accesses, ACLNN_ERR_PARAM_INVALID, || {
                s.push(
                    op,
                    TaskKind::Device,
                    Box::new(move || {
                        // SAFETY: each view lay inside a live device allocation when
                        // queued, and aclrtFree releases blocks only after prior work;
                        // stream ordering is the caller's contract (race-checked).
                        unsafe { kernel.run(&tensors) }
                            .map_err(|e| MockError::new(e.code, format!("{op}: {}", e.message)))
                    }),
                )
                .map_err(runtime_err)
            })?;
            if !repeatable {
                reg.objects.remove(&addr);
                reg.retire(addr, op, "consumed by its phase-two call");
            }
            Ok(())
        })
    })
}

/// Marks an executor reusable: phase two no longer consumes it, and
/// `aclDestroyAclOpExecutor` releases it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclSetAclOpExecutorRepeatable(
    executor: *mut aclOpExecutor,
) -> aclnnStatus {
    aclnn_call("aclSetAclOpExecutorRepeatable", || {
        with_registry(|reg| {
            executor_mut(reg, executor as usize)?.repeatable = true;
            Ok(())
        })
    })
}

/// Destroys an executor (work already queued from it is unaffected).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclDestroyAclOpExecutor(executor: *mut aclOpExecutor) -> aclnnStatus {
    aclnn_call("aclDestroyAclOpExecutor", || {
        with_registry(|reg| reg.destroy(executor as usize, Kind::Executor, "executor"))
    })
}

/// Points slot (`role`, `ir`, `rel`) of an executor at `addr`; `owner` is
/// the tensor (single) or tensor list (member) the caller names.
fn set_addr(
    executor: *mut aclOpExecutor,
    role: Role,
    ir: usize,
    rel: Option<usize>,
    owner: usize,
    addr: *mut c_void,
) -> MockResult<()> {
    if owner == 0 {
        return Err(MockError::new(
            ACLNN_ERR_INNER_NULLPTR,
            if rel.is_some() {
                "tensors is NULL"
            } else {
                "tensor is NULL"
            },
        ));
    }
    with_registry(|reg| {
        let ex = executor_mut(reg, executor as usize)?;
        let count = match role {
            Role::Input => ex.inputs,
            Role::Output => ex.outputs,
        };
        if ir >= count {
            return Err(invalid(format!(
                "index {ir} is out of range: {} has {count} {}s",
                ex.op,
                role.name()
            )));
        }
        let op = ex.op;
        let device = ex.device;
        let same_param: Vec<usize> = (0..ex.slots.len())
            .filter(|&i| ex.slots[i].role == role && ex.slots[i].ir == ir)
            .collect();
        let Some(&first) = same_param.first() else {
            return Err(invalid(format!(
                "{} {ir} of {op} is an optional parameter that was not given",
                role.name()
            )));
        };
        let is_list = ex.slots[first].rel.is_some();
        let param = ex.slots[first].param;
        let idx = match (rel, is_list) {
            (None, true) => {
                return Err(invalid(format!(
                    "{} {ir} of {op} ({param}) is a tensor list; use aclSetDynamic{}TensorAddr",
                    role.name(),
                    if role == Role::Input {
                        "Input"
                    } else {
                        "Output"
                    }
                )));
            }
            (Some(_), false) => {
                return Err(invalid(format!(
                    "{} {ir} of {op} ({param}) is a single tensor, not a tensor list",
                    role.name()
                )));
            }
            (None, false) => first,
            (Some(r), true) => *same_param.get(r).ok_or_else(|| {
                invalid(format!(
                    "relativeIndex {r} is out of range: {param} has {} tensors",
                    same_param.len()
                ))
            })?,
        };
        let slot = &ex.slots[idx];
        let bound = if rel.is_some() { slot.list } else { slot.desc };
        if bound != owner {
            return Err(invalid(format!(
                "{owner:#x} is not the {} {param} was bound to ({bound:#x})",
                if rel.is_some() {
                    "aclTensorList"
                } else {
                    "aclTensor"
                }
            )));
        }
        let what = match rel {
            Some(r) => format!("{param}[{r}]"),
            None => param.to_string(),
        };
        let mut arg = slot.arg.clone();
        arg.ptr = addr as *mut u8;
        check_placement(op, &what, &arg, device)?;
        let (desc, serial) = (slot.desc, slot.desc_serial);
        ex.slots[idx].arg = arg;
        // Keep the descriptor in step when it is still alive.
        if let Some(e) = reg.objects.get_mut(&desc)
            && e.serial == serial
            && let Object::Tensor(t) = &mut *e.object
        {
            t.data = addr as usize;
        }
        Ok(())
    })
}

/// Sets the data address of the `index`-th input (IR order) of an executor.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclSetInputTensorAddr(
    executor: *mut aclOpExecutor,
    index: usize,
    tensor: *mut aclTensor,
    addr: *mut c_void,
) -> aclnnStatus {
    aclnn_call("aclSetInputTensorAddr", || {
        set_addr(executor, Role::Input, index, None, tensor as usize, addr)
    })
}

/// Sets the data address of the `index`-th output (IR order) of an executor.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclSetOutputTensorAddr(
    executor: *mut aclOpExecutor,
    index: usize,
    tensor: *mut aclTensor,
    addr: *mut c_void,
) -> aclnnStatus {
    aclnn_call("aclSetOutputTensorAddr", || {
        set_addr(executor, Role::Output, index, None, tensor as usize, addr)
    })
}

/// Sets the data address of tensor `index`, counting inputs then outputs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclSetTensorAddr(
    executor: *mut aclOpExecutor,
    index: usize,
    tensor: *mut aclTensor,
    addr: *mut c_void,
) -> aclnnStatus {
    aclnn_call("aclSetTensorAddr", || {
        let inputs = with_registry(|reg| executor_mut(reg, executor as usize).map(|e| e.inputs))?;
        let (role, i) = if index < inputs {
            (Role::Input, index)
        } else {
            (Role::Output, index - inputs)
        };
        set_addr(executor, role, i, None, tensor as usize, addr)
    })
}

/// Sets the data address of member `relativeIndex` of the input list at IR
/// index `irIndex`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclSetDynamicInputTensorAddr(
    executor: *mut aclOpExecutor,
    irIndex: usize,
    relativeIndex: usize,
    tensors: *mut aclTensorList,
    addr: *mut c_void,
) -> aclnnStatus {
    aclnn_call("aclSetDynamicInputTensorAddr", || {
        set_addr(
            executor,
            Role::Input,
            irIndex,
            Some(relativeIndex),
            tensors as usize,
            addr,
        )
    })
}

/// Sets the data address of member `relativeIndex` of the output list at
/// IR index `irIndex`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclSetDynamicOutputTensorAddr(
    executor: *mut aclOpExecutor,
    irIndex: usize,
    relativeIndex: usize,
    tensors: *mut aclTensorList,
    addr: *mut c_void,
) -> aclnnStatus {
    aclnn_call("aclSetDynamicOutputTensorAddr", || {
        set_addr(
            executor,
            Role::Output,
            irIndex,
            Some(relativeIndex),
            tensors as usize,
            addr,
        )
    })
}
