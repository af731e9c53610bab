//! The messages that ranks in different processes exchange over loopback
//! TCP, and their byte format.
//!
//! Every message is one frame: the header's length and the payload's
//! length (little-endian `u64`s), the header, then the payload. The header
//! starts with a one-byte tag ([`Msg`]'s variant) followed by the fields
//! in declaration order (integers little-endian, strings as a `u64` length
//! and the bytes, lists as a `u64` length and the items), except the
//! element data of `Contribute`, `Outcome`, `Send` and `Deliver`, which is
//! the payload: it is written from where it lies and read into a buffer of
//! its own, never copied through the header. The first message on a
//! connection is a [`Msg::Hello`], which opens with [`MAGIC`],
//! [`PROTOCOL`] and the root info's secret, so that a stray connection to
//! the root's port is recognised and dropped.
//!
//! Reading is bounded before anything is reserved:
//! - the first frame of a connection ([`read_hello`]) must announce
//!   exactly a `Hello` ([`HELLO_LEN`] header bytes, no payload); it is read
//!   into a fixed array, so a stranger costs no allocation beyond an error
//!   message;
//! - every later frame ([`read_frame`]) is checked against [`Limits`] the
//!   reader derives from its communicator (the rank count, the largest
//!   buffer a rank can register), then its header is decoded, and the
//!   payload's length must be the one the header implies (checked by the
//!   reader's own rule) before any of it is read; the payload buffer then
//!   grows as bytes arrive, never reserved up front;
//! - [`Timing`] bounds the wait for a frame's first byte (an idle peer)
//!   and, separately, the whole frame once it started (a peer that
//!   trickles bytes cannot keep a read alive by sending one now and then).
//!
//! Invariants: decoding never panics and never trusts a length: a header
//! or payload over the reader's limits, a truncated field, trailing bytes,
//! a payload on a message without data or an unknown tag is an
//! `HCCL_E_TCP_TRANSFER` error naming what was wrong.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ascend_sys::*;

use super::collective::{Call, Kind, VCounts};
use super::dtype::{DataType, ReduceOp};
use super::hccl_err;
use crate::error::{MockError, MockResult};

/// Opens every `Hello`.
pub const MAGIC: [u8; 8] = *b"ASMKHCCL";
/// The protocol version written and accepted (2: the `Hello` carries the
/// root info's secret and the rank's memory; `Ping` keeps links alive).
pub const PROTOCOL: u32 = 2;
/// Bytes of a root info secret.
pub const SECRET_LEN: usize = super::root_info::SECRET_LEN;
/// The header length of every `Hello`: tag, magic, protocol, secret,
/// root nonce, serial, nRanks, rank, device, nonce, pid, timeout, memory.
pub const HELLO_LEN: usize = 1 + 8 + 4 + SECRET_LEN + 8 + 8 + 4 + 4 + 4 + 8 + 4 + 8 + 8;
/// The longest text (a refusal or failure message) a header may carry
/// besides its per-rank lists.
pub const MAX_TEXT: u64 = 1 << 16;

/// One rank's collective, without its buffer addresses (which mean
/// nothing in another process).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallDesc {
    /// The collective.
    pub kind: Kind,
    /// Element type (`HcclDataType`).
    pub dtype: HcclDataType,
    /// Reduction (`HcclReduceOp`), for the reducing kinds.
    pub op: Option<HcclReduceOp>,
    /// Root rank of the rooted kinds.
    pub root: u32,
    /// The count argument.
    pub count: u64,
    /// `HcclAlltoAllV`'s arrays.
    pub v: Option<VCounts>,
}

impl CallDesc {
    /// The description of `call`.
    pub fn of(call: &Call) -> CallDesc {
        CallDesc {
            kind: call.kind,
            dtype: call.dtype.raw(),
            op: call.op.map(ReduceOp::raw),
            root: call.root,
            count: call.count,
            v: call.v.clone(),
        }
    }

    /// A [`Call`] with this description and no buffers (for the
    /// coordinator, which only combines contributions).
    pub fn to_call(&self) -> MockResult<Call> {
        Ok(Call {
            api: self.kind.api(),
            kind: self.kind,
            dtype: DataType::from_raw(self.dtype)?,
            op: self.op.map(ReduceOp::from_raw).transpose()?,
            root: self.root,
            count: self.count,
            send: 0,
            recv: 0,
            v: self.v.clone(),
        })
    }
}

/// A message between a rank and the root process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// Rank -> root, first on a connection: join a root info.
    Hello {
        /// The root info's secret.
        secret: [u8; SECRET_LEN],
        /// The nonce of the process that made the root info.
        root_nonce: u64,
        /// The root info's serial.
        serial: u64,
        /// `nRanks`.
        nranks: u32,
        /// This rank.
        rank: u32,
        /// This rank's device.
        device: u32,
        /// The joining process's nonce.
        nonce: u64,
        /// The joining process's id, for messages.
        pid: u32,
        /// How long this rank waits for the others (ms).
        timeout_ms: u64,
        /// The capacity of the rank's device (bytes): no buffer it
        /// registers, so no part of what it sends, is larger.
        memory: u64,
    },
    /// Root -> rank: every rank joined and all live in the root process;
    /// this is the rank's communicator handle there.
    JoinedInProcess {
        /// The `HcclComm` value.
        handle: u64,
    },
    /// Root -> rank: every rank joined and some live in other processes;
    /// the connection now carries the communicator's traffic.
    JoinedNetwork {
        /// The communicator's name.
        name: String,
        /// The device of every rank.
        devices: Vec<u32>,
        /// The process id of every rank.
        pids: Vec<u32>,
    },
    /// Root -> rank: the join failed with this `HcclResult`.
    Refused {
        /// The `HcclResult`.
        code: u32,
        /// What went wrong.
        message: String,
    },
    /// Rank -> root: this rank's part of collective `seq`.
    Contribute {
        /// The rank's sequence number of the collective.
        seq: u64,
        /// The rank's timeout (ms).
        timeout_ms: u64,
        /// What the rank called.
        call: CallDesc,
        /// What it contributes (see `collective::contribution`).
        data: Vec<u8>,
    },
    /// Root -> rank: the outcome of collective `seq` for this rank.
    Outcome {
        /// The collective.
        seq: u64,
        /// `Ok(what to deliver)` or `Err((HcclResult, message))`.
        result: Result<Vec<u8>, (u32, String)>,
    },
    /// Rank -> root: a send to rank `to` (the `seq`-th from this rank to it).
    Send {
        /// Destination rank.
        to: u32,
        /// Number of this send between the pair.
        seq: u64,
        /// Element type.
        dtype: HcclDataType,
        /// Elements.
        count: u64,
        /// The elements' bytes.
        data: Vec<u8>,
    },
    /// Root -> rank: a send from rank `from`.
    Deliver {
        /// Source rank.
        from: u32,
        /// Number of this send between the pair.
        seq: u64,
        /// Element type.
        dtype: HcclDataType,
        /// Elements.
        count: u64,
        /// The elements' bytes.
        data: Vec<u8>,
    },
    /// Rank -> root: `HcclCommDestroy`; `last_seq` is the last collective
    /// it queued and `sent[q]` the number of sends it queued to rank q.
    Destroy {
        /// The last collective sequence number queued.
        last_seq: u64,
        /// Sends queued per destination rank.
        sent: Vec<u64>,
    },
    /// Root -> rank: rank `rank` was destroyed after queueing `sent` sends
    /// to the receiver.
    PeerDestroyed {
        /// The destroyed rank.
        rank: u32,
        /// Sends it queued to the receiving rank.
        sent: u64,
    },
    /// Root -> rank: rank `rank`'s connection broke without a destroy.
    PeerLost {
        /// The lost rank.
        rank: u32,
        /// What happened.
        message: String,
    },
    /// Rank -> root: nothing to say, still here (sent when the link has
    /// been quiet for a while, so the root can tell a vanished peer).
    Ping,
}

/// Builds a body.
#[derive(Default)]
struct Enc(Vec<u8>);

impl Enc {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn u32s(&mut self, v: &[u32]) {
        self.u64(v.len() as u64);
        v.iter().for_each(|x| self.u32(*x));
    }
    fn u64s(&mut self, v: &[u64]) {
        self.u64(v.len() as u64);
        v.iter().for_each(|x| self.u64(*x));
    }
}

/// Reads a body.
struct Dec<'a> {
    b: &'a [u8],
    at: usize,
}

fn corrupt(what: &str) -> MockError {
    hccl_err(
        HCCL_E_TCP_TRANSFER,
        format!("malformed HCCL transport message: {what}"),
    )
}

impl Dec<'_> {
    fn take(&mut self, n: usize) -> MockResult<&[u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.b.len())
            .ok_or_else(|| corrupt("truncated field"))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> MockResult<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> MockResult<u32> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }
    fn u64(&mut self) -> MockResult<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    fn len(&mut self, item: usize) -> MockResult<usize> {
        let n = self.u64()?;
        // Every item takes at least `item` bytes, so a length beyond the
        // rest of the body is corrupt (and allocates nothing).
        let rest = (self.b.len() - self.at) as u64;
        if n.checked_mul(item as u64).is_none_or(|b| b > rest) {
            return Err(corrupt("length past the end of the message"));
        }
        Ok(n as usize)
    }
    fn bytes(&mut self) -> MockResult<Vec<u8>> {
        let n = self.len(1)?;
        Ok(self.take(n)?.to_vec())
    }
    fn str(&mut self) -> MockResult<String> {
        String::from_utf8(self.bytes()?).map_err(|_| corrupt("string is not UTF-8"))
    }
    fn u32s(&mut self) -> MockResult<Vec<u32>> {
        let n = self.len(4)?;
        (0..n).map(|_| self.u32()).collect()
    }
    fn u64s(&mut self) -> MockResult<Vec<u64>> {
        let n = self.len(8)?;
        (0..n).map(|_| self.u64()).collect()
    }
}

const KINDS: [Kind; 9] = [
    Kind::AllReduce,
    Kind::Broadcast,
    Kind::AllGather,
    Kind::ReduceScatter,
    Kind::Reduce,
    Kind::Scatter,
    Kind::AlltoAll,
    Kind::AlltoAllV,
    Kind::Barrier,
];

fn put_call(e: &mut Enc, c: &CallDesc) {
    e.u8(KINDS.iter().position(|k| *k == c.kind).unwrap_or(0) as u8);
    e.u32(c.dtype);
    match c.op {
        Some(op) => {
            e.u8(1);
            e.u32(op);
        }
        None => e.u8(0),
    }
    e.u32(c.root);
    e.u64(c.count);
    match &c.v {
        Some(v) => {
            e.u8(1);
            e.u64s(&v.send_counts);
            e.u64s(&v.sdispls);
            e.u64s(&v.recv_counts);
            e.u64s(&v.rdispls);
        }
        None => e.u8(0),
    }
}

fn get_call(d: &mut Dec) -> MockResult<CallDesc> {
    let kind = *KINDS
        .get(d.u8()? as usize)
        .ok_or_else(|| corrupt("unknown collective kind"))?;
    let dtype = d.u32()?;
    let op = match d.u8()? {
        0 => None,
        _ => Some(d.u32()?),
    };
    let root = d.u32()?;
    let count = d.u64()?;
    let v = match d.u8()? {
        0 => None,
        _ => Some(VCounts {
            send_counts: d.u64s()?,
            sdispls: d.u64s()?,
            recv_counts: d.u64s()?,
            rdispls: d.u64s()?,
        }),
    };
    Ok(CallDesc {
        kind,
        dtype,
        op,
        root,
        count,
        v,
    })
}

impl Msg {
    /// The variant's name, for messages (never the data).
    pub fn name(&self) -> &'static str {
        match self {
            Msg::Hello { .. } => "Hello",
            Msg::JoinedInProcess { .. } => "JoinedInProcess",
            Msg::JoinedNetwork { .. } => "JoinedNetwork",
            Msg::Refused { .. } => "Refused",
            Msg::Contribute { .. } => "Contribute",
            Msg::Outcome { .. } => "Outcome",
            Msg::Send { .. } => "Send",
            Msg::Deliver { .. } => "Deliver",
            Msg::Destroy { .. } => "Destroy",
            Msg::PeerDestroyed { .. } => "PeerDestroyed",
            Msg::PeerLost { .. } => "PeerLost",
            Msg::Ping => "Ping",
        }
    }

    /// The header of this message (everything but the payload).
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::default();
        self.encode_into(&mut e);
        e.0
    }

    /// The element data this message carries (empty for the others).
    pub fn payload(&self) -> &[u8] {
        match self {
            Msg::Contribute { data, .. } | Msg::Send { data, .. } | Msg::Deliver { data, .. } => {
                data
            }
            Msg::Outcome {
                result: Ok(data), ..
            } => data,
            _ => &[],
        }
    }

    /// Puts `data` where this message's element data goes (nothing for
    /// messages without data).
    fn set_payload(&mut self, payload: Vec<u8>) {
        match self {
            Msg::Contribute { data, .. } | Msg::Send { data, .. } | Msg::Deliver { data, .. } => {
                *data = payload
            }
            Msg::Outcome {
                result: Ok(data), ..
            } => *data = payload,
            _ => {}
        }
    }

    /// Whether this kind of message carries a payload.
    pub fn carries_payload(&self) -> bool {
        matches!(
            self,
            Msg::Contribute { .. }
                | Msg::Send { .. }
                | Msg::Deliver { .. }
                | Msg::Outcome { result: Ok(_), .. }
        )
    }

    fn encode_into(&self, e: &mut Enc) {
        match self {
            Msg::Hello {
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
            } => {
                e.u8(1);
                e.0.extend_from_slice(&MAGIC);
                e.u32(PROTOCOL);
                e.0.extend_from_slice(secret);
                e.u64(*root_nonce);
                e.u64(*serial);
                e.u32(*nranks);
                e.u32(*rank);
                e.u32(*device);
                e.u64(*nonce);
                e.u32(*pid);
                e.u64(*timeout_ms);
                e.u64(*memory);
            }
            Msg::JoinedInProcess { handle } => {
                e.u8(2);
                e.u64(*handle);
            }
            Msg::JoinedNetwork {
                name,
                devices,
                pids,
            } => {
                e.u8(3);
                e.str(name);
                e.u32s(devices);
                e.u32s(pids);
            }
            Msg::Refused { code, message } => {
                e.u8(4);
                e.u32(*code);
                e.str(message);
            }
            Msg::Contribute {
                seq,
                timeout_ms,
                call,
                data: _,
            } => {
                e.u8(5);
                e.u64(*seq);
                e.u64(*timeout_ms);
                put_call(e, call);
            }
            Msg::Outcome { seq, result } => {
                e.u8(6);
                e.u64(*seq);
                match result {
                    Ok(_) => e.u8(0),
                    Err((code, message)) => {
                        e.u8(1);
                        e.u32(*code);
                        e.str(message);
                    }
                }
            }
            Msg::Send {
                to,
                seq,
                dtype,
                count,
                data: _,
            } => {
                e.u8(7);
                e.u32(*to);
                e.u64(*seq);
                e.u32(*dtype);
                e.u64(*count);
            }
            Msg::Deliver {
                from,
                seq,
                dtype,
                count,
                data: _,
            } => {
                e.u8(8);
                e.u32(*from);
                e.u64(*seq);
                e.u32(*dtype);
                e.u64(*count);
            }
            Msg::Destroy { last_seq, sent } => {
                e.u8(9);
                e.u64(*last_seq);
                e.u64s(sent);
            }
            Msg::PeerDestroyed { rank, sent } => {
                e.u8(10);
                e.u32(*rank);
                e.u64(*sent);
            }
            Msg::PeerLost { rank, message } => {
                e.u8(11);
                e.u32(*rank);
                e.str(message);
            }
            Msg::Ping => e.u8(12),
        }
    }

    /// Decodes a header and its payload.
    pub fn decode(body: &[u8], payload: Vec<u8>) -> MockResult<Msg> {
        let mut d = Dec { b: body, at: 0 };
        let mut payload = Some(payload);
        let mut data = || payload.take().unwrap_or_default();
        let msg = match d.u8()? {
            1 => {
                if d.take(8)? != MAGIC {
                    return Err(corrupt("not an ascend-mock HCCL peer (bad magic)"));
                }
                let protocol = d.u32()?;
                if protocol != PROTOCOL {
                    return Err(corrupt(&format!(
                        "peer speaks protocol {protocol}, this library {PROTOCOL}"
                    )));
                }
                let mut secret = [0u8; SECRET_LEN];
                secret.copy_from_slice(d.take(SECRET_LEN)?);
                Msg::Hello {
                    secret,
                    root_nonce: d.u64()?,
                    serial: d.u64()?,
                    nranks: d.u32()?,
                    rank: d.u32()?,
                    device: d.u32()?,
                    nonce: d.u64()?,
                    pid: d.u32()?,
                    timeout_ms: d.u64()?,
                    memory: d.u64()?,
                }
            }
            2 => Msg::JoinedInProcess { handle: d.u64()? },
            3 => Msg::JoinedNetwork {
                name: d.str()?,
                devices: d.u32s()?,
                pids: d.u32s()?,
            },
            4 => Msg::Refused {
                code: d.u32()?,
                message: d.str()?,
            },
            5 => Msg::Contribute {
                seq: d.u64()?,
                timeout_ms: d.u64()?,
                call: get_call(&mut d)?,
                data: data(),
            },
            6 => {
                let seq = d.u64()?;
                let result = match d.u8()? {
                    0 => Ok(data()),
                    _ => Err((d.u32()?, d.str()?)),
                };
                Msg::Outcome { seq, result }
            }
            7 => Msg::Send {
                to: d.u32()?,
                seq: d.u64()?,
                dtype: d.u32()?,
                count: d.u64()?,
                data: data(),
            },
            8 => Msg::Deliver {
                from: d.u32()?,
                seq: d.u64()?,
                dtype: d.u32()?,
                count: d.u64()?,
                data: data(),
            },
            9 => Msg::Destroy {
                last_seq: d.u64()?,
                sent: d.u64s()?,
            },
            10 => Msg::PeerDestroyed {
                rank: d.u32()?,
                sent: d.u64()?,
            },
            11 => Msg::PeerLost {
                rank: d.u32()?,
                message: d.str()?,
            },
            12 => Msg::Ping,
            t => return Err(corrupt(&format!("unknown message tag {t}"))),
        };
        if d.at != body.len() {
            return Err(corrupt("trailing bytes"));
        }
        if !msg.carries_payload() && payload.is_some_and(|p| !p.is_empty()) {
            return Err(corrupt(&format!("a {} message with a payload", msg.name())));
        }
        Ok(msg)
    }
}

/// Writes `msg` as one frame.
pub fn write_msg(out: &mut impl Write, msg: &Msg) -> io::Result<()> {
    write_with_payload(out, msg, msg.payload())
}

/// Writes `msg` with `payload` as its data (for data shared by several
/// messages; `msg`'s own data is not written).
pub fn write_with_payload(out: &mut impl Write, msg: &Msg, payload: &[u8]) -> io::Result<()> {
    let mut e = Enc(Vec::with_capacity(64));
    e.u64(0);
    e.u64(payload.len() as u64);
    msg.encode_into(&mut e);
    let header = (e.0.len() - 16) as u64;
    e.0[..8].copy_from_slice(&header.to_le_bytes());
    out.write_all(&e.0)?;
    out.write_all(payload)?;
    out.flush()
}

/// How reading a frame ended without a message.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the connection between frames.
    Closed,
    /// No byte of a next frame arrived within the idle limit.
    Idle(Duration),
    /// An I/O error, a connection closed mid-frame, or a frame not
    /// complete within its deadline.
    Io(io::Error),
    /// The frame arrived (or announced itself) but is not a valid message.
    Corrupt(MockError),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Closed => write!(f, "the peer closed the connection"),
            ReadError::Idle(t) => write!(f, "nothing arrived for {} ms", t.as_millis()),
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::Corrupt(e) => write!(f, "{}", e.message),
        }
    }
}

/// A byte source whose reads can be given a timeout (a socket; byte
/// slices for tests and fuzzing, which never wait).
pub trait Source: Read {
    /// Bounds the next reads to `timeout` (`None`: wait forever).
    fn set_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()>;
}

impl Source for TcpStream {
    fn set_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(timeout)
    }
}

impl Source for &[u8] {
    fn set_timeout(&mut self, _: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
}

/// The bounds of the frames a reader accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest header.
    pub header: u64,
    /// The longest payload.
    pub payload: u64,
}

impl Limits {
    /// Frames with headers of up to `lists` bytes of per-rank lists plus
    /// [`MAX_TEXT`] of text and fixed fields, and payloads of up to
    /// `payload` bytes.
    pub fn for_ranks(nranks: u32, payload: u64) -> Limits {
        // The longest per-rank lists: the four u64 arrays of an
        // all-to-all-v contribution (a Destroy or JoinedNetwork has fewer).
        Limits {
            header: 256 + MAX_TEXT + 4 * 8 * u64::from(nranks),
            payload,
        }
    }
}

/// How long a reader waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// For the first byte of the next frame (`None`: forever).
    pub idle: Option<Duration>,
    /// For the whole frame from its first byte (`None`: forever).
    pub frame: Option<Duration>,
}

fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Fills `buf` from `input`, each read bounded by what is left until
/// `deadline`; `first` is the wait for the first byte when `buf` starts a
/// frame. `Ok(false)`: the connection closed before the first byte.
fn fill(
    input: &mut impl Source,
    buf: &mut [u8],
    first: Option<Option<Duration>>,
    deadline: &mut Option<Instant>,
    frame: Option<Duration>,
) -> Result<bool, ReadError> {
    let mut got = 0;
    while got < buf.len() {
        let wait = match (first, got) {
            (Some(idle), 0) => idle,
            _ => match *deadline {
                None => None,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(ReadError::Io(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!(
                                "a frame was not complete within {} ms of its first byte",
                                frame.map_or(0, |f| f.as_millis())
                            ),
                        )));
                    }
                    Some(left)
                }
            },
        };
        input.set_timeout(wait).map_err(ReadError::Io)?;
        match input.read(&mut buf[got..]) {
            Ok(0) if got == 0 && first.is_some() => return Ok(false),
            Ok(0) => {
                return Err(ReadError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside a frame",
                )));
            }
            Ok(k) => {
                if got == 0
                    && first.is_some()
                    && let Some(f) = frame
                {
                    *deadline = Some(Instant::now() + f);
                }
                got += k;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if timed_out(&e) && got == 0 && first.is_some() => {
                return Err(ReadError::Idle(first.flatten().unwrap_or_default()));
            }
            Err(e) if timed_out(&e) => {
                return Err(ReadError::Io(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "a frame was not complete within {} ms of its first byte",
                        frame.map_or(0, |f| f.as_millis())
                    ),
                )));
            }
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
    Ok(true)
}

fn lengths(lens: &[u8; 16]) -> (u64, u64) {
    let mut a = [0u8; 8];
    a.copy_from_slice(&lens[..8]);
    let header = u64::from_le_bytes(a);
    a.copy_from_slice(&lens[8..]);
    (header, u64::from_le_bytes(a))
}

/// Reads the first frame of a connection, which must be a `Hello`
/// ([`HELLO_LEN`] header bytes, no payload), complete before `deadline`.
/// Nothing beyond those bytes is read, and nothing is allocated but the
/// message of an error.
pub fn read_hello(input: &mut impl Source, deadline: Instant) -> Result<Msg, ReadError> {
    let first = deadline.saturating_duration_since(Instant::now());
    if first.is_zero() {
        return Err(ReadError::Idle(first));
    }
    let mut deadline = Some(deadline);
    let mut lens = [0u8; 16];
    if !fill(input, &mut lens, Some(Some(first)), &mut deadline, None)? {
        return Err(ReadError::Closed);
    }
    let (header, payload) = lengths(&lens);
    if header != HELLO_LEN as u64 || payload != 0 {
        return Err(ReadError::Corrupt(corrupt(&format!(
            "the first frame announces a {header}-byte header and a {payload}-byte payload, not a {HELLO_LEN}-byte Hello"
        ))));
    }
    let mut body = [0u8; HELLO_LEN];
    fill(input, &mut body, None, &mut deadline, None)?;
    if body[0] != 1 {
        return Err(ReadError::Corrupt(corrupt(&format!(
            "the first frame is message tag {}, not a Hello",
            body[0]
        ))));
    }
    Msg::decode(&body, Vec::new()).map_err(ReadError::Corrupt)
}

/// Reads one frame within `limits` and `timing` and decodes it.
/// `payload_rule` sees the decoded header and the announced payload
/// length before any payload byte is read and refuses lengths the header
/// does not justify.
pub fn read_frame(
    input: &mut impl Source,
    limits: &Limits,
    timing: Timing,
    payload_rule: impl FnOnce(&Msg, u64) -> MockResult<()>,
) -> Result<Msg, ReadError> {
    let mut deadline = None;
    let mut lens = [0u8; 16];
    if !fill(
        input,
        &mut lens,
        Some(timing.idle),
        &mut deadline,
        timing.frame,
    )? {
        return Err(ReadError::Closed);
    }
    let (header_len, payload_len) = lengths(&lens);
    if header_len > limits.header || payload_len > limits.payload {
        return Err(ReadError::Corrupt(corrupt(&format!(
            "frame with a {header_len}-byte header and a {payload_len}-byte payload exceeds this connection's limits ({} and {} bytes)",
            limits.header, limits.payload
        ))));
    }
    let mut header = vec![0u8; header_len as usize];
    fill(input, &mut header, None, &mut deadline, timing.frame)?;
    let mut msg = Msg::decode(&header, Vec::new()).map_err(ReadError::Corrupt)?;
    drop(header);
    if payload_len > 0 && !msg.carries_payload() {
        return Err(ReadError::Corrupt(corrupt(&format!(
            "a {} message with a payload",
            msg.name()
        ))));
    }
    payload_rule(&msg, payload_len).map_err(ReadError::Corrupt)?;
    if payload_len > 0 {
        let data = read_payload(input, payload_len, &mut deadline, timing.frame)?;
        msg.set_payload(data);
    }
    Ok(msg)
}

/// Reads `len` payload bytes into a buffer that grows as they arrive (at
/// most 64 KiB ahead of them).
fn read_payload(
    input: &mut impl Source,
    len: u64,
    deadline: &mut Option<Instant>,
    frame: Option<Duration>,
) -> Result<Vec<u8>, ReadError> {
    const CHUNK: u64 = 1 << 16;
    let mut buf = Vec::new();
    let mut got = 0u64;
    while got < len {
        let step = (len - got).min(CHUNK) as usize;
        let at = buf.len();
        buf.resize(at + step, 0);
        fill(input, &mut buf[at..], None, deadline, frame)?;
        got += step as u64;
    }
    Ok(buf)
}

/// Reads one frame from bytes in memory, with 1 MiB limits and no payload
/// rule (for tests of the encoding).
#[cfg(test)]
pub fn read_msg(input: &mut &[u8]) -> Result<Msg, ReadError> {
    let limits = Limits {
        header: 1 << 20,
        payload: 1 << 20,
    };
    let timing = Timing {
        idle: None,
        frame: None,
    };
    read_frame(input, &limits, timing, |_, _| Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Msg> {
        let v = VCounts {
            send_counts: vec![1, 0, 3],
            sdispls: vec![0, 9, 1],
            recv_counts: vec![2, 2, 0],
            rdispls: vec![0, 2, 77],
        };
        vec![
            Msg::Hello {
                secret: [7; SECRET_LEN],
                root_nonce: 1,
                serial: 2,
                nranks: 3,
                rank: 1,
                device: 4,
                nonce: u64::MAX,
                pid: 99,
                timeout_ms: 300,
                memory: 1 << 30,
            },
            Msg::JoinedInProcess { handle: 0xCC << 40 },
            Msg::JoinedNetwork {
                name: "g".into(),
                devices: vec![0, 1],
                pids: vec![5, 6],
            },
            Msg::Refused {
                code: HCCL_E_PARA,
                message: "no".into(),
            },
            Msg::Contribute {
                seq: 7,
                timeout_ms: 1,
                call: CallDesc {
                    kind: Kind::AlltoAllV,
                    dtype: HCCL_DATA_TYPE_BFP16,
                    op: None,
                    root: 0,
                    count: 0,
                    v: Some(v),
                },
                data: vec![1, 2, 3],
            },
            Msg::Contribute {
                seq: 8,
                timeout_ms: 1,
                call: CallDesc {
                    kind: Kind::Reduce,
                    dtype: HCCL_DATA_TYPE_FP32,
                    op: Some(HCCL_REDUCE_MAX),
                    root: 2,
                    count: 5,
                    v: None,
                },
                data: vec![],
            },
            Msg::Outcome {
                seq: 3,
                result: Ok(vec![9; 10]),
            },
            Msg::Outcome {
                seq: 4,
                result: Err((HCCL_E_TIMEOUT, "late".into())),
            },
            Msg::Send {
                to: 1,
                seq: 2,
                dtype: HCCL_DATA_TYPE_INT8,
                count: 2,
                data: vec![1, 2],
            },
            Msg::Deliver {
                from: 0,
                seq: 2,
                dtype: HCCL_DATA_TYPE_INT8,
                count: 0,
                data: vec![],
            },
            Msg::Destroy {
                last_seq: 4,
                sent: vec![0, 3],
            },
            Msg::PeerDestroyed { rank: 1, sent: 3 },
            Msg::PeerLost {
                rank: 1,
                message: "gone".into(),
            },
            Msg::Ping,
        ]
    }

    #[test]
    fn every_message_round_trips_through_a_stream() {
        let mut buf = Vec::new();
        for m in samples() {
            write_msg(&mut buf, &m).unwrap();
        }
        let mut r = buf.as_slice();
        for m in samples() {
            assert_eq!(read_msg(&mut r).unwrap(), m);
        }
        assert!(matches!(read_msg(&mut r), Err(ReadError::Closed)));
    }

    #[test]
    fn corrupt_frames_are_errors_not_panics() {
        for m in samples() {
            let body = m.encode();
            // Every truncation is refused.
            for cut in 0..body.len() {
                assert!(
                    Msg::decode(&body[..cut], m.payload().to_vec()).is_err(),
                    "{m:?} cut at {cut}"
                );
            }
            let mut long = body.clone();
            long.push(0);
            assert!(Msg::decode(&long, m.payload().to_vec()).is_err());
            // Only data messages take a payload.
            let with = Msg::decode(&body, vec![1]);
            assert_eq!(with.is_ok(), m.carries_payload(), "{m:?}");
        }
        assert!(Msg::decode(&[200], Vec::new()).is_err());
        // A huge list length allocates nothing and is refused.
        let mut e = Enc::default();
        e.u8(9);
        e.u64(1);
        e.u64(u64::MAX / 2);
        assert!(Msg::decode(&e.0, Vec::new()).is_err());
        // Frame limits and cut frames.
        for (h, p) in [((1u64 << 20) + 1, 0u64), (1, (1 << 20) + 1)] {
            let mut huge = Vec::new();
            huge.extend_from_slice(&h.to_le_bytes());
            huge.extend_from_slice(&p.to_le_bytes());
            assert!(matches!(
                read_msg(&mut huge.as_slice()),
                Err(ReadError::Corrupt(_))
            ));
        }
        let mut cut = Vec::new();
        write_msg(&mut cut, &samples()[6]).unwrap();
        cut.truncate(cut.len() - 1);
        assert!(matches!(
            read_msg(&mut cut.as_slice()),
            Err(ReadError::Io(_))
        ));
        assert!(matches!(read_msg(&mut &cut[..3]), Err(ReadError::Io(_))));
        // A foreign hello.
        let mut bad = samples()[0].encode();
        bad[1] = b'X';
        assert!(
            Msg::decode(&bad, Vec::new())
                .unwrap_err()
                .message
                .contains("magic")
        );
    }

    fn frame(msg: &Msg) -> Vec<u8> {
        let mut b = Vec::new();
        write_msg(&mut b, msg).unwrap();
        b
    }

    #[test]
    fn the_first_frame_must_be_a_hello_of_the_fixed_size() {
        let later = Instant::now() + Duration::from_secs(5);
        let hello = samples()[0].clone();
        let bytes = frame(&hello);
        assert_eq!(bytes.len(), 16 + HELLO_LEN);
        assert_eq!(read_hello(&mut bytes.as_slice(), later).unwrap(), hello);
        // Any other announced size is refused from the 16 length bytes
        // alone: a 1 GiB payload, a 64 MiB header, a Hello with a payload.
        for (h, p) in [
            (HELLO_LEN as u64, 1u64 << 30),
            (1 << 26, 0),
            (HELLO_LEN as u64 + 1, 0),
            (HELLO_LEN as u64, 1),
        ] {
            let mut b = Vec::new();
            b.extend_from_slice(&h.to_le_bytes());
            b.extend_from_slice(&p.to_le_bytes());
            let err = read_hello(&mut b.as_slice(), later).unwrap_err();
            assert!(matches!(err, ReadError::Corrupt(_)), "{err}");
            assert!(err.to_string().contains("not a"), "{err}");
        }
        // Another message of the same length, a bad magic, a cut hello.
        let mut other = bytes.clone();
        other[16] = 2;
        assert!(read_hello(&mut other.as_slice(), later).is_err());
        let mut magic = bytes.clone();
        magic[17] = b'X';
        let err = read_hello(&mut magic.as_slice(), later).unwrap_err();
        assert!(err.to_string().contains("magic"), "{err}");
        assert!(matches!(
            read_hello(&mut &bytes[..40], later),
            Err(ReadError::Io(_))
        ));
        assert!(matches!(
            read_hello(&mut &bytes[..0], later),
            Err(ReadError::Closed)
        ));
    }

    #[test]
    fn later_frames_obey_the_limits_and_the_payload_rule() {
        let timing = Timing {
            idle: None,
            frame: None,
        };
        let send = Msg::Send {
            to: 1,
            seq: 1,
            dtype: HCCL_DATA_TYPE_INT8,
            count: 4,
            data: vec![1, 2, 3, 4],
        };
        let bytes = frame(&send);
        let limits = Limits::for_ranks(2, 4);
        let exact = |m: &Msg, len: u64| match m {
            Msg::Send { count, .. } if *count == len => Ok(()),
            _ => Err(corrupt("payload does not match the count")),
        };
        assert_eq!(
            read_frame(&mut bytes.as_slice(), &limits, timing, exact).unwrap(),
            send
        );
        // Over the payload limit: refused before the header is read.
        let small = Limits::for_ranks(2, 3);
        let err = read_frame(&mut bytes.as_slice(), &small, timing, exact).unwrap_err();
        assert!(err.to_string().contains("exceeds"), "{err}");
        // A payload the header does not justify: refused before it is read
        // (the payload bytes are not even there).
        let lying = Msg::Send {
            to: 1,
            seq: 1,
            dtype: HCCL_DATA_TYPE_INT8,
            count: 3,
            data: vec![1, 2, 3, 4],
        };
        let mut cut = frame(&lying);
        cut.truncate(cut.len() - 4);
        let err = read_frame(&mut cut.as_slice(), &limits, timing, exact).unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
        // A header over the limit of a 2-rank communicator.
        let long = Msg::Destroy {
            last_seq: 1,
            sent: vec![0; 10_000],
        };
        let err = read_frame(&mut frame(&long).as_slice(), &limits, timing, exact).unwrap_err();
        assert!(err.to_string().contains("exceeds"), "{err}");
        assert!(
            read_frame(
                &mut frame(&Msg::Ping).as_slice(),
                &limits,
                timing,
                |_, _| Ok(())
            )
            .is_ok()
        );
    }
}
