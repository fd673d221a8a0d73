//! The PostgreSQL backend: the blocking [`Store`] over the synchronous
//! `postgres` driver, for installations where several `muster serve`
//! instances share one database.
//!
//! - Connections come from a small pool of our own (see `pool.rs`) that
//!   keeps prepared statements per connection.
//! - Migrations are embedded and applied on open (see `migrate.rs`).
//! - Work shared between instances is made safe by the database, never by
//!   process-local locks: each tenant's audit chain is appended under a row
//!   lock on its head row (`audit_heads`), a one-time token is consumed by
//!   one conditional `UPDATE`, and workers claim imports with
//!   `FOR UPDATE SKIP LOCKED` and a lease ([`Imports::import_claim`]).
//! - The bulk write path (`apply.rs`) costs a fixed number of statements per
//!   batch, whatever its size.
#![forbid(unsafe_code)]

// SQL fragments the capability files share; defined before the modules,
// as a macro is only seen by the code after it.

/// How many columns [`principal_cols!`] selects.
pub(crate) const PRINCIPAL_COLS: usize = 16;

/// The [`PRINCIPAL_COLS`] columns [`to_principal`] decodes: a principal
/// and its secrets, in one statement.
macro_rules! principal_cols {
    () => {
        "p.id, p.tenant_id, p.kind, p.client_id, p.name, p.role, \
         p.token_policy, p.token_ttl_seconds, p.write_policy, p.disabled, p.created_at, \
         ARRAY(SELECT s.digest FROM client_secrets s WHERE s.principal_id = p.id \
               ORDER BY s.created_at, s.digest), \
         ARRAY(SELECT s.created_at FROM client_secrets s WHERE s.principal_id = p.id \
               ORDER BY s.created_at, s.digest), \
         ARRAY(SELECT s.expires_at FROM client_secrets s WHERE s.principal_id = p.id \
               ORDER BY s.created_at, s.digest), p.scim_key, p.read_policy"
    };
}

macro_rules! principal_where {
    ($cond:literal) => {
        concat!(
            "SELECT ",
            principal_cols!(),
            " FROM principals p WHERE ",
            $cond
        )
    };
}

macro_rules! key_cols {
    () => {
        "id, tenant_id, kind, algorithm, purpose, key_ids, public_key, sealed_secret, state, \
         created_at, updated_at"
    };
}

macro_rules! import_select {
    ($($rest:tt)+) => {
        concat!(
            "SELECT id, tenant_id, principal_id, client_id, on_behalf_of, idempotency_key, \
             mapping, mapping_version, mode, dry_run, format, options, bytes, state, rows_total, \
             created, updated, unchanged, deactivated, failed, checkpoint_row, error_code, \
             error_message, created_at, updated_at, finished_at FROM imports ",
            $($rest)+
        )
    };
}

macro_rules! person_select {
    ($rest:literal) => {
        concat!(
            "SELECT external_id, attrs::text, roles::text, version, updated_at, updated_by, \
             on_behalf_of, source, source_system, scim_id FROM people ",
            $rest
        )
    };
}

macro_rules! audit_select {
    ($rest:literal) => {
        concat!(
            "SELECT tenant_id, seq, at, principal, on_behalf_of, source, action, person, \
             detail, prev_hash, hash FROM audit ",
            $rest
        )
    };
}

/// Admin tokens (rows with an id) of admin principals; callers append
/// `AND ...` conditions.
macro_rules! admin_token_select {
    () => {
        concat!(named_token_select!(), " AND p.kind = 'admin'")
    };
}

/// Named tokens (rows with an id: admin tokens, clients' SCIM tokens);
/// callers append `AND ...` conditions.
macro_rules! named_token_select {
    () => {
        "SELECT t.id, p.client_id, coalesce(t.name, ''), t.created_at, t.expires_at, \
         t.last_used_at, t.revoked_at FROM tokens t JOIN principals p ON p.id = t.principal_id \
         WHERE t.id IS NOT NULL"
    };
}

mod apply;
mod audit;
mod cluster;
mod events;
mod fenced;
mod imports;
mod issuers;
mod keys;
mod mappings;
mod migrate;
mod people;
mod pool;
mod principals;
mod rotate;
mod scim;
mod subscriptions;
mod tenants;
#[doc(hidden)]
pub mod testing;
pub mod transfer;

use chrono::{DateTime, Duration as ChronoDuration, TimeZone, Utc};
use muster_core::audit::AuditEntry;
use muster_core::policy::{IntakePolicy, ReadPolicy, WritePolicy};
use muster_core::secret::SecretDigest;
use muster_core::{ExternalId, TenantId};
use muster_store::shared::{decode_state, json_err};
use muster_store::*;
use pool::{Pool, Sql};
use postgres::error::SqlState;
use postgres::{Config, GenericClient, Row};
use std::str::FromStr;
use std::time::Duration;

/// Connections a store opens at most, unless told otherwise.
pub const DEFAULT_MAX_CONNECTIONS: usize = 8;
/// How long a caller waits for a free connection before failing.
const POOL_WAIT: Duration = Duration::from_secs(30);

/// Advisory transaction lock namespaces (the first key of the two-key form).
const LOCK_BOOTSTRAP: i32 = 1;
const LOCK_MAPPING: i32 = 2;

/// Times are kept to the microsecond, like PostgreSQL's `timestamptz`; a
/// row handed back is truncated alike, so it equals what a read returns.
fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    Utc.timestamp_micros(t.timestamp_micros())
        .single()
        .unwrap_or(t)
}

pub(crate) fn be(e: postgres::Error) -> StoreError {
    StoreError::caused("PostgreSQL failed", Cause::of(&e, None))
}

/// A driver error and its causes, kept as an error chain: each link's text
/// is the driver's own, with the password blotted out when the
/// configuration is given. A server error gives its severity, SQLSTATE and
/// message and ends the chain: its DETAIL quotes row values (an external id
/// in a key violation, say) that logs must not hold.
#[derive(Debug)]
pub(crate) struct Cause {
    text: String,
    source: Option<Box<Cause>>,
}

impl Cause {
    /// The chain of `e`, with `config`'s password blotted out of every link.
    pub(crate) fn of(e: &postgres::Error, config: Option<&Config>) -> Self {
        let clean = |text: String| match config {
            Some(c) => redact(c, &text),
            None => text,
        };
        if let Some(db) = e.as_db_error() {
            return Cause {
                text: format!("{} {}: {}", db.severity(), db.code().code(), db.message()),
                source: None,
            };
        }
        let mut links = vec![clean(e.to_string())];
        let mut cause = std::error::Error::source(e);
        while let Some(c) = cause {
            links.push(clean(c.to_string()));
            cause = c.source();
        }
        links
            .into_iter()
            .rev()
            .fold(None, |source, text| {
                Some(Cause {
                    text,
                    source: source.map(Box::new),
                })
            })
            .unwrap_or(Cause {
                text: String::new(),
                source: None,
            })
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|c| c as &(dyn std::error::Error + 'static))
    }
}

/// The driver error with its causes on one line, for the log: [`Cause`]'s
/// links joined.
fn describe(e: &postgres::Error) -> String {
    let mut text = String::new();
    let mut link = Some(&Cause::of(e, None));
    while let Some(c) = link {
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&c.text);
        link = c.source.as_deref();
    }
    text
}

fn bad(e: impl std::fmt::Display) -> StoreError {
    StoreError::backend(e.to_string())
}

fn is_unique_violation(e: &postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// Text with the configured password, if any, blotted out: driver errors
/// are not known to quote it, but a log line is no place to find out.
pub(crate) fn redact(config: &Config, text: &str) -> String {
    match config.get_password().map(String::from_utf8_lossy) {
        Some(p) if !p.is_empty() => text.replace(p.as_ref(), "***"),
        _ => text.to_owned(),
    }
}

fn get<'a, T: postgres::types::FromSql<'a>>(r: &'a Row, i: usize) -> Result<T> {
    r.try_get(i).map_err(be)
}

fn tenant_id(s: &str) -> Result<TenantId> {
    TenantId::parse(s).map_err(bad)
}

/// A Muster store on PostgreSQL. Cheap to share (`Arc`); every method
/// blocks the calling thread.
pub struct PostgresStore {
    pool: Pool,
    stats: TableStats,
}

/// Keeps the planner's statistics of the tables a bulk import grows in
/// step with them. Autovacuum analyzes a table only a minute or so after
/// it grew, and until then (and in every cached plan made meanwhile) a
/// freshly loaded `people` looks empty: a re-import right after the first
/// one then scans the whole table once per batch of lookups. So each
/// process analyzes after its own writes have doubled what it last saw
/// (10,000 new people at the least): a handful of ANALYZE runs for a
/// million-row load, none for everyday traffic.
#[derive(Default)]
struct TableStats {
    /// (people created since the last ANALYZE, people seen at it)
    counts: std::sync::Mutex<(u64, u64)>,
    /// An ANALYZE is under way.
    running: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl TableStats {
    const MIN_GROWTH: u64 = 10_000;

    /// Counts created people; says whether it is time to analyze.
    fn grew(&self, created: u64) -> bool {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.0 += created;
        if c.0 >= Self::MIN_GROWTH.max(c.1) {
            c.1 += c.0;
            c.0 = 0;
            return true;
        }
        false
    }
}

impl std::fmt::Debug for PostgresStore {
    /// Where the store connects, never with the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = self.pool.config();
        let hosts: Vec<String> = c
            .get_hosts()
            .iter()
            .map(|h| match h {
                postgres::config::Host::Tcp(h) => h.clone(),
                #[cfg(unix)]
                postgres::config::Host::Unix(p) => p.display().to_string(),
            })
            .collect();
        f.debug_struct("PostgresStore")
            .field("hosts", &hosts)
            .field("ports", &c.get_ports())
            .field("user", &c.get_user())
            .field("dbname", &c.get_dbname())
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Runs a change in one transaction and appends the entries its
    /// `audit` builds from the result in the same transaction: both
    /// commit, or neither does.
    fn audited<R>(
        &self,
        audit: Audit<R>,
        f: impl FnOnce(&mut Sql<'_, postgres::Transaction<'_>>) -> Result<R>,
    ) -> Result<R> {
        self.pool.write(|s| {
            let r = f(s)?;
            for d in audit(&r) {
                apply::audit_append_one(s, &d)?;
            }
            Ok(r)
        })
    }

    /// Connects to the database at `url` (`postgres://user:pass@host/db`,
    /// or the key=value form), without TLS, and migrates it.
    pub fn open(url: &str) -> Result<Self> {
        // The driver's parse errors name options, never their values.
        let config = Config::from_str(url).map_err(|e| {
            StoreError::caused(
                "the PostgreSQL connection URL is not valid",
                Cause::of(&e, None),
            )
        })?;
        Self::open_with(config, DEFAULT_MAX_CONNECTIONS)
    }

    /// Like [`PostgresStore::open`], from a parsed configuration.
    pub fn open_with(mut config: Config, max_connections: usize) -> Result<Self> {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("muster");
        }
        let pool = Pool::new(config, max_connections, POOL_WAIT);
        let mut client = pool.connect()?;
        migrate::run(&mut client)?;
        Ok(Self {
            pool,
            stats: TableStats::default(),
        })
    }

    /// After a batch commits: analyze the grown tables when due (see
    /// [`TableStats`]), on a connection and thread of its own, so the
    /// import goes on meanwhile (at 1M rows a run took about as long as a
    /// batch). At most one runs at a time; a failure only costs plan
    /// quality, so it is logged.
    fn after_batch(&self, results: &[ItemResult], dry_run: bool) {
        if dry_run {
            return;
        }
        let created = results
            .iter()
            .filter(|r| r.kind == muster_core::person::ChangeKind::Created)
            .count() as u64;
        if created == 0 || !self.stats.grew(created) {
            return;
        }
        use std::sync::atomic::Ordering;
        if self.stats.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let (config, running) = (self.pool.config().clone(), self.stats.running.clone());
        let spawned = std::thread::Builder::new()
            .name("muster-pg-analyze".into())
            .spawn(move || {
                let outcome = config
                    .connect(postgres::NoTls)
                    .and_then(|mut c| {
                        // Row counts and a coarse histogram are all these
                        // keyed look-ups need: a tenth of the default sample.
                        c.batch_execute(
                            "SET default_statistics_target = 10; ANALYZE people, audit, events",
                        )
                    });
                if let Err(e) = outcome {
                    tracing::warn!(error = %describe(&e), "cannot refresh the planner statistics after a bulk write");
                }
                running.store(false, Ordering::Release);
            });
        if spawned.is_err() {
            self.stats.running.store(false, Ordering::Release);
        }
    }

    /// The schema version this build migrates to.
    pub fn schema_version() -> i32 {
        migrate::latest()
    }
}

// ---- row decoding -------------------------------------------------------

/// Decodes the [`PRINCIPAL_COLS`] principal columns starting at `at`.
fn to_principal(r: &Row, at: usize) -> Result<ClientRow> {
    let kind: String = get(r, at + 2)?;
    let ttl: i64 = get(r, at + 7)?;
    let wp: serde_json::Value = get(r, at + 8)?;
    let digests: Vec<Vec<u8>> = get(r, at + 11)?;
    let created: Vec<DateTime<Utc>> = get(r, at + 12)?;
    let expires: Vec<Option<DateTime<Utc>>> = get(r, at + 13)?;
    let secrets = digests
        .into_iter()
        .zip(created)
        .zip(expires)
        .map(|((d, c), e)| {
            Ok(SecretRow {
                digest: d
                    .try_into()
                    .map_err(|_| StoreError::backend("a stored secret digest is malformed"))?,
                created_at: c,
                expires_at: e,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(ClientRow {
        id: get(r, at)?,
        tenant: tenant_id(get(r, at + 1)?)?,
        kind: if kind == "admin" {
            PrincipalKind::Admin
        } else {
            PrincipalKind::Client
        },
        client_id: get(r, at + 3)?,
        name: get(r, at + 4)?,
        role: get(r, at + 5)?,
        token_policy: get(r, at + 6)?,
        token_ttl_seconds: ttl.max(0) as u64,
        write_policy: serde_json::from_value::<WritePolicy>(wp).map_err(json_err)?,
        disabled: get(r, at + 9)?,
        created_at: get(r, at + 10)?,
        secrets,
        scim_key: get(r, at + 14)?,
        read_policy: match get::<Option<serde_json::Value>>(r, at + 15)? {
            Some(v) => serde_json::from_value::<ReadPolicy>(v).map_err(json_err)?,
            None => ReadPolicy::default(),
        },
    })
}

fn to_key(r: &Row) -> Result<KeyRow> {
    let tenant: String = get(r, 1)?;
    let purpose: String = get(r, 4)?;
    let state: String = get(r, 8)?;
    Ok(KeyRow {
        id: get(r, 0)?,
        tenant: TenantId::parse(&tenant).map_err(bad)?,
        kind: get(r, 2)?,
        algorithm: get(r, 3)?,
        purpose: KeyPurpose::parse(&purpose)
            .ok_or_else(|| bad("stored key has an invalid purpose"))?,
        key_ids: serde_json::from_value(get(r, 5)?).map_err(json_err)?,
        public_key: get(r, 6)?,
        sealed_secret: get(r, 7)?,
        state: KeyState::parse(&state).ok_or_else(|| bad("stored key has an invalid state"))?,
        created_at: get(r, 9)?,
        updated_at: get(r, 10)?,
    })
}

fn to_import(r: &Row) -> Result<ImportRow> {
    let n = |i: usize| -> Result<u64> { Ok(get::<i64>(r, i)?.max(0) as u64) };
    Ok(ImportRow {
        id: get(r, 0)?,
        tenant: tenant_id(get(r, 1)?)?,
        principal_id: get(r, 2)?,
        client_id: get(r, 3)?,
        on_behalf_of: get(r, 4)?,
        idempotency_key: get(r, 5)?,
        mapping: get(r, 6)?,
        mapping_version: get(r, 7)?,
        mode: ImportMode::parse(&get::<String>(r, 8)?)
            .ok_or_else(|| bad("stored import has an invalid mode"))?,
        dry_run: get(r, 9)?,
        format: get(r, 10)?,
        options: get(r, 11)?,
        bytes: n(12)?,
        state: ImportState::parse(&get::<String>(r, 13)?)
            .ok_or_else(|| bad("stored import has an invalid state"))?,
        counts: Counts {
            rows_total: n(14)?,
            created: n(15)?,
            updated: n(16)?,
            unchanged: n(17)?,
            deactivated: n(18)?,
            failed: n(19)?,
        },
        checkpoint_row: n(20)?,
        error_code: get(r, 21)?,
        error_message: get(r, 22)?,
        created_at: get(r, 23)?,
        updated_at: get(r, 24)?,
        finished_at: get(r, 25)?,
    })
}

/// A read policy as stored: none for the default (everything).
pub(crate) fn read_policy_value(p: &ReadPolicy) -> Result<Option<serde_json::Value>> {
    muster_store::shared::stored_read_policy(p)
        .map(|p| serde_json::to_value(p).map_err(json_err))
        .transpose()
}

fn insert_principal<C: GenericClient>(
    s: &mut Sql<'_, C>,
    c: &NewClient,
    now: DateTime<Utc>,
) -> Result<String> {
    let id = uuid::Uuid::now_v7().to_string();
    let wp = serde_json::to_value(&c.write_policy).map_err(json_err)?;
    let rp = read_policy_value(&c.read_policy)?;
    let kind = match c.kind {
        PrincipalKind::Admin => "admin",
        PrincipalKind::Client => "client",
    };
    let res = s.try_exec(
        "INSERT INTO principals (id, tenant_id, kind, client_id, name, role, token_policy, \
         token_ttl_seconds, write_policy, disabled, created_at, read_policy) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, false, $10, $11)",
        &[
            &id,
            &c.tenant.as_str(),
            &kind,
            &c.client_id,
            &c.name,
            &c.role,
            &c.token_policy,
            &(c.token_ttl_seconds as i64),
            &wp,
            &now,
            &rp,
        ],
    )?;
    match res {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => {
            return Err(StoreError::Conflict(format!(
                "a principal with the id '{}' exists already",
                c.client_id
            )))
        }
        Err(e) if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => {
            return Err(StoreError::NotFound { what: "tenant" })
        }
        Err(e) => return Err(be(e)),
    }
    if let Some(d) = c.secret {
        s.exec(
            "INSERT INTO client_secrets (principal_id, digest, created_at) VALUES ($1, $2, $3)",
            &[&id, &d.as_slice(), &now],
        )?;
    }
    Ok(id)
}

fn insert_admin_token<C: GenericClient>(s: &mut Sql<'_, C>, t: &NewAdminToken) -> Result<()> {
    insert_named_token(s, t, "*")
}

/// A token row with an id and a name (an admin token, a SCIM token).
fn insert_named_token<C: GenericClient>(
    s: &mut Sql<'_, C>,
    t: &NewAdminToken,
    scope: &str,
) -> Result<()> {
    s.exec(
        "INSERT INTO tokens (digest, principal_id, scope, one_time, created_at, expires_at, id, name) \
         VALUES ($1, $2, $7, false, $3, $4, $5, $6)",
        &[
            &t.digest.as_slice(),
            &t.principal_id,
            &t.created_at,
            &t.expires_at,
            &t.id,
            &t.name,
            &scope,
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod cause_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use crate::testing::{server, TestDb};
    use postgres::NoTls;

    /// Every link of an error's `source()` chain, outermost first.
    fn chain(e: &dyn std::error::Error) -> Vec<String> {
        let mut links = vec![e.to_string()];
        let mut next = e.source();
        while let Some(c) = next {
            links.push(c.to_string());
            next = c.source();
        }
        links
    }

    #[test]
    fn a_server_error_keeps_its_sqlstate_in_the_chain_but_not_the_row_it_quotes() {
        let Some(server) = server() else { return };
        let db = TestDb::create(&server);
        let mut c = db.config().connect(NoTls).unwrap();
        c.batch_execute("CREATE TABLE t (v text UNIQUE); INSERT INTO t VALUES ('ada-lovelace')")
            .unwrap();
        let raw = c
            .execute("INSERT INTO t VALUES ('ada-lovelace')", &[])
            .unwrap_err();
        assert!(
            format!("{raw:?}").contains("ada-lovelace"),
            "the driver's own error quotes the row (its DETAIL)"
        );
        let links = chain(&super::be(raw));
        assert_eq!(links.len(), 2, "{links:?}");
        assert!(links[1].contains("23505"), "{links:?}");
        assert!(!links.concat().contains("ada-lovelace"), "{links:?}");
    }

    #[test]
    fn a_connection_failure_keeps_its_cause_without_the_password() {
        let err = crate::PostgresStore::open(
            "postgres://u:hunter2-secret@127.0.0.1:1/nowhere?connect_timeout=2",
        )
        .unwrap_err();
        let links = chain(&err);
        assert!(
            links.len() >= 3,
            "the driver's error and its I/O cause: {links:?}"
        );
        assert!(links[0].contains("cannot connect"), "{links:?}");
        assert!(!links.concat().contains("hunter2"), "{links:?}");
    }
}

#[cfg(test)]
mod table_stats_tests {
    use super::TableStats;

    #[test]
    fn analyzes_when_new_people_double_what_it_last_saw() {
        let s = TableStats::default();
        assert!(!s.grew(5_000), "5,000 new people are below the minimum");
        assert!(s.grew(5_000), "10,000 new people are due");
        assert!(!s.grew(9_999), "not yet double the 10,000 seen");
        assert!(s.grew(1), "20,000 seen now");
        assert!(!s.grew(19_999));
        assert!(s.grew(1), "40,000 seen now");
    }
}
