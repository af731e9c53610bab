//! Communicators: the [`Group`] that all ranks of one communicator share,
//! the per-rank [`Comm`] behind each `HcclComm` handle, the registry of
//! live communicators, and the rendezvous of `HcclCommInitRootInfo` (in
//! this process for an in-process root info; through `link` and `hub` for
//! one served over TCP).
//!
//! A communicator whose ranks all live in this process has one `Group` for
//! all its ranks. A rank of a communicator that spans processes has a
//! `Group` of its own holding its [`Link`] to the root process (the
//! collectives and sends of such a group go over the link).
//!
//! Invariants:
//! - An `HcclComm` is a tagged id (tag `0xCC` in bits 40..48), never an
//!   address: unknown, destroyed or foreign handles are refused by
//!   [`lookup`]. Ids are never reused within a process.
//! - A group's state ([`GroupState`]) is only touched under its mutex;
//!   every change is announced on its condition variable. Lock order: the
//!   registry of joins, then a join entry; a group's state, then a stream's
//!   queue (enqueueing); never the runtime lock while holding a group's.
//! - Stream tasks hold an `Arc<Group>`, so destroying a communicator never
//!   invalidates work already queued.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ascend_sys::*;

use super::collective::Slot;
use super::link::{self, Link, NetState};
use super::p2p::Mailboxes;
use super::root_info::{RootInfo, Transport};
use super::wire::Msg;
use super::{hccl_err, para, ptr_err};
use crate::error::MockResult;

const TAG: u64 = 0xCC;
const TAG_SHIFT: u32 = 40;
const ID_MASK: u64 = (1 << TAG_SHIFT) - 1;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// What the ranks of a group share, under [`Group::lock`].
pub struct GroupState {
    /// Per rank: the sequence number of its last enqueued collective.
    pub next_seq: Vec<u64>,
    /// Collectives enqueued by at least one rank and not yet released by all.
    pub slots: HashMap<u64, Slot>,
    /// Point-to-point messages and their sequence counters.
    pub mail: Mailboxes,
    /// Per rank: the first failure of one of its tasks.
    pub async_error: Vec<Option<HcclResult>>,
    /// Per rank: destroyed with `HcclCommDestroy` (it queues nothing more).
    pub destroyed: Vec<bool>,
    /// What arrived over the link (groups spanning processes only).
    pub net: NetState,
}

/// The shared part of a communicator: one per `HcclCommInitAll` call or
/// root-info rendezvous.
pub struct Group {
    /// A process-unique number.
    pub id: u64,
    /// The name `HcclGetCommName` returns (the same for every rank).
    pub name: String,
    /// The device of each rank.
    pub devices: Vec<u32>,
    /// The process id of each rank.
    pub pids: Vec<u32>,
    /// The connection to the root process, when the ranks span processes
    /// (then this group serves one rank of this process).
    pub link: Option<Link>,
    timeout_ms: AtomicU64,
    state: Mutex<GroupState>,
    /// Announces every change of `state`.
    pub changed: Condvar,
}

impl Group {
    fn new(devices: Vec<u32>, timeout: Duration) -> Arc<Group> {
        let id = next_group_id();
        let pids = vec![std::process::id(); devices.len()];
        Group::build(
            id,
            format!("ascend_mock_hccl_{}_{id}", std::process::id()),
            devices,
            pids,
            timeout,
            None,
        )
    }

    /// The group of one rank of a communicator spanning processes, named
    /// `name` by the root, talking to the root over `link`.
    pub fn new_network(
        name: String,
        devices: Vec<u32>,
        pids: Vec<u32>,
        timeout: Duration,
        link: Link,
    ) -> Arc<Group> {
        Group::build(next_group_id(), name, devices, pids, timeout, Some(link))
    }

    fn build(
        id: u64,
        name: String,
        devices: Vec<u32>,
        pids: Vec<u32>,
        timeout: Duration,
        link: Option<Link>,
    ) -> Arc<Group> {
        let n = devices.len();
        Arc::new(Group {
            id,
            name,
            devices,
            pids,
            link,
            timeout_ms: AtomicU64::new(super::clamp_timeout(timeout).as_millis() as u64),
            state: Mutex::new(GroupState {
                next_seq: vec![0; n],
                slots: HashMap::new(),
                mail: Mailboxes::default(),
                async_error: vec![None; n],
                destroyed: vec![false; n],
                net: NetState::default(),
            }),
            changed: Condvar::new(),
        })
    }

    /// Number of ranks.
    pub fn size(&self) -> usize {
        self.devices.len()
    }

    /// Locks the shared state.
    pub fn lock(&self) -> MutexGuard<'_, GroupState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long a task waits for its peers.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.load(Ordering::Relaxed))
    }

    /// Changes the timeout for tasks that start waiting from now on.
    pub fn set_timeout(&self, timeout: Duration) {
        self.timeout_ms.store(
            super::clamp_timeout(timeout).as_millis() as u64,
            Ordering::Relaxed,
        );
    }

    /// Waits for a change of the state until `deadline`; returns the guard
    /// and whether the deadline has passed.
    pub fn wait_until<'a>(
        &'a self,
        guard: MutexGuard<'a, GroupState>,
        deadline: Instant,
    ) -> (MutexGuard<'a, GroupState>, bool) {
        let now = Instant::now();
        if now >= deadline {
            return (guard, true);
        }
        let (g, _) = self
            .changed
            .wait_timeout(guard, deadline - now)
            .unwrap_or_else(|e| e.into_inner());
        (g, Instant::now() >= deadline)
    }

    /// Records the first task failure of `rank`.
    pub fn record_async_error(state: &mut GroupState, rank: usize, code: HcclResult) {
        if let Some(slot) = state.async_error.get_mut(rank)
            && slot.is_none()
        {
            *slot = Some(code);
        }
    }
}

/// A process-unique group number.
pub fn next_group_id() -> u64 {
    static NEXT_GROUP: AtomicU64 = AtomicU64::new(1);
    NEXT_GROUP.fetch_add(1, Ordering::Relaxed)
}

/// One rank of a communicator.
pub struct Comm {
    /// The handle given to C.
    pub handle: u64,
    /// The group this rank belongs to.
    pub group: Arc<Group>,
    /// This rank's number.
    pub rank: u32,
}

impl Comm {
    /// The device this rank lives on.
    pub fn device(&self) -> u32 {
        self.group.devices[self.rank as usize]
    }

    /// "rank r of `<name>`", for messages.
    pub fn describe(&self) -> String {
        let pid = self.group.pids[self.rank as usize];
        let process = if self.group.link.is_some() {
            format!(", process {pid}")
        } else {
            String::new()
        };
        format!(
            "rank {} of communicator {} (device {}{process})",
            self.rank,
            self.group.name,
            self.device()
        )
    }
}

static COMMS: LazyLock<Mutex<HashMap<u64, Arc<Comm>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn comms() -> MutexGuard<'static, HashMap<u64, Arc<Comm>>> {
    COMMS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Creates a group over `devices` and registers one communicator per rank;
/// returns their handles in rank order.
pub fn create(devices: Vec<u32>, timeout: Duration) -> Vec<HcclComm> {
    let group = Group::new(devices, timeout);
    (0..group.size() as u32)
        .map(|rank| register(group.clone(), rank))
        .collect()
}

/// Registers rank `rank` of `group` as a new communicator.
pub fn register(group: Arc<Group>, rank: u32) -> HcclComm {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed) & ID_MASK;
    let handle = (TAG << TAG_SHIFT) | id;
    comms().insert(
        handle,
        Arc::new(Comm {
            handle,
            group,
            rank,
        }),
    );
    handle as usize as HcclComm
}

/// Looks up a live communicator.
pub fn lookup(comm: HcclComm) -> MockResult<Arc<Comm>> {
    if comm.is_null() {
        return Err(ptr_err("comm is NULL"));
    }
    let raw = comm as usize as u64;
    let found = (raw >> TAG_SHIFT == TAG)
        .then(|| comms().get(&raw).cloned())
        .flatten();
    found.ok_or_else(|| {
        para(format!(
            "comm {comm:p} is not a live HCCL communicator (never created, or destroyed)"
        ))
    })
}

/// Removes a communicator from the registry (`HcclCommDestroy`); peers
/// waiting for work it never queued stop waiting (see `collective`).
///
/// A rank of a communicator spanning processes tells the root how much it
/// queued (so that peers waiting for more fail at once); its connection
/// closes when its queued work has finished and the last reference to its
/// group is gone.
pub fn destroy(comm: HcclComm) -> MockResult<()> {
    let c = lookup(comm)?;
    comms().remove(&c.handle);
    let r = c.rank as usize;
    let notice = {
        let mut st = c.group.lock();
        st.destroyed[r] = true;
        Msg::Destroy {
            last_seq: st.next_seq[r],
            sent: (0..c.group.size() as u32)
                .map(|q| st.mail.sent_count(c.rank, q))
                .collect(),
        }
    };
    if let Some(link) = &c.group.link {
        // A broken link has nobody left to tell.
        let _ = link.send(&notice);
    }
    c.group.changed.notify_all();
    Ok(())
}

/// Number of live communicators (all groups).
pub fn live_count() -> usize {
    comms().len()
}

/// A root-info rendezvous in progress.
struct Joining {
    nranks: u32,
    devices: Vec<Option<u32>>,
    /// The handles (as integers) once every rank joined.
    result: Option<Vec<u64>>,
}

struct JoinEntry {
    state: Mutex<Joining>,
    done: Condvar,
}

impl JoinEntry {
    fn lock(&self) -> MutexGuard<'_, Joining> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

type JoinKey = (u64, u64);

static JOINS: LazyLock<Mutex<HashMap<JoinKey, Arc<JoinEntry>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn joins() -> MutexGuard<'static, HashMap<JoinKey, Arc<JoinEntry>>> {
    JOINS.lock().unwrap_or_else(|e| e.into_inner())
}

/// `HcclCommInitRootInfo`: joins rank `rank` (on `device`) of an
/// `nranks`-rank communicator and blocks until every rank has joined, or
/// fails with `HCCL_E_TIMEOUT` after `timeout`. A root info served over
/// TCP joins through its maker's listener ([`link::join`]); an in-process
/// one meets the other threads here.
pub fn join(
    info: &RootInfo,
    nranks: u32,
    rank: u32,
    device: u32,
    timeout: Duration,
) -> MockResult<HcclComm> {
    if nranks == 0 {
        return Err(para("nRanks is 0"));
    }
    if nranks > super::MAX_RANKS {
        return Err(para(format!(
            "nRanks {nranks} exceeds the mock's limit of {} ranks per communicator",
            super::MAX_RANKS
        )));
    }
    let timeout = super::clamp_timeout(timeout);
    if rank >= nranks {
        return Err(para(format!(
            "rank {rank} is out of range for nRanks {nranks}"
        )));
    }
    if info.transport == Transport::Tcp {
        return link::join(info, nranks, rank, device, timeout);
    }
    if info.nonce != super::root_info::process_nonce() {
        return Err(hccl_err(
            HCCL_E_NOT_SUPPORT,
            "rootInfo is an in-process root info of another process (its maker could not open a TCP listener); only ranks of that process can join it",
        ));
    }
    let key = info.key();
    let deadline = Instant::now() + timeout;
    let entry = {
        let mut map = joins();
        let entry = map
            .entry(key)
            .or_insert_with(|| {
                Arc::new(JoinEntry {
                    state: Mutex::new(Joining {
                        nranks,
                        devices: vec![None; nranks as usize],
                        result: None,
                    }),
                    done: Condvar::new(),
                })
            })
            .clone();
        let mut st = entry.lock();
        if st.nranks != nranks {
            return Err(para(format!(
                "nRanks {nranks} differs from the {} given by the ranks that already joined this rootInfo",
                st.nranks
            )));
        }
        if st.devices[rank as usize].is_some() {
            return Err(para(format!(
                "rank {rank} has already joined this rootInfo"
            )));
        }
        st.devices[rank as usize] = Some(device);
        if st.devices.iter().all(Option::is_some) {
            let devices = st.devices.iter().map(|d| d.unwrap_or(0)).collect();
            let handles = create(devices, timeout);
            let mine = handles[rank as usize];
            st.result = Some(handles.iter().map(|h| *h as usize as u64).collect());
            drop(st);
            map.remove(&key);
            entry.done.notify_all();
            return Ok(mine);
        }
        drop(st);
        entry
    };
    let mut st = entry.lock();
    loop {
        if let Some(handles) = &st.result {
            return Ok(handles[rank as usize] as usize as HcclComm);
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        st = entry
            .done
            .wait_timeout(st, deadline - now)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
    // Withdraw, keeping the lock order (registry, then entry).
    drop(st);
    let mut map = joins();
    let mut st = entry.lock();
    if let Some(handles) = &st.result {
        return Ok(handles[rank as usize] as usize as HcclComm);
    }
    st.devices[rank as usize] = None;
    let missing: Vec<u32> = (0..nranks)
        .filter(|r| st.devices[*r as usize].is_none() && *r != rank)
        .collect();
    if st.devices.iter().all(Option::is_none) {
        map.remove(&key);
    }
    Err(hccl_err(
        HCCL_E_TIMEOUT,
        format!(
            "rank {rank} waited {} ms for the other ranks of an {nranks}-rank communicator; ranks {missing:?} never joined",
            timeout.as_millis()
        ),
    ))
}
