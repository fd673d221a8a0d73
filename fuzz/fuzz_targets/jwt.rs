//! JWT / JWS parsing and claim checks of login sync and private_key_jwt
//! (`muster_jose::fuzz`): the input is the token.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    muster_jose::fuzz::jwt(data);
});
