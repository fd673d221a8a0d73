//! Muster's gateway. Its rooms, from the outside in (see `docs/architecture.md`):
//! `app` assembles the router and starts the jobs, `api` holds the JSON API's
//! thin handlers, `auth` every way a caller proves who it is, `ops` the
//! operations every door calls (each change with its audit entry), `jobs` the
//! background work (imports, effective dates, deliveries), `http` what every
//! request and outbound call shares (errors, bodies, the listener), and
//! `base` what all of them stand on (configuration, the shared state, the
//! master key ring).
//!
//! [`serve`] is what `muster serve` runs; [`spawn`] starts the same server on
//! an already-bound listener with an injected clock, for tests.
#![forbid(unsafe_code)]

mod api;
mod app;
mod auth;
mod base;
pub mod fuzz;
mod http;
mod jobs;
mod ops;
mod scim;

pub use app::{openapi, serve, spawn, verify_audit, Running};
pub use base::config;
