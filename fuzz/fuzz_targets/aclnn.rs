//! Fuzz target `aclnn`: tensor descriptors, lists, scalars and arrays, then
//! operator calls (phase one, phase two on a stream, synchronisation) on the
//! mock device; see `ascend_fuzz::harness` for what is checked.

#![no_main]

use ascend_fuzz::spec::Case;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|case: Case| {
    ascend_fuzz::harness::run_case(&case);
});
