//! The exported HCCL C functions (`libhccl`): argument checks, then the
//! work of `comm`, `collective` and `p2p`.
//!
//! Every function runs through [`hccl_call`]. Checks before anything is
//! queued: NULL buffers with non-zero counts (`HCCL_E_PTR`); unknown
//! communicators, out-of-range data types, operations, roots and peers,
//! streams of another device, a calling thread whose current device is not
//! the rank's, and buffers that are not device memory of the rank's device
//! or whose element range runs past the end of their allocation
//! (`HCCL_E_PARA`). Counts of 0 need no buffer.
//!
//! Ranks of one communicator may share a device (each with its own
//! stream); real HCCL wants distinct devices, the mock does not insist.

use std::ffi::{CStr, c_char, c_void};
use std::sync::Arc;

use ascend_sys::*;

use super::collective::{self, Call, Kind, VCounts};
use super::comm::{self, Comm};
use super::dtype::{DataType, ReduceOp, check_reducible};
use super::hub;
use super::p2p::{self, Direction, Item};
use super::root_info::RootInfo;
use super::{default_timeout, hccl_call, hccl_err, para, ptr_err, runtime_err};
use crate::error::{MockError, MockResult};
use crate::memory::{self, Location};
use crate::runtime::with_runtime;
use crate::sanitizer::{self, ReportClass, violation};
use crate::stream::Stream;

/// Writes `value` through the output pointer `ptr` named `name`
/// (`HCCL_E_PTR` when NULL).
///
/// # Safety
/// `ptr` must be NULL or valid for a write of `T`.
unsafe fn write_out<T>(ptr: *mut T, value: T, name: &str) -> MockResult<()> {
    if ptr.is_null() {
        return Err(ptr_err(format!("{name} is NULL")));
    }
    // SAFETY: non-null, and the caller guarantees validity for writes.
    unsafe { ptr.write(value) };
    Ok(())
}

/// The calling thread's current device (`HCCL_E_RUNTIME` without one).
fn current_device() -> MockResult<u32> {
    with_runtime(|rt| Ok(rt.current_context()?.device)).map_err(runtime_err)
}

/// Resolves the communicator and the stream (NULL: the current context's
/// default stream) and checks that both belong to the calling thread's
/// current device.
fn target(comm: HcclComm, stream: aclrtStream) -> MockResult<(Arc<Comm>, Arc<Stream>)> {
    let c = comm::lookup(comm)?;
    let device = c.device();
    crate::fault::check_device(device).map_err(runtime_err)?;
    let current = current_device()?;
    if current != device {
        return Err(para(format!(
            "the calling thread's current device is {current}, but {} lives on device {device}; call aclrtSetDevice({device}) first",
            c.describe()
        )));
    }
    let s = with_runtime(|rt| rt.stream(stream)).map_err(|e| para(e.message))?;
    if s.device != device {
        return Err(para(format!(
            "stream {} belongs to device {}, but {} lives on device {device}",
            s.handle.id(),
            s.device,
            c.describe()
        )));
    }
    Ok((c, s))
}

/// Checks that `count` elements of `dtype` at `ptr` (the argument `role`)
/// lie in one device allocation of `comm`'s device; returns the address.
fn check_buf(
    comm: &Comm,
    role: &str,
    ptr: *const c_void,
    count: u64,
    dtype: DataType,
) -> MockResult<usize> {
    let addr = ptr as usize;
    if count == 0 {
        return Ok(addr);
    }
    if ptr.is_null() {
        return Err(ptr_err(format!(
            "{role} is NULL but holds {count} elements of {}",
            dtype.name()
        )));
    }
    let bytes = dtype.bytes(count)?;
    let device = comm.device();
    let what = format!("{count} elements of {} ({bytes} bytes)", dtype.name());
    let wrong = |class: ReportClass, kind: String| {
        Err(violation(
            class,
            HCCL_E_PARA as aclError,
            &format!(
                "{}: {role} {addr:#x} ({what}) is {kind}, not device memory of device {device} where {} lives",
                sanitizer::current_call_text(),
                comm.describe()
            ),
        ))
    };
    match memory::classify(addr) {
        loc @ Location::Device { device: d, .. } if d == device => {
            memory::check_range(&loc, addr, bytes, role)
                .map_err(|e| para(format!("{} ({what})", e.message)))?;
            Ok(addr)
        }
        Location::Host => match memory::freed_block(addr) {
            Some(block) => wrong(
                ReportClass::UseAfterFree,
                format!("inside {}", block.describe()),
            ),
            None => wrong(ReportClass::WrongMemoryKind, "host memory".to_string()),
        },
        other => wrong(ReportClass::WrongMemoryKind, other.describe()),
    }
}

/// Checks a rank number against the communicator's size.
fn check_rank(comm: &Comm, role: &str, rank: u32) -> MockResult<()> {
    let n = comm.group.size();
    if rank as usize >= n {
        return Err(para(format!(
            "{role} {rank} is out of range: the communicator has {n} ranks"
        )));
    }
    Ok(())
}

/// `count * ranks`, refusing overflow.
fn times_ranks(comm: &Comm, count: u64) -> MockResult<u64> {
    count
        .checked_mul(comm.group.size() as u64)
        .ok_or_else(|| para(format!("count {count} times the rank count overflows")))
}

/// Fills `HcclRootInfo` with a fresh root info served by this process's
/// TCP listener on 127.0.0.1 (opened on first use; see `hub`), so that
/// ranks of this and other processes can join it.
///
/// # Safety
/// `rootInfo` must be NULL or valid for a write of `HcclRootInfo`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn HcclGetRootInfo(rootInfo: *mut HcclRootInfo) -> HcclResult {
    hccl_call("HcclGetRootInfo", || {
        let info = HcclRootInfo {
            internal: hub::root_info()?.encode().map(|b| b as c_char),
        };
        // SAFETY: the caller guarantees rootInfo is NULL or writable.
        unsafe { write_out(rootInfo, info, "rootInfo") }
    })
}

/// Joins rank `rank` of an `nRanks`-rank communicator; blocks until all
/// ranks have joined or the timeout passes.
///
/// # Safety
/// `rootInfo` must be NULL or valid for reads of `HcclRootInfo`; `comm`
/// NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn HcclCommInitRootInfo(
    nRanks: u32,
    rootInfo: *const HcclRootInfo,
    rank: u32,
    comm: *mut HcclComm,
) -> HcclResult {
    hccl_call("HcclCommInitRootInfo", || {
        if rootInfo.is_null() {
            return Err(ptr_err("rootInfo is NULL"));
        }
        if comm.is_null() {
            return Err(ptr_err("comm is NULL"));
        }
        // SAFETY: non-null, and the caller guarantees it is readable.
        let raw = unsafe { &(*rootInfo).internal };
        let bytes = raw.map(|c| c as u8);
        let info = RootInfo::decode(&bytes)?;
        let device = current_device()?;
        let timeout = default_timeout()?;
        let handle = comm::join(&info, nRanks, rank, device, timeout)?;
        // SAFETY: comm is non-null and writable (caller's contract).
        unsafe { write_out(comm, handle, "comm") }
    })
}

/// Rank-table initialisation; the mock has no cluster, so this is
/// `HCCL_E_NOT_SUPPORT`.
///
/// # Safety
/// No pointer is dereferenced.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn HcclCommInitClusterInfo(
    _clusterInfo: *const c_char,
    _rank: u32,
    _comm: *mut HcclComm,
) -> HcclResult {
    hccl_call("HcclCommInitClusterInfo", || {
        Err(hccl_err(
            HCCL_E_NOT_SUPPORT,
            "rank-table files are not supported by the mock device; use HcclCommInitRootInfo or HcclCommInitAll",
        ))
    })
}

/// Creates an `ndev`-rank communicator in one call, rank i on
/// `devices[i]`.
///
/// # Safety
/// `devices` must be NULL or valid for `ndev` reads; `comms` NULL or valid
/// for `ndev` writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn HcclCommInitAll(
    ndev: u32,
    devices: *mut i32,
    comms: *mut HcclComm,
) -> HcclResult {
    hccl_call("HcclCommInitAll", || {
        if ndev == 0 {
            return Err(para("ndev is 0"));
        }
        if ndev > super::MAX_RANKS {
            return Err(para(format!(
                "ndev {ndev} exceeds the mock's limit of {} ranks per communicator",
                super::MAX_RANKS
            )));
        }
        if devices.is_null() {
            return Err(ptr_err("devices is NULL"));
        }
        if comms.is_null() {
            return Err(ptr_err("comms is NULL"));
        }
        // SAFETY: non-null; the caller guarantees ndev readable entries.
        let ids = unsafe { std::slice::from_raw_parts(devices, ndev as usize) };
        let checked: Vec<u32> = with_runtime(|rt| {
            ids.iter()
                .enumerate()
                .map(|(i, &d)| {
                    rt.check_device(i64::from(d))
                        .map_err(|e| MockError::new(e.code, format!("devices[{i}]: {}", e.message)))
                })
                .collect()
        })
        .map_err(|e| {
            if e.code == ACL_ERROR_RT_INVALID_DEVICEID {
                para(e.message)
            } else {
                runtime_err(e)
            }
        })?;
        let handles = comm::create(checked, default_timeout()?);
        // SAFETY: non-null; the caller guarantees ndev writable entries.
        let out = unsafe { std::slice::from_raw_parts_mut(comms, ndev as usize) };
        out.copy_from_slice(&handles);
        Ok(())
    })
}

/// Destroys one rank's communicator. Work already queued still runs.
///
/// # Safety
/// `comm` is only looked up, never dereferenced.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn HcclCommDestroy(comm: HcclComm) -> HcclResult {
    hccl_call("HcclCommDestroy", || comm::destroy(comm))
}

/// The number of ranks of `comm`.
///
/// # Safety
/// `rankSize` must be NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn HcclGetRankSize(comm: HcclComm, rankSize: *mut u32) -> HcclResult {
    hccl_call("HcclGetRankSize", || {
        let c = comm::lookup(comm)?;
        // SAFETY: the caller guarantees rankSize is NULL or writable.
        unsafe { write_out(rankSize, c.group.size() as u32, "rankSize") }
    })
}

/// The rank of `comm`.
///
/// # Safety
/// `rank` must be NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn HcclGetRankId(comm: HcclComm, rank: *mut u32) -> HcclResult {
    hccl_call("HcclGetRankId", || {
        let c = comm::lookup(comm)?;
        // SAFETY: the caller guarantees rank is NULL or writable.
        unsafe { write_out(rank, c.rank, "rank") }
    })
}

/// Writes the communicator's name (shared by all its ranks, NUL-terminated,
/// shorter than `COMM_NAME_MAX_LENGTH`).
///
/// # Safety
/// `commName` must be NULL or valid for `COMM_NAME_MAX_LENGTH` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn HcclGetCommName(comm: HcclComm, commName: *mut c_char) -> HcclResult {
    hccl_call("HcclGetCommName", || {
        let c = comm::lookup(comm)?;
        if commName.is_null() {
            return Err(ptr_err("commName is NULL"));
        }
        let name = c.group.name.as_bytes();
        let n = name.len().min(COMM_NAME_MAX_LENGTH - 1);
        // SAFETY: commName holds COMM_NAME_MAX_LENGTH bytes (caller's
        // contract); we write n + 1 <= COMM_NAME_MAX_LENGTH of them from our
        // own string.
        unsafe {
            std::ptr::copy_nonoverlapping(name.as_ptr(), commName.cast::<u8>(), n);
            commName.add(n).write(0);
        }
        Ok(())
    })
}

/// The first failure of a task of this rank (`HCCL_SUCCESS` if none).
///
/// # Safety
/// `asyncError` must be NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn HcclGetCommAsyncError(
    comm: HcclComm,
    asyncError: *mut HcclResult,
) -> HcclResult {
    hccl_call("HcclGetCommAsyncError", || {
        let c = comm::lookup(comm)?;
        let code = c.group.lock().async_error[c.rank as usize].unwrap_or(HCCL_SUCCESS);
        // SAFETY: the caller guarantees asyncError is NULL or writable.
        unsafe { write_out(asyncError, code, "asyncError") }
    })
}

/// A static description of `code`.
pub fn error_string(code: HcclResult) -> &'static CStr {
    match code {
        HCCL_SUCCESS => c"success",
        HCCL_E_PARA => c"parameter error",
        HCCL_E_PTR => c"empty pointer",
        HCCL_E_MEMORY => c"memory error",
        HCCL_E_INTERNAL => c"internal error",
        HCCL_E_NOT_SUPPORT => c"not support feature",
        HCCL_E_NOT_FOUND => c"not found specific resource",
        HCCL_E_UNAVAIL => c"resource unavailable",
        HCCL_E_SYSCALL => c"call system interface error",
        HCCL_E_TIMEOUT => c"timeout",
        HCCL_E_OPEN_FILE_FAILURE => c"open file fail",
        HCCL_E_TCP_CONNECT => c"tcp connect fail",
        HCCL_E_ROCE_CONNECT => c"roce connect fail",
        HCCL_E_TCP_TRANSFER => c"tcp transfer fail",
        HCCL_E_ROCE_TRANSFER => c"roce transfer fail",
        HCCL_E_RUNTIME => c"call runtime api fail",
        HCCL_E_DRV => c"call driver api fail",
        HCCL_E_PROFILING => c"call profiling api fail",
        HCCL_E_CCE => c"call cce api fail",
        HCCL_E_NETWORK => c"call network api fail",
        HCCL_E_AGAIN => c"try again",
        HCCL_E_REMOTE => c"error cqe",
        HCCL_E_SUSPENDING => c"error communicator suspending",
        HCCL_E_OPRETRY_FAIL => c"retry constraint",
        HCCL_E_OOM => c"out of memory",
        _ => c"unknown HCCL error code",
    }
}

/// A static description of `code`; never NULL.
///
/// # Safety
/// No pointer argument.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn HcclGetErrorString(code: HcclResult) -> *const c_char {
    crate::gate::count_call("HcclGetErrorString");
    error_string(code).as_ptr()
}

/// Element-wise reduction over all ranks into every rank's `recvBuf`.
///
/// # Safety
/// Buffers are checked against the allocation registry; no pointer is
/// dereferenced before that.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn HcclAllReduce(
    sendBuf: *mut c_void,
    recvBuf: *mut c_void,
    count: u64,
    dataType: HcclDataType,
    op: HcclReduceOp,
    comm: HcclComm,
    stream: aclrtStream,
) -> HcclResult {
    hccl_call("HcclAllReduce", || {
        let dtype = DataType::from_raw(dataType)?;
        let op = ReduceOp::from_raw(op)?;
        check_reducible(dtype)?;
        let (c, s) = target(comm, stream)?;
        let send = check_buf(&c, "sendBuf", sendBuf, count, dtype)?;
        let recv = check_buf(&c, "recvBuf", recvBuf, count, dtype)?;
        collective::enqueue(
            &c,
            &s,
            Call {
                api: "HcclAllReduce",
                kind: Kind::AllReduce,
                dtype,
                op: Some(op),
                root: 0,
                count,
                send,
                recv,
                v: None,
            },
        )
    })
}

/// Copies `count` elements of the root's `buf` to every rank's `buf`.
///
/// # Safety
/// See [`HcclAllReduce`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn HcclBroadcast(
    buf: *mut c_void,
    count: u64,
    dataType: HcclDataType,
    root: u32,
    comm: HcclComm,
    stream: aclrtStream,
) -> HcclResult {
    hccl_call("HcclBroadcast", || {
        let dtype = DataType::from_raw(dataType)?;
        let (c, s) = target(comm, stream)?;
        check_rank(&c, "root", root)?;
        let b = check_buf(&c, "buf", buf, count, dtype)?;
        collective::enqueue(
            &c,
            &s,
            Call {
                api: "HcclBroadcast",
                kind: Kind::Broadcast,
                dtype,
                op: None,
                root,
                count,
                send: b,
                recv: b,
                v: None,
            },
        )
    })
}

/// Concatenates every rank's `sendCount` elements, in rank order, into
/// every rank's `recvBuf`.
///
/// # Safety
/// See [`HcclAllReduce`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn HcclAllGather(
    sendBuf: *mut c_void,
    recvBuf: *mut c_void,
    sendCount: u64,
    dataType: HcclDataType,
    comm: HcclComm,
    stream: aclrtStream,
) -> HcclResult {
    hccl_call("HcclAllGather", || {
        let dtype = DataType::from_raw(dataType)?;
        let (c, s) = target(comm, stream)?;
        let send = check_buf(&c, "sendBuf", sendBuf, sendCount, dtype)?;
        let recv = check_buf(&c, "recvBuf", recvBuf, times_ranks(&c, sendCount)?, dtype)?;
        collective::enqueue(
            &c,
            &s,
            Call {
                api: "HcclAllGather",
                kind: Kind::AllGather,
                dtype,
                op: None,
                root: 0,
                count: sendCount,
                send,
                recv,
                v: None,
            },
        )
    })
}

/// Reduces `recvCount * rankSize` elements over all ranks; rank j keeps
/// block j.
///
/// # Safety
/// See [`HcclAllReduce`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn HcclReduceScatter(
    sendBuf: *mut c_void,
    recvBuf: *mut c_void,
    recvCount: u64,
    dataType: HcclDataType,
    op: HcclReduceOp,
    comm: HcclComm,
    stream: aclrtStream,
) -> HcclResult {
    hccl_call("HcclReduceScatter", || {
        let dtype = DataType::from_raw(dataType)?;
        let op = ReduceOp::from_raw(op)?;
        check_reducible(dtype)?;
        let (c, s) = target(comm, stream)?;
        let send = check_buf(&c, "sendBuf", sendBuf, times_ranks(&c, recvCount)?, dtype)?;
        let recv = check_buf(&c, "recvBuf", recvBuf, recvCount, dtype)?;
        collective::enqueue(
            &c,
            &s,
            Call {
                api: "HcclReduceScatter",
                kind: Kind::ReduceScatter,
                dtype,
                op: Some(op),
                root: 0,
                count: recvCount,
                send,
                recv,
                v: None,
            },
        )
    })
}

/// Reduces over all ranks into the root's `recvBuf` (other ranks' `recvBuf`
/// is not used).
///
/// # Safety
/// See [`HcclAllReduce`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn HcclReduce(
    sendBuf: *mut c_void,
    recvBuf: *mut c_void,
    count: u64,
    dataType: HcclDataType,
    op: HcclReduceOp,
    root: u32,
    comm: HcclComm,
    stream: aclrtStream,
) -> HcclResult {
    hccl_call("HcclReduce", || {
        let dtype = DataType::from_raw(dataType)?;
        let op = ReduceOp::from_raw(op)?;
        check_reducible(dtype)?;
        let (c, s) = target(comm, stream)?;
        check_rank(&c, "root", root)?;
        let send = check_buf(&c, "sendBuf", sendBuf, count, dtype)?;
        let recv = if c.rank == root {
            check_buf(&c, "recvBuf", recvBuf, count, dtype)?
        } else {
            0
        };
        collective::enqueue(
            &c,
            &s,
            Call {
                api: "HcclReduce",
                kind: Kind::Reduce,
                dtype,
                op: Some(op),
                root,
                count,
                send,
                recv,
                v: None,
            },
        )
    })
}

/// Splits the root's `recvCount * rankSize` elements; rank j receives
/// block j (other ranks' `sendBuf` is not used).
///
/// # Safety
/// See [`HcclAllReduce`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn HcclScatter(
    sendBuf: *mut c_void,
    recvBuf: *mut c_void,
    recvCount: u64,
    dataType: HcclDataType,
    root: u32,
    comm: HcclComm,
    stream: aclrtStream,
) -> HcclResult {
    hccl_call("HcclScatter", || {
        let dtype = DataType::from_raw(dataType)?;
        let (c, s) = target(comm, stream)?;
        check_rank(&c, "root", root)?;
        let send = if c.rank == root {
            check_buf(&c, "sendBuf", sendBuf, times_ranks(&c, recvCount)?, dtype)?
        } else {
            0
        };
        let recv = check_buf(&c, "recvBuf", recvBuf, recvCount, dtype)?;
        collective::enqueue(
            &c,
            &s,
            Call {
                api: "HcclScatter",
                kind: Kind::Scatter,
                dtype,
                op: None,
                root,
                count: recvCount,
                send,
                recv,
                v: None,
            },
        )
    })
}

/// All-to-all with `sendCount` elements per peer (`recvCount` and
/// `recvType` must equal `sendCount` and `sendType`).
///
/// # Safety
/// See [`HcclAllReduce`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn HcclAlltoAll(
    sendBuf: *const c_void,
    sendCount: u64,
    sendType: HcclDataType,
    recvBuf: *const c_void,
    recvCount: u64,
    recvType: HcclDataType,
    comm: HcclComm,
    stream: aclrtStream,
) -> HcclResult {
    hccl_call("HcclAlltoAll", || {
        let dtype = DataType::from_raw(sendType)?;
        let rtype = DataType::from_raw(recvType)?;
        if dtype != rtype {
            return Err(para(format!(
                "sendType {} differs from recvType {}",
                dtype.name(),
                rtype.name()
            )));
        }
        if sendCount != recvCount {
            return Err(para(format!(
                "sendCount {sendCount} differs from recvCount {recvCount} (equal counts per peer are required)"
            )));
        }
        let (c, s) = target(comm, stream)?;
        let total = times_ranks(&c, sendCount)?;
        let send = check_buf(&c, "sendBuf", sendBuf, total, dtype)?;
        let recv = check_buf(&c, "recvBuf", recvBuf, total, dtype)?;
        collective::enqueue(
            &c,
            &s,
            Call {
                api: "HcclAlltoAll",
                kind: Kind::AlltoAll,
                dtype,
                op: None,
                root: 0,
                count: sendCount,
                send,
                recv,
                v: None,
            },
        )
    })
}

/// Reads `n` host `uint64_t`s of the array argument `role`.
///
/// # Safety
/// `ptr` must be NULL or valid for `n` reads of `u64`.
unsafe fn host_u64s(ptr: *const c_void, n: usize, role: &str) -> MockResult<Vec<u64>> {
    if ptr.is_null() {
        return Err(ptr_err(format!("{role} is NULL")));
    }
    // SAFETY: non-null; the caller guarantees n readable u64 values. The
    // read is unaligned-tolerant.
    Ok((0..n)
        .map(|i| unsafe { ptr.cast::<u64>().add(i).read_unaligned() })
        .collect())
}

/// The number of elements a buffer must hold for the given per-peer
/// counts and displacements (0 when every count is 0).
fn span(counts: &[u64], displs: &[u64], what: &str) -> MockResult<u64> {
    counts
        .iter()
        .zip(displs)
        .enumerate()
        .filter(|(_, (c, _))| **c > 0)
        .try_fold(0u64, |acc, (i, (c, d))| {
            d.checked_add(*c)
                .map(|end| acc.max(end))
                .ok_or_else(|| para(format!("{what} entry {i} overflows ({d} + {c})")))
        })
}

/// All-to-all with per-peer counts and displacements (host `uint64_t`
/// arrays of rankSize entries, in elements; copied here).
///
/// # Safety
/// The four arrays must be NULL or valid for rankSize reads of `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn HcclAlltoAllV(
    sendBuf: *const c_void,
    sendCounts: *const c_void,
    sdispls: *const c_void,
    sendType: HcclDataType,
    recvBuf: *const c_void,
    recvCounts: *const c_void,
    rdispls: *const c_void,
    recvType: HcclDataType,
    comm: HcclComm,
    stream: aclrtStream,
) -> HcclResult {
    hccl_call("HcclAlltoAllV", || {
        let dtype = DataType::from_raw(sendType)?;
        let rtype = DataType::from_raw(recvType)?;
        if dtype != rtype {
            return Err(para(format!(
                "sendType {} differs from recvType {}",
                dtype.name(),
                rtype.name()
            )));
        }
        let (c, s) = target(comm, stream)?;
        let n = c.group.size();
        // SAFETY: the caller guarantees each array is NULL or holds rankSize
        // entries.
        let v = unsafe {
            VCounts {
                send_counts: host_u64s(sendCounts, n, "sendCounts")?,
                sdispls: host_u64s(sdispls, n, "sdispls")?,
                recv_counts: host_u64s(recvCounts, n, "recvCounts")?,
                rdispls: host_u64s(rdispls, n, "rdispls")?,
            }
        };
        let send_span = span(&v.send_counts, &v.sdispls, "sendCounts/sdispls")?;
        let recv_span = span(&v.recv_counts, &v.rdispls, "recvCounts/rdispls")?;
        let send = check_buf(&c, "sendBuf", sendBuf, send_span, dtype)?;
        let recv = check_buf(&c, "recvBuf", recvBuf, recv_span, dtype)?;
        collective::enqueue(
            &c,
            &s,
            Call {
                api: "HcclAlltoAllV",
                kind: Kind::AlltoAllV,
                dtype,
                op: None,
                root: 0,
                count: 0,
                send,
                recv,
                v: Some(v),
            },
        )
    })
}

/// Sends `count` elements to `destRank`; the data is deposited when the
/// task runs, so a send never waits for its receiver.
///
/// # Safety
/// See [`HcclAllReduce`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn HcclSend(
    sendBuf: *mut c_void,
    count: u64,
    dataType: HcclDataType,
    destRank: u32,
    comm: HcclComm,
    stream: aclrtStream,
) -> HcclResult {
    hccl_call("HcclSend", || {
        let dtype = DataType::from_raw(dataType)?;
        let (c, s) = target(comm, stream)?;
        check_rank(&c, "destRank", destRank)?;
        let buf = check_buf(&c, "sendBuf", sendBuf, count, dtype)?;
        let item = Item::new(Direction::Send, destRank, buf, count, dtype);
        p2p::enqueue("HcclSend", &c, &s, vec![item])
    })
}

/// Receives `count` elements from `srcRank` (the matching send in order).
///
/// # Safety
/// See [`HcclAllReduce`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn HcclRecv(
    recvBuf: *mut c_void,
    count: u64,
    dataType: HcclDataType,
    srcRank: u32,
    comm: HcclComm,
    stream: aclrtStream,
) -> HcclResult {
    hccl_call("HcclRecv", || {
        let dtype = DataType::from_raw(dataType)?;
        let (c, s) = target(comm, stream)?;
        check_rank(&c, "srcRank", srcRank)?;
        let buf = check_buf(&c, "recvBuf", recvBuf, count, dtype)?;
        let item = Item::new(Direction::Recv, srcRank, buf, count, dtype);
        p2p::enqueue("HcclRecv", &c, &s, vec![item])
    })
}

/// Runs `itemNum` sends and receives as one task: sends first.
///
/// # Safety
/// `sendRecvInfo` must be NULL or valid for `itemNum` reads.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn HcclBatchSendRecv(
    sendRecvInfo: *mut HcclSendRecvItem,
    itemNum: u32,
    comm: HcclComm,
    stream: aclrtStream,
) -> HcclResult {
    hccl_call("HcclBatchSendRecv", || {
        let (c, s) = target(comm, stream)?;
        if itemNum == 0 {
            return Ok(());
        }
        if sendRecvInfo.is_null() {
            return Err(ptr_err(format!(
                "sendRecvInfo is NULL but itemNum is {itemNum}"
            )));
        }
        // SAFETY: non-null; the caller guarantees itemNum readable items.
        let raw = unsafe { std::slice::from_raw_parts(sendRecvInfo, itemNum as usize) };
        let items = raw
            .iter()
            .enumerate()
            .map(|(i, it)| {
                let role = format!("sendRecvInfo[{i}]");
                let dir = match it.sendRecvType {
                    HCCL_SEND => Direction::Send,
                    HCCL_RECV => Direction::Recv,
                    t => {
                        return Err(para(format!(
                            "{role}.sendRecvType {t} is neither HCCL_SEND nor HCCL_RECV"
                        )));
                    }
                };
                let dtype = DataType::from_raw(it.dataType)
                    .map_err(|e| para(format!("{role}: {}", e.message)))?;
                check_rank(&c, &format!("{role}.remoteRank"), it.remoteRank)?;
                let buf = check_buf(&c, &format!("{role}.buf"), it.buf, it.count, dtype)?;
                Ok(Item::new(dir, it.remoteRank, buf, it.count, dtype))
            })
            .collect::<MockResult<Vec<Item>>>()?;
        p2p::enqueue("HcclBatchSendRecv", &c, &s, items)
    })
}

/// Completes when every rank's barrier task has started.
///
/// # Safety
/// No pointer is dereferenced.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn HcclBarrier(comm: HcclComm, stream: aclrtStream) -> HcclResult {
    hccl_call("HcclBarrier", || {
        let (c, s) = target(comm, stream)?;
        collective::enqueue(
            &c,
            &s,
            Call {
                api: "HcclBarrier",
                kind: Kind::Barrier,
                dtype: DataType::I8,
                op: None,
                root: 0,
                count: 0,
                send: 0,
                recv: 0,
                v: None,
            },
        )
    })
}

/// Starts holding this thread's sends and receives (see `p2p`).
///
/// # Safety
/// No arguments.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn HcclGroupStart() -> HcclResult {
    hccl_call("HcclGroupStart", || {
        p2p::group_start();
        Ok(())
    })
}

/// Queues what this thread held since the outermost `HcclGroupStart`.
///
/// # Safety
/// No arguments.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn HcclGroupEnd() -> HcclResult {
    hccl_call("HcclGroupEnd", p2p::group_end)
}
