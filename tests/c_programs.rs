//! Plain C AscendCL programs (`tests/c/*.c`), built against our headers in
//! `ascend-sys/include` and linked to the mock device, run as a CANN user
//! would run them.
//!
//! The mock's shared library (`libascend_mock.so`, built by cargo next to
//! this test binary) is offered under CANN's library names (`libascendcl.so`,
//! `libnnopbase.so`, `libopapi.so`, `libhccl.so`) through symbolic links, so
//! each program links with the same `-lascendcl` flags it would use with
//! CANN. The C compiler is the one the `cc` crate finds (`CC` or `cc`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Directory holding this test binary and the cdylibs of its dependencies.
fn deps_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent().expect("test binary directory").to_path_buf()
}

/// A directory with CANN's library names pointing at the mock's cdylib.
/// Made once per test process: the tests run in parallel, and re-creating
/// the links while another program loads them would race.
fn mock_lib_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(make_mock_lib_dir).clone()
}

fn make_mock_lib_dir() -> PathBuf {
    let deps = deps_dir();
    let mock = deps.join("libascend_mock.so");
    assert!(
        mock.exists(),
        "the mock's cdylib is missing: {}",
        mock.display()
    );
    let dir = deps.join("c-programs").join("lib");
    std::fs::create_dir_all(&dir).expect("create the library directory");
    for name in [
        "libascendcl.so",
        "libnnopbase.so",
        "libopapi.so",
        "libhccl.so",
    ] {
        let link = dir.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&mock, &link).expect("link the mock under a CANN name");
    }
    dir
}

fn compiler() -> cc::Tool {
    let target = "x86_64-unknown-linux-gnu";
    cc::Build::new()
        .target(target)
        .host(target)
        .opt_level(1)
        .cargo_metadata(false)
        .try_get_compiler()
        .expect("a C compiler (set CC or install gcc)")
}

/// Compile `tests/c/<name>.c` and link it to the mock; returns the executable.
fn build(name: &str, libs: &[&str]) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let source = root.join("tests").join("c").join(format!("{name}.c"));
    let lib_dir = mock_lib_dir();
    let out = deps_dir().join("c-programs").join(name);
    let tool = compiler();
    let mut cmd = tool.to_command();
    cmd.arg("-std=c11")
        .args(["-Wall", "-Wextra", "-Werror"])
        .arg(format!(
            "-I{}",
            root.join("ascend-sys").join("include").display()
        ))
        .arg(&source)
        .arg("-o")
        .arg(&out)
        .arg(format!("-L{}", lib_dir.display()))
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()));
    for lib in libs {
        cmd.arg(format!("-l{lib}"));
    }
    let status = cmd.status().expect("run the C compiler");
    assert!(status.success(), "compiling {} failed", source.display());
    out
}

/// Run a built program with a clean mock configuration; returns its stdout.
fn run(exe: &Path) -> (bool, String, String) {
    let output = Command::new(exe)
        .env_remove("ASCEND_MOCK_DEVICES")
        .env_remove("ASCEND_MOCK_MEMORY")
        .output()
        .expect("run the C program");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn c_runtime_program_runs_on_the_mock() {
    let exe = build("runtime", &["ascendcl"]);
    let (ok, stdout, stderr) = run(&exe);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(ok, "the C program reported failures:\n{stdout}\n{stderr}");
    assert!(stdout.contains(", 0 failed"), "no summary line:\n{stdout}");
}

#[test]
fn c_aclnn_program_runs_on_the_mock() {
    let exe = build("aclnn", &["ascendcl", "nnopbase", "opapi", "m"]);
    let (ok, stdout, stderr) = run(&exe);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(ok, "the C program reported failures:\n{stdout}\n{stderr}");
    assert!(stdout.contains(", 0 failed"), "no summary line:\n{stdout}");
    assert!(stdout.contains("aclnnMoeGatingTopKSoftmax"), "{stdout}");
}

#[test]
fn c_hccl_program_runs_on_the_mock() {
    let exe = build("hccl", &["ascendcl", "hccl"]);
    let (ok, stdout, stderr) = run(&exe);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(ok, "the C program reported failures:\n{stdout}\n{stderr}");
    assert!(stdout.contains(", 0 failed"), "no summary line:\n{stdout}");
    assert!(stdout.contains("HcclAlltoAllV"), "{stdout}");
}
