//! Reading and verifying the audit chain (`audit:read`).
use crate::api::page_limit;
use crate::auth::Caller;
use crate::base::error::ApiResult;
use crate::base::state::AppState;
use crate::http::json::QueryParams;
use axum::extract::State;
use axum::Json;
use muster_core::audit::{ChainBreak, ChainVerifier};
use muster_core::policy::Permission;
use muster_core::TenantId;
use muster_proto::{AuditEntryInfo, AuditVerification, Page};
use muster_store::{AuditRow, Store, StoreError};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub after: Option<i64>,
    pub limit: Option<u32>,
}

fn entry_info(r: AuditRow) -> AuditEntryInfo {
    AuditEntryInfo {
        seq: r.entry.seq,
        at: r.entry.at,
        principal: r.entry.principal,
        on_behalf_of: r.entry.on_behalf_of,
        source: r.entry.source,
        action: r.entry.action,
        person: r.entry.person,
        // Stored text that no longer parses was edited; show it as text.
        detail: serde_json::from_str(&r.entry.detail)
            .unwrap_or(serde_json::Value::String(r.entry.detail)),
        prev_hash: r.entry.prev_hash,
        hash: r.hash,
    }
}

pub async fn audit_list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<AuditQuery>,
) -> ApiResult<Json<Page<AuditEntryInfo>>> {
    caller.require(Permission::AuditRead)?;
    let limit = page_limit(q.limit)?;
    let t = caller.principal.tenant.clone();
    let after = q.after.unwrap_or(0);
    let rows = state.db(move |s| s.audit_list(&t, after, limit)).await?;
    let next_cursor = if rows.len() == limit as usize {
        rows.last().map(|r| r.entry.seq.to_string())
    } else {
        None
    };
    Ok(Json(Page {
        items: rows.into_iter().map(entry_info).collect(),
        next_cursor,
    }))
}

/// Walks a tenant's chain, streaming: memory does not grow with its length.
pub fn verify_tenant(
    store: &dyn Store,
    tenant: &TenantId,
) -> Result<AuditVerification, StoreError> {
    let mut v = ChainVerifier::default();
    let mut broken: Option<ChainBreak> = None;
    store.audit_walk(tenant, &mut |row| match v.push(&row.entry, &row.hash) {
        Ok(()) => true,
        Err(b) => {
            broken = Some(b);
            false
        }
    })?;
    Ok(AuditVerification {
        ok: broken.is_none(),
        entries_verified: v.verified(),
        first_bad_seq: broken.as_ref().map(ChainBreak::seq),
        problem: broken.map(|b| b.to_string()),
    })
}

pub async fn audit_verify(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<AuditVerification>> {
    caller.require(Permission::AuditRead)?;
    let t = caller.principal.tenant.clone();
    Ok(Json(state.db(move |s| verify_tenant(s, &t)).await?))
}
