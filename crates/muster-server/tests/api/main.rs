//! End-to-end tests of the gateway: a real server on a loopback port, a
//! fresh SQLite database per test, real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod admin;
mod audit;
mod encrypted;
mod imports;
mod oauth;
mod people;
mod private_key_jwt;
mod signing;
mod webhooks;
