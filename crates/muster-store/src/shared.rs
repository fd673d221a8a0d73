//! Logic both backends run the same way, written once: how a person's
//! stored state decodes, what the first start of an empty database writes,
//! and what one record does to a stored person. The backends keep only
//! how they read and write it.
use crate::{
    event_changes, AuditDraft, NewAdminToken, NewClient, PrincipalKind, Result, StoreError,
    INITIAL_TOKEN_NAME,
};
use chrono::{DateTime, Utc};
use muster_core::person::PersonState;
use muster_core::person::{apply, classify, settle, stored_detail_json, ChangeKind, Incoming};
use muster_core::policy::{ReadPolicy, WritePolicy};
use muster_core::secret::SecretDigest;
use muster_core::{Attributes, TenantId};
use std::collections::BTreeSet;

/// A stored JSON value that does not decode (the database was edited or
/// is damaged), or a value that does not encode: a backend error, for the
/// log. serde_json's message quotes the offending value, which may be a
/// person's, so only its category and position are kept.
/// A read policy as it is stored: `None` (`NULL`) for the default, so
/// that a client that never had one follows what the default is.
pub fn stored_read_policy(p: &ReadPolicy) -> Option<&ReadPolicy> {
    (*p != ReadPolicy::default()).then_some(p)
}

/// A JSON value as a nullable text column: `NULL` for `null`.
pub fn nullable_json(v: &serde_json::Value) -> Result<Option<String>> {
    match v {
        serde_json::Value::Null => Ok(None),
        v => serde_json::to_string(v).map(Some).map_err(json_err),
    }
}

/// A sink's progress as stored: `None` while it holds nothing.
pub fn sink_progress_json(p: &crate::SinkProgress) -> Result<Option<String>> {
    if p.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(p).map(Some).map_err(json_err)
}

pub fn json_err(e: serde_json::Error) -> StoreError {
    StoreError::backend(format!(
        "stored JSON does not decode ({:?} error at line {}, column {})",
        e.classify(),
        e.line(),
        e.column()
    ))
}

/// A stored identifier (tenant or external id) that no longer parses: the
/// database was edited or is damaged. The parse error names the rule it
/// broke, never the value.
pub fn stored_id(e: muster_core::IdError) -> StoreError {
    StoreError::caused("a stored identifier does not parse", e)
}

/// A person's state from its stored attributes and roles (JSON text).
pub fn decode_state(attrs: &str, roles: &str) -> Result<PersonState> {
    Ok(PersonState {
        attrs: serde_json::from_str::<Attributes>(attrs).map_err(json_err)?,
        roles: serde_json::from_str::<BTreeSet<String>>(roles).map_err(json_err)?,
    })
}

// ---- bootstrap: the first tenant and admin of an empty database ------------

/// The name bootstrap gives the default tenant.
pub const BOOTSTRAP_TENANT_NAME: &str = "Default";

/// The first admin of the default tenant, `admin`, who signs in with the
/// initial token only.
pub fn bootstrap_admin_client() -> NewClient {
    NewClient {
        tenant: TenantId::default_tenant(),
        kind: PrincipalKind::Admin,
        client_id: "admin".into(),
        name: "Initial administrator".into(),
        role: "admin".into(),
        token_policy: "ttl".into(),
        token_ttl_seconds: 0,
        write_policy: WritePolicy::allow_all(),
        read_policy: ReadPolicy::default(),
        secret: None,
    }
}

/// The first admin's token ([`INITIAL_TOKEN_NAME`]), for the principal
/// stored from [`bootstrap_admin_client`].
pub fn bootstrap_token(
    digest: SecretDigest,
    principal_id: String,
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> NewAdminToken {
    NewAdminToken {
        id: uuid::Uuid::now_v7().to_string(),
        digest,
        principal_id,
        name: INITIAL_TOKEN_NAME.into(),
        created_at: now,
        expires_at,
    }
}

/// The entry that starts the default tenant's chain.
pub fn bootstrap_entry(now: DateTime<Utc>) -> AuditDraft {
    AuditDraft {
        tenant: TenantId::default_tenant(),
        at: now,
        principal: "system".into(),
        on_behalf_of: None,
        source: "bootstrap".into(),
        action: "tenant.created".into(),
        person: None,
        detail: serde_json::json!({"admin": "admin"}),
    }
}

// ---- what one record does to a stored person ----------------------------------

/// The outcome of one record for one person: the state it leads to, what
/// kind of change that is, and the version the person then has (the stored
/// one when nothing changes, the next one otherwise).
pub struct Decision<'a> {
    pub before: Option<&'a PersonState>,
    pub next: PersonState,
    pub kind: ChangeKind,
    pub version: i64,
}

impl Decision<'_> {
    /// The change's audit detail as stored (see `docs/architecture.md`, a
    /// creation's detail is its new state).
    pub fn detail_json(&self) -> String {
        stored_detail_json(self.before, &self.next, self.version)
    }

    /// Whether the change touched (attributes, roles), for its events.
    pub fn changed(&self) -> (bool, bool) {
        event_changes(self.before, &self.next)
    }
}

/// Applies a record to a person as stored (`before`, at `stored_version`;
/// `None` and 0 for nobody) under the writer's policy, settles its
/// effective dates as of `today`, and classifies the result.
pub fn decide<'a>(
    before: Option<&'a PersonState>,
    stored_version: i64,
    incoming: &Incoming,
    policy: &WritePolicy,
    today: &str,
) -> Decision<'a> {
    let mut next = apply(before, incoming, policy);
    settle(&mut next, today);
    let kind = classify(before, &next);
    let version = if kind == ChangeKind::Unchanged {
        stored_version
    } else {
        stored_version + 1
    };
    Decision {
        before,
        next,
        kind,
        version,
    }
}
