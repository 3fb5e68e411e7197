//! README.md documents exactly what the module exports (rows generated from the declaration).

use evi_sdk::abi::{
    EviModuleDecl, EviParamSpec, EviStr, EVI_PARAM_BOOL, EVI_PARAM_INT, EVI_VALUE_NULL,
    EVI_VALUE_STR,
};

extern "C" {
    /// Written by `export_module!` in lib.rs; linked into this test binary.
    static evi_module: EviModuleDecl;
}

fn text(s: &EviStr) -> String {
    // SAFETY: strings of the declaration are static.
    String::from_utf8_lossy(unsafe { s.as_bytes() }).into_owned()
}

fn slice<'a, T>(p: *const T, n: usize) -> &'a [T] {
    if p.is_null() {
        &[]
    } else {
        // SAFETY: the declaration's tables hold `n` entries and are static.
        unsafe { std::slice::from_raw_parts(p, n) }
    }
}

fn readme_row(p: &EviParamSpec) -> String {
    let kind = match p.kind {
        EVI_PARAM_INT => "int",
        EVI_PARAM_BOOL => "bool",
        _ => "str",
    };
    let default = match p.default.kind {
        EVI_VALUE_NULL => "unset".to_string(),
        EVI_VALUE_STR => format!("`{}`", text(&p.default.str)),
        _ if p.kind == EVI_PARAM_BOOL => format!("`{}`", p.default.int != 0),
        _ => format!("`{}`", p.default.int),
    };
    let range = if p.kind == EVI_PARAM_INT {
        format!("{}..={}", p.min, p.max)
    } else {
        "—".into()
    };
    format!(
        "| `{}` | {kind} | {default} | {range} | {} |",
        text(&p.name),
        text(&p.doc)
    )
}

#[test]
fn readme_matches_the_export_table() {
    let readme = include_str!("../README.md");
    // SAFETY: immutable static data defined in this crate.
    let decl = unsafe { &*std::ptr::addr_of!(evi_module) };
    let rows: Vec<&str> = readme
        .split("## Params")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("| `"))
        .collect();
    let expected: Vec<String> = slice(decl.params, decl.n_params)
        .iter()
        .map(readme_row)
        .collect();
    assert_eq!(rows, expected);
    for cmd in slice(decl.mi_cmds, decl.n_mi_cmds) {
        assert!(
            readme.contains(&format!("| `{}` |", text(&cmd.name))),
            "{}",
            text(&cmd.name)
        );
    }
}
