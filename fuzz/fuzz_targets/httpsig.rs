//! RFC 9421 / RFC 9530 fields: see `muster_httpsig::fuzz` for the input
//! layout.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    muster_httpsig::fuzz::signature_headers(data);
});
