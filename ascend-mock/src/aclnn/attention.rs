//! Attention: aclnnFusedInferAttentionScoreV2 and V3 (V2 plus the MLA rope
//! inputs queryRope/keyRope) over `ascend_kernels::attention` (prefill and
//! decode, grouped KV heads, masks and sparse modes, paged KV cache). `inputLayout` is copied from
//! its `char *` in phase one (`rope::CStrParam`); the host
//! integer arrays are copied by the binder.

use std::ffi::c_char;

use ascend_kernels::TensorArg;
use ascend_kernels::attention::{self, FusedInferAttentionScoreV2Args};
use ascend_sys::*;

use super::register::Bound;

/// An input a version of the operator does not have (V2's MLA rope inputs).
struct Absent;

impl Bound for Absent {
    type Out = Option<TensorArg>;
    fn get(&self, _: &[TensorArg]) -> Option<TensorArg> {
        None
    }
}

const ABSENT: Absent = Absent;

// The macro binds `inputLayout` with the `c_string` method of this trait.
use super::rope::BindCStr;

operator! {
    /// Phase one of `aclnnFusedInferAttentionScoreV2`:
    /// `attentionOut = softmax(scaleValue · Q Kᵀ + pse, masked) V`.
    aclnnFusedInferAttentionScoreV2 / aclnnFusedInferAttentionScoreV2GetWorkspaceSize(
        query: *const aclTensor = input,
        key: *const aclTensorList = input_list,
        value: *const aclTensorList = input_list,
        pseShiftOptional: *const aclTensor = opt_input,
        attenMaskOptional: *const aclTensor = opt_input,
        actualSeqLengthsOptional: *const aclIntArray = opt_int_array,
        actualSeqLengthsKvOptional: *const aclIntArray = opt_int_array,
        deqScale1Optional: *const aclTensor = opt_input,
        quantScale1Optional: *const aclTensor = opt_input,
        deqScale2Optional: *const aclTensor = opt_input,
        quantScale2Optional: *const aclTensor = opt_input,
        quantOffset2Optional: *const aclTensor = opt_input,
        antiquantScaleOptional: *const aclTensor = opt_input,
        antiquantOffsetOptional: *const aclTensor = opt_input,
        blockTableOptional: *const aclTensor = opt_input,
        queryPaddingSizeOptional: *const aclTensor = opt_input,
        kvPaddingSizeOptional: *const aclTensor = opt_input,
        keyAntiquantScaleOptional: *const aclTensor = opt_input,
        keyAntiquantOffsetOptional: *const aclTensor = opt_input,
        valueAntiquantScaleOptional: *const aclTensor = opt_input,
        valueAntiquantOffsetOptional: *const aclTensor = opt_input,
        keySharedPrefixOptional: *const aclTensor = opt_input,
        valueSharedPrefixOptional: *const aclTensor = opt_input,
        actualSharedPrefixLenOptional: *const aclIntArray = opt_int_array,
        numHeads: i64 = value,
        scaleValue: f64 = value,
        preTokens: i64 = value,
        nextTokens: i64 = value,
        inputLayout: *mut c_char = c_string,
        numKeyValueHeads: i64 = value,
        sparseMode: i64 = value,
        innerPrecise: i64 = value,
        blockSize: i64 = value,
        antiquantMode: i64 = value,
        softmaxLseFlag: bool = value,
        keyAntiquantMode: i64 = value,
        valueAntiquantMode: i64 = value,
        attentionOut: *const aclTensor = output,
        softmaxLse: *const aclTensor = opt_output,
    ) => attention::check, attention::run, FusedInferAttentionScoreV2Args {
        query,
        key,
        value,
        pse_shift: pseShiftOptional,
        atten_mask: attenMaskOptional,
        actual_seq_lengths: actualSeqLengthsOptional,
        actual_seq_lengths_kv: actualSeqLengthsKvOptional,
        deq_scale1: deqScale1Optional,
        quant_scale1: quantScale1Optional,
        deq_scale2: deqScale2Optional,
        quant_scale2: quantScale2Optional,
        quant_offset2: quantOffset2Optional,
        antiquant_scale: antiquantScaleOptional,
        antiquant_offset: antiquantOffsetOptional,
        block_table: blockTableOptional,
        query_padding_size: queryPaddingSizeOptional,
        kv_padding_size: kvPaddingSizeOptional,
        key_antiquant_scale: keyAntiquantScaleOptional,
        key_antiquant_offset: keyAntiquantOffsetOptional,
        value_antiquant_scale: valueAntiquantScaleOptional,
        value_antiquant_offset: valueAntiquantOffsetOptional,
        key_shared_prefix: keySharedPrefixOptional,
        value_shared_prefix: valueSharedPrefixOptional,
        actual_shared_prefix_len: actualSharedPrefixLenOptional,
        query_rope: ABSENT,
        key_rope: ABSENT,
        key_rope_antiquant_scale: ABSENT,
        num_heads: numHeads,
        scale_value: scaleValue,
        pre_tokens: preTokens,
        next_tokens: nextTokens,
        input_layout: inputLayout,
        num_key_value_heads: numKeyValueHeads,
        sparse_mode: sparseMode,
        inner_precise: innerPrecise,
        block_size: blockSize,
        antiquant_mode: antiquantMode,
        softmax_lse_flag: softmaxLseFlag,
        key_antiquant_mode: keyAntiquantMode,
        value_antiquant_mode: valueAntiquantMode,
        attention_out: attentionOut,
        softmax_lse: softmaxLse,
    };

    /// Phase one of `aclnnFusedInferAttentionScoreV3`: V2 plus the MLA rope
    /// parts (`score = scale · (q·k + qRope·kRope)`);
    /// `attentionOut = softmax(scaleValue · Q Kᵀ + pse, masked) V`.
    aclnnFusedInferAttentionScoreV3 / aclnnFusedInferAttentionScoreV3GetWorkspaceSize(
        query: *const aclTensor = input,
        key: *const aclTensorList = input_list,
        value: *const aclTensorList = input_list,
        pseShiftOptional: *const aclTensor = opt_input,
        attenMaskOptional: *const aclTensor = opt_input,
        actualSeqLengthsOptional: *const aclIntArray = opt_int_array,
        actualSeqLengthsKvOptional: *const aclIntArray = opt_int_array,
        deqScale1Optional: *const aclTensor = opt_input,
        quantScale1Optional: *const aclTensor = opt_input,
        deqScale2Optional: *const aclTensor = opt_input,
        quantScale2Optional: *const aclTensor = opt_input,
        quantOffset2Optional: *const aclTensor = opt_input,
        antiquantScaleOptional: *const aclTensor = opt_input,
        antiquantOffsetOptional: *const aclTensor = opt_input,
        blockTableOptional: *const aclTensor = opt_input,
        queryPaddingSizeOptional: *const aclTensor = opt_input,
        kvPaddingSizeOptional: *const aclTensor = opt_input,
        keyAntiquantScaleOptional: *const aclTensor = opt_input,
        keyAntiquantOffsetOptional: *const aclTensor = opt_input,
        valueAntiquantScaleOptional: *const aclTensor = opt_input,
        valueAntiquantOffsetOptional: *const aclTensor = opt_input,
        keySharedPrefixOptional: *const aclTensor = opt_input,
        valueSharedPrefixOptional: *const aclTensor = opt_input,
        actualSharedPrefixLenOptional: *const aclIntArray = opt_int_array,
        queryRopeOptional: *const aclTensor = opt_input,
        keyRopeOptional: *const aclTensor = opt_input,
        keyRopeAntiquantScaleOptional: *const aclTensor = opt_input,
        numHeads: i64 = value,
        scaleValue: f64 = value,
        preTokens: i64 = value,
        nextTokens: i64 = value,
        inputLayout: *mut c_char = c_string,
        numKeyValueHeads: i64 = value,
        sparseMode: i64 = value,
        innerPrecise: i64 = value,
        blockSize: i64 = value,
        antiquantMode: i64 = value,
        softmaxLseFlag: bool = value,
        keyAntiquantMode: i64 = value,
        valueAntiquantMode: i64 = value,
        attentionOut: *const aclTensor = output,
        softmaxLse: *const aclTensor = opt_output,
    ) => attention::check, attention::run, FusedInferAttentionScoreV2Args {
        query,
        key,
        value,
        pse_shift: pseShiftOptional,
        atten_mask: attenMaskOptional,
        actual_seq_lengths: actualSeqLengthsOptional,
        actual_seq_lengths_kv: actualSeqLengthsKvOptional,
        deq_scale1: deqScale1Optional,
        quant_scale1: quantScale1Optional,
        deq_scale2: deqScale2Optional,
        quant_scale2: quantScale2Optional,
        quant_offset2: quantOffset2Optional,
        antiquant_scale: antiquantScaleOptional,
        antiquant_offset: antiquantOffsetOptional,
        block_table: blockTableOptional,
        query_padding_size: queryPaddingSizeOptional,
        kv_padding_size: kvPaddingSizeOptional,
        key_antiquant_scale: keyAntiquantScaleOptional,
        key_antiquant_offset: keyAntiquantOffsetOptional,
        value_antiquant_scale: valueAntiquantScaleOptional,
        value_antiquant_offset: valueAntiquantOffsetOptional,
        key_shared_prefix: keySharedPrefixOptional,
        value_shared_prefix: valueSharedPrefixOptional,
        actual_shared_prefix_len: actualSharedPrefixLenOptional,
        query_rope: queryRopeOptional,
        key_rope: keyRopeOptional,
        key_rope_antiquant_scale: keyRopeAntiquantScaleOptional,
        num_heads: numHeads,
        scale_value: scaleValue,
        pre_tokens: preTokens,
        next_tokens: nextTokens,
        input_layout: inputLayout,
        num_key_value_heads: numKeyValueHeads,
        sparse_mode: sparseMode,
        inner_precise: innerPrecise,
        block_size: blockSize,
        antiquant_mode: antiquantMode,
        softmax_lse_flag: softmaxLseFlag,
        key_antiquant_mode: keyAntiquantMode,
        value_antiquant_mode: valueAntiquantMode,
        attention_out: attentionOut,
        softmax_lse: softmaxLse,
    };
}

#[cfg(test)]
mod tests {
    //! Through the C ABI against a plain softmax(scale·QKᵀ, masked)·V
    //! written here with loops: prefill with grouped heads, a causal sparse
    //! mode, actual lengths and the LSE output; decode over a paged KV
    //! cache; a repeatable executor whose layout string is gone before it
    //! runs; and the refusals of phase one.

    use std::ffi::{CString, c_void};
    use std::ptr::null_mut;

    use half::f16;

    use super::*;
    use crate::aclnn::tests::{Dev, close, destroy_tensors, nn_err, run_op, tensor};
    use crate::exports::*;

    fn vals(n: usize, seed: u64) -> Vec<f32> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let v = ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0;
                f16::from_f32(v).to_f32()
            })
            .collect()
    }

    fn f16_buf(dev: &mut Dev, v: &[f32]) -> *mut c_void {
        let h: Vec<f16> = v.iter().map(|&x| f16::from_f32(x)).collect();
        dev.buf(&h)
    }

    fn read_f16(dev: &Dev, p: *mut c_void, n: usize) -> Vec<f32> {
        dev.read::<f16>(p, n).iter().map(|v| v.to_f32()).collect()
    }

    fn int_array(v: &[i64]) -> *mut aclIntArray {
        // SAFETY: `v` is a live slice; the values are copied.
        let a = unsafe { aclCreateIntArray(v.as_ptr(), v.len() as u64) };
        assert!(!a.is_null());
        a
    }

    fn list(t: &[*mut aclTensor]) -> *mut aclTensorList {
        let ptrs: Vec<*const aclTensor> = t.iter().map(|&p| p as *const aclTensor).collect();
        // SAFETY: live descriptors; the list takes ownership of them.
        let l = unsafe { aclCreateTensorList(ptrs.as_ptr(), ptrs.len() as u64) };
        assert!(!l.is_null());
        l
    }

    /// Attention of one query row `q` over keys/values `(k_j, v_j)` for the
    /// visible `js`, in f64: (output row, lse). Keys are as wide as `q`;
    /// values may be narrower (MLA).
    fn attend(q: &[f32], ks: &[&[f32]], vs: &[&[f32]], scale: f64) -> (Vec<f64>, f64) {
        let d = q.len();
        if ks.is_empty() {
            return (vec![0.0; d], f64::INFINITY);
        }
        let s: Vec<f64> = ks
            .iter()
            .map(|k| {
                scale
                    * (0..d)
                        .map(|x| f64::from(q[x]) * f64::from(k[x]))
                        .sum::<f64>()
            })
            .collect();
        let mx = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = s.iter().map(|x| (x - mx).exp()).sum();
        let dv = vs[0].len();
        let mut o = vec![0f64; dv];
        for (w, v) in s.iter().zip(vs) {
            for x in 0..dv {
                o[x] += (w - mx).exp() / sum * f64::from(v[x]);
            }
        }
        (o, mx + sum.ln())
    }

    /// Phase one of the operator with every optional input NULL except the
    /// ones given.
    #[allow(clippy::too_many_arguments)] // the operator's own parameters
    unsafe fn phase1(
        q: *mut aclTensor,
        k: *mut aclTensorList,
        v: *mut aclTensorList,
        mask: *mut aclTensor,
        seq: *mut aclIntArray,
        seq_kv: *mut aclIntArray,
        block_table: *mut aclTensor,
        num_heads: i64,
        scale: f64,
        layout: *mut c_char,
        nkv: i64,
        sparse: i64,
        block_size: i64,
        lse_flag: bool,
        out: *mut aclTensor,
        lse: *mut aclTensor,
        ws: *mut u64,
        ex: *mut *mut aclOpExecutor,
    ) -> aclnnStatus {
        let n = null_mut();
        // SAFETY: forwarded from the caller.
        unsafe {
            aclnnFusedInferAttentionScoreV2GetWorkspaceSize(
                q,
                k,
                v,
                n,
                mask,
                seq,
                seq_kv,
                n,
                n,
                n,
                n,
                n,
                n,
                n,
                block_table,
                n,
                n,
                n,
                n,
                n,
                n,
                n,
                n,
                null_mut(),
                num_heads,
                scale,
                2147483647,
                0,
                layout,
                nkv,
                sparse,
                0,
                block_size,
                0,
                lse_flag,
                0,
                0,
                out,
                lse,
                ws,
                ex,
            )
        }
    }

    #[test]
    fn prefill_causal_grouped_heads_with_lse() {
        let mut dev = Dev::new();
        // BSND, B 2, N 4, KV_N 2, Q_S 70, KV_S 90, D 16; sparseMode 3
        // (causal from the bottom-right) with the compressed mask; batch 1
        // has actual lengths 50 / 60.
        let (b, n, nkv, sq, skv, d) = (2usize, 4usize, 2usize, 70usize, 90usize, 16usize);
        let q = vals(b * sq * n * d, 1);
        let k = vals(b * skv * nkv * d, 2);
        let v = vals(b * skv * nkv * d, 3);
        let (qp, kp, vp) = (
            f16_buf(&mut dev, &q),
            f16_buf(&mut dev, &k),
            f16_buf(&mut dev, &v),
        );
        let mp = dev.zeros::<u8>(2048 * 2048);
        let op = dev.zeros::<f16>(q.len());
        let lp = dev.zeros::<f32>(b * n * sq);
        let qt = tensor(&[b as i64, sq as i64, n as i64, d as i64], ACL_FLOAT16, qp);
        let ot = tensor(&[b as i64, sq as i64, n as i64, d as i64], ACL_FLOAT16, op);
        let kl = list(&[tensor(
            &[b as i64, skv as i64, nkv as i64, d as i64],
            ACL_FLOAT16,
            kp,
        )]);
        let vl = list(&[tensor(
            &[b as i64, skv as i64, nkv as i64, d as i64],
            ACL_FLOAT16,
            vp,
        )]);
        let mt = tensor(&[2048, 2048], ACL_BOOL, mp);
        let lt = tensor(&[b as i64, n as i64, sq as i64, 1], ACL_FLOAT, lp);
        let (seq, seq_kv) = (int_array(&[70, 50]), int_array(&[90, 60]));
        let layout = CString::new("BSND").unwrap();
        let (mut ws, mut ex) = (0u64, null_mut());
        // SAFETY: live descriptors, arrays, string and output locations.
        let code = unsafe {
            phase1(
                qt,
                kl,
                vl,
                mt,
                seq,
                seq_kv,
                null_mut(),
                4,
                0.25,
                layout.as_ptr().cast_mut(),
                2,
                3,
                0,
                true,
                ot,
                lt,
                &mut ws,
                &mut ex,
            )
        };
        assert_eq!(
            code,
            ACLNN_SUCCESS,
            "{:?}",
            crate::tests_support::take_message()
        );
        // The layout string and the arrays are not needed after phase one.
        drop(layout);
        // SAFETY: live arrays, destroyed once.
        unsafe {
            aclDestroyIntArray(seq);
            aclDestroyIntArray(seq_kv);
        }
        let stream = own_stream();
        // SAFETY: a fresh executor without workspace on a live stream.
        unsafe {
            assert_eq!(
                aclnnFusedInferAttentionScoreV2(null_mut(), 0, ex, stream),
                ACLNN_SUCCESS
            );
            assert_eq!(aclrtSynchronizeStream(stream), ACL_SUCCESS);
            assert_eq!(aclrtDestroyStream(stream), ACL_SUCCESS);
        }
        let got = read_f16(&dev, op, q.len());
        let got_lse = dev.read::<f32>(lp, b * n * sq);
        let (lens_q, lens_kv) = ([70usize, 50], [90usize, 60]);
        let mut want = vec![0f64; q.len()];
        let mut want_lse = vec![f64::INFINITY; b * n * sq];
        for bi in 0..b {
            for h in 0..n {
                let kh = h / (n / nkv);
                for i in 0..lens_q[bi] {
                    let row = |buf: &[f32], s: usize, heads: usize, t: usize, hh: usize| {
                        buf[((bi * s + t) * heads + hh) * d..][..d].to_vec()
                    };
                    let qr = row(&q, sq, n, i, h);
                    let js: Vec<usize> = (0..lens_kv[bi])
                        .filter(|&j| j as i64 <= i as i64 + lens_kv[bi] as i64 - lens_q[bi] as i64)
                        .collect();
                    let kr: Vec<Vec<f32>> = js.iter().map(|&j| row(&k, skv, nkv, j, kh)).collect();
                    let vr: Vec<Vec<f32>> = js.iter().map(|&j| row(&v, skv, nkv, j, kh)).collect();
                    let kref: Vec<&[f32]> = kr.iter().map(|x| &x[..]).collect();
                    let vref: Vec<&[f32]> = vr.iter().map(|x| &x[..]).collect();
                    let (o, l) = attend(&qr, &kref, &vref, 0.25);
                    want[((bi * sq + i) * n + h) * d..][..d].copy_from_slice(&o);
                    want_lse[(bi * n + h) * sq + i] = l;
                }
            }
        }
        close(&got, &want, 4e-3);
        for (g, w) in got_lse.iter().zip(&want_lse) {
            assert!(
                (w.is_infinite() && *g == f32::INFINITY) || (f64::from(*g) - w).abs() < 1e-3,
                "lse {g} vs {w}"
            );
        }
        // SAFETY: live lists, destroyed once (with their members).
        unsafe {
            aclDestroyTensorList(kl);
            aclDestroyTensorList(vl);
            aclDestroyAclOpExecutor(ex);
        }
        destroy_tensors(&[qt, ot, mt, lt]);
    }

    /// A stream of this test's own on the current context (Dev keeps its
    /// stream private); destroyed by the caller.
    fn own_stream() -> aclrtStream {
        let mut s = null_mut();
        // SAFETY: a valid output location; Dev made a context current.
        assert_eq!(unsafe { aclrtCreateStream(&mut s) }, ACL_SUCCESS);
        s
    }

    #[test]
    fn decode_over_a_paged_cache_repeatable() {
        let mut dev = Dev::new();
        // BSH decode, B 2, N 2, KV_N 1, D 16, blockSize 128, cache
        // (blockNum 4, 128, H 16), lengths 200 and 77, blocks out of order.
        let (b, n, d, bs) = (2usize, 2usize, 16usize, 128usize);
        let q = vals(b * n * d, 4);
        let ck = vals(4 * bs * d, 5);
        let cv = vals(4 * bs * d, 6);
        let table = [3i32, 1, 0, 0];
        let lens = [200usize, 77];
        let (qp, kp, vp) = (
            f16_buf(&mut dev, &q),
            f16_buf(&mut dev, &ck),
            f16_buf(&mut dev, &cv),
        );
        let tp = dev.buf(&table);
        let op = dev.zeros::<f16>(q.len());
        let qt = tensor(&[b as i64, 1, (n * d) as i64], ACL_FLOAT16, qp);
        let ot = tensor(&[b as i64, 1, (n * d) as i64], ACL_FLOAT16, op);
        let kl = list(&[tensor(&[4, bs as i64, d as i64], ACL_FLOAT16, kp)]);
        let vl = list(&[tensor(&[4, bs as i64, d as i64], ACL_FLOAT16, vp)]);
        let tt = tensor(&[2, 2], ACL_INT32, tp);
        let seq_kv = int_array(&[200, 77]);
        let layout = CString::new("BSH").unwrap();
        let (mut ws, mut ex) = (0u64, null_mut());
        // SAFETY: live descriptors, array, string and output locations.
        let code = unsafe {
            phase1(
                qt,
                kl,
                vl,
                null_mut(),
                null_mut(),
                seq_kv,
                tt,
                2,
                0.5,
                layout.as_ptr().cast_mut(),
                1,
                0,
                bs as i64,
                false,
                ot,
                null_mut(),
                &mut ws,
                &mut ex,
            )
        };
        assert_eq!(
            code,
            ACLNN_SUCCESS,
            "{:?}",
            crate::tests_support::take_message()
        );
        drop(layout);
        let mut want = vec![0f64; q.len()];
        for bi in 0..b {
            let ks: Vec<&[f32]> = (0..lens[bi])
                .map(|t| &ck[(table[bi * 2 + t / bs] as usize * bs + t % bs) * d..][..d])
                .collect();
            let vs: Vec<&[f32]> = (0..lens[bi])
                .map(|t| &cv[(table[bi * 2 + t / bs] as usize * bs + t % bs) * d..][..d])
                .collect();
            for h in 0..n {
                let (o, _) = attend(&q[(bi * n + h) * d..][..d], &ks, &vs, 0.5);
                want[(bi * n + h) * d..][..d].copy_from_slice(&o);
            }
        }
        let stream = own_stream();
        // SAFETY: the executor and stream are live; made repeatable, launched twice.
        unsafe {
            assert_eq!(aclSetAclOpExecutorRepeatable(ex), ACLNN_SUCCESS);
            for _ in 0..2 {
                let code = aclnnFusedInferAttentionScoreV2(null_mut(), 0, ex, stream);
                assert_eq!(code, ACLNN_SUCCESS);
                assert_eq!(aclrtSynchronizeStream(stream), ACL_SUCCESS);
                close(&read_f16(&dev, op, q.len()), &want, 4e-3);
            }
            assert_eq!(aclrtDestroyStream(stream), ACL_SUCCESS);
            aclDestroyAclOpExecutor(ex);
            aclDestroyIntArray(seq_kv);
            aclDestroyTensorList(kl);
            aclDestroyTensorList(vl);
        }
        destroy_tensors(&[qt, ot, tt]);
    }

    #[test]
    fn phase_one_refusals() {
        let mut dev = Dev::new();
        let p = dev.zeros::<f16>(4096);
        let qt = tensor(&[1, 4, 2, 16], ACL_FLOAT16, p);
        let ot = tensor(&[1, 4, 2, 16], ACL_FLOAT16, p);
        let kl = list(&[tensor(&[1, 8, 2, 16], ACL_FLOAT16, p)]);
        let vl = list(&[tensor(&[1, 8, 2, 16], ACL_FLOAT16, p)]);
        let scale_t = tensor(&[1], ACL_FLOAT, p);
        let (bsnd, tnd) = (c"BSND", c"TND");
        let nm = null_mut();
        let (mut ws, mut ex) = (0u64, null_mut());
        let call = |q,
                    k,
                    layout: *const c_char,
                    sparse,
                    out,
                    quant: *mut aclTensor,
                    ws: &mut u64,
                    ex: &mut *mut aclOpExecutor| {
            // SAFETY: live descriptors or NULL, strings, output locations.
            unsafe {
                aclnnFusedInferAttentionScoreV2GetWorkspaceSize(
                    q,
                    k,
                    vl,
                    nm,
                    nm,
                    null_mut(),
                    null_mut(),
                    nm,
                    nm,
                    nm,
                    quant,
                    nm,
                    nm,
                    nm,
                    nm,
                    nm,
                    nm,
                    nm,
                    nm,
                    nm,
                    nm,
                    nm,
                    nm,
                    null_mut(),
                    2,
                    1.0,
                    2147483647,
                    0,
                    layout.cast_mut(),
                    2,
                    sparse,
                    0,
                    0,
                    0,
                    false,
                    0,
                    0,
                    out,
                    nm,
                    ws,
                    ex,
                )
            }
        };
        nn_err(
            call(nm, kl, bsnd.as_ptr(), 0, ot, nm, &mut ws, &mut ex),
            ACLNN_ERR_PARAM_NULLPTR,
            &["query"],
        );
        nn_err(
            call(qt, null_mut(), bsnd.as_ptr(), 0, ot, nm, &mut ws, &mut ex),
            ACLNN_ERR_PARAM_NULLPTR,
            &["key"],
        );
        nn_err(
            call(qt, kl, std::ptr::null(), 0, ot, nm, &mut ws, &mut ex),
            ACLNN_ERR_PARAM_NULLPTR,
            &["inputLayout is NULL"],
        );
        nn_err(
            call(qt, kl, bsnd.as_ptr(), 0, nm, nm, &mut ws, &mut ex),
            ACLNN_ERR_PARAM_NULLPTR,
            &["attentionOut"],
        );
        nn_err(
            call(qt, kl, bsnd.as_ptr(), 0, ot, scale_t, &mut ws, &mut ex),
            ACLNN_ERR_PARAM_INVALID,
            &["quantScale2Optional", "does not implement"],
        );
        nn_err(
            call(qt, kl, tnd.as_ptr(), 0, ot, nm, &mut ws, &mut ex),
            ACLNN_ERR_PARAM_INVALID,
            &["inputLayout TND"],
        );
        nn_err(
            call(qt, kl, bsnd.as_ptr(), 7, ot, nm, &mut ws, &mut ex),
            ACLNN_ERR_PARAM_INVALID,
            &["sparseMode 7 (dilated)"],
        );
        // SAFETY: live lists, destroyed once.
        unsafe {
            aclDestroyTensorList(kl);
            aclDestroyTensorList(vl);
        }
        destroy_tensors(&[qt, ot, scale_t]);
    }

    #[test]
    fn v3_mla_rope_decode() {
        let mut dev = Dev::new();
        // BSND decode, B 1, N 2 over KV_N 1, D 128 plus rope 64, KV_S 40:
        // score = scale · (q·k + qRope·kRope), values of D 128.
        let (n, d, dr, skv) = (2usize, 128usize, 64usize, 40usize);
        let q = vals(n * d, 7);
        let qr = vals(n * dr, 8);
        let k = vals(skv * d, 9);
        let kr = vals(skv * dr, 10);
        let v = vals(skv * d, 11);
        let ps: Vec<_> = [&q, &qr, &k, &kr, &v]
            .iter()
            .map(|x| f16_buf(&mut dev, x))
            .collect();
        let op = dev.zeros::<f16>(n * d);
        let qt = tensor(&[1, 1, n as i64, d as i64], ACL_FLOAT16, ps[0]);
        let qrt = tensor(&[1, 1, n as i64, dr as i64], ACL_FLOAT16, ps[1]);
        let kl = list(&[tensor(&[1, skv as i64, 1, d as i64], ACL_FLOAT16, ps[2])]);
        let krt = tensor(&[1, skv as i64, 1, dr as i64], ACL_FLOAT16, ps[3]);
        let vl = list(&[tensor(&[1, skv as i64, 1, d as i64], ACL_FLOAT16, ps[4])]);
        let ot = tensor(&[1, 1, n as i64, d as i64], ACL_FLOAT16, op);
        let nm = null_mut();
        run_op(
            &dev,
            // SAFETY: live descriptors, string and output locations.
            |w, e| unsafe {
                aclnnFusedInferAttentionScoreV3GetWorkspaceSize(
                    qt,
                    kl,
                    vl,
                    nm,
                    nm,
                    null_mut(),
                    null_mut(),
                    nm,
                    nm,
                    nm,
                    nm,
                    nm,
                    nm,
                    nm,
                    nm,
                    nm,
                    nm,
                    nm,
                    nm,
                    nm,
                    nm,
                    nm,
                    nm,
                    null_mut(),
                    qrt,
                    krt,
                    nm,
                    n as i64,
                    0.1,
                    2147483647,
                    0,
                    c"BSND".as_ptr().cast_mut(),
                    1,
                    0,
                    0,
                    0,
                    0,
                    false,
                    0,
                    0,
                    ot,
                    nm,
                    w,
                    e,
                )
            },
            aclnnFusedInferAttentionScoreV3,
        );
        dev.sync();
        let got = read_f16(&dev, op, n * d);
        let kcat: Vec<Vec<f32>> = (0..skv)
            .map(|t| [&k[t * d..(t + 1) * d], &kr[t * dr..(t + 1) * dr]].concat())
            .collect();
        let kref: Vec<&[f32]> = kcat.iter().map(|x| &x[..]).collect();
        let vref: Vec<&[f32]> = (0..skv).map(|t| &v[t * d..(t + 1) * d]).collect();
        let mut want = Vec::new();
        for h in 0..n {
            let qcat = [&q[h * d..(h + 1) * d], &qr[h * dr..(h + 1) * dr]].concat();
            // attend() dots over the query's width: the 192-wide key rows.
            let (o, _) = attend(&qcat, &kref, &vref, 0.1);
            want.extend(o);
        }
        close(&got, &want, 4e-3);
        // keyRope without queryRope is refused.
        let (mut ws, mut ex) = (0u64, null_mut());
        // SAFETY: as above.
        let code = unsafe {
            aclnnFusedInferAttentionScoreV3GetWorkspaceSize(
                qt,
                kl,
                vl,
                nm,
                nm,
                null_mut(),
                null_mut(),
                nm,
                nm,
                nm,
                nm,
                nm,
                nm,
                nm,
                nm,
                nm,
                nm,
                nm,
                nm,
                nm,
                nm,
                nm,
                nm,
                null_mut(),
                nm,
                krt,
                nm,
                n as i64,
                0.1,
                2147483647,
                0,
                c"BSND".as_ptr().cast_mut(),
                1,
                0,
                0,
                0,
                0,
                false,
                0,
                0,
                ot,
                nm,
                &mut ws,
                &mut ex,
            )
        };
        nn_err(
            code,
            ACLNN_ERR_PARAM_INVALID,
            &["queryRopeOptional and keyRopeOptional"],
        );
        // SAFETY: live lists, destroyed once.
        unsafe {
            aclDestroyTensorList(kl);
            aclDestroyTensorList(vl);
        }
        destroy_tensors(&[qt, qrt, krt, ot]);
    }

    #[test]
    fn every_new_symbol_resolves() {
        // The symbol table is generated from the headers: each operator of
        // this branch is found under both its phase names, and typed
        // through ascend-sys's function-pointer table.
        for name in [
            "aclnnFusedInferAttentionScoreV2GetWorkspaceSize",
            "aclnnFusedInferAttentionScoreV2",
            "aclnnFusedInferAttentionScoreV3GetWorkspaceSize",
            "aclnnFusedInferAttentionScoreV3",
            "aclnnRotaryPositionEmbeddingGetWorkspaceSize",
            "aclnnRotaryPositionEmbedding",
            "aclnnApplyRotaryPosEmbGetWorkspaceSize",
            "aclnnApplyRotaryPosEmb",
            "aclnnApplyRotaryPosEmbV2GetWorkspaceSize",
            "aclnnApplyRotaryPosEmbV2",
            "aclnnMmGetWorkspaceSize",
            "aclnnMm",
            "aclnnBatchMatMulGetWorkspaceSize",
            "aclnnBatchMatMul",
            "aclnnMvGetWorkspaceSize",
            "aclnnMv",
            "aclnnGerGetWorkspaceSize",
            "aclnnGer",
        ] {
            assert!(!crate::resolve(name).is_null(), "{name}");
        }
        let api = ascend_sys::Api::from_resolver(crate::resolve, "ascend-mock");
        assert!(
            api.opapi
                .aclnnFusedInferAttentionScoreV3GetWorkspaceSize()
                .is_ok()
        );
        assert!(api.opapi.aclnnApplyRotaryPosEmbV2GetWorkspaceSize().is_ok());
        assert!(api.opapi.aclnnGer().is_ok());
    }
}
