//! The two-phase aclnn call, one generic path for every operator:
//! [`OpCall`] for a single launch and [`PreparedOp`] for a repeatable
//! executor.
//!
//! A launch, in order:
//! 1. [`OpCall::new`] binds the stream's context to the thread.
//! 2. Each tensor argument is declared on the stream as it is described
//!    ([`OpCall::input`] → the buffer's `track_read`, [`OpCall::output`] →
//!    `track_write`): the access tracker makes the stream wait for other
//!    streams that wrote (or read) the buffer. Scalars and int arrays are
//!    described and kept alongside.
//! 3. [`OpCall::run`] calls `aclnnXxxGetWorkspaceSize`; a failing status
//!    becomes [`Error::Aclnn`] naming that function, with the code and the
//!    `aclGetRecentErrMsg` text.
//! 4. The workspace is taken from the context's pool for the stream.
//! 5. `aclnnXxx(workspace, size, executor, stream)` queues the operator.
//! 6. The descriptors are destroyed (they need only outlive phase 2's
//!    return; a failed destroy is recorded in the stream's context, since
//!    the operator itself was queued) and the workspace goes back to the
//!    pool in stream order: the
//!    next user on the same stream runs after the operator, any other
//!    stream is made to wait. The tensors' memory stays valid because a
//!    buffer's release waits for (or, pooled, is ordered after) the streams
//!    it is tracked on.
//!
//! Steps 3 to 5 are [`crate::result::opapi::launch`]: operators name their
//! functions by typed getters ([`crate::result::opapi::Operator`]), resolve
//! them, and hand the resolved functions to [`OpCall::run_op`] (or
//! [`OpCall::prepare_op`]); [`OpCall::run`] and [`OpCall::prepare`] take
//! functions the caller resolved itself.
//!
//! Both phase functions are resolved before phase 1 runs, so a missing
//! phase-2 symbol never leaves an executor behind. aclnn has no call that
//! discards a single-use executor whose phase 2 is never called, but an
//! executor may be made repeatable at any time before phase 2, and a
//! repeatable one is destroyed with `aclDestroyAclOpExecutor`: when taking
//! the workspace fails after phase 1, the executor is released that way
//! (and leaked only when one of those two calls fails too).
//!
//! [`PreparedOp`] keeps a repeatable executor
//! (`aclSetAclOpExecutorRepeatable` after phase 1), its descriptors and its
//! workspace. Each [`PreparedOp::run`] takes the tensors again, checks that
//! their types and layouts are those prepared, declares them on the stream,
//! points the executor at their addresses (`aclSetInputTensorAddr` /
//! `aclSetOutputTensorAddr`, only when an address changed) and calls
//! phase 2. Dropping it waits for the streams it ran on (or, when that
//! fails, for the whole device), then calls `aclDestroyAclOpExecutor` and
//! destroys its descriptors; failures are recorded in the context (and the
//! executor leaked when no wait worked). A failing
//! `aclSetAclOpExecutorRepeatable` right after phase 1 leaves a single-use
//! executor that only its phase 2 would release: it is leaked.

use std::ffi::c_void;
use std::sync::{Arc, Weak};

use ascend_sys::{aclIntArray, aclOpExecutor, aclScalar, aclTensor, aclTensorList, aclnnStatus};

use super::descriptor::{AclIntArray, AclScalar, AclTensor, AclTensorList};
use crate::error::{Error, Result};
use crate::memory::{DType, DeviceBuffer};
use crate::result::nnopbase;
use crate::result::opapi::{self, Phases};
use crate::stream::Stream;
use crate::tensor::{Format, Layout, TensorArg, TensorArgMut};

pub use crate::result::opapi::Phase2;

/// What a prepared operator remembers of one tensor argument.
#[derive(Debug)]
struct Slot {
    /// Position among the operator's inputs (or outputs).
    index: usize,
    desc: *mut aclTensor,
    dtype: DType,
    layout: Layout,
    format: Format,
    addr: *mut c_void,
}

impl Slot {
    fn check(&self, api: &'static str, what: &str, t: &dyn TensorArg) -> Result<()> {
        if t.dtype() != self.dtype || t.layout() != &self.layout || t.format() != self.format {
            return Err(Error::invalid(
                api,
                format!(
                    "{what} {} is {} {:?} (strides {:?}, offset {}) but was prepared as {} {:?} (strides {:?}, offset {})",
                    self.index,
                    t.dtype(),
                    t.layout().shape(),
                    t.layout().strides(),
                    t.layout().offset(),
                    self.dtype,
                    self.layout.shape(),
                    self.layout.strides(),
                    self.layout.offset()
                ),
            ));
        }
        Ok(())
    }
}

/// One operator launch being assembled: the stream, the descriptors made so
/// far, and the tensors declared on the stream.
#[derive(Debug)]
pub struct OpCall<'s> {
    stream: &'s Arc<Stream>,
    parts: Parts,
}

/// The descriptors of one call and what was recorded of its tensors.
#[derive(Debug, Default)]
struct Parts {
    tensors: Vec<AclTensor>,
    lists: Vec<AclTensorList>,
    scalars: Vec<AclScalar>,
    arrays: Vec<AclIntArray>,
    inputs: Vec<Slot>,
    outputs: Vec<Slot>,
}

impl Parts {
    /// Destroys every descriptor now, returning the first failure (all are
    /// attempted).
    fn destroy(self) -> Result<()> {
        let mut first = Ok(());
        let mut keep = |r: Result<()>| {
            if first.is_ok() {
                first = r;
            }
        };
        self.tensors.into_iter().for_each(|t| keep(t.destroy()));
        self.lists.into_iter().for_each(|l| keep(l.destroy()));
        self.scalars.into_iter().for_each(|s| keep(s.destroy()));
        self.arrays.into_iter().for_each(|a| keep(a.destroy()));
        first
    }
}

fn same_device(stream: &Stream, t: &dyn TensorArg) -> Result<()> {
    if stream.context().ordinal() == t.ordinal() {
        Ok(())
    } else {
        Err(Error::invalid(
            "aclnn operator",
            format!(
                "the stream runs on {} but a tensor is on npu:{}",
                stream.context().device(),
                t.ordinal()
            ),
        ))
    }
}

impl<'s> OpCall<'s> {
    /// Starts a launch on `stream`.
    pub fn new(stream: &'s Arc<Stream>) -> Result<OpCall<'s>> {
        stream.context().bind_to_thread()?;
        Ok(OpCall {
            stream,
            parts: Parts::default(),
        })
    }

    fn describe_read(&mut self, t: &dyn TensorArg) -> Result<AclTensor> {
        same_device(self.stream, t)?;
        let ptr = t.track_read(self.stream)?;
        // SAFETY: `ptr` is the base of the tensor's buffer of
        // `buffer_len()` elements; the caller borrows the tensor for this
        // call and the buffer's release is ordered after the stream's work.
        let d = unsafe {
            AclTensor::new(
                t.layout(),
                t.dtype(),
                t.format(),
                ptr.cast_mut(),
                t.buffer_len(),
            )
        }?;
        self.parts.inputs.push(Slot {
            index: self.parts.inputs.len(),
            desc: d.as_ptr(),
            dtype: t.dtype(),
            layout: t.layout().clone(),
            format: t.format(),
            addr: ptr.cast_mut(),
        });
        Ok(d)
    }

    fn describe_write(&mut self, t: &mut dyn TensorArgMut) -> Result<AclTensor> {
        same_device(self.stream, t)?;
        let ptr = t.track_write(self.stream)?;
        // SAFETY: as in `describe_read`.
        let d = unsafe { AclTensor::new(t.layout(), t.dtype(), t.format(), ptr, t.buffer_len()) }?;
        self.parts.outputs.push(Slot {
            index: self.parts.outputs.len(),
            desc: d.as_ptr(),
            dtype: t.dtype(),
            layout: t.layout().clone(),
            format: t.format(),
            addr: ptr,
        });
        Ok(d)
    }

    /// Declares `t` read on the stream and describes it.
    pub fn input(&mut self, t: &dyn TensorArg) -> Result<*const aclTensor> {
        let d = self.describe_read(t)?;
        let p = d.as_ptr();
        self.parts.tensors.push(d);
        Ok(p)
    }

    /// [`Self::input`] for an optional argument (null when absent).
    pub fn input_opt(&mut self, t: Option<&dyn TensorArg>) -> Result<*const aclTensor> {
        match t {
            Some(t) => self.input(t),
            None => Ok(std::ptr::null()),
        }
    }

    /// Declares `t` written on the stream and describes it.
    pub fn output(&mut self, t: &mut dyn TensorArgMut) -> Result<*mut aclTensor> {
        let d = self.describe_write(t)?;
        let p = d.as_ptr();
        self.parts.tensors.push(d);
        Ok(p)
    }

    /// A list of inputs (one `aclTensorList`).
    pub fn input_list(&mut self, ts: &[&dyn TensorArg]) -> Result<*const aclTensorList> {
        let mut descs = Vec::with_capacity(ts.len());
        for t in ts {
            descs.push(self.describe_read(*t)?);
        }
        let l = AclTensorList::new(descs)?;
        let p = l.as_ptr();
        self.parts.lists.push(l);
        Ok(p)
    }

    /// A list of outputs (one `aclTensorList`).
    pub fn output_list(&mut self, ts: &mut [&mut dyn TensorArgMut]) -> Result<*mut aclTensorList> {
        let mut descs = Vec::with_capacity(ts.len());
        for t in ts.iter_mut() {
            descs.push(self.describe_write(&mut **t)?);
        }
        let l = AclTensorList::new(descs)?;
        let p = l.as_ptr();
        self.parts.lists.push(l);
        Ok(p)
    }

    /// A scalar of `dtype` holding `value`.
    pub fn scalar(&mut self, value: f64, dtype: DType) -> Result<*const aclScalar> {
        let s = AclScalar::new(value, dtype)?;
        let p = s.as_ptr();
        self.parts.scalars.push(s);
        Ok(p)
    }

    /// An int array holding `values`.
    pub fn int_array(&mut self, values: &[i64]) -> Result<*const aclIntArray> {
        let a = AclIntArray::new(values)?;
        let p = a.as_ptr();
        self.parts.arrays.push(a);
        Ok(p)
    }

    fn workspace(&self, size: u64) -> Result<DeviceBuffer<u8>> {
        let len = usize::try_from(size)
            .map_err(|_| Error::invalid("aclnn workspace", format!("{size} bytes do not fit")))?;
        // SAFETY: the workspace is scratch memory the operator writes before
        // it reads; the host never reads it.
        unsafe { DeviceBuffer::alloc_pooled(self.stream, len) }
    }

    /// Runs both phases of `op`, resolved beforehand (by
    /// [`Operator::resolve`](crate::result::opapi::Operator::resolve)):
    /// `phase1` calls the resolved phase one with the descriptors and the
    /// two out-pointers it is given. Through
    /// [`result::opapi::launch`](crate::result::opapi::launch), with the
    /// workspace from the context's pool.
    ///
    /// Only a call of the resolved phase one may write an executor through
    /// the out-pointer (writing one takes an `unsafe` call, whose `SAFETY`
    /// argument is that it is this operator's phase one over this call's
    /// descriptors); phase two is queued with whatever executor phase one
    /// produced.
    pub fn run_op<P1: Copy>(
        self,
        op: &Phases<P1>,
        phase1: impl FnOnce(P1, *mut u64, *mut *mut aclOpExecutor) -> aclnnStatus,
    ) -> Result<()> {
        let stream = self.stream;
        let workspace = |size| {
            let mut ws = self.workspace(size)?;
            // The workspace goes back to the pool in this stream's order.
            let ptr = ws.track_write(stream)?;
            Ok((ws, ptr))
        };
        // SAFETY: an executor can come out of `phase1` only from its unsafe
        // call of the operator's phase one (see the docs above), over
        // descriptors that `self.parts` keeps until after this returns; the
        // workspace is a pooled buffer of `size` bytes whose uses are
        // ordered on `stream` by its tracker; `OpCall::new` bound the
        // stream's context to this thread, and the tensors were declared on
        // the stream, so their memory outlives the queued operator.
        let launched = unsafe { opapi::launch(op, phase1, workspace, stream.handle()) }?;
        // Phase 2 has returned: the descriptors can go. The operator is
        // queued whatever their destruction gives, so a failure there is
        // the context's to report, not this launch's.
        let ctx = stream.context();
        ctx.record_result(self.parts.destroy());
        drop(launched.workspace);
        launched.status
    }

    /// Runs both phases: `phase1` is the `aclnnXxxGetWorkspaceSize` call
    /// (named `phase1_name` in errors), `phase2` the `aclnnXxx` function.
    /// [`Self::run_op`] for functions resolved by the caller.
    pub fn run(
        self,
        phase1_name: &'static str,
        phase1: impl FnOnce(*mut u64, *mut *mut aclOpExecutor) -> aclnnStatus,
        phase2_name: &'static str,
        phase2: Phase2,
    ) -> Result<()> {
        let op = Phases {
            phase1_name,
            phase1: (),
            phase2_name,
            phase2,
        };
        self.run_op(&op, move |(), size, exec| phase1(size, exec))
    }

    /// Runs phase 1 of `op` (resolved beforehand) and makes its executor
    /// repeatable: the result runs phase 2 as often as asked. Through
    /// [`result::opapi::prepare`](crate::result::opapi::prepare).
    pub fn prepare_op<P1: Copy>(
        self,
        op: &Phases<P1>,
        phase1: impl FnOnce(P1, *mut u64, *mut *mut aclOpExecutor) -> aclnnStatus,
    ) -> Result<PreparedOp> {
        // SAFETY: as in `run_op`, an executor comes out of `phase1` only
        // from the operator's phase one, over descriptors that the prepared
        // operator keeps as long as its executor (`parts`).
        let prepared = unsafe { opapi::prepare(op, phase1, |size| self.workspace(size)) }?;
        Ok(PreparedOp {
            name: op.phase2_name,
            exec: prepared.executor,
            phase2: op.phase2,
            size: prepared.workspace_size,
            workspace: prepared.workspace,
            ran_on: Vec::new(),
            parts: self.parts,
        })
    }

    /// Runs phase 1 and makes its executor repeatable: the result runs
    /// phase 2 as often as asked. [`Self::prepare_op`] for functions
    /// resolved by the caller.
    pub fn prepare(
        self,
        phase1_name: &'static str,
        phase1: impl FnOnce(*mut u64, *mut *mut aclOpExecutor) -> aclnnStatus,
        phase2_name: &'static str,
        phase2: Phase2,
    ) -> Result<PreparedOp> {
        let op = Phases {
            phase1_name,
            phase1: (),
            phase2_name,
            phase2,
        };
        self.prepare_op(&op, move |(), size, exec| phase1(size, exec))
    }
}

/// A repeatable executor with its descriptors and workspace: phase 2 runs
/// as often as [`PreparedOp::run`] is called, on tensors of the prepared
/// types and layouts.
#[derive(Debug)]
pub struct PreparedOp {
    name: &'static str,
    exec: *mut aclOpExecutor,
    phase2: Phase2,
    size: u64,
    workspace: DeviceBuffer<u8>,
    /// Streams phase 2 was queued on (waited for before destruction).
    ran_on: Vec<(u64, Weak<Stream>)>,
    parts: Parts,
}

// SAFETY: the executor and descriptors are plain handles the runtime lets
// any thread use; `run` takes `&mut self`, so calls are serialised.
unsafe impl Send for PreparedOp {}

impl PreparedOp {
    /// Number of tensor inputs and outputs the operator was prepared with.
    pub fn arity(&self) -> (usize, usize) {
        (self.parts.inputs.len(), self.parts.outputs.len())
    }

    /// Runs the operator on `stream` with these tensors, which must have
    /// the types, layouts and formats it was prepared with (inputs and
    /// outputs in the operator's order).
    pub fn run(
        &mut self,
        stream: &Arc<Stream>,
        inputs: &[&dyn TensorArg],
        outputs: &mut [&mut dyn TensorArgMut],
    ) -> Result<()> {
        const API: &str = "PreparedOp::run";
        stream.context().bind_to_thread()?;
        if inputs.len() != self.parts.inputs.len() || outputs.len() != self.parts.outputs.len() {
            return Err(Error::invalid(
                API,
                format!(
                    "{} takes {} inputs and {} outputs, got {} and {}",
                    self.name,
                    self.parts.inputs.len(),
                    self.parts.outputs.len(),
                    inputs.len(),
                    outputs.len()
                ),
            ));
        }
        for (slot, t) in self.parts.inputs.iter().zip(inputs) {
            slot.check(API, "input", *t)?;
            same_device(stream, *t)?;
        }
        for (slot, t) in self.parts.outputs.iter().zip(outputs.iter()) {
            slot.check(API, "output", &**t)?;
            same_device(stream, &**t)?;
        }
        for (slot, t) in self.parts.inputs.iter_mut().zip(inputs) {
            let addr = t.track_read(stream)?.cast_mut();
            if addr != slot.addr {
                // The prepared layout is the view's, checked to fit its buffer.
                // SAFETY: the executor is repeatable and live, the
                // descriptor is its input `slot.index` (both owned by self);
                // `addr` is the base of a buffer that layout fits in, kept
                // valid for the stream's work by its tracker.
                unsafe { nnopbase::set_input_tensor_addr(self.exec, slot.index, slot.desc, addr) }?;
                slot.addr = addr;
            }
        }
        for (slot, t) in self.parts.outputs.iter_mut().zip(outputs.iter_mut()) {
            let addr = t.track_write(stream)?;
            if addr != slot.addr {
                // SAFETY: as for the inputs, for output `slot.index`.
                unsafe {
                    nnopbase::set_output_tensor_addr(self.exec, slot.index, slot.desc, addr)
                }?;
                slot.addr = addr;
            }
        }
        let ws = self.workspace.track_write(stream)?;
        if !self.ran_on.iter().any(|(id, _)| *id == stream.id()) {
            self.ran_on.push((stream.id(), Arc::downgrade(stream)));
        }
        // SAFETY: the executor is repeatable and live; its descriptors live
        // in self; the workspace holds `size` bytes and is ordered on this
        // stream by its tracker; the stream's context was bound above; the
        // tensors were declared just above.
        unsafe {
            opapi::phase2(
                self.name,
                self.phase2,
                ws,
                self.size,
                self.exec,
                stream.handle(),
            )
        }
    }
}

impl Drop for PreparedOp {
    fn drop(&mut self) {
        let ctx = self.workspace.context().clone();
        // Queued launches may still use the executor: wait for them. If
        // that fails, wait for the whole device instead; if that fails
        // too, leaking the executor is the only sound choice.
        for (_, s) in &self.ran_on {
            if let Some(s) = s.upgrade()
                && let Err(e) = s.sync_point()
            {
                ctx.record_err(e);
                if ctx.wait_all_work().is_err() {
                    return;
                }
                break;
            }
        }
        // SAFETY: the executor is repeatable, owned by self, no launch of
        // it is pending (synchronized above), destroyed only here.
        ctx.record_result(unsafe { nnopbase::destroy_executor(self.exec) });
        // The executor is gone, so its descriptors can go too; a failure
        // is recorded like any other in Drop.
        ctx.record_result(std::mem::take(&mut self.parts).destroy());
    }
}
