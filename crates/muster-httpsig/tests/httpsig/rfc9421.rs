//! RFC 9421 Appendix B.2.5 and B.2.6, reproduced byte for byte.

use crate::helpers::*;
use muster_httpsig::{
    sign, signature_base, verify, Algorithm, SigningParams, VerifyError, VerifyPolicy, VerifyingKey,
};

// The RFC prints these with RFC 8792 line wrapping; unwrapped here.
const B25_BASE: &str = "\"date\": Tue, 20 Apr 2021 02:07:55 GMT\n\
\"@authority\": example.com\n\
\"content-type\": application/json\n\
\"@signature-params\": (\"date\" \"@authority\" \"content-type\");created=1618884473;keyid=\"test-shared-secret\"";
const B25_INPUT: &str =
    "sig-b25=(\"date\" \"@authority\" \"content-type\");created=1618884473;keyid=\"test-shared-secret\"";
const B25_SIGNATURE: &str = "sig-b25=:pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8=:";

const B26_BASE: &str = "\"date\": Tue, 20 Apr 2021 02:07:55 GMT\n\
\"@method\": POST\n\
\"@path\": /foo\n\
\"@authority\": example.com\n\
\"content-type\": application/json\n\
\"content-length\": 18\n\
\"@signature-params\": (\"date\" \"@method\" \"@path\" \"@authority\" \"content-type\" \"content-length\");created=1618884473;keyid=\"test-key-ed25519\"";
const B26_INPUT: &str = "sig-b26=(\"date\" \"@method\" \"@path\" \"@authority\" \"content-type\" \"content-length\");created=1618884473;keyid=\"test-key-ed25519\"";
const B26_SIGNATURE: &str = "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:";

fn params(label: &str, components: &[&str], keyid: &str) -> SigningParams {
    SigningParams {
        label: label.to_owned(),
        components: components.iter().map(|c| (*c).to_owned()).collect(),
        created: Some(RFC_CREATED),
        keyid: Some(keyid.to_owned()),
        ..SigningParams::default()
    }
}

/// The RFC examples carry no nonce and cover no method/URI: verify them with
/// only the clock pinned.
fn rfc_policy() -> VerifyPolicy {
    VerifyPolicy {
        required_components: vec![],
        require_created: true,
        require_nonce: false,
        require_content_digest: false,
        max_skew_secs: 300,
        now: RFC_CREATED,
    }
}

#[test]
fn b_2_5_hmac_sha256_reproduces_the_base_and_both_fields() {
    let msg = test_request();
    let signed = sign(
        &msg.req(),
        &params(
            "sig-b25",
            &["date", "@authority", "content-type"],
            "test-shared-secret",
        ),
        &shared_secret(),
    )
    .unwrap();
    assert_eq!(signed.signature_base, B25_BASE);
    assert_eq!(signed.signature_input, B25_INPUT);
    assert_eq!(signed.signature, B25_SIGNATURE);
}

#[test]
fn b_2_5_the_rfc_fields_verify_and_rebuild_the_same_base() {
    let msg = test_request()
        .with("Signature-Input", B25_INPUT)
        .with("Signature", B25_SIGNATURE);
    assert_eq!(
        signature_base(&msg.req(), Some("sig-b25")).unwrap(),
        B25_BASE
    );
    let key = shared_secret().verifying_key();
    let resolver = move |id: &str| (id == "test-shared-secret").then(|| key.clone());
    let ok = verify(&msg.req(), Some("sig-b25"), &resolver, &rfc_policy()).unwrap();
    assert_eq!(ok.keyid, "test-shared-secret");
    assert_eq!(ok.algorithm, Algorithm::HmacSha256);
    assert_eq!(ok.created, Some(RFC_CREATED));
    assert_eq!(ok.nonce, None);
}

#[test]
fn b_2_6_ed25519_reproduces_the_base_and_both_fields() {
    let msg = test_request();
    let signed = sign(
        &msg.req(),
        &params(
            "sig-b26",
            &[
                "date",
                "@method",
                "@path",
                "@authority",
                "content-type",
                "content-length",
            ],
            "test-key-ed25519",
        ),
        &ed25519_private(),
    )
    .unwrap();
    assert_eq!(signed.signature_base, B26_BASE);
    assert_eq!(signed.signature_input, B26_INPUT);
    assert_eq!(signed.signature, B26_SIGNATURE);
}

#[test]
fn b_2_6_the_rfc_signature_verifies_with_the_rfc_public_key() {
    let msg = test_request()
        .with("Signature-Input", B26_INPUT)
        .with("Signature", B26_SIGNATURE);
    assert_eq!(signature_base(&msg.req(), None).unwrap(), B26_BASE);
    let resolver = |id: &str| (id == "test-key-ed25519").then(ed25519_public);
    let ok = verify(&msg.req(), None, &resolver, &rfc_policy()).unwrap();
    assert_eq!(ok.label, "sig-b26");
    assert_eq!(ok.algorithm, Algorithm::Ed25519);
    assert_eq!(
        ok.components,
        [
            "date",
            "@method",
            "@path",
            "@authority",
            "content-type",
            "content-length"
        ]
    );
}

#[test]
fn b_2_6_fails_once_a_covered_header_changes() {
    let mut msg = test_request()
        .with("Signature-Input", B26_INPUT)
        .with("Signature", B26_SIGNATURE);
    msg.set("Content-Length", "19");
    let resolver = |_: &str| Some(ed25519_public());
    assert_eq!(
        verify(&msg.req(), None, &resolver, &rfc_policy()),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn both_rfc_signatures_can_live_on_one_request() {
    let msg = test_request()
        .with("Signature-Input", B25_INPUT)
        .with("Signature-Input", B26_INPUT)
        .with("Signature", &format!("{B25_SIGNATURE}, {B26_SIGNATURE}"));
    let hmac = shared_secret().verifying_key();
    let resolver = move |id: &str| -> Option<VerifyingKey> {
        match id {
            "test-shared-secret" => Some(hmac.clone()),
            "test-key-ed25519" => Some(ed25519_public()),
            _ => None,
        }
    };
    assert!(verify(&msg.req(), Some("sig-b25"), &resolver, &rfc_policy()).is_ok());
    assert!(verify(&msg.req(), Some("sig-b26"), &resolver, &rfc_policy()).is_ok());
    // Without a label the first member of Signature-Input is taken.
    assert_eq!(
        verify(&msg.req(), None, &resolver, &rfc_policy())
            .unwrap()
            .label,
        "sig-b25"
    );
}
