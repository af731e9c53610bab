//! The coordinator of a communicator whose ranks span processes: one
//! thread in the root process (the one that made the root info) that
//! every rank talks to over its TCP connection.
//!
//! Collectives: each rank's stream task sends its `Contribute` (its call
//! and its input, `collective::contribution`); when every rank's has
//! arrived, the coordinator checks that the calls match, combines them
//! with the same code as in-process collectives (`collective::combine`)
//! and sends each rank its `Outcome`, which the rank's task writes into
//! its buffers. A collective some rank has not joined within the timeout
//! of the first arrival is abandoned (`HCCL_E_TIMEOUT` for every rank, the
//! late ones included); one waiting for a rank destroyed before it queued
//! the collective fails at once (`HCCL_E_UNAVAIL`), and one waiting for a
//! rank whose connection broke without a destroy (its process exited or
//! crashed) fails at once with `HCCL_E_TCP_TRANSFER`.
//!
//! Sends are forwarded to the destination as they come (a send never
//! waits for its receive); destroys and broken connections are announced
//! to every other rank, so that their receives fail as in-process ones do.
//!
//! Invariants: the coordinator holds the inputs of collectives that are
//! still waiting (each rank has at most one in flight per stream), never
//! messages; only the coordinator thread writes to a rank's connection
//! after the rendezvous answered it; the thread ends when every rank's
//! connection has closed.

use std::collections::BTreeMap;
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use ascend_sys::*;

use super::collective::{Call, check_calls, combine};
use super::wire::{CallDesc, Msg, write_with_payload};

/// What the connection threads report.
#[derive(Debug)]
pub enum Event {
    /// Rank `.0` sent a message.
    Frame(u32, Msg),
    /// Rank `.0`'s connection closed or broke (why).
    Closed(u32, String),
    /// A claim for a rank of the communicator arrived after it formed:
    /// someone else holds its root info, so the communicator is failed
    /// for every rank (why).
    Poison(String),
}

/// The most collectives waiting for ranks at once: a rank has at most one
/// in flight per stream, so this is far above any legitimate use, and it
/// bounds the inputs held for a rank that sends contributions with ever
/// new sequence numbers.
pub const MAX_SLOTS: usize = 1024;

/// How long a write to a rank may block before the rank counts as lost.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts the coordinator of the communicator `name` whose rank `r` is
/// connected through `writers[r]` (`local[r]`: that rank lives in this
/// process), fed by the connection threads on `rx`.
pub fn spawn(name: String, writers: Vec<TcpStream>, local: Vec<bool>, rx: Receiver<Event>) {
    let n = writers.len();
    // Answer ranks of other processes first: once a rank of this process
    // has its outcome, every other rank's is written, so this process may
    // exit as soon as its own collectives are done.
    let mut order: Vec<usize> = (0..n)
        .filter(|&r| !local.get(r).copied().unwrap_or(false))
        .collect();
    order.extend((0..n).filter(|&r| local.get(r).copied().unwrap_or(false)));
    for w in &writers {
        let _ = w.set_write_timeout(Some(WRITE_TIMEOUT));
    }
    let handles: Vec<TcpStream> = writers.iter().filter_map(|w| w.try_clone().ok()).collect();
    let coordinator = Coordinator {
        name,
        n,
        order,
        writers: writers.into_iter().map(Some).collect(),
        slots: BTreeMap::new(),
        destroyed: vec![None; n],
        lost: vec![None; n],
        closed: vec![false; n],
    };
    let spawned = std::thread::Builder::new()
        .name("hccl-coordinator".to_string())
        .spawn(move || coordinator.run(rx));
    if spawned.is_err() {
        // Without a coordinator the ranks must not wait for answers: cut
        // every connection, so their tasks fail with HCCL_E_TCP_TRANSFER.
        for h in handles {
            let _ = h.shutdown(Shutdown::Both);
        }
    }
}

/// One collective of the communicator.
struct Slot {
    api: &'static str,
    calls: Vec<Option<Call>>,
    data: Vec<Option<Vec<u8>>>,
    /// When the first arrival's timeout passes, and that timeout.
    deadline: Instant,
    timeout: Duration,
    /// Given up, with this `HcclResult` and message.
    abandoned: Option<(HcclResult, String)>,
    /// Ranks that have had their outcome.
    answered: Vec<bool>,
}

struct Coordinator {
    name: String,
    n: usize,
    /// The ranks in the order they are answered (other processes first).
    order: Vec<usize>,
    writers: Vec<Option<TcpStream>>,
    slots: BTreeMap<u64, Slot>,
    /// Per rank: destroyed after queueing collectives up to this number.
    destroyed: Vec<Option<u64>>,
    /// Per rank: its connection broke without a destroy.
    lost: Vec<Option<String>>,
    closed: Vec<bool>,
}

impl Coordinator {
    fn run(mut self, rx: Receiver<Event>) {
        while !self.closed.iter().all(|c| *c) {
            let wait = self
                .slots
                .values()
                .filter(|s| s.abandoned.is_none())
                .map(|s| s.deadline.saturating_duration_since(Instant::now()))
                .min()
                .unwrap_or(Duration::from_secs(3600));
            match rx.recv_timeout(wait) {
                Ok(Event::Frame(r, msg)) => self.frame(r as usize, msg),
                Ok(Event::Closed(r, why)) => self.closed(r as usize, why),
                Ok(Event::Poison(why)) => self.poison(why),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.expire();
        }
    }

    /// Sends `msg` to rank `r`; a rank that cannot take it is cut off (its
    /// connection thread then reports it closed).
    fn send(&mut self, r: usize, msg: &Msg) {
        self.send_with(r, msg, msg.payload());
    }

    /// Sends `msg` with `payload` as its data.
    fn send_with(&mut self, r: usize, msg: &Msg, payload: &[u8]) {
        if let Some(w) = &mut self.writers[r]
            && write_with_payload(w, msg, payload).is_err()
        {
            let _ = w.shutdown(Shutdown::Both);
            self.writers[r] = None;
        }
    }

    fn frame(&mut self, r: usize, msg: Msg) {
        match msg {
            Msg::Contribute {
                seq,
                timeout_ms,
                call,
                data,
            } => {
                if timeout_ms == 0 || u128::from(timeout_ms) > super::MAX_TIMEOUT.as_millis() {
                    let reply = Msg::Outcome {
                        seq,
                        result: Err((
                            HCCL_E_PARA,
                            format!(
                                "rank {r}'s timeout {timeout_ms} ms for collective #{seq} is out of range (1 to {} ms)",
                                super::MAX_TIMEOUT.as_millis()
                            ),
                        )),
                    };
                    return self.send(r, &reply);
                }
                self.contribute(r, seq, Duration::from_millis(timeout_ms), &call, data)
            }
            Msg::Send {
                to,
                seq,
                dtype,
                count,
                data,
            } => {
                if (to as usize) < self.n {
                    let deliver = Msg::Deliver {
                        from: r as u32,
                        seq,
                        dtype,
                        count,
                        data,
                    };
                    self.send(to as usize, &deliver);
                }
            }
            Msg::Destroy { last_seq, sent } => {
                self.destroyed[r] = Some(last_seq);
                for q in (0..self.n).filter(|&q| q != r) {
                    let notice = Msg::PeerDestroyed {
                        rank: r as u32,
                        sent: sent.get(q).copied().unwrap_or(0),
                    };
                    self.send(q, &notice);
                }
                self.recheck();
            }
            other => {
                let why = format!("it sent an unexpected {} message", other.name());
                if let Some(w) = &self.writers[r] {
                    let _ = w.shutdown(Shutdown::Both);
                }
                self.writers[r] = None;
                self.closed(r, why);
            }
        }
    }

    fn contribute(
        &mut self,
        r: usize,
        seq: u64,
        timeout: Duration,
        desc: &CallDesc,
        data: Vec<u8>,
    ) {
        let n = self.n;
        let call = match desc.to_call() {
            Ok(c) => c,
            Err(e) => {
                let reply = Msg::Outcome {
                    seq,
                    result: Err((e.code as u32, e.message)),
                };
                return self.send(r, &reply);
            }
        };
        let now = Instant::now();
        if !self.slots.contains_key(&seq) && self.slots.len() >= MAX_SLOTS {
            let reply = Msg::Outcome {
                seq,
                result: Err((
                    HCCL_E_UNAVAIL,
                    format!(
                        "collective #{seq} of communicator {}: {MAX_SLOTS} collectives are already waiting for ranks",
                        self.name
                    ),
                )),
            };
            return self.send(r, &reply);
        }
        let slot = self.slots.entry(seq).or_insert_with(|| Slot {
            api: call.api,
            calls: vec![None; n],
            data: vec![None; n],
            deadline: now + timeout,
            timeout,
            abandoned: None,
            answered: vec![false; n],
        });
        if now + timeout < slot.deadline {
            slot.deadline = now + timeout;
            slot.timeout = timeout;
        }
        if let Some((code, message)) = slot.abandoned.clone() {
            slot.answered[r] = true;
            self.send(
                r,
                &Msg::Outcome {
                    seq,
                    result: Err((code, message)),
                },
            );
            self.tidy(seq);
            return;
        }
        if slot.calls[r].is_some() {
            let reply = Msg::Outcome {
                seq,
                result: Err((
                    HCCL_E_INTERNAL,
                    format!("rank {r} contributed to collective #{seq} twice"),
                )),
            };
            return self.send(r, &reply);
        }
        slot.calls[r] = Some(call);
        slot.data[r] = Some(data);
        if slot.calls.iter().all(Option::is_some) {
            self.finish(seq);
        } else {
            self.check_gone(seq);
        }
    }

    /// Every rank arrived: combine and answer.
    fn finish(&mut self, seq: u64) {
        let Some(slot) = self.slots.remove(&seq) else {
            return;
        };
        let calls: Vec<Call> = slot.calls.into_iter().flatten().collect();
        let inputs: Vec<Vec<u8>> = slot.data.into_iter().flatten().collect();
        let outcome = check_calls(seq, &calls).and_then(|()| combine(seq, &calls, inputs));
        for r in self.order.clone() {
            match &outcome {
                // Written straight from the shared result (no copy per rank).
                Ok(outs) => self.send_with(
                    r,
                    &Msg::Outcome {
                        seq,
                        result: Ok(Vec::new()),
                    },
                    &outs[r],
                ),
                Err(e) => self.send(
                    r,
                    &Msg::Outcome {
                        seq,
                        result: Err((e.code as u32, e.message.clone())),
                    },
                ),
            }
        }
    }

    /// Whether rank `q` will never contribute to collective `seq`, and why.
    fn gone(&self, q: usize, seq: u64) -> Option<(HcclResult, String)> {
        if let Some(why) = &self.lost[q] {
            return Some((
                HCCL_E_TCP_TRANSFER,
                format!(
                    "rank {q}'s connection broke without HcclCommDestroy ({why}; did its process exit?)"
                ),
            ));
        }
        match self.destroyed[q] {
            Some(last) if last < seq => Some((
                HCCL_E_UNAVAIL,
                format!("ranks [{q}] were destroyed (HcclCommDestroy) without joining it"),
            )),
            // Queued it, but the connection closed before its task ran (the
            // process ended without synchronising its stream).
            Some(_) if self.closed[q] => Some((
                HCCL_E_UNAVAIL,
                format!(
                    "ranks [{q}] were destroyed (HcclCommDestroy) and their connection closed before they joined it"
                ),
            )),
            _ => None,
        }
    }

    /// Abandons collective `seq` if a rank it waits for will never come.
    fn check_gone(&mut self, seq: u64) {
        let Some(slot) = self.slots.get(&seq) else {
            return;
        };
        if slot.abandoned.is_some() {
            return;
        }
        let reason = (0..self.n)
            .filter(|&q| slot.calls[q].is_none())
            .find_map(|q| self.gone(q, seq));
        if let Some((code, why)) = reason {
            let message = format!(
                "collective #{seq} ({}) of communicator {}: {why}",
                slot.api, self.name
            );
            self.abandon(seq, code, message);
        }
    }

    fn recheck(&mut self) {
        let seqs: Vec<u64> = self.slots.keys().copied().collect();
        for seq in seqs {
            self.check_gone(seq);
            self.tidy(seq);
        }
    }

    /// Gives collective `seq` up: every rank that arrived gets the error
    /// now, later ones when they arrive.
    fn abandon(&mut self, seq: u64, code: HcclResult, message: String) {
        let Some(slot) = self.slots.get_mut(&seq) else {
            return;
        };
        slot.abandoned = Some((code, message.clone()));
        slot.data.iter_mut().for_each(|d| *d = None);
        let arrived: Vec<usize> = self
            .order
            .iter()
            .copied()
            .filter(|&r| slot.calls[r].is_some() && !slot.answered[r])
            .collect();
        for r in arrived {
            if let Some(slot) = self.slots.get_mut(&seq) {
                slot.answered[r] = true;
            }
            self.send(
                r,
                &Msg::Outcome {
                    seq,
                    result: Err((code, message.clone())),
                },
            );
        }
        self.tidy(seq);
    }

    /// Forgets an abandoned collective once no rank can still ask for it.
    fn tidy(&mut self, seq: u64) {
        let Some(slot) = self.slots.get(&seq) else {
            return;
        };
        if slot.abandoned.is_some()
            && (0..self.n)
                .all(|q| slot.answered[q] || self.closed[q] || self.gone(q, seq).is_some())
        {
            self.slots.remove(&seq);
        }
    }

    /// Abandons the collectives whose deadline passed.
    fn expire(&mut self) {
        let now = Instant::now();
        let due: Vec<u64> = self
            .slots
            .iter()
            .filter(|(_, s)| s.abandoned.is_none() && s.deadline <= now)
            .map(|(k, _)| *k)
            .collect();
        for seq in due {
            let Some(slot) = self.slots.get(&seq) else {
                continue;
            };
            let missing: Vec<usize> = (0..self.n).filter(|&r| slot.calls[r].is_none()).collect();
            let message = format!(
                "collective #{seq} ({}) of communicator {}: ranks {missing:?} did not join within {} ms",
                slot.api,
                self.name,
                slot.timeout.as_millis()
            );
            self.abandon(seq, HCCL_E_TIMEOUT, message);
        }
    }

    /// Fails the communicator for every rank: each is told why (its tasks
    /// then fail with that reason) and cut off; collectives in flight are
    /// abandoned.
    fn poison(&mut self, why: String) {
        let seqs: Vec<u64> = self.slots.keys().copied().collect();
        for seq in seqs {
            let message = format!("collective #{seq} of communicator {}: {why}", self.name);
            self.abandon(seq, HCCL_E_PARA, message);
        }
        for r in 0..self.n {
            self.send(
                r,
                &Msg::Refused {
                    code: HCCL_E_PARA,
                    message: why.clone(),
                },
            );
            if let Some(w) = self.writers[r].take() {
                let _ = w.shutdown(Shutdown::Both);
            }
        }
    }

    fn closed(&mut self, r: usize, why: String) {
        if self.closed[r] {
            return;
        }
        self.closed[r] = true;
        self.writers[r] = None;
        if self.destroyed[r].is_none() {
            self.lost[r] = Some(why.clone());
            let notice = Msg::PeerLost {
                rank: r as u32,
                message: format!(
                    "rank {r}'s connection broke without HcclCommDestroy ({why}; did its process exit?)"
                ),
            };
            for q in (0..self.n).filter(|&q| q != r) {
                self.send(q, &notice);
            }
        }
        self.recheck();
    }
}
