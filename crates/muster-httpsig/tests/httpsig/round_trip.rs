//! Sign-then-verify the way the SDK and the gateway will (docs/authentication.md#signed-requests).

use crate::helpers::*;
use muster_httpsig::{
    content_digest, sign, signature_keyid, verify, Algorithm, DigestAlgorithm, HmacKey, SignError,
    SigningKey, SigningParams, VerifyPolicy, VerifyingKey,
};

pub const NOW: i64 = 1_700_000_000;
pub const CLIENT: &str = "client-7f3a";
pub const URI: &str = "https://gw.example/api/v1/people?tenant=acme&dry_run=true";

pub fn client_key() -> SigningKey {
    SigningKey::HmacSha256(HmacKey::new(b"0123456789abcdef0123456789abcdef".to_vec()))
}

pub fn resolver(id: &str) -> Option<VerifyingKey> {
    (id == CLIENT).then(|| client_key().verifying_key())
}

pub fn muster_params(components: &[&str]) -> SigningParams {
    SigningParams {
        label: "sig1".to_owned(),
        components: components.iter().map(|c| (*c).to_owned()).collect(),
        created: Some(NOW),
        expires: None,
        nonce: Some("c2b1e0d6-5e0f-4c35-9d1b-0d0b5f6b2f4a".to_owned()),
        keyid: Some(CLIENT.to_owned()),
        alg: Some(Algorithm::HmacSha256),
    }
}

/// A POST with a JSON body, signed as the SDK will sign it.
pub fn signed_post(params: &SigningParams, key: &SigningKey) -> Msg {
    let body = br#"{"external_id":"E-1001","email":"ada@example.com"}"#.to_vec();
    let mut msg = Msg::new("POST", URI)
        .with("Content-Type", "application/json")
        .with(
            "Content-Digest",
            &content_digest(&body, DigestAlgorithm::Sha256),
        );
    msg.body = Some(body);
    let signed = sign(&msg.req(), params, key).unwrap();
    msg.set("Signature-Input", &signed.signature_input);
    msg.set("Signature", &signed.signature);
    msg
}

pub fn default_post() -> Msg {
    signed_post(
        &muster_params(&["@method", "@target-uri", "content-digest", "content-type"]),
        &client_key(),
    )
}

#[test]
fn a_muster_signed_post_verifies_and_returns_the_nonce_for_replay_checks() {
    let msg = default_post();
    let ok = verify(
        &msg.req(),
        Some("sig1"),
        &resolver,
        &VerifyPolicy::muster(NOW + 299),
    )
    .unwrap();
    assert_eq!(ok.keyid, CLIENT);
    assert_eq!(
        ok.nonce.as_deref(),
        Some("c2b1e0d6-5e0f-4c35-9d1b-0d0b5f6b2f4a")
    );
    assert_eq!(ok.created, Some(NOW));
    assert_eq!(ok.algorithm, Algorithm::HmacSha256);
}

#[test]
fn the_signature_input_states_every_parameter_in_a_fixed_order() {
    let mut params = muster_params(&["@method", "@target-uri"]);
    params.expires = Some(NOW + 60);
    let msg = Msg::new("GET", URI);
    let signed = sign(&msg.req(), &params, &client_key()).unwrap();
    assert_eq!(
        signed.signature_input,
        "sig1=(\"@method\" \"@target-uri\");created=1700000000;expires=1700000060;\
keyid=\"client-7f3a\";nonce=\"c2b1e0d6-5e0f-4c35-9d1b-0d0b5f6b2f4a\";alg=\"hmac-sha256\""
    );
}

#[test]
fn every_derived_component_has_its_rfc_value() {
    let msg = Msg::new("GET", "HTTPS://Gw.Example:443/a%2Fb/c?x=1&y=%20#frag");
    let params = muster_params(&[
        "@method",
        "@target-uri",
        "@authority",
        "@scheme",
        "@request-target",
        "@path",
        "@query",
    ]);
    let base = sign(&msg.req(), &params, &client_key())
        .unwrap()
        .signature_base;
    let lines: Vec<&str> = base.lines().collect();
    assert_eq!(
        lines[..7],
        [
            "\"@method\": GET",
            "\"@target-uri\": HTTPS://Gw.Example:443/a%2Fb/c?x=1&y=%20",
            "\"@authority\": gw.example",
            "\"@scheme\": https",
            "\"@request-target\": /a%2Fb/c?x=1&y=%20",
            "\"@path\": /a%2Fb/c",
            "\"@query\": ?x=1&y=%20",
        ]
    );
}

#[test]
fn a_get_without_body_needs_no_content_digest() {
    let msg = Msg::new("GET", URI);
    let signed = sign(
        &msg.req(),
        &muster_params(&["@method", "@target-uri"]),
        &client_key(),
    )
    .unwrap();
    let msg = msg
        .with("Signature-Input", &signed.signature_input)
        .with("Signature", &signed.signature);
    assert!(verify(&msg.req(), None, &resolver, &VerifyPolicy::muster(NOW)).is_ok());
}

#[test]
fn an_ed25519_round_trip_verifies_with_the_public_key_only() {
    let mut params = muster_params(&["@method", "@target-uri", "content-digest"]);
    params.alg = Some(Algorithm::Ed25519);
    let msg = signed_post(&params, &ed25519_private());
    let resolver = |id: &str| (id == CLIENT).then(ed25519_public);
    let ok = verify(&msg.req(), None, &resolver, &VerifyPolicy::muster(NOW)).unwrap();
    assert_eq!(ok.algorithm, Algorithm::Ed25519);
}

#[test]
fn the_keyid_can_be_read_before_the_key_is_loaded() {
    assert_eq!(
        signature_keyid(&default_post().req(), Some("sig1")).unwrap(),
        CLIENT
    );
}

#[test]
fn a_streamed_body_left_out_skips_only_the_digest_check() {
    let mut msg = default_post();
    msg.body = None;
    assert!(verify(&msg.req(), None, &resolver, &VerifyPolicy::muster(NOW)).is_ok());
}

#[test]
fn signing_refuses_what_cannot_be_signed_faithfully() {
    let key = client_key();
    let msg = Msg::new("GET", URI).with("X-Injected", "a\n\"@method\": POST");
    let cases = [
        (
            muster_params(&["x-injected"]),
            SignError::InvalidComponentValue("x-injected".into()),
        ),
        (
            muster_params(&["Content-Type"]),
            SignError::InvalidComponent("Content-Type".into()),
        ),
        (
            muster_params(&["@status"]),
            SignError::InvalidComponent("@status".into()),
        ),
        (
            muster_params(&["@method", "@method"]),
            SignError::InvalidComponent("@method".into()),
        ),
        (
            muster_params(&["date"]),
            SignError::ComponentUnavailable("date".into()),
        ),
        (
            SigningParams {
                label: "Sig 1".into(),
                ..muster_params(&["@method"])
            },
            SignError::InvalidLabel("Sig 1".into()),
        ),
        (
            SigningParams {
                nonce: Some("n\u{e9}".into()),
                ..muster_params(&["@method"])
            },
            SignError::InvalidParameter("nonce"),
        ),
        (
            SigningParams {
                created: Some(i64::MAX),
                ..muster_params(&["@method"])
            },
            SignError::InvalidParameter("created"),
        ),
        (
            SigningParams {
                alg: Some(Algorithm::Ed25519),
                ..muster_params(&["@method"])
            },
            SignError::AlgorithmMismatch,
        ),
    ];
    for (params, expected) in cases {
        assert_eq!(sign(&msg.req(), &params, &key), Err(expected));
    }
    let relative = Msg::new("GET", "/api/v1/people");
    assert_eq!(
        sign(&relative.req(), &muster_params(&["@path"]), &key),
        Err(SignError::InvalidTargetUri)
    );
}
