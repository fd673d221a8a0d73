//! Integration tests of muster-httpsig: the RFC's own test vectors first,
//! then one refusal per `VerifyError`.
// Test helpers outside #[test] functions panic on broken fixtures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fuzz_corpus;
mod helpers;
mod refusals;
mod rfc9421;
mod rfc9530;
mod round_trip;
