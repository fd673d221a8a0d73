//! End-to-end tests of the gateway: a real server on a loopback port, a
//! fresh database per test, real HTTP. SQLite by default; with
//! `MUSTER_TEST_BACKEND=postgres` each test gets a fresh PostgreSQL
//! database (see `helpers::TestDb`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;
mod support;

mod admin;
mod admin_tokens;
mod audit;
mod auth_limits;
mod bodies;
mod data_files;
mod encrypted;
mod fairness;
mod fanout;
mod files;
mod fuzzing;
mod imports;
mod instances;
mod isolation;
mod login_sync;
mod master_key;
mod metrics;
mod nats;
mod oauth;
mod outbound;
mod people;
mod private_key_jwt;
mod provisioning;
mod read_policy;
mod schemathesis;
mod scim;
mod scim_tester;
mod semantics;
mod signing;
mod spool;
mod transport;
mod webhooks;
mod workers;
mod write_policy;
