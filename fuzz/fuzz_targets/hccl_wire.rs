//! Fuzz target `hccl_wire`: the bytes of one connection to the mock's
//! HCCL listener, from a peer that may or may not hold the root info; see
//! `ascend_fuzz::hccl_wire` for what is checked. The counting allocator
//! measures what the listener's checks allocate before authentication.

#![no_main]

use ascend_fuzz::hccl_wire::CountingAlloc;
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static COUNTING: CountingAlloc = CountingAlloc;

fuzz_target!(|data: &[u8]| {
    ascend_fuzz::hccl_wire::run(data);
});
