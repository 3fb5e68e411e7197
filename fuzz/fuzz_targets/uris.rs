//! Every transport's socket parser, picked by the first byte (see `evid_fuzz::uris`).
#![no_main]

use libfuzzer_sys::fuzz_target;

evid_fuzz::no_dns!();

fuzz_target!(|data: &[u8]| evid_fuzz::uris::check(data));
