//! Config text through the parser, the checks and the interpreter (see `evid_fuzz::config`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| evid_fuzz::config::check(data));
