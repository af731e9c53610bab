//! aclnnMatmul: `out = self @ mat2` with torch.matmul's shape rules.
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
//! 3 USE_HF32, 4 USE_FP32_ADD) must be in 0..=4. Decision: USE_FP16 with a
//! FLOAT input rounds the operands to f16 before the product, as the NPU
//! does; every other mode computes in full f32 (HF32 and down-precision
//! modes on the NPU are allowed to be less precise, never more wrong).
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

/// Phase-one validation of aclnnMatmul.
pub fn check(args: &MatmulArgs) -> Result<(), KernelError> {
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
    if !(0..=4).contains(&args.cube_math_type) {
        return Err(KernelError::invalid(format!(
            "cubeMathType should be in range [0, 4], but got {}.",
            args.cube_math_type
        )));
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
    let a = as_lhs(&args.self_);
    let b = as_rhs(&args.mat2);
    let out_batch = broadcast_shapes(&a.batch, &b.batch).unwrap_or_default();
    let (m, k, n) = (a.rows as usize, a.cols as usize, b.cols as usize);
    let nbatch: usize = out_batch.iter().product::<i64>() as usize;
    let round = args.cube_math_type == 2;
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
}
