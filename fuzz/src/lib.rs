//! Fuzzing the mock device. The `aclnn` target: the input decoding
//! ([`spec`]), the operators' consistent layouts the fuzzer changes
//! ([`template`]), and the harness that runs a decoded case through the
//! mock's exported C functions and checks the contract ([`harness`]). The
//! `runtime` target: programs of copies, memsets, frees and event
//! operations on two streams, checked against a shadow model of every
//! byte ([`runtime`]). The `hccl_wire` target: the bytes of a connection
//! to the HCCL listener, from a peer with or without the root info's
//! secret ([`hccl_wire`]). The cargo-fuzz targets in `fuzz_targets/` are
//! thin wrappers around [`harness::run_case`], [`runtime::run_program`]
//! and [`hccl_wire::run`].
//!
//! Invariant: nothing here depends on libFuzzer, so the harness and its
//! tests also build and run with a plain `cargo test` on stable.

pub mod harness;
pub mod hccl_wire;
pub mod runtime;
pub mod spec;
pub mod template;
