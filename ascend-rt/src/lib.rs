//! Safe runtime for Huawei Ascend NPUs: devices, contexts, streams, events
//! and memory over AscendCL, on real CANN or on the CPU mock device.
//!
//! # Layers
//!
//! As in cudarc, there are three layers, each doing one thing:
//!
//! 1. `ascend_sys`: the raw C declarations and the lazily resolved function
//!    tables ([`ascend_sys::Api`]), which [`backend`] chooses and
//!    initialises once per process.
//! 2. [`result`]: one thin function per C call, returning [`Result`] with the
//!    runtime's error message captured at the failure; `unsafe` wherever the
//!    C call needs guarantees from the caller. It is the only code here that
//!    reaches the function tables, with one module per library:
//!    [`result::acl`] ([`result::acl::device`], [`result::acl::context`],
//!    [`result::acl::stream`], [`result::acl::event`],
//!    [`result::acl::memory`]), [`result::nnopbase`] (aclnn descriptors and
//!    executors), [`result::opapi`] (the operators' two phases and the
//!    generic launch) and [`result::hccl`] (collectives).
//! 3. Safe types with RAII: [`Device`], [`Context`], [`Stream`], [`Event`],
//!    [`DeviceBuffer`], [`PinnedBuffer`].
//! 4. Operators: [`tensor`] (typed strided views of buffers, `ndarray`
//!    conversion), [`aclnn`] (RAII descriptors and the one two-phase launch
//!    path every operator takes, plus repeatable [`aclnn::PreparedOp`]s) and
//!    [`ops`] (typed operators that check their arguments in Rust first).
//!    Workspaces and operator outputs come from the context's caching
//!    [`MemPool`] ([`Context::pool`]), whose policy is written in
//!    [`memory::pool`].
//! 5. Collectives: [`hccl`] ([`Communicator`], typed all-reduce,
//!    all-gather, reduce-scatter, broadcast, all-to-all(v), send and
//!    receive on a [`Stream`], through the same access tracking).
//!
//! The modules import only downwards: [`error`] ← [`backend`] ← [`result`]
//! ← the safe types (items 3 to 5). A lower layer never names a higher one;
//! where the safe layer must see what a result-layer call did (a change of
//! the thread's current context), the result layer keeps the state
//! ([`result::acl::context::current_changes`]) and the safe layer reads it.
//! `scripts/check-imports ascend-rt/src --involving backend --involving
//! result` checks that no import cycle runs through the lower layers.
//!
//! # Backends
//!
//! [`init`] picks the implementation of the C ABI once per process
//! ([`Backend::Cann`], [`Backend::Mock`], [`Backend::Auto`] or
//! [`Backend::Library`]); without an explicit [`init`], the first call uses
//! the environment variable `ASCEND_RT_BACKEND` (`cann`, `mock`, `auto` or a
//! library path; `auto` when unset). `auto` takes CANN when
//! `libascendcl.so` loads and otherwise the mock device (when the feature
//! `mock` is on), printing one line on stderr that says what was tried.
//! [`backend_kind`] and [`is_mock`] tell which one is active.
//!
//! # The mock device
//!
//! The feature `mock` (off by default) links the CPU mock device
//! (`ascend-mock`) into the program, so that it runs where no CANN is
//! installed; without it, a library depending on ascend-rt carries no
//! mock code. To run your own crate's tests on the mock while its normal
//! build stays without it, add one line to its `Cargo.toml`:
//!
//! ```toml
//! [dev-dependencies]
//! ascend-rt = { version = "0.1", features = ["mock"] }
//! ```
//!
//! Cargo turns the feature on for the test builds only; with no CANN
//! installed, `auto` then falls back to the mock, or
//! `ASCEND_RT_BACKEND=mock` (or [`init`]`(`[`Backend::Mock`]`)`) asks for
//! it outright. The mock is then also reachable as `ascend_rt::mock`,
//! for configuring it (devices, memory, fault injection) before [`init`].
//!
//! ```no_run
//! use ascend_rt::{Context, DeviceBuffer};
//! let ctx = Context::new(0)?;
//! let stream = ctx.new_stream()?;
//! let x = DeviceBuffer::from_host(&ctx, &[1.0f32, 2.0, 3.0])?;
//! let mut y = DeviceBuffer::<f32>::zeroed(&ctx, 3)?;
//! y.copy_from(&x, &stream)?;                // queued on `stream`
//! assert_eq!(y.to_vec()?, [1.0, 2.0, 3.0]); // waits for the copy first
//! # Ok::<(), ascend_rt::Error>(())
//! ```
//!
//! # Concepts, for CUDA and cudarc users
//!
//! | CUDA / cudarc | ascend-rt | AscendCL |
//! |---|---|---|
//! | `cuInit` (implicit in cudarc) | [`init`] / first use ([`api`]) | `aclInit` |
//! | device ordinal | [`Device`] | `int32_t deviceId` |
//! | `CudaContext::new(ordinal)` (primary context) | [`Context::new`] (default context) | `aclrtSetDevice` |
//! | `cuCtxCreate` | [`Context::new_explicit`] | `aclrtCreateContext` |
//! | `CudaContext::bind_to_thread` | [`Context::bind_to_thread`] | `aclrtSetCurrentContext` |
//! | `CudaStream` (`ctx.new_stream()`, `ctx.default_stream()`) | [`Stream`] ([`Context::new_stream`], [`Context::default_stream`]) | `aclrtStream` (NULL = default) |
//! | `stream.synchronize()` / `cuStreamQuery` | [`Stream::synchronize`] / [`Stream::is_complete`] | `aclrtSynchronizeStream` / `aclrtStreamQuery` |
//! | `stream.join(&other)` / `cuStreamWaitEvent` | [`Stream::join`] / [`Stream::wait`] | `aclrtStreamWaitEvent` |
//! | `CudaEvent` (record, synchronize, elapsed_ms) | [`Event`] | `aclrtEvent` |
//! | `cuLaunchHostFunc` | [`Stream::launch_host_fn`] | `aclrtLaunchHostFunc` |
//! | `CudaSlice<T>` (a `Vec<T>` on the device) | [`DeviceBuffer<T>`] | `aclrtMalloc` / `aclrtFree` |
//! | `stream.alloc_zeros` / `memcpy_stod` / `memcpy_dtov` | [`DeviceBuffer::zeroed`] / [`DeviceBuffer::from_host`] / [`DeviceBuffer::to_vec`] | `aclrtMemset` / `aclrtMemcpy` |
//! | `memcpy_dtod` | [`DeviceBuffer::copy_from`] | `aclrtMemcpyAsync(DEVICE_TO_DEVICE)` |
//! | `PinnedHostSlice<T>` | [`PinnedBuffer<T>`] | `aclrtMallocHost` |
//! | PyTorch's caching allocator (`torch.cuda.memory_stats`, `empty_cache`) | [`MemPool`] ([`Context::pool`], [`MemPool::stats`], [`MemPool::empty_cache`]) | `aclrtMalloc` segments (`aclrtMemPool*` later) |
//! | a pooled `CudaSlice` (`stream.alloc`) | [`DeviceBuffer::alloc_pooled`] / [`Tensor::zeros`] | — |
//! | a strided tensor view (candle `Layout`) | [`Tensor`], [`TensorRef`], [`TensorMut`], [`Layout`] | `aclTensor` (`aclCreateTensor`) |
//! | cuBLAS `gemm` / a kernel launch | [`ops::matmul()`], [`ops`] | `aclnnXxxGetWorkspaceSize` + `aclnnXxx` |
//! | CUDA graph-like reuse of a launch | [`aclnn::PreparedOp`] | `aclSetAclOpExecutorRepeatable` |
//! | `DeviceRepr` | [`DeviceRepr`] (sealed) with [`DType`] | `aclDataType` |
//! | `nccl::Comm` (`ncclCommInitAll`, `all_reduce`, `send`, ...) | [`Communicator`] ([`hccl`]) | `HcclComm` (`HcclCommInitAll`, `HcclAllReduce`, ...) |
//! | `DriverError` | [`Error`] with [`AclCode`] | `aclError` + `aclGetRecentErrMsg` |
//! | `CudaContext::disable_event_tracking` (unsafe) | [`DeviceBuffer::set_tracking`] (unsafe) | — |
//! | a host thread | a [`Stream`]: work is ordered within it, not across | — |
//!
//! # Contexts and threads
//!
//! AscendCL keeps the current context per thread, and a thread without one
//! fails with `ACL_ERROR_RT_CONTEXT_NULL` (107002). Every safe call here first
//! binds its object's context to the calling thread; a thread-local cache of
//! the last context bound makes that a comparison when it already is. So
//! `Arc<Context>`, `Arc<Stream>`, buffers and events can be moved to and
//! shared between threads freely.
//!
//! # Soundness of asynchronous work
//!
//! Queued work runs later, so safe code must not be able to (a) free memory
//! that queued work still uses, (b) let the host read memory that a queued
//! copy is still writing (or write memory one is still reading), or (c) let
//! two streams race on one buffer. The mechanism:
//!
//! - Each [`DeviceBuffer`] and [`PinnedBuffer`] keeps, behind a small mutex,
//!   the stream that last wrote it and the streams that have read it since
//!   (as `Arc<Stream>`, so those streams stay alive).
//! - Queuing a **write** on stream S: S waits for every *other* stream in
//!   {last writer} ∪ {readers} (an event recorded on that stream now, then
//!   `aclrtStreamWaitEvent` on S); then S becomes the writer and the readers
//!   are cleared.
//! - Queuing a **read** on S: S waits for the last writer if it is another
//!   stream; S joins the readers.
//! - On a single stream this is an id comparison under the buffer's
//!   (uncontended) mutex: no event is created, nothing is allocated.
//!   `benches/tracking.rs` measures it against tracking turned off.
//! - The **host** touching the memory synchronizes first (an event recorded
//!   on the stream, then `aclrtSynchronizeEvent`): reading
//!   ([`DeviceBuffer::to_vec`], [`PinnedBuffer::as_slice`]) waits for the
//!   writer, writing ([`DeviceBuffer::copy_from_host`],
//!   [`DeviceBuffer::memset`], [`PinnedBuffer::as_mut_slice`]) and freeing
//!   (`Drop`, `free`) wait for everyone. This is why `as_slice` and
//!   `as_mut_slice` return `Result`.
//! - A pooled buffer ([`DeviceBuffer::alloc_pooled`], operator outputs
//!   and workspaces) is not freed but returned to its context's [`MemPool`]
//!   without waiting, together with the streams that may still use it; the
//!   block's next user is the stream that allocates it, which runs after
//!   its own earlier work and is made to wait for the other streams'
//!   ([`memory::pool`]). A new pooled buffer starts with that stream as its
//!   writer, so the host and other streams are ordered after all of it.
//! - Operators declare every tensor they read or write on their stream
//!   before queueing ([`aclnn::OpCall`]), so they take part in the rules
//!   above like copies do; their descriptors are destroyed once phase 2
//!   has returned, which is all aclnn needs of them.
//! - Only pinned memory takes part in asynchronous host copies: AscendCL
//!   completes an asynchronous copy only at a synchronization, and a copy
//!   from pageable memory is synchronous anyway. So there is no
//!   `memcpy_async(&[T])` whose borrow could end before the copy does.
//! - Events waited on stay alive until the waiting stream has passed the
//!   wait (the stream keeps them), and a recorded event is synchronized
//!   before it is destroyed.
//! - A host function ([`Stream::launch_host_fn`]) is kept in a process-wide
//!   table and the runtime gets only its id. The runtime may skip it (a
//!   stream that stops on failure, a lost device); it is then dropped with
//!   its stream once that stream's work has ended, so its captures are
//!   neither leaked nor reachable through a dangling pointer.
//! - Tracking can be turned off per buffer with the `unsafe`
//!   [`DeviceBuffer::set_tracking`] / [`PinnedBuffer::set_tracking`], for
//!   callers who order their work themselves.
//!
//! What is not checked: work queued through raw handles or pointers
//! ([`Stream::handle`], [`DeviceBuffer::as_ptr`]) is outside the tracker
//! unless declared with [`DeviceBuffer::track_read`] /
//! [`DeviceBuffer::track_write`].
//!
//! # Errors
//!
//! A failing C call becomes [`Error::Acl`] with the function's name, the
//! numeric code, its name ([`AclCode`], generated from the declarations) and
//! the `aclGetRecentErrMsg` text, on one line:
//! `aclrtMalloc failed: 207001 ACL_ERROR_RT_MEMORY_ALLOCATION: <message>`.
//! `Drop` never panics: a failure there is recorded in the [`Context`] object
//! the dropped value belonged to and returned by the next public fallible
//! call that goes through that object ([`Context::check_err`]); a recorded
//! error never stops a later release. The `free` methods destroy explicitly
//! and return their own error instead. A release whose own wait fails (the
//! event or stream sync before freeing a buffer, destroying an event, a
//! stream or a prepared executor) waits for the whole device instead and
//! releases anyway, reporting the first error; only when that fails too (a
//! lost device) is the object leaked, since freeing memory that queued work
//! may still use would be unsound. The device-wide wait reports every
//! stream's stored failure once, so another stream's `synchronize` may then
//! return `Ok`; its failed output still cannot be read (events recorded
//! after the failure keep reporting it, and the failure epoch refuses the
//! read). `tests/fault_sweep.rs` fails every call of a MoE pass in turn to
//! hold this.

pub mod aclnn;
pub mod backend;
pub mod context;
pub mod device;
pub mod error;
pub mod event;
pub mod hccl;
pub mod memory;
pub mod ops;
pub mod result;
pub mod stream;
pub mod tensor;

pub use backend::{
    Backend, BackendKind, api, backend_kind, backend_notice, init, init_with_api, is_mock,
};
pub use context::Context;
pub use device::{Device, MemInfo};
pub use error::{AclCode, AclnnCode, Error, HcclCode, Result};
pub use event::Event;
pub use hccl::{Communicator, ReduceOp, RootInfo};
pub use memory::{
    DType, DeviceBuffer, DeviceRepr, MemPool, PhysicalMem, PinnedBuffer, PoolStats, VirtualRange,
};
pub use stream::Stream;
pub use tensor::{Format, Layout, Tensor, TensorArg, TensorArgMut, TensorMut, TensorRef};

/// The mock device, when it is compiled in (for configuring it before
/// [`init`]).
#[cfg(feature = "mock")]
pub use ascend_mock as mock;

pub use half::{bf16, f16};
