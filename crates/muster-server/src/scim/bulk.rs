//! `POST /Bulk` (RFC 7644 §3.7): up to [`MAX_BULK_OPERATIONS`] creates,
//! replaces, patches and deletes of Users and Groups in one request, run
//! in an order that creates every `bulkId` before it is referred to, each
//! through the same code as its single request; `failOnErrors` stops the
//! run after that many failures.
use super::*;
use axum::extract::State;
use muster_scim::messages::{bulk_order, resolve_bulk_ids, BulkOperationResponse, BULK_REQUEST};
use muster_scim::{BulkRequest, BulkResponse};
use std::collections::HashMap;

/// What one operation does, read from its method and path.
enum Target {
    Create(Kind),
    One(Kind, String),
}

#[derive(Clone, Copy)]
enum Kind {
    Users,
    Groups,
}

fn target(method: &str, path: &str) -> ScimResult<Target> {
    let p = path.trim().trim_start_matches('/');
    let (kind, rest) = match p.split_once('/') {
        Some((k, id)) => (k, Some(id)),
        None => (p, None),
    };
    let kind = match kind {
        "Users" => Kind::Users,
        "Groups" => Kind::Groups,
        _ => {
            return Err(Fail(ScimError::invalid_path(
                "path must be /Users, /Groups, /Users/{id} or /Groups/{id}",
            )))
        }
    };
    match (method, rest) {
        ("POST", None) => Ok(Target::Create(kind)),
        ("PUT" | "PATCH" | "DELETE", Some(id)) if !id.is_empty() && !id.contains('/') => {
            Ok(Target::One(kind, id.to_owned()))
        }
        _ => Err(Fail(ScimError::invalid_syntax(
            "method must be POST on /Users or /Groups, or PUT, PATCH or DELETE on one resource",
        ))),
    }
}

/// Runs one operation: the status and, for a resource it wrote, the
/// resource.
async fn run(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    method: &str,
    t: Target,
    data: Option<&Value>,
) -> ScimResult<(StatusCode, Option<Value>)> {
    let need = |d: Option<&Value>| -> ScimResult<Value> {
        match d {
            Some(v) if v.is_object() => Ok(v.clone()),
            _ => Err(Fail(ScimError::invalid_syntax(
                "this operation needs its data, a JSON object",
            ))),
        }
    };
    Ok(match (method, t) {
        ("POST", Target::Create(Kind::Users)) => {
            let u = users::create_user(state, caller, headers, &need(data)?).await?;
            (StatusCode::CREATED, Some(u))
        }
        ("POST", Target::Create(Kind::Groups)) => {
            let g = groups::create_group(state, caller, headers, &need(data)?).await?;
            (StatusCode::CREATED, Some(g))
        }
        ("PUT", Target::One(Kind::Users, id)) => {
            let u = users::replace_user(state, caller, headers, &id, &need(data)?).await?;
            (StatusCode::OK, Some(u))
        }
        ("PUT", Target::One(Kind::Groups, id)) => {
            let g = groups::replace_group(state, caller, headers, &id, &need(data)?).await?;
            (StatusCode::OK, Some(g))
        }
        ("PATCH", Target::One(Kind::Users, id)) => {
            let u = users::patch_user(state, caller, headers, &id, &need(data)?).await?;
            (StatusCode::OK, Some(u))
        }
        ("PATCH", Target::One(Kind::Groups, id)) => {
            let g = groups::patch_group(state, caller, headers, &id, &need(data)?).await?;
            let version = etag(g.version);
            let location = format!("{}/Groups/{}", base_url(state, headers), g.id);
            let meta = serde_json::json!({"meta": {"version": version, "location": location}});
            (StatusCode::OK, Some(meta))
        }
        ("DELETE", Target::One(Kind::Users, id)) => {
            users::delete_user(state, caller, headers, &id).await?;
            (StatusCode::NO_CONTENT, None)
        }
        ("DELETE", Target::One(Kind::Groups, id)) => {
            groups::delete_group(state, caller, headers, &id).await?;
            (StatusCode::NO_CONTENT, None)
        }
        _ => {
            return Err(Fail(ScimError::invalid_syntax(
                "unsupported bulk operation",
            )));
        }
    })
}

pub(crate) async fn bulk(
    State(state): State<AppState>,
    ScimCaller(caller): ScimCaller,
    req: Request,
) -> ScimResult<Answer> {
    let (headers, body) = body_of(req, &state).await?;
    let r: BulkRequest = serde_json::from_value(body).map_err(|_| {
        Fail(ScimError::invalid_syntax(
            "the body is not a BulkRequest (RFC 7644 section 3.7)",
        ))
    })?;
    if !r
        .schemas
        .iter()
        .any(|s| s.eq_ignore_ascii_case(BULK_REQUEST))
    {
        return Err(Fail(ScimError::invalid_syntax(
            "schemas must list urn:ietf:params:scim:api:messages:2.0:BulkRequest",
        )));
    }
    if r.operations.len() > MAX_BULK_OPERATIONS {
        return Err(Fail(ScimError::status(
            413,
            format!("more than {MAX_BULK_OPERATIONS} operations (bulk.maxOperations)"),
        )));
    }
    let order = bulk_order(&r.operations)?;
    let fail_on = r.fail_on_errors.filter(|n| *n > 0);
    let mut created: HashMap<String, String> = HashMap::new();
    let mut results = Vec::with_capacity(order.len());
    let mut errors = 0u32;
    for i in order {
        let op = &r.operations[i];
        let method = op.method.trim().to_ascii_uppercase();
        let outcome: ScimResult<(StatusCode, Option<Value>)> = async {
            let mut path = Value::String(op.path.clone());
            // A path may name a resource by its bulkId ("/Users/bulkId:x").
            if let Some((head, id)) = op.path.rsplit_once('/') {
                let mut v = Value::String(id.to_owned());
                resolve_bulk_ids(&mut v, &created)?;
                path = Value::String(format!("{head}/{}", v.as_str().unwrap_or_default()));
            }
            let t = target(&method, path.as_str().unwrap_or_default())?;
            let mut data = op.data.clone();
            if let Some(d) = data.as_mut() {
                resolve_bulk_ids(d, &created)?;
            }
            let mut h = headers.clone();
            h.remove(header::IF_MATCH);
            if let Some(v) = op
                .version
                .as_deref()
                .and_then(|v| HeaderValue::from_str(v).ok())
            {
                h.insert(header::IF_MATCH, v);
            }
            run(&state, &caller, &h, &method, t, data.as_ref()).await
        }
        .await;
        match outcome {
            Ok((status, resource)) => {
                let meta = resource.as_ref().and_then(|r| r.get("meta"));
                let text = |k: &str| meta.and_then(|m| m.get(k)).and_then(Value::as_str);
                if let (Some(bid), Some(id)) = (
                    op.bulk_id.as_ref(),
                    resource
                        .as_ref()
                        .and_then(|r| r.get("id"))
                        .and_then(Value::as_str),
                ) {
                    created.insert(bid.clone(), id.to_owned());
                }
                results.push(BulkOperationResponse {
                    location: text("location").map(str::to_owned),
                    method: method.clone(),
                    bulk_id: op.bulk_id.clone(),
                    version: text("version").map(str::to_owned),
                    status: status.as_u16().to_string(),
                    response: None,
                });
            }
            Err(Fail(e)) => {
                errors += 1;
                results.push(BulkOperationResponse::failed(
                    &method,
                    op.bulk_id.clone(),
                    &e,
                ));
                if fail_on.is_some_and(|n| errors >= n) {
                    break;
                }
            }
        }
    }
    let body = serde_json::to_value(BulkResponse::new(results)).unwrap_or_default();
    Ok(Answer::ok(body))
}
