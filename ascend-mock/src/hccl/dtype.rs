//! HCCL element types and reduction operations, and the reductions
//! themselves over raw little-endian element bytes.
//!
//! Invariants: every [`DataType`] has a fixed width; only the types with
//! [`DataType::reducible`] take part in reductions (int8..uint64, fp16,
//! bf16, fp32, fp64). fp16 and bf16 accumulate in f32 across all ranks and
//! are rounded once when stored; integer sums and products wrap. Ranks are
//! folded in rank order, so results are deterministic.

use ascend_sys::*;
use half::{bf16, f16};

use super::para;
use crate::error::{MockError, MockResult};

/// An `HcclDataType` the mock knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    /// `HCCL_DATA_TYPE_INT8`.
    I8,
    /// `HCCL_DATA_TYPE_INT16`.
    I16,
    /// `HCCL_DATA_TYPE_INT32`.
    I32,
    /// `HCCL_DATA_TYPE_INT64`.
    I64,
    /// `HCCL_DATA_TYPE_UINT8`.
    U8,
    /// `HCCL_DATA_TYPE_UINT16`.
    U16,
    /// `HCCL_DATA_TYPE_UINT32`.
    U32,
    /// `HCCL_DATA_TYPE_UINT64`.
    U64,
    /// `HCCL_DATA_TYPE_FP16`.
    F16,
    /// `HCCL_DATA_TYPE_BFP16`.
    Bf16,
    /// `HCCL_DATA_TYPE_FP32`.
    F32,
    /// `HCCL_DATA_TYPE_FP64`.
    F64,
    /// `HCCL_DATA_TYPE_INT128`: moved, never reduced.
    I128,
    /// `HCCL_DATA_TYPE_HIF8` and the FP8 types: moved, never reduced.
    Byte8(HcclDataType),
}

impl DataType {
    /// Decodes a C value; unknown values are `HCCL_E_PARA`.
    pub fn from_raw(raw: HcclDataType) -> MockResult<DataType> {
        Ok(match raw {
            HCCL_DATA_TYPE_INT8 => DataType::I8,
            HCCL_DATA_TYPE_INT16 => DataType::I16,
            HCCL_DATA_TYPE_INT32 => DataType::I32,
            HCCL_DATA_TYPE_INT64 => DataType::I64,
            HCCL_DATA_TYPE_UINT8 => DataType::U8,
            HCCL_DATA_TYPE_UINT16 => DataType::U16,
            HCCL_DATA_TYPE_UINT32 => DataType::U32,
            HCCL_DATA_TYPE_UINT64 => DataType::U64,
            HCCL_DATA_TYPE_FP16 => DataType::F16,
            HCCL_DATA_TYPE_BFP16 => DataType::Bf16,
            HCCL_DATA_TYPE_FP32 => DataType::F32,
            HCCL_DATA_TYPE_FP64 => DataType::F64,
            HCCL_DATA_TYPE_INT128 => DataType::I128,
            HCCL_DATA_TYPE_HIF8
            | HCCL_DATA_TYPE_FP8E4M3
            | HCCL_DATA_TYPE_FP8E5M2
            | HCCL_DATA_TYPE_FP8E8M0 => DataType::Byte8(raw),
            other => return Err(para(format!("dataType {other} is not an HcclDataType"))),
        })
    }

    /// The C value.
    pub fn raw(self) -> HcclDataType {
        match self {
            DataType::I8 => HCCL_DATA_TYPE_INT8,
            DataType::I16 => HCCL_DATA_TYPE_INT16,
            DataType::I32 => HCCL_DATA_TYPE_INT32,
            DataType::I64 => HCCL_DATA_TYPE_INT64,
            DataType::U8 => HCCL_DATA_TYPE_UINT8,
            DataType::U16 => HCCL_DATA_TYPE_UINT16,
            DataType::U32 => HCCL_DATA_TYPE_UINT32,
            DataType::U64 => HCCL_DATA_TYPE_UINT64,
            DataType::F16 => HCCL_DATA_TYPE_FP16,
            DataType::Bf16 => HCCL_DATA_TYPE_BFP16,
            DataType::F32 => HCCL_DATA_TYPE_FP32,
            DataType::F64 => HCCL_DATA_TYPE_FP64,
            DataType::I128 => HCCL_DATA_TYPE_INT128,
            DataType::Byte8(raw) => raw,
        }
    }

    /// Bytes per element.
    pub fn width(self) -> usize {
        match self {
            // The one HCCL type AscendCL has no element type for.
            DataType::I128 => 16,
            other => ascend_sys::dtype::by_hccl(other.raw())
                .map_or(0, ascend_sys::dtype::ElementType::size),
        }
    }

    /// Whether reductions accept this type.
    pub fn reducible(self) -> bool {
        !matches!(self, DataType::I128 | DataType::Byte8(_))
    }

    /// The C name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            DataType::I8 => "HCCL_DATA_TYPE_INT8",
            DataType::I16 => "HCCL_DATA_TYPE_INT16",
            DataType::I32 => "HCCL_DATA_TYPE_INT32",
            DataType::I64 => "HCCL_DATA_TYPE_INT64",
            DataType::U8 => "HCCL_DATA_TYPE_UINT8",
            DataType::U16 => "HCCL_DATA_TYPE_UINT16",
            DataType::U32 => "HCCL_DATA_TYPE_UINT32",
            DataType::U64 => "HCCL_DATA_TYPE_UINT64",
            DataType::F16 => "HCCL_DATA_TYPE_FP16",
            DataType::Bf16 => "HCCL_DATA_TYPE_BFP16",
            DataType::F32 => "HCCL_DATA_TYPE_FP32",
            DataType::F64 => "HCCL_DATA_TYPE_FP64",
            DataType::I128 => "HCCL_DATA_TYPE_INT128",
            DataType::Byte8(HCCL_DATA_TYPE_HIF8) => "HCCL_DATA_TYPE_HIF8",
            DataType::Byte8(HCCL_DATA_TYPE_FP8E4M3) => "HCCL_DATA_TYPE_FP8E4M3",
            DataType::Byte8(HCCL_DATA_TYPE_FP8E5M2) => "HCCL_DATA_TYPE_FP8E5M2",
            DataType::Byte8(_) => "HCCL_DATA_TYPE_FP8E8M0",
        }
    }

    /// `count` elements in bytes, refusing overflow.
    pub fn bytes(self, count: u64) -> MockResult<usize> {
        count
            .checked_mul(self.width() as u64)
            .and_then(|b| usize::try_from(b).ok())
            .ok_or_else(|| {
                para(format!(
                    "{count} elements of {} do not fit in the address space",
                    self.name()
                ))
            })
    }
}

/// An `HcclReduceOp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceOp {
    /// `HCCL_REDUCE_SUM`.
    Sum,
    /// `HCCL_REDUCE_PROD`.
    Prod,
    /// `HCCL_REDUCE_MAX`.
    Max,
    /// `HCCL_REDUCE_MIN`.
    Min,
}

impl ReduceOp {
    /// Decodes a C value; anything else is `HCCL_E_PARA`.
    pub fn from_raw(raw: HcclReduceOp) -> MockResult<ReduceOp> {
        Ok(match raw {
            HCCL_REDUCE_SUM => ReduceOp::Sum,
            HCCL_REDUCE_PROD => ReduceOp::Prod,
            HCCL_REDUCE_MAX => ReduceOp::Max,
            HCCL_REDUCE_MIN => ReduceOp::Min,
            other => {
                return Err(para(format!(
                    "op {other} is not an HcclReduceOp (0 sum, 1 prod, 2 max, 3 min)"
                )));
            }
        })
    }

    /// The C value.
    pub fn raw(self) -> HcclReduceOp {
        match self {
            ReduceOp::Sum => HCCL_REDUCE_SUM,
            ReduceOp::Prod => HCCL_REDUCE_PROD,
            ReduceOp::Max => HCCL_REDUCE_MAX,
            ReduceOp::Min => HCCL_REDUCE_MIN,
        }
    }

    /// The C name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "HCCL_REDUCE_SUM",
            ReduceOp::Prod => "HCCL_REDUCE_PROD",
            ReduceOp::Max => "HCCL_REDUCE_MAX",
            ReduceOp::Min => "HCCL_REDUCE_MIN",
        }
    }
}

/// Checks that `dtype` can be reduced (`HCCL_E_NOT_SUPPORT` otherwise).
pub fn check_reducible(dtype: DataType) -> MockResult<()> {
    if dtype.reducible() {
        Ok(())
    } else {
        Err(MockError::new(
            HCCL_E_NOT_SUPPORT as aclError,
            format!(
                "{} cannot be reduced (reductions support int8..int64, uint8..uint64, fp16, bf16, fp32, fp64)",
                dtype.name()
            ),
        ))
    }
}

/// An element type that reductions fold.
trait Elem: Copy {
    const W: usize;
    fn load(b: &[u8]) -> Self;
    fn store(self, b: &mut [u8]);
    fn combine(self, other: Self, op: ReduceOp) -> Self;
}

macro_rules! int_elem {
    ($($t:ty),*) => {$(
        impl Elem for $t {
            const W: usize = std::mem::size_of::<$t>();
            fn load(b: &[u8]) -> Self {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(b);
                <$t>::from_le_bytes(a)
            }
            fn store(self, b: &mut [u8]) {
                b.copy_from_slice(&self.to_le_bytes());
            }
            fn combine(self, other: Self, op: ReduceOp) -> Self {
                match op {
                    ReduceOp::Sum => self.wrapping_add(other),
                    ReduceOp::Prod => self.wrapping_mul(other),
                    ReduceOp::Max => self.max(other),
                    ReduceOp::Min => self.min(other),
                }
            }
        }
    )*};
}

int_elem!(i8, i16, i32, i64, u8, u16, u32, u64);

macro_rules! float_elem {
    ($($t:ty),*) => {$(
        impl Elem for $t {
            const W: usize = std::mem::size_of::<$t>();
            fn load(b: &[u8]) -> Self {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(b);
                <$t>::from_le_bytes(a)
            }
            fn store(self, b: &mut [u8]) {
                b.copy_from_slice(&self.to_le_bytes());
            }
            fn combine(self, other: Self, op: ReduceOp) -> Self {
                match op {
                    ReduceOp::Sum => self + other,
                    ReduceOp::Prod => self * other,
                    ReduceOp::Max => self.max(other),
                    ReduceOp::Min => self.min(other),
                }
            }
        }
    )*};
}

float_elem!(f32, f64);

/// Folds `inputs` element-wise with `op` in their order.
fn fold<T: Elem>(inputs: &[&[u8]], op: ReduceOp, out: &mut [u8]) {
    let Some((first, rest)) = inputs.split_first() else {
        return;
    };
    out.copy_from_slice(first);
    for src in rest {
        for (o, s) in out.chunks_exact_mut(T::W).zip(src.chunks_exact(T::W)) {
            T::load(o).combine(T::load(s), op).store(o);
        }
    }
}

/// Folds 16-bit floats in f32 and rounds once per element: `load`
/// decodes an element, `store` rounds and encodes one.
fn fold_half(
    inputs: &[&[u8]],
    op: ReduceOp,
    out: &mut [u8],
    load: fn([u8; 2]) -> f32,
    store: fn(f32) -> [u8; 2],
) {
    let Some((first, rest)) = inputs.split_first() else {
        return;
    };
    let mut acc: Vec<f32> = first.chunks_exact(2).map(|c| load([c[0], c[1]])).collect();
    for src in rest {
        for (a, c) in acc.iter_mut().zip(src.chunks_exact(2)) {
            *a = a.combine(load([c[0], c[1]]), op);
        }
    }
    for (a, o) in acc.iter().zip(out.chunks_exact_mut(2)) {
        o.copy_from_slice(&store(*a));
    }
}

fn f16_to_f32(b: [u8; 2]) -> f32 {
    f16::from_le_bytes(b).to_f32()
}

fn bf16_to_f32(b: [u8; 2]) -> f32 {
    bf16::from_le_bytes(b).to_f32()
}

fn f32_to_f16(v: f32) -> [u8; 2] {
    f16::from_f32(v).to_le_bytes()
}

fn f32_to_bf16(v: f32) -> [u8; 2] {
    bf16::from_f32(v).to_le_bytes()
}

/// Reduces equally long element buffers (one per rank, in rank order)
/// into a new buffer.
pub fn reduce(dtype: DataType, op: ReduceOp, inputs: &[&[u8]]) -> MockResult<Vec<u8>> {
    check_reducible(dtype)?;
    let len = inputs.first().map_or(0, |i| i.len());
    if inputs.iter().any(|i| i.len() != len) || len % dtype.width() != 0 {
        return Err(MockError::new(
            HCCL_E_INTERNAL as aclError,
            "reduction inputs of different lengths",
        ));
    }
    let mut out = vec![0u8; len];
    match dtype {
        DataType::I8 => fold::<i8>(inputs, op, &mut out),
        DataType::I16 => fold::<i16>(inputs, op, &mut out),
        DataType::I32 => fold::<i32>(inputs, op, &mut out),
        DataType::I64 => fold::<i64>(inputs, op, &mut out),
        DataType::U8 => fold::<u8>(inputs, op, &mut out),
        DataType::U16 => fold::<u16>(inputs, op, &mut out),
        DataType::U32 => fold::<u32>(inputs, op, &mut out),
        DataType::U64 => fold::<u64>(inputs, op, &mut out),
        DataType::F32 => fold::<f32>(inputs, op, &mut out),
        DataType::F64 => fold::<f64>(inputs, op, &mut out),
        DataType::F16 => fold_half(inputs, op, &mut out, f16_to_f32, f32_to_f16),
        DataType::Bf16 => fold_half(inputs, op, &mut out, bf16_to_f32, f32_to_bf16),
        DataType::I128 | DataType::Byte8(_) => unreachable!("checked by check_reducible"),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_i32(v: &[i32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn integer_reductions_wrap_and_fold_in_order() {
        let a = bytes_i32(&[1, i32::MAX, -3]);
        let b = bytes_i32(&[2, 1, 5]);
        let s = reduce(DataType::I32, ReduceOp::Sum, &[&a, &b]).unwrap();
        assert_eq!(s, bytes_i32(&[3, i32::MIN, 2]));
        let m = reduce(DataType::I32, ReduceOp::Min, &[&a, &b]).unwrap();
        assert_eq!(m, bytes_i32(&[1, 1, -3]));
        let x = reduce(DataType::U8, ReduceOp::Prod, &[&[16u8][..], &[17u8][..]]).unwrap();
        assert_eq!(x, vec![16u8.wrapping_mul(17)]);
    }

    #[test]
    fn half_types_round_once() {
        // 2048 + 1 + 1 in f16: rounding after each step would stay at 2048.
        let v = |x: f32| f16::from_f32(x).to_le_bytes().to_vec();
        let out = reduce(
            DataType::F16,
            ReduceOp::Sum,
            &[&v(2048.0), &v(1.0), &v(1.0)],
        )
        .unwrap();
        assert_eq!(f16::from_le_bytes([out[0], out[1]]).to_f32(), 2050.0);
        let b = |x: f32| bf16::from_f32(x).to_le_bytes().to_vec();
        let out = reduce(DataType::Bf16, ReduceOp::Max, &[&b(-1.5), &b(3.0)]).unwrap();
        assert_eq!(bf16::from_le_bytes([out[0], out[1]]).to_f32(), 3.0);
    }

    #[test]
    fn codes_decode_and_refuse() {
        assert_eq!(DataType::from_raw(HCCL_DATA_TYPE_BFP16).unwrap().width(), 2);
        assert_eq!(
            DataType::from_raw(HCCL_DATA_TYPE_INT128).unwrap().width(),
            16
        );
        assert_eq!(
            DataType::from_raw(13).unwrap_err().code,
            HCCL_E_PARA as aclError
        );
        let e = check_reducible(DataType::from_raw(HCCL_DATA_TYPE_FP8E4M3).unwrap()).unwrap_err();
        assert_eq!(e.code, HCCL_E_NOT_SUPPORT as aclError);
        assert!(ReduceOp::from_raw(HCCL_REDUCE_RESERVED).is_err());
        assert!(DataType::I64.bytes(u64::MAX).is_err());
    }
}
