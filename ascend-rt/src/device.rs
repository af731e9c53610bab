//! Devices: how many there are, their SoC name and memory.
//!
//! A [`Device`] is only an ordinal; it owns no runtime state. Using a device
//! (memory, streams) goes through a [`Context`], which holds
//! the device binding (`aclrtSetDevice`) for as long as it lives.

use std::sync::Arc;

use crate::context::Context;
use crate::error::Result;
use crate::result;

/// Free and total device memory, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemInfo {
    /// Bytes not in use.
    pub free: usize,
    /// Bytes the device has (excluding memory the runtime reserves).
    pub total: usize,
}

/// One NPU, by ordinal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Device {
    ordinal: i32,
}

impl Device {
    /// The number of devices the backend offers.
    pub fn count() -> Result<u32> {
        result::acl::device::count()
    }

    /// Every device, in ordinal order.
    pub fn all() -> Result<Vec<Device>> {
        let n = Device::count()?;
        Ok((0..n)
            .filter_map(|i| i32::try_from(i).ok())
            .map(Device::new)
            .collect())
    }

    /// The device with this ordinal. Not checked here: using a missing
    /// device fails with `ACL_ERROR_RT_INVALID_DEVICEID` at
    /// [`Context::new`].
    pub fn new(ordinal: i32) -> Device {
        Device { ordinal }
    }

    /// The device's ordinal.
    pub fn ordinal(self) -> i32 {
        self.ordinal
    }

    /// The SoC name the runtime reports (for example `Ascend910B1`).
    pub fn soc_name(self) -> Result<String> {
        result::acl::device::soc_name()
    }

    /// One attribute (`aclrtGetDeviceInfo`), for example
    /// `ascend_sys::ACL_DEV_ATTR_AICORE_CORE_NUM`.
    pub fn attribute(self, attr: ascend_sys::aclrtDevAttr) -> Result<i64> {
        let ordinal = u32::try_from(self.ordinal).map_err(|_| {
            crate::Error::invalid(
                "Device::attribute",
                format!("device ordinal {} is negative", self.ordinal),
            )
        })?;
        result::acl::device::info(ordinal, attr)
    }

    /// Free and total memory of this device.
    pub fn memory_info(self) -> Result<MemInfo> {
        self.context()?.memory_info()
    }

    /// The device's default context (binds the device to the calling
    /// thread; see [`Context::new`]).
    pub fn context(self) -> Result<Arc<Context>> {
        Context::new(self.ordinal)
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "npu:{}", self.ordinal)
    }
}
