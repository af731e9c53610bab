//! Rotary position embedding: aclnnRotaryPositionEmbedding (out of place)
//! and aclnnApplyRotaryPosEmb / aclnnApplyRotaryPosEmbV2 (query and key in
//! place), over `ascend_kernels::rope`.
//!
//! Also the binding of a `char *` parameter ([`CStrParam`]), which the
//! attention family shares: the string is copied in phase one, because the
//! caller's buffer need not outlive `XxxGetWorkspaceSize` while the
//! executor (and a repeatable one's later launches) does.

use std::ffi::{CStr, c_char};

use ascend_kernels::TensorArg;
use ascend_kernels::rope::{self, ApplyRotaryPosEmbArgs, RotaryPositionEmbeddingArgs};
use ascend_sys::*;

use super::executor::Binder;
use super::register::Bound;
use super::{invalid, null_err};
use crate::error::MockResult;

/// A `char *` parameter, copied during phase one.
#[derive(Debug, Clone)]
pub(super) struct CStrParam(pub(super) String);

impl Bound for CStrParam {
    type Out = String;
    fn get(&self, _: &[TensorArg]) -> String {
        self.0.clone()
    }
}

/// A fixed string argument: what a version without the parameter means
/// (aclnnApplyRotaryPosEmb is the "half" mode of its V2).
pub(super) struct Fixed(pub(super) &'static str);

impl Bound for Fixed {
    type Out = String;
    fn get(&self, _: &[TensorArg]) -> String {
        self.0.to_string()
    }
}

/// aclnnApplyRotaryPosEmb's rotation.
const HALF: Fixed = Fixed("half");

/// The `c_string` binding kind of the `operator!` macro: a required
/// NUL-terminated string, refused with 161001 when NULL and 161002 when it
/// is not UTF-8.
pub(super) trait BindCStr {
    fn c_string(&mut self, param: &'static str, p: *const c_char) -> MockResult<CStrParam>;
}

impl BindCStr for Binder<'_> {
    fn c_string(&mut self, param: &'static str, p: *const c_char) -> MockResult<CStrParam> {
        if p.is_null() {
            return Err(null_err(format!("{param} is NULL")));
        }
        // SAFETY: the C contract of every aclnn `char *` parameter is a
        // NUL-terminated string readable for the duration of the call; it is
        // copied here, so nothing refers to the caller's buffer afterwards.
        let s = unsafe { CStr::from_ptr(p) };
        let s = s
            .to_str()
            .map_err(|_| invalid(format!("{param} is not a valid UTF-8 string")))?;
        Ok(CStrParam(s.to_string()))
    }
}

operator! {
    /// Phase one of `aclnnRotaryPositionEmbedding`: `out = x * cos + rotate(x) * sin`.
    aclnnRotaryPositionEmbedding / aclnnRotaryPositionEmbeddingGetWorkspaceSize(
        x: *const aclTensor = input,
        cos: *const aclTensor = input,
        sin: *const aclTensor = input,
        mode: i64 = value,
        out: *mut aclTensor = output,
    ) => rope::check, rope::run, RotaryPositionEmbeddingArgs { x, cos, sin, mode, out };

    /// Phase one of `aclnnApplyRotaryPosEmb`: query and key rotated in place (half mode).
    aclnnApplyRotaryPosEmb / aclnnApplyRotaryPosEmbGetWorkspaceSize(
        queryRef: *mut aclTensor = inout,
        keyRef: *mut aclTensor = inout,
        cos: *const aclTensor = input,
        sin: *const aclTensor = input,
        layout: i64 = value,
    ) => rope::check_apply, rope::run_apply, ApplyRotaryPosEmbArgs {
        query: queryRef,
        key: keyRef,
        cos,
        sin,
        layout,
        rotary_mode: HALF,
    };

    /// Phase one of `aclnnApplyRotaryPosEmbV2`: as aclnnApplyRotaryPosEmb with `rotaryMode`.
    aclnnApplyRotaryPosEmbV2 / aclnnApplyRotaryPosEmbV2GetWorkspaceSize(
        queryRef: *mut aclTensor = inout,
        keyRef: *mut aclTensor = inout,
        cos: *const aclTensor = input,
        sin: *const aclTensor = input,
        layout: i64 = value,
        rotaryMode: *mut c_char = c_string,
    ) => rope::check_apply, rope::run_apply, ApplyRotaryPosEmbArgs {
        query: queryRef,
        key: keyRef,
        cos,
        sin,
        layout,
        rotary_mode: rotaryMode,
    };
}

#[cfg(test)]
mod tests {
    //! The three operators through the C ABI against the documented
    //! formulas written out here, on FLOAT, FLOAT16 and BF16, with
    //! broadcast cos/sin and a strided x; and the refusals of phase one.

    use std::ffi::c_void;
    use std::ptr::null_mut;

    use half::{bf16, f16};

    use super::*;
    use crate::aclnn::tests::{Dev, close, destroy_tensors, nn_err, run_op, strided, tensor};

    /// `values` stored as `dtype`, and the values as stored.
    fn store(dev: &mut Dev, dtype: aclDataType, values: &[f32]) -> (*mut c_void, Vec<f64>) {
        match dtype {
            ACL_FLOAT16 => {
                let h: Vec<f16> = values.iter().map(|&v| f16::from_f32(v)).collect();
                let exact = h.iter().map(|v| f64::from(v.to_f32())).collect();
                (dev.buf(&h), exact)
            }
            ACL_BF16 => {
                let h: Vec<bf16> = values.iter().map(|&v| bf16::from_f32(v)).collect();
                let exact = h.iter().map(|v| f64::from(v.to_f32())).collect();
                (dev.buf(&h), exact)
            }
            _ => (
                dev.buf(values),
                values.iter().map(|&v| f64::from(v)).collect(),
            ),
        }
    }

    fn load(dev: &Dev, dtype: aclDataType, p: *mut c_void, n: usize) -> Vec<f32> {
        match dtype {
            ACL_FLOAT16 => dev.read::<f16>(p, n).iter().map(|v| v.to_f32()).collect(),
            ACL_BF16 => dev.read::<bf16>(p, n).iter().map(|v| v.to_f32()).collect(),
            _ => dev.read::<f32>(p, n),
        }
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 2001) as f32 / 1000.0
                    - 1.0
            })
            .collect()
    }

    /// One row of the rotation: `x * cos + rotate(x) * sin` with `rotate`
    /// as the documentation's torch expressions define it.
    fn row(x: &[f64], c: &[f64], s: &[f64], mode: &str) -> Vec<f64> {
        let d = x.len();
        let (p1, p2): (Vec<f64>, Vec<f64>) = match mode {
            "half" => (
                x.to_vec(),
                x[d / 2..]
                    .iter()
                    .map(|v| -v)
                    .chain(x[..d / 2].iter().copied())
                    .collect(),
            ),
            "interleave" => (
                x.to_vec(),
                (0..d)
                    .map(|i| if i % 2 == 0 { -x[i + 1] } else { x[i - 1] })
                    .collect(),
            ),
            "quarter" => {
                let q = d / 4;
                (
                    x.to_vec(),
                    (0..d)
                        .map(|i| match i / q {
                            0 | 2 => -x[i + q],
                            _ => x[i - q],
                        })
                        .collect(),
                )
            }
            _ => {
                let ev: Vec<f64> = x.iter().step_by(2).copied().collect();
                let od: Vec<f64> = x.iter().skip(1).step_by(2).copied().collect();
                (
                    ev.iter().chain(&od).copied().collect(),
                    od.iter().map(|v| -v).chain(ev.iter().copied()).collect(),
                )
            }
        };
        (0..d).map(|i| p1[i] * c[i] + p2[i] * s[i]).collect()
    }

    #[test]
    fn rotary_position_embedding_every_mode() {
        let mut dev = Dev::new();
        // x [B=2, N=3, S=4, D=8] (BNSD) with cos [1, 1, S, D] (11SD).
        let (b, n, sl, d) = (2usize, 3usize, 4usize, 8usize);
        let numel = b * n * sl * d;
        for (mode, name) in [(0i64, "half"), (1, "interleave"), (2, "quarter"), (3, "ih")] {
            for (dtype, tol) in [(ACL_FLOAT, 1e-5), (ACL_FLOAT16, 2e-3), (ACL_BF16, 1e-2)] {
                let (xp, x) = store(&mut dev, dtype, &values(numel, 1));
                let (cp, c) = store(&mut dev, dtype, &values(sl * d, 2));
                let (sp, s) = store(&mut dev, dtype, &values(sl * d, 3));
                let o = dev.zeros::<f32>(numel);
                let shape = [b as i64, n as i64, sl as i64, d as i64];
                let cshape = [1, 1, sl as i64, d as i64];
                let (xt, ct, st, ot) = (
                    tensor(&shape, dtype, xp),
                    tensor(&cshape, dtype, cp),
                    tensor(&cshape, dtype, sp),
                    tensor(&shape, dtype, o),
                );
                run_op(
                    &dev,
                    // SAFETY: live descriptors and output locations.
                    |w, e| unsafe {
                        aclnnRotaryPositionEmbeddingGetWorkspaceSize(xt, ct, st, mode, ot, w, e)
                    },
                    aclnnRotaryPositionEmbedding,
                );
                destroy_tensors(&[xt, ct, st, ot]);
                dev.sync();
                let mut want = Vec::new();
                for r in 0..b * n * sl {
                    let srow = r % sl;
                    want.extend(row(
                        &x[r * d..(r + 1) * d],
                        &c[srow * d..(srow + 1) * d],
                        &s[srow * d..(srow + 1) * d],
                        name,
                    ));
                }
                close(&load(&dev, dtype, o, numel), &want, tol);
            }
        }
    }

    #[test]
    fn rotary_position_embedding_transposed_x() {
        let mut dev = Dev::new();
        // Storage [1, S=3, N=2, D=4] (BSND) viewed as BNSD [1, 2, 3, 4].
        let xs = values(24, 7);
        let xp = dev.buf(&xs);
        let (cv, sv) = (values(12, 8), values(12, 9));
        let (cp, sp) = (dev.buf(&cv), dev.buf(&sv));
        let o = dev.zeros::<f32>(24);
        let xt = strided(&[1, 2, 3, 4], Some(&[24, 4, 8, 1]), 0, ACL_FLOAT, &[24], xp);
        let ct = tensor(&[1, 1, 3, 4], ACL_FLOAT, cp);
        let st = tensor(&[1, 1, 3, 4], ACL_FLOAT, sp);
        let ot = tensor(&[1, 2, 3, 4], ACL_FLOAT, o);
        run_op(
            &dev,
            // SAFETY: live descriptors and output locations.
            |w, e| unsafe { aclnnRotaryPositionEmbeddingGetWorkspaceSize(xt, ct, st, 0, ot, w, e) },
            aclnnRotaryPositionEmbedding,
        );
        destroy_tensors(&[xt, ct, st, ot]);
        dev.sync();
        let f = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
        let (c, s) = (f(&cv), f(&sv));
        let mut want = Vec::new();
        for nh in 0..2 {
            for si in 0..3 {
                let xr: Vec<f64> = (0..4).map(|k| f64::from(xs[si * 8 + nh * 4 + k])).collect();
                want.extend(row(
                    &xr,
                    &c[si * 4..si * 4 + 4],
                    &s[si * 4..si * 4 + 4],
                    "half",
                ));
            }
        }
        close(&dev.read::<f32>(o, 24), &want, 1e-6);
    }

    #[test]
    fn apply_rotary_pos_emb_both_versions_in_place() {
        let mut dev = Dev::new();
        // BSND: q [B=1, S=2, Nq=2, D=64], k [1, 2, Nk=1, 64], cos [1, 2, 1, 64].
        let d = 64usize;
        for (v2, mode) in [
            (false, "half"),
            (true, "half"),
            (true, "interleave"),
            (true, "quarter"),
        ] {
            for (dtype, tol) in [(ACL_FLOAT, 1e-5), (ACL_FLOAT16, 2e-3), (ACL_BF16, 1e-2)] {
                let (qp, q) = store(&mut dev, dtype, &values(4 * d, 11));
                let (kp, k) = store(&mut dev, dtype, &values(2 * d, 12));
                let (cp, c) = store(&mut dev, dtype, &values(2 * d, 13));
                let (sp, s) = store(&mut dev, dtype, &values(2 * d, 14));
                let qt = tensor(&[1, 2, 2, 64], dtype, qp);
                let kt = tensor(&[1, 2, 1, 64], dtype, kp);
                let ct = tensor(&[1, 2, 1, 64], dtype, cp);
                let st = tensor(&[1, 2, 1, 64], dtype, sp);
                let cmode = std::ffi::CString::new(mode).unwrap();
                if v2 {
                    run_op(
                        &dev,
                        // SAFETY: live descriptors, string and output locations.
                        |w, e| unsafe {
                            aclnnApplyRotaryPosEmbV2GetWorkspaceSize(
                                qt,
                                kt,
                                ct,
                                st,
                                1,
                                cmode.as_ptr().cast_mut(),
                                w,
                                e,
                            )
                        },
                        aclnnApplyRotaryPosEmbV2,
                    );
                } else {
                    run_op(
                        &dev,
                        // SAFETY: live descriptors and output locations.
                        |w, e| unsafe {
                            aclnnApplyRotaryPosEmbGetWorkspaceSize(qt, kt, ct, st, 1, w, e)
                        },
                        aclnnApplyRotaryPosEmb,
                    );
                }
                // The string is gone before the kernel runs.
                drop(cmode);
                destroy_tensors(&[qt, kt, ct, st]);
                dev.sync();
                let mut want_q = Vec::new();
                for r in 0..4 {
                    let srow = r / 2;
                    want_q.extend(row(
                        &q[r * d..(r + 1) * d],
                        &c[srow * d..][..d],
                        &s[srow * d..][..d],
                        mode,
                    ));
                }
                let mut want_k = Vec::new();
                for r in 0..2 {
                    want_k.extend(row(
                        &k[r * d..(r + 1) * d],
                        &c[r * d..][..d],
                        &s[r * d..][..d],
                        mode,
                    ));
                }
                close(&load(&dev, dtype, qp, 4 * d), &want_q, tol);
                close(&load(&dev, dtype, kp, 2 * d), &want_k, tol);
            }
        }
    }

    #[test]
    fn phase_one_refusals() {
        let mut dev = Dev::new();
        let p = dev.zeros::<f32>(1024);
        let (mut ws, mut ex) = (0u64, null_mut());
        let x = tensor(&[1, 2, 3, 8], ACL_FLOAT, p);
        let c = tensor(&[1, 1, 3, 8], ACL_FLOAT, p);
        let ch = tensor(&[1, 1, 3, 8], ACL_FLOAT16, p);
        let bad_out = tensor(&[1, 2, 3, 4], ACL_FLOAT, p);
        // SAFETY (all calls): live descriptors or NULL, output locations.
        unsafe {
            nn_err(
                aclnnRotaryPositionEmbeddingGetWorkspaceSize(
                    null_mut(),
                    c,
                    c,
                    0,
                    x,
                    &mut ws,
                    &mut ex,
                ),
                ACLNN_ERR_PARAM_NULLPTR,
                &["x"],
            );
            nn_err(
                aclnnRotaryPositionEmbeddingGetWorkspaceSize(
                    x,
                    c,
                    c,
                    0,
                    null_mut(),
                    &mut ws,
                    &mut ex,
                ),
                ACLNN_ERR_PARAM_NULLPTR,
                &["out"],
            );
            nn_err(
                aclnnRotaryPositionEmbeddingGetWorkspaceSize(x, ch, c, 0, x, &mut ws, &mut ex),
                ACLNN_ERR_PARAM_INVALID,
                &["cos dtype DT_FLOAT16"],
            );
            nn_err(
                aclnnRotaryPositionEmbeddingGetWorkspaceSize(x, c, c, 7, x, &mut ws, &mut ex),
                rope::INNER_TILING_ERROR,
                &["mode", "got 7"],
            );
            nn_err(
                aclnnRotaryPositionEmbeddingGetWorkspaceSize(x, c, c, 0, bad_out, &mut ws, &mut ex),
                rope::INNER_TILING_ERROR,
                &["out shape [1, 2, 3, 4]"],
            );
        }
        destroy_tensors(&[x, c, ch, bad_out]);

        let q = tensor(&[1, 2, 2, 64], ACL_FLOAT, p);
        let k = tensor(&[1, 2, 1, 64], ACL_FLOAT, p);
        let c = tensor(&[1, 2, 1, 64], ACL_FLOAT, p);
        let mode = c"diagonal";
        // SAFETY (all calls): live descriptors or NULL, strings, output locations.
        unsafe {
            nn_err(
                aclnnApplyRotaryPosEmbGetWorkspaceSize(q, null_mut(), c, c, 1, &mut ws, &mut ex),
                ACLNN_ERR_PARAM_NULLPTR,
                &["keyRef"],
            );
            nn_err(
                aclnnApplyRotaryPosEmbGetWorkspaceSize(q, k, c, c, 3, &mut ws, &mut ex),
                ACLNN_ERR_PARAM_INVALID,
                &["layout 3 (BNSD)", "not supported"],
            );
            nn_err(
                aclnnApplyRotaryPosEmbV2GetWorkspaceSize(
                    q,
                    k,
                    c,
                    c,
                    1,
                    null_mut(),
                    &mut ws,
                    &mut ex,
                ),
                ACLNN_ERR_PARAM_NULLPTR,
                &["rotaryMode is NULL"],
            );
            nn_err(
                aclnnApplyRotaryPosEmbV2GetWorkspaceSize(
                    q,
                    k,
                    c,
                    c,
                    1,
                    mode.as_ptr().cast_mut(),
                    &mut ws,
                    &mut ex,
                ),
                ACLNN_ERR_PARAM_INVALID,
                &["rotaryMode", "\"diagonal\""],
            );
        }
        destroy_tensors(&[q, k, c]);
    }
}
