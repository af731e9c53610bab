//! Normalisations and activations: `rms_norm` (`aclnnRmsNorm`), `softmax`
//! (`aclnnSoftmax`) and `swiglu` (`aclnnSwiGlu`).

use std::sync::Arc;

use super::args::{AsView, float_only, norm_dim, on_device, output, rank_in, shape_is};
use super::elementwise::same_type;
use crate::aclnn::OpCall;
use crate::error::{Error, Result};
use crate::memory::{DType, DeviceRepr};
use crate::result::opapi::operator;
use crate::stream::Stream;
use crate::tensor::{Tensor, TensorArgMut};

fn rstd_shape(api: &'static str, x: &[usize], gamma: &[usize]) -> Result<Vec<usize>> {
    rank_in(api, "x", x, 1, 8)?;
    if gamma.is_empty() || gamma.len() > x.len() || x[x.len() - gamma.len()..] != *gamma {
        return Err(Error::invalid(
            api,
            format!("gamma has shape {gamma:?}; it must equal the trailing dimensions of x {x:?}"),
        ));
    }
    let lead = x.len() - gamma.len();
    Ok(x.iter()
        .enumerate()
        .map(|(i, &d)| if i < lead { d } else { 1 })
        .collect())
}

/// RMS normalisation over the trailing dimensions that `gamma` has:
/// returns `y = x / sqrt(mean(x²) + eps) * gamma` and `rstd` (f32, the
/// normalised dimensions kept as 1).
pub fn rms_norm<T: DeviceRepr, G: DeviceRepr>(
    stream: &Arc<Stream>,
    x: &impl AsView<T>,
    gamma: &impl AsView<G>,
    eps: f64,
) -> Result<(Tensor<T>, Tensor<f32>)> {
    let rs = rstd_shape(
        "ops::rms_norm",
        x.as_view().shape(),
        gamma.as_view().shape(),
    )?;
    let mut y = output::<T>(stream, x.as_view().shape())?;
    let mut rstd = output::<f32>(stream, &rs)?;
    rms_norm_into(stream, x, gamma, eps, &mut y, &mut rstd)?;
    Ok((y, rstd))
}

/// [`rms_norm`] into given outputs.
pub fn rms_norm_into<T: DeviceRepr, G: DeviceRepr>(
    stream: &Arc<Stream>,
    x: &impl AsView<T>,
    gamma: &impl AsView<G>,
    eps: f64,
    y: &mut dyn TensorArgMut,
    rstd: &mut dyn TensorArgMut,
) -> Result<()> {
    const API: &str = "ops::rms_norm";
    let (x, g) = (x.as_view(), gamma.as_view());
    float_only(API, "x", T::DTYPE)?;
    // Documented combinations: gamma of x's type, or f32 gamma.
    if G::DTYPE != T::DTYPE && G::DTYPE != DType::F32 {
        return Err(Error::invalid(
            API,
            format!(
                "gamma is {} but x is {}; gamma must be {} or f32",
                G::DTYPE,
                T::DTYPE,
                T::DTYPE
            ),
        ));
    }
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(Error::invalid(
            API,
            format!("eps {eps} must be finite and non-negative"),
        ));
    }
    let rs = rstd_shape(API, x.shape(), g.shape())?;
    shape_is(API, "y", y.layout().shape(), x.shape())?;
    same_type(API, T::DTYPE, y.dtype())?;
    shape_is(API, "rstd", rstd.layout().shape(), &rs)?;
    if rstd.dtype() != DType::F32 {
        return Err(Error::invalid(
            API,
            format!("rstd is {}; it must be f32", rstd.dtype()),
        ));
    }
    on_device(API, stream, &x)?;
    on_device(API, stream, &g)?;
    let op = operator!(aclnnRmsNormGetWorkspaceSize, aclnnRmsNorm).resolve()?;
    let mut call = OpCall::new(stream)?;
    let (dx, dg) = (call.input(&x)?, call.input(&g)?);
    let (dy, dr) = (call.output(y)?, call.output(rstd)?);
    call.run_op(
        &op,
        // SAFETY: the descriptors live in `call` until phase 2 returned.
        |p1, ws, ex| unsafe { p1(dx, dg, eps, dy, dr, ws, ex) },
    )
}

/// Softmax along `dim` (negative counts from the end).
pub fn softmax<T: DeviceRepr>(
    stream: &Arc<Stream>,
    x: &impl AsView<T>,
    dim: i64,
) -> Result<Tensor<T>> {
    let mut out = output::<T>(stream, x.as_view().shape())?;
    softmax_into(stream, x, dim, &mut out)?;
    Ok(out)
}

/// [`softmax`] into `out` (x's shape and type).
pub fn softmax_into<T: DeviceRepr>(
    stream: &Arc<Stream>,
    x: &impl AsView<T>,
    dim: i64,
    out: &mut dyn TensorArgMut,
) -> Result<()> {
    const API: &str = "ops::softmax";
    let x = x.as_view();
    float_only(API, "x", T::DTYPE)?;
    rank_in(API, "x", x.shape(), 0, 8)?;
    norm_dim(API, dim, x.shape().len())?;
    shape_is(API, "out", out.layout().shape(), x.shape())?;
    same_type(API, T::DTYPE, out.dtype())?;
    on_device(API, stream, &x)?;
    let op = operator!(aclnnSoftmaxGetWorkspaceSize, aclnnSoftmax).resolve()?;
    let mut call = OpCall::new(stream)?;
    let dx = call.input(&x)?;
    let dout = call.output(out)?;
    call.run_op(
        &op,
        // SAFETY: the descriptors live in `call` until phase 2 returned.
        |p1, ws, ex| unsafe { p1(dx, dim, dout, ws, ex) },
    )
}

fn swiglu_shape(api: &'static str, x: &[usize], dim: i64) -> Result<Vec<usize>> {
    rank_in(api, "x", x, 1, 8)?;
    let d = norm_dim(api, dim, x.len())?;
    if x[d] % 2 != 0 {
        return Err(Error::invalid(
            api,
            format!(
                "dimension {dim} of x {x:?} has odd size {}; it is split in two halves",
                x[d]
            ),
        ));
    }
    let mut out = x.to_vec();
    out[d] /= 2;
    Ok(out)
}

/// SwiGLU along `dim`: `x` splits into halves `A | B` (gate first), and the
/// result is `silu(A) * B`, half as large along `dim`. `x` must be
/// contiguous (the operator takes no strided input).
pub fn swiglu<T: DeviceRepr>(
    stream: &Arc<Stream>,
    x: &impl AsView<T>,
    dim: i64,
) -> Result<Tensor<T>> {
    let shape = swiglu_shape("ops::swiglu", x.as_view().shape(), dim)?;
    let mut out = output::<T>(stream, &shape)?;
    swiglu_into(stream, x, dim, &mut out)?;
    Ok(out)
}

/// [`swiglu`] into `out`.
pub fn swiglu_into<T: DeviceRepr>(
    stream: &Arc<Stream>,
    x: &impl AsView<T>,
    dim: i64,
    out: &mut dyn TensorArgMut,
) -> Result<()> {
    const API: &str = "ops::swiglu";
    let x = x.as_view();
    float_only(API, "x", T::DTYPE)?;
    let shape = swiglu_shape(API, x.shape(), dim)?;
    if !x.layout().is_contiguous() {
        return Err(Error::invalid(
            API,
            format!(
                "x (shape {:?}, strides {:?}) is not contiguous; aclnnSwiGlu takes no strided input",
                x.shape(),
                x.layout().strides()
            ),
        ));
    }
    shape_is(API, "out", out.layout().shape(), &shape)?;
    same_type(API, T::DTYPE, out.dtype())?;
    on_device(API, stream, &x)?;
    let op = operator!(aclnnSwiGluGetWorkspaceSize, aclnnSwiGlu).resolve()?;
    let mut call = OpCall::new(stream)?;
    let dx = call.input(&x)?;
    let dout = call.output(out)?;
    call.run_op(
        &op,
        // SAFETY: the descriptors live in `call` until phase 2 returned.
        |p1, ws, ex| unsafe { p1(dx, dim, dout, ws, ex) },
    )
}
