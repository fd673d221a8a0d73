//! The SDK against a stand-in gateway: a small axum app that issues
//! tokens (reusable or one-time), refuses consumed ones the way Muster
//! does, and records what it received. The real server is exercised by
//! `muster-server`'s and the CLI's own tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fake;
mod imports;
mod tokens;
