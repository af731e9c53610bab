//! Handles and the per-thread current context: the names the device core
//! hands to C for its objects.
//!
//! A [`Handle`] is a tagged id standing for an `aclrtContext`,
//! `aclrtStream` or `aclrtEvent`; it is never dereferenced, so a stale or
//! foreign pointer is refused cleanly by the lookup in `runtime`. The
//! current context of a thread is kept here (not in `runtime`) so that a
//! stream's worker can make its context current without naming the
//! runtime.
//!
//! Layer: the bottom of the device core; it names no other module.
//!
//! Invariants: ids are unique in the process (a counter, never reused);
//! the tag in bits 40..48 says the kind, and no id is 0.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// The kinds of object a handle can name; the tag sits in bits 40..48.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandleKind {
    /// `aclrtContext`.
    Context = 0xC0,
    /// `aclrtStream`.
    Stream = 0x50,
    /// `aclrtEvent`.
    Event = 0xE0,
}

/// A tagged id standing for an `aclrtContext`, `aclrtStream` or `aclrtEvent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Handle(u64);

const TAG_SHIFT: u32 = 40;
const ID_MASK: u64 = (1 << TAG_SHIFT) - 1;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Handle {
    /// A fresh handle of `kind`.
    pub fn new(kind: HandleKind) -> Handle {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed) & ID_MASK;
        Handle(((kind as u64) << TAG_SHIFT) | id)
    }

    /// The pointer handed to C.
    pub fn as_ptr(self) -> *mut std::ffi::c_void {
        self.0 as usize as *mut std::ffi::c_void
    }

    /// The small number shown in messages and returned by `aclrtStreamGetId`.
    pub fn id(self) -> u64 {
        self.0 & ID_MASK
    }

    /// Decodes a pointer from C, checking that it carries the tag of `kind`.
    pub fn from_ptr(ptr: *const std::ffi::c_void, kind: HandleKind) -> Option<Handle> {
        let raw = ptr as usize as u64;
        (raw >> TAG_SHIFT == kind as u64 && raw & ID_MASK != 0).then_some(Handle(raw))
    }
}

thread_local! {
    static CURRENT_CONTEXT: Cell<Option<Handle>> = const { Cell::new(None) };
}

/// Makes `ctx` (or nothing) the calling thread's current context.
pub(crate) fn set_current_context(ctx: Option<Handle>) {
    CURRENT_CONTEXT.with(|c| c.set(ctx));
}

/// The calling thread's current context, if any.
pub(crate) fn current_context() -> Option<Handle> {
    CURRENT_CONTEXT.with(|c| c.get())
}
