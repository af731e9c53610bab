//! What a test left behind on the mock, each object counted once: the
//! objects the mock's leak reports name (memory, streams, events,
//! descriptors, executors) and the aclnn descriptors and executors still
//! alive in it.
//!
//! Why "once" needs care: a device reset's leak report lists, besides the
//! device's memory, streams and events, the aclnn tensors and executors
//! whose data lies in that memory (they point into memory the reset
//! frees). Those are host objects: the reset does not release them, so they
//! are still alive in the mock afterwards and [`ascend_mock::aclnn_live_objects`]
//! lists them again. Both name such an object by its creation number
//! (`(object #N)` in a report line, `serial` in the live list), which is
//! the key here; any other report line is an object of its own.
//!
//! Objects alive before a test started are not its leftovers: pass
//! [`live_serials`] taken at its start.

use std::collections::{BTreeMap, HashSet};

use ascend_mock::sanitizer::{Report, ReportClass};

/// The creation numbers of the aclnn objects alive now.
pub fn live_serials() -> HashSet<u64> {
    ascend_mock::aclnn_live_objects()
        .iter()
        .map(|o| o.serial)
        .collect()
}

/// The objects left behind, each once.
#[derive(Debug, Default)]
pub struct Leftovers {
    /// Kind → how many, where the kind is the first word of the report
    /// line (`device` for a device buffer, `pinned` for a pinned host
    /// block, `stream`, `event`, `context`) or the aclnn type name
    /// (`aclTensor`, `aclOpExecutor`, ...).
    pub by_kind: BTreeMap<String, usize>,
    /// One description per object (a report line, or the live object).
    pub lines: Vec<String>,
    /// Objects named in more than one place (a reset's report and the
    /// live list): counted once, listed here for the record.
    pub named_twice: usize,
}

impl Leftovers {
    /// Number of objects left.
    pub fn total(&self) -> usize {
        self.lines.len()
    }

    /// How many of `kind` are left.
    pub fn of(&self, kind: &str) -> usize {
        self.by_kind.get(kind).copied().unwrap_or(0)
    }

    fn add(&mut self, kind: &str, line: String) {
        *self.by_kind.entry(kind.to_string()).or_insert(0) += 1;
        self.lines.push(line);
    }
}

/// The creation number in a leak-report line of an aclnn object
/// (`... created by aclCreateTensor (object #42)`).
pub fn serial_of(line: &str) -> Option<u64> {
    let rest = &line[line.rfind("(object #")? + "(object #".len()..];
    rest.strip_suffix(')')?.parse().ok()
}

/// Collects the leftovers from `reports` (only the leak reports are read)
/// and the aclnn objects alive now that no list owns, skipping the objects
/// whose creation number is in `before`.
pub fn leftovers(reports: &[Report], before: &HashSet<u64>) -> Leftovers {
    let mut out = Leftovers::default();
    let mut seen = HashSet::new();
    let lines = reports
        .iter()
        .filter(|r| r.class == ReportClass::Leak)
        .flat_map(|r| r.message.lines().skip(1))
        .map(str::trim)
        .filter(|l| !l.is_empty());
    for line in lines {
        if let Some(serial) = serial_of(line) {
            if before.contains(&serial) {
                continue;
            }
            if !seen.insert(serial) {
                out.named_twice += 1;
                continue;
            }
        }
        let kind = line.split_whitespace().next().unwrap_or("?");
        out.add(kind, line.to_string());
    }
    for o in ascend_mock::aclnn_live_objects() {
        if o.owner.is_some() || before.contains(&o.serial) {
            continue;
        }
        if !seen.insert(o.serial) {
            out.named_twice += 1;
            continue;
        }
        out.add(
            o.kind.name(),
            format!(
                "{} {:#x} created by {} (object #{}), alive",
                o.kind.name(),
                o.address,
                o.created_by,
                o.serial
            ),
        );
    }
    out
}

/// Destroys the aclnn objects alive now that no list owns and that are not
/// in `before` (an executor is made repeatable first, as the only way to
/// destroy one whose phase two never ran), so that later tests start
/// clean. Returns how many were destroyed.
pub fn destroy_live_objects(before: &HashSet<u64>) -> usize {
    let api = ascend_rt::api().expect("the backend is up");
    let nn = &api.nnopbase;
    let mut destroyed = 0;
    for o in ascend_mock::aclnn_live_objects() {
        if o.owner.is_some() || before.contains(&o.serial) {
            continue;
        }
        let p = o.address as *mut std::ffi::c_void;
        use ascend_mock::AclnnObjectKind as K;
        // SAFETY: `p` is a live object of the kind the mock's registry
        // names, which the test no longer uses; each is destroyed once.
        let status = unsafe {
            match o.kind {
                K::Tensor => nn.aclDestroyTensor().map(|f| f(p.cast())),
                K::TensorList => nn.aclDestroyTensorList().map(|f| f(p.cast())),
                K::Scalar => nn.aclDestroyScalar().map(|f| f(p.cast())),
                K::IntArray => nn.aclDestroyIntArray().map(|f| f(p.cast())),
                K::Executor => nn.aclSetAclOpExecutorRepeatable().and_then(|rep| {
                    rep(p.cast());
                    nn.aclDestroyAclOpExecutor().map(|f| f(p.cast()))
                }),
                _ => continue,
            }
        };
        if matches!(status, Ok(0)) {
            destroyed += 1;
        }
    }
    destroyed
}
