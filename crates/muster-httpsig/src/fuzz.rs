//! The entry point of the `httpsig` fuzz target (`fuzz/`, see
//! `docs/fuzzing.md`), also run over the committed corpus by this crate's
//! `tests/fuzz_corpus.rs`: arbitrary bytes read as a request whose
//! `Signature-Input`, `Signature` and `Content-Digest` fields go through the
//! verifier. It returns for every input; a panic is a bug.
//!
//! Input layout (text, like an HTTP/1.1 request): the first line is
//! `METHOD TARGET-URI`, each further line up to an empty one is a field
//! `name: value`, and what follows the empty line is the body.

use crate::base::{build_base, parse_signature_input};
use crate::digest::verify_content_digest;
use crate::error::VerifyError;
use crate::keys::{HmacKey, VerifyingKey};
use crate::request::Request;
use crate::sign::hmac_sha256;
use crate::verify::{signature_keyid, verify, VerifyPolicy};
use crate::{signature_base, CONTENT_DIGEST, SIGNATURE};
use sfv::{DictSerializer, KeyRef};

/// RFC 9421 Appendix B.1.5, `test-shared-secret` (base64 decoded): seeds
/// made from the RFC's examples then verify for real.
const SHARED_SECRET: [u8; 64] = [
    0xbb, 0x3b, 0xc9, 0x7c, 0x1e, 0x2e, 0xdc, 0xdd, 0x09, 0xcb, 0x84, 0xfb, 0x35, 0x9e, 0xf9, 0x30,
    0x35, 0x5c, 0xaf, 0xcc, 0xd2, 0x4c, 0x89, 0xde, 0x74, 0x9b, 0x64, 0x81, 0xcb, 0xb8, 0xe9, 0x85,
    0xb8, 0x5c, 0x1c, 0xb3, 0x34, 0x98, 0xf1, 0x05, 0xdb, 0x63, 0x52, 0x47, 0x49, 0x3c, 0x1b, 0x5b,
    0x98, 0x78, 0x48, 0x0e, 0x2e, 0xa9, 0x72, 0x5f, 0x23, 0xb1, 0xab, 0x23, 0x95, 0x33, 0x2d, 0x0d,
];

/// RFC 9421 Appendix B.1.4, `test-key-ed25519`, the raw public key.
const ED25519_PUBLIC: [u8; 32] = [
    0x26, 0xb4, 0x0b, 0x8f, 0x93, 0xff, 0xf3, 0xd8, 0x97, 0x11, 0x2f, 0x7e, 0xbc, 0x58, 0x2b, 0x23,
    0x2d, 0xbd, 0x72, 0x51, 0x7d, 0x08, 0x2f, 0xe8, 0x3c, 0xfb, 0x30, 0xdd, 0xce, 0x43, 0xd1, 0xbb,
];

/// The `created` of the RFC examples: a policy's clock for the seeds.
const RFC_CREATED: i64 = 1_618_884_473;

fn resolve(keyid: &str) -> Option<VerifyingKey> {
    match keyid {
        "test-key-ed25519" => ed25519_dalek::VerifyingKey::from_bytes(&ED25519_PUBLIC)
            .ok()
            .map(VerifyingKey::Ed25519),
        // Any other id has a key, so the fuzzer reaches the base and the
        // cryptographic check without guessing ids.
        _ => Some(VerifyingKey::HmacSha256(HmacKey::new(SHARED_SECRET))),
    }
}

/// A policy that lets everything through but the cryptography, so that
/// the later steps are reached.
fn lenient() -> VerifyPolicy {
    VerifyPolicy {
        required_components: Vec::new(),
        require_created: false,
        require_nonce: false,
        require_content_digest: false,
        max_skew_secs: i64::MAX,
        now: RFC_CREATED,
    }
}

/// Splits the input into a request (see the module docs).
fn request(text: &str) -> Option<Request<'_>> {
    let (head, body) = match text.split_once("\n\n") {
        Some((h, b)) => (h, Some(b.as_bytes())),
        None => (text, None),
    };
    let mut lines = head.lines();
    let (method, uri) = lines.next()?.split_once(' ')?;
    let mut req = Request::new(method, uri);
    for line in lines {
        let (name, value) = line.split_once(':')?;
        req.headers.push((name, value.trim_start_matches(' ')));
    }
    req.body = body;
    Some(req)
}

/// Runs the verifier's parsing and checks on `data`.
pub fn signature_headers(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(req) = request(text) else {
        return;
    };
    let _ = signature_keyid(&req, None);
    let _ = signature_base(&req, None);
    let _ = verify(&req, None, &resolve, &VerifyPolicy::muster(RFC_CREATED));
    let _ = verify(&req, None, &resolve, &lenient());
    if let (Some(field), Some(body)) = (req.combined_header(CONTENT_DIGEST), req.body) {
        let _ = verify_content_digest(&field, body);
    }
    resign_and_verify(&req);
}

/// Signs the request's own `Signature-Input` with the HMAC key and checks
/// that the verifier accepts the signature: the base it signs and the base
/// it checks must be the same bytes for every input.
fn resign_and_verify(req: &Request<'_>) {
    let Ok(input) = parse_signature_input(req, None) else {
        return;
    };
    // A signature that covers the `Signature` field changes with it.
    if input.components.iter().any(|c| c == SIGNATURE)
        || input.keyid.as_deref() == Some("test-key-ed25519")
    {
        return;
    }
    let Ok(base) = build_base(req, &input.components, &input.serialized) else {
        return;
    };
    let tag = hmac_sha256(&SHARED_SECRET, base.as_bytes());
    let Ok(label) = KeyRef::from_str(&input.label) else {
        return;
    };
    let mut ser = DictSerializer::new();
    _ = ser.bare_item(label, tag.as_slice());
    let Some(field) = ser.finish() else {
        return;
    };
    let mut signed = req.clone();
    signed
        .headers
        .retain(|(n, _)| !n.eq_ignore_ascii_case(SIGNATURE));
    signed.headers.push((SIGNATURE, &field));
    match verify(&signed, Some(&input.label), &resolve, &lenient()) {
        Err(VerifyError::BadSignature) => {
            panic!("a signature over the verifier's own base did not verify")
        }
        Ok(v) => assert_eq!(v.label, input.label),
        Err(_) => {}
    }
}
