//! People writes: every door that changes a person (the people API, login
//! sync, imports through the worker) goes through the write gate
//! (`ops::write`) and `Store::apply_batch`, which records each change's
//! audit entry and events in the write's own transaction.
use crate::auth::login_sync::{principal_name, roles_from_claim, Verified};
use crate::auth::Caller;
use crate::base::error::{ApiError, ApiResult};
use crate::base::state::AppState;
use crate::ops::write::{incoming_from_api, policy_errors};
use muster_core::mapping::{MappingDoc, MappingFormat};
use muster_core::policy::Permission;
use muster_core::policy::WritePolicy;
use muster_core::TenantId;
use muster_proto::ErrorCode;
use muster_proto::LoginSyncResult;
use muster_proto::{RowErrorInfo, SyncItem, SyncResult};
use muster_store::{BatchItem, WriteContext};
use std::collections::BTreeMap;
use std::collections::HashSet;

/// Writes the person a verified login-sync token describes: its claims
/// through the issuer's mapping, the issuer's write policy and the one
/// write path, with the token's `sub` as `on_behalf_of`.
pub(crate) async fn login_sync_write(state: &AppState, v: Verified) -> ApiResult<LoginSyncResult> {
    let Verified {
        issuer,
        claims,
        sub,
    } = v;
    let (t, m) = (issuer.tenant.clone(), issuer.settings.mapping.clone());
    let mapping = state.db(move |s| s.mapping_get(&t, &m, None)).await?;
    let doc = MappingDoc::parse(&mapping.document.to_string(), MappingFormat::Json)
        .map_err(|e| anyhow::anyhow!("the issuer's stored mapping does not parse: {e}"))?;
    // The claims are the source fields of a one-record source.
    let compiled = doc
        .compile_named(&BTreeMap::new())
        .map_err(|e| anyhow::anyhow!("the issuer's mapping does not compile: {e}"))?;
    let mut incoming = compiled
        .map_object(&claims)
        .map_err(|errors| ApiError::Unprocessable {
            code: ErrorCode::InvalidPerson,
            detail: "the claims do not map to a valid person; see errors".into(),
            errors: errors
                .into_iter()
                .map(|e| muster_proto::RowErrorInfo {
                    row: 1,
                    column: e.column,
                    attribute: e.attribute,
                    code: e.code.as_str().to_owned(),
                    message: e.message,
                })
                .collect(),
        })?;
    if let Some(roles) = roles_from_claim(&issuer, &claims)? {
        incoming.roles = Some(roles);
    }
    let name = principal_name(&issuer);
    let policy: WritePolicy = issuer.settings.write_policy.clone();
    let errors = policy_errors(1, &name, &policy, &incoming, &|a| {
        if a == muster_core::schema::ROLES {
            issuer.settings.roles_claim.clone()
        } else {
            compiled.column_of(a)
        }
    });
    if !errors.is_empty() {
        return Err(ApiError::Unprocessable {
            code: ErrorCode::NotPermitted,
            detail: format!(
                "the issuer '{}' may not write this person as mapped; see errors",
                issuer.name
            ),
            errors,
        });
    }
    let external_id = incoming.external_id.to_string();
    let batch = vec![BatchItem::new(1, incoming)];
    let refused = crate::ops::write::manager_errors(state, &issuer.tenant, &batch).await?;
    if !refused.is_empty() {
        return Err(ApiError::Unprocessable {
            code: ErrorCode::InvalidPerson,
            detail: "the claims do not map to a valid person; see errors".into(),
            errors: refused.into_iter().map(|(_, e)| e).collect(),
        });
    }
    let ctx = WriteContext {
        tenant: issuer.tenant.clone(),
        principal: name,
        on_behalf_of: Some(sub),
        source: "login-sync".into(),
        policy,
        now: state.clock.now(),
        source_system: None,
    };
    let applied = state
        .db(move |s| s.apply_batch(&ctx, batch, None, false))
        .await?;
    let r = applied
        .first()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no result for a login sync")))?;
    Ok(LoginSyncResult {
        external_id,
        version: r.version,
        change: r.kind.as_str().into(),
        issuer: issuer.name,
    })
}

pub(crate) fn write_context(state: &AppState, caller: &Caller, source: &str) -> WriteContext {
    WriteContext {
        tenant: caller.principal.tenant.clone(),
        principal: caller.name(),
        on_behalf_of: caller.on_behalf_of.clone(),
        source: source.into(),
        policy: caller.principal.write_policy.clone(),
        now: state.clock.now(),
        source_system: None,
    }
}

/// Writes people for a caller with `people:write`: checks every item
/// (attributes, the caller's write policy, duplicates, managers), applies
/// the good ones in one transaction, and answers per item in request order.
pub(crate) async fn write(
    state: &AppState,
    caller: &Caller,
    items: Vec<SyncItem>,
) -> ApiResult<Vec<SyncResult>> {
    caller.require(Permission::PeopleWrite)?;
    write_from(state, caller, items, "api").await
}

/// [`write`] for a door that checked the caller's permission its own way,
/// recorded in audit as from `source` (`scim`).
pub(crate) async fn write_from(
    state: &AppState,
    caller: &Caller,
    items: Vec<SyncItem>,
    source: &str,
) -> ApiResult<Vec<SyncResult>> {
    let mut results: Vec<Option<SyncResult>> = Vec::with_capacity(items.len());
    let mut batch = Vec::new();
    let mut slots = Vec::new();
    let mut seen = HashSet::new();
    let client = caller.principal.client_id.clone();
    for (i, item) in items.iter().enumerate() {
        let row = i as u64 + 1;
        let fail = |errors: Vec<RowErrorInfo>| SyncResult {
            external_id: item.external_id.clone(),
            status: "error".into(),
            version: None,
            errors,
        };
        match incoming_from_api(
            row,
            &item.external_id,
            &item.attributes,
            item.roles.as_ref(),
        ) {
            Err(errors) => results.push(Some(fail(errors))),
            Ok(inc) => {
                let errors =
                    policy_errors(row, &client, &caller.principal.write_policy, &inc, &|_| {
                        None
                    });
                if !errors.is_empty() {
                    results.push(Some(fail(errors)));
                } else if !seen.insert(inc.external_id.clone()) {
                    results.push(Some(fail(vec![RowErrorInfo {
                        row,
                        column: None,
                        attribute: None,
                        code: ErrorCode::DuplicateKey.as_str().into(),
                        message: "the same external_id appears earlier in this request".into(),
                    }])));
                } else {
                    slots.push(i);
                    results.push(None);
                    batch.push(BatchItem::new(row, inc));
                }
            }
        }
    }
    // Managers must be in this request or already stored.
    let refused =
        crate::ops::write::manager_errors(state, &caller.principal.tenant, &batch).await?;
    if !refused.is_empty() {
        let bad: HashSet<usize> = refused.iter().map(|(i, _)| *i).collect();
        for (i, error) in refused {
            let slot = slots[i];
            results[slot] = Some(SyncResult {
                external_id: items[slot].external_id.clone(),
                status: "error".into(),
                version: None,
                errors: vec![error],
            });
        }
        let (mut kept_slots, mut kept) = (Vec::new(), Vec::new());
        for (i, (slot, item)) in slots.into_iter().zip(batch).enumerate() {
            if !bad.contains(&i) {
                kept_slots.push(slot);
                kept.push(item);
            }
        }
        slots = kept_slots;
        batch = kept;
    }
    if !batch.is_empty() {
        let ctx = write_context(state, caller, source);
        let applied = state
            .db(move |s| s.apply_batch(&ctx, batch, None, false))
            .await?;
        state.changes_committed.notify_waiters();
        for (slot, r) in slots.into_iter().zip(applied) {
            results[slot] = Some(SyncResult {
                external_id: items[slot].external_id.clone(),
                status: r.kind.as_str().into(),
                version: Some(r.version),
                errors: Vec::new(),
            });
        }
    }
    Ok(results.into_iter().flatten().collect())
}

/// People settled per transaction.
const SETTLE_BATCH: u32 = 500;

/// Applies every due effective-date transition of `tenant` (a
/// `termination_date` reached terminates, a `pending` hire whose `hire_date`
/// has come becomes `active`) as `system:scheduler` from source `schedule`;
/// returns how many were applied. The store picks and applies due people
/// under the tenant's write lock, so instances sharing a database never
/// apply one transition twice.
pub(crate) async fn settle_due(state: &AppState, tenant: &TenantId) -> ApiResult<u64> {
    let mut applied = 0u64;
    // Each round settles what it picks (or corrects a stale mark), so the
    // rounds end; the cap is a guard, the next run carries on.
    for _ in 0..10_000 {
        let ctx = WriteContext {
            tenant: tenant.clone(),
            principal: "system:scheduler".into(),
            on_behalf_of: None,
            source: "schedule".into(),
            policy: WritePolicy::allow_all(),
            now: state.clock.now(),
            source_system: None,
        };
        let done = state
            .db(move |s| s.person_settle_due(&ctx, SETTLE_BATCH))
            .await?;
        if done.is_empty() {
            break;
        }
        applied += done.len() as u64;
        state.changes_committed.notify_waiters();
    }
    Ok(applied)
}
