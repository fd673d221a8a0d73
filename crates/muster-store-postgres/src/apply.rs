//! The bulk write path and the audit chain.
//!
//! A batch costs the same few statements whatever its size: lock the
//! tenant's chain head, read every person the batch names (one `= ANY`),
//! decide in Rust (the same `apply`/`classify` as the SQLite backend, items
//! in order, so an id named twice sees its own earlier change), then write
//! the changed people, the audit entries and the change events, move the
//! head, and advance the import's checkpoint, in one transaction.
//!
//! How rows are written depends on how many there are. A batch of
//! [`COPY_MIN`] or more rows per table uses binary `COPY ... FROM STDIN`
//! straight into `audit` and `events` (they only ever grow), and into
//! `people` for the people the batch creates; changed people that already
//! exist go through one set-based upsert over `unnest` arrays. A small
//! batch (a single `PUT`) uses the `unnest` statements throughout: one
//! round trip each, prepared once. `COPY` into the tables themselves needs
//! no staging table: nobody else can write these rows meanwhile, since the
//! transaction holds the tenant's head lock, which every change takes. On
//! 200,000 new people, `COPY` took the load from 5.3-5.8 s to 4.7-4.8 s,
//! and new people prepared by the import's reading thread
//! (`BatchItem::prepared`) are written from their prepared JSON, so the
//! transaction holds the head lock for less.
//!
//! Change detection is done in Rust, not by an `ON CONFLICT ... WHERE ...
//! IS DISTINCT FROM` in SQL, because every change needs its audit entry
//! with the field-level diff, which needs the stored state anyway. The
//! upsert's `WHERE p.version < excluded.version` is a guard instead: a row
//! that is not where this batch read it (which the head lock rules out)
//! makes the count differ, and the transaction fails rather than lose a
//! change.
use crate::pool::Sql;
use crate::{be, decode_state, get, json_err, Result};
use muster_core::audit::{AuditFields, GENESIS};
use muster_core::person::{ChangeKind, Incoming, PersonState};
use muster_store::shared::stored_id;
use muster_store::{audit_time, AuditDraft, BatchItem, Checkpoint, Counts, ItemResult, Prepared};
use muster_store::{shared, StoreError, WriteContext, LEASE_LOST};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use postgres::GenericClient;
use std::collections::HashMap;

/// A tenant's chain head: the last seq and its hash.
struct Head {
    seq: i64,
    hash: String,
}

/// Locks the tenant's chain head row (creating it for a new tenant) until
/// the transaction ends, and returns it. One statement: the upsert takes
/// the row lock, waiting for any other appender of this tenant, on any
/// instance, to commit, and then returns the head as that commit left it.
fn lock_head<C: GenericClient>(s: &mut Sql<'_, C>, tenant: &str) -> Result<Head> {
    let r = s.one(
        "INSERT INTO audit_heads (tenant_id, seq, hash) VALUES ($1, 0, $2) \
         ON CONFLICT (tenant_id) DO UPDATE SET seq = audit_heads.seq \
         RETURNING seq, hash",
        &[&tenant, &GENESIS],
    )?;
    Ok(Head {
        seq: get(&r, 0)?,
        hash: get(&r, 1)?,
    })
}

/// Audit entries chained after a locked head, written together.
struct Chain<'t> {
    tenant: &'t str,
    head: Head,
    seq: Vec<i64>,
    at: Vec<String>,
    principal: Vec<String>,
    on_behalf_of: Vec<Option<String>>,
    source: Vec<String>,
    action: Vec<String>,
    person: Vec<Option<String>>,
    detail: Vec<String>,
    prev_hash: Vec<String>,
    hash: Vec<String>,
}

impl<'t> Chain<'t> {
    fn new(tenant: &'t str, head: Head) -> Self {
        Self {
            tenant,
            head,
            seq: Vec::new(),
            at: Vec::new(),
            principal: Vec::new(),
            on_behalf_of: Vec::new(),
            source: Vec::new(),
            action: Vec::new(),
            person: Vec::new(),
            detail: Vec::new(),
            prev_hash: Vec::new(),
            hash: Vec::new(),
        }
    }

    /// Chains one entry: `seq` and `prev_hash` come from the head, whatever
    /// `f` says.
    fn push(&mut self, f: AuditFields<'_>) {
        let f = AuditFields {
            prev_hash: &self.head.hash,
            seq: self.head.seq + 1,
            tenant: self.tenant,
            ..f
        };
        let hash = f.hash();
        self.seq.push(f.seq);
        self.at.push(f.at.to_owned());
        self.principal.push(f.principal.to_owned());
        self.on_behalf_of.push(f.on_behalf_of.map(str::to_owned));
        self.source.push(f.source.to_owned());
        self.action.push(f.action.to_owned());
        self.person.push(f.person.map(str::to_owned));
        self.detail.push(f.detail.to_owned());
        self.prev_hash.push(f.prev_hash.to_owned());
        self.hash.push(hash.clone());
        self.head = Head { seq: f.seq, hash };
    }

    /// Chains the audit entry of one person's change and queues its events.
    fn change(&mut self, ctx: &WriteContext, at: &str, c: Change<'_>, events: &mut Events) {
        self.push(AuditFields {
            prev_hash: "",
            tenant: self.tenant,
            seq: 0,
            at,
            principal: &ctx.principal,
            on_behalf_of: ctx.on_behalf_of.as_deref(),
            source: &ctx.source,
            action: c.kind.event_name(),
            person: Some(c.ext),
            detail: c.detail,
        });
        let (attrs, roles) = c.changed;
        for name in muster_store::change_event_kinds(c.kind, attrs, roles) {
            events.push(name, c.ext, c.version, self.head.seq);
        }
    }

    /// Writes the chained entries and moves the head, in the caller's
    /// transaction (which holds the head lock).
    fn write<C: GenericClient>(self, s: &mut Sql<'_, C>) -> Result<i64> {
        if self.seq.is_empty() {
            return Ok(self.head.seq);
        }
        if self.seq.len() >= COPY_MIN {
            let types = [
                Type::TEXT,
                Type::INT8,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
            ];
            let mut w = BinaryCopyInWriter::new(
                s.copy_in(
                    "COPY audit (tenant_id, seq, at, principal, on_behalf_of, source, action, \
                     person, detail, prev_hash, hash) FROM STDIN (FORMAT binary)",
                )?,
                &types,
            );
            for i in 0..self.seq.len() {
                w.write(&[
                    &self.tenant,
                    &self.seq[i],
                    &self.at[i],
                    &self.principal[i],
                    &self.on_behalf_of[i],
                    &self.source[i],
                    &self.action[i],
                    &self.person[i],
                    &self.detail[i],
                    &self.prev_hash[i],
                    &self.hash[i],
                ])
                .map_err(be)?;
            }
            w.finish().map_err(be)?;
            s.exec(
                "UPDATE audit_heads SET seq = $2, hash = $3 WHERE tenant_id = $1",
                &[&self.tenant, &self.head.seq, &self.head.hash],
            )?;
            return Ok(self.head.seq);
        }
        s.exec(
            "INSERT INTO audit (tenant_id, seq, at, principal, on_behalf_of, source, action, \
             person, detail, prev_hash, hash) \
             SELECT $1, u.* FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], \
             $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[]) AS u",
            &[
                &self.tenant,
                &self.seq,
                &self.at,
                &self.principal,
                &self.on_behalf_of,
                &self.source,
                &self.action,
                &self.person,
                &self.detail,
                &self.prev_hash,
                &self.hash,
            ],
        )?;
        s.exec(
            "UPDATE audit_heads SET seq = $2, hash = $3 WHERE tenant_id = $1",
            &[&self.tenant, &self.head.seq, &self.head.hash],
        )?;
        Ok(self.head.seq)
    }
}

/// Appends one entry to its tenant's chain; returns its seq.
pub(crate) fn audit_append_one<C: GenericClient>(
    s: &mut Sql<'_, C>,
    d: &AuditDraft,
) -> Result<i64> {
    let tenant = d.tenant.as_str();
    let at = audit_time(d.at);
    let detail = serde_json::to_string(&d.detail).map_err(json_err)?;
    let mut chain = Chain::new(tenant, lock_head(s, tenant)?);
    chain.push(AuditFields {
        prev_hash: "",
        tenant,
        seq: 0,
        at: &at,
        principal: &d.principal,
        on_behalf_of: d.on_behalf_of.as_deref(),
        source: &d.source,
        action: &d.action,
        person: d.person.as_deref(),
        detail: &detail,
    });
    chain.write(s)
}

/// One person's change, as its audit entry and events record it.
struct Change<'a> {
    kind: ChangeKind,
    ext: &'a str,
    version: i64,
    detail: &'a str,
    /// (attributes changed, roles changed)
    changed: (bool, bool),
}

/// Change events of a batch (docs/events.md#the-outbox), written with one multi-row insert;
/// cursors are numbered at write time, after the tenant's last one.
#[derive(Default)]
struct Events {
    id: Vec<String>,
    kind: Vec<&'static str>,
    external_id: Vec<String>,
    version: Vec<i64>,
    audit_seq: Vec<i64>,
}

impl Events {
    fn push(&mut self, kind: &'static str, ext: &str, version: i64, audit_seq: i64) {
        self.id.push(muster_store::new_event_id());
        self.kind.push(kind);
        self.external_id.push(ext.to_owned());
        self.version.push(version);
        self.audit_seq.push(audit_seq);
    }

    /// Writes the events in the caller's transaction, which holds the
    /// tenant's head lock: so cursors follow commit order.
    fn write<C: GenericClient>(self, s: &mut Sql<'_, C>, tenant: &str) -> Result<()> {
        if self.id.is_empty() {
            return Ok(());
        }
        if self.id.len() >= COPY_MIN {
            let last: i64 = get(
                &s.one(
                    "SELECT coalesce(max(cursor), 0) FROM events WHERE tenant_id = $1",
                    &[&tenant],
                )?,
                0,
            )?;
            let types = [
                Type::TEXT,
                Type::INT8,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::INT8,
                Type::INT8,
            ];
            let mut w = BinaryCopyInWriter::new(
                s.copy_in(
                    "COPY events (tenant_id, cursor, id, kind, external_id, version, audit_seq) \
                     FROM STDIN (FORMAT binary)",
                )?,
                &types,
            );
            for i in 0..self.id.len() {
                let cursor = last + 1 + i as i64;
                w.write(&[
                    &tenant,
                    &cursor,
                    &self.id[i],
                    &self.kind[i],
                    &self.external_id[i],
                    &self.version[i],
                    &self.audit_seq[i],
                ])
                .map_err(be)?;
            }
            w.finish().map_err(be)?;
            return Ok(());
        }
        s.exec(
            "INSERT INTO events (tenant_id, cursor, id, kind, external_id, version, audit_seq) \
             SELECT $1, (SELECT coalesce(max(cursor), 0) FROM events WHERE tenant_id = $1) \
                    + u.n, u.id, u.kind, u.ext, u.ver, u.seq \
             FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[]) \
                  WITH ORDINALITY AS u(id, kind, ext, ver, seq, n)",
            &[
                &tenant,
                &self.id,
                &self.kind,
                &self.external_id,
                &self.version,
                &self.audit_seq,
            ],
        )?;
        Ok(())
    }
}

/// A person as this batch knows it: as stored, then as changed by earlier
/// items of the batch.
struct Current<'a> {
    version: i64,
    fingerprint: Option<Vec<u8>>,
    source_system: Option<String>,
    state: Lazy<'a>,
    /// Changed by this batch: to be written.
    dirty: bool,
    /// Stored before this batch (else the batch creates it).
    existed: bool,
}

/// The stored JSON is decoded only for people whose fingerprint differs;
/// a new person's prepared JSON only if the batch changes them again.
enum Lazy<'a> {
    Raw(String, String),
    Prepared(&'a Prepared),
    State(PersonState),
}

impl Current<'_> {
    fn state(&mut self) -> Result<&PersonState> {
        match &self.state {
            Lazy::Raw(a, r) => self.state = Lazy::State(decode_state(a, r)?),
            Lazy::Prepared(p) => {
                self.state = Lazy::State(decode_state(&p.attrs_json, &p.roles_json)?)
            }
            Lazy::State(_) => {}
        }
        match &self.state {
            Lazy::State(s) => Ok(s),
            _ => Err(StoreError::backend("person state not decoded")),
        }
    }
}

pub(crate) fn apply_batch<C: GenericClient>(
    s: &mut Sql<'_, C>,
    ctx: &WriteContext,
    items: &[BatchItem],
    checkpoint: Option<&Checkpoint>,
    dry_run: bool,
) -> Result<Vec<ItemResult>> {
    apply_batch_owned(s, ctx, items, checkpoint, None, dry_run)
}

/// [`apply_batch`] fenced by the import's lease: with an `owner`, the
/// checkpoint moves only while that instance holds the lease, in the same
/// transaction (the `UPDATE` takes the import row's lock, so a claim by
/// another instance waits for, or skips, this commit); otherwise the
/// transaction fails with [`LEASE_LOST`] and rolls back whole.
pub(crate) fn apply_batch_owned<C: GenericClient>(
    s: &mut Sql<'_, C>,
    ctx: &WriteContext,
    items: &[BatchItem],
    checkpoint: Option<&Checkpoint>,
    owner: Option<&str>,
    dry_run: bool,
) -> Result<Vec<ItemResult>> {
    let results = if items.is_empty() {
        Vec::new()
    } else {
        apply_items(s, ctx, items, dry_run)?
    };
    if let Some(cp) = checkpoint {
        let mut c = Counts::default();
        for r in &results {
            c.add_kind(r.kind);
        }
        c.unchanged += cp.unchanged;
        let n = s.exec(
            "UPDATE imports SET checkpoint_row = $1, created = created + $2, \
             updated = updated + $3, unchanged = unchanged + $4, \
             deactivated = deactivated + $5, updated_at = $6 \
             WHERE id = $7 AND ($8::text IS NULL OR lease_owner = $8)",
            &[
                &(cp.row as i64),
                &(c.created as i64),
                &(c.updated as i64),
                &(c.unchanged as i64),
                &(c.deactivated as i64),
                &ctx.now,
                &cp.import_id,
                &owner,
            ],
        )?;
        if n == 0 && owner.is_some() {
            return Err(StoreError::Conflict(LEASE_LOST.into()));
        }
    }
    Ok(results)
}

fn apply_items<C: GenericClient>(
    s: &mut Sql<'_, C>,
    ctx: &WriteContext,
    items: &[BatchItem],
    dry_run: bool,
) -> Result<Vec<ItemResult>> {
    let tenant = ctx.tenant.as_str();
    // A dry run writes nothing, so it takes no lock: it reads the people
    // as last committed and decides as a real run would.
    let mut chain = if dry_run {
        None
    } else {
        Some(Chain::new(tenant, lock_head(s, tenant)?))
    };

    let ids: Vec<&str> = items
        .iter()
        .map(|i| i.incoming.external_id.as_str())
        .collect();
    let rows = s.query(
        "SELECT external_id, version, fingerprint, attrs::text, roles::text, source_system \
         FROM people WHERE tenant_id = $1 AND external_id = ANY($2)",
        &[&tenant, &ids],
    )?;
    let mut people: HashMap<String, Current> = HashMap::with_capacity(items.len());
    for r in &rows {
        people.insert(
            get(r, 0)?,
            Current {
                version: get(r, 1)?,
                fingerprint: get(r, 2)?,
                source_system: get(r, 5)?,
                state: Lazy::Raw(get(r, 3)?, get(r, 4)?),
                dirty: false,
                existed: true,
            },
        );
    }

    let at = audit_time(ctx.now);
    let key = Incoming::fingerprint_key(&ctx.principal, &ctx.policy);
    let today = muster_core::person::today(ctx.now);
    let source_system = ctx.source_system.as_deref();
    let mut out = Vec::with_capacity(items.len());
    let mut events = Events::default();
    // Changed people in the order of their first change.
    let mut order: Vec<&str> = Vec::new();
    // Unchanged people an import of another source confirmed: they move
    // to this source (no new version, no audit entry, no event).
    let mut confirmed: Vec<(&str, [u8; 16])> = Vec::new();
    for item in items {
        let inc = &item.incoming;
        let ext = inc.external_id.as_str();
        let prepared = item.prepared.as_deref().filter(|p| p.today == today);
        let fp = prepared.map_or_else(|| inc.fingerprint_with(&key), |p| p.fingerprint);
        let (kind, version, next) = {
            let same_source = |c: &Current| {
                source_system.is_none() || c.source_system.as_deref() == source_system
            };
            let stored = match people.get_mut(ext) {
                Some(c) if c.fingerprint.as_deref() == Some(fp.as_slice()) && same_source(c) => {
                    out.push(ItemResult {
                        kind: ChangeKind::Unchanged,
                        version: c.version,
                    });
                    continue;
                }
                Some(c) => {
                    let v = c.version;
                    Some((v, c.state()?))
                }
                None => None,
            };
            // A new person prepared by the caller (BatchItem::prepared):
            // its JSON and audit detail come computed, so the transaction
            // (and the tenant's head lock) is held for less.
            if let (None, Some(p)) = (&stored, prepared) {
                if let Some(chain) = chain.as_mut() {
                    let change = Change {
                        kind: ChangeKind::Created,
                        ext,
                        version: 1,
                        detail: &p.detail_json,
                        changed: (true, p.roles_json != "[]"),
                    };
                    chain.change(ctx, &at, change, &mut events);
                }
                order.push(ext);
                people.insert(
                    ext.to_owned(),
                    Current {
                        version: 1,
                        fingerprint: Some(p.fingerprint.to_vec()),
                        source_system: ctx.source_system.clone(),
                        state: Lazy::Prepared(p),
                        dirty: true,
                        existed: false,
                    },
                );
                out.push(ItemResult {
                    kind: ChangeKind::Created,
                    version: 1,
                });
                continue;
            }
            let before = stored.map(|(_, st)| st);
            let version = stored.map_or(0, |(v, _)| v);
            let d = shared::decide(before, version, inc, &ctx.policy, &today);
            let (kind, version) = (d.kind, d.version);
            if kind == ChangeKind::Unchanged {
                if let (Some(ss), Some(c)) = (source_system, people.get_mut(ext)) {
                    if c.source_system.as_deref() != Some(ss) {
                        c.source_system = Some(ss.to_owned());
                        c.fingerprint = Some(fp.to_vec());
                        if !c.dirty {
                            confirmed.push((ext, fp));
                        }
                    }
                }
                out.push(ItemResult { kind, version });
                continue;
            }
            if let Some(chain) = chain.as_mut() {
                let change = Change {
                    kind,
                    ext,
                    version,
                    detail: &d.detail_json(),
                    changed: d.changed(),
                };
                chain.change(ctx, &at, change, &mut events);
            }
            (kind, version, d.next)
        };
        if !people.get(ext).is_some_and(|c| c.dirty) {
            order.push(ext);
        }
        let previous_source = people.get(ext).and_then(|c| c.source_system.clone());
        let existed = people.get(ext).is_some_and(|c| c.existed);
        people.insert(
            ext.to_owned(),
            Current {
                version,
                fingerprint: Some(fp.to_vec()),
                source_system: ctx.source_system.clone().or(previous_source),
                state: Lazy::State(next),
                dirty: true,
                existed,
            },
        );
        out.push(ItemResult { kind, version });
    }

    let Some(chain) = chain else {
        return Ok(out);
    };
    // A person confirmed and then changed later in the batch is written
    // with the change.
    confirmed.retain(|(ext, _)| !people.get(*ext).is_some_and(|c| c.dirty));
    if !confirmed.is_empty() {
        let (exts, fps): (Vec<&str>, Vec<Vec<u8>>) =
            confirmed.iter().map(|(e, f)| (*e, f.to_vec())).unzip();
        s.exec(
            "UPDATE people p SET source_system = $2, fingerprint = u.fp \
             FROM unnest($3::text[], $4::bytea[]) AS u(ext, fp) \
             WHERE p.tenant_id = $1 AND p.external_id = u.ext",
            &[&tenant, &source_system, &exts, &fps],
        )?;
    }
    if order.is_empty() {
        return Ok(out);
    }
    // Many new people (an import's first load) are copied in; the rest go
    // through the upsert. No other writer can create them meanwhile: this
    // transaction holds the tenant's head lock, which every change takes.
    if order.len() >= COPY_MIN {
        let (new, old): (Vec<&str>, Vec<&str>) = order
            .iter()
            .partition(|ext| people.get(**ext).is_some_and(|c| !c.existed));
        if new.len() >= COPY_MIN {
            copy_new_people(s, ctx, &new, &mut people)?;
            order = old;
        }
    }
    if order.is_empty() {
        chain.write(s)?;
        events.write(s, tenant)?;
        return Ok(out);
    }
    let mut versions = Vec::with_capacity(order.len());
    let mut fps = Vec::with_capacity(order.len());
    let mut attrs = Vec::with_capacity(order.len());
    let mut roles = Vec::with_capacity(order.len());
    let mut due = Vec::with_capacity(order.len());
    for ext in &order {
        let c = people
            .get_mut(*ext)
            .ok_or_else(|| StoreError::backend("a changed person went missing"))?;
        versions.push(c.version);
        fps.push(c.fingerprint.clone());
        if let Lazy::Prepared(p) = c.state {
            due.push(p.due_on.clone());
            attrs.push(p.attrs_json.clone());
            roles.push(p.roles_json.clone());
            continue;
        }
        let st = c.state()?;
        due.push(muster_core::person::due_on(st));
        attrs.push(serde_json::to_string(&st.attrs).map_err(json_err)?);
        roles.push(serde_json::to_string(&st.roles).map_err(json_err)?);
    }
    let written = s.exec(
        "INSERT INTO people AS p (tenant_id, external_id, version, fingerprint, attrs, roles, \
         created_at, updated_at, updated_by, on_behalf_of, source, source_system, due_on) \
         SELECT $1, u.ext, u.ver, u.fp, u.attrs::jsonb, u.roles::jsonb, $7, $7, $8, $9, $10, \
                $11, u.due \
         FROM unnest($2::text[], $3::bigint[], $4::bytea[], $5::text[], $6::text[], \
                     $12::text[]) AS u(ext, ver, fp, attrs, roles, due) \
         ON CONFLICT (tenant_id, external_id) DO UPDATE SET \
           version = excluded.version, fingerprint = excluded.fingerprint, \
           attrs = excluded.attrs, roles = excluded.roles, updated_at = excluded.updated_at, \
           updated_by = excluded.updated_by, on_behalf_of = excluded.on_behalf_of, \
           source = excluded.source, \
           source_system = coalesce(excluded.source_system, p.source_system), \
           due_on = excluded.due_on \
         WHERE p.version < excluded.version",
        &[
            &tenant,
            &order,
            &versions,
            &fps,
            &attrs,
            &roles,
            &ctx.now,
            &ctx.principal,
            &ctx.on_behalf_of,
            &ctx.source,
            &ctx.source_system,
            &due,
        ],
    )?;
    if written != order.len() as u64 {
        return Err(StoreError::backend(format!(
            "{} of {} changed people were not where the batch read them",
            order.len() as u64 - written,
            order.len()
        )));
    }
    chain.write(s)?;
    events.write(s, tenant)?;
    Ok(out)
}

/// Batches of at least this many rows are written with binary `COPY`;
/// smaller ones (a single `PUT`) with one `INSERT` over `unnest` arrays,
/// which costs no extra round trip.
const COPY_MIN: usize = 64;

/// A JSON text bound as `jsonb` in binary form (its version byte, then the
/// text), so `COPY` can carry the JSON the batch already serialized.
#[derive(Debug)]
struct Jsonb<'a>(&'a str);

impl ToSql for Jsonb<'_> {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(&[1]);
        out.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB
    }

    to_sql_checked!();
}

/// Copies the people a batch creates into `people`, with their final state.
fn copy_new_people<C: GenericClient>(
    s: &mut Sql<'_, C>,
    ctx: &WriteContext,
    new: &[&str],
    people: &mut HashMap<String, Current<'_>>,
) -> Result<()> {
    let types = [
        Type::TEXT,
        Type::TEXT,
        Type::INT8,
        Type::BYTEA,
        Type::JSONB,
        Type::JSONB,
        Type::TIMESTAMPTZ,
        Type::TIMESTAMPTZ,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
    ];
    let mut w = BinaryCopyInWriter::new(
        s.copy_in(
            "COPY people (tenant_id, external_id, version, fingerprint, attrs, roles, \
             created_at, updated_at, updated_by, on_behalf_of, source, source_system, due_on) \
             FROM STDIN (FORMAT binary)",
        )?,
        &types,
    );
    let tenant = ctx.tenant.as_str();
    for ext in new {
        let c = people
            .get_mut(*ext)
            .ok_or_else(|| StoreError::backend("a changed person went missing"))?;
        let computed;
        let (attrs, roles, due) = match c.state {
            Lazy::Prepared(p) => (&*p.attrs_json, &*p.roles_json, &p.due_on),
            _ => {
                let st = c.state()?;
                computed = (
                    serde_json::to_string(&st.attrs).map_err(json_err)?,
                    serde_json::to_string(&st.roles).map_err(json_err)?,
                    muster_core::person::due_on(st),
                );
                (&*computed.0, &*computed.1, &computed.2)
            }
        };
        w.write(&[
            &tenant,
            ext,
            &c.version,
            &c.fingerprint,
            &Jsonb(attrs),
            &Jsonb(roles),
            &ctx.now,
            &ctx.now,
            &ctx.principal,
            &ctx.on_behalf_of,
            &ctx.source,
            &c.source_system,
            &due,
        ])
        .map_err(be)?;
    }
    let written = w.finish().map_err(be)?;
    if written != new.len() as u64 {
        return Err(StoreError::backend(format!(
            "{written} of {} new people were copied",
            new.len()
        )));
    }
    Ok(())
}

/// Applies due effective-date transitions (see `People::person_settle_due`).
/// The head lock is taken before the due people are read, so an instance
/// doing the same waits, and then finds them settled.
pub(crate) fn settle_due<C: GenericClient>(
    s: &mut Sql<'_, C>,
    ctx: &WriteContext,
    limit: u32,
) -> Result<Vec<ItemResult>> {
    let tenant = ctx.tenant.as_str();
    let day = muster_core::person::today(ctx.now);
    lock_head(s, tenant)?;
    let rows = s.query(
        "SELECT external_id, attrs::text, roles::text FROM people \
         WHERE tenant_id = $1 AND due_on IS NOT NULL AND due_on <= $2 \
         ORDER BY due_on, external_id LIMIT $3",
        &[&tenant, &day, &i64::from(limit)],
    )?;
    let mut items = Vec::with_capacity(rows.len());
    for r in &rows {
        let ext: String = get(r, 0)?;
        let mut state = decode_state(get(r, 1)?, get(r, 2)?)?;
        if !muster_core::person::settle(&mut state, &day) {
            // A stale mark: correct it so the person is not picked again.
            s.exec(
                "UPDATE people SET due_on = $3 WHERE tenant_id = $1 AND external_id = $2",
                &[&tenant, &ext, &muster_core::person::due_on(&state)],
            )?;
            continue;
        }
        let id = muster_core::ExternalId::parse(&ext).map_err(stored_id)?;
        let mut inc = Incoming::new(id);
        inc.attrs.insert(
            "employment_status".into(),
            state.attrs.get("employment_status").cloned(),
        );
        items.push(BatchItem::new(0, inc));
    }
    if items.is_empty() {
        return Ok(Vec::new());
    }
    apply_items(s, ctx, &items, false)
}
