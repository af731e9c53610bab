//! Point-to-point transfers (`HcclSend`, `HcclRecv`, `HcclBatchSendRecv`)
//! and `HcclGroupStart`/`HcclGroupEnd`.
//!
//! Sends and receives are numbered at enqueue per (source, destination)
//! pair, so the k-th send from A to B meets the k-th receive of B from A.
//! A send task copies its data into the group's mailbox and finishes at
//! once (it never waits for the receiver); a receive task waits for its
//! message up to the group's timeout (`HCCL_E_TIMEOUT`), checks that type
//! and count match (`HCCL_E_PARA`) and copies it out; a receive from a
//! rank destroyed before it queued the matching send fails at once
//! (`HCCL_E_UNAVAIL`). A batch (one
//! `HcclBatchSendRecv`, or the calls of one thread between
//! `HcclGroupStart` and `HcclGroupEnd` on one stream and communicator) is
//! one task that runs its sends before its receives, so exchanges inside
//! a batch cannot deadlock.
//!
//! For a rank of a communicator spanning processes, a send task writes the
//! message to the rank's link instead (the root forwards it, and the
//! receiver's link reader deposits it in the receiver's mailbox); receives
//! are the same, and also fail (`HCCL_E_TCP_TRANSFER`) when the sender's
//! process or the root went away before the message arrived.
//!
//! Invariants: a message is removed from the mailbox exactly once, by the
//! receive with its number; buffers were checked at enqueue (see `hccl`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use ascend_sys::*;

use super::collective::read;
use super::comm::{Comm, Group, GroupState};
use super::dtype::DataType;
use super::wire::Msg;
use super::{hccl_err, para, runtime_err, task_error};
use crate::error::MockResult;
use crate::sanitizer::race::{self, Access, JoinKey};
use crate::stream::Stream;

/// A deposited send.
#[derive(Debug)]
struct Message {
    dtype: DataType,
    count: u64,
    data: Vec<u8>,
}

/// The point-to-point state of a group.
#[derive(Debug, Default)]
pub struct Mailboxes {
    sent: HashMap<(u32, u32), u64>,
    received: HashMap<(u32, u32), u64>,
    messages: HashMap<(u32, u32, u64), Message>,
}

impl Mailboxes {
    /// Sends numbered so far from `from` to `to`.
    pub fn sent_count(&self, from: u32, to: u32) -> u64 {
        self.sent.get(&(from, to)).copied().unwrap_or(0)
    }
}

/// Files a message that arrived from another process for rank `to`.
pub(crate) fn deposit(
    st: &mut GroupState,
    from: u32,
    to: u32,
    seq: u64,
    dtype: DataType,
    count: u64,
    data: Vec<u8>,
) {
    st.mail
        .messages
        .insert((from, to, seq), Message { dtype, count, data });
}

/// Records that rank `from` (in another process) queued `sent` sends to
/// rank `to` in all.
pub(crate) fn set_sent(st: &mut GroupState, from: u32, to: u32, sent: u64) {
    st.mail.sent.insert((from, to), sent);
}

/// Send or receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `HcclSend` / `HCCL_SEND`.
    Send,
    /// `HcclRecv` / `HCCL_RECV`.
    Recv,
}

/// One checked transfer of a rank.
#[derive(Debug, Clone)]
pub struct Item {
    /// Send or receive.
    pub dir: Direction,
    /// The other rank.
    pub peer: u32,
    /// Buffer address (0 when `count` is 0).
    pub buf: usize,
    /// Elements.
    pub count: u64,
    /// Element type.
    pub dtype: DataType,
    seq: u64,
}

impl Item {
    /// An item not yet numbered.
    pub fn new(dir: Direction, peer: u32, buf: usize, count: u64, dtype: DataType) -> Item {
        Item {
            dir,
            peer,
            buf,
            count,
            dtype,
            seq: 0,
        }
    }
}

/// Numbers `items` of `comm`'s rank in their order.
fn number(comm: &Comm, items: &mut [Item]) {
    let me = comm.rank;
    let mut st = comm.group.lock();
    for it in items {
        let counter = match it.dir {
            Direction::Send => st.mail.sent.entry((me, it.peer)).or_default(),
            Direction::Recv => st.mail.received.entry((it.peer, me)).or_default(),
        };
        *counter += 1;
        it.seq = *counter;
    }
}

/// A batch waiting for `HcclGroupEnd`.
struct Pending {
    api: &'static str,
    comm: Arc<Comm>,
    stream: Arc<Stream>,
    items: Vec<Item>,
}

#[derive(Default)]
struct GroupCall {
    depth: u32,
    batches: Vec<Pending>,
}

thread_local! {
    static GROUP_CALL: RefCell<GroupCall> = RefCell::new(GroupCall::default());
}

/// `HcclGroupStart`: this thread's sends and receives are held until the
/// matching `HcclGroupEnd`.
pub fn group_start() {
    GROUP_CALL.with(|g| g.borrow_mut().depth += 1);
}

/// `HcclGroupEnd`: at the outermost end, queues the held batches (one task
/// per stream and communicator).
pub fn group_end() -> MockResult<()> {
    let batches = GROUP_CALL.with(|g| {
        let mut g = g.borrow_mut();
        if g.depth == 0 {
            return Err(para("HcclGroupEnd without a matching HcclGroupStart"));
        }
        g.depth -= 1;
        Ok(if g.depth == 0 {
            std::mem::take(&mut g.batches)
        } else {
            Vec::new()
        })
    })?;
    let mut first_err = None;
    for b in batches {
        if let Err(e) = push(b.api, &b.comm, &b.stream, b.items) {
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// Queues `items` of `comm` on `stream` as one task, or holds them while
/// this thread is inside `HcclGroupStart`/`HcclGroupEnd`.
pub fn enqueue(
    api: &'static str,
    comm: &Arc<Comm>,
    stream: &Arc<Stream>,
    mut items: Vec<Item>,
) -> MockResult<()> {
    let held = GROUP_CALL.with(|g| g.borrow().depth > 0);
    if !held {
        number(comm, &mut items);
        return push(api, comm, stream, items);
    }
    number(comm, &mut items);
    GROUP_CALL.with(|g| {
        let mut g = g.borrow_mut();
        match g
            .batches
            .iter_mut()
            .find(|b| b.comm.handle == comm.handle && b.stream.handle == stream.handle)
        {
            Some(b) => b.items.extend(items),
            None => g.batches.push(Pending {
                api,
                comm: comm.clone(),
                stream: stream.clone(),
                items,
            }),
        }
    });
    Ok(())
}

fn push(api: &'static str, comm: &Comm, stream: &Stream, items: Vec<Item>) -> MockResult<()> {
    let group = comm.group.clone();
    let rank = comm.rank;
    let desc = comm.describe();
    // Send buffers are read, receive buffers written (race detection).
    let accesses = items
        .iter()
        .map(|it| {
            let len = it.dtype.bytes(it.count)?;
            Ok(match it.dir {
                Direction::Send => Access::read(it.buf, len),
                Direction::Recv => Access::write(it.buf, len),
            })
        })
        .collect::<MockResult<Vec<_>>>()?;
    // Each message is a rendezvous of its two ranks when both are in this
    // process; across processes only this rank's own buffers are tracked.
    let joins: Vec<(JoinKey, usize)> = if group.link.is_some() {
        Vec::new()
    } else {
        let at = Arc::as_ptr(&group) as usize;
        items
            .iter()
            .map(|it| {
                let (from, to) = match it.dir {
                    Direction::Send => (rank, it.peer),
                    Direction::Recv => (it.peer, rank),
                };
                let key = JoinKey::Message {
                    group: at,
                    from,
                    to,
                    seq: it.seq,
                };
                (key, 2)
            })
            .collect()
    };
    let task = Box::new(move || {
        let r = run(&group, rank, &items);
        if let Err(e) = &r {
            Group::record_async_error(&mut group.lock(), rank as usize, e.code as HcclResult);
        }
        r.map_err(|e| task_error(api, &desc, e))
    });
    race::queue_joining(stream, &accesses, HCCL_E_PARA as aclError, &joins, || {
        stream.push_device(api, task).map_err(runtime_err)
    })?;
    Ok(())
}

/// The task of a batch: deposit every send, then take every receive.
fn run(group: &Group, rank: u32, items: &[Item]) -> MockResult<()> {
    for it in items.iter().filter(|i| i.dir == Direction::Send) {
        let data = read(it.buf, it.dtype.bytes(it.count)?);
        if let Some(link) = &group.link {
            let send = Msg::Send {
                to: it.peer,
                seq: it.seq,
                dtype: it.dtype.raw(),
                count: it.count,
                data,
            };
            super::link::send_or_reason(group, link, &send)?;
            continue;
        }
        let msg = Message {
            dtype: it.dtype,
            count: it.count,
            data,
        };
        group
            .lock()
            .mail
            .messages
            .insert((rank, it.peer, it.seq), msg);
        group.changed.notify_all();
    }
    for it in items.iter().filter(|i| i.dir == Direction::Recv) {
        let deadline = Instant::now() + group.timeout();
        let key = (it.peer, rank, it.seq);
        let mut st = group.lock();
        let msg = loop {
            if let Some(m) = st.mail.messages.remove(&key) {
                break m;
            }
            let sent = st.mail.sent.get(&(it.peer, rank)).copied().unwrap_or(0);
            if st.destroyed[it.peer as usize] && sent < it.seq {
                return Err(hccl_err(
                    HCCL_E_UNAVAIL,
                    format!(
                        "HcclRecv #{} from rank {}: that rank was destroyed (HcclCommDestroy) after queueing only {sent} sends to rank {rank}",
                        it.seq, it.peer
                    ),
                ));
            }
            if let Some(why) = st.net.lost.get(&it.peer).or(st.net.down.as_ref()) {
                return Err(hccl_err(
                    HCCL_E_TCP_TRANSFER,
                    format!(
                        "HcclRecv #{} from rank {}: no message, and {why}",
                        it.seq, it.peer
                    ),
                ));
            }
            let (g, expired) = group.wait_until(st, deadline);
            st = g;
            if expired && !st.mail.messages.contains_key(&key) {
                return Err(hccl_err(
                    HCCL_E_TIMEOUT,
                    format!(
                        "HcclRecv #{} from rank {} found no matching HcclSend within {} ms",
                        it.seq,
                        it.peer,
                        group.timeout().as_millis()
                    ),
                ));
            }
        };
        drop(st);
        if msg.dtype != it.dtype || msg.count != it.count {
            return Err(para(format!(
                "send #{} from rank {} to rank {rank} carries {} elements of {}, but the receive expects {} elements of {}",
                it.seq,
                it.peer,
                msg.count,
                msg.dtype.name(),
                it.count,
                it.dtype.name()
            )));
        }
        if !msg.data.is_empty() {
            // SAFETY: the receive buffer range (count elements) was checked at
            // enqueue and stays allocated until this task has run; the message
            // is our own host buffer of exactly that many bytes.
            unsafe {
                std::ptr::copy_nonoverlapping(msg.data.as_ptr(), it.buf as *mut u8, msg.data.len())
            };
        }
    }
    Ok(())
}
