//! README.md documents exactly what the module exports (rows generated from the declaration).

use evi_sdk::abi::EviModuleDecl;

extern "C" {
    /// Written by `export_module!` in lib.rs; linked into this test binary.
    static evi_module: EviModuleDecl;
}

#[test]
fn readme_matches_the_export_table() {
    // SAFETY: immutable static data defined in this crate.
    let decl = unsafe { &*std::ptr::addr_of!(evi_module) };
    evi_sdk::testing::check_readme(decl, include_str!("../README.md"))
        .unwrap_or_else(|e| panic!("{e}"));
}
