//! The layout of the mock's `HcclRootInfo` (4108 opaque bytes that rank 0
//! hands to every other rank out of band).
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
//! | 32..36     | address length `n` (0 for in-process)                   |
//! | 36..36+n   | address: `127.0.0.1:port` of the maker's listener, UTF-8 |
//! | rest       | zero                                                    |
//!
//! Invariants: (nonce, serial) is unique per `HcclGetRootInfo` call; the
//! nonce carries the maker's process id in its upper 32 bits, so processes
//! alive at the same time (a forked child included) never share one; a
//! decoded root info has the right magic and version, a known transport
//! and an address that fits [`ADDRESS_MAX`] (non-empty for TCP).
//! `HcclGetRootInfo` makes TCP root infos; in-process ones are its fallback
//! when no listener can be opened, and only their maker's threads can join
//! them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use ascend_sys::{HCCL_E_NOT_SUPPORT, HCCL_ROOT_INFO_BYTES};

use super::{hccl_err, para};
use crate::error::MockResult;

/// The first eight bytes of every root info.
pub const MAGIC: [u8; 8] = *b"ASMKHCCL";
/// The layout version written and accepted.
pub const VERSION: u32 = 2;
/// Longest address a root info can carry.
pub const ADDRESS_MAX: usize = 1024;

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

static SERIAL: AtomicU64 = AtomicU64::new(1);

/// Whether this process has handed out `serial`.
pub fn issued(serial: u64) -> bool {
    serial > 0 && serial < SERIAL.load(Ordering::Relaxed)
}

impl RootInfo {
    /// A fresh in-process root info.
    pub fn new_in_process() -> RootInfo {
        RootInfo {
            transport: Transport::InProcess,
            nonce: process_nonce(),
            serial: SERIAL.fetch_add(1, Ordering::Relaxed),
            address: String::new(),
        }
    }

    /// A fresh root info served by this process's listener at `address`.
    pub fn new_tcp(address: String) -> RootInfo {
        RootInfo {
            transport: Transport::Tcp,
            address,
            ..RootInfo::new_in_process()
        }
    }

    /// The 4108-byte encoding.
    pub fn encode(&self) -> [u8; HCCL_ROOT_INFO_BYTES] {
        let mut b = [0u8; HCCL_ROOT_INFO_BYTES];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(self.transport as u32).to_le_bytes());
        b[16..24].copy_from_slice(&self.nonce.to_le_bytes());
        b[24..32].copy_from_slice(&self.serial.to_le_bytes());
        let addr = self.address.as_bytes();
        let n = addr.len().min(ADDRESS_MAX);
        b[32..36].copy_from_slice(&(n as u32).to_le_bytes());
        b[36..36 + n].copy_from_slice(&addr[..n]);
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
        let n = u32_at(32) as usize;
        if n > ADDRESS_MAX {
            return Err(para(format!(
                "rootInfo address length {n} exceeds {ADDRESS_MAX}"
            )));
        }
        let address = std::str::from_utf8(&b[36..36 + n])
            .map_err(|_| para("rootInfo address is not UTF-8"))?
            .to_string();
        if transport == Transport::Tcp && address.is_empty() {
            return Err(para("rootInfo names the TCP transport but no address"));
        }
        Ok(RootInfo {
            transport,
            nonce: u64_at(16),
            serial: u64_at(24),
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
        let tcp = RootInfo::new_tcp("127.0.0.1:4000".to_string());
        assert_eq!(RootInfo::decode(&tcp.encode()).unwrap(), tcp);
        assert!(issued(tcp.serial) && !issued(tcp.serial + 1000) && !issued(0));
        assert_eq!(process_nonce() >> 32, u64::from(std::process::id()));
        assert_eq!(process_nonce(), process_nonce());
        let mut long = RootInfo::new_in_process().encode();
        long[32..36].copy_from_slice(&5000u32.to_le_bytes());
        assert!(RootInfo::decode(&long).is_err());
    }
}
