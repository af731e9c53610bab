//! Race detection: happens-before between streams, and between streams and
//! the host, decided with vector clocks at enqueue time.
//!
//! Detection follows host program order, not timing: a race is reported
//! when two accesses to the same device memory, at least one a write, are
//! not ordered by the rules below, even if the first task happened to
//! finish before the second was queued.
//!
//! # Clocks
//! - Every stream has a vector clock (stream id -> epoch). Each queued
//!   task that touches device memory advances the stream's own entry and
//!   records its accesses at that epoch.
//! - Stream order: tasks of one stream never race with each other.
//! - `aclrtRecordEvent` captures the recording stream's clock;
//!   `aclrtStreamWaitEvent` joins it into the waiting stream's clock
//!   (`aclrtResetEvent` forgets it: a later wait orders nothing).
//! - The host has one clock, shared by every host thread: the mock cannot
//!   see the mutexes, channels or joins that order host threads, so it
//!   treats all host threads as one ordered program (no false reports for
//!   work handed between threads; a race between two host threads' streams
//!   is still found when no synchronisation orders it). The host clock
//!   absorbs the stream's clock at `aclrtSynchronizeStream`, the event's at
//!   `aclrtSynchronizeEvent`, every stream of the device at
//!   `aclrtSynchronizeDevice`, the observed one at an `aclrtStreamQuery` or
//!   an event query that reports completion, and the stream's at an
//!   asynchronous copy with pageable memory (which returns after the copy
//!   ran). Destroying a stream (or resetting its device) drains it, so its
//!   clock joins the host's and its accesses stop counting (a forced
//!   destruction drops its queued waits: only its own accesses stop
//!   counting).
//! - Every enqueue starts from at least the host clock, so a synchronous
//!   host access (`aclrtMemcpy`, `aclrtMemcpy2d`, `aclrtMemset`) is ordered
//!   before all later stream work; such host accesses are only checked
//!   (against queued work not yet ordered before the host), never stored.
//! - HCCL collectives: a collective completes only when every rank joined,
//!   so after it each participant's stream knows every participant's clock
//!   as of its entry. The k-th collective of a group keeps the join of the
//!   entry clocks; each rank's stream absorbs it at its next tracked call.
//!   A send and its matching receive (the k-th message from one rank to
//!   another) are a rendezvous of those two ranks in the same way: HCCL's
//!   point-to-point transfer completes on both sides together.
//!   While some rank has not queued its part yet, the accesses its peers
//!   queue after the rendezvous cannot be judged against that rank's
//!   earlier work (it may still join), so they are not reported against it.
//!   Communicators with ranks in other processes track only this rank's
//!   own buffers: no clocks cross processes.
//!
//! # What is tracked
//! Device memory and pinned host memory (from `aclrtMallocHost`): both
//! sides of every copy and memset, async and synchronous, that lie in such
//! memory, 2-D copies as the hull of their rows, operator tensors as the
//! hull of their views (inputs read, outputs and in-place tensors written,
//! the workspace written), collective and send/receive buffers (send read,
//! receive written). So an asynchronous device-to-host copy into a pinned
//! block races with a second stream's copy out of it unless an event or a
//! synchronization orders them. Pageable host memory is not tracked (the
//! mock does not know its extent), and neither are plain CPU loads and
//! stores: reading the host side of an asynchronous device-to-host copy is
//! not checkable. `aclrtFree` or `aclrtFreeHost` of memory whose queued
//! accesses are not ordered before the host is a race too: CANN releases
//! at once and does not wait for queued work (the mock defers the release
//! for its own safety, but reports the bug).
//!
//! # Reports
//! The call that queues the racing task (or the free, or the synchronous
//! copy) fails, in `report` mode without queueing anything, with the code
//! other sanitizer reports of that family use for a bad pointer:
//! `ACL_ERROR_RT_PARAM_INVALID` (107000) for runtime calls,
//! `ACLNN_ERR_PARAM_INVALID` (161002) for operators, `HCCL_E_PARA` for
//! HCCL. In `off` mode nothing is tracked at all.
//!
//! # Bounds
//! Accesses are kept per allocation (found with `memory::allocation_of`),
//! at most [`MAX_ACCESSES`] each, oldest dropped first. An access is
//! dropped as soon as it is ordered before the host clock (it can race
//! with nothing queued later), when a later access of the same stream
//! covers it, or when a later ordered write covers it. Clock entries of
//! destroyed streams are removed. Lock order: this module's state, then
//! the allocation registry; callers may hold the aclnn registry, an HCCL
//! group lock or the runtime lock, none of which this module takes.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use ascend_sys::aclError;

use crate::error::MockResult;
pub(crate) use crate::hooks::Access;
use crate::hooks::{self, Observer};
use crate::memory::{self, Allocation, MemKind};
use crate::sanitizer::{self, CallSite, ReportClass, violation};
use crate::stream::Stream;

/// The clock entry of the host (stream ids start at 1).
const HOST: u64 = 0;

/// The most accesses remembered per allocation.
pub const MAX_ACCESSES: usize = 256;

/// A vector clock: epochs by stream id, sorted by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Clock(Vec<(u64, u64)>);

impl Clock {
    fn get(&self, id: u64) -> u64 {
        match self.0.binary_search_by_key(&id, |e| e.0) {
            Ok(i) => self.0[i].1,
            Err(_) => 0,
        }
    }

    fn tick(&mut self, id: u64) -> u64 {
        match self.0.binary_search_by_key(&id, |e| e.0) {
            Ok(i) => {
                self.0[i].1 += 1;
                self.0[i].1
            }
            Err(i) => {
                self.0.insert(i, (id, 1));
                1
            }
        }
    }

    fn join(&mut self, other: &Clock) {
        if other.0.is_empty() {
            return;
        }
        let mut out = Vec::with_capacity(self.0.len().max(other.0.len()));
        let (mut a, mut b) = (self.0.iter().peekable(), other.0.iter().peekable());
        loop {
            match (a.peek(), b.peek()) {
                (Some(&&x), Some(&&y)) => {
                    if x.0 == y.0 {
                        out.push((x.0, x.1.max(y.1)));
                        a.next();
                        b.next();
                    } else if x.0 < y.0 {
                        out.push(x);
                        a.next();
                    } else {
                        out.push(y);
                        b.next();
                    }
                }
                (Some(&&x), None) => {
                    out.push(x);
                    a.next();
                }
                (None, Some(&&y)) => {
                    out.push(y);
                    b.next();
                }
                (None, None) => break,
            }
        }
        self.0 = out;
    }

    fn remove(&mut self, id: u64) {
        if let Ok(i) = self.0.binary_search_by_key(&id, |e| e.0) {
            self.0.remove(i);
        }
    }
}

/// Identifies one rendezvous of an HCCL group's ranks in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum JoinKey {
    /// The `seq`-th collective of the group.
    Collective { group: usize, seq: u64 },
    /// The `seq`-th message from rank `from` to rank `to` of the group:
    /// the send and its matching receive.
    Message {
        group: usize,
        from: u32,
        to: u32,
        seq: u64,
    },
}

/// One remembered access of a queued task.
#[derive(Debug, Clone)]
struct Recorded {
    lo: usize,
    hi: usize,
    write: bool,
    stream: u64,
    epoch: u64,
    call: Option<CallSite>,
    /// Rendezvous queued before it on its stream that some rank had not
    /// joined yet when it was queued.
    after: Vec<JoinKey>,
}

impl Recorded {
    fn describe(&self) -> String {
        let call = self
            .call
            .map_or_else(|| "an internal call".to_string(), |c| c.to_string());
        format!(
            "{call} on stream {} {} [{:#x}+{})",
            self.stream,
            if self.write { "writes" } else { "reads" },
            self.lo,
            self.hi - self.lo
        )
    }
}

/// The remembered accesses of one allocation.
#[derive(Debug, Default)]
struct Block {
    serial: u64,
    accesses: Vec<Recorded>,
    /// The host clock version of the last [`State::prune`].
    pruned_at: u64,
}

#[derive(Debug, Default)]
struct StreamState {
    clock: Clock,
    /// The host clock version last joined.
    host_seen: u64,
    /// Rendezvous queued on the stream whose clocks it has not absorbed
    /// in full (some rank had not joined at the last look).
    pending: Vec<JoinKey>,
}

#[derive(Debug)]
struct Collective {
    clock: Clock,
    ranks: usize,
    arrived: usize,
    /// The streams of the participants that arrived.
    streams: Vec<u64>,
    /// Participants that absorbed the complete clock.
    absorbed: usize,
}

#[derive(Default)]
struct State {
    host: Clock,
    /// Bumped at every change of `host`.
    host_version: u64,
    streams: HashMap<u64, StreamState>,
    events: HashMap<u64, Clock>,
    blocks: HashMap<usize, Block>,
    collectives: HashMap<JoinKey, Collective>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fn lock() -> MutexGuard<'static, Option<State>> {
    // Whoever builds tracking state has the core report to the tracker
    // from then on (aclInit installs it first; this covers every other
    // order).
    install();
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` on the state when the sanitizer is on.
fn with_state<T>(f: impl FnOnce(&mut State) -> T) -> Option<T> {
    if !sanitizer::enabled() {
        return None;
    }
    let mut g = lock();
    Some(f(g.get_or_insert_with(State::default)))
}

/// A stream's or event's clock, taken before a wait, for the host to
/// absorb once the wait succeeded ([`host_absorbs`]).
#[derive(Debug, Clone)]
pub(crate) struct Snapshot(Clock);

impl State {
    /// Brings stream `id`'s clock up to the host clock and the complete
    /// collectives it took part in.
    fn refresh(&mut self, id: u64) -> &mut StreamState {
        let State {
            host,
            host_version,
            streams,
            collectives,
            ..
        } = self;
        let st = streams.entry(id).or_default();
        if st.host_seen != *host_version {
            st.clock.join(host);
            st.host_seen = *host_version;
        }
        if !st.pending.is_empty() {
            let clock = &mut st.clock;
            st.pending.retain(|key| {
                let Some(c) = collectives.get_mut(key) else {
                    return false;
                };
                clock.join(&c.clock);
                if c.arrived < c.ranks {
                    return true;
                }
                c.absorbed += 1;
                if c.absorbed >= c.ranks {
                    collectives.remove(key);
                }
                false
            });
        }
        st
    }

    /// Whether some rank has not joined rendezvous `k` yet.
    fn incomplete(&self, k: &JoinKey) -> bool {
        self.collectives.get(k).is_some_and(|c| c.arrived < c.ranks)
    }

    fn join_host(&mut self, clock: &Clock) {
        self.host.join(clock);
        self.host_version += 1;
    }

    /// Whether `o` is ordered before an access whose stream has `clock`.
    fn ordered(&self, o: &Recorded, clock: &Clock) -> bool {
        if !self.streams.contains_key(&o.stream) {
            // Its stream was destroyed: drained, and absorbed by the host.
            return true;
        }
        if clock.get(o.stream) >= o.epoch {
            return true;
        }
        // After a rendezvous that some rank has not joined yet: that
        // rank's earlier work may still become ordered before it.
        o.after.iter().any(|k| self.incomplete(k))
    }

    /// The first remembered access of `block` that races with an access
    /// to `range` (a write if `write`) by `stream` (HOST for the host) at
    /// `clock`. `waiting` are the incomplete rendezvous queued before the
    /// access on its stream: an access of a stream that has not arrived at
    /// one of them yet may still become ordered before it (that stream's
    /// rank may still join), so it is not judged.
    fn conflict<'b>(
        &self,
        block: &'b Block,
        stream: u64,
        clock: &Clock,
        waiting: &[JoinKey],
        range: std::ops::Range<usize>,
        write: bool,
    ) -> Option<&'b Recorded> {
        block.accesses.iter().find(|o| {
            o.stream != stream
                && o.lo < range.end
                && range.start < o.hi
                && (o.write || write)
                && !self.ordered(o, clock)
                && !self.may_join(o.stream, waiting)
        })
    }

    /// Whether `stream` has not arrived yet at one of the incomplete
    /// rendezvous `waiting`.
    fn may_join(&self, stream: u64, waiting: &[JoinKey]) -> bool {
        waiting.iter().any(|k| {
            self.collectives
                .get(k)
                .is_some_and(|c| c.arrived < c.ranks && !c.streams.contains(&stream))
        })
    }

    /// Forgets accesses ordered before the host clock (once per change of
    /// the host clock; accesses of destroyed streams are removed by
    /// [`stream_gone`]).
    fn prune(&self, block: &mut Block) {
        if block.pruned_at == self.host_version {
            return;
        }
        block.pruned_at = self.host_version;
        let host = &self.host;
        block.accesses.retain(|o| host.get(o.stream) < o.epoch);
    }
}

/// The live device allocation holding `addr`, if any.
/// The allocation that tracks accesses at `addr`: device memory or pinned
/// host memory (pageable host memory has no registered extent).
fn tracked_allocation(addr: usize) -> Option<Allocation> {
    memory::allocation_of(addr)
        .filter(|a| matches!(a.kind, MemKind::Device(_) | MemKind::PinnedHost))
}

/// "a 4128-byte allocation at 0x... (device memory of device 0, allocated
/// by aclrtMalloc (call #17))".
fn describe_block(a: &Allocation) -> String {
    let origin = a
        .origin
        .map_or_else(|| "an internal call".to_string(), |c| c.to_string());
    format!(
        "a {}-byte allocation at {:#x} ({}, allocated by {origin})",
        a.size,
        a.base,
        a.describe_kind()
    )
}

fn current_call_name() -> String {
    sanitizer::current_call().map_or_else(|| "an internal call".to_string(), |c| c.to_string())
}

/// The accesses among `accesses` to device or pinned host memory, clipped
/// to their allocation.
fn tracked(accesses: &[Access]) -> Vec<(Access, Allocation)> {
    accesses
        .iter()
        .filter(|a| a.len > 0)
        .filter_map(|a| {
            let alloc = tracked_allocation(a.addr)?;
            let end = a.addr.saturating_add(a.len).min(alloc.base + alloc.size);
            Some((
                Access {
                    addr: a.addr,
                    len: end - a.addr,
                    write: a.write,
                },
                alloc,
            ))
        })
        .collect()
}

/// Checks the accesses of a task about to be queued on `stream`, queues it
/// with `push` when none races, and records them. A race is a report and
/// the error `code`; nothing is queued then.
pub(crate) fn queue<T>(
    stream: &Stream,
    accesses: &[Access],
    code: aclError,
    push: impl FnOnce() -> MockResult<T>,
) -> MockResult<T> {
    queue_joining(stream, accesses, code, &[], push)
}

/// Like [`queue`], for a rank's part of the rendezvous `joins` (each with
/// its number of participants: the group's size for a collective, 2 for a
/// message): once every participant of one has joined, the stream also
/// knows every participant's clock as of its entry.
pub(crate) fn queue_joining<T>(
    stream: &Stream,
    accesses: &[Access],
    code: aclError,
    joins: &[(JoinKey, usize)],
    push: impl FnOnce() -> MockResult<T>,
) -> MockResult<T> {
    queue_on(stream.handle.id(), accesses, code, joins, push)
}

/// [`queue_joining`] for the stream with id `id`.
fn queue_on<T>(
    id: u64,
    accesses: &[Access],
    code: aclError,
    joins: &[(JoinKey, usize)],
    push: impl FnOnce() -> MockResult<T>,
) -> MockResult<T> {
    if !sanitizer::enabled() {
        return push();
    }
    let touched = tracked(accesses);
    let mut g = lock();
    let state = g.get_or_insert_with(State::default);
    state.refresh(id);
    let waiting: Vec<JoinKey> = state.streams[&id]
        .pending
        .iter()
        .filter(|k| state.incomplete(k))
        .copied()
        .collect();
    {
        let clock = &state.streams[&id].clock;
        for (a, alloc) in &touched {
            let Some(block) = state.blocks.get(&alloc.base) else {
                continue;
            };
            if block.serial != alloc.serial {
                continue;
            }
            let (lo, hi) = (a.addr, a.addr + a.len);
            if let Some(o) = state.conflict(block, id, clock, &waiting, lo..hi, a.write) {
                let text = format!(
                    "{} on stream {id} {} [{lo:#x}+{}) of {} while {} with no event or synchronization ordering them",
                    current_call_name(),
                    if a.write { "writes" } else { "reads" },
                    a.len,
                    describe_block(alloc),
                    o.describe()
                );
                drop(g);
                return Err(violation(ReportClass::Race, code, &text));
            }
        }
    }
    let out = push()?;
    let call = sanitizer::current_call();
    let epoch = state
        .streams
        .get_mut(&id)
        .expect("refreshed above")
        .clock
        .tick(id);
    let after = waiting;
    for (a, alloc) in &touched {
        let rec = Recorded {
            lo: a.addr,
            hi: a.addr + a.len,
            write: a.write,
            stream: id,
            epoch,
            call,
            after: after.clone(),
        };
        let mut block = state.blocks.remove(&alloc.base).unwrap_or_default();
        if block.serial != alloc.serial {
            block = Block {
                serial: alloc.serial,
                ..Block::default()
            };
        }
        state.prune(&mut block);
        let clock = &state.streams[&id].clock;
        block.accesses.retain(|o| {
            let covered = rec.lo <= o.lo && o.hi <= rec.hi;
            let same = || o.stream == id && (rec.write || !o.write);
            let overwritten = || rec.write && clock.get(o.stream) >= o.epoch;
            !(covered && (same() || overwritten()))
        });
        if block.accesses.len() >= MAX_ACCESSES {
            block.accesses.remove(0);
        }
        block.accesses.push(rec);
        state.blocks.insert(alloc.base, block);
    }
    if !joins.is_empty() {
        let clock = state.streams[&id].clock.clone();
        for &(key, ranks) in joins {
            let c = state.collectives.entry(key).or_insert_with(|| Collective {
                clock: Clock::default(),
                ranks,
                arrived: 0,
                streams: Vec::new(),
                absorbed: 0,
            });
            c.clock.join(&clock);
            c.arrived += 1;
            c.streams.push(id);
        }
        if let Some(st) = state.streams.get_mut(&id) {
            st.pending.extend(joins.iter().map(|j| j.0));
        }
    }
    Ok(out)
}

/// Checks synchronous host accesses (`aclrtMemcpy`, `aclrtMemset`, ...)
/// against queued work: a race is a report and the error `code`.
pub(crate) fn host(accesses: &[Access], code: aclError) -> MockResult<()> {
    if !sanitizer::enabled() {
        return Ok(());
    }
    let touched = tracked(accesses);
    if touched.is_empty() {
        return Ok(());
    }
    let g = lock();
    let Some(state) = g.as_ref() else {
        return Ok(());
    };
    for (a, alloc) in &touched {
        let Some(block) = state.blocks.get(&alloc.base) else {
            continue;
        };
        if block.serial != alloc.serial {
            continue;
        }
        let (lo, hi) = (a.addr, a.addr + a.len);
        if let Some(o) = state.conflict(block, HOST, &state.host, &[], lo..hi, a.write) {
            let text = format!(
                "{} on the host {} [{lo:#x}+{}) of {} while {}, still queued, with no synchronization ordering it before the host",
                current_call_name(),
                if a.write { "writes" } else { "reads" },
                a.len,
                describe_block(alloc),
                o.describe()
            );
            drop(g);
            return Err(violation(ReportClass::Race, code, &text));
        }
    }
    Ok(())
}

/// Checks a free of the device (`device`) or pinned host allocation
/// starting at `ptr` against queued work (a race is a report and the error
/// `code`), and forgets the allocation's accesses when it may go. A pointer
/// of the other kind is left to the free's own checks.
pub(crate) fn free(ptr: usize, device: bool, code: aclError) -> MockResult<()> {
    if !sanitizer::enabled() {
        return Ok(());
    }
    let Some(alloc) = tracked_allocation(ptr)
        .filter(|a| a.base == ptr && matches!(a.kind, MemKind::Device(_)) == device)
    else {
        return Ok(());
    };
    let mut g = lock();
    let Some(state) = g.as_mut() else {
        return Ok(());
    };
    let Some(block) = state.blocks.get(&alloc.base) else {
        return Ok(());
    };
    if block.serial == alloc.serial
        && let Some(o) = state.conflict(
            block,
            HOST,
            &state.host,
            &[],
            alloc.base..alloc.base + alloc.size,
            true,
        )
    {
        let text = format!(
            "{} frees {} while {}, still queued, may use it: no synchronization orders that work before the free",
            current_call_name(),
            describe_block(&alloc),
            o.describe()
        );
        drop(g);
        return Err(violation(ReportClass::Race, code, &text));
    }
    state.blocks.remove(&alloc.base);
    Ok(())
}

/// Forgets the accesses of allocations released without a free (device
/// reset, finalize).
fn forget_blocks(bases: &[usize]) {
    let mut g = lock();
    if let Some(state) = g.as_mut() {
        for b in bases {
            state.blocks.remove(b);
        }
    }
}

/// Queues an event record with `push` and captures `stream`'s clock for
/// the event.
fn record_event(
    event: u64,
    stream: u64,
    push: &mut dyn FnMut() -> MockResult<()>,
) -> MockResult<()> {
    if !sanitizer::enabled() {
        return push();
    }
    let mut g = lock();
    push()?;
    let state = g.get_or_insert_with(State::default);
    let clock = state.refresh(stream).clock.clone();
    state.events.insert(event, clock);
    Ok(())
}

/// Queues a wait for `event` on `stream` with `push` and joins the event's
/// captured clock into the stream's.
fn wait_event(event: u64, stream: u64, push: &mut dyn FnMut() -> MockResult<()>) -> MockResult<()> {
    if !sanitizer::enabled() {
        return push();
    }
    let mut g = lock();
    push()?;
    let state = g.get_or_insert_with(State::default);
    if let Some(clock) = state.events.get(&event).cloned() {
        state.refresh(stream).clock.join(&clock);
    }
    Ok(())
}

/// Forgets the clock of `event` (reset or destroyed): a later wait orders
/// nothing until it is recorded again.
pub(crate) fn forget_event(event: u64) {
    with_state(|s| s.events.remove(&event));
}

/// The clock of the stream with id `stream` as of now (everything queued
/// on it so far).
fn snapshot_of(stream: u64) -> Option<Snapshot> {
    with_state(|s| Snapshot(s.refresh(stream).clock.clone()))
}

/// The clock captured by the latest record of `event`.
pub(crate) fn event_snapshot(event: u64) -> Option<Snapshot> {
    with_state(|s| s.events.get(&event).cloned().map(Snapshot)).flatten()
}

/// The host has seen the work of `snapshot` complete.
pub(crate) fn host_absorbs(snapshot: Option<Snapshot>) {
    if let Some(Snapshot(clock)) = snapshot {
        with_state(|s| s.join_host(&clock));
    }
}

/// Stream `id` was destroyed and its worker stopped: its accesses stop
/// counting and its entries leave every clock. When it was `drained` (every
/// queued task ran, event waits included), the host also absorbs its clock:
/// the work it waited for on other streams is complete too. A forced
/// destruction drops queued waits, so then nothing else is learnt.
pub(crate) fn stream_gone(id: u64, drained: bool) {
    let mut g = lock();
    let Some(state) = g.as_mut() else { return };
    let Some(st) = state.streams.remove(&id) else {
        return;
    };
    if drained {
        state.host.join(&st.clock);
    }
    state.host.remove(id);
    state.host_version += 1;
    for s in state.streams.values_mut() {
        s.clock.remove(id);
    }
    for e in state.events.values_mut() {
        e.remove(id);
    }
    for c in state.collectives.values_mut() {
        c.clock.remove(id);
    }
    for b in state.blocks.values_mut() {
        b.accesses.retain(|o| o.stream != id);
    }
    state.blocks.retain(|_, b| !b.accesses.is_empty());
}

/// Forgets everything (at `aclFinalize`).
pub(crate) fn clear() {
    *lock() = None;
}

/// The race tracker as the device core's observer (see `crate::hooks`):
/// the core tells it of event records and waits, event resets, host
/// synchronisations, streams gone and finalisation.
struct Tracker;

static TRACKER: Tracker = Tracker;

/// Installs the race tracker as the device core's observer (at `aclInit`,
/// and whenever tracking state is first built).
pub(crate) fn install() {
    hooks::install(&TRACKER);
}

impl Observer for Tracker {
    fn queue(
        &self,
        stream: u64,
        accesses: &[Access],
        code: aclError,
        push: &mut dyn FnMut() -> MockResult<u64>,
    ) -> MockResult<u64> {
        queue_on(stream, accesses, code, &[], push)
    }

    fn host_access(&self, accesses: &[Access], code: aclError) -> MockResult<()> {
        host(accesses, code)
    }

    fn free(&self, ptr: usize, device: bool, code: aclError) -> MockResult<()> {
        free(ptr, device, code)
    }

    fn record_event(
        &self,
        event: u64,
        stream: u64,
        push: &mut dyn FnMut() -> MockResult<()>,
    ) -> MockResult<()> {
        record_event(event, stream, push)
    }

    fn wait_event(
        &self,
        event: u64,
        stream: u64,
        push: &mut dyn FnMut() -> MockResult<()>,
    ) -> MockResult<()> {
        wait_event(event, stream, push)
    }

    fn event_forgotten(&self, event: u64) {
        forget_event(event);
    }

    fn synchronize(&self, stream: u64, sync: &mut dyn FnMut() -> bool) {
        let snapshot = snapshot_of(stream);
        if sync() {
            host_absorbs(snapshot);
        }
    }

    fn synchronize_event(&self, event: u64, sync: &mut dyn FnMut() -> bool) {
        let snapshot = event_snapshot(event);
        if sync() {
            host_absorbs(snapshot);
        }
    }

    fn blocks_released(&self, bases: &[usize]) {
        forget_blocks(bases);
    }

    fn stream_gone(&self, stream: u64, drained: bool) {
        stream_gone(stream, drained);
    }

    fn finalized(&self) {
        clear();
    }
}

#[cfg(test)]
mod tests;
