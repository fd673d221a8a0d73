//! HTTP Message Signatures (RFC 9421) and `Content-Digest` (RFC 9530) for
//! Muster's signed requests (docs/authentication.md#signed-requests): the client SDK signs, the server
//! verifies, and both agree byte for byte because both go through this crate.
//!
//! The crate knows no HTTP framework. A request is modelled as a small
//! [`Request`] (method, target URI, header lines, optional body) that the
//! server (axum) and the client (reqwest) each build from their own types.
//!
//! - [`sign`] produces the `Signature-Input` and `Signature` field values.
//! - [`verify`] checks one signature against a [`VerifyPolicy`] (required
//!   components, `created`/`nonce`, clock skew, `Content-Digest`) and returns
//!   the [`VerifiedSignature`]; the caller enforces nonce uniqueness.
//! - [`content_digest`] and [`verify_content_digest`] implement RFC 9530.
//!
//! Supported algorithms: `hmac-sha256` and `ed25519` (RFC 9421 section 3.3).
//! Supported components: `@method`, `@target-uri`, `@authority`, `@scheme`,
//! `@request-target`, `@path`, `@query` and header fields without component
//! parameters.
#![forbid(unsafe_code)]

mod base;
mod digest;
mod error;
pub mod fuzz;
mod keys;
mod request;
mod sign;
mod verify;

pub use base::signature_base;
pub use digest::{content_digest, verify_content_digest, DigestAlgorithm};
pub use error::{SignError, VerifyError};
pub use keys::{Algorithm, HmacKey, SigningKey, VerifyingKey};
pub use request::Request;
pub use sign::{sign, SignedHeaders, SigningParams};
pub use verify::{signature_keyid, verify, KeyResolver, VerifiedSignature, VerifyPolicy};

/// Header field carrying the signature metadata (RFC 9421 section 4.1).
pub const SIGNATURE_INPUT: &str = "signature-input";
/// Header field carrying the signature values (RFC 9421 section 4.2).
pub const SIGNATURE: &str = "signature";
/// Header field carrying the content digest (RFC 9530 section 2).
pub const CONTENT_DIGEST: &str = "content-digest";
