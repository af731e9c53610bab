//! [`RootInfo`]: the opaque 4108-byte blob (`HcclRootInfo`) that rank 0
//! makes and every rank needs to join a communicator with
//! [`Communicator::init_rank`](super::Communicator::init_rank).
//!
//! Invariants: a `RootInfo` always holds exactly
//! [`RootInfo::BYTES`] bytes; their meaning is HCCL's (the library checks
//! them when a rank joins). The bytes can be sent to other processes
//! (a file, a pipe, a socket) and read back with [`RootInfo::from_bytes`].

use std::ffi::c_char;
use std::sync::Arc;

use ascend_sys::{HCCL_ROOT_INFO_BYTES, HcclRootInfo};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::result::hccl as raw;

/// The root info of one communicator being set up.
#[derive(Clone, PartialEq, Eq)]
pub struct RootInfo {
    bytes: Box<[u8; HCCL_ROOT_INFO_BYTES]>,
}

impl std::fmt::Debug for RootInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The blob is opaque; show its size and first bytes only.
        write!(
            f,
            "RootInfo({} bytes, starting {:02x?})",
            self.bytes.len(),
            &self.bytes[..8]
        )
    }
}

impl RootInfo {
    /// The size of the blob, `HCCL_ROOT_INFO_BYTES`.
    pub const BYTES: usize = HCCL_ROOT_INFO_BYTES;

    /// Makes the root info of a new communicator (`HcclGetRootInfo`) on
    /// `ctx`'s device, which is where rank 0 will live.
    pub fn new(ctx: &Arc<Context>) -> Result<RootInfo> {
        ctx.bind_to_thread()?;
        let info = raw::get_root_info()?;
        Ok(RootInfo {
            bytes: Box::new(info.internal.map(|c| c as u8)),
        })
    }

    /// The bytes, to send to the other ranks.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..]
    }

    /// A root info received from rank 0; an error unless `bytes` has
    /// exactly [`RootInfo::BYTES`] bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<RootInfo> {
        let arr: [u8; HCCL_ROOT_INFO_BYTES] = bytes.try_into().map_err(|_| {
            Error::invalid(
                "RootInfo::from_bytes",
                format!(
                    "a root info has {HCCL_ROOT_INFO_BYTES} bytes, got {}",
                    bytes.len()
                ),
            )
        })?;
        Ok(RootInfo {
            bytes: Box::new(arr),
        })
    }

    /// The C struct.
    pub(crate) fn to_raw(&self) -> HcclRootInfo {
        HcclRootInfo {
            internal: self.bytes.map(|b| b as c_char),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_and_wrong_lengths_are_refused() {
        let mut raw = vec![0u8; RootInfo::BYTES];
        for (i, b) in raw.iter_mut().enumerate() {
            *b = (i * 7) as u8;
        }
        let info = RootInfo::from_bytes(&raw).unwrap();
        assert_eq!(info.as_bytes(), &raw[..]);
        let c = info.to_raw();
        assert_eq!(c.internal[5] as u8, raw[5]);
        assert_eq!(c.internal[4107] as u8, raw[4107]);
        for n in [0, 4107, 4109] {
            let e = RootInfo::from_bytes(&vec![0; n]).unwrap_err();
            assert!(
                matches!(e, Error::InvalidArgument { .. }) && e.to_string().contains("4108"),
                "{e}"
            );
        }
        assert!(format!("{info:?}").contains("4108 bytes"));
    }
}
