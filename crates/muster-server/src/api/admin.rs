//! The admin API: tenants, integration clients and mappings. Each handler
//! parses its input and calls the operation (`ops::tenants`,
//! `ops::clients`, `ops::mappings`).
use crate::auth::Caller;
use crate::base::error::{ApiError, ApiResult};
use crate::base::state::AppState;
use crate::http::json::JsonBody;
use crate::http::json::QueryParams;
use crate::ops::clients::{self, ClientInput};
use crate::ops::input::{
    read_policy_info, CheckedReadPolicy, CheckedWritePolicy, ClientId, ClientRole, MappingName,
    Overlap, TokenTtl,
};
use crate::ops::{mappings, own_client, require_operator, tenants};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use muster_core::mapping::{MappingDoc, MappingFormat};
use muster_core::policy::{role_permissions, Permission};
use muster_core::TenantId;
use muster_proto::*;
use muster_store::{ClientRow, MappingRow, TenantRow};
use serde::Deserialize;

fn tenant_info(t: TenantRow) -> TenantInfo {
    TenantInfo {
        id: t.id.to_string(),
        name: t.name,
        created_at: t.created_at,
    }
}

pub async fn tenant_create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(spec): JsonBody<TenantSpec>,
) -> ApiResult<(StatusCode, Json<TenantCreated>)> {
    let id = TenantId::parse(&spec.id)
        .map_err(|e| ApiError::unprocessable(ErrorCode::InvalidTenantId, e.to_string()))?;
    let (row, admin_token) = tenants::create(&state, &caller, id, spec.name).await?;
    Ok((
        StatusCode::CREATED,
        Json(TenantCreated {
            tenant: tenant_info(row),
            admin_token,
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
        read_policy: read_policy_info(&c.read_policy),
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

pub async fn client_create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(spec): JsonBody<ClientSpec>,
) -> ApiResult<(StatusCode, Json<ClientCreated>)> {
    let input = ClientInput {
        role: ClientRole::parse(&spec.role)?,
        client_id: match spec.client_id {
            Some(id) => ClientId::parse(&id).ok_or_else(|| {
                ApiError::unprocessable(
                    ErrorCode::InvalidClientId,
                    format!("client_id: {}", ClientId::RULE),
                )
            })?,
            None => ClientId::generate(),
        },
        token_ttl: TokenTtl::parse(
            spec.token_ttl_seconds
                .unwrap_or(state.config.tokens.default_ttl_seconds),
        )?,
        write_policy: CheckedWritePolicy::parse(&spec.write_policy)?,
        read_policy: CheckedReadPolicy::parse(&spec.read_policy.unwrap_or_default())?,
        token_policy: spec.token_policy,
        name: spec.name,
    };
    let (row, client_secret) = clients::create(&state, &caller, input).await?;
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

/// `GET /api/v1/clients/{id}/read-policy`.
pub async fn read_policy_get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ReadPolicyInfo>> {
    caller.require(Permission::ClientsAdmin)?;
    let c = own_client(&state, &caller, id).await?;
    Ok(Json(read_policy_info(&c.read_policy)))
}

/// `PUT /api/v1/clients/{id}/read-policy`.
pub async fn read_policy_put(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(info): JsonBody<ReadPolicyInfo>,
) -> ApiResult<Json<ReadPolicyInfo>> {
    let policy = CheckedReadPolicy::parse(&info)?;
    let c = clients::set_read_policy(&state, &caller, id, policy).await?;
    Ok(Json(read_policy_info(&c.read_policy)))
}

pub async fn client_disable(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ClientInfo>> {
    Ok(Json(client_info(
        &clients::set_disabled(&state, &caller, id, true).await?,
    )))
}

pub async fn client_enable(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ClientInfo>> {
    Ok(Json(client_info(
        &clients::set_disabled(&state, &caller, id, false).await?,
    )))
}

pub async fn client_rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<SecretRotated>> {
    let overlap = Overlap::from_body(&body, state.config.tokens.secret_overlap_seconds)?;
    let (row, client_secret, until) = clients::rotate_secret(&state, &caller, id, overlap).await?;
    Ok(Json(SecretRotated {
        client_id: row.client_id,
        client_secret,
        previous_secret_expires_at: Some(until),
    }))
}

/// `POST /clients/{client_id}/scim-token`: a new SCIM token for the
/// client's identity provider (docs/scim.md#authentication).
pub async fn client_scim_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<(axum::http::StatusCode, Json<muster_proto::ScimTokenCreated>)> {
    let req: muster_proto::ScimTokenRequest = if body.iter().all(u8::is_ascii_whitespace) {
        Default::default()
    } else {
        serde_json::from_slice(&body).map_err(|_| {
            ApiError::bad_request(
                ErrorCode::InvalidBody,
                "the body must be a JSON object with optional overlap_seconds and key",
            )
        })?
    };
    let overlap = crate::ops::input::Overlap::of(
        req.overlap_seconds,
        state.config.tokens.secret_overlap_seconds,
    )?;
    let (row, token, until) =
        crate::ops::scim::token_rotate(&state, &caller, id.clone(), req.key, overlap).await?;
    let key = crate::ops::own_client(&state, &caller, id)
        .await?
        .scim_key
        .unwrap_or_else(|| "userName".into());
    Ok((
        axum::http::StatusCode::CREATED,
        Json(muster_proto::ScimTokenCreated {
            client_id: row.admin,
            token_id: row.id,
            token,
            key,
            previous_tokens_expire_at: until,
        }),
    ))
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

pub async fn mapping_put(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<MappingInfo>)> {
    let name = MappingName::parse(&name)?;
    let ct = crate::http::media_type(&headers);
    let format = match ct.as_str() {
        "application/toml" | "text/toml" | "application/x-toml" => MappingFormat::Toml,
        "application/json" => MappingFormat::Json,
        _ => {
            return Err(ApiError::UnsupportedMediaType(
                "a mapping is sent as application/toml or application/json".into(),
            ))
        }
    };
    let text = std::str::from_utf8(&body).map_err(|_| {
        ApiError::bad_request(ErrorCode::InvalidEncoding, "the mapping is not UTF-8 text")
    })?;
    let doc = MappingDoc::parse(text, format)
        .map_err(|e| ApiError::unprocessable(ErrorCode::InvalidMapping, e.to_string()))?;
    if let Some(label) = doc.file().encoding {
        if muster_intake::text::encoding_for(&label).is_none() {
            return Err(ApiError::unprocessable(
                ErrorCode::InvalidMapping,
                "file.encoding: not an encoding label (utf-8, windows-1252, iso-8859-1, utf-16le, ...)",
            ));
        }
    }
    let row = mappings::put(&state, &caller, name, doc).await?;
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
    QueryParams(q): QueryParams<VersionQuery>,
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
