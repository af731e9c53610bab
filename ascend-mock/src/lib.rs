//! A CPU stand-in for a Huawei Ascend NPU that exports the AscendCL C ABI.
//!
//! The crate builds as a C shared library (`libascend_mock.so`), which C
//! programs written for CANN link instead of `libascendcl.so`, and as an
//! rlib, which Rust code plugs into the `ascend-sys` function tables
//! in-process:
//!
//! ```
//! let api = ascend_sys::Api::from_resolver(ascend_mock::resolve, "ascend-mock");
//! let count = api.acl.aclrtGetDeviceCount().unwrap();
//! let mut n = 0u32;
//! // SAFETY: `n` is a valid output location.
//! assert_eq!(unsafe { count(&mut n) }, ascend_sys::ACL_SUCCESS);
//! assert!(n >= 1);
//! ```
//!
//! # Layout
//! - [`config`]: [`Config`], [`configure`], [`config()`], the
//!   `ASCEND_MOCK_*` environment variables.
//! - [`error`]: [`MockError`], the per-thread message of
//!   `aclGetRecentErrMsg`, and `api_call`, the wrapper every exported
//!   function runs through (message, last-error code, log, panic catch).
//! - [`runtime`]: initialisation, devices (reference counted by
//!   `aclrtSetDevice`/`aclrtResetDevice`), contexts, the per-thread current
//!   context, and the handle tables.
//! - [`stream`]: streams, each an in-order queue run by its own worker
//!   thread; `enqueue` is the entry point for operator code.
//! - [`event`]: event records, cross-stream waits and timing.
//! - [`callback`]: report-thread callbacks (`aclrtSubscribeReport`,
//!   `aclrtLaunchCallback`, `aclrtProcessReport`).
//! - [`memory`]: the registry of live device and pinned host allocations,
//!   capacity accounting, pointer classification and range checks.
//! - [`sanitizer`]: call numbering and the sanitizer's reports
//!   (`use-after-free`, `double free`, `invalid free`, `out of bounds`,
//!   `wrong memory kind`, `race`, `leak`), its mode and the Rust API to
//!   read them (`ASCEND_MOCK_SANITIZER`, `ASCEND_MOCK_LEAKS`);
//!   [`sanitizer::race`] decides happens-before between streams and the
//!   host with vector clocks.
//! - [`fault`]: fault injection (failing the N-th call of an API, losing a
//!   device, jitter before stream tasks; `ASCEND_MOCK_FAIL`,
//!   `ASCEND_MOCK_DEVICE_LOST`, `ASCEND_MOCK_JITTER`).
//! - `aclnn`: the aclnn layer (`libnnopbase`'s descriptors and executors,
//!   `libopapi`'s two-phase operators running `ascend-kernels` on the
//!   streams), with the registry of live descriptors.
//! - [`hccl`]: HCCL (`libhccl`) for ranks in this process or in several
//!   processes of this machine (over loopback TCP): communicators,
//!   collectives and point-to-point transfers on the ranks' streams, with
//!   a rendezvous per collective and a timeout for ranks that never join.
//! - `exports`: the `extern "C"` functions, one file per topic.
//! - `resolve`: the symbol table ([`resolve`], [`exported_symbols`]).
//!
//! # Invariants
//! - No panic crosses the C boundary: every exported function catches
//!   panics and reports `ACL_ERROR_INTERNAL_ERROR`.
//! - Every failure returns CANN's code for the case and leaves a message
//!   naming the call and the reason for `aclGetRecentErrMsg`.
//! - Handles (`aclrtContext`, `aclrtStream`, `aclrtEvent`) are tagged ids,
//!   never dereferenced, so stale handles are refused cleanly.
//! - Device and pinned memory is only released once no queued stream work
//!   can touch it (`aclrtFree` hands the block to a thread that waits for
//!   the work queued before the free; reset and finalize drain the streams
//!   first).
//!
//! # Deliberately unchecked
//! Pageable host pointers are trusted (the mock cannot know their extent).
//! A freed pointer is recognised only while its block is in the bounded
//! freed-block history (see [`memory`]); with the sanitizer off, a freed
//! pointer passed to a copy as host memory is not detected. Race detection
//! covers device and pinned host memory, not pageable host memory or plain
//! CPU loads and stores (see [`sanitizer::race`]).

#![allow(non_snake_case)]

mod aclnn;
pub mod callback;
pub mod config;
mod copy;
mod dtype;
pub mod error;
pub mod event;
mod exports;
pub mod fault;
pub mod gate;
mod handle;
pub mod hccl;
mod hooks;
pub mod memory;
mod report;
mod resolve;
pub mod runtime;
pub mod sanitizer;
pub mod stream;

pub use aclnn::meta::{
    Kind as AclnnObjectKind, LiveObject as AclnnLiveObject, aclnn_initialized,
    live_objects as aclnn_live_objects,
};
pub use config::{Config, ConfigError, configure};
pub use error::{MockError, TaskError};
pub use resolve::{exported_symbols, resolve};
pub use runtime::is_initialized;

/// The configuration in effect (see [`config::config`]).
pub fn config() -> Config {
    config::config()
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_support;
