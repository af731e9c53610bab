//! Throughput of aclnnMatmul's CPU kernel on square f32 products (1024^3 and
//! 2048^3) and of a bf16 one. Criterion's throughput is set to 2·m·n·k
//! elements per iteration, so "elements/s" reads as FLOP/s.

use std::hint::black_box;

use ascend_kernels::matmul::{MatmulArgs, run};
use ascend_kernels::{DType, TensorArg};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn square(c: &mut Criterion) {
    let mut group = c.benchmark_group("matmul");
    group.sample_size(10);
    for &(n, dtype) in &[
        (1024usize, DType::F32),
        (2048, DType::F32),
        (1024, DType::BF16),
    ] {
        // u64 storage keeps every buffer 8-byte aligned.
        let words = (n * n * dtype.size()).div_ceil(8);
        let a: Vec<u64> = (0..words as u64)
            .map(|i| (i * 2654435761) & 0x3F00_3F00_3F00_3F00)
            .collect();
        let b = a.clone();
        let mut out = vec![0u64; words];
        let shape = [n as i64, n as i64];
        let args = MatmulArgs {
            self_: TensorArg::contiguous(a.as_ptr() as *mut u8, dtype, &shape),
            mat2: TensorArg::contiguous(b.as_ptr() as *mut u8, dtype, &shape),
            out: TensorArg::contiguous(out.as_mut_ptr() as *mut u8, dtype, &shape),
            cube_math_type: 0,
        };
        group.throughput(Throughput::Elements(2 * (n as u64).pow(3)));
        group.bench_function(format!("{dtype:?}_{n}x{n}x{n}"), |bch| {
            bch.iter(|| {
                // SAFETY: each view covers exactly its n*n-element buffer,
                // which lives until the end of this function.
                unsafe { run(black_box(&args)) }.unwrap();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, square);
criterion_main!(benches);
