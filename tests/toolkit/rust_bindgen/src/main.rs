//! aclnnAdd through bindings that bindgen generated from the toolkit's
//! headers (see build.rs). Exits with status 1 when the result is wrong.

#[allow(
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    dead_code
)]
mod cann {
    include!(concat!(env!("OUT_DIR"), "/cann.rs"));
}

use std::ffi::{c_void, CStr};
use std::process::ExitCode;
use std::ptr;

/// An AscendCL failure: the call and the runtime's message.
fn check(rc: i32, call: &str) -> Result<(), String> {
    if rc == cann::ACL_SUCCESS as i32 {
        return Ok(());
    }
    // SAFETY: returns null or a NUL-terminated string owned by the runtime.
    let msg = unsafe { cann::aclGetRecentErrMsg() };
    let text = if msg.is_null() {
        "(no message)".to_string()
    } else {
        // SAFETY: non-null and NUL-terminated (see above); copied at once.
        unsafe { CStr::from_ptr(msg) }
            .to_string_lossy()
            .into_owned()
    };
    Err(format!("{call} failed with {rc}: {text}"))
}

/// Uploads `host` to new device memory with an ND f32 descriptor over it.
fn tensor(host: &[f32], shape: &[i64]) -> Result<(*mut c_void, *mut cann::aclTensor), String> {
    let bytes = std::mem::size_of_val(host);
    let mut data = ptr::null_mut();
    // SAFETY: `data` is a valid place for the allocation's address.
    check(
        unsafe { cann::aclrtMalloc(&mut data, bytes, cann::ACL_MEM_MALLOC_HUGE_FIRST) },
        "aclrtMalloc",
    )?;
    // SAFETY: `data` holds `bytes` bytes, the source `host` as many.
    check(
        unsafe {
            cann::aclrtMemcpy(
                data,
                bytes,
                host.as_ptr().cast(),
                bytes,
                cann::ACL_MEMCPY_HOST_TO_DEVICE,
            )
        },
        "aclrtMemcpy",
    )?;
    let strides = [shape[1], 1];
    // SAFETY: shape and strides hold 2 elements each (the runtime copies
    // them); `data` is large enough for the shape.
    let desc = unsafe {
        cann::aclCreateTensor(
            shape.as_ptr(),
            2,
            cann::ACL_FLOAT,
            strides.as_ptr(),
            0,
            cann::ACL_FORMAT_ND,
            shape.as_ptr(),
            2,
            data,
        )
    };
    if desc.is_null() {
        return Err("aclCreateTensor returned null".to_string());
    }
    Ok((data, desc))
}

fn run() -> Result<(), String> {
    let shape = [2i64, 4];
    let x: Vec<f32> = (0..8).map(|i| i as f32 - 3.5).collect();
    let y: Vec<f32> = (0..8).map(|i| 0.25 * i as f32).collect();
    let mut alpha_value = 3.0f32;
    let mut stream = ptr::null_mut();
    // SAFETY: `stream` is a valid place for the new stream (device 0 is set).
    check(
        unsafe { cann::aclrtCreateStream(&mut stream) },
        "aclrtCreateStream",
    )?;
    let (dx, tx) = tensor(&x, &shape)?;
    let (dy, ty) = tensor(&y, &shape)?;
    let (dout, tout) = tensor(&[0.0; 8], &shape)?;
    // SAFETY: the value outlives the call (the runtime copies it).
    let alpha =
        unsafe { cann::aclCreateScalar((&mut alpha_value as *mut f32).cast(), cann::ACL_FLOAT) };
    if alpha.is_null() {
        return Err("aclCreateScalar returned null".to_string());
    }
    let mut workspace_size = 0u64;
    let mut executor = ptr::null_mut();
    // SAFETY: live descriptors and scalar; valid out-parameters.
    check(
        unsafe {
            cann::aclnnAddGetWorkspaceSize(tx, ty, alpha, tout, &mut workspace_size, &mut executor)
        },
        "aclnnAddGetWorkspaceSize",
    )?;
    let mut workspace = ptr::null_mut();
    if workspace_size > 0 {
        // SAFETY: a valid place for the address.
        check(
            unsafe {
                cann::aclrtMalloc(
                    &mut workspace,
                    workspace_size as usize,
                    cann::ACL_MEM_MALLOC_HUGE_FIRST,
                )
            },
            "aclrtMalloc (workspace)",
        )?;
    }
    // SAFETY: the executor from the call above, used once; the workspace
    // has the size it asked for and lives until after the synchronisation.
    check(
        unsafe { cann::aclnnAdd(workspace, workspace_size, executor, stream) },
        "aclnnAdd",
    )?;
    // SAFETY: a live stream.
    check(
        unsafe { cann::aclrtSynchronizeStream(stream) },
        "aclrtSynchronizeStream",
    )?;
    let mut got = [0.0f32; 8];
    // SAFETY: `got` has room for the 32 bytes copied from `dout`.
    check(
        unsafe {
            cann::aclrtMemcpy(
                got.as_mut_ptr().cast(),
                32,
                dout,
                32,
                cann::ACL_MEMCPY_DEVICE_TO_HOST,
            )
        },
        "aclrtMemcpy (back)",
    )?;
    // SAFETY: each object was made above and is released once, here, after
    // the stream finished with it.
    unsafe {
        for desc in [tx, ty, tout] {
            check(cann::aclDestroyTensor(desc), "aclDestroyTensor")?;
        }
        check(cann::aclDestroyScalar(alpha), "aclDestroyScalar")?;
        for data in [dx, dy, dout, workspace] {
            if !data.is_null() {
                check(cann::aclrtFree(data), "aclrtFree")?;
            }
        }
        check(cann::aclrtDestroyStream(stream), "aclrtDestroyStream")?;
    }
    for i in 0..8 {
        let want = x[i] + alpha_value * y[i];
        if (got[i] - want).abs() > 1e-6 {
            return Err(format!(
                "aclnnAdd: element {i} is {}, expected {want}",
                got[i]
            ));
        }
    }
    println!("aclnnAdd (bindgen): 8 values match");
    Ok(())
}

fn main() -> ExitCode {
    // SAFETY: a null configuration path is allowed.
    let init = check(unsafe { cann::aclInit(ptr::null()) }, "aclInit");
    let result = init.and_then(|()| {
        // SAFETY: device 0 exists on any toolkit.
        check(unsafe { cann::aclrtSetDevice(0) }, "aclrtSetDevice")?;
        let outcome = run();
        // SAFETY: pairs the aclrtSetDevice above.
        let reset = check(unsafe { cann::aclrtResetDevice(0) }, "aclrtResetDevice");
        // SAFETY: pairs aclInit; nothing of the runtime is used afterwards.
        let finalized = check(unsafe { cann::aclFinalize() }, "aclFinalize");
        outcome.and(reset).and(finalized)
    });
    match result {
        Ok(()) => {
            println!("cann-bindgen-check: all checks passed");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            println!("cann-bindgen-check: FAILED");
            ExitCode::FAILURE
        }
    }
}
