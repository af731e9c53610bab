//! Throughput of aclnnFusedInferAttentionScoreV2's kernel on a long
//! prefill: S = 4096 queries and keys, B 1, N 8 query heads over 2 KV heads,
//! D 64, f16, BNSD, with no mask and with the causal sparse mode 3.
//! Throughput is set to the multiply-adds of both products (4·N·S²·D,
//! halved for causal), so "elements/s" reads as FLOP/s. The kernel holds
//! only tile-sized scratch per task (see `attention::scratch_floats`).

use std::hint::black_box;

use ascend_kernels::attention::{self, FusedInferAttentionScoreV2Args};
use ascend_kernels::{DType, TensorArg};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn prefill(c: &mut Criterion) {
    let (s, n, nkv, d) = (4096usize, 8usize, 2usize, 64usize);
    let mut group = c.benchmark_group("fused_infer_attention_v2");
    group.sample_size(10);
    // f16 data as u64 words (8-byte aligned), small varied values.
    let words = |elems: usize, salt: u64| -> Vec<u64> {
        (0..(elems * 2).div_ceil(8) as u64)
            .map(|i| {
                ((i.wrapping_mul(2654435761) ^ salt) & 0x03FF_03FF_03FF_03FF)
                    | 0x3000_3000_3000_3000
            })
            .collect()
    };
    let q = words(n * s * d, 1);
    let k = words(nkv * s * d, 2);
    let v = words(nkv * s * d, 3);
    let mut out = vec![0u64; q.len()];
    let mask = vec![0u8; 2048 * 2048];
    let t = |p: *const u64, shape: &[i64]| TensorArg::contiguous(p as *mut u8, DType::F16, shape);
    let (s_, n_, nkv_, d_) = (s as i64, n as i64, nkv as i64, d as i64);
    for causal in [false, true] {
        let mut args = FusedInferAttentionScoreV2Args::dense(
            t(q.as_ptr(), &[1, n_, s_, d_]),
            t(k.as_ptr(), &[1, nkv_, s_, d_]),
            t(v.as_ptr(), &[1, nkv_, s_, d_]),
            t(out.as_mut_ptr(), &[1, n_, s_, d_]),
            "BNSD",
            n_,
            0.125,
        );
        args.num_key_value_heads = nkv_;
        if causal {
            args.sparse_mode = 3;
            args.atten_mask = Some(TensorArg::contiguous(
                mask.as_ptr() as *mut u8,
                DType::Bool,
                &[2048, 2048],
            ));
        }
        let flops = 4 * (n * s * s * d) as u64 / if causal { 2 } else { 1 };
        group.throughput(Throughput::Elements(flops));
        let name = if causal { "S4096_causal" } else { "S4096_full" };
        group.bench_function(name, |b| {
            b.iter(|| {
                // SAFETY: each view covers exactly its buffer, all of which
                // live until the end of this function.
                unsafe { attention::run(black_box(&args)) }.unwrap();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, prefill);
criterion_main!(benches);
