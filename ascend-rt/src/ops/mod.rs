//! Typed aclnn operators, grouped by family: [`elementwise`] (`add`,
//! `mul`), [`unary`] (`abs`, ...: one table line each), [`matmul`](mod@matmul) (`matmul`, `grouped_matmul`), [`norm`] (`rms_norm`,
//! `softmax`, `swiglu`) and [`moe`] (gating, routing, finalize).
//!
//! Convention: `op(stream, inputs..)` allocates its outputs from the
//! context pool of `stream` (so intermediates of a repeated pass are
//! recycled) and returns them as [`Tensor`](crate::Tensor)s; where an `op_into(stream,
//! inputs.., &mut out)` variant exists it writes into the given output
//! view instead, which must have the exact shape the operator produces.
//! Inputs are anything that gives a read-only view ([`AsView`]: a
//! [`Tensor`](crate::Tensor) or a [`TensorRef`](crate::TensorRef)). Everything is queued on `stream`;
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
//! [`Error::InvalidArgument`](crate::Error::InvalidArgument) with the reason
//! before any FFI call; what the runtime still refuses comes back as
//! [`Error::Aclnn`](crate::Error::Aclnn) with the function, code and
//! message. The FFI calls themselves are the result layer's
//! ([`crate::result::opapi`]): each operator names its two functions by
//! their typed getters, resolves them before describing anything, and
//! launches through [`crate::aclnn::OpCall`].

mod args;
pub mod elementwise;
pub mod matmul;
pub mod moe;
pub mod norm;
pub mod unary;

pub use args::AsView;
pub use elementwise::{add, add_into, mul, mul_into, prepare_add};
pub use matmul::{GroupList, grouped_matmul, matmul, matmul_into, prepare_matmul};
pub use moe::{
    GatingNorm, GatingTopK, GatingTopKParams, GatingTopKSoftmax, GroupSelect, MoeRouting,
    moe_finalize_routing, moe_gating_top_k, moe_gating_top_k_softmax, moe_init_routing,
};
pub use norm::{rms_norm, rms_norm_into, softmax, softmax_into, swiglu, swiglu_into};
pub use unary::*;
