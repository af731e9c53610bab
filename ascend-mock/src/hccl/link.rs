//! The rank side of a communicator whose ranks live in several processes:
//! joining through the root process's listener ([`join`]), the [`Link`]
//! (the rank's TCP connection to the root process, which coordinates the
//! communicator), and the reader thread that files what arrives into the
//! rank's [`Group`] state.
//!
//! Each rank of such a communicator has a `Group` of its own (sized for
//! all ranks, so rank numbers and devices read as usual) holding its
//! `Link`. Stream tasks write to the link; the reader thread alone reads
//! from it, so the root never blocks writing to a rank that is busy.
//!
//! Invariants:
//! - Writes of one message are atomic (the writer mutex); messages from one
//!   rank reach the root in the order they were written.
//! - The reader holds only a `Weak<Group>`: dropping the last `Arc<Group>`
//!   (the destroyed communicator and its finished tasks) drops the `Link`,
//!   which shuts the socket down; the reader then ends.
//! - A broken connection is recorded once in [`NetState::down`]; every
//!   task waiting on the link then fails with `HCCL_E_TCP_TRANSFER`.
//! - What the root sends is bounded like what the root accepts: headers by
//!   the rank count, an outcome's payload to the size its collective
//!   registered in [`NetState::expected`] before contributing, a
//!   delivered send's to its count of elements; a link quiet for
//!   [`HEARTBEAT`] sends a `Ping` so that the root can tell a live rank
//!   from a vanished one.
//! - Joining retries while the root answers `HCCL_E_AGAIN` (too many
//!   connections waiting for their `Hello`, perhaps a flood) or drops the
//!   connection before answering, until the rank's timeout.

use std::collections::HashMap;
use std::io::Write;
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use ascend_sys::*;

use super::comm::{self, Group, GroupState};
use super::dtype::DataType;
use super::hub::FRAME_DEADLINE;
use super::p2p;
use super::root_info::{RootInfo, local_token, process_nonce};
use super::wire::{Limits, Msg, ReadError, Timing, read_frame, write_msg};
use super::{hccl_err, para};
use crate::error::{MockError, MockResult};

/// How much longer than the communicator's timeout a rank waits for the
/// root's answer before it gives up on the root itself (the root enforces
/// the timeout and answers first unless it is stuck).
pub const ROOT_GRACE: Duration = Duration::from_secs(5);

/// How long a rank's link may be quiet before the rank sends a `Ping`
/// (the root drops a rank silent for `hub::PEER_IDLE`).
pub const HEARTBEAT: Duration = Duration::from_secs(5);

/// What arrived for a rank over its link, under the group's lock.
#[derive(Debug, Default)]
pub struct NetState {
    /// Outcomes of collectives, by sequence number, until their task takes
    /// them.
    pub outcomes: HashMap<u64, MockResult<Vec<u8>>>,
    /// Ranks whose connection to the root broke without a destroy.
    pub lost: HashMap<u32, String>,
    /// Set once the connection to the root broke.
    pub down: Option<String>,
    /// The outcome size each collective in flight expects, by sequence
    /// number (registered before its contribution is sent).
    pub expected: HashMap<u64, u64>,
}

/// A rank's connection to the root process.
pub struct Link {
    writer: Mutex<TcpStream>,
    /// Where the root listens, for messages.
    pub root: String,
    closing: AtomicBool,
}

impl Link {
    /// Sends `msg` to the root (`HCCL_E_TCP_TRANSFER` when the connection
    /// is broken).
    pub fn send(&self, msg: &Msg) -> MockResult<()> {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        write_msg(&mut *w, msg).map_err(|e| {
            hccl_err(
                HCCL_E_TCP_TRANSFER,
                format!(
                    "sending to the root process at {}: {e} (did the process that called HcclGetRootInfo exit?)",
                    self.root
                ),
            )
        })
    }
}

/// Sends `msg` over `group`'s link; when that fails, the reason the
/// link reader found (the root's own explanation, such as a communicator
/// failed for every rank, arrives just before the connection closes) is
/// the error if it comes within [`REASON_WAIT`], else the write's error.
pub fn send_or_reason(group: &Group, link: &Link, msg: &Msg) -> MockResult<()> {
    let Err(e) = link.send(msg) else {
        return Ok(());
    };
    let deadline = Instant::now() + REASON_WAIT;
    let mut st = group.lock();
    loop {
        if let Some(why) = &st.net.down {
            return Err(hccl_err(HCCL_E_TCP_TRANSFER, why.clone()));
        }
        let (g, expired) = group.wait_until(st, deadline);
        st = g;
        if expired && st.net.down.is_none() {
            return Err(e);
        }
    }
}

/// How long a failed send waits for the link reader's reason.
pub const REASON_WAIT: Duration = Duration::from_millis(500);

impl Drop for Link {
    fn drop(&mut self) {
        self.closing.store(true, Ordering::SeqCst);
        let w = self.writer.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = w.flush();
        let _ = w.shutdown(Shutdown::Both);
    }
}

/// Connects to `address` within `timeout` (`HCCL_E_TCP_CONNECT` if no
/// one listens).
fn connect(address: &str, timeout: Duration) -> MockResult<TcpStream> {
    let fail = |e: String| {
        hccl_err(
            HCCL_E_TCP_CONNECT,
            format!(
                "cannot reach the process that made rootInfo at {address}: {e} (it must keep running until every rank has joined)"
            ),
        )
    };
    let addr = address
        .to_socket_addrs()
        .map_err(|e| fail(e.to_string()))?
        .next()
        .ok_or_else(|| fail("no address".to_string()))?;
    let s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| fail(e.to_string()))?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// `HcclCommInitRootInfo` for a root info served over TCP: joins through
/// the root process's listener (in this process or another) and returns
/// the rank's communicator. Retries while the root is busy (see the
/// module documentation) until `timeout`.
pub fn join(
    info: &RootInfo,
    nranks: u32,
    rank: u32,
    device: u32,
    timeout: Duration,
) -> MockResult<HcclComm> {
    let give_up = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        match join_once(info, nranks, rank, device, timeout) {
            Err(Attempt::Busy(_)) if Instant::now() + pause < give_up => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            Err(Attempt::Busy(e) | Attempt::Failed(e)) => return Err(e),
            Ok(comm) => return Ok(comm),
        }
    }
}

/// How one attempt to join failed.
enum Attempt {
    /// The root turned the connection away or dropped it unanswered: try
    /// again (this is the error if time runs out).
    Busy(MockError),
    /// Final.
    Failed(MockError),
}

fn join_once(
    info: &RootInfo,
    nranks: u32,
    rank: u32,
    device: u32,
    timeout: Duration,
) -> Result<HcclComm, Attempt> {
    let mut stream =
        connect(&info.address, timeout.min(Duration::from_secs(10))).map_err(Attempt::Failed)?;
    let transfer = |e: String| {
        hccl_err(
            HCCL_E_TCP_TRANSFER,
            format!("joining through {}: {e}", info.address),
        )
    };
    let hello = Msg::Hello {
        secret: info.secret,
        root_nonce: info.nonce,
        serial: info.serial,
        nranks,
        rank,
        device,
        nonce: local_token(),
        pid: std::process::id(),
        timeout_ms: timeout.as_millis().max(1) as u64,
        memory: crate::config::config().memory_per_device,
    };
    write_msg(&mut stream, &hello).map_err(|e| Attempt::Busy(transfer(e.to_string())))?;
    let timing = Timing {
        idle: Some(timeout + ROOT_GRACE),
        frame: Some(FRAME_DEADLINE),
    };
    let reply = match read_frame(
        &mut stream,
        &Limits::for_ranks(nranks, 0),
        timing,
        |_, _| Ok(()),
    ) {
        Ok(m) => m,
        Err(ReadError::Idle(_)) => {
            return Err(Attempt::Failed(hccl_err(
                HCCL_E_TIMEOUT,
                format!(
                    "rank {rank} had no answer from the root process at {} within {} ms",
                    info.address,
                    (timeout + ROOT_GRACE).as_millis()
                ),
            )));
        }
        Err(e @ (ReadError::Closed | ReadError::Io(_))) => {
            return Err(Attempt::Busy(transfer(e.to_string())));
        }
        Err(e) => return Err(Attempt::Failed(transfer(e.to_string()))),
    };
    match reply {
        Msg::Refused { code, message } if code == HCCL_E_AGAIN => {
            Err(Attempt::Busy(hccl_err(code as HcclResult, message)))
        }
        Msg::Refused { code, message } => {
            Err(Attempt::Failed(hccl_err(code as HcclResult, message)))
        }
        Msg::JoinedInProcess { handle } => {
            if info.nonce != process_nonce() {
                return Err(Attempt::Failed(hccl_err(
                    HCCL_E_INTERNAL,
                    "the root process answered with an in-process communicator to another process",
                )));
            }
            Ok(handle as usize as HcclComm)
        }
        Msg::JoinedNetwork {
            name,
            devices,
            pids,
        } => {
            if devices.len() != nranks as usize || pids.len() != nranks as usize {
                return Err(Attempt::Failed(transfer(format!(
                    "the root described {} ranks instead of {nranks}",
                    devices.len()
                ))));
            }
            let reader = stream
                .try_clone()
                .map_err(|e| Attempt::Failed(transfer(e.to_string())))?;
            let link = Link {
                writer: Mutex::new(stream),
                root: info.address.clone(),
                closing: AtomicBool::new(false),
            };
            let group = Group::new_network(name, devices, pids, timeout, link);
            spawn_reader(reader, Arc::downgrade(&group), rank, nranks).map_err(Attempt::Failed)?;
            Ok(comm::register(group, rank))
        }
        other => Err(Attempt::Failed(transfer(format!(
            "unexpected answer {}",
            other.name()
        )))),
    }
}

/// Starts the thread that reads `stream` for rank `rank` of `group`.
fn spawn_reader(stream: TcpStream, group: Weak<Group>, rank: u32, n: u32) -> MockResult<()> {
    std::thread::Builder::new()
        .name(format!("hccl-link-r{rank}"))
        .spawn(move || read_loop(stream, group, rank, n))
        .map(|_| ())
        .map_err(|e| {
            hccl_err(
                HCCL_E_SYSCALL,
                format!("cannot start the link reader thread: {e}"),
            )
        })
}

/// The rule for the payload of a frame from the root to a rank whose
/// group is `group`: an outcome exactly as long as its collective
/// registered, a delivered send exactly its count of elements within the
/// rank's device memory; nothing else carries one.
fn root_payload_rule(group: &Weak<Group>, msg: &Msg, len: u64) -> MockResult<()> {
    let bad = |m: String| Err(hccl_err(HCCL_E_TCP_TRANSFER, m));
    match msg {
        Msg::Outcome {
            seq, result: Ok(_), ..
        } => {
            let want = group
                .upgrade()
                .and_then(|g| g.lock().net.expected.get(seq).copied());
            match want {
                Some(w) if w == len => Ok(()),
                Some(w) => bad(format!(
                    "the root sent a {len}-byte outcome for collective #{seq}, which expects {w} bytes"
                )),
                None => bad(format!(
                    "the root sent an outcome for collective #{seq}, which this rank is not waiting for"
                )),
            }
        }
        Msg::Deliver { dtype, count, .. } => {
            let want = DataType::from_raw(*dtype)?.bytes(*count)? as u64;
            let memory = crate::config::config().memory_per_device;
            if want != len || want > memory {
                return bad(format!(
                    "the root delivered a {len}-byte payload for {count} elements (of at most {memory} bytes)"
                ));
            }
            Ok(())
        }
        _ if len == 0 => Ok(()),
        other => bad(format!(
            "the root sent a payload with a {} message",
            other.name()
        )),
    }
}

fn read_loop(mut stream: TcpStream, group: Weak<Group>, rank: u32, n: u32) {
    let memory = crate::config::config().memory_per_device;
    let limits = Limits::for_ranks(n, memory.saturating_mul(u64::from(n)));
    let timing = Timing {
        idle: Some(HEARTBEAT),
        frame: Some(FRAME_DEADLINE),
    };
    loop {
        let msg = read_frame(&mut stream, &limits, timing, |m, len| {
            root_payload_rule(&group, m, len)
        });
        let Some(g) = group.upgrade() else { return };
        if let Err(ReadError::Idle(_)) = msg {
            // Quiet: tell the root this rank is still here. A failed
            // write shows up as a broken read next.
            if let Some(link) = &g.link {
                let _ = link.send(&Msg::Ping);
            }
            continue;
        }
        let closing = g
            .link
            .as_ref()
            .is_some_and(|l| l.closing.load(Ordering::SeqCst));
        let mut st = g.lock();
        let failure = match msg {
            Ok(m) => apply(&mut st, rank, m).err().map(|e| e.message),
            Err(ReadError::Closed) => Some("the root process closed the connection".to_string()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = failure {
            if !closing && st.net.down.is_none() {
                let root = g.link.as_ref().map_or("?", |l| l.root.as_str());
                st.net.down = Some(format!(
                    "the connection to the root process at {root} broke: {why} (did the process that called HcclGetRootInfo exit?)"
                ));
            }
            drop(st);
            g.changed.notify_all();
            return;
        }
        drop(st);
        g.changed.notify_all();
    }
}

/// Files one message from the root into the rank's state.
fn apply(st: &mut GroupState, me: u32, msg: Msg) -> MockResult<()> {
    let n = st.destroyed.len();
    let check_rank = |q: u32| {
        if (q as usize) < n {
            Ok(q)
        } else {
            Err(para(format!("the root named rank {q} of {n}")))
        }
    };
    match msg {
        Msg::Outcome { seq, result } => {
            if st.net.expected.remove(&seq).is_none() {
                return Err(para(format!(
                    "the root answered collective #{seq}, which this rank is not waiting for"
                )));
            }
            let r = result.map_err(|(code, message)| MockError::new(code as aclError, message));
            st.net.outcomes.insert(seq, r);
        }
        Msg::Deliver {
            from,
            seq,
            dtype,
            count,
            data,
        } => {
            let from = check_rank(from)?;
            let dtype = DataType::from_raw(dtype)?;
            p2p::deposit(st, from, me, seq, dtype, count, data);
        }
        Msg::PeerDestroyed { rank, sent } => {
            let q = check_rank(rank)?;
            st.destroyed[q as usize] = true;
            p2p::set_sent(st, q, me, sent);
        }
        Msg::PeerLost { rank, message } => {
            let q = check_rank(rank)?;
            st.net.lost.insert(q, message);
        }
        Msg::Refused { message, .. } => {
            // The root failed the whole communicator (a second claim for a
            // rank arrived): every task fails with its reason.
            st.net.down.get_or_insert(format!(
                "the root process failed the communicator: {message}"
            ));
            return Err(para(message));
        }
        other => {
            return Err(para(format!(
                "unexpected {} message from the root",
                other.name()
            )));
        }
    }
    Ok(())
}
