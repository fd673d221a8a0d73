//! Writing a whole installation into a fresh PostgreSQL database for
//! `muster migrate` (see [`muster_store::transfer`]). Everything happens in
//! one transaction: binary `COPY` per table (rows stream in, typed as the
//! target columns are), then the backend's own bookkeeping is derived
//! (each tenant's audit chain head, the delivery log's sequence) and the
//! whole is committed, or nothing is.
use crate::{be, Cause, Result};
use bytes::{BufMut, BytesMut};
use muster_store::transfer::{Cell, Emit, Table, Target, TABLES};
use muster_store::StoreError;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{IsNull, ToSql, Type};
use postgres::{Client, Config, NoTls};
use std::str::FromStr;

/// A fresh PostgreSQL database being filled, inside one open transaction.
pub struct PostgresTarget {
    client: Client,
    config: Config,
}

impl std::fmt::Debug for PostgresTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresTarget")
            .field("dbname", &self.config.get_dbname())
            .finish_non_exhaustive()
    }
}

impl PostgresTarget {
    /// Connects to `url`, brings the schema to this build's version and
    /// opens the transaction everything is written in.
    pub fn open(url: &str) -> Result<Self> {
        drop(crate::PostgresStore::open(url)?);
        let config = Config::from_str(url).map_err(|e| {
            StoreError::caused(
                "the PostgreSQL connection URL is not valid",
                Cause::of(&e, None),
            )
        })?;
        let mut client = config.connect(NoTls).map_err(|e| {
            StoreError::caused("cannot connect to PostgreSQL", Cause::of(&e, Some(&config)))
        })?;
        client.batch_execute("BEGIN").map_err(be)?;
        Ok(Self { client, config })
    }
}

/// A cell bound to a column of whatever type the target has there.
struct Bind<'a>(&'a Cell);

impl std::fmt::Debug for Bind<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

type BoxError = Box<dyn std::error::Error + Sync + Send>;

impl ToSql for Bind<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> std::result::Result<IsNull, BoxError> {
        match (self.0, ty) {
            (Cell::Null, _) => Ok(IsNull::Yes),
            (Cell::Text(s), t) if *t == Type::JSONB => {
                // jsonb's binary form: a version byte, then the JSON text.
                out.put_u8(1);
                out.put_slice(s.as_bytes());
                Ok(IsNull::No)
            }
            (Cell::Text(s), t) if *t == Type::JSON => {
                out.put_slice(s.as_bytes());
                Ok(IsNull::No)
            }
            (Cell::Text(s), _) => s.as_str().to_sql(ty, out),
            (Cell::Int(i), t) if *t == Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
            (Cell::Int(i), t) if *t == Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
            (Cell::Int(i), _) => i.to_sql(ty, out),
            (Cell::Bool(b), _) => b.to_sql(ty, out),
            (Cell::Time(t), _) => t.to_sql(ty, out),
            (Cell::Bytes(b), _) => b.as_slice().to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        // Checked per value in to_sql, by the types underneath.
        true
    }

    postgres::types::to_sql_checked!();
}

/// Columns the target fills itself: identity columns, and the lease (the
/// instance that held one is gone).
const DERIVED: &[(&str, &str)] = &[
    ("imports", "pos"),
    ("imports", "lease_owner"),
    ("imports", "lease_until"),
    ("import_errors", "id"),
    // No instance delivers a subscription right after a move.
    ("subscriptions", "lease_owner"),
    ("subscriptions", "lease_until"),
];

/// Tables of the target that are derived, not moved.
const DERIVED_TABLES: &[&str] = &[
    "audit_heads",
    "schema_migrations",
    // Short-lived failed-login counters and live instances: neither
    // outlives the stopped source.
    "auth_failures",
    "instances",
];

impl Target for PostgresTarget {
    fn is_empty(&mut self) -> Result<bool> {
        for name in TABLES.iter().map(|t| t.name).chain(
            DERIVED_TABLES
                .iter()
                .copied()
                .filter(|t| *t != "schema_migrations"),
        ) {
            let any: bool = self
                .client
                .query_one(&format!("SELECT EXISTS (SELECT 1 FROM {name})"), &[])
                .map_err(be)?
                .try_get(0)
                .map_err(be)?;
            if any {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn copy_table(
        &mut self,
        table: &Table,
        fill: &mut dyn FnMut(Emit<'_>) -> Result<u64>,
    ) -> Result<(u64, u64)> {
        let cols: Vec<&str> = table.columns.iter().map(|(c, _)| *c).collect();
        let cols = cols.join(", ");
        let probe = self
            .client
            .prepare(&format!("SELECT {cols} FROM {} LIMIT 0", table.name))
            .map_err(be)?;
        let types: Vec<Type> = probe.columns().iter().map(|c| c.type_().clone()).collect();
        let sink = self
            .client
            .copy_in(&format!(
                "COPY {} ({cols}) FROM STDIN (FORMAT binary)",
                table.name
            ))
            .map_err(be)?;
        let mut writer = BinaryCopyInWriter::new(sink, &types);
        let mut copied = 0u64;
        let name = table.name;
        let left_out = fill(&mut |cells: Vec<Cell>| {
            let binds: Vec<Bind<'_>> = cells.iter().map(Bind).collect();
            let refs: Vec<&(dyn ToSql + Sync)> =
                binds.iter().map(|b| b as &(dyn ToSql + Sync)).collect();
            writer.write(&refs).map_err(|e| {
                StoreError::caused(
                    format!("copying {name}, row {}", copied + 1),
                    Cause::of(&e, None),
                )
            })?;
            copied += 1;
            Ok(())
        })?;
        writer
            .finish()
            .map_err(|e| StoreError::caused(format!("copying {name}"), Cause::of(&e, None)))?;
        Ok((copied, left_out))
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        // Each tenant's chain head is its last entry; the next append
        // continues the chain from there.
        self.client
            .batch_execute(
                "INSERT INTO audit_heads (tenant_id, seq, hash) \
                 SELECT DISTINCT ON (tenant_id) tenant_id, seq, hash FROM audit \
                 ORDER BY tenant_id, seq DESC; \
                 SELECT setval(pg_get_serial_sequence('deliveries', 'seq'), \
                               coalesce(max(seq), 0) + 1, false) FROM deliveries; \
                 COMMIT",
            )
            .map_err(be)
    }
}

/// For the schema test: what the target holds beyond [`TABLES`].
#[doc(hidden)]
pub fn derived() -> (
    &'static [(&'static str, &'static str)],
    &'static [&'static str],
) {
    (DERIVED, DERIVED_TABLES)
}
