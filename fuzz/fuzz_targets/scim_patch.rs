//! A SCIM PATCH body (`muster_scim::fuzz::patch`) applied to a fixed User
//! and a fixed Group; every result must validate.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    muster_scim::fuzz::patch(data);
});
