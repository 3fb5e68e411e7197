//! Events with any params through every payload builder (see `evid_fuzz::payload`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: evid_fuzz::payload::Input| evid_fuzz::payload::check(&input));
