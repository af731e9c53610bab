//! Tests of communicators whose ranks live in several processes: the test
//! process makes the root info (so it hosts the listener and the
//! coordinator) and holds some ranks; it re-executes this test binary to
//! run the other ranks in child processes ([`child`] selects the body from
//! `ASCEND_MOCK_HCCL_MP_MODE`), passing the root info as hex in
//! `ASCEND_MOCK_HCCL_MP_ROOT`.
//!
//! Covered: every collective, data type, reduction and send/receive form
//! of the in-process tests across 2 and 3 processes and across 2 processes
//! with 2 ranks each; a rank that never joins (both sides time out);
//! buffers refused at enqueue (out of bounds, use after free); a
//! mismatched collective; a peer that stops taking part (timeout) and then
//! exits (its peers fail at once); a peer destroyed after some sends; and
//! the process that made the root info exiting under its peers.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;

const MODE: &str = "ASCEND_MOCK_HCCL_MP_MODE";
const ROOT: &str = "ASCEND_MOCK_HCCL_MP_ROOT";
const NRANKS: &str = "ASCEND_MOCK_HCCL_MP_NRANKS";
const RANKS: &str = "ASCEND_MOCK_HCCL_MP_RANKS";

fn hex(info: &HcclRootInfo) -> String {
    info.internal
        .iter()
        .map(|b| format!("{:02x}", *b as u8))
        .collect()
}

fn unhex(s: &str) -> HcclRootInfo {
    let mut info = HcclRootInfo::default();
    assert_eq!(s.len(), 2 * info.internal.len(), "root info hex length");
    for (i, b) in info.internal.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex digit") as _;
    }
    info
}

pub(super) fn new_root_info() -> HcclRootInfo {
    init();
    let mut info = HcclRootInfo::default();
    // SAFETY: info is a valid output location.
    hok(unsafe { HcclGetRootInfo(&mut info) });
    info
}

/// Starts this test binary as a child running `mode` for `ranks` of an
/// `n`-rank communicator of `info`.
fn spawn_child(mode: &str, info: &HcclRootInfo, n: usize, ranks: &[usize]) -> Child {
    spawn_child_with(mode, info, n, ranks, &[])
}

fn spawn_child_with(
    mode: &str,
    info: &HcclRootInfo,
    n: usize,
    ranks: &[usize],
    env: &[(&str, &str)],
) -> Child {
    let ranks: Vec<String> = ranks.iter().map(|r| r.to_string()).collect();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "hccl::tests::multiprocess::child",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(MODE, mode)
    .env(ROOT, hex(info))
    .env(NRANKS, n.to_string())
    .env(RANKS, ranks.join(","))
    .env_remove("ASCEND_MOCK_DEVICES")
    .env_remove("ASCEND_MOCK_MEMORY")
    .env_remove(crate::hccl::TIMEOUT_ENV)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

/// Printed by children that end with `process::exit` (skipping the test
/// harness's own summary).
const EXITED: &str = "child body finished; exiting without cleanup";

/// Waits for `child` (killing it after two minutes, so a failure never
/// hangs the suite) and asserts that its test passed.
fn expect_success(mut child: Child, what: &str) {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child {what} failed:\n{text}");
    assert!(
        text.contains("1 passed") || text.contains(EXITED),
        "child {what} ran nothing:\n{text}"
    );
}

/// Joins rank `r` of `n` on device 0 in its own context and stream, runs
/// `program`, and tears down (destroying the communicator).
fn run_rank(info: &HcclRootInfo, n: usize, r: usize, program: Program) {
    let ctx = own_context(0);
    let mut comm = std::ptr::null_mut();
    // SAFETY: info is a root info; comm a valid output.
    hok(unsafe { HcclCommInitRootInfo(n as u32, info, r as u32, &mut comm) });
    set_comm_timeout(comm, Duration::from_secs(30)).unwrap();
    let stream = new_stream();
    program(r, n, comm, stream);
    // SAFETY: stream is live and idle; comm is live.
    unsafe {
        ok(aclrtDestroyStream(stream));
        hok(HcclCommDestroy(comm));
    }
    drop_context(ctx);
}

/// Every collective and data type, then a barrier.
fn full_program(r: usize, n: usize, comm: HcclComm, stream: aclrtStream) {
    collectives_program(r, n, comm, stream);
    every_dtype_program(r, n, comm, stream);
}

/// Runs ranks `mine` here (one thread each) and `theirs[i]` in child i.
pub(super) fn run_split(
    n: usize,
    mine: &[usize],
    theirs: &[&[usize]],
    program: Program,
    mode: &str,
) {
    let info = new_root_info();
    let children: Vec<Child> = theirs
        .iter()
        .map(|ranks| spawn_child(mode, &info, n, ranks))
        .collect();
    let info = &info;
    std::thread::scope(|s| {
        for &r in mine {
            s.spawn(move || run_rank(info, n, r, program));
        }
    });
    for (i, c) in children.into_iter().enumerate() {
        expect_success(c, &format!("{mode} #{i}"));
    }
}

#[test]
fn every_collective_across_two_processes() {
    run_split(2, &[0], &[&[1]], full_program, "full");
}

#[test]
fn every_collective_across_three_processes() {
    run_split(3, &[0], &[&[1], &[2]], collectives_program, "collectives");
}

#[test]
fn two_processes_with_two_ranks_each() {
    run_split(4, &[0, 1], &[&[2, 3]], collectives_program, "collectives");
}

#[test]
fn a_rank_that_never_joins_fails_every_process_after_the_timeout() {
    // This process only hosts the root info; two children join as ranks 0
    // and 1 of 3 with a 300 ms timeout, and rank 2 never comes.
    let info = new_root_info();
    let env = [(crate::hccl::TIMEOUT_ENV, "300")];
    let a = spawn_child_with("never-complete", &info, 3, &[0], &env);
    let b = spawn_child_with("never-complete", &info, 3, &[1], &env);
    expect_success(a, "never-complete rank 0");
    expect_success(b, "never-complete rank 1");
}

/// Rank 0 here, rank 1 in a child that runs `mode`; `body` is rank 0's
/// part after the join.
fn pair(mode: &str, body: impl FnOnce(HcclComm, aclrtStream, &mut Child)) {
    let info = new_root_info();
    let mut child = spawn_child(mode, &info, 2, &[1]);
    let ctx = own_context(0);
    let mut comm = std::ptr::null_mut();
    // SAFETY: info is a root info; comm a valid output.
    hok(unsafe { HcclCommInitRootInfo(2, &info, 0, &mut comm) });
    set_comm_timeout(comm, Duration::from_secs(30)).unwrap();
    let stream = new_stream();
    body(comm, stream, &mut child);
    // SAFETY: stream is live; comm is live.
    unsafe {
        let _ = aclrtSynchronizeStream(stream);
        let _ = take_message();
        ok(aclrtDestroyStream(stream));
        hok(HcclCommDestroy(comm));
    }
    drop_context(ctx);
    expect_success(child, mode);
}

/// An all-reduce (sum) of `[r + 1; 4]` f32 on rank `r`; returns the
/// stream's synchronisation code and message, checking the data when it
/// succeeded.
fn all_reduce_sum(r: usize, count: u64, comm: HcclComm, stream: aclrtStream) -> (aclError, String) {
    let x: Vec<u8> = (0..count)
        .flat_map(|_| ((r + 1) as f32).to_le_bytes())
        .collect();
    let buf = upload(&x);
    // SAFETY: buf holds count f32 values.
    hok(unsafe {
        HcclAllReduce(
            buf,
            buf,
            count,
            HCCL_DATA_TYPE_FP32,
            HCCL_REDUCE_SUM,
            comm,
            stream,
        )
    });
    // SAFETY: stream is live.
    let code = unsafe { aclrtSynchronizeStream(stream) };
    let msg = take_message().unwrap_or_default();
    if code == ACL_SUCCESS {
        let want: Vec<u8> = (0..count).flat_map(|_| 3f32.to_le_bytes()).collect();
        assert_eq!(download(buf, x.len()), want);
    }
    free(buf);
    (code, msg)
}

fn wait_exit(child: &mut Child) {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "child did not exit"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn mismatch_timeout_then_a_peer_that_exits() {
    pair("stop-then-exit", |comm, stream, child| {
        // 0. Buffers are checked as in-process ones, before anything is
        // queued (so the ranks' collective numbers stay in step).
        let small = dev_alloc(16);
        let gone = dev_alloc(16);
        free(gone);
        let class = if crate::sanitizer::enabled() {
            "use-after-free: HcclAllReduce (call #"
        } else {
            "host memory"
        };
        // SAFETY (whole block): refused before any buffer is used.
        unsafe {
            herr(
                HcclAllReduce(
                    small,
                    small,
                    100,
                    HCCL_DATA_TYPE_FP32,
                    HCCL_REDUCE_SUM,
                    comm,
                    stream,
                ),
                HCCL_E_PARA,
                &["runs past the end", "100 elements"],
            );
            herr(
                HcclAllReduce(
                    gone,
                    small,
                    4,
                    HCCL_DATA_TYPE_FP32,
                    HCCL_REDUCE_SUM,
                    comm,
                    stream,
                ),
                HCCL_E_PARA,
                &[class, "sendBuf"],
            );
        }
        free(small);
        // 1. Works across the processes.
        assert_eq!(all_reduce_sum(0, 4, comm, stream).0, ACL_SUCCESS);
        // 2. The child calls with 5 elements: both sides fail the same way.
        let (code, msg) = all_reduce_sum(0, 4, comm, stream);
        assert_eq!(code, ACL_ERROR_RT_FFTS_PLUS_EXCEPTION, "{msg}");
        assert!(
            msg.contains("HCCL_E_PARA") && msg.contains("does not match across ranks"),
            "{msg}"
        );
        let mut err = HCCL_SUCCESS;
        // SAFETY: valid output location.
        hok(unsafe { HcclGetCommAsyncError(comm, &mut err) });
        assert_eq!(err, HCCL_E_PARA);
        // 3. The child stops taking part: a timeout, not a hang.
        set_comm_timeout(comm, Duration::from_millis(300)).unwrap();
        let start = Instant::now();
        let (code, msg) = all_reduce_sum(0, 4, comm, stream);
        assert_eq!(code, ACL_ERROR_RT_FFTS_PLUS_TIMEOUT, "{msg}");
        assert!(
            msg.contains("HCCL_E_TIMEOUT") && msg.contains("ranks [1] did not join within 300 ms"),
            "{msg}"
        );
        assert!(start.elapsed() < Duration::from_secs(5));
        // 4. The child exits without destroying its communicator: the next
        // collective and a receive fail at once.
        wait_exit(child);
        set_comm_timeout(comm, Duration::from_secs(30)).unwrap();
        let start = Instant::now();
        let (code, msg) = all_reduce_sum(0, 4, comm, stream);
        assert_eq!(code, ACL_ERROR_RT_FFTS_PLUS_EXCEPTION, "{msg}");
        assert!(
            msg.contains("HCCL_E_TCP_TRANSFER") && msg.contains("did its process exit"),
            "{msg}"
        );
        let buf = dev_alloc(16);
        // SAFETY: buf holds 4 f32 values.
        hok(unsafe { HcclRecv(buf, 4, HCCL_DATA_TYPE_FP32, 1, comm, stream) });
        // SAFETY: stream is live.
        let code = unsafe { aclrtSynchronizeStream(stream) };
        let msg = take_message().unwrap_or_default();
        assert_eq!(code, ACL_ERROR_RT_FFTS_PLUS_EXCEPTION, "{msg}");
        assert!(msg.contains("no message"), "{msg}");
        assert!(start.elapsed() < Duration::from_secs(10));
        free(buf);
    });
}

#[test]
fn a_destroyed_peer_releases_receives_and_collectives() {
    pair("send-then-destroy", |comm, stream, _| {
        let buf = dev_alloc(16);
        // SAFETY (whole block): buf holds 4 f32 values; stream is live.
        unsafe {
            // The one message the child sent arrives.
            hok(HcclRecv(buf, 4, HCCL_DATA_TYPE_FP32, 1, comm, stream));
            sync(stream);
            let want: Vec<u8> = [7f32, 8.0, 9.0, 10.0]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            assert_eq!(download(buf, 16), want);
            // A second one was never queued.
            hok(HcclRecv(buf, 4, HCCL_DATA_TYPE_FP32, 1, comm, stream));
            let code = aclrtSynchronizeStream(stream);
            let msg = take_message().unwrap_or_default();
            assert_eq!(code, ACL_ERROR_RT_FFTS_PLUS_EXCEPTION, "{msg}");
            assert!(
                msg.contains("HCCL_E_UNAVAIL") && msg.contains("that rank was destroyed"),
                "{msg}"
            );
        }
        let (code, msg) = all_reduce_sum(0, 4, comm, stream);
        assert_eq!(code, ACL_ERROR_RT_FFTS_PLUS_EXCEPTION, "{msg}");
        assert!(msg.contains("were destroyed"), "{msg}");
        free(buf);
    });
}

#[test]
fn the_root_info_maker_exiting_fails_its_peers() {
    // The child makes the root info, prints it, joins as rank 0, takes part
    // in one all-reduce and exits.
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "hccl::tests::multiprocess::child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(MODE, "root-then-exit")
        .env_remove("ASCEND_MOCK_DEVICES")
        .env_remove(crate::hccl::TIMEOUT_ENV)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let info = loop {
        let line = lines
            .next()
            .expect("the child printed no root info")
            .unwrap();
        // The harness may have printed the test's name on the same line.
        if let Some(at) = line.find("ROOT ") {
            break unhex(line[at + 5..].trim());
        }
    };
    let ctx = own_context(0);
    let mut comm = std::ptr::null_mut();
    // SAFETY: info is a root info; comm a valid output.
    hok(unsafe { HcclCommInitRootInfo(2, &info, 1, &mut comm) });
    let stream = new_stream();
    let (code, msg) = all_reduce_sum(1, 4, comm, stream);
    assert_eq!(code, ACL_SUCCESS, "{msg}");
    // Drain the child's output so it can exit.
    for _ in lines.by_ref() {}
    wait_exit(&mut child);
    let (code, msg) = all_reduce_sum(1, 4, comm, stream);
    assert_eq!(code, ACL_ERROR_RT_FFTS_PLUS_EXCEPTION, "{msg}");
    assert!(
        msg.contains("HCCL_E_TCP_TRANSFER") && msg.contains("HcclGetRootInfo exit"),
        "{msg}"
    );
    // SAFETY: stream and comm are live.
    unsafe {
        ok(aclrtDestroyStream(stream));
        hok(HcclCommDestroy(comm));
    }
    drop_context(ctx);
    assert!(child.wait().unwrap().success());
}

#[test]
fn the_listener_drops_strangers_and_refuses_foreign_root_infos() {
    use std::io::{Read, Write};

    use crate::hccl::root_info::{RootInfo, Transport};

    let info = new_root_info();
    let bytes: [u8; ascend_sys::HCCL_ROOT_INFO_BYTES] = info.internal.map(|c| c as u8);
    let decoded = RootInfo::decode(&bytes).unwrap();
    assert_eq!(decoded.transport, Transport::Tcp);
    assert!(decoded.address.starts_with("127.0.0.1:"), "{decoded:?}");
    // Something that is not a rank: the listener hangs up on it.
    let mut stranger = std::net::TcpStream::connect(&decoded.address).unwrap();
    stranger.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    stranger
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // It closes without answering (a reset, since our bytes went unread).
    let mut rest = Vec::new();
    match stranger.read_to_end(&mut rest) {
        Ok(n) => assert_eq!(n, 0),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    // A root info this process never made (forged serial) is refused.
    let forged = RootInfo {
        serial: decoded.serial + 1_000_000,
        ..decoded.clone()
    };
    let err = crate::hccl::link::join(&forged, 2, 0, 0, Duration::from_secs(5)).unwrap_err();
    assert_eq!(err.code, HCCL_E_PARA as i32, "{}", err.message);
    assert!(
        err.message.contains("not one this listener serves"),
        "{}",
        err.message
    );
    // The refusal says nothing about the root process.
    assert!(
        !err.message.contains(&std::process::id().to_string()),
        "{}",
        err.message
    );
    // Nobody listening: HCCL_E_TCP_CONNECT.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone = RootInfo {
        address: closed.local_addr().unwrap().to_string(),
        ..decoded.clone()
    };
    drop(closed);
    let err = crate::hccl::link::join(&gone, 2, 0, 0, Duration::from_secs(5)).unwrap_err();
    assert_eq!(err.code, HCCL_E_TCP_CONNECT as i32, "{}", err.message);
    // The listener still serves the real root info: two threads join.
    let info = &info;
    let comms: Vec<usize> = std::thread::scope(|s| {
        let joins: Vec<_> = (0..2u32)
            .map(|r| {
                s.spawn(move || {
                    let ctx = own_context(0);
                    let mut comm = std::ptr::null_mut();
                    // SAFETY: info is a root info; comm a valid output.
                    hok(unsafe { HcclCommInitRootInfo(2, info, r, &mut comm) });
                    drop_context(ctx);
                    comm as usize
                })
            })
            .collect();
        joins.into_iter().map(|j| j.join().unwrap()).collect()
    });
    for c in comms {
        // SAFETY: c is a live communicator.
        hok(unsafe { HcclCommDestroy(c as HcclComm) });
    }
}

/// The bodies of the child processes (run only by the tests above).
#[test]
#[ignore = "run by the multi-process tests in child processes"]
fn child() {
    let Ok(mode) = std::env::var(MODE) else {
        return;
    };
    init();
    if mode == "root-then-exit" {
        let info = new_root_info();
        println!("ROOT {}", hex(&info));
        let ctx = own_context(0);
        let mut comm = std::ptr::null_mut();
        // SAFETY: info is a root info; comm a valid output.
        hok(unsafe { HcclCommInitRootInfo(2, &info, 0, &mut comm) });
        let stream = new_stream();
        assert_eq!(all_reduce_sum(0, 4, comm, stream).0, ACL_SUCCESS);
        let _ = ctx;
        println!("{EXITED}");
        std::process::exit(0);
    }
    let info = unhex(&std::env::var(ROOT).unwrap());
    let n: usize = std::env::var(NRANKS).unwrap().parse().unwrap();
    let ranks: Vec<usize> = std::env::var(RANKS)
        .unwrap()
        .split(',')
        .map(|r| r.parse().unwrap())
        .collect();
    match mode.as_str() {
        "full" | "collectives" => {
            let program: Program = if mode == "full" {
                full_program
            } else {
                collectives_program
            };
            let info = &info;
            std::thread::scope(|s| {
                for &r in &ranks {
                    s.spawn(move || run_rank(info, n, r, program));
                }
            });
        }
        "never-complete" => {
            let ctx = own_context(0);
            let mut comm = std::ptr::null_mut();
            let start = Instant::now();
            // SAFETY: info is a root info; comm a valid output.
            let code = unsafe { HcclCommInitRootInfo(n as u32, &info, ranks[0] as u32, &mut comm) };
            let msg = herr(code, HCCL_E_TIMEOUT, &["never joined", "300 ms"]);
            assert!(msg.contains('2'), "{msg}");
            assert!(comm.is_null());
            assert!(start.elapsed() < Duration::from_secs(5));
            drop_context(ctx);
        }
        "stop-then-exit" => {
            let ctx = own_context(0);
            let mut comm = std::ptr::null_mut();
            // SAFETY: info is a root info; comm a valid output.
            hok(unsafe { HcclCommInitRootInfo(2, &info, 1, &mut comm) });
            let stream = new_stream();
            assert_eq!(all_reduce_sum(1, 4, comm, stream).0, ACL_SUCCESS);
            let (code, msg) = all_reduce_sum(1, 5, comm, stream);
            assert_eq!(code, ACL_ERROR_RT_FFTS_PLUS_EXCEPTION, "{msg}");
            assert!(msg.contains("does not match"), "{msg}");
            // Stop taking part long enough for the parent's 300 ms timeout,
            // then exit without HcclCommDestroy.
            std::thread::sleep(Duration::from_millis(1500));
            let _ = ctx;
            println!("{EXITED}");
            std::process::exit(0);
        }
        "send-then-destroy" => {
            let ctx = own_context(0);
            let mut comm = std::ptr::null_mut();
            // SAFETY: info is a root info; comm a valid output.
            hok(unsafe { HcclCommInitRootInfo(2, &info, 1, &mut comm) });
            let stream = new_stream();
            let data: Vec<u8> = [7f32, 8.0, 9.0, 10.0]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            let buf = upload(&data);
            // SAFETY: buf holds 4 f32 values; stream and comm are live.
            unsafe {
                hok(HcclSend(buf, 4, HCCL_DATA_TYPE_FP32, 0, comm, stream));
                sync(stream);
                hok(HcclCommDestroy(comm));
                ok(aclrtDestroyStream(stream));
            }
            free(buf);
            drop_context(ctx);
        }
        other => panic!("unknown mode {other}"),
    }
}
