//! Argument checks shared by the buffer types.
//!
//! Invariants: each check only compares values and returns
//! [`Error::InvalidArgument`](crate::Error::InvalidArgument) naming the
//! caller's API on a mismatch; none calls the runtime.

use super::dtype::DeviceRepr;
use crate::error::{Error, Result};
use crate::stream::Stream;

/// `len` elements of `T` in bytes, or an error naming `api` on overflow.
pub(crate) fn byte_len<T: DeviceRepr>(len: usize, api: &'static str) -> Result<usize> {
    len.checked_mul(T::DTYPE.size()).ok_or_else(|| {
        Error::invalid(
            api,
            format!(
                "{len} elements of {} do not fit in the address space",
                T::DTYPE
            ),
        )
    })
}

/// Fails unless two lengths agree.
pub(crate) fn same_len(api: &'static str, what: &str, got: usize, want: usize) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(Error::invalid(
            api,
            format!(
                "{what} has {got} elements but the buffer holds {want}; copies need equal lengths"
            ),
        ))
    }
}

/// Fails unless the stream runs on `ordinal`'s device.
pub(crate) fn same_device(api: &'static str, stream: &Stream, ordinal: i32) -> Result<()> {
    if stream.context().ordinal() == ordinal {
        Ok(())
    } else {
        Err(Error::invalid(
            api,
            format!(
                "the stream runs on {} but the memory is on npu:{ordinal}",
                stream.context().device()
            ),
        ))
    }
}
