//! The fuzz input: what the `arbitrary` crate decodes the bytes into.
//!
//! A [`Case`] is a pool of tensor descriptors (each with its own dtype,
//! format, view shape, strides, offset, storage shape, data placement and
//! fill), tensor lists over that pool, a few operator calls that name
//! their tensors and lists by index into the pools, and a few [`Shaped`]
//! calls whose tensors the harness lays out to agree (then changes as the
//! input says). Dimensions are mostly drawn from four shared sizes
//! ([`Dim::Var`]), so that independent tensors sometimes agree in shape too;
//! raw values (negative, zero, huge) reach the validation. Each call's
//! [`LaunchSpec`] says how phase two goes (stream, repeatable executor,
//! bogus workspace, address setters).
//!
//! Invariant: decoding never fails on any input (every type accepts every
//! byte string), and nothing here touches the mock; the harness
//! ([`crate::harness`]) interprets the specification.

use arbitrary::Arbitrary;

/// One dimension of a view or storage shape.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Dim {
    /// One of the case's four shared sizes.
    Var(u8),
    /// A small literal (taken modulo 9).
    Small(u8),
    /// Any value, negative and huge ones included.
    Raw(i64),
}

/// One stride.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Stride {
    /// A small stride, possibly zero or negative.
    Small(i8),
    /// Any value.
    Raw(i64),
}

/// The strides of a view.
#[derive(Arbitrary, Debug, Clone)]
pub enum Strides {
    /// NULL: contiguous.
    Null,
    /// The contiguous strides written out.
    Contiguous,
    /// Contiguous strides with the last two dimensions swapped (a transposed
    /// view of the same storage).
    Transposed,
    /// Given strides (padded or cut to one per view dimension, as the C
    /// contract requires).
    Given(Vec<Stride>),
}

/// The element offset of a view.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Offset {
    /// Zero.
    Zero,
    /// A small offset.
    Small(u8),
    /// Any value, negative and huge ones included.
    Raw(i64),
}

/// The `aclDataType` of a descriptor.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum DTypeSpec {
    /// `ACL_FLOAT`.
    F32,
    /// `ACL_FLOAT16`.
    F16,
    /// `ACL_BF16`.
    Bf16,
    /// `ACL_INT32`.
    I32,
    /// `ACL_INT64`.
    I64,
    /// `ACL_DOUBLE`.
    F64,
    /// `ACL_INT8`.
    I8,
    /// `ACL_UINT8`.
    U8,
    /// `ACL_INT16`.
    I16,
    /// `ACL_BOOL`.
    Bool,
    /// Any value, invalid ones included.
    Raw(i32),
}

/// The `aclFormat` of a descriptor.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum FormatSpec {
    /// `ACL_FORMAT_ND`.
    Nd,
    /// `ACL_FORMAT_NCHW`.
    Nchw,
    /// Any value (private layouts and invalid ones included).
    Raw(i32),
}

/// The storage shape of a descriptor.
#[derive(Arbitrary, Debug, Clone)]
pub enum StorageSpec {
    /// The view shape.
    SameAsView,
    /// The element count of the allocation as one dimension.
    Flat,
    /// Given dimensions.
    Given(Vec<Dim>),
}

/// Where a descriptor's data address points.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Placement {
    /// NULL.
    Null,
    /// A device allocation sized to the view's extent plus `pad` blocks of
    /// 32 bytes; the address is the start plus `shift` blocks (past the end
    /// when `shift` exceeds `pad`).
    Fits {
        /// Extra 32-byte blocks allocated.
        pad: u8,
        /// 32-byte blocks added to the start address.
        shift: u8,
    },
    /// A device allocation of `bytes` bytes, whatever the view needs.
    Bytes {
        /// Requested size (0 becomes 1).
        bytes: u16,
        /// 32-byte blocks added to the start address.
        shift: u8,
    },
    /// A device allocation that fits, at an address that is not 32-byte
    /// aligned.
    Misaligned(u8),
    /// A device allocation that fits but was freed before the descriptor
    /// was created.
    Freed,
    /// Pinned host memory (`aclrtMallocHost`) that fits.
    Pinned,
    /// Pageable host memory that fits.
    Pageable,
    /// The data address of an earlier tensor of the pool (aliasing).
    SameAs(u8),
    /// Any 32-byte aligned address (never dereferenced by a correct mock).
    Wild(u64),
}

/// The values written into a tensor's allocation before the operators run.
#[derive(Arbitrary, Debug, Clone)]
pub enum Fill {
    /// All zero bytes.
    Zeros,
    /// 0, 1, 2, ... in the tensor's dtype.
    Iota,
    /// The given values, repeated, in the tensor's dtype.
    Values(Vec<i16>),
    /// NaN, infinities, -0.0 and extreme integers, repeated.
    Special,
}

/// One `aclCreateTensor` call and the memory behind it.
#[derive(Arbitrary, Debug, Clone)]
pub struct TensorSpec {
    /// Data type.
    pub dtype: DTypeSpec,
    /// Format.
    pub format: FormatSpec,
    /// View shape (26 or more dimensions are refused by the mock).
    pub view: Vec<Dim>,
    /// Strides.
    pub strides: Strides,
    /// View offset in elements.
    pub offset: Offset,
    /// Storage shape.
    pub storage: StorageSpec,
    /// Data address.
    pub placement: Placement,
    /// Contents.
    pub fill: Fill,
}

/// A tensor argument of an operator call.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum TRef {
    /// NULL.
    Null,
    /// A tensor of the pool (index modulo its length; NULL when empty).
    Pool(u8),
    /// A descriptor that was destroyed before the call.
    Destroyed,
    /// A live object of another kind (an `aclIntArray`).
    WrongKind,
    /// An address that is no object at all.
    Wild(u64),
}

/// A tensor-list argument of an operator call.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum LRef {
    /// NULL.
    Null,
    /// A list of the list pool (index modulo its length; NULL when empty).
    Pool(u8),
    /// A live tensor (wrong kind) where a list is expected.
    Tensor(u8),
}

/// An integer parameter (k, dim, counts, modes).
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Int {
    /// A small value, possibly negative.
    Small(i8),
    /// Any value.
    Raw(i64),
}

impl Int {
    /// The value passed to C.
    pub fn value(self) -> i64 {
        match self {
            Int::Small(v) => i64::from(v),
            Int::Raw(v) => v,
        }
    }
}

/// A scalar argument (`alpha`, `other` of aclnnAdds).
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum ScalarSpec {
    /// NULL.
    Null,
    /// A float scalar.
    F32(f32),
    /// An int64 scalar.
    I64(i64),
    /// An f16 scalar from its bits.
    F16(u16),
    /// A bool scalar.
    Bool(bool),
    /// A scalar of an unsupported type (refused at creation, passed as NULL).
    Raw(i32),
}

/// One parameter of an [`Op`] call. The harness takes a parameter's
/// value from the entry at its position when the kinds agree, and a
/// default of the parameter's kind otherwise (a pool tensor or list picked
/// by the position, zero, false, NULL), so every byte string names a call.
#[derive(Arbitrary, Debug, Clone)]
pub enum Param {
    /// For an `aclTensor*`.
    Tensor(TRef),
    /// For an `aclTensorList*`.
    List(LRef),
    /// For an `aclScalar*`.
    Scalar(ScalarSpec),
    /// For an integer (`int64_t`, `int32_t`, `int8_t`, ...).
    Int(Int),
    /// For a `double` or `float`.
    Real(f64),
    /// For a `bool`.
    Flag(bool),
    /// For an `aclIntArray*` (NULL for `None`).
    IntArray(Option<Vec<Int>>),
    /// For a `char*` (a layout or mode name).
    Text(Text),
}

/// A string parameter.
#[derive(Arbitrary, Debug, Clone)]
pub enum Text {
    /// NULL.
    Null,
    /// One of the names operators document ([`TEXTS`], index modulo its
    /// length).
    Known(u8),
    /// Any bytes (cut at the first NUL), passed NUL-terminated.
    Raw(Vec<u8>),
}

/// The layout and mode names the operators document.
pub const TEXTS: &[&str] = &[
    "BSH",
    "BNSD",
    "BSND",
    "BNSD_BSND",
    "SBH",
    "TND",
    "NTD_TND",
    "half",
    "interleave",
    "quarter",
    "",
];

/// An operator call: any two-phase operator the headers declare
/// (`ascend_sys::for_each_operator!`), by its index modulo their count,
/// with its phase-one parameters in declaration order. Nothing lists
/// operators by hand: a newly declared operator is fuzzed too.
#[derive(Arbitrary, Debug, Clone)]
pub struct Op {
    /// The operator's index (modulo the number of operators).
    pub which: u16,
    /// Its parameters, by position.
    pub params: Vec<Param>,
}

/// The stream phase two is given.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum StreamSpec {
    /// The harness's stream.
    Ours,
    /// NULL: the context's default stream.
    Default,
    /// A handle that is no stream.
    Wild(u64),
}

/// Which of the executor's address setters a [`Readdress`] calls.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Setter {
    /// `aclSetInputTensorAddr`.
    Input,
    /// `aclSetOutputTensorAddr`.
    Output,
    /// `aclSetTensorAddr` (inputs, then outputs).
    Tensor,
    /// `aclSetDynamicInputTensorAddr`.
    DynamicInput,
    /// `aclSetDynamicOutputTensorAddr`.
    DynamicOutput,
}

/// The new address of a [`Readdress`].
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum NewAddr {
    /// NULL.
    Null,
    /// The data address of a pool tensor.
    OfTensor(u8),
    /// Any 32-byte aligned address.
    Wild(u64),
}

/// A call to one of the executor's address setters between the phases.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct Readdress {
    /// The setter.
    pub setter: Setter,
    /// IR index (or flat index for `aclSetTensorAddr`).
    pub index: u8,
    /// Position in the list (dynamic setters).
    pub relative: u8,
    /// The tensor the caller names (single setters).
    pub tensor: TRef,
    /// The list the caller names (dynamic setters).
    pub list: LRef,
    /// The new address.
    pub addr: NewAddr,
}

/// What happens to an executor after a successful phase one.
#[derive(Arbitrary, Debug, Clone)]
pub struct LaunchSpec {
    /// The stream of phase two.
    pub stream: StreamSpec,
    /// `aclSetAclOpExecutorRepeatable` before the first launch; the
    /// executor then runs twice and is destroyed.
    pub repeatable: bool,
    /// A non-zero workspace size passed with a NULL workspace.
    pub bogus_workspace: Option<u16>,
    /// Destroy the executor instead of launching it.
    pub skip: bool,
    /// An address setter called before phase two.
    pub readdress: Option<Readdress>,
}

/// One operator call.
#[derive(Arbitrary, Debug, Clone)]
pub struct Call {
    /// The operator and its parameters.
    pub op: Op,
    /// Phase two.
    pub launch: LaunchSpec,
}

/// An operator whose tensors the harness lays out with consistent shapes
/// (see `crate::template`), so that phase one passes and the kernel runs
/// unless the fuzzer changes something.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Matmul,
    Add,
    InplaceAdd,
    Adds,
    Mul,
    Softmax,
    RmsNorm,
    SwiGlu,
    Topk,
    GatingTopKSoftmax,
    GatingTopKSoftmaxV2,
    GatingTopK,
    InitRoutingV2,
    InitRoutingV3,
    ComputeExpertTokens,
    GroupedMatmulV3,
    GroupedMatmulV4,
    FinalizeRoutingV2,
}

/// The floating-point type of a shaped call's data tensors.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum FloatType {
    /// `ACL_FLOAT`.
    F32,
    /// `ACL_FLOAT16`.
    F16,
    /// `ACL_BF16`.
    Bf16,
}

/// One change to one tensor of a shaped call.
#[derive(Arbitrary, Debug, Clone)]
pub enum Change {
    /// Another view shape.
    View(Vec<Dim>),
    /// One dimension changed.
    OneDim(u8, Dim),
    /// Another data type.
    DType(DTypeSpec),
    /// Other strides.
    Strides(Strides),
    /// Another view offset.
    Offset(Offset),
    /// Another format.
    Format(FormatSpec),
    /// Another data placement.
    Placement(Placement),
    /// Other contents.
    Fill(Fill),
    /// The tensor is passed as NULL.
    Null,
}

/// An operator call laid out by the harness, with at most a few changes.
#[derive(Arbitrary, Debug, Clone)]
pub struct Shaped {
    /// The operator.
    pub op: OpKind,
    /// The sizes of the layout (tokens, hidden, experts, k), each 1 to 6.
    pub sizes: [u8; 4],
    /// The type of the data tensors.
    pub float: FloatType,
    /// Flags of the operator (largest, sorted, optional tensors present).
    pub flags: [bool; 3],
    /// The contents of the data tensors.
    pub values: Fill,
    /// Whether index tensors (expert ids, row indices, group lists) hold
    /// valid indices; otherwise they hold `values`.
    pub valid_indices: bool,
    /// An integer parameter (by position) replaced by another value.
    pub param: Option<(u8, Int)>,
    /// A floating-point parameter (epsilon, scaling) replaced.
    pub real: Option<f64>,
    /// Changes to the tensors (by position among the call's tensors).
    pub changes: Vec<(u8, Change)>,
    /// Phase two.
    pub launch: LaunchSpec,
}

/// One fuzz case.
#[derive(Arbitrary, Debug, Clone)]
pub struct Case {
    /// The shared sizes [`Dim::Var`] picks from (each taken modulo 9).
    pub vars: [u8; 4],
    /// The tensor pool (the harness uses at most [`MAX_TENSORS`]).
    pub tensors: Vec<TensorSpec>,
    /// The list pool: indices into the tensor pool (at most [`MAX_LISTS`]
    /// lists of at most [`MAX_LIST_LEN`] members).
    pub lists: Vec<Vec<u8>>,
    /// The operator calls (at most [`MAX_CALLS`]).
    pub calls: Vec<Call>,
    /// Operator calls on tensors laid out for them (at most
    /// [`MAX_SHAPED`]), run after `calls`.
    pub shaped: Vec<Shaped>,
}

/// Most tensors in a case.
pub const MAX_TENSORS: usize = 10;
/// Most lists in a case.
pub const MAX_LISTS: usize = 4;
/// Most members of a list.
pub const MAX_LIST_LEN: usize = 5;
/// Most operator calls in a case.
pub const MAX_CALLS: usize = 4;
/// Most shaped calls in a case.
pub const MAX_SHAPED: usize = 2;
/// Most changes to a shaped call's tensors.
pub const MAX_CHANGES: usize = 3;
