//! The claim rules of `private_key_jwt` (RFC 7523 3) and login-sync tokens
//! (RFC 7519 4.1), each refusal on its own, the signature checks with a
//! real key, and the replay of the `jwt` fuzz corpus.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod assertion;
mod fuzz_corpus;
mod helpers;
mod login;
