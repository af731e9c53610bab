//! Memory: allocation, copies, memset, memory info and pointer attributes.
//!
//! Parameter errors of copies and memsets (`destMax < count`, a kind that
//! does not match where the pointers live, a range past the end of an
//! allocation) return `ACL_ERROR_RT_PARAM_INVALID` (107000), the runtime's
//! code for them; NULL pointers and an unknown kind return
//! `ACL_ERROR_INVALID_PARAM` (100000).
//!
//! Sanitizer checks (see `crate::sanitizer`): a pointer into a freed block
//! is a `use-after-free` report, a kind that does not match the pointers
//! or device memory of a device the acting device (the stream's, or the
//! current context's for the synchronous calls) has no peer access to is
//! `wrong memory kind`, a range past the end of its allocation is
//! `out of bounds` whatever `destMax` claims, and a bad free is
//! `double free`, `invalid free` or `wrong memory kind`.
//!
//! Ordering: `aclrtMemcpy`, `aclrtMemcpy2d` and `aclrtMemset` act at once,
//! without waiting for streams. The async forms are stream tasks; with
//! pageable (unregistered) host memory on either side the call returns only
//! after the stream has run the copy, as CANN documents.
//! `aclrtFree`/`aclrtFreeHost` return at once: the pointer is invalid
//! from then on and its bytes count as free, but the block goes back to
//! the allocator only after every stream has run the work queued before
//! the free, so a queued task never touches released memory.
//!
//! Race detection (`crate::sanitizer::race`): queued copies and memsets
//! hand their device ranges to the detector before they are queued, the
//! synchronous ones are checked as host accesses, and `aclrtFree` of device
//! memory that queued work not ordered before the host still uses is a
//! `race` report (CANN's `aclrtFree` does not wait for that work); the
//! racing call fails with `ACL_ERROR_RT_PARAM_INVALID` and does nothing.

use std::ffi::c_void;

use ascend_sys::*;

use super::write_out;
use std::sync::Arc;

use crate::error::{MockError, MockResult};
use crate::fault;
use crate::gate::api_call;
use crate::memory::{self, Location, MemKind, check_range, classify};
use crate::runtime;
use crate::sanitizer::race::{self, Access};
use crate::sanitizer::{self, ReportClass, violation};
use crate::stream::Stream;

fn malloc(dev_ptr: *mut *mut c_void, size: usize, align32: bool) -> MockResult<()> {
    if dev_ptr.is_null() {
        return Err(MockError::new(ACL_ERROR_INVALID_PARAM, "devPtr is NULL"));
    }
    let device = runtime::with_runtime(|rt| Ok(rt.current_context()?.device))?;
    let p = memory::allocate(size, MemKind::Device(device), align32)?;
    // SAFETY: dev_ptr was checked non-NULL; valid for writes by contract.
    unsafe { write_out(dev_ptr, p as *mut c_void, "devPtr") }
}

/// Allocates device memory on the current device: 64-byte aligned,
/// charged `round_up(size, 32) + 32` bytes, zero-filled (CANN leaves it
/// uninitialised; callers must not rely on the zeros). Any policy value
/// is accepted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtMalloc(
    devPtr: *mut *mut c_void,
    size: usize,
    policy: aclrtMemMallocPolicy,
) -> aclError {
    let _ = policy;
    api_call("aclrtMalloc", || malloc(devPtr, size, false))
}

/// Like `aclrtMalloc`, charging `round_up(size, 32)` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtMallocAlign32(
    devPtr: *mut *mut c_void,
    size: usize,
    policy: aclrtMemMallocPolicy,
) -> aclError {
    let _ = policy;
    api_call("aclrtMallocAlign32", || malloc(devPtr, size, true))
}

/// Allocates pinned host memory (not charged to any device).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtMallocHost(hostPtr: *mut *mut c_void, size: usize) -> aclError {
    api_call("aclrtMallocHost", || {
        if hostPtr.is_null() {
            return Err(MockError::new(ACL_ERROR_INVALID_PARAM, "hostPtr is NULL"));
        }
        runtime::with_runtime(|_| Ok(()))?;
        let p = memory::allocate(size, MemKind::PinnedHost, false)?;
        // SAFETY: hostPtr was checked non-NULL; valid for writes by contract.
        unsafe { write_out(hostPtr, p as *mut c_void, "hostPtr") }
    })
}

fn free(ptr: *mut c_void, device: bool) -> MockResult<()> {
    if let Location::Device { device, .. } = classify(ptr as usize) {
        fault::check_device(device)?;
    }
    // Queued work not ordered before the free still uses the block.
    race::free(ptr as usize, device, ACL_ERROR_RT_PARAM_INVALID)?;
    // Detach under the runtime lock so that a concurrent reset or finalize
    // cannot free the same block; note how far every stream's queue goes.
    let (block, waits) = runtime::with_runtime(|rt| {
        let block = memory::detach(ptr as usize, device)?;
        let waits = rt
            .streams
            .values()
            .map(|s| (s.clone(), s.queued_point()))
            .collect::<Vec<_>>();
        Ok((block, waits))
    })?;
    memory::free_after(block, waits);
    Ok(())
}

/// Frees device memory from `aclrtMalloc`; an unknown pointer is an error.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtFree(devPtr: *mut c_void) -> aclError {
    api_call("aclrtFree", || free(devPtr, true))
}

/// Frees pinned host memory from `aclrtMallocHost`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtFreeHost(hostPtr: *mut c_void) -> aclError {
    api_call("aclrtFreeHost", || free(hostPtr, false))
}

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
            sanitizer::current_call_text(),
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
            sanitizer::current_call_text()
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
struct Shape {
    dpitch: usize,
    spitch: usize,
    width: usize,
    rows: usize,
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

#[allow(clippy::too_many_arguments)]
fn plan_2d(
    dst: *mut c_void,
    dpitch: usize,
    src: *const c_void,
    spitch: usize,
    width: usize,
    height: usize,
    kind: aclrtMemcpyKind,
    acting: Option<u32>,
) -> MockResult<Option<CopyPlan>> {
    if width > dpitch || width > spitch {
        return Err(MockError::new(
            ACL_ERROR_RT_PARAM_INVALID,
            format!("width {width} is larger than dpitch {dpitch} or spitch {spitch}"),
        ));
    }
    let shape = Shape {
        dpitch,
        spitch,
        width,
        rows: height,
    };
    plan(dst, src, shape, kind, acting)
}

fn run_now(p: Option<CopyPlan>) -> MockResult<()> {
    if let Some(p) = p {
        race::host(&p.accesses(), ACL_ERROR_RT_PARAM_INVALID)?;
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
    let seq = race::queue(&s, &p.accesses(), ACL_ERROR_RT_PARAM_INVALID, || {
        s.push(
            name,
            Box::new(move || {
                // SAFETY: validated by `plan`; device and pinned memory is
                // released only after the work queued before its free ran,
                // and pageable host memory is waited for below.
                unsafe { p.run() };
                Ok(())
            }),
        )
    })?;
    if p.pageable {
        // The call returns after the copy ran: the host has seen it.
        let snapshot = race::stream_snapshot(&s);
        s.wait_for(seq, None);
        race::host_absorbs(snapshot);
    }
    Ok(())
}

/// Copies `count` bytes at once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtMemcpy(
    dst: *mut c_void,
    destMax: usize,
    src: *const c_void,
    count: usize,
    kind: aclrtMemcpyKind,
) -> aclError {
    api_call("aclrtMemcpy", || {
        let acting = acting_device(None);
        run_now(plan_1d(dst, destMax, src, count, kind, acting)?)
    })
}

/// Queues a copy of `count` bytes on the stream.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtMemcpyAsync(
    dst: *mut c_void,
    destMax: usize,
    src: *const c_void,
    count: usize,
    kind: aclrtMemcpyKind,
    stream: aclrtStream,
) -> aclError {
    api_call("aclrtMemcpyAsync", || {
        let s = lookup_stream(stream)?;
        let _named = sanitizer::stream_scope(s.handle.id());
        let p = plan_1d(dst, destMax, src, count, kind, acting_device(Some(&s)))?;
        run_async("aclrtMemcpyAsync", p, s, kind)
    })
}

/// Copies `height` rows of `width` bytes at once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtMemcpy2d(
    dst: *mut c_void,
    dpitch: usize,
    src: *const c_void,
    spitch: usize,
    width: usize,
    height: usize,
    kind: aclrtMemcpyKind,
) -> aclError {
    api_call("aclrtMemcpy2d", || {
        let acting = acting_device(None);
        run_now(plan_2d(
            dst, dpitch, src, spitch, width, height, kind, acting,
        )?)
    })
}

/// Queues a copy of `height` rows of `width` bytes on the stream.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtMemcpy2dAsync(
    dst: *mut c_void,
    dpitch: usize,
    src: *const c_void,
    spitch: usize,
    width: usize,
    height: usize,
    kind: aclrtMemcpyKind,
    stream: aclrtStream,
) -> aclError {
    api_call("aclrtMemcpy2dAsync", || {
        let s = lookup_stream(stream)?;
        let _named = sanitizer::stream_scope(s.handle.id());
        let acting = acting_device(Some(&s));
        let p = plan_2d(dst, dpitch, src, spitch, width, height, kind, acting)?;
        run_async("aclrtMemcpy2dAsync", p, s, kind)
    })
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
                sanitizer::current_call_text()
            ),
        ));
    }
    check_range(&loc, p, count, "destination")?;
    check_device_access(acting, &loc, p, "destination")?;
    Ok(Some((p, value as u8, count)))
}

/// Sets `count` bytes to the low byte of `value` at once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtMemset(
    devPtr: *mut c_void,
    maxCount: usize,
    value: i32,
    count: usize,
) -> aclError {
    api_call("aclrtMemset", || {
        let acting = acting_device(None);
        if let Some((p, b, n)) = plan_memset(devPtr, maxCount, value, count, acting)? {
            race::host(&[Access::write(p, n)], ACL_ERROR_RT_PARAM_INVALID)?;
            // SAFETY: the range lies inside a live managed allocation.
            unsafe { std::ptr::write_bytes(p as *mut u8, b, n) };
        }
        Ok(())
    })
}

/// Queues a memset on the stream.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtMemsetAsync(
    devPtr: *mut c_void,
    maxCount: usize,
    value: i32,
    count: usize,
    stream: aclrtStream,
) -> aclError {
    api_call("aclrtMemsetAsync", || {
        let s = lookup_stream(stream)?;
        let _named = sanitizer::stream_scope(s.handle.id());
        let plan = plan_memset(devPtr, maxCount, value, count, acting_device(Some(&s)))?;
        if let Some((p, b, n)) = plan {
            race::queue(
                &s,
                &[Access::write(p, n)],
                ACL_ERROR_RT_PARAM_INVALID,
                || {
                    s.push(
                        "aclrtMemsetAsync",
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
    })
}

/// Free and total bytes of the current device (every attribute reports the
/// device's single memory pool).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtGetMemInfo(
    attr: aclrtMemAttr,
    free: *mut usize,
    total: *mut usize,
) -> aclError {
    api_call("aclrtGetMemInfo", || {
        if attr > ACL_MEM_P2P_HUGE1G {
            return Err(MockError::new(
                ACL_ERROR_INVALID_PARAM,
                format!("attr {attr} is not an aclrtMemAttr"),
            ));
        }
        if free.is_null() || total.is_null() {
            return Err(MockError::new(
                ACL_ERROR_INVALID_PARAM,
                "free or total is NULL",
            ));
        }
        let device = runtime::with_runtime(|rt| Ok(rt.current_context()?.device))?;
        let (f, t) = memory::mem_info(device);
        // SAFETY: both pointers were checked non-NULL; valid for writes by
        // contract.
        unsafe {
            write_out(free, f as usize, "free")?;
            write_out(total, t as usize, "total")
        }
    })
}

/// Where `ptr` lives: device N, pinned host, or unregistered host memory.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtPointerGetAttributes(
    ptr: *const c_void,
    attributes: *mut aclrtPtrAttributes,
) -> aclError {
    api_call("aclrtPointerGetAttributes", || {
        if ptr.is_null() {
            return Err(MockError::new(ACL_ERROR_INVALID_PARAM, "ptr is NULL"));
        }
        let mut a = aclrtPtrAttributes::default();
        match classify(ptr as usize) {
            Location::Device { device, size, .. } => {
                a.location.type_ = ACL_MEM_LOCATION_TYPE_DEVICE;
                a.location.id = device;
                a.pageSize = if size > 1 << 20 { 2 << 20 } else { 4096 };
            }
            Location::PinnedHost { .. } => {
                a.location.type_ = ACL_MEM_LOCATION_TYPE_HOST;
                a.pageSize = 4096;
            }
            Location::Host => {
                a.location.type_ = ACL_MEM_LOCATION_TYPE_UNREGISTERED;
                a.pageSize = 4096;
            }
        }
        // SAFETY: attributes is NULL or valid for writes (caller contract).
        unsafe { write_out(attributes, a, "attributes") }
    })
}
