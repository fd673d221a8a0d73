//! One refusal per `VerifyError` variant, each with its machine code.

use crate::helpers::*;
use crate::round_trip::{client_key, default_post, muster_params, resolver, signed_post, NOW, URI};
use muster_httpsig::{sign, verify, SigningParams, VerifyError, VerifyPolicy, VerifyingKey};

fn check(msg: &Msg, policy: &VerifyPolicy) -> Result<(), VerifyError> {
    verify(&msg.req(), None, &resolver, policy).map(|_| ())
}

fn refused(msg: &Msg, expected: VerifyError, code: &str) {
    let err = check(msg, &VerifyPolicy::muster(NOW)).unwrap_err();
    assert_eq!(err, expected);
    assert_eq!(err.code(), code);
}

#[test]
fn a_request_without_signature_fields_is_missing_signature() {
    let mut msg = default_post();
    msg.remove("Signature-Input");
    msg.remove("Signature");
    refused(&msg, VerifyError::MissingSignature, "missing_signature");
}

#[test]
fn an_unknown_label_or_a_missing_signature_value_is_missing_signature() {
    let msg = default_post();
    assert_eq!(
        verify(
            &msg.req(),
            Some("other"),
            &resolver,
            &VerifyPolicy::muster(NOW)
        )
        .unwrap_err(),
        VerifyError::MissingSignature
    );
    let mut msg = default_post();
    msg.set("Signature", "other=:AAAA:");
    refused(&msg, VerifyError::MissingSignature, "missing_signature");
}

#[test]
fn broken_structured_fields_are_malformed() {
    let cases = [
        ("Signature-Input", "sig1=(\"@method\""),
        ("Signature-Input", "sig1=(@method);created=1700000000"),
        ("Signature-Input", "sig1=\"@method\""),
        ("Signature-Input", "sig1=(\"@method\");created=\"now\""),
        (
            "Signature-Input",
            "sig1=(\"@method\" \"@method\");created=1700000000",
        ),
        ("Signature", "sig1=\"not bytes\""),
        ("Signature", "sig1=:%%%:"),
    ];
    for (field, value) in cases {
        let mut msg = default_post();
        msg.set(field, value);
        let err = check(&msg, &VerifyPolicy::muster(NOW)).unwrap_err();
        assert!(
            matches!(err, VerifyError::Malformed(_)),
            "{field}: {value} gave {err:?}"
        );
        assert_eq!(err.code(), "malformed");
    }
}

#[test]
fn a_signature_without_keyid_is_missing_keyid() {
    let params = SigningParams {
        keyid: None,
        ..muster_params(&["@method", "@target-uri", "content-digest"])
    };
    refused(
        &signed_post(&params, &client_key()),
        VerifyError::MissingKeyId,
        "missing_keyid",
    );
}

#[test]
fn a_keyid_the_resolver_does_not_know_is_unknown_key() {
    let params = SigningParams {
        keyid: Some("someone-else".into()),
        ..muster_params(&["@method", "@target-uri", "content-digest"])
    };
    refused(
        &signed_post(&params, &client_key()),
        VerifyError::UnknownKey,
        "unknown_key",
    );
}

#[test]
fn an_alg_other_than_the_keys_is_alg_mismatch() {
    let msg = default_post(); // alg="hmac-sha256"
    let ed = |_: &str| -> Option<VerifyingKey> { Some(ed25519_public()) };
    let err = verify(&msg.req(), None, &ed, &VerifyPolicy::muster(NOW)).unwrap_err();
    assert_eq!(err, VerifyError::AlgorithmMismatch);
    assert_eq!(err.code(), "alg_mismatch");
    let mut msg = default_post();
    let input = msg
        .req()
        .header_values("signature-input")
        .next()
        .unwrap()
        .replace("hmac-sha256", "rsa-v1_5-sha256");
    msg.set("Signature-Input", &input);
    refused(&msg, VerifyError::AlgorithmMismatch, "alg_mismatch");
}

#[test]
fn a_changed_method_uri_or_wrong_key_is_bad_signature() {
    let mut msg = default_post();
    msg.method = "PUT".into();
    refused(&msg, VerifyError::BadSignature, "bad_signature");

    let mut msg = default_post();
    msg.uri = URI.replace("dry_run=true", "dry_run=false");
    refused(&msg, VerifyError::BadSignature, "bad_signature");

    let msg = default_post();
    let other = |_: &str| {
        Some(VerifyingKey::HmacSha256(muster_httpsig::HmacKey::new(
            b"not the key".to_vec(),
        )))
    };
    assert_eq!(
        verify(&msg.req(), None, &other, &VerifyPolicy::muster(NOW)).unwrap_err(),
        VerifyError::BadSignature
    );

    let mut msg = default_post();
    msg.set("Signature", "sig1=:AAAA:");
    refused(&msg, VerifyError::BadSignature, "bad_signature");
}

#[test]
fn a_signature_older_than_the_skew_or_past_expires_is_expired() {
    let msg = default_post();
    assert_eq!(check(&msg, &VerifyPolicy::muster(NOW + 300)), Ok(()));
    let err = check(&msg, &VerifyPolicy::muster(NOW + 301)).unwrap_err();
    assert_eq!((err.code(), err), ("expired", VerifyError::Expired));

    let params = SigningParams {
        expires: Some(NOW + 10),
        ..muster_params(&["@method", "@target-uri", "content-digest"])
    };
    let msg = signed_post(&params, &client_key());
    assert_eq!(check(&msg, &VerifyPolicy::muster(NOW + 10)), Ok(()));
    assert_eq!(
        check(&msg, &VerifyPolicy::muster(NOW + 11)),
        Err(VerifyError::Expired)
    );
}

#[test]
fn a_signature_from_beyond_the_skew_is_created_in_future() {
    let msg = default_post();
    assert_eq!(check(&msg, &VerifyPolicy::muster(NOW - 300)), Ok(()));
    let err = check(&msg, &VerifyPolicy::muster(NOW - 301)).unwrap_err();
    assert_eq!(
        (err.code(), err),
        ("created_in_future", VerifyError::CreatedInFuture)
    );
}

#[test]
fn a_signature_without_created_is_missing_created() {
    let params = SigningParams {
        created: None,
        ..muster_params(&["@method", "@target-uri", "content-digest"])
    };
    refused(
        &signed_post(&params, &client_key()),
        VerifyError::MissingCreated,
        "missing_created",
    );
}

#[test]
fn a_signature_without_nonce_is_missing_nonce() {
    let params = SigningParams {
        nonce: None,
        ..muster_params(&["@method", "@target-uri", "content-digest"])
    };
    refused(
        &signed_post(&params, &client_key()),
        VerifyError::MissingNonce,
        "missing_nonce",
    );
}

#[test]
fn an_uncovered_required_component_is_missing_component() {
    let params = muster_params(&["@method", "@path", "content-digest"]);
    refused(
        &signed_post(&params, &client_key()),
        VerifyError::MissingComponent("@target-uri".into()),
        "missing_component",
    );
    let params = muster_params(&["@method", "@target-uri"]);
    refused(
        &signed_post(&params, &client_key()),
        VerifyError::MissingComponent("content-digest".into()),
        "missing_component",
    );
}

#[test]
fn a_covered_header_removed_in_transit_is_component_unavailable() {
    let mut msg = default_post();
    msg.remove("Content-Type");
    refused(
        &msg,
        VerifyError::ComponentUnavailable("content-type".into()),
        "component_unavailable",
    );
}

#[test]
fn component_parameters_and_unknown_derived_components_are_unsupported() {
    for (input, name) in [
        ("sig1=(\"@method\" \"@query-param\";name=\"tenant\");created=1700000000;keyid=\"client-7f3a\";nonce=\"n\"", "@query-param"),
        ("sig1=(\"@method\" \"@status\");created=1700000000;keyid=\"client-7f3a\";nonce=\"n\"", "@status"),
        ("sig1=(\"@method\" \"content-type\";sf);created=1700000000;keyid=\"client-7f3a\";nonce=\"n\"", "content-type"),
    ] {
        let mut msg = default_post();
        msg.set("Signature-Input", input);
        refused(&msg, VerifyError::UnsupportedComponent(name.into()), "unsupported_component");
    }
}

#[test]
fn a_body_changed_after_signing_is_digest_mismatch() {
    let mut msg = default_post();
    msg.body = Some(br#"{"external_id":"E-1001","email":"eve@example.com"}"#.to_vec());
    refused(&msg, VerifyError::DigestMismatch, "digest_mismatch");
}

#[test]
fn a_digest_with_no_supported_algorithm_is_unsupported_digest() {
    let body = b"{}".to_vec();
    let mut msg = Msg::new("POST", URI).with("Content-Digest", "md5=:mZFLkyvTelC5g8XnyQrpOw==:");
    msg.body = Some(body);
    let signed = sign(
        &msg.req(),
        &muster_params(&["@method", "@target-uri", "content-digest"]),
        &client_key(),
    )
    .unwrap();
    msg.set("Signature-Input", &signed.signature_input);
    msg.set("Signature", &signed.signature);
    refused(&msg, VerifyError::UnsupportedDigest, "unsupported_digest");
}

#[test]
fn codes_are_distinct_and_messages_never_show_the_key() {
    let all = [
        VerifyError::MissingSignature,
        VerifyError::Malformed("x".into()),
        VerifyError::MissingKeyId,
        VerifyError::UnknownKey,
        VerifyError::AlgorithmMismatch,
        VerifyError::BadSignature,
        VerifyError::Expired,
        VerifyError::CreatedInFuture,
        VerifyError::MissingCreated,
        VerifyError::MissingNonce,
        VerifyError::MissingComponent("x".into()),
        VerifyError::ComponentUnavailable("x".into()),
        VerifyError::UnsupportedComponent("x".into()),
        VerifyError::DigestMismatch,
        VerifyError::UnsupportedDigest,
    ];
    let mut codes: Vec<&str> = all.iter().map(VerifyError::code).collect();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), all.len());

    // A wrong-key failure, rendered every way a log might, holds no key bytes.
    let msg = default_post();
    let wrong = |_: &str| {
        Some(VerifyingKey::HmacSha256(muster_httpsig::HmacKey::new(
            b"0123456789abcdef-wrong".to_vec(),
        )))
    };
    let err = verify(&msg.req(), None, &wrong, &VerifyPolicy::muster(NOW)).unwrap_err();
    assert_eq!(err, VerifyError::BadSignature);
    let shown = format!(
        "{err} {err:?} {:?} {:?}",
        client_key(),
        client_key().verifying_key()
    );
    assert!(!shown.contains("0123456789abcdef"), "{shown}");
}

#[test]
fn a_covered_value_with_a_line_break_is_malformed_not_a_forged_base_line() {
    let mut msg = default_post();
    msg.set("Content-Type", "application/json\n\"@method\": GET");
    let err = check(&msg, &VerifyPolicy::muster(NOW)).unwrap_err();
    assert!(matches!(err, VerifyError::Malformed(_)), "{err:?}");
}
