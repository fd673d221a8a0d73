//! The parameters of `POST /api/v1/imports`: see
//! `muster_server::fuzz::upload_params` for the input layout.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    muster_server::fuzz::upload_params(data);
});
