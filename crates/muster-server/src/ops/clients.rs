//! Integration clients: created with a role, a token policy, a write
//! policy and a read policy, disabled and enabled, their secret rotated
//! with an overlap.
use crate::auth::Caller;
use crate::base::error::ApiResult;
use crate::base::state::AppState;
use crate::ops::audit::recorded;
use crate::ops::input::{
    CheckedReadPolicy, CheckedWritePolicy, ClientId, ClientRole, Overlap, TokenTtl,
};
use crate::ops::own_client;
use chrono::{DateTime, Duration, Utc};
use muster_core::policy::Permission;
use muster_core::secret;
use muster_proto::TokenPolicy;
use muster_store::{ClientRow, NewClient, PrincipalKind};

/// A client to create, parsed.
pub(crate) struct ClientInput {
    pub client_id: ClientId,
    pub name: Option<String>,
    pub role: ClientRole,
    pub token_policy: TokenPolicy,
    pub token_ttl: TokenTtl,
    pub write_policy: CheckedWritePolicy,
    pub read_policy: CheckedReadPolicy,
}

/// Creates a client of the caller's tenant. Returns the row and its
/// secret, which is shown once and stored only as a digest.
pub(crate) async fn create(
    state: &AppState,
    caller: &Caller,
    input: ClientInput,
) -> ApiResult<(ClientRow, String)> {
    caller.require(Permission::ClientsAdmin)?;
    let (client_secret, digest) = secret::generate("mcs_");
    let client_id = input.client_id.into_inner();
    let new = NewClient {
        tenant: caller.principal.tenant.clone(),
        kind: PrincipalKind::Client,
        name: input.name.unwrap_or_else(|| client_id.clone()),
        client_id,
        role: input.role.as_str().to_owned(),
        token_policy: input.token_policy.as_str().to_owned(),
        token_ttl_seconds: input.token_ttl.seconds(),
        write_policy: input.write_policy.into_inner(),
        read_policy: input.read_policy.into_inner(),
        secret: Some(digest),
    };
    let now = state.clock.now();
    let audit = recorded(
        state,
        caller,
        "client.created",
        |c: &ClientRow| serde_json::json!({ "client_id": c.client_id, "role": c.role }),
    );
    let row = state.db(move |s| s.client_create(new, now, audit)).await?;
    Ok((row, client_secret))
}

/// Disables a client (its tokens and credentials stop working at once) or
/// enables it again.
pub(crate) async fn set_disabled(
    state: &AppState,
    caller: &Caller,
    id: String,
    disabled: bool,
) -> ApiResult<ClientRow> {
    caller.require(Permission::ClientsAdmin)?;
    let c = own_client(state, caller, id).await?;
    let action = if disabled {
        "client.disabled"
    } else {
        "client.enabled"
    };
    let audit = recorded(
        state,
        caller,
        action,
        |c: &ClientRow| serde_json::json!({ "client_id": c.client_id }),
    );
    state
        .db(move |s| s.client_set_disabled(&c.client_id, disabled, audit))
        .await
}

/// Replaces what a client may read of people. Its own subscriptions are
/// cut down to the new policy as they deliver (docs/events.md).
pub(crate) async fn set_read_policy(
    state: &AppState,
    caller: &Caller,
    id: String,
    policy: CheckedReadPolicy,
) -> ApiResult<ClientRow> {
    caller.require(Permission::ClientsAdmin)?;
    let c = own_client(state, caller, id).await?;
    let policy = policy.into_inner();
    let audit = recorded(state, caller, "client.read_policy_set", |c: &ClientRow| {
        serde_json::json!({
            "client_id": c.client_id,
            "attributes": c.read_policy.attributes,
            "events": c.read_policy.events,
        })
    });
    state
        .db(move |s| s.client_set_read_policy(&c.client_id, &policy, audit))
        .await
}

/// A new secret for a client; the previous one keeps working until the
/// returned time.
pub(crate) async fn rotate_secret(
    state: &AppState,
    caller: &Caller,
    id: String,
    overlap: Overlap,
) -> ApiResult<(ClientRow, String, DateTime<Utc>)> {
    caller.require(Permission::ClientsAdmin)?;
    let c = own_client(state, caller, id).await?;
    let now = state.clock.now();
    let until = now + Duration::seconds(overlap.seconds() as i64);
    let (client_secret, digest) = secret::generate("mcs_");
    let seconds = overlap.seconds();
    let audit = recorded(
        state,
        caller,
        "client.secret_rotated",
        move |c: &ClientRow| serde_json::json!({ "client_id": c.client_id, "overlap_seconds": seconds }),
    );
    let row = state
        .db(move |s| s.client_rotate_secret(&c.client_id, digest, until, now, audit))
        .await?;
    Ok((row, client_secret, until))
}
