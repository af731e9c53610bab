//! Element-wise operators: `add` (`aclnnAdd`, with alpha) and `mul`
//! (`aclnnMul`), both with torch broadcasting. The typed API takes both
//! operands of one element type (so no promotion happens); `out` has the
//! broadcast shape.

use std::sync::Arc;

use super::args::{AsView, Assembled, broadcast, on_device, output, shape_is};
use ascend_sys::aclOpExecutor;
use ascend_sys::pfn::opapi::aclnnAddGetWorkspaceSize;

use crate::aclnn::{OpCall, PreparedOp};
use crate::error::{Error, Result};
use crate::memory::{DType, DeviceRepr};
use crate::result::opapi::operator;
use crate::stream::Stream;
use crate::tensor::{Tensor, TensorArgMut, TensorRef};

/// `a + alpha * b`, broadcast, into a new tensor.
pub fn add<T: DeviceRepr>(
    stream: &Arc<Stream>,
    a: &impl AsView<T>,
    b: &impl AsView<T>,
    alpha: f64,
) -> Result<Tensor<T>> {
    let shape = broadcast("ops::add", a.as_view().shape(), b.as_view().shape())?;
    let mut out = output::<T>(stream, &shape)?;
    add_into(stream, a, b, alpha, &mut out)?;
    Ok(out)
}

/// Checks `add`'s arguments, resolves the operator and assembles the call
/// (descriptors made, the tensors declared on the stream).
fn add_call<'s, T: DeviceRepr>(
    stream: &'s Arc<Stream>,
    a: &TensorRef<'_, T>,
    b: &TensorRef<'_, T>,
    alpha: f64,
    out: &mut dyn TensorArgMut,
) -> Result<
    Assembled<
        's,
        aclnnAddGetWorkspaceSize,
        impl FnOnce(aclnnAddGetWorkspaceSize, *mut u64, *mut *mut aclOpExecutor) -> i32 + use<'s, T>,
    >,
> {
    const API: &str = "ops::add";
    let shape = broadcast(API, a.shape(), b.shape())?;
    shape_is(API, "out", out.layout().shape(), &shape)?;
    same_type(API, T::DTYPE, out.dtype())?;
    if !alpha.is_finite() {
        return Err(Error::invalid(API, format!("alpha {alpha} is not finite")));
    }
    // Float tensors take a float alpha; integer ones an integral alpha of
    // their own type (checked by AclScalar).
    let alpha_type = match T::DTYPE {
        DType::F32 | DType::F16 | DType::BF16 => DType::F32,
        other => other,
    };
    on_device(API, stream, a)?;
    on_device(API, stream, b)?;
    let op = operator!(aclnnAddGetWorkspaceSize, aclnnAdd).resolve()?;
    let mut call = OpCall::new(stream)?;
    let alpha = call.scalar(alpha, alpha_type)?;
    let (da, db) = (call.input(a)?, call.input(b)?);
    let dout = call.output(out)?;
    // SAFETY: the descriptors live in `call` until phase 2 returned (or
    // until a prepared executor is destroyed).
    let phase1 =
        move |p1: aclnnAddGetWorkspaceSize, ws, ex| unsafe { p1(da, db, alpha, dout, ws, ex) };
    Ok(Assembled { call, op, phase1 })
}

/// `a + alpha * b` into `out` (of the broadcast shape and type `T`).
pub fn add_into<T: DeviceRepr>(
    stream: &Arc<Stream>,
    a: &impl AsView<T>,
    b: &impl AsView<T>,
    alpha: f64,
    out: &mut dyn TensorArgMut,
) -> Result<()> {
    let (a, b) = (a.as_view(), b.as_view());
    add_call(stream, &a, &b, alpha, out)?.run()
}

/// A repeatable `a + alpha * b` for tensors of these types and layouts (and
/// this alpha): run it with [`PreparedOp::run`]`(stream, &[&a, &b], &mut
/// [&mut out])`.
pub fn prepare_add<T: DeviceRepr>(
    stream: &Arc<Stream>,
    a: &impl AsView<T>,
    b: &impl AsView<T>,
    alpha: f64,
    out: &mut dyn TensorArgMut,
) -> Result<PreparedOp> {
    let (a, b) = (a.as_view(), b.as_view());
    add_call(stream, &a, &b, alpha, out)?.prepare()
}

/// `a * b`, broadcast, into a new tensor.
pub fn mul<T: DeviceRepr>(
    stream: &Arc<Stream>,
    a: &impl AsView<T>,
    b: &impl AsView<T>,
) -> Result<Tensor<T>> {
    let shape = broadcast("ops::mul", a.as_view().shape(), b.as_view().shape())?;
    let mut out = output::<T>(stream, &shape)?;
    mul_into(stream, a, b, &mut out)?;
    Ok(out)
}

/// `a * b` into `out` (of the broadcast shape and type `T`).
pub fn mul_into<T: DeviceRepr>(
    stream: &Arc<Stream>,
    a: &impl AsView<T>,
    b: &impl AsView<T>,
    out: &mut dyn TensorArgMut,
) -> Result<()> {
    const API: &str = "ops::mul";
    let (a, b) = (a.as_view(), b.as_view());
    let shape = broadcast(API, a.shape(), b.shape())?;
    shape_is(API, "out", out.layout().shape(), &shape)?;
    same_type(API, T::DTYPE, out.dtype())?;
    on_device(API, stream, &a)?;
    on_device(API, stream, &b)?;
    let op = operator!(aclnnMulGetWorkspaceSize, aclnnMul).resolve()?;
    let mut call = OpCall::new(stream)?;
    let (da, db) = (call.input(&a)?, call.input(&b)?);
    let dout = call.output(out)?;
    call.run_op(
        &op,
        // SAFETY: the descriptors live in `call` until phase 2 returned.
        |p1, ws, ex| unsafe { p1(da, db, dout, ws, ex) },
    )
}

pub(crate) fn same_type(api: &'static str, want: DType, got: DType) -> Result<()> {
    if want != got {
        return Err(Error::invalid(
            api,
            format!("out has dtype {got} but the inputs are {want}"),
        ));
    }
    Ok(())
}
