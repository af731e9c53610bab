//! CPU implementations of the aclnn operators that the Ascend mock device
//! runs, with CANN's documented semantics and parameter checks.
//!
//! Each operator module has an argument struct named after the operator, a
//! checking function `check` (what CANN's phase one,
//! `aclnnXxxGetWorkspaceSize`, validates) and a running function `run` (what
//! the device computes in phase two). f16 and bf16 are computed in f32 and
//! rounded once on store. Every `run` reads all its inputs before it writes
//! an output, so in-place use (an output aliasing an input) is safe.
//!
//! | module | operators |
//! |---|---|
//! | [`attention`] | aclnnFusedInferAttentionScoreV2, aclnnFusedInferAttentionScoreV3 |
//! | [`elementwise`] | aclnnAdd, aclnnAdds, aclnnInplaceAdd, aclnnMul (and the core of [`binary`]) |
//! | [`binary`] | Sub, Div, Muls, their scalar and in-place forms, GtScalar, EqTensor, the Pow family, Addcdiv, InplaceMaskedFillScalar |
//! | [`unary`] | the table of unary operators (Abs, Exp, Log, ..., activations with scalar parameters, Clamp, in-place forms) |
//! | [`conversion`] | aclnnCast, aclnnInplaceCopy, aclnnInplaceFillScalar, aclnnInplaceZero, aclnnArange |
//! | [`matmul`] | aclnnMatmul, aclnnMm, aclnnBatchMatMul, aclnnMv, aclnnGer |
//! | [`grouped_matmul`] | aclnnGroupedMatmulV4, aclnnGroupedMatmulV3 |
//! | [`rms_norm`] | aclnnRmsNorm |
//! | [`reduce`] | aclnnReduceSum, aclnnMean, aclnnArgMax, aclnnNorm, aclnnLogSoftmax, aclnnCumsum, aclnnArgsort; [`add_rms_norm`]: aclnnAddRmsNorm; [`layer_norm`]: aclnnLayerNorm |
//! | [`rope`] | aclnnRotaryPositionEmbedding, aclnnApplyRotaryPosEmb, aclnnApplyRotaryPosEmbV2 |
//! | [`softmax`] | aclnnSoftmax |
//! | [`swiglu`] | aclnnSwiGlu |
//! | [`topk`] | aclnnTopk |
//! | [`shape`] | aclnnPermute, aclnnRepeat, aclnnCat, aclnnSlice, aclnnTril, aclnnTriu, aclnnInplaceTriu, aclnnIndexSelect, aclnnGatherV2, aclnnEmbedding, aclnnConstantPadNd, aclnnRoll, aclnnRepeatInterleaveIntWithDim, aclnnIndexCopy, aclnnInplaceIndexCopy, aclnnIndexFillTensor, aclnnInplaceIndexFillTensor, aclnnReflectionPad1d, aclnnScatter, aclnnInplaceScatter |
//! | [`moe`] | the MoE routing operators (gating top-k, init/finalize routing, expert token counts) |
//!
//! [`gemm`] holds the shared matrix-product engine, [`broadcast`] the shape
//! helpers, [`scalar`] the value of an `aclScalar`, [`par`] the parallel
//! elementwise loops.

pub mod add_rms_norm;
pub mod attention;
pub mod binary;
pub mod broadcast;
pub mod conversion;
pub mod elementwise;
pub mod gemm;
pub mod grouped_matmul;
pub mod layer_norm;
pub mod matmul;
pub mod moe;
pub mod par;
pub mod reduce;
pub mod rms_norm;
pub mod rope;
pub mod scalar;
pub mod shape;
pub mod softmax;
pub mod swiglu;
pub mod tensor;
pub mod topk;
pub mod unary;

pub use scalar::Scalar;
pub use tensor::{DType, KernelError, TensorArg};

/// Test helpers: a seeded generator and aligned host buffers of any dtype.
#[cfg(test)]
pub(crate) mod testutil {
    use half::{bf16, f16};

    use crate::tensor::{DType, TensorArg, contiguous_strides};

    /// xorshift64*: small, seeded, good enough for test data.
    pub struct Rng(u64);

    impl Rng {
        pub fn new(seed: u64) -> Rng {
            Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
        }
        pub fn next_u64(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        /// Uniform in [-1, 1).
        pub fn f32(&mut self) -> f32 {
            ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }
        /// Uniform in [0, n).
        pub fn below(&mut self, n: u64) -> u64 {
            self.next_u64() % n
        }
    }

    /// `v` as stored in `dtype` and read back.
    pub fn round(dtype: DType, v: f32) -> f32 {
        match dtype {
            DType::F16 => f16::from_f32(v).to_f32(),
            DType::BF16 => bf16::from_f32(v).to_f32(),
            _ => v,
        }
    }

    /// An 8-byte aligned host buffer holding elements of one dtype.
    pub struct Buf {
        data: Vec<u64>,
        pub dtype: DType,
        pub len: usize,
    }

    impl Buf {
        pub fn zeros(dtype: DType, len: usize) -> Buf {
            Buf {
                data: vec![0u64; (len * dtype.size()).div_ceil(8).max(1)],
                dtype,
                len,
            }
        }
        pub fn from_f32(dtype: DType, vals: &[f32]) -> Buf {
            let b = Buf::zeros(dtype, vals.len());
            // SAFETY: the contiguous view covers exactly the buffer.
            unsafe { b.flat().write_f32(vals) };
            b
        }
        pub fn from_i64(dtype: DType, vals: &[i64]) -> Buf {
            let b = Buf::zeros(dtype, vals.len());
            // SAFETY: the contiguous view covers exactly the buffer.
            unsafe { b.flat().write_i64(vals) };
            b
        }
        pub fn random(dtype: DType, len: usize, rng: &mut Rng) -> Buf {
            let v: Vec<f32> = (0..len).map(|_| rng.f32()).collect();
            Buf::from_f32(dtype, &v)
        }
        pub fn ptr(&self) -> *mut u8 {
            self.data.as_ptr() as *mut u8
        }
        pub fn flat(&self) -> TensorArg {
            TensorArg::contiguous(self.ptr(), self.dtype, &[self.len as i64])
        }
        pub fn tensor(&self, shape: &[i64]) -> TensorArg {
            TensorArg::contiguous(self.ptr(), self.dtype, shape)
        }
        pub fn view(&self, shape: &[i64], strides: &[i64], offset: i64) -> TensorArg {
            TensorArg {
                ptr: self.ptr(),
                dtype: self.dtype,
                shape: shape.to_vec(),
                strides: strides.to_vec(),
                offset,
            }
        }
        /// The whole storage as f32.
        pub fn to_f32(&self) -> Vec<f32> {
            // SAFETY: the contiguous view covers exactly the buffer.
            unsafe { self.flat().read_f32() }
        }
        /// The whole storage widened to f64.
        pub fn to_f64(&self) -> Vec<f64> {
            self.to_f32().into_iter().map(f64::from).collect()
        }
        /// The whole storage as integers.
        pub fn to_i64(&self) -> Vec<i64> {
            // SAFETY: the contiguous view covers exactly the buffer.
            unsafe { self.flat().read_i64() }
        }
    }

    /// Strides of a contiguous tensor (re-exported for tests).
    pub fn strides(shape: &[i64]) -> Vec<i64> {
        contiguous_strides(shape)
    }

    /// Assert `got` (as stored) equals `want` (exact math) within what one
    /// rounding to `dtype` plus f32 accumulation allows.
    pub fn assert_close(got: &[f32], want: &[f64], dtype: DType, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        let rel = match dtype {
            DType::F16 => 2e-3,
            DType::BF16 => 1e-2,
            _ => 2e-5,
        };
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            let tol = rel * (1.0 + w.abs());
            assert!(
                (f64::from(g) - w).abs() <= tol,
                "{what}: element {i}: got {g}, want {w}"
            );
        }
    }
}
