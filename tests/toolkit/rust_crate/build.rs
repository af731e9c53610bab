//! Finds the CANN toolkit the way crates written for Ascend do: through the
//! environment that CANN's set_env.sh exports, with its libraries in
//! `$ASCEND_HOME_PATH/lib64`.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=ASCEND_HOME_PATH");
    println!("cargo:rerun-if-env-changed=ASCEND_TOOLKIT_HOME");
    let home = env::var_os("ASCEND_HOME_PATH")
        .or_else(|| env::var_os("ASCEND_TOOLKIT_HOME"))
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "CANN not found: source <toolkit>/set_env.sh first (ASCEND_HOME_PATH is not set)"
            )
        });
    let header = home.join("include").join("acl").join("acl.h");
    assert!(
        header.is_file(),
        "{} is missing: is ASCEND_HOME_PATH a CANN toolkit?",
        header.display()
    );
    let lib_dir = home.join("lib64");
    for lib in ["ascendcl", "nnopbase", "opapi"] {
        let file = lib_dir.join(format!("lib{lib}.so"));
        assert!(file.exists(), "{} is missing", file.display());
        println!("cargo:rustc-link-lib=dylib={lib}");
    }
    println!("cargo:rustc-link-search=native={}", lib_dir.display());
}
