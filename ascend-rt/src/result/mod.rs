//! The result layer: the one place in this crate that reaches the C API's
//! function tables, one thin function per C call, returning
//! [`Result`](crate::Result).
//!
//! One module per library, as `ascend_sys::Api` has one table per library:
//!
//! - [`acl`] (`libascendcl`): [`acl::device`], [`acl::context`],
//!   [`acl::stream`], [`acl::event`], [`acl::memory`]; also reachable as
//!   `result::device` and so on, the paths they had before the split.
//! - [`nnopbase`] (`libnnopbase`): creating and destroying the aclnn
//!   descriptors, and the calls on an operator's executor.
//! - [`opapi`] (`libopapi*`): the operators' two phases. Operators are named
//!   by their typed getters ([`opapi::Operator`]), and the generic two-phase
//!   helpers ([`opapi::launch`], [`opapi::prepare`]) run phase one, take the
//!   workspace from the caller and queue phase two on a stream.
//! - [`hccl`] (`libhccl`): the collectives.
//! - `check` (private): turning status codes into [`Error`]s, re-exported
//!   here as [`check_aclnn`] and [`check_hccl`].
//!
//! Invariants:
//! - Only this layer reaches the function tables of the active backend
//!   (through [`crate::backend::api`], initialised on first use); the safe
//!   types above call the functions here. `backend` itself calls `aclInit`
//!   and reads the runtime's message for it. The one C call made above this
//!   layer is an operator's phase one, whose arguments differ per operator:
//!   the operator's closure calls the function [`opapi`] resolved and hands
//!   it, from inside [`opapi::launch`] or [`opapi::prepare`].
//! - Each function calls exactly one C function and nothing else, except
//!   `aclGetRecentErrMsg` (or, for HCCL, `HcclGetErrorString`) right after
//!   a failure, whose text goes into the error. The exceptions are the
//!   two-phase helpers of [`opapi`], which run the calls of one operator
//!   launch in the order aclnn prescribes (each through its own thin
//!   function) and release the executor when they stop between the phases.
//! - A failing call becomes an [`Error`] naming the C function, with its
//!   code and the runtime's message; a symbol the backend lacks becomes
//!   [`Error::Load`] naming it, before anything is called.
//! - A function is `unsafe` when the C call needs guarantees only the caller
//!   can give (live handles, valid pointers and sizes); its `# Safety`
//!   section says which.
//! - Nothing here knows about contexts, threads, pools or tracking: that is
//!   the safe layer's job. Where the safe layer must see what a call did
//!   (the calls that change the calling thread's current context), this
//!   layer keeps a counter the safe layer reads
//!   ([`acl::context::current_changes`]); it never names the layers above.
//!
//! [`Error`]: crate::Error
//! [`Error::Load`]: crate::Error::Load

pub mod acl;
mod check;
pub mod hccl;
pub mod nnopbase;
pub mod opapi;

#[doc(no_inline)]
pub use crate::backend::recent_message;
#[doc(no_inline)]
pub use acl::{context, device, event, memory, stream};
pub(crate) use check::null_result;
pub use check::{check_aclnn, check_hccl};
