//! Lazy function tables over the CANN shared libraries.
//!
//! There is one table per library: [`AscendCl`] (`libascendcl.so`),
//! [`NnOpBase`] (`libnnopbase.so`), [`OpApi`] (`libopapi.so` or the split
//! `libopapi_{math,nn,cv,transformer}.so`) and [`Hccl`] (`libhccl.so`), held
//! together by [`Api`].
//!
//! Invariants:
//! - A table never panics. Each entry is looked up on first use and cached;
//!   a symbol the library lacks (an older CANN) makes that one entry return
//!   [`LoadError::MissingSymbol`] and leaves every other entry working.
//! - A library is opened on the first use of any of its entries (`Api::load`
//!   opens `libascendcl` at once, so that a missing CANN is reported early);
//!   a library that cannot be found is a [`LoadError::LibraryNotFound`] that
//!   lists every path tried, returned by each entry of that table.
//! - The same tables can be filled in-process from a [`Resolver`] (the mock
//!   device does this), with no file path at all.
//!
//! Search order for each library file: the directories given to
//! [`Search::dir`], `$ASCEND_SYS_LIB_DIR` (a `:`-separated list),
//! `$ASCEND_HOME_PATH/lib64`, `$ASCEND_TOOLKIT_HOME/lib64`,
//! `$ASCEND_CUSTOM_PATH/lib64`, `/usr/local/Ascend/cann/lib64`,
//! `/usr/local/Ascend/ascend-toolkit/latest/lib64`, `$HOME/Ascend/cann/lib64`,
//! `$HOME/Ascend/ascend-toolkit/latest/lib64`, then the system's own search
//! (`LD_LIBRARY_PATH`, the linker cache).

use std::ffi::c_void;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Resolves a symbol name (without a trailing NUL) to its address, or null
/// when it is not provided. Used to fill the tables in-process.
pub type Resolver = fn(&str) -> *mut c_void;

/// What went wrong while finding a library or one of its symbols.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// No candidate file of the library could be opened.
    #[error("cannot load {library}; tried: {}", format_tried(.tried))]
    LibraryNotFound {
        /// The library's file name, for example `libascendcl.so`.
        library: &'static str,
        /// Every path tried, with why it failed.
        tried: Vec<Attempt>,
    },
    /// The library was loaded but does not export this symbol (an older CANN).
    #[error(
        "symbol {symbol} is not exported by {library} (an older CANN, or a missing operator package?)"
    )]
    MissingSymbol {
        /// The C function's name.
        symbol: &'static str,
        /// Where it was looked for.
        library: String,
    },
}

/// One place a library was looked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// A full path, or a bare file name for the system's own search.
    pub path: PathBuf,
    /// Why it could not be used.
    pub reason: String,
}

fn format_tried(tried: &[Attempt]) -> String {
    tried
        .iter()
        .map(|a| format!("{} ({})", a.path.display(), a.reason))
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.path.display(), self.reason)
    }
}

/// Where to look for the CANN libraries.
#[derive(Debug, Clone, Default)]
pub struct Search {
    dirs: Vec<PathBuf>,
    use_env: bool,
    use_system: bool,
}

impl Search {
    /// The full search: environment variables, the usual install paths and
    /// the system's search.
    pub fn standard() -> Self {
        Search {
            dirs: Vec::new(),
            use_env: true,
            use_system: true,
        }
    }

    /// Only the given directories (and those added with [`Search::dir`]).
    pub fn only<P: Into<PathBuf>>(dir: P) -> Self {
        Search {
            dirs: vec![dir.into()],
            use_env: false,
            use_system: false,
        }
    }

    /// Look in `dir` first.
    pub fn dir<P: Into<PathBuf>>(mut self, dir: P) -> Self {
        self.dirs.push(dir.into());
        self
    }

    /// The directories searched, in order (without the system's own search).
    pub fn directories(&self) -> Vec<PathBuf> {
        let mut out = self.dirs.clone();
        if self.use_env {
            if let Some(list) = std::env::var_os("ASCEND_SYS_LIB_DIR") {
                out.extend(std::env::split_paths(&list).filter(|p| !p.as_os_str().is_empty()));
            }
            for var in [
                "ASCEND_HOME_PATH",
                "ASCEND_TOOLKIT_HOME",
                "ASCEND_CUSTOM_PATH",
            ] {
                if let Some(root) = std::env::var_os(var).filter(|v| !v.is_empty()) {
                    out.push(Path::new(&root).join("lib64"));
                }
            }
            out.push(PathBuf::from("/usr/local/Ascend/cann/lib64"));
            out.push(PathBuf::from(
                "/usr/local/Ascend/ascend-toolkit/latest/lib64",
            ));
            if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
                out.push(Path::new(&home).join("Ascend/cann/lib64"));
                out.push(Path::new(&home).join("Ascend/ascend-toolkit/latest/lib64"));
            }
        }
        let mut seen = std::collections::HashSet::new();
        out.retain(|p| seen.insert(p.clone()));
        out
    }

    /// Open the first candidate of `file` that loads, recording every attempt.
    fn open(&self, file: &'static str, tried: &mut Vec<Attempt>) -> Option<Loaded> {
        for dir in self.directories() {
            let path = dir.join(file);
            if !path.exists() {
                tried.push(Attempt {
                    path,
                    reason: "no such file".into(),
                });
                continue;
            }
            match open_library(&path) {
                Ok(lib) => return Some(Loaded { path, lib }),
                Err(e) => tried.push(Attempt {
                    path,
                    reason: e.to_string(),
                }),
            }
        }
        if self.use_system {
            match open_library(Path::new(file)) {
                Ok(lib) => {
                    return Some(Loaded {
                        path: PathBuf::from(file),
                        lib,
                    });
                }
                Err(e) => tried.push(Attempt {
                    path: PathBuf::from(file),
                    reason: e.to_string(),
                }),
            }
        }
        None
    }
}

fn open_library(path: &Path) -> Result<libloading::Library, libloading::Error> {
    // The only files opened here are CANN's runtime libraries, or a library the
    // user named in their place, at the paths this module documents.
    // SAFETY: running their initialisers is what using CANN means, as linking would.
    unsafe { libloading::Library::new(path) }
}

struct Loaded {
    path: PathBuf,
    lib: libloading::Library,
}

/// Where a table's symbols come from.
enum Source {
    Libraries(Vec<Loaded>),
    Resolver {
        resolve: Resolver,
        name: &'static str,
    },
}

impl Source {
    fn lookup(&self, symbol_nul: &'static str) -> *mut c_void {
        let name = &symbol_nul[..symbol_nul.len() - 1];
        match self {
            Source::Resolver { resolve, .. } => resolve(name),
            Source::Libraries(libs) => libs
                .iter()
                .find_map(|l| {
                    // SAFETY: the symbol is read as a plain address (`*mut c_void`),
                    // never called here; the caller gives it a function type that
                    // matches its C declaration before calling it.
                    let sym = unsafe { l.lib.get::<*mut c_void>(symbol_nul.as_bytes()) }.ok()?;
                    let p = *sym;
                    (!p.is_null()).then_some(p)
                })
                .unwrap_or(std::ptr::null_mut()),
        }
    }

    fn describe(&self) -> String {
        match self {
            Source::Resolver { name, .. } => (*name).to_string(),
            Source::Libraries(libs) => libs
                .iter()
                .map(|l| l.path.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// The library behind one table, opened on first use.
pub(crate) struct LazySource {
    files: &'static [&'static str],
    search: Option<Search>,
    source: OnceLock<Result<Source, LoadError>>,
}

impl LazySource {
    fn new(files: &'static [&'static str], search: Search) -> Self {
        LazySource {
            files,
            search: Some(search),
            source: OnceLock::new(),
        }
    }

    fn resolver(files: &'static [&'static str], resolve: Resolver, name: &'static str) -> Self {
        let source = OnceLock::new();
        let _ = source.set(Ok(Source::Resolver { resolve, name }));
        LazySource {
            files,
            search: None,
            source,
        }
    }

    fn get(&self) -> Result<&Source, LoadError> {
        self.source
            .get_or_init(|| {
                let search = self.search.clone().unwrap_or_default();
                let mut tried = Vec::new();
                let libs: Vec<Loaded> = self
                    .files
                    .iter()
                    .filter_map(|f| search.open(f, &mut tried))
                    .collect();
                if libs.is_empty() {
                    Err(LoadError::LibraryNotFound {
                        library: self.files[0],
                        tried,
                    })
                } else {
                    Ok(Source::Libraries(libs))
                }
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// Slot states: 0 = not looked up yet, 1 = missing, anything else = address.
const UNRESOLVED: usize = 0;
const MISSING: usize = 1;

/// The lookup shared by every table.
pub(crate) fn resolve(
    source: &LazySource,
    slot: &AtomicUsize,
    symbol_nul: &'static str,
) -> Result<*mut c_void, LoadError> {
    let missing = |src: &Source| LoadError::MissingSymbol {
        symbol: &symbol_nul[..symbol_nul.len() - 1],
        library: src.describe(),
    };
    match slot.load(Ordering::Acquire) {
        UNRESOLVED => {
            let src = source.get()?;
            let p = src.lookup(symbol_nul);
            if p.is_null() {
                slot.store(MISSING, Ordering::Release);
                Err(missing(src))
            } else {
                slot.store(p as usize, Ordering::Release);
                Ok(p)
            }
        }
        MISSING => Err(missing(source.get()?)),
        addr => Ok(addr as *mut c_void),
    }
}

/// Builds one table type per library from the list of its functions (the
/// generated `pfn.rs` invokes it). Each function gets a method of the same
/// name that returns the resolved function pointer, typed from the C
/// declaration, or the reason it is unavailable.
macro_rules! function_tables {
    ($($table:ident => $module:ident [ $($name:ident = $idx:literal),* $(,)? ]),* $(,)?) => {
        $(
            #[doc = concat!("Lazily resolved functions of the `", stringify!($module), "` library.")]
            pub struct $table {
                pub(crate) source: $crate::loader::LazySource,
                slots: [::std::sync::atomic::AtomicUsize; $table::SYMBOLS.len()],
            }

            #[allow(non_snake_case)]
            impl $table {
                /// Every function of this table, in slot order.
                pub const SYMBOLS: &'static [&'static str] = &[$(stringify!($name)),*];

                pub(crate) fn with_source(source: $crate::loader::LazySource) -> Self {
                    $table {
                        source,
                        slots: [const { ::std::sync::atomic::AtomicUsize::new(0) }; $table::SYMBOLS.len()],
                    }
                }

                /// Whether `symbol` resolves in this table's library.
                pub fn has(&self, symbol: &str) -> bool {
                    Self::SYMBOLS.iter().position(|s| *s == symbol).is_some_and(|i| {
                        $crate::loader::resolve(&self.source, &self.slots[i], Self::NAMES_NUL[i]).is_ok()
                    })
                }

                const NAMES_NUL: &'static [&'static str] = &[$(concat!(stringify!($name), "\0")),*];

                $(
                    #[doc = concat!("`", stringify!($name), "`, resolved on first use.")]
                    #[inline]
                    pub fn $name(&self) -> Result<$crate::pfn::$module::$name, $crate::LoadError> {
                        let p = $crate::loader::resolve(
                            &self.source,
                            &self.slots[$idx],
                            concat!(stringify!($name), "\0"),
                        )?;
                        // SAFETY: `p` is the non-null address the library exports
                        // under this name, and the C declaration of that name is
                        // what gave the function-pointer type; a data pointer and a
                        // function pointer have the same size and representation
                        // on every platform CANN supports.
                        Ok(unsafe {
                            ::std::mem::transmute::<*mut ::std::ffi::c_void, $crate::pfn::$module::$name>(p)
                        })
                    }
                )*
            }
        )*
    };
}
pub(crate) use function_tables;

/// The file names of each library; the first one names the library in errors.
pub(crate) const ASCENDCL_FILES: &[&str] = &["libascendcl.so"];
pub(crate) const NNOPBASE_FILES: &[&str] = &["libnnopbase.so"];
pub(crate) const OPAPI_FILES: &[&str] = &[
    "libopapi.so",
    "libopapi_math.so",
    "libopapi_nn.so",
    "libopapi_transformer.so",
    "libopapi_cv.so",
    "libcust_opapi.so",
];
pub(crate) const HCCL_FILES: &[&str] = &["libhccl.so"];

use crate::pfn::{AscendCl, Hccl, NnOpBase, OpApi};

/// All four tables.
pub struct Api {
    /// `libascendcl.so`: init, runtime, memory, streams, events.
    pub acl: AscendCl,
    /// `libnnopbase.so`: tensor descriptors and executors.
    pub nnopbase: NnOpBase,
    /// `libopapi*.so`: the aclnn operators.
    pub opapi: OpApi,
    /// `libhccl.so`: collectives.
    pub hccl: Hccl,
    origin: String,
}

impl Api {
    /// Load CANN with the [standard search](Search::standard). `libascendcl`
    /// is opened now (its absence is reported here); the other libraries are
    /// opened on first use.
    pub fn load() -> Result<Api, LoadError> {
        Api::load_with(Search::standard())
    }

    /// Load CANN from the given search.
    pub fn load_with(search: Search) -> Result<Api, LoadError> {
        let acl = AscendCl::with_source(LazySource::new(ASCENDCL_FILES, search.clone()));
        let origin = acl.source.get()?.describe();
        Ok(Api {
            acl,
            nnopbase: NnOpBase::with_source(LazySource::new(NNOPBASE_FILES, search.clone())),
            opapi: OpApi::with_source(LazySource::new(OPAPI_FILES, search.clone())),
            hccl: Hccl::with_source(LazySource::new(HCCL_FILES, search)),
            origin,
        })
    }

    /// Load one shared library that exports the whole API (for example the
    /// mock device's `libascend_mock.so`) into all four tables.
    pub fn load_single(path: &Path) -> Result<Api, LoadError> {
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let open = |files: &'static [&'static str]| -> Result<LazySource, LoadError> {
            let lib = open_library(path).map_err(|e| LoadError::LibraryNotFound {
                library: files[0],
                tried: vec![Attempt {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                }],
            })?;
            let source = OnceLock::new();
            let _ = source.set(Ok(Source::Libraries(vec![Loaded {
                path: path.to_path_buf(),
                lib,
            }])));
            Ok(LazySource {
                files,
                search: Some(Search::only(dir.clone())),
                source,
            })
        };
        Ok(Api {
            acl: AscendCl::with_source(open(ASCENDCL_FILES)?),
            nnopbase: NnOpBase::with_source(open(NNOPBASE_FILES)?),
            opapi: OpApi::with_source(open(OPAPI_FILES)?),
            hccl: Hccl::with_source(open(HCCL_FILES)?),
            origin: path.display().to_string(),
        })
    }

    /// Fill every table from an in-process resolver; `name` describes it in
    /// errors and in [`Api::origin`].
    pub fn from_resolver(resolve: Resolver, name: &'static str) -> Api {
        Api {
            acl: AscendCl::with_source(LazySource::resolver(ASCENDCL_FILES, resolve, name)),
            nnopbase: NnOpBase::with_source(LazySource::resolver(NNOPBASE_FILES, resolve, name)),
            opapi: OpApi::with_source(LazySource::resolver(OPAPI_FILES, resolve, name)),
            hccl: Hccl::with_source(LazySource::resolver(HCCL_FILES, resolve, name)),
            origin: name.to_string(),
        }
    }

    /// Where `libascendcl` came from: a path, or the resolver's name.
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

impl fmt::Debug for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Api")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only_init(name: &str) -> *mut c_void {
        extern "C" fn fake_init(_: *const std::ffi::c_char) -> i32 {
            7
        }
        if name == "aclInit" {
            fake_init as *mut c_void
        } else {
            std::ptr::null_mut()
        }
    }

    #[test]
    fn resolver_fills_entries_and_missing_ones_fail_alone() {
        let api = Api::from_resolver(only_init, "test resolver");
        let init = api.acl.aclInit().expect("aclInit resolves");
        // SAFETY: `fake_init` ignores its argument.
        assert_eq!(unsafe { init(std::ptr::null()) }, 7);
        match api.acl.aclFinalize() {
            Err(LoadError::MissingSymbol { symbol, library }) => {
                assert_eq!(symbol, "aclFinalize");
                assert_eq!(library, "test resolver");
            }
            other => panic!("expected a missing symbol, got {other:?}"),
        }
        // The failure is cached and does not disturb the entry that works.
        assert!(api.acl.aclFinalize().is_err());
        assert!(api.acl.aclInit().is_ok());
        assert!(api.acl.has("aclInit"));
        assert!(!api.acl.has("aclFinalize"));
        assert!(!api.acl.has("notAFunction"));
    }

    #[test]
    fn missing_library_lists_every_path_tried() {
        let dir = std::env::temp_dir().join("ascend-sys-no-such-dir");
        let err = Api::load_with(Search::only(&dir)).unwrap_err();
        match &err {
            LoadError::LibraryNotFound { library, tried } => {
                assert_eq!(*library, "libascendcl.so");
                assert_eq!(tried.len(), 1);
                assert_eq!(tried[0].path, dir.join("libascendcl.so"));
            }
            other => panic!("unexpected {other:?}"),
        }
        let text = err.to_string();
        assert!(
            text.contains("libascendcl.so") && text.contains("no such file"),
            "{text}"
        );
    }

    #[test]
    fn standard_search_honours_the_environment_order() {
        let s = Search::standard().dir("/explicit");
        let dirs = s.directories();
        assert_eq!(dirs[0], PathBuf::from("/explicit"));
        let latest = PathBuf::from("/usr/local/Ascend/ascend-toolkit/latest/lib64");
        let cann = PathBuf::from("/usr/local/Ascend/cann/lib64");
        let pos = |p: &PathBuf| dirs.iter().position(|d| d == p).unwrap();
        assert!(pos(&cann) < pos(&latest));
    }
}
