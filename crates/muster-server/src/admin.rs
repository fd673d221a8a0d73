//! The admin API: tenants, integration clients and mappings.
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::json::JsonBody;
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use chrono::Duration;
use muster_core::mapping::{MappingDoc, MappingFormat};
use muster_core::policy::{role_permissions, Permission, WritePolicy, BUILTIN_ROLES};
use muster_core::schema::{core_type, valid_custom_name, ROLES};
use muster_core::{secret, TenantId};
use muster_proto::*;
use muster_store::{Audit, AuditDraft, ClientRow, MappingRow, NewClient, PrincipalKind, TenantRow};
use serde::Deserialize;

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

fn tenant_info(t: TenantRow) -> TenantInfo {
    TenantInfo {
        id: t.id.to_string(),
        name: t.name,
        created_at: t.created_at,
    }
}

/// Only an administrator of the `default` tenant manages tenants.
pub(crate) fn require_operator(caller: &Caller) -> ApiResult<()> {
    caller.require(Permission::TenantAdmin)?;
    if caller.principal.tenant != TenantId::default_tenant() {
        return Err(ApiError::Forbidden(
            "tenant:admin on the default tenant".into(),
        ));
    }
    Ok(())
}

pub async fn tenant_create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(spec): JsonBody<TenantSpec>,
) -> ApiResult<(StatusCode, Json<TenantCreated>)> {
    require_operator(&caller)?;
    let id = TenantId::parse(&spec.id)
        .map_err(|e| ApiError::unprocessable("invalid_tenant_id", e.to_string()))?;
    let name = spec.name.unwrap_or_else(|| spec.id.clone());
    let now = state.clock.now();
    let tid = id.clone();
    let audit = recorded(
        &state,
        &caller,
        "tenant.created",
        |t: &TenantRow| serde_json::json!({ "tenant": t.id.as_str() }),
    );
    let row = state
        .db(move |s| s.tenant_create(&tid, &name, now, audit))
        .await?;
    // The tenant's first administrator, with an API token shown once.
    let (token, digest) = secret::generate("mat_");
    let admin = NewClient {
        tenant: id.clone(),
        kind: PrincipalKind::Admin,
        client_id: format!("admin@{}", id),
        name: "Tenant administrator".into(),
        role: "admin".into(),
        token_policy: "ttl".into(),
        token_ttl_seconds: 0,
        write_policy: WritePolicy::allow_all(),
        secret: None,
    };
    let audit = recorded(
        &state,
        &caller,
        "client.created",
        |c: &ClientRow| serde_json::json!({ "client_id": c.client_id, "role": c.role, "tenant": c.tenant.as_str() }),
    );
    let created = state
        .db(move |s| s.client_create(admin, now, audit))
        .await?;
    // Like any minted admin token, it expires; the tenant's admin mints
    // its own with it and revokes it.
    let ttl = state.config.tokens.admin_ttl_seconds;
    let first = muster_store::NewAdminToken {
        id: uuid::Uuid::now_v7().to_string(),
        digest,
        principal_id: created.id.clone(),
        name: muster_store::INITIAL_TOKEN_NAME.into(),
        created_at: now,
        expires_at: Some(crate::admin_tokens::expiry(now, ttl)),
    };
    let audit = recorded(
        &state,
        &caller,
        "admin_token.created",
        crate::admin_tokens::created_detail,
    );
    state
        .db(move |s| s.admin_token_create(first, audit))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(TenantCreated {
            tenant: tenant_info(row),
            admin_token: token,
        }),
    ))
}

pub async fn tenant_list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<TenantInfo>>> {
    require_operator(&caller)?;
    let rows = state.db(|s| s.tenant_list()).await?;
    Ok(Json(rows.into_iter().map(tenant_info).collect()))
}

pub fn client_info(c: &ClientRow) -> ClientInfo {
    ClientInfo {
        client_id: c.client_id.clone(),
        name: c.name.clone(),
        role: c.role.clone(),
        permissions: role_permissions(&c.role)
            .unwrap_or_default()
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect(),
        token_policy: TokenPolicy::parse(&c.token_policy).unwrap_or(TokenPolicy::Ttl),
        token_ttl_seconds: c.token_ttl_seconds,
        write_policy: WritePolicyInfo {
            attributes: c.write_policy.attributes.clone(),
            roles: c.write_policy.roles.clone(),
        },
        disabled: c.disabled,
        created_at: c.created_at,
        secrets: c
            .secrets
            .iter()
            .map(|s| SecretInfo {
                created_at: s.created_at,
                expires_at: s.expires_at,
            })
            .collect(),
    }
}

pub(crate) fn valid_client_id(id: &str) -> bool {
    (3..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

pub(crate) fn check_write_policy(p: &WritePolicyInfo) -> ApiResult<WritePolicy> {
    for a in &p.attributes {
        if a != "*" && a != ROLES && core_type(a).is_none() && !valid_custom_name(a) {
            return Err(ApiError::unprocessable(
                "invalid_write_policy",
                format!("write_policy.attributes: '{a}' is not an attribute name"),
            ));
        }
    }
    for r in &p.roles {
        if r != "*" && !crate::write::valid_role_name(r) {
            return Err(ApiError::unprocessable(
                "invalid_write_policy",
                format!("write_policy.roles: '{r}' is not a role name"),
            ));
        }
    }
    Ok(WritePolicy {
        attributes: p.attributes.clone(),
        roles: p.roles.clone(),
    })
}

/// Finds a client of the caller's tenant; other tenants' clients do not exist.
/// A client of the caller's tenant (404 for another tenant's, or an admin).
pub(crate) async fn own_client(
    state: &AppState,
    caller: &Caller,
    id: String,
) -> ApiResult<ClientRow> {
    let c = state.db(move |s| s.client_get(&id)).await?;
    if c.tenant != caller.principal.tenant || c.kind != PrincipalKind::Client {
        return Err(ApiError::NotFound("client"));
    }
    Ok(c)
}

pub async fn client_create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(spec): JsonBody<ClientSpec>,
) -> ApiResult<(StatusCode, Json<ClientCreated>)> {
    caller.require(Permission::ClientsAdmin)?;
    if !BUILTIN_ROLES.contains(&spec.role.as_str()) {
        return Err(ApiError::unprocessable(
            "invalid_role",
            format!("role: must be one of {}", BUILTIN_ROLES.join(", ")),
        ));
    }
    let client_id = match spec.client_id {
        Some(id) if valid_client_id(&id) => id,
        Some(_) => {
            return Err(ApiError::unprocessable(
                "invalid_client_id",
                "client_id: 3 to 64 characters of letters, digits, '-', '_' and '.'",
            ))
        }
        None => format!("mc_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]),
    };
    let ttl = spec
        .token_ttl_seconds
        .unwrap_or(state.config.tokens.default_ttl_seconds);
    if !(1..=86_400).contains(&ttl) {
        return Err(ApiError::unprocessable(
            "invalid_ttl",
            "token_ttl_seconds: must be between 1 and 86400",
        ));
    }
    let write_policy = check_write_policy(&spec.write_policy)?;
    let (client_secret, digest) = secret::generate("mcs_");
    let new = NewClient {
        tenant: caller.principal.tenant.clone(),
        kind: PrincipalKind::Client,
        client_id: client_id.clone(),
        name: spec.name.unwrap_or_else(|| client_id.clone()),
        role: spec.role,
        token_policy: spec.token_policy.as_str().to_owned(),
        token_ttl_seconds: ttl,
        write_policy,
        secret: Some(digest),
    };
    let now = state.clock.now();
    let audit = recorded(
        &state,
        &caller,
        "client.created",
        |c: &ClientRow| serde_json::json!({ "client_id": c.client_id, "role": c.role }),
    );
    let row = state.db(move |s| s.client_create(new, now, audit)).await?;
    Ok((
        StatusCode::CREATED,
        Json(ClientCreated {
            client: client_info(&row),
            client_secret,
        }),
    ))
}

pub async fn client_list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<ClientInfo>>> {
    caller.require(Permission::ClientsAdmin)?;
    let t = caller.principal.tenant.clone();
    let rows = state.db(move |s| s.client_list(&t)).await?;
    Ok(Json(rows.iter().map(client_info).collect()))
}

pub async fn client_get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ClientInfo>> {
    caller.require(Permission::ClientsAdmin)?;
    Ok(Json(client_info(&own_client(&state, &caller, id).await?)))
}

async fn set_disabled(
    state: AppState,
    caller: Caller,
    id: String,
    disabled: bool,
) -> ApiResult<Json<ClientInfo>> {
    caller.require(Permission::ClientsAdmin)?;
    let c = own_client(&state, &caller, id).await?;
    let cid = c.client_id.clone();
    let action = if disabled {
        "client.disabled"
    } else {
        "client.enabled"
    };
    let audit = recorded(
        &state,
        &caller,
        action,
        |c: &ClientRow| serde_json::json!({ "client_id": c.client_id }),
    );
    let row = state
        .db(move |s| s.client_set_disabled(&cid, disabled, audit))
        .await?;
    Ok(Json(client_info(&row)))
}

pub async fn client_disable(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ClientInfo>> {
    set_disabled(state, caller, id, true).await
}

pub async fn client_enable(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ClientInfo>> {
    set_disabled(state, caller, id, false).await
}

pub async fn client_rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<SecretRotated>> {
    caller.require(Permission::ClientsAdmin)?;
    let c = own_client(&state, &caller, id).await?;
    let overlap = rotation_overlap(&body, state.config.tokens.secret_overlap_seconds)?;
    let now = state.clock.now();
    let until = now + Duration::seconds(overlap as i64);
    let (client_secret, digest) = secret::generate("mcs_");
    let cid = c.client_id.clone();
    let audit = recorded(
        &state,
        &caller,
        "client.secret_rotated",
        move |c: &ClientRow| serde_json::json!({ "client_id": c.client_id, "overlap_seconds": overlap }),
    );
    let row = state
        .db(move |s| s.client_rotate_secret(&cid, digest, until, now, audit))
        .await?;
    Ok(Json(SecretRotated {
        client_id: row.client_id,
        client_secret,
        previous_secret_expires_at: Some(until),
    }))
}

pub fn mapping_info(m: &MappingRow) -> MappingInfo {
    let attributes = MappingDoc::parse(&m.document.to_string(), MappingFormat::Json)
        .map(|d| d.attributes())
        .unwrap_or_default();
    MappingInfo {
        name: m.name.clone(),
        version: m.version,
        created_at: m.created_at,
        created_by: m.created_by.clone(),
        attributes,
        document: m.document.clone(),
    }
}

fn valid_mapping_name(n: &str) -> bool {
    (1..=64).contains(&n.len())
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

pub async fn mapping_put(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<MappingInfo>)> {
    caller.require(Permission::MappingsWrite)?;
    if !valid_mapping_name(&name) {
        return Err(ApiError::bad_request(
            "invalid_mapping_name",
            "mapping name: 1 to 64 characters of letters, digits, '-', '_' and '.'",
        ));
    }
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let format = match ct.as_str() {
        "application/toml" | "text/toml" | "application/x-toml" => MappingFormat::Toml,
        "application/json" => MappingFormat::Json,
        _ => {
            return Err(ApiError::UnsupportedMediaType(
                "a mapping is sent as application/toml or application/json".into(),
            ))
        }
    };
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("invalid_encoding", "the mapping is not UTF-8 text"))?;
    let doc = MappingDoc::parse(text, format)
        .map_err(|e| ApiError::unprocessable("invalid_mapping", e.to_string()))?;
    let row = MappingRow {
        tenant: caller.principal.tenant.clone(),
        name,
        version: 0,
        document: doc.to_canonical_json(),
        created_at: state.clock.now(),
        created_by: caller.name(),
    };
    let audit = recorded(
        &state,
        &caller,
        "mapping.created",
        |m: &MappingRow| serde_json::json!({ "name": m.name, "version": m.version }),
    );
    let row = state.db(move |s| s.mapping_put(row, audit)).await?;
    Ok((StatusCode::CREATED, Json(mapping_info(&row))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionQuery {
    pub version: Option<i64>,
}

/// Mappings hold no personnel data: any principal of the tenant may read them.
pub async fn mapping_get(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<VersionQuery>,
) -> ApiResult<Json<MappingInfo>> {
    let t = caller.principal.tenant.clone();
    let row = state
        .db(move |s| s.mapping_get(&t, &name, q.version))
        .await?;
    Ok(Json(mapping_info(&row)))
}

pub async fn mapping_list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<MappingInfo>>> {
    let t = caller.principal.tenant.clone();
    let rows = state.db(move |s| s.mapping_list(&t)).await?;
    Ok(Json(rows.iter().map(mapping_info).collect()))
}

pub async fn mapping_versions(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<MappingInfo>>> {
    let t = caller.principal.tenant.clone();
    let rows = state.db(move |s| s.mapping_versions(&t, &name)).await?;
    Ok(Json(rows.iter().map(mapping_info).collect()))
}

/// The overlap a secret or key rotation asks for: the optional body
/// `{"overlap_seconds": N}` (no body: `default`), at most 30 days. Both
/// the old and the new credential are accepted for that long.
pub(crate) fn rotation_overlap(body: &[u8], default: u64) -> ApiResult<u64> {
    let req: RotateSecretRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RotateSecretRequest::default()
    } else {
        serde_json::from_slice(body).map_err(|_| {
            ApiError::bad_request(
                "invalid_body",
                "the body must be a JSON object with an optional overlap_seconds",
            )
        })?
    };
    let overlap = req.overlap_seconds.unwrap_or(default);
    if overlap > 30 * 86_400 {
        return Err(ApiError::unprocessable(
            "invalid_overlap",
            "overlap_seconds: at most 2592000 (30 days)",
        ));
    }
    Ok(overlap)
}
