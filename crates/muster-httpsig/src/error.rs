//! Errors at the crate boundary. Each verification failure has its own
//! variant and a stable machine code (for the 401 body and the audit log);
//! no message carries key material.

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// No `Signature-Input`/`Signature` pair for the requested label.
    #[error("the request carries no signature with the requested label")]
    MissingSignature,
    /// The signature fields are not valid structured fields, or their
    /// members have the wrong types. The detail names the field, never a key.
    #[error("malformed signature fields: {0}")]
    Malformed(String),
    /// The signature parameters name no `keyid`.
    #[error("the signature names no keyid")]
    MissingKeyId,
    /// The key resolver knows no key for the `keyid`.
    #[error("unknown key")]
    UnknownKey,
    /// The `alg` parameter names another algorithm than the key's, or one
    /// this crate does not implement.
    #[error("the alg parameter does not match the key")]
    AlgorithmMismatch,
    /// The signature value does not verify over the signature base.
    #[error("the signature does not verify")]
    BadSignature,
    /// `created` is older than the allowed skew, or `expires` has passed.
    #[error("the signature has expired")]
    Expired,
    /// `created` lies further in the future than the allowed skew.
    #[error("the signature was created in the future")]
    CreatedInFuture,
    /// The policy requires `created` and the signature has none.
    #[error("the signature has no created parameter")]
    MissingCreated,
    /// The policy requires `nonce` and the signature has none.
    #[error("the signature has no nonce parameter")]
    MissingNonce,
    /// A component the policy requires is not covered by the signature.
    #[error("required component {0} is not covered by the signature")]
    MissingComponent(String),
    /// A covered component cannot be taken from the request (absent field).
    #[error("covered component {0} is absent from the request")]
    ComponentUnavailable(String),
    /// A covered component is not one this crate implements (unknown derived
    /// component, or component parameters such as `;sf` or `;req`).
    #[error("covered component {0} is not supported")]
    UnsupportedComponent(String),
    /// `Content-Digest` does not match the content.
    #[error("Content-Digest does not match the content")]
    DigestMismatch,
    /// `Content-Digest` names no algorithm this crate accepts (sha-256, sha-512).
    #[error("Content-Digest uses no supported algorithm")]
    UnsupportedDigest,
}

impl VerifyError {
    /// A short, stable, machine-readable reason.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingSignature => "missing_signature",
            Self::Malformed(_) => "malformed",
            Self::MissingKeyId => "missing_keyid",
            Self::UnknownKey => "unknown_key",
            Self::AlgorithmMismatch => "alg_mismatch",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::CreatedInFuture => "created_in_future",
            Self::MissingCreated => "missing_created",
            Self::MissingNonce => "missing_nonce",
            Self::MissingComponent(_) => "missing_component",
            Self::ComponentUnavailable(_) => "component_unavailable",
            Self::UnsupportedComponent(_) => "unsupported_component",
            Self::DigestMismatch => "digest_mismatch",
            Self::UnsupportedDigest => "unsupported_digest",
        }
    }
}

/// Why a request could not be signed. These are caller mistakes, not attacks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The label is not a valid structured-field key (lowercase, `a-z0-9_-.*`).
    #[error("invalid signature label {0:?}")]
    InvalidLabel(String),
    /// A component name is not a supported derived component or a lowercase
    /// field name, or appears twice.
    #[error("invalid or unsupported component {0:?}")]
    InvalidComponent(String),
    /// A covered component is absent from the request.
    #[error("covered component {0} is absent from the request")]
    ComponentUnavailable(String),
    /// A component value cannot be put in a signature base (line break,
    /// control character), or the method is not a token.
    #[error("component {0} has a value that cannot be signed")]
    InvalidComponentValue(String),
    /// The target URI is not an absolute URI with an authority.
    #[error("the target URI is not absolute")]
    InvalidTargetUri,
    /// A parameter value cannot be serialised (non-ASCII string, integer out
    /// of range).
    #[error("the {0} parameter cannot be serialised")]
    InvalidParameter(&'static str),
    /// `alg` names another algorithm than the key's.
    #[error("the alg parameter does not match the key")]
    AlgorithmMismatch,
}
