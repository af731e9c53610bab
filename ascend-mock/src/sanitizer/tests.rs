//! Tests of the sanitizer and of fault injection, against the exported C
//! functions: one planted bug per report class (checked by class, code and
//! text), the modes, the leak policy, and the fault injection settings.
//!
//! Planted bugs that only touch the test's own objects run in the shared
//! test process; everything that changes process-wide settings (mode, leak
//! policy, injection rules, finalisation) runs in a child process.

use std::ffi::c_void;
use std::os::unix::process::ExitStatusExt;

use ascend_sys::*;

use crate::exports::*;
use crate::fault;
use crate::sanitizer::{self, LeakPolicy, Mode, ReportClass};
use crate::tests_support::*;

/// The call numbers cited in `msg` (`(call #N)`), in order.
fn call_numbers(msg: &str) -> Vec<u64> {
    msg.split("(call #")
        .skip(1)
        .filter_map(|rest| rest.split(')').next()?.parse().ok())
        .collect()
}

/// Takes this thread's message and checks that it is a kept report of
/// `class`.
#[track_caller]
fn expect_report(class: ReportClass) -> String {
    let msg = take_message().expect("a message");
    assert_eq!(ReportClass::of_message(&msg), Some(class), "{msg}");
    assert!(msg.starts_with(&format!("{}: ", class.label())), "{msg}");
    assert!(
        sanitizer::reports()
            .iter()
            .any(|r| r.class == class && r.message == msg),
        "report not kept: {msg}"
    );
    msg
}

fn free_dev(p: *mut c_void) {
    // SAFETY: p came from aclrtMalloc.
    ok(unsafe { aclrtFree(p) });
}

#[test]
fn use_after_free_is_reported_with_both_calls() {
    let ctx = own_context(0);
    let p = dev_alloc(4096);
    free_dev(p);
    let mut out = vec![0u8; 4096];
    // SAFETY: `out` is a local buffer of 4096 bytes; p is stale and the
    // call must refuse it without touching it.
    let code = unsafe {
        aclrtMemcpy(
            out.as_mut_ptr().cast(),
            4096,
            p,
            4096,
            ACL_MEMCPY_DEVICE_TO_HOST,
        )
    };
    assert_eq!(code, ACL_ERROR_RT_PARAM_INVALID);
    let msg = expect_report(ReportClass::UseAfterFree);
    let at = format!("{:#x}", p as usize);
    assert!(
        msg.starts_with(&format!(
            "use-after-free: aclrtMemcpy (call #{}) reads {at} (4096 bytes, the source) of a block of 4128 bytes at {at} (device memory of device 0) freed by aclrtFree (call #",
            call_numbers(&msg)[0]
        )),
        "{msg}"
    );
    assert!(msg.contains("; allocated by aclrtMalloc (call #"), "{msg}");
    let calls = call_numbers(&msg);
    assert_eq!(calls.len(), 3, "{msg}");
    assert!(calls[2] < calls[1] && calls[1] < calls[0], "{msg}");

    // An interior pointer, an asynchronous memset and the DEFAULT kind are
    // caught as well.
    let stream = new_stream();
    // SAFETY: p + 8 is stale; the mock refuses it before queueing.
    let code = unsafe { aclrtMemsetAsync(p.cast::<u8>().add(8).cast(), 16, 0, 16, stream) };
    assert_eq!(code, ACL_ERROR_RT_PARAM_INVALID);
    let msg = expect_report(ReportClass::UseAfterFree);
    assert!(msg.contains("aclrtMemsetAsync (call #"), "{msg}");
    let mut id = 0;
    // SAFETY: a live stream and a local output.
    ok(unsafe { aclrtStreamGetId(stream, &mut id) });
    assert!(msg.contains(&format!(") on stream {id} writes")), "{msg}");
    assert!(msg.contains("writes"), "{msg}");
    let src = [1u8; 8];
    // SAFETY: p is stale; refused before any access.
    let code = unsafe { aclrtMemcpy(p, 8, src.as_ptr().cast(), 8, ACL_MEMCPY_DEFAULT) };
    assert_eq!(code, ACL_ERROR_RT_PARAM_INVALID);
    expect_report(ReportClass::UseAfterFree);
    // SAFETY: a live stream of this test.
    ok(unsafe { aclrtDestroyStream(stream) });
    drop_context(ctx);
}

#[test]
fn double_free_names_the_first_free() {
    let ctx = own_context(0);
    let p = dev_alloc(100);
    free_dev(p);
    // SAFETY: p was freed; the mock must refuse the second free.
    assert_eq!(unsafe { aclrtFree(p) }, ACL_ERROR_INVALID_PARAM);
    let msg = expect_report(ReportClass::DoubleFree);
    let at = format!("{:#x}", p as usize);
    let calls = call_numbers(&msg);
    assert_eq!(
        msg,
        format!(
            "double free: aclrtFree (call #{}) of {at}: a block of 160 bytes at {at} (device memory of device 0) freed by aclrtFree (call #{}); allocated by aclrtMalloc (call #{}); it was already freed",
            calls[0], calls[1], calls[2]
        )
    );
    assert!(calls[1] < calls[0], "{msg}");
    let h = host_alloc(64);
    // SAFETY: h came from aclrtMallocHost.
    ok(unsafe { aclrtFreeHost(h) });
    // SAFETY: h was freed; refused.
    assert_eq!(unsafe { aclrtFreeHost(h) }, ACL_ERROR_INVALID_PARAM);
    let msg = expect_report(ReportClass::DoubleFree);
    assert!(
        msg.contains("(pinned host memory) freed by aclrtFreeHost"),
        "{msg}"
    );
    drop_context(ctx);
}

#[test]
fn invalid_frees_are_reported() {
    let ctx = own_context(0);
    let p = dev_alloc(256);
    // SAFETY: an interior pointer; the mock must refuse it.
    let code = unsafe { aclrtFree(p.cast::<u8>().add(16).cast()) };
    assert_eq!(code, ACL_ERROR_INVALID_PARAM);
    let msg = expect_report(ReportClass::InvalidFree);
    assert!(
        msg.contains("points inside a block of 288 bytes")
            && msg.contains("16 bytes past its start")
            && msg.contains("allocated by aclrtMalloc (call #"),
        "{msg}"
    );
    let mut local = [0u8; 64];
    // SAFETY: a stack address the mock never allocated; refused.
    let code = unsafe { aclrtFree(local.as_mut_ptr().cast()) };
    assert_eq!(code, ACL_ERROR_INVALID_PARAM);
    let msg = expect_report(ReportClass::InvalidFree);
    assert!(
        msg.contains("is not device memory from aclrtMalloc"),
        "{msg}"
    );
    free_dev(p);
    drop_context(ctx);
}

#[test]
fn out_of_bounds_copies_are_reported_whatever_dest_max_says() {
    let ctx = own_context(0);
    let p = dev_alloc(4096); // 4128 addressable bytes
    let host = vec![7u8; 8192];
    // SAFETY: the destination range leaves the block; refused untouched.
    let code = unsafe {
        aclrtMemcpy(
            p.cast::<u8>().add(64).cast(),
            1 << 20,
            host.as_ptr().cast(),
            4096,
            ACL_MEMCPY_HOST_TO_DEVICE,
        )
    };
    assert_eq!(code, ACL_ERROR_RT_PARAM_INVALID);
    let msg = expect_report(ReportClass::OutOfBounds);
    let base = p as usize;
    assert!(
        msg.starts_with(&format!(
            "out of bounds: aclrtMemcpy (call #{}) writes destination range {:#x}+4096, which runs past the end of its device memory of device 0 allocation {base:#x} of 4128 bytes (by 32 bytes); allocated by aclrtMalloc (call #",
            call_numbers(&msg)[0],
            base + 64
        )),
        "{msg}"
    );
    let mut out = vec![0u8; 8192];
    // SAFETY: the source range leaves the block; refused untouched.
    let code = unsafe {
        aclrtMemcpy(
            out.as_mut_ptr().cast(),
            8192,
            p,
            8192,
            ACL_MEMCPY_DEVICE_TO_HOST,
        )
    };
    assert_eq!(code, ACL_ERROR_RT_PARAM_INVALID);
    let msg = expect_report(ReportClass::OutOfBounds);
    assert!(msg.contains("reads source range"), "{msg}");
    // SAFETY: past the end; refused.
    let code = unsafe { aclrtMemset(p, 1 << 20, 0, 5000) };
    assert_eq!(code, ACL_ERROR_RT_PARAM_INVALID);
    let msg = expect_report(ReportClass::OutOfBounds);
    assert!(
        msg.contains("aclrtMemset (call #") && msg.contains("(by 872 bytes)"),
        "{msg}"
    );
    free_dev(p);
    drop_context(ctx);
}

#[test]
fn wrong_memory_kinds_are_reported() {
    let ctx = own_context(0);
    let p = dev_alloc(64);
    let mut host = vec![0u8; 64];
    let h = host.as_mut_ptr().cast::<c_void>();
    // SAFETY: both pointers are valid for 64 bytes; the kind is wrong, so
    // the call is refused.
    let code = unsafe { aclrtMemcpy(h, 64, p, 64, ACL_MEMCPY_HOST_TO_DEVICE) };
    assert_eq!(code, ACL_ERROR_RT_PARAM_INVALID);
    let msg = expect_report(ReportClass::WrongMemoryKind);
    assert!(
        msg.contains("kind ACL_MEMCPY_HOST_TO_DEVICE does not match the pointers")
            && msg.contains(&format!(
                "the source is device memory of device 0 ({:#x})",
                p as usize
            ))
            && msg.contains("the destination is host memory"),
        "{msg}"
    );
    // SAFETY: host memory given to a device memset; refused.
    assert_eq!(
        unsafe { aclrtMemset(h, 64, 0, 64) },
        ACL_ERROR_RT_PARAM_INVALID
    );
    let msg = expect_report(ReportClass::WrongMemoryKind);
    assert!(msg.contains("which is host memory"), "{msg}");
    // SAFETY: device memory given to aclrtFreeHost; refused.
    assert_eq!(unsafe { aclrtFreeHost(p) }, ACL_ERROR_INVALID_PARAM);
    let msg = expect_report(ReportClass::WrongMemoryKind);
    assert!(
        msg.contains("this call frees pinned host memory from aclrtMallocHost"),
        "{msg}"
    );
    free_dev(p);
    drop_context(ctx);
}

#[test]
fn other_devices_memory_needs_peer_access() {
    let _g = crate::tests::device1();
    let ctx1 = own_context(1);
    let d1 = dev_alloc(64);
    let ctx0 = own_context(0);
    let d0 = dev_alloc(64);
    // SAFETY: no pointer arguments.
    ok(unsafe { aclrtDeviceDisablePeerAccess(1) });
    // SAFETY: live 64-byte blocks; refused without peer access.
    let code = unsafe { aclrtMemcpy(d0, 64, d1, 64, ACL_MEMCPY_DEVICE_TO_DEVICE) };
    assert_eq!(code, ACL_ERROR_RT_PARAM_INVALID);
    let msg = expect_report(ReportClass::WrongMemoryKind);
    assert!(
        msg.contains(&format!(
            "on device 0: the source {:#x} is device memory of device 1, and peer access from device 0 to device 1 is not enabled",
            d1 as usize
        )),
        "{msg}"
    );
    // SAFETY: no pointer arguments; then the same copy is allowed.
    ok(unsafe { aclrtDeviceEnablePeerAccess(1, 0) });
    // SAFETY: live 64-byte blocks.
    ok(unsafe { aclrtMemcpy(d0, 64, d1, 64, ACL_MEMCPY_DEVICE_TO_DEVICE) });
    free_dev(d0);
    drop_context(ctx0);
    free_dev(d1);
    drop_context(ctx1);
}

#[test]
fn leaks_at_reset_list_every_object_with_its_call() {
    let _g = crate::tests::device1();
    init();
    // SAFETY (whole block): outputs are locals; the tensor describes 256
    // floats of the live block `p`.
    unsafe {
        ok(aclrtSetDevice(1));
        let p = dev_alloc(1024);
        let s = new_stream();
        let mut e = std::ptr::null_mut();
        ok(aclrtCreateEvent(&mut e));
        let dims = [256i64];
        let strides = [1i64];
        let t = aclCreateTensor(
            dims.as_ptr(),
            1,
            ACL_FLOAT,
            strides.as_ptr(),
            0,
            ACL_FORMAT_ND,
            dims.as_ptr(),
            1,
            p,
        );
        assert!(!t.is_null(), "{:?}", take_message());
        let before = sanitizer::reports().len();
        ok(aclrtResetDevice(1));
        let msg = expect_report(ReportClass::Leak);
        assert!(sanitizer::reports().len() > before);
        let calls = call_numbers(&msg);
        assert!(
            msg.starts_with(&format!(
                "leak: aclrtResetDevice (call #{}) released device 1: 4 objects are still alive, released by the runtime:\n",
                calls[0]
            )),
            "{msg}"
        );
        assert!(
            msg.contains(&format!(
                "device buffer on device 1 {:#x} of 1024 bytes (1056 charged) allocated by aclrtMalloc (call #",
                p as usize
            )),
            "{msg}"
        );
        assert!(
            msg.contains("created by aclrtCreateStream (call #"),
            "{msg}"
        );
        assert!(msg.contains("created by aclrtCreateEvent (call #"), "{msg}");
        assert!(
            msg.contains(&format!(
                "aclTensor {:#x} (data {:#x}",
                t as usize, p as usize
            )) && msg.contains("storage of 1024 bytes) created by aclCreateTensor"),
            "{msg}"
        );
        let _ = s;
        assert_eq!(aclDestroyTensor(t), ACLNN_SUCCESS);
        // The released block is remembered: using or freeing it later is
        // reported with the reset that released it.
        let mut out = [0u8; 16];
        assert_eq!(
            aclrtMemcpy(
                out.as_mut_ptr().cast(),
                16,
                p,
                16,
                ACL_MEMCPY_DEVICE_TO_HOST
            ),
            ACL_ERROR_RT_PARAM_INVALID
        );
        let msg = expect_report(ReportClass::UseAfterFree);
        assert!(
            msg.contains(&format!("freed by aclrtResetDevice (call #{})", calls[0])),
            "{msg}"
        );
        assert_eq!(aclrtFree(p), ACL_ERROR_INVALID_PARAM);
        let msg = expect_report(ReportClass::InvalidFree);
        assert!(
            msg.contains("the runtime already freed it with its device"),
            "{msg}"
        );
    }
}

#[test]
fn report_classes_have_their_labels() {
    let labels: Vec<&str> = ReportClass::ALL.iter().map(|c| c.label()).collect();
    assert_eq!(
        labels,
        [
            "use-after-free",
            "double free",
            "invalid free",
            "out of bounds",
            "wrong memory kind",
            "race",
            "leak"
        ]
    );
    assert_eq!(ReportClass::of_message("leak: x"), Some(ReportClass::Leak));
    assert_eq!(ReportClass::of_message("leaky: x"), None);
    assert_eq!(ReportClass::of_message("aclrtFree: leak: x"), None);
    assert_eq!(Mode::parse("OFF"), Ok(Mode::Off));
    assert_eq!(Mode::parse("abort"), Ok(Mode::Abort));
    assert!(Mode::parse("loud").is_err());
    assert_eq!(call_numbers("a (call #3) b (call #12)"), vec![3, 12]);
}

#[test]
fn every_exported_call_is_numbered_and_counted() {
    init();
    let before_total = sanitizer::calls_so_far();
    let before = fault::call_count("aclDataTypeSize");
    // SAFETY: a plain value argument.
    assert_eq!(unsafe { aclDataTypeSize(ACL_FLOAT) }, 4);
    assert!(fault::call_count("aclDataTypeSize") > before);
    let before = fault::call_count("aclCreateScalar");
    let v = 1.5f32;
    // SAFETY: v is a live f32.
    let s = unsafe { aclCreateScalar((&v as *const f32).cast_mut().cast(), ACL_FLOAT) };
    assert!(!s.is_null());
    assert!(fault::call_count("aclCreateScalar") > before);
    // SAFETY: s came from aclCreateScalar.
    assert_eq!(unsafe { aclDestroyScalar(s) }, ACLNN_SUCCESS);
    assert!(sanitizer::calls_so_far() >= before_total + 3);
    assert!(fault::call_count("*") >= 3);
}

// ---- child processes ----------------------------------------------------

const CHILD_ENV: &str = "ASCEND_MOCK_SANITIZER_TEST_CHILD";

/// Runs `child` below in a fresh process with `mode` and `env`; returns
/// its exit status and output.
fn run_child(mode: &str, env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = std::process::Command::new(exe);
    cmd.args([
        "--exact",
        "sanitizer::tests::child",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, mode);
    for k in [
        "ASCEND_MOCK_DEVICES",
        "ASCEND_MOCK_MEMORY",
        "ASCEND_MOCK_SANITIZER",
        "ASCEND_MOCK_LEAKS",
        "ASCEND_MOCK_FAIL",
        "ASCEND_MOCK_FAIL_TASK",
        "ASCEND_MOCK_DEVICE_LOST",
        "ASCEND_MOCK_JITTER",
    ] {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status, text)
}

/// Runs a child that must pass.
fn child_passes(mode: &str, env: &[(&str, &str)]) -> String {
    let (status, text) = run_child(mode, env);
    assert!(status.success(), "child {mode} failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "child {mode} ran nothing:\n{text}"
    );
    text
}

#[test]
fn mode_off_reports_nothing() {
    let text = child_passes("off", &[]);
    assert!(!text.contains("[ascend-mock sanitizer]"), "{text}");
    let text = child_passes("off-env", &[("ASCEND_MOCK_SANITIZER", "off")]);
    assert!(!text.contains("[ascend-mock sanitizer]"), "{text}");
}

#[test]
fn abort_mode_aborts_at_the_first_report() {
    let (status, text) = run_child("abort", &[("ASCEND_MOCK_SANITIZER", "abort")]);
    assert_eq!(status.signal(), Some(6), "expected SIGABRT:\n{text}");
    assert!(
        text.contains("[ascend-mock sanitizer] double free: aclrtFree (call #"),
        "{text}"
    );
    assert!(!text.contains("after the report"), "{text}");
}

#[test]
fn leaks_at_finalize_and_the_error_policy() {
    let text = child_passes("finalize-leak", &[]);
    assert!(
        text.contains("[ascend-mock sanitizer] leak: aclFinalize (call #"),
        "{text}"
    );
    child_passes("leak-error", &[("ASCEND_MOCK_LEAKS", "error")]);
}

#[test]
fn the_third_malloc_fails_by_injection() {
    child_passes("third-malloc", &[]);
    child_passes(
        "third-malloc-env",
        &[(
            "ASCEND_MOCK_FAIL",
            "aclrtMalloc:3:ACL_ERROR_RT_MEMORY_ALLOCATION",
        )],
    );
}

#[test]
fn injected_task_failures_surface_at_the_next_synchronization() {
    child_passes("task-fault", &[]);
    child_passes(
        "task-fault-env",
        &[(
            "ASCEND_MOCK_FAIL_TASK",
            "aclrtMemsetAsync:2:ACL_ERROR_RT_AICORE_EXCEPTION",
        )],
    );
    let (status, text) = run_child("bad-fail-task-env", &[("ASCEND_MOCK_FAIL_TASK", "x:1")]);
    assert!(status.success(), "{text}");
}

#[test]
fn star_counts_every_call() {
    child_passes("star", &[("ASCEND_MOCK_FAIL", "*:4:100000")]);
    let (status, text) = run_child("bad-fail-env", &[("ASCEND_MOCK_FAIL", "aclrtMalloc:x:1")]);
    assert!(status.success(), "{text}");
}

#[test]
fn lost_devices_fail_everything_on_them() {
    child_passes("lost", &[]);
    child_passes("lost-env", &[("ASCEND_MOCK_DEVICE_LOST", "1:5")]);
}

#[test]
fn jitter_keeps_synchronised_code_correct() {
    child_passes("jitter", &[("ASCEND_MOCK_JITTER", "42:300")]);
}

unsafe extern "C" fn add_one(args: *mut c_void) {
    // SAFETY: the jitter child passes a pinned block of 4096 bytes that
    // outlives the stream's work.
    let bytes = unsafe { std::slice::from_raw_parts_mut(args.cast::<u8>(), 4096) };
    bytes.iter_mut().for_each(|b| *b = b.wrapping_add(1));
}

/// Runs in a child process only (see `run_child`).
#[test]
#[ignore = "run by the sanitizer tests in a child process"]
fn child() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    let null = std::ptr::null();
    // SAFETY (whole block): every call gets NULL, handles or pointers from
    // the mock, or live locals, as AscendCL requires; stale pointers are
    // passed only where the mock must refuse them.
    unsafe {
        match mode.as_str() {
            "off" | "off-env" => {
                if mode == "off" {
                    sanitizer::set_mode(Mode::Off);
                }
                ok(aclInit(null));
                assert_eq!(sanitizer::mode(), Mode::Off);
                ok(aclrtSetDevice(0));
                let p = dev_alloc(64);
                ok(aclrtFree(p));
                assert_eq!(aclrtFree(p), ACL_ERROR_INVALID_PARAM);
                let msg = take_message().unwrap();
                assert!(msg.starts_with("aclrtFree: "), "{msg}");
                assert!(ReportClass::of_message(&msg).is_none(), "{msg}");
                let q = dev_alloc(64);
                let host = [0u8; 256];
                assert_eq!(
                    aclrtMemcpy(q, 256, host.as_ptr().cast(), 256, ACL_MEMCPY_HOST_TO_DEVICE),
                    ACL_ERROR_RT_PARAM_INVALID
                );
                assert!(take_message().unwrap().contains("runs past the end"));
                let _leaked = dev_alloc(64);
                ok(aclFinalize());
                assert!(sanitizer::reports().is_empty());
            }
            "abort" => {
                ok(aclInit(null));
                ok(aclrtSetDevice(0));
                let p = dev_alloc(64);
                ok(aclrtFree(p));
                let _ = aclrtFree(p);
                println!("after the report");
            }
            "finalize-leak" => {
                ok(aclInit(null));
                ok(aclrtSetDevice(0));
                let p = dev_alloc(64);
                let h = host_alloc(32);
                let mut ctx = std::ptr::null_mut();
                ok(aclrtCreateContext(&mut ctx, 1));
                ok(aclFinalize());
                let r = sanitizer::take_reports();
                assert_eq!(r.len(), 1, "{r:?}");
                assert_eq!(r[0].class, ReportClass::Leak);
                let msg = &r[0].message;
                assert!(msg.contains("3 objects are still alive"), "{msg}");
                assert!(msg.contains(&format!("device buffer on device 0 {:#x}", p as usize)));
                assert!(msg.contains(&format!("pinned host block {:#x} of 32 bytes", h as usize)));
                assert!(msg.contains("context") && msg.contains("created by aclrtCreateContext"));
                assert!(sanitizer::reports().is_empty());
            }
            "leak-error" => {
                assert_eq!(sanitizer::leak_policy(), LeakPolicy::Report);
                ok(aclInit(null));
                assert_eq!(sanitizer::leak_policy(), LeakPolicy::Error);
                ok(aclrtSetDevice(1));
                let _p = dev_alloc(64);
                assert_eq!(aclrtResetDevice(1), ACL_ERROR_RT_MEMORY_FREE);
                let msg = take_message().unwrap();
                assert!(msg.starts_with("leak: aclrtResetDevice (call #"), "{msg}");
                // The device was released all the same.
                assert_eq!(aclrtResetDevice(1), ACL_ERROR_INVALID_PARAM);
                sanitizer::set_leak_policy(LeakPolicy::Report);
                ok(aclrtSetDevice(0));
                let _q = dev_alloc(64);
                ok(aclFinalize());
            }
            "third-malloc" | "third-malloc-env" => {
                if mode == "third-malloc" {
                    fault::clear();
                    fault::fail_nth("aclrtMalloc", 3, ACL_ERROR_RT_MEMORY_ALLOCATION);
                }
                ok(aclInit(null));
                ok(aclrtSetDevice(0));
                let a = dev_alloc(64);
                let b = dev_alloc(64);
                let mut c = std::ptr::null_mut();
                assert_eq!(
                    aclrtMalloc(&mut c, 64, ACL_MEM_MALLOC_HUGE_FIRST),
                    ACL_ERROR_RT_MEMORY_ALLOCATION
                );
                assert!(c.is_null());
                let msg = take_message().unwrap();
                assert!(
                    msg.starts_with("aclrtMalloc: injected failure (")
                        && msg.contains("call 3 of aclrtMalloc fails with 207001"),
                    "{msg}"
                );
                let d = dev_alloc(64);
                assert_eq!(fault::call_count("aclrtMalloc"), 4);
                for p in [a, b, d] {
                    ok(aclrtFree(p));
                }
                ok(aclFinalize());
            }
            "task-fault" | "task-fault-env" => {
                if mode == "task-fault" {
                    fault::clear();
                    fault::fail_nth_task("aclrtMemsetAsync", 2, ACL_ERROR_RT_AICORE_EXCEPTION);
                }
                fault::trace_tasks(true);
                ok(aclInit(null));
                ok(aclrtSetDevice(0));
                let p = dev_alloc(64);
                let mut s = std::ptr::null_mut();
                ok(aclrtCreateStream(&mut s));
                // Task 1 runs; task 2 is queued (the call succeeds) and
                // fails when the stream reaches it, without writing.
                ok(aclrtMemsetAsync(p, 64, 0x11, 64, s));
                ok(aclrtMemsetAsync(p, 64, 0x22, 64, s));
                let mut ev = std::ptr::null_mut();
                ok(aclrtCreateEvent(&mut ev));
                ok(aclrtRecordEvent(ev, s));
                assert_eq!(aclrtSynchronizeEvent(ev), ACL_ERROR_RT_AICORE_EXCEPTION);
                assert_eq!(aclrtSynchronizeStream(s), ACL_ERROR_RT_AICORE_EXCEPTION);
                let msg = take_message().unwrap();
                assert!(
                    msg.contains("injected task failure")
                        && msg.contains("task 2 of aclrtMemsetAsync fails with 507015"),
                    "{msg}"
                );
                // Reported once: the stream runs later work normally.
                ok(aclrtSynchronizeStream(s));
                let mut host = [0u8; 64];
                ok(aclrtMemcpy(
                    host.as_mut_ptr().cast(),
                    64,
                    p,
                    64,
                    ACL_MEMCPY_DEVICE_TO_HOST,
                ));
                assert!(host.iter().all(|&b| b == 0x11), "the failed task wrote");
                ok(aclrtMemsetAsync(p, 64, 0x33, 64, s));
                ok(aclrtSynchronizeStream(s));
                // Event records are not device work: they are not counted.
                let trace = fault::take_task_trace();
                let names: Vec<_> = trace.iter().map(|t| (t.api, t.nth, t.total)).collect();
                assert_eq!(
                    names,
                    [
                        ("aclrtMemsetAsync", 1, 1),
                        ("aclrtMemsetAsync", 2, 2),
                        ("aclrtMemsetAsync", 3, 3)
                    ]
                );
                assert_eq!(fault::task_count("*"), 3);
                assert_eq!(fault::task_count("aclrtMemsetAsync"), 3);
                ok(aclrtDestroyEvent(ev));
                ok(aclrtDestroyStream(s));
                ok(aclrtFree(p));
                ok(aclFinalize());
            }
            "bad-fail-task-env" => {
                assert_eq!(aclInit(null), ACL_ERROR_INVALID_PARAM);
                let msg = take_message().unwrap();
                assert!(msg.contains("ASCEND_MOCK_FAIL_TASK"), "{msg}");
            }
            "star" => {
                fault::trace_calls(true);
                ok(aclInit(null)); // call 1
                ok(aclrtSetDevice(0)); // call 2
                let mut d = -1;
                ok(aclrtGetDevice(&mut d)); // call 3
                let mut n = 0;
                assert_eq!(aclrtGetDeviceCount(&mut n), ACL_ERROR_INVALID_PARAM); // call 4
                assert_eq!(fault::call_count("*"), 4);
                assert!(take_message().unwrap().contains("call 4 of all calls"));
                ok(aclrtGetDeviceCount(&mut n));
                assert_eq!(fault::call_count("aclrtGetDeviceCount"), 2);
                let dims = [4i64];
                let t = aclCreateTensor(
                    dims.as_ptr(),
                    1,
                    ACL_FLOAT,
                    dims.as_ptr(),
                    0,
                    ACL_FORMAT_ND,
                    dims.as_ptr(),
                    1,
                    std::ptr::null_mut(),
                );
                assert_eq!(fault::call_count("aclCreateTensor"), 1);
                if !t.is_null() {
                    assert_eq!(aclDestroyTensor(t), ACLNN_SUCCESS);
                }
                let _ = aclDataTypeSize(ACL_FLOAT);
                assert_eq!(fault::call_count("aclDataTypeSize"), 1);
                let trace = fault::take_trace();
                let first: Vec<_> = trace.iter().take(4).map(|c| (c.api, c.total)).collect();
                assert_eq!(
                    first,
                    [
                        ("aclInit", 1),
                        ("aclrtSetDevice", 2),
                        ("aclrtGetDevice", 3),
                        ("aclrtGetDeviceCount", 4)
                    ]
                );
                assert_eq!(trace.len() as u64, fault::call_count("*"));
                let count = |api| trace.iter().filter(|c| c.api == api).count();
                assert_eq!(count("aclrtGetDeviceCount"), 2);
                assert!(
                    trace
                        .iter()
                        .any(|c| c.api == "aclrtGetDeviceCount" && c.nth == 2 && c.injectable)
                );
                assert!(
                    trace
                        .iter()
                        .any(|c| c.api == "aclDataTypeSize" && c.nth == 1 && !c.injectable)
                );
                fault::trace_calls(false);
                ok(aclFinalize());
            }
            "bad-fail-env" => {
                assert_eq!(aclInit(null), ACL_ERROR_INVALID_PARAM);
                let msg = take_message().unwrap();
                assert!(msg.contains("ASCEND_MOCK_FAIL"), "{msg}");
            }
            "lost" => {
                ok(aclInit(null));
                ok(aclrtSetDevice(1));
                let p = dev_alloc(64);
                let s = new_stream();
                let from = fault::call_count("*") + 1;
                fault::lose_device(1, from);
                let mut q = std::ptr::null_mut();
                assert_eq!(
                    aclrtMalloc(&mut q, 64, ACL_MEM_MALLOC_HUGE_FIRST),
                    ACL_ERROR_RT_LOST_HEARTBEAT
                );
                assert!(take_message().unwrap().contains("device 1 is lost"));
                assert_eq!(aclrtSynchronizeStream(s), ACL_ERROR_RT_LOST_HEARTBEAT);
                assert_eq!(aclrtMemset(p, 64, 0, 64), ACL_ERROR_RT_LOST_HEARTBEAT);
                assert_eq!(aclrtFree(p), ACL_ERROR_RT_LOST_HEARTBEAT);
                let mut status = ACL_RT_DEVICE_STATUS_NORMAL;
                ok(aclrtQueryDeviceStatus(1, &mut status));
                assert_eq!(status, ACL_RT_DEVICE_STATUS_ABNORMAL);
                ok(aclrtQueryDeviceStatus(0, &mut status));
                assert_eq!(status, ACL_RT_DEVICE_STATUS_NORMAL);
                assert_eq!(aclrtSetDevice(1), ACL_ERROR_RT_LOST_HEARTBEAT);
                // Device 0 keeps working.
                ok(aclrtSetDevice(0));
                let r = dev_alloc(64);
                ok(aclrtMemset(r, 64, 1, 64));
                ok(aclrtFree(r));
                sanitizer::set_mode(Mode::Off);
                ok(aclrtResetDeviceForce(1));
                ok(aclFinalize());
            }
            "lost-env" => {
                ok(aclInit(null)); // 1
                ok(aclrtSetDevice(0)); // 2
                ok(aclrtSetDevice(1)); // 3
                let mut d = -1;
                ok(aclrtGetDevice(&mut d)); // 4
                let mut p = std::ptr::null_mut();
                assert_eq!(
                    aclrtMalloc(&mut p, 64, ACL_MEM_MALLOC_HUGE_FIRST), // 5
                    ACL_ERROR_RT_LOST_HEARTBEAT
                );
                assert!(fault::device_lost(1) && !fault::device_lost(0));
                ok(aclFinalize());
            }
            "jitter" => {
                ok(aclInit(null));
                ok(aclrtSetDevice(0));
                assert!(
                    fault::jitter_delay(1, 1)
                        .is_some_and(|d| d <= std::time::Duration::from_micros(300))
                );
                let (s1, s2) = (new_stream(), new_stream());
                let mut ev = std::ptr::null_mut();
                ok(aclrtCreateEvent(&mut ev));
                let n = 4096;
                let src = host_alloc(n);
                let dst = host_alloc(n);
                let dev_a = dev_alloc(n);
                let dev_b = dev_alloc(n);
                for round in 0..20u8 {
                    std::slice::from_raw_parts_mut(src.cast::<u8>(), n).fill(round);
                    ok(aclrtMemcpyAsync(
                        dev_a,
                        n,
                        src,
                        n,
                        ACL_MEMCPY_HOST_TO_DEVICE,
                        s1,
                    ));
                    ok(aclrtRecordEvent(ev, s1));
                    ok(aclrtStreamWaitEvent(s2, ev));
                    ok(aclrtMemcpyAsync(
                        dev_b,
                        n,
                        dev_a,
                        n,
                        ACL_MEMCPY_DEVICE_TO_DEVICE,
                        s2,
                    ));
                    ok(aclrtMemcpyAsync(
                        dst,
                        n,
                        dev_b,
                        n,
                        ACL_MEMCPY_DEVICE_TO_HOST,
                        s2,
                    ));
                    ok(aclrtLaunchHostFunc(s2, Some(add_one), dst));
                    ok(aclrtSynchronizeStream(s2));
                    let got = std::slice::from_raw_parts(dst.cast::<u8>(), n);
                    assert!(
                        got.iter().all(|&b| b == round.wrapping_add(1)),
                        "round {round}"
                    );
                    // The next round overwrites src: s1 must be done with it.
                    ok(aclrtSynchronizeStream(s1));
                }
                for p in [dev_a, dev_b] {
                    ok(aclrtFree(p));
                }
                for p in [src, dst] {
                    ok(aclrtFreeHost(p));
                }
                ok(aclrtDestroyEvent(ev));
                ok(aclrtDestroyStream(s1));
                ok(aclrtDestroyStream(s2));
                ok(aclrtResetDevice(0));
                ok(aclFinalize());
                assert!(
                    sanitizer::reports().is_empty(),
                    "{:?}",
                    sanitizer::reports()
                );
            }
            other => panic!("unknown child mode {other}"),
        }
    }
}
