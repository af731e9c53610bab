//! The layout of the mock's `HcclRootInfo` (4108 opaque bytes that rank 0
//! hands to every other rank out of band), and the registry of the root
//! infos this process serves.
//!
//! All integers are little-endian:
//!
//! | bytes      | field                                                   |
//! |------------|---------------------------------------------------------|
//! | 0..8       | magic `b"ASMKHCCL"`                                     |
//! | 8..12      | layout version ([`VERSION`])                            |
//! | 12..16     | transport: [`Transport::InProcess`] = 1, [`Transport::Tcp`] = 2 |
//! | 16..24     | process nonce of the process that made it               |
//! | 24..32     | serial number, unique within that process               |
//! | 32..48     | secret: 16 random bytes from `/dev/urandom` (TCP only)  |
//! | 48..52     | address length `n` (0 for in-process)                   |
//! | 52..52+n   | address: `127.0.0.1:port` of the maker's listener, UTF-8 |
//! | rest       | zero                                                    |
//!
//! Like NCCL's unique id, a root info is a capability: whoever holds its
//! bytes can join its communicator. The secret is what the listener checks
//! first (it cannot be guessed from the process id, the clock or the
//! serial); the root info is single-use: its serial is retired when its
//! rendezvous completes, fails or times out, and a retired or unknown
//! serial is refused.
//!
//! Invariants: (nonce, serial) is unique per `HcclGetRootInfo` call; the
//! nonce carries the maker's process id in its upper 32 bits, so processes
//! alive at the same time (a forked child included) never share one; a
//! decoded root info has the right magic and version, a known transport
//! and an address that fits [`ADDRESS_MAX`] (non-empty for TCP).
//! `HcclGetRootInfo` makes TCP root infos; in-process ones are its fallback
//! when no listener can be opened, and only their maker's threads can join
//! them. At most [`MAX_LIVE`] TCP root infos are live at once (the oldest
//! is retired to make room) and [`MAX_RETIRED`] retired ones are
//! remembered, so the registry stays bounded however many are made.

use std::collections::{BTreeMap, VecDeque};
use std::io::Read;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use ascend_sys::{HCCL_E_NOT_SUPPORT, HCCL_E_SYSCALL, HCCL_ROOT_INFO_BYTES};

use super::{hccl_err, para};
use crate::error::MockResult;

/// The first eight bytes of every root info.
pub const MAGIC: [u8; 8] = *b"ASMKHCCL";
/// The layout version written and accepted.
pub const VERSION: u32 = 3;
/// Longest address a root info can carry.
pub const ADDRESS_MAX: usize = 1024;
/// Bytes of a root info's secret.
pub const SECRET_LEN: usize = 16;
/// Live (issued, not yet retired) TCP root infos kept at most.
pub const MAX_LIVE: usize = 4096;
/// Retired serials remembered (to say "already used" rather than
/// "unknown" to a holder of the right secret).
pub const MAX_RETIRED: usize = 4096;

/// How the ranks of a root info meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Threads of the process that created the root info.
    InProcess = 1,
    /// Any process on this machine, through the maker's TCP listener on
    /// the loopback interface.
    Tcp = 2,
}

/// A decoded root info.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootInfo {
    /// How the ranks meet.
    pub transport: Transport,
    /// The creating process's nonce.
    pub nonce: u64,
    /// Unique within the creating process.
    pub serial: u64,
    /// The random secret a joining rank must present (zero for
    /// in-process root infos, which only their maker's threads join).
    pub secret: [u8; SECRET_LEN],
    /// Where to connect (empty for in-process).
    pub address: String,
}

/// This process's nonce: the process id in the upper 32 bits, 32 bits
/// mixed from the time of the first call below. Recomputed when the
/// process id changes (in the child of a `fork`), so a child never
/// passes for its parent.
pub fn process_nonce() -> u64 {
    static NONCE: AtomicU64 = AtomicU64::new(0);
    let pid = u64::from(std::process::id());
    let current = NONCE.load(Ordering::SeqCst);
    if current != 0 && current >> 32 == pid {
        return current;
    }
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut x = t ^ (pid << 32) ^ 0x9E37_79B9_7F4A_7C15;
    // splitmix64 finaliser, so that nearby inputs give distant nonces.
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    let candidate = (pid << 32) | (x & 0xFFFF_FFFF) | 1;
    // The first thread to store wins; the others use its value.
    match NONCE.compare_exchange(current, candidate, Ordering::SeqCst, Ordering::SeqCst) {
        Ok(_) => candidate,
        Err(winner) if winner >> 32 == pid => winner,
        Err(_) => process_nonce(),
    }
}

/// A random token of this process (recomputed after a `fork`) that its
/// own ranks send as their nonce when they join through its listener. The
/// root info carries [`process_nonce`], which anyone holding the bytes can
/// copy; this token never leaves the process (the listener is on
/// loopback), so a `Hello` with it comes from a thread of this process,
/// and only such ranks get an in-process communicator.
pub fn local_token() -> u64 {
    static TOKEN: Mutex<Option<(u32, u64)>> = Mutex::new(None);
    let pid = std::process::id();
    let mut slot = TOKEN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((p, t)) = *slot
        && p == pid
    {
        return t;
    }
    // Without /dev/urandom, fall back to a value no other process
    // presents: the nonce with its bits flipped (never equal to any
    // process's nonce, whose lowest bit is 1).
    let token = random_secret()
        .map(|s| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&s[..8]);
            u64::from_le_bytes(a) & !1
        })
        .unwrap_or(!process_nonce());
    *slot = Some((pid, token));
    token
}

static SERIAL: AtomicU64 = AtomicU64::new(1);

/// The TCP root infos this process has issued: live ones (serial ->
/// secret) and the most recently retired ones.
#[derive(Default)]
struct Registry {
    live: BTreeMap<u64, [u8; SECRET_LEN]>,
    retired: VecDeque<(u64, [u8; SECRET_LEN])>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    live: BTreeMap::new(),
    retired: VecDeque::new(),
});

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the registry says about a presented (serial, secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Issued here, not yet used up: the holder may join.
    Live,
    /// The right secret of a root info whose rendezvous already ended.
    Retired,
    /// Not a root info of this process, or the wrong secret.
    Unknown,
}

/// Compares two secrets in time independent of where they differ.
fn same_secret(a: &[u8; SECRET_LEN], b: &[u8; SECRET_LEN]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks a presented serial and secret against the registry.
pub fn standing(serial: u64, secret: &[u8; SECRET_LEN]) -> Standing {
    let reg = registry();
    if let Some(s) = reg.live.get(&serial) {
        return if same_secret(s, secret) {
            Standing::Live
        } else {
            Standing::Unknown
        };
    }
    let retired = reg
        .retired
        .iter()
        .any(|(n, s)| *n == serial && same_secret(s, secret));
    if retired {
        Standing::Retired
    } else {
        Standing::Unknown
    }
}

/// Retires `serial`: it can no longer be joined. Returns whether it was
/// live.
pub fn retire(serial: u64) -> bool {
    let mut reg = registry();
    let Some(secret) = reg.live.remove(&serial) else {
        return false;
    };
    if reg.retired.len() >= MAX_RETIRED {
        reg.retired.pop_front();
    }
    reg.retired.push_back((serial, secret));
    true
}

/// Whether `serial` is a live TCP root info of this process.
pub fn is_live(serial: u64) -> bool {
    registry().live.contains_key(&serial)
}

/// Number of live TCP root infos (issued and not retired).
pub fn live_count() -> usize {
    registry().live.len()
}

/// 16 bytes from the kernel's random source.
fn random_secret() -> MockResult<[u8; SECRET_LEN]> {
    let mut secret = [0u8; SECRET_LEN];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut secret))
        .map_err(|e| {
            hccl_err(
                HCCL_E_SYSCALL,
                format!("cannot read a root info secret from /dev/urandom: {e}"),
            )
        })?;
    Ok(secret)
}

impl RootInfo {
    /// A fresh in-process root info.
    pub fn new_in_process() -> RootInfo {
        RootInfo {
            transport: Transport::InProcess,
            nonce: process_nonce(),
            serial: SERIAL.fetch_add(1, Ordering::Relaxed),
            secret: [0; SECRET_LEN],
            address: String::new(),
        }
    }

    /// A fresh root info served by this process's listener at `address`,
    /// with a fresh random secret, registered as live (retiring the oldest
    /// live one when [`MAX_LIVE`] are).
    pub fn new_tcp(address: String) -> MockResult<RootInfo> {
        let secret = random_secret()?;
        let info = RootInfo {
            transport: Transport::Tcp,
            address,
            secret,
            ..RootInfo::new_in_process()
        };
        let oldest = {
            let mut reg = registry();
            reg.live.insert(info.serial, secret);
            if reg.live.len() > MAX_LIVE {
                reg.live.keys().next().copied()
            } else {
                None
            }
        };
        if let Some(serial) = oldest {
            retire(serial);
        }
        Ok(info)
    }

    /// The 4108-byte encoding.
    pub fn encode(&self) -> [u8; HCCL_ROOT_INFO_BYTES] {
        let mut b = [0u8; HCCL_ROOT_INFO_BYTES];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(self.transport as u32).to_le_bytes());
        b[16..24].copy_from_slice(&self.nonce.to_le_bytes());
        b[24..32].copy_from_slice(&self.serial.to_le_bytes());
        b[32..48].copy_from_slice(&self.secret);
        let addr = self.address.as_bytes();
        let n = addr.len().min(ADDRESS_MAX);
        b[48..52].copy_from_slice(&(n as u32).to_le_bytes());
        b[52..52 + n].copy_from_slice(&addr[..n]);
        b
    }

    /// Decodes and checks a root info (`HCCL_E_PARA` when it was not made
    /// by `HcclGetRootInfo`).
    pub fn decode(b: &[u8; HCCL_ROOT_INFO_BYTES]) -> MockResult<RootInfo> {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(a)
        };
        if b[0..8] != MAGIC {
            return Err(para(
                "rootInfo was not produced by HcclGetRootInfo (bad magic)",
            ));
        }
        let version = u32_at(8);
        if version != VERSION {
            return Err(para(format!(
                "rootInfo has layout version {version}; this library reads version {VERSION}"
            )));
        }
        let transport = match u32_at(12) {
            1 => Transport::InProcess,
            2 => Transport::Tcp,
            t => {
                return Err(hccl_err(
                    HCCL_E_NOT_SUPPORT,
                    format!("rootInfo uses transport {t}, which the mock does not support"),
                ));
            }
        };
        let n = u32_at(48) as usize;
        if n > ADDRESS_MAX {
            return Err(para(format!(
                "rootInfo address length {n} exceeds {ADDRESS_MAX}"
            )));
        }
        let address = std::str::from_utf8(&b[52..52 + n])
            .map_err(|_| para("rootInfo address is not UTF-8"))?
            .to_string();
        if transport == Transport::Tcp && address.is_empty() {
            return Err(para("rootInfo names the TCP transport but no address"));
        }
        let mut secret = [0u8; SECRET_LEN];
        secret.copy_from_slice(&b[32..48]);
        Ok(RootInfo {
            transport,
            nonce: u64_at(16),
            serial: u64_at(24),
            secret,
            address,
        })
    }

    /// The key that identifies this root info's rendezvous.
    pub fn key(&self) -> (u64, u64) {
        (self.nonce, self.serial)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_is_unique() {
        let a = RootInfo::new_in_process();
        let b = RootInfo::new_in_process();
        assert_ne!(a.key(), b.key());
        assert_eq!(RootInfo::decode(&a.encode()).unwrap(), a);
        let with_addr = RootInfo {
            address: "10.0.0.1:60000".to_string(),
            ..a.clone()
        };
        assert_eq!(
            RootInfo::decode(&with_addr.encode()).unwrap().address,
            "10.0.0.1:60000"
        );
    }

    #[test]
    fn foreign_bytes_are_refused() {
        let mut b = RootInfo::new_in_process().encode();
        b[9] = 7;
        assert!(
            RootInfo::decode(&b)
                .unwrap_err()
                .message
                .contains("version")
        );
        let zero = [0u8; HCCL_ROOT_INFO_BYTES];
        assert!(
            RootInfo::decode(&zero)
                .unwrap_err()
                .message
                .contains("magic")
        );
        let mut t = RootInfo::new_in_process().encode();
        t[12] = 3;
        assert_eq!(
            RootInfo::decode(&t).unwrap_err().code,
            HCCL_E_NOT_SUPPORT as i32
        );
        let mut no_addr = RootInfo::new_in_process().encode();
        no_addr[12] = 2;
        assert!(
            RootInfo::decode(&no_addr)
                .unwrap_err()
                .message
                .contains("no address")
        );
        let tcp = RootInfo::new_tcp("127.0.0.1:4000".to_string()).unwrap();
        assert_eq!(RootInfo::decode(&tcp.encode()).unwrap(), tcp);
        assert_eq!(process_nonce() >> 32, u64::from(std::process::id()));
        assert_eq!(process_nonce(), process_nonce());
        let mut long = RootInfo::new_in_process().encode();
        long[48..52].copy_from_slice(&5000u32.to_le_bytes());
        assert!(RootInfo::decode(&long).is_err());
    }

    #[test]
    fn secrets_are_random_checked_and_single_use() {
        let a = RootInfo::new_tcp("127.0.0.1:4000".to_string()).unwrap();
        let b = RootInfo::new_tcp("127.0.0.1:4000".to_string()).unwrap();
        assert_ne!(a.secret, b.secret);
        assert_ne!(a.secret, [0; SECRET_LEN]);
        assert_eq!(standing(a.serial, &a.secret), Standing::Live);
        // Another root info's secret, a flipped bit, an unknown serial.
        assert_eq!(standing(a.serial, &b.secret), Standing::Unknown);
        let mut flipped = a.secret;
        flipped[15] ^= 1;
        assert_eq!(standing(a.serial, &flipped), Standing::Unknown);
        assert_eq!(standing(b.serial + 1000, &b.secret), Standing::Unknown);
        assert_eq!(standing(0, &[0; SECRET_LEN]), Standing::Unknown);
        // Retired once: then known as used up, and only with its secret.
        assert!(retire(a.serial));
        assert!(!retire(a.serial));
        assert_eq!(standing(a.serial, &a.secret), Standing::Retired);
        assert_eq!(standing(a.serial, &flipped), Standing::Unknown);
        assert_eq!(standing(b.serial, &b.secret), Standing::Live);
        assert!(retire(b.serial));
    }
}
