//! Moving a whole installation from one backend to another
//! (`muster migrate`): the backend-neutral layout of every table worth
//! moving, in an order that satisfies foreign keys, and the row cells that
//! travel between a [`Source`] and a [`Target`].
//!
//! Rows stream: a source hands them to the target one at a time, so a
//! table of a million people is never held in memory. Values move as
//! stored: client secret and token digests, sealed key secrets (the master
//! key file stays the same), fingerprints, and the audit chain's text and
//! hashes byte for byte, so the chain verifies on the target.
//!
//! What is deliberately not moved: spent access tokens (consumed, revoked
//! or expired; live ones move, so admins and clients keep working), expired
//! signature nonces, and import leases (the instance that held one is gone).
use crate::Result;
use chrono::{DateTime, Utc};

/// How a column's value travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Int,
    Bool,
    Time,
    /// JSON as text (the target may store it as `jsonb`).
    Json,
    Bytes,
    /// A UUID, travelling as its hyphenated text (SQLite keeps 16 bytes).
    Uuid,
    /// An audit hash, travelling as its hex text (SQLite keeps 32 bytes,
    /// or the text in entries of earlier releases).
    Hash,
}

/// One value of a row. `Json` and `Uuid` columns travel as `Text`.
#[derive(Clone, PartialEq, Eq)]
pub enum Cell {
    Null,
    Text(String),
    Int(i64),
    Bool(bool),
    Time(DateTime<Utc>),
    Bytes(Vec<u8>),
}

impl std::fmt::Debug for Cell {
    /// Only the variant: cells hold personnel data and sealed secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Cell::Null => "Null",
            Cell::Text(_) => "Text(..)",
            Cell::Int(_) => "Int(..)",
            Cell::Bool(_) => "Bool(..)",
            Cell::Time(_) => "Time(..)",
            Cell::Bytes(_) => "Bytes(..)",
        })
    }
}

/// A table as it moves: its name and columns, the same on both sides.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    pub name: &'static str,
    pub columns: &'static [(&'static str, Kind)],
}

use Kind::*;

/// Every table that moves, parents before children. A backend's own
/// bookkeeping (PostgreSQL's chain heads, identity counters, SQLite's
/// split of people into two tables) is derived by the target or read
/// together by the source.
pub const TABLES: &[Table] = &[
    Table {
        name: "tenants",
        columns: &[("id", Text), ("name", Text), ("created_at", Time)],
    },
    Table {
        name: "principals",
        columns: &[
            ("id", Text),
            ("tenant_id", Text),
            ("kind", Text),
            ("client_id", Text),
            ("name", Text),
            ("role", Text),
            ("token_policy", Text),
            ("token_ttl_seconds", Int),
            ("write_policy", Json),
            ("disabled", Bool),
            ("created_at", Time),
            ("scim_key", Text),
            ("read_policy", Json),
        ],
    },
    Table {
        name: "client_secrets",
        columns: &[
            ("principal_id", Text),
            ("digest", Bytes),
            ("created_at", Time),
            ("expires_at", Time),
        ],
    },
    Table {
        name: "tokens",
        columns: &[
            ("digest", Bytes),
            ("principal_id", Text),
            ("scope", Text),
            ("one_time", Bool),
            ("created_at", Time),
            ("expires_at", Time),
            ("consumed_at", Time),
            ("revoked_at", Time),
            ("id", Text),
            ("name", Text),
            ("last_used_at", Time),
        ],
    },
    Table {
        name: "client_keys",
        columns: &[
            ("principal_id", Text),
            ("hmac_sealed", Bytes),
            ("ed25519_public", Bytes),
            ("jwt_keys", Text),
            ("updated_at", Time),
            ("hmac_previous_sealed", Bytes),
            ("hmac_previous_until", Time),
        ],
    },
    Table {
        name: "intake_policies",
        columns: &[("principal_id", Text), ("policy", Json)],
    },
    Table {
        name: "auth_nonces",
        columns: &[
            ("principal_id", Text),
            ("nonce", Text),
            ("expires_at", Time),
        ],
    },
    Table {
        name: "mappings",
        columns: &[
            ("tenant_id", Text),
            ("name", Text),
            ("version", Int),
            ("document", Json),
            ("created_at", Time),
            ("created_by", Text),
        ],
    },
    Table {
        name: "keys",
        columns: &[
            ("id", Text),
            ("tenant_id", Text),
            ("kind", Text),
            ("algorithm", Text),
            ("purpose", Text),
            ("key_ids", Json),
            ("public_key", Text),
            ("sealed_secret", Bytes),
            ("state", Text),
            ("created_at", Time),
            ("updated_at", Time),
        ],
    },
    Table {
        name: "issuers",
        columns: &[
            ("id", Text),
            ("tenant_id", Text),
            ("name", Text),
            ("issuer", Text),
            ("audience", Text),
            ("settings", Json),
            ("hs256_sealed", Bytes),
            ("created_at", Time),
        ],
    },
    Table {
        name: "people",
        columns: &[
            ("tenant_id", Text),
            ("external_id", Text),
            ("version", Int),
            ("fingerprint", Bytes),
            ("attrs", Json),
            ("roles", Json),
            ("created_at", Time),
            ("updated_at", Time),
            ("updated_by", Text),
            ("on_behalf_of", Text),
            ("source", Text),
            ("source_system", Text),
            ("due_on", Text),
            ("scim_id", Text),
        ],
    },
    Table {
        name: "scim_groups",
        columns: &[
            ("tenant_id", Text),
            ("id", Text),
            ("display_name", Text),
            ("external_id", Text),
            ("version", Int),
            ("created_at", Time),
            ("updated_at", Time),
        ],
    },
    Table {
        name: "imports",
        columns: &[
            ("id", Text),
            ("tenant_id", Text),
            ("principal_id", Text),
            ("client_id", Text),
            ("on_behalf_of", Text),
            ("idempotency_key", Text),
            ("mapping", Text),
            ("mapping_version", Int),
            ("mode", Text),
            ("dry_run", Bool),
            ("format", Text),
            ("options", Json),
            ("bytes", Int),
            ("state", Text),
            ("rows_total", Int),
            ("created", Int),
            ("updated", Int),
            ("unchanged", Int),
            ("deactivated", Int),
            ("failed", Int),
            ("checkpoint_row", Int),
            ("error_code", Text),
            ("error_message", Text),
            ("created_at", Time),
            ("updated_at", Time),
            ("finished_at", Time),
        ],
    },
    Table {
        name: "import_errors",
        columns: &[
            ("import_id", Text),
            ("row_no", Int),
            ("col", Text),
            ("attribute", Text),
            ("code", Text),
            ("message", Text),
        ],
    },
    Table {
        name: "audit",
        columns: &[
            ("tenant_id", Text),
            ("seq", Int),
            ("at", Text),
            ("principal", Text),
            ("on_behalf_of", Text),
            ("source", Text),
            ("action", Text),
            ("person", Text),
            ("detail", Text),
            ("prev_hash", Hash),
            ("hash", Hash),
        ],
    },
    Table {
        name: "events",
        columns: &[
            ("tenant_id", Text),
            ("cursor", Int),
            ("id", Uuid),
            ("kind", Text),
            ("external_id", Text),
            ("version", Int),
            ("audit_seq", Int),
        ],
    },
    Table {
        name: "subscriptions",
        columns: &[
            ("id", Text),
            ("tenant_id", Text),
            ("url", Text),
            ("events", Json),
            ("attributes", Json),
            ("secret_sealed", Bytes),
            ("previous_secret_sealed", Bytes),
            ("previous_until", Time),
            ("state", Text),
            ("disabled_reason", Text),
            ("cursor", Int),
            ("attempt", Int),
            ("next_attempt_at", Time),
            ("redeliver_from", Int),
            ("redeliver_to", Int),
            ("created_at", Time),
            ("updated_at", Time),
            ("owner_client_id", Text),
            ("kind", Text),
            ("target", Json),
            ("sink_progress", Json),
        ],
    },
    Table {
        name: "subscription_links",
        columns: &[
            ("subscription_id", Text),
            ("kind", Text),
            ("key", Text),
            ("target_id", Text),
            ("sent", Json),
        ],
    },
    Table {
        name: "deliveries",
        columns: &[
            ("seq", Int),
            ("subscription_id", Text),
            ("event_id", Text),
            ("cursor", Int),
            ("attempt", Int),
            ("at", Time),
            ("status", Int),
            ("outcome", Text),
            ("error", Text),
            ("manual", Bool),
        ],
    },
];

/// Hands rows to the target one at a time.
pub type Emit<'a> = &'a mut dyn FnMut(Vec<Cell>) -> Result<()>;

/// Where an installation is read from: one consistent snapshot.
pub trait Source {
    /// Calls `emit` with each row of `table` worth moving, cells in the
    /// order of `table.columns`, and returns how many rows it left out on
    /// purpose (spent tokens, expired nonces).
    fn each_row(&mut self, table: &Table, emit: Emit<'_>) -> Result<u64>;
}

/// Where an installation is written to, all in one transaction.
pub trait Target {
    /// `true` when the target holds no data at all (a fresh database).
    fn is_empty(&mut self) -> Result<bool>;
    /// Writes the rows `fill` produces into `table`; returns how many.
    fn copy_table(
        &mut self,
        table: &Table,
        fill: &mut dyn FnMut(Emit<'_>) -> Result<u64>,
    ) -> Result<(u64, u64)>;
    /// Derives the target's own bookkeeping and commits everything.
    fn commit(self: Box<Self>) -> Result<()>;
}

/// What moved: per table, rows copied and rows left out on purpose.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub tables: Vec<(&'static str, u64, u64)>,
}

/// Moves every table of [`TABLES`] from `source` to `target` and commits.
/// Refuses a target that holds anything. On any error nothing is
/// committed, so the move can simply be run again.
pub fn run(source: &mut dyn Source, mut target: Box<dyn Target>) -> Result<Report> {
    if !target.is_empty()? {
        return Err(crate::StoreError::Conflict(
            "the target database is not empty; migrate into a freshly created database".into(),
        ));
    }
    let mut report = Report::default();
    for table in TABLES {
        let (copied, skipped) =
            target.copy_table(table, &mut |emit| source.each_row(table, emit))?;
        report.tables.push((table.name, copied, skipped));
    }
    target.commit()?;
    Ok(report)
}
