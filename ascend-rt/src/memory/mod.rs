//! Memory: element types, device buffers, pinned host buffers, the caching
//! pool, and the access tracking that keeps asynchronous work on them sound.
//!
//! See the crate documentation ("Soundness of asynchronous work") for the
//! rules; the private `access` module implements them.

mod access;
mod checks;
pub mod device_buffer;
pub mod dtype;
pub mod pinned;
pub mod pool;
pub mod virtual_mem;

pub use device_buffer::DeviceBuffer;
pub use dtype::{DType, DeviceRepr};
pub use pinned::PinnedBuffer;
pub use pool::{MemPool, PoolStats};
pub use virtual_mem::{PhysicalMem, VirtualRange};
