//! Matrix products: `matmul` (`aclnnMatmul`, batched with torch
//! broadcasting, transposes as strided views), its repeatable form
//! `prepare_matmul`, and `grouped_matmul` (`aclnnGroupedMatmulV4`, one
//! weight per expert, falling back to `V3`).
//!
//! Operator versions: `grouped_matmul` binds `aclnnGroupedMatmulV4` when
//! the library has it; otherwise `aclnnGroupedMatmulV3`, which only takes
//! cumulative group ends, so a [`GroupList::Counts`] list is converted to
//! its running sum first (a host round trip of `E` integers, waiting for
//! the list's producer).

use std::sync::Arc;

use super::args::{AsView, Assembled, broadcast, float_only, on_device, output, rank_in, shape_is};
use super::elementwise::same_type;
use crate::aclnn::{OpCall, PreparedOp};
use crate::error::{Error, Result};
use crate::memory::DeviceRepr;
use crate::result::opapi::operator;
use crate::stream::Stream;
use crate::tensor::{Tensor, TensorArg, TensorArgMut, TensorRef};
use ascend_sys::pfn::opapi::aclnnMatmulGetWorkspaceSize;

/// `cubeMathType` KEEP_DTYPE: compute in the inputs' precision.
const KEEP_DTYPE: i8 = 0;

fn matmul_shape(api: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    rank_in(api, "a", a, 2, 6)?;
    rank_in(api, "b", b, 2, 6)?;
    let (m, k) = (a[a.len() - 2], a[a.len() - 1]);
    let (k2, n) = (b[b.len() - 2], b[b.len() - 1]);
    if k != k2 {
        return Err(Error::invalid(
            api,
            format!("a is {a:?} and b is {b:?}: inner dimensions {k} and {k2} differ"),
        ));
    }
    let mut out = broadcast(api, &a[..a.len() - 2], &b[..b.len() - 2])?;
    out.extend([m, n]);
    Ok(out)
}

/// `a @ b` (rank 2 to 6; batch dimensions broadcast) into a new tensor.
pub fn matmul<T: DeviceRepr>(
    stream: &Arc<Stream>,
    a: &impl AsView<T>,
    b: &impl AsView<T>,
) -> Result<Tensor<T>> {
    let shape = matmul_shape("ops::matmul", a.as_view().shape(), b.as_view().shape())?;
    let mut out = output::<T>(stream, &shape)?;
    matmul_into(stream, a, b, &mut out)?;
    Ok(out)
}

fn matmul_call<'s>(
    stream: &'s Arc<Stream>,
    a: &TensorRef<'_, impl DeviceRepr>,
    b: &TensorRef<'_, impl DeviceRepr>,
    out: &mut dyn TensorArgMut,
) -> Result<
    Assembled<
        's,
        aclnnMatmulGetWorkspaceSize,
        impl FnOnce(aclnnMatmulGetWorkspaceSize, *mut u64, *mut *mut ascend_sys::aclOpExecutor) -> i32,
    >,
> {
    const API: &str = "ops::matmul";
    float_only(API, "a", a.dtype())?;
    let shape = matmul_shape(API, a.shape(), b.shape())?;
    shape_is(API, "out", out.layout().shape(), &shape)?;
    same_type(API, a.dtype(), out.dtype())?;
    on_device(API, stream, a)?;
    on_device(API, stream, b)?;
    let op = operator!(aclnnMatmulGetWorkspaceSize, aclnnMatmul).resolve()?;
    let mut call = OpCall::new(stream)?;
    let (da, db) = (call.input(a)?, call.input(b)?);
    let dout = call.output(out)?;
    // SAFETY: the descriptors live in `call` until phase 2 returned (or
    // until the prepared executor is destroyed).
    let phase1 = move |p1: aclnnMatmulGetWorkspaceSize, ws, ex| unsafe {
        p1(da, db, dout, KEEP_DTYPE, ws, ex)
    };
    Ok(Assembled { call, op, phase1 })
}

/// `a @ b` into `out` (of the product's shape and type `T`).
pub fn matmul_into<T: DeviceRepr>(
    stream: &Arc<Stream>,
    a: &impl AsView<T>,
    b: &impl AsView<T>,
    out: &mut dyn TensorArgMut,
) -> Result<()> {
    let (a, b) = (a.as_view(), b.as_view());
    matmul_call(stream, &a, &b, out)?.run()
}

/// A repeatable `a @ b` for tensors of these types and layouts: run it
/// with [`PreparedOp::run`]`(stream, &[&a, &b], &mut [&mut out])`, with
/// the same or other buffers each time.
pub fn prepare_matmul<T: DeviceRepr>(
    stream: &Arc<Stream>,
    a: &impl AsView<T>,
    b: &impl AsView<T>,
    out: &mut dyn TensorArgMut,
) -> Result<PreparedOp> {
    let (a, b) = (a.as_view(), b.as_view());
    matmul_call(stream, &a, &b, out)?.prepare()
}

/// How a grouped matmul's group list is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupList {
    /// `groupList[i]` is the number of rows of group `i` (they sum to M).
    Counts,
    /// `groupList[i]` is the end row of group `i` (non-decreasing, last = M).
    Cumsum,
}

/// Grouped matmul of the MoE layer: `x` `[M, K]` rows are split into `E`
/// consecutive groups by `group_list` (`[E]` i64, device), and group `i`
/// is multiplied by `weight[i]` (`weight` `[E, K, N]`, possibly a
/// transposed view of `[E, N, K]`), giving `[M, N]`. The list's values are
/// device data, checked by the operator (an [`Error::Aclnn`]).
pub fn grouped_matmul<T: DeviceRepr>(
    stream: &Arc<Stream>,
    x: &impl AsView<T>,
    weight: &impl AsView<T>,
    group_list: &impl AsView<i64>,
    kind: GroupList,
) -> Result<Tensor<T>> {
    const API: &str = "ops::grouped_matmul";
    let (x, w, gl) = (x.as_view(), weight.as_view(), group_list.as_view());
    float_only(API, "x", x.dtype())?;
    rank_in(API, "x", x.shape(), 2, 2)?;
    rank_in(API, "weight", w.shape(), 3, 3)?;
    rank_in(API, "group_list", gl.shape(), 1, 1)?;
    let (m, k) = (x.shape()[0], x.shape()[1]);
    let (e, k2, n) = (w.shape()[0], w.shape()[1], w.shape()[2]);
    if k != k2 {
        return Err(Error::invalid(
            API,
            format!(
                "x is {:?} and weight is {:?}: K {k} and {k2} differ",
                x.shape(),
                w.shape()
            ),
        ));
    }
    if e == 0 || e > 1024 {
        return Err(Error::invalid(
            API,
            format!("weight has {e} groups; 1..=1024 are supported"),
        ));
    }
    shape_is(API, "group_list", gl.shape(), &[e])?;
    for (what, d) in [("M", m), ("K", k), ("N", n)] {
        if d > i32::MAX as usize {
            return Err(Error::invalid(
                API,
                format!("{what} = {d} does not fit in int32"),
            ));
        }
    }
    on_device(API, stream, &x)?;
    on_device(API, stream, &w)?;
    on_device(API, stream, &gl)?;
    let mut out = output::<T>(stream, &[m, n])?;
    if operator!(aclnnGroupedMatmulV4GetWorkspaceSize, aclnnGroupedMatmulV4).is_available()? {
        let op = operator!(aclnnGroupedMatmulV4GetWorkspaceSize, aclnnGroupedMatmulV4).resolve()?;
        let mut call = OpCall::new(stream)?;
        let dx = call.input_list(&[&x as &dyn TensorArg])?;
        let dw = call.input_list(&[&w as &dyn TensorArg])?;
        let dgl = call.input(&gl)?;
        let dout = call.output_list(&mut [&mut out as &mut dyn TensorArgMut])?;
        let list_type = match kind {
            GroupList::Cumsum => 0,
            GroupList::Counts => 1,
        };
        let null = std::ptr::null();
        call.run_op(
            &op,
            // SAFETY: the lists and descriptors live in `call` until phase
            // 2 returned; unused optional lists are null as documented.
            |p1, ws, ex| unsafe {
                p1(
                    dx,
                    dw,
                    null,
                    null,
                    null,
                    null,
                    null,
                    null,
                    dgl,
                    null,
                    null,
                    null,
                    3, // splitItem: one output tensor holding every group
                    0, // groupType: groups along M
                    list_type,
                    0, // actType: none
                    dout,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    ws,
                    ex,
                )
            },
        )?;
    } else {
        let op = operator!(aclnnGroupedMatmulV3GetWorkspaceSize, aclnnGroupedMatmulV3).resolve()?;
        let cumsum;
        let gl_cum: TensorRef<'_, i64> = match kind {
            GroupList::Cumsum => gl.clone(),
            GroupList::Counts => {
                let mut c = gl.to_vec()?;
                for i in 1..c.len() {
                    c[i] = c[i].saturating_add(c[i - 1]);
                }
                cumsum = Tensor::from_slice(stream, &c, &[e])?;
                cumsum.view()
            }
        };
        let mut call = OpCall::new(stream)?;
        let dx = call.input_list(&[&x as &dyn TensorArg])?;
        let dw = call.input_list(&[&w as &dyn TensorArg])?;
        let dgl = call.input(&gl_cum)?;
        let dout = call.output_list(&mut [&mut out as &mut dyn TensorArgMut])?;
        let null = std::ptr::null();
        call.run_op(
            &op,
            // SAFETY: as for V4.
            |p1, ws, ex| unsafe {
                p1(
                    dx, dw, null, null, null, null, null, dgl, 3, 0, dout, ws, ex,
                )
            },
        )?;
    }
    Ok(out)
}
