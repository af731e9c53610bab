//! Build script of `ascend-sys`.
//!
//! Without the `bindgen` feature it only exports the path of our headers
//! (`DEP_ASCENDCL_DECLS_INCLUDE` for dependents that compile C against them);
//! the committed bindings in `src/generated/` are used and neither CANN nor
//! libclang is needed.
//!
//! With the `bindgen` feature it regenerates the bindings into `OUT_DIR`:
//! - from our headers (`include/`), or from a CANN toolkit's headers when
//!   `ASCEND_HOME_PATH` or `ASCEND_TOOLKIT_HOME` points at one (and
//!   `ASCEND_SYS_BUNDLED_HEADERS` is not set);
//! - `ASCEND_SYS_WRITE_BINDINGS=<dir>` also writes the result there
//!   (`scripts/regen-bindings` uses it to refresh `src/generated/`);
//! - `ASCEND_SYS_ABI_REPORT=<file>` compares every function signature and
//!   constant we declare with the toolkit's and writes the differences there
//!   (`scripts/check-abi`).
//!
//! This file holds the only copy of the bindgen options.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let manifest = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let include = manifest.join("include");
    println!("cargo:include={}", include.display());
    #[cfg(feature = "bindgen")]
    generate::run(&include);
}

#[cfg(feature = "bindgen")]
mod generate {
    use std::collections::{BTreeMap, BTreeSet};
    use std::fmt::Write as _;
    use std::path::{Path, PathBuf};

    use bindgen::callbacks::{IntKind, ParseCallbacks};
    use quote::{ToTokens, quote};

    /// The libraries and the header directory that declares each one's functions.
    const LIBRARIES: &[(&str, &str, &str)] = &[
        // (table type, module name, header directory)
        ("AscendCl", "ascendcl", "acl"),
        ("NnOpBase", "nnopbase", "aclnn"),
        ("OpApi", "opapi", "aclnnop"),
        ("Hccl", "hccl", "hccl"),
    ];

    /// Types given to `#define` integer constants: flag words are unsigned
    /// (the C calls take `uint32_t`), every error code is an `aclError`/`aclnnStatus` (`int`).
    #[derive(Debug)]
    struct MacroTypes;

    impl ParseCallbacks for MacroTypes {
        fn int_macro(&self, name: &str, _value: i64) -> Option<IntKind> {
            let unsigned = [
                "ACL_STREAM_",
                "ACL_EVENT_",
                "ACL_CONTINUE_ON_FAILURE",
                "ACL_STOP_ON_FAILURE",
            ];
            if unsigned.iter().any(|p| name.starts_with(p)) {
                Some(IntKind::U32)
            } else if name.ends_with("_SIZE")
                || name.ends_with("_BYTES")
                || name.ends_with("_LENGTH")
            {
                Some(IntKind::Custom {
                    name: "usize",
                    is_signed: false,
                })
            } else {
                Some(IntKind::I32)
            }
        }
    }

    /// Where headers come from, and how clang must read them.
    struct HeaderSet {
        root: PathBuf,
        cplusplus: bool,
        ops: Vec<String>,
    }

    /// What one bindgen pass produced, taken apart.
    struct Parsed {
        types: String,
        /// library module -> (function name -> signature tokens as text)
        functions: BTreeMap<&'static str, BTreeMap<String, syn::ForeignItemFn>>,
        constants: BTreeMap<String, String>,
    }

    pub fn run(bundled: &Path) {
        for var in [
            "ASCEND_HOME_PATH",
            "ASCEND_TOOLKIT_HOME",
            "ASCEND_SYS_BUNDLED_HEADERS",
            "ASCEND_SYS_WRITE_BINDINGS",
            "ASCEND_SYS_ABI_REPORT",
        ] {
            println!("cargo:rerun-if-env-changed={var}");
        }
        println!("cargo:rerun-if-changed={}", bundled.display());

        let ours = HeaderSet {
            root: bundled.to_path_buf(),
            cplusplus: false,
            ops: op_headers(bundled),
        };
        let ours_parsed = parse(&ours, None);

        let toolkit = std::env::var_os("ASCEND_SYS_BUNDLED_HEADERS")
            .is_none()
            .then(toolkit_include)
            .flatten();
        let (types, functions) = match &toolkit {
            Some(root) => {
                println!(
                    "cargo:warning=ascend-sys: generating bindings from {}",
                    root.display()
                );
                let theirs = HeaderSet {
                    root: root.clone(),
                    cplusplus: true,
                    ops: ours
                        .ops
                        .iter()
                        .filter(|h| root.join("aclnnop").join(h).exists())
                        .cloned()
                        .collect(),
                };
                let theirs_parsed = parse(&theirs, Some(&ours_parsed));
                if let Some(report) = std::env::var_os("ASCEND_SYS_ABI_REPORT") {
                    let text = compare(&ours_parsed, &theirs_parsed, root);
                    std::fs::write(&report, text).expect("write the ABI report");
                }
                // A function our headers declare but the toolkit lacks (it is
                // newer than the toolkit) keeps our declaration, so that one
                // build serves every release: its table entry then finds no
                // symbol and the call fails with a missing-symbol error at run
                // time. The types and constants such declarations need, which
                // the toolkit lacks too, come from our headers.
                let mut functions = theirs_parsed.functions;
                let mut newer = 0usize;
                for (lib, fns) in &ours_parsed.functions {
                    let entry = functions.entry(lib).or_default();
                    for (name, f) in fns {
                        if !entry.contains_key(name) {
                            newer += 1;
                            entry.insert(name.clone(), f.clone());
                        }
                    }
                }
                if newer > 0 {
                    println!(
                        "cargo:warning=ascend-sys: {newer} functions we declare are newer than the toolkit; \
                         they are kept and report a missing symbol when called"
                    );
                }
                let types = merge_types(&theirs_parsed.types, &ours_parsed.types);
                (types, functions)
            }
            None => {
                if let Some(report) = std::env::var_os("ASCEND_SYS_ABI_REPORT") {
                    std::fs::write(
                        &report,
                        "no CANN toolkit found: set ASCEND_HOME_PATH or ASCEND_TOOLKIT_HOME to compare\n",
                    )
                    .expect("write the ABI report");
                }
                (ours_parsed.types, ours_parsed.functions)
            }
        };

        let pfn = render_functions(&functions);
        let codes = render_codes(&constants(&types));
        let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
        let mut dirs = vec![out];
        if let Some(dir) = std::env::var_os("ASCEND_SYS_WRITE_BINDINGS") {
            dirs.push(PathBuf::from(dir));
        }
        for dir in dirs {
            std::fs::write(dir.join("types.rs"), &types).expect("write types.rs");
            std::fs::write(dir.join("pfn.rs"), &pfn).expect("write pfn.rs");
            std::fs::write(dir.join("codes.rs"), &codes).expect("write codes.rs");
        }
    }

    /// `<toolkit>/include` from the usual CANN environment variables.
    fn toolkit_include() -> Option<PathBuf> {
        ["ASCEND_HOME_PATH", "ASCEND_TOOLKIT_HOME"]
            .iter()
            .filter_map(std::env::var_os)
            .map(|root| PathBuf::from(root).join("include"))
            .find(|inc| inc.join("acl").join("acl.h").exists())
    }

    /// The operator headers we declare, by file name, sorted.
    fn op_headers(root: &Path) -> Vec<String> {
        let mut ops: Vec<String> = std::fs::read_dir(root.join("aclnnop"))
            .expect("read include/aclnnop")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".h"))
            .collect();
        ops.sort();
        ops
    }

    fn builder(set: &HeaderSet) -> bindgen::Builder {
        let mut wrapper = String::from("#include \"acl/acl.h\"\n#include \"aclnn/aclnn_base.h\"\n");
        for op in &set.ops {
            let _ = writeln!(wrapper, "#include \"aclnnop/{op}\"");
        }
        wrapper.push_str("#include \"hccl/hccl.h\"\n");
        let lang: &[&str] = if set.cplusplus {
            &["-x", "c++", "-std=c++17"]
        } else {
            &["-x", "c", "-std=c11"]
        };
        bindgen::Builder::default()
            .header_contents("ascend_sys_wrapper.h", &wrapper)
            .clang_arg(format!("-I{}", set.root.display()))
            .clang_args(lang)
            .default_enum_style(bindgen::EnumVariation::Consts)
            .prepend_enum_name(false)
            .parse_callbacks(Box::new(MacroTypes))
            .derive_default(true)
            .derive_debug(true)
            .derive_copy(true)
            .layout_tests(true)
            .generate_comments(false)
            .use_core()
            .formatter(bindgen::Formatter::Prettyplease)
    }

    fn file_regex(root: &Path, dir: &str) -> String {
        format!("{}/{dir}/.*", regex_escape(&root.display().to_string()))
    }

    fn regex_escape(s: &str) -> String {
        let mut out = String::new();
        for c in s.chars() {
            if "\\.+*?()|[]{}^$".contains(c) {
                out.push('\\');
            }
            out.push(c);
        }
        out
    }

    /// Run bindgen over one header set. With `only`, restrict the output to
    /// the functions, types and constants that our own headers declare.
    fn parse(set: &HeaderSet, only: Option<&Parsed>) -> Parsed {
        // Types and constants, from every header we use.
        let mut b = builder(set).ignore_functions();
        match only {
            None => {
                for (_, _, dir) in LIBRARIES {
                    b = b.allowlist_file(file_regex(&set.root, dir));
                }
            }
            Some(ours) => {
                for item in type_names(&ours.types) {
                    b = b.allowlist_type(format!("^{item}$"));
                }
                for name in ours.constants.keys() {
                    b = b.allowlist_var(format!("^{name}$"));
                }
            }
        }
        let types = annotate_zeroed_defaults(&b.generate().expect("bindgen: types").to_string());
        let constants = constants(&types);

        // Functions, one pass per library so that each lands in its table.
        let mut functions = BTreeMap::new();
        for (_, module, dir) in LIBRARIES {
            let mut b = builder(set)
                .allowlist_file(file_regex(&set.root, dir))
                .blocklist_type(".*");
            if let Some(ours) = only {
                // With a toolkit, keep to our functions (any header may hold them).
                b = builder(set).blocklist_type(".*");
                for name in ours
                    .functions
                    .get(module)
                    .into_iter()
                    .flat_map(|m| m.keys())
                {
                    b = b.allowlist_function(format!("^{name}$"));
                }
            }
            let code = b.generate().expect("bindgen: functions").to_string();
            functions.insert(*module, foreign_functions(&code));
        }
        Parsed {
            types,
            functions,
            constants,
        }
    }

    /// bindgen writes `Default` for large C structs as an all-zero `unsafe`
    /// block; say why that holds, as every `unsafe` block of the project does.
    fn annotate_zeroed_defaults(code: &str) -> String {
        let marker = "::core::mem::MaybeUninit::<Self>::uninit();";
        let mut out = String::with_capacity(code.len());
        let mut lines = code.lines().peekable();
        while let Some(line) = lines.next() {
            out.push_str(line);
            out.push('\n');
            if line.trim_end().ends_with(marker) {
                if let Some(next) = lines
                    .peek()
                    .filter(|n| n.trim_start().starts_with("unsafe"))
                {
                    let indent = &next[..next.len() - next.trim_start().len()];
                    out.push_str(indent);
                    out.push_str("// SAFETY: a plain C struct of integers, arrays and pointers: all-zero bytes are a valid value.\n");
                }
            }
        }
        out
    }

    /// The name an item of bindgen's output defines, if it defines one.
    fn item_name(item: &syn::Item) -> Option<String> {
        match item {
            syn::Item::Type(t) => Some(t.ident.to_string()),
            syn::Item::Struct(s) => Some(s.ident.to_string()),
            syn::Item::Union(u) => Some(u.ident.to_string()),
            syn::Item::Const(c) if c.ident != "_" => Some(c.ident.to_string()),
            syn::Item::Enum(e) => Some(e.ident.to_string()),
            _ => None,
        }
    }

    /// The toolkit's types and constants, plus ours that it lacks (with
    /// their `impl` blocks), so that declarations newer than the toolkit
    /// still compile. Where both define a name, the toolkit's wins.
    fn merge_types(theirs: &str, ours: &str) -> String {
        let their_file = syn::parse_file(theirs).expect("bindgen output parses");
        let known: BTreeSet<String> = their_file.items.iter().filter_map(item_name).collect();
        let our_file = syn::parse_file(ours).expect("bindgen output parses");
        let mut added = BTreeSet::new();
        let mut extra = Vec::new();
        for item in &our_file.items {
            if let Some(name) = item_name(item).filter(|n| !known.contains(n)) {
                added.insert(name);
                extra.push(item.clone());
            }
        }
        for item in &our_file.items {
            if let syn::Item::Impl(i) = item {
                let target = i.self_ty.to_token_stream().to_string();
                if added.contains(&target) {
                    extra.push(item.clone());
                }
            }
        }
        if extra.is_empty() {
            return theirs.to_string();
        }
        let mut text = theirs.to_string();
        text.push_str("\n// Declared by ascend-sys but not by this toolkit (newer than it):\n");
        let mut file = our_file;
        file.items = extra;
        text.push_str(&prettyplease::unparse(&file));
        text
    }

    fn type_names(code: &str) -> BTreeSet<String> {
        let file = syn::parse_file(code).expect("bindgen output parses");
        let mut names = BTreeSet::new();
        for item in file.items {
            match item {
                syn::Item::Type(t) => {
                    names.insert(t.ident.to_string());
                }
                syn::Item::Struct(s) => {
                    names.insert(s.ident.to_string());
                }
                syn::Item::Union(u) => {
                    names.insert(u.ident.to_string());
                }
                _ => {}
            }
        }
        names
    }

    fn constants(code: &str) -> BTreeMap<String, String> {
        let file = syn::parse_file(code).expect("bindgen output parses");
        file.items
            .into_iter()
            .filter_map(|item| match item {
                syn::Item::Const(c) => Some((
                    c.ident.to_string(),
                    c.expr.to_token_stream().to_string().replace(' ', ""),
                )),
                _ => None,
            })
            .collect()
    }

    fn foreign_functions(code: &str) -> BTreeMap<String, syn::ForeignItemFn> {
        let file = syn::parse_file(code).expect("bindgen output parses");
        let mut out = BTreeMap::new();
        for item in file.items {
            if let syn::Item::ForeignMod(m) = item {
                for f in m.items {
                    if let syn::ForeignItem::Fn(mut f) = f {
                        f.attrs.clear();
                        out.insert(f.sig.ident.to_string(), f);
                    }
                }
            }
        }
        out
    }

    /// One line per function: its signature with parameter names dropped,
    /// so that only what the ABI sees is compared.
    fn signature(f: &syn::ForeignItemFn) -> String {
        let args: Vec<String> = f
            .sig
            .inputs
            .iter()
            .map(|a| match a {
                syn::FnArg::Typed(t) => normalise(&t.ty.to_token_stream().to_string()),
                syn::FnArg::Receiver(_) => "self".into(),
            })
            .collect();
        let ret = match &f.sig.output {
            syn::ReturnType::Default => "()".to_string(),
            syn::ReturnType::Type(_, t) => normalise(&t.to_token_stream().to_string()),
        };
        format!("fn({}) -> {ret}", args.join(", "))
    }

    fn normalise(ty: &str) -> String {
        ty.replace(' ', "")
            .replace("::core::ffi::", "")
            .replace("::std::os::raw::", "")
    }

    fn compare(ours: &Parsed, theirs: &Parsed, root: &Path) -> String {
        let mut report = String::new();
        let mut differences = 0usize;
        // Declarations the toolkit lacks: newer than it, not a difference.
        let mut newer = Vec::new();
        let _ = writeln!(
            report,
            "ABI comparison: ascend-sys/include against {}",
            root.display()
        );
        for (lib, fns) in &ours.functions {
            let their_fns = theirs.functions.get(lib);
            for (name, f) in fns {
                let mine = signature(f);
                let found = their_fns
                    .and_then(|m| m.get(name))
                    .or_else(|| theirs.functions.values().find_map(|m| m.get(name)));
                match found {
                    None => newer.push(format!("function {name}")),
                    Some(t) => {
                        let theirs_sig = signature(t);
                        if theirs_sig != mine {
                            differences += 1;
                            let _ = writeln!(
                                report,
                                "function {name}: ours `{mine}`, toolkit `{theirs_sig}`"
                            );
                        }
                    }
                }
            }
        }
        for (name, value) in &ours.constants {
            match theirs.constants.get(name) {
                None => newer.push(format!("constant {name}")),
                Some(v) if v != value => {
                    differences += 1;
                    let _ = writeln!(report, "constant {name}: ours {value}, toolkit {v}");
                }
                Some(_) => {}
            }
        }
        let checked =
            ours.functions.values().map(|m| m.len()).sum::<usize>() + ours.constants.len();
        for item in &newer {
            let _ = writeln!(
                report,
                "{item}: newer than this toolkit (not declared by it)"
            );
        }
        let _ = writeln!(
            report,
            "checked {checked} declarations: {differences} differences, {} newer than this toolkit",
            newer.len()
        );
        report
    }

    /// `codes.rs`: macros that hand the list of every error code we declare
    /// (one name per value) to a caller's macro, so that error enums are
    /// generated from the bindings instead of typed by hand.
    fn render_codes(constants: &BTreeMap<String, String>) -> String {
        let families: &[(&str, &str, &[&str])] = &[
            (
                "for_each_acl_error",
                "AscendCL (`aclError`)",
                &["ACL_ERROR_"],
            ),
            (
                "for_each_aclnn_error",
                "aclnn (`aclnnStatus`)",
                &["ACLNN_ERR_"],
            ),
            ("for_each_hccl_result", "HCCL (`HcclResult`)", &["HCCL_E_"]),
        ];
        let mut text = String::from(
            "// Generated by ascend-sys/build.rs (feature `bindgen`) from the AscendCL declarations;\n\
             // refresh with scripts/regen-bindings. Do not edit.\n",
        );
        for (mac, what, prefixes) in families {
            let mut by_value: BTreeMap<i64, &str> = BTreeMap::new();
            for (name, value) in constants {
                if !prefixes.iter().any(|p| name.starts_with(p)) || name == "HCCL_E_RESERVED" {
                    continue;
                }
                let Ok(v) = value.parse::<i64>() else {
                    continue;
                };
                if v == 0 {
                    continue;
                }
                // One name per value: the first in alphabetical order.
                by_value.entry(v).or_insert(name);
            }
            let _ = write!(
                text,
                "\n/// Calls `$m! {{ NAME = value, ... }}` with every {what} error code,\n\
                 /// one name per value.\n#[macro_export]\nmacro_rules! {mac} {{\n    ($m:ident) => {{\n        $m! {{\n"
            );
            for (v, name) in &by_value {
                let _ = writeln!(text, "            {name} = {v},");
            }
            text.push_str("        }\n    };\n}\n");
        }
        text
    }

    /// `pfn.rs`: a function-pointer type per C function, one module per
    /// library, and the `function_table!` invocation that builds the lazy tables.
    fn render_functions(
        functions: &BTreeMap<&'static str, BTreeMap<String, syn::ForeignItemFn>>,
    ) -> String {
        let mut modules = Vec::new();
        for (_, module, _) in LIBRARIES {
            let fns = functions.get(module).cloned().unwrap_or_default();
            let aliases = fns.values().map(|f| {
                let name = &f.sig.ident;
                let inputs = &f.sig.inputs;
                let output = &f.sig.output;
                quote! { pub type #name = unsafe extern "C" fn(#inputs) #output; }
            });
            let m = quote::format_ident!("{}", module);
            modules.push(quote! {
                pub mod #m {
                    #[allow(unused_imports)]
                    use super::super::types::*;
                    #(#aliases)*
                }
            });
        }
        let file: syn::File =
            syn::parse2(quote! { #(#modules)* }).expect("generated function types parse");
        let mut text = String::from(
            "// Generated by ascend-sys/build.rs (feature `bindgen`) from the AscendCL declarations;\n\
             // refresh with scripts/regen-bindings. Do not edit.\n\n",
        );
        text.push_str(&prettyplease::unparse(&file));
        text.push_str("\ncrate::loader::function_tables! {\n");
        for (table, module, _) in LIBRARIES {
            let _ = writeln!(text, "    {table} => {module} [");
            for (idx, name) in functions
                .get(module)
                .into_iter()
                .flat_map(|m| m.keys())
                .enumerate()
            {
                let _ = writeln!(text, "        {name} = {idx},");
            }
            text.push_str("    ],\n");
        }
        text.push_str("}\n");
        render_function_list(&mut text, functions);
        render_operator_list(&mut text, functions);
        text
    }

    /// `for_each_function!`: hands every declared function, as
    /// `library::name`, to a caller's macro. The mock's symbol table and its
    /// completeness check are generated from it.
    fn render_function_list(
        text: &mut String,
        functions: &BTreeMap<&'static str, BTreeMap<String, syn::ForeignItemFn>>,
    ) {
        text.push_str(
            "\n/// Calls `$m! { library::name, ... }` with every function the headers declare,\n\
             /// by library (`ascendcl`, `nnopbase`, `opapi`, `hccl`, the modules of [`pfn`](crate::pfn)).\n\
             #[macro_export]\nmacro_rules! for_each_function {\n    ($m:ident) => {\n        $m! {\n",
        );
        for (_, module, _) in LIBRARIES {
            for name in functions.get(module).into_iter().flat_map(|m| m.keys()) {
                let _ = writeln!(text, "            {module}::{name},");
            }
        }
        text.push_str("        }\n    };\n}\n");
    }

    /// `for_each_operator!`: hands every two-phase aclnn operator (a
    /// `XxxGetWorkspaceSize` with its `Xxx`) to a caller's macro, with the
    /// parameters of phase one before `workspaceSize` and `executor`, their
    /// types spelled through `$crate` so that they resolve anywhere.
    fn render_operator_list(
        text: &mut String,
        functions: &BTreeMap<&'static str, BTreeMap<String, syn::ForeignItemFn>>,
    ) {
        text.push_str(
            "\n/// Calls `$m! { Xxx / XxxGetWorkspaceSize (param: Type, ...); ... }` with every\n\
             /// two-phase aclnn operator the headers declare: its phase-two and phase-one\n\
             /// names and the parameters of phase one that precede `workspaceSize` and\n\
             /// `executor`.\n\
             #[macro_export]\nmacro_rules! for_each_operator {\n    ($m:ident) => {\n        $m! {\n",
        );
        let ops = functions.get("opapi").cloned().unwrap_or_default();
        for (name, f) in &ops {
            let Some(op) = name.strip_suffix("GetWorkspaceSize") else {
                continue;
            };
            if !ops.contains_key(op) {
                continue;
            }
            let params: Vec<String> = f
                .sig
                .inputs
                .iter()
                .filter_map(|a| match a {
                    syn::FnArg::Typed(t) => Some(t),
                    syn::FnArg::Receiver(_) => None,
                })
                .map(|t| {
                    let pat = t.pat.to_token_stream().to_string();
                    format!("{pat}: {}", crate_type(&t.ty))
                })
                .collect();
            let n = params.len();
            assert!(
                n >= 2,
                "{name}: a phase one ends with workspaceSize and executor"
            );
            let _ = writeln!(
                text,
                "            {op} / {name} ({});",
                params[..n - 2].join(", ")
            );
        }
        text.push_str("        }\n    };\n}\n");
    }

    /// A parameter type as tokens that resolve outside this crate: named
    /// types of the bindings become `$crate::Name`; primitives and absolute
    /// paths stay as they are.
    fn crate_type(ty: &syn::Type) -> String {
        match ty {
            syn::Type::Ptr(p) => {
                let q = if matches!(p.mutability, syn::PointerMutability::Mut(_)) {
                    "mut"
                } else {
                    "const"
                };
                format!("*{q} {}", crate_type(&p.elem))
            }
            syn::Type::Path(p) if p.qself.is_none() && p.path.leading_colon.is_none() => {
                let text = p.to_token_stream().to_string();
                let primitive = [
                    "i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "isize", "usize", "f32",
                    "f64", "bool",
                ];
                if p.path.segments.len() == 1 && !primitive.contains(&text.as_str()) {
                    format!("$crate::{text}")
                } else {
                    text
                }
            }
            other => other.to_token_stream().to_string().replace(' ', ""),
        }
    }
}
