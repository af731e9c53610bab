//! The listener under attack from another client on the same machine
//! (loopback only): each case runs in a child process of its own (so that
//! its memory and thread counts are not disturbed by other tests), which
//! makes a root info, attacks its own listener the way a stranger or a
//! holder of the root info bytes could, checks the refusal, measures
//! itself from `/proc/self/status` (the growth of the peak resident set,
//! `VmHWM`, over the attack, and the most threads seen), and then runs
//! the legitimate collectives across two processes (`run_split`) to show
//! the listener and the coordinator still work.
//!
//! Each child prints a `HOSTILE <case> ...` line with its numbers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use super::multiprocess::{new_root_info, run_split};
use super::*;
use crate::hccl::hub::{self, connection_stats, pending_count, rendezvous_count};
use crate::hccl::root_info::{RootInfo, process_nonce};
use crate::hccl::wire::{HELLO_LEN, Limits, Msg, ReadError, Timing, read_frame, write_msg};
use crate::hccl::{MAX_RANKS, MAX_TIMEOUT};

const CASE: &str = "ASCEND_MOCK_HCCL_HOSTILE_CASE";

/// `VmRSS`, `VmHWM` (KiB) and `Threads` of this process.
fn status() -> (u64, u64, u64) {
    let text = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/self/status"))
    };
    (field("VmRSS:"), field("VmHWM:"), field("Threads:"))
}

/// Tracks the growth of the peak resident set and the most threads.
struct Meter {
    hwm0: u64,
    threads0: u64,
    threads_max: u64,
}

impl Meter {
    fn start() -> Meter {
        let (_, hwm, threads) = status();
        Meter {
            hwm0: hwm,
            threads0: threads,
            threads_max: threads,
        }
    }
    fn sample(&mut self) {
        self.threads_max = self.threads_max.max(status().2);
    }
    /// Growth of the peak resident set (KiB).
    fn hwm_growth(&self) -> u64 {
        status().1.saturating_sub(self.hwm0)
    }
    /// Checks the bounds and prints the numbers.
    fn report(&mut self, case: &str, max_growth_kib: u64, max_extra_threads: u64) {
        self.sample();
        let growth = self.hwm_growth();
        let (rss, hwm, now) = status();
        println!(
            "HOSTILE {case}: peak RSS growth {growth} KiB (VmHWM {hwm} KiB, VmRSS {rss} KiB), threads {} before, {} at most, {now} after",
            self.threads0, self.threads_max
        );
        assert!(
            growth <= max_growth_kib,
            "{case}: the peak resident set grew by {growth} KiB (bound {max_growth_kib})"
        );
        assert!(
            self.threads_max <= self.threads0 + max_extra_threads,
            "{case}: {} threads at most, {} before (bound +{max_extra_threads})",
            self.threads_max,
            self.threads0
        );
    }
}

fn decode(info: &HcclRootInfo) -> RootInfo {
    RootInfo::decode(&info.internal.map(|c| c as u8)).unwrap()
}

/// A `Hello` as a holder of `info`'s bytes would forge it (a nonce of
/// another process).
fn forged_hello(info: &RootInfo, nranks: u32, rank: u32, timeout_ms: u64) -> Msg {
    Msg::Hello {
        secret: info.secret,
        root_nonce: info.nonce,
        serial: info.serial,
        nranks,
        rank,
        device: 0,
        nonce: process_nonce() ^ 0xdead_0000,
        pid: 4242,
        timeout_ms,
        memory: 1 << 30,
    }
}

fn connect(info: &RootInfo) -> TcpStream {
    TcpStream::connect(&info.address).unwrap()
}

/// The root's answer on `s` (`None`: closed without one) within 10 s.
fn answer(s: &mut TcpStream) -> Option<Msg> {
    let timing = Timing {
        idle: Some(Duration::from_secs(10)),
        frame: Some(Duration::from_secs(10)),
    };
    match read_frame(s, &Limits::for_ranks(16, 1 << 20), timing, |_, _| Ok(())) {
        Ok(m) => Some(m),
        Err(ReadError::Closed) => None,
        Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => None,
        Err(e) => panic!("no answer from the root: {e}"),
    }
}

/// Sends `hello` on a new connection and returns the refusal's code and
/// message.
fn refused(info: &RootInfo, hello: &Msg) -> (u32, String) {
    let mut s = connect(info);
    write_msg(&mut s, hello).unwrap();
    match answer(&mut s) {
        Some(Msg::Refused { code, message }) => (code, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Whether the root closes `s` within `limit` (reading what it sends).
fn closed_within(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut b = [0u8; 512];
    while start.elapsed() < limit {
        match s.read(&mut b) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

/// The legitimate collectives across two processes, after an attack.
fn legitimate() {
    run_split(2, &[0], &[&[1]], collectives_program, "collectives");
}

fn run_case(case: &str, env: &[(&str, &str)]) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "hccl::tests::hostile::attacked_root",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CASE, case)
    .env_remove("ASCEND_MOCK_DEVICES")
    .env_remove("ASCEND_MOCK_MEMORY")
    .env_remove(crate::hccl::TIMEOUT_ENV)
    .env_remove(hub::HELLO_ENV)
    .env_remove(hub::PENDING_ENV);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "case {case} failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "case {case} ran nothing:\n{text}"
    );
    for line in text
        .lines()
        .filter_map(|l| l.find("HOSTILE").map(|at| &l[at..]))
    {
        // Shown with --nocapture: the numbers of the case.
        println!("{line}");
    }
}

#[test]
fn huge_nranks_is_refused_in_the_caller_and_by_the_root() {
    run_case("huge-nranks", &[]);
}

#[test]
fn an_oversized_first_frame_is_refused_before_it_is_read() {
    run_case("oversized-first-frame", &[]);
}

#[test]
fn a_thousand_idle_connections_are_capped_and_expire() {
    run_case("idle-connections", &[(hub::HELLO_ENV, "1000")]);
}

#[test]
fn a_slow_sender_is_cut_off_at_the_hello_deadline() {
    run_case("slow-sender", &[(hub::HELLO_ENV, "500")]);
}

#[test]
fn a_replayed_root_info_is_refused() {
    run_case("replayed-root-info", &[]);
}

#[test]
fn a_second_claim_for_a_rank_fails_the_rendezvous_for_everyone() {
    run_case(
        "second-claim",
        &[(crate::hccl::TIMEOUT_ENV, "20000"), (hub::LOG_ENV, "1")],
    );
}

#[test]
fn the_largest_timeout_holds_nothing_once_the_client_is_gone() {
    run_case("max-timeout", &[]);
    run_case(
        "env-timeout",
        &[(crate::hccl::TIMEOUT_ENV, "18446744073709551615")],
    );
}

/// The attacked root process (run only by the tests above).
#[test]
#[ignore = "run by the hostile-client tests in child processes"]
fn attacked_root() {
    let Ok(case) = std::env::var(CASE) else {
        return;
    };
    init();
    let raw = new_root_info();
    let info = decode(&raw);
    // Let the listener thread start before measuring.
    std::thread::sleep(Duration::from_millis(50));
    let mut meter = Meter::start();
    match case.as_str() {
        "huge-nranks" => {
            let ctx = own_context(0);
            let mut comm = std::ptr::null_mut();
            for n in [u32::MAX, 1 << 24, MAX_RANKS + 1] {
                // SAFETY: raw is a root info; comm a valid output.
                let code = unsafe { HcclCommInitRootInfo(n, &raw, 0, &mut comm) };
                herr(code, HCCL_E_PARA, &[&format!("nRanks {n} exceeds"), "4096"]);
                assert!(comm.is_null());
            }
            let mut devs = [0i32];
            let mut comms = [std::ptr::null_mut()];
            // SAFETY: both arrays are valid locals of one entry; the mock
            // refuses an ndev above MAX_RANKS before reading either.
            let code = unsafe { HcclCommInitAll(u32::MAX, devs.as_mut_ptr(), comms.as_mut_ptr()) };
            herr(code, HCCL_E_PARA, &["ndev 4294967295 exceeds"]);
            drop_context(ctx);
            // The same Hello sent by hand, by a holder of the bytes.
            for n in [u32::MAX, 1 << 24] {
                let (code, message) = refused(&info, &forged_hello(&info, n, 0, 1000));
                assert_eq!(code, HCCL_E_PARA, "{message}");
                assert!(message.contains("out of range (1 to 4096)"), "{message}");
                assert!(
                    !message.contains(&std::process::id().to_string()),
                    "{message}"
                );
            }
            meter.report(&case, 16 << 10, 4);
            assert_eq!(connection_stats().refused, 2);
        }
        "oversized-first-frame" => {
            // Two connections announce a 1 GiB payload behind a Hello with
            // a wrong nonce and then send zeros; a third announces a
            // 64 MiB header. Each is closed from its 16 length bytes.
            let mut bad = forged_hello(&info, 2, 0, 1000);
            if let Msg::Hello { root_nonce, .. } = &mut bad {
                *root_nonce ^= 1;
            }
            let mut frame = Vec::new();
            write_msg(&mut frame, &bad).unwrap();
            let announcements = [
                (HELLO_LEN as u64, 1u64 << 30),
                (HELLO_LEN as u64, 1 << 30),
                (1 << 26, 0),
            ];
            let senders: Vec<_> = announcements
                .iter()
                .map(|&(h, p)| {
                    let mut bytes = frame.clone();
                    bytes[..8].copy_from_slice(&h.to_le_bytes());
                    bytes[8..16].copy_from_slice(&p.to_le_bytes());
                    let mut s = connect(&info);
                    std::thread::spawn(move || {
                        let zeros = vec![0u8; 1 << 16];
                        let start = Instant::now();
                        let mut sent = 0u64;
                        if s.write_all(&bytes).is_ok() {
                            // Up to 256 MiB, until the root hangs up.
                            while sent < 1 << 28 && s.write_all(&zeros).is_ok() {
                                sent += zeros.len() as u64;
                            }
                        }
                        let closed = closed_within(&mut s, Duration::from_secs(5));
                        (sent, closed.map(|c| c + start.elapsed()))
                    })
                })
                .collect();
            for (i, t) in senders.into_iter().enumerate() {
                meter.sample();
                let (sent, closed) = t.join().unwrap();
                println!(
                    "HOSTILE {case}: connection {i} sent {sent} bytes of zeros before the root hung up"
                );
                assert!(closed.is_some(), "connection {i} was not closed");
                assert!(sent < 1 << 28, "connection {i}: the root kept reading");
            }
            meter.report(&case, 16 << 10, 8);
            let stats = connection_stats();
            assert_eq!(stats.dropped, 3, "{stats:?}");
            assert_eq!(stats.joined, 0, "{stats:?}");
        }
        "idle-connections" => {
            // 1000 connections that send nothing.
            let idle: Vec<TcpStream> = (0..1000).map(|_| connect(&info)).collect();
            let start = Instant::now();
            while connection_stats().accepted < 1000 && start.elapsed() < Duration::from_secs(20) {
                meter.sample();
                std::thread::sleep(Duration::from_millis(10));
            }
            meter.sample();
            let stats = connection_stats();
            assert_eq!(stats.accepted, 1000, "{stats:?}");
            assert!(pending_count() <= 64, "{} pending", pending_count());
            // Most were turned away at once; the others waited (64 at a
            // time) until their Hello deadline.
            assert!(stats.refused >= 500, "{stats:?}");
            // The attack's cost: the idle connections' threads at most
            // (64 places), no memory to speak of.
            meter.report(&case, 48 << 10, 64 + 4);
            // The legitimate ranks join while the idle ones still hold
            // their places (they retry until those expire, after 1 s).
            legitimate();
            let start = Instant::now();
            while pending_count() > 0 && start.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(10));
            }
            assert_eq!(pending_count(), 0);
            drop(idle);
            // Every connection is accounted for: the idle ones refused or
            // dropped, the legitimate ones joined (or turned away first).
            let stats = connection_stats();
            assert_eq!(
                stats.accepted,
                stats.refused + stats.dropped + stats.joined,
                "{stats:?}"
            );
            assert!(stats.dropped >= 64, "{stats:?}");
        }
        "slow-sender" => {
            // One byte of a valid Hello every 100 ms (it would take 10 s);
            // the Hello deadline is 500 ms, whatever keeps arriving.
            let mut frame = Vec::new();
            write_msg(&mut frame, &forged_hello(&info, 2, 1, 1000)).unwrap();
            let mut s = connect(&info);
            let start = Instant::now();
            let mut cut = None;
            for b in &frame {
                if s.write_all(std::slice::from_ref(b)).is_err() {
                    break;
                }
                meter.sample();
                if let Some(c) = closed_within(&mut s, Duration::from_millis(100)) {
                    cut = Some(start.elapsed() - Duration::from_millis(100) + c);
                    break;
                }
            }
            let cut = cut.expect("the slow sender kept its connection");
            println!("HOSTILE {case}: cut off after {} ms", cut.as_millis());
            assert!(cut < Duration::from_millis(1500), "{cut:?}");
            assert!(cut >= Duration::from_millis(400), "{cut:?}");
            assert_eq!(connection_stats().dropped, 1);
            assert_eq!(pending_count(), 0);
            meter.report(&case, 8 << 10, 4);
        }
        "replayed-root-info" => {
            let raw_ref = &raw;
            let comms: Vec<usize> = std::thread::scope(|s| {
                let joins: Vec<_> = (0..2u32)
                    .map(|r| {
                        s.spawn(move || {
                            let ctx = own_context(0);
                            let mut comm = std::ptr::null_mut();
                            // SAFETY: raw is a root info; comm a valid output.
                            hok(unsafe { HcclCommInitRootInfo(2, raw_ref, r, &mut comm) });
                            drop_context(ctx);
                            comm as usize
                        })
                    })
                    .collect();
                joins.into_iter().map(|j| j.join().unwrap()).collect()
            });
            // Replayed through the API and by hand: refused, naming a
            // second claim.
            let ctx = own_context(0);
            let mut comm = std::ptr::null_mut();
            // SAFETY: raw is a root info; comm a valid output.
            let code = unsafe { HcclCommInitRootInfo(2, &raw, 1, &mut comm) };
            herr(
                code,
                HCCL_E_PARA,
                &["second claim for rank 1", "single-use"],
            );
            let (code, message) = refused(&info, &forged_hello(&info, 2, 0, 1000));
            assert_eq!(code, HCCL_E_PARA);
            assert!(message.contains("second claim for rank 0"), "{message}");
            drop_context(ctx);
            assert_eq!(rendezvous_count(), 0);
            meter.report(&case, 32 << 10, 8);
            // The communicator formed before the replay still works (its
            // ranks are in this process).
            let comms: Vec<HcclComm> = comms.into_iter().map(|c| c as HcclComm).collect();
            run_world_with(&comms, &[0, 0], collectives_program);
            destroy_all(&comms);
        }
        "second-claim" => {
            // Rank 0 waits; a forged claim for rank 0 arrives: both fail
            // at once, naming the second claim.
            let mine = raw;
            let waiter = std::thread::spawn(move || {
                let ctx = own_context(0);
                let mut comm = std::ptr::null_mut();
                let start = Instant::now();
                // SAFETY: mine is a root info; comm a valid output.
                let code = unsafe { HcclCommInitRootInfo(2, &mine, 0, &mut comm) };
                let message = herr(code, HCCL_E_PARA, &["second claim for rank 0"]);
                drop_context(ctx);
                (start.elapsed(), message)
            });
            let start = Instant::now();
            while rendezvous_count() == 0 && start.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(5));
            }
            assert_eq!(rendezvous_count(), 1);
            let (code, message) = refused(&info, &forged_hello(&info, 2, 0, 1000));
            assert_eq!(code, HCCL_E_PARA);
            assert!(message.contains("second claim for rank 0"), "{message}");
            let (waited, message) = waiter.join().unwrap();
            assert!(waited < Duration::from_secs(5), "{waited:?}: {message}");
            // A late claim for rank 1 finds the root info used.
            let (_, message) = refused(&info, &forged_hello(&info, 2, 1, 1000));
            assert!(message.contains("single-use"), "{message}");

            // A forger completes a rendezvous as rank 1 (whoever holds the
            // bytes can join); the real rank 1 then arrives late: the
            // communicator fails for every rank with that reason, rather
            // than letting the forger's contributions in silently.
            let raw2 = new_root_info();
            let info2 = decode(&raw2);
            let ctx = own_context(0);
            let mut forger = connect(&info2);
            let mine = raw2;
            let rank0 = std::thread::spawn(move || {
                let ctx = own_context(0);
                let mut comm = std::ptr::null_mut();
                // SAFETY: mine is a root info; comm a valid output.
                hok(unsafe { HcclCommInitRootInfo(2, &mine, 0, &mut comm) });
                drop_context(ctx);
                comm as usize
            });
            std::thread::sleep(Duration::from_millis(100));
            write_msg(&mut forger, &forged_hello(&info2, 2, 1, 20_000)).unwrap();
            assert!(matches!(
                answer(&mut forger),
                Some(Msg::JoinedNetwork { .. })
            ));
            let comm0 = rank0.join().unwrap() as HcclComm;
            let mut late = std::ptr::null_mut();
            // SAFETY: raw2 is a root info; late a valid output.
            let code = unsafe { HcclCommInitRootInfo(2, &raw2, 1, &mut late) };
            herr(
                code,
                HCCL_E_PARA,
                &["second claim for rank 1", "failed for every rank"],
            );
            // Rank 0's next collective fails with the reason, not a timeout.
            let stream = new_stream();
            let buf = upload(&[0u8; 16]);
            let start = Instant::now();
            // SAFETY: buf holds 4 f32 values; comm0 and stream are live.
            unsafe {
                hok(HcclAllReduce(
                    buf,
                    buf,
                    4,
                    HCCL_DATA_TYPE_FP32,
                    HCCL_REDUCE_SUM,
                    comm0,
                    stream,
                ));
                let code = aclrtSynchronizeStream(stream);
                assert_ne!(code, ACL_SUCCESS);
            }
            let message = take_message().unwrap_or_default();
            assert!(message.contains("second claim for rank 1"), "{message}");
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{:?}",
                start.elapsed()
            );
            // SAFETY: stream and comm0 are live.
            unsafe {
                ok(aclrtDestroyStream(stream));
                hok(HcclCommDestroy(comm0));
            }
            free(buf);
            drop(forger);
            drop_context(ctx);
            meter.report(&case, 32 << 10, 12);
        }
        "max-timeout" => {
            // Past the largest timeout: refused.
            let (code, message) = refused(&info, &forged_hello(&info, 2, 1, u64::MAX));
            assert_eq!(code, HCCL_E_PARA);
            assert!(
                message.contains("timeout 18446744073709551615 ms is out of range"),
                "{message}"
            );
            // The largest: accepted, then the client goes; its thread and
            // descriptors are freed within the liveness check, and the
            // rendezvous fails (the root info is used up).
            let max = MAX_TIMEOUT.as_millis() as u64;
            let fds = || std::fs::read_dir("/proc/self/fd").unwrap().count();
            let fds0 = fds();
            let mut s = connect(&info);
            write_msg(&mut s, &forged_hello(&info, 2, 1, max)).unwrap();
            let start = Instant::now();
            while rendezvous_count() == 0 && start.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(5));
            }
            assert_eq!(rendezvous_count(), 1);
            meter.sample();
            let waiting = status().2;
            drop(s);
            let start = Instant::now();
            while (rendezvous_count() > 0 || status().2 >= waiting)
                && start.elapsed() < Duration::from_secs(5)
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            let freed = start.elapsed();
            println!(
                "HOSTILE {case}: the waiting thread ended {} ms after the client left",
                freed.as_millis()
            );
            assert_eq!(rendezvous_count(), 0);
            assert!(status().2 < waiting, "the connection thread is still there");
            assert!(fds() <= fds0, "{} descriptors, {fds0} before", fds());
            assert!(freed < Duration::from_secs(2), "{freed:?}");
            meter.report(&case, 8 << 10, 4);
        }
        "env-timeout" => {
            // ASCEND_MOCK_HCCL_TIMEOUT_MS past the largest timeout: refused
            // in the caller, before it connects (no legitimate run: this
            // process's ranks would read the same setting).
            let ctx = own_context(0);
            let mut comm = std::ptr::null_mut();
            // SAFETY: raw is a root info; comm a valid output.
            let code = unsafe { HcclCommInitRootInfo(2, &raw, 0, &mut comm) };
            herr(
                code,
                HCCL_E_PARA,
                &[crate::hccl::TIMEOUT_ENV, "from 1 to 86400000"],
            );
            drop_context(ctx);
            assert_eq!(connection_stats().accepted, 0);
            meter.report(&case, 4 << 10, 2);
            return;
        }
        other => panic!("unknown case {other}"),
    }
    legitimate();
    let (_, hwm, threads) = status();
    println!("HOSTILE {case}: after the legitimate collectives VmHWM {hwm} KiB, {threads} threads");
}

/// A holder of the root info joins as both ranks and then sends
/// contributions with ever new sequence numbers from rank 0: past
/// `MAX_SLOTS` waiting collectives the coordinator refuses more instead
/// of holding them; a contribution whose payload disagrees with its call
/// is refused before it is read (the rank is cut off).
#[test]
fn a_joined_rank_cannot_make_the_coordinator_hoard() {
    use crate::hccl::collective::Kind;
    use crate::hccl::coordinator::MAX_SLOTS;
    use crate::hccl::wire::CallDesc;

    let raw = new_root_info();
    let info = decode(&raw);
    let mut r0 = connect(&info);
    let mut r1 = connect(&info);
    write_msg(&mut r0, &forged_hello(&info, 2, 0, 60_000)).unwrap();
    write_msg(&mut r1, &forged_hello(&info, 2, 1, 60_000)).unwrap();
    assert!(matches!(answer(&mut r0), Some(Msg::JoinedNetwork { .. })));
    assert!(matches!(answer(&mut r1), Some(Msg::JoinedNetwork { .. })));
    let barrier = |seq: u64| Msg::Contribute {
        seq,
        timeout_ms: 60_000,
        call: CallDesc {
            kind: Kind::Barrier,
            dtype: HCCL_DATA_TYPE_INT8,
            op: None,
            root: 0,
            count: 0,
            v: None,
        },
        data: Vec::new(),
    };
    for seq in 1..=MAX_SLOTS as u64 + 1 {
        write_msg(&mut r0, &barrier(seq)).unwrap();
    }
    match answer(&mut r0) {
        Some(Msg::Outcome {
            seq,
            result: Err((code, message)),
        }) => {
            assert_eq!(seq, MAX_SLOTS as u64 + 1);
            assert_eq!(code, HCCL_E_UNAVAIL, "{message}");
            assert!(message.contains("already waiting"), "{message}");
        }
        other => panic!("expected a refusal of the extra collective, got {other:?}"),
    }
    // Rank 1 completes the first: both get it.
    write_msg(&mut r1, &barrier(1)).unwrap();
    for s in [&mut r0, &mut r1] {
        assert!(matches!(
            answer(s),
            Some(Msg::Outcome {
                seq: 1,
                result: Ok(_)
            })
        ));
    }
    // A 4-element all-reduce announcing 1 GiB of payload: cut off at the
    // header, the payload never read.
    let lying = Msg::Contribute {
        seq: 2,
        timeout_ms: 60_000,
        call: CallDesc {
            kind: Kind::AllReduce,
            dtype: HCCL_DATA_TYPE_FP32,
            op: Some(HCCL_REDUCE_SUM),
            root: 0,
            count: 4,
            v: None,
        },
        data: Vec::new(),
    };
    let mut frame = Vec::new();
    write_msg(&mut frame, &lying).unwrap();
    frame[8..16].copy_from_slice(&(1u64 << 30).to_le_bytes());
    r1.write_all(&frame).unwrap();
    // Rank 0 hears that rank 1 is gone.
    let start = Instant::now();
    loop {
        match answer(&mut r0) {
            Some(Msg::PeerLost { rank: 1, message }) => {
                assert!(message.contains("implies 16 bytes"), "{message}");
                break;
            }
            Some(_) => {}
            None => panic!("rank 0 was cut off instead of rank 1"),
        }
        assert!(start.elapsed() < Duration::from_secs(10));
    }
}
