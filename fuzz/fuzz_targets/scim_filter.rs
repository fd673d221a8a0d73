//! SCIM filter text (`muster_scim::fuzz::filter`): parse, print, re-parse,
//! evaluate; the same text as a PATCH path, attribute list and sortBy.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    muster_scim::fuzz::filter(data);
});
