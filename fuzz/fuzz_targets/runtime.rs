//! Fuzz target `runtime`: programs of allocations, frees, copies of every
//! kind, 2-D copies, memsets and event operations on two streams of the
//! mock device, checked against a shadow model; see
//! `ascend_fuzz::runtime` for what is checked.

#![no_main]

use ascend_fuzz::runtime::Program;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|program: Program| {
    ascend_fuzz::runtime::run_program(&program);
});
