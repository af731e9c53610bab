//! Layouts for shaped calls: the tensors, lists and parameters of each
//! operator with shapes, types and index contents that agree, as the
//! operator's documentation asks, then the fuzzer's changes applied on top.
//!
//! Random tensors rarely agree in shape, so without layouts the fuzzer
//! mostly reaches the first shape check of each operator; a layout gets
//! phase one to pass and the kernel to run, and each change then probes one
//! check (or the kernel's handling of the values) at a time.
//!
//! Sizes: `n` tokens, `h` hidden, `e` experts (each 1 to 6) and `k` (1 to
//! `e`), so no tensor exceeds a few hundred elements.
//!
//! Invariant: the layout's `TRef::Pool` and `LRef::Pool` indices are
//! absolute (the caller passes where the layout's tensors and lists will
//! start in its pools), and every tensor and list of the layout is used by
//! the operator call.

use crate::harness::any;
use crate::spec::*;

/// A shaped call ready to run: tensors and lists to create, then the call.
pub struct Layout {
    /// The tensors, in pool order from the caller's base.
    pub tensors: Vec<TensorSpec>,
    /// Which tensors are passed as NULL instead of being created.
    pub nulls: Vec<bool>,
    /// The lists, as absolute pool indices of their members.
    pub lists: Vec<Vec<u8>>,
    /// The operator call.
    pub op: Op,
}

struct Builder {
    tbase: usize,
    lbase: usize,
    tensors: Vec<TensorSpec>,
    lists: Vec<Vec<u8>>,
}

impl Builder {
    /// A contiguous tensor of `view` that fits its allocation.
    fn t(&mut self, view: &[i64], dtype: DTypeSpec, fill: Fill) -> TRef {
        self.tensors.push(TensorSpec {
            dtype,
            format: FormatSpec::Nd,
            view: view.iter().map(|&d| Dim::Raw(d)).collect(),
            strides: Strides::Null,
            offset: Offset::Zero,
            storage: StorageSpec::SameAsView,
            placement: Placement::Fits { pad: 0, shift: 0 },
            fill,
        });
        TRef::Pool((self.tbase + self.tensors.len() - 1) as u8)
    }

    /// A list of the given tensors of this layout.
    fn list(&mut self, members: &[TRef]) -> LRef {
        let ids = members
            .iter()
            .map(|m| match m {
                TRef::Pool(i) => *i,
                _ => unreachable!("list members are tensors of the layout"),
            })
            .collect();
        self.lists.push(ids);
        LRef::Pool((self.lbase + self.lists.len() - 1) as u8)
    }
}

fn float(f: FloatType) -> DTypeSpec {
    match f {
        FloatType::F32 => DTypeSpec::F32,
        FloatType::F16 => DTypeSpec::F16,
        FloatType::Bf16 => DTypeSpec::Bf16,
    }
}

fn values(v: impl IntoIterator<Item = i64>) -> Fill {
    Fill::Values(v.into_iter().map(|x| x as i16).collect())
}

fn int(v: i64) -> Int {
    Int::Raw(v)
}

/// The layout of `sh` with its tensors from pool index `tbase` and its
/// lists from list index `lbase`.
pub fn layout(sh: &Shaped, tbase: usize, lbase: usize) -> Layout {
    let size = |i: usize| 1 + i64::from(sh.sizes[i] % 6);
    let (n, h, e) = (size(0), size(1), size(2));
    let k = 1 + i64::from(sh.sizes[3]) % e;
    let fl = float(sh.float);
    let data = sh.values.clone();
    // Valid index contents, or the fuzzer's values.
    let idx = |v: Vec<i64>| {
        if sh.valid_indices {
            values(v)
        } else {
            sh.values.clone()
        }
    };
    // Expert ids: row r picks the k distinct experts r, r+1, ... mod e.
    let expert_ids: Vec<i64> = (0..n)
        .flat_map(|r| (0..k).map(move |j| (r + j) % e))
        .collect();
    let mut sorted_ids = expert_ids.clone();
    sorted_ids.sort_unstable();
    // Rows of a group list: e groups sharing n rows.
    let counts: Vec<i64> = (0..e).map(|g| n / e + i64::from(g < n % e)).collect();
    let ends: Vec<i64> = counts
        .iter()
        .scan(0, |acc, c| {
            *acc += c;
            Some(*acc)
        })
        .collect();
    let [f0, f1, f2] = sh.flags;
    let mut b = Builder {
        tbase,
        lbase,
        tensors: Vec::new(),
        lists: Vec::new(),
    };
    // Integer parameters in order; the fuzzer may replace one.
    let mut ints: Vec<i64>;
    let real = |default: f64| sh.real.unwrap_or(default);
    let alpha = ScalarSpec::F32(0.5);
    macro_rules! p {
        ($i:expr) => {
            int(ints[$i])
        };
    }
    let set = |ints: &mut Vec<i64>| {
        if let Some((i, v)) = sh.param
            && !ints.is_empty()
        {
            let len = ints.len();
            ints[usize::from(i) % len] = v.value();
        }
    };
    let op = match sh.op {
        OpKind::Matmul => {
            ints = vec![0];
            set(&mut ints);
            any(
                "aclnnMatmul",
                vec![
                    Param::Tensor(b.t(&[n, h], fl, data.clone())),
                    Param::Tensor(b.t(&[h, e], fl, data)),
                    Param::Tensor(b.t(&[n, e], fl, Fill::Zeros)),
                    Param::Int(int(ints[0])),
                ],
            )
        }
        OpKind::Add => any(
            "aclnnAdd",
            vec![
                Param::Tensor(b.t(&[n, h], fl, data.clone())),
                Param::Tensor(b.t(&[h], fl, data)),
                Param::Scalar(alpha),
                Param::Tensor(b.t(&[n, h], fl, Fill::Zeros)),
            ],
        ),
        OpKind::InplaceAdd => any(
            "aclnnInplaceAdd",
            vec![
                Param::Tensor(b.t(&[n, h], fl, data.clone())),
                Param::Tensor(b.t(&[n, 1], fl, data)),
                Param::Scalar(alpha),
            ],
        ),
        OpKind::Adds => any(
            "aclnnAdds",
            vec![
                Param::Tensor(b.t(&[n, h], fl, data)),
                Param::Scalar(ScalarSpec::F32(2.0)),
                Param::Scalar(alpha),
                Param::Tensor(b.t(&[n, h], fl, Fill::Zeros)),
            ],
        ),
        OpKind::Mul => any(
            "aclnnMul",
            vec![
                Param::Tensor(b.t(&[n, h], fl, data.clone())),
                Param::Tensor(b.t(&[n, 1], fl, data)),
                Param::Tensor(b.t(&[n, h], fl, Fill::Zeros)),
            ],
        ),
        OpKind::Softmax => {
            ints = vec![-1];
            set(&mut ints);
            any(
                "aclnnSoftmax",
                vec![
                    Param::Tensor(b.t(&[n, h], fl, data)),
                    Param::Int(p!(0)),
                    Param::Tensor(b.t(&[n, h], fl, Fill::Zeros)),
                ],
            )
        }
        OpKind::RmsNorm => any(
            "aclnnRmsNorm",
            vec![
                Param::Tensor(b.t(&[n, h], fl, data.clone())),
                Param::Tensor(b.t(&[h], fl, data)),
                Param::Real(real(1e-6)),
                Param::Tensor(b.t(&[n, h], fl, Fill::Zeros)),
                Param::Tensor(b.t(&[n, 1], DTypeSpec::F32, Fill::Zeros)),
            ],
        ),
        OpKind::SwiGlu => {
            ints = vec![-1];
            set(&mut ints);
            any(
                "aclnnSwiGlu",
                vec![
                    Param::Tensor(b.t(&[n, 2 * h], fl, data)),
                    Param::Int(p!(0)),
                    Param::Tensor(b.t(&[n, h], fl, Fill::Zeros)),
                ],
            )
        }
        OpKind::Topk => {
            ints = vec![k, 1];
            set(&mut ints);
            any(
                "aclnnTopk",
                vec![
                    Param::Tensor(b.t(&[n, e], fl, data)),
                    Param::Int(p!(0)),
                    Param::Int(p!(1)),
                    Param::Flag(f0),
                    Param::Flag(true),
                    Param::Tensor(b.t(&[n, k], fl, Fill::Zeros)),
                    Param::Tensor(b.t(&[n, k], DTypeSpec::I64, Fill::Zeros)),
                ],
            )
        }
        OpKind::GatingTopKSoftmax => {
            ints = vec![k];
            set(&mut ints);
            let x = b.t(&[n, e], fl, data);
            let finished = if f2 {
                b.t(&[n], DTypeSpec::Bool, idx(vec![0, 1]))
            } else {
                TRef::Null
            };
            any(
                "aclnnMoeGatingTopKSoftmax",
                vec![
                    Param::Tensor(x),
                    Param::Tensor(finished),
                    Param::Int(p!(0)),
                    Param::Tensor(b.t(&[n, k], fl, Fill::Zeros)),
                    Param::Tensor(b.t(&[n, k], DTypeSpec::I32, Fill::Zeros)),
                    Param::Tensor(b.t(&[n, k], DTypeSpec::I32, Fill::Zeros)),
                ],
            )
        }
        OpKind::GatingTopKSoftmaxV2 => {
            ints = vec![k, i64::from(f0)];
            set(&mut ints);
            let x = b.t(&[n, e], fl, data);
            let finished = if f2 {
                b.t(&[n], DTypeSpec::Bool, idx(vec![1, 0]))
            } else {
                TRef::Null
            };
            let y = b.t(&[n, k], fl, Fill::Zeros);
            let expert_idx = b.t(&[n, k], DTypeSpec::I32, Fill::Zeros);
            let softmax_out = if f1 {
                b.t(&[n, e], DTypeSpec::F32, Fill::Zeros)
            } else {
                TRef::Null
            };
            any(
                "aclnnMoeGatingTopKSoftmaxV2",
                vec![
                    Param::Tensor(x),
                    Param::Tensor(finished),
                    Param::Int(p!(0)),
                    Param::Int(p!(1)),
                    Param::Flag(f1),
                    Param::Tensor(y),
                    Param::Tensor(expert_idx),
                    Param::Tensor(softmax_out),
                ],
            )
        }
        OpKind::GatingTopK => {
            // One group of e experts; sigmoid scores (normType 1).
            ints = vec![k, 1, 1, 0, 0, 1];
            set(&mut ints);
            let x = b.t(&[n, e], fl, data.clone());
            let bias = if f2 { b.t(&[e], fl, data) } else { TRef::Null };
            let y = b.t(&[n, k], fl, Fill::Zeros);
            let expert_idx = b.t(&[n, k], DTypeSpec::I32, Fill::Zeros);
            let out = if f1 {
                b.t(&[n, e], DTypeSpec::F32, Fill::Zeros)
            } else {
                TRef::Null
            };
            any(
                "aclnnMoeGatingTopK",
                vec![
                    Param::Tensor(x),
                    Param::Tensor(bias),
                    Param::Int(p!(0)),
                    Param::Int(p!(1)),
                    Param::Int(p!(2)),
                    Param::Int(p!(3)),
                    Param::Int(p!(4)),
                    Param::Int(p!(5)),
                    Param::Flag(f1),
                    Param::Real(real(1.0)),
                    Param::Real(1e-20),
                    Param::Tensor(y),
                    Param::Tensor(expert_idx),
                    Param::Tensor(out),
                ],
            )
        }
        OpKind::InitRoutingV2 => {
            // activeNum, expertCapacity, expertNum, dropPadMode, count flag.
            ints = vec![0, 0, e, 0, if f0 { 2 } else { 1 }];
            set(&mut ints);
            any(
                "aclnnMoeInitRoutingV2",
                vec![
                    Param::Tensor(b.t(&[n, h], fl, data)),
                    Param::Tensor(b.t(&[n, k], DTypeSpec::I32, idx(expert_ids))),
                    Param::Int(p!(0)),
                    Param::Int(p!(1)),
                    Param::Int(p!(2)),
                    Param::Int(p!(3)),
                    Param::Int(p!(4)),
                    Param::Flag(false),
                    Param::Tensor(b.t(&[n * k, h], fl, Fill::Zeros)),
                    Param::Tensor(b.t(&[n * k], DTypeSpec::I32, Fill::Zeros)),
                    Param::Tensor(b.t(&[e], DTypeSpec::I32, Fill::Zeros)),
                    Param::Tensor(TRef::Null),
                ],
            )
        }
        OpKind::InitRoutingV3 => {
            // activeNum, capacity, expertNum, dropPadMode, tokensNumType,
            // quantMode, rowIdxType.
            ints = vec![n * k, 0, e, 0, i64::from(f0), -1, 0];
            set(&mut ints);
            any(
                "aclnnMoeInitRoutingV3",
                vec![
                    Param::Tensor(b.t(&[n, h], fl, data)),
                    Param::Tensor(b.t(&[n, k], DTypeSpec::I32, idx(expert_ids))),
                    Param::Tensor(TRef::Null),
                    Param::Tensor(TRef::Null),
                    Param::Int(p!(0)),
                    Param::Int(p!(1)),
                    Param::Int(p!(2)),
                    Param::Int(p!(3)),
                    Param::Int(p!(4)),
                    Param::Flag(true),
                    Param::Int(p!(5)),
                    Param::IntArray(if f1 { Some(vec![int(0), int(e)]) } else { None }),
                    Param::Int(p!(6)),
                    Param::Tensor(b.t(&[n * k, h], fl, Fill::Zeros)),
                    Param::Tensor(b.t(&[n * k], DTypeSpec::I32, Fill::Zeros)),
                    Param::Tensor(b.t(&[e], DTypeSpec::I64, Fill::Zeros)),
                    Param::Tensor(TRef::Null),
                ],
            )
        }
        OpKind::ComputeExpertTokens => {
            ints = vec![e];
            set(&mut ints);
            any(
                "aclnnMoeComputeExpertTokens",
                vec![
                    Param::Tensor(b.t(&[n * k], DTypeSpec::I32, idx(sorted_ids))),
                    Param::Int(p!(0)),
                    Param::Tensor(b.t(&[e], DTypeSpec::I32, Fill::Zeros)),
                ],
            )
        }
        OpKind::FinalizeRoutingV2 => {
            ints = vec![2];
            set(&mut ints);
            // Row p of expandedX holds (token p / k, choice p % k) through a
            // reversing permutation.
            let rows: Vec<i64> = (0..n * k).rev().collect();
            let expanded_x = b.t(&[n * k, h], fl, data.clone());
            let expanded_row_idx = b.t(&[n * k], DTypeSpec::I32, idx(rows));
            let x1 = if f0 {
                b.t(&[n, h], fl, data.clone())
            } else {
                TRef::Null
            };
            // Without scales the operator takes k = 1; the layout always
            // gives them (a change may pass NULL).
            let scales = b.t(&[n, k], fl, data);
            let (bias, expert_idx) = if f2 {
                (
                    b.t(&[e, h], fl, Fill::Iota),
                    b.t(&[n, k], DTypeSpec::I32, idx(expert_ids)),
                )
            } else {
                (TRef::Null, TRef::Null)
            };
            any(
                "aclnnMoeFinalizeRoutingV2",
                vec![
                    Param::Tensor(expanded_x),
                    Param::Tensor(expanded_row_idx),
                    Param::Tensor(x1),
                    Param::Tensor(TRef::Null),
                    Param::Tensor(bias),
                    Param::Tensor(scales),
                    Param::Tensor(expert_idx),
                    Param::Int(p!(0)),
                    Param::Tensor(b.t(&[n, h], fl, Fill::Zeros)),
                ],
            )
        }
        OpKind::GroupedMatmulV3 | OpKind::GroupedMatmulV4 => {
            // splitItem, groupType, groupListType (V4), actType (V4).
            let counts_list = f0 && sh.op == OpKind::GroupedMatmulV4;
            ints = vec![3, 0, i64::from(counts_list), 0];
            set(&mut ints);
            let cols = k;
            let xt = b.t(&[n, h], fl, data.clone());
            let wt = b.t(&[e, h, cols], fl, data.clone());
            let yt = b.t(&[n, cols], fl, Fill::Zeros);
            let x = b.list(&[xt]);
            let weight = b.list(&[wt]);
            let y = b.list(&[yt]);
            let bias = if f1 {
                // bf16 takes a float bias.
                let bias_type = match sh.float {
                    FloatType::Bf16 => DTypeSpec::F32,
                    _ => fl,
                };
                let bt = b.t(&[e, cols], bias_type, data);
                b.list(&[bt])
            } else {
                LRef::Null
            };
            let group_list = b.t(
                &[e],
                DTypeSpec::I64,
                idx(if counts_list { counts } else { ends }),
            );
            if sh.op == OpKind::GroupedMatmulV3 {
                any(
                    "aclnnGroupedMatmulV3",
                    vec![
                        Param::List(x),
                        Param::List(weight),
                        Param::List(bias),
                        Param::List(LRef::Null),
                        Param::List(LRef::Null),
                        Param::List(LRef::Null),
                        Param::List(LRef::Null),
                        Param::Tensor(group_list),
                        Param::Int(p!(0)),
                        Param::Int(p!(1)),
                        Param::List(y),
                    ],
                )
            } else {
                any(
                    "aclnnGroupedMatmulV4",
                    vec![
                        Param::List(x),
                        Param::List(weight),
                        Param::List(bias),
                        Param::List(LRef::Null),
                        Param::List(LRef::Null),
                        Param::List(LRef::Null),
                        Param::List(LRef::Null),
                        Param::List(LRef::Null),
                        Param::Tensor(group_list),
                        Param::List(LRef::Null),
                        Param::List(LRef::Null),
                        Param::List(LRef::Null),
                        Param::Int(p!(0)),
                        Param::Int(p!(1)),
                        Param::Int(p!(2)),
                        Param::Int(p!(3)),
                        Param::List(y),
                        Param::List(LRef::Null),
                        Param::List(LRef::Null),
                    ],
                )
            }
        }
    };
    let mut tensors = b.tensors;
    let mut nulls = vec![false; tensors.len()];
    if !tensors.is_empty() {
        for (i, change) in sh.changes.iter().take(MAX_CHANGES) {
            let i = usize::from(*i) % tensors.len();
            let t = &mut tensors[i];
            match change {
                Change::View(v) => t.view = v.clone(),
                Change::OneDim(d, dim) => {
                    if !t.view.is_empty() {
                        let len = t.view.len();
                        t.view[usize::from(*d) % len] = *dim;
                    }
                }
                Change::DType(d) => t.dtype = *d,
                Change::Strides(s) => t.strides = s.clone(),
                Change::Offset(o) => t.offset = *o,
                Change::Format(f) => t.format = *f,
                Change::Placement(p) => t.placement = *p,
                Change::Fill(f) => t.fill = f.clone(),
                Change::Null => nulls[i] = true,
            }
        }
    }
    Layout {
        tensors,
        nulls,
        lists: b.lists,
        op,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::run_case;

    const ALL: [OpKind; 18] = [
        OpKind::Matmul,
        OpKind::Add,
        OpKind::InplaceAdd,
        OpKind::Adds,
        OpKind::Mul,
        OpKind::Softmax,
        OpKind::RmsNorm,
        OpKind::SwiGlu,
        OpKind::Topk,
        OpKind::GatingTopKSoftmax,
        OpKind::GatingTopKSoftmaxV2,
        OpKind::GatingTopK,
        OpKind::InitRoutingV2,
        OpKind::InitRoutingV3,
        OpKind::ComputeExpertTokens,
        OpKind::GroupedMatmulV3,
        OpKind::GroupedMatmulV4,
        OpKind::FinalizeRoutingV2,
    ];

    fn shaped(op: OpKind, sizes: [u8; 4], float: FloatType, flags: [bool; 3]) -> Shaped {
        Shaped {
            op,
            sizes,
            float,
            flags,
            values: Fill::Iota,
            valid_indices: true,
            param: None,
            real: None,
            changes: vec![],
            launch: LaunchSpec {
                stream: StreamSpec::Ours,
                repeatable: false,
                bogus_workspace: None,
                skip: false,
                readdress: None,
            },
        }
    }

    fn case(sh: Shaped) -> Case {
        Case {
            vars: [0; 4],
            tensors: vec![],
            lists: vec![],
            calls: vec![],
            shaped: vec![sh],
        }
    }

    #[test]
    fn every_layout_runs_its_kernel() {
        for op in ALL {
            for (sizes, float, flags) in [
                ([0, 0, 0, 0], FloatType::F32, [false; 3]),
                ([3, 2, 5, 2], FloatType::F32, [true; 3]),
                ([5, 1, 3, 7], FloatType::F16, [true, false, true]),
                ([2, 4, 1, 0], FloatType::Bf16, [false, true, false]),
            ] {
                let stats = run_case(&case(shaped(op, sizes, float, flags)));
                assert_eq!(
                    (stats.phase_one_ok, stats.launched, stats.kernel_errors),
                    (1, 1, 0),
                    "{op:?} {sizes:?} {float:?} {flags:?}: {stats:?}"
                );
            }
        }
    }

    #[test]
    fn changes_reach_the_checks() {
        // A NULL required tensor, a wrong dtype, a misaligned address and
        // pinned host memory are each refused by phase one. (An address past
        // its block is not always refused: it may land inside another live
        // block, which the mock cannot tell from a pointer derived from it.)
        for change in [
            Change::Null,
            Change::DType(DTypeSpec::Raw(9999)),
            Change::Placement(Placement::Misaligned(3)),
            Change::Placement(Placement::Pinned),
        ] {
            let mut sh = shaped(OpKind::Matmul, [3, 3, 3, 0], FloatType::F32, [false; 3]);
            sh.changes = vec![(0, change.clone())];
            let stats = run_case(&case(sh));
            assert_eq!(stats.phase_one_ok, 0, "{change:?}");
        }
        // Out-of-range expert ids pass phase one and fail in the kernel.
        let mut sh = shaped(
            OpKind::InitRoutingV2,
            [3, 2, 4, 1],
            FloatType::F32,
            [false; 3],
        );
        sh.valid_indices = false;
        sh.values = Fill::Values(vec![100, -3]);
        let stats = run_case(&case(sh));
        assert_eq!(
            (stats.phase_one_ok, stats.kernel_errors),
            (1, 1),
            "{stats:?}"
        );
    }
}
