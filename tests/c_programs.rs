//! Plain C AscendCL programs (`tests/c/*.c`), built against our headers in
//! `ascend-sys/include` and linked to the mock device, run as a CANN user
//! would run them.
//!
//! The mock's shared library (`libascend_mock.so`, built by cargo next to
//! this test binary) is offered under CANN's library names (`libascendcl.so`,
//! `libnnopbase.so`, `libopapi.so`, `libhccl.so`) through symbolic links, so
//! each program links with the same `-lascendcl` flags it would use with
//! CANN. The C compiler is the one the `cc` crate finds (`CC` or `cc`).

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The longest a C program may run; one that hangs is killed with the
/// processes it started, and the test fails saying so.
const PROGRAM_LIMIT: Duration = Duration::from_secs(120);

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
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).expect("create the program directory");
    }
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
    let (status, stdout, stderr) = run_with(exe, &[]);
    (status.success(), stdout, stderr)
}

/// Run a built program with a clean mock configuration plus `env`; returns
/// its exit status, stdout and stderr.
fn run_with(exe: &Path, env: &[(&str, &str)]) -> (std::process::ExitStatus, String, String) {
    let mut cmd = Command::new(exe);
    for var in [
        "ASCEND_MOCK_DEVICES",
        "ASCEND_MOCK_MEMORY",
        "ASCEND_MOCK_SANITIZER",
        "ASCEND_MOCK_LEAKS",
        "ASCEND_MOCK_FAIL",
        "ASCEND_MOCK_FAIL_TASK",
        "ASCEND_MOCK_DEVICE_LOST",
        "ASCEND_MOCK_JITTER",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    // Its own process group, so that a hung program is killed together
    // with the ranks it started.
    cmd.process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run the C program");
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
        if let Some(status) = child.try_wait().expect("wait for the C program") {
            break status;
        }
        if start.elapsed() > PROGRAM_LIMIT {
            let group = format!("-{}", child.id());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = child.wait();
            panic!(
                "{} did not finish within {PROGRAM_LIMIT:?}; killed. stderr so far:\n{}",
                exe.display(),
                err.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status,
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
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
    assert!(stdout.contains("HcclReduce and HcclScatter"), "{stdout}");
}

/// How every sanitizer report starts on stderr (see ascend-mock's
/// `sanitizer::report`).
const REPORT_PREFIX: &str = "[ascend-mock sanitizer] ";

/// The report class a planted program is named after (`tests/c/planted/<class>.c`,
/// with underscores for the label's spaces and hyphens).
fn planted_class(stem: &str) -> Option<&'static str> {
    Some(match stem {
        "use_after_free" => "use-after-free",
        "double_free" => "double free",
        "invalid_free" => "invalid free",
        "out_of_bounds" => "out of bounds",
        "wrong_memory_kind" => "wrong memory kind",
        "race" => "race",
        "leak" => "leak",
        _ => return None,
    })
}

/// The planted programs: `tests/c/planted/*.c`, by stem, sorted.
fn planted_programs() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/planted");
    let mut stems: Vec<String> = std::fs::read_dir(&dir)
        .expect("tests/c/planted exists")
        .filter_map(|e| {
            let path = e.ok()?.path();
            (path.extension()? == "c").then(|| path.file_stem()?.to_str().map(String::from))?
        })
        .collect();
    stems.sort();
    stems
}

/// The first sanitizer report on `stderr`, without its prefix.
fn first_report(stderr: &str) -> Option<&str> {
    stderr.lines().find_map(|l| l.strip_prefix(REPORT_PREFIX))
}

/// Each planted program commits one bug of its class and exits 0 when the
/// offending call failed with a report of that class; the first report on
/// its stderr must be of that class too.
#[test]
fn c_planted_bugs_are_caught_with_their_class() {
    let programs = planted_programs();
    let mut caught = 0;
    let mut problems = Vec::new();
    for stem in &programs {
        let Some(class) = planted_class(stem) else {
            problems.push(format!(
                "planted/{stem}.c is not named after a report class"
            ));
            continue;
        };
        let exe = build(&format!("planted/{stem}"), &["ascendcl"]);
        let (status, stdout, stderr) = run_with(&exe, &[]);
        print!("planted/{stem}: {stdout}");
        let first = first_report(&stderr).unwrap_or("(no report)");
        let labelled = first
            .strip_prefix(class)
            .is_some_and(|rest| rest.starts_with(": "));
        if status.success() && labelled {
            caught += 1;
        } else {
            problems.push(format!(
                "planted/{stem}.c ({class}): exit {status}, first report: {first}\n{stderr}"
            ));
        }
    }
    println!("planted bugs caught: {caught} / {}", programs.len());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(caught >= 6, "only {caught} planted programs found");
}

/// With `ASCEND_MOCK_SANITIZER=abort`, the first report ends the process.
#[test]
fn c_planted_bug_aborts_in_abort_mode() {
    let exe = build("planted/use_after_free", &["ascendcl"]);
    let (status, stdout, stderr) = run_with(&exe, &[("ASCEND_MOCK_SANITIZER", "abort")]);
    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(
        status.signal(),
        Some(6),
        "expected SIGABRT, got {status}:\n{stdout}\n{stderr}"
    );
    assert!(
        first_report(&stderr).is_some_and(|r| r.starts_with("use-after-free: ")),
        "{stderr}"
    );
    assert!(
        stderr.contains("aborting (ASCEND_MOCK_SANITIZER=abort)"),
        "{stderr}"
    );
    // The program never reached its own verdict.
    assert!(!stdout.contains("returned"), "{stdout}");
}

/// With `ASCEND_MOCK_SANITIZER=off`, nothing is reported: the leak goes
/// unnoticed and the program says so (exit 2).
#[test]
fn c_planted_bug_is_not_reported_when_the_sanitizer_is_off() {
    let exe = build("planted/leak", &["ascendcl"]);
    let (status, stdout, stderr) = run_with(&exe, &[("ASCEND_MOCK_SANITIZER", "off")]);
    assert_eq!(status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(!stderr.contains(REPORT_PREFIX.trim_end()), "{stderr}");
    assert!(stdout.contains("returned 0"), "{stdout}");
}

#[test]
fn c_hccl_two_process_program_runs_on_the_mock() {
    let exe = build("hccl_mp", &["ascendcl", "hccl"]);
    let (ok, stdout, stderr) = run(&exe);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(ok, "the C program reported failures:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("2 processes (fork and exec)") && stdout.contains(", 0 failed"),
        "no summary line:\n{stdout}"
    );
}
