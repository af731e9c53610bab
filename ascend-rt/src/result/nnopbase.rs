//! nnopbase (`libnnopbase`): the aclnn descriptors (tensors, scalars, int
//! arrays, tensor lists) and the calls on an operator's executor.
//!
//! Invariants: those of the result layer. Each function calls exactly one
//! nnopbase function (plus `aclGetRecentErrMsg` after a failure); a create
//! call that returns NULL is [`Error::NullResult`](crate::Error::NullResult)
//! naming it. Nothing here owns a descriptor or an executor: the safe
//! layer's `aclnn` owners decide when each is destroyed, exactly once.
//! Every function reaches the `NnOpBase` table through `table` only.

use std::ffi::c_void;

use ascend_sys::{
    NnOpBase, aclDataType, aclFormat, aclIntArray, aclOpExecutor, aclScalar, aclTensor,
    aclTensorList,
};

use crate::error::Result;
use crate::result::check::{check_aclnn, null_result};

/// The nnopbase table of the active backend (initialised on first use).
fn table() -> Result<&'static NnOpBase> {
    Ok(&crate::backend::api()?.nnopbase)
}

/// `aclCreateTensor`: a descriptor of the view `dims` / `strides` /
/// `offset` (in elements) of `dtype` into storage of shape `storage` at
/// `data`.
///
/// # Safety
/// `data` is null or the base of a device allocation holding the storage
/// (the product of `storage` elements of `dtype`), the view lies inside
/// that storage, and the allocation stays valid for as long as an operator
/// may use the descriptor.
pub unsafe fn create_tensor(
    dims: &[i64],
    dtype: aclDataType,
    strides: &[i64],
    offset: i64,
    format: aclFormat,
    storage: &[i64],
    data: *mut c_void,
) -> Result<*mut aclTensor> {
    let f = table()?.aclCreateTensor()?;
    // SAFETY: the slices live across the call and their lengths are the
    // counts passed; the caller vouches for `data` and the view.
    let raw = unsafe {
        f(
            dims.as_ptr(),
            dims.len() as u64,
            dtype,
            strides.as_ptr(),
            offset,
            format,
            storage.as_ptr(),
            storage.len() as u64,
            data,
        )
    };
    if raw.is_null() {
        return Err(null_result("aclCreateTensor"));
    }
    Ok(raw)
}

/// `aclCreateScalar`: a scalar of `dtype` read from `value`.
///
/// # Safety
/// `value` points to a value of `dtype` that stays alive, unchanged, as
/// long as the descriptor does (whether aclnn copies it is not documented).
pub unsafe fn create_scalar(value: *mut c_void, dtype: aclDataType) -> Result<*mut aclScalar> {
    let f = table()?.aclCreateScalar()?;
    // SAFETY: guaranteed by the caller.
    let raw = unsafe { f(value, dtype) };
    if raw.is_null() {
        return Err(null_result("aclCreateScalar"));
    }
    Ok(raw)
}

/// `aclCreateIntArray`: an array holding a copy of `values`.
pub fn create_int_array(values: &[i64]) -> Result<*mut aclIntArray> {
    let f = table()?.aclCreateIntArray()?;
    // SAFETY: `values` is a live slice of `len` elements, read during the
    // call.
    let raw = unsafe { f(values.as_ptr(), values.len() as u64) };
    if raw.is_null() {
        return Err(null_result("aclCreateIntArray"));
    }
    Ok(raw)
}

/// `aclCreateTensorList`: a list of `tensors`, which it owns from then on
/// (they are destroyed with it, never one by one).
///
/// # Safety
/// Every entry is a live descriptor no other list owns. On success the
/// caller stops destroying them individually; on failure they are still
/// the caller's.
pub unsafe fn create_tensor_list(tensors: &[*const aclTensor]) -> Result<*mut aclTensorList> {
    let f = table()?.aclCreateTensorList()?;
    // SAFETY: `tensors` holds `len` live descriptors (caller), read during
    // the call.
    let raw = unsafe { f(tensors.as_ptr(), tensors.len() as u64) };
    if raw.is_null() {
        return Err(null_result("aclCreateTensorList"));
    }
    Ok(raw)
}

/// `aclDestroyTensor`.
///
/// # Safety
/// `tensor` came from [`create_tensor`], belongs to no list, is not
/// destroyed yet and is not used afterwards.
pub unsafe fn destroy_tensor(tensor: *const aclTensor) -> Result<()> {
    let f = table()?.aclDestroyTensor()?;
    // SAFETY: guaranteed by the caller.
    check_aclnn("aclDestroyTensor", unsafe { f(tensor) })
}

/// `aclDestroyScalar`.
///
/// # Safety
/// `scalar` came from [`create_scalar`], is not destroyed yet and is not
/// used afterwards.
pub unsafe fn destroy_scalar(scalar: *const aclScalar) -> Result<()> {
    let f = table()?.aclDestroyScalar()?;
    // SAFETY: guaranteed by the caller.
    check_aclnn("aclDestroyScalar", unsafe { f(scalar) })
}

/// `aclDestroyIntArray`.
///
/// # Safety
/// `array` came from [`create_int_array`], is not destroyed yet and is not
/// used afterwards.
pub unsafe fn destroy_int_array(array: *const aclIntArray) -> Result<()> {
    let f = table()?.aclDestroyIntArray()?;
    // SAFETY: guaranteed by the caller.
    check_aclnn("aclDestroyIntArray", unsafe { f(array) })
}

/// `aclDestroyTensorList`: destroys the list and the tensors it owns.
///
/// # Safety
/// `list` came from [`create_tensor_list`], is not destroyed yet, and
/// neither it nor its tensors are used afterwards.
pub unsafe fn destroy_tensor_list(list: *const aclTensorList) -> Result<()> {
    let f = table()?.aclDestroyTensorList()?;
    // SAFETY: guaranteed by the caller.
    check_aclnn("aclDestroyTensorList", unsafe { f(list) })
}

/// Resolves the executor calls a repeatable executor needs
/// (`aclSetAclOpExecutorRepeatable`, `aclSetInputTensorAddr`,
/// `aclSetOutputTensorAddr`, `aclDestroyAclOpExecutor`) without calling
/// any: an error names the first one the backend lacks. For checking
/// before phase one, so that a missing symbol never strands an executor.
pub fn resolve_executor_calls() -> Result<()> {
    let t = table()?;
    t.aclSetAclOpExecutorRepeatable()?;
    t.aclSetInputTensorAddr()?;
    t.aclSetOutputTensorAddr()?;
    t.aclDestroyAclOpExecutor()?;
    Ok(())
}

/// `aclSetAclOpExecutorRepeatable`: the executor survives its phase twos
/// until [`destroy_executor`].
///
/// # Safety
/// `exec` is a live executor from a phase one whose phase two has not run
/// yet (or a repeatable one).
pub unsafe fn set_executor_repeatable(exec: *mut aclOpExecutor) -> Result<()> {
    let f = table()?.aclSetAclOpExecutorRepeatable()?;
    // SAFETY: guaranteed by the caller.
    check_aclnn("aclSetAclOpExecutorRepeatable", unsafe { f(exec) })
}

/// `aclDestroyAclOpExecutor`.
///
/// # Safety
/// `exec` is a live repeatable executor with no launch pending (its streams
/// have passed every phase two queued with it), and it is not used
/// afterwards.
pub unsafe fn destroy_executor(exec: *mut aclOpExecutor) -> Result<()> {
    let f = table()?.aclDestroyAclOpExecutor()?;
    // SAFETY: guaranteed by the caller.
    check_aclnn("aclDestroyAclOpExecutor", unsafe { f(exec) })
}

/// `aclSetInputTensorAddr`: input `index` of the executor reads `addr`
/// from its next phase two on.
///
/// # Safety
/// `exec` is a live repeatable executor, `tensor` its descriptor of input
/// `index`, and `addr` the base of device memory that the descriptor's view
/// fits in and that stays valid while a launch may use it.
pub unsafe fn set_input_tensor_addr(
    exec: *mut aclOpExecutor,
    index: usize,
    tensor: *mut aclTensor,
    addr: *mut c_void,
) -> Result<()> {
    let f = table()?.aclSetInputTensorAddr()?;
    // SAFETY: guaranteed by the caller.
    check_aclnn("aclSetInputTensorAddr", unsafe {
        f(exec, index, tensor, addr)
    })
}

/// `aclSetOutputTensorAddr`: output `index` of the executor writes `addr`
/// from its next phase two on.
///
/// # Safety
/// As [`set_input_tensor_addr`], for output `index`.
pub unsafe fn set_output_tensor_addr(
    exec: *mut aclOpExecutor,
    index: usize,
    tensor: *mut aclTensor,
    addr: *mut c_void,
) -> Result<()> {
    let f = table()?.aclSetOutputTensorAddr()?;
    // SAFETY: guaranteed by the caller.
    check_aclnn("aclSetOutputTensorAddr", unsafe {
        f(exec, index, tensor, addr)
    })
}
