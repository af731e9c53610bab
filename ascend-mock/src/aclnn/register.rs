//! One registration per aclnn operator: the [`operator!`] macro.
//!
//! A registration names the operator's two exported functions, lists the
//! parameters of phase one as the header declares them (name, C type, and
//! how each is bound: `input`, `inout`, `opt_input`, `output`,
//! `opt_output`, the `_list` forms, `scalar`, `opt_int_array`, or `value`
//! for a plain number or flag), and says which kernel runs with which
//! argument struct. From it come:
//! - the exported phase one `XxxGetWorkspaceSize`, which binds each
//!   parameter through the [`Binder`](super::executor::Binder) in
//!   declaration order (so inputs and outputs get their IR indices as
//!   CANN numbers them), runs the kernel's `check` and hands out the
//!   executor (whose registry entry names the operator in leak reports);
//! - the exported phase two `Xxx`, which queues the kernel;
//! - the executor's dispatch: a closure building the kernel's `Args` from
//!   the executor's tensors at launch time (so address updates through
//!   `aclSetInputTensorAddr` and friends reach the kernel).
//!
//! The symbol table (`resolve.rs`) and the fuzz target's generic calls are
//! generated from the headers, so a registered operator needs no entry
//! anywhere else. The signature is checked against the header when the
//! symbol table casts each function to its `ascend_sys::pfn` type.
//!
//! ```ignore
//! operator! {
//!     /// Phase one of `aclnnMul`: `out = self * other`, broadcasting.
//!     aclnnMul / aclnnMulGetWorkspaceSize(
//!         self_ as "self": *const aclTensor = input,
//!         other: *const aclTensor = input,
//!         out: *mut aclTensor = output,
//!     ) => mul::check, mul::run, MulArgs { self_, other, out };
//! }
//! ```
//!
//! In the argument struct, `field` takes the parameter of the same name
//! and `field: param` another one; a parameter the kernel does not need is
//! still bound (and so checked) but left out.

use ascend_kernels::{Scalar, TensorArg};

use super::executor::{LRef, TRef};

/// A bound parameter, turned into the kernel's argument value when the
/// executor runs.
pub trait Bound {
    /// The kernel's type for it.
    type Out;
    /// The value, reading bound tensors from the executor's `tensors`.
    fn get(&self, tensors: &[TensorArg]) -> Self::Out;
}

impl Bound for TRef {
    type Out = TensorArg;
    fn get(&self, tensors: &[TensorArg]) -> TensorArg {
        TRef::get(*self, tensors)
    }
}

impl Bound for Option<TRef> {
    type Out = Option<TensorArg>;
    fn get(&self, tensors: &[TensorArg]) -> Option<TensorArg> {
        self.map(|r| r.get(tensors))
    }
}

impl Bound for LRef {
    type Out = Vec<TensorArg>;
    fn get(&self, tensors: &[TensorArg]) -> Vec<TensorArg> {
        LRef::get(self, tensors)
    }
}

impl Bound for Option<LRef> {
    type Out = Option<Vec<TensorArg>>;
    fn get(&self, tensors: &[TensorArg]) -> Option<Vec<TensorArg>> {
        self.as_ref().map(|r| r.get(tensors))
    }
}

impl Bound for Option<Vec<i64>> {
    type Out = Option<Vec<i64>>;
    fn get(&self, _: &[TensorArg]) -> Option<Vec<i64>> {
        self.clone()
    }
}

/// Values copied in phase one: scalars and plain numbers or flags.
macro_rules! bound_by_value {
    ($($t:ty),*) => {$(
        impl Bound for $t {
            type Out = $t;
            fn get(&self, _: &[TensorArg]) -> $t {
                *self
            }
        }
    )*};
}
bound_by_value!(Scalar, bool, i8, i32, i64, u64, f32, f64);

/// Binds one parameter in phase one: `value` keeps the argument itself,
/// any other kind calls the binder method of that name.
macro_rules! bind_param {
    ($b:ident, value, $name:expr, $p:ident) => {
        $p
    };
    ($b:ident, $how:ident, $name:expr, $p:ident) => {
        $b.$how($name, $p)?
    };
}

/// The C name of a parameter: the given one, or the Rust name.
macro_rules! param_name {
    ($p:ident) => {
        stringify!($p)
    };
    ($p:ident, $cname:literal) => {
        $cname
    };
}

/// The parameter an argument-struct field is built from.
macro_rules! field_source {
    ($field:ident) => {
        $field
    };
    ($field:ident, $from:ident) => {
        $from
    };
}

/// Registers aclnn operators; see the [module docs](self).
macro_rules! operator {
    ($(
        $(#[$doc:meta])*
        $op:ident / $phase_one:ident (
            $($p:ident $(as $cname:literal)? : $ty:ty = $how:ident),* $(,)?
        ) => $check:path, $run:path, $args:ident { $($field:ident $(: $from:ident)?),* $(,)? };
    )*) => {$(
        $(#[$doc])*
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $phase_one(
            $($p: $ty,)*
            workspaceSize: *mut u64,
            executor: *mut *mut ascend_sys::aclOpExecutor,
        ) -> ascend_sys::aclnnStatus {
            $crate::aclnn::executor::get_workspace_size(
                stringify!($phase_one),
                stringify!($op),
                workspaceSize,
                executor,
                |b| {
                    $( #[allow(unused_variables)] let $p = bind_param!(b, $how, param_name!($p $(, $cname)?), $p); )*
                    Ok($crate::aclnn::executor::kernel(
                        move |t| $args {
                            $( $field: $crate::aclnn::register::Bound::get(
                                &field_source!($field $(, $from)?),
                                t,
                            ), )*
                        },
                        $check,
                        $run,
                    ))
                },
            )
        }
        phase_two!($op);
    )*};
}
