//! Collectives: the rendezvous that matches the k-th collective of every
//! rank of a group, and the data movement of each kind.
//!
//! At enqueue, a rank's collective gets the next sequence number of that
//! rank and a [`Slot`] of the group records the stream it went to. When
//! the task runs, it puts its [`Call`] into the slot. The task that
//! completes the slot checks that all calls match, moves the data (reading
//! every input into host memory first, so in-place and overlapping buffers
//! are fine) and marks the slot done; the others wait for that. A task that
//! waits longer than the group's timeout while some rank has not arrived
//! abandons the slot: every task of it fails with `HCCL_E_TIMEOUT`, the
//! ones already waiting and the ones arriving later, and no data moves.
//! A slot that waits for a rank destroyed before it queued the collective
//! is abandoned at once with `HCCL_E_UNAVAIL`.
//!
//! Invariants: a slot moves Waiting -> Running -> Done, or Waiting ->
//! Abandoned, never back; data moves only in Running, while every rank's
//! task is inside [`run`], so every buffer is still valid (see the module
//! documentation of `hccl`).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Instant;

use ascend_sys::*;

use super::comm::{Comm, Group};
use super::dtype::{DataType, ReduceOp, reduce};
use super::{hccl_err, para, runtime_err, task_error};
use crate::error::{MockError, MockResult};
use crate::runtime::Handle;
use crate::stream::Stream;

/// Which collective.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `HcclAllReduce`.
    AllReduce,
    /// `HcclBroadcast` (`send` and `recv` are the same buffer).
    Broadcast,
    /// `HcclAllGather`.
    AllGather,
    /// `HcclReduceScatter`.
    ReduceScatter,
    /// `HcclReduce`.
    Reduce,
    /// `HcclScatter`.
    Scatter,
    /// `HcclAlltoAll` (`count` elements per peer).
    AlltoAll,
    /// `HcclAlltoAllV` (counts and displacements in [`VCounts`]).
    AlltoAllV,
    /// `HcclBarrier`.
    Barrier,
}

/// The per-peer host arrays of `HcclAlltoAllV`, copied at enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VCounts {
    /// Elements sent to each rank.
    pub send_counts: Vec<u64>,
    /// Where (in elements) each rank's part starts in the send buffer.
    pub sdispls: Vec<u64>,
    /// Elements received from each rank.
    pub recv_counts: Vec<u64>,
    /// Where each rank's part goes in the receive buffer.
    pub rdispls: Vec<u64>,
}

/// One rank's part of a collective, checked at enqueue.
#[derive(Debug, Clone)]
pub struct Call {
    /// The C function.
    pub api: &'static str,
    /// The collective.
    pub kind: Kind,
    /// Element type.
    pub dtype: DataType,
    /// Reduction, for the reducing kinds.
    pub op: Option<ReduceOp>,
    /// Root rank, for the rooted kinds (0 otherwise).
    pub root: u32,
    /// The count argument (meaning depends on the kind).
    pub count: u64,
    /// Send buffer address (0 when unused).
    pub send: usize,
    /// Receive buffer address (0 when unused).
    pub recv: usize,
    /// `HcclAlltoAllV`'s arrays.
    pub v: Option<VCounts>,
}

impl Call {
    /// A short description for mismatch messages.
    fn describe(&self) -> String {
        let mut s = format!("{}(count={}, {}", self.api, self.count, self.dtype.name());
        if let Some(op) = self.op {
            s += &format!(", {}", op.name());
        }
        if matches!(self.kind, Kind::Broadcast | Kind::Reduce | Kind::Scatter) {
            s += &format!(", root={}", self.root);
        }
        s + ")"
    }

    fn matches(&self, other: &Call) -> bool {
        self.kind == other.kind
            && self.dtype == other.dtype
            && self.op == other.op
            && self.root == other.root
            && (self.kind == Kind::AlltoAllV || self.count == other.count)
    }
}

/// Where a slot stands.
#[derive(Debug, Clone)]
pub enum Phase {
    /// Some ranks have not arrived.
    Waiting,
    /// Every rank arrived; the last one is moving the data.
    Running,
    /// Finished, with this outcome for every rank.
    Done(MockResult<()>),
    /// Given up (a rank did not arrive in time); nothing moved.
    Abandoned(MockError),
}

/// The k-th collective of a group.
#[derive(Debug)]
pub struct Slot {
    /// The stream each rank enqueued it on.
    pub streams: Vec<Option<Handle>>,
    arrivals: Vec<Option<Call>>,
    arrived: usize,
    phase: Phase,
    released: usize,
}

impl Slot {
    fn new(n: usize) -> Slot {
        Slot {
            streams: vec![None; n],
            arrivals: vec![None; n],
            arrived: 0,
            phase: Phase::Waiting,
            released: 0,
        }
    }
}

/// Queues `call` as `comm`'s next collective on `stream`.
///
/// Refuses (`HCCL_E_PARA`) a stream that already holds the same
/// collective of another rank of the group: both tasks would wait for
/// each other forever.
pub fn enqueue(comm: &Comm, stream: &Arc<Stream>, call: Call) -> MockResult<()> {
    let group = comm.group.clone();
    let rank = comm.rank as usize;
    let n = group.size();
    let mut st = group.lock();
    let seq = st.next_seq[rank] + 1;
    if let Some(slot) = st.slots.get(&seq)
        && let Some(other) = (0..n).find(|&r| r != rank && slot.streams[r] == Some(stream.handle))
    {
        return Err(para(format!(
            "stream {} already holds collective #{seq} of rank {other} of communicator {}; ranks of one communicator on the same stream would wait for each other forever (give each rank its own stream)",
            stream.handle.id(),
            group.name
        )));
    }
    let api = call.api;
    let desc = comm.describe();
    let g = group.clone();
    let task = Box::new(move || run(&g, rank, seq, call).map_err(|e| task_error(api, &desc, e)));
    stream.push(api, task).map_err(runtime_err)?;
    let slot = st.slots.entry(seq).or_insert_with(|| Slot::new(n));
    slot.streams[rank] = Some(stream.handle);
    st.next_seq[rank] = seq;
    Ok(())
}

/// The stream task of `rank`'s collective `seq`: joins the slot, moves
/// the data when it is the last to arrive, and returns the outcome
/// (HCCL-coded).
fn run(group: &Arc<Group>, rank: usize, seq: u64, call: Call) -> MockResult<()> {
    let n = group.size();
    let api = call.api;
    let deadline = Instant::now() + group.timeout();
    let mut st = group.lock();
    let Some(slot) = st.slots.get_mut(&seq) else {
        return Err(hccl_err(
            HCCL_E_INTERNAL,
            format!("collective #{seq} has no rendezvous slot"),
        ));
    };
    if matches!(slot.phase, Phase::Waiting) {
        slot.arrivals[rank] = Some(call);
        slot.arrived += 1;
    }
    if slot.arrived == n && matches!(slot.phase, Phase::Waiting) {
        slot.phase = Phase::Running;
        let calls: Vec<Call> = slot.arrivals.iter_mut().filter_map(Option::take).collect();
        drop(st);
        let result = catch_unwind(AssertUnwindSafe(|| execute(seq, &calls))).unwrap_or_else(|_| {
            Err(hccl_err(
                HCCL_E_INTERNAL,
                format!("moving the data of collective #{seq} panicked"),
            ))
        });
        st = group.lock();
        if let Some(slot) = st.slots.get_mut(&seq) {
            slot.phase = Phase::Done(result);
        }
        group.changed.notify_all();
    } else {
        while let Some(slot) = st.slots.get_mut(&seq) {
            match slot.phase {
                Phase::Done(_) | Phase::Abandoned(_) => break,
                Phase::Running => {
                    st = group.changed.wait(st).unwrap_or_else(|e| e.into_inner());
                }
                Phase::Waiting => {
                    // Ranks destroyed before queueing this collective never join.
                    let gone: Vec<usize> = {
                        let state = &*st;
                        let slot = &state.slots[&seq];
                        (0..n)
                            .filter(|&q| {
                                slot.arrivals[q].is_none()
                                    && state.destroyed[q]
                                    && state.next_seq[q] < seq
                            })
                            .collect()
                    };
                    if !gone.is_empty() {
                        if let Some(slot) = st.slots.get_mut(&seq) {
                            slot.phase = Phase::Abandoned(hccl_err(
                                HCCL_E_UNAVAIL,
                                format!(
                                    "collective #{seq} ({api}) of communicator {}: ranks {gone:?} were destroyed (HcclCommDestroy) without joining it",
                                    group.name
                                ),
                            ));
                        }
                        group.changed.notify_all();
                        continue;
                    }
                    let (g, expired) = group.wait_until(st, deadline);
                    st = g;
                    if !expired {
                        continue;
                    }
                    let Some(slot) = st.slots.get_mut(&seq) else {
                        break;
                    };
                    if matches!(slot.phase, Phase::Waiting) {
                        let missing: Vec<usize> =
                            (0..n).filter(|&r| slot.arrivals[r].is_none()).collect();
                        slot.phase = Phase::Abandoned(hccl_err(
                            HCCL_E_TIMEOUT,
                            format!(
                                "collective #{seq} ({api}) of communicator {}: ranks {missing:?} did not join within {} ms",
                                group.name,
                                group.timeout().as_millis()
                            ),
                        ));
                        group.changed.notify_all();
                    }
                }
            }
        }
    }
    let result = match st.slots.get_mut(&seq) {
        Some(slot) => {
            let r = match &slot.phase {
                Phase::Done(r) => r.clone(),
                Phase::Abandoned(e) => Err(e.clone()),
                _ => Err(hccl_err(HCCL_E_INTERNAL, "collective left unfinished")),
            };
            slot.released += 1;
            if slot.released == n {
                st.slots.remove(&seq);
            }
            r
        }
        None => Err(hccl_err(HCCL_E_INTERNAL, "collective slot vanished")),
    };
    if let Err(e) = &result {
        Group::record_async_error(&mut st, rank, e.code as HcclResult);
    }
    result
}

/// Copies `len` bytes at `addr` (a device range checked at enqueue) into
/// a new host buffer.
pub(crate) fn read(addr: usize, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    if len > 0 {
        // SAFETY: the range was checked at enqueue to lie in a live device
        // allocation that aclrtFree keeps until the owning rank's task ends;
        // `v` is a distinct host buffer of `len` bytes.
        unsafe { std::ptr::copy_nonoverlapping(addr as *const u8, v.as_mut_ptr(), len) };
    }
    v
}

/// Copies `data` to `addr`.
fn write(addr: usize, data: &[u8]) {
    if !data.is_empty() {
        // SAFETY: as in `read`: the destination range was checked at enqueue
        // and stays allocated while the owning rank's task is running; `data`
        // is host memory of our own, so the ranges do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), addr as *mut u8, data.len()) };
    }
}

/// Moves the data of collective `seq` given every rank's call (rank order).
fn execute(seq: u64, calls: &[Call]) -> MockResult<()> {
    let n = calls.len();
    let c0 = &calls[0];
    if let Some((r, c)) = calls.iter().enumerate().find(|(_, c)| !c.matches(c0)) {
        return Err(para(format!(
            "collective #{seq} does not match across ranks: rank 0 called {} but rank {r} called {}",
            c0.describe(),
            c.describe()
        )));
    }
    let w = c0.dtype.width();
    let bytes = c0.dtype.bytes(c0.count)?;
    let op = c0.op.unwrap_or(ReduceOp::Sum);
    let root = c0.root as usize;
    match c0.kind {
        Kind::Barrier => {}
        Kind::AllReduce => {
            let ins: Vec<Vec<u8>> = calls.iter().map(|c| read(c.send, bytes)).collect();
            let refs: Vec<&[u8]> = ins.iter().map(Vec::as_slice).collect();
            let out = reduce(c0.dtype, op, &refs)?;
            calls.iter().for_each(|c| write(c.recv, &out));
        }
        Kind::Reduce => {
            let ins: Vec<Vec<u8>> = calls.iter().map(|c| read(c.send, bytes)).collect();
            let refs: Vec<&[u8]> = ins.iter().map(Vec::as_slice).collect();
            let out = reduce(c0.dtype, op, &refs)?;
            write(calls[root].recv, &out);
        }
        Kind::Broadcast => {
            let data = read(calls[root].send, bytes);
            for (r, c) in calls.iter().enumerate() {
                if r != root {
                    write(c.recv, &data);
                }
            }
        }
        Kind::AllGather => {
            let all: Vec<u8> = calls.iter().flat_map(|c| read(c.send, bytes)).collect();
            calls.iter().for_each(|c| write(c.recv, &all));
        }
        Kind::ReduceScatter => {
            let ins: Vec<Vec<u8>> = calls.iter().map(|c| read(c.send, bytes * n)).collect();
            let refs: Vec<&[u8]> = ins.iter().map(Vec::as_slice).collect();
            let total = reduce(c0.dtype, op, &refs)?;
            for (j, c) in calls.iter().enumerate() {
                write(c.recv, &total[j * bytes..(j + 1) * bytes]);
            }
        }
        Kind::Scatter => {
            let data = read(calls[root].send, bytes * n);
            for (j, c) in calls.iter().enumerate() {
                write(c.recv, &data[j * bytes..(j + 1) * bytes]);
            }
        }
        Kind::AlltoAll => {
            let ins: Vec<Vec<u8>> = calls.iter().map(|c| read(c.send, bytes * n)).collect();
            for (j, c) in calls.iter().enumerate() {
                let out: Vec<u8> = ins
                    .iter()
                    .flat_map(|i| i[j * bytes..(j + 1) * bytes].iter().copied())
                    .collect();
                write(c.recv, &out);
            }
        }
        Kind::AlltoAllV => {
            let vs: Vec<&VCounts> = calls
                .iter()
                .map(|c| {
                    c.v.as_ref().ok_or_else(|| {
                        hccl_err(HCCL_E_INTERNAL, "HcclAlltoAllV without its counts")
                    })
                })
                .collect::<MockResult<_>>()?;
            for i in 0..n {
                for j in 0..n {
                    if vs[j].recv_counts[i] != vs[i].send_counts[j] {
                        return Err(para(format!(
                            "collective #{seq} (HcclAlltoAllV): rank {i} sends {} elements to rank {j}, but rank {j} expects {} from rank {i} (recvCounts[{i}])",
                            vs[i].send_counts[j], vs[j].recv_counts[i]
                        )));
                    }
                }
            }
            // segments[i][j]: what rank i sends to rank j.
            let segments: Vec<Vec<Vec<u8>>> = (0..n)
                .map(|i| {
                    (0..n)
                        .map(|j| match vs[i].send_counts[j] as usize {
                            // Empty parts may carry any displacement.
                            0 => Vec::new(),
                            c => read(calls[i].send + vs[i].sdispls[j] as usize * w, c * w),
                        })
                        .collect()
                })
                .collect();
            for j in 0..n {
                for (i, seg) in segments.iter().enumerate() {
                    if !seg[j].is_empty() {
                        write(calls[j].recv + vs[j].rdispls[i] as usize * w, &seg[j]);
                    }
                }
            }
        }
    }
    Ok(())
}
