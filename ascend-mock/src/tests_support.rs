//! Helpers shared by the unit tests: one process runs every test, so the
//! mock is initialised once and never finalised here (finalisation is
//! tested in a child process, see `tests::init_finalize_codes`).

use std::ffi::CStr;

use ascend_sys::*;

use crate::exports::*;

/// Initialises the mock, tolerating an earlier initialisation.
pub fn init() {
    // SAFETY: aclInit accepts a NULL config path.
    let code = unsafe { aclInit(std::ptr::null()) };
    assert!(
        code == ACL_SUCCESS || code == ACL_ERROR_REPEAT_INITIALIZE,
        "aclInit returned {code}"
    );
    let _ = take_message();
}

/// Fetches this thread's recent error message.
pub fn take_message() -> Option<String> {
    // SAFETY: no arguments; the result is NULL or a valid C string.
    let p = unsafe { aclGetRecentErrMsg() };
    if p.is_null() {
        None
    } else {
        // SAFETY: non-NULL results are NUL-terminated and live until the
        // next call on this thread.
        Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }
}

/// Asserts `code == ACL_SUCCESS`, showing the message otherwise.
#[track_caller]
pub fn ok(code: aclError) {
    assert_eq!(code, ACL_SUCCESS, "failed: {:?}", take_message());
}

/// Creates an explicit context on `device` (current on this thread) so a
/// test does not share the default context with others.
pub fn own_context(device: i32) -> aclrtContext {
    init();
    let mut ctx = std::ptr::null_mut();
    // SAFETY: &mut ctx is a valid output location.
    ok(unsafe { aclrtCreateContext(&mut ctx, device) });
    ctx
}

/// Destroys a context made by [`own_context`].
pub fn drop_context(ctx: aclrtContext) {
    // SAFETY: ctx came from aclrtCreateContext.
    ok(unsafe { aclrtDestroyContext(ctx) });
}

/// Creates a stream in the current context.
pub fn new_stream() -> aclrtStream {
    let mut s = std::ptr::null_mut();
    // SAFETY: &mut s is a valid output location.
    ok(unsafe { aclrtCreateStream(&mut s) });
    s
}

/// Allocates `size` bytes of device memory on the current device.
pub fn dev_alloc(size: usize) -> *mut std::ffi::c_void {
    let mut p = std::ptr::null_mut();
    // SAFETY: &mut p is a valid output location.
    ok(unsafe { aclrtMalloc(&mut p, size, ACL_MEM_MALLOC_HUGE_FIRST) });
    p
}

/// Allocates `size` bytes of pinned host memory.
pub fn host_alloc(size: usize) -> *mut std::ffi::c_void {
    let mut p = std::ptr::null_mut();
    // SAFETY: &mut p is a valid output location.
    ok(unsafe { aclrtMallocHost(&mut p, size) });
    p
}
