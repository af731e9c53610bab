//! aclnnGroupedMatmulV4 and aclnnGroupedMatmulV3, non-quantised: per group
//! `y_i = x_i @ W_i (+ b_i)`.
//!
//! Supported configurations (everything else is refused by [`check`] with
//! ACLNN_ERR_PARAM_INVALID and a message naming the parameter):
//! * `groupType = 0` (split along M, the MoE case): `x = [A (M, K)]`;
//!   `weight = [W (g, K, N)]` (a `(g, N, K)` weight is passed as a
//!   transposed view through strides) or `g` tensors `(K, N)`; bias `[(g, N)]`
//!   or `g` tensors `(N)`, or absent. `groupList` is required: an INT64
//!   tensor read by `groupListType` — 0 cumulative ends (length g,
//!   non-negative, non-decreasing, last ≤ M), 1 counts (length g,
//!   non-negative, sum ≤ M), 2 sparse `(e, 2)` rows of (group index, count)
//!   whose row blocks follow each other in entry order (group in [0, g),
//!   count ≥ 0, sum ≤ M). V3 always uses cumulative ends. `splitItem` 2/3:
//!   `out = [(M, N)]`; 0/1: `out` holds one `(rows of group i, N)` tensor per
//!   group. Decision: rows of `x` past the last group's end do not belong to
//!   any group, and the matching rows of `out` are left untouched (CANN
//!   documents the last cumulative value as ≤ M without saying what fills
//!   the rest). groupList values are device data, so they are validated
//!   when the kernel runs (`run` returns the error), not by `check`.
//! * `groupType = -1` (no grouping): `x`, `weight` (and bias) lists of equal
//!   length n, `x_i (M_i, K_i)`, `w_i (K_i, N_i)`; `splitItem` 0/1: `out_i
//!   (M_i, N_i)`; 2/3: one `out (Σ M_i, N)` (all N_i equal). groupList must
//!   be absent.
//! * groupType 1 and 2 (split N, split K) and all quantised or fused
//!   activation forms (scale, offset, antiquant*, perTokenScale, actType ≠
//!   0) are not implemented and refused.
//! * dtypes (A2/A3, non-quantised): x/weight/bias/out = f16/f16/f16/f16,
//!   bf16/bf16/f32/bf16, f32/f32/f32/f32 (f32 only with single-tensor x,
//!   weight and out lists). Lists hold at most 128 tensors; the number of
//!   groups of a single `(g, K, N)` weight is at most 1024. Every dim must
//!   fit in int32.
//! * activationInput, activationQuantScale, activationQuantOffset,
//!   activationFeatureOut and dynQuantScaleOut must be NULL (`None`).
//!
//! Groups run in parallel over the rayon pool when there are at least twice
//! as many groups as threads; otherwise they run in turn and each product
//! uses the pool. f16/bf16 operands are converted to f32 one group slab at a
//! time (only experts that receive rows are converted).

use rayon::prelude::*;

use crate::broadcast::{check_view, fmt_shape};
use crate::gemm::{F32Matrix, matmul_into, worth_parallel};
use crate::tensor::{DType, KernelError, TensorArg};

/// Maximum length of a tensor list.
pub const MAX_LIST_LEN: usize = 128;
/// Maximum number of groups of a single stacked `(g, K, N)` weight.
pub const MAX_GROUPS: i64 = 1024;

/// Arguments of `aclnnGroupedMatmulV4GetWorkspaceSize` (lists as vectors,
/// optional C arguments as `Option`).
#[derive(Debug, Clone, Default)]
pub struct GroupedMatmulV4Args {
    pub x: Vec<TensorArg>,
    pub weight: Vec<TensorArg>,
    pub bias: Option<Vec<TensorArg>>,
    pub scale: Option<Vec<TensorArg>>,
    pub offset: Option<Vec<TensorArg>>,
    pub antiquant_scale: Option<Vec<TensorArg>>,
    pub antiquant_offset: Option<Vec<TensorArg>>,
    pub per_token_scale: Option<Vec<TensorArg>>,
    pub group_list: Option<TensorArg>,
    pub activation_input: Option<Vec<TensorArg>>,
    pub activation_quant_scale: Option<Vec<TensorArg>>,
    pub activation_quant_offset: Option<Vec<TensorArg>>,
    pub split_item: i64,
    pub group_type: i64,
    pub group_list_type: i64,
    pub act_type: i64,
    pub out: Vec<TensorArg>,
    pub activation_feature_out: Option<Vec<TensorArg>>,
    pub dyn_quant_scale_out: Option<Vec<TensorArg>>,
}

/// Arguments of `aclnnGroupedMatmulV3GetWorkspaceSize` (groupList is
/// always cumulative).
#[derive(Debug, Clone, Default)]
pub struct GroupedMatmulV3Args {
    pub x: Vec<TensorArg>,
    pub weight: Vec<TensorArg>,
    pub bias: Option<Vec<TensorArg>>,
    pub scale: Option<Vec<TensorArg>>,
    pub offset: Option<Vec<TensorArg>>,
    pub antiquant_scale: Option<Vec<TensorArg>>,
    pub antiquant_offset: Option<Vec<TensorArg>>,
    pub group_list: Option<TensorArg>,
    pub split_item: i64,
    pub group_type: i64,
    pub y: Vec<TensorArg>,
}

impl GroupedMatmulV3Args {
    /// The equivalent V4 call (groupListType 0, no activation).
    pub fn to_v4(&self) -> GroupedMatmulV4Args {
        GroupedMatmulV4Args {
            x: self.x.clone(),
            weight: self.weight.clone(),
            bias: self.bias.clone(),
            scale: self.scale.clone(),
            offset: self.offset.clone(),
            antiquant_scale: self.antiquant_scale.clone(),
            antiquant_offset: self.antiquant_offset.clone(),
            group_list: self.group_list.clone(),
            split_item: self.split_item,
            group_type: self.group_type,
            out: self.y.clone(),
            ..GroupedMatmulV4Args::default()
        }
    }
}

/// Phase-one validation of aclnnGroupedMatmulV3.
pub fn check_v3(args: &GroupedMatmulV3Args) -> Result<(), KernelError> {
    check(&args.to_v4())
}

/// Phase-two computation of aclnnGroupedMatmulV3.
///
/// # Safety
/// As [`run`].
pub unsafe fn run_v3(args: &GroupedMatmulV3Args) -> Result<(), KernelError> {
    // SAFETY: forwarded.
    unsafe { run(&args.to_v4()) }
}

fn invalid(msg: String) -> KernelError {
    KernelError::invalid(msg)
}

fn check_list(list: &[TensorArg], name: &str) -> Result<(), KernelError> {
    if list.is_empty() {
        return Err(invalid(format!("{name} must not be an empty tensor list.")));
    }
    if list.len() > MAX_LIST_LEN {
        return Err(invalid(format!(
            "The length of {name} should be no more than {MAX_LIST_LEN}, but got {}.",
            list.len()
        )));
    }
    let d0 = list[0].dtype;
    for (i, t) in list.iter().enumerate() {
        check_view(t, &format!("{name}[{i}]"), 6)?;
        if t.dtype != d0 {
            return Err(invalid(format!(
                "All tensors of {name} should have the same dtype, but {name}[0] is {} and {name}[{i}] is {}.",
                d0.name(),
                t.dtype.name()
            )));
        }
        if let Some(&d) = t.shape.iter().find(|&&d| d > i64::from(i32::MAX)) {
            return Err(invalid(format!(
                "Each dim of {name}[{i}] should fit in int32, but got {d}."
            )));
        }
    }
    Ok(())
}

fn require_rank(t: &TensorArg, name: &str, rank: usize) -> Result<(), KernelError> {
    if t.rank() != rank {
        return Err(invalid(format!(
            "The dim of {name} should be {rank}, but got {} (shape {}).",
            t.rank(),
            fmt_shape(&t.shape)
        )));
    }
    Ok(())
}

/// One product: rows of `x` times one weight, into `rows` rows of output
/// `out_idx` starting at `row0`.
struct Task {
    x: TensorArg,
    w: TensorArg,
    bias: Option<TensorArg>,
    out_idx: usize,
    row0: usize,
}

/// Sub-view of rows `[r0, r1)` of a 2-D view.
fn rows(t: &TensorArg, r0: i64, r1: i64) -> TensorArg {
    TensorArg {
        ptr: t.ptr,
        dtype: t.dtype,
        shape: vec![r1 - r0, t.shape[1]],
        strides: t.strides.clone(),
        offset: t.offset + r0 * t.strides[0],
    }
}

/// Slice `i` along dim 0 (the dim removed).
fn select(t: &TensorArg, i: i64) -> TensorArg {
    TensorArg {
        ptr: t.ptr,
        dtype: t.dtype,
        shape: t.shape[1..].to_vec(),
        strides: t.strides[1..].to_vec(),
        offset: t.offset + i * t.strides[0],
    }
}

/// groupType 0: the weight (2-D `(K, N)` view) and bias of group `i`.
fn group_weight(args: &GroupedMatmulV4Args, i: usize) -> (TensorArg, Option<TensorArg>) {
    let w = if args.weight.len() == 1 && args.weight[0].rank() == 3 {
        select(&args.weight[0], i as i64)
    } else {
        args.weight[i].clone()
    };
    let b = match &args.bias {
        Some(list) if list.len() == 1 && list[0].rank() == 2 => Some(select(&list[0], i as i64)),
        Some(list) if !list.is_empty() => Some(list[i].clone()),
        _ => None,
    };
    (w, b)
}

/// groupType 0: the number of groups, K and N.
fn group_dims(args: &GroupedMatmulV4Args) -> (i64, i64, i64) {
    let w0 = &args.weight[0];
    if args.weight.len() == 1 && w0.rank() == 3 {
        (w0.shape[0], w0.shape[1], w0.shape[2])
    } else {
        (args.weight.len() as i64, w0.shape[0], w0.shape[1])
    }
}

fn check_dtypes(args: &GroupedMatmulV4Args) -> Result<(), KernelError> {
    let (xd, wd, od) = (args.x[0].dtype, args.weight[0].dtype, args.out[0].dtype);
    let (bias_d, out_d) = match (xd, wd) {
        (DType::F16, DType::F16) => (DType::F16, DType::F16),
        (DType::BF16, DType::BF16) => (DType::F32, DType::BF16),
        (DType::F32, DType::F32) => (DType::F32, DType::F32),
        _ => {
            return Err(invalid(format!(
                "x dtype {} with weight dtype {} is not supported; non-quantised GroupedMatmul takes DT_FLOAT16/DT_FLOAT16, DT_BF16/DT_BF16 or DT_FLOAT/DT_FLOAT.",
                xd.name(),
                wd.name()
            )));
        }
    };
    if od != out_d {
        return Err(invalid(format!(
            "out dtype should be {} for x dtype {}, but got {}.",
            out_d.name(),
            xd.name(),
            od.name()
        )));
    }
    if let Some(b) = args
        .bias
        .as_ref()
        .and_then(|l| l.first())
        .filter(|b| b.dtype != bias_d)
    {
        return Err(invalid(format!(
            "bias dtype should be {} for x dtype {}, but got {}.",
            bias_d.name(),
            xd.name(),
            b.dtype.name()
        )));
    }
    if xd == DType::F32 && (args.x.len() != 1 || args.weight.len() != 1 || args.out.len() != 1) {
        return Err(invalid(format!(
            "DT_FLOAT GroupedMatmul supports only single-tensor x, weight and out lists, but got {}, {} and {} tensors.",
            args.x.len(),
            args.weight.len(),
            args.out.len()
        )));
    }
    Ok(())
}

fn check_group_m(args: &GroupedMatmulV4Args) -> Result<(), KernelError> {
    if args.x.len() != 1 {
        return Err(invalid(format!(
            "When groupType is 0, x should hold one tensor, but got {}.",
            args.x.len()
        )));
    }
    let x = &args.x[0];
    require_rank(x, "x[0]", 2)?;
    let stacked = args.weight.len() == 1 && args.weight[0].rank() == 3;
    if stacked {
        if args.weight[0].shape[0] > MAX_GROUPS {
            return Err(invalid(format!(
                "The group count of weight should be no more than {MAX_GROUPS}, but got {}.",
                args.weight[0].shape[0]
            )));
        }
    } else {
        for (i, w) in args.weight.iter().enumerate() {
            require_rank(w, &format!("weight[{i}]"), 2)?;
            if w.shape != args.weight[0].shape {
                return Err(invalid(format!(
                    "All weights should have the same shape, but weight[0] is {} and weight[{i}] is {}.",
                    fmt_shape(&args.weight[0].shape),
                    fmt_shape(&w.shape)
                )));
            }
        }
    }
    let (g, k, n) = group_dims(args);
    if x.shape[1] != k {
        return Err(invalid(format!(
            "The K of x[0] {} and weight {} should be equal, but got {} and {k}.",
            fmt_shape(&x.shape),
            fmt_shape(&args.weight[0].shape),
            x.shape[1]
        )));
    }
    if let Some(list) = args.bias.as_ref().filter(|l| !l.is_empty()) {
        let ok = if list.len() == 1 && list[0].rank() == 2 {
            list[0].shape == [g, n]
        } else {
            list.len() as i64 == g && list.iter().all(|b| b.shape == [n])
        };
        if !ok {
            let shapes: Vec<String> = list.iter().map(|b| fmt_shape(&b.shape)).collect();
            return Err(invalid(format!(
                "bias should be one [{g}, {n}] tensor or {g} tensors of [{n}], but got [{}].",
                shapes.join(", ")
            )));
        }
    }
    let gl = args.group_list.as_ref().ok_or_else(|| {
        invalid("groupListOptional must not be null when groupType is 0.".to_string())
    })?;
    check_view(gl, "groupListOptional", 2)?;
    if gl.dtype != DType::I64 {
        return Err(invalid(format!(
            "groupListOptional dtype should be DT_INT64, but got {}.",
            gl.dtype.name()
        )));
    }
    match args.group_list_type {
        0 | 1 => {
            if gl.shape != [g] {
                return Err(invalid(format!(
                    "groupListOptional should have shape [{g}] (one entry per group), but got {}.",
                    fmt_shape(&gl.shape)
                )));
            }
        }
        _ => {
            if gl.rank() != 2 || gl.shape[1] != 2 {
                return Err(invalid(format!(
                    "With groupListType 2, groupListOptional should have shape [e, 2], but got {}.",
                    fmt_shape(&gl.shape)
                )));
            }
        }
    }
    match args.split_item {
        2 | 3 => {
            if args.out.len() != 1 || args.out[0].shape != [x.shape[0], n] {
                let shapes: Vec<String> = args.out.iter().map(|o| fmt_shape(&o.shape)).collect();
                return Err(invalid(format!(
                    "With splitItem {}, out should be one tensor of shape [{}, {n}], but got [{}].",
                    args.split_item,
                    x.shape[0],
                    shapes.join(", ")
                )));
            }
        }
        _ => {
            if args.out.len() as i64 != g {
                return Err(invalid(format!(
                    "With splitItem {}, out should hold {g} tensors (one per group), but got {}.",
                    args.split_item,
                    args.out.len()
                )));
            }
            for (i, o) in args.out.iter().enumerate() {
                require_rank(o, &format!("out[{i}]"), 2)?;
                if o.shape[1] != n {
                    return Err(invalid(format!(
                        "The N of out[{i}] should be {n}, but got {}.",
                        o.shape[1]
                    )));
                }
            }
        }
    }
    Ok(())
}

fn check_no_group(args: &GroupedMatmulV4Args) -> Result<(), KernelError> {
    let n = args.x.len();
    if args.weight.len() != n {
        return Err(invalid(format!(
            "When groupType is -1, x and weight should have the same length, but got {n} and {}.",
            args.weight.len()
        )));
    }
    if args.group_list.is_some() {
        return Err(invalid(
            "groupListOptional should be null when groupType is -1.".to_string(),
        ));
    }
    if let Some(b) = args.bias.as_ref().filter(|l| !l.is_empty() && l.len() != n) {
        return Err(invalid(format!(
            "bias should hold {n} tensors, but got {}.",
            b.len()
        )));
    }
    let mut total_m = 0i64;
    for i in 0..n {
        let (x, w) = (&args.x[i], &args.weight[i]);
        require_rank(x, &format!("x[{i}]"), 2)?;
        require_rank(w, &format!("weight[{i}]"), 2)?;
        if x.shape[1] != w.shape[0] {
            return Err(invalid(format!(
                "The K of x[{i}] {} and weight[{i}] {} should be equal.",
                fmt_shape(&x.shape),
                fmt_shape(&w.shape)
            )));
        }
        if let Some(b) = args
            .bias
            .as_ref()
            .filter(|l| !l.is_empty() && l[i].shape != [w.shape[1]])
        {
            return Err(invalid(format!(
                "bias[{i}] should have shape [{}], but got {}.",
                w.shape[1],
                fmt_shape(&b[i].shape)
            )));
        }
        total_m += x.shape[0];
    }
    match args.split_item {
        0 | 1 => {
            if args.out.len() != n {
                return Err(invalid(format!(
                    "With splitItem {}, out should hold {n} tensors, but got {}.",
                    args.split_item,
                    args.out.len()
                )));
            }
            for i in 0..n {
                let want = [args.x[i].shape[0], args.weight[i].shape[1]];
                if args.out[i].shape != want {
                    return Err(invalid(format!(
                        "out[{i}] should have shape {}, but got {}.",
                        fmt_shape(&want),
                        fmt_shape(&args.out[i].shape)
                    )));
                }
            }
        }
        _ => {
            let n0 = args.weight[0].shape[1];
            if let Some(i) = args.weight.iter().position(|w| w.shape[1] != n0) {
                return Err(invalid(format!(
                    "With splitItem {}, every weight needs the same N, but weight[0] has {n0} and weight[{i}] has {}.",
                    args.split_item, args.weight[i].shape[1]
                )));
            }
            if args.out.len() != 1 || args.out[0].shape != [total_m, n0] {
                return Err(invalid(format!(
                    "With splitItem {}, out should be one tensor of shape [{total_m}, {n0}].",
                    args.split_item
                )));
            }
        }
    }
    Ok(())
}

/// Phase-one validation of aclnnGroupedMatmulV4.
pub fn check(args: &GroupedMatmulV4Args) -> Result<(), KernelError> {
    check_list(&args.x, "x")?;
    check_list(&args.weight, "weight")?;
    check_list(&args.out, "out")?;
    if let Some(b) = args.bias.as_ref().filter(|l| !l.is_empty()) {
        check_list(b, "biasOptional")?;
    }
    let must_be_null = [
        (args.activation_input.is_some(), "activationInputOptional"),
        (
            args.activation_quant_scale.is_some(),
            "activationQuantScaleOptional",
        ),
        (
            args.activation_quant_offset.is_some(),
            "activationQuantOffsetOptional",
        ),
        (
            args.activation_feature_out.is_some(),
            "activationFeatureOutOptional",
        ),
        (
            args.dyn_quant_scale_out.is_some(),
            "dynQuantScaleOutOptional",
        ),
    ];
    for (given, name) in must_be_null {
        if given {
            return Err(invalid(format!("{name} must be nullptr currently.")));
        }
    }
    let quant = [
        (args.scale.is_some(), "scaleOptional"),
        (args.offset.is_some(), "offsetOptional"),
        (args.antiquant_scale.is_some(), "antiquantScaleOptional"),
        (args.antiquant_offset.is_some(), "antiquantOffsetOptional"),
        (args.per_token_scale.is_some(), "perTokenScaleOptional"),
    ];
    for (given, name) in quant {
        if given {
            return Err(invalid(format!(
                "{name} is given, but only non-quantised GroupedMatmul is supported here; pass nullptr."
            )));
        }
    }
    if !(0..=3).contains(&args.split_item) {
        return Err(invalid(format!(
            "splitItem should be in [0, 1, 2, 3], but got {}.",
            args.split_item
        )));
    }
    if !(0..=2).contains(&args.group_list_type) {
        return Err(invalid(format!(
            "groupListType should be in [0, 1, 2], but got {}.",
            args.group_list_type
        )));
    }
    if args.act_type != 0 {
        return Err(invalid(format!(
            "actType should be 0 (GMM_ACT_TYPE_NONE) for non-quantised GroupedMatmul, but got {}.",
            args.act_type
        )));
    }
    match args.group_type {
        0 => {}
        -1 if args.group_list_type == 2 => {
            return Err(invalid(
                "groupListType 2 (sparse) is only supported when groupType is 0.".to_string(),
            ));
        }
        -1 => {}
        1 | 2 => {
            return Err(invalid(format!(
                "groupType {} (split along {}) is not supported; use -1 or 0.",
                args.group_type,
                if args.group_type == 1 { "N" } else { "K" }
            )));
        }
        other => {
            return Err(invalid(format!(
                "groupType should be in [-1, 0, 1, 2], but got {other}."
            )));
        }
    }
    check_dtypes(args)?;
    if args.group_type == 0 {
        check_group_m(args)
    } else {
        check_no_group(args)
    }
}

/// groupType 0: the (group, first row, end row) blocks that the group list
/// describes, validated against `g` and `m`.
fn segments(gl: &[i64], kind: i64, g: i64, m: i64) -> Result<Vec<(usize, i64, i64)>, KernelError> {
    let mut segs = Vec::new();
    let mut start = 0i64;
    match kind {
        0 => {
            for (i, &end) in gl.iter().enumerate() {
                if end < start {
                    return Err(invalid(format!(
                        "groupListOptional (cumsum) should be non-negative and non-decreasing, but entry {i} is {end} after {start}."
                    )));
                }
                segs.push((i, start, end));
                start = end;
            }
        }
        1 => {
            for (i, &c) in gl.iter().enumerate() {
                if c < 0 {
                    return Err(invalid(format!(
                        "groupListOptional (counts) should be non-negative, but entry {i} is {c}."
                    )));
                }
                segs.push((i, start, start.saturating_add(c)));
                start = start.saturating_add(c);
            }
        }
        _ => {
            for (r, pair) in gl.chunks(2).enumerate() {
                let (grp, c) = (pair[0], pair[1]);
                if !(0..g).contains(&grp) {
                    return Err(invalid(format!(
                        "groupListOptional (sparse) row {r} names group {grp}, outside [0, {g})."
                    )));
                }
                if c < 0 {
                    return Err(invalid(format!(
                        "groupListOptional (sparse) row {r} has negative count {c}."
                    )));
                }
                segs.push((grp as usize, start, start.saturating_add(c)));
                start = start.saturating_add(c);
            }
        }
    }
    if start > m {
        return Err(invalid(format!(
            "groupListOptional covers {start} rows, but x has only M = {m}."
        )));
    }
    Ok(segs)
}

/// The products to run and the number of rows each output receives.
fn plan(args: &GroupedMatmulV4Args) -> Result<(Vec<Task>, Vec<usize>), KernelError> {
    let mut tasks = Vec::new();
    if args.group_type == -1 {
        let mut row0 = 0usize;
        let per_out = args.split_item < 2;
        for i in 0..args.x.len() {
            let bias = args.bias.as_ref().and_then(|l| l.get(i)).cloned();
            tasks.push(Task {
                x: args.x[i].clone(),
                w: args.weight[i].clone(),
                bias,
                out_idx: if per_out { i } else { 0 },
                row0: if per_out { 0 } else { row0 },
            });
            row0 += args.x[i].shape[0] as usize;
        }
        let used = if per_out {
            args.x.iter().map(|x| x.shape[0] as usize).collect()
        } else {
            vec![row0]
        };
        return Ok((tasks, used));
    }
    let (g, _, _) = group_dims(args);
    let x = &args.x[0];
    let gl_t = args.group_list.as_ref().ok_or_else(|| {
        invalid("groupListOptional must not be null when groupType is 0.".to_string())
    })?;
    // SAFETY: tensor.rs's invariant holds for the group list (run's contract).
    let gl = unsafe { gl_t.read_i64() };
    let segs = segments(&gl, args.group_list_type, g, x.shape[0])?;
    let per_out = args.split_item < 2;
    let mut used = vec![0usize; if per_out { g as usize } else { 1 }];
    for &(grp, r0, r1) in &segs {
        let rows_n = (r1 - r0) as usize;
        let out_idx = if per_out { grp } else { 0 };
        let row0 = if per_out { used[grp] } else { r0 as usize };
        if per_out {
            used[grp] += rows_n;
        } else {
            used[0] = r1 as usize;
        }
        if rows_n == 0 {
            continue;
        }
        let (w, bias) = group_weight(args, grp);
        tasks.push(Task {
            x: rows(x, r0, r1),
            w,
            bias,
            out_idx,
            row0,
        });
    }
    if per_out {
        for (i, (&u, o)) in used.iter().zip(&args.out).enumerate() {
            if o.shape[0] != u as i64 {
                return Err(invalid(format!(
                    "out[{i}] has {} rows, but groupListOptional gives group {i} {u} rows.",
                    o.shape[0]
                )));
            }
        }
    }
    Ok((tasks, used))
}

/// One product into its rows of the staging buffer (row-major, N columns).
///
/// # Safety
/// tensor.rs's invariant for the task's views.
unsafe fn compute(task: &Task, dst: &mut [f32], parallel: bool) {
    // SAFETY: the task's views are sub-views of the call's tensors.
    let (a, b) = unsafe {
        (
            F32Matrix::from_view(&task.x, false),
            F32Matrix::from_view(&task.w, false),
        )
    };
    let n = b.cols;
    debug_assert_eq!(dst.len(), a.rows * n);
    // SAFETY: `dst` is a dense row-major a.rows × n buffer we own exclusively;
    // the operands are readable f32 matrices disjoint from it.
    unsafe {
        matmul_into(
            dst.as_mut_ptr(),
            n as isize,
            1,
            a.as_ref(),
            b.as_ref(),
            parallel,
        )
    };
    if let Some(bias) = &task.bias {
        // SAFETY: the bias view is part of the call's tensors.
        let bv = unsafe { bias.read_f32() };
        for row in dst.chunks_mut(n.max(1)) {
            for (y, b) in row.iter_mut().zip(&bv) {
                *y += b;
            }
        }
    }
}

/// Phase-two computation of aclnnGroupedMatmulV4.
///
/// # Safety
/// tensor.rs's module invariant for every tensor of `args`.
pub unsafe fn run(args: &GroupedMatmulV4Args) -> Result<(), KernelError> {
    check(args)?;
    let (tasks, used) = plan(args)?;
    let ncols: Vec<usize> = args.out.iter().map(|o| o.shape[1] as usize).collect();
    let mut staging: Vec<Vec<f32>> = used
        .iter()
        .zip(&ncols)
        .map(|(&r, &n)| vec![0f32; r * n])
        .collect();
    // Hand each task its own rows of its output's staging buffer. Tasks of
    // one output come in increasing, non-overlapping row order.
    let mut work: Vec<(&Task, &mut [f32])> = Vec::with_capacity(tasks.len());
    {
        let mut rest: Vec<(&mut [f32], usize)> = staging
            .iter_mut()
            .map(|v| (v.as_mut_slice(), 0usize))
            .collect();
        for t in &tasks {
            let n = ncols[t.out_idx];
            let (buf, pos) = &mut rest[t.out_idx];
            let skip = (t.row0 - *pos) * n;
            let len = t.x.shape[0] as usize * n;
            let taken = std::mem::take(buf);
            let (_, tail) = taken.split_at_mut(skip);
            let (mine, tail) = tail.split_at_mut(len);
            *buf = tail;
            *pos = t.row0 + t.x.shape[0] as usize;
            work.push((t, mine));
        }
    }
    let threads = rayon::current_num_threads();
    let many = work.len() >= 2 * threads;
    if many {
        work.par_iter_mut().for_each(|(t, dst)| {
            // SAFETY: run's contract covers every task view.
            unsafe { compute(t, dst, false) }
        });
    } else {
        for (t, dst) in work.iter_mut() {
            let big = worth_parallel(
                t.x.shape[0] as usize,
                t.w.shape[1] as usize,
                t.w.shape[0] as usize,
            );
            // SAFETY: run's contract covers every task view.
            unsafe { compute(t, dst, big) };
        }
    }
    for ((o, buf), &r) in args.out.iter().zip(&staging).zip(&used) {
        if r == 0 {
            continue;
        }
        // SAFETY: rows [0, r) of `o` are inside `o`; every input has been read.
        unsafe { rows(o, 0, r as i64).write_f32(buf) };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{Buf, Rng, assert_close};

    /// Reference: for every row, find its group by walking the group
    /// boundaries, then a plain triple loop in f64.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        x: &[f32],
        w: &[f32],
        b: Option<&[f32]>,
        bounds: &[(usize, i64, i64)],
        m: usize,
        k: usize,
        n: usize,
        init: &[f32],
    ) -> Vec<f64> {
        let mut y: Vec<f64> = init.iter().map(|&v| f64::from(v)).collect();
        for r in 0..m {
            let Some(&(g, _, _)) = bounds
                .iter()
                .find(|&&(_, s, e)| (s..e).contains(&(r as i64)))
            else {
                continue;
            };
            for j in 0..n {
                let mut s = b.map_or(0.0, |b| f64::from(b[g * n + j]));
                for p in 0..k {
                    s += f64::from(x[r * k + p]) * f64::from(w[g * k * n + p * n + j]);
                }
                y[r * n + j] = s;
            }
        }
        y
    }

    fn bias_dtype(dt: DType) -> DType {
        if dt == DType::BF16 { DType::F32 } else { dt }
    }

    /// counts per group -> (group, start, end) bounds in order.
    fn bounds_of(counts: &[i64]) -> Vec<(usize, i64, i64)> {
        let mut s = 0;
        counts
            .iter()
            .enumerate()
            .map(|(g, &c)| {
                s += c;
                (g, s - c, s)
            })
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn moe_case(
        dt: DType,
        counts: &[i64],
        m: usize,
        k: usize,
        n: usize,
        kind: i64,
        transposed_w: bool,
        with_bias: bool,
        seed: u64,
    ) {
        let mut rng = Rng::new(seed);
        let g = counts.len();
        let x = Buf::random(dt, m * k, &mut rng);
        let wbuf = Buf::random(dt, g * k * n, &mut rng);
        // Logical weights (g, K, N); the transposed form stores (g, N, K).
        let (wview, wlogical) = if transposed_w {
            let w = wbuf.to_f32();
            let mut logical = vec![0f32; g * k * n];
            for e in 0..g {
                for p in 0..k {
                    for j in 0..n {
                        logical[e * k * n + p * n + j] = w[e * n * k + j * k + p];
                    }
                }
            }
            (
                wbuf.view(
                    &[g as i64, k as i64, n as i64],
                    &[(n * k) as i64, 1, k as i64],
                    0,
                ),
                logical,
            )
        } else {
            (wbuf.tensor(&[g as i64, k as i64, n as i64]), wbuf.to_f32())
        };
        let bbuf = Buf::random(bias_dtype(dt), g * n, &mut rng);
        let sentinel = 7.0f32;
        let out = Buf::from_f32(dt, &vec![sentinel; m * n]);
        let gl_vals: Vec<i64> = match kind {
            0 => counts
                .iter()
                .scan(0, |s, &c| {
                    *s += c;
                    Some(*s)
                })
                .collect(),
            1 => counts.to_vec(),
            _ => counts
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .flat_map(|(g, &c)| [g as i64, c])
                .collect(),
        };
        let gl = Buf::from_i64(DType::I64, &gl_vals);
        let gl_t = if kind == 2 {
            gl.tensor(&[(gl_vals.len() / 2) as i64, 2])
        } else {
            gl.tensor(&[g as i64])
        };
        let args = GroupedMatmulV4Args {
            x: vec![x.tensor(&[m as i64, k as i64])],
            weight: vec![wview],
            bias: with_bias.then(|| vec![bbuf.tensor(&[g as i64, n as i64])]),
            group_list: Some(gl_t),
            split_item: 3,
            group_type: 0,
            group_list_type: kind,
            out: vec![out.tensor(&[m as i64, n as i64])],
            ..Default::default()
        };
        check(&args).unwrap();
        // SAFETY: every view lies inside its buffer.
        unsafe { run(&args) }.unwrap();
        let bias_vals = bbuf.to_f32();
        let want = reference(
            &x.to_f32(),
            &wlogical,
            with_bias.then_some(&bias_vals[..]),
            &bounds_of(counts),
            m,
            k,
            n,
            &vec![sentinel; m * n],
        );
        assert_close(
            &out.to_f32(),
            &want,
            dt,
            &format!("{dt:?} kind {kind} counts {counts:?}"),
        );
    }

    #[test]
    fn moe_configurations_match_reference() {
        let mut seed = 1;
        for dt in [DType::F16, DType::BF16, DType::F32] {
            for kind in 0..3 {
                // Experts 1 and 3 receive no tokens; the last 3 rows of x
                // are past the last group and stay untouched.
                moe_case(dt, &[4, 0, 5, 0, 3], 15, 24, 10, kind, false, true, seed);
                seed += 1;
                moe_case(dt, &[2, 6, 1], 9, 16, 12, kind, true, false, seed);
                seed += 1;
                // One token.
                moe_case(dt, &[0, 1], 1, 8, 4, kind, false, true, seed);
                seed += 1;
            }
        }
    }

    #[test]
    fn many_groups_run_in_parallel() {
        // More groups than twice the thread count, with larger rows.
        let counts: Vec<i64> = (0..40).map(|i| (i * 7 % 13) as i64).collect();
        let m: i64 = counts.iter().sum();
        moe_case(DType::BF16, &counts, m as usize, 64, 48, 1, true, true, 77);
        moe_case(
            DType::F32,
            &counts,
            m as usize + 5,
            64,
            48,
            0,
            false,
            true,
            78,
        );
    }

    #[test]
    fn big_group_uses_parallel_gemm() {
        moe_case(DType::F32, &[300, 200], 500, 128, 96, 1, false, true, 5);
    }

    #[test]
    fn per_group_outputs_and_weight_list() {
        let mut rng = Rng::new(3);
        let dt = DType::F16;
        let (k, n) = (6usize, 5usize);
        let counts = [3i64, 0, 2];
        let m = 5usize;
        let x = Buf::random(dt, m * k, &mut rng);
        let ws: Vec<Buf> = (0..3).map(|_| Buf::random(dt, k * n, &mut rng)).collect();
        let outs: Vec<Buf> = counts
            .iter()
            .map(|&c| Buf::zeros(dt, c as usize * n))
            .collect();
        let gl = Buf::from_i64(DType::I64, &[3, 3, 5]);
        let args = GroupedMatmulV3Args {
            x: vec![x.tensor(&[m as i64, k as i64])],
            weight: ws.iter().map(|w| w.tensor(&[k as i64, n as i64])).collect(),
            group_list: Some(gl.tensor(&[3])),
            split_item: 0,
            group_type: 0,
            y: outs
                .iter()
                .zip(&counts)
                .map(|(o, &c)| o.tensor(&[c, n as i64]))
                .collect(),
            ..Default::default()
        };
        check_v3(&args).unwrap();
        // SAFETY: every view lies inside its buffer.
        unsafe { run_v3(&args) }.unwrap();
        let wall: Vec<f32> = ws.iter().flat_map(|w| w.to_f32()).collect();
        let want = reference(
            &x.to_f32(),
            &wall,
            None,
            &bounds_of(&counts),
            m,
            k,
            n,
            &vec![0.0; m * n],
        );
        let got: Vec<f32> = outs.iter().flat_map(|o| o.to_f32()).collect();
        assert_close(&got, &want, dt, "per-group outputs");
    }

    #[test]
    fn no_grouping_lists() {
        let mut rng = Rng::new(4);
        let dt = DType::BF16;
        let shapes = [(3usize, 4usize, 5usize), (2, 7, 5), (1, 3, 5)];
        let xs: Vec<Buf> = shapes
            .iter()
            .map(|&(m, k, _)| Buf::random(dt, m * k, &mut rng))
            .collect();
        let ws: Vec<Buf> = shapes
            .iter()
            .map(|&(_, k, n)| Buf::random(dt, k * n, &mut rng))
            .collect();
        let bs: Vec<Buf> = shapes
            .iter()
            .map(|&(_, _, n)| Buf::random(DType::F32, n, &mut rng))
            .collect();
        let mk = |split: i64, outs: Vec<TensorArg>| GroupedMatmulV4Args {
            x: xs
                .iter()
                .zip(&shapes)
                .map(|(b, &(m, k, _))| b.tensor(&[m as i64, k as i64]))
                .collect(),
            weight: ws
                .iter()
                .zip(&shapes)
                .map(|(b, &(_, k, n))| b.tensor(&[k as i64, n as i64]))
                .collect(),
            bias: Some(bs.iter().map(|b| b.tensor(&[5])).collect()),
            split_item: split,
            group_type: -1,
            out: outs,
            ..Default::default()
        };
        // Expected, concatenated along M.
        let mut want = Vec::new();
        for (i, &(m, k, n)) in shapes.iter().enumerate() {
            let (xv, wv, bv) = (xs[i].to_f32(), ws[i].to_f32(), bs[i].to_f32());
            want.extend(reference(
                &xv,
                &wv,
                Some(&bv),
                &[(0, 0, m as i64)],
                m,
                k,
                n,
                &vec![0.0; m * n],
            ));
        }
        let cat = Buf::zeros(dt, 6 * 5);
        let args = mk(2, vec![cat.tensor(&[6, 5])]);
        check(&args).unwrap();
        // SAFETY: every view lies inside its buffer.
        unsafe { run(&args) }.unwrap();
        assert_close(&cat.to_f32(), &want, dt, "concatenated");
        let outs: Vec<Buf> = shapes
            .iter()
            .map(|&(m, _, n)| Buf::zeros(dt, m * n))
            .collect();
        let args = mk(
            1,
            outs.iter()
                .zip(&shapes)
                .map(|(o, &(m, _, n))| o.tensor(&[m as i64, n as i64]))
                .collect(),
        );
        // SAFETY: every view lies inside its buffer.
        unsafe { run(&args) }.unwrap();
        let got: Vec<f32> = outs.iter().flat_map(|o| o.to_f32()).collect();
        assert_close(&got, &want, dt, "separate");
    }

    #[test]
    fn bad_group_lists_fail_at_run() {
        let x = Buf::zeros(DType::F16, 4 * 2);
        let w = Buf::zeros(DType::F16, 2 * 2 * 3);
        let out = Buf::zeros(DType::F16, 4 * 3);
        let cases: &[(i64, &[i64], &str)] = &[
            (0, &[3, 2], "non-decreasing"),
            (0, &[2, 5], "only M = 4"),
            (1, &[3, 2], "only M = 4"),
            (1, &[-1, 2], "non-negative"),
            (2, &[0, 1, 2, 1], "outside"),
            (2, &[1, -1, 0, 1], "negative count"),
        ];
        for &(kind, vals, needle) in cases {
            let gl = Buf::from_i64(DType::I64, vals);
            let args = GroupedMatmulV4Args {
                x: vec![x.tensor(&[4, 2])],
                weight: vec![w.tensor(&[2, 2, 3])],
                group_list: Some(if kind == 2 {
                    gl.tensor(&[2, 2])
                } else {
                    gl.tensor(&[2])
                }),
                split_item: 2,
                group_type: 0,
                group_list_type: kind,
                out: vec![out.tensor(&[4, 3])],
                ..Default::default()
            };
            check(&args).unwrap();
            // SAFETY: every view lies inside its buffer.
            let e = unsafe { run(&args) }.unwrap_err();
            assert_eq!(e.code, 161002);
            assert!(e.message.contains(needle), "{} lacks {needle}", e.message);
        }
    }

    /// A change to valid arguments that makes them invalid.
    type Edit<'a> = Box<dyn Fn(&mut GroupedMatmulV4Args) + 'a>;

    #[test]
    fn invalid_arguments_are_refused() {
        let x = Buf::zeros(DType::F16, 64);
        let w = Buf::zeros(DType::F16, 64);
        let f = Buf::zeros(DType::F32, 64);
        let bf = Buf::zeros(DType::BF16, 64);
        let gl = Buf::from_i64(DType::I64, &[1, 2]);
        let gl32 = Buf::zeros(DType::I32, 2);
        let out = Buf::zeros(DType::F16, 64);
        let ok = GroupedMatmulV4Args {
            x: vec![x.tensor(&[2, 3])],
            weight: vec![w.tensor(&[2, 3, 4])],
            bias: Some(vec![w.tensor(&[2, 4])]),
            group_list: Some(gl.tensor(&[2])),
            split_item: 3,
            group_type: 0,
            group_list_type: 0,
            out: vec![out.tensor(&[2, 4])],
            ..Default::default()
        };
        check(&ok).unwrap();
        let one = || Some(vec![f.tensor(&[1])]);
        let cases: Vec<(Edit<'_>, &str)> = vec![
            (Box::new(|a| a.x.clear()), "empty tensor list"),
            (
                Box::new(|a| a.weight = vec![w.tensor(&[3, 4]); 129]),
                "no more than 128",
            ),
            (
                Box::new(|a| a.activation_input = one()),
                "activationInputOptional must be nullptr",
            ),
            (
                Box::new(|a| a.activation_quant_scale = one()),
                "activationQuantScaleOptional",
            ),
            (
                Box::new(|a| a.activation_quant_offset = one()),
                "activationQuantOffsetOptional",
            ),
            (
                Box::new(|a| a.activation_feature_out = one()),
                "activationFeatureOutOptional",
            ),
            (
                Box::new(|a| a.dyn_quant_scale_out = one()),
                "dynQuantScaleOutOptional",
            ),
            (Box::new(|a| a.scale = one()), "scaleOptional"),
            (
                Box::new(|a| a.antiquant_offset = one()),
                "antiquantOffsetOptional",
            ),
            (
                Box::new(|a| a.per_token_scale = one()),
                "perTokenScaleOptional",
            ),
            (Box::new(|a| a.split_item = 4), "splitItem"),
            (Box::new(|a| a.group_list_type = 3), "groupListType"),
            (Box::new(|a| a.act_type = 5), "actType"),
            (Box::new(|a| a.group_type = 1), "groupType 1"),
            (Box::new(|a| a.group_type = 7), "groupType should be"),
            (
                Box::new(|a| {
                    a.group_type = -1;
                    a.group_list_type = 2
                }),
                "only supported when groupType is 0",
            ),
            (
                Box::new(|a| a.weight = vec![bf.tensor(&[2, 3, 4])]),
                "weight dtype DT_BF16",
            ),
            (Box::new(|a| a.out = vec![bf.tensor(&[2, 4])]), "out dtype"),
            (
                Box::new(|a| a.bias = Some(vec![f.tensor(&[2, 4])])),
                "bias dtype",
            ),
            (
                Box::new(|a| a.bias = Some(vec![w.tensor(&[3, 4])])),
                "bias should be",
            ),
            (Box::new(|a| a.x = vec![x.tensor(&[2, 5])]), "The K of x[0]"),
            (
                Box::new(|a| a.x = vec![x.tensor(&[2, 3, 1])]),
                "dim of x[0]",
            ),
            (Box::new(|a| a.group_list = None), "must not be null"),
            (
                Box::new(|a| a.group_list = Some(gl32.tensor(&[2]))),
                "DT_INT64",
            ),
            (
                Box::new(|a| a.group_list = Some(gl.tensor(&[1]))),
                "one entry per group",
            ),
            (
                Box::new(|a| {
                    a.group_list_type = 2;
                }),
                "[e, 2]",
            ),
            (
                Box::new(|a| a.out = vec![out.tensor(&[3, 4])]),
                "out should be one tensor",
            ),
            (
                Box::new(|a| {
                    a.split_item = 0;
                }),
                "one per group",
            ),
            (
                Box::new(|a| a.weight = vec![w.tensor(&[3, 4]), w.tensor(&[3, 5])]),
                "same shape",
            ),
            (
                Box::new(|a| {
                    a.x = vec![f.tensor(&[2, 3]), f.tensor(&[2, 3])];
                    a.weight = vec![f.tensor(&[3, 4]), f.tensor(&[3, 4])];
                    a.bias = None;
                    a.out = vec![f.tensor(&[4, 4])];
                    a.group_type = -1;
                    a.group_list = None;
                }),
                "single-tensor",
            ),
            (
                Box::new(|a| {
                    a.x = vec![x.tensor(&[2, 3]), x.tensor(&[2, 3])];
                    a.weight = vec![w.tensor(&[3, 4])];
                    a.group_type = -1;
                }),
                "same length",
            ),
            (
                Box::new(|a| {
                    a.weight = vec![w.tensor(&[3, 4])];
                    a.bias = None;
                    a.group_type = -1;
                }),
                "should be null when groupType is -1",
            ),
            (
                Box::new(|a| {
                    a.x = vec![x.tensor(&[2, 3]), x.tensor(&[1, 3])];
                    a.weight = vec![w.tensor(&[3, 4]), w.tensor(&[3, 2])];
                    a.bias = None;
                    a.group_type = -1;
                    a.group_list = None;
                    a.out = vec![out.tensor(&[3, 4])];
                }),
                "same N",
            ),
            (
                Box::new(|a| {
                    a.x = vec![x.tensor(&[2, 3])];
                    a.weight = vec![w.tensor(&[3, 4])];
                    a.bias = None;
                    a.group_type = -1;
                    a.group_list = None;
                    a.split_item = 0;
                    a.out = vec![out.tensor(&[2, 5])];
                }),
                "out[0] should have shape",
            ),
        ];
        for (f, needle) in cases {
            let mut a = ok.clone();
            f(&mut a);
            let e = check(&a).unwrap_err();
            assert_eq!(e.code, 161002, "{}", e.message);
            assert!(
                e.message.contains(needle),
                "{:?} lacks {needle:?}",
                e.message
            );
        }
    }
}
