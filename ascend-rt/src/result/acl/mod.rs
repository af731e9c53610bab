//! AscendCL (`libascendcl`): the runtime calls, one file per topic.
//!
//! - [`device`]: count, binding to the calling thread, reset, properties;
//! - [`context`]: create, destroy, make current, query;
//! - [`stream`]: create, destroy, synchronize, query, event waits, host
//!   functions;
//! - [`event`]: create, destroy, record, synchronize, query, timing;
//! - [`memory`]: device and pinned host allocation, copies, memset.
//!
//! Invariants: those of the result layer (one C call per function, errors
//! with the function's name, code and message, `unsafe` with `# Safety`
//! where the call needs the caller's guarantees); every function reaches
//! the `AscendCl` table through `table` only.

pub mod context;
pub mod device;
pub mod event;
pub mod memory;
pub mod stream;

use ascend_sys::AscendCl;

use crate::error::Result;

/// The AscendCL table of the active backend (initialised on first use).
pub(crate) fn table() -> Result<&'static AscendCl> {
    Ok(&crate::backend::api()?.acl)
}
