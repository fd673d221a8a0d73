//! OpenPGP / age framing: the input is an upload, decrypted with the test
//! keys in `fuzz/keys/`.
#![no_main]
use libfuzzer_sys::fuzz_target;
use muster_intake::decrypt::{DecryptionKey, SignerKey};
use muster_intake::fuzz::DecryptKeys;
use std::sync::OnceLock;

fn keys() -> &'static DecryptKeys {
    static KEYS: OnceLock<DecryptKeys> = OnceLock::new();
    KEYS.get_or_init(|| DecryptKeys {
        keys: vec![
            DecryptionKey::parse(include_str!("../keys/openpgp-secret.asc"))
                .expect("the OpenPGP test key parses"),
            DecryptionKey::parse(include_str!("../keys/age-identity.txt"))
                .expect("the age test identity parses"),
        ],
        signer: Some(
            SignerKey::from_armored(include_str!("../keys/openpgp-public.asc"))
                .expect("the OpenPGP test key's public half parses"),
        ),
    })
}

fuzz_target!(|data: &[u8]| {
    muster_intake::fuzz::decrypt(data, keys());
});
