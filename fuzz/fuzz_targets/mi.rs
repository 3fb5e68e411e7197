//! Any bytes as one MI JSON-RPC request (see `evid_fuzz::mi`).
#![no_main]

use libfuzzer_sys::fuzz_target;

// Subscribing a socket parses it, and the MI engine must not wait on DNS either.
evid_fuzz::no_dns!();

fuzz_target!(|data: &[u8]| evid_fuzz::mi::check(data));
