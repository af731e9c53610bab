//! The automatic backend choice and `ASCEND_RT_BACKEND`. Each case runs this
//! test binary again as a child process (the choice is made once per
//! process), with the variable set and no CANN search path in the
//! environment.
#![cfg(feature = "mock")]

use std::process::Command;

const CHILD: &str = "ASCEND_RT_TEST_CHILD";

/// Runs `child_process` in a fresh process with `ASCEND_RT_BACKEND=value`.
fn run_child(value: &str) -> (bool, String, String) {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([
            "--exact",
            "child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, value)
        .env("ASCEND_RT_BACKEND", value)
        .env_remove("ASCEND_HOME_PATH")
        .env_remove("ASCEND_TOOLKIT_HOME")
        .env_remove("ASCEND_CUSTOM_PATH")
        .env_remove("ASCEND_SYS_LIB_DIR")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The child's side: does what `ASCEND_RT_TEST_CHILD` says, checking as it
/// goes. Does nothing when run as an ordinary test.
#[test]
fn child_process() {
    let Ok(mode) = std::env::var(CHILD) else {
        return;
    };
    match mode.as_str() {
        "auto" => {
            let api = ascend_rt::api().expect("auto falls back to the mock");
            assert_eq!(api.origin(), "ascend-mock");
            assert!(ascend_rt::is_mock());
            let notice = ascend_rt::backend_notice().expect("a notice was given");
            assert!(notice.contains("libascendcl.so"), "{notice}");
            // The mock works.
            let ctx = ascend_rt::Context::new(0).unwrap();
            let b = ascend_rt::DeviceBuffer::from_host(&ctx, &[3i8, -4]).unwrap();
            assert_eq!(b.to_vec().unwrap(), [3, -4]);
            println!("CHILD-OK auto");
        }
        "cann" => {
            let err = ascend_rt::api().expect_err("no CANN is installed here");
            match &err {
                ascend_rt::Error::Load(ascend_sys::LoadError::LibraryNotFound {
                    library,
                    tried,
                }) => {
                    assert_eq!(*library, "libascendcl.so");
                    assert!(tried.len() >= 3, "{tried:?}");
                }
                other => panic!("expected a load error, got {other}"),
            }
            assert_eq!(ascend_rt::backend_kind(), None);
            println!("CHILD-OK cann: {err}");
        }
        "mock" => {
            ascend_rt::api().unwrap();
            assert!(ascend_rt::is_mock());
            assert_eq!(ascend_rt::backend_notice(), None);
            println!("CHILD-OK mock");
        }
        path if path.ends_with(".so") => {
            let api = ascend_rt::api().expect("the library loads");
            assert_eq!(api.origin(), path);
            assert_eq!(
                ascend_rt::backend_kind(),
                Some(ascend_rt::BackendKind::Library(path.into()))
            );
            let ctx = ascend_rt::Context::new(0).unwrap();
            let s = ctx.new_stream().unwrap();
            let a = ascend_rt::DeviceBuffer::from_host(&ctx, &[1.25f32, -2.5]).unwrap();
            let mut b = ascend_rt::DeviceBuffer::<f32>::zeroed(&ctx, 2).unwrap();
            b.copy_from(&a, &s).unwrap();
            assert_eq!(b.to_vec().unwrap(), [1.25, -2.5]);
            println!("CHILD-OK library");
        }
        "nonsense" => {
            let err = ascend_rt::api().expect_err("not a backend");
            assert!(
                matches!(err, ascend_rt::Error::InvalidBackendSetting { .. }),
                "{err}"
            );
            println!("CHILD-OK nonsense: {err}");
        }
        other => panic!("unknown child mode {other}"),
    }
}

#[test]
fn auto_picks_the_mock_and_says_so() {
    let (ok, stdout, stderr) = run_child("auto");
    assert!(ok, "child failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("CHILD-OK auto"), "{stdout}");
    let notice = stderr
        .lines()
        .find(|l| l.starts_with("ascend-rt: CANN not found, using the CPU mock device"))
        .unwrap_or_else(|| panic!("no notice on stderr:\n{stderr}"));
    assert!(
        notice.contains("/usr/local/Ascend/cann/lib64/libascendcl.so"),
        "{notice}"
    );
}

#[test]
fn cann_without_cann_fails_listing_the_paths_tried() {
    let (ok, stdout, stderr) = run_child("cann");
    assert!(ok, "child failed:\n{stdout}\n{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.contains("CHILD-OK cann: "))
        .unwrap_or_else(|| panic!("{stdout}"));
    for path in [
        "/usr/local/Ascend/cann/lib64/libascendcl.so",
        "/usr/local/Ascend/ascend-toolkit/latest/lib64/libascendcl.so",
    ] {
        assert!(line.contains(path), "{path} missing from: {line}");
    }
    assert!(!stderr.contains("using the CPU mock device"), "{stderr}");
}

#[test]
fn mock_is_chosen_without_a_notice() {
    let (ok, stdout, stderr) = run_child("mock");
    assert!(ok && stdout.contains("CHILD-OK mock"), "{stdout}\n{stderr}");
    assert!(!stderr.contains("CANN not found"), "{stderr}");
}

#[test]
fn a_bad_setting_is_rejected() {
    let (ok, stdout, stderr) = run_child("nonsense");
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("ASCEND_RT_BACKEND"), "{stdout}");
}

/// The mock's C shared library, loaded by path like any other AscendCL
/// library. Cargo builds it next to the test binaries (the mock crate is
/// also a `cdylib`).
#[test]
fn a_library_path_is_loaded_as_the_backend() {
    // Cargo leaves the cdylib of a dependency next to the test binaries
    // (`deps/`), and uplifts it one level up when the crate itself is built.
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    let lib = [
        deps.join("libascend_mock.so"),
        deps.parent().unwrap().join("libascend_mock.so"),
    ]
    .into_iter()
    .find(|p| p.exists())
    .unwrap_or_else(|| panic!("libascend_mock.so was not built next to {}", deps.display()));
    let (ok, stdout, stderr) = run_child(lib.to_str().unwrap());
    assert!(
        ok && stdout.contains("CHILD-OK library"),
        "{stdout}\n{stderr}"
    );
}
