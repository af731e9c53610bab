//! Planted races against the exported C functions: unordered accesses
//! from two streams (reported), the same accesses ordered by an event, a
//! stream or device synchronisation, a query or the host (not reported),
//! a synchronisation of the wrong stream, operators and HCCL collectives
//! racing copies, frees of memory that queued work still uses, disjoint
//! ranges, one stream, pinned host blocks staged between streams and
//! freed under queued copies, and the `off` mode.
//!
//! The tests run in the shared test process on their own contexts and
//! streams; what changes process-wide state (`aclrtSynchronizeDevice`,
//! which synchronises every stream of the device, and the sanitizer mode)
//! runs in a child process.

use std::ffi::c_void;
use std::ptr::null_mut;
use std::time::Duration;

use ascend_sys::*;

use crate::exports::*;
use crate::sanitizer::{self, ReportClass};
use crate::tests_support::*;

/// Takes this thread's message and checks that it is a kept `race`
/// report.
#[track_caller]
fn expect_race() -> String {
    let msg = take_message().expect("a message");
    assert_eq!(
        ReportClass::of_message(&msg),
        Some(ReportClass::Race),
        "{msg}"
    );
    assert!(
        sanitizer::reports().iter().any(|r| r.message == msg),
        "report not kept: {msg}"
    );
    msg
}

/// The call numbers cited in `msg` (`(call #N)`), in order.
fn call_numbers(msg: &str) -> Vec<u64> {
    msg.split("(call #")
        .skip(1)
        .filter_map(|rest| rest.split(')').next()?.parse().ok())
        .collect()
}

fn stream_id(s: aclrtStream) -> i32 {
    let mut id = 0;
    // SAFETY: a live stream and a local output.
    ok(unsafe { aclrtStreamGetId(s, &mut id) });
    id
}

/// A context with two streams and device buffers, released at the end.
struct Two {
    ctx: aclrtContext,
    s1: aclrtStream,
    s2: aclrtStream,
    bufs: Vec<*mut c_void>,
}

impl Two {
    fn new() -> Two {
        let ctx = own_context(0);
        Two {
            ctx,
            s1: new_stream(),
            s2: new_stream(),
            bufs: Vec::new(),
        }
    }

    fn buf(&mut self, n: usize) -> *mut c_void {
        let p = dev_alloc(n);
        self.bufs.push(p);
        p
    }

    fn sync_all(&self) {
        for s in [self.s1, self.s2] {
            // SAFETY: live streams of this test.
            ok(unsafe { aclrtSynchronizeStream(s) });
        }
    }
}

impl Drop for Two {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        self.sync_all();
        for p in self.bufs.drain(..) {
            // SAFETY: p came from aclrtMalloc; both streams are idle.
            ok(unsafe { aclrtFree(p) });
        }
        for s in [self.s1, self.s2] {
            // SAFETY: live streams of this test.
            ok(unsafe { aclrtDestroyStream(s) });
        }
        drop_context(self.ctx);
    }
}

fn memset_async(p: *mut c_void, n: usize, s: aclrtStream) -> aclError {
    // SAFETY: p is a device buffer of at least n bytes (or a planted bad
    // pointer the mock refuses before touching it).
    unsafe { aclrtMemsetAsync(p, n, 1, n, s) }
}

fn d2d_async(dst: *mut c_void, src: *const c_void, n: usize, s: aclrtStream) -> aclError {
    // SAFETY: both are device buffers of at least n bytes.
    unsafe { aclrtMemcpyAsync(dst, n, src, n, ACL_MEMCPY_DEVICE_TO_DEVICE, s) }
}

fn offset(p: *mut c_void, bytes: usize) -> *mut c_void {
    p.cast::<u8>().wrapping_add(bytes).cast()
}

#[test]
fn write_write_across_streams_is_reported() {
    let mut t = Two::new();
    let p = t.buf(4096);
    ok(memset_async(p, 4096, t.s1));
    // Let the first task finish: detection follows program order, not
    // timing.
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(memset_async(p, 4096, t.s2), ACL_ERROR_RT_PARAM_INVALID);
    let msg = expect_race();
    let calls = call_numbers(&msg);
    assert_eq!(calls.len(), 3, "{msg}");
    let at = format!("{:#x}", p as usize);
    assert_eq!(
        msg,
        format!(
            "race: aclrtMemsetAsync (call #{}) on stream {} writes [{at}+4096) of a 4128-byte allocation at {at} (device memory of device 0, allocated by aclrtMalloc (call #{})) while aclrtMemsetAsync (call #{}) on stream {} writes [{at}+4096) with no event or synchronization ordering them",
            calls[0],
            stream_id(t.s2),
            calls[1],
            calls[2],
            stream_id(t.s1)
        )
    );
    assert!(calls[1] < calls[2] && calls[2] < calls[0], "{msg}");
}

#[test]
fn write_read_across_streams_is_reported_both_ways() {
    let mut t = Two::new();
    let (a, b, c, d) = (t.buf(1024), t.buf(1024), t.buf(1024), t.buf(1024));
    ok(memset_async(a, 1024, t.s1));
    // Reading what another stream writes.
    assert_eq!(d2d_async(b, a, 1024, t.s2), ACL_ERROR_RT_PARAM_INVALID);
    let msg = expect_race();
    assert!(
        msg.contains(&format!(" reads [{:#x}+1024)", a as usize)),
        "{msg}"
    );
    assert!(msg.contains("while aclrtMemsetAsync (call #"), "{msg}");
    // Writing what another stream reads.
    ok(d2d_async(b, c, 1024, t.s1));
    assert_eq!(memset_async(c, 1024, t.s2), ACL_ERROR_RT_PARAM_INVALID);
    let msg = expect_race();
    assert!(
        msg.contains(&format!(
            "aclrtMemcpyAsync (call #{}) on stream",
            call_numbers(&msg)[2]
        )),
        "{msg}"
    );
    assert!(
        msg.contains(&format!(" reads [{:#x}+1024)", c as usize)),
        "{msg}"
    );
    // Two readers never race.
    ok(d2d_async(d, c, 256, t.s2));
}

#[test]
fn record_and_wait_order_the_streams() {
    let mut t = Two::new();
    let p = t.buf(4096);
    let mut ev = null_mut();
    // SAFETY: local output.
    ok(unsafe { aclrtCreateEvent(&mut ev) });
    ok(memset_async(p, 4096, t.s1));
    // SAFETY: live event and streams.
    unsafe {
        ok(aclrtRecordEvent(ev, t.s1));
        ok(aclrtStreamWaitEvent(t.s2, ev));
    }
    ok(memset_async(p, 4096, t.s2));
    // A record taken before the write does not order it.
    // SAFETY: live event and stream.
    ok(unsafe { aclrtRecordEvent(ev, t.s2) });
    ok(memset_async(p, 4096, t.s2));
    // SAFETY: live event and stream.
    ok(unsafe { aclrtStreamWaitEvent(t.s1, ev) });
    assert_eq!(memset_async(p, 4096, t.s1), ACL_ERROR_RT_PARAM_INVALID);
    expect_race();
    // A reset event orders nothing.
    // SAFETY: live event and streams.
    unsafe {
        ok(aclrtRecordEvent(ev, t.s2));
        ok(aclrtResetEvent(ev, t.s2));
        ok(aclrtStreamWaitEvent(t.s1, ev));
    }
    assert_eq!(memset_async(p, 4096, t.s1), ACL_ERROR_RT_PARAM_INVALID);
    expect_race();
    // SAFETY: the streams are synchronised before the event goes.
    t.sync_all();
    ok(unsafe { aclrtDestroyEvent(ev) });
}

#[test]
fn stream_synchronization_orders_the_streams() {
    let mut t = Two::new();
    let p = t.buf(4096);
    ok(memset_async(p, 4096, t.s1));
    // SAFETY: a live stream.
    ok(unsafe { aclrtSynchronizeStream(t.s1) });
    ok(memset_async(p, 4096, t.s2));
    // A completed query orders like a synchronisation.
    let mut status = ACL_STREAM_STATUS_NOT_READY;
    while status != ACL_STREAM_STATUS_COMPLETE {
        // SAFETY: a live stream and a local output.
        ok(unsafe { aclrtStreamQuery(t.s2, &mut status) });
    }
    ok(memset_async(p, 4096, t.s1));
    // So does a completed event.
    let mut ev = null_mut();
    // SAFETY: local output, live event and stream.
    unsafe {
        ok(aclrtCreateEvent(&mut ev));
        ok(aclrtRecordEvent(ev, t.s1));
        ok(aclrtSynchronizeEvent(ev));
    }
    ok(memset_async(p, 4096, t.s2));
    // SAFETY: live event and stream.
    unsafe {
        ok(aclrtRecordEvent(ev, t.s2));
        let mut st = ACL_EVENT_RECORDED_STATUS_NOT_READY;
        while st != ACL_EVENT_RECORDED_STATUS_COMPLETE {
            ok(aclrtQueryEventStatus(ev, &mut st));
        }
    }
    ok(memset_async(p, 4096, t.s1));
    t.sync_all();
    // SAFETY: a live event, idle streams.
    ok(unsafe { aclrtDestroyEvent(ev) });
}

#[test]
fn synchronizing_the_wrong_stream_is_reported() {
    let mut t = Two::new();
    let (p, q) = (t.buf(4096), t.buf(4096));
    ok(memset_async(p, 4096, t.s1));
    // SAFETY: a live stream.
    ok(unsafe { aclrtSynchronizeStream(t.s2) });
    assert_eq!(d2d_async(q, p, 4096, t.s2), ACL_ERROR_RT_PARAM_INVALID);
    expect_race();
    // The host reading it synchronously races too.
    let mut out = vec![0u8; 64];
    // SAFETY: `out` holds 64 bytes; p is a live device buffer.
    let code = unsafe {
        aclrtMemcpy(
            out.as_mut_ptr().cast(),
            64,
            offset(p, 128),
            64,
            ACL_MEMCPY_DEVICE_TO_HOST,
        )
    };
    assert_eq!(code, ACL_ERROR_RT_PARAM_INVALID);
    let msg = expect_race();
    assert!(
        msg.starts_with(&format!(
            "race: aclrtMemcpy (call #{}) on the host reads [{:#x}+64) of a 4128-byte allocation",
            call_numbers(&msg)[0],
            p as usize + 128
        )),
        "{msg}"
    );
    assert!(
        msg.ends_with("still queued, with no synchronization ordering it before the host"),
        "{msg}"
    );
    // After the right synchronisation, the host may read and write.
    // SAFETY: a live stream; `out` holds 64 bytes.
    unsafe {
        ok(aclrtSynchronizeStream(t.s1));
        ok(aclrtMemcpy(
            out.as_mut_ptr().cast(),
            64,
            p,
            64,
            ACL_MEMCPY_DEVICE_TO_HOST,
        ));
        ok(aclrtMemset(p, 4096, 0, 4096));
    }
    assert!(out.iter().all(|&b| b == 1));
}

#[test]
fn the_host_orders_later_work_on_every_thread() {
    let mut t = Two::new();
    let p = t.buf(4096);
    // A synchronous write, then stream work: ordered.
    // SAFETY: p is a live device buffer of 4096 bytes.
    ok(unsafe { aclrtMemset(p, 4096, 3, 4096) });
    ok(memset_async(p, 4096, t.s1));
    // Another thread synchronises s1; this thread's later work on s2 is
    // ordered after it (one host clock for every host thread).
    let s1 = t.s1 as usize;
    let ctx = t.ctx as usize;
    std::thread::spawn(move || {
        // SAFETY: the context and stream outlive this thread.
        unsafe {
            ok(aclrtSetCurrentContext(ctx as aclrtContext));
            ok(aclrtSynchronizeStream(s1 as aclrtStream));
        }
    })
    .join()
    .unwrap();
    ok(memset_async(p, 4096, t.s2));
}

#[test]
fn disjoint_ranges_and_one_stream_are_not_reported() {
    let mut t = Two::new();
    let p = t.buf(4096);
    ok(memset_async(p, 2048, t.s1));
    ok(memset_async(offset(p, 2048), 2048, t.s2));
    ok(d2d_async(offset(p, 2048), offset(p, 3072), 1024, t.s2));
    // One byte of overlap is enough.
    assert_eq!(
        memset_async(offset(p, 2047), 2, t.s2),
        ACL_ERROR_RT_PARAM_INVALID
    );
    let msg = expect_race();
    assert!(
        msg.contains(&format!("[{:#x}+2)", p as usize + 2047)),
        "{msg}"
    );
    assert!(msg.contains(&format!("[{:#x}+2048)", p as usize)), "{msg}");
    // Any mix of reads and writes on one stream is ordered.
    let q = t.buf(4096);
    for i in 0..200 {
        let at = (i * 64) % 4096;
        ok(memset_async(offset(q, at), 64, t.s1));
        ok(d2d_async(offset(p, at / 4), offset(q, at), 64, t.s1));
        ok(d2d_async(
            offset(q, at),
            offset(q, (at + 64) % 4096),
            64,
            t.s1,
        ));
    }
}

#[test]
fn free_while_another_stream_reads_is_reported() {
    let mut t = Two::new();
    let (src, dst) = (dev_alloc(4096), t.buf(4096));
    ok(d2d_async(dst, src, 4096, t.s1));
    std::thread::sleep(Duration::from_millis(20));
    // SAFETY: src came from aclrtMalloc; the mock refuses the free.
    assert_eq!(unsafe { aclrtFree(src) }, ACL_ERROR_RT_PARAM_INVALID);
    let msg = expect_race();
    let calls = call_numbers(&msg);
    let at = format!("{:#x}", src as usize);
    assert_eq!(
        msg,
        format!(
            "race: aclrtFree (call #{}) frees a 4128-byte allocation at {at} (device memory of device 0, allocated by aclrtMalloc (call #{})) while aclrtMemcpyAsync (call #{}) on stream {} reads [{at}+4096), still queued, may use it: no synchronization orders that work before the free",
            calls[0],
            calls[1],
            calls[2],
            stream_id(t.s1)
        )
    );
    // The block is still live: work on it and a later ordered free succeed.
    ok(d2d_async(dst, src, 4096, t.s1));
    // SAFETY: a live stream; src is still allocated.
    unsafe {
        ok(aclrtSynchronizeStream(t.s1));
        ok(aclrtFree(src));
    }
}

fn copy_async(
    dst: *mut c_void,
    src: *const c_void,
    n: usize,
    kind: aclrtMemcpyKind,
    s: aclrtStream,
) -> aclError {
    // SAFETY: both sides hold at least n bytes (device or pinned memory).
    unsafe { aclrtMemcpyAsync(dst, n, src, n, kind, s) }
}

fn free_host(p: *mut c_void) -> aclError {
    // SAFETY: p came from aclrtMallocHost (the mock refuses a racing free).
    unsafe { aclrtFreeHost(p) }
}

#[test]
fn pinned_memory_staged_between_streams_races_without_an_event() {
    let mut t = Two::new();
    let (a, b) = (t.buf(4096), t.buf(4096));
    let pinned = host_alloc(4096);
    // Stream 1 downloads into the pinned block; stream 2 uploads from it
    // with nothing ordering the two: the upload may read stale bytes.
    ok(copy_async(pinned, a, 4096, ACL_MEMCPY_DEVICE_TO_HOST, t.s1));
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        copy_async(b, pinned, 4096, ACL_MEMCPY_HOST_TO_DEVICE, t.s2),
        ACL_ERROR_RT_PARAM_INVALID
    );
    let msg = expect_race();
    let at = format!("{:#x}", pinned as usize);
    assert!(
        msg.contains(&format!("reads [{at}+4096) of a 4128-byte allocation at {at} (pinned host memory, allocated by aclrtMallocHost (call #"))
            && msg.contains(&format!("while aclrtMemcpyAsync (call #{}) on stream {} writes [{at}+4096)", call_numbers(&msg)[2], stream_id(t.s1))),
        "{msg}"
    );
    // Ordered by an event, the same hand-off is clean.
    let mut ev = null_mut();
    // SAFETY: live streams; ev is a local output, destroyed below.
    unsafe {
        ok(aclrtCreateEvent(&mut ev));
        ok(aclrtRecordEvent(ev, t.s1));
        ok(aclrtStreamWaitEvent(t.s2, ev));
    }
    ok(copy_async(b, pinned, 4096, ACL_MEMCPY_HOST_TO_DEVICE, t.s2));
    // Stream 2 reads the block while stream 1 writes it again: a race.
    assert_eq!(
        copy_async(pinned, a, 4096, ACL_MEMCPY_DEVICE_TO_HOST, t.s1),
        ACL_ERROR_RT_PARAM_INVALID
    );
    expect_race();
    t.sync_all();
    // SAFETY: the event is live and no longer waited on.
    ok(unsafe { aclrtDestroyEvent(ev) });
    ok(free_host(pinned));
}

#[test]
fn freeing_pinned_memory_that_queued_work_uses_is_reported() {
    let mut t = Two::new();
    let a = t.buf(4096);
    let pinned = host_alloc(4096);
    ok(copy_async(a, pinned, 4096, ACL_MEMCPY_HOST_TO_DEVICE, t.s1));
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(free_host(pinned), ACL_ERROR_RT_PARAM_INVALID);
    let msg = expect_race();
    let calls = call_numbers(&msg);
    let at = format!("{:#x}", pinned as usize);
    assert_eq!(
        msg,
        format!(
            "race: aclrtFreeHost (call #{}) frees a 4128-byte allocation at {at} (pinned host memory, allocated by aclrtMallocHost (call #{})) while aclrtMemcpyAsync (call #{}) on stream {} reads [{at}+4096), still queued, may use it: no synchronization orders that work before the free",
            calls[0],
            calls[1],
            calls[2],
            stream_id(t.s1)
        )
    );
    // A synchronous copy into the block races with the queued read too.
    let host = vec![3u8; 4096];
    // SAFETY: `host` holds 4096 bytes, the pinned block 4096.
    let code = unsafe {
        aclrtMemcpy(
            pinned,
            4096,
            host.as_ptr().cast(),
            4096,
            ACL_MEMCPY_HOST_TO_HOST,
        )
    };
    assert_eq!(code, ACL_ERROR_RT_PARAM_INVALID);
    expect_race();
    // After the stream is synchronized, both are fine.
    // SAFETY: a live stream of this test.
    ok(unsafe { aclrtSynchronizeStream(t.s1) });
    // SAFETY: as above.
    ok(unsafe {
        aclrtMemcpy(
            pinned,
            4096,
            host.as_ptr().cast(),
            4096,
            ACL_MEMCPY_HOST_TO_HOST,
        )
    });
    ok(free_host(pinned));
}

/// A contiguous f32 tensor of `n` elements at `data`.
fn vector(n: i64, data: *mut c_void) -> *mut aclTensor {
    let shape = [n];
    let strides = [1i64];
    // SAFETY: the arrays are live slices of the stated lengths.
    let t = unsafe {
        aclCreateTensor(
            shape.as_ptr(),
            1,
            ACL_FLOAT,
            strides.as_ptr(),
            0,
            ACL_FORMAT_ND,
            shape.as_ptr(),
            1,
            data,
        )
    };
    assert!(!t.is_null(), "{:?}", take_message());
    t
}

fn scalar_one() -> *mut aclScalar {
    let mut v = 1.0f32;
    // SAFETY: `v` is a live f32; the value is copied.
    let s = unsafe { aclCreateScalar((&mut v as *mut f32).cast(), ACL_FLOAT) };
    assert!(!s.is_null());
    s
}

/// Queues `out = a + b` on `stream`; returns phase two's status (a
/// refused phase two consumes its executor too).
fn add(
    a: *mut aclTensor,
    b: *mut aclTensor,
    out: *mut aclTensor,
    alpha: *mut aclScalar,
    stream: aclrtStream,
) -> aclnnStatus {
    let (mut ws, mut ex) = (0u64, null_mut());
    // SAFETY: live descriptors and local outputs.
    unsafe {
        assert_eq!(
            aclnnAddGetWorkspaceSize(a, b, alpha, out, &mut ws, &mut ex),
            ACLNN_SUCCESS,
            "{:?}",
            take_message()
        );
        aclnnAdd(null_mut(), 0, ex, stream)
    }
}

#[test]
fn an_operator_racing_a_copy_is_reported() {
    let mut t = Two::new();
    let (a, b, out, other) = (t.buf(256), t.buf(256), t.buf(256), t.buf(256));
    let (ta, tb, tout) = (vector(64, a), vector(64, b), vector(64, out));
    let alpha = scalar_one();
    assert_eq!(add(ta, tb, tout, alpha, t.s1), ACLNN_SUCCESS);
    // A copy on another stream overwriting an input the operator reads.
    assert_eq!(d2d_async(a, other, 256, t.s2), ACL_ERROR_RT_PARAM_INVALID);
    let msg = expect_race();
    assert!(msg.contains("while aclnnAdd (call #"), "{msg}");
    assert!(
        msg.contains(&format!(" reads [{:#x}+256)", a as usize)),
        "{msg}"
    );
    // A copy reading the output while the operator writes it.
    assert_eq!(d2d_async(other, out, 256, t.s2), ACL_ERROR_RT_PARAM_INVALID);
    let msg = expect_race();
    assert!(
        msg.contains(&format!(" writes [{:#x}+256)", out as usize)),
        "{msg}"
    );
    // The operator queued second is the one refused (aclnn's code), and
    // nothing is queued.
    t.sync_all();
    ok(memset_async(b, 256, t.s2));
    assert_eq!(add(ta, tb, tout, alpha, t.s1), ACLNN_ERR_PARAM_INVALID);
    let msg = expect_race();
    assert!(msg.starts_with("race: aclnnAdd (call #"), "{msg}");
    assert!(msg.contains("while aclrtMemsetAsync (call #"), "{msg}");
    // In-place operands are written: a reader on another stream races.
    t.sync_all();
    ok(d2d_async(other, a, 256, t.s2));
    let (mut ws, mut ex) = (0u64, null_mut());
    // SAFETY: live descriptors and local outputs.
    let code = unsafe {
        assert_eq!(
            aclnnInplaceAddGetWorkspaceSize(ta, tb, alpha, &mut ws, &mut ex),
            ACLNN_SUCCESS
        );
        aclnnInplaceAdd(null_mut(), 0, ex, t.s1)
    };
    assert_eq!(code, ACLNN_ERR_PARAM_INVALID);
    let msg = expect_race();
    assert!(
        msg.starts_with(&format!(
            "race: aclnnInplaceAdd (call #{}) on stream {} writes [{:#x}+256)",
            call_numbers(&msg)[0],
            stream_id(t.s1),
            a as usize
        )),
        "{msg}"
    );
    // SAFETY: descriptors made above, destroyed once.
    unsafe {
        for d in [ta, tb, tout] {
            assert_eq!(aclDestroyTensor(d), ACLNN_SUCCESS);
        }
        assert_eq!(aclDestroyScalar(alpha), ACLNN_SUCCESS);
    }
}

fn hok(code: HcclResult) {
    assert_eq!(code, HCCL_SUCCESS, "{:?}", take_message());
}

#[test]
fn collective_buffers_race_and_collectives_order_their_ranks() {
    init();
    // Two ranks on device 0, each with its own stream, driven by this
    // thread.
    let mut comms = [null_mut(); 2];
    let mut devs = [0i32, 0];
    // SAFETY: two devices and two communicator slots.
    hok(unsafe { HcclCommInitAll(2, devs.as_mut_ptr(), comms.as_mut_ptr()) });
    let mut t = Two::new();
    let n = 256usize;
    let send: Vec<_> = (0..2).map(|_| t.buf(n * 4)).collect();
    let recv: Vec<_> = (0..2).map(|_| t.buf(n * 4)).collect();
    let shared = t.buf(n * 4);
    let streams = [t.s1, t.s2];
    let s3 = new_stream();
    let all_reduce = |r: usize| {
        // SAFETY: live buffers of n floats, communicators and streams.
        unsafe {
            HcclAllReduce(
                send[r],
                recv[r],
                n as u64,
                HCCL_DATA_TYPE_FP32,
                HCCL_REDUCE_SUM,
                comms[r],
                streams[r],
            )
        }
    };
    // Rank 0 writes `shared` before the all-reduce; rank 1 reads it after
    // its own part: the collective orders them.
    ok(memset_async(shared, n * 4, streams[0]));
    hok(all_reduce(0));
    hok(all_reduce(1));
    ok(d2d_async(send[1], shared, n * 4, streams[1]));
    // A third stream writing rank 0's receive buffer races the collective.
    assert_eq!(memset_async(recv[0], n * 4, s3), ACL_ERROR_RT_PARAM_INVALID);
    let msg = expect_race();
    assert!(msg.contains("while HcclAllReduce (call #"), "{msg}");
    assert!(
        msg.contains(&format!(
            "on stream {} writes [{:#x}+1024)",
            stream_id(streams[0]),
            recv[0] as usize
        )),
        "{msg}"
    );
    // And a collective whose send buffer another stream is writing is
    // refused with HCCL's code.
    let fresh = t.buf(n * 4);
    ok(memset_async(fresh, n * 4, s3));
    // SAFETY: live buffers of n floats, communicator and stream.
    let code = unsafe {
        HcclAllReduce(
            fresh,
            recv[0],
            n as u64,
            HCCL_DATA_TYPE_FP32,
            HCCL_REDUCE_SUM,
            comms[0],
            streams[0],
        )
    };
    assert_eq!(code, HCCL_E_PARA);
    let msg = expect_race();
    assert!(msg.starts_with("race: HcclAllReduce (call #"), "{msg}");
    assert!(msg.contains(" reads "), "{msg}");
    // SAFETY: live streams and communicators.
    unsafe {
        ok(aclrtSynchronizeStream(s3));
        ok(aclrtDestroyStream(s3));
    }
    t.sync_all();
    for c in comms {
        // SAFETY: c came from HcclCommInitAll; its work is done.
        hok(unsafe { HcclCommDestroy(c) });
    }
}

/// Two ranks of one communicator on device 0, each with its own stream,
/// driven by this thread; destroyed at the end.
struct Ranks {
    comms: [HcclComm; 2],
    t: Two,
}

impl Ranks {
    fn new() -> Ranks {
        init();
        let mut comms = [null_mut(); 2];
        let mut devs = [0i32, 0];
        // SAFETY: two devices and two communicator slots.
        hok(unsafe { HcclCommInitAll(2, devs.as_mut_ptr(), comms.as_mut_ptr()) });
        Ranks {
            comms,
            t: Two::new(),
        }
    }

    fn stream(&self, rank: usize) -> aclrtStream {
        [self.t.s1, self.t.s2][rank]
    }

    /// Rank `from` sends `n` floats at `buf` to the other rank.
    fn send(&self, from: usize, buf: *mut c_void, n: usize) -> HcclResult {
        // SAFETY: a live buffer of n floats, communicator and stream.
        unsafe {
            HcclSend(
                buf,
                n as u64,
                HCCL_DATA_TYPE_FP32,
                (1 - from) as u32,
                self.comms[from],
                self.stream(from),
            )
        }
    }

    /// Rank `to` receives `n` floats into `buf` from the other rank.
    fn recv(&self, to: usize, buf: *mut c_void, n: usize) -> HcclResult {
        // SAFETY: a live buffer of n floats, communicator and stream.
        unsafe {
            HcclRecv(
                buf,
                n as u64,
                HCCL_DATA_TYPE_FP32,
                (1 - to) as u32,
                self.comms[to],
                self.stream(to),
            )
        }
    }
}

impl Drop for Ranks {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        self.t.sync_all();
        for c in self.comms {
            // SAFETY: c came from HcclCommInitAll; its work is done.
            hok(unsafe { HcclCommDestroy(c) });
        }
    }
}

#[test]
fn a_send_and_its_receive_order_the_two_ranks() {
    let mut r = Ranks::new();
    let n = 64usize;
    let (shared, out) = (r.t.buf(n * 4), r.t.buf(n * 4));
    let (sbuf, rbuf) = (r.t.buf(n * 4), r.t.buf(n * 4));
    // Rank 0 writes `shared`, then sends; rank 1 receives, then reads
    // `shared`: the message orders the read after the write.
    ok(memset_async(shared, n * 4, r.stream(0)));
    hok(r.send(0, sbuf, n));
    hok(r.recv(1, rbuf, n));
    ok(d2d_async(out, shared, n * 4, r.stream(1)));
    // The same with the receive queued first: rank 1's read waits for a
    // message rank 0 has not sent yet, so it is not judged against rank
    // 0's earlier work.
    r.t.sync_all();
    ok(memset_async(shared, n * 4, r.stream(0)));
    hok(r.recv(1, rbuf, n));
    ok(d2d_async(out, shared, n * 4, r.stream(1)));
    hok(r.send(0, sbuf, n));
    // The sender learns the receiver's clock too (the transfer completes
    // on both sides together): rank 1 wrote `out` before receiving, rank
    // 0 overwrites it after sending.
    r.t.sync_all();
    ok(memset_async(out, n * 4, r.stream(1)));
    hok(r.recv(1, rbuf, n));
    hok(r.send(0, sbuf, n));
    ok(memset_async(out, n * 4, r.stream(0)));
    // A third stream writing the receive buffer races with the receive.
    let s3 = new_stream();
    assert_eq!(memset_async(rbuf, n * 4, s3), ACL_ERROR_RT_PARAM_INVALID);
    let msg = expect_race();
    assert!(msg.contains("while HcclRecv (call #"), "{msg}");
    // A message does not order ranks it does not involve: after a
    // completed message, a stream outside it still races with rank 0.
    ok(memset_async(shared, n * 4, r.stream(0)));
    assert_eq!(
        d2d_async(out, shared, n * 4, s3),
        ACL_ERROR_RT_PARAM_INVALID
    );
    expect_race();
    // SAFETY: a live stream of this test.
    unsafe {
        ok(aclrtSynchronizeStream(s3));
        ok(aclrtDestroyStream(s3));
    }
}

#[test]
fn work_after_a_collective_another_rank_has_not_joined_is_not_judged_early() {
    let mut r = Ranks::new();
    let n = 64usize;
    let (shared, out) = (r.t.buf(n * 4), r.t.buf(n * 4));
    let (send, recv) = (
        [r.t.buf(n * 4), r.t.buf(n * 4)],
        [r.t.buf(n * 4), r.t.buf(n * 4)],
    );
    let all_reduce = |rank: usize| {
        // SAFETY: live buffers of n floats, communicators and streams.
        unsafe {
            HcclAllReduce(
                send[rank],
                recv[rank],
                n as u64,
                HCCL_DATA_TYPE_FP32,
                HCCL_REDUCE_SUM,
                r.comms[rank],
                r.stream(rank),
            )
        }
    };
    // Rank 0 writes `shared`; rank 1 queues its part of the all-reduce
    // first and then reads `shared`; rank 0 joins last. In each rank's
    // program the read follows the write through the collective.
    ok(memset_async(shared, n * 4, r.stream(0)));
    hok(all_reduce(1));
    ok(d2d_async(out, shared, n * 4, r.stream(1)));
    hok(all_reduce(0));
    // Once complete, the collective orders both ranks as usual.
    ok(memset_async(shared, n * 4, r.stream(1)));
    hok(all_reduce(0));
    hok(all_reduce(1));
    ok(d2d_async(out, shared, n * 4, r.stream(0)));
}

/// Rooted collectives declare only the buffers they touch: `HcclReduce`
/// reads every rank's send buffer and writes the root's receive buffer
/// only; `HcclScatter` reads the root's send buffer only and writes every
/// rank's receive buffer. A third stream using a buffer the collective
/// does not touch is no race.
#[test]
fn reduce_and_scatter_declare_only_what_each_rank_touches() {
    let mut r = Ranks::new();
    let n = 64usize;
    let send = [r.t.buf(n * 4), r.t.buf(n * 4)];
    let recv = [r.t.buf(n * 4), r.t.buf(n * 4)];
    let s3 = new_stream();
    // SAFETY: live buffers of n floats, communicators and streams.
    unsafe {
        for rank in [0, 1] {
            hok(HcclReduce(
                send[rank],
                recv[rank],
                n as u64,
                HCCL_DATA_TYPE_FP32,
                HCCL_REDUCE_SUM,
                0,
                r.comms[rank],
                r.stream(rank),
            ));
        }
    }
    // Rank 1's receive buffer is not the root's: not touched.
    ok(memset_async(recv[1], n * 4, s3));
    // The root's receive buffer is written.
    assert_eq!(memset_async(recv[0], n * 4, s3), ACL_ERROR_RT_PARAM_INVALID);
    let msg = expect_race();
    assert!(msg.contains("while HcclReduce (call #"), "{msg}");
    // Every rank's send buffer is read.
    assert_eq!(memset_async(send[1], n * 4, s3), ACL_ERROR_RT_PARAM_INVALID);
    let msg = expect_race();
    assert!(msg.contains("while HcclReduce (call #"), "{msg}");
    assert!(msg.contains(" reads "), "{msg}");
    r.t.sync_all();
    // SAFETY: a live stream of this test.
    ok(unsafe { aclrtSynchronizeStream(s3) });

    // Scatter from rank 1 (n / 2 elements each).
    // SAFETY: as above; the root's send holds n = 2 * (n / 2) floats.
    unsafe {
        for rank in [0, 1] {
            hok(HcclScatter(
                send[rank],
                recv[rank],
                (n / 2) as u64,
                HCCL_DATA_TYPE_FP32,
                1,
                r.comms[rank],
                r.stream(rank),
            ));
        }
    }
    // Rank 0's send buffer is not the root's: not read.
    ok(memset_async(send[0], n * 4, s3));
    // The root's send buffer is read.
    assert_eq!(memset_async(send[1], n * 4, s3), ACL_ERROR_RT_PARAM_INVALID);
    let msg = expect_race();
    assert!(msg.contains("while HcclScatter (call #"), "{msg}");
    // Every rank's receive buffer is written.
    let spare = r.t.buf(n * 4);
    assert_eq!(
        d2d_async(spare, recv[0], n * 2, s3),
        ACL_ERROR_RT_PARAM_INVALID
    );
    let msg = expect_race();
    assert!(msg.contains("while HcclScatter (call #"), "{msg}");
    assert!(msg.contains(" writes "), "{msg}");
    // SAFETY: a live stream of this test.
    unsafe {
        ok(aclrtSynchronizeStream(s3));
        ok(aclrtDestroyStream(s3));
    }
}

#[test]
fn without_the_collective_the_ranks_race() {
    let mut t = Two::new();
    let shared = t.buf(1024);
    let other = t.buf(1024);
    ok(memset_async(shared, 1024, t.s1));
    assert_eq!(
        d2d_async(other, shared, 1024, t.s2),
        ACL_ERROR_RT_PARAM_INVALID
    );
    expect_race();
}

#[test]
fn drained_streams_and_pageable_copies_order_later_work() {
    let mut t = Two::new();
    let p = t.buf(4096);
    // A destroyed stream ran everything it had queued.
    let s3 = new_stream();
    ok(memset_async(p, 4096, s3));
    // SAFETY: a live stream of this test.
    ok(unsafe { aclrtDestroyStream(s3) });
    ok(memset_async(p, 4096, t.s1));
    // An asynchronous copy with pageable host memory returns after the
    // copy ran: freeing its device side afterwards is ordered.
    let q = dev_alloc(4096);
    let host = vec![9u8; 4096];
    // SAFETY: `host` holds 4096 bytes; q is a live device buffer.
    unsafe {
        ok(aclrtMemcpyAsync(
            q,
            4096,
            host.as_ptr().cast(),
            4096,
            ACL_MEMCPY_HOST_TO_DEVICE,
            t.s2,
        ));
        ok(aclrtFree(q));
    }
}

#[test]
fn clocks_tick_join_and_forget() {
    use super::Clock;
    let mut a = Clock::default();
    assert_eq!((a.tick(5), a.tick(5), a.tick(2)), (1, 2, 1));
    let mut b = Clock::default();
    b.tick(9);
    b.tick(2);
    b.tick(2);
    b.tick(2);
    a.join(&b);
    assert_eq!((a.get(2), a.get(5), a.get(9), a.get(7)), (3, 2, 1, 0));
    assert_eq!(a.0, vec![(2, 3), (5, 2), (9, 1)]);
    a.remove(5);
    a.join(&Clock::default());
    assert_eq!(a.0, vec![(2, 3), (9, 1)]);
}

// ---- child processes ----------------------------------------------------

const CHILD_ENV: &str = "ASCEND_MOCK_RACE_TEST_CHILD";

/// Runs `child` below in a fresh process with `mode` and `env`; returns
/// its output, which must report a pass.
fn child_passes(mode: &str, env: &[(&str, &str)]) -> String {
    let (status, text) = run_child(mode, env);
    assert!(status.success(), "child {mode} failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "child {mode} ran nothing:\n{text}"
    );
    text
}

/// Runs `child` below in a fresh process; returns its status and output.
fn run_child(mode: &str, env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = std::process::Command::new(exe);
    cmd.args([
        "--exact",
        "sanitizer::race::tests::child",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, mode)
    .env_remove("ASCEND_MOCK_SANITIZER")
    .env_remove("ASCEND_MOCK_JITTER");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status, text)
}

#[test]
fn device_synchronization_orders_every_stream() {
    let text = child_passes("device-sync", &[]);
    assert_eq!(
        text.matches("[ascend-mock sanitizer] race: ").count(),
        1,
        "{text}"
    );
}

#[test]
fn off_mode_tracks_nothing() {
    let text = child_passes("off", &[("ASCEND_MOCK_SANITIZER", "off")]);
    assert!(!text.contains("[ascend-mock sanitizer]"), "{text}");
}

#[test]
fn abort_mode_aborts_at_the_race() {
    use std::os::unix::process::ExitStatusExt;
    let (status, text) = run_child("abort", &[("ASCEND_MOCK_SANITIZER", "abort")]);
    assert_eq!(status.signal(), Some(6), "expected SIGABRT:\n{text}");
    assert!(
        text.contains("[ascend-mock sanitizer] race: aclrtMemsetAsync (call #"),
        "{text}"
    );
    assert!(!text.contains("after the race"), "{text}");
}

/// Runs in a child process only (see `child_passes`).
#[test]
#[ignore = "run by the race tests in a child process"]
fn child() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    match mode.as_str() {
        "device-sync" => {
            let mut t = Two::new();
            let p = t.buf(4096);
            ok(memset_async(p, 4096, t.s1));
            // SAFETY: no arguments.
            ok(unsafe { aclrtSynchronizeDevice() });
            ok(memset_async(p, 4096, t.s2));
            // Without it, the next one races (the one report expected).
            assert_eq!(memset_async(p, 4096, t.s1), ACL_ERROR_RT_PARAM_INVALID);
            expect_race();
        }
        "off" => {
            let mut t = Two::new();
            assert_eq!(sanitizer::mode(), sanitizer::Mode::Off);
            let p = t.buf(4096);
            ok(memset_async(p, 4096, t.s1));
            ok(memset_async(p, 4096, t.s2));
            // With tracking off, freeing memory a queued copy still reads
            // is not reported.
            let q = dev_alloc(4096);
            ok(d2d_async(p, q, 4096, t.s1));
            // SAFETY: q came from aclrtMalloc; the mock releases the block
            // only after the queued copy ran.
            ok(unsafe { aclrtFree(q) });
            assert!(sanitizer::reports().is_empty());
        }
        "abort" => {
            let mut t = Two::new();
            let p = t.buf(4096);
            ok(memset_async(p, 4096, t.s1));
            let _ = memset_async(p, 4096, t.s2);
            println!("after the race");
        }
        other => panic!("unknown child mode {other}"),
    }
}
