//! Which implementation of the AscendCL C ABI this process uses, chosen once.
//!
//! Invariants:
//! - At most one backend is initialised per process. It lives in a
//!   process-wide `OnceLock` for the rest of the process, so every
//!   `&'static Api` handed out stays valid.
//! - `aclInit` is called exactly once, by whoever initialises the backend
//!   first (an `aclInit` that reports `ACL_ERROR_REPEAT_INITIALIZE` because
//!   the host program already initialised AscendCL counts as success).
//! - A failed initialisation leaves nothing behind: the next call tries again.
//! - This module names only `error` below it: the result layer and the safe
//!   types build on it, never the other way round. Besides the result layer,
//!   it is the one place that calls the function tables itself: `aclInit`,
//!   and `aclGetRecentErrMsg` for the message of a failed call
//!   ([`recent_message`], which the result layer uses too).
//! - `aclFinalize` is not called at exit: AscendCL releases its resources
//!   when the process ends, and objects that live in statics could otherwise
//!   outlive it.

use std::ffi::CStr;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use ascend_sys::{Api, Resolver};

use crate::error::{AclCode, Error, Result};

/// The environment variable read by [`Backend::from_env`] and [`api`].
pub const BACKEND_ENV: &str = "ASCEND_RT_BACKEND";

/// A backend to run on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// The CANN libraries, found by [`ascend_sys::Api::load`].
    Cann,
    /// The CPU mock device linked into this process (feature `mock`).
    Mock,
    /// CANN when it loads, otherwise the mock (with a notice on stderr).
    Auto,
    /// One shared library exporting the whole API (for example the mock's
    /// `libascend_mock.so`, or a CANN build in an unusual place).
    Library(PathBuf),
}

impl Backend {
    /// Parses a setting of `ASCEND_RT_BACKEND`: `cann`, `mock`, `auto`
    /// (case-insensitive, or empty for `auto`), or a path to a library.
    pub fn parse(value: &str) -> Result<Backend> {
        let v = value.trim();
        match v.to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(Backend::Auto),
            "cann" => Ok(Backend::Cann),
            "mock" => Ok(Backend::Mock),
            _ if v.contains('/') || v.ends_with(".so") => Ok(Backend::Library(PathBuf::from(v))),
            _ => Err(Error::InvalidBackendSetting {
                value: value.to_string(),
                reason: "expected `cann`, `mock`, `auto` or a path to a shared library".into(),
            }),
        }
    }

    /// The backend named by `ASCEND_RT_BACKEND`; [`Backend::Auto`] when unset.
    pub fn from_env() -> Result<Backend> {
        match std::env::var(BACKEND_ENV) {
            Ok(v) => Backend::parse(&v),
            Err(std::env::VarError::NotPresent) => Ok(Backend::Auto),
            Err(std::env::VarError::NotUnicode(v)) => Ok(Backend::Library(PathBuf::from(v))),
        }
    }

    fn describe(&self) -> String {
        match self {
            Backend::Cann => "cann".into(),
            Backend::Mock => "mock".into(),
            Backend::Auto => "auto".into(),
            Backend::Library(p) => format!("library {}", p.display()),
        }
    }
}

/// The kind of backend that is active.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendKind {
    /// The CANN libraries.
    Cann,
    /// The in-process mock device.
    Mock,
    /// A single library given by path.
    Library(PathBuf),
    /// Tables supplied by the program through [`init_with_api`].
    Custom(String),
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackendKind::Cann => f.write_str("cann"),
            BackendKind::Mock => f.write_str("mock"),
            BackendKind::Library(p) => write!(f, "library {}", p.display()),
            BackendKind::Custom(name) => write!(f, "custom ({name})"),
        }
    }
}

struct Runtime {
    api: Api,
    kind: BackendKind,
    notice: Option<String>,
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
/// Serialises initialisation, so that `aclInit` runs once.
static INIT_LOCK: Mutex<()> = Mutex::new(());

/// Initialises `backend` (loading it and calling `aclInit`) unless a backend
/// is already active. Asking for the active kind again (or for `Auto`) is a
/// no-op; asking for a different one is [`Error::BackendAlreadyChosen`].
pub fn init(backend: Backend) -> Result<&'static Api> {
    if let Some(rt) = RUNTIME.get() {
        return compatible(rt, &backend).map(|()| &rt.api);
    }
    let _guard = INIT_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(rt) = RUNTIME.get() {
        return compatible(rt, &backend).map(|()| &rt.api);
    }
    let (api, kind, notice) = select(&backend, MOCK)?;
    install(api, kind, notice)
}

/// Initialises the process with tables the program built itself (for
/// example [`Api::from_resolver`] over its own resolver). Fails with
/// [`Error::BackendAlreadyChosen`] when a backend is already active.
pub fn init_with_api(api: Api) -> Result<&'static Api> {
    let _guard = INIT_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(rt) = RUNTIME.get() {
        return Err(Error::BackendAlreadyChosen {
            active: rt.kind.to_string(),
            requested: format!("custom ({})", api.origin()),
        });
    }
    let kind = BackendKind::Custom(api.origin().to_string());
    install(api, kind, None)
}

/// The active backend's tables, initialising the one `ASCEND_RT_BACKEND`
/// names (automatic when unset) on first use.
pub fn api() -> Result<&'static Api> {
    match RUNTIME.get() {
        Some(rt) => Ok(&rt.api),
        None => init(Backend::from_env()?),
    }
}

/// The active backend, or `None` before initialisation.
pub fn backend_kind() -> Option<BackendKind> {
    RUNTIME.get().map(|rt| rt.kind.clone())
}

/// Whether the active backend is the in-process mock device.
pub fn is_mock() -> bool {
    matches!(backend_kind(), Some(BackendKind::Mock))
}

/// The notice printed when the automatic choice fell back to the mock
/// (naming what was tried), if it did.
pub fn backend_notice() -> Option<&'static str> {
    RUNTIME.get().and_then(|rt| rt.notice.as_deref())
}

fn compatible(rt: &Runtime, requested: &Backend) -> Result<()> {
    let same = match (requested, &rt.kind) {
        (Backend::Auto, _) => true,
        (Backend::Cann, BackendKind::Cann) | (Backend::Mock, BackendKind::Mock) => true,
        (Backend::Library(a), BackendKind::Library(b)) => a == b,
        _ => false,
    };
    if same {
        Ok(())
    } else {
        Err(Error::BackendAlreadyChosen {
            active: rt.kind.to_string(),
            requested: requested.describe(),
        })
    }
}

type Selected = (Api, BackendKind, Option<String>);

/// The mock device's resolver, when the feature `mock` links it in.
#[cfg(feature = "mock")]
const MOCK: Option<Resolver> = Some(ascend_mock::resolve);
/// The mock device's resolver: none, as the feature `mock` is off.
#[cfg(not(feature = "mock"))]
const MOCK: Option<Resolver> = None;

/// Loads `backend`, with `mock` as the in-process mock device ([`MOCK`]
/// outside this module's tests).
fn select(backend: &Backend, mock: Option<Resolver>) -> Result<Selected> {
    match backend {
        Backend::Cann => Ok((Api::load()?, BackendKind::Cann, None)),
        Backend::Mock => Ok((mock_api(mock)?, BackendKind::Mock, None)),
        Backend::Library(path) => Ok((
            Api::load_single(path)?,
            BackendKind::Library(path.clone()),
            None,
        )),
        Backend::Auto => match Api::load() {
            Ok(api) => Ok((api, BackendKind::Cann, None)),
            Err(load_err) => match mock_api(mock) {
                Ok(api) => {
                    let notice = format!(
                        "ascend-rt: CANN not found, using the CPU mock device ({load_err})"
                    );
                    use std::io::Write as _;
                    let _ = writeln!(std::io::stderr(), "{notice}");
                    Ok((api, BackendKind::Mock, Some(notice)))
                }
                // Without the mock, the reason CANN failed is the useful one.
                Err(_) => Err(Error::Load(load_err)),
            },
        },
    }
}

fn mock_api(mock: Option<Resolver>) -> Result<Api> {
    match mock {
        Some(resolve) => Ok(Api::from_resolver(resolve, "ascend-mock")),
        None => Err(Error::BackendUnavailable {
            backend: "mock",
            reason: "ascend-rt was built without its `mock` feature".into(),
        }),
    }
}

fn install(api: Api, kind: BackendKind, notice: Option<String>) -> Result<&'static Api> {
    let acl_init = api.acl.aclInit()?;
    // SAFETY: aclInit accepts a null configuration path (no JSON file), and
    // INIT_LOCK, held by every caller of `install`, makes this the only call.
    let code = unsafe { acl_init(std::ptr::null()) };
    if code != ascend_sys::ACL_SUCCESS && code != ascend_sys::ACL_ERROR_REPEAT_INITIALIZE {
        return Err(Error::Acl {
            api: "aclInit",
            code: AclCode::from_raw(code),
            message: recent_message(&api),
        });
    }
    let rt = RUNTIME.get_or_init(|| Runtime { api, kind, notice });
    Ok(&rt.api)
}

/// `aclGetRecentErrMsg` of `api`, as text; empty when the runtime has no
/// message or does not export the function. Read right after a failed
/// call, before any other call on this thread: by `aclInit` here, and by
/// the result layer for every other call.
pub fn recent_message(api: &Api) -> String {
    let Ok(f) = api.acl.aclGetRecentErrMsg() else {
        return String::new();
    };
    // SAFETY: aclGetRecentErrMsg takes no arguments; it returns null or a
    // NUL-terminated string that stays valid until the next call on this
    // thread, and we copy it out before making any other call.
    unsafe {
        let p = f();
        if p.is_null() {
            String::new()
        } else {
            CStr::from_ptr(p).to_string_lossy().trim_end().to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse() {
        assert_eq!(Backend::parse("cann").unwrap(), Backend::Cann);
        assert_eq!(Backend::parse(" MOCK ").unwrap(), Backend::Mock);
        assert_eq!(Backend::parse("").unwrap(), Backend::Auto);
        assert_eq!(Backend::parse("Auto").unwrap(), Backend::Auto);
        assert_eq!(
            Backend::parse("/opt/x/libascend_mock.so").unwrap(),
            Backend::Library(PathBuf::from("/opt/x/libascend_mock.so"))
        );
        assert_eq!(
            Backend::parse("libascend_mock.so").unwrap(),
            Backend::Library(PathBuf::from("libascend_mock.so"))
        );
        let err = Backend::parse("gpu").unwrap_err();
        assert!(
            err.to_string().contains("\"gpu\"") && err.to_string().contains("cann"),
            "{err}"
        );
    }

    /// What `init(Backend::Mock)` gives in a build without the feature
    /// `mock` (where [`MOCK`] is `None`). Tested through `select`, since
    /// this crate's tests always build with the mock (its dev-dependency
    /// on itself turns the feature on).
    #[test]
    fn mock_without_the_feature_is_a_typed_error() {
        match select(&Backend::Mock, None) {
            Err(Error::BackendUnavailable { backend, reason }) => {
                assert_eq!(backend, "mock");
                assert!(reason.contains("feature"), "{reason}");
            }
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("the mock must not be available without its feature"),
        }
    }

    /// Without the mock, `auto` takes CANN or reports why CANN did not
    /// load (not that the mock is missing).
    #[test]
    fn auto_without_the_mock_reports_cann() {
        match select(&Backend::Auto, None) {
            Ok((_, kind, notice)) => assert_eq!((kind, notice), (BackendKind::Cann, None)),
            Err(Error::Load(_)) => {}
            Err(other) => panic!("unexpected error {other}"),
        }
    }
}
