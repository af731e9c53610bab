//! Collective communication over HCCL: communicators and typed collectives
//! queued on streams, with argument checks in Rust and the access tracker
//! ordering every buffer a collective touches.
//!
//! - [`comm`]: [`Communicator`], one rank; made for all ranks of this
//!   process at once ([`Communicator::init_all`]) or one rank at a time
//!   from a [`RootInfo`] ([`Communicator::init_rank`]).
//! - [`root_info`]: [`RootInfo`], the 4108-byte blob ranks exchange out of
//!   band to find each other.
//! - [`collective`]: the collectives, as methods of [`Communicator`].
//! - [`view`]: [`View`] / [`ViewMut`], the element ranges collectives
//!   take (a whole buffer or a checked part of one).
//! - the calls themselves, one thin function per HCCL call, are in the
//!   result layer: [`crate::result::hccl`].
//!
//! ```
//! use ascend_rt::hccl::{Communicator, ReduceOp, View};
//! use ascend_rt::{Device, DeviceBuffer};
//!
//! let comms = Communicator::init_all(&[Device::new(0), Device::new(1)])?;
//! let streams = comms
//!     .iter()
//!     .map(|c| c.context().new_stream())
//!     .collect::<ascend_rt::Result<Vec<_>>>()?;
//! let xs = comms
//!     .iter()
//!     .map(|c| DeviceBuffer::from_host(c.context(), &[c.rank() as f32 + 1.0; 4]))
//!     .collect::<ascend_rt::Result<Vec<_>>>()?;
//! let mut ys = Vec::new();
//! for ((c, s), x) in comms.iter().zip(&streams).zip(&xs) {
//!     let mut y = DeviceBuffer::<f32>::zeroed(c.context(), 2)?;
//!     // The first two elements of `x`, summed over the ranks.
//!     c.all_reduce(View::prefix(x, 2)?, &mut y, ReduceOp::Sum, s)?;
//!     ys.push(y);
//! }
//! // Only now that every rank's part is queued may the host wait.
//! for y in &ys {
//!     assert_eq!(y.to_vec()?, [3.0, 3.0]);
//! }
//! # Ok::<(), ascend_rt::Error>(())
//! ```
//!
//! The element type comes from the buffers, so send and receive buffers of
//! different types do not compile:
//!
//! ```compile_fail
//! # use ascend_rt::hccl::{Communicator, ReduceOp};
//! # use ascend_rt::{DeviceBuffer, Stream};
//! # fn f(c: &Communicator, s: &std::sync::Arc<Stream>,
//! #      x: &DeviceBuffer<f32>, y: &mut DeviceBuffer<i32>) -> ascend_rt::Result<()> {
//! c.all_reduce(x, y, ReduceOp::Sum, s)
//! # }
//! ```
//!
//! # Ranks, threads and blocking
//!
//! With [`Communicator::init_all`], all ranks live in this process, one
//! device each. A collective call only queues work on the rank's stream;
//! the data moves when every rank's stream reaches its part. On the mock
//! device the call returns at once, so one thread may issue the collective
//! for every rank in turn (the stream of a rank whose peers have not yet
//! queued theirs waits, up to the communicator's timeout). CANN's own
//! examples drive each rank from its own thread, and that is what to do on
//! hardware: a [`Communicator`] is `Send` for that purpose.
//!
//! From one thread, issue every rank's part before anything waits: reading
//! a buffer of a queued collective on the host, overwriting or dropping it,
//! or synchronizing the stream waits for the collective, which waits for
//! the ranks not yet issued, until the communicator's timeout (then the
//! collective fails). So keep the buffers of all ranks alive until every
//! rank's call is queued, as the example above does.
//! [`Communicator::init_rank`] blocks until every rank has joined, so it
//! always needs a thread (or process) per rank.
//!
//! # Element types and reductions
//!
//! Data movement (broadcast, all-gather, scatter, all-to-all, send and
//! receive) takes every [`DeviceRepr`] type. Reductions (all-reduce,
//! reduce, reduce-scatter) follow HCCL's documented support on Atlas
//! A2/A3: `f32`, `f16`, `bf16`, `i8`, `i32` and `i64`, with sum, max and
//! min for all of them and prod for all but `bf16`; `u8` is not reducible
//! ([`ReduceOp::supports`]).
//!
//! # What is bound
//!
//! `HcclGetRootInfo`, `HcclCommInitRootInfo`, `HcclCommInitAll`,
//! `HcclCommDestroy`, `HcclGetRankSize`, `HcclGetRankId`,
//! `HcclGetCommName`, `HcclGetCommAsyncError`, `HcclGetErrorString` (in
//! errors), `HcclAllReduce`, `HcclBroadcast`, `HcclReduce`,
//! `HcclAllGather`, `HcclReduceScatter`, `HcclScatter`, `HcclAlltoAll`,
//! `HcclAlltoAllV`, `HcclSend`, `HcclRecv`, `HcclBatchSendRecv` (as a
//! paired send and receive) and `HcclBarrier`. Not bound:
//! `HcclCommInitClusterInfo` (rank tables), `HcclGroupStart`/`End`, and
//! batches of more than one send and one receive; the raw handle
//! ([`Communicator::handle`]) reaches them through `ascend_sys`.

pub mod collective;
pub mod comm;
pub mod root_info;
pub mod view;

pub use comm::Communicator;
pub use root_info::RootInfo;
pub use view::{IntoView, IntoViewMut, View, ViewMut};

use ascend_sys::HcclReduceOp;

use crate::error::{Error, Result};
use crate::memory::{DType, DeviceRepr};

/// A reduction of HCCL (`HcclReduceOp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    /// `HCCL_REDUCE_SUM`.
    Sum,
    /// `HCCL_REDUCE_PROD`.
    Prod,
    /// `HCCL_REDUCE_MAX`.
    Max,
    /// `HCCL_REDUCE_MIN`.
    Min,
}

impl ReduceOp {
    /// Every reduction.
    pub const ALL: [ReduceOp; 4] = [ReduceOp::Sum, ReduceOp::Prod, ReduceOp::Max, ReduceOp::Min];

    /// The C value.
    pub fn raw(self) -> HcclReduceOp {
        match self {
            ReduceOp::Sum => ascend_sys::HCCL_REDUCE_SUM,
            ReduceOp::Prod => ascend_sys::HCCL_REDUCE_PROD,
            ReduceOp::Max => ascend_sys::HCCL_REDUCE_MAX,
            ReduceOp::Min => ascend_sys::HCCL_REDUCE_MIN,
        }
    }

    /// Whether HCCL reduces `dtype` with this operation (see the module
    /// documentation).
    pub fn supports(self, dtype: DType) -> bool {
        match dtype {
            DType::F32 | DType::F16 | DType::I8 | DType::I32 | DType::I64 => true,
            DType::BF16 => self != ReduceOp::Prod,
            DType::U8 => false,
        }
    }

    /// Fails with [`Error::InvalidArgument`] unless this reduces `T`.
    pub(crate) fn check<T: DeviceRepr>(self, api: &'static str) -> Result<()> {
        if self.supports(T::DTYPE) {
            return Ok(());
        }
        let why = if T::DTYPE == DType::U8 {
            "HCCL reduces f32, f16, bf16, i8, i32 and i64 only"
        } else {
            "HCCL's prod does not support bf16"
        };
        Err(Error::invalid(
            api,
            format!("{self:?} of {} is not supported: {why}", T::DTYPE),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduce_ops_have_hccl_values() {
        assert_eq!(ReduceOp::Sum.raw(), 0);
        assert_eq!(ReduceOp::Prod.raw(), 1);
        assert_eq!(ReduceOp::Max.raw(), 2);
        assert_eq!(ReduceOp::Min.raw(), 3);
    }

    #[test]
    fn unsupported_reductions_are_invalid_arguments() {
        assert!(ReduceOp::Prod.check::<f32>("t").is_ok());
        assert!(ReduceOp::Max.check::<half::bf16>("t").is_ok());
        let e = ReduceOp::Prod.check::<half::bf16>("t").unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
        assert!(e.to_string().contains("bf16"), "{e}");
        for op in ReduceOp::ALL {
            assert!(!op.supports(DType::U8));
            assert!(op.check::<u8>("t").is_err());
            assert!(op.supports(DType::I64));
        }
    }
}
