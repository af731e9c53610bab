//! aclnnFusedInferAttentionScoreV2 and V3: `out = softmax(scale·QKᵀ + pse,
//! masked) V` per batch and query head, for prefill (Q_S > 1) and decode
//! (Q_S = 1). V3 adds MLA's rope parts: with `queryRope`/`keyRope` (D 64)
//! the score is `scale·(q·k + qRope·kRope)` and the value keeps its own D.
//!
//! What is computed (CANN's documented semantics; the mock's choices where
//! the documentation is silent are marked "choice" and listed in
//! docs/mock.md):
//! - `inputLayout` BSH, BSND, BNSD, and BNSD_BSND (BNSD in, BSND out,
//!   Q_S > 1 only). TND, NTD_TND and the other layouts of newer versions
//!   are refused by name.
//! - Grouped-query heads: query head `h` uses key/value head
//!   `h / (numHeads / numKeyValueHeads)`; `numKeyValueHeads` 0 means
//!   `numHeads`; the ratio divides and is at most 64.
//! - `key`/`value` lists of one tensor holding every batch, or of B
//!   tensors of batch 1 each (each with its own S).
//! - `actualSeqLengths` (Q_S > 1) and `actualSeqLengthsKv`: one value for
//!   every batch or at least B values (the first B used); rows of the query
//!   past its actual length are written as 0 (choice).
//! - `attenMask` (BOOL/INT8/UINT8, 1 = masked out) of the documented
//!   shapes, its last two axes at least (Q_S, KV_S) (padding allowed).
//! - `sparseMode` 0 (mask plus the preTokens/nextTokens band from the
//!   top-left corner, both ignored without a mask), 1 (mask only), 2
//!   (causal from the top-left corner), 3 (causal from the bottom-right
//!   corner: key j is seen by query i when j <= i + KV_S - Q_S), 4 (band
//!   around the bottom-right diagonal: preTokens before, nextTokens after).
//!   Modes 2-4 take CANN's compressed 2048×2048 mask, whose shape is
//!   checked but whose values are not read: the mode's rule is applied
//!   (choice). Modes 5-8 (prefix, global, dilated, block_local) are
//!   documented as not supported and refused by name. With Q_S = 1 the
//!   sparse mode, preTokens and nextTokens have no effect (documented).
//! - `pseShift` (B or 1, N, Q_S, KV_S), same dtype as the query, added
//!   after the scale (choice, following the FlashAttentionScore formula).
//! - `softmaxLse` (FLOAT, [B, N, Q_S, 1]) when `softmaxLseFlag`: the
//!   natural-log sum of exponentials of each row's scaled scores; a row
//!   that sees no key gets +inf and an output row of 0 (choice: the
//!   "invalid row correction" result, whatever `innerPrecise` says).
//! - Paged KV cache (`blockTable` [B, maxBlocks] INT32, `blockSize`):
//!   key/value of layout (blockNum, blockSize, H) or, with a BNSD query,
//!   (blockNum, KV_N, blockSize, D); `actualSeqLengthsKv` required; block
//!   ids are checked when the kernel runs (CANN does not check them; the
//!   mock refuses to read outside the cache).
//!
//! Refused by name when given: every quantization input (deqScale1,
//! quantScale1, deqScale2, quantScale2, quantOffset2, antiquantScale,
//! antiquantOffset, key/valueAntiquantScale/Offset), INT8 query/key/value
//! or output, left padding (queryPaddingSize, kvPaddingSize) and the shared
//! prefix (keySharedPrefix, valueSharedPrefix, actualSharedPrefixLen).
//!
//! Implementation: per (batch, KV head) the keys and values are gathered
//! once to f32; each query head of the group runs over tiles of
//! [`Q_TILE`] queries and [`KV_TILE`] keys with an online softmax (running
//! max and sum, output rescaled as the max grows), through the `gemm`
//! engine. No buffer grows with Q_S × KV_S: the per-task scratch is
//! [`scratch_floats`]. Key tiles wholly outside a row range's sparse band
//! are skipped. f16/bf16 inputs compute in f32, rounded once on store.

use rayon::prelude::*;

use crate::broadcast::{check_view, fmt_shape};
use crate::gemm::{MatRef, matmul_into};
use crate::tensor::{DType, KernelError, TensorArg};

/// Queries per tile.
pub const Q_TILE: usize = 64;
/// Keys per tile.
pub const KV_TILE: usize = 128;

/// f32 values of scratch one tile task holds (query tile, score tile,
/// output accumulator and product, row statistics) for head dim `d`
/// (with MLA, the query tile is `d + ROPE_DIM` wide: pass that).
pub fn scratch_floats(d: usize) -> usize {
    Q_TILE * d + Q_TILE * KV_TILE + 2 * Q_TILE * d + 2 * Q_TILE
}

/// Arguments of `aclnnFusedInferAttentionScoreV2GetWorkspaceSize`.
#[derive(Debug, Clone)]
pub struct FusedInferAttentionScoreV2Args {
    pub query: TensorArg,
    pub key: Vec<TensorArg>,
    pub value: Vec<TensorArg>,
    pub pse_shift: Option<TensorArg>,
    pub atten_mask: Option<TensorArg>,
    pub actual_seq_lengths: Option<Vec<i64>>,
    pub actual_seq_lengths_kv: Option<Vec<i64>>,
    pub deq_scale1: Option<TensorArg>,
    pub quant_scale1: Option<TensorArg>,
    pub deq_scale2: Option<TensorArg>,
    pub quant_scale2: Option<TensorArg>,
    pub quant_offset2: Option<TensorArg>,
    pub antiquant_scale: Option<TensorArg>,
    pub antiquant_offset: Option<TensorArg>,
    pub block_table: Option<TensorArg>,
    pub query_padding_size: Option<TensorArg>,
    pub kv_padding_size: Option<TensorArg>,
    pub key_antiquant_scale: Option<TensorArg>,
    pub key_antiquant_offset: Option<TensorArg>,
    pub value_antiquant_scale: Option<TensorArg>,
    pub value_antiquant_offset: Option<TensorArg>,
    pub key_shared_prefix: Option<TensorArg>,
    pub value_shared_prefix: Option<TensorArg>,
    pub actual_shared_prefix_len: Option<Vec<i64>>,
    /// V3's `queryRopeOptional` (MLA): the query's rope part, D = 64.
    pub query_rope: Option<TensorArg>,
    /// V3's `keyRopeOptional` (MLA): the key's rope part, D = 64.
    pub key_rope: Option<TensorArg>,
    /// V3's `keyRopeAntiquantScaleOptional`, documented as reserved.
    pub key_rope_antiquant_scale: Option<TensorArg>,
    pub num_heads: i64,
    pub scale_value: f64,
    pub pre_tokens: i64,
    pub next_tokens: i64,
    pub input_layout: String,
    pub num_key_value_heads: i64,
    pub sparse_mode: i64,
    pub inner_precise: i64,
    pub block_size: i64,
    pub antiquant_mode: i64,
    pub softmax_lse_flag: bool,
    pub key_antiquant_mode: i64,
    pub value_antiquant_mode: i64,
    pub attention_out: TensorArg,
    pub softmax_lse: Option<TensorArg>,
}

impl FusedInferAttentionScoreV2Args {
    /// Dense attention of `query` over one key/value tensor with CANN's
    /// recommended defaults for everything else (no mask, no actual
    /// lengths, preTokens/nextTokens 2147483647, numKeyValueHeads 0,
    /// sparseMode 0, innerPrecise 1, no LSE); callers set fields after.
    pub fn dense(
        query: TensorArg,
        key: TensorArg,
        value: TensorArg,
        attention_out: TensorArg,
        input_layout: &str,
        num_heads: i64,
        scale_value: f64,
    ) -> FusedInferAttentionScoreV2Args {
        FusedInferAttentionScoreV2Args {
            query,
            key: vec![key],
            value: vec![value],
            pse_shift: None,
            atten_mask: None,
            actual_seq_lengths: None,
            actual_seq_lengths_kv: None,
            deq_scale1: None,
            quant_scale1: None,
            deq_scale2: None,
            quant_scale2: None,
            quant_offset2: None,
            antiquant_scale: None,
            antiquant_offset: None,
            block_table: None,
            query_padding_size: None,
            kv_padding_size: None,
            key_antiquant_scale: None,
            key_antiquant_offset: None,
            value_antiquant_scale: None,
            value_antiquant_offset: None,
            key_shared_prefix: None,
            value_shared_prefix: None,
            actual_shared_prefix_len: None,
            query_rope: None,
            key_rope: None,
            key_rope_antiquant_scale: None,
            num_heads,
            scale_value,
            pre_tokens: 2147483647,
            next_tokens: 2147483647,
            input_layout: input_layout.to_string(),
            num_key_value_heads: 0,
            sparse_mode: 0,
            inner_precise: 1,
            block_size: 0,
            antiquant_mode: 0,
            softmax_lse_flag: false,
            key_antiquant_mode: 0,
            value_antiquant_mode: 0,
            attention_out,
            softmax_lse: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    Bsh,
    Bsnd,
    Bnsd,
    BnsdBsnd,
}

/// Element strides of a tensor seen as (batch, seq, head, dim).
#[derive(Debug, Clone, Copy)]
struct Axes {
    b: i64,
    s: i64,
    n: i64,
    d: i64,
}

/// Where the keys and values of a batch come from.
#[derive(Debug, Clone)]
enum Kv {
    /// One tensor per list element; element `b` (or 0 for all batches when
    /// the list has one member, then addressed with batch index `b`).
    Dense {
        axes: Vec<Axes>,
        seq: Vec<usize>,
        per_batch: bool,
    },
    /// A paged cache: block `blk` position `pos` of head `n` is at
    /// `blk*blk_stride + pos*axes.s + n*axes.n`.
    Paged {
        axes: Axes,
        blk_stride: i64,
        block: usize,
        blocks: usize,
        max_blocks: usize,
    },
}

/// Which keys a query row sees, beyond the explicit mask: the band
/// `[i + off - pre, i + off + next]`.
#[derive(Debug, Clone, Copy)]
struct Band {
    /// Whether the offset is KV_S - Q_S of the batch (bottom-right modes).
    right_down: bool,
    pre: i64,
    next: i64,
}

/// Everything `check` derives from the arguments.
#[derive(Debug, Clone)]
struct Plan {
    layout: Layout,
    b: usize,
    n: usize,
    nkv: usize,
    sq: usize,
    d: usize,
    q_axes: Axes,
    kv: Kv,
    /// Actual query / key lengths per batch.
    sq_len: Vec<usize>,
    skv_len: Vec<usize>,
    band: Option<Band>,
    /// Whether the mask's values are applied (modes 0 and 1, and decode).
    read_mask: bool,
    /// Mask strides: (batch, row, col); batch 0 when shared.
    mask: Option<(i64, i64, i64)>,
    /// pseShift strides: (batch, head, row, col).
    pse: Option<(i64, i64, i64, i64)>,
    /// MLA rope parts (V3): query axes, key axes (block stride for a paged
    /// cache), rope head dim.
    rope: Option<Rope>,
}

/// Where the rope parts of queries and keys are (V3's MLA inputs).
#[derive(Debug, Clone, Copy)]
struct Rope {
    q: Axes,
    k: Axes,
    k_blk_stride: i64,
    dr: usize,
}

/// The rope head dim of V3's MLA inputs.
pub const ROPE_DIM: usize = 64;

fn invalid(msg: String) -> KernelError {
    KernelError::invalid(msg)
}

fn layout_of(name: &str) -> Result<Layout, KernelError> {
    match name {
        "BSH" => Ok(Layout::Bsh),
        "BSND" => Ok(Layout::Bsnd),
        "BNSD" => Ok(Layout::Bnsd),
        "BNSD_BSND" => Ok(Layout::BnsdBsnd),
        "TND" | "NTD_TND" | "BSH_BNSD" | "BSND_BNSD" | "BNSD_NBSD" | "BSND_NBSD" | "BSH_NBSD"
        | "TND_NTD" | "NTD" | "NSD" | "SH" => Err(invalid(format!(
            "inputLayout {name} is not supported by the mock's aclnnFusedInferAttentionScoreV2 (supported: BSH, BSND, BNSD, BNSD_BSND)."
        ))),
        _ => Err(invalid(format!(
            "inputLayout {name:?} is not a layout of aclnnFusedInferAttentionScoreV2 (BSH, BSND, BNSD, BNSD_BSND)."
        ))),
    }
}

/// The (batch, seq, head, dim) strides of a 3-D BSH or 4-D BSND/BNSD view.
fn axes_of(t: &TensorArg, layout: Layout, d: i64) -> Axes {
    let st = &t.strides;
    match layout {
        Layout::Bsh => Axes {
            b: st[0],
            s: st[1],
            n: d * st[2],
            d: st[2],
        },
        Layout::Bsnd => Axes {
            b: st[0],
            s: st[1],
            n: st[2],
            d: st[3],
        },
        Layout::Bnsd | Layout::BnsdBsnd => Axes {
            b: st[0],
            s: st[2],
            n: st[1],
            d: st[3],
        },
    }
}

/// (B, S, N or H) of a view in `layout`, with the heads axis as stored.
fn bsx(t: &TensorArg, layout: Layout) -> (i64, i64, i64, Option<i64>) {
    let s = &t.shape;
    match layout {
        Layout::Bsh => (s[0], s[1], s[2], None),
        Layout::Bsnd => (s[0], s[1], s[2], Some(s[3])),
        Layout::Bnsd | Layout::BnsdBsnd => (s[0], s[2], s[1], Some(s[3])),
    }
}

/// Per-batch lengths from an actual-length array (one value, or at least
/// `b` values), each at most `limit[b]`.
fn lengths(
    arr: &Option<Vec<i64>>,
    b: usize,
    limit: &dyn Fn(usize) -> usize,
    name: &str,
) -> Result<Vec<usize>, KernelError> {
    let Some(v) = arr else {
        return Ok((0..b).map(limit).collect());
    };
    if v.len() != 1 && v.len() < b {
        return Err(invalid(format!(
            "{name} has {} values: it should have 1 or at least B = {b}.",
            v.len()
        )));
    }
    (0..b)
        .map(|i| {
            let x = if v.len() == 1 { v[0] } else { v[i] };
            if x < 0 || x as usize > limit(i) {
                Err(invalid(format!(
                    "{name}[{i}] = {x} should be in [0, {}].",
                    limit(i)
                )))
            } else {
                Ok(x as usize)
            }
        })
        .collect()
}

fn plan(a: &FusedInferAttentionScoreV2Args) -> Result<Plan, KernelError> {
    // Inputs the mock does not implement, by name.
    let refused: [(&str, bool); 16] = [
        ("deqScale1Optional", a.deq_scale1.is_some()),
        ("quantScale1Optional", a.quant_scale1.is_some()),
        ("deqScale2Optional", a.deq_scale2.is_some()),
        ("quantScale2Optional", a.quant_scale2.is_some()),
        ("quantOffset2Optional", a.quant_offset2.is_some()),
        ("antiquantScaleOptional", a.antiquant_scale.is_some()),
        ("antiquantOffsetOptional", a.antiquant_offset.is_some()),
        ("keyAntiquantScaleOptional", a.key_antiquant_scale.is_some()),
        (
            "keyAntiquantOffsetOptional",
            a.key_antiquant_offset.is_some(),
        ),
        (
            "valueAntiquantScaleOptional",
            a.value_antiquant_scale.is_some(),
        ),
        (
            "valueAntiquantOffsetOptional",
            a.value_antiquant_offset.is_some(),
        ),
        (
            "queryPaddingSizeOptional (left padding)",
            a.query_padding_size.is_some(),
        ),
        (
            "kvPaddingSizeOptional (left padding)",
            a.kv_padding_size.is_some(),
        ),
        ("keySharedPrefixOptional", a.key_shared_prefix.is_some()),
        ("valueSharedPrefixOptional", a.value_shared_prefix.is_some()),
        (
            "actualSharedPrefixLenOptional",
            a.actual_shared_prefix_len.is_some(),
        ),
    ];
    if let Some((name, _)) = refused.iter().find(|(_, given)| *given) {
        return Err(invalid(format!(
            "{name} is given, but the mock's aclnnFusedInferAttentionScoreV2 does not implement it (quantization, left padding and shared prefixes are not supported); pass NULL."
        )));
    }
    let layout = layout_of(&a.input_layout)?;
    let q = &a.query;
    check_view(q, "query", 4)?;
    check_view(&a.attention_out, "attentionOut", 4)?;
    let floats = [DType::F16, DType::BF16];
    if !floats.contains(&q.dtype) {
        return Err(invalid(format!(
            "query dtype {} is not supported: FLOAT16 and BFLOAT16 are (INT8 needs the quantization inputs the mock does not implement).",
            q.dtype.name()
        )));
    }
    if a.attention_out.dtype != q.dtype {
        return Err(invalid(format!(
            "attentionOut dtype {} should be the query dtype {} (an INT8 output needs quantScale2, not implemented).",
            a.attention_out.dtype.name(),
            q.dtype.name()
        )));
    }
    let want_rank = if layout == Layout::Bsh { 3 } else { 4 };
    if q.rank() != want_rank {
        return Err(invalid(format!(
            "query should be {want_rank}-D for inputLayout {}, but got shape {}.",
            a.input_layout,
            fmt_shape(&q.shape)
        )));
    }
    if a.num_heads <= 0 || a.num_heads > 256 {
        return Err(invalid(format!(
            "numHeads should be in [1, 256], but got {}.",
            a.num_heads
        )));
    }
    let n = a.num_heads;
    let (b, sq, qx, qd) = bsx(q, layout);
    let d = match qd {
        Some(d) => {
            if qx != n {
                return Err(invalid(format!(
                    "numHeads {n} should equal the N axis of query {} ({}).",
                    fmt_shape(&q.shape),
                    a.input_layout
                )));
            }
            d
        }
        None => {
            if qx % n != 0 {
                return Err(invalid(format!(
                    "The H axis of query {} should be a multiple of numHeads {n}.",
                    fmt_shape(&q.shape)
                )));
            }
            qx / n
        }
    };
    let nkv = if a.num_key_value_heads == 0 {
        n
    } else {
        a.num_key_value_heads
    };
    if nkv <= 0 || n % nkv != 0 || n / nkv > 64 {
        return Err(invalid(format!(
            "numKeyValueHeads {} should divide numHeads {n} with a ratio of at most 64.",
            a.num_key_value_heads
        )));
    }
    if b > 65536 || d > 512 || d == 0 {
        return Err(invalid(format!(
            "query {} is out of range: B <= 65536 and 1 <= D <= 512.",
            fmt_shape(&q.shape)
        )));
    }
    if sq > 1 && d % 16 != 0 {
        return Err(invalid(format!(
            "D = {d} should be 16-element aligned for FLOAT16/BFLOAT16 when Q_S > 1."
        )));
    }
    if layout == Layout::BnsdBsnd && sq <= 1 {
        return Err(invalid("inputLayout BNSD_BSND needs Q_S > 1.".into()));
    }
    // attentionOut: the query's shape (BSND for BNSD_BSND).
    let want_out = match layout {
        Layout::BnsdBsnd => vec![b, sq, n, d],
        _ => q.shape.clone(),
    };
    if a.attention_out.shape != want_out {
        return Err(invalid(format!(
            "attentionOut shape should be {}, but got {}.",
            fmt_shape(&want_out),
            fmt_shape(&a.attention_out.shape)
        )));
    }
    let (b, sq, n, nkv, d) = (
        b as usize,
        sq as usize,
        n as usize,
        nkv as usize,
        d as usize,
    );
    let q_axes = axes_of(q, layout, d as i64);

    // key / value.
    if a.key.is_empty() || a.key.len() != a.value.len() {
        return Err(invalid(format!(
            "key and value should be non-empty lists of the same length, but got {} and {}.",
            a.key.len(),
            a.value.len()
        )));
    }
    for (i, (k, v)) in a.key.iter().zip(&a.value).enumerate() {
        check_view(k, "key", 4)?;
        check_view(v, "value", 4)?;
        for (t, name) in [(k, "key"), (v, "value")] {
            if t.dtype != q.dtype {
                return Err(invalid(format!(
                    "{name}[{i}] dtype {} should be the query dtype {} (INT8/INT4 key and value need antiquant inputs, not implemented).",
                    t.dtype.name(),
                    q.dtype.name()
                )));
            }
        }
        if k.shape != v.shape {
            return Err(invalid(format!(
                "key[{i}] shape {} and value[{i}] shape {} should be the same.",
                fmt_shape(&k.shape),
                fmt_shape(&v.shape)
            )));
        }
    }
    let kv = if let Some(bt) = &a.block_table {
        check_view(bt, "blockTableOptional", 2)?;
        if bt.dtype != DType::I32 || bt.rank() != 2 || bt.shape[0] as usize != b {
            return Err(invalid(format!(
                "blockTableOptional should be a 2-D INT32 tensor of B = {b} rows, but got {} {}.",
                bt.dtype.name(),
                fmt_shape(&bt.shape)
            )));
        }
        if a.key.len() != 1 {
            return Err(invalid(
                "page attention does not support a key/value tensor list.".into(),
            ));
        }
        let bs = a.block_size;
        let ok = if sq > 1 {
            (128..=512).contains(&bs) && bs % 128 == 0
        } else {
            (1..=512).contains(&bs)
        };
        if !ok {
            return Err(invalid(format!(
                "blockSize {bs} is not valid for page attention: {}.",
                if sq > 1 {
                    "a multiple of 128 in [128, 512] when Q_S > 1"
                } else {
                    "in [1, 512] when Q_S = 1"
                }
            )));
        }
        if a.actual_seq_lengths_kv.is_none() {
            return Err(invalid(
                "page attention needs actualSeqLengthsKvOptional.".into(),
            ));
        }
        let k = &a.key[0];
        let (axes, blk_stride) = match k.rank() {
            3 if k.shape[1] == bs && k.shape[2] == (nkv * d) as i64 => (
                Axes {
                    b: 0,
                    s: k.strides[1],
                    n: d as i64 * k.strides[2],
                    d: k.strides[2],
                },
                k.strides[0],
            ),
            4 if matches!(layout, Layout::Bnsd | Layout::BnsdBsnd)
                && k.shape[1] == nkv as i64
                && k.shape[2] == bs
                && k.shape[3] == d as i64 =>
            {
                (
                    Axes {
                        b: 0,
                        s: k.strides[2],
                        n: k.strides[1],
                        d: k.strides[3],
                    },
                    k.strides[0],
                )
            }
            _ => {
                return Err(invalid(format!(
                    "key cache {} should be (blockNum, blockSize = {bs}, H = {}){} for page attention.",
                    fmt_shape(&k.shape),
                    nkv * d,
                    if matches!(layout, Layout::Bnsd | Layout::BnsdBsnd) {
                        format!(" or (blockNum, KV_N = {nkv}, blockSize, D = {d})")
                    } else {
                        String::new()
                    }
                )));
            }
        };
        Kv::Paged {
            axes,
            blk_stride,
            block: bs as usize,
            blocks: k.shape[0].max(0) as usize,
            max_blocks: bt.shape[1].max(0) as usize,
        }
    } else {
        let per_batch = a.key.len() > 1;
        if per_batch && a.key.len() != b {
            return Err(invalid(format!(
                "key has {} tensors: a tensor list should have 1 or B = {b} members.",
                a.key.len()
            )));
        }
        let mut seq = Vec::new();
        let mut axes = Vec::new();
        for (i, k) in a.key.iter().enumerate() {
            if k.rank() != want_rank {
                return Err(invalid(format!(
                    "key[{i}] should be {want_rank}-D for inputLayout {}, but got {}.",
                    a.input_layout,
                    fmt_shape(&k.shape)
                )));
            }
            let (kb, ks, kx, kd) = bsx(k, layout);
            let want_b = if per_batch { 1 } else { b as i64 };
            let heads_ok = match kd {
                Some(kd) => kx == nkv as i64 && kd == d as i64,
                None => kx == (nkv * d) as i64,
            };
            if kb != want_b || !heads_ok {
                return Err(invalid(format!(
                    "key[{i}] shape {} does not match query {} with numKeyValueHeads {nkv}: expected batch {want_b}, {}.",
                    fmt_shape(&k.shape),
                    fmt_shape(&q.shape),
                    if kd.is_some() {
                        format!("N = {nkv}, D = {d}")
                    } else {
                        format!("H = {}", nkv * d)
                    }
                )));
            }
            seq.push(ks as usize);
            axes.push(axes_of(k, layout, d as i64));
        }
        Kv::Dense {
            axes,
            seq,
            per_batch,
        }
    };

    // Actual lengths.
    let sq_len = if sq > 1 {
        lengths(
            &a.actual_seq_lengths,
            b,
            &|_| sq,
            "actualSeqLengthsOptional",
        )?
    } else {
        vec![sq; b]
    };
    let skv_len = match &kv {
        Kv::Dense { seq, per_batch, .. } => {
            let lim = |i: usize| if *per_batch { seq[i] } else { seq[0] };
            lengths(
                &a.actual_seq_lengths_kv,
                b,
                &lim,
                "actualSeqLengthsKvOptional",
            )?
        }
        Kv::Paged {
            block, max_blocks, ..
        } => lengths(
            &a.actual_seq_lengths_kv,
            b,
            &|_| block * max_blocks,
            "actualSeqLengthsKvOptional (at most maxBlockNumPerSeq × blockSize)",
        )?,
    };
    let kv_s = match &kv {
        Kv::Dense { seq, .. } => seq.iter().copied().max().unwrap_or(0),
        Kv::Paged {
            block, max_blocks, ..
        } => block * max_blocks,
    };

    if !(0..=3).contains(&a.inner_precise) {
        return Err(invalid(format!(
            "innerPrecise should be 0, 1, 2 or 3, but got {}.",
            a.inner_precise
        )));
    }

    // Sparse mode and mask.
    let decode = sq == 1;
    let mut band = None;
    let mut read_mask = true;
    if !decode {
        match a.sparse_mode {
            0 => {
                if a.atten_mask.is_some() {
                    band = Some(Band {
                        right_down: false,
                        pre: a.pre_tokens,
                        next: a.next_tokens,
                    });
                }
            }
            1 => {}
            2 => {
                band = Some(Band {
                    right_down: false,
                    pre: i64::MAX,
                    next: 0,
                });
                read_mask = false;
            }
            3 => {
                band = Some(Band {
                    right_down: true,
                    pre: i64::MAX,
                    next: 0,
                });
                read_mask = false;
            }
            4 => {
                band = Some(Band {
                    right_down: true,
                    pre: a.pre_tokens,
                    next: a.next_tokens,
                });
                read_mask = false;
            }
            5..=8 => {
                let name =
                    ["prefix", "global", "dilated", "block_local"][(a.sparse_mode - 5) as usize];
                return Err(invalid(format!(
                    "sparseMode {} ({name}) is documented as not supported; use 0 to 4.",
                    a.sparse_mode
                )));
            }
            m => {
                return Err(invalid(format!(
                    "sparseMode should be in [0, 4], but got {m}."
                )));
            }
        }
        if a.sparse_mode >= 1 && a.atten_mask.is_none() {
            return Err(invalid(format!(
                "sparseMode {} needs attenMaskOptional{}.",
                a.sparse_mode,
                if a.sparse_mode == 1 {
                    " (a full S1 × S2 mask)"
                } else {
                    " (the 2048 × 2048 compressed mask)"
                }
            )));
        }
    }
    let mask = match &a.atten_mask {
        None => None,
        Some(m) => {
            check_view(m, "attenMaskOptional", 4)?;
            if ![DType::Bool, DType::I8, DType::U8].contains(&m.dtype) {
                return Err(invalid(format!(
                    "attenMaskOptional dtype {} should be BOOL, INT8 or UINT8.",
                    m.dtype.name()
                )));
            }
            let r = m.rank();
            let s = &m.shape;
            let st = &m.strides;
            let lead_ok = |dims: &[i64], allow_b: bool| {
                dims.iter()
                    .enumerate()
                    .all(|(k, &x)| x == 1 || (k == 0 && allow_b && x == b as i64))
            };
            if !read_mask {
                let ok = r >= 2
                    && s[r - 2] == 2048
                    && s[r - 1] == 2048
                    && s[..r - 2].iter().all(|&x| x == 1);
                if !ok {
                    return Err(invalid(format!(
                        "sparseMode {} takes the compressed mask of shape (2048, 2048), (1, 2048, 2048) or (1, 1, 2048, 2048), but got {}.",
                        a.sparse_mode,
                        fmt_shape(s)
                    )));
                }
                None
            } else if decode {
                // (B, KV_S), (B, 1, KV_S), (B, 1, 1, KV_S).
                let ok = r >= 2
                    && s[0] == b as i64
                    && s[1..r - 1].iter().all(|&x| x == 1)
                    && s[r - 1] as usize >= kv_s;
                if !ok {
                    return Err(invalid(format!(
                        "attenMaskOptional shape {} should be (B, KV_S), (B, 1, KV_S) or (B, 1, 1, KV_S) with B = {b}, KV_S >= {kv_s} when Q_S = 1.",
                        fmt_shape(s)
                    )));
                }
                Some((st[0], 0, st[r - 1]))
            } else {
                // (Q_S, KV_S), (B|1, Q_S, KV_S), (B|1, 1, Q_S, KV_S).
                let ok = r >= 2
                    && s[r - 2] as usize >= sq
                    && s[r - 1] as usize >= kv_s
                    && lead_ok(&s[..r - 2], true)
                    && (r < 4 || s[1] == 1);
                if !ok {
                    return Err(invalid(format!(
                        "attenMaskOptional shape {} should be (Q_S, KV_S), (B, Q_S, KV_S), (1, Q_S, KV_S), (B, 1, Q_S, KV_S) or (1, 1, Q_S, KV_S) with B = {b}, Q_S >= {sq}, KV_S >= {kv_s}.",
                        fmt_shape(s)
                    )));
                }
                let bstride = if r >= 3 && s[0] == b as i64 && b > 1 {
                    st[0]
                } else {
                    0
                };
                Some((bstride, st[r - 2], st[r - 1]))
            }
        }
    };
    let pse = match &a.pse_shift {
        None => None,
        Some(p) => {
            check_view(p, "pseShiftOptional", 4)?;
            if p.dtype != q.dtype {
                return Err(invalid(format!(
                    "pseShiftOptional dtype {} should be the query dtype {}.",
                    p.dtype.name(),
                    q.dtype.name()
                )));
            }
            let s = &p.shape;
            let ok = p.rank() == 4
                && (s[0] == 1 || s[0] == b as i64)
                && s[1] == n as i64
                && s[2] as usize >= sq
                && s[3] as usize >= kv_s;
            if !ok {
                return Err(invalid(format!(
                    "pseShiftOptional shape {} should be (B, N, Q_S, KV_S) or (1, N, Q_S, KV_S) with B = {b}, N = {n}, Q_S >= {sq}, KV_S >= {kv_s}.",
                    fmt_shape(s)
                )));
            }
            let st = &p.strides;
            Some((if s[0] == 1 { 0 } else { st[0] }, st[1], st[2], st[3]))
        }
    };

    if a.softmax_lse_flag {
        let Some(l) = &a.softmax_lse else {
            return Err(KernelError::null("softmaxLse (softmaxLseFlag is true)"));
        };
        check_view(l, "softmaxLse", 4)?;
        let want = [b as i64, n as i64, sq as i64, 1];
        if l.dtype != DType::F32 || l.shape != want {
            return Err(invalid(format!(
                "softmaxLse should be FLOAT of shape {}, but got {} {}.",
                fmt_shape(&want),
                l.dtype.name(),
                fmt_shape(&l.shape)
            )));
        }
    }

    let rope = match (&a.query_rope, &a.key_rope) {
        (None, None) => None,
        (Some(_), None) | (None, Some(_)) => {
            return Err(invalid(
                "queryRopeOptional and keyRopeOptional should both be given (MLA) or both be NULL."
                    .into(),
            ));
        }
        (Some(qr), Some(kr)) => {
            if a.key_rope_antiquant_scale.is_some() {
                return Err(invalid(
                    "keyRopeAntiquantScaleOptional is reserved and should be NULL.".into(),
                ));
            }
            check_view(qr, "queryRopeOptional", 4)?;
            check_view(kr, "keyRopeOptional", 4)?;
            for (t, name) in [(qr, "queryRopeOptional"), (kr, "keyRopeOptional")] {
                if t.dtype != q.dtype {
                    return Err(invalid(format!(
                        "{name} dtype {} should be the query dtype {}.",
                        t.dtype.name(),
                        q.dtype.name()
                    )));
                }
            }
            if d != 128 && d != 512 {
                return Err(invalid(format!(
                    "With queryRope and keyRope (MLA), D of query and key should be 128 or 512, but got {d}."
                )));
            }
            if a.key.len() != 1 {
                return Err(invalid(
                    "queryRope/keyRope with a key/value tensor list of several tensors is not supported by the mock.".into(),
                ));
            }
            // The rope tensors: the shapes of query / key with D (or H) for 64-wide heads.
            let with_rope_d = |shape: &[i64], heads: usize, bsh: bool| -> Vec<i64> {
                let mut s = shape.to_vec();
                let last = s.len() - 1;
                s[last] = if bsh {
                    (heads * ROPE_DIM) as i64
                } else {
                    ROPE_DIM as i64
                };
                s
            };
            let q_bsh = layout == Layout::Bsh;
            let k0 = &a.key[0];
            let k_bsh = k0.rank() == 3;
            let want_q = with_rope_d(&q.shape, n, q_bsh);
            let want_k = with_rope_d(&k0.shape, nkv, k_bsh);
            if qr.shape != want_q || kr.shape != want_k {
                return Err(invalid(format!(
                    "queryRopeOptional {} and keyRopeOptional {} should be {} and {}: the query's and key's shapes with D = 64.",
                    fmt_shape(&qr.shape),
                    fmt_shape(&kr.shape),
                    fmt_shape(&want_q),
                    fmt_shape(&want_k)
                )));
            }
            let (k_axes, k_blk_stride) = match &kv {
                Kv::Dense { .. } => (axes_of(kr, layout, ROPE_DIM as i64), 0),
                Kv::Paged { .. } if k_bsh => (
                    Axes {
                        b: 0,
                        s: kr.strides[1],
                        n: ROPE_DIM as i64 * kr.strides[2],
                        d: kr.strides[2],
                    },
                    kr.strides[0],
                ),
                Kv::Paged { .. } => (
                    Axes {
                        b: 0,
                        s: kr.strides[2],
                        n: kr.strides[1],
                        d: kr.strides[3],
                    },
                    kr.strides[0],
                ),
            };
            Some(Rope {
                q: axes_of(qr, layout, ROPE_DIM as i64),
                k: k_axes,
                k_blk_stride,
                dr: ROPE_DIM,
            })
        }
    };

    Ok(Plan {
        layout,
        b,
        n,
        nkv,
        sq,
        d,
        q_axes,
        kv,
        sq_len,
        skv_len,
        band,
        read_mask,
        mask,
        pse,
        rope,
    })
}

/// Phase-one validation of aclnnFusedInferAttentionScoreV2.
pub fn check(a: &FusedInferAttentionScoreV2Args) -> Result<(), KernelError> {
    plan(a).map(|_| ())
}

/// `out[i] = t[off + i*stride]` as f32 for a float view `t`.
///
/// # Safety
/// Every addressed element must be readable (tensor.rs's invariant).
unsafe fn load_row(t: &TensorArg, off: i64, stride: i64, out: &mut [f32]) {
    macro_rules! go {
        ($ty:ty, $conv:expr) => {{
            let base = t.ptr as *const $ty;
            for (i, o) in out.iter_mut().enumerate() {
                // SAFETY: the caller guarantees the element is readable;
                // unaligned reads tolerate any storage alignment.
                *o = $conv(unsafe {
                    base.offset((off + i as i64 * stride) as isize)
                        .read_unaligned()
                });
            }
        }};
    }
    match t.dtype {
        DType::F16 => go!(half::f16, half::f16::to_f32),
        DType::BF16 => go!(half::bf16, half::bf16::to_f32),
        DType::F32 => go!(f32, |v: f32| v),
        _ => unreachable!("checked: float views only"),
    }
}

/// Whether a mask element is set (1 = masked out).
///
/// # Safety
/// The element must be readable.
unsafe fn mask_at(t: &TensorArg, off: i64) -> bool {
    // SAFETY: forwarded; BOOL, INT8 and UINT8 are all one byte.
    unsafe { (t.ptr as *const u8).offset(off as isize).read() != 0 }
}

/// The result of one tile task: rows `i0..i0+rows` of query head `h` of batch `bi`.
struct TileOut {
    bi: usize,
    h: usize,
    i0: usize,
    o: Vec<f32>,
    lse: Vec<f32>,
}

/// Phase-two computation of aclnnFusedInferAttentionScoreV2.
///
/// # Safety
/// tensor.rs's module invariant for every tensor of `a`.
pub unsafe fn run(a: &FusedInferAttentionScoreV2Args) -> Result<(), KernelError> {
    let p = plan(a)?;
    let (d, group) = (p.d, p.n / p.nkv);
    let scale = a.scale_value as f32;

    // Block tables, checked against the cache before any key is read.
    let table: Option<Vec<i64>> = match (&a.block_table, &p.kv) {
        (
            Some(bt),
            Kv::Paged {
                blocks,
                block,
                max_blocks,
                ..
            },
        ) => {
            // SAFETY: forwarded invariant.
            let t = unsafe { bt.read_i64() };
            for (bi, &len) in p.skv_len.iter().enumerate() {
                for j in 0..len.div_ceil(*block) {
                    let id = t[bi * max_blocks + j];
                    if id < 0 || id as usize >= *blocks {
                        return Err(invalid(format!(
                            "blockTableOptional[{bi}][{j}] = {id} is not a block of the key cache (0..{blocks})."
                        )));
                    }
                }
            }
            Some(t)
        }
        _ => None,
    };

    // (list member, element offset of key t's head kh, stride along D).
    let kv_off = |bi: usize, kh: usize, t: usize| -> (usize, i64, i64) {
        match &p.kv {
            Kv::Dense {
                axes, per_batch, ..
            } => {
                let (e, bb) = if *per_batch { (bi, 0) } else { (0, bi as i64) };
                let ax = axes[e];
                (e, bb * ax.b + t as i64 * ax.s + kh as i64 * ax.n, ax.d)
            }
            Kv::Paged {
                axes,
                blk_stride,
                block,
                max_blocks,
                ..
            } => {
                let tab = table.as_ref().expect("paged");
                let blk = tab[bi * max_blocks + t / block];
                let off = blk * blk_stride + (t % block) as i64 * axes.s + kh as i64 * axes.n;
                (0, off, axes.d)
            }
        }
    };
    // Element offset of key t's rope part (head kh) in keyRope.
    let rope_off = |r: Rope, bi: usize, kh: usize, t: usize| -> i64 {
        match &p.kv {
            Kv::Dense { .. } => bi as i64 * r.k.b + t as i64 * r.k.s + kh as i64 * r.k.n,
            Kv::Paged {
                block, max_blocks, ..
            } => {
                let tab = table.as_ref().expect("paged");
                let blk = tab[bi * max_blocks + t / block];
                blk * r.k_blk_stride + (t % block) as i64 * r.k.s + kh as i64 * r.k.n
            }
        }
    };
    let dk = d + p.rope.map_or(0, |r| r.dr);
    let q = &a.query;
    let q_rope = a.query_rope.as_ref();
    let mask = a.atten_mask.as_ref();
    let pse = a.pse_shift.as_ref();
    let (keys, values) = (&a.key, &a.value);

    let tiles: Vec<TileOut> = (0..p.b * p.nkv)
        .into_par_iter()
        .flat_map_iter(|bk| {
            let (bi, kh) = (bk / p.nkv, bk % p.nkv);
            let skv = p.skv_len[bi];
            let sql = p.sq_len[bi];
            // Keys (with their rope part, MLA) and values of this
            // (batch, KV head), gathered once.
            let mut kbuf = vec![0f32; skv * dk];
            let mut vbuf = vec![0f32; skv * d];
            for t in 0..skv {
                let (e, off, kv_d) = kv_off(bi, kh, t);
                // SAFETY: the element lies in key[e]/value[e] by plan's
                // shape checks (and the block-id check for a paged cache).
                unsafe {
                    load_row(
                        &keys[e],
                        keys[e].offset + off,
                        kv_d,
                        &mut kbuf[t * dk..t * dk + d],
                    );
                    load_row(
                        &values[e],
                        values[e].offset + off,
                        kv_d,
                        &mut vbuf[t * d..(t + 1) * d],
                    );
                }
                if let (Some(r), Some(kr)) = (p.rope, a.key_rope.as_ref()) {
                    let off = rope_off(r, bi, kh, t);
                    // SAFETY: keyRope has the key's shape with D = 64
                    // (checked), so the row lies inside it.
                    unsafe {
                        load_row(
                            kr,
                            kr.offset + off,
                            r.k.d,
                            &mut kbuf[t * dk + d..(t + 1) * dk],
                        )
                    };
                }
            }
            let ntiles = sql.div_ceil(Q_TILE);
            let p = &p;
            let (kbuf, vbuf) = (kbuf, vbuf);
            (0..group * ntiles)
                .into_par_iter()
                .map(move |task| {
                    let (g, ti) = (task / ntiles, task % ntiles);
                    let h = kh * group + g;
                    // SAFETY: forwarded invariant for the query, mask and pse.
                    unsafe {
                        tile(
                            p,
                            (q, q_rope),
                            mask,
                            pse,
                            scale,
                            bi,
                            h,
                            ti * Q_TILE,
                            &kbuf,
                            &vbuf,
                        )
                    }
                })
                .collect::<Vec<_>>()
        })
        .collect();

    // Assemble the output (rows never computed stay 0, their lse +inf).
    let (b, n, sq) = (p.b, p.n, p.sq);
    let mut out = vec![0f32; b * n * sq * d];
    let mut lse = vec![f32::INFINITY; b * n * sq];
    let bsnd_out = matches!(p.layout, Layout::Bsh | Layout::Bsnd | Layout::BnsdBsnd);
    for t in tiles {
        for r in 0..t.lse.len() {
            let i = t.i0 + r;
            let row = if bsnd_out {
                (t.bi * sq + i) * n + t.h
            } else {
                (t.bi * n + t.h) * sq + i
            };
            out[row * d..(row + 1) * d].copy_from_slice(&t.o[r * d..(r + 1) * d]);
            lse[(t.bi * n + t.h) * sq + i] = t.lse[r];
        }
    }
    // SAFETY: the outputs are writable by the invariant; every input was
    // read by the tile tasks, which have all finished.
    unsafe {
        a.attention_out.write_f32(&out);
        if a.softmax_lse_flag {
            a.softmax_lse.as_ref().expect("checked").write_f32(&lse);
        }
    }
    Ok(())
}

/// One query tile of head `h` of batch `bi`: rows `i0..` against every key
/// tile its band reaches, with the online softmax.
///
/// # Safety
/// tensor.rs's invariant for the query, mask and pse views, which `p`
/// describes.
#[allow(clippy::too_many_arguments)]
unsafe fn tile(
    p: &Plan,
    (q, q_rope): (&TensorArg, Option<&TensorArg>),
    mask: Option<&TensorArg>,
    pse: Option<&TensorArg>,
    scale: f32,
    bi: usize,
    h: usize,
    i0: usize,
    kbuf: &[f32],
    vbuf: &[f32],
) -> TileOut {
    let d = p.d;
    let skv = p.skv_len[bi];
    let rows = Q_TILE.min(p.sq_len[bi] - i0);
    let qa = p.q_axes;
    // Query rows, followed by their rope part with MLA: dk values each.
    let dk = d + p.rope.map_or(0, |r| r.dr);
    let mut qt = vec![0f32; rows * dk];
    for r in 0..rows {
        let off = q.offset + bi as i64 * qa.b + (i0 + r) as i64 * qa.s + h as i64 * qa.n;
        // SAFETY: (bi, i0 + r, h) is inside the query by plan's checks.
        unsafe { load_row(q, off, qa.d, &mut qt[r * dk..r * dk + d]) };
        if let (Some(rp), Some(qr)) = (p.rope, q_rope) {
            let ra = rp.q;
            let off = qr.offset + bi as i64 * ra.b + (i0 + r) as i64 * ra.s + h as i64 * ra.n;
            // SAFETY: queryRope has the query's shape with D = 64 (checked).
            unsafe { load_row(qr, off, ra.d, &mut qt[r * dk + d..(r + 1) * dk]) };
        }
    }
    // The band of each row, as an inclusive key range clipped to [0, skv).
    let off = if p.band.is_some_and(|b| b.right_down) {
        skv as i64 - p.sq_len[bi] as i64
    } else {
        0
    };
    let range = |i: usize| -> (i64, i64) {
        match p.band {
            None => (0, skv as i64 - 1),
            Some(b) => {
                let c = i as i64 + off;
                (
                    c.saturating_sub(b.pre).max(0),
                    c.saturating_add(b.next).min(skv as i64 - 1),
                )
            }
        }
    };
    let lo = (0..rows).map(|r| range(i0 + r).0).min().unwrap_or(0).max(0) as usize;
    let hi = (0..rows).map(|r| range(i0 + r).1).max().unwrap_or(-1);

    let mut m = vec![f32::NEG_INFINITY; rows];
    let mut l = vec![0f32; rows];
    let mut o = vec![0f32; rows * d];
    let mut s = vec![0f32; rows * KV_TILE];
    let mut pv = vec![0f32; rows * d];
    let mut j0 = lo;
    while (j0 as i64) <= hi && j0 < skv {
        let tk = KV_TILE.min(skv - j0);
        let a_ref = MatRef {
            ptr: qt.as_ptr(),
            rows,
            cols: dk,
            rs: dk as isize,
            cs: 1,
        };
        // Kᵀ of keys j0..j0+tk: a dk × tk view of the row-major key buffer.
        let kt = MatRef {
            ptr: kbuf[j0 * dk..].as_ptr(),
            rows: dk,
            cols: tk,
            rs: 1,
            cs: dk as isize,
        };
        // SAFETY: `s` holds rows × KV_TILE ≥ rows × tk dense values and is
        // disjoint from the operands, which lie inside their buffers.
        unsafe { matmul_into(s.as_mut_ptr(), KV_TILE as isize, 1, a_ref, kt, false) };
        for r in 0..rows {
            let i = i0 + r;
            let (rlo, rhi) = range(i);
            let srow = &mut s[r * KV_TILE..r * KV_TILE + tk];
            let mut row_max = f32::NEG_INFINITY;
            for (c, v) in srow.iter_mut().enumerate() {
                let j = j0 + c;
                let mut keep = (j as i64) >= rlo && (j as i64) <= rhi;
                if keep && p.read_mask {
                    if let (Some(mt), Some((mb, mr, mc))) = (mask, p.mask) {
                        let moff = mt.offset + bi as i64 * mb + i as i64 * mr + j as i64 * mc;
                        // SAFETY: (bi, i, j) is inside the mask by plan's shape check.
                        keep = !unsafe { mask_at(mt, moff) };
                    }
                }
                if keep {
                    let mut x = *v * scale;
                    if let (Some(pt), Some((pb, ph, pr, pc))) = (pse, p.pse) {
                        let poff = pt.offset
                            + bi as i64 * pb
                            + h as i64 * ph
                            + i as i64 * pr
                            + j as i64 * pc;
                        let mut one = [0f32];
                        // SAFETY: (bi, h, i, j) is inside pseShift by plan's check.
                        unsafe { load_row(pt, poff, 1, &mut one) };
                        x += one[0];
                    }
                    *v = x;
                    row_max = row_max.max(x);
                } else {
                    *v = f32::NEG_INFINITY;
                }
            }
            let new_m = m[r].max(row_max);
            if new_m == f32::NEG_INFINITY {
                // Nothing seen yet in this row.
                srow.iter_mut().for_each(|v| *v = 0.0);
                continue;
            }
            let corr = (m[r] - new_m).exp();
            let mut sum = 0f32;
            for v in srow.iter_mut() {
                *v = (*v - new_m).exp();
                sum += *v;
            }
            l[r] = l[r] * corr + sum;
            m[r] = new_m;
            o[r * d..(r + 1) * d].iter_mut().for_each(|x| *x *= corr);
        }
        let p_ref = MatRef {
            ptr: s.as_ptr(),
            rows,
            cols: tk,
            rs: KV_TILE as isize,
            cs: 1,
        };
        let v_ref = MatRef {
            ptr: vbuf[j0 * d..].as_ptr(),
            rows: tk,
            cols: d,
            rs: d as isize,
            cs: 1,
        };
        // SAFETY: `pv` is a dense rows × d buffer disjoint from the operands.
        unsafe { matmul_into(pv.as_mut_ptr(), d as isize, 1, p_ref, v_ref, false) };
        for (x, y) in o.iter_mut().zip(&pv) {
            *x += y;
        }
        j0 += tk;
    }
    let mut lse = vec![f32::INFINITY; rows];
    for r in 0..rows {
        if l[r] > 0.0 {
            let inv = 1.0 / l[r];
            o[r * d..(r + 1) * d].iter_mut().for_each(|x| *x *= inv);
            lse[r] = m[r] + l[r].ln();
        } else {
            o[r * d..(r + 1) * d].iter_mut().for_each(|x| *x = 0.0);
        }
    }
    TileOut { bi, h, i0, o, lse }
}

#[cfg(test)]
mod tests {
    //! Every case against a plain reference: for each (batch, head, query
    //! row) the full score row `scale·q·k + pse` over the visible keys
    //! (mask and sparse rule written out here as conditions), softmax in
    //! f64, times V.

    use super::*;
    use crate::testutil::{Buf, Rng};

    /// A problem in logical (B, N, S, D) order, values already rounded to
    /// the dtype.
    #[derive(Clone)]
    struct Problem {
        b: usize,
        n: usize,
        nkv: usize,
        sq: usize,
        skv: usize,
        d: usize,
        q: Vec<f32>,
        k: Vec<f32>,
        v: Vec<f32>,
    }

    impl Problem {
        #[allow(clippy::too_many_arguments)] // one argument per axis of the problem
        fn new(
            b: usize,
            n: usize,
            nkv: usize,
            sq: usize,
            skv: usize,
            d: usize,
            dt: DType,
            seed: u64,
        ) -> Problem {
            let mut rng = Rng::new(seed);
            let mut fill = |len: usize| -> Vec<f32> {
                (0..len)
                    .map(|_| crate::testutil::round(dt, rng.f32()))
                    .collect()
            };
            Problem {
                b,
                n,
                nkv,
                sq,
                skv,
                d,
                q: fill(b * n * sq * d),
                k: fill(b * nkv * skv * d),
                v: fill(b * nkv * skv * d),
            }
        }
    }

    /// Logical (b, head, s, d) of `heads` heads and `s` rows stored in `layout`.
    fn store(
        data: &[f32],
        b: usize,
        heads: usize,
        s: usize,
        d: usize,
        layout: &str,
        dt: DType,
    ) -> (Buf, Vec<i64>) {
        let mut out = vec![0f32; data.len()];
        for bi in 0..b {
            for h in 0..heads {
                for si in 0..s {
                    for di in 0..d {
                        let src = ((bi * heads + h) * s + si) * d + di;
                        let dst = if layout.starts_with("BNSD") {
                            src
                        } else {
                            ((bi * s + si) * heads + h) * d + di
                        };
                        out[dst] = data[src];
                    }
                }
            }
        }
        let (b, h, s, d) = (b as i64, heads as i64, s as i64, d as i64);
        let shape = match layout {
            "BSH" => vec![b, s, h * d],
            "BSND" => vec![b, s, h, d],
            _ => vec![b, h, s, d],
        };
        (Buf::from_f32(dt, &out), shape)
    }

    /// Reference output in logical (B, N, S, D) and lse (B, N, S); `keep`
    /// says whether query row i of batch b sees key j.
    fn reference(
        pb: &Problem,
        scale: f64,
        sq_len: &[usize],
        skv_len: &[usize],
        keep: &dyn Fn(usize, usize, usize) -> bool,
        pse: Option<&dyn Fn(usize, usize, usize, usize) -> f64>,
    ) -> (Vec<f64>, Vec<f64>) {
        let (n, d, sq, skv) = (pb.n, pb.d, pb.sq, pb.skv);
        let group = pb.n / pb.nkv;
        let mut out = vec![0f64; pb.b * n * sq * d];
        let mut lse = vec![f64::INFINITY; pb.b * n * sq];
        for bi in 0..pb.b {
            for h in 0..n {
                let kh = h / group;
                for i in 0..sq_len[bi] {
                    let qrow = &pb.q[((bi * n + h) * sq + i) * d..][..d];
                    let mut scores = Vec::new();
                    for j in 0..skv_len[bi] {
                        if !keep(bi, i, j) {
                            continue;
                        }
                        let krow = &pb.k[((bi * pb.nkv + kh) * skv + j) * d..][..d];
                        let dot: f64 = (0..d)
                            .map(|x| f64::from(qrow[x]) * f64::from(krow[x]))
                            .sum();
                        let bias = pse.map_or(0.0, |f| f(bi, h, i, j));
                        scores.push((j, dot * scale + bias));
                    }
                    if scores.is_empty() {
                        continue;
                    }
                    let mx = scores.iter().map(|s| s.1).fold(f64::NEG_INFINITY, f64::max);
                    let sum: f64 = scores.iter().map(|s| (s.1 - mx).exp()).sum();
                    lse[(bi * n + h) * sq + i] = mx + sum.ln();
                    for (j, s) in &scores {
                        let w = (s - mx).exp() / sum;
                        let vrow = &pb.v[((bi * pb.nkv + kh) * skv + j) * d..][..d];
                        for x in 0..d {
                            out[((bi * n + h) * sq + i) * d + x] += w * f64::from(vrow[x]);
                        }
                    }
                }
            }
        }
        (out, lse)
    }

    /// `got` (stored in `layout`'s output order) against the logical reference.
    fn compare(pb: &Problem, got: &[f32], want: &[f64], out_layout: &str, dt: DType, what: &str) {
        let tol = if dt == DType::BF16 { 1.6e-2 } else { 4e-3 };
        let (n, sq, d) = (pb.n, pb.sq, pb.d);
        for bi in 0..pb.b {
            for h in 0..n {
                for i in 0..sq {
                    for x in 0..d {
                        let src = ((bi * n + h) * sq + i) * d + x;
                        let dst = if out_layout == "BNSD" {
                            src
                        } else {
                            ((bi * sq + i) * n + h) * d + x
                        };
                        let (g, w) = (f64::from(got[dst]), want[src]);
                        assert!(
                            (g - w).abs() <= tol * (1.0 + w.abs()),
                            "{what}: b{bi} h{h} i{i} d{x}: got {g}, want {w}"
                        );
                    }
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)] // the operator's required parameters
    fn base_args(
        q: TensorArg,
        k: TensorArg,
        v: TensorArg,
        out: TensorArg,
        layout: &str,
        n: usize,
        nkv: usize,
        scale: f64,
    ) -> FusedInferAttentionScoreV2Args {
        FusedInferAttentionScoreV2Args {
            query: q,
            key: vec![k],
            value: vec![v],
            pse_shift: None,
            atten_mask: None,
            actual_seq_lengths: None,
            actual_seq_lengths_kv: None,
            deq_scale1: None,
            quant_scale1: None,
            deq_scale2: None,
            quant_scale2: None,
            quant_offset2: None,
            antiquant_scale: None,
            antiquant_offset: None,
            block_table: None,
            query_padding_size: None,
            kv_padding_size: None,
            key_antiquant_scale: None,
            key_antiquant_offset: None,
            value_antiquant_scale: None,
            value_antiquant_offset: None,
            key_shared_prefix: None,
            value_shared_prefix: None,
            actual_shared_prefix_len: None,
            query_rope: None,
            key_rope: None,
            key_rope_antiquant_scale: None,
            num_heads: n as i64,
            scale_value: scale,
            pre_tokens: 2147483647,
            next_tokens: 2147483647,
            input_layout: layout.to_string(),
            num_key_value_heads: nkv as i64,
            sparse_mode: 0,
            inner_precise: 0,
            block_size: 0,
            antiquant_mode: 0,
            softmax_lse_flag: false,
            key_antiquant_mode: 0,
            value_antiquant_mode: 0,
            attention_out: out,
            softmax_lse: None,
        }
    }

    /// Buffers of a dense problem in `layout`; returns (q, k, v, out) buffers and shapes.
    struct Dense {
        q: (Buf, Vec<i64>),
        k: (Buf, Vec<i64>),
        v: (Buf, Vec<i64>),
        out: (Buf, Vec<i64>),
    }

    fn dense(pb: &Problem, layout: &str, dt: DType) -> Dense {
        let q = store(&pb.q, pb.b, pb.n, pb.sq, pb.d, layout, dt);
        let k = store(&pb.k, pb.b, pb.nkv, pb.skv, pb.d, layout, dt);
        let v = store(&pb.v, pb.b, pb.nkv, pb.skv, pb.d, layout, dt);
        let oshape = if layout == "BNSD_BSND" {
            vec![pb.b as i64, pb.sq as i64, pb.n as i64, pb.d as i64]
        } else {
            q.1.clone()
        };
        let out = (Buf::zeros(dt, pb.q.len()), oshape);
        Dense { q, k, v, out }
    }

    impl Dense {
        fn args(&self, layout: &str, pb: &Problem, scale: f64) -> FusedInferAttentionScoreV2Args {
            base_args(
                self.q.0.tensor(&self.q.1),
                self.k.0.tensor(&self.k.1),
                self.v.0.tensor(&self.v.1),
                self.out.0.tensor(&self.out.1),
                layout,
                pb.n,
                pb.nkv,
                scale,
            )
        }
    }

    fn out_order(layout: &str) -> &'static str {
        if layout == "BNSD" { "BNSD" } else { "BSND" }
    }

    #[test]
    fn every_layout_with_grouped_heads_prefill_and_decode() {
        for layout in ["BSH", "BSND", "BNSD", "BNSD_BSND"] {
            for dt in [DType::F16, DType::BF16] {
                // Q_S 70 and KV_S 150: neither a multiple of the tiles.
                for (sq, skv) in [(70usize, 150usize), (1, 150), (130, 300)] {
                    if sq == 1 && layout == "BNSD_BSND" {
                        continue;
                    }
                    let pb = Problem::new(2, 4, 2, sq, skv, 16, dt, 11 + sq as u64);
                    let bufs = dense(&pb, layout, dt);
                    let args = bufs.args(layout, &pb, 0.25);
                    // SAFETY: every view covers exactly its buffer.
                    unsafe { run(&args) }.unwrap();
                    let (want, _) =
                        reference(&pb, 0.25, &[sq; 2], &[skv; 2], &|_, _, _| true, None);
                    compare(
                        &pb,
                        &bufs.out.0.to_f32(),
                        &want,
                        out_order(layout),
                        dt,
                        &format!("{layout} {dt:?} sq {sq}"),
                    );
                }
            }
        }
    }

    #[test]
    fn sparse_modes_masks_and_pse() {
        let dt = DType::F16;
        let (b, n, sq, skv, d) = (2usize, 2usize, 67usize, 131usize, 16usize);
        let pb = Problem::new(b, n, 1, sq, skv, d, dt, 5);
        // An explicit mask (B, 1, Q_S, KV_S) of scattered ones.
        let mvals: Vec<i64> = (0..b * sq * skv)
            .map(|x| i64::from((x * 7919) % 5 == 0))
            .collect();
        let mbuf = Buf::from_i64(DType::U8, &mvals);
        let mv = &mvals;
        let masked = move |bi: usize, i: usize, j: usize| mv[(bi * sq + i) * skv + j] != 0;
        let comp = Buf::zeros(DType::Bool, 2048 * 2048);
        // pseShift (1, N, Q_S, KV_S).
        let mut rng = Rng::new(9);
        let pse_vals: Vec<f32> = (0..n * sq * skv)
            .map(|_| crate::testutil::round(dt, rng.f32()))
            .collect();
        let pse_buf = Buf::from_f32(dt, &pse_vals);
        let pse_f =
            |_: usize, h: usize, i: usize, j: usize| f64::from(pse_vals[(h * sq + i) * skv + j]);
        let off = skv as i64 - sq as i64;
        type Keep<'a> = Box<dyn Fn(usize, usize, usize) -> bool + 'a>;
        // (sparseMode, preTokens, nextTokens, explicit mask?, pse?, rule)
        let cases: Vec<(i64, i64, i64, bool, bool, Keep)> = vec![
            (
                0,
                2147483647,
                2147483647,
                true,
                false,
                Box::new(move |bi, i, j| !masked(bi, i, j)),
            ),
            (
                0,
                5,
                3,
                true,
                true,
                Box::new(move |bi, i, j| {
                    let (i, j) = (i as i64, j as i64);
                    !masked(bi, i as usize, j as usize) && i - j <= 5 && j - i <= 3
                }),
            ),
            (0, 5, 3, false, true, Box::new(|_, _, _| true)),
            (
                1,
                0,
                0,
                true,
                false,
                Box::new(move |bi, i, j| !masked(bi, i, j)),
            ),
            (2, 0, 0, false, false, Box::new(|_, i, j| j <= i)),
            (
                3,
                0,
                0,
                false,
                true,
                Box::new(move |_, i, j| j as i64 <= i as i64 + off),
            ),
            (
                4,
                10,
                -2,
                false,
                false,
                Box::new(move |_, i, j| {
                    let c = i as i64 + off;
                    c - j as i64 <= 10 && j as i64 - c <= -2
                }),
            ),
        ];
        for (mode, pre, next, explicit, with_pse, keep) in cases {
            let bufs = dense(&pb, "BNSD", dt);
            let mut args = bufs.args("BNSD", &pb, 0.3);
            args.sparse_mode = mode;
            args.pre_tokens = pre;
            args.next_tokens = next;
            if explicit {
                args.atten_mask = Some(mbuf.tensor(&[b as i64, 1, sq as i64, skv as i64]));
            } else if mode >= 2 {
                args.atten_mask = Some(comp.tensor(&[2048, 2048]));
            }
            if with_pse {
                args.pse_shift = Some(pse_buf.tensor(&[1, n as i64, sq as i64, skv as i64]));
            }
            // SAFETY: every view covers exactly its buffer.
            unsafe { run(&args) }.unwrap();
            let p: Option<&dyn Fn(usize, usize, usize, usize) -> f64> =
                if with_pse { Some(&pse_f) } else { None };
            let (want, _) = reference(&pb, 0.3, &[sq; 2], &[skv; 2], &*keep, p);
            compare(
                &pb,
                &bufs.out.0.to_f32(),
                &want,
                "BNSD",
                dt,
                &format!("sparse {mode} pre {pre} next {next}"),
            );
        }
    }

    #[test]
    fn actual_lengths_decode_mask_and_lse() {
        let dt = DType::BF16;
        // Prefill with actual query and key lengths per batch, lse output.
        let pb = Problem::new(3, 2, 2, 40, 90, 32, dt, 21);
        let bufs = dense(&pb, "BSND", dt);
        let lse = Buf::zeros(DType::F32, 3 * 2 * 40);
        let mut args = bufs.args("BSND", &pb, 0.2);
        args.actual_seq_lengths = Some(vec![40, 17, 1]);
        args.actual_seq_lengths_kv = Some(vec![90, 33, 0, 99]);
        args.softmax_lse_flag = true;
        args.softmax_lse = Some(lse.tensor(&[3, 2, 40, 1]));
        // SAFETY: every view covers exactly its buffer.
        unsafe { run(&args) }.unwrap();
        let (want, want_lse) =
            reference(&pb, 0.2, &[40, 17, 1], &[90, 33, 0], &|_, _, _| true, None);
        compare(
            &pb,
            &bufs.out.0.to_f32(),
            &want,
            "BSND",
            dt,
            "actual lengths",
        );
        for (i, (&g, &w)) in lse.to_f32().iter().zip(&want_lse).enumerate() {
            assert!(
                (w.is_infinite() && g == f32::INFINITY)
                    || (f64::from(g) - w).abs() < 1e-3 * (1.0 + w.abs()),
                "lse {i}: got {g}, want {w}"
            );
        }

        // Decode: one length for every batch, mask (B, 1, 1, KV_S) padded to 96.
        let pb = Problem::new(2, 4, 1, 1, 80, 8, dt, 22);
        let bufs = dense(&pb, "BSH", dt);
        let mvals: Vec<i64> = (0..2 * 96).map(|x| i64::from(x % 3 == 1)).collect();
        let m = Buf::from_i64(DType::Bool, &mvals);
        let mut args = bufs.args("BSH", &pb, 0.5);
        args.actual_seq_lengths_kv = Some(vec![61]);
        args.atten_mask = Some(m.tensor(&[2, 1, 1, 96]));
        // In decode the sparse mode and the band have no effect.
        args.sparse_mode = 3;
        args.next_tokens = -5;
        // SAFETY: every view covers exactly its buffer.
        unsafe { run(&args) }.unwrap();
        let (want, _) = reference(
            &pb,
            0.5,
            &[1, 1],
            &[61, 61],
            &|bi, _, j| mvals[bi * 96 + j] == 0,
            None,
        );
        compare(&pb, &bufs.out.0.to_f32(), &want, "BSND", dt, "decode");
    }

    #[test]
    fn tensor_list_of_batches_and_strided_query() {
        let dt = DType::F16;
        let pb = Problem::new(2, 2, 1, 20, 50, 16, dt, 31);
        // Batch 1 has only 37 keys in its own tensor of S = 37.
        let split = |data: &[f32], bi: usize, s: usize| -> Vec<f32> {
            data[bi * pb.skv * pb.d..][..s * pb.d].to_vec()
        };
        let k0 = Buf::from_f32(dt, &split(&pb.k, 0, 50));
        let v0 = Buf::from_f32(dt, &split(&pb.v, 0, 50));
        let k1 = Buf::from_f32(dt, &split(&pb.k, 1, 37));
        let v1 = Buf::from_f32(dt, &split(&pb.v, 1, 37));
        // The query stored BSND but described as a BNSD view (permuted strides).
        let (qb, _) = store(&pb.q, 2, 2, 20, 16, "BSND", dt);
        let qv = qb.view(&[2, 2, 20, 16], &[20 * 2 * 16, 16, 2 * 16, 1], 0);
        let out = Buf::zeros(dt, pb.q.len());
        let mut args = base_args(
            qv,
            k0.tensor(&[1, 1, 50, 16]),
            v0.tensor(&[1, 1, 50, 16]),
            out.tensor(&[2, 2, 20, 16]),
            "BNSD",
            2,
            1,
            0.25,
        );
        args.key.push(k1.tensor(&[1, 1, 37, 16]));
        args.value.push(v1.tensor(&[1, 1, 37, 16]));
        // SAFETY: every view lies inside its buffer.
        unsafe { run(&args) }.unwrap();
        let (want, _) = reference(&pb, 0.25, &[20, 20], &[50, 37], &|_, _, _| true, None);
        compare(&pb, &out.to_f32(), &want, "BNSD", dt, "tensor list");
    }

    #[test]
    fn paged_kv_cache_both_cache_layouts() {
        let dt = DType::F16;
        let bs = 128usize;
        for (sq, layout, cache4) in [
            (1usize, "BSH", false),
            (1, "BNSD", true),
            (40, "BNSD", true),
            (40, "BSND", false),
        ] {
            let (b, n, nkv, d) = (2usize, 4usize, 2usize, 16usize);
            let skv_max = 300usize; // 3 blocks per sequence at most
            let pb = Problem::new(b, n, nkv, sq, skv_max, d, dt, 41 + sq as u64);
            let lens = [300usize, 129];
            // Blocks assigned out of order: batch 0 → 4, 0, 2; batch 1 → 1, 3.
            let table: Vec<i64> = vec![4, 0, 2, 1, 3, -7];
            let nblocks = 5usize;
            let mut cache_k = vec![0f32; nblocks * bs * nkv * d];
            let mut cache_v = cache_k.clone();
            for bi in 0..b {
                for t in 0..lens[bi] {
                    let blk = table[bi * 3 + t / bs] as usize;
                    for kh in 0..nkv {
                        for x in 0..d {
                            let src = ((bi * nkv + kh) * skv_max + t) * d + x;
                            let dst = if cache4 {
                                ((blk * nkv + kh) * bs + t % bs) * d + x
                            } else {
                                ((blk * bs + t % bs) * nkv + kh) * d + x
                            };
                            cache_k[dst] = pb.k[src];
                            cache_v[dst] = pb.v[src];
                        }
                    }
                }
            }
            let kshape: Vec<i64> = if cache4 {
                vec![nblocks as i64, nkv as i64, bs as i64, d as i64]
            } else {
                vec![nblocks as i64, bs as i64, (nkv * d) as i64]
            };
            let kb = Buf::from_f32(dt, &cache_k);
            let vb = Buf::from_f32(dt, &cache_v);
            let tb = Buf::from_i64(DType::I32, &table);
            let (qb, qshape) = store(&pb.q, b, n, sq, d, layout, dt);
            let out = Buf::zeros(dt, pb.q.len());
            let mut args = base_args(
                qb.tensor(&qshape),
                kb.tensor(&kshape),
                vb.tensor(&kshape),
                out.tensor(&qshape),
                layout,
                n,
                nkv,
                0.25,
            );
            args.block_table = Some(tb.tensor(&[2, 3]));
            args.block_size = bs as i64;
            args.actual_seq_lengths_kv = Some(lens.iter().map(|&l| l as i64).collect());
            // SAFETY: every view covers exactly its buffer.
            unsafe { run(&args) }.unwrap();
            let (want, _) = reference(&pb, 0.25, &[sq; 2], &lens, &|_, _, _| true, None);
            compare(
                &pb,
                &out.to_f32(),
                &want,
                out_order(layout),
                dt,
                &format!("paged {layout} sq {sq}"),
            );

            // A block id outside the cache is refused when the kernel runs.
            let bad = Buf::from_i64(DType::I32, &[4, 0, 9, 1, 3, 0]);
            args.block_table = Some(bad.tensor(&[2, 3]));
            check(&args).unwrap();
            // SAFETY: as above; the check fails before any key is read.
            let e = unsafe { run(&args) }.unwrap_err();
            assert!(
                e.message.contains("blockTableOptional[0][2] = 9"),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn phase_one_refusals() {
        let dt = DType::F16;
        let pb = Problem::new(2, 4, 2, 8, 16, 16, dt, 1);
        let bufs = dense(&pb, "BSND", dt);
        let ok = bufs.args("BSND", &pb, 1.0);
        check(&ok).unwrap();
        let any = Buf::zeros(DType::F32, 4096);
        let f16b = Buf::zeros(DType::F16, 4096);
        let bad = |f: &dyn Fn(&mut FusedInferAttentionScoreV2Args), code: i32, needle: &str| {
            let mut a = ok.clone();
            f(&mut a);
            let e = check(&a).expect_err(needle);
            assert_eq!(e.code, code, "{}", e.message);
            assert!(e.message.contains(needle), "{} lacks {needle}", e.message);
        };
        let t = |s: &[i64]| any.tensor(s);
        bad(
            &|a| a.deq_scale1 = Some(t(&[1])),
            161002,
            "deqScale1Optional",
        );
        bad(
            &|a| a.quant_scale2 = Some(t(&[1])),
            161002,
            "quantScale2Optional",
        );
        bad(
            &|a| a.antiquant_scale = Some(t(&[1])),
            161002,
            "antiquantScaleOptional",
        );
        bad(
            &|a| a.value_antiquant_offset = Some(t(&[1])),
            161002,
            "valueAntiquantOffsetOptional",
        );
        bad(
            &|a| a.kv_padding_size = Some(t(&[1])),
            161002,
            "left padding",
        );
        bad(
            &|a| a.key_shared_prefix = Some(t(&[1])),
            161002,
            "keySharedPrefixOptional",
        );
        bad(
            &|a| a.actual_shared_prefix_len = Some(vec![1]),
            161002,
            "actualSharedPrefixLen",
        );
        bad(
            &|a| a.input_layout = "TND".into(),
            161002,
            "inputLayout TND is not supported",
        );
        bad(&|a| a.input_layout = "BHS".into(), 161002, "not a layout");
        bad(
            &|a| a.query = t(&[2, 8, 4, 16]),
            161002,
            "query dtype DT_FLOAT",
        );
        bad(
            &|a| a.attention_out = t(&[2, 8, 4, 16]),
            161002,
            "attentionOut dtype",
        );
        bad(&|a| a.num_heads = 3, 161002, "numHeads 3");
        bad(
            &|a| a.num_heads = 0,
            161002,
            "numHeads should be in [1, 256]",
        );
        bad(&|a| a.num_key_value_heads = 3, 161002, "numKeyValueHeads 3");
        bad(&|a| a.num_key_value_heads = 4, 161002, "key[0] shape");
        bad(
            &|a| a.value = vec![f16b.tensor(&[2, 16, 2, 16]), f16b.tensor(&[2, 16, 2, 16])],
            161002,
            "same length",
        );
        bad(
            &|a| a.value = vec![f16b.tensor(&[2, 15, 2, 16])],
            161002,
            "should be the same",
        );
        bad(
            &|a| a.key = vec![t(&[2, 16, 2, 16])],
            161002,
            "key[0] dtype",
        );
        bad(
            &|a| a.attention_out = f16b.tensor(&[2, 8, 4, 8]),
            161002,
            "attentionOut shape",
        );
        bad(
            &|a| a.sparse_mode = 6,
            161002,
            "sparseMode 6 (global) is documented as not supported",
        );
        bad(
            &|a| a.sparse_mode = 9,
            161002,
            "sparseMode should be in [0, 4]",
        );
        bad(&|a| a.sparse_mode = 3, 161002, "needs attenMaskOptional");
        bad(
            &|a| {
                a.sparse_mode = 2;
                a.atten_mask = Some(f16b.tensor(&[8, 16]));
            },
            161002,
            "attenMaskOptional dtype",
        );
        let u8b = Buf::zeros(DType::U8, 4096);
        bad(
            &|a| {
                a.sparse_mode = 2;
                a.atten_mask = Some(u8b.tensor(&[8, 16]));
            },
            161002,
            "compressed mask",
        );
        bad(
            &|a| a.atten_mask = Some(u8b.tensor(&[8, 15])),
            161002,
            "attenMaskOptional shape",
        );
        bad(
            &|a| a.atten_mask = Some(u8b.tensor(&[3, 8, 16])),
            161002,
            "attenMaskOptional shape",
        );
        bad(
            &|a| a.pse_shift = Some(f16b.tensor(&[1, 2, 8, 16])),
            161002,
            "pseShiftOptional shape",
        );
        bad(
            &|a| a.pse_shift = Some(t(&[1, 4, 8, 16])),
            161002,
            "pseShiftOptional dtype",
        );
        bad(
            &|a| a.actual_seq_lengths = Some(vec![8, 9]),
            161002,
            "actualSeqLengthsOptional[1] = 9",
        );
        bad(
            &|a| a.actual_seq_lengths_kv = Some(vec![-1]),
            161002,
            "actualSeqLengthsKvOptional[0] = -1",
        );
        bad(&|a| a.inner_precise = 4, 161002, "innerPrecise");
        bad(&|a| a.softmax_lse_flag = true, 161001, "softmaxLse");
        bad(
            &|a| {
                a.softmax_lse_flag = true;
                a.softmax_lse = Some(any.tensor(&[2, 4, 8]));
            },
            161002,
            "softmaxLse should be FLOAT of shape [2, 4, 8, 1]",
        );
        bad(
            &|a| a.block_table = Some(t(&[2, 1])),
            161002,
            "blockTableOptional should be a 2-D INT32",
        );
        let i32b = Buf::zeros(DType::I32, 16);
        bad(
            &|a| {
                a.block_table = Some(i32b.tensor(&[2, 1]));
                a.block_size = 64;
            },
            161002,
            "blockSize 64",
        );
        bad(
            &|a| {
                a.block_table = Some(i32b.tensor(&[2, 1]));
                a.block_size = 128;
            },
            161002,
            "needs actualSeqLengthsKvOptional",
        );
        bad(
            &|a| {
                a.block_table = Some(i32b.tensor(&[2, 1]));
                a.block_size = 128;
                a.actual_seq_lengths_kv = Some(vec![5]);
            },
            161002,
            "key cache",
        );
        // Two actual lengths for three batches.
        let pb4 = Problem::new(3, 1, 1, 4, 4, 16, dt, 4);
        let b4 = dense(&pb4, "BSND", dt);
        let mut a4 = b4.args("BSND", &pb4, 1.0);
        a4.actual_seq_lengths_kv = Some(vec![1, 2]);
        let e = check(&a4).unwrap_err();
        assert!(
            e.message.contains("should have 1 or at least B = 3"),
            "{}",
            e.message
        );
        // D not 16-aligned in prefill.
        let pb2 = Problem::new(1, 1, 1, 4, 4, 8, dt, 2);
        let b2 = dense(&pb2, "BSND", dt);
        let e = check(&b2.args("BSND", &pb2, 1.0)).unwrap_err();
        assert!(e.message.contains("16-element aligned"), "{}", e.message);
        // BNSD_BSND needs Q_S > 1.
        let pb3 = Problem::new(1, 1, 1, 1, 4, 8, dt, 3);
        let b3 = dense(&pb3, "BNSD", dt);
        let mut a3 = b3.args("BNSD_BSND", &pb3, 1.0);
        a3.attention_out = b3.out.0.tensor(&[1, 1, 1, 8]);
        let e = check(&a3).unwrap_err();
        assert!(
            e.message.contains("BNSD_BSND needs Q_S > 1"),
            "{}",
            e.message
        );
    }

    /// Splits the last axis (width `dk`) of logical rows into the first
    /// `d` values and the rest.
    fn split_rows(data: &[f32], dk: usize, d: usize) -> (Vec<f32>, Vec<f32>) {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for row in data.chunks(dk) {
            a.extend_from_slice(&row[..d]);
            b.extend_from_slice(&row[d..]);
        }
        (a, b)
    }

    #[test]
    fn mla_rope_parts_dense_and_paged() {
        let dt = DType::BF16;
        let (d, dr) = (128usize, ROPE_DIM);
        for (layout, sq, paged) in [("BSND", 9usize, false), ("BNSD", 1, true), ("BSH", 1, true)] {
            // The reference sees one key of width d + 64 (key ‖ keyRope) and
            // values whose last 64 columns are zero.
            let (b, n, nkv, skv) = (2usize, 4usize, 1usize, 150usize);
            let mut pb = Problem::new(b, n, nkv, sq, skv, d + dr, dt, 61 + sq as u64);
            for row in pb.v.chunks_mut(d + dr) {
                row[d..].iter_mut().for_each(|x| *x = 0.0);
            }
            let (q, qr) = split_rows(&pb.q, d + dr, d);
            let (k, kr) = split_rows(&pb.k, d + dr, d);
            let (v, _) = split_rows(&pb.v, d + dr, d);
            let (qb, qshape) = store(&q, b, n, sq, d, layout, dt);
            let (qrb, qrshape) = store(&qr, b, n, sq, dr, layout, dt);
            let out = Buf::zeros(dt, b * n * sq * d);
            let bs = 128usize;
            let table: Vec<i64> = vec![1, 3, 2, 0];
            let (kb, kshape, krb, krshape, vb);
            if paged {
                // BnBsH for BSH, BnNBsD for BNSD: block ids from the table.
                let cache4 = layout == "BNSD";
                let fill = |src: &[f32], w: usize| -> Vec<f32> {
                    let mut c = vec![0f32; 4 * bs * nkv * w];
                    for bi in 0..b {
                        for t in 0..skv {
                            let blk = table[bi * 2 + t / bs] as usize;
                            for x in 0..w {
                                let dst = if cache4 {
                                    (blk * nkv * bs + t % bs) * w + x
                                } else {
                                    (blk * bs + t % bs) * nkv * w + x
                                };
                                c[dst] = src[(bi * skv + t) * w + x];
                            }
                        }
                    }
                    c
                };
                let shape = |w: usize| -> Vec<i64> {
                    if cache4 {
                        vec![4, nkv as i64, bs as i64, w as i64]
                    } else {
                        vec![4, bs as i64, (nkv * w) as i64]
                    }
                };
                kb = Buf::from_f32(dt, &fill(&k, d));
                vb = Buf::from_f32(dt, &fill(&v, d));
                krb = Buf::from_f32(dt, &fill(&kr, dr));
                kshape = shape(d);
                krshape = shape(dr);
            } else {
                let ks = store(&k, b, nkv, skv, d, layout, dt);
                let krs = store(&kr, b, nkv, skv, dr, layout, dt);
                vb = store(&v, b, nkv, skv, d, layout, dt).0;
                (kb, kshape, krb, krshape) = (ks.0, ks.1, krs.0, krs.1);
            }
            let mut args = base_args(
                qb.tensor(&qshape),
                kb.tensor(&kshape),
                vb.tensor(&kshape),
                out.tensor(&qshape),
                layout,
                n,
                nkv,
                0.07,
            );
            args.query_rope = Some(qrb.tensor(&qrshape));
            args.key_rope = Some(krb.tensor(&krshape));
            if paged {
                let tb = Buf::from_i64(DType::I32, &table);
                args.block_table = Some(tb.tensor(&[2, 2]));
                args.block_size = bs as i64;
                args.actual_seq_lengths_kv = Some(vec![skv as i64, 140]);
                // SAFETY: every view covers exactly its buffer.
                unsafe { run(&args) }.unwrap();
                let (want, _) = reference(&pb, 0.07, &[sq; 2], &[skv, 140], &|_, _, _| true, None);
                let want: Vec<f64> = want.chunks(d + dr).flat_map(|r| r[..d].to_vec()).collect();
                let small = Problem {
                    d,
                    q: q.clone(),
                    ..pb.clone()
                };
                compare(
                    &small,
                    &out.to_f32(),
                    &want,
                    out_order(layout),
                    dt,
                    &format!("mla paged {layout}"),
                );
            } else {
                // SAFETY: every view covers exactly its buffer.
                unsafe { run(&args) }.unwrap();
                let (want, _) = reference(&pb, 0.07, &[sq; 2], &[skv; 2], &|_, _, _| true, None);
                let want: Vec<f64> = want.chunks(d + dr).flat_map(|r| r[..d].to_vec()).collect();
                let small = Problem {
                    d,
                    q: q.clone(),
                    ..pb.clone()
                };
                compare(
                    &small,
                    &out.to_f32(),
                    &want,
                    out_order(layout),
                    dt,
                    &format!("mla {layout}"),
                );
            }
            // Refusals of the MLA inputs.
            let mut bad = args.clone();
            bad.key_rope = None;
            assert!(check(&bad).unwrap_err().message.contains("both be given"));
            let mut bad = args.clone();
            bad.key_rope_antiquant_scale = Some(qrb.tensor(&[1]));
            assert!(check(&bad).unwrap_err().message.contains("reserved"));
            let mut bad = args.clone();
            bad.query_rope = Some(qb.tensor(&qshape));
            assert!(check(&bad).unwrap_err().message.contains("with D = 64"));
        }
    }
}
