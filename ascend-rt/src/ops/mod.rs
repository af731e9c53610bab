//! Typed aclnn operators, grouped by family: [`elementwise`] (`add`,
//! `mul`), [`matmul`](mod@matmul) (`matmul`, `grouped_matmul`), [`norm`] (`rms_norm`,
//! `softmax`, `swiglu`) and [`moe`] (gating, routing, finalize).
//!
//! Convention: `op(stream, inputs..)` allocates its outputs from the
//! context pool of `stream` (so intermediates of a repeated pass are
//! recycled) and returns them as [`Tensor`]s; where an `op_into(stream,
//! inputs.., &mut out)` variant exists it writes into the given output
//! view instead, which must have the exact shape the operator produces.
//! Inputs are anything that gives a read-only view ([`AsView`]: a
//! [`Tensor`] or a [`TensorRef`]). Everything is queued on `stream`;
//! reading a result on the host waits for it.
//!
//! ```
//! # #[cfg(not(feature = "mock"))]
//! # fn main() {} // no backend to run on without the mock
//! # #[cfg(feature = "mock")]
//! # fn main() -> Result<(), ascend_rt::Error> {
//! use ascend_rt::{Context, Tensor, ops};
//! let ctx = Context::new(0)?;
//! let s = ctx.new_stream()?;
//! let a = Tensor::from_slice(&s, &[1.0f32, 2.0, 3.0, 4.0], &[2, 2])?;
//! let b = Tensor::from_slice(&s, &[0.0f32, 1.0, 1.0, 0.0], &[2, 2])?;
//! let c = ops::matmul(&s, &a, &b.view().t()?)?; // a @ bᵀ, bᵀ a strided view
//! let d = ops::add(&s, &c, &a, -1.0)?; // c - a
//! assert_eq!(d.to_vec()?, [1.0, -1.0, 1.0, -1.0]);
//! # Ok(())
//! # }
//! ```
//!
//! Every function checks shapes, dtypes and attributes in Rust and returns
//! [`Error::InvalidArgument`] with the reason before any FFI call; what the
//! runtime still refuses comes back as [`Error::Aclnn`] with the function,
//! code and message.

pub mod elementwise;
pub mod matmul;
pub mod moe;
pub mod norm;

pub use elementwise::{add, add_into, mul, mul_into, prepare_add};
pub use matmul::{GroupList, grouped_matmul, matmul, matmul_into, prepare_matmul};
pub use moe::{
    GatingNorm, GatingTopK, GatingTopKParams, GatingTopKSoftmax, GroupSelect, MoeRouting,
    moe_finalize_routing, moe_gating_top_k, moe_gating_top_k_softmax, moe_init_routing,
};
pub use norm::{rms_norm, rms_norm_into, softmax, softmax_into, swiglu, swiglu_into};

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
