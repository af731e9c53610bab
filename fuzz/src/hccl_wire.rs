//! The `hccl_wire` fuzz target: the byte stream of one connection to the
//! HCCL listener of the mock's root process, from a peer that may or may
//! not hold the root info (and so its secret).
//!
//! An input is one flag byte and the connection's bytes. With
//! [`HOLDS_SECRET`], a first frame shaped like a `Hello` gets the secret,
//! nonce and serial of a live root info written into it (the fuzzer
//! cannot guess 16 random bytes; a holder of the root info knows them),
//! so the checks after authentication and the frames of a joined rank are
//! reached. The bytes then go two ways:
//!
//! - in memory, through the listener's own first-frame check
//!   (`hub::greet`) and, when it lets the peer in, through the joined
//!   rank's frame reader (`wire::read_frame` with the limits and payload
//!   rule the root applies to that rank), with this thread's allocations
//!   counted ([`CountingAlloc`]);
//! - with [`OVER_TCP`], over a real connection to the listener of this
//!   process (a one-rank `Hello` forms a communicator alone, so the
//!   coordinator then handles the frames that follow); the harness reads
//!   the answers until the root closes.
//!
//! What is checked:
//! - nothing panics or aborts (the mock's threads included: a panic in a
//!   listener thread aborts through the fuzz target's panic hook);
//! - before authentication, the first-frame check allocates at most
//!   [`PRE_AUTH_BOUND`] bytes, whatever the input announces;
//! - after it, reading a frame never allocates more than its header limit
//!   plus twice the bytes that actually arrived plus one 64 KiB step
//!   (nothing is reserved for what is merely announced);
//! - after every input that went over TCP, a legitimate two-rank
//!   all-reduce through a fresh root info succeeds with the right sums.
//!
//! Invariant: one input at a time (the listener and its counters are
//! process-wide).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ffi::c_void;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ascend_mock::hccl::hub::{self, Rejection};
use ascend_mock::hccl::root_info::{self, RootInfo};
use ascend_mock::hccl::wire::{self, HELLO_LEN, Limits, ReadError, Timing};
use ascend_sys::*;

use crate::harness::{api, one_at_a_time, setup};

/// Flag: the peer holds the root info (its secret is spliced in).
pub const HOLDS_SECRET: u8 = 1;
/// Flag: the bytes also go over a real connection to the listener.
pub const OVER_TCP: u8 = 2;
/// Most bytes the first-frame check may allocate for one connection
/// (the text of a refusal; the frame itself is read into a fixed array).
pub const PRE_AUTH_BOUND: usize = 4096;
/// Most bytes of one input sent over TCP.
pub const MAX_TCP_BYTES: usize = 1 << 16;

/// The global allocator of the fuzz target: the system allocator, counting
/// the bytes the current thread holds while a [`measure`] runs on it.
pub struct CountingAlloc;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn grew(size: usize) {
    let _ = ARMED.try_with(|armed| {
        if armed.get() {
            let live = LIVE.with(|l| {
                l.set(l.get() + size);
                l.get()
            });
            PEAK.with(|p| p.set(p.get().max(live)));
        }
    });
}

fn shrank(size: usize) {
    let _ = ARMED.try_with(|armed| {
        if armed.get() {
            LIVE.with(|l| l.set(l.get().saturating_sub(size)));
        }
    });
}

// SAFETY: every method forwards to the system allocator with the same
// arguments and returns its result unchanged; the counting touches only
// const-initialised thread-local cells (no allocation, no destructor) and
// is skipped when they are gone (try_with).
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc`, passed on.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc_zeroed`, passed on.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc`, passed on.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract for `realloc`, passed on.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            shrank(layout.size());
            grew(new_size);
        }
        p
    }
}

/// Runs `f` and returns its result and the most bytes this thread held
/// at once (allocated during `f`, not yet freed) while it ran.
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LIVE.with(|l| l.set(0));
    PEAK.with(|p| p.set(0));
    ARMED.with(|a| a.set(true));
    let r = f();
    ARMED.with(|a| a.set(false));
    (r, PEAK.with(Cell::get))
}

/// Panics unless [`CountingAlloc`] is the global allocator (so that a
/// measured 0 means nothing was allocated, not that nothing was counted).
pub fn check_counting() {
    // black_box: an optimised build may elide an allocation nobody uses.
    let (v, peak) = measure(|| std::hint::black_box(Vec::<u8>::with_capacity(1000)));
    drop(v);
    assert!(
        peak >= 1000,
        "CountingAlloc is not the global allocator (measured {peak} bytes for 1000)"
    );
}

/// The root info the TCP inputs attack, replaced once it is used up.
static TARGET: Mutex<Option<RootInfo>> = Mutex::new(None);

/// A fresh root info of this process's listener (`HcclGetRootInfo`).
fn fresh_root_info() -> (HcclRootInfo, RootInfo) {
    let mut raw = HcclRootInfo::default();
    // SAFETY: raw is a valid output location.
    let rc = unsafe { api().hccl.HcclGetRootInfo().expect("HcclGetRootInfo")(&mut raw) };
    assert_eq!(rc, HCCL_SUCCESS, "HcclGetRootInfo");
    let info = RootInfo::decode(&raw.internal.map(|c| c as u8)).expect("a root info");
    (raw, info)
}

/// The root info to attack: the current one while it is live.
fn target() -> RootInfo {
    let mut t = TARGET.lock().unwrap_or_else(|e| e.into_inner());
    match &*t {
        Some(info) if root_info::is_live(info.serial) => info.clone(),
        _ => {
            let info = fresh_root_info().1;
            *t = Some(info.clone());
            info
        }
    }
}

/// Writes the secret, nonce and serial of `info` into a first frame
/// shaped like a `Hello` (tag 1 after the 16 length bytes).
fn splice(bytes: &mut [u8], info: &RootInfo) {
    if bytes.len() >= 16 + HELLO_LEN && bytes[16] == 1 {
        let body = &mut bytes[16..];
        body[13..29].copy_from_slice(&info.secret);
        body[29..37].copy_from_slice(&info.nonce.to_le_bytes());
        body[37..45].copy_from_slice(&info.serial.to_le_bytes());
    }
}

/// Runs one input; panics when a rule is broken.
pub fn run(data: &[u8]) {
    let _serial = one_at_a_time();
    setup();
    check_counting();
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    let holder = flags & HOLDS_SECRET != 0;
    let info = holder.then(target);
    if let Some(info) = &info {
        splice(&mut bytes, info);
    }
    in_memory(&bytes);
    if flags & OVER_TCP != 0 {
        let info = info.unwrap_or_else(target);
        over_tcp(&info, &bytes[..bytes.len().min(MAX_TCP_BYTES)]);
        legitimate_all_reduce();
    }
}

/// The first-frame check and, for a peer it lets in, the joined rank's
/// frames, in memory, with allocations counted.
fn in_memory(bytes: &[u8]) {
    let mut input = bytes;
    let deadline = Instant::now() + Duration::from_secs(10);
    let (claim, peak) = measure(|| hub::greet(&mut input, deadline, 10_000));
    assert!(
        peak <= PRE_AUTH_BOUND,
        "the first-frame check held {peak} bytes (bound {PRE_AUTH_BOUND}) for {:?}",
        claim
    );
    let claim = match claim {
        Ok(c) => c,
        Err(Rejection::Refuse(_, m)) | Err(Rejection::Drop(m)) => {
            assert!(!m.is_empty(), "a rejection without a reason");
            return;
        }
        Err(Rejection::Late(..)) => return,
    };
    let n = claim.nranks;
    let limits = Limits::for_ranks(n, claim.memory.saturating_mul(u64::from(n)));
    let timing = Timing {
        idle: None,
        frame: None,
    };
    loop {
        let before = input.len();
        let (read, peak) = measure(|| {
            wire::read_frame(&mut input, &limits, timing, |m, len| {
                hub::rank_payload_rule(claim.rank, n, claim.memory, m, len)
            })
        });
        let arrived = before - input.len();
        let bound = limits.header as usize + 2 * arrived + (64 << 10) + PRE_AUTH_BOUND;
        assert!(
            peak <= bound,
            "reading a frame of {arrived} bytes held {peak} bytes (bound {bound})"
        );
        match read {
            Ok(_) => {}
            Err(ReadError::Closed) => return,
            Err(e) => {
                assert!(!e.to_string().is_empty());
                return;
            }
        }
    }
}

/// Sends `bytes` on a connection to `info`'s listener, closes the sending
/// side, and reads what the root answers until it closes too.
fn over_tcp(info: &RootInfo, bytes: &[u8]) {
    let Ok(mut s) = TcpStream::connect(&info.address) else {
        panic!("the listener at {} refused a connection", info.address);
    };
    // The root may hang up before reading everything: not an error.
    let _ = s.write_all(bytes);
    let _ = s.shutdown(Shutdown::Write);
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut sink = [0u8; 4096];
    let start = Instant::now();
    loop {
        match s.read(&mut sink) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!(
                    "the root kept a closed peer's connection open for {:?}",
                    start.elapsed()
                );
            }
            Err(_) => break,
        }
    }
}

/// Two ranks of this process join a fresh root info and all-reduce
/// `[r + 1; 4]` (f32): both must get `[3; 4]`.
pub fn legitimate_all_reduce() {
    let (raw, _) = fresh_root_info();
    let raw = &raw;
    std::thread::scope(|s| {
        let ranks: Vec<_> = (0..2u32)
            .map(|r| s.spawn(move || rank_all_reduce(raw, r)))
            .collect();
        for r in ranks {
            let got = r.join().expect("a legitimate rank panicked");
            assert_eq!(got, [3.0f32; 4], "the legitimate all-reduce");
        }
    });
}

fn rank_all_reduce(raw: &HcclRootInfo, rank: u32) -> [f32; 4] {
    let acl = &api().acl;
    let hccl = &api().hccl;
    let input = [(rank + 1) as f32; 4];
    let mut out = [0f32; 4];
    // SAFETY: every pointer is a local of the right type and size, or the
    // device buffer and stream made just before and released at the end.
    unsafe {
        assert_eq!(acl.aclrtSetDevice().unwrap()(0), ACL_SUCCESS);
        let mut comm: HcclComm = std::ptr::null_mut();
        let rc = hccl.HcclCommInitRootInfo().unwrap()(2, raw, rank, &mut comm);
        assert_eq!(rc, HCCL_SUCCESS, "HcclCommInitRootInfo of rank {rank}");
        let mut stream: aclrtStream = std::ptr::null_mut();
        assert_eq!(acl.aclrtCreateStream().unwrap()(&mut stream), ACL_SUCCESS);
        let mut buf: *mut c_void = std::ptr::null_mut();
        assert_eq!(
            acl.aclrtMalloc().unwrap()(&mut buf, 16, ACL_MEM_MALLOC_HUGE_FIRST),
            ACL_SUCCESS
        );
        let copy = acl.aclrtMemcpy().unwrap();
        let to = ACL_MEMCPY_HOST_TO_DEVICE;
        assert_eq!(copy(buf, 16, input.as_ptr().cast(), 16, to), ACL_SUCCESS);
        let rc = hccl.HcclAllReduce().unwrap()(
            buf,
            buf,
            4,
            HCCL_DATA_TYPE_FP32,
            HCCL_REDUCE_SUM,
            comm,
            stream,
        );
        assert_eq!(rc, HCCL_SUCCESS, "HcclAllReduce of rank {rank}");
        assert_eq!(acl.aclrtSynchronizeStream().unwrap()(stream), ACL_SUCCESS);
        let back = ACL_MEMCPY_DEVICE_TO_HOST;
        assert_eq!(
            copy(out.as_mut_ptr().cast(), 16, buf, 16, back),
            ACL_SUCCESS
        );
        assert_eq!(acl.aclrtFree().unwrap()(buf), ACL_SUCCESS);
        assert_eq!(acl.aclrtDestroyStream().unwrap()(stream), ACL_SUCCESS);
        assert_eq!(hccl.HcclCommDestroy().unwrap()(comm), HCCL_SUCCESS);
    }
    out
}

/// Seed inputs: a stranger, oversized announcements, a valid Hello alone
/// and followed by frames of a one-rank communicator, a Ping.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    use ascend_mock::hccl::collective::Kind;
    use ascend_mock::hccl::wire::{CallDesc, Msg, write_msg};

    let hello = |nranks: u32, rank: u32, timeout_ms: u64| Msg::Hello {
        secret: [0; 16],
        root_nonce: 0,
        serial: 0,
        nranks,
        rank,
        device: 0,
        nonce: 7,
        pid: 1,
        timeout_ms,
        memory: 1 << 20,
    };
    let frame = |msgs: &[Msg]| {
        let mut b = Vec::new();
        for m in msgs {
            write_msg(&mut b, m).expect("writing to a Vec");
        }
        b
    };
    let with = |flags: u8, body: Vec<u8>| {
        let mut v = vec![flags];
        v.extend(body);
        v
    };
    let contribute = |seq: u64, kind: Kind, count: u64, data: Vec<u8>| Msg::Contribute {
        seq,
        timeout_ms: 1000,
        call: CallDesc {
            kind,
            dtype: HCCL_DATA_TYPE_FP32,
            op: Some(HCCL_REDUCE_SUM),
            root: 0,
            count,
            v: None,
        },
        data,
    };
    let mut announce = Vec::new();
    announce.extend_from_slice(&(HELLO_LEN as u64).to_le_bytes());
    announce.extend_from_slice(&(1u64 << 30).to_le_bytes());
    announce.extend(vec![0u8; 64]);
    vec![
        (
            "stranger".into(),
            with(OVER_TCP, b"GET / HTTP/1.0\r\n\r\n".to_vec()),
        ),
        ("announce-1gib".into(), with(OVER_TCP, announce)),
        (
            "hello-unknown".into(),
            with(OVER_TCP, frame(&[hello(2, 0, 100)])),
        ),
        (
            "hello-huge-nranks".into(),
            with(HOLDS_SECRET | OVER_TCP, frame(&[hello(u32::MAX, 0, 100)])),
        ),
        (
            "hello-max-timeout".into(),
            with(HOLDS_SECRET | OVER_TCP, frame(&[hello(2, 1, u64::MAX)])),
        ),
        (
            "hello-waits".into(),
            with(HOLDS_SECRET | OVER_TCP, frame(&[hello(2, 1, 5000)])),
        ),
        (
            "one-rank-collectives".into(),
            with(
                HOLDS_SECRET | OVER_TCP,
                frame(&[
                    hello(1, 0, 1000),
                    contribute(1, Kind::AllReduce, 2, vec![0; 8]),
                    Msg::Ping,
                    contribute(2, Kind::AllGather, 1, vec![0; 4]),
                    Msg::Send {
                        to: 0,
                        seq: 1,
                        dtype: HCCL_DATA_TYPE_INT8,
                        count: 3,
                        data: vec![1, 2, 3],
                    },
                    Msg::Destroy {
                        last_seq: 2,
                        sent: vec![1],
                    },
                ]),
            ),
        ),
        (
            "one-rank-in-memory".into(),
            with(
                HOLDS_SECRET,
                frame(&[
                    hello(1, 0, 1000),
                    contribute(1, Kind::ReduceScatter, 2, vec![0; 8]),
                    Msg::Ping,
                ]),
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[global_allocator]
    static COUNTING: CountingAlloc = CountingAlloc;

    #[test]
    fn the_seeds_run_and_the_bounds_hold() {
        for (name, seed) in seeds() {
            eprintln!("seed {name}");
            run(&seed);
        }
    }

    #[test]
    fn the_allocator_counts() {
        check_counting();
        let (_, peak) = measure(|| {
            let a = vec![1u8; 5000];
            drop(a);
            let b = vec![1u8; 3000];
            b.len()
        });
        assert!((5000..8000).contains(&peak), "{peak}");
    }

    #[test]
    fn a_huge_announcement_allocates_nothing_before_authentication() {
        let mut b = Vec::new();
        b.extend_from_slice(&(1u64 << 40).to_le_bytes());
        b.extend_from_slice(&(1u64 << 40).to_le_bytes());
        let mut input = b.as_slice();
        let later = Instant::now() + Duration::from_secs(1);
        let (r, peak) = measure(|| hub::greet(&mut input, later, 1000));
        assert!(matches!(r, Err(Rejection::Drop(_))), "{r:?}");
        assert!(peak <= PRE_AUTH_BOUND, "{peak}");
    }

    /// Writes the seeds to `fuzz/corpus/hccl_wire/` (run by hand).
    #[test]
    #[ignore = "writes the seed corpus"]
    fn write_seeds() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/hccl_wire");
        std::fs::create_dir_all(&dir).unwrap();
        for (name, seed) in seeds() {
            std::fs::write(dir.join(format!("seed-{name}")), seed).unwrap();
        }
    }
}
