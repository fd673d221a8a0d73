//! The embedded SQLite backend: one writer thread (see [`writer`]) and a
//! small pool of read connections, WAL mode.
//!
//! Durability: `synchronous=NORMAL` in WAL mode. Every commit is atomic and
//! survives a crash of the process (SIGKILL included); a power loss may lose
//! the last transactions but never corrupts the database or the audit chain.
//! That is the usual choice for WAL and what lets imports reach their
//! throughput; `MUSTER_SQLITE_SYNCHRONOUS=FULL` trades speed for surviving
//! power loss too.
#![forbid(unsafe_code)]

mod audit;
mod client_keys;
mod cluster;
mod events;
mod imports;
mod issuers;
mod keys;
mod mappings;
mod people;
mod principals;
mod rotate;
mod scim;
mod semantics;
mod subscriptions;
mod tenants;
pub mod transfer;
mod writer;

use chrono::{DateTime, TimeZone, Utc};
use muster_core::audit::{AuditEntry, AuditFields, GENESIS};
use muster_core::person::{into_display_detail, ChangeKind, Incoming};
use muster_core::policy::{IntakePolicy, ReadPolicy};
use muster_core::secret::SecretDigest;
use muster_core::{ExternalId, TenantId};
use muster_store::shared::{self, decode_state, json_err, stored_id};
use muster_store::*;
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row};
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use writer::Writer;

const SCHEMA: &str = include_str!("schema.sql");

/// A new SCIM id, as SQL: a version 7 UUID (RFC 9562 §5.7), the Unix
/// time in milliseconds then 74 random bits. Ids made one after another
/// sort one after another, so an import of a million new people appends
/// to the end of the SCIM id index instead of writing all over it.
macro_rules! new_scim_id {
    // No subquery: SQLite would evaluate an uncorrelated one once per
    // statement, giving every row of an UPDATE the same id.
    () => {
        "lower(printf('%08x-%04x-7', \
           CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) >> 16, \
           CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) & 65535) || \
         substr(hex(randomblob(2)), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || \
         substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))"
    };
}
pub(crate) use new_scim_id;
/// Changes after the version-1 schema, in order: `(version, SQL)`. Never
/// edit a released entry; add one.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        2,
        // Import leases, as in PostgreSQL: which instance works on an import
        // and until when (see `Imports::import_claim`).
        "ALTER TABLE imports ADD COLUMN lease_owner TEXT; \
         ALTER TABLE imports ADD COLUMN lease_until INTEGER;",
    ),
    (
        3,
        // Import semantics: the source system that last imported a person
        // (snapshot scope), and the day its next effective-date transition
        // is due (indexed only where there is one). People last written by
        // an import before this step belong to that import's client; people
        // stored with a termination date (not before their hire date) and
        // not yet terminated are due on it, so the scheduler ends their
        // employment on that day (or at once, when it has passed) as it
        // would for a person written after the upgrade.
        "ALTER TABLE people ADD COLUMN source_system TEXT; \
         ALTER TABLE people ADD COLUMN due_on TEXT; \
         CREATE INDEX people_due ON people(tenant_id, due_on) WHERE due_on IS NOT NULL; \
         UPDATE people SET source_system = \
           (SELECT i.client_id FROM imports i WHERE 'import:' || i.id = people.source) \
         WHERE source LIKE 'import:%'; \
         UPDATE people SET due_on = \
           (SELECT json_extract(d.attrs, '$.termination_date') FROM person_data d \
            WHERE d.id = people.data_id) \
         WHERE data_id IN (SELECT d.id FROM person_data d \
           WHERE json_type(d.attrs, '$.termination_date') = 'text' \
           AND coalesce(json_extract(d.attrs, '$.employment_status'), '') <> 'terminated' \
           AND (json_type(d.attrs, '$.hire_date') IS NOT 'text' \
                OR json_extract(d.attrs, '$.termination_date') \
                   >= json_extract(d.attrs, '$.hire_date')));",
    ),
    (
        4,
        // rotate: the HMAC key rotation overlap, failed-authentication
        // counters shared by instances, and the live-instance table.
        "ALTER TABLE client_keys ADD COLUMN hmac_previous_sealed BLOB; \
         ALTER TABLE client_keys ADD COLUMN hmac_previous_until INTEGER; \
         CREATE TABLE auth_failures (key TEXT PRIMARY KEY, window_start INTEGER NOT NULL, \
           failures INTEGER NOT NULL) WITHOUT ROWID; \
         CREATE TABLE instances (id TEXT PRIMARY KEY, seen_at INTEGER NOT NULL, \
           master_key_id TEXT NOT NULL) WITHOUT ROWID;",
    ),
    (
        5,
        // Delivery leases (fan-out), as in PostgreSQL: which instance
        // delivers a subscription and until when (`Events::subscription_claim`).
        "ALTER TABLE subscriptions ADD COLUMN lease_owner TEXT; \
         ALTER TABLE subscriptions ADD COLUMN lease_until INTEGER;",
    ),
    (
        6,
        // Issuers per tenant, as in PostgreSQL: `(issuer, audience)` unique
        // within a tenant instead of across them. SQLite cannot drop a
        // table constraint, so the table is rebuilt (nothing refers to it).
        "CREATE TABLE issuers_per_tenant (id TEXT PRIMARY KEY, \
           tenant_id TEXT NOT NULL REFERENCES tenants(id), name TEXT NOT NULL, \
           issuer TEXT NOT NULL, audience TEXT NOT NULL, settings TEXT NOT NULL, \
           hs256_sealed BLOB, created_at INTEGER NOT NULL, \
           UNIQUE (tenant_id, name), UNIQUE (tenant_id, issuer, audience)); \
         INSERT INTO issuers_per_tenant (id, tenant_id, name, issuer, audience, settings, \
           hs256_sealed, created_at) SELECT id, tenant_id, name, issuer, audience, settings, \
           hs256_sealed, created_at FROM issuers; \
         DROP TABLE issuers; \
         ALTER TABLE issuers_per_tenant RENAME TO issuers;",
    ),
    (
        7,
        // Admin API tokens with a lifetime: a public id to list and revoke
        // them by, a name, and when each was last used. Admin tokens made
        // before this step (each admin's first) are listed as `initial`,
        // keep never expiring, and can now be revoked.
        "ALTER TABLE tokens ADD COLUMN id TEXT; \
         ALTER TABLE tokens ADD COLUMN name TEXT; \
         ALTER TABLE tokens ADD COLUMN last_used_at INTEGER; \
         CREATE UNIQUE INDEX tokens_id ON tokens(id) WHERE id IS NOT NULL; \
         UPDATE tokens SET id = lower(hex(randomblob(16))), name = 'initial' \
         WHERE id IS NULL AND principal_id IN (SELECT id FROM principals WHERE kind = 'admin');",
    ),
    (
        8,
        // SCIM (docs/scim.md): every person gets a SCIM id, the
        // attributes SCIM filters look people up by are indexed (partial:
        // only people that have them), people are found from their data
        // row, clients keep which SCIM attribute keys their people, and
        // Groups have a table of their own.
        concat!(
            "ALTER TABLE people ADD COLUMN scim_id TEXT; \
             UPDATE people SET scim_id = ",
            new_scim_id!(),
            "; \
             CREATE UNIQUE INDEX people_scim_id ON people(tenant_id, scim_id) WHERE scim_id IS NOT NULL; \
             CREATE INDEX people_data ON people(data_id); \
             CREATE INDEX person_data_user_name ON person_data( \
               lower(json_extract(attrs, '$.user_name'))) \
               WHERE json_extract(attrs, '$.user_name') IS NOT NULL; \
             CREATE INDEX person_data_email ON person_data( \
               lower(json_extract(attrs, '$.email'))) \
               WHERE json_extract(attrs, '$.email') IS NOT NULL; \
             CREATE INDEX person_data_employee_number ON person_data( \
               lower(json_extract(attrs, '$.employee_number'))) \
               WHERE json_extract(attrs, '$.employee_number') IS NOT NULL; \
             CREATE INDEX person_data_scim_external_id ON person_data( \
               json_extract(attrs, '$.scim_external_id')) \
               WHERE json_extract(attrs, '$.scim_external_id') IS NOT NULL; \
             ALTER TABLE principals ADD COLUMN scim_key TEXT; \
             CREATE TABLE scim_groups (tenant_id TEXT NOT NULL REFERENCES tenants(id), \
               id TEXT NOT NULL, display_name TEXT NOT NULL, external_id TEXT, \
               version INTEGER NOT NULL, created_at INTEGER NOT NULL, \
               updated_at INTEGER NOT NULL, PRIMARY KEY (tenant_id, id), \
               UNIQUE (tenant_id, display_name)) WITHOUT ROWID;"
        ),
    ),
    (
        9,
        // Read policies (docs/people.md#read-policies): what a client may
        // read of people, none for everything; and the client that owns a
        // subscription it made itself (docs/events.md).
        "ALTER TABLE principals ADD COLUMN read_policy TEXT; \
         ALTER TABLE subscriptions ADD COLUMN owner_client_id TEXT;",
    ),
    (
        10,
        // Subscriptions of more than one kind (docs/events.md): a webhook,
        // or a NATS JetStream subject prefix in `target`.
        "ALTER TABLE subscriptions ADD COLUMN kind TEXT NOT NULL DEFAULT 'webhook';          ALTER TABLE subscriptions ADD COLUMN target TEXT;",
    ),
    (
        11,
        // Provisioning (docs/provisioning.md): a sink's own progress, and
        // what a subscription knows of its Users and Groups on the target.
        "ALTER TABLE subscriptions ADD COLUMN sink_progress TEXT; \
         CREATE TABLE subscription_links ( \
             subscription_id TEXT NOT NULL REFERENCES subscriptions(id) ON DELETE CASCADE, \
             kind TEXT NOT NULL, \
             key TEXT NOT NULL, \
             target_id TEXT NOT NULL, \
             sent TEXT, \
             PRIMARY KEY (subscription_id, kind, key) \
         ) WITHOUT ROWID; \
         CREATE INDEX subscription_links_target \
             ON subscription_links(subscription_id, kind, target_id);",
    ),
];
const SCHEMA_VERSION: i64 = 11;
const READERS_KEPT: usize = 8;

pub(crate) fn be(e: rusqlite::Error) -> StoreError {
    StoreError::caused("SQLite failed", e)
}

fn us(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn from_us(v: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(v).single().unwrap_or_default()
}

pub struct SqliteStore {
    path: PathBuf,
    writer: Writer,
    readers: Mutex<Vec<Connection>>,
    /// Reads running now.
    reading: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

/// Makes the database file exist with mode 0600 before SQLite opens it,
/// and tightens one that is more open (with its `-wal` and `-shm`), so
/// that the plaintext personnel data it holds is readable by the service
/// user alone whatever the umask. SQLite creates the `-wal` and `-shm`
/// files with the database file's permissions, so they follow.
fn private_database_file(path: &Path) -> Result<()> {
    let io =
        |e: std::io::Error| StoreError::caused(format!("cannot prepare {}", path.display()), e);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for suffix in ["", "-wal", "-shm"] {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            let p = PathBuf::from(p);
            let meta = match std::fs::metadata(&p) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(e)),
            };
            if meta.permissions().mode() & 0o077 != 0 {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
                tracing::warn!(
                    path = %p.display(),
                    "the database file was readable by others; its mode is now 0600"
                );
            }
        }
    }
    Ok(())
}

fn configure(conn: &Connection) -> Result<()> {
    let sync = match std::env::var("MUSTER_SQLITE_SYNCHRONOUS").as_deref() {
        Ok("FULL") | Ok("full") => "FULL",
        _ => "NORMAL",
    };
    conn.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous={sync}; PRAGMA busy_timeout=10000; \
         PRAGMA cache_size=-16384; PRAGMA temp_store=MEMORY; PRAGMA foreign_keys=ON;"
    ))
    .map_err(be)
}

impl SqliteStore {
    /// Opens (creating and migrating when needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        private_database_file(path)?;
        let conn = Connection::open(path).map_err(be)?;
        configure(&conn)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(be)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::backend(format!(
                "the database has schema version {version}, newer than this build ({SCHEMA_VERSION})"
            )));
        }
        if version == 0 {
            conn.execute_batch(&format!("BEGIN; {SCHEMA} PRAGMA user_version=1; COMMIT;"))
                .map_err(be)?;
        }
        // Each step commits with its version number: a crash between steps
        // resumes at the first one not applied.
        for (v, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > version.max(1)) {
            conn.execute_batch(&format!("BEGIN; {sql} PRAGMA user_version={v}; COMMIT;"))
                .map_err(be)?;
        }
        Ok(Self {
            path: path.to_owned(),
            writer: Writer::start(conn, path)?,
            readers: Mutex::new(Vec::new()),
            reading: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs a change in the writer and appends the entries its `audit`
    /// builds from the result in the same savepoint: both commit, or
    /// neither does.
    fn audited<R, F>(&self, audit: Audit<R>, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        self.writer.write(move |conn| {
            let r = f(conn)?;
            append_entries(conn, &audit(&r))?;
            Ok(r)
        })
    }

    fn read<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        let conn = {
            let mut pool = self.readers.lock().unwrap_or_else(|p| p.into_inner());
            pool.pop()
        };
        let conn = match conn {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(be)?;
                c.execute_batch("PRAGMA busy_timeout=10000; PRAGMA cache_size=-2048;")
                    .map_err(be)?;
                c
            }
        };
        use std::sync::atomic::Ordering::Relaxed;
        self.reading.fetch_add(1, Relaxed);
        let out = f(&conn);
        self.reading.fetch_sub(1, Relaxed);
        let mut pool = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < READERS_KEPT {
            pool.push(conn);
        }
        out
    }
}

// ---- row decoding -------------------------------------------------------

const PRINCIPAL_COLS: &str = "id, tenant_id, kind, client_id, name, role, token_policy, \
     token_ttl_seconds, write_policy, disabled, created_at, scim_key, read_policy";

fn load_principal(conn: &Connection, where_: &str, arg: &str) -> Result<Option<ClientRow>> {
    let sql = format!("SELECT {PRINCIPAL_COLS} FROM principals WHERE {where_}");
    let mut stmt = conn.prepare_cached(&sql).map_err(be)?;
    let row = stmt
        .query_row([arg], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, i64>(7)?,
                r.get::<_, String>(8)?,
                r.get::<_, bool>(9)?,
                r.get::<_, i64>(10)?,
                r.get::<_, Option<String>>(11)?,
                r.get::<_, Option<String>>(12)?,
            ))
        })
        .optional()
        .map_err(be)?;
    let Some((
        id,
        tenant,
        kind,
        client_id,
        name,
        role,
        policy,
        ttl,
        wp,
        disabled,
        created,
        scim_key,
        rp,
    )) = row
    else {
        return Ok(None);
    };
    let mut secrets = Vec::new();
    let mut s = conn
        .prepare_cached(
            "SELECT digest, created_at, expires_at FROM client_secrets \
             WHERE principal_id = ?1 ORDER BY created_at",
        )
        .map_err(be)?;
    let rows = s
        .query_map([&id], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<i64>>(2)?,
            ))
        })
        .map_err(be)?;
    for row in rows {
        let (d, c, e) = row.map_err(be)?;
        let digest: SecretDigest = d
            .try_into()
            .map_err(|_| StoreError::backend("a stored secret digest is malformed"))?;
        secrets.push(SecretRow {
            digest,
            created_at: from_us(c),
            expires_at: e.map(from_us),
        });
    }
    Ok(Some(ClientRow {
        id,
        tenant: TenantId::parse(&tenant).map_err(stored_id)?,
        kind: if kind == "admin" {
            PrincipalKind::Admin
        } else {
            PrincipalKind::Client
        },
        client_id,
        name,
        role,
        token_policy: policy,
        token_ttl_seconds: ttl.max(0) as u64,
        write_policy: serde_json::from_str(&wp).map_err(json_err)?,
        read_policy: match rp {
            Some(t) => serde_json::from_str(&t).map_err(json_err)?,
            None => ReadPolicy::default(),
        },
        disabled,
        created_at: from_us(created),
        secrets,
        scim_key,
    }))
}

const IMPORT_COLS: &str = "id, tenant_id, principal_id, client_id, on_behalf_of, idempotency_key, \
     mapping, mapping_version, mode, dry_run, format, options, bytes, state, rows_total, created, \
     updated, unchanged, deactivated, failed, checkpoint_row, error_code, error_message, \
     created_at, updated_at, finished_at";

fn import_from_row(r: &Row) -> rusqlite::Result<ImportRowRaw> {
    Ok(ImportRowRaw {
        id: r.get(0)?,
        tenant: r.get(1)?,
        principal_id: r.get(2)?,
        client_id: r.get(3)?,
        on_behalf_of: r.get(4)?,
        idempotency_key: r.get(5)?,
        mapping: r.get(6)?,
        mapping_version: r.get(7)?,
        mode: r.get(8)?,
        dry_run: r.get(9)?,
        format: r.get(10)?,
        options: r.get(11)?,
        bytes: r.get(12)?,
        state: r.get(13)?,
        counts: [
            r.get(14)?,
            r.get(15)?,
            r.get(16)?,
            r.get(17)?,
            r.get(18)?,
            r.get(19)?,
        ],
        checkpoint_row: r.get(20)?,
        error_code: r.get(21)?,
        error_message: r.get(22)?,
        created_at: r.get(23)?,
        updated_at: r.get(24)?,
        finished_at: r.get(25)?,
    })
}

struct ImportRowRaw {
    id: String,
    tenant: String,
    principal_id: String,
    client_id: String,
    on_behalf_of: Option<String>,
    idempotency_key: Option<String>,
    mapping: String,
    mapping_version: i64,
    mode: String,
    dry_run: bool,
    format: String,
    options: String,
    bytes: i64,
    state: String,
    counts: [i64; 6],
    checkpoint_row: i64,
    error_code: Option<String>,
    error_message: Option<String>,
    created_at: i64,
    updated_at: i64,
    finished_at: Option<i64>,
}

impl ImportRowRaw {
    fn decode(self) -> Result<ImportRow> {
        let c = self.counts.map(|v| v.max(0) as u64);
        Ok(ImportRow {
            id: self.id,
            tenant: TenantId::parse(&self.tenant).map_err(stored_id)?,
            principal_id: self.principal_id,
            client_id: self.client_id,
            on_behalf_of: self.on_behalf_of,
            idempotency_key: self.idempotency_key,
            mapping: self.mapping,
            mapping_version: self.mapping_version,
            mode: ImportMode::parse(&self.mode).ok_or_else(|| {
                StoreError::backend(format!("an import holds the unknown mode {:?}", self.mode))
            })?,
            dry_run: self.dry_run,
            format: self.format,
            options: serde_json::from_str(&self.options).map_err(json_err)?,
            bytes: self.bytes.max(0) as u64,
            state: ImportState::parse(&self.state).ok_or_else(|| {
                StoreError::backend(format!(
                    "an import holds the unknown state {:?}",
                    self.state
                ))
            })?,
            counts: Counts {
                rows_total: c[0],
                created: c[1],
                updated: c[2],
                unchanged: c[3],
                deactivated: c[4],
                failed: c[5],
            },
            checkpoint_row: self.checkpoint_row.max(0) as u64,
            error_code: self.error_code,
            error_message: self.error_message,
            created_at: from_us(self.created_at),
            updated_at: from_us(self.updated_at),
            finished_at: self.finished_at.map(from_us),
        })
    }
}

struct PersonRaw {
    external_id: String,
    attrs: String,
    roles: String,
    version: i64,
    updated_at: i64,
    updated_by: String,
    on_behalf_of: Option<String>,
    source: String,
    source_system: Option<String>,
    scim_id: Option<String>,
}

impl PersonRaw {
    fn decode(self) -> Result<PersonRow> {
        Ok(PersonRow {
            external_id: ExternalId::parse(&self.external_id).map_err(stored_id)?,
            state: decode_state(&self.attrs, &self.roles)?,
            version: self.version,
            updated_at: from_us(self.updated_at),
            updated_by: self.updated_by,
            on_behalf_of: self.on_behalf_of,
            source: self.source,
            source_system: self.source_system,
            scim_id: self.scim_id,
        })
    }
}

/// An audit hash column as hex text. Entries keep their hashes as the 32
/// bytes (half the text, on the table an import writes most); entries
/// written by earlier releases keep theirs as hex text.
fn hash_col(r: &Row, i: usize) -> rusqlite::Result<String> {
    match r.get_ref(i)? {
        ValueRef::Blob(b) => Ok(hex::encode(b)),
        ValueRef::Text(t) => Ok(String::from_utf8_lossy(t).into_owned()),
        v => Err(rusqlite::Error::InvalidColumnType(
            i,
            "hash".into(),
            v.data_type(),
        )),
    }
}

/// The chain's head for a tenant: the last seq and hash.
fn audit_head(conn: &Connection, tenant: &str) -> Result<(i64, String)> {
    Ok(conn
        .prepare_cached(
            "SELECT seq, hash FROM audit WHERE tenant_id = ?1 ORDER BY seq DESC LIMIT 1",
        )
        .map_err(be)?
        .query_row([tenant], |r| Ok((r.get(0)?, hash_col(r, 1)?)))
        .optional()
        .map_err(be)?
        .unwrap_or((0, GENESIS.to_owned())))
}

/// Chains `entries` onto their tenants' audit heads, in order.
fn append_entries(conn: &Connection, entries: &[AuditDraft]) -> Result<()> {
    for d in entries {
        let mut head = audit_head(conn, d.tenant.as_str())?;
        audit_insert(conn, &mut head, d)?;
    }
    Ok(())
}

/// Appends one entry after `head` and moves `head` to it.
fn audit_insert(conn: &Connection, head: &mut (i64, String), d: &AuditDraft) -> Result<()> {
    let at = audit_time(d.at);
    let detail = serde_json::to_string(&d.detail).map_err(json_err)?;
    audit_insert_fields(
        conn,
        head,
        AuditFields {
            prev_hash: "",
            tenant: d.tenant.as_str(),
            seq: 0,
            at: &at,
            principal: &d.principal,
            on_behalf_of: d.on_behalf_of.as_deref(),
            source: &d.source,
            action: &d.action,
            person: d.person.as_deref(),
            detail: &detail,
        },
    )
}

/// The one place entries are written: `seq` and `prev_hash` come from
/// `head`, whatever `f` says.
fn audit_insert_fields(
    conn: &Connection,
    head: &mut (i64, String),
    f: AuditFields<'_>,
) -> Result<()> {
    let f = AuditFields {
        prev_hash: &head.1,
        seq: head.0 + 1,
        ..f
    };
    let digest = f.digest();
    // Both hashes as bytes (see `hash_col`); a previous hash that is not a
    // digest's hex (an edited entry) stays the text it was hashed as.
    let mut prev = [0u8; 32];
    let prev_cell: &dyn rusqlite::ToSql = match hex::decode_to_slice(f.prev_hash, &mut prev) {
        Ok(()) => &prev,
        Err(_) => &f.prev_hash,
    };
    conn.prepare_cached(
        "INSERT INTO audit (tenant_id, seq, at, principal, on_behalf_of, source, action, person, \
         detail, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )
    .map_err(be)?
    .execute(params![
        f.tenant,
        f.seq,
        f.at,
        f.principal,
        f.on_behalf_of,
        f.source,
        f.action,
        f.person,
        f.detail,
        prev_cell,
        digest
    ])
    .map_err(be)?;
    *head = (f.seq, muster_core::audit::digest_hex(&digest));
    Ok(())
}

/// A read policy as stored: none for the default (everything).
pub(crate) fn read_policy_text(p: &ReadPolicy) -> Result<Option<String>> {
    muster_store::shared::stored_read_policy(p)
        .map(|p| serde_json::to_string(p).map_err(json_err))
        .transpose()
}

fn insert_principal(conn: &Connection, c: &NewClient, now: DateTime<Utc>) -> Result<String> {
    let id = uuid::Uuid::now_v7().to_string();
    let wp = serde_json::to_string(&c.write_policy).map_err(json_err)?;
    let rp = read_policy_text(&c.read_policy)?;
    let res = conn.execute(
        "INSERT INTO principals (id, tenant_id, kind, client_id, name, role, token_policy, \
         token_ttl_seconds, write_policy, disabled, created_at, read_policy) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0, ?10, ?11)",
        params![
            id,
            c.tenant.as_str(),
            match c.kind {
                PrincipalKind::Admin => "admin",
                PrincipalKind::Client => "client",
            },
            c.client_id,
            c.name,
            c.role,
            c.token_policy,
            c.token_ttl_seconds as i64,
            wp,
            us(now),
            rp
        ],
    );
    match res {
        Ok(_) => {}
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            return Err(StoreError::Conflict(format!(
                "a principal with the id '{}' exists already",
                c.client_id
            )))
        }
        Err(e) => return Err(be(e)),
    }
    if let Some(d) = c.secret {
        conn.execute(
            "INSERT INTO client_secrets (principal_id, digest, created_at) VALUES (?1, ?2, ?3)",
            params![id, d.to_vec(), us(now)],
        )
        .map_err(be)?;
    }
    Ok(id)
}

/// An import's bookkeeping, only while `owner` holds its lease (`false`,
/// and nothing written, when it does not).
impl SqliteStore {
    fn set_state(
        &self,
        id: &str,
        owner: Option<&str>,
        state: ImportState,
        error: Option<(&str, &str)>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let id = id.to_owned();
        let owner = owner.map(str::to_owned);
        let error = error.map(|(c, m)| (c.to_owned(), m.to_owned()));
        self.writer.write(move |conn| {
            let fin = state.is_final();
            let n = conn
                .prepare_cached(
                    "UPDATE imports SET state = ?1, error_code = ?2, error_message = ?3, \
                     updated_at = ?4, finished_at = CASE WHEN ?5 THEN ?4 ELSE finished_at END, \
                     lease_owner = CASE WHEN ?5 THEN NULL ELSE lease_owner END, \
                     lease_until = CASE WHEN ?5 THEN NULL ELSE lease_until END \
                     WHERE id = ?6 AND (?7 IS NULL OR lease_owner = ?7)",
                )
                .map_err(be)?
                .execute(params![
                    state.as_str(),
                    error.as_ref().map(|e| e.0.clone()),
                    error.as_ref().map(|e| e.1.clone()),
                    us(now),
                    fin,
                    id,
                    owner
                ])
                .map_err(be)?;
            Ok(n == 1)
        })
    }

    fn reset(&self, id: &str, owner: Option<&str>, now: DateTime<Utc>) -> Result<bool> {
        let (id, owner) = (id.to_owned(), owner.map(str::to_owned));
        self.writer.write(move |conn| {
            // The fenced row first: when it is not ours, no error goes.
            let n = conn
                .prepare_cached(
                    "UPDATE imports SET rows_total = 0, created = 0, updated = 0, unchanged = 0, \
                     deactivated = 0, failed = 0, checkpoint_row = 0, updated_at = ?1 \
                     WHERE id = ?2 AND (?3 IS NULL OR lease_owner = ?3)",
                )
                .map_err(be)?
                .execute(params![us(now), id, owner])
                .map_err(be)?;
            if n == 0 && owner.is_some() {
                return Ok(false);
            }
            conn.prepare_cached("DELETE FROM import_errors WHERE import_id = ?1")
                .map_err(be)?
                .execute([&id])
                .map_err(be)?;
            Ok(n == 1)
        })
    }

    fn add_errors(&self, id: &str, owner: Option<&str>, errors: &[RowErrorRecord]) -> Result<bool> {
        let (id, errors) = (id.to_owned(), errors.to_vec());
        let owner = owner.map(str::to_owned);
        self.writer.write(move |conn| {
            if let Some(owner) = &owner {
                let held = conn
                    .prepare_cached("SELECT 1 FROM imports WHERE id = ?1 AND lease_owner = ?2")
                    .map_err(be)?
                    .exists(params![id, owner])
                    .map_err(be)?;
                if !held {
                    return Ok(false);
                }
            }
            let mut s = conn
                .prepare_cached(
                    "INSERT INTO import_errors (import_id, row, col, attribute, code, message) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(be)?;
            for e in &errors {
                s.execute(params![
                    id,
                    e.row as i64,
                    e.column,
                    e.attribute,
                    e.code,
                    e.message
                ])
                .map_err(be)?;
            }
            Ok(true)
        })
    }

    fn set_total(
        &self,
        id: &str,
        owner: Option<&str>,
        rows_total: u64,
        failed: u64,
    ) -> Result<bool> {
        let (id, owner) = (id.to_owned(), owner.map(str::to_owned));
        self.writer.write(move |conn| {
            let n = conn
                .prepare_cached(
                    "UPDATE imports SET rows_total = ?1, failed = ?2 \
                     WHERE id = ?3 AND (?4 IS NULL OR lease_owner = ?4)",
                )
                .map_err(be)?
                .execute(params![rows_total as i64, failed as i64, id, owner])
                .map_err(be)?;
            Ok(n == 1)
        })
    }
}

const KEY_COLS: &str = "id, tenant_id, kind, algorithm, purpose, key_ids, public_key, \
                        sealed_secret, state, created_at, updated_at";

/// Reads a key row; the outer error is SQLite's, the inner a stored value
/// this version does not understand.
fn key_from_row(r: &Row<'_>) -> rusqlite::Result<Result<KeyRow>> {
    let (tenant, purpose, ids, state): (String, String, String, String) =
        (r.get(1)?, r.get(4)?, r.get(5)?, r.get(8)?);
    let (id, kind, algorithm, public_key, sealed_secret) =
        (r.get(0)?, r.get(2)?, r.get(3)?, r.get(6)?, r.get(7)?);
    let (created_at, updated_at) = (from_us(r.get(9)?), from_us(r.get(10)?));
    let bad = |what: &str| StoreError::backend(format!("stored key has an invalid {what}"));
    let row = (|| {
        Ok(KeyRow {
            id,
            tenant: TenantId::parse(&tenant).map_err(|_| bad("tenant"))?,
            kind,
            algorithm,
            purpose: KeyPurpose::parse(&purpose).ok_or_else(|| bad("purpose"))?,
            key_ids: serde_json::from_str(&ids).map_err(|_| bad("key id list"))?,
            public_key,
            sealed_secret,
            state: KeyState::parse(&state).ok_or_else(|| bad("state"))?,
            created_at,
            updated_at,
        })
    })();
    Ok(row)
}

fn insert_admin_token(conn: &Connection, t: &NewAdminToken) -> Result<()> {
    insert_named_token(conn, t, "*")
}

/// A token row with an id and a name (an admin token, a SCIM token).
pub(crate) fn insert_named_token(conn: &Connection, t: &NewAdminToken, scope: &str) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO tokens (digest, principal_id, scope, one_time, created_at, expires_at, id, name) \
         VALUES (?1, ?2, ?7, 0, ?3, ?4, ?5, ?6)",
    )
    .map_err(be)?
    .execute(params![
        t.digest.to_vec(),
        t.principal_id,
        us(t.created_at),
        t.expires_at.map(us),
        t.id,
        t.name,
        scope
    ])
    .map_err(be)?;
    Ok(())
}

/// The heart of every write path: compare, write only what changed, and
/// chain an audit entry for each change. This runs for every row of every
/// import, so it avoids work it can: the fingerprint comparison needs no
/// decoding, and the audit detail is written straight from the two states.
pub(crate) fn apply_items(
    conn: &Connection,
    ctx: &WriteContext,
    items: &[BatchItem],
) -> Result<Vec<ItemResult>> {
    let tenant = ctx.tenant.as_str();
    let mut head = audit_head(conn, tenant)?;
    let mut sel = conn
        .prepare_cached(
            "SELECT version, fingerprint, data_id, source_system FROM people \
             WHERE tenant_id = ?1 AND external_id = ?2",
        )
        .map_err(be)?;
    let mut sel_data = conn
        .prepare_cached("SELECT attrs, roles FROM person_data WHERE id = ?1")
        .map_err(be)?;
    let mut insert_data = conn
        .prepare_cached("INSERT INTO person_data (attrs, roles) VALUES (?1, ?2)")
        .map_err(be)?;
    let mut update_data = conn
        .prepare_cached("UPDATE person_data SET attrs = ?2, roles = ?3 WHERE id = ?1")
        .map_err(be)?;
    // A person is looked up first, unless the caller prepared the record
    // (it found the person absent): then the insert's own key check says
    // whether someone has written them since (no change: see below).
    let mut insert = conn
        .prepare_cached(concat!(
            "INSERT INTO people (tenant_id, external_id, version, fingerprint, data_id, \
                 created_at, updated_at, updated_by, on_behalf_of, source, source_system, due_on, \
                 scim_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?8, ?9, ?10, ?11, ",
            new_scim_id!(),
            ") ON CONFLICT DO NOTHING"
        ))
        .map_err(be)?;
    let mut delete_data = conn
        .prepare_cached("DELETE FROM person_data WHERE id = ?1")
        .map_err(be)?;
    let mut update = conn
        .prepare_cached(
            "UPDATE people SET version = ?3, fingerprint = ?4, data_id = ?5, \
             updated_at = ?6, updated_by = ?7, on_behalf_of = ?8, source = ?9, \
             source_system = coalesce(?10, source_system), due_on = ?11 \
             WHERE tenant_id = ?1 AND external_id = ?2",
        )
        .map_err(be)?;
    // An unchanged person confirmed by an import of another source: it now
    // belongs to this one (no new version, no audit entry, no event).
    let mut confirm = conn
        .prepare_cached(
            "UPDATE people SET source_system = ?3, fingerprint = ?4 \
             WHERE tenant_id = ?1 AND external_id = ?2",
        )
        .map_err(be)?;
    let mut insert_event = conn
        .prepare_cached(
            "INSERT INTO events (tenant_id, cursor, id, kind, external_id, version, audit_seq) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .map_err(be)?;
    // The tenant's last event cursor, read at the first change (the single
    // writer makes it safe to count on from there).
    let mut cursor: Option<i64> = None;
    let now = us(ctx.now);
    let at = audit_time(ctx.now);
    let key = Incoming::fingerprint_key(&ctx.principal, &ctx.policy);
    let today = muster_core::person::today(ctx.now);
    let source_system = ctx.source_system.as_deref();
    let mut out = Vec::with_capacity(items.len());
    'items: for item in items {
        let inc = &item.incoming;
        let prepared = item.prepared.as_deref().filter(|p| p.today == today);
        let fp = match prepared {
            Some(p) => p.fingerprint,
            None => inc.fingerprint_with(&key),
        };
        // A prepared record is taken for a creation without a look-up; if
        // the person exists after all, it goes round again, looking first.
        let mut look_up = prepared.is_none();
        loop {
            // (version, data row) unless the fingerprint already matches (and
            // the person already belongs to this write's source, if it has one)
            let mut stored_source: Option<String> = None;
            let stored: Option<(i64, Option<i64>)> = if !look_up {
                None
            } else {
                sel.query_row(params![tenant, inc.external_id.as_str()], |r| {
                    let version: i64 = r.get(0)?;
                    let ss: Option<String> = r.get(3)?;
                    let same_source = source_system.is_none() || ss.as_deref() == source_system;
                    stored_source = ss;
                    if same_source
                        && matches!(r.get_ref(1)?, ValueRef::Blob(b) if b == fp.as_slice())
                    {
                        return Ok((version, None));
                    }
                    Ok((version, Some(r.get(2)?)))
                })
                .optional()
                .map_err(be)?
            };
            // What to write: (kind, new version, attrs JSON, roles JSON, audit
            // detail, existing data row). A new person's comes precomputed when
            // the caller prepared it (BatchItem::prepared).
            let (kind, version, attrs, roles, detail, data_id, (attrs_changed, roles_changed), due) =
                match (stored, prepared) {
                    (Some((version, None)), _) => {
                        out.push(ItemResult {
                            kind: ChangeKind::Unchanged,
                            version,
                        });
                        continue 'items;
                    }
                    (None, Some(p)) => (
                        ChangeKind::Created,
                        1,
                        Cow::Borrowed(p.attrs_json.as_str()),
                        Cow::Borrowed(p.roles_json.as_str()),
                        Cow::Borrowed(p.detail_json.as_str()),
                        None,
                        (true, p.roles_json != "[]"),
                        p.due_on.clone(),
                    ),
                    (stored, _) => {
                        let (before, version, data_id) = match stored {
                            Some((version, Some(data_id))) => {
                                let (a, r): (String, String) = sel_data
                                    .query_row([data_id], |r| Ok((r.get(0)?, r.get(1)?)))
                                    .map_err(be)?;
                                (Some(decode_state(&a, &r)?), version, Some(data_id))
                            }
                            _ => (None, 0, None),
                        };
                        let d = shared::decide(before.as_ref(), version, inc, &ctx.policy, &today);
                        let (kind, version) = (d.kind, d.version);
                        if kind == ChangeKind::Unchanged {
                            if let Some(ss) =
                                source_system.filter(|ss| stored_source.as_deref() != Some(*ss))
                            {
                                confirm
                                    .execute(params![
                                        tenant,
                                        inc.external_id.as_str(),
                                        ss,
                                        fp.as_slice()
                                    ])
                                    .map_err(be)?;
                            }
                            out.push(ItemResult { kind, version });
                            continue 'items;
                        }
                        let changed = d.changed();
                        let due = muster_core::person::due_on(&d.next);
                        (
                            kind,
                            version,
                            Cow::Owned(serde_json::to_string(&d.next.attrs).map_err(json_err)?),
                            Cow::Owned(serde_json::to_string(&d.next.roles).map_err(json_err)?),
                            Cow::Owned(d.detail_json()),
                            data_id,
                            changed,
                            due,
                        )
                    }
                };
            let inserting = data_id.is_none();
            let (stmt, data_id) = match data_id {
                Some(id) => {
                    update_data.execute(params![id, attrs, roles]).map_err(be)?;
                    (&mut update, id)
                }
                None => {
                    insert_data.execute(params![attrs, roles]).map_err(be)?;
                    (&mut insert, conn.last_insert_rowid())
                }
            };
            let written = stmt
                .execute(params![
                    tenant,
                    inc.external_id.as_str(),
                    version,
                    fp.as_slice(),
                    data_id,
                    now,
                    ctx.principal,
                    ctx.on_behalf_of,
                    ctx.source,
                    source_system,
                    due
                ])
                .map_err(be)?;
            if written == 0 && inserting && !look_up {
                // Written since the caller looked: its attributes row goes,
                // and the person is applied as stored.
                delete_data.execute([data_id]).map_err(be)?;
                look_up = true;
                continue;
            }
            if written != 1 {
                return Err(StoreError::backend(format!(
                    "expected one write of a person's row, made {written}"
                )));
            }
            audit_insert_fields(
                conn,
                &mut head,
                AuditFields {
                    prev_hash: "",
                    tenant,
                    seq: 0,
                    at: &at,
                    principal: &ctx.principal,
                    on_behalf_of: ctx.on_behalf_of.as_deref(),
                    source: &ctx.source,
                    action: kind.event_name(),
                    person: Some(inc.external_id.as_str()),
                    detail: &detail,
                },
            )?;
            let mut c = match cursor {
                Some(c) => c,
                None => conn
                    .prepare_cached(
                        "SELECT coalesce(max(cursor), 0) FROM events WHERE tenant_id = ?1",
                    )
                    .map_err(be)?
                    .query_row([tenant], |r| r.get(0))
                    .map_err(be)?,
            };
            for name in change_event_kinds(kind, attrs_changed, roles_changed) {
                c += 1;
                insert_event
                    .execute(params![
                        tenant,
                        c,
                        uuid::Uuid::now_v7().as_bytes().as_slice(),
                        name,
                        inc.external_id.as_str(),
                        version,
                        head.0
                    ])
                    .map_err(be)?;
            }
            cursor = Some(c);
            out.push(ItemResult { kind, version });
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database made by the release before import semantics (schema v2)
    /// gets due dates for its stored future terminations when opened.
    #[test]
    fn upgrading_gives_stored_terminations_their_due_date() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v2.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(&format!("BEGIN; {SCHEMA} PRAGMA user_version=1; COMMIT;"))
                .unwrap();
            let (v, sql) = MIGRATIONS[0];
            assert_eq!(v, 2);
            conn.execute_batch(&format!("BEGIN; {sql} PRAGMA user_version=2; COMMIT;"))
                .unwrap();
            let people = muster_store::contract_semantics::PRE_UPGRADE_PEOPLE;
            for (i, (id, attrs, _)) in people.iter().enumerate() {
                conn.execute(
                    "INSERT INTO person_data (id, attrs, roles) VALUES (?1, ?2, '[]')",
                    params![i as i64 + 1, attrs],
                )
                .unwrap();
                conn.execute(
                    "INSERT INTO people (tenant_id, external_id, version, fingerprint, data_id, \
                     created_at, updated_at, updated_by, on_behalf_of, source) \
                     VALUES ('default', ?1, 1, NULL, ?2, 0, 0, 'client:c', NULL, 'api')",
                    params![id, i as i64 + 1],
                )
                .unwrap();
            }
            drop(conn);
            drop(SqliteStore::open(&path).unwrap());
            let conn = Connection::open(&path).unwrap();
            for (id, _, want) in people {
                let due: Option<String> = conn
                    .query_row(
                        "SELECT due_on FROM people WHERE external_id = ?1",
                        [id],
                        |r| r.get(0),
                    )
                    .unwrap();
                assert_eq!(due.as_deref(), *want, "{id}");
            }
        }
    }

    /// A database made before issuers were per tenant (schema v5) keeps
    /// its issuers when opened, and then lets another tenant register the
    /// same `(issuer, audience)`.
    #[test]
    fn upgrading_keeps_issuers_and_makes_them_per_tenant() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v5.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(&format!("BEGIN; {SCHEMA} PRAGMA user_version=1; COMMIT;"))
                .unwrap();
            for (v, sql) in MIGRATIONS.iter().filter(|m| m.0 <= 5) {
                conn.execute_batch(&format!("BEGIN; {sql} PRAGMA user_version={v}; COMMIT;"))
                    .unwrap();
            }
            conn.execute_batch(
                "INSERT INTO tenants (id, name, created_at) VALUES ('default', 'Default', 0), \
                   ('other', 'Other', 0); \
                 INSERT INTO issuers (id, tenant_id, name, issuer, audience, settings, \
                   hs256_sealed, created_at) VALUES ('i1', 'default', 'okta', \
                   'https://idp.example', 'muster', '{}', X'0102', 7);",
            )
            .unwrap();
            // Before: the pair is unique across tenants.
            assert!(conn
                .execute(
                    "INSERT INTO issuers (id, tenant_id, name, issuer, audience, settings, \
                     created_at) VALUES ('i2', 'other', 'okta', 'https://idp.example', \
                     'muster', '{}', 7)",
                    [],
                )
                .is_err());
        }
        drop(SqliteStore::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        let kept: (String, String, Vec<u8>, i64) = conn
            .query_row(
                "SELECT tenant_id, name, hs256_sealed, created_at FROM issuers WHERE id = 'i1'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(kept, ("default".into(), "okta".into(), vec![1, 2], 7));
        let insert = |id: &str, tenant: &str, name: &str| {
            conn.execute(
                "INSERT INTO issuers (id, tenant_id, name, issuer, audience, settings, \
                 created_at) VALUES (?1, ?2, ?3, 'https://idp.example', 'muster', '{}', 7)",
                params![id, tenant, name],
            )
        };
        insert("i2", "other", "okta").unwrap();
        assert!(
            insert("i3", "default", "entra").is_err(),
            "unique per tenant"
        );
    }

    /// Entries keep their hashes as bytes; a chain whose older entries
    /// hold them as hex text (written by an earlier release) still verifies,
    /// reads as hex throughout and goes on from a text head.
    #[test]
    fn audit_hashes_are_bytes_and_older_text_hashes_still_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("muster.db");
        let store = SqliteStore::open(&path).unwrap();
        let t = TenantId::default_tenant();
        let draft = |n: i64| AuditDraft {
            tenant: t.clone(),
            at: Utc.timestamp_opt(1_800_000_000 + n, 0).unwrap(),
            principal: "admin:a".into(),
            on_behalf_of: None,
            source: "api".into(),
            action: "tenant.updated".into(),
            person: None,
            detail: serde_json::json!({ "n": n }),
        };
        for n in 1..=3 {
            store.audit_append(draft(n)).unwrap();
        }
        let conn = Connection::open(&path).unwrap();
        let types = |seq: i64| -> (String, String) {
            conn.query_row(
                "SELECT typeof(prev_hash), typeof(hash) FROM audit WHERE seq = ?1",
                [seq],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
        };
        assert_eq!(types(2), ("blob".into(), "blob".into()));
        conn.execute(
            "UPDATE audit SET prev_hash = lower(hex(prev_hash)), hash = lower(hex(hash))",
            [],
        )
        .unwrap();
        assert_eq!(types(3), ("text".into(), "text".into()));
        store.audit_append(draft(4)).unwrap();
        assert_eq!(types(4), ("blob".into(), "blob".into()));
        let chain = || {
            let mut rows = Vec::new();
            store
                .audit_walk(&t, &mut |r| {
                    rows.push((r.entry, r.hash));
                    true
                })
                .unwrap();
            rows
        };
        let rows = chain();
        assert!(rows
            .iter()
            .all(|(e, h)| h.len() == 64 && e.prev_hash.len() == 64));
        assert_eq!(muster_core::audit::verify_chain(rows).unwrap(), 4);
        // An edited hash is caught, bytes or text.
        conn.execute("UPDATE audit SET hash = zeroblob(32) WHERE seq = 4", [])
            .unwrap();
        let broken = muster_core::audit::verify_chain(chain()).unwrap_err();
        assert_eq!(broken.seq(), 4);
    }

    /// A prepared record is inserted without a look-up; when the person
    /// is there after all, it is applied as stored, and the attributes row
    /// its first try wrote does not stay behind.
    #[test]
    fn a_prepared_record_for_a_stored_person_leaves_no_stray_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("muster.db");
        let store = SqliteStore::open(&path).unwrap();
        store
            .bootstrap(muster_core::secret::digest("a"), Utc::now())
            .unwrap();
        let ctx = WriteContext {
            tenant: TenantId::default_tenant(),
            principal: "client:c".into(),
            on_behalf_of: None,
            source: "import:i".into(),
            policy: muster_core::policy::WritePolicy::allow_all(),
            now: Utc::now(),
            source_system: Some("hr".into()),
        };
        let key = Incoming::fingerprint_key(&ctx.principal, &ctx.policy);
        let item = |name: &str| {
            let mut inc = Incoming::new(ExternalId::parse("E1").unwrap());
            inc.attrs.insert(
                "given_name".into(),
                Some(muster_core::AttrValue::string(name)),
            );
            BatchItem::prepared(2, inc, &key, &ctx.policy)
        };
        let kinds = |items: Vec<BatchItem>| -> Vec<(ChangeKind, i64)> {
            store
                .apply_batch(&ctx, items, None, false)
                .unwrap()
                .into_iter()
                .map(|r| (r.kind, r.version))
                .collect()
        };
        assert_eq!(kinds(vec![item("Ada")]), [(ChangeKind::Created, 1)]);
        assert_eq!(
            kinds(vec![item("Ada"), item("Ida"), item("Ida")]),
            [
                (ChangeKind::Unchanged, 1),
                (ChangeKind::Updated, 2),
                (ChangeKind::Unchanged, 2)
            ]
        );
        let p = store
            .person_get(&ctx.tenant, &ExternalId::parse("E1").unwrap())
            .unwrap();
        assert_eq!(p.state.attrs["given_name"].as_str(), Some("Ida"));
        let conn = Connection::open(&path).unwrap();
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM person_data", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1);
    }

    /// A store on a database file in a fresh temporary directory.
    fn fresh() -> Option<muster_store::contract::Made> {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("muster.db")).unwrap();
        Some((Box::new(store), Box::new(dir)))
    }

    /// A second connection changes the schema; the writer's connection
    /// sees the trigger at its next statement.
    fn refuse(guard: &dyn std::any::Any, on: bool) {
        let dir = guard.downcast_ref::<tempfile::TempDir>().unwrap();
        let conn = Connection::open(dir.path().join("muster.db")).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        conn.execute_batch(if on {
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit \
             BEGIN SELECT RAISE(ABORT, 'audit refused'); END;"
        } else {
            "DROP TRIGGER refuse_audit;"
        })
        .unwrap();
    }

    /// The store contract, one test per case.
    mod store_contract {
        muster_store::contract_tests! { make: super::fresh, refuse: super::refuse }
    }
}
