//! Import semantics (docs/people.md#import-semantics): a source's active people for snapshot
//! imports, existence checks for manager references, and due
//! effective-date transitions.
use crate::{apply_items, be, decode_state, stored_id};
use muster_core::person::{due_on, settle, today, Incoming};
use muster_core::value::AttrValue;
use muster_core::{ExternalId, TenantId};
use muster_store::{BatchItem, ItemResult, Result, WriteContext};
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension};

pub(crate) fn source_active(
    conn: &Connection,
    tenant: &TenantId,
    source_system: &str,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<String>> {
    let mut s = conn
        .prepare_cached(
            "SELECT p.external_id FROM people p JOIN person_data d ON d.id = p.data_id \
             WHERE p.tenant_id = ?1 AND p.source_system = ?2 \
             AND (?3 IS NULL OR p.external_id > ?3) \
             AND json_extract(d.attrs, '$.employment_status') IS NOT 'terminated' \
             ORDER BY p.external_id LIMIT ?4",
        )
        .map_err(be)?;
    let rows = s
        .query_map(params![tenant.as_str(), source_system, after, limit], |r| {
            r.get::<_, String>(0)
        })
        .map_err(be)?;
    rows.map(|r| r.map_err(be)).collect()
}

pub(crate) fn exists(conn: &Connection, tenant: &TenantId, ids: &[&str]) -> Result<Vec<bool>> {
    let mut s = conn
        .prepare_cached("SELECT 1 FROM people WHERE tenant_id = ?1 AND external_id = ?2")
        .map_err(be)?;
    ids.iter()
        .map(|id| s.exists(params![tenant.as_str(), id]).map_err(be))
        .collect()
}

pub(crate) fn fingerprints_of_source(
    conn: &Connection,
    tenant: &TenantId,
    ids: &[&str],
    source_system: &str,
) -> Result<Vec<Option<[u8; 16]>>> {
    let mut s = conn
        .prepare_cached(
            "SELECT fingerprint FROM people \
             WHERE tenant_id = ?1 AND external_id = ?2 AND source_system = ?3",
        )
        .map_err(be)?;
    ids.iter()
        .map(|id| {
            s.query_row(params![tenant.as_str(), id, source_system], |r| {
                Ok(match r.get_ref(0)? {
                    ValueRef::Blob(b) => <[u8; 16]>::try_from(b).ok(),
                    _ => None,
                })
            })
            .optional()
            .map(Option::flatten)
            .map_err(be)
        })
        .collect()
}

/// Runs on the writer: the due people are chosen and applied in one
/// transaction, so nothing else writes between the choice and the change.
pub(crate) fn settle_due(
    conn: &Connection,
    ctx: &WriteContext,
    limit: u32,
) -> Result<Vec<ItemResult>> {
    let day = today(ctx.now);
    let tenant = ctx.tenant.as_str();
    let due: Vec<(String, String, String)> = {
        let mut s = conn
            .prepare_cached(
                "SELECT p.external_id, d.attrs, d.roles FROM people p \
                 JOIN person_data d ON d.id = p.data_id \
                 WHERE p.tenant_id = ?1 AND p.due_on IS NOT NULL AND p.due_on <= ?2 \
                 ORDER BY p.due_on, p.external_id LIMIT ?3",
            )
            .map_err(be)?;
        let rows = s
            .query_map(params![tenant, day, limit], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(be)?;
        rows.collect::<rusqlite::Result<_>>().map_err(be)?
    };
    let mut items = Vec::with_capacity(due.len());
    for (ext, attrs, roles) in due {
        let mut state = decode_state(&attrs, &roles)?;
        if !settle(&mut state, &day) {
            // Nothing to do after all (the mark is stale): correct it, so
            // the person is not picked again.
            conn.prepare_cached(
                "UPDATE people SET due_on = ?3 WHERE tenant_id = ?1 AND external_id = ?2",
            )
            .map_err(be)?
            .execute(params![tenant, ext, due_on(&state)])
            .map_err(be)?;
            continue;
        }
        let id = ExternalId::parse(&ext).map_err(stored_id)?;
        let mut inc = Incoming::new(id);
        let status = state.attrs.get("employment_status").cloned();
        inc.attrs.insert(
            "employment_status".into(),
            status.or(Some(AttrValue::string("active"))),
        );
        items.push(BatchItem::new(0, inc));
    }
    apply_items(conn, ctx, &items)
}
