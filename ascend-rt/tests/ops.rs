//! Every typed operator through ascend-rt on the mock, against naive host
//! references written here, on random inputs; edge cases (k = E, one
//! token, experts without tokens, transposed views); invalid inputs refused
//! in Rust before any FFI call, and refusals by the runtime surfacing as
//! `Error::Aclnn`; repeatable executors; and a repeated MoE pipeline that
//! makes no device allocation after its first pass.
#![cfg(feature = "mock")]

mod common;

use std::sync::Arc;

use ascend_rt::ops::{self, GatingNorm, GatingTopKParams, GroupList, GroupSelect};
use ascend_rt::{AclnnCode, Error, Format, Stream, Tensor, TensorArg, TensorArgMut, bf16, f16};

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in [-1, 1).
    fn f(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.f()).collect()
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn setup() -> Arc<Stream> {
    let ctx = common::ctx();
    ctx.new_stream().unwrap()
}

fn t(s: &Arc<Stream>, data: &[f32], shape: &[usize]) -> Tensor<f32> {
    Tensor::from_slice(s, data, shape).unwrap()
}

fn close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{i}]: got {g}, want {w}"
        );
    }
}

fn invalid(r: Result<impl std::fmt::Debug, Error>, needle: &str) {
    match r {
        Err(Error::InvalidArgument { reason, .. }) => {
            assert!(
                reason.contains(needle),
                "reason {reason:?} lacks {needle:?}"
            )
        }
        other => panic!("expected InvalidArgument containing {needle:?}, got {other:?}"),
    }
}

/// Naive `[M,K] @ [K,N]`.
fn mm(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
        }
    }
    out
}

fn transpose(a: &[f32], r: usize, c: usize) -> Vec<f32> {
    let mut out = vec![0.0; r * c];
    for i in 0..r {
        for j in 0..c {
            out[j * r + i] = a[i * c + j];
        }
    }
    out
}

#[test]
fn matmul_plain_batched_and_transposed() {
    let s = setup();
    let mut rng = Rng::new(1);
    let (m, k, n) = (5, 7, 3);
    let a = rng.vec(m * k);
    let b = rng.vec(k * n);
    let out = ops::matmul(&s, &t(&s, &a, &[m, k]), &t(&s, &b, &[k, n])).unwrap();
    assert_eq!(out.shape(), &[m, n]);
    close(&out.to_vec().unwrap(), &mm(&a, &b, m, k, n), 1e-5, "matmul");

    // b given as the transposed view of a [N, K] buffer.
    let bt = transpose(&b, k, n); // [n, k]
    let bt_dev = t(&s, &bt, &[n, k]);
    let out = ops::matmul(&s, &t(&s, &a, &[m, k]), &bt_dev.view().t().unwrap()).unwrap();
    close(
        &out.to_vec().unwrap(),
        &mm(&a, &b, m, k, n),
        1e-5,
        "matmul b^T",
    );

    // Batched a [2, M, K] with b [K, N] broadcast.
    let a2 = rng.vec(2 * m * k);
    let out = ops::matmul(&s, &t(&s, &a2, &[2, m, k]), &t(&s, &b, &[k, n])).unwrap();
    assert_eq!(out.shape(), &[2, m, n]);
    let mut want = mm(&a2[..m * k], &b, m, k, n);
    want.extend(mm(&a2[m * k..], &b, m, k, n));
    close(&out.to_vec().unwrap(), &want, 1e-5, "batched");

    // f16 in, f16 out.
    let ah: Vec<f16> = a.iter().map(|&v| f16::from_f32(v)).collect();
    let bh: Vec<f16> = b.iter().map(|&v| f16::from_f32(v)).collect();
    let out = ops::matmul(
        &s,
        &Tensor::from_slice(&s, &ah, &[m, k]).unwrap(),
        &Tensor::from_slice(&s, &bh, &[k, n]).unwrap(),
    )
    .unwrap();
    let got: Vec<f32> = out.to_vec().unwrap().iter().map(|v| v.to_f32()).collect();
    let a32: Vec<f32> = ah.iter().map(|v| v.to_f32()).collect();
    let b32: Vec<f32> = bh.iter().map(|v| v.to_f32()).collect();
    close(&got, &mm(&a32, &b32, m, k, n), 2e-3, "f16 matmul");

    // Into a given output.
    let mut o = Tensor::<f32>::zeros(&s, &[m, n]).unwrap();
    ops::matmul_into(&s, &t(&s, &a, &[m, k]), &t(&s, &b, &[k, n]), &mut o).unwrap();
    close(&o.to_vec().unwrap(), &mm(&a, &b, m, k, n), 1e-5, "into");
}

#[test]
fn matmul_refuses_bad_shapes_and_types() {
    let s = setup();
    let a = t(&s, &[0.0; 6], &[2, 3]);
    invalid(
        ops::matmul(&s, &a, &t(&s, &[0.0; 8], &[4, 2])),
        "inner dimensions",
    );
    invalid(ops::matmul(&s, &a, &t(&s, &[0.0; 3], &[3])), "rank 2..=6");
    let ai = Tensor::from_slice(&s, &[0i32; 6], &[2, 3]).unwrap();
    let bi = Tensor::from_slice(&s, &[0i32; 6], &[3, 2]).unwrap();
    invalid(ops::matmul(&s, &ai, &bi), "f32, f16 or bf16");
    let mut wrong = Tensor::<f32>::zeros(&s, &[2, 3]).unwrap();
    invalid(
        ops::matmul_into(&s, &a, &t(&s, &[0.0; 6], &[3, 2]), &mut wrong),
        "out has shape",
    );
}

#[test]
fn add_and_mul_broadcast() {
    let s = setup();
    let mut rng = Rng::new(2);
    let a = rng.vec(12);
    let b = rng.vec(4);
    let out = ops::add(&s, &t(&s, &a, &[3, 4]), &t(&s, &b, &[4]), -0.5).unwrap();
    let want: Vec<f32> = (0..12).map(|i| a[i] - 0.5 * b[i % 4]).collect();
    close(&out.to_vec().unwrap(), &want, 1e-6, "add");
    let c = rng.vec(3);
    let out = ops::mul(&s, &t(&s, &a, &[3, 4]), &t(&s, &c, &[3, 1])).unwrap();
    let want: Vec<f32> = (0..12).map(|i| a[i] * c[i / 4]).collect();
    close(&out.to_vec().unwrap(), &want, 1e-6, "mul");
    // A transposed operand.
    let at = t(&s, &a, &[3, 4]);
    let out = ops::add(
        &s,
        &at.view().t().unwrap(),
        &t(&s, &[1.0; 12], &[4, 3]),
        1.0,
    )
    .unwrap();
    let want: Vec<f32> = transpose(&a, 3, 4).iter().map(|v| v + 1.0).collect();
    close(&out.to_vec().unwrap(), &want, 1e-6, "add transposed");
    // Integers.
    let x = Tensor::from_slice(&s, &[1i32, 2, 3], &[3]).unwrap();
    let y = Tensor::from_slice(&s, &[10i32, 20, 30], &[3]).unwrap();
    assert_eq!(
        ops::add(&s, &x, &y, 2.0).unwrap().to_vec().unwrap(),
        [21, 42, 63]
    );
    assert_eq!(
        ops::mul(&s, &x, &y).unwrap().to_vec().unwrap(),
        [10, 40, 90]
    );

    invalid(
        ops::add(&s, &t(&s, &a, &[3, 4]), &t(&s, &c, &[3]), 1.0),
        "do not broadcast",
    );
    invalid(ops::add(&s, &x, &y, 0.5), "not a value of i32");
    invalid(
        ops::add(&s, &t(&s, &b, &[4]), &t(&s, &b, &[4]), f64::NAN),
        "not finite",
    );
    invalid(
        ops::mul(&s, &t(&s, &a, &[3, 4]), &t(&s, &b, &[2, 2])),
        "do not broadcast",
    );
}

#[test]
fn rms_norm_softmax_and_swiglu() {
    let s = setup();
    let mut rng = Rng::new(3);
    let (rows, h) = (6, 8);
    let x = rng.vec(rows * h);
    let g = rng.vec(h);
    let eps = 1e-6;
    let (y, rstd) = ops::rms_norm(&s, &t(&s, &x, &[2, 3, h]), &t(&s, &g, &[h]), eps).unwrap();
    assert_eq!(rstd.shape(), &[2, 3, 1]);
    let mut wy = Vec::new();
    let mut wr = Vec::new();
    for r in 0..rows {
        let row = &x[r * h..(r + 1) * h];
        let ms = row.iter().map(|v| v * v).sum::<f32>() / h as f32;
        let inv = 1.0 / (ms + eps as f32).sqrt();
        wr.push(inv);
        wy.extend(row.iter().zip(&g).map(|(v, gg)| v * inv * gg));
    }
    close(&y.to_vec().unwrap(), &wy, 1e-5, "rms y");
    close(&rstd.to_vec().unwrap(), &wr, 1e-5, "rms rstd");

    let sm = ops::softmax(&s, &t(&s, &x, &[rows, h]), -1).unwrap();
    let mut want = Vec::new();
    for r in 0..rows {
        let row = &x[r * h..(r + 1) * h];
        let mx = row.iter().cloned().fold(f32::MIN, f32::max);
        let e: Vec<f32> = row.iter().map(|v| (v - mx).exp()).collect();
        let sum: f32 = e.iter().sum();
        want.extend(e.iter().map(|v| v / sum));
    }
    close(&sm.to_vec().unwrap(), &want, 1e-5, "softmax");
    // Along dim 0 = along rows of the transposed problem.
    let sm0 = ops::softmax(&s, &t(&s, &x, &[rows, h]), 0).unwrap();
    let xt = transpose(&x, rows, h);
    let mut want0 = Vec::new();
    for c in 0..h {
        let col = &xt[c * rows..(c + 1) * rows];
        let mx = col.iter().cloned().fold(f32::MIN, f32::max);
        let e: Vec<f32> = col.iter().map(|v| (v - mx).exp()).collect();
        let sum: f32 = e.iter().sum();
        want0.extend(e.iter().map(|v| v / sum));
    }
    close(
        &sm0.to_vec().unwrap(),
        &transpose(&want0, h, rows),
        1e-5,
        "softmax dim 0",
    );

    let sw = ops::swiglu(&s, &t(&s, &x, &[rows, h]), -1).unwrap();
    assert_eq!(sw.shape(), &[rows, h / 2]);
    let mut want = Vec::new();
    for r in 0..rows {
        let row = &x[r * h..(r + 1) * h];
        for j in 0..h / 2 {
            let a = row[j];
            want.push(a / (1.0 + (-a).exp()) * row[j + h / 2]);
        }
    }
    close(&sw.to_vec().unwrap(), &want, 1e-5, "swiglu");

    // Refusals.
    let xt = t(&s, &x, &[rows, h]);
    invalid(
        ops::rms_norm(&s, &xt, &t(&s, &g[..4], &[4]), eps),
        "trailing dimensions",
    );
    invalid(ops::rms_norm(&s, &xt, &t(&s, &g, &[h]), -1.0), "eps");
    invalid(ops::softmax(&s, &xt, 2), "out of range");
    invalid(ops::swiglu(&s, &t(&s, &x[..42], &[6, 7]), 1), "odd size");
    invalid(
        ops::swiglu(&s, &xt.view().t().unwrap(), 0),
        "not contiguous",
    );
}

/// Softmax top-k reference: (weights, ids) per row, best first, ties to
/// the lower id.
fn topk_softmax(x: &[f32], e: usize, k: usize) -> (Vec<f32>, Vec<i32>) {
    let mut w = Vec::new();
    let mut ids = Vec::new();
    for row in x.chunks(e) {
        let mx = row.iter().cloned().fold(f32::MIN, f32::max);
        let ex: Vec<f32> = row.iter().map(|v| (v - mx).exp()).collect();
        let sum: f32 = ex.iter().sum();
        let mut order: Vec<usize> = (0..e).collect();
        order.sort_by(|&a, &b| ex[b].partial_cmp(&ex[a]).unwrap().then(a.cmp(&b)));
        for &i in &order[..k] {
            w.push(ex[i] / sum);
            ids.push(i as i32);
        }
    }
    (w, ids)
}

#[test]
fn gating_top_k_softmax_including_k_equal_e_and_one_token() {
    let s = setup();
    let mut rng = Rng::new(4);
    for (n, e, k) in [(7, 8, 3), (5, 6, 6), (1, 16, 4)] {
        let x = rng.vec(n * e);
        let r = ops::moe_gating_top_k_softmax(&s, &t(&s, &x, &[n, e]), k).unwrap();
        let (w, ids) = topk_softmax(&x, e, k);
        close(&r.weights.to_vec().unwrap(), &w, 1e-5, "weights");
        assert_eq!(r.expert_idx.to_vec().unwrap(), ids);
        let rows: Vec<i32> = (0..n)
            .flat_map(|tk| (0..k).map(move |j| (j * n + tk) as i32))
            .collect();
        assert_eq!(r.row_idx.to_vec().unwrap(), rows);
    }
    let x = t(&s, &[0.0; 8], &[2, 4]);
    invalid(ops::moe_gating_top_k_softmax(&s, &x, 5), "1 <= k");
    invalid(ops::moe_gating_top_k_softmax(&s, &x, 0), "1 <= k");
    invalid(
        ops::moe_gating_top_k_softmax(&s, &t(&s, &[0.0; 4], &[4]), 1),
        "rank 2..=3",
    );
}

/// DeepSeek-V3 grouped routing reference.
fn gating_ref(
    x: &[f32],
    bias: &[f32],
    e: usize,
    p: &GatingTopKParams,
) -> (Vec<f32>, Vec<i32>, Vec<f32>) {
    let per = e / p.group_count;
    let (mut w_all, mut id_all, mut s_all) = (Vec::new(), Vec::new(), Vec::new());
    for row in x.chunks(e) {
        let sc: Vec<f32> = match p.norm {
            GatingNorm::Sigmoid => row.iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect(),
            GatingNorm::Softmax => {
                let mx = row.iter().cloned().fold(f32::MIN, f32::max);
                let ex: Vec<f32> = row.iter().map(|v| (v - mx).exp()).collect();
                let sum: f32 = ex.iter().sum();
                ex.iter().map(|v| v / sum).collect()
            }
        };
        let sel: Vec<f32> = sc.iter().zip(bias).map(|(a, b)| a + b).collect();
        let gscore: Vec<f32> = (0..p.group_count)
            .map(|g| {
                let mut v = sel[g * per..(g + 1) * per].to_vec();
                v.sort_by(|a, b| b.partial_cmp(a).unwrap());
                match p.group_select {
                    GroupSelect::Max => v[0],
                    GroupSelect::TopTwoSum => v[0] + v[1],
                }
            })
            .collect();
        let mut groups: Vec<usize> = (0..p.group_count).collect();
        groups.sort_by(|&a, &b| gscore[b].partial_cmp(&gscore[a]).unwrap().then(a.cmp(&b)));
        let kept = &groups[..p.k_group];
        let mut cand: Vec<usize> = (0..e).filter(|i| kept.contains(&(i / per))).collect();
        cand.sort_by(|&a, &b| sel[b].partial_cmp(&sel[a]).unwrap().then(a.cmp(&b)));
        let chosen = &cand[..p.k];
        let w: Vec<f32> = chosen.iter().map(|&i| sc[i]).collect();
        let sum: f32 = w.iter().sum();
        for (&i, &wi) in chosen.iter().zip(&w) {
            let y = match p.norm {
                GatingNorm::Sigmoid => wi / (sum + p.eps as f32),
                GatingNorm::Softmax => wi,
            } * p.routed_scaling_factor as f32;
            w_all.push(y);
            id_all.push(i as i32);
        }
        s_all.extend(sc);
    }
    (w_all, id_all, s_all)
}

#[test]
fn gating_top_k_deepseek_form() {
    let s = setup();
    let mut rng = Rng::new(5);
    let e = 32;
    let cases = [
        (
            6,
            GatingTopKParams::new(4)
                .groups(8, 2)
                .group_select(GroupSelect::TopTwoSum)
                .routed_scaling_factor(2.5),
        ),
        (1, GatingTopKParams::new(3).groups(4, 1)),
        (
            4,
            GatingTopKParams::new(32)
                .groups(4, 4)
                .norm(GatingNorm::Softmax)
                .routed_scaling_factor(1.5),
        ),
        (
            3,
            GatingTopKParams::new(8)
                .groups(8, 4)
                .group_select(GroupSelect::TopTwoSum)
                .output_scores(true),
        ),
    ];
    for (n, p) in cases {
        let x = rng.vec(n * e);
        let bias: Vec<f32> = rng.vec(e).iter().map(|v| v * 0.1).collect();
        let b = t(&s, &bias, &[e]);
        let r = ops::moe_gating_top_k(&s, &t(&s, &x, &[n, e]), Some(&b.view()), &p).unwrap();
        let (w, ids, sc) = gating_ref(&x, &bias, e, &p);
        assert_eq!(r.expert_idx.to_vec().unwrap(), ids, "{p:?}");
        close(&r.weights.to_vec().unwrap(), &w, 1e-5, "gating weights");
        match r.scores {
            Some(scores) => close(&scores.to_vec().unwrap(), &sc, 1e-5, "scores"),
            None => assert!(!p.output_scores),
        }
    }
    // Without bias.
    let x = rng.vec(2 * e);
    let p = GatingTopKParams::new(2);
    let r = ops::moe_gating_top_k(&s, &t(&s, &x, &[2, e]), None, &p).unwrap();
    let (w, ids, _) = gating_ref(&x, &[0.0; 32], e, &p);
    assert_eq!(r.expert_idx.to_vec().unwrap(), ids);
    close(&r.weights.to_vec().unwrap(), &w, 1e-5, "no bias");
    assert_eq!(GatingTopKParams::deepseek_v3().routed_scaling_factor, 2.5);

    let xt = t(&s, &x, &[2, e]);
    invalid(
        ops::moe_gating_top_k(&s, &xt, None, &GatingTopKParams::new(2).groups(5, 1)),
        "equal groups",
    );
    invalid(
        ops::moe_gating_top_k(&s, &xt, None, &GatingTopKParams::new(2).groups(4, 5)),
        "k_group",
    );
    invalid(
        ops::moe_gating_top_k(&s, &xt, None, &GatingTopKParams::new(9).groups(4, 1)),
        "k = 9",
    );
    invalid(
        ops::moe_gating_top_k(&s, &xt, None, &GatingTopKParams::new(0)),
        "k = 0",
    );
    invalid(
        ops::moe_gating_top_k(&s, &xt, None, &GatingTopKParams::new(2).eps(f64::NAN)),
        "eps",
    );
    let wrong_bias = t(&s, &[0.0; 8], &[8]);
    invalid(
        ops::moe_gating_top_k(&s, &xt, Some(&wrong_bias.view()), &GatingTopKParams::new(2)),
        "bias has shape",
    );
}

#[test]
fn gating_top_k_in_bf16_rounds_once() {
    let s = setup();
    let mut rng = Rng::new(11);
    let (n, e) = (4, 16);
    let x: Vec<bf16> = rng.vec(n * e).iter().map(|&v| bf16::from_f32(v)).collect();
    let x32: Vec<f32> = x.iter().map(|v| v.to_f32()).collect();
    let p = GatingTopKParams::new(4)
        .groups(4, 2)
        .group_select(GroupSelect::TopTwoSum);
    let r =
        ops::moe_gating_top_k(&s, &Tensor::from_slice(&s, &x, &[n, e]).unwrap(), None, &p).unwrap();
    let (w, ids, _) = gating_ref(&x32, &[0.0; 16], e, &p);
    assert_eq!(r.expert_idx.to_vec().unwrap(), ids);
    let got: Vec<f32> = r
        .weights
        .to_vec()
        .unwrap()
        .iter()
        .map(|v| v.to_f32())
        .collect();
    close(&got, &w, 8e-3, "bf16 weights");
}

/// Reference of dropless routing in the row-major index space.
fn routing_ref(ids: &[i32], n: usize, k: usize, e: usize) -> (Vec<usize>, Vec<i32>, Vec<i64>) {
    let mut order: Vec<usize> = (0..n * k).collect();
    order.sort_by_key(|&i| ids[i]); // stable
    let mut row_idx = vec![0i32; n * k];
    for (pos, &src) in order.iter().enumerate() {
        row_idx[src] = pos as i32;
    }
    let mut counts = vec![0i64; e];
    for &id in ids {
        counts[id as usize] += 1;
    }
    (order, row_idx, counts)
}

#[test]
fn init_routing_grouped_matmul_and_finalize_against_references() {
    let s = setup();
    let mut rng = Rng::new(6);
    let (n, k, e, h, out_dim) = (5, 2, 4, 6, 3);
    let x = rng.vec(n * h);
    // Expert 2 receives no token.
    let ids: Vec<i32> = (0..n * k).map(|_| [0, 1, 3][rng.below(3)]).collect();
    let routed = ops::moe_init_routing(
        &s,
        &t(&s, &x, &[n, h]),
        &Tensor::from_slice(&s, &ids, &[n, k]).unwrap(),
        e,
    )
    .unwrap();
    let (order, row_idx, counts) = routing_ref(&ids, n, k, e);
    assert_eq!(counts[2], 0);
    let want_x: Vec<f32> = order
        .iter()
        .flat_map(|&src| x[(src / k) * h..(src / k + 1) * h].to_vec())
        .collect();
    assert_eq!(routed.expanded_x.to_vec().unwrap(), want_x);
    assert_eq!(routed.expanded_row_idx.to_vec().unwrap(), row_idx);
    assert_eq!(routed.tokens_per_expert.to_vec().unwrap(), counts);

    // Grouped matmul, weights stored [E, N, K] and viewed as [E, K, N].
    let w_nk = rng.vec(e * out_dim * h);
    let w_dev = t(&s, &w_nk, &[e, out_dim, h]);
    let w_view = w_dev.view().transpose(1, 2).unwrap();
    let y = ops::grouped_matmul(
        &s,
        &routed.expanded_x,
        &w_view,
        &routed.tokens_per_expert,
        GroupList::Counts,
    )
    .unwrap();
    let mut want_y = Vec::new();
    let mut row = 0;
    for (g, &c) in counts.iter().enumerate() {
        let wg = transpose(&w_nk[g * out_dim * h..(g + 1) * out_dim * h], out_dim, h); // [h, out]
        want_y.extend(mm(
            &want_x[row * h..(row + c as usize) * h],
            &wg,
            c as usize,
            h,
            out_dim,
        ));
        row += c as usize;
    }
    close(&y.to_vec().unwrap(), &want_y, 1e-5, "grouped matmul");
    // The same with a cumulative list.
    let cum: Vec<i64> = counts
        .iter()
        .scan(0, |acc, &c| {
            *acc += c;
            Some(*acc)
        })
        .collect();
    let cum_dev = Tensor::from_slice(&s, &cum, &[e]).unwrap();
    let y2 =
        ops::grouped_matmul(&s, &routed.expanded_x, &w_view, &cum_dev, GroupList::Cumsum).unwrap();
    close(
        &y2.to_vec().unwrap(),
        &want_y,
        1e-5,
        "grouped matmul cumsum",
    );

    // Finalize with scales, skip and bias.
    let scales = rng.vec(n * k);
    let skip = rng.vec(n * out_dim);
    let bias = rng.vec(e * out_dim);
    let sc_dev = t(&s, &scales, &[n, k]);
    let sk_dev = t(&s, &skip, &[n, out_dim]);
    let b_dev = t(&s, &bias, &[e, out_dim]);
    let id_dev = Tensor::from_slice(&s, &ids, &[n, k]).unwrap();
    let out = ops::moe_finalize_routing(
        &s,
        &y,
        &routed.expanded_row_idx,
        Some(&sc_dev.view()),
        Some(&id_dev.view()),
        Some(&sk_dev.view()),
        Some(&b_dev.view()),
    )
    .unwrap();
    let mut want = skip.clone();
    for tk in 0..n {
        for j in 0..k {
            let r = row_idx[tk * k + j] as usize;
            let ex = ids[tk * k + j] as usize;
            for c in 0..out_dim {
                want[tk * out_dim + c] +=
                    scales[tk * k + j] * (want_y[r * out_dim + c] + bias[ex * out_dim + c]);
            }
        }
    }
    close(&out.to_vec().unwrap(), &want, 1e-5, "finalize");
    // Without optional terms: a plain weighted-less un-permute with K = 1.
    let plain = ops::moe_finalize_routing(&s, &y, &routed.expanded_row_idx, None, None, None, None)
        .unwrap();
    assert_eq!(plain.shape(), &[n * k, out_dim]);
    let want_plain: Vec<f32> = (0..n * k)
        .flat_map(|i| {
            let r = row_idx[i] as usize;
            want_y[r * out_dim..(r + 1) * out_dim].to_vec()
        })
        .collect();
    close(
        &plain.to_vec().unwrap(),
        &want_plain,
        1e-6,
        "plain finalize",
    );

    // Refusals.
    let xd = t(&s, &x, &[n, h]);
    let ids3 = Tensor::from_slice(&s, &ids[..6], &[3, 2]).unwrap();
    invalid(ops::moe_init_routing(&s, &xd, &ids3, e), "rows");
    let idd = Tensor::from_slice(&s, &ids, &[n, k]).unwrap();
    invalid(ops::moe_init_routing(&s, &xd, &idd, 0), "num_experts");
    invalid(
        ops::grouped_matmul(
            &s,
            &routed.expanded_x,
            &t(&s, &w_nk, &[e, h, out_dim])
                .view()
                .narrow(1, 0, 5)
                .unwrap(),
            &routed.tokens_per_expert,
            GroupList::Counts,
        ),
        "K 6 and 5",
    );
    let short = Tensor::from_slice(&s, &[1i64, 2], &[2]).unwrap();
    invalid(
        ops::grouped_matmul(&s, &routed.expanded_x, &w_view, &short, GroupList::Counts),
        "group_list has shape",
    );
    invalid(
        ops::moe_finalize_routing(
            &s,
            &y,
            &routed.expanded_row_idx,
            None,
            None,
            None,
            Some(&b_dev.view()),
        ),
        "bias needs expert_idx",
    );
    let sc_bad = t(&s, &scales[..8], &[4, 2]);
    invalid(
        ops::moe_finalize_routing(
            &s,
            &y,
            &routed.expanded_row_idx,
            Some(&sc_bad.view()),
            None,
            None,
            None,
        ),
        "N·K",
    );
}

#[test]
fn one_token_routed_to_every_expert() {
    let s = setup();
    let mut rng = Rng::new(7);
    let (e, h) = (4, 5);
    let x = rng.vec(h);
    let ids = [3i32, 0, 2, 1]; // k = E, one token
    let r = ops::moe_init_routing(
        &s,
        &t(&s, &x, &[1, h]),
        &Tensor::from_slice(&s, &ids, &[1, 4]).unwrap(),
        e,
    )
    .unwrap();
    assert_eq!(r.tokens_per_expert.to_vec().unwrap(), vec![1; 4]);
    assert_eq!(r.expanded_row_idx.to_vec().unwrap(), vec![3, 0, 2, 1]);
    assert_eq!(r.expanded_x.to_vec().unwrap(), x.repeat(4));
}

#[test]
fn the_runtime_refusal_is_an_aclnn_error_with_code_and_message() {
    let s = setup();
    // A blocked (NZ) format passes Rust's shape checks but not the
    // operator's: softmax takes ND only.
    let x = t(&s, &[0.5; 16], &[4, 4]).with_format(Format::FractalNz);
    match ops::softmax(&s, &x, -1) {
        Err(Error::Aclnn { api, code, message }) => {
            assert_eq!(api, "aclnnSoftmaxGetWorkspaceSize");
            assert_eq!(code, AclnnCode::ACLNN_ERR_PARAM_INVALID);
            assert!(message.contains("format"), "message: {message}");
            let line = Error::Aclnn { api, code, message }.to_string();
            assert!(
                line.starts_with(
                    "aclnnSoftmaxGetWorkspaceSize failed: 161002 ACLNN_ERR_PARAM_INVALID: "
                ),
                "{line}"
            );
        }
        other => panic!("expected an aclnn error, got {other:?}"),
    }
}

#[test]
fn a_prepared_matmul_runs_again_on_other_buffers() {
    let s = setup();
    let mut rng = Rng::new(8);
    let (m, k, n) = (3, 4, 2);
    let (a1, b1, a2) = (rng.vec(m * k), rng.vec(k * n), rng.vec(m * k));
    let (ta1, tb1, ta2) = (
        t(&s, &a1, &[m, k]),
        t(&s, &b1, &[k, n]),
        t(&s, &a2, &[m, k]),
    );
    let mut out = Tensor::<f32>::zeros(&s, &[m, n]).unwrap();
    let mut op = ops::prepare_matmul(&s, &ta1, &tb1, &mut out).unwrap();
    assert_eq!(op.arity(), (2, 1));
    op.run(&s, &[&ta1, &tb1], &mut [&mut out]).unwrap();
    close(
        &out.to_vec().unwrap(),
        &mm(&a1, &b1, m, k, n),
        1e-5,
        "run 1",
    );
    let mut out2 = Tensor::<f32>::zeros(&s, &[m, n]).unwrap();
    op.run(&s, &[&ta2, &tb1], &mut [&mut out2]).unwrap();
    close(
        &out2.to_vec().unwrap(),
        &mm(&a2, &b1, m, k, n),
        1e-5,
        "run 2",
    );
    // Another stream.
    let s2 = s.context().new_stream().unwrap();
    op.run(
        &s2,
        &[&ta1 as &dyn TensorArg, &tb1],
        &mut [&mut out as &mut dyn TensorArgMut],
    )
    .unwrap();
    close(
        &out.to_vec().unwrap(),
        &mm(&a1, &b1, m, k, n),
        1e-5,
        "run 3",
    );
    // Other layouts are refused.
    let wrong = t(&s, &a1, &[k, m]);
    invalid(
        op.run(&s, &[&wrong, &tb1], &mut [&mut out]),
        "was prepared as",
    );
    invalid(op.run(&s, &[&ta1], &mut [&mut out]), "takes 2 inputs");
}

#[test]
fn a_prepared_add_follows_new_buffers_and_keeps_its_alpha() {
    let s = setup();
    let mut rng = Rng::new(10);
    let (x1, y1) = (rng.vec(6), rng.vec(6));
    let (tx, ty) = (t(&s, &x1, &[2, 3]), t(&s, &y1, &[2, 3]));
    let mut out = Tensor::<f32>::zeros(&s, &[2, 3]).unwrap();
    let mut op = ops::prepare_add(&s, &tx, &ty, 3.0, &mut out).unwrap();
    for round in 0..4 {
        // Fresh pooled buffers each round: the executor's addresses move.
        let a = rng.vec(6);
        let b = rng.vec(6);
        let (ta, tb) = (t(&s, &a, &[2, 3]), t(&s, &b, &[2, 3]));
        let mut o = Tensor::<f32>::zeros(&s, &[2, 3]).unwrap();
        op.run(&s, &[&ta, &tb], &mut [&mut o]).unwrap();
        let want: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + 3.0 * y).collect();
        close(&o.to_vec().unwrap(), &want, 1e-6, &format!("round {round}"));
    }
    invalid(
        ops::prepare_add(&s, &tx, &ty, f64::INFINITY, &mut out),
        "not finite",
    );
}

/// An operator's output read by an operator on another stream: the second
/// stream waits for the first (held back by a sleeping host function), or
/// it would read the output's stale contents.
#[test]
fn operators_on_two_streams_are_ordered_by_their_tensors() {
    let s1 = setup();
    let s2 = s1.context().new_stream().unwrap();
    let a = t(&s1, &[1.0, 2.0, 3.0, 4.0], &[2, 2]);
    let eye = t(&s1, &[1.0, 0.0, 0.0, 1.0], &[2, 2]);
    let mut prod = Tensor::<f32>::zeros(&s1, &[2, 2]).unwrap();
    s1.launch_host_fn(|| std::thread::sleep(std::time::Duration::from_millis(200)))
        .unwrap();
    ops::matmul_into(&s1, &a, &eye, &mut prod).unwrap(); // after the sleep
    let sum = ops::add(&s2, &prod, &a, 1.0).unwrap(); // must wait for s1
    assert_eq!(sum.to_vec().unwrap(), [2.0, 4.0, 6.0, 8.0]);
    // And a write on s2 to a tensor s1 still reads waits for that read.
    s1.launch_host_fn(|| std::thread::sleep(std::time::Duration::from_millis(200)))
        .unwrap();
    let copy = ops::add(&s1, &prod, &eye, 0.0).unwrap(); // reads prod late
    ops::mul_into(&s2, &a, &eye, &mut prod).unwrap(); // overwrites prod
    assert_eq!(copy.to_vec().unwrap(), [1.0, 2.0, 3.0, 4.0]);
    assert_eq!(prod.to_vec().unwrap(), [1.0, 0.0, 0.0, 4.0]);
}

/// One MoE layer: router, gating, routing, expert FFN, finalize, residual.
fn moe_layer(s: &Arc<Stream>, x: &Tensor<f32>, w: &Weights) -> Tensor<f32> {
    let (n, _) = (x.shape()[0], x.shape()[1]);
    let logits = ops::matmul(s, x, &w.router.view().t().unwrap()).unwrap();
    let p = GatingTopKParams::new(2).groups(2, 1);
    let g = ops::moe_gating_top_k(s, &logits, None, &p).unwrap();
    let r = ops::moe_init_routing(s, x, &g.expert_idx, w.experts).unwrap();
    let up = ops::grouped_matmul(
        s,
        &r.expanded_x,
        &w.w13,
        &r.tokens_per_expert,
        GroupList::Counts,
    )
    .unwrap();
    let act = ops::swiglu(s, &up, -1).unwrap();
    let down =
        ops::grouped_matmul(s, &act, &w.w2, &r.tokens_per_expert, GroupList::Counts).unwrap();
    let shared = ops::matmul(s, x, &w.shared).unwrap();
    let y = ops::moe_finalize_routing(
        s,
        &down,
        &r.expanded_row_idx,
        Some(&g.weights.view()),
        Some(&g.expert_idx.view()),
        Some(&shared.view()),
        None,
    )
    .unwrap();
    let (normed, _) = ops::rms_norm(s, &y, &w.gamma, 1e-6).unwrap();
    let _ = n;
    ops::add(s, x, &normed, 1.0).unwrap()
}

struct Weights {
    router: Tensor<f32>,
    w13: Tensor<f32>,
    w2: Tensor<f32>,
    shared: Tensor<f32>,
    gamma: Tensor<f32>,
    experts: usize,
}

#[test]
fn a_repeated_moe_pipeline_makes_no_device_allocation_after_the_first_pass() {
    let s = setup();
    let mut rng = Rng::new(9);
    let (n, h, inter, e) = (6, 8, 4, 4);
    let w = Weights {
        router: t(&s, &rng.vec(e * h), &[e, h]),
        w13: t(&s, &rng.vec(e * h * 2 * inter), &[e, h, 2 * inter]),
        w2: t(&s, &rng.vec(e * inter * h), &[e, inter, h]),
        shared: t(&s, &rng.vec(h * h), &[h, h]),
        gamma: t(&s, &rng.vec(h), &[h]),
        experts: e,
    };
    let x = t(&s, &rng.vec(n * h), &[n, h]);
    let pool = s.context().pool();
    let first = moe_layer(&s, &x, &w).to_vec().unwrap();
    assert!(first.iter().all(|v| v.is_finite()));
    let allocs = pool.stats().device_allocs;
    let hits = pool.stats().cache_hits;
    for _ in 0..3 {
        let again = moe_layer(&s, &x, &w).to_vec().unwrap();
        assert_eq!(again, first);
        assert_eq!(pool.stats().device_allocs, allocs, "{:?}", pool.stats());
    }
    assert!(pool.stats().cache_hits > hits);
}
