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
//!   `FOR UPDATE SKIP LOCKED` and a lease ([`Store::import_claim`]).
//! - The bulk write path (`apply.rs`) costs a fixed number of statements per
//!   batch, whatever its size.
#![forbid(unsafe_code)]

mod apply;
mod fenced;
mod issuers;
mod migrate;
mod pool;
mod rotate;
mod subscriptions;
#[doc(hidden)]
pub mod testing;
pub mod transfer;

use chrono::{DateTime, Duration as ChronoDuration, TimeZone, Utc};
use muster_core::audit::AuditEntry;
use muster_core::policy::{IntakePolicy, WritePolicy};
use muster_core::secret::SecretDigest;
use muster_core::{ExternalId, TenantId};
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

pub(crate) fn be(e: postgres::Error) -> StoreError {
    StoreError::Backend(describe(&e))
}

/// The driver error with its cause, for the log. A server error gives its
/// severity, SQLSTATE and message but not its DETAIL, which quotes row
/// values (an external id in a key violation, say) that logs must not hold.
pub(crate) fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} {}: {}", db.severity(), db.code().code(), db.message());
    }
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

fn json_err(e: serde_json::Error) -> StoreError {
    StoreError::Backend(format!("stored JSON does not decode: {e}"))
}

fn bad(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
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

/// Times are kept to the microsecond, like PostgreSQL's `timestamptz`; a
/// row handed back is truncated alike, so it equals what a read returns.
fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    Utc.timestamp_micros(t.timestamp_micros())
        .single()
        .unwrap_or(t)
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
            StoreError::Backend(format!(
                "the PostgreSQL connection URL is not valid: {}",
                describe(&e)
            ))
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

fn to_tenant(r: &Row) -> Result<TenantRow> {
    Ok(TenantRow {
        id: tenant_id(get(r, 0)?)?,
        name: get(r, 1)?,
        created_at: get(r, 2)?,
    })
}

/// The 14 columns [`to_principal`] decodes: a principal and its secrets,
/// in one statement.
macro_rules! principal_cols {
    () => {
        "p.id, p.tenant_id, p.kind, p.client_id, p.name, p.role, \
         p.token_policy, p.token_ttl_seconds, p.write_policy, p.disabled, p.created_at, \
         ARRAY(SELECT s.digest FROM client_secrets s WHERE s.principal_id = p.id \
               ORDER BY s.created_at, s.digest), \
         ARRAY(SELECT s.created_at FROM client_secrets s WHERE s.principal_id = p.id \
               ORDER BY s.created_at, s.digest), \
         ARRAY(SELECT s.expires_at FROM client_secrets s WHERE s.principal_id = p.id \
               ORDER BY s.created_at, s.digest)"
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

/// Decodes the 14 principal columns starting at `at`.
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
                digest: d.try_into().map_err(|_| {
                    StoreError::Backend("a stored secret digest is malformed".into())
                })?,
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
    })
}

fn principal_by_id<C: GenericClient>(s: &mut Sql<'_, C>, id: &str) -> Result<Option<ClientRow>> {
    s.opt(principal_where!("p.id = $1"), &[&id])?
        .map(|r| to_principal(&r, 0))
        .transpose()
}

fn principal_by_client_id<C: GenericClient>(
    s: &mut Sql<'_, C>,
    client_id: &str,
) -> Result<Option<ClientRow>> {
    s.opt(principal_where!("p.client_id = $1"), &[&client_id])?
        .map(|r| to_principal(&r, 0))
        .transpose()
}

macro_rules! key_cols {
    () => {
        "id, tenant_id, kind, algorithm, purpose, key_ids, public_key, sealed_secret, state, \
         created_at, updated_at"
    };
}

fn key_by_id<C: GenericClient>(s: &mut Sql<'_, C>, tenant: &TenantId, id: &str) -> Result<KeyRow> {
    s.opt(
        concat!(
            "SELECT ",
            key_cols!(),
            " FROM keys WHERE tenant_id = $1 AND id = $2"
        ),
        &[&tenant.as_str(), &id],
    )?
    .map(|r| to_key(&r))
    .transpose()?
    .ok_or(StoreError::NotFound { what: "key" })
}

fn client_keys_of<C: postgres::GenericClient>(
    s: &mut pool::Sql<'_, C>,
    pid: &str,
) -> Result<ClientKeys> {
    Ok(s.opt(
        "SELECT hmac_sealed, ed25519_public, jwt_keys, updated_at, \
             hmac_previous_sealed, hmac_previous_until \
             FROM client_keys WHERE principal_id = $1",
        &[&pid],
    )?
    .map(|r| -> Result<ClientKeys> {
        Ok(ClientKeys {
            hmac_sealed: get(&r, 0)?,
            ed25519_public: get(&r, 1)?,
            jwt_keys: get(&r, 2)?,
            updated_at: Some(get(&r, 3)?),
            hmac_previous_sealed: get(&r, 4)?,
            hmac_previous_until: get(&r, 5)?,
        })
    })
    .transpose()?
    .unwrap_or_default())
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

fn to_mapping(r: &Row) -> Result<MappingRow> {
    Ok(MappingRow {
        tenant: tenant_id(get(r, 0)?)?,
        name: get(r, 1)?,
        version: get(r, 2)?,
        document: get(r, 3)?,
        created_at: get(r, 4)?,
        created_by: get(r, 5)?,
    })
}

macro_rules! import_select {
    ($rest:literal) => {
        concat!(
            "SELECT id, tenant_id, principal_id, client_id, on_behalf_of, idempotency_key, \
             mapping, mapping_version, mode, dry_run, format, options, bytes, state, rows_total, \
             created, updated, unchanged, deactivated, failed, checkpoint_row, error_code, \
             error_message, created_at, updated_at, finished_at FROM imports ",
            $rest
        )
    };
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
        mode: get(r, 8)?,
        dry_run: get(r, 9)?,
        format: get(r, 10)?,
        options: get(r, 11)?,
        bytes: n(12)?,
        state: get(r, 13)?,
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

fn load_import<C: GenericClient>(s: &mut Sql<'_, C>, id: &str) -> Result<Option<ImportRow>> {
    s.opt(import_select!("WHERE id = $1"), &[&id])?
        .map(|r| to_import(&r))
        .transpose()
}

macro_rules! person_select {
    ($rest:literal) => {
        concat!(
            "SELECT external_id, attrs::text, roles::text, version, updated_at, updated_by, \
             on_behalf_of, source, source_system FROM people ",
            $rest
        )
    };
}

fn to_person(r: &Row) -> Result<PersonRow> {
    let attrs: &str = get(r, 1)?;
    let roles: &str = get(r, 2)?;
    Ok(PersonRow {
        external_id: ExternalId::parse(get(r, 0)?).map_err(bad)?,
        state: apply::decode_state(attrs, roles)?,
        version: get(r, 3)?,
        updated_at: get(r, 4)?,
        updated_by: get(r, 5)?,
        on_behalf_of: get(r, 6)?,
        source: get(r, 7)?,
        source_system: get(r, 8)?,
    })
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

fn to_audit(r: &Row) -> Result<AuditRow> {
    Ok(AuditRow {
        entry: AuditEntry {
            tenant: get(r, 0)?,
            seq: get(r, 1)?,
            at: get(r, 2)?,
            principal: get(r, 3)?,
            on_behalf_of: get(r, 4)?,
            source: get(r, 5)?,
            action: get(r, 6)?,
            person: get(r, 7)?,
            detail: get(r, 8)?,
            prev_hash: get(r, 9)?,
        },
        hash: get(r, 10)?,
    })
}

fn insert_principal<C: GenericClient>(
    s: &mut Sql<'_, C>,
    c: &NewClient,
    now: DateTime<Utc>,
) -> Result<String> {
    let id = uuid::Uuid::now_v7().to_string();
    let wp = serde_json::to_value(&c.write_policy).map_err(json_err)?;
    let kind = match c.kind {
        PrincipalKind::Admin => "admin",
        PrincipalKind::Client => "client",
    };
    let res = s.try_exec(
        "INSERT INTO principals (id, tenant_id, kind, client_id, name, role, token_policy, \
         token_ttl_seconds, write_policy, disabled, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, false, $10)",
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

/// Admin tokens (rows with an id) of admin principals; callers append
/// `AND ...` conditions.
macro_rules! admin_token_select {
    () => {
        "SELECT t.id, p.client_id, coalesce(t.name, ''), t.created_at, t.expires_at, \
         t.last_used_at, t.revoked_at FROM tokens t JOIN principals p ON p.id = t.principal_id \
         WHERE t.id IS NOT NULL AND p.kind = 'admin'"
    };
}

fn to_admin_token(r: &Row) -> Result<AdminTokenRow> {
    Ok(AdminTokenRow {
        id: get(r, 0)?,
        admin: get(r, 1)?,
        name: get(r, 2)?,
        created_at: get(r, 3)?,
        expires_at: get(r, 4)?,
        last_used_at: get(r, 5)?,
        revoked_at: get(r, 6)?,
    })
}

fn insert_admin_token<C: GenericClient>(s: &mut Sql<'_, C>, t: &NewAdminToken) -> Result<()> {
    s.exec(
        "INSERT INTO tokens (digest, principal_id, scope, one_time, created_at, expires_at, id, name) \
         VALUES ($1, $2, '*', false, $3, $4, $5, $6)",
        &[
            &t.digest.as_slice(),
            &t.principal_id,
            &t.created_at,
            &t.expires_at,
            &t.id,
            &t.name,
        ],
    )?;
    Ok(())
}

fn insert_token<C: GenericClient>(s: &mut Sql<'_, C>, t: &NewToken) -> Result<()> {
    s.exec(
        "INSERT INTO tokens (digest, principal_id, scope, one_time, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &t.digest.as_slice(),
            &t.principal_id,
            &t.scope,
            &t.one_time,
            &t.created_at,
            &t.expires_at,
        ],
    )?;
    Ok(())
}

impl Store for PostgresStore {
    fn bootstrap_admin(
        &self,
        admin_token: SecretDigest,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.pool.write(|s| {
            // Instances starting together take turns; the first one creates.
            s.exec("SELECT pg_advisory_xact_lock($1, 0)", &[&LOCK_BOOTSTRAP])?;
            let n: i64 = get(&s.one("SELECT count(*) FROM tenants", &[])?, 0)?;
            if n > 0 {
                return Ok(false);
            }
            let tenant = TenantId::default_tenant();
            s.exec(
                "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)",
                &[&tenant.as_str(), &"Default", &now],
            )?;
            let pid = insert_principal(
                s,
                &NewClient {
                    tenant: tenant.clone(),
                    kind: PrincipalKind::Admin,
                    client_id: "admin".into(),
                    name: "Initial administrator".into(),
                    role: "admin".into(),
                    token_policy: "ttl".into(),
                    token_ttl_seconds: 0,
                    write_policy: WritePolicy::allow_all(),
                    secret: None,
                },
                now,
            )?;
            insert_admin_token(
                s,
                &NewAdminToken {
                    id: uuid::Uuid::now_v7().to_string(),
                    digest: admin_token,
                    principal_id: pid,
                    name: INITIAL_TOKEN_NAME.into(),
                    created_at: now,
                    expires_at,
                },
            )?;
            apply::audit_append_one(
                s,
                &AuditDraft {
                    tenant,
                    at: now,
                    principal: "system".into(),
                    on_behalf_of: None,
                    source: "bootstrap".into(),
                    action: "tenant.created".into(),
                    person: None,
                    detail: serde_json::json!({"admin": "admin"}),
                },
            )?;
            Ok(true)
        })
    }

    fn tenant_create(
        &self,
        id: &TenantId,
        name: &str,
        now: DateTime<Utc>,
        audit: Audit<TenantRow>,
    ) -> Result<TenantRow> {
        self.audited(audit, |s| {
            let res = s.try_exec(
                "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)",
                &[&id.as_str(), &name, &now],
            )?;
            match res {
                Ok(_) => Ok(TenantRow {
                    id: id.clone(),
                    name: name.to_owned(),
                    created_at: micros(now),
                }),
                Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                    "tenant '{id}' exists already"
                ))),
                Err(e) => Err(be(e)),
            }
        })
    }

    fn tenant_list(&self) -> Result<Vec<TenantRow>> {
        self.pool.run(|s| {
            s.query("SELECT id, name, created_at FROM tenants ORDER BY id", &[])?
                .iter()
                .map(to_tenant)
                .collect()
        })
    }

    fn client_create(
        &self,
        c: NewClient,
        now: DateTime<Utc>,
        audit: Audit<ClientRow>,
    ) -> Result<ClientRow> {
        self.audited(audit, |s| {
            if s.opt("SELECT 1 FROM tenants WHERE id = $1", &[&c.tenant.as_str()])?
                .is_none()
            {
                return Err(StoreError::NotFound { what: "tenant" });
            }
            let id = insert_principal(s, &c, now)?;
            principal_by_id(s, &id)?.ok_or(StoreError::NotFound { what: "client" })
        })
    }

    fn client_get(&self, client_id: &str) -> Result<ClientRow> {
        self.pool
            .run(|s| principal_by_client_id(s, client_id))?
            .ok_or(StoreError::NotFound { what: "client" })
    }

    fn client_list(&self, tenant: &TenantId) -> Result<Vec<ClientRow>> {
        self.pool.run(|s| {
            s.query(
                principal_where!("p.tenant_id = $1 AND p.kind = 'client' ORDER BY p.client_id"),
                &[&tenant.as_str()],
            )?
            .iter()
            .map(|r| to_principal(r, 0))
            .collect()
        })
    }

    fn client_set_disabled(
        &self,
        client_id: &str,
        disabled: bool,
        audit: Audit<ClientRow>,
    ) -> Result<ClientRow> {
        self.audited(audit, |s| {
            let id: String = match s.opt(
                "UPDATE principals SET disabled = $2 WHERE client_id = $1 RETURNING id",
                &[&client_id, &disabled],
            )? {
                Some(r) => get(&r, 0)?,
                None => return Err(StoreError::NotFound { what: "client" }),
            };
            if disabled {
                s.exec("DELETE FROM tokens WHERE principal_id = $1", &[&id])?;
            }
            principal_by_id(s, &id)?.ok_or(StoreError::NotFound { what: "client" })
        })
    }

    fn client_rotate_secret(
        &self,
        client_id: &str,
        new_secret: SecretDigest,
        old_until: DateTime<Utc>,
        now: DateTime<Utc>,
        audit: Audit<ClientRow>,
    ) -> Result<ClientRow> {
        self.audited(audit, |s| {
            // Locks the principal, so two rotations take turns.
            let id: String = match s.opt(
                "SELECT id FROM principals WHERE client_id = $1 FOR UPDATE",
                &[&client_id],
            )? {
                Some(r) => get(&r, 0)?,
                None => return Err(StoreError::NotFound { what: "client" }),
            };
            s.exec(
                "UPDATE client_secrets SET expires_at = $1 \
                 WHERE principal_id = $2 AND (expires_at IS NULL OR expires_at > $1)",
                &[&old_until, &id],
            )?;
            // Secrets that expired long ago serve no purpose.
            s.exec(
                "DELETE FROM client_secrets WHERE principal_id = $1 AND expires_at <= $2",
                &[&id, &now],
            )?;
            s.exec(
                "INSERT INTO client_secrets (principal_id, digest, created_at) VALUES ($1, $2, $3)",
                &[&id, &new_secret.as_slice(), &now],
            )?;
            principal_by_id(s, &id)?.ok_or(StoreError::NotFound { what: "client" })
        })
    }

    fn token_insert(&self, t: NewToken) -> Result<()> {
        self.pool.run(|s| insert_token(s, &t))
    }

    fn token_use(
        &self,
        digest: SecretDigest,
        now: DateTime<Utc>,
    ) -> Result<Result<TokenGrant, TokenRefusal>> {
        self.pool.run(|s| {
            let Some(t) = s.opt(
                concat!(
                    "SELECT ",
                    principal_cols!(),
                    ", t.scope, t.one_time, t.expires_at, t.consumed_at, t.revoked_at, \
                     t.id, t.last_used_at \
                     FROM tokens t JOIN principals p ON p.id = t.principal_id \
                     WHERE t.digest = $1"
                ),
                &[&digest.as_slice()],
            )?
            else {
                return Ok(Err(TokenRefusal::Unknown));
            };
            let principal = to_principal(&t, 0)?;
            let scope: String = get(&t, 14)?;
            let one_time: bool = get(&t, 15)?;
            let expires: Option<DateTime<Utc>> = get(&t, 16)?;
            let consumed: Option<DateTime<Utc>> = get(&t, 17)?;
            let revoked: Option<DateTime<Utc>> = get(&t, 18)?;
            let admin_id: Option<String> = get(&t, 19)?;
            let last_used: Option<DateTime<Utc>> = get(&t, 20)?;
            if revoked.is_some() {
                return Ok(Err(TokenRefusal::Revoked.as_told_to(principal.kind)));
            }
            if consumed.is_some() {
                return Ok(Err(TokenRefusal::Consumed));
            }
            if expires.is_some_and(|e| e <= now) {
                return Ok(Err(TokenRefusal::Expired.as_told_to(principal.kind)));
            }
            let stale = last_used
                .is_none_or(|t| now - t >= ChronoDuration::seconds(LAST_USE_RESOLUTION_SECONDS));
            if admin_id.is_some() && stale {
                s.exec(
                    "UPDATE tokens SET last_used_at = $1 WHERE digest = $2",
                    &[&now, &digest.as_slice()],
                )?;
            }
            if principal.disabled {
                return Ok(Err(TokenRefusal::ClientDisabled));
            }
            if one_time {
                // One conditional UPDATE (autocommit): of several racing
                // requests, on any instances, exactly one changes the row.
                let won = s.exec(
                    "UPDATE tokens SET consumed_at = $1 \
                     WHERE digest = $2 AND consumed_at IS NULL AND revoked_at IS NULL",
                    &[&now, &digest.as_slice()],
                )?;
                if won != 1 {
                    return Ok(Err(TokenRefusal::Consumed));
                }
            }
            Ok(Ok(TokenGrant {
                principal,
                scope,
                expires_at: expires,
            }))
        })
    }

    fn token_revoke(&self, digest: SecretDigest, principal_id: &str) -> Result<()> {
        self.pool.run(|s| {
            s.exec(
                "DELETE FROM tokens WHERE digest = $1 AND principal_id = $2",
                &[&digest.as_slice(), &principal_id],
            )?;
            Ok(())
        })
    }

    fn admin_token_create(
        &self,
        t: NewAdminToken,
        audit: Audit<AdminTokenRow>,
    ) -> Result<AdminTokenRow> {
        self.audited(audit, |s| {
            let kind: Option<String> = s
                .opt(
                    "SELECT kind FROM principals WHERE id = $1",
                    &[&t.principal_id],
                )?
                .map(|r| get(&r, 0))
                .transpose()?;
            if kind.as_deref() != Some("admin") {
                return Err(StoreError::NotFound { what: "admin" });
            }
            insert_admin_token(s, &t)?;
            let r = s.one(concat!(admin_token_select!(), " AND t.id = $1"), &[&t.id])?;
            to_admin_token(&r)
        })
    }

    fn admin_token_list(&self, tenant: &TenantId) -> Result<Vec<AdminTokenRow>> {
        self.pool.run(|s| {
            s.query(
                concat!(
                    admin_token_select!(),
                    " AND p.tenant_id = $1 ORDER BY t.created_at, t.id"
                ),
                &[&tenant.as_str()],
            )?
            .iter()
            .map(to_admin_token)
            .collect()
        })
    }

    fn admin_token_revoke(
        &self,
        tenant: &TenantId,
        which: AdminTokenRef,
        now: DateTime<Utc>,
        audit: Audit<AdminTokenRow>,
    ) -> Result<AdminTokenRow> {
        self.audited(audit, |s| {
            let id: Option<String> = match &which {
                AdminTokenRef::Id(id) => Some(id.clone()),
                AdminTokenRef::Digest(d) => s
                    .opt("SELECT id FROM tokens WHERE digest = $1", &[&d.as_slice()])?
                    .map(|r| get::<Option<String>>(&r, 0))
                    .transpose()?
                    .flatten(),
            };
            let Some(id) = id else {
                return Err(StoreError::NotFound {
                    what: "admin token",
                });
            };
            let found = s.opt(
                concat!(admin_token_select!(), " AND t.id = $1 AND p.tenant_id = $2"),
                &[&id, &tenant.as_str()],
            )?;
            if found.is_none() {
                return Err(StoreError::NotFound {
                    what: "admin token",
                });
            }
            s.exec(
                "UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                &[&now, &id],
            )?;
            let r = s.one(concat!(admin_token_select!(), " AND t.id = $1"), &[&id])?;
            to_admin_token(&r)
        })
    }

    fn mapping_put(&self, m: MappingRow, audit: Audit<MappingRow>) -> Result<MappingRow> {
        self.audited(audit, |s| {
            // Two instances saving the same mapping take turns, so each
            // gets its own version number.
            s.exec(
                "SELECT pg_advisory_xact_lock($1, hashtext($2 || '/' || $3))",
                &[&LOCK_MAPPING, &m.tenant.as_str(), &m.name],
            )?;
            let r = s.one(
                "INSERT INTO mappings (tenant_id, name, version, document, created_at, created_by) \
                 SELECT $1, $2, coalesce(max(version), 0) + 1, $3, $4, $5 FROM mappings \
                 WHERE tenant_id = $1 AND name = $2 RETURNING version, created_at",
                &[
                    &m.tenant.as_str(),
                    &m.name,
                    &m.document,
                    &m.created_at,
                    &m.created_by,
                ],
            )?;
            Ok(MappingRow {
                version: get(&r, 0)?,
                created_at: get(&r, 1)?,
                ..m
            })
        })
    }

    fn mapping_get(
        &self,
        tenant: &TenantId,
        name: &str,
        version: Option<i64>,
    ) -> Result<MappingRow> {
        self.pool.run(|s| {
            s.opt(
                "SELECT tenant_id, name, version, document, created_at, created_by \
                 FROM mappings WHERE tenant_id = $1 AND name = $2 \
                 AND ($3::bigint IS NULL OR version = $3) ORDER BY version DESC LIMIT 1",
                &[&tenant.as_str(), &name, &version],
            )?
            .map(|r| to_mapping(&r))
            .transpose()?
            .ok_or(StoreError::NotFound { what: "mapping" })
        })
    }

    fn mapping_list(&self, tenant: &TenantId) -> Result<Vec<MappingRow>> {
        self.pool.run(|s| {
            s.query(
                "SELECT DISTINCT ON (name) tenant_id, name, version, document, created_at, \
                 created_by FROM mappings WHERE tenant_id = $1 ORDER BY name, version DESC",
                &[&tenant.as_str()],
            )?
            .iter()
            .map(to_mapping)
            .collect()
        })
    }

    fn mapping_versions(&self, tenant: &TenantId, name: &str) -> Result<Vec<MappingRow>> {
        let v: Vec<MappingRow> = self.pool.run(|s| {
            s.query(
                "SELECT tenant_id, name, version, document, created_at, created_by \
                 FROM mappings WHERE tenant_id = $1 AND name = $2 ORDER BY version",
                &[&tenant.as_str(), &name],
            )?
            .iter()
            .map(to_mapping)
            .collect()
        })?;
        if v.is_empty() {
            return Err(StoreError::NotFound { what: "mapping" });
        }
        Ok(v)
    }

    fn import_create(&self, i: NewImport) -> Result<(ImportRow, bool)> {
        self.pool.write(|s| {
            // ON CONFLICT on the idempotency index: a concurrent creator
            // with the same key makes this wait for its commit, then see
            // its row, so exactly one import is created per key.
            let inserted = s.opt(
                "INSERT INTO imports (id, tenant_id, principal_id, client_id, on_behalf_of, \
                 idempotency_key, mapping, mapping_version, mode, dry_run, format, options, bytes, \
                 state, created_at, updated_at) VALUES \
                 ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 'received', $14, $14) \
                 ON CONFLICT (principal_id, idempotency_key) WHERE idempotency_key IS NOT NULL \
                 DO NOTHING RETURNING id",
                &[
                    &i.id,
                    &i.tenant.as_str(),
                    &i.principal_id,
                    &i.client_id,
                    &i.on_behalf_of,
                    &i.idempotency_key,
                    &i.mapping,
                    &i.mapping_version,
                    &i.mode,
                    &i.dry_run,
                    &i.format,
                    &i.options,
                    &(i.bytes as i64),
                    &i.created_at,
                ],
            )?;
            let (id, fresh) = match inserted {
                Some(_) => (i.id.clone(), true),
                None => {
                    let r = s.one(
                        "SELECT id FROM imports WHERE principal_id = $1 AND idempotency_key = $2",
                        &[&i.principal_id, &i.idempotency_key],
                    )?;
                    (get::<String>(&r, 0)?, false)
                }
            };
            let row = load_import(s, &id)?.ok_or(StoreError::NotFound { what: "import" })?;
            Ok((row, fresh))
        })
    }

    fn import_get(&self, tenant: &TenantId, id: &str) -> Result<ImportRow> {
        self.pool
            .run(|s| {
                s.opt(
                    import_select!("WHERE id = $1 AND tenant_id = $2"),
                    &[&id, &tenant.as_str()],
                )?
                .map(|r| to_import(&r))
                .transpose()
            })?
            .ok_or(StoreError::NotFound { what: "import" })
    }

    fn import_list(&self, tenant: &TenantId, f: &ImportFilter) -> Result<Vec<ImportRow>> {
        self.pool.run(|s| {
            s.query(
                import_select!(
                    "WHERE tenant_id = $1 \
                     AND ($2::text IS NULL OR state = $2) \
                     AND ($3::text IS NULL OR principal_id = $3) \
                     AND ($4::text IS NULL OR pos < (SELECT pos FROM imports WHERE id = $4)) \
                     ORDER BY pos DESC LIMIT $5"
                ),
                &[
                    &tenant.as_str(),
                    &f.state,
                    &f.principal_id,
                    &f.before_id,
                    &i64::from(f.limit),
                ],
            )?
            .iter()
            .map(to_import)
            .collect()
        })
    }

    fn import_pending(&self) -> Result<Vec<ImportRow>> {
        self.pool.run(|s| {
            s.query(
                import_select!(
                    "WHERE state IN ('received', 'decrypting', 'parsing', 'applying') \
                     ORDER BY pos"
                ),
                &[],
            )?
            .iter()
            .map(to_import)
            .collect()
        })
    }

    // ---- import claiming ---------------------------------------------------
    // Instances polling at once each get a different import: the candidate
    // row is locked `FOR UPDATE SKIP LOCKED`, so a concurrent claim skips it
    // and takes the next in turn. The turn order (see `Store::import_claim`)
    // reads the running count and the last end per candidate through the
    // `(tenant_id, pos)` index; two instances may read the same counts at
    // once, which can only give one tenant a turn early, never an import
    // twice.
    fn import_claim_in(
        &self,
        owner: &str,
        lease: ChronoDuration,
        now: DateTime<Utc>,
        scope: ClaimScope,
    ) -> Result<Option<ImportRow>> {
        let until = now + lease;
        let idle_only = scope == ClaimScope::IdleTenants;
        self.pool.write(|s| {
            let row = s.opt(
                "WITH next AS ( \
                   SELECT i.id FROM imports i \
                   WHERE i.state IN ('received', 'decrypting', 'parsing', 'applying') \
                     AND (i.lease_until IS NULL OR i.lease_until <= $2) \
                     AND (NOT $4 OR NOT EXISTS (SELECT 1 FROM imports r \
                          WHERE r.tenant_id = i.tenant_id AND r.lease_until > $2 \
                            AND r.state IN ('received', 'decrypting', 'parsing', 'applying'))) \
                   ORDER BY (SELECT count(*) FROM imports r \
                              WHERE r.tenant_id = i.tenant_id AND r.lease_until > $2 \
                                AND r.state IN ('received', 'decrypting', 'parsing', 'applying')), \
                            (SELECT max(f.finished_at) FROM imports f \
                              WHERE f.tenant_id = i.tenant_id) NULLS FIRST, \
                            i.pos \
                   LIMIT 1 FOR UPDATE OF i SKIP LOCKED) \
                 UPDATE imports i SET lease_owner = $1, lease_until = $3 \
                 FROM next WHERE i.id = next.id RETURNING i.id",
                &[&owner, &now, &until, &idle_only],
            )?;
            match row {
                Some(r) => {
                    let id: String = get(&r, 0)?;
                    load_import(s, &id)
                }
                None => Ok(None),
            }
        })
    }

    fn import_renew(
        &self,
        id: &str,
        owner: &str,
        lease: ChronoDuration,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let until = now + lease;
        self.pool.run(|s| {
            let n = s.exec(
                "UPDATE imports SET lease_until = $3 WHERE id = $1 AND lease_owner = $2",
                &[&id, &owner, &until],
            )?;
            Ok(n == 1)
        })
    }
    // ---- end of import claiming ---------------------------------------------

    fn import_errors(
        &self,
        id: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<(u64, RowErrorRecord)>> {
        self.pool.run(|s| {
            s.query(
                "SELECT id, row_no, col, attribute, code, message FROM import_errors \
                 WHERE import_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                &[&id, &(after as i64), &i64::from(limit)],
            )?
            .iter()
            .map(|r| {
                Ok((
                    get::<i64>(r, 0)?.max(0) as u64,
                    RowErrorRecord {
                        row: get::<i64>(r, 1)?.max(0) as u64,
                        column: get(r, 2)?,
                        attribute: get(r, 3)?,
                        code: get(r, 4)?,
                        message: get(r, 5)?,
                    },
                ))
            })
            .collect()
        })
    }

    fn import_error_rows(&self, id: &str) -> Result<Vec<u64>> {
        self.pool.run(|s| {
            s.query(
                "SELECT DISTINCT row_no FROM import_errors WHERE import_id = $1 ORDER BY row_no",
                &[&id],
            )?
            .iter()
            .map(|r| Ok(get::<i64>(r, 0)?.max(0) as u64))
            .collect()
        })
    }

    fn apply_batch(
        &self,
        ctx: &WriteContext,
        items: Vec<BatchItem>,
        checkpoint: Option<Checkpoint>,
        dry_run: bool,
    ) -> Result<Vec<ItemResult>> {
        let results = self
            .pool
            .write(|s| apply::apply_batch(s, ctx, &items, checkpoint.as_ref(), dry_run))?;
        self.after_batch(&results, dry_run);
        Ok(results)
    }

    fn person_get(&self, tenant: &TenantId, id: &ExternalId) -> Result<PersonRow> {
        self.pool
            .run(|s| {
                s.opt(
                    person_select!("WHERE tenant_id = $1 AND external_id = $2"),
                    &[&tenant.as_str(), &id.as_str()],
                )?
                .map(|r| to_person(&r))
                .transpose()
            })?
            .ok_or(StoreError::NotFound { what: "person" })
    }

    fn person_list(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<PersonRow>> {
        self.pool.run(|s| {
            s.query(
                person_select!(
                    "WHERE tenant_id = $1 AND ($2::text IS NULL OR external_id > $2) \
                     ORDER BY external_id LIMIT $3"
                ),
                &[&tenant.as_str(), &after, &i64::from(limit)],
            )?
            .iter()
            .map(to_person)
            .collect()
        })
    }

    fn client_keys_get(&self, client_id: &str) -> Result<ClientKeys> {
        self.pool.run(|s| {
            let p = s
                .opt(
                    "SELECT id FROM principals WHERE client_id = $1",
                    &[&client_id],
                )?
                .ok_or(StoreError::NotFound { what: "client" })?;
            let pid: String = get(&p, 0)?;
            client_keys_of(s, &pid)
        })
    }

    fn client_keys_set(
        &self,
        client_id: &str,
        change: ClientKeyChange,
        now: DateTime<Utc>,
        audit: Audit<ClientKeys>,
    ) -> Result<ClientKeys> {
        self.audited(audit, |s| {
            let p = s
                .opt(
                    "SELECT id FROM principals WHERE client_id = $1 FOR UPDATE",
                    &[&client_id],
                )?
                .ok_or(StoreError::NotFound { what: "client" })?;
            let pid: String = get(&p, 0)?;
            s.exec(
                "INSERT INTO client_keys (principal_id, updated_at) VALUES ($1, $2) \
                 ON CONFLICT (principal_id) DO UPDATE SET updated_at = excluded.updated_at",
                &[&pid, &now],
            )?;
            match &change {
                ClientKeyChange::Hmac(v) => s.exec(
                    // Set or removed outright: no previous key stays valid.
                    "UPDATE client_keys SET hmac_sealed = $2, hmac_previous_sealed = NULL, \
                     hmac_previous_until = NULL WHERE principal_id = $1",
                    &[&pid, v],
                ),
                ClientKeyChange::Ed25519(v) => s.exec(
                    "UPDATE client_keys SET ed25519_public = $2 WHERE principal_id = $1",
                    &[&pid, v],
                ),
                ClientKeyChange::JwtKeys(v) => s.exec(
                    "UPDATE client_keys SET jwt_keys = $2 WHERE principal_id = $1",
                    &[&pid, v],
                ),
            }?;
            client_keys_of(s, &pid)
        })
    }

    fn nonce_record(
        &self,
        principal_id: &str,
        nonce: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.pool.run(|s| {
            // Bounded purge, so no request pays for a backlog.
            s.exec(
                "DELETE FROM auth_nonces WHERE ctid IN \
                 (SELECT ctid FROM auth_nonces WHERE expires_at <= $1 LIMIT 64)",
                &[&now],
            )?;
            // An expired record not purged yet counts as absent.
            let n = s.exec(
                "INSERT INTO auth_nonces (principal_id, nonce, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (principal_id, nonce) DO UPDATE SET expires_at = excluded.expires_at \
                 WHERE auth_nonces.expires_at <= $4",
                &[&principal_id, &nonce, &expires_at, &now],
            )?;
            Ok(n == 1)
        })
    }

    fn key_create(&self, k: KeyRow, audit: Audit<KeyRow>) -> Result<KeyRow> {
        let ids = serde_json::to_value(&k.key_ids).map_err(json_err)?;
        self.audited(audit, |s| {
            let res = s.try_exec(
                "INSERT INTO keys (id, tenant_id, kind, algorithm, purpose, key_ids, public_key, \
                 sealed_secret, state, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
                &[
                    &k.id,
                    &k.tenant.as_str(),
                    &k.kind,
                    &k.algorithm,
                    &k.purpose.as_str(),
                    &ids,
                    &k.public_key,
                    &k.sealed_secret,
                    &k.state.as_str(),
                    &k.created_at,
                ],
            )?;
            match res {
                Ok(_) => key_by_id(s, &k.tenant, &k.id),
                Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                    "a key with the id '{}' exists already",
                    k.id
                ))),
                Err(e) if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => {
                    Err(StoreError::NotFound { what: "tenant" })
                }
                Err(e) => Err(be(e)),
            }
        })
    }

    fn key_get(&self, tenant: &TenantId, id: &str) -> Result<KeyRow> {
        self.pool.run(|s| key_by_id(s, tenant, id))
    }

    fn key_list(&self, tenant: &TenantId) -> Result<Vec<KeyRow>> {
        self.pool.run(|s| {
            s.query(
                concat!(
                    "SELECT ",
                    key_cols!(),
                    " FROM keys WHERE tenant_id = $1 ORDER BY created_at, id"
                ),
                &[&tenant.as_str()],
            )?
            .iter()
            .map(to_key)
            .collect()
        })
    }

    fn key_set_state(
        &self,
        tenant: &TenantId,
        id: &str,
        state: KeyState,
        now: DateTime<Utc>,
        audit: Audit<KeyRow>,
    ) -> Result<KeyRow> {
        self.audited(audit, |s| {
            s.opt(
                concat!(
                    "UPDATE keys SET state = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2 \
                     RETURNING ",
                    key_cols!()
                ),
                &[&tenant.as_str(), &id, &state.as_str(), &now],
            )?
            .map(|r| to_key(&r))
            .transpose()?
            .ok_or(StoreError::NotFound { what: "key" })
        })
    }

    // ---- rotate ----------------------------------------------------------

    fn sealed_all(&self) -> Result<Vec<SealedValue>> {
        self.pool.run(rotate::sealed_all)
    }

    fn sealed_replace(&self, column: SealedColumn, swaps: Vec<SealedSwap>) -> Result<u64> {
        self.pool
            .write(|s| rotate::sealed_replace(s, column, &swaps))
    }

    fn client_hmac_rotate(
        &self,
        client_id: &str,
        sealed: Vec<u8>,
        previous_until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        audit: Audit<ClientKeys>,
    ) -> Result<ClientKeys> {
        self.audited(audit, |s| {
            let pid = rotate::hmac_rotate(s, client_id, &sealed, previous_until, now)?;
            client_keys_of(s, &pid)
        })
    }

    fn auth_failure_record(
        &self,
        keys: &[String],
        window: ChronoDuration,
        now: DateTime<Utc>,
    ) -> Result<Vec<(u32, DateTime<Utc>)>> {
        self.pool
            .run(|s| rotate::failure_record(s, keys, window, now))
    }

    fn auth_failures_over(
        &self,
        max: u32,
        window: ChronoDuration,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, DateTime<Utc>)>> {
        self.pool
            .run(|s| rotate::failures_over(s, max, window, now))
    }

    fn instance_heartbeat(&self, id: &str, master_key_id: &str, now: DateTime<Utc>) -> Result<()> {
        self.pool
            .run(|s| rotate::heartbeat(s, id, master_key_id, now))
    }

    fn instance_list(&self, since: DateTime<Utc>) -> Result<Vec<InstanceRow>> {
        self.pool.run(|s| rotate::instances(s, since))
    }

    fn instance_remove(&self, id: &str) -> Result<()> {
        self.pool.run(|s| {
            s.exec("DELETE FROM instances WHERE id = $1", &[&id])
                .map(|_| ())
        })
    }

    fn intake_policy_get(&self, principal_id: &str) -> Result<IntakePolicy> {
        let row = self.pool.run(|s| {
            s.opt(
                "SELECT policy FROM intake_policies WHERE principal_id = $1",
                &[&principal_id],
            )
        })?;
        match row {
            Some(r) => serde_json::from_value(get::<serde_json::Value>(&r, 0)?).map_err(json_err),
            None => Ok(IntakePolicy::default()),
        }
    }

    fn intake_policy_put(
        &self,
        principal_id: &str,
        p: &IntakePolicy,
        audit: Audit<()>,
    ) -> Result<()> {
        let v = serde_json::to_value(p).map_err(json_err)?;
        self.audited(audit, |s| {
            match s.try_exec(
                "INSERT INTO intake_policies (principal_id, policy) VALUES ($1, $2) \
                 ON CONFLICT (principal_id) DO UPDATE SET policy = excluded.policy",
                &[&principal_id, &v],
            )? {
                Ok(_) => Ok(()),
                Err(e) if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => {
                    Err(StoreError::NotFound { what: "client" })
                }
                Err(e) => Err(be(e)),
            }
        })
    }

    fn issuer_create(&self, i: IssuerRow, audit: Audit<IssuerRow>) -> Result<IssuerRow> {
        self.audited(audit, |s| {
            issuers::create(s, &i)?;
            issuers::get_one(s, &i.tenant, &i.name)
        })
    }

    fn issuer_get(&self, tenant: &TenantId, name: &str) -> Result<IssuerRow> {
        self.pool.run(|s| issuers::get_one(s, tenant, name))
    }

    fn issuer_list(&self, tenant: &TenantId) -> Result<Vec<IssuerRow>> {
        self.pool.run(|s| issuers::list(s, tenant))
    }

    fn issuer_find(&self, tenant: &TenantId, issuer: &str) -> Result<Vec<IssuerRow>> {
        self.pool.run(|s| issuers::find(s, tenant, issuer))
    }

    fn issuer_delete(&self, tenant: &TenantId, name: &str, audit: Audit<()>) -> Result<()> {
        self.audited(audit, |s| issuers::delete(s, tenant, name))
    }

    fn audit_append(&self, d: AuditDraft) -> Result<i64> {
        self.pool.write(|s| apply::audit_append_one(s, &d))
    }

    fn audit_list(&self, tenant: &TenantId, after: i64, limit: u32) -> Result<Vec<AuditRow>> {
        self.pool.run(|s| {
            s.query(
                audit_select!("WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"),
                &[&tenant.as_str(), &after, &i64::from(limit)],
            )?
            .iter()
            .map(|r| to_audit(r).map(AuditRow::for_display))
            .collect()
        })
    }

    fn changes_list(&self, tenant: &TenantId, after: i64, limit: u32) -> Result<Vec<ChangeEvent>> {
        self.pool.run(|s| {
            s.query(
                "SELECT e.cursor, e.id, e.kind, e.external_id, e.version, a.source, \
                 a.principal, a.on_behalf_of, a.detail, a.at FROM events e \
                 JOIN audit a ON a.tenant_id = e.tenant_id AND a.seq = e.audit_seq \
                 WHERE e.tenant_id = $1 AND e.cursor > $2 ORDER BY e.cursor LIMIT $3",
                &[&tenant.as_str(), &after, &i64::from(limit)],
            )?
            .iter()
            .map(|r| {
                Ok(ChangeEvent {
                    id: get(r, 1)?,
                    tenant: tenant.clone(),
                    cursor: get(r, 0)?,
                    kind: get(r, 2)?,
                    external_id: get(r, 3)?,
                    version: get(r, 4)?,
                    source: get(r, 5)?,
                    principal: get(r, 6)?,
                    on_behalf_of: get(r, 7)?,
                    detail: muster_core::person::into_display_detail(get(r, 8)?),
                    created_at: get(r, 9)?,
                })
            })
            .collect()
        })
    }

    fn changes_head(&self, tenant: &TenantId) -> Result<i64> {
        self.pool.run(|s| {
            get(
                &s.one(
                    "SELECT coalesce(max(cursor), 0) FROM events WHERE tenant_id = $1",
                    &[&tenant.as_str()],
                )?,
                0,
            )
        })
    }

    fn subscription_create(
        &self,
        r: SubscriptionRow,
        audit: Audit<SubscriptionRow>,
    ) -> Result<SubscriptionRow> {
        self.audited(audit, |s| subscriptions::create(s, &r))
    }

    fn subscription_get(&self, tenant: &TenantId, id: &str) -> Result<SubscriptionRow> {
        self.pool.run(|s| subscriptions::get_one(s, tenant, id))
    }

    fn subscription_list(&self, tenant: &TenantId) -> Result<Vec<SubscriptionRow>> {
        self.pool.run(|s| subscriptions::list(s, tenant))
    }

    fn subscription_active(&self) -> Result<Vec<SubscriptionRow>> {
        self.pool.run(subscriptions::active)
    }

    fn subscription_update(
        &self,
        r: &SubscriptionRow,
        audit: Audit<SubscriptionRow>,
    ) -> Result<SubscriptionRow> {
        self.audited(audit, |s| subscriptions::update(s, r))
    }

    fn subscription_delete(&self, tenant: &TenantId, id: &str, audit: Audit<()>) -> Result<()> {
        self.audited(audit, |s| subscriptions::delete(s, tenant, id))
    }

    fn subscription_redeliver(
        &self,
        tenant: &TenantId,
        id: &str,
        range: (i64, i64),
        now: DateTime<Utc>,
        audit: Audit<SubscriptionRow>,
    ) -> Result<SubscriptionRow> {
        self.audited(audit, |s| {
            subscriptions::redeliver(s, tenant, id, range, now)
        })
    }

    fn delivery_list(&self, id: &str, after: i64, limit: u32) -> Result<Vec<DeliveryRecord>> {
        self.pool
            .run(|s| subscriptions::deliveries(s, id, after, limit))
    }

    // ---- import semantics: snapshot sources, managers, effective dates ----
    fn person_source_active(
        &self,
        tenant: &TenantId,
        source_system: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>> {
        self.pool.run(|s| {
            s.query(
                "SELECT external_id FROM people \
                 WHERE tenant_id = $1 AND source_system = $2 \
                 AND ($3::text IS NULL OR external_id > $3) \
                 AND (attrs->>'employment_status') IS DISTINCT FROM 'terminated' \
                 ORDER BY external_id LIMIT $4",
                &[&tenant.as_str(), &source_system, &after, &i64::from(limit)],
            )?
            .iter()
            .map(|r| get::<String>(r, 0))
            .collect()
        })
    }

    fn person_exists(&self, tenant: &TenantId, ids: &[&str]) -> Result<Vec<bool>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.pool.run(|s| {
            let rows = s.query(
                "SELECT p.external_id IS NOT NULL FROM unnest($2::text[]) WITH ORDINALITY AS i(ext, n) \
                 LEFT JOIN people p ON p.tenant_id = $1 AND p.external_id = i.ext \
                 ORDER BY i.n",
                &[&tenant.as_str(), &ids],
            )?;
            rows.iter().map(|r| get::<bool>(r, 0)).collect()
        })
    }

    fn person_fingerprints_of_source(
        &self,
        tenant: &TenantId,
        ids: &[&str],
        source_system: &str,
    ) -> Result<Vec<Option<[u8; 16]>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.pool.run(|s| {
            let rows = s.query(
                "SELECT p.fingerprint FROM unnest($2::text[]) WITH ORDINALITY AS i(ext, n) \
                 LEFT JOIN people p ON p.tenant_id = $1 AND p.external_id = i.ext \
                      AND p.source_system = $3 \
                 ORDER BY i.n",
                &[&tenant.as_str(), &ids, &source_system],
            )?;
            rows.iter()
                .map(|r| {
                    let fp: Option<&[u8]> = get(r, 0)?;
                    Ok(fp.and_then(|b| <[u8; 16]>::try_from(b).ok()))
                })
                .collect()
        })
    }

    fn person_settle_due(&self, ctx: &WriteContext, limit: u32) -> Result<Vec<ItemResult>> {
        self.pool.write(|s| apply::settle_due(s, ctx, limit))
    }

    // ---- fan-out: subscription delivery leases ---------------------------
    fn subscription_claim(
        &self,
        id: &str,
        owner: &str,
        lease: ChronoDuration,
        now: DateTime<Utc>,
    ) -> Result<Option<SubscriptionRow>> {
        self.pool
            .write(|s| subscriptions::claim(s, id, owner, now, now + lease))
    }

    fn subscription_save(
        &self,
        id: &str,
        owner: &str,
        lease: ChronoDuration,
        save: &DeliverySave,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.pool
            .write(|s| subscriptions::save(s, id, owner, now + lease, save, now))
    }

    fn subscription_release(&self, id: &str, owner: &str) -> Result<()> {
        self.pool.run(|s| subscriptions::release(s, id, owner))
    }
    // ---- end of fan-out ----------------------------------------------------

    fn audit_walk(&self, tenant: &TenantId, f: &mut dyn FnMut(AuditRow) -> bool) -> Result<()> {
        // Pages by seq: memory stays bounded however long the chain, and
        // the chain only grows at its end, so paging misses nothing.
        const PAGE: i64 = 1000;
        let mut after = 0i64;
        loop {
            let page = self.pool.run(|s| {
                s.query(
                    audit_select!("WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"),
                    &[&tenant.as_str(), &after, &PAGE],
                )?
                .iter()
                .map(to_audit)
                .collect::<Result<Vec<_>>>()
            })?;
            let full = page.len() as i64 == PAGE;
            for row in page {
                after = row.entry.seq;
                if !f(row) {
                    return Ok(());
                }
            }
            if !full {
                return Ok(());
            }
        }
    }

    // ---- crash safety: fenced import batches -----------------------------
    fn apply_batch_claimed(
        &self,
        ctx: &WriteContext,
        items: Vec<BatchItem>,
        checkpoint: Checkpoint,
        owner: &str,
        dry_run: bool,
    ) -> Result<Option<Applied>> {
        let done = fenced(self.pool.write(|s| {
            apply::apply_batch_owned(s, ctx, &items, Some(&checkpoint), Some(owner), dry_run)
        }))?;
        Ok(done.map(|results| {
            self.after_batch(&results, dry_run);
            Applied { results, items }
        }))
    }

    // ---- crash safety: fenced validation writes (see `fenced.rs`) ---------
    fn import_reset_claimed(&self, id: &str, owner: &str, now: DateTime<Utc>) -> Result<bool> {
        self.pool.write(|s| fenced::reset(s, id, Some(owner), now))
    }

    fn import_set_state_claimed(
        &self,
        id: &str,
        owner: &str,
        state: &str,
        error: Option<(&str, &str)>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.pool
            .run(|s| fenced::set_state(s, id, Some(owner), state, error, now))
    }

    fn import_add_errors_claimed(
        &self,
        id: &str,
        owner: &str,
        errors: &[RowErrorRecord],
    ) -> Result<bool> {
        self.pool
            .write(|s| fenced::add_errors(s, id, Some(owner), errors))
    }

    fn import_set_total_claimed(
        &self,
        id: &str,
        owner: &str,
        rows_total: u64,
        failed: u64,
    ) -> Result<bool> {
        self.pool
            .run(|s| fenced::set_total(s, id, Some(owner), rows_total, failed))
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
