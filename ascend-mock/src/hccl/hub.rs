//! The root process's side of root infos served over TCP: the listener
//! that `HcclGetRootInfo` opens, and the rendezvous of the ranks that join
//! through it.
//!
//! The first `HcclGetRootInfo` of a process binds a listener to an
//! ephemeral port of 127.0.0.1 and starts a thread accepting connections;
//! every root info of the process carries that address. Each connection
//! gets a thread: it reads the rank's `Hello` ([`greet`]), registers the
//! rank with the rendezvous of that root info (keyed by serial) and waits.
//! The thread that completes a rendezvous decides for all ranks:
//! - every rank lives in this process: an ordinary in-process communicator
//!   is created, each rank gets its handle, and the connections close;
//! - otherwise the communicator spans processes: a coordinator
//!   (`coordinator`) starts, every rank gets the communicator's name and
//!   devices, and each connection thread then forwards what its rank sends
//!   to the coordinator until the connection closes.
//!
//! Loopback TCP rather than a Unix domain socket: the kernel picks the
//! port, so there is no path to choose, clean up or find stale after a
//! crash, and a dead root is a refused connection at once.
//!
//! Anyone on the machine can connect, so the listener trusts nothing
//! before the `Hello` proved that the peer holds the root info:
//! - at most [`Settings::max_pending`] connections may wait for their
//!   `Hello` at once; the rest are answered `HCCL_E_AGAIN` and closed by
//!   the accepting thread (ranks retry until their timeout);
//! - the `Hello` must arrive whole within [`Settings::hello`] of the
//!   connection (an overall deadline, not one per read) and is read into a
//!   fixed array (`wire::read_hello`); its magic, protocol, secret, serial
//!   and nonce are checked before anything else, then `nRanks` (at most
//!   [`super::MAX_RANKS`]), the rank, the timeout (at most
//!   [`super::MAX_TIMEOUT`]) and the rank's memory, before anything is
//!   allocated for them;
//! - a root info is single-use: its serial is retired when its rendezvous
//!   completes, fails or times out; a second claim for a rank, a claim
//!   with another `nRanks`, or a waiting rank whose connection closes
//!   fails the rendezvous for every rank with a message saying so; a
//!   waiting rank's thread checks its connection every
//!   [`LIVENESS_CHECK`], so a vanished client frees its thread and
//!   descriptors at once, whatever its timeout;
//! - a joined rank's frames are bounded by its communicator
//!   ([`wire::Limits`] from the rank count and the memory the rank
//!   declared; a payload must be the size its header implies), each frame
//!   must complete within [`FRAME_DEADLINE`], and a rank silent for
//!   [`PEER_IDLE`] (ranks send a `Ping` every `link::HEARTBEAT` when
//!   idle) counts as lost;
//! - refusals name no process id; refused and dropped connections are
//!   counted ([`connection_stats`]) and, with `ASCEND_MOCK_HCCL_LOG=1`,
//!   printed to stderr as `[ascend-mock hccl]` lines.
//!
//! Invariants: a rendezvous is completed once, by the thread that filled
//! its last place, which writes every rank's answer before the coordinator
//! may write anything else to them; a rendezvous ends exactly once
//! (completed or failed), and its serial is retired then.
//! Lock order: the table of rendezvous, then one rendezvous.

use std::collections::HashMap;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use ascend_sys::*;

use super::collective::contribution_len;
use super::comm;
use super::coordinator::{self, Event};
use super::dtype::DataType;
use super::root_info::{self, RootInfo, Standing, local_token, process_nonce};
use super::wire::{self, Limits, Msg, ReadError, Source, Timing, read_hello, write_msg};
use super::{MAX_RANKS, MAX_TIMEOUT, para};
use crate::error::MockResult;

/// The environment variable bounding the wait for a connection's `Hello`
/// (milliseconds, default 10000).
pub const HELLO_ENV: &str = "ASCEND_MOCK_HCCL_HELLO_MS";
/// The environment variable capping connections waiting for their
/// `Hello` (default 64).
pub const PENDING_ENV: &str = "ASCEND_MOCK_HCCL_MAX_PENDING";
/// The environment variable that turns the connection log on (`1`).
pub const LOG_ENV: &str = "ASCEND_MOCK_HCCL_LOG";

/// How often a rank waiting in a rendezvous checks that its client is
/// still connected.
pub const LIVENESS_CHECK: Duration = Duration::from_millis(100);
/// How long a joined rank may stay silent before it counts as lost (ranks
/// ping every `link::HEARTBEAT` when they have nothing to send).
pub const PEER_IDLE: Duration = Duration::from_secs(30);
/// How long one frame may take from its first byte to its last.
pub const FRAME_DEADLINE: Duration = Duration::from_secs(120);
/// The largest device memory a rank may declare (the mock's own limit on
/// `ASCEND_MOCK_MEMORY`, 1 PiB).
pub const MAX_MEMORY: u64 = 1 << 50;

/// The listener's settings, read when it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// The overall deadline for a connection's `Hello`.
    pub hello: Duration,
    /// Connections waiting for their `Hello` at most (others are refused).
    pub max_pending: usize,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            hello: Duration::from_secs(10),
            max_pending: 64,
        }
    }
}

impl Settings {
    /// The defaults overridden by [`HELLO_ENV`] and [`PENDING_ENV`]
    /// (`HCCL_E_PARA` for a value that is not a positive number in range).
    pub fn from_env() -> MockResult<Settings> {
        let mut s = Settings::default();
        let number = |name: &str, max: u64| -> MockResult<Option<u64>> {
            match std::env::var(name) {
                Err(_) => Ok(None),
                Ok(v) => match v.trim().parse::<u64>() {
                    Ok(n) if n > 0 && n <= max => Ok(Some(n)),
                    _ => Err(para(format!(
                        "{name}={v:?} is not a number from 1 to {max}"
                    ))),
                },
            }
        };
        if let Some(ms) = number(HELLO_ENV, 600_000)? {
            s.hello = Duration::from_millis(ms);
        }
        if let Some(n) = number(PENDING_ENV, 4096)? {
            s.max_pending = n as usize;
        }
        Ok(s)
    }
}

/// Connections seen by this process's listener.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionStats {
    /// Accepted from the kernel.
    pub accepted: u64,
    /// Whose `Hello` was accepted (they took a place in a rendezvous).
    pub joined: u64,
    /// Answered with a refusal (unknown or used root info, bad arguments,
    /// too many waiting connections, a failed rendezvous).
    pub refused: u64,
    /// Closed without an answer (not a `Hello`, no `Hello` in time, a
    /// broken frame, a joined rank gone silent).
    pub dropped: u64,
}

static ACCEPTED: AtomicU64 = AtomicU64::new(0);
static JOINED: AtomicU64 = AtomicU64::new(0);
static REFUSED: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// The counts of this process's listener so far.
pub fn connection_stats() -> ConnectionStats {
    ConnectionStats {
        accepted: ACCEPTED.load(Ordering::Relaxed),
        joined: JOINED.load(Ordering::Relaxed),
        refused: REFUSED.load(Ordering::Relaxed),
        dropped: DROPPED.load(Ordering::Relaxed),
    }
}

fn log_enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var(LOG_ENV).is_ok_and(|v| !v.is_empty() && v != "0"))
}

/// Counts (and, with the log on, prints) a connection refused or dropped.
fn note(refused: bool, peer: &str, why: &str) {
    let (counter, what) = if refused {
        (&REFUSED, "refused")
    } else {
        (&DROPPED, "dropped")
    };
    counter.fetch_add(1, Ordering::Relaxed);
    if log_enabled() {
        eprintln!("[ascend-mock hccl] {what} connection from {peer}: {why}");
    }
}

/// The process id, address and settings of this process's listener.
static LISTENER: Mutex<Option<(u32, String)>> = Mutex::new(None);

/// Connections accepted and still waiting for their `Hello`.
static PENDING: AtomicUsize = AtomicUsize::new(0);

/// Holds one of the [`PENDING`] places until the `Hello` phase ends.
struct Pending;

impl Drop for Pending {
    fn drop(&mut self) {
        PENDING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Number of connections now waiting for their `Hello`.
pub fn pending_count() -> usize {
    PENDING.load(Ordering::SeqCst)
}

/// A root info for `HcclGetRootInfo`: served over TCP by this process's
/// listener (opened on first use), or in-process when no listener can be
/// opened. Invalid listener settings are an error, not a fallback.
pub fn root_info() -> MockResult<RootInfo> {
    match listener_address() {
        Ok(address) => RootInfo::new_tcp(address),
        Err(e) if e.code == HCCL_E_TCP_CONNECT as i32 => Ok(RootInfo::new_in_process()),
        Err(e) => Err(e),
    }
}

/// The address of this process's listener, opening it on first use (and
/// again in the child of a `fork`, whose listener thread did not survive).
pub fn listener_address() -> MockResult<String> {
    let pid = std::process::id();
    let mut slot = LISTENER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((p, address)) = &*slot
        && *p == pid
    {
        return Ok(address.clone());
    }
    let settings = Settings::from_env()?;
    let fail = |e: std::io::Error| {
        super::hccl_err(
            HCCL_E_TCP_CONNECT,
            format!("cannot open a TCP listener on 127.0.0.1: {e}"),
        )
    };
    let listener = TcpListener::bind(("127.0.0.1", 0)).map_err(fail)?;
    let address = listener.local_addr().map_err(fail)?.to_string();
    std::thread::Builder::new()
        .name("hccl-listener".to_string())
        .spawn(move || accept_loop(listener, settings))
        .map_err(fail)?;
    *slot = Some((pid, address.clone()));
    Ok(address)
}

fn accept_loop(listener: TcpListener, settings: Settings) {
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                ACCEPTED.fetch_add(1, Ordering::Relaxed);
                let peer = stream
                    .peer_addr()
                    .map_or_else(|_| "?".to_string(), |a| a.to_string());
                if PENDING.fetch_add(1, Ordering::SeqCst) >= settings.max_pending {
                    let permit = Pending;
                    turn_away(stream, &peer, settings.max_pending);
                    drop(permit);
                    continue;
                }
                let permit = Pending;
                let spawned = std::thread::Builder::new()
                    .name("hccl-join".to_string())
                    .spawn(move || serve(stream, peer, settings, permit));
                if spawned.is_err() {
                    // The stream and the permit went with the closure.
                    note(false, "?", "no thread for the connection");
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            // Out of descriptors and the like: try again shortly.
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Answers a connection over the cap with `HCCL_E_AGAIN`, without waiting
/// for it: the answer fits the socket's buffer, and what the peer already
/// sent is drained without blocking so that the close is not a reset.
fn turn_away(mut stream: TcpStream, peer: &str, cap: usize) {
    let why = format!("{cap} connections are already waiting for their Hello");
    note(true, peer, &why);
    if stream.set_nonblocking(true).is_err() {
        return;
    }
    let _ = write_msg(
        &mut stream,
        &Msg::Refused {
            code: HCCL_E_AGAIN,
            message: format!("the root process is busy: {why}; try again"),
        },
    );
    let _ = stream.shutdown(Shutdown::Write);
    let mut sink = [0u8; 256];
    for _ in 0..4 {
        match std::io::Read::read(&mut stream, &mut sink) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
}

/// A `Hello` that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The root info's serial.
    pub serial: u64,
    /// `nRanks` (1..=MAX_RANKS).
    pub nranks: u32,
    /// The claimed rank (< nranks).
    pub rank: u32,
    /// The rank's device.
    pub device: u32,
    /// The joining process's nonce.
    pub nonce: u64,
    /// The joining process's id.
    pub pid: u32,
    /// The rank's timeout (1 ms..=MAX_TIMEOUT).
    pub timeout: Duration,
    /// The rank's device memory (1..=MAX_MEMORY bytes).
    pub memory: u64,
}

/// Why a connection was not let in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Closed without an answer (what happened, for the log).
    Drop(String),
    /// Answered with this `HcclResult` and message.
    Refuse(HcclResult, String),
    /// The right secret of a root info whose rendezvous already ended,
    /// claiming rank `.1` (a replay, or a second claim after the
    /// communicator formed).
    Late(u64, u32),
}

/// Communicators spanning processes formed from root infos of this
/// process, by serial, with their coordinator (the most recent
/// [`root_info::MAX_RETIRED`]): a late claim for one of them fails it.
static FORMED: Mutex<Vec<(u64, Sender<Event>)>> = Mutex::new(Vec::new());

fn formed(serial: u64, tx: Sender<Event>) {
    let mut f = FORMED.lock().unwrap_or_else(|e| e.into_inner());
    if f.len() >= root_info::MAX_RETIRED {
        f.remove(0);
    }
    f.push((serial, tx));
}

/// Answers a late claim for rank `rank` of root info `serial`: a
/// communicator spanning processes formed from it is failed for every
/// rank; the message says what happened.
fn late_claim(serial: u64, rank: u32) -> String {
    let tx = FORMED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|(s, _)| *s == serial)
        .map(|(_, tx)| tx.clone());
    let what = format!(
        "a second claim for rank {rank} of this rootInfo arrived after its rendezvous ended (a copied, replayed or forged root info?)"
    );
    match tx {
        Some(tx)
            if tx
                .send(Event::Poison(format!(
                    "{what}; the communicator is failed for every rank"
                )))
                .is_ok() =>
        {
            format!("{what}; the communicator formed from it is failed for every rank")
        }
        _ => format!("{what}; a root info is single-use: call HcclGetRootInfo for a new one"),
    }
}

/// Reads and checks the first frame of a connection before `deadline`:
/// the size of a `Hello`, its magic and protocol (`wire::read_hello`),
/// then the root info's secret and serial, the maker's nonce, and the
/// arguments. Allocates nothing for the peer but the text of a rejection.
pub fn greet(
    input: &mut impl Source,
    deadline: Instant,
    hello_ms: u128,
) -> Result<Claim, Rejection> {
    let hello = match read_hello(input, deadline) {
        Ok(m) => m,
        Err(ReadError::Closed) => return Err(Rejection::Drop("closed before its Hello".into())),
        Err(ReadError::Idle(_)) => {
            return Err(Rejection::Drop(format!(
                "no complete Hello within {hello_ms} ms"
            )));
        }
        Err(ReadError::Io(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            return Err(Rejection::Drop(format!(
                "no complete Hello within {hello_ms} ms"
            )));
        }
        Err(e) => return Err(Rejection::Drop(format!("not a Hello: {e}"))),
    };
    let Msg::Hello {
        secret,
        root_nonce,
        serial,
        nranks,
        rank,
        device,
        nonce,
        pid,
        timeout_ms,
        memory,
    } = hello
    else {
        return Err(Rejection::Drop("not a Hello".into()));
    };
    let refuse = |m: String| Err(Rejection::Refuse(HCCL_E_PARA, m));
    match root_info::standing(serial, &secret) {
        Standing::Live if root_nonce == process_nonce() => {}
        Standing::Retired if root_nonce == process_nonce() => {
            return Err(Rejection::Late(serial, rank));
        }
        _ => {
            return refuse(
                "rootInfo is not one this listener serves (unknown, forged, or made by a process that has exited)"
                    .into(),
            );
        }
    }
    if nranks == 0 || nranks > MAX_RANKS {
        return refuse(format!(
            "nRanks {nranks} is out of range (1 to {MAX_RANKS})"
        ));
    }
    if rank >= nranks {
        return refuse(format!("rank {rank} is out of range for nRanks {nranks}"));
    }
    if timeout_ms == 0 || u128::from(timeout_ms) > MAX_TIMEOUT.as_millis() {
        return refuse(format!(
            "timeout {timeout_ms} ms is out of range (1 to {} ms)",
            MAX_TIMEOUT.as_millis()
        ));
    }
    if memory == 0 || memory > MAX_MEMORY {
        return refuse(format!(
            "device memory {memory} bytes is out of range (1 to {MAX_MEMORY})"
        ));
    }
    Ok(Claim {
        serial,
        nranks,
        rank,
        device,
        nonce,
        pid,
        timeout: Duration::from_millis(timeout_ms),
        memory,
    })
}

/// A rank that has joined and waits.
struct Member {
    device: u32,
    nonce: u64,
    pid: u32,
    memory: u64,
    /// A handle on the rank's connection, for the answer.
    stream: TcpStream,
}

/// What a completed rendezvous became.
#[derive(Clone)]
enum Decided {
    /// Ranks all in this process; answers written, nothing more to do.
    InProcess,
    /// Ranks span processes: forward frames to this coordinator.
    Network(Sender<Event>, Vec<u64>),
    /// Failed for every rank with this code and message.
    Failed(HcclResult, String),
}

struct Joining {
    nranks: u32,
    members: Vec<Option<Member>>,
    decided: Option<Decided>,
}

struct Rendezvous {
    state: Mutex<Joining>,
    done: Condvar,
}

impl Rendezvous {
    fn lock(&self) -> MutexGuard<'_, Joining> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

static TABLE: LazyLock<Mutex<HashMap<u64, Arc<Rendezvous>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn table() -> MutexGuard<'static, HashMap<u64, Arc<Rendezvous>>> {
    TABLE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Number of rendezvous in progress.
pub fn rendezvous_count() -> usize {
    table().len()
}

fn refuse(stream: &mut TcpStream, code: HcclResult, message: String) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let _ = write_msg(stream, &Msg::Refused { code, message });
}

/// The thread of one connection.
fn serve(mut stream: TcpStream, peer: String, settings: Settings, permit: Pending) {
    let _ = stream.set_nodelay(true);
    let deadline = Instant::now() + settings.hello;
    let claim = greet(&mut stream, deadline, settings.hello.as_millis());
    drop(permit);
    let claim = match claim {
        Ok(c) => c,
        Err(Rejection::Drop(why)) => return note(false, &peer, &why),
        Err(Rejection::Refuse(code, message)) => {
            note(true, &peer, &message);
            return refuse(&mut stream, code, message);
        }
        Err(Rejection::Late(serial, rank)) => {
            let message = late_claim(serial, rank);
            note(true, &peer, &message);
            return refuse(&mut stream, HCCL_E_PARA, message);
        }
    };
    JOINED.fetch_add(1, Ordering::Relaxed);
    let Ok(handle) = stream.try_clone() else {
        return note(false, &peer, "cannot duplicate its socket");
    };
    let rank = claim.rank;
    let nranks = claim.nranks;
    let member = Member {
        device: claim.device,
        nonce: claim.nonce,
        pid: claim.pid,
        memory: claim.memory,
        stream: handle,
    };
    match join(&mut stream, &claim, member) {
        Decided::InProcess => {}
        Decided::Network(tx, memory) => {
            let cap = memory.get(rank as usize).copied().unwrap_or(1);
            forward(stream, rank, nranks, cap, tx, &peer)
        }
        Decided::Failed(code, message) => {
            note(true, &peer, &message);
            refuse(&mut stream, code, message)
        }
    }
}

/// Ends rendezvous `entry` of `serial` for every rank with `code` and
/// `message` (the caller holds the table and the entry locks).
fn fail(
    map: &mut HashMap<u64, Arc<Rendezvous>>,
    st: &mut Joining,
    serial: u64,
    code: HcclResult,
    message: String,
) -> Decided {
    let d = Decided::Failed(code, message);
    st.decided = Some(d.clone());
    st.members.iter_mut().for_each(|m| *m = None);
    map.remove(&serial);
    root_info::retire(serial);
    d
}

/// Whether the peer on `stream` is gone (closed, reset, or sending when
/// it must wait for its answer): waits at most a millisecond.
fn peer_gone(stream: &TcpStream) -> Option<&'static str> {
    if stream
        .set_read_timeout(Some(Duration::from_millis(1)))
        .is_err()
    {
        return Some("its socket failed");
    }
    let mut b = [0u8; 1];
    match stream.peek(&mut b) {
        Ok(0) => Some("its connection closed"),
        Ok(_) => Some("it sent data before its answer"),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            None
        }
        Err(_) => Some("its connection broke"),
    }
}

/// Registers `member` as rank `claim.rank` and waits for the rendezvous
/// to end; returns how it ended for this rank.
fn join(stream: &mut TcpStream, claim: &Claim, member: Member) -> Decided {
    let Claim {
        serial,
        nranks,
        rank,
        timeout,
        ..
    } = *claim;
    let deadline = Instant::now() + timeout;
    let entry = {
        let mut map = table();
        if !root_info::is_live(serial) {
            // Its rendezvous ended after greet checked it.
            return Decided::Failed(
                HCCL_E_PARA,
                "rootInfo was already used: its rendezvous completed, failed or timed out".into(),
            );
        }
        let entry = map
            .entry(serial)
            .or_insert_with(|| {
                Arc::new(Rendezvous {
                    state: Mutex::new(Joining {
                        nranks,
                        // nranks was checked against MAX_RANKS by greet.
                        members: (0..nranks).map(|_| None).collect(),
                        decided: None,
                    }),
                    done: Condvar::new(),
                })
            })
            .clone();
        let mut st = entry.lock();
        if st.nranks != nranks {
            let message = format!(
                "a claim for rank {rank} with nRanks {nranks} arrived, but the ranks that already joined this rootInfo gave nRanks {}; the rendezvous is abandoned for every rank",
                st.nranks
            );
            let d = fail(&mut map, &mut st, serial, HCCL_E_PARA, message);
            drop(st);
            entry.done.notify_all();
            return d;
        }
        if st.members[rank as usize].is_some() {
            let message = format!(
                "a second claim for rank {rank} of this rootInfo arrived while the rank was waiting (a copied, replayed or forged root info?); the rendezvous is abandoned for every rank"
            );
            let d = fail(&mut map, &mut st, serial, HCCL_E_PARA, message);
            drop(st);
            entry.done.notify_all();
            return d;
        }
        st.members[rank as usize] = Some(member);
        if st.members.iter().all(Option::is_some) {
            let members: Vec<Member> = st.members.iter_mut().filter_map(Option::take).collect();
            map.remove(&serial);
            root_info::retire(serial);
            drop(map);
            let decided = complete(serial, members, timeout);
            st.decided = Some(decided.clone());
            drop(st);
            entry.done.notify_all();
            return decided;
        }
        drop(st);
        entry
    };
    loop {
        let st = entry.lock();
        if let Some(d) = &st.decided {
            return d.clone();
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let (st, _) = entry
            .done
            .wait_timeout(st, (deadline - now).min(LIVENESS_CHECK))
            .unwrap_or_else(|e| e.into_inner());
        if let Some(d) = &st.decided {
            return d.clone();
        }
        drop(st);
        if let Some(why) = peer_gone(stream) {
            let mut map = table();
            let mut st = entry.lock();
            if let Some(d) = &st.decided {
                return d.clone();
            }
            let message = format!(
                "rank {rank} left the rendezvous of this rootInfo before every rank joined ({why}); the rendezvous is abandoned for every rank"
            );
            let d = fail(&mut map, &mut st, serial, HCCL_E_TCP_TRANSFER, message);
            drop(st);
            entry.done.notify_all();
            return d;
        }
    }
    // Timed out: the rendezvous fails for every rank still waiting,
    // keeping the lock order (table, then rendezvous).
    let mut map = table();
    let mut st = entry.lock();
    if let Some(d) = &st.decided {
        return d.clone();
    }
    let missing: Vec<u32> = (0..nranks)
        .filter(|r| st.members[*r as usize].is_none() && *r != rank)
        .collect();
    let message = format!(
        "rank {rank} waited {} ms for the other ranks of an {nranks}-rank communicator; ranks {missing:?} never joined",
        timeout.as_millis()
    );
    let d = fail(&mut map, &mut st, serial, HCCL_E_TIMEOUT, message);
    drop(st);
    entry.done.notify_all();
    d
}

/// Completes a rendezvous: answers every rank and, when the ranks span
/// processes, starts the coordinator.
fn complete(serial: u64, mut members: Vec<Member>, timeout: Duration) -> Decided {
    let me = local_token();
    let devices: Vec<u32> = members.iter().map(|m| m.device).collect();
    // Only threads of this process know the token.
    if members.iter().all(|m| m.nonce == me) {
        let handles = comm::create(devices, timeout);
        for (m, h) in members.iter_mut().zip(handles) {
            let _ = write_msg(
                &mut m.stream,
                &Msg::JoinedInProcess {
                    handle: h as usize as u64,
                },
            );
        }
        return Decided::InProcess;
    }
    let pids: Vec<u32> = members.iter().map(|m| m.pid).collect();
    let memory: Vec<u64> = members.iter().map(|m| m.memory).collect();
    let local: Vec<bool> = members.iter().map(|m| m.nonce == me).collect();
    let name = format!(
        "ascend_mock_hccl_{}_{serial}_{}",
        std::process::id(),
        comm::next_group_id()
    );
    let (tx, rx) = mpsc::channel();
    let mut writers = Vec::with_capacity(members.len());
    for m in members {
        let mut s = m.stream;
        let answered = write_msg(
            &mut s,
            &Msg::JoinedNetwork {
                name: name.clone(),
                devices: devices.clone(),
                pids: pids.clone(),
            },
        );
        if answered.is_err() {
            // Its reader sees the broken connection and reports it.
            let _ = s.shutdown(Shutdown::Both);
        }
        writers.push(s);
    }
    coordinator::spawn(name, writers, local, rx);
    formed(serial, tx.clone());
    Decided::Network(tx, memory)
}

/// The rule for the payload of a frame from rank `rank` of `n` whose
/// device holds `memory` bytes: a contribution carries exactly what its
/// call implies for that rank, a send exactly its count of elements, both
/// within what buffers of that device can hold; nothing else carries one.
pub fn rank_payload_rule(rank: u32, n: u32, memory: u64, msg: &Msg, len: u64) -> MockResult<()> {
    let bad = |m: String| {
        Err(super::hccl_err(
            HCCL_E_TCP_TRANSFER,
            format!("rank {rank}: {m}"),
        ))
    };
    let (want, limit) = match msg {
        Msg::Contribute { call, .. } => {
            let c = call.to_call()?;
            let want = contribution_len(&c, rank as usize, n as usize)?;
            // All-to-all-v parts may overlap in the send buffer: each part
            // lies in one buffer; other kinds read one buffer.
            let parts = if c.kind == super::collective::Kind::AlltoAllV {
                u64::from(n)
            } else {
                1
            };
            (want, memory.saturating_mul(parts))
        }
        Msg::Send { dtype, count, .. } => {
            let want = DataType::from_raw(*dtype)?.bytes(*count)? as u64;
            (want, memory)
        }
        _ if len == 0 => return Ok(()),
        other => {
            return bad(format!(
                "a {} message does not come from a rank",
                other.name()
            ));
        }
    };
    if want > limit {
        return bad(format!(
            "a {}-byte {} is larger than the {limit} bytes its device can hold",
            want,
            msg.name()
        ));
    }
    if len != want {
        return bad(format!(
            "a {} announces a {len}-byte payload, but its header implies {want} bytes",
            msg.name()
        ));
    }
    Ok(())
}

/// Forwards what rank `rank` of `n` sends to the coordinator until the
/// connection closes, breaks, goes silent or sends a bad frame.
fn forward(mut stream: TcpStream, rank: u32, n: u32, memory: u64, tx: Sender<Event>, peer: &str) {
    let limits = Limits::for_ranks(n, memory.saturating_mul(u64::from(n)));
    let timing = Timing {
        idle: Some(PEER_IDLE),
        frame: Some(FRAME_DEADLINE),
    };
    loop {
        let read = wire::read_frame(&mut stream, &limits, timing, |m, len| {
            rank_payload_rule(rank, n, memory, m, len)
        });
        match read {
            Ok(Msg::Ping) => {}
            Ok(msg) => {
                if tx.send(Event::Frame(rank, msg)).is_err() {
                    return;
                }
            }
            Err(e) => {
                if !matches!(e, ReadError::Closed) {
                    note(false, peer, &format!("rank {rank}: {e}"));
                    let _ = stream.shutdown(Shutdown::Both);
                }
                let _ = tx.send(Event::Closed(rank, e.to_string()));
                return;
            }
        }
    }
}
