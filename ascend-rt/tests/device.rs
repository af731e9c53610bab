//! Devices and contexts on the mock: count, SoC name, memory, set/reset,
//! invalid ordinals, errors recorded by Drop, context binding across threads.
#![cfg(feature = "mock")]

mod common;

use std::sync::Arc;

use ascend_rt::{AclCode, Context, Device, DeviceBuffer, Error};

#[test]
fn devices_are_counted_and_named() {
    common::init();
    assert!(ascend_rt::is_mock());
    assert_eq!(
        ascend_rt::backend_kind(),
        Some(ascend_rt::BackendKind::Mock)
    );
    let n = Device::count().unwrap();
    assert_eq!(n, ascend_mock::config().devices);
    let all = Device::all().unwrap();
    assert_eq!(all.len(), n as usize);
    assert_eq!(all[1].ordinal(), 1);
    assert_eq!(all[1].to_string(), "npu:1");
    let soc = Device::new(0).soc_name().unwrap();
    assert_eq!(soc, ascend_mock::config().soc_name);
    let total = Device::new(0)
        .attribute(ascend_sys::ACL_DEV_ATTR_TOTAL_GLOBAL_MEM_SIZE)
        .unwrap();
    assert_eq!(total as u64, ascend_mock::config().memory_per_device);
    assert!(
        Device::new(0)
            .attribute(ascend_sys::ACL_DEV_ATTR_AICORE_CORE_NUM)
            .unwrap()
            > 0
    );
    assert!(matches!(
        Device::new(-3).attribute(ascend_sys::ACL_DEV_ATTR_AICORE_CORE_NUM),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn memory_info_follows_allocations_and_drop() {
    // Device 1 is used by no other test of this file, so its free memory
    // changes only here.
    common::init();
    let ctx = Context::new(1).unwrap();
    let before = ctx.memory_info().unwrap();
    assert_eq!(before.total as u64, ascend_mock::config().memory_per_device);
    assert!(before.free <= before.total);
    let buf = DeviceBuffer::<u8>::zeroed(&ctx, 16 << 20).unwrap();
    let during = ctx.memory_info().unwrap();
    assert!(
        during.free + (16 << 20) <= before.free,
        "free memory did not drop by 16 MiB: {before:?} -> {during:?}"
    );
    drop(buf);
    let after = ctx.memory_info().unwrap();
    assert!(after.free > during.free, "{during:?} -> {after:?}");
    // The same query through Device, which opens its own context.
    assert_eq!(Device::new(1).memory_info().unwrap(), after);
}

#[test]
fn contexts_set_and_reset_their_device() {
    common::init();
    let ctx = Context::new(0).unwrap();
    assert_eq!(ctx.ordinal(), 0);
    assert!(ctx.is_default());
    assert_eq!(ascend_rt::result::device::get().unwrap(), 0);
    let stream = ctx.new_stream().unwrap();
    let buf = DeviceBuffer::from_host(&ctx, &[1i32, 2, 3]).unwrap();
    let mut copy = DeviceBuffer::<i32>::zeroed(&ctx, 3).unwrap();
    copy.copy_from(&buf, &stream).unwrap();
    assert_eq!(copy.to_vec().unwrap(), [1, 2, 3]);
    drop((copy, buf, stream));
    ctx.synchronize().unwrap();
    drop(ctx);

    // An explicit context works the same way and is destroyed on drop.
    let explicit = Context::new_explicit(0).unwrap();
    assert!(!explicit.is_default());
    let b = DeviceBuffer::from_host(&explicit, &[7u8; 100]).unwrap();
    assert_eq!(b.to_vec().unwrap(), vec![7u8; 100]);
}

#[test]
fn an_invalid_device_reports_its_code() {
    common::init();
    let bad = i32::try_from(Device::count().unwrap()).unwrap() + 5;
    let err = Context::new(bad).unwrap_err();
    assert_eq!(
        err.acl_code(),
        Some(AclCode::ACL_ERROR_RT_INVALID_DEVICEID),
        "{err}"
    );
    assert_eq!(err.api(), Some("aclrtSetDevice"));
    let text = err.to_string();
    assert!(
        text.starts_with("aclrtSetDevice failed: 107001 ACL_ERROR_RT_INVALID_DEVICEID: "),
        "{text}"
    );
    let err = Context::new(-1).unwrap_err();
    assert_eq!(err.acl_code(), Some(AclCode::ACL_ERROR_RT_INVALID_DEVICEID));
}

#[test]
fn errors_recorded_by_drop_surface_at_the_next_call() {
    let ctx = common::ctx();
    ctx.record_err(Error::Acl {
        api: "aclrtFree",
        code: AclCode::ACL_ERROR_RT_MEMORY_FREE,
        message: "recorded".into(),
    });
    // The first later call on the context returns it, once.
    let err = DeviceBuffer::<f32>::zeroed(&ctx, 4).unwrap_err();
    assert_eq!(err.acl_code(), Some(AclCode::ACL_ERROR_RT_MEMORY_FREE));
    assert_eq!(err.message(), Some("recorded"));
    assert!(DeviceBuffer::<f32>::zeroed(&ctx, 4).is_ok());
    assert!(ctx.check_err().is_ok());

    // A recorded error never stops a release: freeing still works (and
    // leaves the error for the next call).
    let stream = ctx.new_stream().unwrap();
    let mut buf = DeviceBuffer::<f32>::zeroed(&ctx, 1024).unwrap();
    buf.memset_async(1, &stream).unwrap();
    ctx.record_err(Error::InvalidArgument {
        api: "test",
        reason: "recorded by the test".into(),
    });
    buf.free().unwrap();
    drop(stream);
    assert!(ctx.check_err().is_err());
    assert!(ctx.check_err().is_ok());
}

#[test]
fn a_context_is_usable_from_threads_that_never_set_the_device() {
    let ctx = common::ctx();
    let buf = Arc::new(DeviceBuffer::from_host(&ctx, &[1.5f32; 64]).unwrap());
    let handles: Vec<_> = (0..3)
        .map(|i| {
            let ctx = ctx.clone();
            let buf = buf.clone();
            std::thread::spawn(move || {
                // No aclrtSetDevice on this thread: binding the context is
                // what avoids ACL_ERROR_RT_CONTEXT_NULL.
                let stream = ctx.new_stream().unwrap();
                let mut mine = DeviceBuffer::<f32>::zeroed(&ctx, 64).unwrap();
                mine.copy_from(&buf, &stream).unwrap();
                let v = mine.to_vec().unwrap();
                assert!(v.iter().all(|&x| x == 1.5), "thread {i}");
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn operator_and_collective_statuses_are_named() {
    common::init();
    assert!(ascend_rt::result::check_aclnn("aclnnAdd", 0).is_ok());
    let err = ascend_rt::result::check_aclnn("aclnnAddGetWorkspaceSize", 161002).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("aclnnAddGetWorkspaceSize failed: 161002 ACLNN_ERR_PARAM_INVALID: "),
        "{err}"
    );
    assert!(ascend_rt::result::check_hccl("HcclAllReduce", 0).is_ok());
    let err = ascend_rt::result::check_hccl("HcclAllReduce", 9).unwrap_err();
    match &err {
        Error::Hccl { code, .. } => assert_eq!(*code, ascend_rt::HcclCode::HCCL_E_TIMEOUT),
        other => panic!("unexpected {other}"),
    }
    assert!(
        err.to_string()
            .starts_with("HcclAllReduce failed: 9 HCCL_E_TIMEOUT: "),
        "{err}"
    );
}

/// Changing the current device through the result layer does not fool the
/// context cache: the next safe call on a context binds it again.
#[test]
fn result_layer_device_changes_invalidate_the_context_cache() {
    let ctx = common::ctx();
    let a = DeviceBuffer::from_host(&ctx, &[4u8; 8]).unwrap();
    assert_eq!(ascend_rt::result::device::get().unwrap(), 0);
    ascend_rt::result::device::set(1).unwrap();
    assert_eq!(ascend_rt::result::device::get().unwrap(), 1);
    let b = DeviceBuffer::<u8>::zeroed(&ctx, 8).unwrap();
    assert_eq!(ascend_rt::result::device::get().unwrap(), 0);
    assert_eq!(b.device().ordinal(), 0);
    assert_eq!(a.to_vec().unwrap(), [4u8; 8]);
    // SAFETY: gives back the reference taken by `set(1)` above; nothing was
    // created on device 1 through it.
    unsafe { ascend_rt::result::device::reset(1) }.unwrap();
}
