//! Throughput of the matrix-product kernels: aclnnMatmul on square f32
//! products (1024^3 and 2048^3) and a bf16 one, and aclnnGroupedMatmulV4 on
//! an MoE-shaped bf16 problem (16 experts, transposed weight view).
//! Criterion's throughput is set to 2·m·n·k elements per iteration, so
//! "elements/s" reads as FLOP/s.

use std::hint::black_box;

use ascend_kernels::grouped_matmul::{self, GroupedMatmulV4Args};
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

fn grouped(c: &mut Criterion) {
    let mut group = c.benchmark_group("grouped_matmul");
    group.sample_size(10);
    let (experts, rows_per, k, n) = (16usize, 128usize, 1024usize, 512usize);
    let m = experts * rows_per;
    let bf16_words = |elems: usize| (elems * 2).div_ceil(8);
    let x: Vec<u64> = (0..bf16_words(m * k) as u64)
        .map(|i| (i * 2654435761) & 0x3F00_3F00_3F00_3F00)
        .collect();
    let w: Vec<u64> = (0..bf16_words(experts * k * n) as u64)
        .map(|i| (i * 40503) & 0x3E00_3E00_3E00_3E00)
        .collect();
    let counts: Vec<i64> = vec![rows_per as i64; experts];
    let mut out = vec![0u64; bf16_words(m * n)];
    let args = GroupedMatmulV4Args {
        x: vec![TensorArg::contiguous(
            x.as_ptr() as *mut u8,
            DType::BF16,
            &[m as i64, k as i64],
        )],
        // Weight stored (e, N, K), passed as the (e, K, N) transposed view.
        weight: vec![TensorArg {
            ptr: w.as_ptr() as *mut u8,
            dtype: DType::BF16,
            shape: vec![experts as i64, k as i64, n as i64],
            strides: vec![(n * k) as i64, 1, k as i64],
            offset: 0,
        }],
        group_list: Some(TensorArg::contiguous(
            counts.as_ptr() as *mut u8,
            DType::I64,
            &[experts as i64],
        )),
        split_item: 3,
        group_type: 0,
        group_list_type: 1,
        out: vec![TensorArg::contiguous(
            out.as_mut_ptr() as *mut u8,
            DType::BF16,
            &[m as i64, n as i64],
        )],
        ..Default::default()
    };
    group.throughput(Throughput::Elements(2 * (m * k * n) as u64));
    group.bench_function(format!("BF16_e{experts}_m{m}_k{k}_n{n}"), |bch| {
        bch.iter(|| {
            // SAFETY: every view lies inside its buffer, all of which live
            // until the end of this function.
            unsafe { grouped_matmul::run(black_box(&args)) }.unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, square, grouped);
criterion_main!(benches);
