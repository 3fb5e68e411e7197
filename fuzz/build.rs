//! Every module crate exports its descriptor as the unmangled static `evi_module` (what the
//! daemon's loader looks up in each `.so`). The fuzz binaries link several module crates as
//! plain libraries, so those symbols clash; nothing here loads a module, so the linker may keep
//! any one of them.
fn main() {
    println!("cargo:rustc-link-arg-bins=-Wl,--allow-multiple-definition");
}
