//! Times an all-reduce (sum) of 1 MiB of f32 across two ranks, first with
//! both ranks in this process (threads, data moved in memory), then with
//! rank 1 in a child process (this binary re-executed; data over loopback
//! TCP through the coordinator in this process).
//!
//! Run: `cargo run --release -p ascend-mock --example hccl_allreduce_timing`
//! (optional argument: iterations per round, default 200). The two set-ups
//! alternate for five rounds; the best and the median round are printed.

use std::ffi::c_void;
use std::process::Command;
use std::time::{Duration, Instant};

use std::sync::LazyLock;

use ascend_sys::*;

/// The mock's functions, resolved in-process.
static API: LazyLock<Api> =
    LazyLock::new(|| Api::from_resolver(ascend_mock::resolve, "ascend-mock"));

/// The function `$name` of table `$lib`.
macro_rules! f {
    ($lib:ident . $name:ident) => {
        API.$lib.$name().expect(stringify!($name))
    };
}

const CHILD_ENV: &str = "HCCL_TIMING_ROOT";
const ELEMS: usize = 1 << 18; // 1 MiB of f32

fn check(code: u32, what: &str) {
    assert_eq!(code, 0, "{what} failed with {code}");
}

/// One rank: joins, warms up, runs `iters` all-reduces (each synchronised,
/// as a training step would), and returns the mean time per all-reduce.
fn rank(info: &HcclRootInfo, r: u32, iters: usize) -> Duration {
    let mut ctx = std::ptr::null_mut();
    let mut stream = std::ptr::null_mut();
    let mut buf: *mut c_void = std::ptr::null_mut();
    let mut comm = std::ptr::null_mut();
    // SAFETY: every pointer passed is a valid output location; buf holds
    // ELEMS f32 values once allocated.
    unsafe {
        check(
            f!(acl.aclrtCreateContext)(&mut ctx, 0) as u32,
            "aclrtCreateContext",
        );
        check(
            f!(acl.aclrtCreateStream)(&mut stream) as u32,
            "aclrtCreateStream",
        );
        check(
            f!(acl.aclrtMalloc)(&mut buf, ELEMS * 4, ACL_MEM_MALLOC_HUGE_FIRST) as u32,
            "aclrtMalloc",
        );
        check(
            f!(acl.aclrtMemset)(buf, ELEMS * 4, 0, ELEMS * 4) as u32,
            "aclrtMemset",
        );
        check(
            f!(hccl.HcclCommInitRootInfo)(2, info, r, &mut comm),
            "HcclCommInitRootInfo",
        );
        let all_reduce = f!(hccl.HcclAllReduce);
        let sync = f!(acl.aclrtSynchronizeStream);
        let step = || {
            check(
                all_reduce(
                    buf,
                    buf,
                    ELEMS as u64,
                    HCCL_DATA_TYPE_FP32,
                    HCCL_REDUCE_SUM,
                    comm,
                    stream,
                ),
                "HcclAllReduce",
            );
            check(sync(stream) as u32, "aclrtSynchronizeStream");
        };
        for _ in 0..10 {
            step();
        }
        let start = Instant::now();
        for _ in 0..iters {
            step();
        }
        let per = start.elapsed() / iters as u32;
        check(f!(hccl.HcclCommDestroy)(comm), "HcclCommDestroy");
        check(f!(acl.aclrtFree)(buf) as u32, "aclrtFree");
        check(
            f!(acl.aclrtDestroyStream)(stream) as u32,
            "aclrtDestroyStream",
        );
        check(
            f!(acl.aclrtDestroyContext)(ctx) as u32,
            "aclrtDestroyContext",
        );
        per
    }
}

fn hex(info: &HcclRootInfo) -> String {
    info.internal
        .iter()
        .map(|b| format!("{:02x}", *b as u8))
        .collect()
}

fn unhex(s: &str) -> HcclRootInfo {
    let mut info = HcclRootInfo::default();
    for (i, b) in info.internal.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex") as _;
    }
    info
}

fn main() {
    let iters: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    // SAFETY: aclInit accepts a NULL configuration path.
    check(
        unsafe { f!(acl.aclInit)(std::ptr::null()) } as u32,
        "aclInit",
    );
    if let Ok(h) = std::env::var(CHILD_ENV) {
        rank(&unhex(&h), 1, iters);
        return;
    }
    let new_info = || {
        let mut info = HcclRootInfo::default();
        // SAFETY: info is a valid output location.
        check(
            unsafe { f!(hccl.HcclGetRootInfo)(&mut info) },
            "HcclGetRootInfo",
        );
        info
    };

    // Alternate the two set-ups, so that both see the same machine load;
    // report the best and the median round of each.
    let rounds = 5;
    let mut in_process = Vec::new();
    let mut two_processes = Vec::new();
    for _ in 0..rounds {
        let info = new_info();
        in_process.push(std::thread::scope(|s| {
            let other = s.spawn(|| rank(&info, 1, iters));
            let mine = rank(&info, 0, iters);
            other.join().expect("rank 1");
            mine
        }));

        let info = new_info();
        let mut child = Command::new(std::env::current_exe().expect("own path"))
            .arg(iters.to_string())
            .env(CHILD_ENV, hex(&info))
            .spawn()
            .expect("child process");
        two_processes.push(rank(&info, 0, iters));
        assert!(child.wait().expect("child").success(), "rank 1 failed");
    }
    in_process.sort();
    two_processes.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let mib = (ELEMS * 4) as f64 / (1 << 20) as f64;
    println!(
        "all-reduce of {mib} MiB f32 (sum), 2 ranks, {rounds} rounds of {iters} iterations, synchronised each:"
    );
    println!(
        "  2 ranks in one process : best {:>8.1} us, median {:>8.1} us per all-reduce",
        us(in_process[0]),
        us(in_process[rounds / 2])
    );
    println!(
        "  2 processes (loopback) : best {:>8.1} us, median {:>8.1} us per all-reduce",
        us(two_processes[0]),
        us(two_processes[rounds / 2])
    );
}
