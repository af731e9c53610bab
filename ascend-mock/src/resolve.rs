//! The symbol table: [`resolve`] maps each exported C name to its address,
//! [`exported_symbols`] lists the names, [`not_implemented`] the declared
//! functions the mock leaves out.
//!
//! Nothing here is a hand-kept list of functions: the table is generated
//! from `ascend_sys::for_each_function!`, which the bindings generator emits
//! for every function our headers declare. Each declared function must be
//! either exported under its own name by `crate::exports` (a missing one is
//! a compile error naming it) or named in the one explicit list below,
//! [`NOT_IMPLEMENTED`], with its reason in `docs/mock.md`. Each entry is cast
//! to `ascend_sys::pfn::<library>::<name>` before its address is taken, so
//! a signature that drifts from the header fails to compile too.

use std::ffi::c_void;
use std::sync::OnceLock;

/// Declares the functions our headers declare that the mock does not
/// implement: they resolve to null (a Rust caller gets
/// `LoadError::MissingSymbol`, a C program fails to link), and
/// `docs/mock.md` says why each is left out.
macro_rules! not_implemented {
    ($($skip:ident),* $(,)?) => {
        /// The declared functions the mock does not implement.
        pub const NOT_IMPLEMENTED: &[&str] = &[$(stringify!($skip)),*];

        /// The address of one declared function: null for those in
        /// [`NOT_IMPLEMENTED`], the export of the same name otherwise.
        macro_rules! address {
            $( ($lib:ident :: $skip) => { std::ptr::null_mut::<c_void>() }; )*
            ($lib:ident :: $name:ident) => {
                crate::exports::$name as ascend_sys::pfn::$lib::$name as *mut c_void
            };
        }
    };
}

// Every function our headers declare is implemented today.
not_implemented! {}

macro_rules! symbol_table {
    ($($lib:ident :: $name:ident),* $(,)?) => {
        /// The address of the exported function `name`, or null when the
        /// mock does not implement it.
        pub fn resolve(name: &str) -> *mut c_void {
            match name {
                $( stringify!($name) => address!($lib::$name), )*
                _ => std::ptr::null_mut(),
            }
        }

        /// Every function our headers declare, implemented or not.
        pub fn declared_symbols() -> &'static [&'static str] {
            &[$(stringify!($name)),*]
        }
    };
}

ascend_sys::for_each_function!(symbol_table);

/// The names of every function the mock exports: the declared ones less
/// those of [`not_implemented`].
pub fn exported_symbols() -> &'static [&'static str] {
    static EXPORTED: OnceLock<Vec<&'static str>> = OnceLock::new();
    EXPORTED.get_or_init(|| {
        declared_symbols()
            .iter()
            .copied()
            .filter(|name| !NOT_IMPLEMENTED.contains(name))
            .collect()
    })
}

/// The declared functions the mock does not implement; `docs/mock.md`
/// says why each is left out.
pub fn not_implemented() -> &'static [&'static str] {
    NOT_IMPLEMENTED
}
