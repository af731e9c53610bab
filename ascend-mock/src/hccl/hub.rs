//! The root process's side of root infos served over TCP: the listener
//! that `HcclGetRootInfo` opens, and the rendezvous of the ranks that join
//! through it.
//!
//! The first `HcclGetRootInfo` of a process binds a listener to an
//! ephemeral port of 127.0.0.1 and starts a thread accepting connections;
//! every root info of the process carries that address. Each connection
//! gets a thread: it reads the rank's `Hello`, registers the rank with the
//! rendezvous of that root info (keyed by serial) and waits. The thread
//! that completes a rendezvous decides for all ranks:
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
//! A rank still waiting when its own timeout passes is withdrawn and told
//! which ranks never joined (`HCCL_E_TIMEOUT`). The listener lives as long
//! as the process, so it serves whichever thread joins, whenever.
//!
//! Invariants: a rendezvous is completed once, by the thread that filled
//! its last place, which writes every rank's answer before the coordinator
//! may write anything else to them; a withdrawn rank's place is free again.
//! Lock order: the table of rendezvous, then one rendezvous.

use std::collections::HashMap;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ascend_sys::*;

use super::comm;
use super::coordinator::{self, Event};
use super::root_info::{RootInfo, issued, process_nonce};
use super::wire::{Msg, read_msg, write_msg};
use crate::error::MockResult;

/// How long a new connection may take to send its `Hello`.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// The process id and address of this process's listener.
static LISTENER: Mutex<Option<(u32, String)>> = Mutex::new(None);

/// A root info for `HcclGetRootInfo`: served over TCP by this process's
/// listener (opened on first use), or in-process when no listener can be
/// opened.
pub fn root_info() -> RootInfo {
    match listener_address() {
        Ok(address) => RootInfo::new_tcp(address),
        Err(_) => RootInfo::new_in_process(),
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
        .spawn(move || accept_loop(listener))
        .map_err(fail)?;
    *slot = Some((pid, address.clone()));
    Ok(address)
}

fn accept_loop(listener: TcpListener) {
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                let spawned = std::thread::Builder::new()
                    .name("hccl-join".to_string())
                    .spawn(move || serve(stream));
                if spawned.is_err() {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            // Out of descriptors and the like: try again shortly.
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// A rank that has joined and waits.
struct Member {
    device: u32,
    nonce: u64,
    pid: u32,
    timeout: Duration,
    /// A handle on the rank's connection, for the answer.
    stream: TcpStream,
}

/// What a completed rendezvous became.
#[derive(Clone)]
enum Decided {
    /// Ranks all in this process; answers written, nothing more to do.
    InProcess,
    /// Ranks span processes: forward frames to this coordinator.
    Network(Sender<Event>),
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

fn refuse(stream: &mut TcpStream, code: HcclResult, message: String) {
    let _ = write_msg(stream, &Msg::Refused { code, message });
}

/// The thread of one connection.
fn serve(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    if stream.set_read_timeout(Some(HELLO_TIMEOUT)).is_err() {
        return;
    }
    let Ok(Msg::Hello {
        root_nonce,
        serial,
        nranks,
        rank,
        device,
        nonce,
        pid,
        timeout_ms,
    }) = read_msg(&mut stream)
    else {
        // Not one of ours, or it gave up: drop the connection.
        return;
    };
    if root_nonce != process_nonce() || !issued(serial) {
        return refuse(
            &mut stream,
            HCCL_E_PARA,
            format!(
                "rootInfo (serial {serial}) was not made by process {} listening here (a stale root info of an exited process?)",
                std::process::id()
            ),
        );
    }
    if nranks == 0 || rank >= nranks {
        return refuse(
            &mut stream,
            HCCL_E_PARA,
            format!("rank {rank} is out of range for nRanks {nranks}"),
        );
    }
    let Ok(handle) = stream.try_clone() else {
        return;
    };
    let timeout = Duration::from_millis(timeout_ms.max(1));
    let member = Member {
        device,
        nonce,
        pid,
        timeout,
        stream: handle,
    };
    let Some(decided) = join(&mut stream, serial, nranks, rank, member) else {
        return;
    };
    match decided {
        Decided::InProcess => {}
        Decided::Network(tx) => forward(stream, rank, tx),
    }
}

/// Registers `member` as rank `rank` and waits for the rendezvous to
/// complete; `None` when this rank was refused or timed out (its answer
/// already written).
fn join(
    stream: &mut TcpStream,
    serial: u64,
    nranks: u32,
    rank: u32,
    member: Member,
) -> Option<Decided> {
    let timeout = member.timeout;
    let deadline = Instant::now() + timeout;
    let entry = {
        let mut map = table();
        let entry = map
            .entry(serial)
            .or_insert_with(|| {
                Arc::new(Rendezvous {
                    state: Mutex::new(Joining {
                        nranks,
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
                "nRanks {nranks} differs from the {} given by the ranks that already joined this rootInfo",
                st.nranks
            );
            drop(st);
            drop(map);
            refuse(stream, HCCL_E_PARA, message);
            return None;
        }
        if st.members[rank as usize].is_some() {
            drop(st);
            drop(map);
            refuse(
                stream,
                HCCL_E_PARA,
                format!("rank {rank} has already joined this rootInfo"),
            );
            return None;
        }
        st.members[rank as usize] = Some(member);
        if st.members.iter().all(Option::is_some) {
            let members: Vec<Member> = st.members.iter_mut().filter_map(Option::take).collect();
            map.remove(&serial);
            drop(map);
            let decided = complete(serial, members, timeout);
            st.decided = Some(decided.clone());
            drop(st);
            entry.done.notify_all();
            return Some(decided);
        }
        drop(st);
        entry
    };
    let mut st = entry.lock();
    loop {
        if let Some(d) = &st.decided {
            return Some(d.clone());
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
    // Withdraw, keeping the lock order (table, then rendezvous).
    drop(st);
    let mut map = table();
    let mut st = entry.lock();
    if let Some(d) = &st.decided {
        return Some(d.clone());
    }
    st.members[rank as usize] = None;
    let missing: Vec<u32> = (0..nranks)
        .filter(|r| st.members[*r as usize].is_none() && *r != rank)
        .collect();
    if st.members.iter().all(Option::is_none)
        && map.get(&serial).is_some_and(|e| Arc::ptr_eq(e, &entry))
    {
        map.remove(&serial);
    }
    drop(st);
    drop(map);
    refuse(
        stream,
        HCCL_E_TIMEOUT,
        format!(
            "rank {rank} waited {} ms for the other ranks of an {nranks}-rank communicator; ranks {missing:?} never joined",
            timeout.as_millis()
        ),
    );
    None
}

/// Completes a rendezvous: answers every rank and, when the ranks span
/// processes, starts the coordinator.
fn complete(serial: u64, mut members: Vec<Member>, timeout: Duration) -> Decided {
    let me = process_nonce();
    let devices: Vec<u32> = members.iter().map(|m| m.device).collect();
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
    coordinator::spawn(name, writers, rx);
    Decided::Network(tx)
}

/// Forwards what rank `rank` sends to the coordinator until the
/// connection closes.
fn forward(mut stream: TcpStream, rank: u32, tx: Sender<Event>) {
    if stream.set_read_timeout(None).is_err() {
        let _ = tx.send(Event::Closed(
            rank,
            "cannot read its connection".to_string(),
        ));
        return;
    }
    loop {
        match read_msg(&mut stream) {
            Ok(msg) => {
                if tx.send(Event::Frame(rank, msg)).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(Event::Closed(rank, e.to_string()));
                return;
            }
        }
    }
}
