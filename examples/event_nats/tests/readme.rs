//! The README's params table is the module's declaration, as `evid --describe-module` reads it:
//! a param added, renamed or re-ranged in `export_module!` without the README fails here.

use evi_sdk::abi::EviModuleDecl;

extern "C" {
    /// Written by `export_module!` in src/lib.rs; linked into this test through the rlib.
    static evi_module: EviModuleDecl;
}

#[test]
fn readme_params_table_matches_the_declaration() {
    // Keep the rlib (and with it the declaration) linked into this test binary.
    let _ = std::any::type_name::<event_nats::EventNats>();
    // SAFETY: immutable static data defined by the module crate.
    let decl = unsafe { &*std::ptr::addr_of!(evi_module) };
    evi_sdk::testing::check_readme(decl, include_str!("../README.md"))
        .unwrap_or_else(|e| panic!("{e}"));
}
