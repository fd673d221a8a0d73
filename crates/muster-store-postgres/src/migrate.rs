//! Schema migrations: SQL files embedded in the binary, applied in order on
//! open and recorded in `schema_migrations`. A session-level advisory lock
//! makes instances that open the database at the same time take turns, so
//! each migration runs once; each runs in its own transaction with its
//! record, so a failed one leaves nothing half applied.
use crate::{be, Result};
use muster_store::StoreError;
use postgres::Client;

/// (version, name, SQL), in version order. Never edit a released entry:
/// add the next one.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "initial", include_str!("../migrations/0001_initial.sql")),
    (2, "keys", include_str!("../migrations/0002_keys.sql")),
    (
        3,
        "client_keys",
        include_str!("../migrations/0003_client_keys.sql"),
    ),
    (4, "issuers", include_str!("../migrations/0004_issuers.sql")),
    (5, "outbox", include_str!("../migrations/0005_outbox.sql")),
    (
        6,
        "import_semantics",
        include_str!("../migrations/0006_import_semantics.sql"),
    ),
    (7, "rotate", include_str!("../migrations/0007_rotate.sql")),
    (
        8,
        "fanout_leases",
        include_str!("../migrations/0008_fanout_leases.sql"),
    ),
    (
        9,
        "issuers_per_tenant",
        include_str!("../migrations/0009_issuers_per_tenant.sql"),
    ),
    (
        10,
        "admin_tokens",
        include_str!("../migrations/0010_admin_tokens.sql"),
    ),
    (11, "scim", include_str!("../migrations/0011_scim.sql")),
    (
        12,
        "scim_ids_v7",
        include_str!("../migrations/0012_scim_ids_v7.sql"),
    ),
    (
        13,
        "read_policies",
        include_str!("../migrations/0013_read_policies.sql"),
    ),
    (
        14,
        "subscription_kinds",
        include_str!("../migrations/0014_subscription_kinds.sql"),
    ),
    (
        15,
        "provisioning",
        include_str!("../migrations/0015_provisioning.sql"),
    ),
];

/// The advisory lock key that guards migrations ("muster-m" in ASCII).
/// Advisory locks are per database, so other databases on the server are
/// not affected.
const LOCK_KEY: i64 = 0x6d75_7374_6572_2d6d;

/// The newest schema version this build knows.
pub(crate) fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

/// Brings the database up to [`latest`]. Idempotent.
pub(crate) fn run(client: &mut Client) -> Result<()> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .map_err(be)?;
    let out = apply(client);
    // On error the connection is dropped by the caller, which releases the
    // lock too; unlocking here keeps a reused connection clean.
    let unlock = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .map_err(be);
    out.and(unlock.map(|_| ()))
}

fn apply(client: &mut Client) -> Result<()> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
        )
        .map_err(be)?;
    let current: i32 = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            &[],
        )
        .map_err(be)?
        .try_get(0)
        .map_err(be)?;
    if current > latest() {
        return Err(StoreError::backend(format!(
            "the database has schema version {current}, newer than this build ({})",
            latest()
        )));
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        let mut tx = client.transaction().map_err(be)?;
        tx.batch_execute(sql).map_err(|e| {
            StoreError::caused(
                format!("migration {version} ({name}) failed"),
                crate::Cause::of(&e, None),
            )
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .map_err(be)?;
        tx.commit().map_err(be)?;
        tracing::info!(version, name, "applied a PostgreSQL schema migration");
    }
    Ok(())
}
