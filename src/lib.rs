//! Shared code of the `ascend` package's examples, end-to-end tests and benchmarks.
//!
//! [`moe`] holds the host side of the DeepSeek-style Mixture-of-Experts example:
//! its configuration, weights and plain host reference.

pub mod moe;
