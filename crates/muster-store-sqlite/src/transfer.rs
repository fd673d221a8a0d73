//! Reading a whole installation out of a SQLite database for
//! `muster migrate` (see [`muster_store::transfer`]): one read transaction,
//! so every table comes from the same snapshot, and rows streamed one at a
//! time from a prepared statement.
use crate::{be, from_us, SqliteStore};
use chrono::{DateTime, Utc};
use muster_store::transfer::{Cell, Emit, Kind, Source, Table};
use muster_store::{Result, StoreError};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;

/// A SQLite installation, read in one snapshot.
pub struct SqliteSource {
    conn: Connection,
    now: i64,
}

impl std::fmt::Debug for SqliteSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteSource").finish_non_exhaustive()
    }
}

impl SqliteSource {
    /// Opens the database at `path` (which must exist), first bringing its
    /// schema up to this build's version, and starts the read snapshot.
    /// `now` decides which tokens and nonces are still worth moving.
    pub fn open(path: &Path, now: DateTime<Utc>) -> Result<Self> {
        if !path.is_file() {
            return Err(StoreError::backend(format!(
                "there is no SQLite database at {}",
                path.display()
            )));
        }
        drop(SqliteStore::open(path)?);
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(be)?;
        conn.execute_batch("PRAGMA busy_timeout=10000; BEGIN")
            .map_err(be)?;
        // The first read pins the snapshot every later read sees.
        conn.query_row("SELECT count(*) FROM tenants", [], |r| r.get::<_, i64>(0))
            .map_err(be)?;
        Ok(Self {
            conn,
            now: now.timestamp_micros(),
        })
    }
}

/// The query that reads `table` in its transfer layout, and the condition
/// of the rows worth moving (the others are counted as left out).
fn query(table: &Table) -> (String, Option<&'static str>) {
    let cols: Vec<&str> = table.columns.iter().map(|(c, _)| *c).collect();
    let plain = |order: &str| format!("SELECT {} FROM {} {order}", cols.join(", "), table.name);
    match table.name {
        "people" => (
            "SELECT p.tenant_id, p.external_id, p.version, p.fingerprint, d.attrs, d.roles, \
             p.created_at, p.updated_at, p.updated_by, p.on_behalf_of, p.source, \
             p.source_system, p.due_on, p.scim_id \
             FROM people p JOIN person_data d ON d.id = p.data_id"
                .into(),
            None,
        ),
        "import_errors" => (
            "SELECT import_id, row, col, attribute, code, message FROM import_errors ORDER BY id"
                .into(),
            None,
        ),
        // Spent tokens are of no use to anyone; live ones keep admins and
        // clients signed in across the move.
        "tokens" => (
            plain(""),
            Some("consumed_at IS NULL AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?1)"),
        ),
        "auth_nonces" => (plain(""), Some("expires_at > ?1")),
        "imports" => (plain("ORDER BY rowid"), None),
        "audit" => (plain("ORDER BY tenant_id, seq"), None),
        "events" => (plain("ORDER BY tenant_id, cursor"), None),
        "deliveries" => (plain("ORDER BY seq"), None),
        _ => (plain(""), None),
    }
}

fn cell(table: &Table, col: usize, kind: Kind, v: ValueRef<'_>) -> Result<Cell> {
    let wrong = || {
        StoreError::backend(format!(
            "{}.{}: the stored value is not of the expected type",
            table.name, table.columns[col].0
        ))
    };
    Ok(match (kind, v) {
        (_, ValueRef::Null) => Cell::Null,
        (Kind::Text | Kind::Json | Kind::Hash, ValueRef::Text(t)) => {
            Cell::Text(std::str::from_utf8(t).map_err(|_| wrong())?.to_owned())
        }
        (Kind::Int, ValueRef::Integer(i)) => Cell::Int(i),
        (Kind::Bool, ValueRef::Integer(i)) => Cell::Bool(i != 0),
        (Kind::Time, ValueRef::Integer(i)) => Cell::Time(from_us(i)),
        (Kind::Bytes, ValueRef::Blob(b)) => Cell::Bytes(b.to_vec()),
        (Kind::Hash, ValueRef::Blob(b)) => Cell::Text(hex::encode(b)),
        (Kind::Uuid, ValueRef::Blob(b)) => Cell::Text(
            uuid::Uuid::from_slice(b)
                .map_err(|_| wrong())?
                .hyphenated()
                .to_string(),
        ),
        _ => return Err(wrong()),
    })
}

impl Source for SqliteSource {
    fn each_row(&mut self, table: &Table, emit: Emit<'_>) -> Result<u64> {
        let (sql, keep) = query(table);
        let (sql, left_out) = match keep {
            Some(cond) => {
                let n: i64 = self
                    .conn
                    .query_row(
                        &format!("SELECT count(*) FROM {} WHERE NOT ({cond})", table.name),
                        [self.now],
                        |r| r.get(0),
                    )
                    .map_err(be)?;
                (format!("{sql} WHERE {cond}"), n.max(0) as u64)
            }
            None => (sql, 0),
        };
        let mut stmt = self.conn.prepare(&sql).map_err(be)?;
        let mut rows = if keep.is_some() {
            stmt.query([self.now])
        } else {
            stmt.query([])
        }
        .map_err(be)?;
        while let Some(r) = rows.next().map_err(be)? {
            let mut cells = Vec::with_capacity(table.columns.len());
            for (i, (_, kind)) in table.columns.iter().enumerate() {
                cells.push(cell(table, i, *kind, r.get_ref(i).map_err(be)?)?);
            }
            emit(cells)?;
        }
        Ok(left_out)
    }
}

/// Tables and columns of the SQLite schema that do not move as such, each
/// with the reason; the test below fails when a new one is neither moved
/// nor listed here.
#[cfg(test)]
const NOT_MOVED: &[(&str, &str)] = &[
    ("person_data", "*"),       // read with people
    ("people", "data_id"),      // the join key to person_data
    ("imports", "lease_owner"), // the holder is gone after a move
    ("imports", "lease_until"),
    ("subscriptions", "lease_owner"), // likewise the delivering instance
    ("subscriptions", "lease_until"),
    ("import_errors", "id"),  // order is kept; ids are the target's
    ("import_errors", "row"), // moves as row_no
    ("audit", "id"),          // a rowid; the chain's order is (tenant_id, seq)
    ("auth_failures", "*"),   // short-lived counters of failed logins
    ("instances", "*"),       // live instances: the moved one is stopped
];

#[cfg(test)]
mod tests {
    use super::*;
    use muster_store::transfer::TABLES;

    #[test]
    fn every_table_and_column_is_moved_or_deliberately_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        drop(SqliteStore::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        let mut tables = conn
            .prepare(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            )
            .unwrap();
        let names: Vec<String> = tables
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        for name in names {
            if NOT_MOVED.contains(&(name.as_str(), "*")) {
                continue;
            }
            let t = TABLES
                .iter()
                .find(|t| t.name == name)
                .unwrap_or_else(|| panic!("table {name} is not in transfer::TABLES"));
            let mut cols = conn
                .prepare(&format!("SELECT name FROM pragma_table_info('{name}')"))
                .unwrap();
            let cols: Vec<String> = cols
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            for c in cols {
                assert!(
                    t.columns.iter().any(|(n, _)| *n == c)
                        || NOT_MOVED.contains(&(name.as_str(), c.as_str())),
                    "column {name}.{c} is neither moved nor left out on purpose"
                );
            }
        }
    }

    #[test]
    fn a_missing_database_is_named_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.db");
        let e = SqliteSource::open(&path, Utc::now()).unwrap_err();
        assert!(e.to_string().contains("no SQLite database"), "{e}");
        assert!(!path.exists());
    }
}
