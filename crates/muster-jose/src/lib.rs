//! JOSE for Muster's token checks, without I/O: the signature of a compact
//! JWS (RFC 7515) through `ring` ([`jws`]), public JWKs, JWK Sets and PEM
//! keys bound to one algorithm each ([`jwk`], RFC 7517, RFC 7518, RFC 8037),
//! the claim rules of a `private_key_jwt` client assertion ([`assertion`],
//! RFC 7523 3) and those of a login-sync token ([`login`], RFC 7519 4.1).
//!
//! What needs a store (the replay checks of `jti`), a cache or the network
//! (fetching an issuer's JWK Set) stays with the server, which maps this
//! crate's errors to its answers. [`fuzz`] holds the entry point of the
//! `jwt` fuzz target (`docs/fuzzing.md`).
#![forbid(unsafe_code)]

pub mod assertion;
pub mod fuzz;
pub mod jwk;
pub mod jws;
pub mod login;

pub use jsonwebtoken::{Algorithm, DecodingKey, Header};
