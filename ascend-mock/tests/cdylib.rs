//! The C shared library `libascend_mock.so`, loaded with `dlopen` through
//! `ascend_sys::Api::load_single` as a program built for CANN would load
//! `libascendcl.so`: every symbol of the table is exported, and a short
//! AscendCL program runs on it. The library is a separate instance of the
//! mock (its own statics), so this test may finalise it.

use std::ffi::{CStr, c_void};
use std::path::PathBuf;

use ascend_sys::*;

fn library() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let deps = exe.parent().expect("deps directory");
    [
        deps.to_path_buf(),
        deps.parent().expect("profile directory").to_path_buf(),
    ]
    .into_iter()
    .map(|d| d.join("libascend_mock.so"))
    .find(|p| p.exists())
    .expect("cargo builds libascend_mock.so next to the test binary")
}

#[test]
fn shared_library_exports_and_runs() {
    let api = Api::load_single(&library()).expect("load libascend_mock.so");
    for name in ascend_mock::exported_symbols() {
        assert!(
            api.acl.has(name)
                || api.nnopbase.has(name)
                || api.opapi.has(name)
                || api.hccl.has(name),
            "{name} is not exported by the shared library"
        );
    }
    let acl = &api.acl;
    // SAFETY (whole block): the function pointers come from the mock's
    // library and match our declarations; every pointer passed is NULL or
    // a valid local or allocation of the stated size.
    unsafe {
        assert_eq!(acl.aclInit().unwrap()(std::ptr::null()), ACL_SUCCESS);
        assert_eq!(acl.aclrtSetDevice().unwrap()(0), ACL_SUCCESS);
        let mut stream = std::ptr::null_mut();
        assert_eq!(acl.aclrtCreateStream().unwrap()(&mut stream), ACL_SUCCESS);
        let n = 256usize;
        let (mut dev, mut host) = (
            std::ptr::null_mut::<c_void>(),
            std::ptr::null_mut::<c_void>(),
        );
        assert_eq!(
            acl.aclrtMalloc().unwrap()(&mut dev, n, ACL_MEM_MALLOC_HUGE_FIRST),
            ACL_SUCCESS
        );
        assert_eq!(acl.aclrtMallocHost().unwrap()(&mut host, n), ACL_SUCCESS);
        let src: Vec<u8> = (0..n as u32).map(|i| (i * 3) as u8).collect();
        let memcpy_async = acl.aclrtMemcpyAsync().unwrap();
        assert_eq!(
            memcpy_async(
                dev,
                n,
                src.as_ptr().cast(),
                n,
                ACL_MEMCPY_HOST_TO_DEVICE,
                stream
            ),
            ACL_SUCCESS
        );
        assert_eq!(
            memcpy_async(host, n, dev, n, ACL_MEMCPY_DEVICE_TO_HOST, stream),
            ACL_SUCCESS
        );
        assert_eq!(acl.aclrtSynchronizeStream().unwrap()(stream), ACL_SUCCESS);
        assert_eq!(std::slice::from_raw_parts(host.cast::<u8>(), n), &src[..]);
        // Errors carry a message through the C interface.
        let code = acl.aclrtMemcpy().unwrap()(dev, 8, host, 16, ACL_MEMCPY_HOST_TO_DEVICE);
        assert_eq!(code, ACL_ERROR_RT_PARAM_INVALID);
        let msg = acl.aclGetRecentErrMsg().unwrap()();
        assert!(!msg.is_null());
        assert_eq!(
            CStr::from_ptr(msg).to_str().unwrap(),
            "aclrtMemcpy: destMax 8 is smaller than count 16"
        );
        assert!(acl.aclGetRecentErrMsg().unwrap()().is_null());
        assert_eq!(acl.aclrtFree().unwrap()(dev), ACL_SUCCESS);
        assert_eq!(acl.aclrtFreeHost().unwrap()(host), ACL_SUCCESS);
        assert_eq!(acl.aclrtDestroyStream().unwrap()(stream), ACL_SUCCESS);
        assert_eq!(acl.aclrtResetDevice().unwrap()(0), ACL_SUCCESS);
        assert_eq!(acl.aclFinalize().unwrap()(), ACL_SUCCESS);
        assert_eq!(acl.aclFinalize().unwrap()(), ACL_ERROR_REPEAT_FINALIZE);
    }
}
