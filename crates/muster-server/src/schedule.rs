//! Effective dates (issue 6): applies the status transitions whose day has
//! come — a `termination_date` reached terminates, a `pending` hire whose
//! `hire_date` has come becomes `active` — through the store's one write
//! path, with audit entries and events, as `system:scheduler` from source
//! `schedule`.
//!
//! Every instance runs it at start and every
//! `import.effective_dates_interval_seconds`; the store picks and applies
//! due people under the tenant's write lock, so instances sharing a
//! database never apply one transition twice. Days are UTC days of the
//! injected clock; `POST /api/v1/effective-dates/run` runs it at once for
//! the caller's tenant (operators after a clock or data fix, and tests,
//! which move the clock instead of waiting for days).
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use muster_core::policy::{Permission, WritePolicy};
use muster_core::TenantId;
use muster_proto::EffectiveDatesRun;
use muster_store::WriteContext;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// People settled per transaction.
const BATCH: u32 = 500;

/// Applies every due transition of `tenant`; returns how many were applied.
pub async fn settle_tenant(state: &AppState, tenant: &TenantId) -> ApiResult<u64> {
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
        let done = state.db(move |s| s.person_settle_due(&ctx, BATCH)).await?;
        if done.is_empty() {
            break;
        }
        applied += done.len() as u64;
        state.changes_committed.notify_waiters();
    }
    Ok(applied)
}

/// The background task: every tenant, at start and then periodically.
pub async fn run(state: AppState, stop: Arc<AtomicBool>) {
    let every =
        std::time::Duration::from_secs(state.config.import.effective_dates_interval_seconds);
    loop {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match state.db(|s| s.tenant_list()).await {
            Ok(tenants) => {
                for t in tenants {
                    match settle_tenant(&state, &t.id).await {
                        Ok(0) => {}
                        Ok(n) => {
                            tracing::info!(tenant = %t.id, applied = n, "effective-date transitions applied")
                        }
                        Err(e) => {
                            tracing::error!(tenant = %t.id, error = ?e, "cannot apply effective-date transitions")
                        }
                    }
                }
            }
            Err(e) => tracing::error!(error = ?e, "cannot list tenants for effective dates"),
        }
        tokio::time::sleep(every).await;
    }
}

/// `POST /api/v1/effective-dates/run`: applies the caller's tenant's due
/// transitions now.
pub async fn effective_dates_run(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<EffectiveDatesRun>> {
    caller.require(Permission::TenantAdmin)?;
    let applied = settle_tenant(&state, &caller.principal.tenant).await?;
    Ok(Json(EffectiveDatesRun { applied }))
}
