//! aclnnMatmul: `out = self @ mat2` with torch.matmul's shape rules; and
//! the fixed-rank products on the same engine: aclnnMm (2-D @ 2-D),
//! aclnnBatchMatMul (3-D @ 3-D, a batch of 1 broadcasts) and aclnnMv
//! (2-D @ 1-D), and the outer product aclnnGer.
//!
//! Shapes: each operand has 1 to 6 dims. A 1-D `self` of size K acts as a
//! `(1, K)` matrix and a 1-D `mat2` as `(K, 1)`; the unit dimension is then
//! dropped from the result (both 1-D: a 0-D dot product). The dims before the
//! last two are batch dims and broadcast numpy-style. `out` must have exactly
//! the resulting shape.
//!
//! Dtypes: FLOAT, FLOAT16 and BF16. BF16 does not mix with FLOAT16 or FLOAT
//! (A2/A3 rule); FLOAT16 with FLOAT promotes to FLOAT. `out` is one of the
//! three and may not pair BF16 with FLOAT16 inputs or FLOAT16 with BF16
//! inputs. Computation is in f32 with one rounding on store.
//!
//! `cubeMathType` (0 KEEP_DTYPE, 1 ALLOW_FP32_DOWN_PRECISION, 2 USE_FP16,
//! 3 USE_HF32, 4 USE_FP32_ADD) must be in 0..=4 (0..=3 for BatchMatMul and
//! Mv). As documented for A2/A3, USE_FP16 is refused for BF16 input and
//! USE_HF32 for input that is not FLOAT (Matmul, Mm, Mv; BatchMatMul lets
//! them through unchanged); two 1-D Matmul operands ignore it. Decision:
//! USE_FP16 with a FLOAT input rounds the operands to f16 before the
//! product, as the NPU does; every other mode computes in full f32 (HF32
//! and down-precision modes on the NPU are allowed to be less precise,
//! never more wrong).
//!
//! Strided views (transposes, slices, stride-0 broadcasts) are read in
//! place when they are aligned FLOAT, otherwise converted per batch slab.

use rayon::prelude::*;

use crate::broadcast::{broadcast_shapes, check_dtype, check_view, fmt_shape, may_overlap};
use crate::gemm::{F32Matrix, MatRef, matmul_into, worth_parallel};
use crate::tensor::{DType, KernelError, TensorArg};

/// Arguments of `aclnnMatmulGetWorkspaceSize`.
#[derive(Debug, Clone)]
pub struct MatmulArgs {
    pub self_: TensorArg,
    pub mat2: TensorArg,
    pub out: TensorArg,
    pub cube_math_type: i8,
}

const FLOATS: [DType; 3] = [DType::F32, DType::F16, DType::BF16];

/// The operands as matrices: (batch shape, batch strides, rows, cols, row stride, col stride).
struct Operand {
    batch: Vec<i64>,
    batch_strides: Vec<i64>,
    rows: i64,
    cols: i64,
    rs: i64,
    cs: i64,
}

fn as_lhs(t: &TensorArg) -> Operand {
    let r = t.rank();
    if r == 1 {
        return Operand {
            batch: vec![],
            batch_strides: vec![],
            rows: 1,
            cols: t.shape[0],
            rs: 0,
            cs: t.strides[0],
        };
    }
    Operand {
        batch: t.shape[..r - 2].to_vec(),
        batch_strides: t.strides[..r - 2].to_vec(),
        rows: t.shape[r - 2],
        cols: t.shape[r - 1],
        rs: t.strides[r - 2],
        cs: t.strides[r - 1],
    }
}

fn as_rhs(t: &TensorArg) -> Operand {
    if t.rank() == 1 {
        return Operand {
            batch: vec![],
            batch_strides: vec![],
            rows: t.shape[0],
            cols: 1,
            rs: t.strides[0],
            cs: 0,
        };
    }
    as_lhs(t)
}

/// The output shape torch.matmul gives, or an error naming the mismatch.
pub fn output_shape(self_: &TensorArg, mat2: &TensorArg) -> Result<Vec<i64>, KernelError> {
    let a = as_lhs(self_);
    let b = as_rhs(mat2);
    if a.cols != b.rows {
        return Err(KernelError::invalid(format!(
            "The k-axis of self and mat2 should be the same, but self shape is {} and mat2 shape is {}.",
            fmt_shape(&self_.shape),
            fmt_shape(&mat2.shape)
        )));
    }
    let mut shape = broadcast_shapes(&a.batch, &b.batch).ok_or_else(|| {
        KernelError::invalid(format!(
            "The batch dims of self {} and mat2 {} cannot broadcast.",
            fmt_shape(&self_.shape),
            fmt_shape(&mat2.shape)
        ))
    })?;
    if self_.rank() > 1 {
        shape.push(a.rows);
    }
    if mat2.rank() > 1 {
        shape.push(b.cols);
    }
    Ok(shape)
}

/// What an operator's `cubeMathType` accepts (CANN's A2/A3 rules).
#[derive(Debug, Clone, Copy)]
pub struct CubeRules {
    /// The operator's name, for messages.
    pub op: &'static str,
    /// The largest documented value (4 USE_FP32_ADD for Matmul and Mm, 3
    /// for BatchMatMul and Mv).
    pub max: i8,
    /// Whether USE_FP16 (2) is refused for BF16 input and USE_HF32 (3) for
    /// input that is not FLOAT (Matmul, Mm, Mv; BatchMatMul ignores them).
    pub strict: bool,
}

/// aclnnMatmul's rules.
pub const MATMUL_RULES: CubeRules = CubeRules {
    op: "aclnnMatmul",
    max: 4,
    strict: true,
};

/// The dtype CANN deduces for the product of `a` and `b` (already checked
/// to be compatible): BF16 with BF16, FLOAT when either is FLOAT, else
/// FLOAT16.
pub fn deduced_dtype(a: DType, b: DType) -> DType {
    if a == DType::F32 || b == DType::F32 {
        DType::F32
    } else {
        a
    }
}

/// Checks `cube` against `rules` for inputs of deduced dtype `input`.
pub fn check_cube_math(cube: i8, input: DType, rules: CubeRules) -> Result<(), KernelError> {
    if !(0..=rules.max).contains(&cube) {
        return Err(KernelError::invalid(format!(
            "cubeMathType should be in range [0, {}] for {}, but got {cube}.",
            rules.max, rules.op
        )));
    }
    if rules.strict && cube == 2 && input == DType::BF16 {
        return Err(KernelError::invalid(format!(
            "cubeMathType 2 (USE_FP16) is not supported for {} input of {}.",
            input.name(),
            rules.op
        )));
    }
    if rules.strict && cube == 3 && input != DType::F32 {
        return Err(KernelError::invalid(format!(
            "cubeMathType 3 (USE_HF32) is not supported for {} input of {}: only DT_FLOAT.",
            input.name(),
            rules.op
        )));
    }
    Ok(())
}

/// Phase-one validation of aclnnMatmul.
pub fn check(args: &MatmulArgs) -> Result<(), KernelError> {
    check_with(args, MATMUL_RULES)
}

/// aclnnMatmul's checks with another operator's `cubeMathType` rules.
pub fn check_with(args: &MatmulArgs, rules: CubeRules) -> Result<(), KernelError> {
    for (t, name) in [(&args.self_, "self"), (&args.mat2, "mat2")] {
        check_view(t, name, 6)?;
        if t.rank() == 0 {
            return Err(KernelError::invalid(format!(
                "The dim of {name} should be in range [1, 6], but got 0."
            )));
        }
        check_dtype(t, name, &FLOATS)?;
    }
    check_view(&args.out, "out", 6)?;
    check_dtype(&args.out, "out", &FLOATS)?;
    let (a, b, o) = (args.self_.dtype, args.mat2.dtype, args.out.dtype);
    let bf = |d: DType| d == DType::BF16;
    if bf(a) != bf(b) {
        return Err(KernelError::invalid(format!(
            "self dtype {} and mat2 dtype {} cannot be mixed: DT_BF16 only multiplies DT_BF16.",
            a.name(),
            b.name()
        )));
    }
    if (bf(a) && o == DType::F16) || (!bf(a) && o == DType::BF16) {
        return Err(KernelError::invalid(format!(
            "out dtype {} is not compatible with input dtype {}.",
            o.name(),
            a.name()
        )));
    }
    // Two 1-D operands: cubeMathType "does not take effect" (documented);
    // only its range is checked.
    let both_1d = args.self_.rank() == 1 && args.mat2.rank() == 1;
    let input = deduced_dtype(a, b);
    if both_1d {
        check_cube_math(args.cube_math_type, DType::F32, rules)?;
    } else {
        check_cube_math(args.cube_math_type, input, rules)?;
    }
    let want = output_shape(&args.self_, &args.mat2)?;
    if args.out.shape != want {
        return Err(KernelError::invalid(format!(
            "out shape should be {}, but got {}.",
            fmt_shape(&want),
            fmt_shape(&args.out.shape)
        )));
    }
    Ok(())
}

/// Every per-batch slab of an operand, in its own batch order.
///
/// # Safety
/// tensor.rs's invariant for `t`; `op` describes `t`.
unsafe fn slabs(t: &TensorArg, op: &Operand, round_to_f16: bool) -> Vec<F32Matrix> {
    let count: i64 = op.batch.iter().product();
    let mut idx = vec![0i64; op.batch.len()];
    let mut out = Vec::with_capacity(count.max(0) as usize);
    for _ in 0..count {
        let off: i64 = idx.iter().zip(&op.batch_strides).map(|(i, s)| i * s).sum();
        let view = TensorArg {
            ptr: t.ptr,
            dtype: t.dtype,
            shape: vec![op.rows, op.cols],
            strides: vec![op.rs, op.cs],
            offset: t.offset + off,
        };
        // SAFETY: `view` addresses a subset of `t`'s elements.
        out.push(unsafe { F32Matrix::from_view(&view, round_to_f16) });
        for d in (0..idx.len()).rev() {
            idx[d] += 1;
            if idx[d] < op.batch[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}

/// For each output batch (row-major over `out_batch`), the operand's own
/// linear batch index under broadcasting.
fn broadcast_index(out_batch: &[i64], own: &[i64]) -> Vec<usize> {
    let total: i64 = out_batch.iter().product();
    let lead = out_batch.len() - own.len();
    let own_strides = crate::tensor::contiguous_strides(own);
    let mut idx = vec![0i64; out_batch.len()];
    let mut res = Vec::with_capacity(total.max(0) as usize);
    for _ in 0..total {
        let mut lin = 0i64;
        for d in 0..own.len() {
            if own[d] != 1 {
                lin += idx[lead + d] * own_strides[d];
            }
        }
        res.push(lin as usize);
        for d in (0..idx.len()).rev() {
            idx[d] += 1;
            if idx[d] < out_batch[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    res
}

/// A pointer that may cross to the pool's threads: each batch writes only
/// its own disjoint block.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);

impl SendPtr {
    /// The pointer (a method, so closures capture the whole wrapper).
    fn get(self) -> *mut f32 {
        self.0
    }
}
// SAFETY: the blocks written through it are disjoint per task (see run).
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

/// Phase-two computation of aclnnMatmul.
///
/// # Safety
/// tensor.rs's module invariant for every tensor of `args`.
pub unsafe fn run(args: &MatmulArgs) -> Result<(), KernelError> {
    check(args)?;
    // SAFETY: forwarded.
    unsafe { compute(args) }
}

/// The product itself, once an operator's checks passed.
///
/// # Safety
/// tensor.rs's module invariant for every tensor of `args`.
unsafe fn compute(args: &MatmulArgs) -> Result<(), KernelError> {
    let a = as_lhs(&args.self_);
    let b = as_rhs(&args.mat2);
    let out_batch = broadcast_shapes(&a.batch, &b.batch).unwrap_or_default();
    let (m, k, n) = (a.rows as usize, a.cols as usize, b.cols as usize);
    let nbatch: usize = out_batch.iter().product::<i64>() as usize;
    let round = args.cube_math_type == 2 && !(args.self_.rank() == 1 && args.mat2.rank() == 1);
    // SAFETY: each operand's slabs address only its own elements.
    let a_slabs = unsafe { slabs(&args.self_, &a, round && args.self_.dtype == DType::F32) };
    // SAFETY: as above.
    let b_slabs = unsafe { slabs(&args.mat2, &b, round && args.mat2.dtype == DType::F32) };
    let a_idx = broadcast_index(&out_batch, &a.batch);
    let b_idx = broadcast_index(&out_batch, &b.batch);

    let out = &args.out;
    let out_base = out
        .ptr
        .wrapping_offset((out.offset as isize).wrapping_mul(4)) as *mut f32;
    let direct = out.dtype == DType::F32
        && out.is_contiguous()
        && (out_base as usize) % 4 == 0
        && !may_overlap(out, &args.self_)
        && !may_overlap(out, &args.mat2);
    let mut staging = if direct {
        Vec::new()
    } else {
        vec![0f32; nbatch * m * n]
    };
    let base = SendPtr(if direct {
        out_base
    } else {
        staging.as_mut_ptr()
    });
    let block = |bi: usize, parallel: bool| {
        let ar: MatRef = a_slabs[a_idx[bi]].as_ref();
        let br: MatRef = b_slabs[b_idx[bi]].as_ref();
        // SAFETY: block `bi` of the dense destination (contiguous f32 `out`
        // or `staging`) is written by this task only; the slabs are readable
        // and, on the direct path, disjoint from `out`.
        unsafe { matmul_into(base.get().add(bi * m * n), n as isize, 1, ar, br, parallel) };
    };
    if nbatch <= 1 || worth_parallel(m, n, k) {
        for bi in 0..nbatch {
            block(bi, worth_parallel(m, n, k));
        }
    } else {
        (0..nbatch).into_par_iter().for_each(|bi| block(bi, false));
    }
    if !direct {
        // SAFETY: `out` is writable by the invariant; every input was read
        // into `staging` above (the slabs may borrow inputs, but they were
        // only read during the products that have finished).
        unsafe { out.write_f32(&staging) };
    }
    Ok(())
}

// ------------------------------------------------ aclnnMm, aclnnBatchMatMul, aclnnMv

fn rank_is(t: &TensorArg, name: &str, rank: usize, op: &str) -> Result<(), KernelError> {
    if t.rank() == rank {
        return Ok(());
    }
    Err(KernelError::invalid(format!(
        "The dim of {name} should be {rank} for {op}, but got {} (shape {}).",
        t.rank(),
        fmt_shape(&t.shape)
    )))
}

/// aclnnMm's rules.
pub const MM_RULES: CubeRules = CubeRules {
    op: "aclnnMm",
    max: 4,
    strict: true,
};

/// aclnnBatchMatMul's rules: values 0-3, FLOAT16/BFLOAT16 input
/// unaffected by any of them.
pub const BMM_RULES: CubeRules = CubeRules {
    op: "aclnnBatchMatMul",
    max: 3,
    strict: false,
};

/// aclnnMv's rules.
pub const MV_RULES: CubeRules = CubeRules {
    op: "aclnnMv",
    max: 3,
    strict: true,
};

/// Phase-one validation of aclnnMm: `self` `[M, K]` @ `mat2` `[K, N]`.
pub fn check_mm(args: &MatmulArgs) -> Result<(), KernelError> {
    check_view(&args.self_, "self", 6)?;
    check_view(&args.mat2, "mat2", 6)?;
    rank_is(&args.self_, "self", 2, "aclnnMm")?;
    rank_is(&args.mat2, "mat2", 2, "aclnnMm")?;
    check_with(args, MM_RULES)
}

/// Phase-two computation of aclnnMm.
///
/// # Safety
/// tensor.rs's module invariant for every tensor of `args`.
pub unsafe fn run_mm(args: &MatmulArgs) -> Result<(), KernelError> {
    check_mm(args)?;
    // SAFETY: forwarded.
    unsafe { compute(args) }
}

/// Phase-one validation of aclnnBatchMatMul: `self` `[B1, M, K]` @ `mat2`
/// `[B2, K, N]` with B1 == B2 or either 1 (broadcast).
pub fn check_bmm(args: &MatmulArgs) -> Result<(), KernelError> {
    check_view(&args.self_, "self", 6)?;
    check_view(&args.mat2, "mat2", 6)?;
    rank_is(&args.self_, "self", 3, "aclnnBatchMatMul")?;
    rank_is(&args.mat2, "mat2", 3, "aclnnBatchMatMul")?;
    check_with(args, BMM_RULES)
}

/// Phase-two computation of aclnnBatchMatMul.
///
/// # Safety
/// tensor.rs's module invariant for every tensor of `args`.
pub unsafe fn run_bmm(args: &MatmulArgs) -> Result<(), KernelError> {
    check_bmm(args)?;
    // SAFETY: forwarded.
    unsafe { compute(args) }
}

/// Phase-one validation of aclnnMv: `self` `[N, M]` @ `vec` `[M]` (in
/// `mat2`) into `out` `[N]`, all three of one dtype.
pub fn check_mv(args: &MatmulArgs) -> Result<(), KernelError> {
    check_view(&args.self_, "self", 6)?;
    check_view(&args.mat2, "vec", 6)?;
    check_view(&args.out, "out", 6)?;
    rank_is(&args.self_, "self", 2, "aclnnMv")?;
    rank_is(&args.mat2, "vec", 1, "aclnnMv")?;
    rank_is(&args.out, "out", 1, "aclnnMv")?;
    check_dtype(&args.self_, "self", &FLOATS)?;
    if args.mat2.dtype != args.self_.dtype || args.out.dtype != args.self_.dtype {
        return Err(KernelError::invalid(format!(
            "self, vec and out should have one dtype, but got {}, {} and {}.",
            args.self_.dtype.name(),
            args.mat2.dtype.name(),
            args.out.dtype.name()
        )));
    }
    check_with(args, MV_RULES)
}

/// Phase-two computation of aclnnMv.
///
/// # Safety
/// tensor.rs's module invariant for every tensor of `args`.
pub unsafe fn run_mv(args: &MatmulArgs) -> Result<(), KernelError> {
    check_mv(args)?;
    // SAFETY: forwarded.
    unsafe { compute(args) }
}

// ------------------------------------------------ aclnnGer

/// Arguments of `aclnnGerGetWorkspaceSize`: `out[i, j] = self[i] * vec2[j]`.
#[derive(Debug, Clone)]
pub struct GerArgs {
    pub self_: TensorArg,
    pub vec2: TensorArg,
    pub out: TensorArg,
}

/// aclnnGer's dtypes (COMPLEX64/128 are documented too; the mock has no
/// complex type, so they cannot reach it).
const GER_DTYPES: [DType; 10] = [
    DType::F32,
    DType::F16,
    DType::F64,
    DType::BF16,
    DType::I8,
    DType::I16,
    DType::I32,
    DType::I64,
    DType::U8,
    DType::Bool,
];

/// Phase-one validation of aclnnGer.
pub fn check_ger(a: &GerArgs) -> Result<(), KernelError> {
    for (t, name) in [(&a.self_, "self"), (&a.vec2, "vec2"), (&a.out, "out")] {
        check_view(t, name, 8)?;
        check_dtype(t, name, &GER_DTYPES)?;
    }
    rank_is(&a.self_, "self", 1, "aclnnGer")?;
    rank_is(&a.vec2, "vec2", 1, "aclnnGer")?;
    rank_is(&a.out, "out", 2, "aclnnGer")?;
    let promoted = crate::elementwise::promote(a.self_.dtype, a.vec2.dtype);
    if !crate::elementwise::can_cast(promoted, a.out.dtype) {
        return Err(KernelError::invalid(format!(
            "The deduced dtype {} of self and vec2 cannot be cast to out dtype {}.",
            promoted.name(),
            a.out.dtype.name()
        )));
    }
    let want = [a.self_.shape[0], a.vec2.shape[0]];
    if a.out.shape != want {
        return Err(KernelError::invalid(format!(
            "out shape should be {}, but got {}.",
            fmt_shape(&want),
            fmt_shape(&a.out.shape)
        )));
    }
    Ok(())
}

/// Phase-two computation of aclnnGer: the product is taken in the deduced
/// dtype (f64 for floats, rounded to it once; wrapping i64 for integers,
/// then cast; logical and for two bools) and cast to `out` on store.
///
/// # Safety
/// tensor.rs's module invariant for every tensor of `a`.
pub unsafe fn run_ger(a: &GerArgs) -> Result<(), KernelError> {
    check_ger(a)?;
    let promoted = crate::elementwise::promote(a.self_.dtype, a.vec2.dtype);
    let (m, n) = (a.self_.shape[0] as usize, a.vec2.shape[0] as usize);
    if promoted.is_float() {
        // SAFETY: forwarded invariant.
        let (x, y) = unsafe {
            (
                crate::broadcast::read_f64(&a.self_),
                crate::broadcast::read_f64(&a.vec2),
            )
        };
        let round = |v: f64| -> f64 {
            match promoted {
                DType::F16 => f64::from(half::f16::from_f64(v).to_f32()),
                DType::BF16 => f64::from(half::bf16::from_f64(v).to_f32()),
                DType::F32 => f64::from(v as f32),
                _ => v,
            }
        };
        let mut out = Vec::with_capacity(m * n);
        for &xi in &x {
            out.extend(y.iter().map(|&yj| round(xi * yj)));
        }
        // SAFETY: `out` is writable; the inputs were read above.
        unsafe { crate::broadcast::write_f64(&a.out, &out) };
    } else {
        // SAFETY: forwarded invariant.
        let (x, y) = unsafe { (a.self_.read_i64(), a.vec2.read_i64()) };
        let wrap = |v: i64| -> i64 {
            match promoted {
                DType::I8 => i64::from(v as i8),
                DType::U8 => i64::from(v as u8),
                DType::I16 => i64::from(v as i16),
                DType::I32 => i64::from(v as i32),
                DType::Bool => i64::from(v != 0),
                _ => v,
            }
        };
        let mut out = Vec::with_capacity(m * n);
        for &xi in &x {
            out.extend(y.iter().map(|&yj| wrap(xi.wrapping_mul(yj))));
        }
        // SAFETY: `out` is writable; the inputs were read above.
        unsafe { a.out.write_i64(&out) };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{Buf, Rng, assert_close, round};

    /// Straightforward reference: index every element of both operands
    /// through their (expanded) shapes, accumulate in f64.
    fn reference(
        a: &[f32],
        ashape: &[i64],
        b: &[f32],
        bshape: &[i64],
        round_f16: bool,
    ) -> (Vec<i64>, Vec<f64>) {
        let a2: Vec<i64> = if ashape.len() == 1 {
            vec![1, ashape[0]]
        } else {
            ashape.to_vec()
        };
        let b2: Vec<i64> = if bshape.len() == 1 {
            vec![bshape[0], 1]
        } else {
            bshape.to_vec()
        };
        let (m, k) = (a2[a2.len() - 2], a2[a2.len() - 1]);
        let n = b2[b2.len() - 1];
        let ab = &a2[..a2.len() - 2];
        let bb = &b2[..b2.len() - 2];
        let batch = broadcast_shapes(ab, bb).unwrap();
        let total: i64 = batch.iter().product();
        let r = |v: f32| if round_f16 { round(DType::F16, v) } else { v };
        let mut res = Vec::new();
        for t in 0..total {
            // Decompose t into a batch multi-index.
            let mut rem = t;
            let mut bi = vec![0i64; batch.len()];
            for d in (0..batch.len()).rev() {
                bi[d] = rem % batch[d];
                rem /= batch[d];
            }
            let lin = |own: &[i64]| -> i64 {
                let lead = batch.len() - own.len();
                let mut l = 0;
                for d in 0..own.len() {
                    let i = if own[d] == 1 { 0 } else { bi[lead + d] };
                    l = l * own[d] + i;
                }
                l
            };
            let (la, lb) = (lin(ab), lin(bb));
            for i in 0..m {
                for j in 0..n {
                    let mut s = 0f64;
                    for p in 0..k {
                        let av = a[(la * m * k + i * k + p) as usize];
                        let bv = b[(lb * k * n + p * n + j) as usize];
                        s += f64::from(r(av)) * f64::from(r(bv));
                    }
                    res.push(s);
                }
            }
        }
        let mut shape = batch.clone();
        if ashape.len() > 1 {
            shape.push(m);
        }
        if bshape.len() > 1 {
            shape.push(n);
        }
        (shape, res)
    }

    fn run_case(ashape: &[i64], bshape: &[i64], dt: DType, seed: u64) {
        let mut rng = Rng::new(seed);
        let na: i64 = ashape.iter().product();
        let nb: i64 = bshape.iter().product();
        let a = Buf::random(dt, na as usize, &mut rng);
        let b = Buf::random(dt, nb as usize, &mut rng);
        let (oshape, want) = reference(&a.to_f32(), ashape, &b.to_f32(), bshape, false);
        let out = Buf::zeros(dt, want.len());
        let args = MatmulArgs {
            self_: a.tensor(ashape),
            mat2: b.tensor(bshape),
            out: out.tensor(&oshape),
            cube_math_type: 0,
        };
        // SAFETY: every view covers exactly its buffer.
        unsafe { run(&args) }.unwrap();
        assert_close(
            &out.to_f32(),
            &want,
            dt,
            &format!("{ashape:?}@{bshape:?} {dt:?}"),
        );
    }

    #[test]
    fn shapes_and_dtypes_match_reference() {
        let cases: &[(&[i64], &[i64])] = &[
            (&[3, 4], &[4, 5]),
            (&[7], &[7]),
            (&[7], &[7, 3]),
            (&[2, 3, 7], &[7]),
            (&[2, 1, 3, 4], &[5, 4, 6]),
            (&[2, 1, 2, 1, 3, 4], &[4, 2]),
            (&[70, 96], &[96, 80]),
            (&[4, 33, 40], &[4, 40, 9]),
            (&[0, 4], &[4, 3]),
            (&[3, 0], &[0, 2]),
        ];
        for (i, (a, b)) in cases.iter().enumerate() {
            for dt in FLOATS {
                run_case(a, b, dt, 100 + i as u64);
            }
        }
    }

    #[test]
    fn transposed_and_sliced_views() {
        // self = A^T where A is (5, 3) stored row-major; mat2 = columns 1..5
        // of a (5, 6) buffer, starting at row 1 (a 4x4 slice).
        let mut rng = Rng::new(9);
        for dt in FLOATS {
            let abuf = Buf::random(dt, 15, &mut rng);
            let bbuf = Buf::random(dt, 30, &mut rng);
            let av = abuf.view(&[3, 5], &[1, 3], 0);
            let bv = bbuf.view(&[5, 4], &[6, 1], 1);
            // SAFETY: views inside their buffers.
            let (ad, bd) = unsafe { (av.read_f32(), bv.read_f32()) };
            let (_, want) = reference(&ad, &[3, 5], &bd, &[5, 4], false);
            // Output as a transposed view too: (3, 4) stored as (4, 3).
            let out = Buf::zeros(dt, 12);
            let ov = out.view(&[3, 4], &[1, 3], 0);
            let args = MatmulArgs {
                self_: av,
                mat2: bv,
                out: ov.clone(),
                cube_math_type: 1,
            };
            // SAFETY: views inside their buffers.
            unsafe { run(&args) }.unwrap();
            // SAFETY: as above.
            let got = unsafe { ov.read_f32() };
            assert_close(&got, &want, dt, "strided");
        }
    }

    #[test]
    fn broadcast_batch_with_stride_zero_and_fp16_mode() {
        let mut rng = Rng::new(11);
        let abuf = Buf::random(DType::F32, 3 * 8, &mut rng);
        // self is one (3, 8) matrix broadcast to 4 batches with stride 0.
        let av = abuf.view(&[4, 3, 8], &[0, 8, 1], 0);
        let bbuf = Buf::random(DType::F32, 4 * 8 * 2, &mut rng);
        let bv = bbuf.tensor(&[4, 8, 2]);
        let mut afull = Vec::new();
        for _ in 0..4 {
            afull.extend(abuf.to_f32());
        }
        let (_, want) = reference(&afull, &[4, 3, 8], &bbuf.to_f32(), &[4, 8, 2], true);
        let out = Buf::zeros(DType::F32, 24);
        let args = MatmulArgs {
            self_: av,
            mat2: bv,
            out: out.tensor(&[4, 3, 2]),
            cube_math_type: 2,
        };
        // SAFETY: views inside their buffers.
        unsafe { run(&args) }.unwrap();
        assert_close(&out.to_f32(), &want, DType::F32, "fp16 mode");
    }

    #[test]
    fn mixed_f16_f32_promotes() {
        let mut rng = Rng::new(12);
        let a = Buf::random(DType::F16, 6, &mut rng);
        let b = Buf::random(DType::F32, 6, &mut rng);
        let (_, want) = reference(&a.to_f32(), &[2, 3], &b.to_f32(), &[3, 2], false);
        let out = Buf::zeros(DType::F32, 4);
        let args = MatmulArgs {
            self_: a.tensor(&[2, 3]),
            mat2: b.tensor(&[3, 2]),
            out: out.tensor(&[2, 2]),
            cube_math_type: 0,
        };
        // SAFETY: views inside their buffers.
        unsafe { run(&args) }.unwrap();
        assert_close(&out.to_f32(), &want, DType::F32, "mixed");
    }

    #[test]
    fn invalid_inputs_are_refused() {
        let a = Buf::zeros(DType::F32, 64);
        let h = Buf::zeros(DType::F16, 64);
        let bf = Buf::zeros(DType::BF16, 64);
        let i = Buf::zeros(DType::I32, 64);
        let ok = MatmulArgs {
            self_: a.tensor(&[2, 3]),
            mat2: a.tensor(&[3, 4]),
            out: a.tensor(&[2, 4]),
            cube_math_type: 0,
        };
        check(&ok).unwrap();
        let bad = |f: &dyn Fn(&mut MatmulArgs), needle: &str| {
            let mut x = ok.clone();
            f(&mut x);
            let e = check(&x).unwrap_err();
            assert_eq!(e.code, 161002, "{}", e.message);
            assert!(e.message.contains(needle), "{} lacks {needle}", e.message);
        };
        bad(&|x| x.mat2 = a.tensor(&[4, 4]), "k-axis");
        bad(&|x| x.out = a.tensor(&[4, 2]), "out shape");
        bad(&|x| x.self_ = i.tensor(&[2, 3]), "self dtype");
        bad(&|x| x.mat2 = bf.tensor(&[3, 4]), "cannot be mixed");
        bad(&|x| x.out = bf.tensor(&[2, 4]), "not compatible");
        bad(
            &|x| {
                x.self_ = bf.tensor(&[2, 3]);
                x.mat2 = bf.tensor(&[3, 4]);
                x.out = h.tensor(&[2, 4]);
            },
            "not compatible",
        );
        bad(&|x| x.cube_math_type = 5, "cubeMathType");
        bad(&|x| x.cube_math_type = -1, "cubeMathType");
        bad(&|x| x.self_ = a.tensor(&[]), "dim of self");
        bad(
            &|x| x.self_ = a.tensor(&[1, 1, 1, 1, 1, 2, 3]),
            "no more than 6",
        );
        bad(
            &|x| {
                x.self_ = a.tensor(&[2, 2, 3]);
                x.mat2 = a.tensor(&[3, 3, 4]);
            },
            "cannot broadcast",
        );
        bad(&|x| x.self_ = a.view(&[2, 3], &[3], 0), "strides");
        // `run` re-checks rather than trusting its caller.
        let mut x = ok.clone();
        x.cube_math_type = 9;
        // SAFETY: check fails before any memory is touched.
        assert_eq!(unsafe { run(&x) }.unwrap_err().code, 161002);
    }

    /// Plain triple loop over logical matrices given as closures.
    fn naive(
        m: usize,
        k: usize,
        n: usize,
        a: &dyn Fn(usize, usize) -> f64,
        b: &dyn Fn(usize, usize) -> f64,
    ) -> Vec<f64> {
        let mut out = Vec::with_capacity(m * n);
        for i in 0..m {
            for j in 0..n {
                out.push((0..k).map(|p| a(i, p) * b(p, j)).sum());
            }
        }
        out
    }

    #[test]
    fn mm_odd_sizes_and_transposed_views() {
        let mut rng = Rng::new(21);
        let (m, k, n) = (37usize, 53usize, 29usize);
        for dt in [DType::F32, DType::F16, DType::BF16] {
            let a = Buf::random(dt, m * k, &mut rng);
            let b = Buf::random(dt, k * n, &mut rng);
            let (av, bv) = (a.to_f64(), b.to_f64());
            // self plain [m, k]; mat2 the transposed view of an [n, k] buffer.
            let want = naive(m, k, n, &|i, p| av[i * k + p], &|p, j| bv[j * k + p]);
            let out = Buf::zeros(dt, m * n);
            let args = MatmulArgs {
                self_: a.tensor(&[m as i64, k as i64]),
                mat2: b.view(&[k as i64, n as i64], &[1, k as i64], 0),
                out: out.tensor(&[m as i64, n as i64]),
                cube_math_type: 0,
            };
            // SAFETY: the views lie inside their buffers.
            unsafe { run_mm(&args) }.unwrap();
            assert_close(&out.to_f32(), &want, dt, &format!("mm {dt:?}"));
        }
    }

    #[test]
    fn batch_matmul_broadcasts_a_batch_of_one() {
        let mut rng = Rng::new(22);
        let (m, k, n) = (5usize, 7usize, 3usize);
        for (ba, bb) in [(3usize, 3usize), (3, 1), (1, 4)] {
            let a = Buf::random(DType::F32, ba * m * k, &mut rng);
            let b = Buf::random(DType::F32, bb * k * n, &mut rng);
            let (av, bv) = (a.to_f64(), b.to_f64());
            let nb = ba.max(bb);
            let mut want = Vec::new();
            for t in 0..nb {
                let (ta, tb) = (if ba == 1 { 0 } else { t }, if bb == 1 { 0 } else { t });
                want.extend(naive(m, k, n, &|i, p| av[(ta * m + i) * k + p], &|p, j| {
                    bv[(tb * k + p) * n + j]
                }));
            }
            let out = Buf::zeros(DType::F32, nb * m * n);
            let args = MatmulArgs {
                self_: a.tensor(&[ba as i64, m as i64, k as i64]),
                mat2: b.tensor(&[bb as i64, k as i64, n as i64]),
                out: out.tensor(&[nb as i64, m as i64, n as i64]),
                cube_math_type: 3,
            };
            // SAFETY: every view covers exactly its buffer.
            unsafe { run_bmm(&args) }.unwrap();
            assert_close(&out.to_f32(), &want, DType::F32, &format!("bmm {ba}x{bb}"));
        }
    }

    #[test]
    fn mv_with_a_strided_vector() {
        let mut rng = Rng::new(23);
        let (rows, cols) = (11usize, 9usize);
        for dt in [DType::F32, DType::F16, DType::BF16] {
            let a = Buf::random(dt, rows * cols, &mut rng);
            let v = Buf::random(dt, 2 * cols, &mut rng);
            let (av, vv) = (a.to_f64(), v.to_f64());
            // vec: every other element of its buffer.
            let want = naive(rows, cols, 1, &|i, p| av[i * cols + p], &|p, _| vv[2 * p]);
            let out = Buf::zeros(dt, rows);
            let args = MatmulArgs {
                self_: a.tensor(&[rows as i64, cols as i64]),
                mat2: v.view(&[cols as i64], &[2], 0),
                out: out.tensor(&[rows as i64]),
                cube_math_type: 1,
            };
            // SAFETY: the views lie inside their buffers.
            unsafe { run_mv(&args) }.unwrap();
            assert_close(&out.to_f32(), &want, dt, &format!("mv {dt:?}"));
        }
    }

    #[test]
    fn ger_floats_integers_and_bools() {
        // FLOAT x FLOAT16 -> FLOAT, self a strided view.
        let x = Buf::from_f32(DType::F32, &[1.5, 9.0, -2.0, 9.0, 0.25]);
        let y = Buf::from_f32(DType::F16, &[3.0, -1.0, 0.5, 4.0]);
        let out = Buf::zeros(DType::F32, 12);
        let args = GerArgs {
            self_: x.view(&[3], &[2], 0),
            vec2: y.tensor(&[4]),
            out: out.tensor(&[3, 4]),
        };
        // SAFETY: the views lie inside their buffers.
        unsafe { run_ger(&args) }.unwrap();
        let xs = [1.5f64, -2.0, 0.25];
        let ys = [3.0f64, -1.0, 0.5, 4.0];
        let want: Vec<f64> = xs
            .iter()
            .flat_map(|a| ys.iter().map(move |b| a * b))
            .collect();
        assert_close(&out.to_f32(), &want, DType::F32, "ger f32");
        // INT32 x INT8 -> INT64 out (the deduced INT32 product cast up).
        let xi = Buf::from_i64(DType::I32, &[70000, -3]);
        let yi = Buf::from_i64(DType::I8, &[100, -7]);
        let oi = Buf::zeros(DType::I64, 4);
        let args = GerArgs {
            self_: xi.tensor(&[2]),
            vec2: yi.tensor(&[2]),
            out: oi.tensor(&[2, 2]),
        };
        // SAFETY: every view covers exactly its buffer.
        unsafe { run_ger(&args) }.unwrap();
        assert_eq!(oi.to_i64(), vec![7_000_000, -490_000, -300, 21]);
        // BOOL x BOOL -> BOOL: logical and.
        let xb = Buf::from_i64(DType::Bool, &[1, 0, 1]);
        let yb = Buf::from_i64(DType::Bool, &[1, 1]);
        let ob = Buf::zeros(DType::Bool, 6);
        let args = GerArgs {
            self_: xb.tensor(&[3]),
            vec2: yb.tensor(&[2]),
            out: ob.tensor(&[3, 2]),
        };
        // SAFETY: every view covers exactly its buffer.
        unsafe { run_ger(&args) }.unwrap();
        assert_eq!(ob.to_i64(), vec![1, 1, 0, 0, 1, 1]);
    }

    #[test]
    fn fixed_rank_products_refusals() {
        let f = Buf::zeros(DType::F32, 256);
        let h = Buf::zeros(DType::F16, 256);
        let bf = Buf::zeros(DType::BF16, 256);
        let i = Buf::zeros(DType::I32, 256);
        let mm = MatmulArgs {
            self_: f.tensor(&[2, 3]),
            mat2: f.tensor(&[3, 4]),
            out: f.tensor(&[2, 4]),
            cube_math_type: 0,
        };
        check_mm(&mm).unwrap();
        let bad = |chk: fn(&MatmulArgs) -> Result<(), KernelError>,
                   base: &MatmulArgs,
                   m: &dyn Fn(&mut MatmulArgs),
                   needle: &str| {
            let mut a = base.clone();
            m(&mut a);
            let e = chk(&a).expect_err(needle);
            assert_eq!(e.code, 161002, "{}", e.message);
            assert!(e.message.contains(needle), "{} lacks {needle}", e.message);
        };
        bad(
            check_mm,
            &mm,
            &|a| a.self_ = f.tensor(&[1, 2, 3]),
            "dim of self should be 2 for aclnnMm",
        );
        bad(
            check_mm,
            &mm,
            &|a| a.mat2 = f.tensor(&[3]),
            "dim of mat2 should be 2",
        );
        bad(
            check_mm,
            &mm,
            &|a| a.cube_math_type = 5,
            "range [0, 4] for aclnnMm",
        );
        bad(
            check_mm,
            &mm,
            &|a| {
                a.self_ = h.tensor(&[2, 3]);
                a.mat2 = h.tensor(&[3, 4]);
                a.cube_math_type = 3;
            },
            "cubeMathType 3 (USE_HF32) is not supported for DT_FLOAT16",
        );
        bad(
            check_mm,
            &mm,
            &|a| {
                a.self_ = bf.tensor(&[2, 3]);
                a.mat2 = bf.tensor(&[3, 4]);
                a.out = bf.tensor(&[2, 4]);
                a.cube_math_type = 2;
            },
            "cubeMathType 2 (USE_FP16) is not supported for DT_BF16",
        );
        bad(check_mm, &mm, &|a| a.mat2 = f.tensor(&[4, 4]), "k-axis");
        // aclnnMatmul follows the same A2/A3 rules, except for two 1-D operands.
        let mut mt = mm.clone();
        mt.self_ = h.tensor(&[2, 3]);
        mt.mat2 = h.tensor(&[3, 4]);
        mt.cube_math_type = 3;
        assert!(check(&mt).unwrap_err().message.contains("USE_HF32"));
        mt.self_ = h.tensor(&[3]);
        mt.mat2 = h.tensor(&[3]);
        mt.out = f.tensor(&[]);
        check(&mt).unwrap();

        let bmm = MatmulArgs {
            self_: f.tensor(&[2, 2, 3]),
            mat2: f.tensor(&[2, 3, 4]),
            out: f.tensor(&[2, 2, 4]),
            cube_math_type: 0,
        };
        check_bmm(&bmm).unwrap();
        bad(
            check_bmm,
            &bmm,
            &|a| a.self_ = f.tensor(&[2, 3]),
            "dim of self should be 3 for aclnnBatchMatMul",
        );
        bad(
            check_bmm,
            &bmm,
            &|a| a.cube_math_type = 4,
            "range [0, 3] for aclnnBatchMatMul",
        );
        bad(
            check_bmm,
            &bmm,
            &|a| {
                a.self_ = f.tensor(&[2, 2, 3]);
                a.mat2 = f.tensor(&[3, 3, 4]);
                a.out = f.tensor(&[3, 2, 4]);
            },
            "cannot broadcast",
        );
        // BatchMatMul lets USE_HF32 through for FLOAT16 input.
        let mut b16 = bmm.clone();
        b16.self_ = h.tensor(&[2, 2, 3]);
        b16.mat2 = h.tensor(&[2, 3, 4]);
        b16.cube_math_type = 3;
        check_bmm(&b16).unwrap();

        let mv = MatmulArgs {
            self_: f.tensor(&[4, 3]),
            mat2: f.tensor(&[3]),
            out: f.tensor(&[4]),
            cube_math_type: 0,
        };
        check_mv(&mv).unwrap();
        bad(
            check_mv,
            &mv,
            &|a| a.mat2 = f.tensor(&[3, 1]),
            "dim of vec should be 1",
        );
        bad(
            check_mv,
            &mv,
            &|a| a.out = f.tensor(&[4, 1]),
            "dim of out should be 1",
        );
        bad(check_mv, &mv, &|a| a.mat2 = h.tensor(&[3]), "one dtype");
        bad(
            check_mv,
            &mv,
            &|a| a.self_ = i.tensor(&[4, 3]),
            "self dtype",
        );
        bad(
            check_mv,
            &mv,
            &|a| a.cube_math_type = 4,
            "range [0, 3] for aclnnMv",
        );
        bad(check_mv, &mv, &|a| a.mat2 = f.tensor(&[2]), "k-axis");
        bad(check_mv, &mv, &|a| a.out = f.tensor(&[3]), "out shape");

        let ger = GerArgs {
            self_: f.tensor(&[2]),
            vec2: f.tensor(&[3]),
            out: f.tensor(&[2, 3]),
        };
        check_ger(&ger).unwrap();
        let gbad = |m: &dyn Fn(&mut GerArgs), needle: &str| {
            let mut a = ger.clone();
            m(&mut a);
            let e = check_ger(&a).expect_err(needle);
            assert_eq!(e.code, 161002);
            assert!(e.message.contains(needle), "{} lacks {needle}", e.message);
        };
        gbad(
            &|a| a.self_ = f.tensor(&[2, 1]),
            "dim of self should be 1 for aclnnGer",
        );
        gbad(&|a| a.out = f.tensor(&[6]), "dim of out should be 2");
        gbad(&|a| a.out = f.tensor(&[3, 2]), "out shape should be [2, 3]");
        gbad(
            &|a| a.out = i.tensor(&[2, 3]),
            "cannot be cast to out dtype DT_INT32",
        );
    }
}
