//! What race detection costs: the same stream work with the sanitizer on
//! (`report`, the default) and off. Run it twice and compare:
//!
//! ```sh
//! cargo bench -p ascend-mock --bench race
//! ASCEND_MOCK_SANITIZER=off cargo bench -p ascend-mock --bench race
//! ```
//!
//! - `enqueue_two_streams`: 64 rounds of a 4 KiB memset on one stream, an
//!   event record, a wait on a second stream and a device-to-device copy
//!   there, on 64 ranges of one 1 MiB allocation (as a caching pool hands
//!   them out), then both streams synchronised. Mostly enqueue and
//!   tracking cost: the tasks themselves are tiny.
//! - `enqueue_one_stream`: the same copies and memsets on one stream, no
//!   events.
//! - `calls_only_two_streams`: the calls of `enqueue_two_streams` timed
//!   alone, while a host function holds both streams back (so the workers
//!   do not compete for the CPU): the cost of the calls themselves, which
//!   is where race detection does its work.
//!
//! The benchmark names carry the mode, so both runs can sit in one
//! criterion report.

use std::ffi::c_void;
use std::hint::black_box;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ascend_mock::sanitizer;
use ascend_sys::*;
use criterion::{Criterion, criterion_group, criterion_main};

const CHUNK: usize = 4096;
const ROUNDS: usize = 64;

type Api = ascend_sys::Api;

fn check(code: aclError, what: &str) {
    assert_eq!(code, ACL_SUCCESS, "{what} failed");
}

struct Setup {
    api: Api,
    s1: aclrtStream,
    s2: aclrtStream,
    event: aclrtEvent,
    src: *mut c_void,
    dst: *mut c_void,
}

fn setup() -> Setup {
    let api = Api::from_resolver(ascend_mock::resolve, "ascend-mock");
    let (mut s1, mut s2, mut event) = (null_mut(), null_mut(), null_mut());
    let (mut src, mut dst) = (null_mut(), null_mut());
    // SAFETY: the mock's functions with valid output locations.
    unsafe {
        check(api.acl.aclInit().unwrap()(std::ptr::null()), "aclInit");
        check(api.acl.aclrtSetDevice().unwrap()(0), "aclrtSetDevice");
        let create = api.acl.aclrtCreateStream().unwrap();
        check(create(&mut s1), "aclrtCreateStream");
        check(create(&mut s2), "aclrtCreateStream");
        check(
            api.acl.aclrtCreateEvent().unwrap()(&mut event),
            "aclrtCreateEvent",
        );
        let malloc = api.acl.aclrtMalloc().unwrap();
        check(
            malloc(&mut src, CHUNK * ROUNDS, ACL_MEM_MALLOC_HUGE_FIRST),
            "aclrtMalloc",
        );
        check(
            malloc(&mut dst, CHUNK * ROUNDS, ACL_MEM_MALLOC_HUGE_FIRST),
            "aclrtMalloc",
        );
    }
    Setup {
        api,
        s1,
        s2,
        event,
        src,
        dst,
    }
}

/// Holds a stream until the `AtomicBool` behind `args` is set.
unsafe extern "C" fn gate(args: *mut c_void) {
    // SAFETY: the benchmark passes a static AtomicBool.
    let open = unsafe { &*(args as *const AtomicBool) };
    while !open.load(Ordering::Acquire) {
        std::thread::yield_now();
    }
}

static OPEN: AtomicBool = AtomicBool::new(false);

fn at(p: *mut c_void, i: usize) -> *mut c_void {
    p.cast::<u8>().wrapping_add(i * CHUNK).cast()
}

fn enqueue(c: &mut Criterion) {
    let s = setup();
    let mode = format!("{:?}", sanitizer::mode()).to_lowercase();
    let memset = s.api.acl.aclrtMemsetAsync().unwrap();
    let copy = s.api.acl.aclrtMemcpyAsync().unwrap();
    let record = s.api.acl.aclrtRecordEvent().unwrap();
    let wait = s.api.acl.aclrtStreamWaitEvent().unwrap();
    let sync = s.api.acl.aclrtSynchronizeStream().unwrap();
    let mut group = c.benchmark_group("race_detection");
    group.bench_function(format!("enqueue_two_streams/{mode}"), |b| {
        b.iter(|| {
            // SAFETY: every range lies inside the two allocations; the
            // streams are synchronised before the next iteration.
            unsafe {
                for i in 0..ROUNDS {
                    check(memset(at(s.src, i), CHUNK, i as i32, CHUNK, s.s1), "memset");
                    check(record(s.event, s.s1), "record");
                    check(wait(s.s2, s.event), "wait");
                    check(
                        copy(
                            at(s.dst, i),
                            CHUNK,
                            at(s.src, i),
                            CHUNK,
                            ACL_MEMCPY_DEVICE_TO_DEVICE,
                            s.s2,
                        ),
                        "copy",
                    );
                }
                check(sync(s.s2), "sync");
                check(sync(s.s1), "sync");
            }
            black_box(s.dst);
        })
    });
    group.bench_function(format!("enqueue_one_stream/{mode}"), |b| {
        b.iter(|| {
            // SAFETY: as above, on one stream.
            unsafe {
                for i in 0..ROUNDS {
                    check(memset(at(s.src, i), CHUNK, i as i32, CHUNK, s.s1), "memset");
                    check(
                        copy(
                            at(s.dst, i),
                            CHUNK,
                            at(s.src, i),
                            CHUNK,
                            ACL_MEMCPY_DEVICE_TO_DEVICE,
                            s.s1,
                        ),
                        "copy",
                    );
                }
                check(sync(s.s1), "sync");
            }
            black_box(s.dst);
        })
    });
    let host_fn = s.api.acl.aclrtLaunchHostFunc().unwrap();
    group.bench_function(format!("calls_only_two_streams/{mode}"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                OPEN.store(false, Ordering::Release);
                let arg = &OPEN as *const AtomicBool as *mut c_void;
                // SAFETY: as above; the gate is opened before the syncs.
                unsafe {
                    check(host_fn(s.s1, Some(gate), arg), "host fn");
                    check(host_fn(s.s2, Some(gate), arg), "host fn");
                    let start = Instant::now();
                    for i in 0..ROUNDS {
                        check(memset(at(s.src, i), CHUNK, i as i32, CHUNK, s.s1), "memset");
                        check(record(s.event, s.s1), "record");
                        check(wait(s.s2, s.event), "wait");
                        check(
                            copy(
                                at(s.dst, i),
                                CHUNK,
                                at(s.src, i),
                                CHUNK,
                                ACL_MEMCPY_DEVICE_TO_DEVICE,
                                s.s2,
                            ),
                            "copy",
                        );
                    }
                    total += start.elapsed();
                    OPEN.store(true, Ordering::Release);
                    check(sync(s.s2), "sync");
                    check(sync(s.s1), "sync");
                }
            }
            total
        })
    });
    group.finish();
    assert!(
        sanitizer::reports().is_empty(),
        "the benchmark raised reports: {:?}",
        sanitizer::reports()
    );
}

criterion_group!(benches, enqueue);
criterion_main!(benches);
