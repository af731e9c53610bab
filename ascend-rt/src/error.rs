//! The crate's error type and the named status codes of AscendCL, aclnn and
//! HCCL.
//!
//! Invariants:
//! - A failing C call is always reported with the name of the function that
//!   failed, its numeric code, the code's name (or `unknown code` for values
//!   the tables do not list) and the text `aclGetRecentErrMsg` returned right
//!   after the failure (empty when the runtime had none).
//! - The code enums are generated from `ascend-sys`'s lists
//!   (`for_each_acl_error!`, `for_each_aclnn_error!`,
//!   `for_each_hccl_result!`), so they cannot drift from the declarations.
//!   Each maps every raw value to exactly one variant: a listed value to its
//!   named variant, anything else to `Other(raw)`.

use std::fmt;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Defines a code enum from a `NAME = value` list: the named variants, an
/// `Other` variant for unlisted values, and `from_raw` / `raw` / `name`.
macro_rules! code_enum {
    (
        $(#[$meta:meta])*
        $enum:ident, $raw:ty, $what:literal, { $($name:ident = $value:literal),* $(,)? }
    ) => {
        $(#[$meta])*
        #[allow(non_camel_case_types)]
        #[non_exhaustive]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $enum {
            $(
                #[doc = concat!("`", stringify!($name), "` (", stringify!($value), ").")]
                $name,
            )*
            #[doc = concat!("A ", $what, " value that has no name in our tables.")]
            Other($raw),
        }

        impl $enum {
            /// The variant for a raw value; unlisted values become `Other`.
            pub fn from_raw(raw: $raw) -> Self {
                match raw {
                    $($value => $enum::$name,)*
                    other => $enum::Other(other),
                }
            }

            /// The raw value, as the C API returns it.
            pub fn raw(self) -> $raw {
                match self {
                    $($enum::$name => $value,)*
                    $enum::Other(raw) => raw,
                }
            }

            /// The constant's name (`unknown code` for `Other`).
            pub fn name(self) -> &'static str {
                match self {
                    $($enum::$name => stringify!($name),)*
                    $enum::Other(_) => "unknown code",
                }
            }

            /// Every named variant, in the order of the C declarations.
            pub const ALL: &'static [$enum] = &[$($enum::$name),*];
        }

        impl fmt::Display for $enum {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{} {}", self.raw(), self.name())
            }
        }
    };
}

macro_rules! acl_code_list {
    ($($list:tt)*) => {
        code_enum! {
            /// An AscendCL status (`aclError`): the `ACL_ERROR_*` codes of
            /// `acl_base.h` and the `ACL_ERROR_RT_*` runtime codes.
            AclCode, i32, "aclError", { $($list)* }
        }
    };
}
ascend_sys::for_each_acl_error!(acl_code_list);

macro_rules! aclnn_code_list {
    ($($list:tt)*) => {
        code_enum! {
            /// An aclnn operator status (`aclnnStatus`, `ACLNN_ERR_*`).
            AclnnCode, i32, "aclnnStatus", { $($list)* }
        }
    };
}
ascend_sys::for_each_aclnn_error!(aclnn_code_list);

macro_rules! hccl_code_list {
    ($($list:tt)*) => {
        code_enum! {
            /// An HCCL result (`HcclResult`, `HCCL_E_*`).
            HcclCode, u32, "HcclResult", { $($list)* }
        }
    };
}
ascend_sys::for_each_hccl_result!(hccl_code_list);

/// Shows an empty runtime message as such rather than as nothing.
struct Message<'a>(&'a str);

impl fmt::Display for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("(no message from the runtime)")
        } else {
            f.write_str(self.0)
        }
    }
}

/// Everything that can go wrong in this crate.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An AscendCL call returned a non-zero `aclError`.
    #[error("{api} failed: {code}: {}", Message(.message))]
    Acl {
        /// The C function that failed, e.g. `aclrtMalloc`.
        api: &'static str,
        /// Its status.
        code: AclCode,
        /// `aclGetRecentErrMsg` right after the failure (may be empty).
        message: String,
    },
    /// An aclnn call returned a non-zero `aclnnStatus`.
    #[error("{api} failed: {code}: {}", Message(.message))]
    Aclnn {
        /// The C function that failed.
        api: &'static str,
        /// Its status.
        code: AclnnCode,
        /// `aclGetRecentErrMsg` right after the failure (may be empty).
        message: String,
    },
    /// An HCCL call returned a non-zero `HcclResult`.
    #[error("{api} failed: {code}: {}", Message(.message))]
    Hccl {
        /// The C function that failed.
        api: &'static str,
        /// Its result.
        code: HcclCode,
        /// `HcclGetErrorString` or `aclGetRecentErrMsg` text (may be empty).
        message: String,
    },
    /// A library or one of its symbols could not be found (the error lists
    /// every path tried, or names the missing symbol and its library).
    #[error(transparent)]
    Load(#[from] ascend_sys::LoadError),
    /// A C function returned a null pointer where a value was expected.
    #[error("{api} returned null: {}", Message(.message))]
    NullResult {
        /// The C function.
        api: &'static str,
        /// `aclGetRecentErrMsg` right after the call (may be empty).
        message: String,
    },
    /// An argument was rejected in Rust before reaching the runtime.
    #[error("invalid argument to {api}: {reason}")]
    InvalidArgument {
        /// The Rust function that rejected it, e.g. `DeviceBuffer::copy_from_host`.
        api: &'static str,
        /// What is wrong and why.
        reason: String,
    },
    /// The requested backend is not part of this build.
    #[error("backend {backend} is not available: {reason}")]
    BackendUnavailable {
        /// The backend asked for.
        backend: &'static str,
        /// Why it cannot be used (for example the feature that is off).
        reason: String,
    },
    /// `ASCEND_RT_BACKEND` holds something we cannot use.
    #[error("invalid ASCEND_RT_BACKEND value {value:?}: {reason}")]
    InvalidBackendSetting {
        /// The value found.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A second, different backend was requested after one was initialised.
    #[error(
        "the {active} backend is already initialised in this process; cannot switch to {requested}"
    )]
    BackendAlreadyChosen {
        /// The backend in use.
        active: String,
        /// The backend asked for now.
        requested: String,
    },
}

impl Error {
    /// The AscendCL code, when this is an AscendCL failure.
    pub fn acl_code(&self) -> Option<AclCode> {
        match self {
            Error::Acl { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The C function that failed, when a C call failed.
    pub fn api(&self) -> Option<&'static str> {
        match self {
            Error::Acl { api, .. }
            | Error::Aclnn { api, .. }
            | Error::Hccl { api, .. }
            | Error::NullResult { api, .. } => Some(api),
            _ => None,
        }
    }

    /// The runtime's message, when one was captured.
    pub fn message(&self) -> Option<&str> {
        match self {
            Error::Acl { message, .. }
            | Error::Aclnn { message, .. }
            | Error::Hccl { message, .. }
            | Error::NullResult { message, .. } => Some(message),
            _ => None,
        }
    }

    pub(crate) fn invalid(api: &'static str, reason: impl Into<String>) -> Error {
        Error::InvalidArgument {
            api,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acl_codes_round_trip_and_have_their_constant_names() {
        assert_eq!(
            AclCode::from_raw(ascend_sys::ACL_ERROR_RT_MEMORY_ALLOCATION),
            AclCode::ACL_ERROR_RT_MEMORY_ALLOCATION
        );
        assert_eq!(AclCode::ACL_ERROR_RT_CONTEXT_NULL.raw(), 107002);
        assert_eq!(
            AclCode::ACL_ERROR_RT_CONTEXT_NULL.name(),
            "ACL_ERROR_RT_CONTEXT_NULL"
        );
        for code in AclCode::ALL {
            assert_eq!(AclCode::from_raw(code.raw()), *code, "{}", code.name());
            assert!(code.name().starts_with("ACL_"), "{}", code.name());
        }
        assert!(AclCode::ALL.len() > 100);
    }

    #[test]
    fn unknown_codes_keep_their_value() {
        let c = AclCode::from_raw(123_456);
        assert_eq!(c, AclCode::Other(123_456));
        assert_eq!(c.raw(), 123_456);
        assert_eq!(c.name(), "unknown code");
        assert_eq!(c.to_string(), "123456 unknown code");
    }

    #[test]
    fn aclnn_and_hccl_codes_are_named() {
        assert_eq!(
            AclnnCode::from_raw(561103),
            AclnnCode::ACLNN_ERR_INNER_NULLPTR
        );
        assert_eq!(AclnnCode::ACLNN_ERR_PARAM_INVALID.raw(), 161002);
        assert_eq!(HcclCode::from_raw(9), HcclCode::HCCL_E_TIMEOUT);
        assert_eq!(HcclCode::HCCL_E_TIMEOUT.name(), "HCCL_E_TIMEOUT");
        assert_eq!(HcclCode::from_raw(999), HcclCode::Other(999));
    }

    #[test]
    fn acl_failure_displays_on_one_line() {
        let e = Error::Acl {
            api: "aclrtMalloc",
            code: AclCode::from_raw(207001),
            message: "out of device memory: 64 MiB in use".into(),
        };
        assert_eq!(
            e.to_string(),
            "aclrtMalloc failed: 207001 ACL_ERROR_RT_MEMORY_ALLOCATION: out of device memory: 64 MiB in use"
        );
        assert_eq!(e.acl_code(), Some(AclCode::ACL_ERROR_RT_MEMORY_ALLOCATION));
        assert_eq!(e.api(), Some("aclrtMalloc"));
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn empty_messages_are_shown_as_missing() {
        let e = Error::Acl {
            api: "aclrtSetDevice",
            code: AclCode::from_raw(107001),
            message: String::new(),
        };
        assert_eq!(
            e.to_string(),
            "aclrtSetDevice failed: 107001 ACL_ERROR_RT_INVALID_DEVICEID: (no message from the runtime)"
        );
    }

    #[test]
    fn other_variants_explain_themselves() {
        let e = Error::invalid(
            "DeviceBuffer::copy_from_host",
            "source has 3 elements but the buffer holds 4",
        );
        assert_eq!(
            e.to_string(),
            "invalid argument to DeviceBuffer::copy_from_host: source has 3 elements but the buffer holds 4"
        );
        let missing: Error = ascend_sys::LoadError::MissingSymbol {
            symbol: "aclrtMalloc",
            library: "test".into(),
        }
        .into();
        assert!(missing.to_string().contains("aclrtMalloc"), "{missing}");
        assert_eq!(missing.acl_code(), None);
        let h = Error::Hccl {
            api: "HcclAllReduce",
            code: HcclCode::HCCL_E_TIMEOUT,
            message: "peer 3 did not answer".into(),
        };
        assert_eq!(
            h.to_string(),
            "HcclAllReduce failed: 9 HCCL_E_TIMEOUT: peer 3 did not answer"
        );
    }
}
