//! Tests of the exported C functions, called directly as a C program
//! would. All tests share one process and one initialised mock: they use
//! their own contexts on device 0, and the tests that reset device 1 or
//! fill its memory hold `DEVICE1`. Finalisation and configuration run in
//! child processes.

use std::ffi::{CStr, c_void};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ascend_sys::*;

use crate::exports::*;
use crate::tests_support::*;

static DEVICE1: Mutex<()> = Mutex::new(());

/// Serialises the tests that use device 1 (resetting it ends every
/// context on it).
pub(crate) fn device1() -> std::sync::MutexGuard<'static, ()> {
    DEVICE1.lock().unwrap_or_else(|e| e.into_inner())
}

unsafe extern "C" fn sleep_ms(args: *mut c_void) {
    std::thread::sleep(Duration::from_millis(args as u64));
}

/// Blocks the stream until the `AtomicBool` behind `args` is set.
unsafe extern "C" fn gate(args: *mut c_void) {
    // SAFETY: the tests pass a pointer to an AtomicBool that outlives the
    // stream's work.
    let open = unsafe { &*(args as *const AtomicBool) };
    while !open.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
    }
}

static ORDER: Mutex<Vec<usize>> = Mutex::new(Vec::new());

unsafe extern "C" fn push_order(args: *mut c_void) {
    ORDER.lock().unwrap().push(args as usize);
}

fn launch(stream: aclrtStream, f: unsafe extern "C" fn(*mut c_void), args: usize) {
    // SAFETY: f is a valid host function; args is a plain value or a
    // pointer the test keeps alive until the stream is synchronised.
    ok(unsafe { aclrtLaunchHostFunc(stream, Some(f), args as *mut c_void) });
}

fn sync(stream: aclrtStream) {
    // SAFETY: stream is a live stream handle or NULL.
    ok(unsafe { aclrtSynchronizeStream(stream) });
}

fn destroy(stream: aclrtStream) {
    // SAFETY: stream is a live stream handle.
    ok(unsafe { aclrtDestroyStream(stream) });
}

fn free(p: *mut c_void) {
    // SAFETY: p came from aclrtMalloc.
    ok(unsafe { aclrtFree(p) });
}

fn free_host(p: *mut c_void) {
    // SAFETY: p came from aclrtMallocHost.
    ok(unsafe { aclrtFreeHost(p) });
}

fn bytes<'a>(p: *mut c_void, n: usize) -> &'a mut [u8] {
    // SAFETY: the tests pass allocations of at least n bytes from the mock,
    // which stay alive while the slice is used.
    unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), n) }
}

// ---- init, finalize and configuration (child processes) -----------------

const CHILD_ENV: &str = "ASCEND_MOCK_TEST_CHILD";

fn run_child(mode: &str, env: &[(&str, &str)]) {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = std::process::Command::new(exe);
    cmd.args([
        "--exact",
        "tests::child_process",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, mode);
    for (k, v) in env {
        cmd.env(k, v);
    }
    for k in [
        "ASCEND_MOCK_DEVICES",
        "ASCEND_MOCK_MEMORY",
        "ASCEND_MOCK_SOC",
        "ASCEND_MOCK_STRICT",
    ] {
        if !env.iter().any(|(n, _)| *n == k) {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child {mode} failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "child {mode} ran nothing:\n{text}"
    );
}

#[test]
fn strict_runs_follow_the_documented_minimum() {
    run_child("strict", &[("ASCEND_MOCK_STRICT", "1")]);
}

#[test]
fn device_blocks_are_512_aligned_and_bounded_by_their_size() {
    init();
    let ctx = own_context(0);
    let s = new_stream();
    for size in [1usize, 33, 100, 511, 4096] {
        let p = dev_alloc(size);
        assert_eq!(p as usize % crate::memory::DEVICE_ALIGN, 0, "size {size}");
        let charged = crate::memory::charged_size(size, false).unwrap();
        let host = vec![0u8; charged + 1];
        // SAFETY: host has charged + 1 bytes; p is a live device block.
        unsafe {
            ok(aclrtMemcpy(
                p,
                charged,
                host.as_ptr().cast(),
                charged,
                ACL_MEMCPY_HOST_TO_DEVICE,
            ));
            // The alignment padding is not addressable: one byte more is
            // out of bounds.
            assert_eq!(
                aclrtMemcpy(
                    p,
                    charged + 1,
                    host.as_ptr().cast(),
                    charged + 1,
                    ACL_MEMCPY_HOST_TO_DEVICE,
                ),
                ACL_ERROR_RT_PARAM_INVALID
            );
            let msg = take_message().unwrap();
            assert!(msg.starts_with("out of bounds"), "{msg}");
            ok(aclrtFree(p));
        }
    }
    // SAFETY: s and ctx were created above.
    unsafe { ok(aclrtDestroyStream(s)) };
    drop_context(ctx);
}

#[test]
fn null_frees() {
    init();
    // SAFETY: NULL is the argument under test.
    unsafe {
        // CANN documents that aclrtFree refuses NULL.
        assert_eq!(aclrtFree(std::ptr::null_mut()), ACL_ERROR_INVALID_PARAM);
        assert_eq!(take_message().as_deref(), Some("aclrtFree: devPtr is NULL"));
        // Silent for aclrtFreeHost: like free(NULL) unless strict.
        ok(aclrtFreeHost(std::ptr::null_mut()));
        assert_eq!(take_message(), None);
    }
}

#[test]
fn a_read_clears_the_message_and_every_failure_sets_its_own() {
    init();
    // SAFETY: NULL config path; NULL outputs are refused, not written.
    unsafe {
        assert_eq!(aclInit(std::ptr::null()), ACL_ERROR_REPEAT_INITIALIZE);
        let first = take_message().unwrap();
        assert!(first.contains("already called"), "{first}");
        // Read once: cleared.
        assert_eq!(take_message(), None);
        // Unread, then overwritten by the next failure's own text.
        assert_eq!(aclInit(std::ptr::null()), ACL_ERROR_REPEAT_INITIALIZE);
        assert_eq!(
            aclrtGetDeviceCount(std::ptr::null_mut()),
            ACL_ERROR_INVALID_PARAM
        );
        let msg = take_message().unwrap();
        assert!(msg.contains("aclrtGetDeviceCount"), "{msg}");
        assert!(!msg.contains("already called"), "{msg}");
        // A success in between sets nothing and keeps the pending message
        // (CANN: messages of failed calls, until read).
        assert_eq!(aclInit(std::ptr::null()), ACL_ERROR_REPEAT_INITIALIZE);
        let mut n = 0;
        ok(aclrtGetDeviceCount(&mut n));
        assert!(take_message().unwrap().contains("already called"));
        assert_eq!(take_message(), None);
    }
}

#[test]
fn init_finalize_codes() {
    run_child("lifecycle", &[]);
}

#[test]
fn stream_workers_do_not_outlive_their_streams() {
    run_child("threads", &[]);
}

#[test]
fn environment_configures_the_next_init() {
    run_child(
        "env",
        &[
            ("ASCEND_MOCK_DEVICES", "3"),
            ("ASCEND_MOCK_MEMORY", "64MiB"),
            ("ASCEND_MOCK_SOC", "Ascend910B4"),
        ],
    );
    run_child("bad-env", &[("ASCEND_MOCK_MEMORY", "lots")]);
}

/// Runs in a child process only (see `run_child`); finalises the mock.
#[test]
#[ignore = "run by init_finalize_codes in a child process"]
fn child_process() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    let null = std::ptr::null();
    // SAFETY (whole block): every call gets NULL or valid pointers to
    // locals, as the AscendCL contract requires.
    unsafe {
        match mode.as_str() {
            "lifecycle" => {
                assert!(!crate::is_initialized());
                let mut d = 0;
                assert_eq!(aclrtSetDevice(0), ACL_ERROR_UNINITIALIZE);
                assert!(take_message().unwrap().contains("aclInit"));
                ok(aclInit(null));
                assert!(crate::is_initialized());
                assert_eq!(aclInit(null), ACL_ERROR_REPEAT_INITIALIZE);
                assert!(take_message().unwrap().starts_with("aclInit: "));
                assert_eq!(
                    crate::configure(crate::Config::default()),
                    Err(crate::ConfigError::AlreadyInitialized)
                );
                ok(aclrtSetDevice(0));
                let p = dev_alloc(1 << 20);
                let s = new_stream();
                launch(s, sleep_ms, 20);
                ok(aclFinalize());
                assert!(!crate::is_initialized());
                assert_eq!(aclFinalize(), ACL_ERROR_REPEAT_FINALIZE);
                assert!(take_message().unwrap().starts_with("aclFinalize: "));
                assert_eq!(aclrtGetDevice(&mut d), ACL_ERROR_UNINITIALIZE);
                assert_eq!(aclrtFree(p), ACL_ERROR_UNINITIALIZE);
                // Re-initialise with a new configuration.
                crate::configure(crate::Config {
                    devices: 1,
                    memory_per_device: 64 << 20,
                    soc_name: "Ascend310P3".into(),
                })
                .unwrap();
                assert_eq!(crate::config().devices, 1);
                ok(aclInit(null));
                let mut n = 0;
                ok(aclrtGetDeviceCount(&mut n));
                assert_eq!(n, 1);
                assert_eq!(aclrtSetDevice(1), ACL_ERROR_RT_INVALID_DEVICEID);
                ok(aclrtSetDevice(0));
                let (mut free, mut total) = (0, 0);
                ok(aclrtGetMemInfo(ACL_HBM_MEM, &mut free, &mut total));
                assert_eq!((free, total), (64 << 20, 64 << 20));
                let soc = CStr::from_ptr(aclrtGetSocName()).to_str().unwrap();
                assert_eq!(soc, "Ascend310P3");
                let missing = c"/nonexistent/acl.json";
                ok(aclFinalize());
                assert_eq!(aclInit(missing.as_ptr()), ACL_ERROR_INVALID_FILE);
                assert!(take_message().unwrap().contains("/nonexistent/acl.json"));
                assert!(!crate::is_initialized());
            }
            "env" => {
                ok(aclInit(null));
                let mut n = 0;
                ok(aclrtGetDeviceCount(&mut n));
                assert_eq!(n, 3);
                ok(aclrtSetDevice(2));
                let (mut free, mut total) = (0, 0);
                ok(aclrtGetMemInfo(ACL_HBM_MEM, &mut free, &mut total));
                assert_eq!(total, 64 << 20);
                let soc = CStr::from_ptr(aclrtGetSocName()).to_str().unwrap();
                assert_eq!(soc, "Ascend910B4");
                ok(aclFinalize());
            }
            "threads" => {
                let threads = || std::fs::read_dir("/proc/self/task").unwrap().count();
                ok(aclInit(null));
                ok(aclrtSetDevice(0));
                let mut default_ctx = std::ptr::null_mut();
                ok(aclrtGetCurrentContext(&mut default_ctx));
                let base = threads();
                for i in 0..40 {
                    let s = new_stream();
                    launch(s, sleep_ms, 1);
                    if i % 2 == 0 {
                        destroy(s);
                    } else {
                        ok(aclrtDestroyStreamForce(s));
                    }
                }
                assert_eq!(threads(), base, "stream workers outlived their streams");
                let mut ctx = std::ptr::null_mut();
                ok(aclrtCreateContext(&mut ctx, 1));
                let _pending = new_stream();
                assert_eq!(threads(), base + 2);
                drop_context(ctx);
                assert_eq!(threads(), base);
                ok(aclrtSetCurrentContext(default_ctx));
                let _left = new_stream();
                ok(aclrtResetDevice(0));
                assert_eq!(
                    threads(),
                    base - 1,
                    "reset stops the default and explicit streams"
                );
                ok(aclrtSetDevice(0));
                let _left = new_stream();
                ok(aclFinalize());
                assert_eq!(threads(), base - 1, "finalize stops every stream");
            }
            "bad-env" => {
                assert_eq!(aclInit(null), ACL_ERROR_INVALID_PARAM);
                let msg = take_message().unwrap();
                assert!(
                    msg.contains("ASCEND_MOCK_MEMORY") && msg.contains("lots"),
                    "{msg}"
                );
                assert!(!crate::is_initialized());
            }
            "strict" => {
                init();
                ok(aclrtSetDevice(0));
                // Strict runs: CANN's documented minimum alignment only, and
                // aclrtFreeHost(NULL) refused like aclrtFree(NULL).
                let mut seen_unaligned = false;
                let blocks: Vec<_> = (0..16).map(|_| dev_alloc(100)).collect();
                for &p in &blocks {
                    assert_eq!(p as usize % crate::memory::ALIGN, 0);
                    seen_unaligned |= p as usize % crate::memory::DEVICE_ALIGN != 0;
                }
                assert!(seen_unaligned, "strict blocks are only 64-aligned");
                for p in blocks {
                    ok(aclrtFree(p));
                }
                assert_eq!(aclrtFreeHost(std::ptr::null_mut()), ACL_ERROR_INVALID_PARAM);
                assert_eq!(
                    take_message().as_deref(),
                    Some("aclrtFreeHost: hostPtr is NULL")
                );
                ok(aclFinalize());
            }
            "vmm-leaks" => {
                init();
                ok(aclrtSetDevice(0));
                let prop = phys_prop(0, ACL_HBM_MEM_HUGE);
                let (mut va, mut h) = (std::ptr::null_mut(), std::ptr::null_mut());
                ok(aclrtReserveMemAddress(
                    &mut va,
                    GRAN,
                    0,
                    std::ptr::null_mut(),
                    0,
                ));
                ok(aclrtMallocPhysical(&mut h, GRAN, &prop, 0));
                ok(aclrtMapMem(va, GRAN, 0, h, 0));
                let mut h2 = std::ptr::null_mut();
                ok(aclrtMallocPhysical(&mut h2, GRAN, &prop, 0));
                // The reset releases device 0's handles (reported), the
                // finalize the reservation.
                ok(aclrtResetDevice(0));
                let msg = take_message().unwrap();
                assert!(msg.starts_with("leak"), "{msg}");
                assert!(
                    msg.contains(&format!("physical memory handle {:#x}", h as usize)),
                    "{msg}"
                );
                assert!(
                    msg.contains(&format!("physical memory handle {:#x}", h2 as usize)),
                    "{msg}"
                );
                assert!(
                    msg.contains(&format!("mapped at {:#x}", va as usize)),
                    "{msg}"
                );
                ok(aclFinalize());
                let msg = take_message().unwrap();
                assert!(
                    msg.contains(&format!("reserved virtual range {:#x}", va as usize)),
                    "{msg}"
                );
            }
            "free-deferred" => {
                init();
                free_while_a_copy_is_queued(false);
            }
            other => panic!("unknown child mode {other}"),
        }
    }
}

// ---- devices and contexts ----------------------------------------------

#[test]
fn device_count_matches_config() {
    init();
    let mut n = 0;
    // SAFETY: &mut n is a valid output location.
    ok(unsafe { aclrtGetDeviceCount(&mut n) });
    assert_eq!(n, crate::config().devices);
    // SAFETY: NULL is refused, not written.
    assert_eq!(
        unsafe { aclrtGetDeviceCount(std::ptr::null_mut()) },
        ACL_ERROR_INVALID_PARAM
    );
    assert_eq!(
        take_message().unwrap(),
        "aclrtGetDeviceCount: count is NULL"
    );
}

#[test]
fn set_and_reset_are_reference_counted() {
    let _g = device1();
    init();
    std::thread::spawn(|| {
        // SAFETY (whole block): valid handles and output locations.
        unsafe {
            let mut d = -1;
            ok(aclrtSetDevice(1));
            ok(aclrtSetDevice(1));
            ok(aclrtGetDevice(&mut d));
            assert_eq!(d, 1);
            let mut ctx = std::ptr::null_mut();
            ok(aclrtGetCurrentContext(&mut ctx));
            let s = new_stream();
            let p = dev_alloc(4096);
            let mut ev = std::ptr::null_mut();
            ok(aclrtCreateEvent(&mut ev));
            ok(aclrtResetDevice(1));
            // One reference left: everything still works.
            sync(s);
            ok(aclrtGetDevice(&mut d));
            ok(aclrtResetDevice(1));
            // The last reset freed the context, stream, event and memory.
            assert_eq!(aclrtGetDevice(&mut d), ACL_ERROR_RT_CONTEXT_NULL);
            assert!(take_message().unwrap().contains("no current context"));
            assert_eq!(aclrtSetCurrentContext(ctx), ACL_ERROR_INVALID_PARAM);
            assert_eq!(aclrtSynchronizeStream(s), ACL_ERROR_INVALID_PARAM);
            assert!(take_message().unwrap().contains("not a live stream"));
            assert_eq!(aclrtQueryEventStatus(ev, &mut 0), ACL_ERROR_INVALID_PARAM);
            assert_eq!(aclrtFree(p), ACL_ERROR_INVALID_PARAM);
            assert!(take_message().unwrap().contains("already freed"));
            assert_eq!(aclrtResetDevice(1), ACL_ERROR_INVALID_PARAM);
            assert!(take_message().unwrap().contains("not set"));
            // A fresh SetDevice gets a new default context with all memory free.
            ok(aclrtSetDevice(1));
            let mut ctx2 = std::ptr::null_mut();
            ok(aclrtGetCurrentContext(&mut ctx2));
            assert_ne!(ctx, ctx2);
            let (mut free, mut total) = (0, 0);
            ok(aclrtGetMemInfo(ACL_HBM_MEM, &mut free, &mut total));
            assert_eq!(free, total);
            ok(aclrtResetDeviceForce(1));
            assert_eq!(aclrtGetDevice(&mut d), ACL_ERROR_RT_CONTEXT_NULL);
            assert_eq!(aclrtSetDevice(99), ACL_ERROR_RT_INVALID_DEVICEID);
            assert!(take_message().unwrap().contains("device 99 does not exist"));
        }
    })
    .join()
    .unwrap();
}

#[test]
fn fresh_threads_have_no_context_and_share_default_contexts() {
    init();
    let get = || {
        std::thread::spawn(|| {
            // SAFETY (whole block): valid output locations.
            unsafe {
                let mut p = std::ptr::null_mut();
                assert_eq!(aclrtMalloc(&mut p, 64, 0), ACL_ERROR_RT_CONTEXT_NULL);
                let msg = take_message().unwrap();
                assert!(
                    msg.starts_with("aclrtMalloc: ") && msg.contains("context"),
                    "{msg}"
                );
                let mut s = std::ptr::null_mut();
                assert_eq!(aclrtCreateStream(&mut s), ACL_ERROR_RT_CONTEXT_NULL);
                assert_eq!(
                    aclrtSynchronizeStream(std::ptr::null_mut()),
                    ACL_ERROR_RT_CONTEXT_NULL
                );
                ok(aclrtSetDevice(0));
                let mut ctx = std::ptr::null_mut();
                ok(aclrtGetCurrentContext(&mut ctx));
                let mut def = std::ptr::null_mut();
                ok(aclrtCtxGetCurrentDefaultStream(&mut def));
                sync(std::ptr::null_mut());
                (ctx as usize, def as usize)
            }
        })
        .join()
        .unwrap()
    };
    let a = get();
    let b = get();
    assert_eq!(a, b, "threads that set device 0 share its default context");
}

#[test]
fn explicit_contexts_are_current_and_destroyable() {
    let ctx = own_context(0);
    // SAFETY (whole block): valid handles and output locations.
    unsafe {
        let mut cur = std::ptr::null_mut();
        ok(aclrtGetCurrentContext(&mut cur));
        assert_eq!(cur, ctx);
        let s = new_stream();
        launch(s, sleep_ms, 10);
        drop_context(ctx);
        assert_eq!(aclrtGetCurrentContext(&mut cur), ACL_ERROR_RT_CONTEXT_NULL);
        assert_eq!(aclrtSynchronizeStream(s), ACL_ERROR_INVALID_PARAM);
        assert_eq!(aclrtDestroyContext(ctx), ACL_ERROR_INVALID_PARAM);
        // Default contexts cannot be destroyed.
        ok(aclrtSetDevice(0));
        ok(aclrtGetCurrentContext(&mut cur));
        assert_eq!(aclrtDestroyContext(cur), ACL_ERROR_INVALID_PARAM);
        assert!(take_message().unwrap().contains("aclrtResetDevice"));
    }
}

#[test]
fn device_queries() {
    init();
    // SAFETY (whole block): valid output locations.
    unsafe {
        let mut mode = 0;
        ok(aclrtGetRunMode(&mut mode));
        assert_eq!(mode, ACL_HOST);
        let mut v = 0i64;
        ok(aclrtGetDeviceInfo(0, ACL_DEV_ATTR_AICORE_CORE_NUM, &mut v));
        assert!(v > 0);
        ok(aclrtGetDeviceInfo(
            1,
            ACL_DEV_ATTR_TOTAL_GLOBAL_MEM_SIZE,
            &mut v,
        ));
        assert_eq!(v as u64, crate::config().memory_per_device);
        assert_eq!(
            aclrtGetDeviceInfo(0, 12345, &mut v),
            ACL_ERROR_INVALID_PARAM
        );
        assert_eq!(
            aclrtGetDeviceInfo(77, ACL_DEV_ATTR_AICORE_CORE_NUM, &mut v),
            ACL_ERROR_RT_INVALID_DEVICEID
        );
        let mut st = 7;
        ok(aclrtQueryDeviceStatus(0, &mut st));
        assert_eq!(st, ACL_RT_DEVICE_STATUS_NORMAL);
        let mut can = -1;
        ok(aclrtDeviceCanAccessPeer(&mut can, 0, 1));
        assert_eq!(can, 1);
        ok(aclrtDeviceCanAccessPeer(&mut can, 0, 0));
        assert_eq!(can, 0);
        let (mut a, mut b, mut c) = (0, 0, 0);
        ok(aclrtGetVersion(&mut a, &mut b, &mut c));
        assert_eq!((a, b, c), (1, 17, 0));
        let mut buf = [1 as std::ffi::c_char; 128];
        let mut name = *b"runtime\0";
        ok(aclsysGetVersionStr(
            name.as_mut_ptr().cast(),
            buf.as_mut_ptr(),
        ));
        assert_eq!(
            CStr::from_ptr(buf.as_ptr()).to_str().unwrap(),
            MOCK_PACKAGE_VERSION
        );
        let mut num = 0;
        ok(aclsysGetVersionNum(name.as_mut_ptr().cast(), &mut num));
        assert_eq!(num, MOCK_PACKAGE_VERSION_NUM);
        assert!(!aclrtGetSocName().is_null());
        assert_eq!(aclDataTypeSize(ACL_FLOAT16), 2);
        assert_eq!(aclDataTypeSize(ACL_BF16), 2);
        assert_eq!(aclDataTypeSize(ACL_INT64), 8);
        assert_eq!(aclDataTypeSize(ACL_COMPLEX128), 16);
        assert_eq!(aclDataTypeSize(ACL_DT_UNDEFINED), 0);
        assert_eq!(aclFloat16ToFloat(0x3C00), 1.0);
        assert_eq!(aclFloatToFloat16(-2.0), 0xC000);
        assert_eq!(
            aclFloat16ToFloat(aclFloatToFloat16(0.333)),
            half::f16::from_f32(0.333).to_f32()
        );
    }
}

// ---- streams ------------------------------------------------------------

#[test]
fn streams_run_tasks_in_order() {
    let ctx = own_context(0);
    let s = new_stream();
    ORDER.lock().unwrap().clear();
    let open = AtomicBool::new(false);
    launch(s, gate, &open as *const AtomicBool as usize);
    for i in 0..100 {
        launch(s, push_order, i);
    }
    // The first task blocks, so nothing after it has run yet.
    let mut status = 0;
    // SAFETY: valid handle and output location.
    ok(unsafe { aclrtStreamQuery(s, &mut status) });
    assert_eq!(status, ACL_STREAM_STATUS_NOT_READY);
    assert!(ORDER.lock().unwrap().is_empty());
    open.store(true, Ordering::SeqCst);
    sync(s);
    assert_eq!(*ORDER.lock().unwrap(), (0..100).collect::<Vec<_>>());
    // SAFETY: valid handle and output location.
    ok(unsafe { aclrtStreamQuery(s, &mut status) });
    assert_eq!(status, ACL_STREAM_STATUS_COMPLETE);
    // Host functions run with the stream's context current.
    static SEEN: Mutex<usize> = Mutex::new(0);
    unsafe extern "C" fn record_context(_: *mut c_void) {
        let mut c = std::ptr::null_mut();
        // SAFETY: &mut c is a valid output location.
        if unsafe { aclrtGetCurrentContext(&mut c) } == ACL_SUCCESS {
            *SEEN.lock().unwrap() = c as usize;
        }
    }
    launch(s, record_context, 0);
    sync(s);
    assert_eq!(*SEEN.lock().unwrap(), ctx as usize);
    let mut id = -1;
    // SAFETY: valid handle and output location.
    ok(unsafe { aclrtStreamGetId(s, &mut id) });
    assert!(id > 0);
    destroy(s);
    drop_context(ctx);
}

#[test]
fn sync_with_timeout_reports_timeouts() {
    let ctx = own_context(0);
    let s = new_stream();
    let open = AtomicBool::new(false);
    launch(s, gate, &open as *const AtomicBool as usize);
    // SAFETY: valid stream handle.
    unsafe {
        assert_eq!(
            aclrtSynchronizeStreamWithTimeout(s, 5),
            ACL_ERROR_RT_STREAM_SYNC_TIMEOUT
        );
        assert!(
            take_message()
                .unwrap()
                .contains("did not finish within 5 ms")
        );
        assert_eq!(
            aclrtSynchronizeStreamWithTimeout(s, -7),
            ACL_ERROR_INVALID_PARAM
        );
    }
    open.store(true, Ordering::SeqCst);
    // SAFETY: valid stream handle.
    ok(unsafe { aclrtSynchronizeStreamWithTimeout(s, -1) });
    destroy(s);
    drop_context(ctx);
}

#[test]
fn task_errors_surface_at_the_next_sync() {
    let ctx = own_context(0);
    let s = new_stream();
    let code = crate::runtime::enqueue(
        s,
        Box::new(|| {
            Err(crate::MockError::new(
                ACL_ERROR_RT_AICORE_EXCEPTION,
                "aclnnFake: bad tile",
            ))
        }),
    );
    ok(code);
    // SAFETY: valid stream handle.
    assert_eq!(
        unsafe { aclrtSynchronizeStream(s) },
        ACL_ERROR_RT_AICORE_EXCEPTION
    );
    let msg = take_message().unwrap();
    assert!(
        msg.starts_with("aclrtSynchronizeStream: ") && msg.contains("aclnnFake: bad tile"),
        "{msg}"
    );
    sync(s);
    // NULL resolves to the current context's default stream.
    ok(crate::runtime::enqueue(
        std::ptr::null_mut(),
        Box::new(|| Ok(())),
    ));
    sync(std::ptr::null_mut());
    // SAFETY: valid stream handle.
    unsafe {
        ok(aclrtSetStreamFailureMode(s, u64::from(ACL_STOP_ON_FAILURE)));
        assert_eq!(aclrtSetStreamFailureMode(s, 9), ACL_ERROR_INVALID_PARAM);
        assert_eq!(
            aclrtLaunchHostFunc(s, None, std::ptr::null_mut()),
            ACL_ERROR_INVALID_PARAM
        );
    }
    destroy(s);
    drop_context(ctx);
}

#[test]
fn destroying_streams_waits_or_drops() {
    let ctx = own_context(0);
    static RAN: AtomicUsize = AtomicUsize::new(0);
    unsafe extern "C" fn count(_: *mut c_void) {
        RAN.fetch_add(1, Ordering::SeqCst);
    }
    let s = new_stream();
    launch(s, sleep_ms, 20);
    launch(s, count, 0);
    destroy(s);
    assert_eq!(
        RAN.load(Ordering::SeqCst),
        1,
        "destroy waits for queued work"
    );
    let s = new_stream();
    let open = Arc::new(AtomicBool::new(false));
    launch(s, gate, Arc::as_ptr(&open) as usize);
    launch(s, count, 0);
    let o = open.clone();
    let opener = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        o.store(true, Ordering::SeqCst);
    });
    // SAFETY: valid stream handle.
    ok(unsafe { aclrtDestroyStreamForce(s) });
    opener.join().unwrap();
    assert_eq!(
        RAN.load(Ordering::SeqCst),
        1,
        "force destroy drops queued work"
    );
    // SAFETY: NULL and the default stream are refused.
    unsafe {
        assert_eq!(
            aclrtDestroyStream(std::ptr::null_mut()),
            ACL_ERROR_INVALID_PARAM
        );
        let mut def = std::ptr::null_mut();
        ok(aclrtCtxGetCurrentDefaultStream(&mut def));
        assert_eq!(aclrtDestroyStream(def), ACL_ERROR_INVALID_PARAM);
        let mut st = std::ptr::null_mut();
        assert_eq!(
            aclrtCreateStreamWithConfig(&mut st, 0, 0x400),
            ACL_ERROR_INVALID_PARAM
        );
        ok(aclrtCreateStreamWithConfig(
            &mut st,
            0,
            ACL_STREAM_FAST_LAUNCH | ACL_STREAM_FAST_SYNC,
        ));
        destroy(st);
    }
    drop_context(ctx);
}

// ---- memory -------------------------------------------------------------

#[test]
fn async_copies_happen_on_the_stream() {
    let ctx = own_context(0);
    let s = new_stream();
    let n = 4096;
    let dev = dev_alloc(n);
    let pinned = host_alloc(n);
    let src: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
    // SAFETY (whole block): pointers are live allocations of n bytes or
    // the local vectors, which outlive the synchronisation.
    unsafe {
        ok(aclrtMemcpy(
            dev,
            n,
            src.as_ptr().cast(),
            n,
            ACL_MEMCPY_HOST_TO_DEVICE,
        ));
        // Pinned destination: queued behind a busy host function; not done
        // before the sync.
        let busy = AtomicBool::new(false);
        launch(s, gate, &busy as *const AtomicBool as usize);
        ok(aclrtMemcpyAsync(
            pinned,
            n,
            dev,
            n,
            ACL_MEMCPY_DEVICE_TO_HOST,
            s,
        ));
        assert!(
            bytes(pinned, n).iter().all(|&b| b == 0),
            "copy ran before the stream reached it"
        );
        busy.store(true, Ordering::SeqCst);
        sync(s);
        assert_eq!(bytes(pinned, n), &src[..]);
        // Pageable destination: the call returns after the copy.
        let mut pageable = vec![0u8; n];
        launch(s, sleep_ms, 50);
        ok(aclrtMemcpyAsync(
            pageable.as_mut_ptr().cast(),
            n,
            dev,
            n,
            ACL_MEMCPY_DEVICE_TO_HOST,
            s,
        ));
        assert_eq!(pageable, src);
        // Async memset is queued too; the plain one is immediate.
        let busy = AtomicBool::new(false);
        launch(s, gate, &busy as *const AtomicBool as usize);
        ok(aclrtMemsetAsync(pinned, n, 0x7f, n, s));
        assert_eq!(bytes(pinned, n)[0], 0);
        busy.store(true, Ordering::SeqCst);
        sync(s);
        assert!(bytes(pinned, n).iter().all(|&b| b == 0x7f));
        ok(aclrtMemset(dev, n, 0x1ff, 16));
        ok(aclrtMemcpy(
            pageable.as_mut_ptr().cast(),
            n,
            dev,
            32,
            ACL_MEMCPY_DEFAULT,
        ));
        assert!(pageable[..16].iter().all(|&b| b == 0xff));
        assert_eq!(&pageable[16..32], &src[16..32]);
        assert_eq!(
            aclrtMemcpyAsync(pinned, n, pinned, 8, ACL_MEMCPY_HOST_TO_HOST, s),
            ACL_ERROR_RT_FEATURE_NOT_SUPPORT
        );
    }
    free(dev);
    free_host(pinned);
    destroy(s);
    drop_context(ctx);
}

/// Frees a device block while a queued copy (held back by a gated stream)
/// still reads it. With the sanitizer on, the free is a `race` report and
/// frees nothing; with it off, the free returns at once and the block is
/// released only after the queued copy ran.
fn free_while_a_copy_is_queued(sanitizer_on: bool) {
    let ctx = own_context(0);
    let s = new_stream();
    let n = 1 << 12;
    let dev = dev_alloc(n);
    let pinned = host_alloc(n);
    let src = vec![0x5au8; n];
    let open = AtomicBool::new(false);
    // SAFETY (whole block): live allocations of n bytes; `open` and `src`
    // outlive the synchronisation.
    unsafe {
        ok(aclrtMemcpy(
            dev,
            n,
            src.as_ptr().cast(),
            n,
            ACL_MEMCPY_HOST_TO_DEVICE,
        ));
        launch(s, gate, &open as *const AtomicBool as usize);
        ok(aclrtMemcpyAsync(
            pinned,
            n,
            dev,
            n,
            ACL_MEMCPY_DEVICE_TO_HOST,
            s,
        ));
        if sanitizer_on {
            // CANN's aclrtFree does not wait for queued work: a race.
            assert_eq!(aclrtFree(dev), ACL_ERROR_RT_PARAM_INVALID);
            let msg = take_message().unwrap();
            assert!(msg.starts_with("race: aclrtFree (call #"), "{msg}");
            assert!(msg.contains("aclrtMemcpyAsync (call #"), "{msg}");
            open.store(true, Ordering::SeqCst);
            sync(s);
            assert!(bytes(pinned, n).iter().all(|&b| b == 0x5a));
            free(dev);
        } else {
            // The stream is blocked until this thread opens the gate: the
            // free must not wait for it.
            free(dev);
            let mut out = vec![0u8; 8];
            assert_eq!(
                aclrtMemcpy(
                    out.as_mut_ptr().cast(),
                    8,
                    dev,
                    8,
                    ACL_MEMCPY_DEVICE_TO_HOST
                ),
                ACL_ERROR_RT_PARAM_INVALID,
                "a freed pointer is no longer device memory"
            );
            open.store(true, Ordering::SeqCst);
            sync(s);
            assert!(bytes(pinned, n).iter().all(|&b| b == 0x5a));
        }
    }
    free_host(pinned);
    destroy(s);
    drop_context(ctx);
}

#[test]
fn free_with_queued_work_is_a_race() {
    free_while_a_copy_is_queued(true);
}

#[test]
fn free_returns_at_once_and_releases_after_queued_work() {
    run_child("free-deferred", &[("ASCEND_MOCK_SANITIZER", "off")]);
}

#[test]
fn copy_2d_moves_rows() {
    let ctx = own_context(0);
    let dev = dev_alloc(64);
    let src: Vec<u8> = (0..32).collect();
    let mut out = vec![0u8; 24];
    // SAFETY (whole block): extents lie inside `src`, `dev` and `out`.
    unsafe {
        // Three rows of 4 bytes, source pitch 8, device pitch 16.
        ok(aclrtMemcpy2d(
            dev,
            16,
            src.as_ptr().cast(),
            8,
            4,
            3,
            ACL_MEMCPY_HOST_TO_DEVICE,
        ));
        ok(aclrtMemcpy2dAsync(
            out.as_mut_ptr().cast(),
            8,
            dev,
            16,
            4,
            3,
            ACL_MEMCPY_DEVICE_TO_HOST,
            std::ptr::null_mut(),
        ));
        assert_eq!(&out[0..4], &[0, 1, 2, 3]);
        assert_eq!(&out[8..12], &[8, 9, 10, 11]);
        assert_eq!(&out[16..20], &[16, 17, 18, 19]);
        assert_eq!(&out[4..8], &[0; 4]);
        assert_eq!(
            aclrtMemcpy2d(
                dev,
                2,
                src.as_ptr().cast(),
                8,
                4,
                3,
                ACL_MEMCPY_HOST_TO_DEVICE
            ),
            ACL_ERROR_RT_PARAM_INVALID
        );
        // 5 rows at pitch 32 run past the 96-byte block.
        assert_eq!(
            aclrtMemcpy2d(
                dev,
                32,
                out.as_ptr().cast(),
                0,
                0,
                5,
                ACL_MEMCPY_HOST_TO_DEVICE
            ),
            ACL_SUCCESS
        );
        let big = vec![0u8; 256];
        assert_eq!(
            aclrtMemcpy2d(
                dev,
                32,
                big.as_ptr().cast(),
                32,
                4,
                5,
                ACL_MEMCPY_HOST_TO_DEVICE
            ),
            ACL_ERROR_RT_PARAM_INVALID
        );
        assert!(take_message().unwrap().contains("runs past the end"));
    }
    free(dev);
    drop_context(ctx);
}

#[test]
fn memcpy_checks_kinds_sizes_and_ranges() {
    let ctx = own_context(0);
    let dev = dev_alloc(32); // a 64-byte block
    let dev2 = dev_alloc(32);
    let mut host = vec![0u8; 256];
    let h = host.as_mut_ptr().cast::<c_void>();
    // SAFETY (whole block): every pointer is a live allocation or `host`;
    // failing calls do not touch memory.
    unsafe {
        assert_eq!(
            aclrtMemcpy(dev, 16, h, 32, ACL_MEMCPY_HOST_TO_DEVICE),
            ACL_ERROR_RT_PARAM_INVALID
        );
        assert_eq!(
            take_message().unwrap(),
            "aclrtMemcpy: destMax 16 is smaller than count 32"
        );
        assert_eq!(
            aclrtMemcpy(h, 256, dev, 16, ACL_MEMCPY_HOST_TO_DEVICE),
            ACL_ERROR_RT_PARAM_INVALID
        );
        let msg = take_message().unwrap();
        assert!(
            msg.contains("ACL_MEMCPY_HOST_TO_DEVICE does not match")
                && msg.contains("source is device memory of device 0"),
            "{msg}"
        );
        assert_eq!(
            aclrtMemcpy(dev, 64, h, 16, ACL_MEMCPY_DEVICE_TO_HOST),
            ACL_ERROR_RT_PARAM_INVALID
        );
        assert_eq!(
            aclrtMemcpy(dev, 64, h, 16, ACL_MEMCPY_DEVICE_TO_DEVICE),
            ACL_ERROR_RT_PARAM_INVALID
        );
        assert_eq!(
            aclrtMemcpy(h, 64, h.add(64), 16, ACL_MEMCPY_DEVICE_TO_DEVICE),
            ACL_ERROR_RT_PARAM_INVALID
        );
        assert_eq!(
            aclrtMemcpy(dev, 64, dev2, 16, ACL_MEMCPY_INTER_DEVICE_TO_DEVICE),
            ACL_ERROR_RT_PARAM_INVALID
        );
        ok(aclrtMemcpy(
            dev,
            64,
            dev2,
            16,
            ACL_MEMCPY_INNER_DEVICE_TO_DEVICE,
        ));
        ok(aclrtMemcpy(dev, 64, dev2, 16, ACL_MEMCPY_DEVICE_TO_DEVICE));
        assert_eq!(aclrtMemcpy(dev, 64, dev2, 16, 42), ACL_ERROR_INVALID_PARAM);
        // The 64-byte block may be used whole, not one byte more.
        ok(aclrtMemcpy(dev, 64, h, 64, ACL_MEMCPY_HOST_TO_DEVICE));
        assert_eq!(
            aclrtMemcpy(dev, 65, h, 65, ACL_MEMCPY_HOST_TO_DEVICE),
            ACL_ERROR_RT_PARAM_INVALID
        );
        assert!(
            take_message()
                .unwrap()
                .contains("runs past the end of its device memory of device 0 allocation")
        );
        assert_eq!(
            aclrtMemcpy(h, 256, dev.add(8), 64, ACL_MEMCPY_DEVICE_TO_HOST),
            ACL_ERROR_RT_PARAM_INVALID
        );
        // Count 0 succeeds.
        ok(aclrtMemcpy(
            std::ptr::null_mut(),
            0,
            std::ptr::null(),
            0,
            ACL_MEMCPY_HOST_TO_DEVICE,
        ));
        assert_eq!(
            aclrtMemcpy(std::ptr::null_mut(), 8, h, 8, ACL_MEMCPY_HOST_TO_DEVICE),
            ACL_ERROR_INVALID_PARAM
        );
        // Memset refuses unmanaged memory, overlong ranges and small maxCount.
        assert_eq!(aclrtMemset(h, 8, 0, 8), ACL_ERROR_RT_PARAM_INVALID);
        assert_eq!(aclrtMemset(dev, 8, 0, 16), ACL_ERROR_RT_PARAM_INVALID);
        assert_eq!(
            take_message().unwrap(),
            "aclrtMemset: maxCount 8 is smaller than count 16"
        );
        assert_eq!(aclrtMemset(dev, 100, 0, 100), ACL_ERROR_RT_PARAM_INVALID);
        // Pointer attributes classify every kind of memory.
        let mut a = aclrtPtrAttributes::default();
        ok(aclrtPointerGetAttributes(dev.add(10), &mut a));
        assert_eq!(
            (a.location.type_, a.location.id),
            (ACL_MEM_LOCATION_TYPE_DEVICE, 0)
        );
        ok(aclrtPointerGetAttributes(h, &mut a));
        assert_eq!(a.location.type_, ACL_MEM_LOCATION_TYPE_UNREGISTERED);
        let pinned = host_alloc(8);
        ok(aclrtPointerGetAttributes(pinned, &mut a));
        assert_eq!(a.location.type_, ACL_MEM_LOCATION_TYPE_HOST);
        // Frees: wrong kind, interior pointer, unknown pointer, double free.
        assert_eq!(aclrtFree(pinned), ACL_ERROR_INVALID_PARAM);
        assert_eq!(aclrtFreeHost(dev), ACL_ERROR_INVALID_PARAM);
        assert_eq!(aclrtFree(dev.add(4)), ACL_ERROR_INVALID_PARAM);
        assert_eq!(aclrtFree(h), ACL_ERROR_INVALID_PARAM);
        assert!(take_message().unwrap().contains("unknown or already freed"));
        free_host(pinned);
        free(dev);
        assert_eq!(aclrtFree(dev), ACL_ERROR_INVALID_PARAM);
        let mut p = std::ptr::null_mut();
        assert_eq!(aclrtMalloc(&mut p, 0, 0), ACL_ERROR_INVALID_PARAM);
        assert!(take_message().unwrap().contains("size is 0"));
    }
    free(dev2);
    drop_context(ctx);
}

#[test]
fn copies_between_devices_need_the_right_kind() {
    let _g = device1();
    let ctx1 = own_context(1);
    let d1 = dev_alloc(64);
    let ctx0 = own_context(0);
    let d0 = dev_alloc(64);
    // SAFETY: no pointer arguments.
    ok(unsafe { aclrtDeviceEnablePeerAccess(1, 0) });
    let src: Vec<u8> = (0..64).collect();
    let mut out = vec![0u8; 64];
    // SAFETY (whole block): live allocations of 64 bytes and local vectors.
    unsafe {
        ok(aclrtMemcpy(
            d0,
            64,
            src.as_ptr().cast(),
            64,
            ACL_MEMCPY_HOST_TO_DEVICE,
        ));
        assert_eq!(
            aclrtMemcpy(d1, 64, d0, 64, ACL_MEMCPY_INNER_DEVICE_TO_DEVICE),
            ACL_ERROR_RT_PARAM_INVALID
        );
        ok(aclrtMemcpy(
            d1,
            64,
            d0,
            64,
            ACL_MEMCPY_INTER_DEVICE_TO_DEVICE,
        ));
        ok(aclrtMemcpy(
            out.as_mut_ptr().cast(),
            64,
            d1,
            64,
            ACL_MEMCPY_DEFAULT,
        ));
        assert_eq!(out, src);
        let mut a = aclrtPtrAttributes::default();
        ok(aclrtPointerGetAttributes(d1, &mut a));
        assert_eq!(a.location.id, 1);
    }
    free(d0);
    free(d1);
    drop_context(ctx0);
    drop_context(ctx1);
}

#[test]
fn allocation_fails_at_capacity() {
    let _g = device1();
    let ctx = own_context(1);
    let (mut free0, mut total) = (0, 0);
    // SAFETY (whole block): valid output locations; all pointers freed below.
    unsafe {
        ok(aclrtGetMemInfo(ACL_HBM_MEM, &mut free0, &mut total));
        assert!(free0 <= total);
        let chunk = 1usize << 30;
        let mut held = Vec::new();
        let mut free = free0;
        while free > chunk + 64 {
            let mut p = std::ptr::null_mut();
            ok(aclrtMalloc(&mut p, chunk, ACL_MEM_MALLOC_HUGE_FIRST));
            assert_eq!(p as usize % 64, 0);
            held.push(p);
            ok(aclrtGetMemInfo(ACL_HBM_MEM, &mut free, &mut total));
        }
        let mut p = std::ptr::null_mut();
        assert_eq!(aclrtMalloc(&mut p, free, 0), ACL_ERROR_RT_MEMORY_ALLOCATION);
        let msg = take_message().unwrap();
        assert!(
            msg.starts_with("aclrtMalloc: out of device memory on device 1")
                && msg.contains(&format!("requested {free} bytes"))
                && msg.contains(&format!("only {free} of {total} bytes are free")),
            "{msg}"
        );
        assert!(p.is_null());
        // The largest request that fits: free - 32, rounded down to 32.
        let fits = (free - 32) & !31;
        ok(aclrtMalloc(&mut p, fits, 0));
        held.push(p);
        let mut after = 0;
        ok(aclrtGetMemInfo(ACL_HBM_MEM, &mut after, &mut total));
        assert_eq!(after, free - fits - 32);
        for p in held {
            ok(aclrtFree(p));
        }
        ok(aclrtGetMemInfo(ACL_HBM_MEM, &mut after, &mut total));
        assert_eq!(after, free0);
    }
    drop_context(ctx);
}

// ---- events -------------------------------------------------------------

fn new_event() -> aclrtEvent {
    let mut e = std::ptr::null_mut();
    // SAFETY: &mut e is a valid output location.
    ok(unsafe { aclrtCreateEvent(&mut e) });
    e
}

#[test]
fn events_order_work_across_streams() {
    let ctx = own_context(0);
    let (s1, s2) = (new_stream(), new_stream());
    let n = 1024;
    let (a, b) = (dev_alloc(n), dev_alloc(n));
    let pinned_src = host_alloc(n);
    let pinned_dst = host_alloc(n);
    bytes(pinned_src, n)
        .iter_mut()
        .enumerate()
        .for_each(|(i, v)| *v = (i * 7) as u8);
    let ev = new_event();
    // SAFETY (whole block): live handles and allocations of n bytes.
    unsafe {
        // A wait on a never-recorded event is a no-op.
        ok(aclrtStreamWaitEvent(s2, ev));
        sync(s2);
        // s1: (held back) upload into a, then record.
        let open = AtomicBool::new(false);
        launch(s1, gate, &open as *const AtomicBool as usize);
        ok(aclrtMemcpyAsync(
            a,
            n,
            pinned_src,
            n,
            ACL_MEMCPY_HOST_TO_DEVICE,
            s1,
        ));
        ok(aclrtRecordEvent(ev, s1));
        let mut st = 9;
        ok(aclrtQueryEventStatus(ev, &mut st));
        assert_eq!(st, ACL_EVENT_RECORDED_STATUS_NOT_READY);
        ok(aclrtQueryEventWaitStatus(ev, &mut st));
        assert_eq!(st, ACL_EVENT_WAIT_STATUS_NOT_READY);
        // s2 waits for it, then copies a -> b -> host.
        ok(aclrtStreamWaitEvent(s2, ev));
        ok(aclrtMemcpyAsync(
            b,
            n,
            a,
            n,
            ACL_MEMCPY_DEVICE_TO_DEVICE,
            s2,
        ));
        ok(aclrtMemcpyAsync(
            pinned_dst,
            n,
            b,
            n,
            ACL_MEMCPY_DEVICE_TO_HOST,
            s2,
        ));
        // s2 is held by the event while s1 is held by its gate.
        std::thread::sleep(Duration::from_millis(20));
        let mut sst = 9;
        ok(aclrtStreamQuery(s2, &mut sst));
        assert_eq!(sst, ACL_STREAM_STATUS_NOT_READY);
        assert!(bytes(pinned_dst, n).iter().all(|&b| b == 0));
        open.store(true, Ordering::SeqCst);
        sync(s2);
        assert_eq!(bytes(pinned_dst, n), bytes(pinned_src, n));
        ok(aclrtQueryEventStatus(ev, &mut st));
        assert_eq!(st, ACL_EVENT_RECORDED_STATUS_COMPLETE);
        ok(aclrtQueryEvent(ev, &mut st));
        assert_eq!(st, ACL_EVENT_STATUS_COMPLETE);
        ok(aclrtSynchronizeEvent(ev));
        // Reset returns it to "not recorded".
        ok(aclrtResetEvent(ev, s1));
        sync(s1);
        ok(aclrtQueryEventStatus(ev, &mut st));
        assert_eq!(st, ACL_EVENT_RECORDED_STATUS_NOT_READY);
        ok(aclrtDestroyEvent(ev));
        assert_eq!(aclrtRecordEvent(ev, s1), ACL_ERROR_INVALID_PARAM);
        let mut e2 = std::ptr::null_mut();
        assert_eq!(
            aclrtCreateEventWithFlag(&mut e2, 0x4),
            ACL_ERROR_INVALID_PARAM
        );
        ok(aclrtCreateEventExWithFlag(
            &mut e2,
            ACL_EVENT_SYNC | ACL_EVENT_TIME_LINE,
        ));
        ok(aclrtDestroyEvent(e2));
    }
    for p in [a, b] {
        free(p);
    }
    free_host(pinned_src);
    free_host(pinned_dst);
    destroy(s1);
    destroy(s2);
    drop_context(ctx);
}

#[test]
fn events_after_a_failed_task_report_it_through_the_c_api() {
    let ctx = own_context(0);
    let (s1, s2) = (new_stream(), new_stream());
    let (before, after) = (new_event(), new_event());
    // SAFETY (whole block): live handles; status locations are valid.
    unsafe {
        ok(aclrtRecordEvent(before, s1));
        ok(crate::runtime::enqueue(
            s1,
            Box::new(|| {
                Err(crate::error::MockError::new(
                    ACL_ERROR_RT_AICORE_EXCEPTION,
                    "kernel: trapped",
                ))
            }),
        ));
        ok(aclrtRecordEvent(after, s1));
        ok(aclrtStreamWaitEvent(s2, after));
        ok(aclrtSynchronizeEvent(before));
        assert_eq!(aclrtSynchronizeEvent(after), ACL_ERROR_RT_AICORE_EXCEPTION);
        let msg = take_message().unwrap_or_default();
        assert!(
            msg.contains("recorded after failed work") && msg.contains("kernel: trapped"),
            "{msg}"
        );
        assert_eq!(
            aclrtSynchronizeEventWithTimeout(after, 100),
            ACL_ERROR_RT_AICORE_EXCEPTION
        );
        let mut st = 9;
        assert_eq!(
            aclrtQueryEventStatus(after, &mut st),
            ACL_ERROR_RT_AICORE_EXCEPTION
        );
        assert_eq!(st, 9, "no status is written for a failed record");
        assert_eq!(
            aclrtQueryEvent(after, &mut st),
            ACL_ERROR_RT_AICORE_EXCEPTION
        );
        // A wait would pass the record (and fail on the waiting stream).
        ok(aclrtQueryEventWaitStatus(after, &mut st));
        assert_eq!(st, ACL_EVENT_WAIT_STATUS_COMPLETE);
        assert_eq!(aclrtSynchronizeStream(s2), ACL_ERROR_RT_AICORE_EXCEPTION);
        ok(aclrtSynchronizeStream(s2));
        // The recording stream reports it once more, then records are clean.
        assert_eq!(aclrtSynchronizeStream(s1), ACL_ERROR_RT_AICORE_EXCEPTION);
        ok(aclrtSynchronizeStream(s1));
        ok(aclrtRecordEvent(after, s1));
        ok(aclrtSynchronizeEvent(after));
        ok(aclrtQueryEventStatus(after, &mut st));
        assert_eq!(st, ACL_EVENT_RECORDED_STATUS_COMPLETE);
        ok(aclrtDestroyEvent(before));
        ok(aclrtDestroyEvent(after));
    }
    destroy(s1);
    destroy(s2);
    drop_context(ctx);
}

#[test]
fn elapsed_time_between_records() {
    let ctx = own_context(0);
    let s = new_stream();
    let (start, end) = (new_event(), new_event());
    let mut ms = -1.0f32;
    // SAFETY (whole block): live handles and output locations; `open`
    // outlives the stream's work (synchronised below).
    unsafe {
        assert_eq!(
            aclrtEventElapsedTime(&mut ms, start, end),
            ACL_ERROR_RT_EVENT_TIMESTAMP_INVALID
        );
        assert!(take_message().unwrap().contains("has not been recorded"));
        ok(aclrtRecordEvent(start, s));
        launch(s, sleep_ms, 30);
        let open = AtomicBool::new(false);
        launch(s, gate, &open as *const AtomicBool as usize);
        ok(aclrtRecordEvent(end, s));
        assert_eq!(
            aclrtEventElapsedTime(&mut ms, start, end),
            ACL_ERROR_RT_EVENT_NOT_COMPLETE
        );
        assert_eq!(
            aclrtSynchronizeEventWithTimeout(end, 1),
            ACL_ERROR_RT_EVENT_SYNC_TIMEOUT
        );
        open.store(true, Ordering::SeqCst);
        ok(aclrtSynchronizeEventWithTimeout(end, -1));
        ok(aclrtEventElapsedTime(&mut ms, start, end));
        assert!((29.0..10_000.0).contains(&ms), "{ms}");
        assert_eq!(
            aclrtEventElapsedTime(&mut ms, end, start),
            ACL_ERROR_RT_EVENT_TIMESTAMP_REVERSAL
        );
        let (mut t0, mut t1) = (0u64, 0u64);
        ok(aclrtEventGetTimestamp(start, &mut t0));
        ok(aclrtEventGetTimestamp(end, &mut t1));
        assert!(t1 >= t0 + 29_000, "{t0} {t1}");
        ok(aclrtDestroyEvent(start));
        ok(aclrtDestroyEvent(end));
    }
    destroy(s);
    drop_context(ctx);
}

// ---- errors, symbols, threads --------------------------------------------

#[test]
fn recent_error_messages_are_per_thread_and_fetched_once() {
    init();
    // SAFETY: NULL is refused, not written.
    assert_eq!(
        unsafe {
            aclrtGetVersion(
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        },
        ACL_ERROR_INVALID_PARAM
    );
    let other = std::thread::spawn(|| {
        // SAFETY: no arguments.
        let none = take_message();
        let last = unsafe { aclrtPeekAtLastError(ACL_RT_THREAD_LEVEL) };
        (none, last)
    })
    .join()
    .unwrap();
    assert_eq!(other, (None, ACL_SUCCESS));
    // SAFETY: level values are plain integers.
    unsafe {
        assert_eq!(
            aclrtPeekAtLastError(ACL_RT_THREAD_LEVEL),
            ACL_ERROR_INVALID_PARAM
        );
        assert_eq!(
            aclrtGetLastError(ACL_RT_THREAD_LEVEL),
            ACL_ERROR_INVALID_PARAM
        );
        assert_eq!(aclrtGetLastError(ACL_RT_THREAD_LEVEL), ACL_SUCCESS);
    }
    let msg = take_message().unwrap();
    assert_eq!(msg, "aclrtGetVersion: a version pointer is NULL");
    assert_eq!(take_message(), None);
    // The pointer stays valid until the next fetch on this thread.
    // SAFETY: NULL is refused, not written.
    unsafe { aclrtGetDeviceCount(std::ptr::null_mut()) };
    // SAFETY: no arguments; the result is checked for NULL.
    let p = unsafe { aclGetRecentErrMsg() };
    // SAFETY: the same thread has made no other aclGetRecentErrMsg call.
    let text = unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned();
    assert!(text.contains("count is NULL"));
}

#[test]
fn resolve_covers_every_export() {
    let names = crate::exported_symbols();
    let mut unique: Vec<_> = names.to_vec();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "duplicate names");
    for name in names {
        assert!(!crate::resolve(name).is_null(), "{name} does not resolve");
    }
    // Every declared function is exported or listed as not implemented,
    // never both, and the lists name only declared functions.
    let declared = crate::declared_symbols();
    for name in crate::not_implemented() {
        assert!(declared.contains(name), "{name} is not declared");
        assert!(crate::resolve(name).is_null(), "{name} resolves");
        assert!(!names.contains(name), "{name} is exported");
    }
    assert_eq!(
        names.len() + crate::not_implemented().len(),
        declared.len(),
        "declared functions neither exported nor listed as not implemented"
    );
    let tables = [
        ascend_sys::AscendCl::SYMBOLS,
        ascend_sys::NnOpBase::SYMBOLS,
        ascend_sys::OpApi::SYMBOLS,
        ascend_sys::Hccl::SYMBOLS,
    ];
    assert_eq!(
        declared.len(),
        tables.iter().map(|t| t.len()).sum::<usize>()
    );
    assert!(crate::resolve("aclDoesNotExist").is_null());
    assert!(crate::resolve("").is_null());
    assert_eq!(
        crate::resolve("aclrtMalloc"),
        aclrtMalloc as ascend_sys::pfn::ascendcl::aclrtMalloc as *mut c_void
    );
    // Through the ascend-sys tables, as Rust callers use it.
    init();
    let api = ascend_sys::Api::from_resolver(crate::resolve, "ascend-mock");
    let count = api.acl.aclrtGetDeviceCount().unwrap();
    let mut n = 0;
    // SAFETY: &mut n is a valid output location.
    ok(unsafe { count(&mut n) });
    assert_eq!(n, crate::config().devices);
    assert!(api.acl.aclrtMallocHost().is_ok());
}

#[test]
fn many_threads_drive_their_own_streams() {
    init();
    let workers: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let ctx = own_context(0);
                let s = new_stream();
                let n = 1 << 16;
                let dev = dev_alloc(n);
                let up = host_alloc(n);
                let down = host_alloc(n);
                for round in 0..20u8 {
                    bytes(up, n).fill(round ^ t as u8);
                    // SAFETY: live allocations of n bytes; synchronised below
                    // before the host touches them again.
                    unsafe {
                        ok(aclrtMemcpyAsync(
                            dev,
                            n,
                            up,
                            n,
                            ACL_MEMCPY_HOST_TO_DEVICE,
                            s,
                        ));
                        ok(aclrtMemcpyAsync(
                            down,
                            n,
                            dev,
                            n,
                            ACL_MEMCPY_DEVICE_TO_HOST,
                            s,
                        ));
                    }
                    sync(s);
                    assert!(bytes(down, n).iter().all(|&b| b == round ^ t as u8));
                }
                free(dev);
                free_host(up);
                free_host(down);
                destroy(s);
                drop_context(ctx);
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
}

static CALLBACK_HITS: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn count_callback(data: *mut c_void) {
    CALLBACK_HITS.fetch_add(data as usize, Ordering::SeqCst);
}

#[test]
fn report_threads_run_callbacks() {
    let ctx = own_context(0);
    let s = new_stream();
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let st = stop.clone();
    let reporter = std::thread::spawn(move || {
        tx.send(crate::callback::current_thread_id()).unwrap();
        let mut ran = 0;
        while !st.load(Ordering::SeqCst) {
            // SAFETY: plain integer argument.
            match unsafe { aclrtProcessReport(10) } {
                ACL_SUCCESS => ran += 1,
                ACL_ERROR_RT_REPORT_TIMEOUT | ACL_ERROR_RT_THREAD_SUBSCRIBE => {}
                other => panic!("aclrtProcessReport returned {other}: {:?}", take_message()),
            }
        }
        ran
    });
    let tid = rx.recv().unwrap();
    // SAFETY (whole block): live stream; count_callback ignores its data
    // pointer except as a number.
    unsafe {
        assert_eq!(
            aclrtLaunchCallback(
                Some(count_callback),
                3 as *mut c_void,
                ACL_CALLBACK_BLOCK,
                s
            ),
            ACL_ERROR_STREAM_NOT_SUBSCRIBE
        );
        ok(aclrtSubscribeReport(tid, s));
        assert_eq!(aclrtSubscribeReport(tid, s), ACL_ERROR_REPEAT_SUBSCRIBE);
        let before = CALLBACK_HITS.load(Ordering::SeqCst);
        ok(aclrtLaunchCallback(
            Some(count_callback),
            5 as *mut c_void,
            ACL_CALLBACK_BLOCK,
            s,
        ));
        ok(aclrtLaunchCallback(
            Some(count_callback),
            7 as *mut c_void,
            ACL_CALLBACK_BLOCK,
            s,
        ));
        sync(s);
        // Blocking callbacks have run by the time the stream is synchronised.
        assert_eq!(CALLBACK_HITS.load(Ordering::SeqCst) - before, 12);
        assert_eq!(
            aclrtLaunchCallback(Some(count_callback), std::ptr::null_mut(), 9, s),
            ACL_ERROR_INVALID_PARAM
        );
        assert_eq!(
            aclrtUnSubscribeReport(tid + 1, s),
            ACL_ERROR_STREAM_NOT_SUBSCRIBE
        );
        ok(aclrtUnSubscribeReport(tid, s));
        assert_eq!(aclrtProcessReport(0), ACL_ERROR_INVALID_PARAM);
    }
    stop.store(true, Ordering::SeqCst);
    assert_eq!(reporter.join().unwrap(), 2);
    destroy(s);
    drop_context(ctx);
}

/// A device-0 physical memory property with attribute `attr`.
fn phys_prop(device: u32, attr: aclrtMemAttr) -> aclrtPhysicalMemProp {
    aclrtPhysicalMemProp {
        handleType: ACL_MEM_HANDLE_TYPE_NONE,
        allocationType: ACL_MEM_ALLOCATION_TYPE_PINNED,
        memAttr: attr,
        location: aclrtMemLocation {
            id: device,
            type_: ACL_MEM_LOCATION_TYPE_DEVICE,
        },
        reserve: 0,
    }
}

const GRAN: usize = crate::memory::VMM_GRANULARITY;

#[test]
fn vmm_map_copy_unmap_remap() {
    let ctx = own_context(0);
    let s = new_stream();
    let mut prop = phys_prop(0, ACL_HBM_MEM_HUGE);
    // SAFETY (whole block): outputs are locals, pointers come from the mock
    // and host buffers outlive the synchronous copies.
    unsafe {
        let mut g = 0usize;
        ok(aclrtMemGetAllocationGranularity(
            &mut prop,
            ACL_RT_MEM_ALLOC_GRANULARITY_MINIMUM,
            &mut g,
        ));
        assert_eq!(g, GRAN);
        ok(aclrtMemGetAllocationGranularity(
            &mut prop,
            ACL_RT_MEM_ALLOC_GRANULARITY_RECOMMENDED,
            &mut g,
        ));
        assert_eq!(g, GRAN);

        let mut va = std::ptr::null_mut();
        ok(aclrtReserveMemAddress(
            &mut va,
            2 * GRAN,
            0,
            std::ptr::null_mut(),
            0,
        ));
        assert_eq!(va as usize % GRAN, 0);
        let (mut h1, mut h2) = (std::ptr::null_mut(), std::ptr::null_mut());
        let (free0, _) = crate::memory::mem_info(0);
        ok(aclrtMallocPhysical(&mut h1, GRAN, &prop, 0));
        ok(aclrtMallocPhysical(&mut h2, GRAN, &prop, 0));
        assert_eq!(crate::memory::mem_info(0).0, free0 - 2 * GRAN as u64);
        // Map both halves; the range is one contiguous device buffer.
        ok(aclrtMapMem(va, GRAN, 0, h1, 0));
        let hi = va.cast::<u8>().add(GRAN).cast::<c_void>();
        ok(aclrtMapMem(hi, GRAN, 0, h2, 0));
        let mut attr: aclrtPtrAttributes = std::mem::zeroed();
        ok(aclrtPointerGetAttributes(va, &mut attr));
        assert_eq!(attr.location.type_, ACL_MEM_LOCATION_TYPE_DEVICE);
        let n = 2 * GRAN;
        let src: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
        ok(aclrtMemcpy(
            va,
            n,
            src.as_ptr().cast(),
            n,
            ACL_MEMCPY_HOST_TO_DEVICE,
        ));
        let mut back = vec![0u8; n];
        ok(aclrtMemcpyAsync(
            back.as_mut_ptr().cast(),
            n,
            va,
            n,
            ACL_MEMCPY_DEVICE_TO_HOST,
            s,
        ));
        ok(aclrtSynchronizeStream(s));
        assert_eq!(back, src, "copies cross the mapping boundary");
        // A copy between a plain buffer and the mapped range.
        let d = dev_alloc(64);
        ok(aclrtMemcpy(d, 64, hi, 64, ACL_MEMCPY_DEVICE_TO_DEVICE));
        ok(aclrtMemset(hi, 64, 7, 64));

        // Unmap the upper half: access through it is a use-after-free.
        ok(aclrtUnmapMem(hi));
        assert_eq!(
            aclrtMemcpy(
                back.as_mut_ptr().cast(),
                16,
                hi,
                16,
                ACL_MEMCPY_DEVICE_TO_HOST
            ),
            ACL_ERROR_RT_PARAM_INVALID
        );
        let msg = take_message().unwrap();
        assert!(
            msg.starts_with("use-after-free") && msg.contains("unmapped part"),
            "{msg}"
        );
        // A copy running from the mapped half into the unmapped one is out
        // of bounds.
        assert_eq!(
            aclrtMemcpy(
                back.as_mut_ptr().cast(),
                n,
                va,
                n,
                ACL_MEMCPY_DEVICE_TO_HOST
            ),
            ACL_ERROR_RT_PARAM_INVALID
        );
        assert!(take_message().unwrap().starts_with("out of bounds"));

        // Remap: h1 moves to the upper half, h2 to the lower one; each
        // keeps its bytes.
        ok(aclrtUnmapMem(va));
        ok(aclrtMapMem(hi, GRAN, 0, h1, 0));
        ok(aclrtMapMem(va, GRAN, 0, h2, 0));
        let mut first = vec![0u8; 64];
        ok(aclrtMemcpy(
            first.as_mut_ptr().cast(),
            64,
            hi,
            64,
            ACL_MEMCPY_DEVICE_TO_HOST,
        ));
        assert_eq!(first, src[..64], "h1's bytes followed it");
        ok(aclrtMemcpy(
            first.as_mut_ptr().cast(),
            64,
            va,
            64,
            ACL_MEMCPY_DEVICE_TO_HOST,
        ));
        assert_eq!(first, vec![7u8; 64], "h2's bytes (the memset) followed it");

        // aclrtFree of mapped memory is refused.
        assert_eq!(aclrtFree(va), ACL_ERROR_INVALID_PARAM);
        assert!(take_message().unwrap().contains("aclrtUnmapMem"));

        ok(aclrtUnmapMem(va));
        ok(aclrtUnmapMem(hi));
        ok(aclrtFreePhysical(h1));
        ok(aclrtFreePhysical(h2));
        assert_eq!(
            crate::memory::mem_info(0).0,
            free0 - crate::memory::charged_size(64, false).unwrap() as u64
        );
        ok(aclrtReleaseMemAddress(va));
        ok(aclrtFree(d));
        ok(aclrtDestroyStream(s));
    }
    drop_context(ctx);
}

#[test]
fn vmm_bad_arguments_are_refused() {
    let ctx = own_context(0);
    let prop = phys_prop(0, ACL_HBM_MEM_HUGE);
    let null: *mut c_void = std::ptr::null_mut();
    let expect = |code: aclError, want: aclError, words: &str| {
        let msg = take_message().unwrap_or_default();
        assert_eq!(code, want, "{msg}");
        assert!(msg.contains(words), "{msg:?} lacks {words:?}");
    };
    // SAFETY (whole block): every pointer is NULL, a local, or from the mock;
    // the calls under test refuse the bad ones.
    unsafe {
        let mut va = null;
        let mut g = 0usize;
        let mut p2 = prop;
        expect(
            aclrtMemGetAllocationGranularity(&mut p2, 7, &mut g),
            ACL_ERROR_INVALID_PARAM,
            "",
        );
        expect(
            aclrtMemGetAllocationGranularity(null.cast(), 0, &mut g),
            ACL_ERROR_INVALID_PARAM,
            "",
        );
        let mut huge = phys_prop(0, ACL_MEM_HUGE1G);
        ok(aclrtMemGetAllocationGranularity(&mut huge, 0, &mut g));
        assert_eq!(g, crate::memory::VMM_GRANULARITY_1G);

        expect(
            aclrtReserveMemAddress(null.cast(), GRAN, 0, null, 0),
            ACL_ERROR_INVALID_PARAM,
            "",
        );
        expect(
            aclrtReserveMemAddress(&mut va, 0, 0, null, 0),
            ACL_ERROR_INVALID_PARAM,
            "",
        );
        expect(
            aclrtReserveMemAddress(&mut va, GRAN, 64, null, 0),
            ACL_ERROR_INVALID_PARAM,
            "",
        );
        expect(
            aclrtReserveMemAddress(&mut va, GRAN, 0, null, 2),
            ACL_ERROR_INVALID_PARAM,
            "",
        );
        expect(
            aclrtReserveMemAddress(&mut va, GRAN, 0, 0x1000_0000usize as *mut c_void, 0),
            ACL_ERROR_RT_MEMORY_ALLOCATION,
            "",
        );
        // A size that is not a multiple of the granularity is rounded up.
        ok(aclrtReserveMemAddress(&mut va, GRAN + 1, 0, null, 0));

        let mut h = null;
        expect(
            aclrtMallocPhysical(null.cast(), GRAN, &prop, 0),
            ACL_ERROR_INVALID_PARAM,
            "",
        );
        expect(
            aclrtMallocPhysical(&mut h, GRAN + 4096, &prop, 0),
            ACL_ERROR_INVALID_PARAM,
            "",
        );
        expect(
            aclrtMallocPhysical(&mut h, 0, &prop, 0),
            ACL_ERROR_INVALID_PARAM,
            "",
        );
        expect(
            aclrtMallocPhysical(&mut h, GRAN, std::ptr::null(), 0),
            ACL_ERROR_INVALID_PARAM,
            "",
        );
        expect(
            aclrtMallocPhysical(&mut h, GRAN, &prop, 1),
            ACL_ERROR_INVALID_PARAM,
            "",
        );
        let mut bad = prop;
        bad.handleType = 2;
        expect(
            aclrtMallocPhysical(&mut h, GRAN, &bad, 0),
            ACL_ERROR_INVALID_PARAM,
            "",
        );
        bad = prop;
        bad.location.type_ = ACL_MEM_LOCATION_TYPE_HOST;
        expect(
            aclrtMallocPhysical(&mut h, GRAN, &bad, 0),
            ACL_ERROR_INVALID_PARAM,
            "",
        );
        bad = prop;
        bad.location.id = 99;
        expect(
            aclrtMallocPhysical(&mut h, GRAN, &bad, 0),
            ACL_ERROR_RT_INVALID_DEVICEID,
            "",
        );
        let too_big = (crate::memory::mem_info(0).1 as usize / GRAN + 1) * GRAN;
        expect(
            aclrtMallocPhysical(&mut h, too_big, &prop, 0),
            ACL_ERROR_RT_MEMORY_ALLOCATION,
            "",
        );
        ok(aclrtMallocPhysical(&mut h, GRAN, &prop, 0));

        let base = va as usize;
        let at = |off: usize| (base + off) as *mut c_void;
        expect(
            aclrtMapMem(null, GRAN, 0, h, 0),
            ACL_ERROR_INVALID_PARAM,
            "",
        );
        expect(
            aclrtMapMem(va, GRAN, 0, null, 0),
            ACL_ERROR_INVALID_PARAM,
            "",
        );
        expect(
            aclrtMapMem(va, GRAN, 4096, h, 0),
            ACL_ERROR_INVALID_PARAM,
            "",
        );
        expect(aclrtMapMem(va, GRAN, 0, h, 1), ACL_ERROR_INVALID_PARAM, "");
        expect(
            aclrtMapMem(va, 2 * GRAN, 0, h, 0),
            ACL_ERROR_INVALID_PARAM,
            "size",
        );
        expect(
            aclrtMapMem(at(4096), GRAN, 0, h, 0),
            ACL_ERROR_INVALID_PARAM,
            "aligned",
        );
        expect(
            aclrtMapMem(at(4 * GRAN), GRAN, 0, h, 0),
            ACL_ERROR_INVALID_PARAM,
            "reserved",
        );
        let host = [0u8; 16];
        expect(
            aclrtMapMem(host.as_ptr() as *mut c_void, GRAN, 0, h, 0),
            ACL_ERROR_INVALID_PARAM,
            "",
        );
        expect(
            aclrtMapMem(va, GRAN, 0, 0x1234usize as aclrtDrvMemHandle, 0),
            ACL_ERROR_INVALID_PARAM,
            "",
        );
        ok(aclrtMapMem(va, GRAN, 0, h, 0));
        // Mapped twice, or over a mapping, or freed while mapped: refused.
        expect(
            aclrtMapMem(at(GRAN), GRAN, 0, h, 0),
            ACL_ERROR_INVALID_PARAM,
            "already mapped",
        );
        let mut h2 = null;
        ok(aclrtMallocPhysical(&mut h2, GRAN, &prop, 0));
        expect(
            aclrtMapMem(va, GRAN, 0, h2, 0),
            ACL_ERROR_INVALID_PARAM,
            "overlaps",
        );
        // One range binds one device's memory.
        let mut h1d = null;
        ok(aclrtMallocPhysical(
            &mut h1d,
            GRAN,
            &phys_prop(1, ACL_HBM_MEM_HUGE),
            0,
        ));
        expect(
            aclrtMapMem(at(GRAN), GRAN, 0, h1d, 0),
            ACL_ERROR_INVALID_PARAM,
            "device",
        );
        ok(aclrtFreePhysical(h1d));
        expect(
            aclrtFreePhysical(h),
            ACL_ERROR_INVALID_PARAM,
            "still mapped",
        );
        expect(
            aclrtReleaseMemAddress(va),
            ACL_ERROR_INVALID_PARAM,
            "aclrtUnmapMem first",
        );
        expect(
            aclrtUnmapMem(at(4096)),
            ACL_ERROR_INVALID_PARAM,
            "not the start",
        );
        expect(aclrtUnmapMem(null), ACL_ERROR_INVALID_PARAM, "");
        ok(aclrtUnmapMem(va));
        expect(
            aclrtUnmapMem(va),
            ACL_ERROR_INVALID_PARAM,
            "not the start of a mapping",
        );
        ok(aclrtFreePhysical(h));
        ok(aclrtFreePhysical(h2));
        expect(
            aclrtFreePhysical(h),
            ACL_ERROR_INVALID_PARAM,
            "already freed",
        );
        expect(aclrtFreePhysical(null), ACL_ERROR_INVALID_PARAM, "");
        ok(aclrtReleaseMemAddress(va));
        expect(
            aclrtReleaseMemAddress(va),
            ACL_ERROR_INVALID_PARAM,
            "already released",
        );
        expect(
            aclrtReleaseMemAddress(at(4096)),
            ACL_ERROR_INVALID_PARAM,
            "",
        );
    }
    drop_context(ctx);
}

#[test]
fn vmm_leaks_are_reported_at_finalize() {
    run_child("vmm-leaks", &[]);
}
