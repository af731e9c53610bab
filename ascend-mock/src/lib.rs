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
//! The modules form layers; a lower layer never names a higher one, and no
//! two files import each other in a circle (`scripts/check-mock-layers`
//! checks both).
//!
//! 1. Leaf:
//!    - [`error`]: [`MockError`] (the crate's one error type), the
//!      per-thread message of `aclGetRecentErrMsg` and the last-error code,
//!      and [`sanitizer::ReportClass`]; it names no other module.
//! 2. Gate:
//!    - [`config`](mod@config): [`Config`], [`configure`], [`config()`], the
//!      `ASCEND_MOCK_*` environment variables, and the configuration in
//!      effect between `aclInit` and `aclFinalize`.
//!    - [`fault`]: fault injection (failing the N-th call of an API or the
//!      N-th task of device work, losing a device, jitter before stream
//!      tasks; `ASCEND_MOCK_FAIL`, `ASCEND_MOCK_FAIL_TASK`,
//!      `ASCEND_MOCK_DEVICE_LOST`, `ASCEND_MOCK_JITTER`).
//!    - [`gate`]: the call gate every exported function runs through
//!      (`api_call`, `guarded_call`): call numbering, fault injection,
//!      panic catch, message, last-error code and log.
//!    - `report`: the sanitizer's mode, its kept reports and leak policy
//!      (`ASCEND_MOCK_SANITIZER`, `ASCEND_MOCK_LEAKS`); every check files
//!      its reports there. Public as [`sanitizer`]'s re-exports.
//! 3. Device core (names neither the sanitizer nor the exports):
//!    - `handle`: tagged handles and the per-thread current context.
//!    - `hooks`: the observer interface through which the core tells the
//!      sanitizer what it does (queued accesses, host accesses, frees,
//!      event records and waits, host synchronisations, streams gone,
//!      finalize); the race tracker installs itself at `aclInit`.
//!    - [`stream`]: streams, each an in-order queue run by its own worker
//!      thread; every task says whether it is device work
//!      ([`stream::TaskKind`]).
//!    - [`event`]: event records, cross-stream waits and timing.
//!    - [`memory`]: the registry of live device and pinned host
//!      allocations, capacity accounting, pointer classification, range
//!      checks and the freed-block history.
//!    - `copy`: copy planning (validating copies and memsets against the
//!      registry) and running them at once or on a stream.
//!    - [`runtime`]: initialisation, devices (reference counted by
//!      `aclrtSetDevice`/`aclrtResetDevice`), contexts, the handle tables,
//!      frees, reset and finalize with their leak reports, and the leak
//!      sources operator families register; [`runtime::enqueue`] is the
//!      entry point for operator code.
//!    - [`callback`]: report-thread callbacks (`aclrtSubscribeReport`,
//!      `aclrtLaunchCallback`, `aclrtProcessReport`).
//! 4. Families (above the core, below the exports):
//!    - [`sanitizer`]: the public face of the reports (`use-after-free`,
//!      `double free`, `invalid free`, `out of bounds`,
//!      `wrong memory kind`, `race`, `leak`) and [`sanitizer::race`], which
//!      decides happens-before between streams and the host with vector
//!      clocks, attached to the core through `hooks`.
//!    - `aclnn`: the aclnn layer (`libnnopbase`'s descriptors and
//!      executors, `libopapi`'s two-phase operators running
//!      `ascend-kernels` on the streams), with the registry of live
//!      descriptors (a leak source of the runtime).
//!    - [`hccl`]: HCCL (`libhccl`) for ranks in this process or in several
//!      processes of this machine (over loopback TCP): communicators,
//!      collectives and point-to-point transfers on the ranks' streams,
//!      with a rendezvous per collective and a timeout for ranks that
//!      never join.
//! 5. Exports:
//!    - `exports`: the `extern "C"` functions, one file per topic; each
//!      parses its arguments, calls the core and returns.
//!    - `resolve`: the symbol table ([`resolve()`], [`exported_symbols`],
//!      [`not_implemented`]), generated from the declarations of
//!      `ascend-sys`.
//!
//! # Invariants
//! - Layering: a module names only modules of its own layer or below (see
//!   Layout); the device core reaches the sanitizer only through the
//!   observer it installed in `hooks`, and nothing calls back up into a
//!   higher layer except through such an installed hook or registration.
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
pub use resolve::{declared_symbols, exported_symbols, not_implemented, resolve};
pub use runtime::is_initialized;

/// The configuration in effect (see [`config::config`]).
pub fn config() -> Config {
    config::config()
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_support;
