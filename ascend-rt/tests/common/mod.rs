//! Shared set-up of the end-to-end tests: every test binary runs on the
//! in-process mock device, initialised once per process; [`leaks`] counts
//! what a test left behind on it.

#![allow(dead_code)]

pub mod leaks;

use std::sync::{Arc, Once};

use ascend_rt::{Backend, Context};

/// SoC name the tests configure the mock with.
pub const SOC: &str = "Ascend910B3";

static SETUP: Once = Once::new();

/// Configures the mock (2 devices, 1 GiB each) and initialises it, once.
pub fn init() {
    SETUP.call_once(|| {
        let cfg = ascend_mock::Config {
            devices: 2,
            memory_per_device: 1 << 30,
            soc_name: SOC.to_string(),
        };
        // Refused only if someone initialised the mock already, which leaves
        // its own configuration in force; the tests below read it back.
        let _ = ascend_mock::configure(cfg);
        ascend_rt::init(Backend::Mock).expect("the mock backend initialises");
    });
}

/// The default context of device 0.
pub fn ctx() -> Arc<Context> {
    init();
    Context::new(0).expect("device 0 opens")
}
