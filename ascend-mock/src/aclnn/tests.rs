//! Tests of the aclnn layer through the exported C functions, called as a
//! C program would: descriptors and their registry, phase-one placement
//! checks, every operator end to end on a stream (expected values computed
//! here independently), executor lifetimes and run-time kernel errors.

use std::ffi::c_void;
use std::ptr::null_mut;

use ascend_sys::*;

use crate::exports::*;
use crate::tests_support::*;

unsafe extern "C" {
    fn free(p: *mut c_void);
}

pub(super) type Phase2 = ascend_sys::pfn::opapi::aclnnAdd;

/// A context, a stream and the device buffers of one test.
pub(super) struct Dev {
    ctx: aclrtContext,
    stream: aclrtStream,
    allocs: Vec<*mut c_void>,
}

impl Dev {
    pub(super) fn new() -> Dev {
        let ctx = own_context(0);
        let stream = new_stream();
        Dev {
            ctx,
            stream,
            allocs: Vec::new(),
        }
    }

    /// A device buffer holding `data`.
    pub(super) fn buf<T: Copy>(&mut self, data: &[T]) -> *mut c_void {
        let bytes = std::mem::size_of_val(data);
        let p = dev_alloc(bytes.max(1));
        self.allocs.push(p);
        if bytes > 0 {
            // SAFETY: `p` holds at least `bytes` device bytes; `data` is a
            // live host slice of `bytes` bytes.
            ok(unsafe {
                aclrtMemcpy(
                    p,
                    bytes,
                    data.as_ptr().cast(),
                    bytes,
                    ACL_MEMCPY_HOST_TO_DEVICE,
                )
            });
        }
        p
    }

    /// A zeroed device buffer of `n` values of `T`.
    pub(super) fn zeros<T: Copy + Default>(&mut self, n: usize) -> *mut c_void {
        self.buf(&vec![T::default(); n])
    }

    /// `n` values of `T` read back from `p`.
    pub(super) fn read<T: Copy + Default>(&self, p: *mut c_void, n: usize) -> Vec<T> {
        let mut out = vec![T::default(); n];
        let bytes = std::mem::size_of_val(&out[..]);
        // SAFETY: `out` has room for `bytes`; `p` is a device buffer of at
        // least that many bytes.
        ok(unsafe {
            aclrtMemcpy(
                out.as_mut_ptr().cast(),
                bytes,
                p,
                bytes,
                ACL_MEMCPY_DEVICE_TO_HOST,
            )
        });
        out
    }

    pub(super) fn sync(&self) {
        // SAFETY: the stream is live.
        ok(unsafe { aclrtSynchronizeStream(self.stream) });
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        for &p in &self.allocs {
            // SAFETY: every pointer came from aclrtMalloc and is freed once.
            unsafe { aclrtFree(p) };
        }
        // SAFETY: the stream and context are live and owned by this value.
        unsafe { aclrtDestroyStream(self.stream) };
        drop_context(self.ctx);
    }
}

/// A contiguous tensor descriptor of `shape` at `data`.
pub(super) fn tensor(shape: &[i64], dtype: aclDataType, data: *mut c_void) -> *mut aclTensor {
    strided(shape, None, 0, dtype, shape, data)
}

pub(super) fn strided(
    shape: &[i64],
    strides: Option<&[i64]>,
    offset: i64,
    dtype: aclDataType,
    storage: &[i64],
    data: *mut c_void,
) -> *mut aclTensor {
    // SAFETY: the arrays are live slices of the stated lengths.
    let t = unsafe {
        aclCreateTensor(
            shape.as_ptr(),
            shape.len() as u64,
            dtype,
            strides.map_or(std::ptr::null(), |s| s.as_ptr()),
            offset,
            ACL_FORMAT_ND,
            storage.as_ptr(),
            storage.len() as u64,
            data,
        )
    };
    assert!(!t.is_null(), "aclCreateTensor failed: {:?}", take_message());
    t
}

fn scalar_f32(v: f32) -> *mut aclScalar {
    let mut v = v;
    // SAFETY: `v` is a live f32; the value is copied.
    let s = unsafe { aclCreateScalar((&mut v as *mut f32).cast(), ACL_FLOAT) };
    assert!(!s.is_null());
    s
}

#[track_caller]
fn nn_ok(code: aclnnStatus) {
    assert_eq!(code, ACLNN_SUCCESS, "failed: {:?}", take_message());
}

/// Asserts `code` is `want` and the message contains every part of `parts`.
#[track_caller]
pub(super) fn nn_err(code: aclnnStatus, want: aclnnStatus, parts: &[&str]) -> String {
    let msg = take_message().unwrap_or_default();
    assert_eq!(code, want, "message: {msg}");
    for p in parts {
        assert!(msg.contains(p), "{msg:?} lacks {p:?}");
    }
    msg
}

/// Asserts this thread's recent message contains every part of `parts`.
#[track_caller]
fn expect_msg(parts: &[&str]) {
    let msg = take_message().unwrap_or_default();
    for p in parts {
        assert!(msg.contains(p), "{msg:?} lacks {p:?}");
    }
}

pub(super) fn destroy_tensors(ts: &[*mut aclTensor]) {
    for &t in ts {
        // SAFETY: each is a live descriptor destroyed once.
        nn_ok(unsafe { aclDestroyTensor(t) });
    }
}

/// Phase one (must succeed, workspace 0) and phase two on the test's
/// stream; returns without synchronising.
pub(super) fn run_op(
    dev: &Dev,
    phase1: impl FnOnce(*mut u64, *mut *mut aclOpExecutor) -> aclnnStatus,
    phase2: Phase2,
) {
    let mut ws = u64::MAX;
    let mut ex = null_mut();
    nn_ok(phase1(&mut ws, &mut ex));
    assert_eq!(ws, 0);
    assert!(!ex.is_null());
    // SAFETY: `ex` is a fresh executor; no workspace is needed.
    nn_ok(unsafe { phase2(null_mut(), 0, ex, dev.stream) });
}

#[track_caller]
pub(super) fn close(got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (f64::from(g) - w).abs() <= tol * (1.0 + w.abs()),
            "element {i}: got {g}, want {w} ({got:?})"
        );
    }
}

// ---------------------------------------------------------------- meta API

#[test]
fn tensor_descriptor_getters() {
    init();
    let shape = [4i64, 2];
    let strides = [1i64, 4];
    let storage = [2i64, 4];
    let t = strided(&shape, Some(&strides), 3, ACL_FLOAT16, &storage, null_mut());
    let mut dims = null_mut();
    let mut n = 0u64;
    // SAFETY: valid output locations; returned arrays are malloc'ed and freed here.
    unsafe {
        nn_ok(aclGetViewShape(t, &mut dims, &mut n));
        assert_eq!(std::slice::from_raw_parts(dims, n as usize), &shape);
        free(dims.cast());
        nn_ok(aclGetViewStrides(t, &mut dims, &mut n));
        assert_eq!(std::slice::from_raw_parts(dims, n as usize), &strides);
        free(dims.cast());
        nn_ok(aclGetStorageShape(t, &mut dims, &mut n));
        assert_eq!(std::slice::from_raw_parts(dims, n as usize), &storage);
        free(dims.cast());
        let mut off = 0i64;
        nn_ok(aclGetViewOffset(t, &mut off));
        assert_eq!(off, 3);
        let mut dt = 0;
        nn_ok(aclGetDataType(t, &mut dt));
        assert_eq!(dt, ACL_FLOAT16);
        let mut fmt = 0;
        nn_ok(aclGetFormat(t, &mut fmt));
        assert_eq!(fmt, ACL_FORMAT_ND);
        let mut addr = std::ptr::dangling_mut::<c_void>();
        nn_ok(aclGetRawTensorAddr(t, &mut addr));
        assert!(addr.is_null());
        nn_ok(aclSetRawTensorAddr(t, 0x1000 as *mut c_void));
        nn_ok(aclGetRawTensorAddr(t, &mut addr));
        assert_eq!(addr as usize, 0x1000);
        nn_err(
            aclSetRawTensorAddr(t, 0x1004 as *mut c_void),
            ACLNN_ERR_PARAM_INVALID,
            &["aclSetRawTensorAddr", "aligned"],
        );
        nn_err(
            aclGetViewOffset(t, null_mut()),
            ACLNN_ERR_PARAM_NULLPTR,
            &["aclGetViewOffset"],
        );
        // Re-describe: contiguous 3-D, NULL strides.
        let s3 = [2i64, 3, 4];
        nn_ok(aclInitTensor(
            t,
            s3.as_ptr(),
            3,
            ACL_INT32,
            std::ptr::null(),
            0,
            ACL_FORMAT_ND,
            s3.as_ptr(),
            3,
            null_mut(),
        ));
        nn_ok(aclGetViewStrides(t, &mut dims, &mut n));
        assert_eq!(std::slice::from_raw_parts(dims, n as usize), &[12, 4, 1]);
        free(dims.cast());
        nn_ok(aclDestroyTensor(t));
    }
}

#[test]
fn create_tensor_refuses_bad_descriptions() {
    init();
    let neg = [2i64, -1];
    // SAFETY: live arrays of the stated lengths.
    unsafe {
        let t = aclCreateTensor(
            neg.as_ptr(),
            2,
            ACL_FLOAT,
            std::ptr::null(),
            0,
            ACL_FORMAT_ND,
            neg.as_ptr(),
            2,
            null_mut(),
        );
        assert!(t.is_null());
        expect_msg(&["aclCreateTensor", "viewDims[1] is -1"]);
        let s = [4i64];
        let t = aclCreateTensor(
            s.as_ptr(),
            1,
            ACL_FLOAT,
            std::ptr::null(),
            0,
            ACL_FORMAT_ND,
            s.as_ptr(),
            1,
            0x1010 as *mut c_void,
        );
        assert!(t.is_null());
        expect_msg(&["32-byte aligned"]);
        let t = aclCreateTensor(
            s.as_ptr(),
            1,
            999,
            std::ptr::null(),
            0,
            ACL_FORMAT_ND,
            s.as_ptr(),
            1,
            null_mut(),
        );
        assert!(t.is_null());
        expect_msg(&["dataType 999"]);
        let t = aclCreateTensor(
            std::ptr::null(),
            2,
            ACL_FLOAT,
            std::ptr::null(),
            0,
            ACL_FORMAT_ND,
            s.as_ptr(),
            1,
            null_mut(),
        );
        assert!(t.is_null());
        expect_msg(&["viewDims is NULL"]);
        let mut v = 1.0f32;
        assert!(aclCreateScalar((&mut v as *mut f32).cast(), ACL_COMPLEX64).is_null());
        expect_msg(&["aclCreateScalar", "not supported"]);
    }
}

#[test]
fn arrays_lists_and_destroy_errors() {
    init();
    let ints = [1i64, 2, 3];
    let floats = [1.0f32, 2.0];
    let bools = [true, false, true, true];
    // SAFETY: live arrays of the stated lengths; every pointer passed to a
    // destroy function is either live or deliberately stale (refused).
    unsafe {
        let ia = aclCreateIntArray(ints.as_ptr(), 3);
        let fa = aclCreateFloatArray(floats.as_ptr(), 2);
        let ba = aclCreateBoolArray(bools.as_ptr(), 4);
        let mut n = 0u64;
        nn_ok(aclGetIntArraySize(ia, &mut n));
        assert_eq!(n, 3);
        nn_ok(aclGetFloatArraySize(fa, &mut n));
        assert_eq!(n, 2);
        nn_ok(aclGetBoolArraySize(ba, &mut n));
        assert_eq!(n, 4);
        // A tensor passed where an array is expected.
        let t0 = tensor(&[2], ACL_FLOAT, null_mut());
        nn_err(
            aclGetIntArraySize(t0.cast(), &mut n),
            ACLNN_ERR_PARAM_INVALID,
            &["aclGetIntArraySize", "is an aclTensor, not an aclIntArray"],
        );
        nn_ok(aclDestroyIntArray(ia));
        nn_err(
            aclDestroyIntArray(ia),
            ACLNN_ERR_PARAM_INVALID,
            &["aclDestroyIntArray", "not a live aclIntArray"],
        );
        nn_err(
            aclDestroyScalar(t0.cast()),
            ACLNN_ERR_PARAM_INVALID,
            &["aclDestroyScalar"],
        );
        nn_err(
            aclDestroyTensor(null_mut()),
            ACLNN_ERR_PARAM_NULLPTR,
            &["aclDestroyTensor", "NULL"],
        );
        nn_ok(aclDestroyFloatArray(fa));
        nn_ok(aclDestroyBoolArray(ba));

        // Lists own their members.
        let t1 = tensor(&[3], ACL_FLOAT, null_mut());
        let members = [t0 as *const aclTensor, t1];
        let list = aclCreateTensorList(members.as_ptr(), 2);
        assert!(!list.is_null());
        nn_ok(aclGetTensorListSize(list, &mut n));
        assert_eq!(n, 2);
        nn_err(
            aclDestroyTensor(t0),
            ACLNN_ERR_PARAM_INVALID,
            &["belongs to the list"],
        );
        // A member cannot join a second list.
        assert!(aclCreateTensorList(members.as_ptr(), 1).is_null());
        expect_msg(&["already belongs"]);
        let before = crate::aclnn_live_objects().len();
        nn_ok(aclDestroyTensorList(list));
        let after = crate::aclnn_live_objects();
        assert!(
            after
                .iter()
                .all(|o| o.address != t0 as usize && o.address != t1 as usize)
        );
        assert!(after.len() <= before);
        nn_err(
            aclDestroyTensor(t1),
            ACLNN_ERR_PARAM_INVALID,
            &["not a live aclTensor"],
        );
        nn_err(
            aclDestroyTensorList(list),
            ACLNN_ERR_PARAM_INVALID,
            &["aclDestroyTensorList"],
        );

        let s1 = scalar_f32(1.0);
        let s2 = scalar_f32(2.0);
        let sl = aclCreateScalarList([s1 as *const aclScalar, s2].as_ptr(), 2);
        nn_ok(aclGetScalarListSize(sl, &mut n));
        assert_eq!(n, 2);
        nn_ok(aclDestroyScalarList(sl));
        nn_err(
            aclDestroyScalar(s2),
            ACLNN_ERR_PARAM_INVALID,
            &["not a live"],
        );
    }
}

#[test]
fn live_objects_name_their_creator() {
    init();
    let t = tensor(&[1], ACL_FLOAT, null_mut());
    let live = crate::aclnn_live_objects();
    let me = live
        .iter()
        .find(|o| o.address == t as usize)
        .expect("registered");
    assert_eq!(me.kind, crate::AclnnObjectKind::Tensor);
    assert_eq!(me.created_by, "aclCreateTensor");
    destroy_tensors(&[t]);
    assert!(
        crate::aclnn_live_objects()
            .iter()
            .all(|o| o.address != t as usize)
    );
}

// ------------------------------------------------------- phase-one checks

#[test]
fn an_operator_on_freed_memory_is_a_use_after_free_report() {
    let mut dev = Dev::new();
    let live = dev.buf(&[1f32; 16]);
    let freed = dev_alloc(64);
    // SAFETY: `freed` came from aclrtMalloc and is freed once.
    ok(unsafe { aclrtFree(freed) });
    let a = tensor(&[16], ACL_FLOAT, freed);
    let b = tensor(&[16], ACL_FLOAT, live);
    let out = tensor(&[16], ACL_FLOAT, live);
    let alpha = scalar_f32(1.0);
    let mut ws = 0;
    let mut ex = null_mut();
    // SAFETY: live descriptors and output locations.
    let code = unsafe { aclnnAddGetWorkspaceSize(a, b, alpha, out, &mut ws, &mut ex) };
    let msg = nn_err(
        code,
        ACLNN_ERR_PARAM_INVALID,
        &["use-after-free", "aclnnAddGetWorkspaceSize", "aclrtFree"],
    );
    assert!(msg.starts_with("use-after-free"), "{msg}");
    assert!(ex.is_null());
}

#[test]
fn view_past_its_allocation_is_refused() {
    let mut dev = Dev::new();
    let small = dev.buf(&[0f32; 8]); // charged 64 bytes: 16 floats addressable
    let big = dev.buf(&[0f32; 64]);
    let a = tensor(&[64], ACL_FLOAT, small);
    let b = tensor(&[64], ACL_FLOAT, big);
    let out = tensor(&[64], ACL_FLOAT, big);
    let alpha = scalar_f32(1.0);
    let mut ws = 0;
    let mut ex = null_mut();
    // SAFETY: live descriptors and output locations.
    let code = unsafe { aclnnAddGetWorkspaceSize(a, b, alpha, out, &mut ws, &mut ex) };
    nn_err(
        code,
        ACLNN_ERR_PARAM_INVALID,
        &[
            "aclnnAddGetWorkspaceSize",
            "self",
            "outside its allocation",
            "256 bytes",
        ],
    );
    assert!(ex.is_null());

    // An offset view that ends past the block.
    let off = strided(&[4], None, 70, ACL_FLOAT, &[64], big);
    // SAFETY: as above.
    let code = unsafe { aclnnAddGetWorkspaceSize(b, off, alpha, out, &mut ws, &mut ex) };
    nn_err(
        code,
        ACLNN_ERR_PARAM_INVALID,
        &["other", "outside its allocation"],
    );

    // Host memory is not device memory.
    let host = vec![0u64; 64];
    let host_aligned = ((host.as_ptr() as usize + 31) & !31) as *mut c_void;
    let h = tensor(&[8], ACL_FLOAT, host_aligned);
    let b8 = tensor(&[8], ACL_FLOAT, big);
    // SAFETY: as above.
    let code = unsafe { aclnnAddGetWorkspaceSize(h, b8, alpha, b8, &mut ws, &mut ex) };
    nn_err(
        code,
        ACLNN_ERR_PARAM_INVALID,
        &["not device memory of device 0"],
    );

    // NULL required tensor, NULL outputs of phase one.
    // SAFETY: as above.
    let code = unsafe { aclnnAddGetWorkspaceSize(null_mut(), b, alpha, out, &mut ws, &mut ex) };
    nn_err(code, ACLNN_ERR_PARAM_NULLPTR, &["self is NULL"]);
    // SAFETY: as above.
    let code = unsafe { aclnnAddGetWorkspaceSize(b, b, alpha, out, null_mut(), &mut ex) };
    nn_err(code, ACLNN_ERR_PARAM_NULLPTR, &["workspaceSize is NULL"]);

    // A kernel check failure keeps the kernel's text.
    let b3 = tensor(&[3], ACL_FLOAT, big);
    // SAFETY: as above.
    let code = unsafe { aclnnAddGetWorkspaceSize(b8, b3, alpha, b8, &mut ws, &mut ex) };
    nn_err(code, ACLNN_ERR_PARAM_INVALID, &["aclnnAddGetWorkspaceSize"]);

    // Unsupported dtype for the kernels.
    let u16t = tensor(&[8], ACL_UINT16, big);
    // SAFETY: as above.
    let code = unsafe { aclnnAddGetWorkspaceSize(u16t, b8, alpha, b8, &mut ws, &mut ex) };
    nn_err(code, ACLNN_ERR_PARAM_INVALID, &["dataType 7"]);
    // SAFETY: the scalar is live.
    unsafe { aclDestroyScalar(alpha) };
    destroy_tensors(&[a, b, out, off, h, b8, b3, u16t]);
}

#[test]
fn moe_gating_k_out_of_range_message() {
    let mut dev = Dev::new();
    let x = dev.zeros::<f32>(16);
    let y = dev.zeros::<f32>(32);
    let i = dev.zeros::<i32>(32);
    let xt = tensor(&[2, 8], ACL_FLOAT, x);
    let yt = tensor(&[2, 9], ACL_FLOAT, y);
    let it = tensor(&[2, 9], ACL_INT32, i);
    let (mut ws, mut ex) = (0, null_mut());
    // SAFETY: live descriptors and output locations.
    let code = unsafe {
        aclnnMoeGatingTopKGetWorkspaceSize(
            xt,
            null_mut(),
            9,
            1,
            1,
            0,
            0,
            1,
            false,
            1.0,
            1e-20,
            yt,
            it,
            null_mut(),
            &mut ws,
            &mut ex,
        )
    };
    let msg = nn_err(
        code,
        ACLNN_ERR_PARAM_INVALID,
        &["aclnnMoeGatingTopKGetWorkspaceSize", "k", "9"],
    );
    assert!(
        msg.starts_with("aclnnMoeGatingTopKGetWorkspaceSize: "),
        "{msg}"
    );
    assert!(msg.contains("[1, 8]"), "{msg}");
    destroy_tensors(&[xt, yt, it]);
}

// ------------------------------------------------ executors and lifetimes

#[test]
fn non_repeatable_executor_runs_once() {
    let mut dev = Dev::new();
    let a = dev.buf(&[1f32, 2.0, 3.0, 4.0]);
    let o = dev.zeros::<f32>(4);
    let at = tensor(&[4], ACL_FLOAT, a);
    let ot = tensor(&[4], ACL_FLOAT, o);
    let (mut ws, mut ex) = (0, null_mut());
    // SAFETY: live descriptors, output locations, and stream.
    unsafe {
        nn_ok(aclnnMulGetWorkspaceSize(at, at, ot, &mut ws, &mut ex));
        // The wrong operator's phase two is refused and does not consume it.
        nn_err(
            aclnnAdd(null_mut(), 0, ex, dev.stream),
            ACLNN_ERR_PARAM_INVALID,
            &["aclnnAdd", "aclnnMulGetWorkspaceSize"],
        );
        nn_ok(aclnnMul(null_mut(), 0, ex, dev.stream));
        nn_err(
            aclnnMul(null_mut(), 0, ex, dev.stream),
            ACLNN_ERR_PARAM_INVALID,
            &[
                "aclnnMul",
                "already consumed",
                "aclSetAclOpExecutorRepeatable",
            ],
        );
        nn_err(
            aclnnMul(null_mut(), 0, null_mut(), dev.stream),
            ACLNN_ERR_PARAM_NULLPTR,
            &["executor is NULL"],
        );
    }
    destroy_tensors(&[at, ot]);
    dev.sync();
    assert_eq!(dev.read::<f32>(o, 4), vec![1.0, 4.0, 9.0, 16.0]);
}

#[test]
fn failed_phase_two_consumes_a_single_use_executor() {
    let mut dev = Dev::new();
    let a = dev.buf(&[1f32, 2.0]);
    let o = dev.zeros::<f32>(2);
    let at = tensor(&[2], ACL_FLOAT, a);
    let ot = tensor(&[2], ACL_FLOAT, o);
    let bogus_stream = 0x10 as aclrtStream;
    let (mut ws, mut ex, mut rex) = (0, null_mut(), null_mut());
    // SAFETY: live descriptors and output locations; the bogus stream is
    // only looked up (and refused), never dereferenced.
    unsafe {
        nn_ok(aclnnMulGetWorkspaceSize(at, at, ot, &mut ws, &mut ex));
        assert_ne!(aclnnMul(null_mut(), 0, ex, bogus_stream), 0);
        // CANN releases the executor in phase two, failed or not.
        nn_err(
            aclnnMul(null_mut(), 0, ex, dev.stream),
            ACLNN_ERR_PARAM_INVALID,
            &["aclnnMul", "consumed by its failed phase-two call"],
        );
        // A repeatable one stays the caller's.
        nn_ok(aclnnMulGetWorkspaceSize(at, at, ot, &mut ws, &mut rex));
        nn_ok(aclSetAclOpExecutorRepeatable(rex));
        assert_ne!(aclnnMul(null_mut(), 0, rex, bogus_stream), 0);
        nn_ok(aclnnMul(null_mut(), 0, rex, dev.stream));
        nn_ok(aclDestroyAclOpExecutor(rex));
    }
    assert!(
        !crate::aclnn::meta::live_objects()
            .iter()
            .any(|o| o.address == ex as usize || o.address == rex as usize)
    );
    destroy_tensors(&[at, ot]);
    dev.sync();
    assert_eq!(dev.read::<f32>(o, 2), vec![1.0, 4.0]);
}

#[test]
fn repeatable_executor_with_new_input_address() {
    let mut dev = Dev::new();
    let a1 = dev.buf(&[1f32, 2.0, 3.0]);
    let a2 = dev.buf(&[10f32, 20.0, 30.0]);
    let b = dev.buf(&[100f32, 200.0, 300.0]);
    let o = dev.zeros::<f32>(3);
    let o2 = dev.zeros::<f32>(3);
    let host_block = [0u64; 16];
    let aligned_host = ((host_block.as_ptr() as usize + 31) & !31) as *mut c_void;
    let at = tensor(&[3], ACL_FLOAT, a1);
    let bt = tensor(&[3], ACL_FLOAT, b);
    let ot = tensor(&[3], ACL_FLOAT, o);
    let alpha = scalar_f32(1.0);
    let (mut ws, mut ex) = (0, null_mut());
    // SAFETY: live descriptors, output locations, device buffers, stream.
    unsafe {
        nn_ok(aclnnAddGetWorkspaceSize(
            at, bt, alpha, ot, &mut ws, &mut ex,
        ));
        nn_ok(aclSetAclOpExecutorRepeatable(ex));
        nn_ok(aclnnAdd(null_mut(), 0, ex, dev.stream));
        dev.sync();
        assert_eq!(dev.read::<f32>(o, 3), vec![101.0, 202.0, 303.0]);

        nn_ok(aclSetInputTensorAddr(ex, 0, at, a2));
        nn_ok(aclSetOutputTensorAddr(ex, 0, ot, o2));
        let mut addr = null_mut();
        nn_ok(aclGetRawTensorAddr(at, &mut addr));
        assert_eq!(addr, a2, "the descriptor follows the executor");
        nn_ok(aclnnAdd(null_mut(), 0, ex, dev.stream));
        dev.sync();
        assert_eq!(dev.read::<f32>(o2, 3), vec![110.0, 220.0, 330.0]);
        assert_eq!(dev.read::<f32>(o, 3), vec![101.0, 202.0, 303.0]);

        // aclSetTensorAddr counts inputs (self, other) then outputs.
        nn_ok(aclSetTensorAddr(ex, 1, bt, a1));
        nn_ok(aclnnAdd(null_mut(), 0, ex, dev.stream));
        dev.sync();
        assert_eq!(dev.read::<f32>(o2, 3), vec![11.0, 22.0, 33.0]);

        // Invalid updates are refused and change nothing.
        nn_err(
            aclSetInputTensorAddr(ex, 0, at, aligned_host),
            ACLNN_ERR_PARAM_INVALID,
            &["aclSetInputTensorAddr", "not device memory"],
        );
        nn_err(
            aclSetInputTensorAddr(ex, 2, at, a1),
            ACLNN_ERR_PARAM_INVALID,
            &["index 2 is out of range"],
        );
        nn_err(
            aclSetInputTensorAddr(ex, 0, bt, a1),
            ACLNN_ERR_PARAM_INVALID,
            &["is not the aclTensor"],
        );
        nn_err(
            aclSetDynamicInputTensorAddr(ex, 0, 0, at.cast(), a1),
            ACLNN_ERR_PARAM_INVALID,
            &["single tensor"],
        );
        // Workspace rules.
        nn_err(
            aclnnAdd(null_mut(), 64, ex, dev.stream),
            ACLNN_ERR_PARAM_NULLPTR,
            &["workspace is NULL"],
        );
        let host = [0u64; 8];
        nn_err(
            aclnnAdd(host.as_ptr() as *mut c_void, 64, ex, dev.stream),
            ACLNN_ERR_PARAM_INVALID,
            &["workspace", "not device memory"],
        );
        nn_ok(aclnnAdd(b, 12, ex, dev.stream));
        dev.sync();
        // Nothing goes through a 0-byte workspace: its pointer is not judged.
        nn_ok(aclnnAdd(host.as_ptr() as *mut c_void, 0, ex, dev.stream));
        dev.sync();

        // Descriptors may go away; the executor keeps its copies.
        ok(aclrtMemset(o2, 12, 0, 12));
        destroy_tensors(&[at, bt, ot]);
        nn_ok(aclDestroyScalar(alpha));
        nn_ok(aclnnAdd(null_mut(), 0, ex, dev.stream));
        nn_ok(aclDestroyAclOpExecutor(ex));
        dev.sync();
        assert_eq!(dev.read::<f32>(o2, 3), vec![11.0, 22.0, 33.0]);
        nn_err(
            aclnnAdd(null_mut(), 0, ex, dev.stream),
            ACLNN_ERR_PARAM_INVALID,
            &["already destroyed"],
        );
        nn_err(
            aclDestroyAclOpExecutor(ex),
            ACLNN_ERR_PARAM_INVALID,
            &["aclDestroyAclOpExecutor"],
        );
    }
}

#[test]
fn runtime_kernel_error_surfaces_at_synchronize() {
    let mut dev = Dev::new();
    // N = 2, K = 1, H = 2, mode 2 (row-major), one row index out of range.
    let ex = dev.buf(&[1f32, 2.0, 3.0, 4.0]);
    let row = dev.buf(&[0i32, 99]);
    let out = dev.zeros::<f32>(4);
    let ext = tensor(&[2, 2], ACL_FLOAT, ex);
    let rt = tensor(&[2], ACL_INT32, row);
    let ot = tensor(&[2, 2], ACL_FLOAT, out);
    run_op(
        &dev,
        // SAFETY: live descriptors and output locations.
        |ws, e| unsafe {
            aclnnMoeFinalizeRoutingV2GetWorkspaceSize(
                ext,
                rt,
                null_mut(),
                null_mut(),
                null_mut(),
                null_mut(),
                null_mut(),
                2,
                ot,
                ws,
                e,
            )
        },
        aclnnMoeFinalizeRoutingV2,
    );
    destroy_tensors(&[ext, rt, ot]);
    // SAFETY: the stream is live.
    let code = unsafe { aclrtSynchronizeStream(dev.stream) };
    nn_err(
        code,
        ACLNN_ERR_PARAM_INVALID,
        &["aclrtSynchronizeStream", "aclnnMoeFinalizeRoutingV2", "99"],
    );
    // The error was reported once; the stream works again.
    dev.sync();
    assert_eq!(dev.read::<f32>(out, 4), vec![0.0; 4]);
}

#[test]
fn executor_is_bound_to_its_device() {
    let mut dev = Dev::new();
    let a = dev.buf(&[1f32, 2.0]);
    let at = tensor(&[2], ACL_FLOAT, a);
    let (mut ws, mut ex) = (0, null_mut());
    // SAFETY: live descriptors and output locations.
    nn_ok(unsafe { aclnnMulGetWorkspaceSize(at, at, at, &mut ws, &mut ex) });
    // SAFETY: `ex` is live; the stream handle is bogus and must be refused.
    let code = unsafe { aclnnMul(null_mut(), 0, ex, 0x1234 as aclrtStream) };
    nn_err(
        code,
        ACLNN_ERR_RUNTIME_ERROR,
        &["aclnnMul", "not a live stream"],
    );
    // The failed phase two consumed the single-use executor; a new one runs.
    // SAFETY: live descriptors and output locations.
    nn_ok(unsafe { aclnnMulGetWorkspaceSize(at, at, at, &mut ws, &mut ex) });
    // SAFETY: `ex` is live.
    nn_ok(unsafe { aclnnMul(null_mut(), 0, ex, dev.stream) });
    destroy_tensors(&[at]);
    dev.sync();
    assert_eq!(dev.read::<f32>(a, 2), vec![1.0, 4.0]);
}

// -------------------------------------------------- operators end to end

#[test]
fn add_broadcast_with_alpha() {
    let mut dev = Dev::new();
    let a = dev.buf(&[1f32, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let b = dev.buf(&[10f32, 20.0, 30.0]);
    let o = dev.zeros::<f32>(6);
    let (at, bt, ot) = (
        tensor(&[2, 3], ACL_FLOAT, a),
        tensor(&[3], ACL_FLOAT, b),
        tensor(&[2, 3], ACL_FLOAT, o),
    );
    let alpha = scalar_f32(2.0);
    // SAFETY: live descriptors and output locations.
    run_op(
        &dev,
        |w, e| unsafe { aclnnAddGetWorkspaceSize(at, bt, alpha, ot, w, e) },
        aclnnAdd,
    );
    destroy_tensors(&[at, bt, ot]);
    // SAFETY: live scalar.
    nn_ok(unsafe { aclDestroyScalar(alpha) });
    dev.sync();
    assert_eq!(
        dev.read::<f32>(o, 6),
        vec![21.0, 42.0, 63.0, 24.0, 45.0, 66.0]
    );
}

#[test]
fn inplace_add_and_adds() {
    let mut dev = Dev::new();
    let a = dev.buf(&[1f32, 2.0, 3.0, 4.0]);
    let b = dev.buf(&[2f32, 2.0, 2.0, 2.0]);
    let o = dev.zeros::<f32>(4);
    let (at, bt, ot) = (
        tensor(&[4], ACL_FLOAT, a),
        tensor(&[4], ACL_FLOAT, b),
        tensor(&[4], ACL_FLOAT, o),
    );
    let half = scalar_f32(0.5);
    let other = scalar_f32(1.5);
    let two = scalar_f32(2.0);
    run_op(
        &dev,
        // SAFETY: live descriptors and output locations.
        |w, e| unsafe { aclnnInplaceAddGetWorkspaceSize(at, bt, half, w, e) },
        aclnnInplaceAdd,
    );
    run_op(
        &dev,
        // SAFETY: live descriptors and output locations.
        |w, e| unsafe { aclnnAddsGetWorkspaceSize(at, other, two, ot, w, e) },
        aclnnAdds,
    );
    dev.sync();
    // a += 0.5 * 2 → [2,3,4,5]; o = a + 2 * 1.5.
    assert_eq!(dev.read::<f32>(a, 4), vec![2.0, 3.0, 4.0, 5.0]);
    assert_eq!(dev.read::<f32>(o, 4), vec![5.0, 6.0, 7.0, 8.0]);
    destroy_tensors(&[at, bt, ot]);
    for s in [half, other, two] {
        // SAFETY: live scalars.
        nn_ok(unsafe { aclDestroyScalar(s) });
    }
}

#[test]
fn mul_outer_product_broadcast_f16() {
    let mut dev = Dev::new();
    let h = |v: &[f32]| {
        v.iter()
            .map(|&x| half::f16::from_f32(x))
            .collect::<Vec<_>>()
    };
    let a = dev.buf(&h(&[1.0, 2.0]));
    let b = dev.buf(&h(&[3.0, 4.0, 0.5]));
    let o = dev.zeros::<half::f16>(6);
    let (at, bt, ot) = (
        tensor(&[2, 1], ACL_FLOAT16, a),
        tensor(&[1, 3], ACL_FLOAT16, b),
        tensor(&[2, 3], ACL_FLOAT16, o),
    );
    // SAFETY: live descriptors and output locations.
    run_op(
        &dev,
        |w, e| unsafe { aclnnMulGetWorkspaceSize(at, bt, ot, w, e) },
        aclnnMul,
    );
    destroy_tensors(&[at, bt, ot]);
    dev.sync();
    let got: Vec<f32> = dev
        .read::<half::f16>(o, 6)
        .iter()
        .map(|v| v.to_f32())
        .collect();
    assert_eq!(got, vec![3.0, 4.0, 0.5, 6.0, 8.0, 1.0]);
}

#[test]
fn matmul_with_transposed_view() {
    let mut dev = Dev::new();
    let a = dev.buf(&[1f32, 2.0, 3.0, 4.0, 5.0, 6.0]); // [2,3]
    // mat2 is [3,2], stored as its transpose [2,3] row-major.
    let bt_store = [7f32, 9.0, 11.0, 8.0, 10.0, 12.0];
    let b = dev.buf(&bt_store);
    let o = dev.zeros::<f32>(4);
    let at = tensor(&[2, 3], ACL_FLOAT, a);
    let bt = strided(&[3, 2], Some(&[1, 3]), 0, ACL_FLOAT, &[2, 3], b);
    let ot = tensor(&[2, 2], ACL_FLOAT, o);
    // SAFETY: live descriptors and output locations.
    run_op(
        &dev,
        |w, e| unsafe { aclnnMatmulGetWorkspaceSize(at, bt, ot, 1, w, e) },
        aclnnMatmul,
    );
    destroy_tensors(&[at, bt, ot]);
    dev.sync();
    // mat2 = [[7,8],[9,10],[11,12]].
    let a_ = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]];
    let m = [[7.0, 8.0], [9.0, 10.0], [11.0, 12.0]];
    let want: Vec<f64> = (0..2)
        .flat_map(|i| (0..2).map(move |j| (0..3).map(|k| a_[i][k] * m[k][j]).sum()))
        .collect();
    close(&dev.read::<f32>(o, 4), &want, 1e-6);
}

#[test]
fn rms_norm_softmax_swiglu() {
    let mut dev = Dev::new();
    let xs = [1f32, 2.0, 3.0, 4.0, -1.0, 0.5, 0.0, 2.0];
    let g = [1f32, 0.5, 2.0, 1.0];
    let x = dev.buf(&xs);
    let gm = dev.buf(&g);
    let y = dev.zeros::<f32>(8);
    let rstd = dev.zeros::<f32>(2);
    let sm = dev.zeros::<f32>(8);
    let sw = dev.zeros::<f32>(4);
    let xt = tensor(&[2, 4], ACL_FLOAT, x);
    let gt = tensor(&[4], ACL_FLOAT, gm);
    let yt = tensor(&[2, 4], ACL_FLOAT, y);
    let rt = tensor(&[2, 1], ACL_FLOAT, rstd);
    let st = tensor(&[2, 4], ACL_FLOAT, sm);
    let wt = tensor(&[2, 2], ACL_FLOAT, sw);
    let eps = 1e-6;
    run_op(
        &dev,
        // SAFETY: live descriptors and output locations.
        |w, e| unsafe { aclnnRmsNormGetWorkspaceSize(xt, gt, eps, yt, rt, w, e) },
        aclnnRmsNorm,
    );
    run_op(
        &dev,
        // SAFETY: live descriptors and output locations.
        |w, e| unsafe { aclnnSoftmaxGetWorkspaceSize(xt, -1, st, w, e) },
        aclnnSoftmax,
    );
    run_op(
        &dev,
        // SAFETY: live descriptors and output locations.
        |w, e| unsafe { aclnnSwiGluGetWorkspaceSize(xt, -1, wt, w, e) },
        aclnnSwiGlu,
    );
    destroy_tensors(&[xt, gt, yt, rt, st, wt]);
    dev.sync();
    let rows: Vec<&[f32]> = xs.chunks(4).collect();
    let mut want_y = Vec::new();
    let mut want_r = Vec::new();
    let mut want_s = Vec::new();
    let mut want_w = Vec::new();
    for r in &rows {
        let ms: f64 = r.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / 4.0;
        let inv = 1.0 / (ms + eps).sqrt();
        want_r.push(inv);
        want_y.extend(
            r.iter()
                .zip(&g)
                .map(|(&v, &gg)| f64::from(v) * inv * f64::from(gg)),
        );
        let mx = r.iter().cloned().fold(f32::MIN, f32::max) as f64;
        let ex: Vec<f64> = r.iter().map(|&v| (f64::from(v) - mx).exp()).collect();
        let sum: f64 = ex.iter().sum();
        want_s.extend(ex.iter().map(|e| e / sum));
        for j in 0..2 {
            let a = f64::from(r[j]);
            let b = f64::from(r[j + 2]);
            want_w.push(a / (1.0 + (-a).exp()) * b);
        }
    }
    close(&dev.read::<f32>(y, 8), &want_y, 1e-5);
    close(&dev.read::<f32>(rstd, 2), &want_r, 1e-5);
    close(&dev.read::<f32>(sm, 8), &want_s, 1e-5);
    close(&dev.read::<f32>(sw, 4), &want_w, 1e-5);
}

#[test]
fn topk_largest_sorted() {
    let mut dev = Dev::new();
    let x = dev.buf(&[3f32, 1.0, 4.0, 1.5, -2.0, 9.0, 2.0, 6.0]);
    let v = dev.zeros::<f32>(4);
    let i = dev.zeros::<i64>(4);
    let (xt, vt, it) = (
        tensor(&[2, 4], ACL_FLOAT, x),
        tensor(&[2, 2], ACL_FLOAT, v),
        tensor(&[2, 2], ACL_INT64, i),
    );
    run_op(
        &dev,
        // SAFETY: live descriptors and output locations.
        |w, e| unsafe { aclnnTopkGetWorkspaceSize(xt, 2, 1, true, true, vt, it, w, e) },
        aclnnTopk,
    );
    destroy_tensors(&[xt, vt, it]);
    dev.sync();
    assert_eq!(dev.read::<f32>(v, 4), vec![4.0, 3.0, 9.0, 6.0]);
    assert_eq!(dev.read::<i64>(i, 4), vec![2, 0, 1, 3]);
}

/// Softmax of each row of `x` (`cols` wide), in f64.
fn softmax_rows(x: &[f32], cols: usize) -> Vec<f64> {
    x.chunks(cols)
        .flat_map(|r| {
            let mx = r.iter().cloned().fold(f32::MIN, f32::max) as f64;
            let e: Vec<f64> = r.iter().map(|&v| (f64::from(v) - mx).exp()).collect();
            let s: f64 = e.iter().sum();
            e.into_iter().map(move |v| v / s)
        })
        .collect()
}

#[test]
fn moe_gating_top_k_softmax_v1_and_v2() {
    let mut dev = Dev::new();
    let xs = [0.1f32, 2.0, -1.0, 1.0, 3.0, 0.0, 0.5, -0.5];
    let x = dev.buf(&xs);
    let y = dev.zeros::<f32>(4);
    let idx = dev.zeros::<i32>(4);
    let row = dev.zeros::<i32>(4);
    let y2 = dev.zeros::<f32>(4);
    let idx2 = dev.zeros::<i32>(4);
    let smx = dev.zeros::<f32>(8);
    let xt = tensor(&[2, 4], ACL_FLOAT, x);
    let yt = tensor(&[2, 2], ACL_FLOAT, y);
    let it = tensor(&[2, 2], ACL_INT32, idx);
    let rt = tensor(&[2, 2], ACL_INT32, row);
    let y2t = tensor(&[2, 2], ACL_FLOAT, y2);
    let i2t = tensor(&[2, 2], ACL_INT32, idx2);
    let st = tensor(&[2, 4], ACL_FLOAT, smx);
    run_op(
        &dev,
        // SAFETY: live descriptors and output locations.
        |w, e| unsafe {
            aclnnMoeGatingTopKSoftmaxGetWorkspaceSize(xt, null_mut(), 2, yt, it, rt, w, e)
        },
        aclnnMoeGatingTopKSoftmax,
    );
    run_op(
        &dev,
        // SAFETY: live descriptors and output locations.
        |w, e| unsafe {
            aclnnMoeGatingTopKSoftmaxV2GetWorkspaceSize(
                xt,
                null_mut(),
                2,
                0,
                true,
                y2t,
                i2t,
                st,
                w,
                e,
            )
        },
        aclnnMoeGatingTopKSoftmaxV2,
    );
    destroy_tensors(&[xt, yt, it, rt, y2t, i2t, st]);
    dev.sync();
    let p = softmax_rows(&xs, 4);
    // Row 0: experts 1 (2.0) and 3 (1.0); row 1: experts 0 (3.0) and 2 (0.5).
    let want_idx = vec![1, 3, 0, 2];
    let want_y: Vec<f64> = vec![p[1], p[3], p[4], p[6]];
    assert_eq!(dev.read::<i32>(idx, 4), want_idx);
    close(&dev.read::<f32>(y, 4), &want_y, 1e-5);
    // rowIdx[n, j] = j * N + n.
    assert_eq!(dev.read::<i32>(row, 4), vec![0, 2, 1, 3]);
    assert_eq!(dev.read::<i32>(idx2, 4), want_idx);
    close(&dev.read::<f32>(y2, 4), &want_y, 1e-5);
    close(&dev.read::<f32>(smx, 8), &p, 1e-5);
}

#[test]
fn moe_gating_top_k_grouped_sigmoid() {
    let mut dev = Dev::new();
    // N = 1, E = 4 in 2 groups of 2; kGroup 1, k 2.
    let xs = [0.5f32, -1.0, 1.0, 0.2];
    let x = dev.buf(&xs);
    let y = dev.zeros::<f32>(2);
    let idx = dev.zeros::<i32>(2);
    let xt = tensor(&[1, 4], ACL_FLOAT, x);
    let yt = tensor(&[1, 2], ACL_FLOAT, y);
    let it = tensor(&[1, 2], ACL_INT32, idx);
    run_op(
        &dev,
        // SAFETY: live descriptors and output locations.
        |w, e| unsafe {
            aclnnMoeGatingTopKGetWorkspaceSize(
                xt,
                null_mut(),
                2,
                1,
                2,
                0,
                0,
                1,
                false,
                2.5,
                1e-20,
                yt,
                it,
                null_mut(),
                w,
                e,
            )
        },
        aclnnMoeGatingTopK,
    );
    destroy_tensors(&[xt, yt, it]);
    dev.sync();
    let s: Vec<f64> = xs
        .iter()
        .map(|&v| 1.0 / (1.0 + (-f64::from(v)).exp()))
        .collect();
    // Group maxima: group 0 → s[0], group 1 → s[2] (larger): experts 2, 3.
    assert_eq!(dev.read::<i32>(idx, 2), vec![2, 3]);
    let sum = s[2] + s[3];
    close(
        &dev.read::<f32>(y, 2),
        &[s[2] / sum * 2.5, s[3] / sum * 2.5],
        1e-5,
    );
}

/// Stable argsort of `ids` (source positions in expert order).
fn stable_order(ids: &[i32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by_key(|&i| ids[i]);
    order
}

#[test]
fn moe_init_routing_v2_v3_and_expert_tokens() {
    let mut dev = Dev::new();
    // N = 3 tokens, K = 2, H = 2, E = 4.
    let xs = [1f32, 10.0, 2.0, 20.0, 3.0, 30.0];
    let ids = [2i32, 0, 3, 2, 0, 1];
    let x = dev.buf(&xs);
    let id = dev.buf(&ids);
    let ex2 = dev.zeros::<f32>(12);
    let row2 = dev.zeros::<i32>(6);
    let cnt2 = dev.zeros::<i32>(4);
    let ex3 = dev.zeros::<f32>(12);
    let row3 = dev.zeros::<i32>(6);
    let cnt3 = dev.zeros::<i64>(4);
    let xt = tensor(&[3, 2], ACL_FLOAT, x);
    let idt = tensor(&[3, 2], ACL_INT32, id);
    let e2t = tensor(&[6, 2], ACL_FLOAT, ex2);
    let r2t = tensor(&[6], ACL_INT32, row2);
    let c2t = tensor(&[4], ACL_INT32, cnt2);
    let e3t = tensor(&[6, 2], ACL_FLOAT, ex3);
    let r3t = tensor(&[6], ACL_INT32, row3);
    let c3t = tensor(&[4], ACL_INT64, cnt3);
    run_op(
        &dev,
        // SAFETY: live descriptors and output locations.
        |w, e| unsafe {
            aclnnMoeInitRoutingV2GetWorkspaceSize(
                xt,
                idt,
                0,
                0,
                4,
                0,
                2,
                false,
                e2t,
                r2t,
                c2t,
                null_mut(),
                w,
                e,
            )
        },
        aclnnMoeInitRoutingV2,
    );
    run_op(
        &dev,
        // SAFETY: live descriptors and output locations.
        |w, e| unsafe {
            aclnnMoeInitRoutingV3GetWorkspaceSize(
                xt,
                idt,
                null_mut(),
                null_mut(),
                6,
                0,
                4,
                0,
                1,
                true,
                -1,
                null_mut(),
                0,
                e3t,
                r3t,
                c3t,
                null_mut(),
                w,
                e,
            )
        },
        aclnnMoeInitRoutingV3,
    );
    // Sorted expert ids → per-expert end offsets.
    let mut sorted = ids;
    sorted.sort();
    let s = dev.buf(&sorted);
    let out = dev.zeros::<i32>(4);
    let st = tensor(&[6], ACL_INT32, s);
    let ot = tensor(&[4], ACL_INT32, out);
    run_op(
        &dev,
        // SAFETY: live descriptors and output locations.
        |w, e| unsafe { aclnnMoeComputeExpertTokensGetWorkspaceSize(st, 4, ot, w, e) },
        aclnnMoeComputeExpertTokens,
    );
    destroy_tensors(&[xt, idt, e2t, r2t, c2t, e3t, r3t, c3t, st, ot]);
    dev.sync();

    let order = stable_order(&ids);
    let mut want_x = Vec::new();
    let mut want_row = vec![0i32; 6];
    for (i, &src) in order.iter().enumerate() {
        let tok = src / 2;
        want_x.extend_from_slice(&xs[tok * 2..tok * 2 + 2]);
        want_row[src] = i as i32;
    }
    let counts: Vec<i32> = (0..4)
        .map(|e| ids.iter().filter(|&&v| v == e).count() as i32)
        .collect();
    assert_eq!(dev.read::<f32>(ex2, 12), want_x);
    assert_eq!(dev.read::<i32>(row2, 6), want_row);
    assert_eq!(dev.read::<i32>(cnt2, 4), counts);
    assert_eq!(dev.read::<f32>(ex3, 12), want_x);
    assert_eq!(dev.read::<i32>(row3, 6), want_row);
    assert_eq!(
        dev.read::<i64>(cnt3, 4),
        counts.iter().map(|&c| i64::from(c)).collect::<Vec<_>>()
    );
    let mut acc = 0;
    let ends: Vec<i32> = counts
        .iter()
        .map(|c| {
            acc += c;
            acc
        })
        .collect();
    assert_eq!(dev.read::<i32>(out, 4), ends);
}

#[test]
fn moe_finalize_routing_v2_weighted_sum() {
    let mut dev = Dev::new();
    // N = 2, K = 2, H = 3, mode 2: p = n*K + k.
    let ex: Vec<f32> = (0..12).map(|v| v as f32).collect(); // [4, 3]
    let rows = [3i32, 0, 2, 1];
    let scales = [0.5f32, 0.25, 1.0, 2.0];
    let x1 = [100f32, 200.0, 300.0, 400.0, 500.0, 600.0];
    let e = dev.buf(&ex);
    let r = dev.buf(&rows);
    let sc = dev.buf(&scales);
    let x1d = dev.buf(&x1);
    let out = dev.zeros::<f32>(6);
    let et = tensor(&[4, 3], ACL_FLOAT, e);
    let rt = tensor(&[4], ACL_INT32, r);
    let st = tensor(&[2, 2], ACL_FLOAT, sc);
    let xt = tensor(&[2, 3], ACL_FLOAT, x1d);
    let ot = tensor(&[2, 3], ACL_FLOAT, out);
    run_op(
        &dev,
        // SAFETY: live descriptors and output locations.
        |w, exr| unsafe {
            aclnnMoeFinalizeRoutingV2GetWorkspaceSize(
                et,
                rt,
                xt,
                null_mut(),
                null_mut(),
                st,
                null_mut(),
                2,
                ot,
                w,
                exr,
            )
        },
        aclnnMoeFinalizeRoutingV2,
    );
    destroy_tensors(&[et, rt, st, xt, ot]);
    dev.sync();
    let mut want = Vec::new();
    for n in 0..2 {
        for h in 0..3 {
            let mut v = f64::from(x1[n * 3 + h]);
            for k in 0..2 {
                let row = rows[n * 2 + k] as usize;
                v += f64::from(scales[n * 2 + k]) * f64::from(ex[row * 3 + h]);
            }
            want.push(v);
        }
    }
    close(&dev.read::<f32>(out, 6), &want, 1e-6);
}

/// `x[M, K] @ w[g]` per row block given by cumulative `ends`.
fn grouped_reference(x: &[f32], w: &[f32], ends: &[usize], k: usize, n: usize) -> Vec<f64> {
    let mut out = Vec::new();
    let mut start = 0;
    for (g, &end) in ends.iter().enumerate() {
        for m in start..end {
            for j in 0..n {
                let s: f64 = (0..k)
                    .map(|i| f64::from(x[m * k + i]) * f64::from(w[g * k * n + i * n + j]))
                    .sum();
                out.push(s);
            }
        }
        start = end;
    }
    out
}

#[test]
fn grouped_matmul_v3_and_v4() {
    let mut dev = Dev::new();
    // M = 4, K = 2, N = 3, g = 2 groups: rows [0, 1) and [1, 4).
    let xs: Vec<f32> = (1..=8).map(|v| v as f32).collect();
    let ws: Vec<f32> = (0..12).map(|v| (v as f32) * 0.5 - 2.0).collect();
    let x = dev.buf(&xs);
    let w = dev.buf(&ws);
    let ends = dev.buf(&[1i64, 4]);
    let counts = dev.buf(&[1i64, 3]);
    let y3 = dev.zeros::<f32>(12);
    let y4 = dev.zeros::<f32>(12);
    // SAFETY: live descriptors; the lists take ownership of their members.
    let list = |ts: &[*mut aclTensor]| unsafe {
        let ptrs: Vec<*const aclTensor> = ts.iter().map(|&t| t as *const aclTensor).collect();
        let l = aclCreateTensorList(ptrs.as_ptr(), ptrs.len() as u64);
        assert!(!l.is_null(), "{:?}", take_message());
        l
    };
    let xl3 = list(&[tensor(&[4, 2], ACL_FLOAT, x)]);
    let wl3 = list(&[tensor(&[2, 2, 3], ACL_FLOAT, w)]);
    let yl3 = list(&[tensor(&[4, 3], ACL_FLOAT, y3)]);
    let gl3 = tensor(&[2], ACL_INT64, ends);
    let xl4 = list(&[tensor(&[4, 2], ACL_FLOAT, x)]);
    let wl4 = list(&[tensor(&[2, 2, 3], ACL_FLOAT, w)]);
    let yl4 = list(&[tensor(&[4, 3], ACL_FLOAT, y4)]);
    let gl4 = tensor(&[2], ACL_INT64, counts);
    let n = null_mut();
    run_op(
        &dev,
        // SAFETY: live descriptors and output locations.
        |ws, e| unsafe {
            aclnnGroupedMatmulV3GetWorkspaceSize(xl3, wl3, n, n, n, n, n, gl3, 3, 0, yl3, ws, e)
        },
        aclnnGroupedMatmulV3,
    );
    run_op(
        &dev,
        // SAFETY: live descriptors and output locations.
        |ws, e| unsafe {
            aclnnGroupedMatmulV4GetWorkspaceSize(
                xl4, wl4, n, n, n, n, n, n, gl4, n, n, n, 3, 0, 1, 0, yl4, n, n, ws, e,
            )
        },
        aclnnGroupedMatmulV4,
    );
    for l in [xl3, wl3, yl3, xl4, wl4, yl4] {
        // SAFETY: live lists; destroying them destroys their members.
        nn_ok(unsafe { aclDestroyTensorList(l) });
    }
    destroy_tensors(&[gl3, gl4]);
    dev.sync();
    let want = grouped_reference(&xs, &ws, &[1, 4], 2, 3);
    close(&dev.read::<f32>(y3, 12), &want, 1e-6);
    close(&dev.read::<f32>(y4, 12), &want, 1e-6);
}

#[test]
fn dynamic_input_address_of_a_list_member() {
    let mut dev = Dev::new();
    let x1 = dev.buf(&[1f32, 0.0, 0.0, 1.0]);
    let x2 = dev.buf(&[2f32, 0.0, 0.0, 2.0]);
    let w = dev.buf(&[1f32, 2.0, 3.0, 4.0]);
    let y = dev.zeros::<f32>(4);
    let xt = tensor(&[2, 2], ACL_FLOAT, x1);
    // SAFETY: live descriptors; the lists take ownership of their members.
    let (xl, wl, yl) = unsafe {
        let mk = |t: *mut aclTensor| aclCreateTensorList([t as *const aclTensor].as_ptr(), 1);
        (
            mk(xt),
            mk(tensor(&[2, 2], ACL_FLOAT, w)),
            mk(tensor(&[2, 2], ACL_FLOAT, y)),
        )
    };
    let n = null_mut();
    let (mut ws, mut ex) = (0, null_mut());
    // SAFETY: live descriptors, output locations, buffers and stream.
    unsafe {
        nn_ok(aclnnGroupedMatmulV4GetWorkspaceSize(
            xl,
            wl,
            n,
            n,
            n,
            n,
            n,
            n,
            null_mut(),
            n,
            n,
            n,
            0,
            -1,
            0,
            0,
            yl,
            n,
            n,
            &mut ws,
            &mut ex,
        ));
        nn_ok(aclSetAclOpExecutorRepeatable(ex));
        nn_ok(aclnnGroupedMatmulV4(null_mut(), 0, ex, dev.stream));
        dev.sync();
        assert_eq!(dev.read::<f32>(y, 4), vec![1.0, 2.0, 3.0, 4.0]);
        nn_err(
            aclSetInputTensorAddr(ex, 0, xt, x2),
            ACLNN_ERR_PARAM_INVALID,
            &["aclSetDynamicInputTensorAddr"],
        );
        nn_err(
            aclSetDynamicInputTensorAddr(ex, 0, 1, xl, x2),
            ACLNN_ERR_PARAM_INVALID,
            &["relativeIndex 1"],
        );
        nn_err(
            aclSetDynamicInputTensorAddr(ex, 0, 0, null_mut(), x2),
            ACLNN_ERR_INNER_NULLPTR,
            &["tensors is NULL"],
        );
        nn_ok(aclSetDynamicInputTensorAddr(ex, 0, 0, xl, x2));
        nn_ok(aclnnGroupedMatmulV4(null_mut(), 0, ex, dev.stream));
        dev.sync();
        assert_eq!(dev.read::<f32>(y, 4), vec![2.0, 4.0, 6.0, 8.0]);
        nn_ok(aclDestroyAclOpExecutor(ex));
        for l in [xl, wl, yl] {
            nn_ok(aclDestroyTensorList(l));
        }
    }
}

#[test]
fn phase_one_needs_a_current_context() {
    let dev = Dev::new();
    let t = tensor(&[2], ACL_FLOAT, null_mut());
    let addr = t as usize;
    // A thread without a current context.
    let code = std::thread::spawn(move || {
        let t = addr as *mut aclTensor;
        let (mut ws, mut ex) = (0, null_mut());
        // SAFETY: live descriptor and output locations.
        let code = unsafe { aclnnMulGetWorkspaceSize(t, t, t, &mut ws, &mut ex) };
        (code, take_message().unwrap_or_default())
    })
    .join()
    .unwrap();
    assert_eq!(code.0, ACLNN_ERR_RUNTIME_ERROR, "{}", code.1);
    assert!(code.1.contains("no current context"), "{}", code.1);
    destroy_tensors(&[t]);
    drop(dev);
}

#[test]
fn aclnn_init_and_finalize() {
    // SAFETY: NULL config path is allowed; a missing file is refused.
    unsafe {
        nn_ok(aclnnInit(std::ptr::null()));
        assert!(crate::aclnn_initialized());
        let bad = c"/nonexistent/aclnn.json";
        nn_err(
            aclnnInit(bad.as_ptr()),
            ACLNN_ERR_PARAM_INVALID,
            &["aclnnInit", "cannot be read"],
        );
        nn_ok(aclnnFinalize());
        nn_ok(aclnnInit(std::ptr::null()));
    }
}

#[test]
fn every_aclnn_symbol_resolves() {
    for name in [
        "aclCreateTensor",
        "aclDestroyTensorList",
        "aclSetDynamicOutputTensorAddr",
        "aclnnAddGetWorkspaceSize",
        "aclnnMoeFinalizeRoutingV2",
        "aclnnGroupedMatmulV4GetWorkspaceSize",
        "aclnnTopk",
    ] {
        assert!(!crate::resolve(name).is_null(), "{name}");
    }
    let api = ascend_sys::Api::from_resolver(crate::resolve, "ascend-mock");
    assert!(api.opapi.aclnnMoeGatingTopKGetWorkspaceSize().is_ok());
    assert!(api.nnopbase.aclCreateTensor().is_ok());
}
