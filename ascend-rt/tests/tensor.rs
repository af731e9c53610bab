//! Tensors on the mock: ndarray round trips for every element type and
//! several ranks, strided views (transpose, narrow, reshape) read back in
//! logical order, views refused when they leave their buffer, and the
//! aclnn descriptors' lifetimes (tensor lists own their members).
#![cfg(feature = "mock")]

mod common;

use ascend_rt::aclnn::{AclIntArray, AclScalar, AclTensor, AclTensorList};
use ascend_rt::{DType, DeviceBuffer, DeviceRepr, Format, Layout, Tensor, TensorRef, bf16, f16};
use ndarray::{Array, ArrayD, Ix2, Ix3, IxDyn};

/// A deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn round_trip<T: DeviceRepr + PartialEq>(make: impl Fn(u64) -> T) {
    let ctx = common::ctx();
    let s = ctx.new_stream().unwrap();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for shape in [
        vec![],
        vec![7],
        vec![3, 5],
        vec![2, 3, 4],
        vec![2, 1, 3, 2],
        vec![1, 2, 1, 2, 1, 3],
        vec![0, 4],
    ] {
        let n: usize = shape.iter().product();
        let data: Vec<T> = (0..n).map(|_| make(rng.next())).collect();
        let host = ArrayD::from_shape_vec(IxDyn(&shape), data).unwrap();
        let t = Tensor::from_array(&s, host.view()).unwrap();
        assert_eq!(t.shape(), &shape[..]);
        assert_eq!(t.dtype(), T::DTYPE);
        let back = t.to_array().unwrap();
        assert_eq!(back, host, "{} {shape:?}", T::DTYPE);
    }
    // A transposed (non-standard-order) host view uploads in logical order.
    let a = Array::from_shape_fn((3, 4), |(i, j)| make((i * 4 + j) as u64));
    let t = Tensor::from_array(&s, a.t()).unwrap();
    assert_eq!(t.shape(), &[4, 3]);
    assert_eq!(t.to_array_d::<Ix2>().unwrap(), a.t().to_owned());
    // The wrong fixed dimension is an error, not a panic.
    assert!(t.to_array_d::<Ix3>().is_err());
}

#[test]
fn ndarray_round_trips_for_every_dtype() {
    round_trip(|r| (r % 1000) as f32 / 7.0 - 50.0);
    round_trip(|r| f16::from_f32((r % 1000) as f32 / 8.0));
    round_trip(|r| bf16::from_f32((r % 1000) as f32 - 500.0));
    round_trip(|r| r as i8);
    round_trip(|r| r as i32);
    round_trip(|r| r as i64);
    round_trip(|r| r as u8);
    assert_eq!(DType::ALL.len(), 7);
}

#[test]
fn strided_views_read_back_in_logical_order() {
    let ctx = common::ctx();
    let s = ctx.new_stream().unwrap();
    let a = Array::from_shape_fn((4, 6), |(i, j)| (i * 6 + j) as i32);
    let t = Tensor::from_array(&s, a.view()).unwrap();
    let tv = t.view().t().unwrap();
    assert_eq!(tv.shape(), &[6, 4]);
    assert_eq!(tv.to_array().unwrap(), a.t().to_owned().into_dyn());
    let sl = t.view().narrow(0, 1, 2).unwrap().narrow(1, 2, 3).unwrap();
    assert_eq!(sl.layout().offset(), 8);
    assert_eq!(
        sl.to_array().unwrap(),
        a.slice(ndarray::s![1..3, 2..5]).to_owned().into_dyn()
    );
    let r = t.view().reshape(&[2, 3, 4]).unwrap();
    assert_eq!(r.to_vec().unwrap(), (0..24).collect::<Vec<i32>>());
    // Reshaping a transposed view would need a copy.
    assert!(t.view().t().unwrap().reshape(&[24]).is_err());
    assert!(t.view().narrow(1, 4, 3).is_err());
}

#[test]
fn views_must_stay_inside_their_buffer() {
    let ctx = common::ctx();
    let buf = DeviceBuffer::<f32>::zeroed(&ctx, 10).unwrap();
    assert!(TensorRef::new(&buf, &[2, 5]).is_ok());
    let e = TensorRef::new(&buf, &[3, 4]).unwrap_err();
    assert!(e.to_string().contains("reaches element 12"), "{e}");
    let l = Layout::new(&[3], &[4], 1).unwrap(); // elements 1, 5, 9
    assert_eq!(
        TensorRef::strided(&buf, l.clone())
            .unwrap()
            .to_vec()
            .unwrap(),
        vec![0.0; 3]
    );
    let l = Layout::new(&[3], &[4], 2).unwrap(); // reaches 10
    assert!(TensorRef::strided(&buf, l).is_err());
    assert!(Tensor::from_buffer(DeviceBuffer::<f32>::zeroed(&ctx, 5).unwrap(), &[2, 3]).is_err());
}

#[test]
fn descriptors_are_created_and_lists_own_their_members() {
    let ctx = common::ctx();
    let buf = DeviceBuffer::<f32>::zeroed(&ctx, 24).unwrap();
    let layout = Layout::contiguous(&[2, 3, 4]).unwrap();
    let ptr = buf.as_ptr().cast_mut();
    // SAFETY (all below): `ptr` is the base of `buf`, 24 f32 long, which
    // outlives every descriptor here; no operator runs on them.
    let t = unsafe { AclTensor::new(&layout, DType::F32, Format::Nd, ptr, 24) }.unwrap();
    assert!(!t.as_ptr().is_null());
    drop(t);
    let tr = layout.transpose(0, 2).unwrap();
    // SAFETY: as above.
    let t2 = unsafe { AclTensor::new(&tr, DType::F32, Format::Nd, ptr, 24) }.unwrap();
    // A layout outside the buffer is refused before the runtime sees it.
    // SAFETY: as above (a shorter length claims less than is there).
    let e = unsafe { AclTensor::new(&layout, DType::F32, Format::Nd, ptr, 23) }.unwrap_err();
    assert!(matches!(e, ascend_rt::Error::InvalidArgument { .. }), "{e}");
    // SAFETY: as above.
    let t3 = unsafe { AclTensor::new(&layout, DType::F32, Format::Nd, ptr, 24) }.unwrap();
    let list = AclTensorList::new(vec![t2, t3]).unwrap();
    assert!(list.member(1).is_some() && list.member(2).is_none());
    drop(list); // destroys the members once, through the list
    let s = AclScalar::new(2.5, DType::F32).unwrap();
    assert!(!s.as_ptr().is_null());
    assert!(AclScalar::new(2.5, DType::I32).is_err());
    assert!(AclScalar::new(300.0, DType::U8).is_err());
    AclScalar::new(-3.0, DType::I8).unwrap();
    let a = AclIntArray::new(&[1, 2, 3]).unwrap();
    assert!(!a.as_ptr().is_null());
}
