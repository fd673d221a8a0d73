//! Verifying a signature (RFC 9421 section 3.2) under a policy: which
//! components must be covered, which parameters must be present, how much
//! clock skew is tolerated. Nonce reuse is the caller's check: it owns the
//! store that remembers nonces.

use crate::base::{build_base, component_error, parse_dictionary, parse_signature_input};
use crate::digest::verify_content_digest;
use crate::error::VerifyError;
use crate::keys::{Algorithm, VerifyingKey};
use crate::request::Request;
use crate::sign::hmac_sha256;
use crate::{CONTENT_DIGEST, SIGNATURE};
use sfv::{BareItem, ListEntry};
use subtle::ConstantTimeEq;

/// Finds the key for a `keyid`. Implemented for closures, so a caller can
/// pass `&|keyid: &str| keys.get(keyid).cloned()`.
pub trait KeyResolver {
    fn resolve(&self, keyid: &str) -> Option<VerifyingKey>;
}

impl<F> KeyResolver for F
where
    F: Fn(&str) -> Option<VerifyingKey>,
{
    fn resolve(&self, keyid: &str) -> Option<VerifyingKey> {
        self(keyid)
    }
}

/// What a signature must satisfy besides being cryptographically valid.
#[derive(Debug, Clone)]
pub struct VerifyPolicy {
    /// Components that must be covered (e.g. `@method`, `@target-uri`).
    pub required_components: Vec<String>,
    /// Require the `created` parameter.
    pub require_created: bool,
    /// Require the `nonce` parameter.
    pub require_nonce: bool,
    /// When the request has non-empty content, require `content-digest` to be
    /// covered. A covered `Content-Digest` is always checked against
    /// `Request::body` when the body is given.
    pub require_content_digest: bool,
    /// How far `created` may lie from `now`, in either direction, in seconds.
    pub max_skew_secs: i64,
    /// The current time, Unix seconds (injected so tests need no clock).
    pub now: i64,
}

impl VerifyPolicy {
    /// Muster's policy for HMAC-signed client requests (docs/authentication.md#signed-requests): `@method`
    /// and `@target-uri` covered, `content-digest` covered when there is a
    /// body, `created` and `nonce` present, 300 s either way.
    pub fn muster(now: i64) -> Self {
        Self {
            required_components: vec!["@method".to_owned(), "@target-uri".to_owned()],
            require_created: true,
            require_nonce: true,
            require_content_digest: true,
            max_skew_secs: 300,
            now,
        }
    }
}

/// A signature that verified, with the parameters the caller still needs
/// (the nonce, to refuse a replay; the keyid, to know the client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSignature {
    pub label: String,
    pub keyid: String,
    pub algorithm: Algorithm,
    pub components: Vec<String>,
    pub created: Option<i64>,
    pub expires: Option<i64>,
    pub nonce: Option<String>,
    pub tag: Option<String>,
}

/// The `keyid` of the signature `label` (or the first one), without
/// verifying anything: lets an async caller load the key before calling
/// [`verify`] with a resolver that only looks it up.
pub fn signature_keyid(request: &Request<'_>, label: Option<&str>) -> Result<String, VerifyError> {
    parse_signature_input(request, label)?
        .keyid
        .ok_or(VerifyError::MissingKeyId)
}

/// Verifies the signature `label` (or the first one in `Signature-Input`).
///
/// Cheap policy checks run before the cryptographic check, so a flood of
/// stale or incomplete signatures costs no HMAC or curve operations.
pub fn verify<R: KeyResolver + ?Sized>(
    request: &Request<'_>,
    label: Option<&str>,
    resolver: &R,
    policy: &VerifyPolicy,
) -> Result<VerifiedSignature, VerifyError> {
    let input = parse_signature_input(request, label)?;
    let signature = signature_value(request, &input.label)?;

    for required in &policy.required_components {
        if !input.components.contains(required) {
            return Err(VerifyError::MissingComponent(required.clone()));
        }
    }
    let has_content = request.body.is_some_and(|b| !b.is_empty());
    let digest_covered = input.components.iter().any(|c| c == CONTENT_DIGEST);
    if policy.require_content_digest && has_content && !digest_covered {
        return Err(VerifyError::MissingComponent(CONTENT_DIGEST.to_owned()));
    }
    if policy.require_created && input.created.is_none() {
        return Err(VerifyError::MissingCreated);
    }
    if policy.require_nonce && input.nonce.is_none() {
        return Err(VerifyError::MissingNonce);
    }
    if let Some(created) = input.created {
        if created > policy.now.saturating_add(policy.max_skew_secs) {
            return Err(VerifyError::CreatedInFuture);
        }
        if created < policy.now.saturating_sub(policy.max_skew_secs) {
            return Err(VerifyError::Expired);
        }
    }
    if let Some(expires) = input.expires {
        if policy.now > expires {
            return Err(VerifyError::Expired);
        }
    }

    let keyid = input.keyid.clone().ok_or(VerifyError::MissingKeyId)?;
    let key = resolver.resolve(&keyid).ok_or(VerifyError::UnknownKey)?;
    let algorithm = key.algorithm();
    if let Some(alg) = &input.alg {
        if Algorithm::from_name(alg) != Some(algorithm) {
            return Err(VerifyError::AlgorithmMismatch);
        }
    }

    let base =
        build_base(request, &input.components, &input.serialized).map_err(component_error)?;
    if !raw_verify(&key, base.as_bytes(), &signature) {
        return Err(VerifyError::BadSignature);
    }

    // The signature vouches for the Content-Digest field; now hold the
    // content to it (RFC 9530 section 6.1, RFC 9421 section 7.2.8).
    if digest_covered {
        if let Some(body) = request.body {
            let field = request
                .combined_header(CONTENT_DIGEST)
                .ok_or_else(|| VerifyError::ComponentUnavailable(CONTENT_DIGEST.to_owned()))?;
            verify_content_digest(&field, body)?;
        }
    }

    Ok(VerifiedSignature {
        label: input.label,
        keyid,
        algorithm,
        components: input.components,
        created: input.created,
        expires: input.expires,
        nonce: input.nonce,
        tag: input.tag,
    })
}

/// The byte sequence under `label` in the `Signature` field.
fn signature_value(request: &Request<'_>, label: &str) -> Result<Vec<u8>, VerifyError> {
    let field = request
        .combined_header(SIGNATURE)
        .ok_or(VerifyError::MissingSignature)?;
    let dict = parse_dictionary(&field, "Signature")?;
    match dict.get(label) {
        Some(ListEntry::Item(item)) => match &item.bare_item {
            BareItem::ByteSequence(bytes) => Ok(bytes.clone()),
            _ => Err(VerifyError::Malformed(
                "a Signature member is not a byte sequence".to_owned(),
            )),
        },
        Some(ListEntry::InnerList(_)) => Err(VerifyError::Malformed(
            "a Signature member is not a byte sequence".to_owned(),
        )),
        None => Err(VerifyError::MissingSignature),
    }
}

fn raw_verify(key: &VerifyingKey, message: &[u8], signature: &[u8]) -> bool {
    match key {
        VerifyingKey::HmacSha256(k) => {
            let expected = hmac_sha256(k.bytes(), message);
            !expected.is_empty() && bool::from(expected.as_slice().ct_eq(signature))
        }
        VerifyingKey::Ed25519(k) => match ed25519_dalek::Signature::from_slice(signature) {
            Ok(sig) => k.verify_strict(message, &sig).is_ok(),
            Err(_) => false,
        },
    }
}
