//! Process initialisation, error messages, versions, data types and the
//! SoC name.
//!
//! The functions without an error channel (`aclGetRecentErrMsg`,
//! `aclrtPeekAtLastError`, `aclrtGetLastError`, `aclDataTypeSize`, the
//! float16 conversions) are counted like every call but never fail by
//! injection (see `fault`).

use std::collections::HashMap;
use std::ffi::{CStr, CString, c_char};
use std::panic::catch_unwind;
use std::sync::Mutex;

use ascend_sys::*;

use super::write_out;
use crate::config;
use crate::error::{self, MockError};
use crate::gate::{api_call, api_call_value, count_call};
use crate::runtime;
use crate::sanitizer;

/// The CANN package version the mock reports.
pub const MOCK_PACKAGE_VERSION: &str = "8.1.RC1";
/// [`MOCK_PACKAGE_VERSION`] as `aclsysGetVersionNum` encodes it
/// (major * 10^7 + minor * 10^5 + release-candidate * 10^3).
pub const MOCK_PACKAGE_VERSION_NUM: i32 = 8 * 10_000_000 + 100_000 + 1_000;

/// Initialises AscendCL. `configPath` may be NULL; otherwise it must name a
/// readable file (its content is not interpreted by the mock).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclInit(configPath: *const c_char) -> aclError {
    api_call("aclInit", || {
        if !configPath.is_null() {
            // SAFETY: a non-NULL configPath is a NUL-terminated string by the
            // aclInit contract.
            let path = unsafe { CStr::from_ptr(configPath) }
                .to_string_lossy()
                .into_owned();
            if !path.is_empty() && std::fs::metadata(&path).is_err() {
                return Err(MockError::new(
                    ACL_ERROR_INVALID_FILE,
                    format!("config file {path:?} cannot be read"),
                ));
            }
        }
        sanitizer::reload_env().map_err(|why| MockError::new(ACL_ERROR_INVALID_PARAM, why))?;
        sanitizer::race::install();
        runtime::initialize()
    })
}

/// Releases every resource; the mock may be initialised again afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclFinalize() -> aclError {
    api_call("aclFinalize", runtime::finalize)
}

/// Fetches and clears this thread's most recent error message (NULL when
/// there is none). The pointer is valid until the next call on this thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclGetRecentErrMsg() -> *const c_char {
    count_call("aclGetRecentErrMsg");
    catch_unwind(error::fetch_recent_message).unwrap_or(std::ptr::null())
}

/// The AscendCL interface version (1.17.0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtGetVersion(
    majorVersion: *mut i32,
    minorVersion: *mut i32,
    patchVersion: *mut i32,
) -> aclError {
    api_call("aclrtGetVersion", || {
        for p in [majorVersion, minorVersion, patchVersion] {
            if p.is_null() {
                return Err(MockError::new(
                    ACL_ERROR_INVALID_PARAM,
                    "a version pointer is NULL",
                ));
            }
        }
        // SAFETY: all three pointers were checked non-NULL and are valid for
        // writes by the caller's contract.
        unsafe {
            write_out(majorVersion, ACL_MAJOR_VERSION, "majorVersion")?;
            write_out(minorVersion, ACL_MINOR_VERSION, "minorVersion")?;
            write_out(patchVersion, ACL_PATCH_VERSION, "patchVersion")
        }
    })
}

fn check_pkg_name(pkgName: *mut c_char) -> Result<(), MockError> {
    if pkgName.is_null() {
        return Err(MockError::new(ACL_ERROR_INVALID_PARAM, "pkgName is NULL"));
    }
    Ok(())
}

/// Writes the mock's package version string (any package name).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclsysGetVersionStr(
    pkgName: *mut c_char,
    versionStr: *mut c_char,
) -> aclError {
    api_call("aclsysGetVersionStr", || {
        check_pkg_name(pkgName)?;
        if versionStr.is_null() {
            return Err(MockError::new(
                ACL_ERROR_INVALID_PARAM,
                "versionStr is NULL",
            ));
        }
        let bytes = MOCK_PACKAGE_VERSION.as_bytes();
        // SAFETY: versionStr is non-NULL and, by contract, has room for
        // ACL_PKG_VERSION_MAX_SIZE (128) bytes; we write len + 1 <= 128.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), versionStr.cast::<u8>(), bytes.len());
            versionStr.add(bytes.len()).write(0);
        }
        Ok(())
    })
}

/// Writes the mock's package version as a number (any package name).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclsysGetVersionNum(
    pkgName: *mut c_char,
    versionNum: *mut i32,
) -> aclError {
    api_call("aclsysGetVersionNum", || {
        check_pkg_name(pkgName)?;
        // SAFETY: versionNum is NULL or valid for writes (caller contract).
        unsafe { write_out(versionNum, MOCK_PACKAGE_VERSION_NUM, "versionNum") }
    })
}

/// Element size of `dataType` in bytes; 0 for undefined, string and
/// sub-byte types.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclDataTypeSize(dataType: aclDataType) -> usize {
    count_call("aclDataTypeSize");
    ascend_sys::dtype::size_of(dataType)
}

/// IEEE half to single precision.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclFloat16ToFloat(value: aclFloat16) -> f32 {
    count_call("aclFloat16ToFloat");
    half::f16::from_bits(value).to_f32()
}

/// Single to IEEE half precision (round to nearest even).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclFloatToFloat16(value: f32) -> aclFloat16 {
    count_call("aclFloatToFloat16");
    half::f16::from_f32(value).to_bits()
}

/// The configured SoC name; the string lives for the whole process.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtGetSocName() -> *const c_char {
    static NAMES: Mutex<Option<HashMap<String, &'static CStr>>> = Mutex::new(None);
    api_call_value("aclrtGetSocName", std::ptr::null(), || {
        let name = config::config().soc_name;
        let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
        let table = names.get_or_insert_with(HashMap::new);
        let entry = match table.get(&name) {
            Some(s) => *s,
            None => {
                let c = CString::new(name.clone()).map_err(|_| {
                    MockError::new(ACL_ERROR_INTERNAL_ERROR, "SoC name contains NUL")
                })?;
                // One leaked string per distinct name, so returned pointers
                // stay valid forever.
                let leaked: &'static CStr = Box::leak(c.into_boxed_c_str());
                table.insert(name, leaked);
                leaked
            }
        };
        Ok(entry.as_ptr())
    })
}

fn check_level(level: aclrtLastErrLevel) -> aclError {
    if level != ACL_RT_THREAD_LEVEL {
        error::set_message(&format!(
            "aclrtGetLastError: level {level} is not supported (only ACL_RT_THREAD_LEVEL)"
        ));
        return ACL_ERROR_INVALID_PARAM;
    }
    ACL_SUCCESS
}

/// The code of this thread's most recent failed call, kept.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtPeekAtLastError(level: aclrtLastErrLevel) -> aclError {
    count_call("aclrtPeekAtLastError");
    match check_level(level) {
        ACL_SUCCESS => error::last_error(false),
        code => code,
    }
}

/// The code of this thread's most recent failed call, cleared.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtGetLastError(level: aclrtLastErrLevel) -> aclError {
    count_call("aclrtGetLastError");
    match check_level(level) {
        ACL_SUCCESS => error::last_error(true),
        code => code,
    }
}
