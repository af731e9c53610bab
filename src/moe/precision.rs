//! The element types a MoE run can store its weights and activations in.
//!
//! Everything on the host is kept in `f32`; [`Precision`] says which type the device (or a
//! checkpoint file) holds. Rounding a host array through that type with
//! [`Precision::round_array`] gives exactly the values the device sees after an upload, so a
//! reference computed from rounded values differs from a device run only by the device's
//! arithmetic, not by the conversion of its inputs.

use std::fmt;

use half::{bf16, f16};
use ndarray::{Array, ArrayRef, Dimension};

/// Storage type of weights or activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Precision {
    /// IEEE binary32.
    F32,
    /// IEEE binary16.
    F16,
    /// bfloat16 (the top half of an `f32`).
    Bf16,
}

impl Precision {
    /// All variants, for tests and command-line parsing.
    pub const ALL: [Precision; 3] = [Precision::F32, Precision::F16, Precision::Bf16];

    /// Size of one element in bytes.
    pub fn bytes(self) -> usize {
        match self {
            Precision::F32 => 4,
            Precision::F16 | Precision::Bf16 => 2,
        }
    }

    /// Lower-case name, as used on command lines and in reports (`f32`, `f16`, `bf16`).
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::Bf16 => "bf16",
        }
    }

    /// Parses [`Precision::name`]'s spelling (case-insensitive); `None` for anything else.
    pub fn parse(s: &str) -> Option<Precision> {
        Precision::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
    }

    /// `x` converted to this type (round to nearest even) and back to `f32`.
    pub fn round(self, x: f32) -> f32 {
        match self {
            Precision::F32 => x,
            Precision::F16 => f16::from_f32(x).to_f32(),
            Precision::Bf16 => bf16::from_f32(x).to_f32(),
        }
    }

    /// A copy of `a` with every element passed through [`Precision::round`].
    pub fn round_array<D: Dimension>(self, a: &ArrayRef<f32, D>) -> Array<f32, D> {
        a.mapv(|x| self.round(x))
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn rounding_matches_the_half_types() {
        let x = 0.1f32;
        assert_eq!(Precision::F32.round(x), x);
        assert_eq!(Precision::F16.round(x), f16::from_f32(x).to_f32());
        assert_eq!(Precision::Bf16.round(x), bf16::from_f32(x).to_f32());
        assert_ne!(Precision::F16.round(x), x);
        assert_ne!(Precision::Bf16.round(x), Precision::F16.round(x));
        // Rounding is idempotent: a rounded value is representable.
        for p in Precision::ALL {
            assert_eq!(p.round(p.round(x)), p.round(x));
        }
    }

    #[test]
    fn round_array_keeps_the_shape() {
        let a = array![[1.0f32, 0.1], [1e-3, -7.3]];
        let r = Precision::Bf16.round_array(&a);
        assert_eq!(r.dim(), (2, 2));
        assert_eq!(r[[0, 1]], bf16::from_f32(0.1).to_f32());
        assert_eq!(r[[0, 0]], 1.0);
    }

    #[test]
    fn names_round_trip() {
        for p in Precision::ALL {
            assert_eq!(Precision::parse(p.name()), Some(p));
            assert_eq!(p.to_string(), p.name());
        }
        assert_eq!(Precision::parse("BF16"), Some(Precision::Bf16));
        assert_eq!(Precision::parse("fp8"), None);
        assert_eq!(Precision::F16.bytes(), 2);
        assert_eq!(Precision::F32.bytes(), 4);
    }
}
