//! Device and pinned buffers on the mock: round trips for every element
//! type, zeroed allocation, memset, copies between buffers, argument checks.
#![cfg(feature = "mock")]

mod common;

use std::sync::Arc;

use ascend_rt::{DType, DeviceBuffer, DeviceRepr, Error, PinnedBuffer, bf16, f16};

fn round_trip<T: DeviceRepr + PartialEq>(values: Vec<T>) {
    let ctx = common::ctx();
    let dev = DeviceBuffer::from_host(&ctx, &values).unwrap();
    assert_eq!(dev.len(), values.len());
    assert_eq!(dev.byte_len(), values.len() * T::DTYPE.size());
    assert_eq!(dev.to_vec().unwrap(), values, "{}", T::DTYPE);

    // Zeroed allocation, then overwrite from the host and read back.
    let mut z = DeviceBuffer::<T>::zeroed(&ctx, values.len()).unwrap();
    assert!(z.to_vec().unwrap().iter().all(|v| *v == T::default()));
    z.copy_from_host(&values).unwrap();
    let mut back = vec![T::default(); values.len()];
    z.copy_to_host(&mut back).unwrap();
    assert_eq!(back, values, "{}", T::DTYPE);

    // Device-to-device copy on a stream, then through pinned memory.
    let stream = ctx.new_stream().unwrap();
    let mut copy = DeviceBuffer::<T>::zeroed(&ctx, values.len()).unwrap();
    copy.copy_from(&dev, &stream).unwrap();
    let mut pinned = PinnedBuffer::<T>::zeroed(&ctx, values.len()).unwrap();
    copy.copy_to_pinned(&mut pinned, &stream).unwrap();
    assert_eq!(pinned.as_slice().unwrap(), &values[..], "{}", T::DTYPE);
}

fn pattern<T>(n: usize, f: impl Fn(usize) -> T) -> Vec<T> {
    (0..n).map(f).collect()
}

#[test]
fn f32_round_trips() {
    round_trip(pattern(1000, |i| i as f32 * 0.25 - 17.0));
}

#[test]
fn f16_round_trips() {
    round_trip(pattern(1001, |i| f16::from_f32(i as f32 / 8.0 - 60.0)));
}

#[test]
fn bf16_round_trips() {
    round_trip(pattern(999, |i| bf16::from_f32((i as f32).sin() * 100.0)));
}

#[test]
fn i8_round_trips() {
    round_trip(pattern(300, |i| (i as i64 % 256 - 128) as i8));
}

#[test]
fn i32_round_trips() {
    round_trip(pattern(4097, |i| (i as i32 - 2000) * 7919));
}

#[test]
fn i64_round_trips() {
    round_trip(pattern(513, |i| ((i as i64) << 40) | i as i64));
}

#[test]
fn u8_round_trips() {
    round_trip(pattern(257, |i| (i % 256) as u8));
}

#[test]
fn dtypes_name_their_acl_types() {
    assert_eq!(<f32 as DeviceRepr>::DTYPE, DType::F32);
    assert_eq!(<bf16 as DeviceRepr>::DTYPE.acl(), ascend_sys::ACL_BF16);
    assert_eq!(<u8 as DeviceRepr>::DTYPE.acl(), ascend_sys::ACL_UINT8);
}

#[test]
fn memset_sets_every_byte() {
    let ctx = common::ctx();
    let mut b = DeviceBuffer::<i32>::from_host(&ctx, &[5; 33]).unwrap();
    b.memset(0xff).unwrap();
    assert_eq!(b.to_vec().unwrap(), vec![-1i32; 33]);
    let stream = ctx.new_stream().unwrap();
    b.memset_async(0x01, &stream).unwrap();
    assert_eq!(b.to_vec().unwrap(), vec![0x0101_0101i32; 33]);
    b.memset(0).unwrap();
    assert_eq!(b.to_vec().unwrap(), vec![0i32; 33]);
}

#[test]
fn copies_between_buffers_preserve_contents() {
    let ctx = common::ctx();
    let stream = ctx.default_stream();
    assert!(stream.is_default());
    assert!(Arc::ptr_eq(&stream, &ctx.default_stream()));
    let a = DeviceBuffer::from_host(&ctx, &pattern(10_000, |i| i as i64)).unwrap();
    let mut b = DeviceBuffer::<i64>::zeroed(&ctx, 10_000).unwrap();
    let mut c = DeviceBuffer::<i64>::zeroed(&ctx, 10_000).unwrap();
    b.copy_from(&a, &stream).unwrap();
    c.copy_from(&b, &stream).unwrap();
    stream.synchronize().unwrap();
    assert_eq!(c.to_vec().unwrap(), pattern(10_000, |i| i as i64));
    let d = c.try_clone(&stream).unwrap();
    c.memset(0).unwrap();
    assert_eq!(d.to_vec().unwrap(), pattern(10_000, |i| i as i64));
}

#[test]
fn pinned_buffers_round_trip_through_the_device() {
    let ctx = common::ctx();
    let stream = ctx.new_stream().unwrap();
    let mut host = PinnedBuffer::from_slice(&ctx, &pattern(4096, |i| i as f32)).unwrap();
    let mut dev = DeviceBuffer::<f32>::zeroed(&ctx, 4096).unwrap();
    dev.copy_from_pinned(&host, &stream).unwrap();
    // Writing the pinned buffer waits for the copy that reads it.
    host.as_mut_slice().unwrap().fill(-1.0);
    let mut out = PinnedBuffer::<f32>::zeroed(&ctx, 4096).unwrap();
    dev.copy_to_pinned(&mut out, &stream).unwrap();
    assert_eq!(out.as_slice().unwrap(), &pattern(4096, |i| i as f32)[..]);
    assert!(host.as_slice().unwrap().iter().all(|&x| x == -1.0));
    out.free().unwrap();
    host.free().unwrap();
    dev.free().unwrap();
}

#[test]
fn empty_buffers_need_no_memory() {
    let ctx = common::ctx();
    let stream = ctx.new_stream().unwrap();
    let mut e = DeviceBuffer::<f32>::from_host(&ctx, &[]).unwrap();
    assert!(e.is_empty());
    assert!(e.as_ptr().is_null());
    assert!(e.to_vec().unwrap().is_empty());
    e.memset(3).unwrap();
    let other = DeviceBuffer::<f32>::zeroed(&ctx, 0).unwrap();
    e.copy_from(&other, &stream).unwrap();
    let p = PinnedBuffer::<f32>::zeroed(&ctx, 0).unwrap();
    assert!(p.as_slice().unwrap().is_empty());
    e.free().unwrap();
}

#[test]
fn mismatched_lengths_are_rejected_with_reasons() {
    let ctx = common::ctx();
    let stream = ctx.new_stream().unwrap();
    let mut b = DeviceBuffer::<u8>::zeroed(&ctx, 4).unwrap();
    let err = b.copy_from_host(&[1, 2, 3]).unwrap_err();
    match &err {
        Error::InvalidArgument { api, reason } => {
            assert_eq!(*api, "DeviceBuffer::copy_from_host");
            assert!(reason.contains('3') && reason.contains('4'), "{reason}");
        }
        other => panic!("unexpected {other}"),
    }
    let mut small = [0u8; 2];
    assert!(matches!(
        b.copy_to_host(&mut small),
        Err(Error::InvalidArgument { .. })
    ));
    let five = DeviceBuffer::<u8>::zeroed(&ctx, 5).unwrap();
    assert!(matches!(
        b.copy_from(&five, &stream),
        Err(Error::InvalidArgument { .. })
    ));
    // Nothing was written by the rejected calls.
    assert_eq!(b.to_vec().unwrap(), [0; 4]);
}

#[test]
fn oversized_allocations_fail_cleanly() {
    let ctx = common::ctx();
    // SAFETY: the allocation must fail before any contents exist.
    let err = unsafe { DeviceBuffer::<i64>::alloc(&ctx, usize::MAX / 4) }.unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    // Representable, but far beyond the device's capacity: the runtime says so.
    let err = DeviceBuffer::<u8>::zeroed(&ctx, 1 << 45).unwrap_err();
    assert_eq!(
        err.acl_code(),
        Some(ascend_rt::AclCode::ACL_ERROR_RT_MEMORY_ALLOCATION),
        "{err}"
    );
}

#[test]
fn a_stream_of_another_device_is_rejected() {
    common::init();
    let ctx0 = ascend_rt::Context::new(0).unwrap();
    let ctx1 = ascend_rt::Context::new(1).unwrap();
    let s1 = ctx1.new_stream().unwrap();
    let mut b = DeviceBuffer::<f32>::zeroed(&ctx0, 8).unwrap();
    let err = b.memset_async(1, &s1).unwrap_err();
    assert!(err.to_string().contains("npu:1"), "{err}");
}
