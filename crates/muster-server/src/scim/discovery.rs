//! Discovery (RFC 7644 §4, RFC 7643 §5-7): what this service provider
//! supports, the schemas of Users (with the tenant's own attributes in
//! Muster's extension) and Groups, and the two resource types. Each
//! answer depends on the caller's tenant, so discovery is authenticated
//! like the rest of the door.
use super::users::{user_schemas, UserSchemas};
use super::*;
use axum::extract::{Path, State};
use muster_scim::schema::{
    ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, MUSTER_USER_EXTENSION, USER_SCHEMA,
};
use muster_scim::ResourceSchemas;
use serde_json::json;

const SPC_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";

/// `meta` of a discovery resource: its type and location; the version is
/// the gateway's, which changes with what it supports.
fn meta(resource_type: &str, location: String) -> Value {
    json!({
        "resourceType": resource_type,
        "location": location,
        "version": format!("W/\"{}\"", env!("CARGO_PKG_VERSION")),
    })
}

pub(crate) async fn service_provider_config(
    State(state): State<AppState>,
    ScimCaller(_caller): ScimCaller,
    headers: HeaderMap,
) -> ScimResult<Answer> {
    let base = base_url(&state, &headers);
    Ok(Answer::ok(json!({
        "schemas": [SPC_SCHEMA],
        "patch": { "supported": true },
        "bulk": {
            "supported": true,
            "maxOperations": MAX_BULK_OPERATIONS,
            "maxPayloadSize": state.config.limits.max_json_bytes,
        },
        "filter": { "supported": true, "maxResults": MAX_RESULTS },
        "changePassword": { "supported": false },
        "sort": { "supported": true },
        "etag": { "supported": true },
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "A SCIM token of the client (muster admin client scim-token), \
                            or an access token from the gateway's /oauth2/token \
                            (client credentials, RFC 6749) of a client whose role \
                            has scim:provision.",
            "specUri": "https://www.rfc-editor.org/info/rfc6750",
            "primary": true,
        }],
        "meta": meta("ServiceProviderConfig", format!("{base}/ServiceProviderConfig")),
    })))
}

/// Every schema the tenant's resources use, with `meta`.
fn all_schemas(us: &UserSchemas, base: &str) -> Vec<Value> {
    let mut out = us.schemas.to_resources();
    out.extend(ResourceSchemas::group().to_resources());
    for s in &mut out {
        let id = s["id"].as_str().unwrap_or_default().to_owned();
        s["meta"] = meta("Schema", format!("{base}/Schemas/{id}"));
    }
    out
}

pub(crate) async fn schemas(
    State(state): State<AppState>,
    ScimCaller(caller): ScimCaller,
    headers: HeaderMap,
) -> ScimResult<Answer> {
    let us = user_schemas(&state, &caller.principal.tenant).await?;
    let all = all_schemas(&us, &base_url(&state, &headers));
    let n = all.len() as u64;
    Ok(users::list_answer(all, n, 1))
}

pub(crate) async fn schema(
    State(state): State<AppState>,
    ScimCaller(caller): ScimCaller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ScimResult<Answer> {
    let us = user_schemas(&state, &caller.principal.tenant).await?;
    all_schemas(&us, &base_url(&state, &headers))
        .into_iter()
        .find(|s| {
            s["id"]
                .as_str()
                .is_some_and(|i| i.eq_ignore_ascii_case(&id))
        })
        .map(Answer::ok)
        .ok_or_else(|| Fail(ScimError::status(404, "no such schema")))
}

fn all_resource_types(base: &str) -> Vec<Value> {
    vec![
        json!({
            "schemas": [RESOURCE_TYPE_SCHEMA],
            "id": "User",
            "name": "User",
            "endpoint": "/Users",
            "description": "A person: core User, Enterprise User and Muster's extension",
            "schema": USER_SCHEMA,
            "schemaExtensions": [
                { "schema": ENTERPRISE_USER_SCHEMA, "required": false },
                { "schema": MUSTER_USER_EXTENSION, "required": false },
            ],
            "meta": meta("ResourceType", format!("{base}/ResourceTypes/User")),
        }),
        json!({
            "schemas": [RESOURCE_TYPE_SCHEMA],
            "id": "Group",
            "name": "Group",
            "endpoint": "/Groups",
            "description": "A role; its members are the people who hold it",
            "schema": GROUP_SCHEMA,
            "schemaExtensions": [],
            "meta": meta("ResourceType", format!("{base}/ResourceTypes/Group")),
        }),
    ]
}

pub(crate) async fn resource_types(
    State(state): State<AppState>,
    ScimCaller(_caller): ScimCaller,
    headers: HeaderMap,
) -> ScimResult<Answer> {
    let all = all_resource_types(&base_url(&state, &headers));
    let n = all.len() as u64;
    Ok(users::list_answer(all, n, 1))
}

pub(crate) async fn resource_type(
    State(state): State<AppState>,
    ScimCaller(_caller): ScimCaller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ScimResult<Answer> {
    all_resource_types(&base_url(&state, &headers))
        .into_iter()
        .find(|r| {
            r["id"]
                .as_str()
                .is_some_and(|i| i.eq_ignore_ascii_case(&id))
        })
        .map(Answer::ok)
        .ok_or_else(|| Fail(ScimError::status(404, "no such resource type")))
}
