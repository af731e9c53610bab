//! Generates the AscendCL and aclnnAdd bindings from the toolkit's own
//! headers with bindgen, the way many crates for CUDA-like runtimes do, and
//! links the toolkit's libraries from `$ASCEND_HOME_PATH/lib64`.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=ASCEND_HOME_PATH");
    let home = env::var_os("ASCEND_HOME_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "CANN not found: source <toolkit>/set_env.sh first (ASCEND_HOME_PATH is not set)"
            )
        });
    let include = home.join("include");
    let bindings = bindgen::Builder::default()
        .header_contents(
            "cann.h",
            "#include \"acl/acl.h\"\n#include \"aclnnop/aclnn_add.h\"\n",
        )
        .clang_arg(format!("-I{}", include.display()))
        .allowlist_function("acl.*")
        .allowlist_type("acl.*")
        .allowlist_var("ACL_.*")
        .default_enum_style(bindgen::EnumVariation::Consts)
        .prepend_enum_name(false)
        .generate()
        .unwrap_or_else(|e| panic!("bindgen over {}: {e}", include.display()));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR")).join("cann.rs");
    bindings.write_to_file(&out).expect("write the bindings");

    println!(
        "cargo:rustc-link-search=native={}",
        home.join("lib64").display()
    );
    for lib in ["ascendcl", "nnopbase", "opapi"] {
        println!("cargo:rustc-link-lib=dylib={lib}");
    }
}
