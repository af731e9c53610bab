//! Device and pinned host memory: the registry of live allocations and the
//! rules of `aclrtMalloc`, `aclrtMemcpy` and `aclrtMemset`.
//!
//! Every block comes from the global allocator's `alloc_zeroed` with the
//! platform's basic alignment (16), which is `calloc`: large blocks are
//! fresh lazily-mapped pages, so a big untouched allocation costs no RAM
//! (asking for 64-byte alignment directly would make the allocator zero
//! the block by hand and commit every page). The block is over-allocated
//! by its alignment and its start rounded up to it ([`DEVICE_ALIGN`] for
//! device blocks, [`ALIGN`] for pinned ones and for device blocks of a
//! strict run, see [`strict`]). The registry maps each block's start
//! address to an [`Allocation`], which lets any pointer be classified
//! ([`classify`]) as device memory of device N, pinned host memory, or
//! other (pageable) host memory.
//!
//! Invariants:
//! - Allocations never overlap; the registry holds exactly the live ones.
//! - `used[d]` is the sum of the `charged` bytes of device `d`'s blocks and
//!   never exceeds the device capacity.
//! - A block is returned to the allocator only after it left the registry,
//!   and (for `aclrtFree`) after the stream work queued before the free ran.
//! - An address is in the freed-block history only while the mock still
//!   owns its memory; history entries never overlap live allocations.
//! - Lock order: the registry, then the freed-block history.
//!
//! The freed-block history (for `use-after-free` and `double free`
//! reports): while the sanitizer is on, a block the caller frees (or that
//! `aclrtResetDevice` releases with its device) is remembered with the
//! calls that allocated and freed it, and the mock
//! keeps owning its memory: first until the stream work queued before the
//! free has run, then in a bounded quarantine ([`QUARANTINE_BLOCKS`],
//! [`QUARANTINE_BYTES`], oldest evicted first). An address in the history
//! therefore cannot belong to anyone else, so a pointer found there is
//! stale, never a legitimate host buffer. A block is forgotten before it
//! goes back to the allocator; blocks larger than a quarter of the budget
//! are only remembered until their stream work has run.
//!
//! `aclrtMalloc` charges `round_up(size, 32) + 32` bytes (CANN's rule);
//! `aclrtMallocAlign32` charges `round_up(size, 32)`. The whole charged
//! block is addressable, so range checks use it.
//!
//! Layer: device core (above `stream`, whose queue positions a deferred
//! free waits for); it files its reports in `report` and names neither the
//! sanitizer nor the exports.

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

use ascend_sys::*;

use crate::error::ReportClass;
use crate::error::{MockError, MockResult};
use crate::gate::{self, CallSite};
use crate::report::{self, violation};
use crate::stream::Stream;

/// Start alignment of pinned host blocks, and CANN's documented minimum
/// for device blocks (the device alignment of strict runs).
pub const ALIGN: usize = 64;

/// Default start alignment of device blocks: programs assume more than
/// CANN's documented 64 bytes (llama.cpp's CANN backend asks for 128,
/// torch_npu rounds to 512), so the mock does not hand out less.
pub const DEVICE_ALIGN: usize = 512;

/// Whether `ASCEND_MOCK_STRICT` asks for CANN's documented minimum only:
/// device blocks aligned to [`ALIGN`] rather than [`DEVICE_ALIGN`], and
/// `aclrtFreeHost(NULL)` refused. Read at `aclInit`.
static STRICT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Reads `ASCEND_MOCK_STRICT` (set, non-empty and not `0`: strict).
pub(crate) fn reload_strict() {
    let on = std::env::var("ASCEND_MOCK_STRICT").is_ok_and(|v| !v.is_empty() && v != "0");
    STRICT.store(on, Ordering::Relaxed);
}

/// Whether the current run is strict (see `ASCEND_MOCK_STRICT`).
pub fn strict() -> bool {
    STRICT.load(Ordering::Relaxed)
}

/// The start alignment of a new block of `kind`.
pub fn block_align(kind: MemKind) -> usize {
    match kind {
        MemKind::Device(_) if !strict() => DEVICE_ALIGN,
        _ => ALIGN,
    }
}

/// Where an allocation lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemKind {
    /// Device memory of the given device.
    Device(u32),
    /// Pinned host memory from `aclrtMallocHost`.
    PinnedHost,
}

/// A live allocation.
#[derive(Debug, Clone)]
pub struct Allocation {
    /// Start address.
    pub base: usize,
    /// Addressable bytes (the charged block).
    pub size: usize,
    /// The size the caller asked for.
    pub requested: usize,
    /// Device or pinned host.
    pub kind: MemKind,
    /// A process-unique number, in allocation order.
    pub serial: u64,
    /// The call that made it.
    pub origin: Option<CallSite>,
    /// The pointer the allocator returned (`base` rounds it up to `align`).
    raw: usize,
    /// The start alignment the block was made with (over-allocated by it).
    align: usize,
    /// For a mapping of physical memory into a reserved range: the handle
    /// (the bytes belong to the reservation, never to the allocator).
    pub mapped: Option<usize>,
}

impl Allocation {
    /// "device memory of device 0" or "pinned host memory".
    pub fn describe_kind(&self) -> String {
        match self.kind {
            MemKind::Device(d) => format!("device memory of device {d}"),
            MemKind::PinnedHost => "pinned host memory".to_string(),
        }
    }

    /// "a block of N bytes at 0x... (device memory of device 0) allocated by X".
    pub fn describe(&self) -> String {
        format!(
            "a block of {} bytes at {:#x} ({}) allocated by {}",
            self.size,
            self.base,
            self.describe_kind(),
            origin_text(self.origin)
        )
    }
}

fn origin_text(site: Option<CallSite>) -> String {
    site.map_or_else(|| "an internal call".to_string(), |c| c.to_string())
}

/// A block freed by the caller whose memory the mock still holds (see
/// the module documentation on the freed-block history).
#[derive(Debug, Clone)]
pub struct FreedBlock {
    /// Start address.
    pub base: usize,
    /// Addressable bytes.
    pub size: usize,
    /// Device or pinned host.
    pub kind: MemKind,
    /// The call that allocated it.
    pub allocated_by: Option<CallSite>,
    /// The call that freed it.
    pub freed_by: Option<CallSite>,
    /// An unmapped part of a reserved virtual range (`allocated_by`: the
    /// reservation; `freed_by`: the last unmap there, if any).
    pub unmapped: bool,
}

impl FreedBlock {
    /// "a block of N bytes at 0x... freed by X; allocated by Y".
    pub fn describe(&self) -> String {
        if self.unmapped {
            let last = match self.freed_by {
                Some(c) => format!("; last unmapped by {c}"),
                None => "; never mapped".to_string(),
            };
            return format!(
                "an unmapped part of {} bytes at {:#x} of a virtual range reserved by {}{last}",
                self.size,
                self.base,
                origin_text(self.allocated_by)
            );
        }
        let kind = match self.kind {
            MemKind::Device(d) => format!("device memory of device {d}"),
            MemKind::PinnedHost => "pinned host memory".to_string(),
        };
        format!(
            "a block of {} bytes at {:#x} ({kind}) freed by {}; allocated by {}",
            self.size,
            self.base,
            origin_text(self.freed_by),
            origin_text(self.allocated_by)
        )
    }
}

/// How a pointer is classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// Inside a device allocation.
    Device {
        /// The device.
        device: u32,
        /// Start of the allocation.
        base: usize,
        /// Its addressable size.
        size: usize,
    },
    /// Inside a pinned host allocation.
    PinnedHost {
        /// Start of the allocation.
        base: usize,
        /// Its size.
        size: usize,
    },
    /// Anywhere else: pageable host memory the mock does not manage.
    Host,
}

impl Location {
    /// Whether the pointer is device memory.
    pub fn is_device(&self) -> bool {
        matches!(self, Location::Device { .. })
    }

    /// A short description for messages.
    pub fn describe(&self) -> String {
        match self {
            Location::Device { device, .. } => format!("device memory of device {device}"),
            Location::PinnedHost { .. } => "pinned host memory".to_string(),
            Location::Host => "host memory".to_string(),
        }
    }
}

struct Registry {
    allocs: BTreeMap<usize, Allocation>,
    used: Vec<u64>,
    capacity: u64,
    /// Live reserved virtual ranges by start address.
    reservations: BTreeMap<usize, Reservation>,
    /// Live physical memory handles by handle value.
    physical: BTreeMap<usize, Physical>,
}

static REGISTRY: RwLock<Registry> = RwLock::new(Registry {
    allocs: BTreeMap::new(),
    used: Vec::new(),
    capacity: 0,
    reservations: BTreeMap::new(),
    physical: BTreeMap::new(),
});

static SERIAL: AtomicU64 = AtomicU64::new(1);

fn read() -> RwLockReadGuard<'static, Registry> {
    REGISTRY.read().unwrap_or_else(|e| e.into_inner())
}

fn write() -> RwLockWriteGuard<'static, Registry> {
    REGISTRY.write().unwrap_or_else(|e| e.into_inner())
}

/// Alignment requested from the allocator: at most the platform minimum,
/// so that zeroed allocations come from `calloc`.
const RAW_ALIGN: usize = 16;

/// The allocator layout of a block of `size` addressable bytes whose start
/// is rounded up to `align`.
fn layout(size: usize, align: usize) -> Option<Layout> {
    Layout::from_size_align(size.checked_add(align)?, RAW_ALIGN).ok()
}

/// Sets up the accounting of `devices` devices of `capacity` bytes
/// (at `aclInit`; `aclFinalize` already released every block).
pub(crate) fn reset_registry(devices: u32, capacity: u64) {
    let mut reg = write();
    reg.used = vec![0; devices as usize];
    reg.capacity = capacity;
}

fn free_block(a: &Allocation) {
    if a.mapped.is_some() {
        // The bytes of a mapping belong to its reservation.
        return;
    }
    let Some(l) = layout(a.size, a.align) else {
        return;
    };
    // SAFETY: `a` was taken out of the registry, which held it since
    // `allocate` obtained `a.raw` with exactly this layout; each block leaves
    // the registry once, so it is deallocated once.
    unsafe { dealloc(a.raw as *mut u8, l) };
}

/// Takes every allocation (device and pinned host) out of the registry;
/// the caller frees them with [`free_detached`] once no stream can touch
/// them any more.
pub(crate) fn detach_all() -> Vec<Allocation> {
    let mut reg = write();
    reg.used.iter_mut().for_each(|u| *u = 0);
    std::mem::take(&mut reg.allocs)
        .into_values()
        .filter(|a| a.mapped.is_none())
        .collect()
}

/// Takes every allocation of `device` out of the registry (see
/// [`detach_all`]).
pub(crate) fn detach_device(device: u32) -> Vec<Allocation> {
    let mut reg = write();
    let keys: Vec<usize> = reg
        .allocs
        .values()
        .filter(|a| a.kind == MemKind::Device(device))
        .map(|a| a.base)
        .collect();
    if let Some(u) = reg.used.get_mut(device as usize) {
        *u = 0;
    }
    keys.iter()
        .filter_map(|k| reg.allocs.remove(k))
        .filter(|a| a.mapped.is_none())
        .collect()
}

/// A detached block and the stream positions it must wait for.
type Deferred = (Allocation, Vec<(Arc<Stream>, u64)>);

/// Returns `block` to the allocator once each stream in `waits` has
/// finished the task with the given sequence number. A background thread
/// does the waiting; if it cannot be started, this call waits itself.
pub(crate) fn free_after(block: Allocation, waits: Vec<(Arc<Stream>, u64)>) {
    static REAPER: OnceLock<Option<Mutex<Sender<Deferred>>>> = OnceLock::new();
    let reaper = REAPER.get_or_init(|| {
        let (tx, rx) = channel::<Deferred>();
        std::thread::Builder::new()
            .name("ascend-mock-free".to_string())
            .spawn(move || {
                for (block, waits) in rx {
                    for (s, seq) in waits {
                        s.wait_for(seq, None);
                    }
                    retire(block);
                }
            })
            .ok()
            .map(|_| Mutex::new(tx))
    });
    let item = (block, waits);
    let item = match reaper {
        Some(tx) => match tx.lock().unwrap_or_else(|e| e.into_inner()).send(item) {
            Ok(()) => return,
            Err(returned) => returned.0,
        },
        None => item,
    };
    let (block, waits) = item;
    for (s, _) in &waits {
        s.wait_for_queued();
    }
    retire(block);
}

/// How many released blocks the freed-block history holds at most.
pub const QUARANTINE_BLOCKS: usize = 1024;
/// How many bytes of released blocks it holds at most; a block larger
/// than a quarter of this is returned to the allocator at once.
pub const QUARANTINE_BYTES: usize = 256 << 20;

/// The freed-block history: blocks freed by the caller that the mock still
/// owns, first while queued stream work may use them (the reaper holds
/// them), then in quarantine until evicted.
struct Quarantine {
    /// Every remembered block by base, with the block itself once the
    /// streams passed its free.
    blocks: BTreeMap<usize, (FreedBlock, Option<Allocation>)>,
    /// Bases of the held blocks, oldest first.
    held: VecDeque<usize>,
    /// Bytes of the held blocks.
    bytes: usize,
}

static QUARANTINE: Mutex<Quarantine> = Mutex::new(Quarantine {
    blocks: BTreeMap::new(),
    held: VecDeque::new(),
    bytes: 0,
});

fn quarantine() -> MutexGuard<'static, Quarantine> {
    QUARANTINE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Returns blocks that `aclrtResetDevice` detached, after the device's
/// streams stopped: with the sanitizer on they join the freed-block
/// history as freed by the current call (so a later use is reported with
/// it), else they go back to the allocator at once.
pub(crate) fn release_detached(blocks: Vec<Allocation>) {
    if !report::enabled() {
        free_detached(blocks);
        return;
    }
    for b in blocks {
        remember_freed(&b);
        retire(b);
    }
}

/// Remembers that `a` was freed by the current call (before the block
/// leaves the mock).
fn remember_freed(a: &Allocation) {
    let record = FreedBlock {
        base: a.base,
        size: a.size,
        kind: a.kind,
        allocated_by: a.origin,
        freed_by: gate::current_call(),
        unmapped: false,
    };
    quarantine().blocks.insert(a.base, (record, None));
}

/// Takes a block whose stream work has run: keeps it in quarantine when
/// it was remembered and is small enough, else returns it to the
/// allocator (forgetting it first, so the history only names memory the
/// mock still owns).
fn retire(block: Allocation) {
    let mut q = quarantine();
    let remembered = q
        .blocks
        .get(&block.base)
        .is_some_and(|(_, held)| held.is_none());
    if !remembered || block.size > QUARANTINE_BYTES / 4 {
        if remembered {
            q.blocks.remove(&block.base);
        }
        drop(q);
        free_block(&block);
        return;
    }
    let (base, size) = (block.base, block.size);
    if let Some(entry) = q.blocks.get_mut(&base) {
        entry.1 = Some(block);
    }
    q.held.push_back(base);
    q.bytes += size;
    let mut evicted = Vec::new();
    while q.held.len() > QUARANTINE_BLOCKS || q.bytes > QUARANTINE_BYTES {
        let Some(old) = q.held.pop_front() else { break };
        if let Some((_, Some(a))) = q.blocks.remove(&old) {
            q.bytes -= a.size;
            evicted.push(a);
        }
    }
    drop(q);
    free_detached(evicted);
}

/// Forgets the freed-block history and returns the held blocks to the
/// allocator (at `aclFinalize`). Blocks still waiting for their streams
/// are returned by the reaper.
pub(crate) fn purge_freed() {
    let blocks = {
        let mut q = quarantine();
        q.held.clear();
        q.bytes = 0;
        std::mem::take(&mut q.blocks)
    };
    free_detached(blocks.into_values().filter_map(|(_, a)| a).collect());
}

/// The freed block containing `ptr`, while the mock still holds it.
pub fn freed_block(ptr: usize) -> Option<FreedBlock> {
    if let Some(f) = unmapped_part(ptr) {
        return Some(f);
    }
    let q = quarantine();
    q.blocks
        .range(..=ptr)
        .next_back()
        .filter(|(_, (f, _))| ptr < f.base + f.size)
        .map(|(_, (f, _))| f.clone())
}

/// What an access through an argument named `role` does, for messages.
fn verb(role: &str) -> &'static str {
    if role.starts_with("dest") || role.starts_with("out") {
        "writes"
    } else if role.starts_with("src") || role.starts_with("source") || role.starts_with("in") {
        "reads"
    } else {
        "uses"
    }
}

/// Fails with a `use-after-free` report when `ptr` lies in a block the
/// caller already freed (see [`freed_block`]); `len` bytes are accessed
/// through the argument `role`.
pub fn check_not_freed(ptr: usize, len: usize, role: &str) -> MockResult<()> {
    match freed_block(ptr) {
        None => Ok(()),
        Some(f) => Err(violation(
            ReportClass::UseAfterFree,
            ACL_ERROR_RT_PARAM_INVALID,
            &format!(
                "{} {} {ptr:#x} ({len} bytes, the {role}) of {}",
                gate::current_call_text(),
                verb(role),
                f.describe()
            ),
        )),
    }
}

/// Returns detached blocks to the allocator.
pub(crate) fn free_detached(blocks: Vec<Allocation>) {
    blocks.iter().for_each(free_block);
}

/// The bytes `aclrtMalloc` charges for `size` (`align32` for
/// `aclrtMallocAlign32`).
pub fn charged_size(size: usize, align32: bool) -> Option<usize> {
    let rounded = size.checked_add(31)? & !31;
    if align32 {
        Some(rounded)
    } else {
        rounded.checked_add(32)
    }
}

/// Allocates `size` bytes of `kind`; device memory is charged against the
/// device's capacity.
pub(crate) fn allocate(size: usize, kind: MemKind, align32: bool) -> MockResult<usize> {
    if size == 0 {
        return Err(MockError::new(
            ACL_ERROR_INVALID_PARAM,
            "size is 0; the size must be greater than 0",
        ));
    }
    let block = charged_size(size, align32).ok_or_else(|| {
        MockError::new(ACL_ERROR_INVALID_PARAM, format!("size {size} is too large"))
    })?;
    let mut reg = write();
    if let MemKind::Device(d) = kind {
        let capacity = reg.capacity;
        let used = *reg.used.get(d as usize).ok_or_else(|| {
            MockError::new(
                ACL_ERROR_RT_INVALID_DEVICEID,
                format!("device {d} does not exist"),
            )
        })?;
        if (block as u64) > capacity - used {
            return Err(MockError::new(
                ACL_ERROR_RT_MEMORY_ALLOCATION,
                format!(
                    "out of device memory on device {d}: requested {size} bytes ({block} after rounding), but only {} of {capacity} bytes are free",
                    capacity - used
                ),
            ));
        }
    }
    let align = block_align(kind);
    let Some(l) = layout(block, align) else {
        return Err(MockError::new(
            ACL_ERROR_RT_MEMORY_ALLOCATION,
            format!("size {size} exceeds the address space"),
        ));
    };
    // SAFETY: the layout has a non-zero size (block + align) and a valid
    // power-of-two alignment.
    let raw = unsafe { alloc_zeroed(l) };
    if raw.is_null() {
        return Err(MockError::new(
            match kind {
                MemKind::Device(_) => ACL_ERROR_RT_MEMORY_ALLOCATION,
                MemKind::PinnedHost => ACL_ERROR_BAD_ALLOC,
            },
            format!("the host could not reserve {block} bytes for a {size}-byte allocation"),
        ));
    }
    let raw = raw as usize;
    // align is a power of two, so base < raw + align; the allocation has
    // block + align bytes, so [base, base + block) lies inside it.
    let base = (raw + align - 1) & !(align - 1);
    if let MemKind::Device(d) = kind {
        reg.used[d as usize] += block as u64;
    }
    reg.allocs.insert(
        base,
        Allocation {
            base,
            size: block,
            requested: size,
            kind,
            serial: SERIAL.fetch_add(1, Ordering::Relaxed),
            origin: gate::current_call(),
            raw,
            align,
            mapped: None,
        },
    );
    Ok(base)
}

/// Takes the block starting at `ptr` out of the registry for a caller's
/// free; it must be device memory (`want_device`) or pinned host memory.
/// Anything else is a sanitizer report (`double free`, `invalid free`,
/// `wrong memory kind`). The caller frees the block with [`free_after`].
pub(crate) fn detach(ptr: usize, want_device: bool) -> MockResult<Allocation> {
    let what = if want_device {
        "device memory from aclrtMalloc"
    } else {
        "pinned host memory from aclrtMallocHost"
    };
    if ptr == 0 {
        return Err(MockError::new(ACL_ERROR_INVALID_PARAM, "pointer is NULL"));
    }
    let site = gate::current_call_text();
    let mut reg = write();
    let Some(a) = reg.allocs.get(&ptr) else {
        let inside = reg
            .allocs
            .range(..ptr)
            .next_back()
            .filter(|(_, a)| ptr < a.base + a.size)
            .map(|(_, a)| a.clone());
        drop(reg);
        return Err(bad_free(&site, ptr, what, inside));
    };
    if a.mapped.is_some() {
        return Err(violation(
            ReportClass::InvalidFree,
            ACL_ERROR_INVALID_PARAM,
            &format!(
                "{site} of {ptr:#x}: it is {}, mapped into a reserved range; unmap it with aclrtUnmapMem",
                a.describe()
            ),
        ));
    }
    let is_device = matches!(a.kind, MemKind::Device(_));
    if is_device != want_device {
        return Err(violation(
            ReportClass::WrongMemoryKind,
            ACL_ERROR_INVALID_PARAM,
            &format!(
                "{site} of {ptr:#x}: it is {} but this call frees {what}",
                a.describe()
            ),
        ));
    }
    let a = reg.allocs.remove(&ptr).expect("entry checked above");
    if let MemKind::Device(d) = a.kind
        && let Some(u) = reg.used.get_mut(d as usize)
    {
        *u -= a.size as u64;
    }
    if report::enabled() {
        remember_freed(&a);
    }
    Ok(a)
}

/// The report for a free of `ptr`, which starts no live allocation
/// (`inside`: the live allocation containing it, if any).
fn bad_free(site: &str, ptr: usize, what: &str, inside: Option<Allocation>) -> MockError {
    let code = ACL_ERROR_INVALID_PARAM;
    if let Some(a) = inside {
        return violation(
            ReportClass::InvalidFree,
            code,
            &format!(
                "{site} of {ptr:#x}: the pointer points inside {}, {} bytes past its start, not to its start",
                a.describe(),
                ptr - a.base
            ),
        );
    }
    let by_caller = |f: &FreedBlock| {
        f.freed_by
            .is_some_and(|c| matches!(c.api, "aclrtFree" | "aclrtFreeHost"))
    };
    match freed_block(ptr) {
        Some(f) if f.base == ptr && by_caller(&f) => violation(
            ReportClass::DoubleFree,
            code,
            &format!("{site} of {ptr:#x}: {}; it was already freed", f.describe()),
        ),
        Some(f) if f.base == ptr => violation(
            ReportClass::InvalidFree,
            code,
            &format!(
                "{site} of {ptr:#x}: {}; the runtime already freed it with its device",
                f.describe()
            ),
        ),
        Some(f) => violation(
            ReportClass::InvalidFree,
            code,
            &format!(
                "{site} of {ptr:#x}: the pointer points inside {}, {} bytes past its start; it was already freed",
                f.describe(),
                ptr - f.base
            ),
        ),
        None => violation(
            ReportClass::InvalidFree,
            code,
            &format!(
                "{site} of {ptr:#x}: the pointer is not {what} (unknown or already freed pointer)"
            ),
        ),
    }
}

/// Classifies `ptr`.
pub fn classify(ptr: usize) -> Location {
    let reg = read();
    match reg.allocs.range(..=ptr).next_back() {
        Some((_, a)) if ptr < a.base + a.size => match a.kind {
            MemKind::Device(device) => Location::Device {
                device,
                base: a.base,
                size: a.size,
            },
            MemKind::PinnedHost => Location::PinnedHost {
                base: a.base,
                size: a.size,
            },
        },
        _ => Location::Host,
    }
}

/// The allocation containing `ptr`, if any.
pub fn allocation_of(ptr: usize) -> Option<Allocation> {
    let reg = read();
    reg.allocs
        .range(..=ptr)
        .next_back()
        .filter(|(_, a)| ptr < a.base + a.size)
        .map(|(_, a)| a.clone())
}

/// Checks that `[ptr, ptr + len)` stays inside the managed allocation
/// that holds `ptr` (no check for unmanaged host memory); `role` names the
/// argument in the message. A range that leaves its allocation is an
/// `out of bounds` report.
pub fn check_range(loc: &Location, ptr: usize, len: usize, role: &str) -> MockResult<()> {
    let (base, size) = match *loc {
        Location::Device { base, size, .. } | Location::PinnedHost { base, size } => (base, size),
        Location::Host => return Ok(()),
    };
    let offset = ptr.checked_sub(base).filter(|o| *o <= size);
    let origin = || {
        allocation_of(base).map_or_else(String::new, |a| {
            format!("; allocated by {}", origin_text(a.origin))
        })
    };
    let site = gate::current_call_text();
    let Some(offset) = offset else {
        return Err(violation(
            ReportClass::OutOfBounds,
            ACL_ERROR_RT_PARAM_INVALID,
            &format!(
                "{site} {} {role} {ptr:#x}, which is outside the {} allocation {base:#x} of {size} bytes{}",
                verb(role),
                loc.describe(),
                origin()
            ),
        ));
    };
    let size = mapped_extent(base, size);
    if len > size - offset {
        return Err(violation(
            ReportClass::OutOfBounds,
            ACL_ERROR_RT_PARAM_INVALID,
            &format!(
                "{site} {} {role} range {ptr:#x}+{len}, which runs past the end of its {} allocation {base:#x} of {size} bytes (by {} bytes){}",
                verb(role),
                loc.describe(),
                len - (size - offset),
                origin()
            ),
        ));
    }
    Ok(())
}

/// Every live allocation of `kind` (`None`: of every kind), oldest first.
pub fn live_blocks(kind: Option<MemKind>) -> Vec<Allocation> {
    let mut v: Vec<Allocation> = read()
        .allocs
        .values()
        .filter(|a| kind.is_none_or(|k| a.kind == k))
        .cloned()
        .collect();
    v.sort_by_key(|a| a.serial);
    v
}

/// `(free, total)` bytes of `device`.
pub fn mem_info(device: u32) -> (u64, u64) {
    let reg = read();
    let used = reg.used.get(device as usize).copied().unwrap_or(0);
    (reg.capacity - used, reg.capacity)
}

/// Number of live allocations of `kind`.
pub fn live_allocations(kind: MemKind) -> usize {
    read().allocs.values().filter(|a| a.kind == kind).count()
}

// ---- Virtual memory: reserved ranges and physical memory handles --------
//
// A reserved range is real host address space: `aclrtReserveMemAddress`
// takes `size` (rounded up to the granularity) zeroed bytes from the
// allocator, lazily committed like every block, starting on a granularity
// boundary. A physical handle is capacity charged to its device plus, while
// it is not mapped, the bytes it holds (`saved`, none until its first
// unmap: zeros). Mapping copies the handle's bytes into the range and
// registers the mapped part as a device allocation (so copies, memsets and
// operators accept it like `aclrtMalloc` memory); unmapping copies them
// back and removes the registration, so an access through an unmapped
// part classifies as host memory and the history ([`freed_block`]) reports
// it as a `use-after-free` of an unmapped part. A handle is mapped at most
// once at a time.

/// The allocation granularity of physical memory (CANN: 2 MiB).
pub const VMM_GRANULARITY: usize = 2 << 20;

/// The granularity of the 1 GiB huge-page attributes (`*_HUGE1G`).
pub const VMM_GRANULARITY_1G: usize = 1 << 30;

/// A reserved virtual range.
#[derive(Debug)]
struct Reservation {
    base: usize,
    size: usize,
    raw: usize,
    origin: Option<CallSite>,
    /// The last unmap at each mapping start, for reports.
    unmapped_by: BTreeMap<usize, CallSite>,
}

/// A physical memory handle.
#[derive(Debug)]
struct Physical {
    device: u32,
    size: usize,
    /// The bytes while unmapped (`None`: all zero).
    saved: Option<Box<[u8]>>,
    /// Where it is mapped.
    mapped_at: Option<usize>,
    origin: Option<CallSite>,
}

fn vmm_err(message: impl Into<String>) -> MockError {
    MockError::new(ACL_ERROR_INVALID_PARAM, message)
}

/// The granularity of physical memory with attribute `attr`.
pub fn vmm_granularity(attr: aclrtMemAttr) -> usize {
    match attr {
        ACL_HBM_MEM_HUGE1G | ACL_HBM_MEM_P2P_HUGE1G | ACL_MEM_HUGE1G | ACL_MEM_P2P_HUGE1G => {
            VMM_GRANULARITY_1G
        }
        _ => VMM_GRANULARITY,
    }
}

fn reservation_layout(size: usize) -> Option<Layout> {
    Layout::from_size_align(size.checked_add(VMM_GRANULARITY)?, RAW_ALIGN).ok()
}

/// Reserves `size` bytes of address space (rounded up to the
/// granularity); returns its start.
pub(crate) fn reserve(size: usize) -> MockResult<usize> {
    if size == 0 {
        return Err(vmm_err("size is 0; the size must be greater than 0"));
    }
    let rounded = size
        .checked_add(VMM_GRANULARITY - 1)
        .map(|s| s & !(VMM_GRANULARITY - 1))
        .ok_or_else(|| vmm_err(format!("size {size} is too large")))?;
    let l = reservation_layout(rounded).ok_or_else(|| {
        MockError::new(
            ACL_ERROR_RT_MEMORY_ALLOCATION,
            format!("size {size} exceeds the address space"),
        )
    })?;
    // SAFETY: the layout has a non-zero size and a valid alignment.
    let raw = unsafe { alloc_zeroed(l) };
    if raw.is_null() {
        return Err(MockError::new(
            ACL_ERROR_RT_MEMORY_ALLOCATION,
            format!("the host could not reserve {rounded} bytes of address space"),
        ));
    }
    let raw = raw as usize;
    // raw + GRANULARITY bytes of slack: [base, base + rounded) is inside.
    let base = (raw + VMM_GRANULARITY - 1) & !(VMM_GRANULARITY - 1);
    write().reservations.insert(
        base,
        Reservation {
            base,
            size: rounded,
            raw,
            origin: gate::current_call(),
            unmapped_by: BTreeMap::new(),
        },
    );
    Ok(base)
}

fn free_reservation(r: &Reservation) {
    if let Some(l) = reservation_layout(r.size) {
        // SAFETY: `r` left the registry, which held it since `reserve`
        // obtained `r.raw` with exactly this layout; it leaves once.
        unsafe { dealloc(r.raw as *mut u8, l) };
    }
}

/// Releases the reservation starting at `ptr`; it must have no mapping.
pub(crate) fn release_reservation(ptr: usize) -> MockResult<()> {
    if ptr == 0 {
        return Err(vmm_err("virPtr is NULL"));
    }
    let mut reg = write();
    let Some(r) = reg.reservations.get(&ptr) else {
        return Err(vmm_err(format!(
            "{ptr:#x} is not the start of a reserved range (unknown or already released)"
        )));
    };
    let end = r.base + r.size;
    if let Some((m, _)) = reg
        .allocs
        .range(r.base..end)
        .find(|(_, a)| a.mapped.is_some())
    {
        return Err(vmm_err(format!(
            "the range at {ptr:#x} still has memory mapped at {m:#x}; call aclrtUnmapMem first"
        )));
    }
    let r = reg.reservations.remove(&ptr).expect("checked above");
    drop(reg);
    free_reservation(&r);
    Ok(())
}

/// Allocates `size` bytes of physical memory on `device` (charged to it);
/// `size` must be a multiple of `granularity`. Returns the handle.
pub(crate) fn malloc_physical(size: usize, device: u32, granularity: usize) -> MockResult<usize> {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    if size == 0 || size % granularity != 0 {
        return Err(vmm_err(format!(
            "size {size} is not a non-zero multiple of the granularity {granularity}"
        )));
    }
    let mut reg = write();
    let capacity = reg.capacity;
    let used = reg.used.get_mut(device as usize).ok_or_else(|| {
        MockError::new(
            ACL_ERROR_RT_INVALID_DEVICEID,
            format!("device {device} does not exist"),
        )
    })?;
    if size as u64 > capacity - *used {
        return Err(MockError::new(
            ACL_ERROR_RT_MEMORY_ALLOCATION,
            format!(
                "out of device memory on device {device}: requested {size} bytes, but only {} of {capacity} bytes are free",
                capacity - *used
            ),
        ));
    }
    *used += size as u64;
    // A value no allocation can have: odd, in the low half of a tagged range.
    let handle = 0xACC0_0000_0001_usize + (NEXT.fetch_add(1, Ordering::Relaxed) as usize) * 2;
    reg.physical.insert(
        handle,
        Physical {
            device,
            size,
            saved: None,
            mapped_at: None,
            origin: gate::current_call(),
        },
    );
    Ok(handle)
}

/// Frees the physical memory `handle`; it must not be mapped.
pub(crate) fn free_physical(handle: usize) -> MockResult<()> {
    let mut reg = write();
    let Some(p) = reg.physical.get(&handle) else {
        return Err(vmm_err(format!(
            "handle {handle:#x} is not a live physical memory handle (unknown or already freed)"
        )));
    };
    if let Some(at) = p.mapped_at {
        return Err(vmm_err(format!(
            "handle {handle:#x} is still mapped at {at:#x}; call aclrtUnmapMem first"
        )));
    }
    let p = reg.physical.remove(&handle).expect("checked above");
    if let Some(u) = reg.used.get_mut(p.device as usize) {
        *u = u.saturating_sub(p.size as u64);
    }
    Ok(())
}

/// Maps `handle` (of exactly `size` bytes) at `ptr`, inside a reserved range.
pub(crate) fn map(ptr: usize, size: usize, handle: usize) -> MockResult<()> {
    let mut reg = write();
    let Some(p) = reg.physical.get(&handle) else {
        return Err(vmm_err(format!(
            "handle {handle:#x} is not a live physical memory handle"
        )));
    };
    if size != p.size {
        return Err(vmm_err(format!(
            "size {size} differs from the handle's size {} (aclrtMallocPhysical)",
            p.size
        )));
    }
    if let Some(at) = p.mapped_at {
        return Err(vmm_err(format!(
            "handle {handle:#x} is already mapped at {at:#x}"
        )));
    }
    let device = p.device;
    if ptr % VMM_GRANULARITY != 0 {
        return Err(vmm_err(format!(
            "virPtr {ptr:#x} is not aligned to the granularity {VMM_GRANULARITY}"
        )));
    }
    let Some(r) = reg
        .reservations
        .range(..=ptr)
        .next_back()
        .map(|(_, r)| r)
        .filter(|r| ptr < r.base + r.size)
    else {
        return Err(vmm_err(format!(
            "virPtr {ptr:#x} is not inside a range reserved with aclrtReserveMemAddress"
        )));
    };
    let (rbase, rend) = (r.base, r.base + r.size);
    if size > rend - ptr {
        return Err(vmm_err(format!(
            "{ptr:#x}+{size} runs past the end of the reserved range {rbase:#x} of {} bytes",
            rend - rbase
        )));
    }
    for (_, a) in reg.allocs.range(rbase..rend) {
        if a.base < ptr + size && ptr < a.base + a.size {
            return Err(vmm_err(format!(
                "{ptr:#x}+{size} overlaps memory already mapped at {:#x}+{}",
                a.base, a.size
            )));
        }
        if a.kind != MemKind::Device(device) {
            return Err(vmm_err(format!(
                "the range at {rbase:#x} already maps memory of another device ({}); one range binds one device's memory",
                a.describe_kind()
            )));
        }
    }
    let p = reg.physical.get_mut(&handle).expect("checked above");
    // SAFETY: [ptr, ptr + size) lies inside the live reservation
    // [rbase, rend), whose bytes the mock owns and nothing else maps (no
    // overlap with another mapping, checked above); `saved` has `size`
    // bytes. The registry's write lock keeps the reservation alive.
    unsafe {
        match &p.saved {
            Some(bytes) => {
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr as *mut u8, size);
            }
            None => std::ptr::write_bytes(ptr as *mut u8, 0, size),
        }
    }
    p.saved = None;
    p.mapped_at = Some(ptr);
    reg.allocs.insert(
        ptr,
        Allocation {
            base: ptr,
            size,
            requested: size,
            kind: MemKind::Device(device),
            serial: SERIAL.fetch_add(1, Ordering::Relaxed),
            origin: gate::current_call(),
            raw: ptr,
            align: VMM_GRANULARITY,
            mapped: Some(handle),
        },
    );
    Ok(())
}

/// Unmaps the mapping that starts at `ptr`, keeping its bytes in its
/// handle. The caller made sure no queued work still uses it.
pub(crate) fn unmap(ptr: usize) -> MockResult<()> {
    if ptr == 0 {
        return Err(vmm_err("virPtr is NULL"));
    }
    let mut reg = write();
    let handle = match reg.allocs.get(&ptr) {
        Some(a) if a.mapped.is_some() => a.mapped.expect("checked"),
        _ => {
            return Err(vmm_err(format!(
                "{ptr:#x} is not the start of a mapping made by aclrtMapMem"
            )));
        }
    };
    let a = reg.allocs.remove(&ptr).expect("checked above");
    let saved = {
        // SAFETY: [ptr, ptr + a.size) was a live mapping inside a live
        // reservation (the write lock keeps it), so it is readable.
        let bytes = unsafe { std::slice::from_raw_parts(ptr as *const u8, a.size) };
        bytes.to_vec().into_boxed_slice()
    };
    if let Some(p) = reg.physical.get_mut(&handle) {
        p.saved = Some(saved);
        p.mapped_at = None;
    }
    if let Some(site) = gate::current_call()
        && let Some((_, r)) = reg.reservations.range_mut(..=ptr).next_back()
    {
        r.unmapped_by.insert(ptr, site);
    }
    Ok(())
}

/// The unmapped part of a reserved range containing `ptr`, if any.
fn unmapped_part(ptr: usize) -> Option<FreedBlock> {
    let reg = read();
    let (_, r) = reg
        .reservations
        .range(..=ptr)
        .next_back()
        .filter(|(_, r)| ptr < r.base + r.size)?;
    if reg
        .allocs
        .range(..=ptr)
        .next_back()
        .is_some_and(|(_, a)| ptr < a.base + a.size)
    {
        return None;
    }
    // The hole: from the end of the mapping before ptr to the start of the
    // next one, within the range.
    let end = r.base + r.size;
    let start = reg
        .allocs
        .range(r.base..ptr)
        .next_back()
        .map_or(r.base, |(_, a)| a.base + a.size);
    let stop = reg.allocs.range(ptr..end).next().map_or(end, |(b, _)| *b);
    let last_unmap = r
        .unmapped_by
        .range(..=ptr)
        .next_back()
        .filter(|(b, _)| **b >= start)
        .map(|(_, c)| *c);
    Some(FreedBlock {
        base: start,
        size: stop - start,
        kind: MemKind::Device(0),
        allocated_by: r.origin,
        freed_by: last_unmap,
        unmapped: true,
    })
}

/// The size of the addressable span starting at `base` (a block of
/// `size` bytes): a mapping continues into the mappings that follow it
/// without a gap in the same range.
fn mapped_extent(base: usize, size: usize) -> usize {
    let reg = read();
    let Some(a) = reg.allocs.get(&base) else {
        return size;
    };
    if a.mapped.is_none() {
        return size;
    }
    let kind = a.kind;
    let mut end = base + a.size;
    while let Some(next) = reg.allocs.get(&end) {
        if next.mapped.is_none() || next.kind != kind {
            break;
        }
        end += next.size;
    }
    end - base
}

/// Releases the virtual memory state at a reset of `device` (its physical
/// handles, unmapping them) or at finalize (`None`: everything); returns
/// one leak line per handle and reservation the caller left alive. The
/// streams that could touch the memory have stopped.
pub(crate) fn release_virtual(device: Option<u32>) -> Vec<String> {
    let mut reg = write();
    let mut leaks = Vec::new();
    let handles: Vec<usize> = reg
        .physical
        .iter()
        .filter(|(_, p)| device.is_none_or(|d| p.device == d))
        .map(|(h, _)| *h)
        .collect();
    for h in handles {
        let p = reg.physical.remove(&h).expect("listed above");
        if let Some(at) = p.mapped_at {
            reg.allocs.remove(&at);
        }
        if let Some(u) = reg.used.get_mut(p.device as usize) {
            *u = u.saturating_sub(p.size as u64);
        }
        leaks.push(format!(
            "physical memory handle {h:#x} of {} bytes on device {}{} allocated by {}",
            p.size,
            p.device,
            p.mapped_at
                .map_or_else(String::new, |at| format!(" (mapped at {at:#x})")),
            origin_text(p.origin)
        ));
    }
    if device.is_none() {
        let ranges = std::mem::take(&mut reg.reservations);
        drop(reg);
        for r in ranges.into_values() {
            leaks.push(format!(
                "reserved virtual range {:#x} of {} bytes reserved by {}",
                r.base,
                r.size,
                origin_text(r.origin)
            ));
            free_reservation(&r);
        }
    }
    leaks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charging_follows_cann() {
        assert_eq!(charged_size(1, false), Some(64));
        assert_eq!(charged_size(32, false), Some(64));
        assert_eq!(charged_size(33, false), Some(96));
        assert_eq!(charged_size(33, true), Some(64));
        assert_eq!(charged_size(usize::MAX, false), None);
    }

    #[test]
    fn pinned_blocks_are_classified_and_freed() {
        let p = allocate(100, MemKind::PinnedHost, false).unwrap();
        assert_eq!(p % ALIGN, 0);
        assert!(matches!(classify(p + 99), Location::PinnedHost { base, .. } if base == p));
        let a = allocation_of(p + 5).unwrap();
        assert_eq!((a.requested, a.size), (100, 160));
        assert_eq!(classify(p + 160), Location::Host);
        let loc = classify(p);
        assert!(check_range(&loc, p, 160, "dst").is_ok());
        let err = check_range(&loc, p + 8, 160, "dst").unwrap_err();
        assert!(err.message.contains("runs past the end"), "{}", err.message);
        assert!(err.message.contains("(by 8 bytes)"), "{}", err.message);
        let before = check_range(&loc, p - 64, 1, "src").unwrap_err();
        assert!(before.message.contains("is outside"), "{}", before.message);
        assert!(
            before.message.starts_with("out of bounds: "),
            "{}",
            before.message
        );
        assert!(check_range(&loc, p + 160, 0, "dst").is_ok());
        assert!(check_range(&loc, p + 100, usize::MAX, "dst").is_err());
        assert!(detach(p, true).is_err());
        assert!(detach(p + 1, false).unwrap_err().message.contains("inside"));
        free_after(detach(p, false).unwrap(), Vec::new());
        assert!(
            detach(p, false)
                .unwrap_err()
                .message
                .contains("already freed")
        );
        assert!(allocate(0, MemKind::PinnedHost, false).is_err());
    }
}
