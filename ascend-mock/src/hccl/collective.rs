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
//! task is inside `run`, so every buffer is still valid (see the module
//! documentation of `hccl`).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Instant;

use ascend_sys::*;

use super::comm::{Comm, Group};
use super::dtype::{DataType, ReduceOp, reduce};
use super::link::ROOT_GRACE;
use super::wire::{CallDesc, Msg};
use super::{hccl_err, para, runtime_err, task_error};
use crate::error::{MockError, MockResult};
use crate::runtime::Handle;
use crate::sanitizer::race::{self, Access, JoinKey};
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

impl Kind {
    /// The C function of this kind.
    pub fn api(self) -> &'static str {
        match self {
            Kind::AllReduce => "HcclAllReduce",
            Kind::Broadcast => "HcclBroadcast",
            Kind::AllGather => "HcclAllGather",
            Kind::ReduceScatter => "HcclReduceScatter",
            Kind::Reduce => "HcclReduce",
            Kind::Scatter => "HcclScatter",
            Kind::AlltoAll => "HcclAlltoAll",
            Kind::AlltoAllV => "HcclAlltoAllV",
            Kind::Barrier => "HcclBarrier",
        }
    }
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
    if group.link.is_some() {
        let api = call.api;
        let desc = comm.describe();
        let g = group.clone();
        // Peers in other processes: only this rank's own accesses are
        // tracked (no join of clocks across processes).
        let accesses = accesses(&call, rank, n)?;
        let task = Box::new(move || {
            run_remote(&g, rank, seq, call).map_err(|e| task_error(api, &desc, e))
        });
        race::queue(stream, &accesses, HCCL_E_PARA as aclError, || {
            stream.push_device(api, task).map_err(runtime_err)
        })?;
        st.next_seq[rank] = seq;
        return Ok(());
    }
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
    let accesses = accesses(&call, rank, n)?;
    let task = Box::new(move || run(&g, rank, seq, call).map_err(|e| task_error(api, &desc, e)));
    let key = JoinKey::Collective {
        group: Arc::as_ptr(&group) as usize,
        seq,
    };
    race::queue_joining(
        stream,
        &accesses,
        HCCL_E_PARA as aclError,
        &[(key, n)],
        || stream.push_device(api, task).map_err(runtime_err),
    )?;
    let slot = st.slots.entry(seq).or_insert_with(|| Slot::new(n));
    slot.streams[rank] = Some(stream.handle);
    st.next_seq[rank] = seq;
    Ok(())
}

/// What `rank`'s part of a collective does to its own buffers (send read,
/// receive written), for race detection.
fn accesses(call: &Call, rank: usize, n: usize) -> MockResult<Vec<Access>> {
    let bytes = call.dtype.bytes(call.count)?;
    let times_n = |b: usize| {
        b.checked_mul(n)
            .ok_or_else(|| para(format!("{} times {n} ranks overflows", call.count)))
    };
    let root = call.root as usize == rank;
    let (send, recv) = match call.kind {
        Kind::Barrier => (0, 0),
        Kind::AllReduce => (bytes, bytes),
        Kind::Broadcast if root => (bytes, 0),
        Kind::Broadcast => (0, bytes),
        Kind::AllGather => (bytes, times_n(bytes)?),
        Kind::ReduceScatter => (times_n(bytes)?, bytes),
        Kind::Reduce => (bytes, if root { bytes } else { 0 }),
        Kind::Scatter => (if root { times_n(bytes)? } else { 0 }, bytes),
        Kind::AlltoAll => (times_n(bytes)?, times_n(bytes)?),
        Kind::AlltoAllV => {
            let w = call.dtype.width() as u64;
            let span = |counts: &[u64], displs: &[u64]| {
                counts
                    .iter()
                    .zip(displs)
                    .filter(|(c, _)| **c > 0)
                    .map(|(c, d)| c.saturating_add(*d).saturating_mul(w))
                    .max()
                    .unwrap_or(0) as usize
            };
            match &call.v {
                Some(v) => (
                    span(&v.send_counts, &v.sdispls),
                    span(&v.recv_counts, &v.rdispls),
                ),
                None => (0, 0),
            }
        }
    };
    Ok(vec![
        Access::read(call.send, send),
        Access::write(call.recv, recv),
    ])
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

/// The stream task of collective `seq` of a rank whose peers live in
/// other processes: sends its contribution to the root, waits for its
/// outcome and delivers it (HCCL-coded failures, recorded for
/// `HcclGetCommAsyncError`).
fn run_remote(group: &Arc<Group>, rank: usize, seq: u64, call: Call) -> MockResult<()> {
    let result = exchange(group, rank, seq, &call);
    if let Err(e) = &result {
        Group::record_async_error(&mut group.lock(), rank, e.code as HcclResult);
    }
    result
}

fn exchange(group: &Group, rank: usize, seq: u64, call: &Call) -> MockResult<()> {
    let result = exchange_once(group, rank, seq, call);
    // An outcome that comes after this task gave up is refused.
    group.lock().net.expected.remove(&seq);
    result
}

fn exchange_once(group: &Group, rank: usize, seq: u64, call: &Call) -> MockResult<()> {
    let n = group.size();
    let Some(link) = &group.link else {
        return Err(hccl_err(
            HCCL_E_INTERNAL,
            "remote collective without a link",
        ));
    };
    let data = contribution(call, rank, n)?;
    let timeout = group.timeout();
    // The link reader accepts an outcome of exactly this size for `seq`.
    let want = output_len(call, rank, n)? as u64;
    group.lock().net.expected.insert(seq, want);
    let contribute = Msg::Contribute {
        seq,
        timeout_ms: timeout.as_millis().max(1) as u64,
        call: CallDesc::of(call),
        data,
    };
    super::link::send_or_reason(group, link, &contribute).map_err(|e| {
        hccl_err(
            e.code as HcclResult,
            format!("collective #{seq} ({}): {}", call.api, e.message),
        )
    })?;
    let deadline = Instant::now() + timeout + ROOT_GRACE;
    let mut st = group.lock();
    let out = loop {
        if let Some(outcome) = st.net.outcomes.remove(&seq) {
            break outcome?;
        }
        if let Some(why) = &st.net.down {
            return Err(hccl_err(
                HCCL_E_TCP_TRANSFER,
                format!("collective #{seq} ({}): {why}", call.api),
            ));
        }
        let (g, expired) = group.wait_until(st, deadline);
        st = g;
        if expired && !st.net.outcomes.contains_key(&seq) {
            return Err(hccl_err(
                HCCL_E_TIMEOUT,
                format!(
                    "collective #{seq} ({}) of communicator {}: no outcome from the root process at {} within {} ms",
                    call.api,
                    group.name,
                    link.root,
                    (timeout + ROOT_GRACE).as_millis()
                ),
            ));
        }
    };
    drop(st);
    deliver(call, rank, n, &out)
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

/// Moves the data of collective `seq` given every rank's call (rank order):
/// reads every rank's contribution, combines them, then writes every
/// rank's part (all reads happen before any write).
fn execute(seq: u64, calls: &[Call]) -> MockResult<()> {
    let n = calls.len();
    check_calls(seq, calls)?;
    let inputs: Vec<Vec<u8>> = calls
        .iter()
        .enumerate()
        .map(|(r, c)| contribution(c, r, n))
        .collect::<MockResult<_>>()?;
    let outputs = combine(seq, calls, inputs)?;
    for (r, (c, out)) in calls.iter().zip(&outputs).enumerate() {
        deliver(c, r, n, out)?;
    }
    Ok(())
}

/// Checks that every rank called the same collective as rank 0.
pub(crate) fn check_calls(seq: u64, calls: &[Call]) -> MockResult<()> {
    let c0 = &calls[0];
    if let Some((r, c)) = calls.iter().enumerate().find(|(_, c)| !c.matches(c0)) {
        return Err(para(format!(
            "collective #{seq} does not match across ranks: rank 0 called {} but rank {r} called {}",
            c0.describe(),
            c.describe()
        )));
    }
    Ok(())
}

/// What rank `r` of `n` contributes to `call`, read from its device
/// buffers: its input (the root's only, for broadcast and scatter), and
/// for `HcclAlltoAllV` its non-empty parts in destination order.
pub(crate) fn contribution(call: &Call, r: usize, n: usize) -> MockResult<Vec<u8>> {
    let bytes = call.dtype.bytes(call.count)?;
    let w = call.dtype.width();
    let root = call.root as usize;
    Ok(match call.kind {
        Kind::Barrier => Vec::new(),
        Kind::AllReduce | Kind::Reduce | Kind::AllGather => read(call.send, bytes),
        Kind::ReduceScatter | Kind::AlltoAll => read(call.send, bytes * n),
        Kind::Broadcast if r == root => read(call.send, bytes),
        Kind::Scatter if r == root => read(call.send, bytes * n),
        Kind::Broadcast | Kind::Scatter => Vec::new(),
        Kind::AlltoAllV => {
            let v = vcounts(call)?;
            let mut out = Vec::new();
            for j in 0..n {
                // Empty parts may carry any displacement.
                let c = v.send_counts[j] as usize;
                if c > 0 {
                    out.extend(read(call.send + v.sdispls[j] as usize * w, c * w));
                }
            }
            out
        }
    })
}

/// The length of [`contribution`] for rank `r` of `n`, computed from the
/// call alone with checked arithmetic (for a frame from another process:
/// its payload must be this long). Refuses a root outside the ranks and
/// all-to-all-v arrays without `n` entries.
pub(crate) fn contribution_len(call: &Call, r: usize, n: usize) -> MockResult<u64> {
    let bytes = call.dtype.bytes(call.count)? as u64;
    let times_n = |b: u64| {
        b.checked_mul(n as u64)
            .ok_or_else(|| para(format!("{} bytes times {n} ranks overflows", b)))
    };
    let rooted = matches!(call.kind, Kind::Broadcast | Kind::Reduce | Kind::Scatter);
    if rooted && call.root as usize >= n {
        return Err(para(format!(
            "root {} is out of range for {n} ranks",
            call.root
        )));
    }
    let root = call.root as usize == r;
    Ok(match call.kind {
        Kind::Barrier => 0,
        Kind::AllReduce | Kind::Reduce | Kind::AllGather => bytes,
        Kind::ReduceScatter | Kind::AlltoAll => times_n(bytes)?,
        Kind::Broadcast if root => bytes,
        Kind::Scatter if root => times_n(bytes)?,
        Kind::Broadcast | Kind::Scatter => 0,
        Kind::AlltoAllV => {
            let v = vcounts(call)?;
            if [&v.send_counts, &v.sdispls, &v.recv_counts, &v.rdispls]
                .iter()
                .any(|a| a.len() != n)
            {
                return Err(para(format!(
                    "HcclAlltoAllV arrays do not have {n} entries"
                )));
            }
            v.send_counts.iter().try_fold(0u64, |acc, c| {
                call.dtype
                    .bytes(*c)
                    .ok()
                    .and_then(|b| acc.checked_add(b as u64))
                    .ok_or_else(|| para("sendCounts overflow"))
            })?
        }
    })
}

/// How many bytes rank `r` of `n` receives from `call` (what [`deliver`]
/// writes).
pub(crate) fn output_len(call: &Call, r: usize, n: usize) -> MockResult<usize> {
    let bytes = call.dtype.bytes(call.count)?;
    let root = call.root as usize;
    let times_n = || {
        bytes
            .checked_mul(n)
            .ok_or_else(|| para(format!("{bytes} bytes times {n} ranks overflows")))
    };
    Ok(match call.kind {
        Kind::Barrier => 0,
        Kind::AllReduce | Kind::ReduceScatter | Kind::Scatter => bytes,
        Kind::Reduce => {
            if r == root {
                bytes
            } else {
                0
            }
        }
        Kind::Broadcast => {
            if r == root {
                0
            } else {
                bytes
            }
        }
        Kind::AllGather | Kind::AlltoAll => times_n()?,
        Kind::AlltoAllV => vcounts(call)?
            .recv_counts
            .iter()
            .try_fold(0usize, |acc, c| acc.checked_add(call.dtype.bytes(*c).ok()?))
            .ok_or_else(|| para("recvCounts overflow"))?,
    })
}

fn vcounts(call: &Call) -> MockResult<&VCounts> {
    call.v
        .as_ref()
        .ok_or_else(|| hccl_err(HCCL_E_INTERNAL, "HcclAlltoAllV without its counts"))
}

/// Combines the contributions of every rank (rank order; `calls` already
/// checked to match) into what each rank receives. Lengths are checked,
/// since contributions may come from other processes.
pub(crate) fn combine(
    seq: u64,
    calls: &[Call],
    inputs: Vec<Vec<u8>>,
) -> MockResult<Vec<Arc<Vec<u8>>>> {
    let n = calls.len();
    let c0 = &calls[0];
    let bytes = c0.dtype.bytes(c0.count)?;
    let op = c0.op.unwrap_or(ReduceOp::Sum);
    let root = c0.root as usize;
    let expect = |r: usize, len: usize| -> MockResult<()> {
        if inputs[r].len() == len {
            Ok(())
        } else {
            Err(hccl_err(
                HCCL_E_INTERNAL,
                format!(
                    "collective #{seq} ({}): rank {r} contributed {} bytes instead of {len}",
                    c0.api,
                    inputs[r].len()
                ),
            ))
        }
    };
    let empty = || Arc::new(Vec::new());
    Ok(match c0.kind {
        Kind::Barrier => (0..n).map(|_| empty()).collect(),
        Kind::AllReduce | Kind::Reduce => {
            (0..n).try_for_each(|r| expect(r, bytes))?;
            let refs: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
            let out = Arc::new(reduce(c0.dtype, op, &refs)?);
            (0..n)
                .map(|r| {
                    if c0.kind == Kind::AllReduce || r == root {
                        out.clone()
                    } else {
                        empty()
                    }
                })
                .collect()
        }
        Kind::Broadcast => {
            expect(root, bytes)?;
            let data = Arc::new(inputs[root].clone());
            (0..n)
                .map(|r| if r == root { empty() } else { data.clone() })
                .collect()
        }
        Kind::AllGather => {
            (0..n).try_for_each(|r| expect(r, bytes))?;
            let all = Arc::new(inputs.concat());
            (0..n).map(|_| all.clone()).collect()
        }
        Kind::ReduceScatter => {
            (0..n).try_for_each(|r| expect(r, bytes * n))?;
            let refs: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
            let total = reduce(c0.dtype, op, &refs)?;
            (0..n)
                .map(|j| Arc::new(total[j * bytes..(j + 1) * bytes].to_vec()))
                .collect()
        }
        Kind::Scatter => {
            expect(root, bytes * n)?;
            (0..n)
                .map(|j| Arc::new(inputs[root][j * bytes..(j + 1) * bytes].to_vec()))
                .collect()
        }
        Kind::AlltoAll => {
            (0..n).try_for_each(|r| expect(r, bytes * n))?;
            (0..n)
                .map(|j| {
                    Arc::new(
                        inputs
                            .iter()
                            .flat_map(|i| i[j * bytes..(j + 1) * bytes].iter().copied())
                            .collect(),
                    )
                })
                .collect()
        }
        Kind::AlltoAllV => {
            let vs: Vec<&VCounts> = calls.iter().map(vcounts).collect::<MockResult<_>>()?;
            if let Some(r) = (0..n).find(|&r| {
                [
                    &vs[r].send_counts,
                    &vs[r].sdispls,
                    &vs[r].recv_counts,
                    &vs[r].rdispls,
                ]
                .iter()
                .any(|a| a.len() != n)
            }) {
                return Err(hccl_err(
                    HCCL_E_INTERNAL,
                    format!(
                        "collective #{seq} (HcclAlltoAllV): rank {r}'s arrays do not have {n} entries"
                    ),
                ));
            }
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
            // starts[i][j]: where rank i's part for rank j begins in its
            // contribution.
            let mut starts = vec![vec![0usize; n + 1]; n];
            for i in 0..n {
                for j in 0..n {
                    let len = c0.dtype.bytes(vs[i].send_counts[j])?;
                    starts[i][j + 1] = starts[i][j].checked_add(len).ok_or_else(|| {
                        para(format!("collective #{seq}: rank {i}'s parts overflow"))
                    })?;
                }
                expect(i, starts[i][n])?;
            }
            (0..n)
                .map(|j| {
                    Arc::new(
                        (0..n)
                            .flat_map(|i| inputs[i][starts[i][j]..starts[i][j + 1]].iter().copied())
                            .collect(),
                    )
                })
                .collect()
        }
    })
}

/// Writes what rank `r` of `n` receives from `call` (`out`, from
/// [`combine`]) into its device buffers.
pub(crate) fn deliver(call: &Call, r: usize, n: usize, out: &[u8]) -> MockResult<()> {
    let w = call.dtype.width();
    let want = output_len(call, r, n)?;
    if out.len() != want {
        return Err(hccl_err(
            HCCL_E_INTERNAL,
            format!(
                "{} on rank {r}: received {} bytes instead of {want}",
                call.api,
                out.len()
            ),
        ));
    }
    match call.kind {
        Kind::AlltoAllV => {
            let v = vcounts(call)?;
            let mut at = 0;
            for i in 0..n {
                let len = v.recv_counts[i] as usize * w;
                if len > 0 {
                    write(call.recv + v.rdispls[i] as usize * w, &out[at..at + len]);
                    at += len;
                }
            }
        }
        _ => write(call.recv, out),
    }
    Ok(())
}
