//! Views: the element range of a [`DeviceBuffer`] that a collective reads
//! ([`View`]) or writes ([`ViewMut`]).
//!
//! Collectives take anything that turns into a view: a whole buffer
//! (`&buf`, `&mut buf`) or a checked range of one
//! ([`View::range`], [`View::prefix`], [`ViewMut::range`],
//! [`ViewMut::prefix`]), for example the first `n` rows of a pooled
//! buffer. The buffer a rooted collective uses on the root only is an
//! `Option` of a view; `From` turns a whole buffer into one.
//!
//! Invariants: `start + len <= buf.len()` (checked when a view is made);
//! a [`ViewMut`] holds the buffer's `&mut` borrow, so nothing else can use
//! the buffer while the view exists. Access tracking is per buffer: a
//! collective on a range declares a read or write of the whole buffer,
//! which orders more than needed but never less.

use std::ffi::c_void;
use std::ops::Range;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::memory::{DeviceBuffer, DeviceRepr};
use crate::stream::Stream;

/// Elements `start..start + len` of a buffer, read by a collective.
#[derive(Debug, Clone, Copy)]
pub struct View<'a, T: DeviceRepr> {
    buf: &'a DeviceBuffer<T>,
    start: usize,
    len: usize,
}

/// Elements `start..start + len` of a buffer, written by a collective.
#[derive(Debug)]
pub struct ViewMut<'a, T: DeviceRepr> {
    buf: &'a mut DeviceBuffer<T>,
    start: usize,
    len: usize,
}

/// Fails unless `range` is a valid range of a buffer of `len` elements.
fn check_range(api: &'static str, range: &Range<usize>, len: usize) -> Result<()> {
    if range.start > range.end || range.end > len {
        return Err(Error::invalid(
            api,
            format!(
                "range {}..{} is not inside a buffer of {len} elements",
                range.start, range.end
            ),
        ));
    }
    Ok(())
}

/// The device address of element `start` of `base` (null stays null: it
/// only occurs for an empty buffer, where `start` is 0).
fn offset<T: DeviceRepr>(base: *const c_void, start: usize) -> *const c_void {
    if base.is_null() || start == 0 {
        return base;
    }
    // The address is only handed to HCCL, never dereferenced on the host.
    base.cast::<u8>()
        .wrapping_add(start * T::DTYPE.size())
        .cast()
}

impl<'a, T: DeviceRepr> View<'a, T> {
    /// Elements `range` of `buf`; an error when the range is not inside it.
    pub fn range(buf: &'a DeviceBuffer<T>, range: Range<usize>) -> Result<Self> {
        check_range("View::range", &range, buf.len())?;
        Ok(View {
            buf,
            start: range.start,
            len: range.end - range.start,
        })
    }

    /// The first `n` elements of `buf`.
    pub fn prefix(buf: &'a DeviceBuffer<T>, n: usize) -> Result<Self> {
        check_range("View::prefix", &(0..n), buf.len())?;
        Ok(View {
            buf,
            start: 0,
            len: n,
        })
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the view has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The buffer the view is part of.
    pub fn buffer(&self) -> &'a DeviceBuffer<T> {
        self.buf
    }

    /// Declares a read on `stream` and returns the view's device address.
    pub(crate) fn track(&self, stream: &Arc<Stream>) -> Result<*const c_void> {
        let base = self.buf.track_read(stream)?;
        Ok(offset::<T>(base, self.start))
    }
}

impl<'a, T: DeviceRepr> ViewMut<'a, T> {
    /// Elements `range` of `buf`; an error when the range is not inside it.
    pub fn range(buf: &'a mut DeviceBuffer<T>, range: Range<usize>) -> Result<Self> {
        check_range("ViewMut::range", &range, buf.len())?;
        Ok(ViewMut {
            buf,
            start: range.start,
            len: range.end - range.start,
        })
    }

    /// The first `n` elements of `buf`.
    pub fn prefix(buf: &'a mut DeviceBuffer<T>, n: usize) -> Result<Self> {
        check_range("ViewMut::prefix", &(0..n), buf.len())?;
        Ok(ViewMut {
            buf,
            start: 0,
            len: n,
        })
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the view has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The buffer the view is part of.
    pub fn buffer(&self) -> &DeviceBuffer<T> {
        self.buf
    }

    /// Declares a write on `stream` and returns the view's device address.
    pub(crate) fn track(&mut self, stream: &Arc<Stream>) -> Result<*mut c_void> {
        let base = self.buf.track_write(stream)?;
        Ok(offset::<T>(base, self.start).cast_mut())
    }
}

/// What a collective accepts as data it reads: `&DeviceBuffer<T>` (all of
/// it) or a [`View`].
pub trait IntoView<'a> {
    /// The element type.
    type Elem: DeviceRepr;
    /// The view.
    fn into_view(self) -> View<'a, Self::Elem>;
}

/// What a collective accepts as data it writes: `&mut DeviceBuffer<T>`
/// (all of it) or a [`ViewMut`].
pub trait IntoViewMut<'a> {
    /// The element type.
    type Elem: DeviceRepr;
    /// The view.
    fn into_view_mut(self) -> ViewMut<'a, Self::Elem>;
}

impl<'a, T: DeviceRepr> IntoView<'a> for &'a DeviceBuffer<T> {
    type Elem = T;
    fn into_view(self) -> View<'a, T> {
        View {
            buf: self,
            start: 0,
            len: self.len(),
        }
    }
}

impl<'a, T: DeviceRepr> IntoView<'a> for View<'a, T> {
    type Elem = T;
    fn into_view(self) -> View<'a, T> {
        self
    }
}

impl<'a, T: DeviceRepr> IntoView<'a> for &View<'a, T> {
    type Elem = T;
    fn into_view(self) -> View<'a, T> {
        *self
    }
}

impl<'a, T: DeviceRepr> IntoViewMut<'a> for &'a mut DeviceBuffer<T> {
    type Elem = T;
    fn into_view_mut(self) -> ViewMut<'a, T> {
        let len = self.len();
        ViewMut {
            buf: self,
            start: 0,
            len,
        }
    }
}

impl<'a, T: DeviceRepr> IntoViewMut<'a> for ViewMut<'a, T> {
    type Elem = T;
    fn into_view_mut(self) -> ViewMut<'a, T> {
        self
    }
}

impl<'a, T: DeviceRepr> From<&'a DeviceBuffer<T>> for View<'a, T> {
    /// All of `buf`, for the optional buffers of rooted collectives
    /// (`Some((&buf).into())`).
    fn from(buf: &'a DeviceBuffer<T>) -> Self {
        buf.into_view()
    }
}

impl<'a, T: DeviceRepr> From<&'a mut DeviceBuffer<T>> for ViewMut<'a, T> {
    /// All of `buf`, for the optional buffers of rooted collectives
    /// (`Some((&mut buf).into())`).
    fn from(buf: &'a mut DeviceBuffer<T>) -> Self {
        buf.into_view_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_outside_the_buffer_are_refused() {
        assert!(check_range("t", &(0..4), 4).is_ok());
        assert!(check_range("t", &(4..4), 4).is_ok());
        assert!(check_range("t", &(0..0), 0).is_ok());
        let e = check_range("t", &(2..5), 4).unwrap_err();
        assert!(e.to_string().contains("2..5"), "{e}");
        #[allow(clippy::reversed_empty_ranges)]
        let backwards = 3..1;
        assert!(check_range("t", &backwards, 4).is_err());
    }

    #[test]
    fn offsets_are_in_bytes_of_the_element_type() {
        let base = 0x1000usize as *const c_void;
        assert_eq!(offset::<f32>(base, 3) as usize, 0x100c);
        assert_eq!(offset::<i64>(base, 2) as usize, 0x1010);
        assert_eq!(offset::<u8>(base, 0) as usize, 0x1000);
        assert!(offset::<f32>(std::ptr::null(), 0).is_null());
    }
}
