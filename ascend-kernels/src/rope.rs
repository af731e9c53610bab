//! Rotary position embedding: aclnnRotaryPositionEmbedding (one tensor,
//! `out = x * cos + rotate(x) * sin`) and aclnnApplyRotaryPosEmb /
//! aclnnApplyRotaryPosEmbV2 (query and key rotated in place).
//!
//! The rotations, on the last axis (D) of each row (CANN's formulas):
//! - half (mode 0, rotaryMode "half"): `rotate(x) = cat(-x[D/2:], x[:D/2])`;
//! - interleave (mode 1, "interleave"): pairs `(x[2k], x[2k+1])` become
//!   `(-x[2k+1], x[2k])`;
//! - quarter (mode 2, "quarter"): `cat(-x2, x1, -x4, x3)` of the four
//!   quarters `x1..x4`;
//! - interleave-half (mode 3, aclnnRotaryPositionEmbedding only): the even
//!   elements moved to the first half and the odd ones to the second, then
//!   half: `out = cat(x[::2], x[1::2]) * cos + cat(-x[1::2], x[::2]) * sin`.
//!
//! aclnnRotaryPositionEmbedding has no layout parameter: `x` is 4-D (BNSD,
//! BSND or SBND) or 3-D (TND) and `cos`/`sin` broadcast to it dimension by
//! dimension (the documented cos layouts 11SD, B1SD, BNSD, 1S1D, ... are all
//! such broadcasts). In interleave mode CANN documents only cos/sin that
//! vary along one leading axis (11SD, 1S1D, S11D, T1D); that is checked.
//!
//! Error codes follow the documentation: NULL tensors 161001, dtypes 161002,
//! and for aclnnRotaryPositionEmbedding a shape mismatch or a mode outside
//! 0..=3 is ACLNN_ERR_INNER_TILING_ERROR (561002), which CANN's phase one
//! returns for them. The ApplyRotaryPosEmb pair returns 161002 for shapes
//! and layouts, as documented there.
//!
//! Computation is in f32 with one rounding on store; every input is read
//! before anything is written (the Apply operators are in place).

use crate::broadcast::{check_dtype, check_view, expand, fmt_shape};
use crate::tensor::{DType, KernelError, TensorArg};

/// `ACLNN_ERR_INNER_TILING_ERROR`, documented for aclnnRotaryPositionEmbedding's
/// shape and mode checks.
pub const INNER_TILING_ERROR: i32 = 561002;

const FLOATS: [DType; 3] = [DType::BF16, DType::F16, DType::F32];

/// A rotation of the last axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    Half,
    Interleave,
    Quarter,
    InterleaveHalf,
}

impl Rotation {
    /// The rotation of aclnnRotaryPositionEmbedding's `mode`.
    pub fn from_mode(mode: i64) -> Option<Rotation> {
        match mode {
            0 => Some(Rotation::Half),
            1 => Some(Rotation::Interleave),
            2 => Some(Rotation::Quarter),
            3 => Some(Rotation::InterleaveHalf),
            _ => None,
        }
    }

    /// The rotation of aclnnApplyRotaryPosEmbV2's `rotaryMode`.
    pub fn from_name(name: &str) -> Option<Rotation> {
        match name {
            "half" => Some(Rotation::Half),
            "interleave" => Some(Rotation::Interleave),
            "quarter" => Some(Rotation::Quarter),
            _ => None,
        }
    }

    /// What D must be a multiple of.
    fn d_multiple(self) -> i64 {
        if self == Rotation::Quarter { 4 } else { 2 }
    }
}

/// `out[..D] = x * cos + rotate(x) * sin` for one row of `D` values.
pub fn rotate_row(x: &[f32], cos: &[f32], sin: &[f32], rot: Rotation, out: &mut [f32]) {
    let d = x.len();
    match rot {
        Rotation::Half => {
            let h = d / 2;
            for i in 0..d {
                let r = if i < h { -x[i + h] } else { x[i - h] };
                out[i] = x[i] * cos[i] + r * sin[i];
            }
        }
        Rotation::Interleave => {
            for k in 0..d / 2 {
                let (a, b) = (x[2 * k], x[2 * k + 1]);
                out[2 * k] = a * cos[2 * k] - b * sin[2 * k];
                out[2 * k + 1] = b * cos[2 * k + 1] + a * sin[2 * k + 1];
            }
        }
        Rotation::Quarter => {
            let q = d / 4;
            for i in 0..d {
                let r = match i / q {
                    0 => -x[i + q],
                    1 => x[i - q],
                    2 => -x[i + q],
                    _ => x[i - q],
                };
                out[i] = x[i] * cos[i] + r * sin[i];
            }
        }
        Rotation::InterleaveHalf => {
            let h = d / 2;
            for i in 0..d {
                let (p1, p2) = if i < h {
                    (x[2 * i], -x[2 * i + 1])
                } else {
                    (x[2 * (i - h) + 1], x[2 * (i - h)])
                };
                out[i] = p1 * cos[i] + p2 * sin[i];
            }
        }
    }
}

/// `x` rotated with `cos`/`sin` broadcast to its shape, as row-major f32.
///
/// # Safety
/// tensor.rs's module invariant for the three views; `cos` and `sin` must
/// broadcast to `x` (checked by the callers' `check`).
unsafe fn rotated(x: &TensorArg, cos: &TensorArg, sin: &TensorArg, rot: Rotation) -> Vec<f32> {
    // SAFETY: forwarded invariant; the expanded views address only elements
    // of `cos` and `sin` (broadcast.rs's invariant).
    let (xv, cv, sv) = unsafe {
        (
            x.read_f32(),
            expand(cos, &x.shape).read_f32(),
            expand(sin, &x.shape).read_f32(),
        )
    };
    let d = *x.shape.last().unwrap_or(&0) as usize;
    let mut out = vec![0f32; xv.len()];
    if d == 0 {
        return out;
    }
    for (((o, xr), cr), sr) in out
        .chunks_mut(d)
        .zip(xv.chunks(d))
        .zip(cv.chunks(d))
        .zip(sv.chunks(d))
    {
        rotate_row(xr, cr, sr, rot, o);
    }
    out
}

// ------------------------------------------------ aclnnRotaryPositionEmbedding

/// Arguments of `aclnnRotaryPositionEmbeddingGetWorkspaceSize`.
#[derive(Debug, Clone)]
pub struct RotaryPositionEmbeddingArgs {
    pub x: TensorArg,
    pub cos: TensorArg,
    pub sin: TensorArg,
    pub mode: i64,
    pub out: TensorArg,
}

fn tiling(msg: String) -> KernelError {
    KernelError {
        code: INNER_TILING_ERROR,
        message: msg,
    }
}

/// Phase-one validation of aclnnRotaryPositionEmbedding.
pub fn check(a: &RotaryPositionEmbeddingArgs) -> Result<(), KernelError> {
    for (t, name) in [
        (&a.x, "x"),
        (&a.cos, "cos"),
        (&a.sin, "sin"),
        (&a.out, "out"),
    ] {
        check_view(t, name, 4)?;
        check_dtype(t, name, &FLOATS)?;
        if t.dtype != a.x.dtype {
            return Err(KernelError::invalid(format!(
                "{name} dtype {} should be the same as x dtype {}.",
                t.dtype.name(),
                a.x.dtype.name()
            )));
        }
    }
    let rot = Rotation::from_mode(a.mode).ok_or_else(|| {
        tiling(format!(
            "mode should be 0 (half), 1 (interleave), 2 (quarter) or 3 (interleave-half), but got {}.",
            a.mode
        ))
    })?;
    let r = a.x.rank();
    if r != 3 && r != 4 {
        return Err(tiling(format!(
            "x should be 3-D (TND) or 4-D (BNSD, BSND, SBND), but got shape {}.",
            fmt_shape(&a.x.shape)
        )));
    }
    if a.out.shape != a.x.shape {
        return Err(tiling(format!(
            "out shape {} should be the same as x shape {}.",
            fmt_shape(&a.out.shape),
            fmt_shape(&a.x.shape)
        )));
    }
    if a.cos.shape != a.sin.shape {
        return Err(tiling(format!(
            "cos shape {} and sin shape {} should be the same.",
            fmt_shape(&a.cos.shape),
            fmt_shape(&a.sin.shape)
        )));
    }
    if a.cos.rank() != r {
        return Err(tiling(format!(
            "cos shape {} should have as many dims as x shape {}.",
            fmt_shape(&a.cos.shape),
            fmt_shape(&a.x.shape)
        )));
    }
    let d = a.x.shape[r - 1];
    if a.cos.shape[r - 1] != d {
        return Err(tiling(format!(
            "The last dim (D) of cos {} should be the same as that of x {}.",
            fmt_shape(&a.cos.shape),
            fmt_shape(&a.x.shape)
        )));
    }
    if d % rot.d_multiple() != 0 || d >= 896 {
        return Err(tiling(format!(
            "D = {d} should be a multiple of {} and less than 896 in {rot:?} mode.",
            rot.d_multiple()
        )));
    }
    for i in 0..r - 1 {
        if a.cos.shape[i] != 1 && a.cos.shape[i] != a.x.shape[i] {
            return Err(tiling(format!(
                "cos shape {} does not broadcast to x shape {} (dim {i}).",
                fmt_shape(&a.cos.shape),
                fmt_shape(&a.x.shape)
            )));
        }
    }
    if rot == Rotation::Interleave && a.cos.shape[..r - 1].iter().filter(|&&n| n != 1).count() > 1 {
        return Err(tiling(format!(
            "In interleave mode cos and sin vary along one axis only (11SD, 1S1D, S11D or T1D), but got {}.",
            fmt_shape(&a.cos.shape)
        )));
    }
    Ok(())
}

/// Phase-two computation of aclnnRotaryPositionEmbedding.
///
/// # Safety
/// tensor.rs's module invariant for every tensor of `a`.
pub unsafe fn run(a: &RotaryPositionEmbeddingArgs) -> Result<(), KernelError> {
    check(a)?;
    let rot = Rotation::from_mode(a.mode).expect("checked");
    // SAFETY: forwarded invariant; check established the broadcast.
    let y = unsafe { rotated(&a.x, &a.cos, &a.sin, rot) };
    // SAFETY: `out` is writable by the invariant; all inputs were read.
    unsafe { a.out.write_f32(&y) };
    Ok(())
}

// ------------------------------------------------ aclnnApplyRotaryPosEmb(V2)

/// Arguments of `aclnnApplyRotaryPosEmbGetWorkspaceSize` and (with
/// `rotary_mode`) `aclnnApplyRotaryPosEmbV2GetWorkspaceSize`.
#[derive(Debug, Clone)]
pub struct ApplyRotaryPosEmbArgs {
    pub query: TensorArg,
    pub key: TensorArg,
    pub cos: TensorArg,
    pub sin: TensorArg,
    pub layout: i64,
    /// V2's `rotaryMode`; "half" for the first version.
    pub rotary_mode: String,
}

fn apply_rotation(a: &ApplyRotaryPosEmbArgs) -> Result<Rotation, KernelError> {
    Rotation::from_name(&a.rotary_mode).ok_or_else(|| {
        KernelError::invalid(format!(
            "rotaryMode should be \"half\", \"interleave\" or \"quarter\", but got {:?}.",
            a.rotary_mode
        ))
    })
}

/// Phase-one validation of aclnnApplyRotaryPosEmb and its V2.
pub fn check_apply(a: &ApplyRotaryPosEmbArgs) -> Result<(), KernelError> {
    let rot = apply_rotation(a)?;
    let rank = match a.layout {
        1 => 4,
        4 => 3,
        2 | 3 => {
            return Err(KernelError::invalid(format!(
                "layout {} ({}) is documented but not supported: only 1 (BSND) and 4 (TND) are.",
                a.layout,
                if a.layout == 2 { "SBND" } else { "BNSD" }
            )));
        }
        l => {
            return Err(KernelError::invalid(format!(
                "layout should be 1 (BSND), 2 (SBND), 3 (BNSD) or 4 (TND), but got {l}."
            )));
        }
    };
    let lname = if rank == 4 { "BSND" } else { "TND" };
    for (t, name) in [
        (&a.query, "queryRef"),
        (&a.key, "keyRef"),
        (&a.cos, "cos"),
        (&a.sin, "sin"),
    ] {
        check_view(t, name, 4)?;
        check_dtype(t, name, &FLOATS)?;
        if t.dtype != a.query.dtype {
            return Err(KernelError::invalid(format!(
                "{name} dtype {} should be the same as queryRef dtype {}.",
                t.dtype.name(),
                a.query.dtype.name()
            )));
        }
        if t.rank() != rank {
            return Err(KernelError::invalid(format!(
                "{name} should be {rank}-D for layout {} ({lname}), but got shape {}.",
                a.layout,
                fmt_shape(&t.shape)
            )));
        }
        if t.numel() == 0 {
            return Err(KernelError::invalid(format!(
                "{name} is empty (shape {}): empty tensors are not supported.",
                fmt_shape(&t.shape)
            )));
        }
        let d = t.shape[rank - 1];
        if d != 64 && d != 128 {
            return Err(KernelError::invalid(format!(
                "The last dim (D) of {name} should be 64 or 128, but got {d}."
            )));
        }
    }
    if a.cos.shape != a.sin.shape {
        return Err(KernelError::invalid(format!(
            "cos shape {} and sin shape {} should be the same.",
            fmt_shape(&a.cos.shape),
            fmt_shape(&a.sin.shape)
        )));
    }
    // Leading (B, S) or (T) axes equal, the head axis of cos 1, D equal.
    let lead = rank - 2;
    let d = a.query.shape[rank - 1];
    for (t, name) in [(&a.key, "keyRef"), (&a.cos, "cos")] {
        if t.shape[..lead] != a.query.shape[..lead] || t.shape[rank - 1] != d {
            return Err(KernelError::invalid(format!(
                "{name} shape {} does not match queryRef shape {} in layout {lname}: the {} and D axes should be the same.",
                fmt_shape(&t.shape),
                fmt_shape(&a.query.shape),
                if rank == 4 { "B, S" } else { "T" }
            )));
        }
    }
    if a.cos.shape[rank - 2] != 1 {
        return Err(KernelError::invalid(format!(
            "The N axis of cos should be 1, but got shape {}.",
            fmt_shape(&a.cos.shape)
        )));
    }
    if d % rot.d_multiple() != 0 {
        return Err(KernelError::invalid(format!(
            "D = {d} should be a multiple of {} in {rot:?} mode.",
            rot.d_multiple()
        )));
    }
    Ok(())
}

/// Phase-two computation of aclnnApplyRotaryPosEmb and its V2: both
/// tensors are read before either is written.
///
/// # Safety
/// tensor.rs's module invariant for every tensor of `a`.
pub unsafe fn run_apply(a: &ApplyRotaryPosEmbArgs) -> Result<(), KernelError> {
    check_apply(a)?;
    let rot = apply_rotation(a)?;
    // SAFETY: forwarded invariant; check_apply established that cos/sin
    // broadcast to both tensors (equal axes except N, which is 1).
    let (q, k) = unsafe {
        (
            rotated(&a.query, &a.cos, &a.sin, rot),
            rotated(&a.key, &a.cos, &a.sin, rot),
        )
    };
    // SAFETY: both tensors are writable in-place parameters; every input
    // was read above.
    unsafe {
        a.query.write_f32(&q);
        a.key.write_f32(&k);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{Buf, Rng, assert_close};

    /// The formula, written out element by element from the documented
    /// torch expressions (index arithmetic, not the kernel's loops).
    fn reference(x: &[f64], c: &[f64], s: &[f64], mode: i64) -> Vec<f64> {
        let d = x.len();
        let neg = |v: f64| -v;
        match mode {
            0 => {
                // x_rotate = cat(-x2, x1)
                let (x1, x2) = x.split_at(d / 2);
                let rot: Vec<f64> = x2
                    .iter()
                    .map(|&v| neg(v))
                    .chain(x1.iter().copied())
                    .collect();
                (0..d).map(|i| x[i] * c[i] + rot[i] * s[i]).collect()
            }
            1 => {
                // x1 = x[::2], x2 = x[1::2]; rot = cat(-x2, x1) per pair, flattened.
                let mut rot = Vec::new();
                for k in 0..d / 2 {
                    rot.push(-x[2 * k + 1]);
                    rot.push(x[2 * k]);
                }
                (0..d).map(|i| x[i] * c[i] + rot[i] * s[i]).collect()
            }
            2 => {
                let q = d / 4;
                let parts: Vec<&[f64]> = x.chunks(q).collect();
                let rot: Vec<f64> = parts[1]
                    .iter()
                    .map(|&v| -v)
                    .chain(parts[0].iter().copied())
                    .chain(parts[3].iter().map(|&v| -v))
                    .chain(parts[2].iter().copied())
                    .collect();
                (0..d).map(|i| x[i] * c[i] + rot[i] * s[i]).collect()
            }
            _ => {
                let x1: Vec<f64> = x.iter().step_by(2).copied().collect();
                let x2: Vec<f64> = x.iter().skip(1).step_by(2).copied().collect();
                let p1: Vec<f64> = x1.iter().chain(&x2).copied().collect();
                let p2: Vec<f64> = x2.iter().map(|&v| -v).chain(x1.iter().copied()).collect();
                (0..d).map(|i| p1[i] * c[i] + p2[i] * s[i]).collect()
            }
        }
    }

    /// Row-major multi-index of `i` in `shape`.
    fn unravel(mut i: usize, shape: &[i64]) -> Vec<usize> {
        let mut idx = vec![0; shape.len()];
        for d in (0..shape.len()).rev() {
            idx[d] = i % shape[d] as usize;
            i /= shape[d] as usize;
        }
        idx
    }

    /// Expected output for `x` of `xshape` with `cos`/`sin` of `cshape`.
    fn expected(
        x: &[f64],
        xshape: &[i64],
        c: &[f64],
        s: &[f64],
        cshape: &[i64],
        mode: i64,
    ) -> Vec<f64> {
        let d = *xshape.last().unwrap() as usize;
        let rows = x.len() / d;
        let mut out = Vec::new();
        for r in 0..rows {
            let idx = unravel(r * d, xshape);
            // cos row: broadcast index (1-sized dims pinned to 0).
            let mut off = 0usize;
            for (k, &n) in cshape.iter().enumerate() {
                let i = if n == 1 { 0 } else { idx[k] };
                off = off * n as usize + i;
            }
            out.extend(reference(
                &x[r * d..(r + 1) * d],
                &c[off..off + d],
                &s[off..off + d],
                mode,
            ));
        }
        out
    }

    #[test]
    fn every_mode_matches_the_formula_with_broadcast_cos() {
        let mut rng = Rng::new(3);
        // (x shape, cos shape, mode): BNSD with 11SD, B1SD; BSND with BS1D; TND with T1D.
        let cases: &[(&[i64], &[i64], i64)] = &[
            (&[2, 3, 5, 8], &[1, 1, 5, 8], 0),
            (&[2, 3, 5, 8], &[2, 1, 5, 8], 0),
            (&[2, 5, 3, 8], &[2, 5, 1, 8], 0),
            (&[2, 3, 5, 8], &[2, 3, 5, 8], 0),
            (&[2, 3, 5, 8], &[1, 1, 5, 8], 1),
            (&[2, 5, 3, 6], &[1, 5, 1, 6], 1),
            (&[7, 3, 4], &[7, 1, 4], 1),
            (&[2, 3, 5, 8], &[2, 1, 5, 8], 2),
            (&[7, 3, 12], &[7, 1, 12], 2),
            (&[2, 3, 5, 8], &[1, 1, 5, 8], 3),
            (&[7, 2, 6], &[7, 2, 6], 3),
        ];
        for &(xs, cs, mode) in cases {
            for dt in [DType::F32, DType::F16, DType::BF16] {
                let n: i64 = xs.iter().product();
                let nc: i64 = cs.iter().product();
                let x = Buf::random(dt, n as usize, &mut rng);
                let c = Buf::random(dt, nc as usize, &mut rng);
                let s = Buf::random(dt, nc as usize, &mut rng);
                let out = Buf::zeros(dt, n as usize);
                let args = RotaryPositionEmbeddingArgs {
                    x: x.tensor(xs),
                    cos: c.tensor(cs),
                    sin: s.tensor(cs),
                    mode,
                    out: out.tensor(xs),
                };
                // SAFETY: every view covers exactly its buffer.
                unsafe { run(&args) }.unwrap();
                let want = expected(&x.to_f64(), xs, &c.to_f64(), &s.to_f64(), cs, mode);
                assert_close(
                    &out.to_f32(),
                    &want,
                    dt,
                    &format!("{xs:?} {cs:?} mode {mode}"),
                );
            }
        }
    }

    #[test]
    fn strided_x_is_read_through_its_view() {
        let mut rng = Rng::new(4);
        // x is the [1, 4, 2, 6] view of a [1, 2, 4, 6] buffer with axes 1 and 2 swapped.
        let xb = Buf::random(DType::F32, 48, &mut rng);
        let c = Buf::random(DType::F32, 24, &mut rng);
        let s = Buf::random(DType::F32, 24, &mut rng);
        let out = Buf::zeros(DType::F32, 48);
        let xv = xb.view(&[1, 4, 2, 6], &[48, 6, 24, 1], 0);
        let args = RotaryPositionEmbeddingArgs {
            x: xv.clone(),
            cos: c.tensor(&[1, 4, 1, 6]),
            sin: s.tensor(&[1, 4, 1, 6]),
            mode: 0,
            out: out.tensor(&[1, 4, 2, 6]),
        };
        // SAFETY: the views lie inside their buffers.
        unsafe { run(&args) }.unwrap();
        // SAFETY: as above.
        let xg: Vec<f64> = unsafe { xv.read_f32() }
            .into_iter()
            .map(f64::from)
            .collect();
        let want = expected(
            &xg,
            &[1, 4, 2, 6],
            &c.to_f64(),
            &s.to_f64(),
            &[1, 4, 1, 6],
            0,
        );
        assert_close(&out.to_f32(), &want, DType::F32, "strided");
    }

    #[test]
    fn rotary_refusals() {
        let f = Buf::zeros(DType::F32, 4096);
        let h = Buf::zeros(DType::F16, 4096);
        let i = Buf::zeros(DType::I32, 4096);
        let ok = RotaryPositionEmbeddingArgs {
            x: f.tensor(&[2, 3, 4, 8]),
            cos: f.tensor(&[1, 1, 4, 8]),
            sin: f.tensor(&[1, 1, 4, 8]),
            mode: 0,
            out: f.tensor(&[2, 3, 4, 8]),
        };
        check(&ok).unwrap();
        let bad = |m: &dyn Fn(&mut RotaryPositionEmbeddingArgs), code: i32, needle: &str| {
            let mut a = ok.clone();
            m(&mut a);
            let e = check(&a).unwrap_err();
            assert_eq!(e.code, code, "{}", e.message);
            assert!(e.message.contains(needle), "{} lacks {needle}", e.message);
        };
        bad(&|a| a.x = i.tensor(&[2, 3, 4, 8]), 161002, "x dtype");
        bad(&|a| a.cos = h.tensor(&[1, 1, 4, 8]), 161002, "cos dtype");
        bad(&|a| a.mode = 4, 561002, "mode");
        bad(&|a| a.mode = -1, 561002, "mode");
        bad(&|a| a.out = f.tensor(&[2, 3, 8, 4]), 561002, "out shape");
        bad(&|a| a.sin = f.tensor(&[2, 1, 4, 8]), 561002, "sin shape");
        bad(
            &|a| {
                a.cos = f.tensor(&[4, 8]);
                a.sin = f.tensor(&[4, 8]);
            },
            561002,
            "as many dims",
        );
        bad(
            &|a| {
                a.cos = f.tensor(&[1, 1, 4, 6]);
                a.sin = f.tensor(&[1, 1, 4, 6]);
            },
            561002,
            "last dim (D)",
        );
        bad(
            &|a| {
                a.cos = f.tensor(&[1, 2, 4, 8]);
                a.sin = f.tensor(&[1, 2, 4, 8]);
            },
            561002,
            "does not broadcast",
        );
        bad(
            &|a| {
                a.x = f.tensor(&[2, 3, 4, 7]);
                a.out = f.tensor(&[2, 3, 4, 7]);
                a.cos = f.tensor(&[1, 1, 4, 7]);
                a.sin = f.tensor(&[1, 1, 4, 7]);
            },
            561002,
            "multiple of 2",
        );
        bad(
            &|a| {
                a.x = f.tensor(&[1, 1, 1, 896]);
                a.out = f.tensor(&[1, 1, 1, 896]);
                a.cos = f.tensor(&[1, 1, 1, 896]);
                a.sin = f.tensor(&[1, 1, 1, 896]);
            },
            561002,
            "less than 896",
        );
        bad(
            &|a| {
                a.mode = 2;
                a.x = f.tensor(&[2, 3, 4, 6]);
                a.out = f.tensor(&[2, 3, 4, 6]);
                a.cos = f.tensor(&[1, 1, 4, 6]);
                a.sin = f.tensor(&[1, 1, 4, 6]);
            },
            561002,
            "multiple of 4",
        );
        bad(
            &|a| {
                a.mode = 1;
                a.cos = f.tensor(&[2, 1, 4, 8]);
                a.sin = f.tensor(&[2, 1, 4, 8]);
            },
            561002,
            "one axis only",
        );
        bad(&|a| a.x = f.tensor(&[16, 8]), 561002, "3-D (TND) or 4-D");
        bad(
            &|a| a.x = f.tensor(&[1, 1, 2, 3, 4]),
            161002,
            "no more than 4",
        );
        // `run` re-checks.
        let mut a = ok.clone();
        a.mode = 9;
        // SAFETY: check fails before memory is touched.
        assert_eq!(unsafe { run(&a) }.unwrap_err().code, 561002);
    }

    /// (layout, query shape, key shape, cos shape, V2 rotaryMode).
    type ApplyCase = (
        i64,
        &'static [i64],
        &'static [i64],
        &'static [i64],
        Option<&'static str>,
    );

    #[test]
    fn apply_rotates_query_and_key_in_place() {
        let mut rng = Rng::new(5);
        // (layout, q shape, k shape, cos shape, mode name)
        let cases: &[ApplyCase] = &[
            (1, &[2, 3, 4, 64], &[2, 3, 2, 64], &[2, 3, 1, 64], None),
            (4, &[5, 3, 128], &[5, 1, 128], &[5, 1, 128], None),
            (
                1,
                &[1, 2, 2, 64],
                &[1, 2, 1, 64],
                &[1, 2, 1, 64],
                Some("half"),
            ),
            (
                1,
                &[1, 2, 2, 64],
                &[1, 2, 1, 64],
                &[1, 2, 1, 64],
                Some("interleave"),
            ),
            (4, &[3, 2, 128], &[3, 2, 128], &[3, 1, 128], Some("quarter")),
        ];
        for &(layout, qs, ks, cs, mode) in cases {
            for dt in [DType::F32, DType::F16, DType::BF16] {
                let n = |s: &[i64]| s.iter().product::<i64>() as usize;
                let q = Buf::random(dt, n(qs), &mut rng);
                let k = Buf::random(dt, n(ks), &mut rng);
                let c = Buf::random(dt, n(cs), &mut rng);
                let s = Buf::random(dt, n(cs), &mut rng);
                let m = match mode {
                    None | Some("half") => 0,
                    Some("interleave") => 1,
                    _ => 2,
                };
                let want_q = expected(&q.to_f64(), qs, &c.to_f64(), &s.to_f64(), cs, m);
                let want_k = expected(&k.to_f64(), ks, &c.to_f64(), &s.to_f64(), cs, m);
                let args = ApplyRotaryPosEmbArgs {
                    query: q.tensor(qs),
                    key: k.tensor(ks),
                    cos: c.tensor(cs),
                    sin: s.tensor(cs),
                    layout,
                    rotary_mode: mode.unwrap_or("half").to_string(),
                };
                // SAFETY: every view covers exactly its buffer.
                unsafe { run_apply(&args) }.unwrap();
                assert_close(&q.to_f32(), &want_q, dt, &format!("q {qs:?} {mode:?}"));
                assert_close(&k.to_f32(), &want_k, dt, &format!("k {ks:?} {mode:?}"));
            }
        }
    }

    #[test]
    fn apply_refusals() {
        let f = Buf::zeros(DType::F32, 8192);
        let h = Buf::zeros(DType::F16, 8192);
        let ok = ApplyRotaryPosEmbArgs {
            query: f.tensor(&[2, 3, 4, 64]),
            key: f.tensor(&[2, 3, 2, 64]),
            cos: f.tensor(&[2, 3, 1, 64]),
            sin: f.tensor(&[2, 3, 1, 64]),
            layout: 1,
            rotary_mode: "half".into(),
        };
        check_apply(&ok).unwrap();
        let bad = |m: &dyn Fn(&mut ApplyRotaryPosEmbArgs), needle: &str| {
            let mut a = ok.clone();
            m(&mut a);
            let e = check_apply(&a).unwrap_err();
            assert_eq!(e.code, 161002, "{}", e.message);
            assert!(e.message.contains(needle), "{} lacks {needle}", e.message);
        };
        bad(
            &|a| a.layout = 2,
            "2 (SBND) is documented but not supported",
        );
        bad(
            &|a| a.layout = 3,
            "3 (BNSD) is documented but not supported",
        );
        bad(&|a| a.layout = 0, "but got 0");
        bad(&|a| a.layout = 4, "should be 3-D");
        bad(&|a| a.key = h.tensor(&[2, 3, 2, 64]), "keyRef dtype");
        bad(&|a| a.query = f.tensor(&[2, 3, 0, 64]), "empty");
        bad(
            &|a| {
                a.query = f.tensor(&[2, 3, 4, 32]);
            },
            "64 or 128",
        );
        bad(&|a| a.key = f.tensor(&[2, 2, 2, 64]), "keyRef shape");
        bad(&|a| a.cos = f.tensor(&[1, 3, 1, 64]), "cos shape");
        bad(&|a| a.sin = f.tensor(&[2, 3, 2, 64]), "sin shape");
        bad(
            &|a| {
                a.cos = f.tensor(&[2, 3, 2, 64]);
                a.sin = f.tensor(&[2, 3, 2, 64]);
            },
            "N axis of cos should be 1",
        );
        bad(&|a| a.rotary_mode = "full".into(), "rotaryMode");
    }
}
