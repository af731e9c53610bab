//! HCCL (`libhccl`): one function per collective-communication call of
//! the active backend, returning [`Result`] with HCCL's code and message
//! ([`check_hccl`]).
//!
//! Invariants: those of the result layer. Each function calls exactly one
//! HCCL function (plus `HcclGetErrorString` after a failure) and knows
//! nothing of contexts, tracking or ranks; the safe layer
//! (`hccl::Communicator`) binds the rank's context, checks arguments and
//! declares buffer accesses first. Functions are `unsafe` where HCCL needs
//! live handles and valid device pointers; their `# Safety` sections say
//! which. Every function reaches the `Hccl` table through `table` only.

use std::ffi::{CStr, c_char, c_void};

use ascend_sys::{
    COMM_NAME_MAX_LENGTH, Hccl, HcclComm, HcclDataType, HcclReduceOp, HcclResult, HcclRootInfo,
    HcclSendRecvItem, aclrtStream,
};

use crate::error::{Error, Result};
use crate::result::check::check_hccl;

/// The HCCL table of the active backend (initialised on first use).
fn table() -> Result<&'static Hccl> {
    Ok(&crate::backend::api()?.hccl)
}

/// `HcclGetRootInfo`.
pub fn get_root_info() -> Result<HcclRootInfo> {
    let f = table()?.HcclGetRootInfo()?;
    let mut info = HcclRootInfo::default();
    // SAFETY: `info` is a writable HcclRootInfo of the declared size.
    check_hccl("HcclGetRootInfo", unsafe { f(&mut info) })?;
    Ok(info)
}

/// `HcclCommInitRootInfo`: blocks until all `n_ranks` ranks have joined.
pub fn comm_init_root_info(n_ranks: u32, info: &HcclRootInfo, rank: u32) -> Result<HcclComm> {
    let f = table()?.HcclCommInitRootInfo()?;
    let mut comm: HcclComm = std::ptr::null_mut();
    // SAFETY: `info` is a readable HcclRootInfo and `comm` a writable handle.
    check_hccl("HcclCommInitRootInfo", unsafe {
        f(n_ranks, info, rank, &mut comm)
    })?;
    Ok(comm)
}

/// `HcclCommInitAll`: one communicator per entry of `devices`.
pub fn comm_init_all(devices: &mut [i32]) -> Result<Vec<HcclComm>> {
    let f = table()?.HcclCommInitAll()?;
    let n = u32::try_from(devices.len())
        .map_err(|_| Error::invalid("Communicator::init_all", "more than u32::MAX devices"))?;
    let mut comms: Vec<HcclComm> = vec![std::ptr::null_mut(); devices.len()];
    // SAFETY: `devices` holds n readable ids and `comms` n writable handles.
    check_hccl("HcclCommInitAll", unsafe {
        f(n, devices.as_mut_ptr(), comms.as_mut_ptr())
    })?;
    Ok(comms)
}

/// `HcclCommDestroy`.
///
/// # Safety
/// `comm` is a live communicator, never used again.
pub unsafe fn comm_destroy(comm: HcclComm) -> Result<()> {
    let f = table()?.HcclCommDestroy()?;
    // SAFETY: the caller guarantees `comm` is live and never used again.
    check_hccl("HcclCommDestroy", unsafe { f(comm) })
}

/// `HcclGetRankSize`.
///
/// # Safety
/// `comm` is a live communicator.
pub unsafe fn rank_size(comm: HcclComm) -> Result<u32> {
    let f = table()?.HcclGetRankSize()?;
    let mut n = 0u32;
    // SAFETY: `comm` is live (caller); `n` is a writable u32.
    check_hccl("HcclGetRankSize", unsafe { f(comm, &mut n) })?;
    Ok(n)
}

/// `HcclGetRankId`.
///
/// # Safety
/// `comm` is a live communicator.
pub unsafe fn rank_id(comm: HcclComm) -> Result<u32> {
    let f = table()?.HcclGetRankId()?;
    let mut r = 0u32;
    // SAFETY: `comm` is live (caller); `r` is a writable u32.
    check_hccl("HcclGetRankId", unsafe { f(comm, &mut r) })?;
    Ok(r)
}

/// `HcclGetCommName`.
///
/// # Safety
/// `comm` is a live communicator.
pub unsafe fn comm_name(comm: HcclComm) -> Result<String> {
    let f = table()?.HcclGetCommName()?;
    // One byte more than HCCL writes, so the text is always terminated.
    let mut buf = [0 as c_char; COMM_NAME_MAX_LENGTH + 1];
    // SAFETY: `comm` is live (caller); `buf` holds COMM_NAME_MAX_LENGTH
    // writable bytes, the size HCCL documents for the name.
    check_hccl("HcclGetCommName", unsafe { f(comm, buf.as_mut_ptr()) })?;
    // SAFETY: the last byte is never written, so the buffer holds a NUL.
    let name = unsafe { CStr::from_ptr(buf.as_ptr()) };
    Ok(name.to_string_lossy().into_owned())
}

/// `HcclGetCommAsyncError`.
///
/// # Safety
/// `comm` is a live communicator.
pub unsafe fn comm_async_error(comm: HcclComm) -> Result<HcclResult> {
    let f = table()?.HcclGetCommAsyncError()?;
    let mut code: HcclResult = 0;
    // SAFETY: `comm` is live (caller); `code` is writable.
    check_hccl("HcclGetCommAsyncError", unsafe { f(comm, &mut code) })?;
    Ok(code)
}

/// `HcclAllReduce` of `count` elements.
///
/// # Safety
/// `comm` and `stream` are live and the stream's context is current;
/// `send` holds `count` elements and `recv` room for them, both device
/// memory of the rank's device that stays valid and otherwise unused until
/// the queued work has run.
#[allow(clippy::too_many_arguments)]
pub unsafe fn all_reduce(
    send: *const c_void,
    recv: *mut c_void,
    count: u64,
    dtype: HcclDataType,
    op: HcclReduceOp,
    comm: HcclComm,
    stream: aclrtStream,
) -> Result<()> {
    let f = table()?.HcclAllReduce()?;
    // SAFETY: the caller's contract is HCCL's; HCCL only reads `send`.
    check_hccl("HcclAllReduce", unsafe {
        f(send.cast_mut(), recv, count, dtype, op, comm, stream)
    })
}

/// `HcclBroadcast` of `count` elements from `root`.
///
/// # Safety
/// As for [`all_reduce`], with `buf` holding `count` elements.
pub unsafe fn broadcast(
    buf: *mut c_void,
    count: u64,
    dtype: HcclDataType,
    root: u32,
    comm: HcclComm,
    stream: aclrtStream,
) -> Result<()> {
    let f = table()?.HcclBroadcast()?;
    // SAFETY: the caller's contract is HCCL's.
    check_hccl("HcclBroadcast", unsafe {
        f(buf, count, dtype, root, comm, stream)
    })
}

/// `HcclAllGather`: `send_count` elements from each rank.
///
/// # Safety
/// As for [`all_reduce`], with `recv` holding `send_count * ranks`
/// elements.
pub unsafe fn all_gather(
    send: *const c_void,
    recv: *mut c_void,
    send_count: u64,
    dtype: HcclDataType,
    comm: HcclComm,
    stream: aclrtStream,
) -> Result<()> {
    let f = table()?.HcclAllGather()?;
    // SAFETY: the caller's contract is HCCL's; HCCL only reads `send`.
    check_hccl("HcclAllGather", unsafe {
        f(send.cast_mut(), recv, send_count, dtype, comm, stream)
    })
}

/// `HcclReduceScatter`: `recv_count` elements to each rank.
///
/// # Safety
/// As for [`all_reduce`], with `send` holding `recv_count * ranks`
/// elements.
#[allow(clippy::too_many_arguments)]
pub unsafe fn reduce_scatter(
    send: *const c_void,
    recv: *mut c_void,
    recv_count: u64,
    dtype: HcclDataType,
    op: HcclReduceOp,
    comm: HcclComm,
    stream: aclrtStream,
) -> Result<()> {
    let f = table()?.HcclReduceScatter()?;
    // SAFETY: the caller's contract is HCCL's; HCCL only reads `send`.
    check_hccl("HcclReduceScatter", unsafe {
        f(send.cast_mut(), recv, recv_count, dtype, op, comm, stream)
    })
}

/// `HcclReduce` of `count` elements into the root's `recv`.
///
/// # Safety
/// As for [`all_reduce`], except that `recv` may be null on a rank other
/// than `root` (HCCL does not use it there).
#[allow(clippy::too_many_arguments)]
pub unsafe fn reduce(
    send: *const c_void,
    recv: *mut c_void,
    count: u64,
    dtype: HcclDataType,
    op: HcclReduceOp,
    root: u32,
    comm: HcclComm,
    stream: aclrtStream,
) -> Result<()> {
    let f = table()?.HcclReduce()?;
    // SAFETY: the caller's contract is HCCL's; HCCL only reads `send`.
    check_hccl("HcclReduce", unsafe {
        f(send.cast_mut(), recv, count, dtype, op, root, comm, stream)
    })
}

/// `HcclScatter`: `recv_count` elements of the root's `send` to each rank.
///
/// # Safety
/// As for [`all_reduce`], with `send` holding `recv_count * ranks`
/// elements on `root`; `send` may be null on the other ranks (HCCL does
/// not use it there).
pub unsafe fn scatter(
    send: *const c_void,
    recv: *mut c_void,
    recv_count: u64,
    dtype: HcclDataType,
    root: u32,
    comm: HcclComm,
    stream: aclrtStream,
) -> Result<()> {
    let f = table()?.HcclScatter()?;
    // SAFETY: the caller's contract is HCCL's; HCCL only reads `send`.
    check_hccl("HcclScatter", unsafe {
        f(send.cast_mut(), recv, recv_count, dtype, root, comm, stream)
    })
}

/// `HcclAlltoAll`: `count` elements to and from each rank.
///
/// # Safety
/// As for [`all_reduce`], with both buffers holding `count * ranks`
/// elements.
pub unsafe fn all_to_all(
    send: *const c_void,
    recv: *mut c_void,
    count: u64,
    dtype: HcclDataType,
    comm: HcclComm,
    stream: aclrtStream,
) -> Result<()> {
    let f = table()?.HcclAlltoAll()?;
    // SAFETY: the caller's contract is HCCL's.
    check_hccl("HcclAlltoAll", unsafe {
        f(send, count, dtype, recv, count, dtype, comm, stream)
    })
}

/// The four per-rank arrays of `HcclAlltoAllV`, in elements.
#[derive(Debug, Clone, Copy)]
pub struct VArrays<'a> {
    /// How many elements go to each rank.
    pub send_counts: &'a [u64],
    /// Where in the send buffer each rank's part starts.
    pub sdispls: &'a [u64],
    /// How many elements come from each rank.
    pub recv_counts: &'a [u64],
    /// Where in the receive buffer each rank's part goes.
    pub rdispls: &'a [u64],
}

/// `HcclAlltoAllV`.
///
/// # Safety
/// As for [`all_reduce`]; each array has one entry per rank, and every
/// part `[displ, displ + count)` lies inside its buffer.
pub unsafe fn all_to_all_v(
    send: *const c_void,
    recv: *mut c_void,
    v: &VArrays<'_>,
    dtype: HcclDataType,
    comm: HcclComm,
    stream: aclrtStream,
) -> Result<()> {
    let f = table()?.HcclAlltoAllV()?;
    // SAFETY: the caller's contract is HCCL's; the arrays are host u64s
    // of rankSize entries, read during the call.
    check_hccl("HcclAlltoAllV", unsafe {
        f(
            send,
            v.send_counts.as_ptr().cast(),
            v.sdispls.as_ptr().cast(),
            dtype,
            recv,
            v.recv_counts.as_ptr().cast(),
            v.rdispls.as_ptr().cast(),
            dtype,
            comm,
            stream,
        )
    })
}

/// `HcclSend` of `count` elements to `peer`.
///
/// # Safety
/// As for [`all_reduce`].
pub unsafe fn send(
    buf: *const c_void,
    count: u64,
    dtype: HcclDataType,
    peer: u32,
    comm: HcclComm,
    stream: aclrtStream,
) -> Result<()> {
    let f = table()?.HcclSend()?;
    // SAFETY: the caller's contract is HCCL's; HCCL only reads `buf`.
    check_hccl("HcclSend", unsafe {
        f(buf.cast_mut(), count, dtype, peer, comm, stream)
    })
}

/// `HcclRecv` of `count` elements from `peer`.
///
/// # Safety
/// As for [`all_reduce`].
pub unsafe fn recv(
    buf: *mut c_void,
    count: u64,
    dtype: HcclDataType,
    peer: u32,
    comm: HcclComm,
    stream: aclrtStream,
) -> Result<()> {
    let f = table()?.HcclRecv()?;
    // SAFETY: the caller's contract is HCCL's.
    check_hccl("HcclRecv", unsafe {
        f(buf, count, dtype, peer, comm, stream)
    })
}

/// `HcclBatchSendRecv` of `items`.
///
/// # Safety
/// As for [`all_reduce`], for the buffer of every item.
pub unsafe fn batch_send_recv(
    items: &mut [HcclSendRecvItem],
    comm: HcclComm,
    stream: aclrtStream,
) -> Result<()> {
    let f = table()?.HcclBatchSendRecv()?;
    let n = u32::try_from(items.len())
        .map_err(|_| Error::invalid("Communicator::send_recv", "more than u32::MAX items"))?;
    // SAFETY: `items` holds n readable entries; the caller vouches for
    // their buffers.
    check_hccl("HcclBatchSendRecv", unsafe {
        f(items.as_mut_ptr(), n, comm, stream)
    })
}

/// `HcclBarrier`.
///
/// # Safety
/// `comm` and `stream` are live and the stream's context is current.
pub unsafe fn barrier(comm: HcclComm, stream: aclrtStream) -> Result<()> {
    let f = table()?.HcclBarrier()?;
    // SAFETY: the caller guarantees both handles are live.
    check_hccl("HcclBarrier", unsafe { f(comm, stream) })
}
