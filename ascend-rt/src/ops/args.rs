//! What every operator shares: [`AsView`] (what an operator reads), the
//! argument checks, pooled outputs, and [`Assembled`] (a call ready to
//! launch once or to prepare).
//!
//! Invariants: the checks only compare shapes, dtypes and devices and
//! return [`Error::InvalidArgument`] naming the operator; they run before
//! any FFI call. The FFI of a launch is the result layer's
//! ([`crate::result::opapi`]), reached through [`OpCall`].

use std::sync::Arc;

use ascend_sys::{aclOpExecutor, aclnnStatus};

use crate::aclnn::{OpCall, PreparedOp};
use crate::error::{Error, Result};
use crate::memory::{DType, DeviceRepr};
use crate::result::opapi::Phases;
use crate::stream::Stream;
use crate::tensor::{Tensor, TensorArg, TensorRef};

/// Something an operator can read: a [`Tensor`] or a [`TensorRef`].
pub trait AsView<T: DeviceRepr> {
    /// A read-only view of the whole thing.
    fn as_view(&self) -> TensorRef<'_, T>;
}

impl<T: DeviceRepr> AsView<T> for Tensor<T> {
    fn as_view(&self) -> TensorRef<'_, T> {
        self.view()
    }
}

impl<T: DeviceRepr> AsView<T> for TensorRef<'_, T> {
    fn as_view(&self) -> TensorRef<'_, T> {
        self.clone()
    }
}

/// An operator call assembled for either a single launch or a repeatable
/// executor: the call with its descriptors, the operator's resolved
/// functions, and the closure that calls its phase one with them.
pub(crate) struct Assembled<'s, P1, F> {
    pub call: OpCall<'s>,
    pub op: Phases<P1>,
    pub phase1: F,
}

impl<P1, F> Assembled<'_, P1, F>
where
    P1: Copy,
    F: FnOnce(P1, *mut u64, *mut *mut aclOpExecutor) -> aclnnStatus,
{
    /// Launches it once ([`OpCall::run_op`]).
    pub fn run(self) -> Result<()> {
        self.call.run_op(&self.op, self.phase1)
    }

    /// Makes it repeatable ([`OpCall::prepare_op`]).
    pub fn prepare(self) -> Result<PreparedOp> {
        self.call.prepare_op(&self.op, self.phase1)
    }
}

/// Fails unless `T` is a floating-point type the operator takes.
pub(crate) fn float_only(api: &'static str, what: &str, dtype: DType) -> Result<()> {
    match dtype {
        DType::F32 | DType::F16 | DType::BF16 => Ok(()),
        other => Err(Error::invalid(
            api,
            format!("{what} has dtype {other}; the operator takes f32, f16 or bf16"),
        )),
    }
}

/// Fails unless `shape` has a rank in `lo..=hi`.
pub(crate) fn rank_in(
    api: &'static str,
    what: &str,
    shape: &[usize],
    lo: usize,
    hi: usize,
) -> Result<()> {
    if shape.len() < lo || shape.len() > hi {
        return Err(Error::invalid(
            api,
            format!(
                "{what} has shape {shape:?} (rank {}); rank {lo}..={hi} is required",
                shape.len()
            ),
        ));
    }
    Ok(())
}

/// Fails unless `got == want`.
pub(crate) fn shape_is(api: &'static str, what: &str, got: &[usize], want: &[usize]) -> Result<()> {
    if got != want {
        return Err(Error::invalid(
            api,
            format!("{what} has shape {got:?} but {want:?} is required"),
        ));
    }
    Ok(())
}

/// Normalises a possibly negative dimension.
pub(crate) fn norm_dim(api: &'static str, dim: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    let d = if dim < 0 { dim + r } else { dim };
    if d < 0 || d >= r.max(1) {
        return Err(Error::invalid(
            api,
            format!("dim {dim} is out of range for rank {rank}"),
        ));
    }
    Ok(d as usize)
}

/// The torch broadcast of two shapes.
pub(crate) fn broadcast(api: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i < n - a.len() {
            1
        } else {
            a[i - (n - a.len())]
        };
        let db = if i < n - b.len() {
            1
        } else {
            b[i - (n - b.len())]
        };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return Err(Error::invalid(
                api,
                format!("shapes {a:?} and {b:?} do not broadcast (dimension {i}: {da} vs {db})"),
            ));
        };
    }
    Ok(out)
}

/// A pooled output of `shape` that the operator writes in full.
pub(crate) fn output<T: DeviceRepr>(stream: &Arc<Stream>, shape: &[usize]) -> Result<Tensor<T>> {
    // SAFETY: used only for outputs every element of which the operator
    // queued right after writes before anything can read them (the
    // tracker orders later reads after that write).
    unsafe { Tensor::uninit(stream, shape) }
}

/// Fails unless the tensor is on the stream's device.
pub(crate) fn on_device(api: &'static str, stream: &Stream, t: &dyn TensorArg) -> Result<()> {
    if t.ordinal() != stream.context().ordinal() {
        return Err(Error::invalid(
            api,
            format!(
                "a tensor is on npu:{} but the stream runs on {}",
                t.ordinal(),
                stream.context().device()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_torch() {
        assert_eq!(broadcast("t", &[2, 1, 3], &[4, 1]).unwrap(), vec![2, 4, 3]);
        assert_eq!(broadcast("t", &[], &[5]).unwrap(), vec![5]);
        assert!(broadcast("t", &[2, 3], &[3, 2]).is_err());
        assert_eq!(norm_dim("t", -1, 3).unwrap(), 2);
        assert!(norm_dim("t", 3, 3).is_err());
        assert!(norm_dim("t", -4, 3).is_err());
    }
}
