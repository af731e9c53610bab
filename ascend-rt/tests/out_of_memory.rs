//! Out of memory at the configured capacity: its own test binary, so that
//! the mock can be configured small before it is initialised.
#![cfg(feature = "mock")]

use ascend_rt::{AclCode, Backend, Context, DeviceBuffer};

#[test]
fn allocation_fails_at_the_configured_capacity_with_a_named_code() {
    ascend_mock::configure(ascend_mock::Config {
        devices: 1,
        memory_per_device: 64 << 20,
        soc_name: "Ascend910B3".into(),
    })
    .expect("the mock is not initialised yet in this process");
    ascend_rt::init(Backend::Mock).unwrap();
    let ctx = Context::new(0).unwrap();
    assert_eq!(ctx.memory_info().unwrap().total, 64 << 20);

    let chunk = 8 << 20;
    let mut held = Vec::new();
    let err = loop {
        match DeviceBuffer::<u8>::zeroed(&ctx, chunk) {
            Ok(b) => held.push(b),
            Err(e) => break e,
        }
        assert!(held.len() <= 8, "allocated more than 64 MiB");
    };
    assert!(!held.is_empty(), "not even one 8 MiB block fitted");
    assert_eq!(
        err.acl_code(),
        Some(AclCode::ACL_ERROR_RT_MEMORY_ALLOCATION),
        "{err}"
    );
    assert_eq!(err.api(), Some("aclrtMalloc"));
    let message = err.message().unwrap_or_default();
    assert!(!message.is_empty(), "no runtime message captured: {err}");
    let text = err.to_string();
    assert!(
        text.starts_with("aclrtMalloc failed: 207001 ACL_ERROR_RT_MEMORY_ALLOCATION: "),
        "{text}"
    );
    assert!(!text.contains('\n'), "{text}");

    // Freeing one block makes room again.
    held.pop().unwrap().free().unwrap();
    let again = DeviceBuffer::<u8>::zeroed(&ctx, chunk).unwrap();
    drop(again);
}
