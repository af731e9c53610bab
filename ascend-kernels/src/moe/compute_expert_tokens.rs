//! `aclnnMoeComputeExpertTokens`: the end offset of each expert's segment in
//! a sorted list of expert ids.
//!
//! `out[i]` = the number of entries of `sortedExperts` that are `≤ i`, i.e.
//! one past the last occurrence of `i` (an inclusive cumulative token count,
//! directly usable as a cumsum group list). CANN finds it by binary search on
//! the sorted input; counting gives the same result for sorted input and a
//! well-defined one otherwise (values outside `[0, numExperts)` simply count
//! towards every `i` above them, or none).

use super::{check_dtype, check_rank, check_shape, check_view};
use crate::tensor::{DType, KernelError, TensorArg};

const OP: &str = "aclnnMoeComputeExpertTokens";

/// Arguments of `aclnnMoeComputeExpertTokensGetWorkspaceSize(sortedExperts,
/// numExperts, out, ...)`.
#[derive(Debug, Clone)]
pub struct MoeComputeExpertTokensArgs {
    /// `[M]` INT32, sorted ascending, `M < 2^24`.
    pub sorted_experts: TensorArg,
    /// In `(0, 2048]`.
    pub num_experts: i64,
    /// `[numExperts]` INT32.
    pub out: TensorArg,
}

/// Validate what `aclnnMoeComputeExpertTokensGetWorkspaceSize` validates.
pub fn check(args: &MoeComputeExpertTokensArgs) -> Result<(), KernelError> {
    let s = &args.sorted_experts;
    check_view(OP, "sortedExperts", s)?;
    check_view(OP, "out", &args.out)?;
    check_dtype(OP, "sortedExperts", s, &[DType::I32])?;
    check_rank(OP, "sortedExperts", s, 1, 1)?;
    if s.shape[0] >= 1 << 24 {
        return Err(KernelError::invalid(format!(
            "{OP}: the length of sortedExperts should be less than 16777216 (2^24), but got {}.",
            s.shape[0]
        )));
    }
    if args.num_experts <= 0 || args.num_experts > 2048 {
        return Err(KernelError::invalid(format!(
            "{OP}: numExperts should be in range (0, 2048], but got {}.",
            args.num_experts
        )));
    }
    check_dtype(OP, "out", &args.out, &[DType::I32])?;
    check_shape(OP, "out", &args.out, &[args.num_experts])?;
    Ok(())
}

/// Compute `aclnnMoeComputeExpertTokens`.
///
/// # Safety
/// Every tensor satisfies tensor.rs's module invariant; `out` is writable.
pub unsafe fn run(args: &MoeComputeExpertTokensArgs) -> Result<(), KernelError> {
    check(args)?;
    let e = args.num_experts as usize;
    // SAFETY: the caller upholds the invariant for the input.
    let ids = unsafe { args.sorted_experts.read_i64() };
    // Histogram of in-range ids (plus the entries below 0, which are ≤ every i).
    let mut hist = vec![0i64; e];
    let mut below = 0i64;
    for &v in &ids {
        if v < 0 {
            below += 1;
        } else if (v as usize) < e {
            hist[v as usize] += 1;
        }
    }
    let out: Vec<i64> = hist
        .iter()
        .scan(below, |acc, &c| {
            *acc += c;
            Some(*acc)
        })
        .collect();
    // SAFETY: check passed, so `out` has numExperts elements; the caller
    // upholds the invariant for it.
    unsafe { args.out.write_i64(&out) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::moe::testkit::{Buf, Rng, assert_invalid, padded_i64};

    /// Reference: binary search for the last occurrence of each i (as CANN
    /// describes it), on sorted input.
    fn reference(sorted: &[i64], e: usize) -> Vec<i64> {
        (0..e as i64)
            .map(|i| {
                let (mut lo, mut hi) = (0usize, sorted.len());
                while lo < hi {
                    let mid = (lo + hi) / 2;
                    if sorted[mid] <= i {
                        lo = mid + 1
                    } else {
                        hi = mid
                    }
                }
                lo as i64
            })
            .collect()
    }

    #[test]
    fn matches_binary_search_reference() {
        let mut rng = Rng::new(71);
        for (m, e, strided) in [
            (50usize, 8usize, false),
            (1, 4, true),
            (0, 3, false),
            (300, 64, true),
            (20, 2048, false),
        ] {
            // Only even experts receive tokens.
            let mut ids: Vec<i64> = (0..m)
                .map(|_| 2 * rng.below(e.div_ceil(2) as u64) as i64)
                .collect();
            ids.sort();
            let (_b, t) = if strided {
                padded_i64(DType::I32, &[m as i64], &ids)
            } else {
                let b = Buf::from_i64(DType::I32, &ids);
                let t = b.tensor(&[m as i64]);
                (b, t)
            };
            let out = Buf::zeros(DType::I32, e);
            let args = MoeComputeExpertTokensArgs {
                sorted_experts: t,
                num_experts: e as i64,
                out: out.tensor(&[e as i64]),
            };
            // SAFETY: every view lies inside its buffer.
            unsafe { run(&args).unwrap() };
            assert_eq!(out.to_i64(), reference(&ids, e), "m {m} e {e}");
        }
    }

    #[test]
    fn refuses_invalid_arguments() {
        let b = Buf::zeros(DType::I32, 8);
        let good = MoeComputeExpertTokensArgs {
            sorted_experts: b.tensor(&[8]),
            num_experts: 4,
            out: b.tensor(&[4]),
        };
        check(&good).unwrap();
        let set = |f: &dyn Fn(&mut MoeComputeExpertTokensArgs)| {
            let mut a = good.clone();
            f(&mut a);
            check(&a)
        };
        assert_invalid(
            set(&|a| a.num_experts = 0),
            "numExperts should be in range (0, 2048]",
        );
        assert_invalid(
            set(&|a| a.num_experts = 2049),
            "numExperts should be in range (0, 2048]",
        );
        assert_invalid(
            set(&|a| a.sorted_experts.dtype = DType::I64),
            "sortedExperts dtype DT_INT64",
        );
        assert_invalid(
            set(&|a| a.sorted_experts = b.tensor(&[2, 4])),
            "sortedExperts should be 1D",
        );
        assert_invalid(
            set(&|a| a.out = b.tensor(&[5])),
            "the shape of out should be [4]",
        );
        assert_invalid(set(&|a| a.out.dtype = DType::I64), "out dtype DT_INT64");
        let mut a = good.clone();
        a.sorted_experts.shape = vec![1 << 24];
        a.sorted_experts.strides = vec![0];
        assert_invalid(check(&a), "less than 16777216");
    }
}
