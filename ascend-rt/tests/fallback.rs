//! Operator version fallbacks: a backend without `aclnnGroupedMatmulV4`
//! and `aclnnMoeInitRoutingV3` (the mock's tables with those symbols
//! hidden, as an older CANN would be) still routes and multiplies, through
//! `aclnnMoeInitRoutingV2` and `aclnnGroupedMatmulV3`, with the same
//! results. Its own test binary, because the backend is chosen once per
//! process.
#![cfg(feature = "mock")]

use std::ffi::c_void;
use std::sync::Once;

use ascend_rt::ops::{self, GroupList};
use ascend_rt::{Context, Tensor};

/// The mock's symbols, minus the newest operator versions.
fn older_cann(name: &str) -> *mut c_void {
    if name.starts_with("aclnnGroupedMatmulV4") || name.starts_with("aclnnMoeInitRoutingV3") {
        return std::ptr::null_mut();
    }
    ascend_mock::resolve(name)
}

static SETUP: Once = Once::new();

fn init() {
    SETUP.call_once(|| {
        let _ = ascend_mock::configure(ascend_mock::Config {
            devices: 1,
            memory_per_device: 1 << 30,
            soc_name: "Ascend910B3".into(),
        });
        ascend_rt::init_with_api(ascend_sys::Api::from_resolver(older_cann, "older-cann"))
            .expect("the reduced tables initialise");
    });
}

#[test]
fn routing_and_grouped_matmul_fall_back_to_older_versions() {
    init();
    let api = ascend_rt::api().unwrap();
    assert!(!api.opapi.has("aclnnGroupedMatmulV4"));
    assert!(!api.opapi.has("aclnnMoeInitRoutingV3"));
    assert!(api.opapi.has("aclnnMoeInitRoutingV2"));

    let ctx = Context::new(0).unwrap();
    let s = ctx.new_stream().unwrap();
    let (n, k, e, h, o) = (4, 2, 3, 2, 2);
    let x: Vec<f32> = (0..n * h).map(|i| i as f32).collect();
    let ids = [2i32, 0, 0, 2, 2, 0, 0, 2]; // expert 1 gets nothing
    let r = ops::moe_init_routing(
        &s,
        &Tensor::from_slice(&s, &x, &[n, h]).unwrap(),
        &Tensor::from_slice(&s, &ids, &[n, k]).unwrap(),
        e,
    )
    .unwrap();
    // Counts come back as i64 even though V2 reports i32.
    assert_eq!(r.tokens_per_expert.to_vec().unwrap(), vec![4, 0, 4]);
    // Stable order: expert 0 from sources 1, 2, 5, 6; expert 2 from 0, 3, 4, 7.
    assert_eq!(
        r.expanded_row_idx.to_vec().unwrap(),
        vec![4, 0, 1, 5, 6, 2, 3, 7]
    );
    let tokens = [0usize, 1, 2, 3, 0, 1, 2, 3]; // source / K, in sorted order
    let want_x: Vec<f32> = tokens
        .iter()
        .flat_map(|&t| x[t * h..(t + 1) * h].to_vec())
        .collect();
    assert_eq!(r.expanded_x.to_vec().unwrap(), want_x);

    // Expert g's weight is g+1 times the identity; counts become a cumsum.
    let mut w = vec![0.0f32; e * h * o];
    for g in 0..e {
        for i in 0..h {
            w[g * h * o + i * o + i] = (g + 1) as f32;
        }
    }
    let wd = Tensor::from_slice(&s, &w, &[e, h, o]).unwrap();
    let y = ops::grouped_matmul(
        &s,
        &r.expanded_x,
        &wd,
        &r.tokens_per_expert,
        GroupList::Counts,
    )
    .unwrap();
    let want_y: Vec<f32> = want_x
        .iter()
        .enumerate()
        .map(|(i, v)| if i < 4 * h { v * 1.0 } else { v * 3.0 })
        .collect();
    assert_eq!(y.to_vec().unwrap(), want_y);
}
