//! The symbol table: [`resolve`] maps each exported C name to its address,
//! [`exported_symbols`] lists the names.
//!
//! Each entry is written `library::name`; the macro casts the function to
//! `ascend_sys::pfn::<library>::<name>` before taking its address, so a
//! signature that drifts from the header fails to compile. Functions are
//! reached as `crate::exports::<name>`; operator modules re-export theirs
//! there and add entries under `nnopbase::` or `opapi::`.

use std::ffi::c_void;

macro_rules! symbol_table {
    ($($lib:ident :: $name:ident),* $(,)?) => {
        /// The address of the exported function `name`, or null when the
        /// mock does not implement it.
        pub fn resolve(name: &str) -> *mut c_void {
            match name {
                $(
                    stringify!($name) => crate::exports::$name as ascend_sys::pfn::$lib::$name as *mut c_void,
                )*
                _ => std::ptr::null_mut(),
            }
        }

        /// The names of every function the mock exports.
        pub fn exported_symbols() -> &'static [&'static str] {
            &[$(stringify!($name)),*]
        }
    };
}

symbol_table! {
    ascendcl::aclInit,
    ascendcl::aclFinalize,
    ascendcl::aclGetRecentErrMsg,
    ascendcl::aclrtGetVersion,
    ascendcl::aclsysGetVersionStr,
    ascendcl::aclsysGetVersionNum,
    ascendcl::aclDataTypeSize,
    ascendcl::aclFloat16ToFloat,
    ascendcl::aclFloatToFloat16,
    ascendcl::aclrtGetSocName,
    ascendcl::aclrtPeekAtLastError,
    ascendcl::aclrtGetLastError,
    ascendcl::aclrtGetDeviceCount,
    ascendcl::aclrtSetDevice,
    ascendcl::aclrtResetDevice,
    ascendcl::aclrtResetDeviceForce,
    ascendcl::aclrtGetDevice,
    ascendcl::aclrtGetRunMode,
    ascendcl::aclrtGetDeviceInfo,
    ascendcl::aclrtQueryDeviceStatus,
    ascendcl::aclrtSynchronizeDevice,
    ascendcl::aclrtSynchronizeDeviceWithTimeout,
    ascendcl::aclrtCreateContext,
    ascendcl::aclrtDestroyContext,
    ascendcl::aclrtSetCurrentContext,
    ascendcl::aclrtGetCurrentContext,
    ascendcl::aclrtCtxGetCurrentDefaultStream,
    ascendcl::aclrtDeviceCanAccessPeer,
    ascendcl::aclrtDeviceEnablePeerAccess,
    ascendcl::aclrtDeviceDisablePeerAccess,
    ascendcl::aclrtCreateStream,
    ascendcl::aclrtCreateStreamWithConfig,
    ascendcl::aclrtDestroyStream,
    ascendcl::aclrtDestroyStreamForce,
    ascendcl::aclrtSynchronizeStream,
    ascendcl::aclrtSynchronizeStreamWithTimeout,
    ascendcl::aclrtStreamQuery,
    ascendcl::aclrtStreamWaitEvent,
    ascendcl::aclrtStreamGetId,
    ascendcl::aclrtSetStreamFailureMode,
    ascendcl::aclrtCreateEvent,
    ascendcl::aclrtCreateEventWithFlag,
    ascendcl::aclrtCreateEventExWithFlag,
    ascendcl::aclrtDestroyEvent,
    ascendcl::aclrtRecordEvent,
    ascendcl::aclrtResetEvent,
    ascendcl::aclrtQueryEvent,
    ascendcl::aclrtQueryEventStatus,
    ascendcl::aclrtQueryEventWaitStatus,
    ascendcl::aclrtSynchronizeEvent,
    ascendcl::aclrtSynchronizeEventWithTimeout,
    ascendcl::aclrtEventElapsedTime,
    ascendcl::aclrtEventGetTimestamp,
    ascendcl::aclrtMalloc,
    ascendcl::aclrtMallocAlign32,
    ascendcl::aclrtMallocHost,
    ascendcl::aclrtFree,
    ascendcl::aclrtFreeHost,
    ascendcl::aclrtMemcpy,
    ascendcl::aclrtMemcpyAsync,
    ascendcl::aclrtMemcpy2d,
    ascendcl::aclrtMemcpy2dAsync,
    ascendcl::aclrtMemset,
    ascendcl::aclrtMemsetAsync,
    ascendcl::aclrtGetMemInfo,
    ascendcl::aclrtPointerGetAttributes,
    ascendcl::aclrtLaunchHostFunc,
    ascendcl::aclrtSubscribeReport,
    ascendcl::aclrtUnSubscribeReport,
    ascendcl::aclrtLaunchCallback,
    ascendcl::aclrtProcessReport,
}
