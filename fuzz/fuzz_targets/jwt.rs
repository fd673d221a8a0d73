//! JWT / JWS parsing and claim checks of login sync and private_key_jwt:
//! the input is the token.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    muster_server::fuzz::jwt(data);
});
