//! Copies and memsets: validating them against the memory registry
//! (copy planning) and running them at once or queuing them on a stream.
//!
//! Parameter errors of copies and memsets (`destMax < count`, a kind that
//! does not match where the pointers live, a range past the end of an
//! allocation) return `ACL_ERROR_RT_PARAM_INVALID` (107000), the runtime's
//! code for them; NULL pointers and an unknown kind return
//! `ACL_ERROR_INVALID_PARAM` (100000).
//!
//! Checks, filed as sanitizer reports (see `report`): a pointer into a
//! freed block is a `use-after-free` report, a kind that does not match
//! the pointers or device memory of a device the acting device (the
//! stream's, or the current context's for the synchronous calls) has no
//! peer access to is `wrong memory kind`, and a range past the end of its
//! allocation is `out of bounds` whatever `destMax` claims.
//!
//! Ordering: `aclrtMemcpy`, `aclrtMemcpy2d` and `aclrtMemset` act at once,
//! without waiting for streams. The async forms are stream tasks of device
//! work; with pageable (unregistered) host memory on either side the call
//! returns only after the stream has run the copy, as CANN documents.
//!
//! Observation (see `hooks`): queued copies and memsets hand their ranges
//! to the observer (the race tracker) as they are queued, and synchronous
//! ones as host accesses; the observer may refuse them (a `race` report,
//! `ACL_ERROR_RT_PARAM_INVALID`), and then nothing is done.
//!
//! Layer: device core, above `memory`, `stream` and `runtime`; it names
//! neither the sanitizer nor the exports.
//!
//! Invariants: a copy or memset runs only after its whole extent was
//! checked to lie in live allocations (or pageable host memory, trusted);
//! nothing is queued or written when a check fails.

use std::ffi::c_void;
use std::sync::Arc;

use ascend_sys::*;

use crate::error::{MockError, MockResult, ReportClass};
use crate::fault;
use crate::gate;
use crate::hooks::{self, Access};
use crate::memory::{self, Location, check_range, classify};
use crate::report::violation;
use crate::runtime;
use crate::stream::{Stream, TaskKind};

fn kind_name(kind: aclrtMemcpyKind) -> &'static str {
    match kind {
        ACL_MEMCPY_HOST_TO_HOST => "ACL_MEMCPY_HOST_TO_HOST",
        ACL_MEMCPY_HOST_TO_DEVICE => "ACL_MEMCPY_HOST_TO_DEVICE",
        ACL_MEMCPY_DEVICE_TO_HOST => "ACL_MEMCPY_DEVICE_TO_HOST",
        ACL_MEMCPY_DEVICE_TO_DEVICE => "ACL_MEMCPY_DEVICE_TO_DEVICE",
        ACL_MEMCPY_DEFAULT => "ACL_MEMCPY_DEFAULT",
        ACL_MEMCPY_HOST_TO_BUF_TO_DEVICE => "ACL_MEMCPY_HOST_TO_BUF_TO_DEVICE",
        ACL_MEMCPY_INNER_DEVICE_TO_DEVICE => "ACL_MEMCPY_INNER_DEVICE_TO_DEVICE",
        ACL_MEMCPY_INTER_DEVICE_TO_DEVICE => "ACL_MEMCPY_INTER_DEVICE_TO_DEVICE",
        _ => "an unknown kind",
    }
}

/// Checks that `kind` matches where `src` (at `s`) and `dst` (at `d`)
/// live; a mismatch is a `wrong memory kind` report.
pub(crate) fn check_kind(
    kind: aclrtMemcpyKind,
    src: &Location,
    dst: &Location,
    s: usize,
    d: usize,
) -> MockResult<()> {
    let (sd, dd) = (src.is_device(), dst.is_device());
    let same_device = match (src, dst) {
        (Location::Device { device: a, .. }, Location::Device { device: b, .. }) => Some(a == b),
        _ => None,
    };
    let ok = match kind {
        ACL_MEMCPY_HOST_TO_HOST => !sd && !dd,
        ACL_MEMCPY_HOST_TO_DEVICE | ACL_MEMCPY_HOST_TO_BUF_TO_DEVICE => !sd && dd,
        ACL_MEMCPY_DEVICE_TO_HOST => sd && !dd,
        ACL_MEMCPY_DEVICE_TO_DEVICE => sd && dd,
        ACL_MEMCPY_INNER_DEVICE_TO_DEVICE => same_device == Some(true),
        ACL_MEMCPY_INTER_DEVICE_TO_DEVICE => same_device == Some(false),
        ACL_MEMCPY_DEFAULT => true,
        other => {
            return Err(MockError::new(
                ACL_ERROR_INVALID_PARAM,
                format!("kind {other} is not an aclrtMemcpyKind"),
            ));
        }
    };
    if ok {
        return Ok(());
    }
    Err(violation(
        ReportClass::WrongMemoryKind,
        ACL_ERROR_RT_PARAM_INVALID,
        &format!(
            "{}: kind {} does not match the pointers: the source is {} ({s:#x}) and the destination is {} ({d:#x})",
            gate::current_call_text(),
            kind_name(kind),
            src.describe(),
            dst.describe()
        ),
    ))
}

/// The device a call acts on: the stream's, else the calling thread's
/// current context's (none when the thread has no context).
fn acting_device(stream: Option<&Stream>) -> Option<u32> {
    match stream {
        Some(s) => Some(s.device),
        None => runtime::with_runtime(|rt| Ok(rt.current_context().ok().map(|c| c.device)))
            .ok()
            .flatten(),
    }
}

/// Checks the device behind `loc` (the argument `role` at `ptr`): not
/// lost, and either the acting device or a peer it enabled access to
/// (`aclrtDeviceEnablePeerAccess`); otherwise a `wrong memory kind` report.
fn check_device_access(
    acting: Option<u32>,
    loc: &Location,
    ptr: usize,
    role: &str,
) -> MockResult<()> {
    let Location::Device { device, .. } = *loc else {
        return Ok(());
    };
    fault::check_device(device)?;
    let Some(me) = acting else { return Ok(()) };
    if me == device || runtime::peer_access_enabled(me, device) {
        return Ok(());
    }
    Err(violation(
        ReportClass::WrongMemoryKind,
        ACL_ERROR_RT_PARAM_INVALID,
        &format!(
            "{} on device {me}: the {role} {ptr:#x} is device memory of device {device}, and peer access from device {me} to device {device} is not enabled (aclrtDeviceEnablePeerAccess)",
            gate::current_call_text()
        ),
    ))
}

/// A validated copy of `rows` rows of `width` bytes.
#[derive(Clone, Copy)]
struct CopyPlan {
    dst: usize,
    dpitch: usize,
    src: usize,
    spitch: usize,
    width: usize,
    rows: usize,
    /// Pageable host memory on one side: async calls wait for the copy.
    pageable: bool,
}

impl CopyPlan {
    /// What the copy does to memory (the hull of its rows on each side),
    /// for race detection.
    fn accesses(&self) -> [Access; 2] {
        let hull = |pitch: usize| (self.rows - 1) * pitch + self.width;
        [
            Access::read(self.src, hull(self.spitch)),
            Access::write(self.dst, hull(self.dpitch)),
        ]
    }

    /// Performs the copy.
    ///
    /// # Safety
    /// The plan was validated against the registry, and the caller keeps
    /// the memory alive (device and pinned memory: a free releases the
    /// block only after queued work ran; host memory: the AscendCL
    /// contract).
    unsafe fn run(self) {
        for r in 0..self.rows {
            let s = (self.src + r * self.spitch) as *const u8;
            let d = (self.dst + r * self.dpitch) as *mut u8;
            // SAFETY: both row ranges were checked to lie in their
            // allocations (or are caller-owned host memory); `copy` allows
            // overlap.
            unsafe { std::ptr::copy(s, d, self.width) };
        }
    }
}

fn span(pitch: usize, width: usize, rows: usize) -> MockResult<usize> {
    (rows - 1)
        .checked_mul(pitch)
        .and_then(|v| v.checked_add(width))
        .ok_or_else(|| MockError::new(ACL_ERROR_RT_PARAM_INVALID, "the copy extent overflows"))
}

/// The shape of a copy: pitches, row width and row count.
#[derive(Clone, Copy)]
pub(crate) struct Shape {
    /// Bytes from one destination row to the next.
    pub dpitch: usize,
    /// Bytes from one source row to the next.
    pub spitch: usize,
    /// Bytes per row.
    pub width: usize,
    /// Rows.
    pub rows: usize,
}

/// Validates a copy for the acting device `acting` (see [`acting_device`]):
/// stale pointers, kind, ranges, lost devices and peer access.
fn plan(
    dst: *mut c_void,
    src: *const c_void,
    shape: Shape,
    kind: aclrtMemcpyKind,
    acting: Option<u32>,
) -> MockResult<Option<CopyPlan>> {
    let Shape {
        dpitch,
        spitch,
        width,
        rows,
    } = shape;
    if width == 0 || rows == 0 {
        return Ok(None);
    }
    if dst.is_null() || src.is_null() {
        return Err(MockError::new(
            ACL_ERROR_INVALID_PARAM,
            if dst.is_null() {
                "dst is NULL"
            } else {
                "src is NULL"
            },
        ));
    }
    let (d, s) = (dst as usize, src as usize);
    let (dl, sl) = (classify(d), classify(s));
    let (dspan, sspan) = (span(dpitch, width, rows)?, span(spitch, width, rows)?);
    if dl == Location::Host {
        memory::check_not_freed(d, dspan, "destination")?;
    }
    if sl == Location::Host {
        memory::check_not_freed(s, sspan, "source")?;
    }
    check_kind(kind, &sl, &dl, s, d)?;
    check_range(&dl, d, dspan, "destination")?;
    check_range(&sl, s, sspan, "source")?;
    check_device_access(acting, &dl, d, "destination")?;
    check_device_access(acting, &sl, s, "source")?;
    Ok(Some(CopyPlan {
        dst: d,
        dpitch,
        src: s,
        spitch,
        width,
        rows,
        pageable: dl == Location::Host || sl == Location::Host,
    }))
}

fn plan_1d(
    dst: *mut c_void,
    dest_max: usize,
    src: *const c_void,
    count: usize,
    kind: aclrtMemcpyKind,
    acting: Option<u32>,
) -> MockResult<Option<CopyPlan>> {
    if dest_max < count {
        return Err(MockError::new(
            ACL_ERROR_RT_PARAM_INVALID,
            format!("destMax {dest_max} is smaller than count {count}"),
        ));
    }
    let shape = Shape {
        dpitch: count,
        spitch: count,
        width: count,
        rows: 1,
    };
    plan(dst, src, shape, kind, acting)
}

fn plan_2d(
    dst: *mut c_void,
    src: *const c_void,
    shape: Shape,
    kind: aclrtMemcpyKind,
    acting: Option<u32>,
) -> MockResult<Option<CopyPlan>> {
    let Shape {
        dpitch,
        spitch,
        width,
        ..
    } = shape;
    if width > dpitch || width > spitch {
        return Err(MockError::new(
            ACL_ERROR_RT_PARAM_INVALID,
            format!("width {width} is larger than dpitch {dpitch} or spitch {spitch}"),
        ));
    }
    plan(dst, src, shape, kind, acting)
}

fn run_now(p: Option<CopyPlan>) -> MockResult<()> {
    if let Some(p) = p {
        hooks::host_access(&p.accesses(), ACL_ERROR_RT_PARAM_INVALID)?;
        // SAFETY: validated by `plan`; synchronous copies use memory the
        // caller owns for the duration of the call.
        unsafe { p.run() };
    }
    Ok(())
}

fn lookup_stream(stream: aclrtStream) -> MockResult<Arc<Stream>> {
    runtime::with_runtime(|rt| rt.stream(stream))
}

fn run_async(
    name: &'static str,
    p: Option<CopyPlan>,
    s: Arc<Stream>,
    kind: aclrtMemcpyKind,
) -> MockResult<()> {
    let Some(p) = p else { return Ok(()) };
    if kind == ACL_MEMCPY_HOST_TO_HOST {
        return Err(MockError::new(
            ACL_ERROR_RT_FEATURE_NOT_SUPPORT,
            "asynchronous host-to-host copies are not supported in ACL_HOST run mode; use aclrtMemcpy",
        ));
    }
    if p.pageable && s.is_current_worker() {
        return Err(MockError::new(
            ACL_ERROR_RT_PARAM_INVALID,
            format!(
                "a copy with pageable host memory waits for stream {}, which cannot be done from one of its own tasks; use pinned memory",
                s.handle.id()
            ),
        ));
    }
    let seq = hooks::queue(
        s.handle.id(),
        &p.accesses(),
        ACL_ERROR_RT_PARAM_INVALID,
        || {
            s.push(
                name,
                TaskKind::Device,
                Box::new(move || {
                    // SAFETY: validated by `plan`; device and pinned memory is
                    // released only after the work queued before its free ran,
                    // and pageable host memory is waited for below.
                    unsafe { p.run() };
                    Ok(())
                }),
            )
        },
    )?;
    if p.pageable {
        // The call returns after the copy ran: the host has seen it.
        hooks::synchronize(s.handle.id(), || {
            s.wait_for(seq, None);
            ((), true)
        });
    }
    Ok(())
}

/// A validated memset: `(ptr, byte, count)`, or nothing for count 0.
fn plan_memset(
    ptr: *mut c_void,
    max_count: usize,
    value: i32,
    count: usize,
    acting: Option<u32>,
) -> MockResult<Option<(usize, u8, usize)>> {
    if max_count < count {
        return Err(MockError::new(
            ACL_ERROR_RT_PARAM_INVALID,
            format!("maxCount {max_count} is smaller than count {count}"),
        ));
    }
    if count == 0 {
        return Ok(None);
    }
    if ptr.is_null() {
        return Err(MockError::new(ACL_ERROR_INVALID_PARAM, "devPtr is NULL"));
    }
    let p = ptr as usize;
    let loc = classify(p);
    if loc == Location::Host {
        memory::check_not_freed(p, count, "destination")?;
        return Err(violation(
            ReportClass::WrongMemoryKind,
            ACL_ERROR_RT_PARAM_INVALID,
            &format!(
                "{} writes {p:#x} ({count} bytes), which is host memory, not memory from aclrtMalloc or aclrtMallocHost",
                gate::current_call_text()
            ),
        ));
    }
    check_range(&loc, p, count, "destination")?;
    check_device_access(acting, &loc, p, "destination")?;
    Ok(Some((p, value as u8, count)))
}

/// `aclrtMemcpy`: copies `count` bytes at once.
pub(crate) fn copy(
    dst: *mut c_void,
    dest_max: usize,
    src: *const c_void,
    count: usize,
    kind: aclrtMemcpyKind,
) -> MockResult<()> {
    let acting = acting_device(None);
    run_now(plan_1d(dst, dest_max, src, count, kind, acting)?)
}

/// `aclrtMemcpyAsync` (queued as `name`): queues a copy of `count` bytes
/// on `stream`.
pub(crate) fn copy_async(
    name: &'static str,
    dst: *mut c_void,
    dest_max: usize,
    src: *const c_void,
    count: usize,
    kind: aclrtMemcpyKind,
    stream: aclrtStream,
) -> MockResult<()> {
    let s = lookup_stream(stream)?;
    let _named = gate::stream_scope(s.handle.id());
    let p = plan_1d(dst, dest_max, src, count, kind, acting_device(Some(&s)))?;
    run_async(name, p, s, kind)
}

/// `aclrtMemcpy2d`: copies `shape.rows` rows of `shape.width` bytes at
/// once.
pub(crate) fn copy_2d(
    dst: *mut c_void,
    src: *const c_void,
    shape: Shape,
    kind: aclrtMemcpyKind,
) -> MockResult<()> {
    let acting = acting_device(None);
    run_now(plan_2d(dst, src, shape, kind, acting)?)
}

/// `aclrtMemcpy2dAsync` (queued as `name`): queues a copy of
/// `shape.rows` rows of `shape.width` bytes on `stream`.
pub(crate) fn copy_2d_async(
    name: &'static str,
    dst: *mut c_void,
    src: *const c_void,
    shape: Shape,
    kind: aclrtMemcpyKind,
    stream: aclrtStream,
) -> MockResult<()> {
    let s = lookup_stream(stream)?;
    let _named = gate::stream_scope(s.handle.id());
    let acting = acting_device(Some(&s));
    let p = plan_2d(dst, src, shape, kind, acting)?;
    run_async(name, p, s, kind)
}

/// `aclrtMemset`: sets `count` bytes to the low byte of `value` at once.
pub(crate) fn memset(
    ptr: *mut c_void,
    max_count: usize,
    value: i32,
    count: usize,
) -> MockResult<()> {
    let acting = acting_device(None);
    if let Some((p, b, n)) = plan_memset(ptr, max_count, value, count, acting)? {
        hooks::host_access(&[Access::write(p, n)], ACL_ERROR_RT_PARAM_INVALID)?;
        // SAFETY: the range lies inside a live managed allocation.
        unsafe { std::ptr::write_bytes(p as *mut u8, b, n) };
    }
    Ok(())
}

/// `aclrtMemsetAsync` (queued as `name`): queues a memset on `stream`.
pub(crate) fn memset_async(
    name: &'static str,
    ptr: *mut c_void,
    max_count: usize,
    value: i32,
    count: usize,
    stream: aclrtStream,
) -> MockResult<()> {
    let s = lookup_stream(stream)?;
    let _named = gate::stream_scope(s.handle.id());
    let plan = plan_memset(ptr, max_count, value, count, acting_device(Some(&s)))?;
    if let Some((p, b, n)) = plan {
        hooks::queue(
            s.handle.id(),
            &[Access::write(p, n)],
            ACL_ERROR_RT_PARAM_INVALID,
            || {
                s.push(
                    name,
                    TaskKind::Device,
                    Box::new(move || {
                        // SAFETY: the range lay inside a managed allocation
                        // at enqueue time; a freed block is released only
                        // after the work queued before the free ran.
                        unsafe { std::ptr::write_bytes(p as *mut u8, b, n) };
                        Ok(())
                    }),
                )
            },
        )?;
    }
    Ok(())
}
