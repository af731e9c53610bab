//! The `runtime` fuzz target: a [`Program`] of memory operations (device
//! and pinned allocations, frees, synchronous and asynchronous copies of
//! every kind, 2-D copies, memsets) and ordering operations (event records
//! and waits, stream, event and device synchronisations) on two streams,
//! run against the mock device's exported C functions and checked against
//! a shadow model of every byte.
//!
//! What is checked:
//! - every call either succeeds or returns an error code with a non-empty
//!   message (never a panic inside the mock);
//! - the shadow model: each operation the mock accepts is applied, in
//!   program order, to a host copy of every allocation and of the pageable
//!   host buffer, with a mask of the bytes that hold known values. After the
//!   program the device is synchronised and every defined byte of every
//!   live allocation and of the host buffer must equal the model. Program
//!   order is the right order because the race checks refuse any access
//!   that is not ordered after the conflicting accesses queued before it;
//! - no false refusal: while no asynchronous work is outstanding (after a
//!   device synchronisation), a synchronous copy or memset whose pointers
//!   are live, in bounds of what was asked for, of the kind the call names,
//!   with `destMax` large enough, must succeed;
//! - after the program every allocation is freed and the mock's counts of
//!   live device and pinned allocations are back where they started.
//!
//! Pageable host memory is the one thing the mock cannot check (it trusts
//! host pointers), so the harness keeps every host range inside its own
//! buffer. A device or pinned pointer starts anywhere inside its block
//! (live or freed), and its range may run past the end; it never starts
//! past every block, where the mock would take it for host memory. The
//! freed-block history holds far more blocks than a program frees, so
//! stale pointers stay recognisable.
//!
//! Invariant: decoding never fails on any input, and the harness runs one
//! program at a time (it shares the process-wide device with
//! [`crate::harness`]).

use std::ffi::c_void;

use arbitrary::Arbitrary;
use ascend_mock::memory::MemKind;
use ascend_sys::*;

use crate::harness::{api, one_at_a_time, setup, take_message};

/// Most operations of a program.
pub const MAX_OPS: usize = 48;
/// Most live or freed allocations a program makes.
pub const MAX_SLOTS: usize = 12;
/// Most bytes asked for in one allocation.
pub const MAX_ALLOC: usize = 16 << 10;
/// The widest row and the longest pitch of a 2-D copy.
pub const MAX_ROW: usize = 1024;
/// The most rows of a 2-D copy.
pub const MAX_ROWS: usize = 32;
/// Bytes of the pageable host buffer; host ranges start in its first half
/// and never reach past it.
pub const HOST_LEN: usize = 2 * MAX_EXTENT;
/// The longest extent of one copy or memset (a 2-D copy's hull included).
pub const MAX_EXTENT: usize = MAX_ROW * MAX_ROWS;
/// The events of a program.
pub const EVENTS: usize = 3;

/// A pointer operand.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Ptr {
    /// Into allocation `slot` (modulo the allocations made so far, live or
    /// freed), `offset` bytes in (possibly past its end).
    Slot { slot: u8, offset: u16 },
    /// Into the pageable host buffer.
    Host { offset: u16 },
    /// NULL.
    Null,
}

/// Which queue an operation goes to.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Queue {
    /// The synchronous call.
    Sync,
    /// The asynchronous call on stream 0 or 1.
    Stream(bool),
}

/// One operation of a program.
#[derive(Arbitrary, Debug, Clone)]
pub enum Op {
    /// `aclrtMalloc` (or `aclrtMallocHost` when `pinned`) of `size` bytes
    /// (modulo [`MAX_ALLOC`] + 1).
    Malloc { size: u16, pinned: bool },
    /// `aclrtFree` (or `aclrtFreeHost` when `host`) of an allocation's
    /// start, or of a pointer into it.
    Free { slot: u8, host: bool, inner: bool },
    /// A copy of `len` bytes; `kind` picks an `aclrtMemcpyKind` (valid or
    /// not); `slack` is added to or taken from `len` for `destMax`.
    Copy {
        dst: Ptr,
        src: Ptr,
        len: u16,
        slack: i8,
        kind: u8,
        queue: Queue,
    },
    /// A 2-D copy of `height` rows of `width` bytes.
    Copy2d {
        dst: Ptr,
        dpitch: u16,
        src: Ptr,
        spitch: u16,
        width: u16,
        height: u8,
        kind: u8,
        queue: Queue,
    },
    /// A memset of `len` bytes to `value`.
    Memset {
        dst: Ptr,
        len: u16,
        slack: i8,
        value: u8,
        queue: Queue,
    },
    /// `aclrtRecordEvent` of event `event` on a stream.
    Record { event: u8, stream: bool },
    /// `aclrtStreamWaitEvent`: a stream waits for event `event`.
    Wait { stream: bool, event: u8 },
    /// `aclrtSynchronizeStream`.
    SyncStream { stream: bool },
    /// `aclrtSynchronizeEvent`.
    SyncEvent { event: u8 },
    /// `aclrtSynchronizeDevice`.
    SyncDevice,
}

/// The fuzz input: a program.
#[derive(Arbitrary, Debug, Clone)]
pub struct Program {
    /// The operations, at most [`MAX_OPS`] of which run.
    pub ops: Vec<Op>,
}

/// What a run did, for the tests' coverage checks.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Operations the mock accepted.
    pub accepted: usize,
    /// Operations it refused.
    pub refused: usize,
    /// Refusals whose message named a sanitizer class.
    pub reports: usize,
    /// Defined bytes compared with the model at the end.
    pub compared: usize,
    /// The messages of the first few refusals.
    pub messages: Vec<String>,
}

/// One allocation of a program, live or freed, with its model.
struct Slot {
    base: usize,
    /// Bytes asked for.
    size: usize,
    /// Bytes the mock charges and lets callers address (CANN's rule).
    cap: usize,
    pinned: bool,
    live: bool,
    /// The modelled bytes, and which of them hold known values.
    bytes: Vec<u8>,
    known: Vec<bool>,
}

/// Where a pointer operand lands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// Allocation `slot`, `offset` bytes in.
    Slot {
        slot: usize,
        offset: usize,
    },
    /// The host buffer, `offset` bytes in.
    Host {
        offset: usize,
    },
    Null,
}

/// A byte range of the model: allocation `slot` (`None`: the host
/// buffer), from `start` for `len` bytes.
#[derive(Clone, Copy, Debug)]
struct Range {
    slot: Option<usize>,
    start: usize,
    len: usize,
}

struct Run {
    slots: Vec<Slot>,
    /// The pageable host buffer the mock reads and writes.
    host: Vec<u8>,
    /// Its model (all known: it starts with a pattern).
    host_model: Vec<u8>,
    host_known: Vec<bool>,
    streams: [aclrtStream; 2],
    events: [aclrtEvent; EVENTS],
    /// No asynchronous work accepted since the last device synchronisation.
    quiet: bool,
    outcome: Outcome,
}

/// The `aclrtMemcpyKind` picked by `k`: the five kinds callers use most of
/// the time, sometimes an internal or invalid one.
fn kind_of(k: u8) -> aclrtMemcpyKind {
    match k % 16 {
        0..=2 => ACL_MEMCPY_HOST_TO_DEVICE,
        3..=5 => ACL_MEMCPY_DEVICE_TO_HOST,
        6..=8 => ACL_MEMCPY_DEVICE_TO_DEVICE,
        9..=10 => ACL_MEMCPY_HOST_TO_HOST,
        11..=12 => ACL_MEMCPY_DEFAULT,
        13 => ACL_MEMCPY_INNER_DEVICE_TO_DEVICE,
        14 => ACL_MEMCPY_HOST_TO_BUF_TO_DEVICE,
        _ => 97,
    }
}

/// Whether `kind` allows a copy from `src` to `dst` (each `true` when it
/// is device memory of the one device), as AscendCL's kinds say.
fn kind_allows(kind: aclrtMemcpyKind, src_device: bool, dst_device: bool) -> bool {
    match kind {
        ACL_MEMCPY_HOST_TO_HOST => !src_device && !dst_device,
        ACL_MEMCPY_HOST_TO_DEVICE | ACL_MEMCPY_HOST_TO_BUF_TO_DEVICE => !src_device && dst_device,
        ACL_MEMCPY_DEVICE_TO_HOST => src_device && !dst_device,
        ACL_MEMCPY_DEVICE_TO_DEVICE | ACL_MEMCPY_INNER_DEVICE_TO_DEVICE => src_device && dst_device,
        ACL_MEMCPY_DEFAULT => true,
        _ => false,
    }
}

/// The classes a sanitizer report starts with.
const CLASSES: [&str; 7] = [
    "use-after-free",
    "double free",
    "invalid free",
    "out of bounds",
    "wrong memory kind",
    "race",
    "leak",
];

/// The function `$name` of the runtime table.
macro_rules! acl {
    ($name:ident) => {
        api()
            .acl
            .$name()
            .expect(concat!("the mock exports ", stringify!($name)))
    };
}

/// The two streams the programs queue on (created once).
fn streams() -> [aclrtStream; 2] {
    static STREAMS: std::sync::OnceLock<[usize; 2]> = std::sync::OnceLock::new();
    let s = STREAMS.get_or_init(|| {
        let mut out = [0usize; 2];
        for o in &mut out {
            let mut s: aclrtStream = std::ptr::null_mut();
            // SAFETY: a local output; device 0 is current (setup).
            let rc = unsafe { acl!(aclrtCreateStream)(&mut s) };
            assert_eq!(rc, ACL_SUCCESS, "aclrtCreateStream");
            *o = s as usize;
        }
        out
    });
    [s[0] as aclrtStream, s[1] as aclrtStream]
}

impl Run {
    /// Notes a call's result; `Ok` when it succeeded, else its message.
    fn status(&mut self, call: &str, code: i32) -> Result<(), String> {
        if code == 0 {
            self.outcome.accepted += 1;
            return Ok(());
        }
        let msg = take_message(call, i64::from(code));
        self.outcome.refused += 1;
        if self.outcome.messages.len() < 8 {
            self.outcome.messages.push(msg.clone());
        }
        if CLASSES.iter().any(|c| msg.starts_with(c)) {
            self.outcome.reports += 1;
        }
        Err(msg)
    }

    fn target(&self, p: Ptr) -> Target {
        match p {
            Ptr::Slot { slot, offset } if !self.slots.is_empty() => {
                // The start stays inside the block (a range may run past
                // it): a pointer past every block would be taken for
                // pageable host memory, which the mock trusts.
                let slot = usize::from(slot) % self.slots.len();
                Target::Slot {
                    slot,
                    offset: usize::from(offset) % self.slots[slot].cap,
                }
            }
            Ptr::Slot { offset, .. } | Ptr::Host { offset } => Target::Host {
                offset: usize::from(offset) % (HOST_LEN / 2),
            },
            Ptr::Null => Target::Null,
        }
    }

    fn address(&mut self, t: Target) -> *mut c_void {
        match t {
            Target::Slot { slot, offset } => {
                self.slots[slot].base.wrapping_add(offset) as *mut c_void
            }
            Target::Host { offset } => self.host[offset..].as_mut_ptr().cast(),
            Target::Null => std::ptr::null_mut(),
        }
    }

    /// Whether `t` is device memory (pinned and pageable host memory are
    /// not).
    fn is_device(&self, t: Target) -> bool {
        matches!(t, Target::Slot { slot, .. } if !self.slots[slot].pinned)
    }

    /// Whether `len` bytes at `t` lie in live memory the caller asked for.
    fn fits(&self, t: Target, len: usize) -> bool {
        match t {
            Target::Slot { slot, offset } => {
                let s = &self.slots[slot];
                s.live && offset + len <= s.size
            }
            Target::Host { offset } => offset + len <= HOST_LEN,
            Target::Null => false,
        }
    }

    /// The model range of `len` bytes at `t`, which an accepted call
    /// touched: it must be live memory the mock lets callers address.
    fn range(&self, t: Target, len: usize, call: &str) -> Range {
        match t {
            Target::Slot { slot, offset } => {
                let s = &self.slots[slot];
                assert!(
                    s.live,
                    "{call} was accepted on allocation {slot}, which was freed"
                );
                assert!(
                    offset + len <= s.cap,
                    "{call} was accepted for [{offset}, {}) of an allocation of {} bytes ({} addressable)",
                    offset + len,
                    s.size,
                    s.cap
                );
                Range {
                    slot: Some(slot),
                    start: offset,
                    len,
                }
            }
            Target::Host { offset } => Range {
                slot: None,
                start: offset,
                len,
            },
            Target::Null => panic!("{call} was accepted with a NULL pointer for {len} bytes"),
        }
    }

    fn model(&mut self, slot: Option<usize>) -> (&mut Vec<u8>, &mut Vec<bool>) {
        match slot {
            Some(i) => {
                let s = &mut self.slots[i];
                (&mut s.bytes, &mut s.known)
            }
            None => (&mut self.host_model, &mut self.host_known),
        }
    }

    /// Applies an accepted copy of rows to the model: `rows` rows of
    /// `width` bytes, row r from `src.start + r * spitch` to
    /// `dst.start + r * dpitch`, in order (each row as if by `memmove`).
    fn model_copy(
        &mut self,
        dst: Range,
        dpitch: usize,
        src: Range,
        spitch: usize,
        width: usize,
        rows: usize,
    ) {
        for r in 0..rows {
            let (s0, d0) = (src.start + r * spitch, dst.start + r * dpitch);
            let (bytes, known) = {
                let (b, k) = self.model(src.slot);
                (b[s0..s0 + width].to_vec(), k[s0..s0 + width].to_vec())
            };
            let (b, k) = self.model(dst.slot);
            b[d0..d0 + width].copy_from_slice(&bytes);
            k[d0..d0 + width].copy_from_slice(&known);
        }
    }

    fn model_fill(&mut self, dst: Range, value: u8) {
        let (b, k) = self.model(dst.slot);
        b[dst.start..dst.start + dst.len].fill(value);
        k[dst.start..dst.start + dst.len].fill(true);
    }

    fn queued(&mut self, queue: Queue) {
        if matches!(queue, Queue::Stream(_)) {
            self.quiet = false;
        }
    }

    fn malloc(&mut self, size: u16, pinned: bool) {
        if self.slots.len() >= MAX_SLOTS {
            return;
        }
        let size = usize::from(size) % (MAX_ALLOC + 1);
        let mut p: *mut c_void = std::ptr::null_mut();
        // SAFETY: a local output.
        let (call, rc) = unsafe {
            if pinned {
                ("aclrtMallocHost", acl!(aclrtMallocHost)(&mut p, size))
            } else {
                (
                    "aclrtMalloc",
                    acl!(aclrtMalloc)(&mut p, size, ACL_MEM_MALLOC_HUGE_FIRST),
                )
            }
        };
        if self.status(call, rc).is_err() {
            return;
        }
        assert!(!p.is_null(), "{call} of {size} bytes returned NULL");
        let cap = size.div_ceil(32) * 32 + 32;
        self.slots.push(Slot {
            base: p as usize,
            size,
            cap,
            pinned,
            live: true,
            bytes: vec![0; cap],
            known: vec![false; cap],
        });
    }

    fn free(&mut self, slot: u8, host: bool, inner: bool) {
        if self.slots.is_empty() {
            return;
        }
        let i = usize::from(slot) % self.slots.len();
        let (base, live, pinned) = {
            let s = &self.slots[i];
            (s.base, s.live, s.pinned)
        };
        let p = if inner { base + 1 } else { base } as *mut c_void;
        let legit = live && !inner && host == pinned;
        // SAFETY: the mock checks the pointer against its registry.
        let (call, rc) = unsafe {
            if host {
                ("aclrtFreeHost", acl!(aclrtFreeHost)(p))
            } else {
                ("aclrtFree", acl!(aclrtFree)(p))
            }
        };
        match self.status(call, rc) {
            Ok(()) => {
                assert!(
                    legit,
                    "{call} of {p:p} was accepted (live {live}, pinned {pinned}, inner {inner})"
                );
                self.slots[i].live = false;
            }
            Err(msg) => assert!(
                !(legit && self.quiet),
                "{call} of a live block with no queued work was refused: {msg}"
            ),
        }
    }

    fn copy(&mut self, dst: Ptr, src: Ptr, len: u16, slack: i8, kind: u8, queue: Queue) {
        let (dt, st) = (self.target(dst), self.target(src));
        let len = usize::from(len) % (MAX_EXTENT + 1);
        let dest_max = len
            .saturating_add_signed(isize::from(slack))
            .min(MAX_EXTENT);
        let kind = kind_of(kind);
        let (d, s) = (self.address(dt), self.address(st));
        // SAFETY: host ranges lie inside `self.host` (offsets below half
        // its length, extents at most the other half); device and pinned
        // pointers are checked by the mock.
        let (call, rc) = unsafe {
            match queue {
                Queue::Sync => ("aclrtMemcpy", acl!(aclrtMemcpy)(d, dest_max, s, len, kind)),
                Queue::Stream(i) => (
                    "aclrtMemcpyAsync",
                    acl!(aclrtMemcpyAsync)(d, dest_max, s, len, kind, self.streams[usize::from(i)]),
                ),
            }
        };
        let valid = len > 0
            && dest_max >= len
            && self.fits(dt, len)
            && self.fits(st, len)
            && kind_allows(kind, self.is_device(st), self.is_device(dt));
        match self.status(call, rc) {
            Ok(()) => {
                self.queued(queue);
                if len == 0 {
                    return;
                }
                assert!(
                    dest_max >= len,
                    "{call} accepted destMax {dest_max} < count {len}"
                );
                assert!(
                    kind_allows(kind, self.is_device(st), self.is_device(dt)),
                    "{call} accepted kind {kind} from {st:?} to {dt:?}"
                );
                let (dr, sr) = (self.range(dt, len, call), self.range(st, len, call));
                self.model_copy(dr, 0, sr, 0, len, 1);
            }
            Err(msg) => assert!(
                !(valid && self.quiet && matches!(queue, Queue::Sync)),
                "{call} of {len} bytes ({kind}) from {st:?} to {dt:?} was refused with nothing queued: {msg}"
            ),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn copy_2d(
        &mut self,
        dst: Ptr,
        dpitch: u16,
        src: Ptr,
        spitch: u16,
        width: u16,
        height: u8,
        kind: u8,
        queue: Queue,
    ) {
        let (dt, st) = (self.target(dst), self.target(src));
        let pitch = |p: u16| usize::from(p) % (MAX_ROW + 1);
        let (dpitch, spitch, width) = (pitch(dpitch), pitch(spitch), pitch(width));
        let rows = usize::from(height) % (MAX_ROWS + 1);
        let kind = kind_of(kind);
        let (d, s) = (self.address(dt), self.address(st));
        // SAFETY: as in `copy`: every row of a host range lies inside
        // `self.host` (hull at most MAX_EXTENT from an offset below half).
        let (call, rc) = unsafe {
            match queue {
                Queue::Sync => (
                    "aclrtMemcpy2d",
                    acl!(aclrtMemcpy2d)(d, dpitch, s, spitch, width, rows, kind),
                ),
                Queue::Stream(i) => (
                    "aclrtMemcpy2dAsync",
                    acl!(aclrtMemcpy2dAsync)(
                        d,
                        dpitch,
                        s,
                        spitch,
                        width,
                        rows,
                        kind,
                        self.streams[usize::from(i)],
                    ),
                ),
            }
        };
        if self.status(call, rc).is_err() {
            return;
        }
        self.queued(queue);
        if width == 0 || rows == 0 {
            return;
        }
        assert!(
            dpitch >= width && spitch >= width,
            "{call} accepted pitches {dpitch}/{spitch} below the width {width}"
        );
        assert!(
            kind_allows(kind, self.is_device(st), self.is_device(dt)),
            "{call} accepted kind {kind} from {st:?} to {dt:?}"
        );
        let hull = |pitch: usize| (rows - 1) * pitch + width;
        let dr = self.range(dt, hull(dpitch), call);
        let sr = self.range(st, hull(spitch), call);
        self.model_copy(dr, dpitch, sr, spitch, width, rows);
    }

    fn memset(&mut self, dst: Ptr, len: u16, slack: i8, value: u8, queue: Queue) {
        let dt = self.target(dst);
        let len = usize::from(len) % (MAX_EXTENT + 1);
        let dest_max = len
            .saturating_add_signed(isize::from(slack))
            .min(MAX_EXTENT);
        let d = self.address(dt);
        // SAFETY: as in `copy`.
        let (call, rc) = unsafe {
            match queue {
                Queue::Sync => (
                    "aclrtMemset",
                    acl!(aclrtMemset)(d, dest_max, i32::from(value), len),
                ),
                Queue::Stream(i) => (
                    "aclrtMemsetAsync",
                    acl!(aclrtMemsetAsync)(
                        d,
                        dest_max,
                        i32::from(value),
                        len,
                        self.streams[usize::from(i)],
                    ),
                ),
            }
        };
        let valid =
            len > 0 && dest_max >= len && matches!(dt, Target::Slot { .. }) && self.fits(dt, len);
        match self.status(call, rc) {
            Ok(()) => {
                self.queued(queue);
                if len == 0 {
                    return;
                }
                assert!(
                    dest_max >= len,
                    "{call} accepted maxCount {dest_max} < count {len}"
                );
                let r = self.range(dt, len, call);
                self.model_fill(r, value);
            }
            Err(msg) => assert!(
                !(valid && self.quiet && matches!(queue, Queue::Sync)),
                "{call} of {len} bytes at {dt:?} was refused with nothing queued: {msg}"
            ),
        }
    }

    fn event_op(&mut self, op: &Op) {
        let ev = |e: u8| self.events[usize::from(e) % EVENTS];
        let st = |s: bool| self.streams[usize::from(s)];
        // SAFETY: live events and streams of this run.
        let (call, rc) = unsafe {
            match *op {
                Op::Record { event, stream } => (
                    "aclrtRecordEvent",
                    acl!(aclrtRecordEvent)(ev(event), st(stream)),
                ),
                Op::Wait { stream, event } => (
                    "aclrtStreamWaitEvent",
                    acl!(aclrtStreamWaitEvent)(st(stream), ev(event)),
                ),
                Op::SyncStream { stream } => (
                    "aclrtSynchronizeStream",
                    acl!(aclrtSynchronizeStream)(st(stream)),
                ),
                Op::SyncEvent { event } => (
                    "aclrtSynchronizeEvent",
                    acl!(aclrtSynchronizeEvent)(ev(event)),
                ),
                Op::SyncDevice => ("aclrtSynchronizeDevice", acl!(aclrtSynchronizeDevice)()),
                _ => return,
            }
        };
        let ok = self.status(call, rc);
        if let Err(msg) = &ok {
            assert!(
                !call.starts_with("aclrtSynchronize"),
                "{call} failed with no fault injected: {msg}"
            );
        }
        if matches!(op, Op::SyncDevice) && ok.is_ok() {
            self.quiet = true;
        }
    }

    /// Synchronises the device, compares every live allocation and the host
    /// buffer with the model, frees everything and destroys the events.
    fn finish(mut self) -> Outcome {
        // SAFETY: no arguments.
        let rc = unsafe { acl!(aclrtSynchronizeDevice)() };
        assert_eq!(rc, ACL_SUCCESS, "the final aclrtSynchronizeDevice");
        let mut compared = 0;
        for (i, s) in self.slots.iter().filter(|s| s.live).enumerate() {
            let mut actual = vec![0u8; s.cap];
            if s.pinned {
                // SAFETY: a live pinned block of `cap` addressable bytes; the
                // device is idle, so nothing writes it now.
                let mem = unsafe { std::slice::from_raw_parts(s.base as *const u8, s.cap) };
                actual.copy_from_slice(mem);
            } else {
                // SAFETY: `actual` holds `cap` bytes; the block addresses as
                // many.
                let rc = unsafe {
                    acl!(aclrtMemcpy)(
                        actual.as_mut_ptr().cast(),
                        s.cap,
                        s.base as *const c_void,
                        s.cap,
                        ACL_MEMCPY_DEVICE_TO_HOST,
                    )
                };
                assert_eq!(rc, ACL_SUCCESS, "reading back allocation {i}");
            }
            for (j, ((&want, &known), &got)) in
                s.bytes.iter().zip(&s.known).zip(&actual).enumerate()
            {
                if known {
                    assert_eq!(
                        got, want,
                        "byte {j} of allocation {i} (pinned {})",
                        s.pinned
                    );
                    compared += 1;
                }
            }
        }
        for (j, ((&want, &known), &got)) in self
            .host_model
            .iter()
            .zip(&self.host_known)
            .zip(&self.host)
            .enumerate()
        {
            if known {
                assert_eq!(got, want, "byte {j} of the host buffer");
                compared += 1;
            }
        }
        self.outcome.compared = compared;
        for s in self.slots.iter().filter(|s| s.live) {
            // SAFETY: a live block of this run; the device is idle.
            let rc = unsafe {
                if s.pinned {
                    acl!(aclrtFreeHost)(s.base as *mut c_void)
                } else {
                    acl!(aclrtFree)(s.base as *mut c_void)
                }
            };
            assert_eq!(rc, ACL_SUCCESS, "freeing a live block after the run");
        }
        for e in self.events {
            // SAFETY: an event of this run, no longer used.
            let rc = unsafe { acl!(aclrtDestroyEvent)(e) };
            assert_eq!(rc, ACL_SUCCESS, "aclrtDestroyEvent");
        }
        std::mem::take(&mut self.outcome)
    }
}

/// Runs `program` (at most [`MAX_OPS`] operations); panics when the mock
/// breaks its contract.
pub fn run_program(program: &Program) -> Outcome {
    let _serial = one_at_a_time();
    setup();
    let streams = streams();
    let start_device = ascend_mock::memory::live_allocations(MemKind::Device(0));
    let start_pinned = ascend_mock::memory::live_allocations(MemKind::PinnedHost);
    let mut events = [std::ptr::null_mut(); EVENTS];
    for e in &mut events {
        // SAFETY: a local output.
        let rc = unsafe { acl!(aclrtCreateEvent)(e) };
        assert_eq!(rc, ACL_SUCCESS, "aclrtCreateEvent");
    }
    let pattern: Vec<u8> = (0..HOST_LEN).map(|i| (i * 131 + 7) as u8).collect();
    let mut run = Run {
        slots: Vec::new(),
        host: pattern.clone(),
        host_model: pattern,
        host_known: vec![true; HOST_LEN],
        streams,
        events,
        quiet: true,
        outcome: Outcome::default(),
    };
    for op in program.ops.iter().take(MAX_OPS) {
        match *op {
            Op::Malloc { size, pinned } => run.malloc(size, pinned),
            Op::Free { slot, host, inner } => run.free(slot, host, inner),
            Op::Copy {
                dst,
                src,
                len,
                slack,
                kind,
                queue,
            } => run.copy(dst, src, len, slack, kind, queue),
            Op::Copy2d {
                dst,
                dpitch,
                src,
                spitch,
                width,
                height,
                kind,
                queue,
            } => run.copy_2d(dst, dpitch, src, spitch, width, height, kind, queue),
            Op::Memset {
                dst,
                len,
                slack,
                value,
                queue,
            } => run.memset(dst, len, slack, value, queue),
            _ => run.event_op(op),
        }
    }
    let outcome = run.finish();
    assert_eq!(
        ascend_mock::memory::live_allocations(MemKind::Device(0)),
        start_device,
        "live device allocations after the program"
    );
    assert_eq!(
        ascend_mock::memory::live_allocations(MemKind::PinnedHost),
        start_pinned,
        "live pinned allocations after the program"
    );
    let _ = ascend_mock::sanitizer::take_reports();
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(slot: u8, offset: u16) -> Ptr {
        Ptr::Slot { slot, offset }
    }

    #[test]
    fn a_staged_hand_off_between_streams_matches_the_model() {
        let program = Program {
            ops: vec![
                Op::Malloc {
                    size: 4096,
                    pinned: false,
                },
                Op::Malloc {
                    size: 4096,
                    pinned: true,
                },
                // Device block from the host pattern, then to the pinned
                // block on stream 0, handed to stream 1 with an event, and
                // into the host buffer at another offset.
                Op::Copy {
                    dst: slot(0, 0),
                    src: Ptr::Host { offset: 100 },
                    len: 4096,
                    slack: 0,
                    kind: 0,
                    queue: Queue::Sync,
                },
                Op::Memset {
                    dst: slot(0, 1000),
                    len: 96,
                    slack: 0,
                    value: 0xab,
                    queue: Queue::Stream(false),
                },
                Op::Copy {
                    dst: slot(1, 0),
                    src: slot(0, 0),
                    len: 4096,
                    slack: 4,
                    kind: 3,
                    queue: Queue::Stream(false),
                },
                Op::Record {
                    event: 0,
                    stream: false,
                },
                Op::Wait {
                    stream: true,
                    event: 0,
                },
                Op::Copy2d {
                    dst: Ptr::Host { offset: 9000 },
                    dpitch: 300,
                    src: slot(0, 0),
                    spitch: 256,
                    width: 200,
                    height: 10,
                    kind: 3,
                    queue: Queue::Stream(true),
                },
                Op::SyncDevice,
                Op::Free {
                    slot: 1,
                    host: true,
                    inner: false,
                },
            ],
        };
        let out = run_program(&program);
        assert_eq!(out.refused, 0, "{out:?}");
        assert_eq!(out.accepted, 10);
        // The device block's 4096 bytes and the whole host buffer.
        assert!(out.compared >= 4096 + HOST_LEN, "{out:?}");
    }

    #[test]
    fn planted_bugs_are_refused_and_the_model_still_matches() {
        let program = Program {
            ops: vec![
                Op::Malloc {
                    size: 512,
                    pinned: false,
                },
                Op::Malloc {
                    size: 512,
                    pinned: true,
                },
                // A race: stream 1 reads what stream 0 writes, no event.
                Op::Memset {
                    dst: slot(0, 0),
                    len: 512,
                    slack: 0,
                    value: 1,
                    queue: Queue::Stream(false),
                },
                Op::Copy {
                    dst: slot(1, 0),
                    src: slot(0, 0),
                    len: 512,
                    slack: 0,
                    kind: 3,
                    queue: Queue::Stream(true),
                },
                // Out of bounds, a wrong kind, destMax too small.
                Op::Memset {
                    dst: slot(0, 600),
                    len: 64,
                    slack: 0,
                    value: 2,
                    queue: Queue::Sync,
                },
                Op::Copy {
                    dst: slot(1, 0),
                    src: slot(0, 0),
                    len: 16,
                    slack: 0,
                    kind: 0,
                    queue: Queue::Sync,
                },
                Op::Copy {
                    dst: slot(1, 0),
                    src: Ptr::Host { offset: 0 },
                    len: 16,
                    slack: -1,
                    kind: 9,
                    queue: Queue::Sync,
                },
                // A double free and a free of an inner pointer.
                Op::SyncDevice,
                Op::Free {
                    slot: 0,
                    host: false,
                    inner: true,
                },
                Op::Free {
                    slot: 0,
                    host: false,
                    inner: false,
                },
                Op::Free {
                    slot: 0,
                    host: false,
                    inner: false,
                },
                // A use after free.
                Op::Memset {
                    dst: slot(0, 0),
                    len: 8,
                    slack: 0,
                    value: 3,
                    queue: Queue::Sync,
                },
            ],
        };
        let out = run_program(&program);
        assert_eq!(out.refused, 7, "{out:?}");
        assert_eq!(out.reports, 6, "{out:?}");
    }

    /// A deterministic byte source for decoding random programs.
    fn bytes(seed: u64, n: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn random_programs_keep_the_contract() {
        let mut total = Outcome::default();
        for seed in 0..400u64 {
            let data = bytes(seed, 4096);
            let mut u = arbitrary::Unstructured::new(&data);
            let n = u.int_in_range(1..=MAX_OPS).unwrap_or(1);
            let program = Program {
                ops: (0..n).filter_map(|_| Op::arbitrary(&mut u).ok()).collect(),
            };
            let out = run_program(&program);
            total.accepted += out.accepted;
            total.refused += out.refused;
            total.reports += out.reports;
            total.compared += out.compared;
        }
        println!("{} random programs: {total:?}", 400);
        // Random programs reach both sides: accepted work that the model
        // checks, and refusals with sanitizer reports.
        assert!(total.accepted > 1000, "{total:?}");
        assert!(total.reports > 100, "{total:?}");
        assert!(total.compared > 400 * HOST_LEN / 2, "{total:?}");
    }
}
