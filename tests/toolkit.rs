//! The mock as a drop-in CANN toolkit: `scripts/mock-toolkit` lays out a
//! directory shaped like a CANN install around the mock's cdylib, and
//! unmodified projects written for CANN build and run on it with nothing but
//! `source <root>/set_env.sh`.
//!
//! Each test makes its own root in a temporary directory (from the
//! `libascend_mock.so` cargo built next to this test binary), copies a
//! project of `tests/toolkit/` there, and builds and runs it in a clean
//! environment: `PATH` and `HOME` of this process (with `CARGO_HOME`,
//! `RUSTUP_HOME` and build flags when set), plus what `set_env.sh` adds. The projects are a
//! C program built by its Makefile, a C++ program built by CMake, and a Rust
//! crate whose build.rs finds the toolkit through `ASCEND_HOME_PATH`. Each checks its own results and exits non-zero on a
//! wrong one. A passing test removes its directory; a failing one leaves it
//! for inspection and prints where it is.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The longest one build-and-run script may take; past it the script is
/// killed with everything it started, and the test fails saying so.
const SCRIPT_LIMIT: Duration = Duration::from_secs(300);

/// The settings every test root is made with (not the defaults, so that the
/// programs' output shows they came through `set_env.sh`).
const DEVICES: &str = "3";
const SOC: &str = "Ascend910B4";

/// Every library name the root offers (scripts/mock-toolkit's list).
const LIBRARIES: [&str; 14] = [
    "ascendcl",
    "acl_rt",
    "acl_op_compiler",
    "acl_dvpp",
    "nnopbase",
    "opapi",
    "opapi_math",
    "opapi_nn",
    "opapi_cv",
    "opapi_transformer",
    "hccl",
    "runtime",
    "ascend_hal",
    "profapi",
];

/// How every report of the mock's sanitizer starts on stderr.
const SANITIZER_PREFIX: &str = "[ascend-mock sanitizer]";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The mock's cdylib that cargo built for this test binary.
fn mock_library() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let mock = exe
        .parent()
        .expect("test binary directory")
        .join("libascend_mock.so");
    assert!(
        mock.exists(),
        "the mock's cdylib is missing: {}",
        mock.display()
    );
    mock
}

/// A test's own directory under the system's temporary directory, removed
/// when the test passes and kept when it fails.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new(test: &str) -> Scratch {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "ascend-toolkit-{test}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("create the test's directory");
        Scratch { dir }
    }

    /// Makes a toolkit root at `<dir>/<name>` with the tool.
    fn make_root(&self, name: &str) -> PathBuf {
        let root = self.dir.join(name);
        let out = Command::new(repo().join("scripts/mock-toolkit"))
            .arg("--mock")
            .arg(mock_library())
            .args(["--devices", DEVICES, "--soc", SOC, "--memory", "4GiB"])
            .arg(&root)
            .output()
            .expect("run scripts/mock-toolkit");
        assert!(
            out.status.success(),
            "scripts/mock-toolkit failed: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        root
    }

    /// Copies `tests/toolkit/<project>` into the directory (so that its
    /// build leaves nothing in the source tree); returns the copy.
    fn copy_project(&self, project: &str) -> PathBuf {
        let from = repo().join("tests/toolkit").join(project);
        let to = self.dir.join(project);
        copy_tree(&from, &to);
        to
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("left for inspection: {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create a project directory");
    for entry in std::fs::read_dir(from).expect("read a project directory") {
        let entry = entry.expect("a directory entry");
        let path = entry.path();
        let name = entry.file_name();
        // A build or a lockfile left in the source tree by hand is not part
        // of the project.
        if name == "build" || name == "target" || name == "Cargo.lock" {
            continue;
        }
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&path, &to.join(&name));
        } else {
            std::fs::copy(&path, to.join(&name)).expect("copy a project file");
        }
    }
}

/// What a script printed, and how it ended.
struct Outcome {
    success: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn describe(&self) -> String {
        format!(
            "exit code {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `script` with bash in `dir`, in a clean environment: `PATH` and
/// `HOME` of this process (and `CARGO_HOME`, `RUSTUP_HOME` and the
/// [`build_settings`] when set) and, when `root` is given, what
/// `source <root>/set_env.sh` adds (sourced first).
fn clean_shell(root: Option<&Path>, dir: &Path, script: &str) -> Outcome {
    let mut full = String::from("set -euo pipefail\n");
    if let Some(root) = root {
        full.push_str(&format!("source {}\n", quote(&root.join("set_env.sh"))));
    }
    full.push_str(script);
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(full).current_dir(dir).env_clear();
    // CARGO_HOME and RUSTUP_HOME say where cargo and the toolchains are
    // when they are not under HOME; they are the machine's, not CANN's.
    for var in ["PATH", "HOME", "CARGO_HOME", "RUSTUP_HOME"] {
        if let Some(value) = std::env::var_os(var) {
            cmd.env(var, value);
        }
    }
    cmd.envs(build_settings());
    // Its own process group, so that a hung build is killed with all it
    // started.
    cmd.process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run bash");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let err = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for bash") {
            break status;
        }
        if start.elapsed() > SCRIPT_LIMIT {
            let group = format!("-{}", child.id());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = child.wait();
            panic!(
                "the script did not finish within {SCRIPT_LIMIT:?}; killed.\n{script}\nstderr so far:\n{}",
                err.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Outcome {
        success: status.success(),
        code: status.code(),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// `path` as one single-quoted shell word.
fn quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

/// The build and sanitizer settings of this process, passed on to the
/// projects' builds and runs: a user's environment for building, not
/// CANN's. Outside CI's AddressSanitizer step none is set. In that step
/// (see .ci/run) the mock is instrumented, so a program linked to it needs
/// ASan's runtime: `CFLAGS=-fsanitize=address` reaches the Makefile (and,
/// as `CXXFLAGS`, CMake), and `RUSTFLAGS` with `RUSTC_BOOTSTRAP` the Rust
/// crate, as for the workspace's own code.
fn build_settings() -> Vec<(String, String)> {
    let mut settings: Vec<(String, String)> = [
        "CFLAGS",
        "CXXFLAGS",
        "LDFLAGS",
        "RUSTFLAGS",
        "RUSTC_BOOTSTRAP",
        "ASAN_OPTIONS",
        "LSAN_OPTIONS",
    ]
    .into_iter()
    .filter_map(|var| Some((var.to_string(), std::env::var(var).ok()?)))
    .collect();
    let cflags = std::env::var("CFLAGS").unwrap_or_default();
    if cflags.contains("-fsanitize=address") && std::env::var_os("CXXFLAGS").is_none() {
        settings.push(("CXXFLAGS".to_string(), cflags));
    }
    settings
}

/// The checks every project's successful run must pass.
fn assert_passed(what: &str, outcome: &Outcome, summary: &str) {
    println!("{what}:\n{}", outcome.stdout);
    assert!(outcome.success, "{what} failed:\n{}", outcome.describe());
    assert!(
        outcome.stdout.contains(summary),
        "{what}: no '{summary}' line:\n{}",
        outcome.describe()
    );
    assert!(
        !outcome.stderr.contains(SANITIZER_PREFIX),
        "{what}: the mock's sanitizer reported:\n{}",
        outcome.stderr
    );
}

/// The root has CANN's files and layout, every library name is the one mock
/// file, and `set_env.sh` exports CANN's variables and the mock's settings
/// (in bash and in a plain POSIX sh).
#[test]
fn toolkit_root_is_laid_out_like_cann() {
    let scratch = Scratch::new("layout");
    let root = scratch.make_root("root");
    let arch = std::env::consts::ARCH;
    let plat = format!("{arch}-linux");

    for file in [
        "set_env.sh",
        "mock.env",
        "version.cfg",
        "runtime/version.info",
        "include/acl/acl.h",
        "include/acl/acl_rt.h",
        "include/aclnn/aclnn_base.h",
        "include/aclnn/acl_meta.h",
        "include/aclnnop/aclnn_add.h",
        "include/aclnn/aclnn_add.h",
        "include/hccl/hccl.h",
        "runtime/include/acl/acl.h",
        "acllib/include/acl/acl.h",
        "bin/npu-smi",
    ] {
        assert!(root.join(file).is_file(), "{file} is missing");
    }
    for dir in ["opp", "python/site-packages", "bin", "toolkit"] {
        assert!(root.join(dir).is_dir(), "{dir}/ is missing");
    }
    assert!(
        root.join(&plat).join("include/acl/acl.h").is_file(),
        "{plat}/include"
    );

    let info = std::fs::read_to_string(root.join(&plat).join("ascend_toolkit_install.info"))
        .expect("ascend_toolkit_install.info");
    for line in [
        "package_name=Ascend-cann-toolkit".to_string(),
        "version=8.0.0".to_string(),
        format!("arch={arch}"),
        "os=linux".to_string(),
        format!("path={}", root.join(&plat).display()),
    ] {
        assert!(info.lines().any(|l| l == line), "no {line} in:\n{info}");
    }
    let cfg = std::fs::read_to_string(root.join("version.cfg")).expect("version.cfg");
    assert!(
        cfg.lines()
            .any(|l| l.starts_with("runtime_running_version=[") && l.ends_with(":8.0.0]")),
        "{cfg}"
    );

    // One file under every name, in every library directory.
    let mock = std::fs::canonicalize(root.join("lib64/libascend_mock.so")).expect("the mock");
    for dir in [
        "lib64",
        "lib64/stub",
        "runtime/lib64",
        "runtime/lib64/stub",
        "acllib/lib64",
        &format!("{plat}/lib64"),
    ] {
        for lib in LIBRARIES {
            let path = root.join(dir).join(format!("lib{lib}.so"));
            let target =
                std::fs::canonicalize(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(target, mock, "{} is not the mock", path.display());
        }
    }
    assert_eq!(
        std::fs::canonicalize(root.join(&plat).join("devlib/libascend_hal.so")).expect("devlib"),
        mock
    );

    // What sourcing set_env.sh exports, from an empty environment.
    let vars = [
        "ASCEND_TOOLKIT_HOME",
        "ASCEND_HOME_PATH",
        "ASCEND_AICPU_PATH",
        "ASCEND_OPP_PATH",
        "TOOLCHAIN_HOME",
        "LD_LIBRARY_PATH",
        "PYTHONPATH",
        "ASCEND_MOCK_DEVICES",
        "ASCEND_MOCK_SOC",
        "ASCEND_MOCK_MEMORY",
        "LIBRARY_PATH",
        "CPATH",
        "C_INCLUDE_PATH",
    ];
    let print = vars
        .iter()
        .map(|v| format!("echo \"{v}=${{{v}-<unset>}}\""))
        .collect::<Vec<_>>()
        .join("\n");
    let r = root.display();
    let expected = [
        format!("ASCEND_TOOLKIT_HOME={r}"),
        format!("ASCEND_HOME_PATH={r}"),
        format!("ASCEND_AICPU_PATH={r}"),
        format!("ASCEND_OPP_PATH={r}/opp"),
        format!("TOOLCHAIN_HOME={r}/toolkit"),
        format!("LD_LIBRARY_PATH={r}/lib64"),
        format!("PYTHONPATH={r}/python/site-packages"),
        format!("ASCEND_MOCK_DEVICES={DEVICES}"),
        format!("ASCEND_MOCK_SOC={SOC}"),
        "ASCEND_MOCK_MEMORY=4GiB".to_string(),
        // CANN's set_env.sh sets none of these; a project must say where
        // the headers and libraries are, as it must with CANN.
        "LIBRARY_PATH=<unset>".to_string(),
        "CPATH=<unset>".to_string(),
        "C_INCLUDE_PATH=<unset>".to_string(),
    ];
    let bash = clean_shell(
        Some(&root),
        &scratch.dir,
        &format!("{print}\necho \"PATH=$PATH\""),
    );
    assert!(bash.success, "{}", bash.describe());
    for line in &expected {
        assert!(
            bash.stdout.lines().any(|l| l == line),
            "bash: no {line}:\n{}",
            bash.stdout
        );
    }
    assert!(
        bash.stdout
            .lines()
            .any(|l| l.starts_with(&format!("PATH={r}/bin:"))),
        "{}",
        bash.stdout
    );
    // The root's npu-smi describes the mock's devices; the name column of
    // the first device row is where build files read the SoC from.
    let smi = clean_shell(
        Some(&root),
        &scratch.dir,
        "npu-smi info | awk 'NF > 0 && NR == 7 {print \"Ascend\" $3}'\n\
         npu-smi info | grep -c '| OK '\n\
         npu-smi info -m | tail -n 1",
    );
    assert!(smi.success, "{}", smi.describe());
    let smi_lines: Vec<&str> = smi.stdout.lines().collect();
    assert_eq!(smi_lines.first(), Some(&SOC), "{}", smi.stdout);
    assert_eq!(smi_lines.get(1), Some(&DEVICES), "{}", smi.stdout);
    assert!(
        smi_lines
            .get(2)
            .is_some_and(|l| l.starts_with('2') && l.ends_with("Ascend 910B4")),
        "{}",
        smi.stdout
    );
    assert!(
        !clean_shell(Some(&root), &scratch.dir, "npu-smi set -t reset").success,
        "npu-smi accepted a command it does not implement"
    );

    // A plain POSIX sh sources it too, with variables already set kept
    // after CANN's own entries.
    let sh = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "LD_LIBRARY_PATH=/opt/other; . {}\n{print}",
            quote(&root.join("set_env.sh"))
        ))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .expect("run sh");
    let sh_out = String::from_utf8_lossy(&sh.stdout);
    assert!(
        sh.status.success(),
        "{sh_out}\n{}",
        String::from_utf8_lossy(&sh.stderr)
    );
    assert!(
        sh_out
            .lines()
            .any(|l| l == format!("LD_LIBRARY_PATH={r}/lib64:/opt/other")),
        "{sh_out}"
    );
    assert!(
        sh_out
            .lines()
            .any(|l| l == format!("ASCEND_MOCK_SOC={SOC}")),
        "{sh_out}"
    );
}

/// The tool replaces a root it made, and refuses a directory it did not make.
#[test]
fn toolkit_tool_replaces_its_root_and_refuses_others() {
    let scratch = Scratch::new("replace");
    let root = scratch.make_root("root");
    std::fs::write(root.join("stale-file"), "left from before").expect("write");
    let again = scratch.make_root("root");
    assert_eq!(again, root);
    assert!(!root.join("stale-file").exists(), "the old root was kept");
    assert!(root.join("set_env.sh").is_file());

    let foreign = scratch.dir.join("foreign");
    std::fs::create_dir_all(&foreign).expect("mkdir");
    std::fs::write(foreign.join("precious"), "not ours").expect("write");
    let out = Command::new(repo().join("scripts/mock-toolkit"))
        .arg("--mock")
        .arg(mock_library())
        .arg(&foreign)
        .output()
        .expect("run scripts/mock-toolkit");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refusing to replace it"),
        "{out:?}"
    );
    assert!(
        foreign.join("precious").is_file(),
        "a foreign file was removed"
    );

    let bad = Command::new(repo().join("scripts/mock-toolkit"))
        .args(["--devices", "two"])
        .arg(scratch.dir.join("other"))
        .output()
        .expect("run scripts/mock-toolkit");
    assert_eq!(bad.status.code(), Some(1), "{bad:?}");
}

/// A C program built by its own Makefile from `$ASCEND_TOOLKIT_HOME`
/// (runtime/include, runtime/lib64/stub, -lascendcl): device memory round
/// trips and asynchronous copies ordered by an event. With a fault injected
/// into one copy, its own checks fail it.
#[test]
fn makefile_c_program_builds_and_runs_on_the_toolkit() {
    let scratch = Scratch::new("make");
    let root = scratch.make_root("root");
    let project = scratch.copy_project("make_c");
    let build = clean_shell(Some(&root), &project, "make");
    assert!(build.success, "make failed:\n{}", build.describe());

    let run = clean_shell(Some(&root), &project, "./build/copy_check");
    assert_passed("copy_check", &run, "copy_check: all checks passed");
    assert!(
        run.stdout
            .contains(&format!("devices: {DEVICES}, SoC: {SOC}")),
        "the mock settings of the root did not reach the program:\n{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("asynchronous copies ordered by an event: 4096 values match")
    );

    // The program's checks can fail: the third aclrtMemcpy (the copy back
    // of the round trip) fails, and the program says so and exits 1.
    let broken = clean_shell(
        Some(&root),
        &project,
        "export ASCEND_MOCK_FAIL=aclrtMemcpy:3:207001\n./build/copy_check",
    );
    assert_eq!(broken.code, Some(1), "{}", broken.describe());
    assert!(
        broken.stdout.contains("copy_check: FAILED"),
        "{}",
        broken.describe()
    );
    assert!(
        broken.stderr.contains("aclrtMemcpy"),
        "{}",
        broken.describe()
    );
}

/// A C++ program built by CMake from `$ENV{ASCEND_HOME_PATH}` (include,
/// include/aclnn, include/aclnnop, lib64; ascendcl nnopbase opapi hccl):
/// aclnnAdd and aclnnMul with tensor descriptors, and an HCCL all-reduce
/// over two devices, each checked against host values.
#[test]
fn cmake_cpp_project_builds_and_runs_on_the_toolkit() {
    let found = Command::new("cmake").arg("--version").output();
    assert!(
        found.as_ref().is_ok_and(|o| o.status.success()),
        "this test builds a CMake project and needs cmake on PATH, which is missing \
         (install it: apt-get install cmake; .ci/run does): {found:?}"
    );
    let scratch = Scratch::new("cmake");
    let root = scratch.make_root("root");
    let project = scratch.copy_project("cmake_cpp");
    let build = clean_shell(
        Some(&root),
        &project,
        "cmake -S . -B build -DCMAKE_BUILD_TYPE=Release\ncmake --build build -j 2",
    );
    assert!(
        build.success,
        "the CMake build failed:\n{}",
        build.describe()
    );
    assert!(
        build
            .stdout
            .contains(&format!("CANN toolkit: {}", root.display())),
        "{}",
        build.stdout
    );
    // CMakeLists.txt reads the SoC from `npu-smi info`, the root's.
    assert!(
        build.stdout.contains(&format!("SoC: {SOC}")),
        "{}",
        build.stdout
    );

    let run = clean_shell(Some(&root), &project, "./build/aclnn_hccl_check");
    assert_passed(
        "aclnn_hccl_check",
        &run,
        "aclnn_hccl_check: all checks passed",
    );
    for line in [
        "devices: 3, SoC: Ascend910B4 (built for Ascend910B4)",
        "aclnnAdd (x + 2 * y): 32 values match",
        "aclnnMul ((x + 2 * y) * y): 32 values match",
        "HcclAllReduce (sum) on rank 0: 256 values match",
        "HcclAllReduce (sum) on rank 1: 256 values match",
    ] {
        assert!(run.stdout.contains(line), "no '{line}':\n{}", run.stdout);
    }
}

/// A Rust crate whose build.rs finds CANN through `ASCEND_HOME_PATH` and
/// links `-lascendcl -lnnopbase -lopapi` from its lib64: builds only with
/// set_env.sh sourced, and its program checks a round trip and aclnnMul.
#[test]
fn rust_crate_with_build_script_builds_and_runs_on_the_toolkit() {
    let scratch = Scratch::new("rust");
    let root = scratch.make_root("root");
    let project = scratch.copy_project("rust_crate");

    // Without the toolkit's environment, its build script says what is missing.
    let without = clean_shell(None, &project, "cargo build --quiet");
    assert!(
        !without.success,
        "built without CANN:\n{}",
        without.describe()
    );
    assert!(
        without
            .stderr
            .contains("CANN not found: source <toolkit>/set_env.sh"),
        "{}",
        without.describe()
    );

    let build = clean_shell(Some(&root), &project, "cargo build --quiet");
    assert!(build.success, "cargo build failed:\n{}", build.describe());
    let run = clean_shell(Some(&root), &project, "./target/debug/cann-link-check");
    assert_passed(
        "cann-link-check",
        &run,
        "cann-link-check: all checks passed",
    );
    for line in [
        format!("devices: {DEVICES}, SoC: {SOC}"),
        "device round trip: 15 values match".to_string(),
        "aclnnMul: 15 values match".to_string(),
    ] {
        assert!(run.stdout.contains(&line), "no '{line}':\n{}", run.stdout);
    }
}

/// A Rust crate whose build.rs generates its bindings with bindgen from
/// `$ASCEND_HOME_PATH/include` (the root's headers) and links from its
/// lib64; its program checks aclnnAdd. Ignored by default: compiling
/// bindgen and its dependencies in a fresh target directory takes minutes
/// on a small machine. Run it with
/// `cargo test -p ascend --test toolkit -- --ignored`.
#[test]
#[ignore = "compiles bindgen; run with --ignored"]
fn rust_crate_with_bindgen_builds_and_runs_on_the_toolkit() {
    let scratch = Scratch::new("bindgen");
    let root = scratch.make_root("root");
    let project = scratch.copy_project("rust_bindgen");
    let build = clean_shell(Some(&root), &project, "cargo build --quiet");
    assert!(build.success, "cargo build failed:\n{}", build.describe());
    let run = clean_shell(Some(&root), &project, "./target/debug/cann-bindgen-check");
    assert_passed(
        "cann-bindgen-check",
        &run,
        "cann-bindgen-check: all checks passed",
    );
    assert!(
        run.stdout.contains("aclnnAdd (bindgen): 8 values match"),
        "{}",
        run.stdout
    );
}
