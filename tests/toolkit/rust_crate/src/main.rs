//! Device memory and an aclnn operator through hand-written declarations of
//! the AscendCL C API, linked with `-lascendcl -lnnopbase -lopapi` (see
//! build.rs). Exits with status 1 when any result is wrong.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::process::ExitCode;
use std::ptr;

type AclError = c_int;
type AclnnStatus = i32;
type AclrtStream = *mut c_void;

#[repr(C)]
struct AclTensor {
    _private: [u8; 0],
}
#[repr(C)]
struct AclOpExecutor {
    _private: [u8; 0],
}

const ACL_SUCCESS: AclError = 0;
const ACL_FLOAT: c_int = 0;
const ACL_FORMAT_ND: c_int = 2;
const ACL_MEM_MALLOC_HUGE_FIRST: c_int = 0;
const ACL_MEMCPY_HOST_TO_DEVICE: c_int = 1;
const ACL_MEMCPY_DEVICE_TO_HOST: c_int = 2;
const ACL_MEMCPY_DEVICE_TO_DEVICE: c_int = 3;

unsafe extern "C" {
    fn aclInit(config_path: *const c_char) -> AclError;
    fn aclFinalize() -> AclError;
    fn aclGetRecentErrMsg() -> *const c_char;
    fn aclrtGetDeviceCount(count: *mut u32) -> AclError;
    fn aclrtGetSocName() -> *const c_char;
    fn aclrtSetDevice(device: i32) -> AclError;
    fn aclrtResetDevice(device: i32) -> AclError;
    fn aclrtCreateStream(stream: *mut AclrtStream) -> AclError;
    fn aclrtDestroyStream(stream: AclrtStream) -> AclError;
    fn aclrtSynchronizeStream(stream: AclrtStream) -> AclError;
    fn aclrtMalloc(ptr: *mut *mut c_void, size: usize, policy: c_int) -> AclError;
    fn aclrtFree(ptr: *mut c_void) -> AclError;
    fn aclrtMemcpy(
        dst: *mut c_void,
        dst_max: usize,
        src: *const c_void,
        count: usize,
        kind: c_int,
    ) -> AclError;
    fn aclCreateTensor(
        view_dims: *const i64,
        view_dims_num: u64,
        data_type: c_int,
        stride: *const i64,
        offset: i64,
        format: c_int,
        storage_dims: *const i64,
        storage_dims_num: u64,
        tensor_data: *mut c_void,
    ) -> *mut AclTensor;
    fn aclDestroyTensor(tensor: *const AclTensor) -> AclnnStatus;
    fn aclnnMulGetWorkspaceSize(
        self_: *const AclTensor,
        other: *const AclTensor,
        out: *mut AclTensor,
        workspace_size: *mut u64,
        executor: *mut *mut AclOpExecutor,
    ) -> AclnnStatus;
    fn aclnnMul(
        workspace: *mut c_void,
        workspace_size: u64,
        executor: *mut AclOpExecutor,
        stream: AclrtStream,
    ) -> AclnnStatus;
}

/// An AscendCL failure: the call and the runtime's message.
fn check(rc: AclError, call: &str) -> Result<(), String> {
    if rc == ACL_SUCCESS {
        return Ok(());
    }
    // SAFETY: aclGetRecentErrMsg takes no arguments and returns null or a
    // NUL-terminated string owned by the runtime, valid until the next call.
    let msg = unsafe { aclGetRecentErrMsg() };
    let text = if msg.is_null() {
        "(no message)".to_string()
    } else {
        // SAFETY: non-null, NUL-terminated (see above); copied at once.
        unsafe { CStr::from_ptr(msg) }
            .to_string_lossy()
            .into_owned()
    };
    Err(format!("{call} failed with {rc}: {text}"))
}

/// Device memory freed on drop.
struct DeviceBuffer {
    ptr: *mut c_void,
    bytes: usize,
}

impl DeviceBuffer {
    fn new(bytes: usize) -> Result<Self, String> {
        let mut ptr = ptr::null_mut();
        // SAFETY: `ptr` is a valid place for the allocation's address.
        check(
            unsafe { aclrtMalloc(&mut ptr, bytes, ACL_MEM_MALLOC_HUGE_FIRST) },
            "aclrtMalloc",
        )?;
        Ok(DeviceBuffer { ptr, bytes })
    }

    fn upload(&self, host: &[f32]) -> Result<(), String> {
        let bytes = std::mem::size_of_val(host);
        // SAFETY: the source is `bytes` readable bytes of `host`; the
        // destination is this allocation of `self.bytes` bytes, passed as
        // its capacity.
        check(
            unsafe {
                aclrtMemcpy(
                    self.ptr,
                    self.bytes,
                    host.as_ptr().cast(),
                    bytes,
                    ACL_MEMCPY_HOST_TO_DEVICE,
                )
            },
            "aclrtMemcpy (host to device)",
        )
    }

    fn download(&self, n: usize) -> Result<Vec<f32>, String> {
        let mut host = vec![0.0f32; n];
        let bytes = std::mem::size_of_val(host.as_slice());
        // SAFETY: the destination is `host`, `bytes` writable bytes, passed
        // as its capacity; the source is this allocation.
        check(
            unsafe {
                aclrtMemcpy(
                    host.as_mut_ptr().cast(),
                    bytes,
                    self.ptr,
                    bytes,
                    ACL_MEMCPY_DEVICE_TO_HOST,
                )
            },
            "aclrtMemcpy (device to host)",
        )?;
        Ok(host)
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from aclrtMalloc and is freed once, here.
        if let Err(e) = check(unsafe { aclrtFree(self.ptr) }, "aclrtFree") {
            eprintln!("{e}");
        }
    }
}

/// An f32 ND tensor descriptor over a device buffer, destroyed on drop.
struct Tensor(*mut AclTensor);

impl Tensor {
    fn new(buffer: &DeviceBuffer, shape: &[i64]) -> Result<Self, String> {
        let mut strides = vec![1i64; shape.len()];
        for i in (1..shape.len()).rev() {
            strides[i - 1] = strides[i] * shape[i];
        }
        // SAFETY: the shape and stride arrays hold `shape.len()` elements
        // each and outlive the call (the runtime copies them); the data
        // pointer is a live device allocation large enough for the shape.
        let desc = unsafe {
            aclCreateTensor(
                shape.as_ptr(),
                shape.len() as u64,
                ACL_FLOAT,
                strides.as_ptr(),
                0,
                ACL_FORMAT_ND,
                shape.as_ptr(),
                shape.len() as u64,
                buffer.ptr,
            )
        };
        if desc.is_null() {
            return Err("aclCreateTensor returned null".to_string());
        }
        Ok(Tensor(desc))
    }
}

impl Drop for Tensor {
    fn drop(&mut self) {
        // SAFETY: the descriptor came from aclCreateTensor and is destroyed
        // once, here.
        if let Err(e) = check(unsafe { aclDestroyTensor(self.0) }, "aclDestroyTensor") {
            eprintln!("{e}");
        }
    }
}

fn compare(what: &str, got: &[f32], want: &[f32]) -> Result<(), String> {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if (g - w).abs() > 1e-6 * (1.0 + w.abs()) {
            return Err(format!("{what}: element {i} is {g}, expected {w}"));
        }
    }
    println!("{what}: {} values match", want.len());
    Ok(())
}

/// The checks, with a device set and a stream made by `main`.
fn run(stream: AclrtStream) -> Result<(), String> {
    let shape = [3i64, 5];
    let n = 15;
    let x: Vec<f32> = (0..n).map(|i| i as f32 * 0.75 - 4.0).collect();
    let y: Vec<f32> = (0..n).map(|i| 2.0 - i as f32 * 0.5).collect();
    let bytes = n * std::mem::size_of::<f32>();

    // A round trip through two device buffers.
    let a = DeviceBuffer::new(bytes)?;
    let b = DeviceBuffer::new(bytes)?;
    a.upload(&x)?;
    // SAFETY: both are live device allocations of `bytes` bytes.
    check(
        unsafe { aclrtMemcpy(b.ptr, b.bytes, a.ptr, bytes, ACL_MEMCPY_DEVICE_TO_DEVICE) },
        "aclrtMemcpy (device to device)",
    )?;
    compare("device round trip", &b.download(n)?, &x)?;

    // out = x * y with aclnnMul.
    b.upload(&y)?;
    let out = DeviceBuffer::new(bytes)?;
    let (tx, ty, tout) = (
        Tensor::new(&a, &shape)?,
        Tensor::new(&b, &shape)?,
        Tensor::new(&out, &shape)?,
    );
    let mut workspace_size = 0u64;
    let mut executor = ptr::null_mut();
    // SAFETY: the descriptors are live; the two out-parameters are valid
    // places for the workspace size and the executor.
    check(
        unsafe { aclnnMulGetWorkspaceSize(tx.0, ty.0, tout.0, &mut workspace_size, &mut executor) },
        "aclnnMulGetWorkspaceSize",
    )?;
    let workspace = if workspace_size > 0 {
        Some(DeviceBuffer::new(workspace_size as usize)?)
    } else {
        None
    };
    let workspace_ptr = workspace.as_ref().map_or(ptr::null_mut(), |w| w.ptr);
    // SAFETY: the executor came from the GetWorkspaceSize call above and is
    // used once; the workspace (if any) has the size it asked for and lives
    // until after the stream is synchronised.
    check(
        unsafe { aclnnMul(workspace_ptr, workspace_size, executor, stream) },
        "aclnnMul",
    )?;
    // SAFETY: a live stream.
    check(
        unsafe { aclrtSynchronizeStream(stream) },
        "aclrtSynchronizeStream",
    )?;
    drop(workspace);
    let want: Vec<f32> = x.iter().zip(&y).map(|(a, b)| a * b).collect();
    compare("aclnnMul", &out.download(n)?, &want)
}

fn main() -> ExitCode {
    let result = (|| -> Result<(), String> {
        // SAFETY: a null configuration path is allowed.
        check(unsafe { aclInit(ptr::null()) }, "aclInit")?;
        let mut count = 0u32;
        // SAFETY: `count` is a valid place for the result.
        check(
            unsafe { aclrtGetDeviceCount(&mut count) },
            "aclrtGetDeviceCount",
        )?;
        // SAFETY: returns null or a NUL-terminated string owned by the runtime.
        let soc = unsafe { aclrtGetSocName() };
        let soc = if soc.is_null() {
            "(unknown)".to_string()
        } else {
            // SAFETY: non-null and NUL-terminated (see above); copied at once.
            unsafe { CStr::from_ptr(soc) }
                .to_string_lossy()
                .into_owned()
        };
        println!("devices: {count}, SoC: {soc}");
        // SAFETY: device 0 exists (count checked by the runtime).
        check(unsafe { aclrtSetDevice(0) }, "aclrtSetDevice")?;
        let mut stream = ptr::null_mut();
        // SAFETY: `stream` is a valid place for the new stream.
        check(
            unsafe { aclrtCreateStream(&mut stream) },
            "aclrtCreateStream",
        )?;
        let outcome = run(stream);
        // SAFETY: the stream was created above; run() is done with it.
        let destroyed = check(unsafe { aclrtDestroyStream(stream) }, "aclrtDestroyStream");
        // SAFETY: pairs the aclrtSetDevice(0) above.
        let reset = check(unsafe { aclrtResetDevice(0) }, "aclrtResetDevice");
        // SAFETY: pairs aclInit; nothing of the runtime is used afterwards.
        let finalized = check(unsafe { aclFinalize() }, "aclFinalize");
        outcome.and(destroyed).and(reset).and(finalized)
    })();
    match result {
        Ok(()) => {
            println!("cann-link-check: all checks passed");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            println!("cann-link-check: FAILED");
            ExitCode::FAILURE
        }
    }
}
