//! The audit entries of the operations: each change hands its entry to the
//! store, which appends it in the change's own transaction.
use crate::auth::Caller;
use crate::base::error::ApiResult;
use crate::base::state::AppState;
use muster_store::{Audit, AuditDraft};

/// The audit entry of an admin action by `caller`.
pub(crate) fn audit_entry(
    state: &AppState,
    caller: &Caller,
    action: &str,
    detail: serde_json::Value,
) -> AuditDraft {
    AuditDraft {
        tenant: caller.principal.tenant.clone(),
        at: state.clock.now(),
        principal: caller.name(),
        on_behalf_of: caller.on_behalf_of.clone(),
        source: "admin".into(),
        action: action.to_owned(),
        person: None,
        detail,
    }
}

/// The [`Audit`] of an admin change by `caller`: one entry whose detail is
/// built from the changed row, appended in the change's own transaction.
pub(crate) fn recorded<T>(
    state: &AppState,
    caller: &Caller,
    action: &str,
    detail: impl FnOnce(&T) -> serde_json::Value + Send + 'static,
) -> Audit<T> {
    let mut entry = audit_entry(state, caller, action, serde_json::Value::Null);
    Box::new(move |row| {
        entry.detail = detail(row);
        vec![entry]
    })
}

/// Records an admin action that changed nothing in the database (a file
/// rotated on disk): the entry alone.
pub(crate) async fn audit_only(
    state: &AppState,
    caller: &Caller,
    action: &str,
    detail: serde_json::Value,
) -> ApiResult<()> {
    let d = audit_entry(state, caller, action, detail);
    state.db(move |s| s.audit_append(d)).await?;
    Ok(())
}
