//! SCIM Groups are roles (docs/scim.md#groups): a Group's `displayName`
//! is the role's name and its members are the people who hold the role.
//! Member changes are written person by person through `ops::scim`, so
//! they obey the client's write policy (the roles it may grant) and land
//! in each person's history; a PATCH that adds or removes members never
//! reads the membership.
use super::*;
use crate::ops;
use crate::ops::scim::Members;
use axum::extract::{Path, RawQuery, State};
use muster_scim::schema::{get_ci, GROUP_SCHEMA};
use muster_scim::{GroupChange, PatchRequest, ResourceSchemas};
use muster_store::{GroupRow, PersonRow};
use serde_json::json;

/// A group by id, or 404.
async fn find(state: &AppState, caller: &Caller, id: &str) -> ScimResult<GroupRow> {
    let (t, id) = (caller.principal.tenant.clone(), id.to_owned());
    match state.db(move |s| s.scim_group_get(&t, &id)).await {
        Ok(g) => Ok(g),
        Err(ApiError::NotFound(_)) => Err(Fail(ScimError::status(404, "no Group with this id"))),
        Err(e) => Err(e.into()),
    }
}

/// The members of a group, at most `limit` (beyond it: `tooMany`).
async fn members(
    state: &AppState,
    caller: &Caller,
    base: &str,
    g: &GroupRow,
) -> ScimResult<Vec<Value>> {
    let limit = state.config.scim.max_scan;
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let (t, r, a) = (
            caller.principal.tenant.clone(),
            g.display_name.clone(),
            after.clone(),
        );
        let page: Vec<PersonRow> = state
            .db(move |s| s.scim_role_members(&t, &r, a.as_deref(), 1000))
            .await?;
        let n = page.len();
        after = page.last().map(|p| p.external_id.to_string());
        for p in page {
            let Some(id) = p.scim_id.clone() else {
                continue;
            };
            let display = p
                .state
                .attrs
                .get("display_name")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| p.external_id.to_string());
            out.push(json!({
                "value": id,
                "display": display,
                "type": "User",
                "$ref": format!("{base}/Users/{id}"),
            }));
        }
        if out.len() as u64 > limit {
            return Err(Fail(ScimError::too_many(format!(
                "the Group has more than scim.max_scan ({limit}) members; \
                 ask with excludedAttributes=members"
            ))));
        }
        if n < 1000 {
            return Ok(out);
        }
    }
}

/// The group as a SCIM Group; its members only when `with_members`.
async fn render(
    state: &AppState,
    caller: &Caller,
    base: &str,
    g: &GroupRow,
    with_members: bool,
) -> ScimResult<Value> {
    let mut r = json!({
        "schemas": [GROUP_SCHEMA],
        "id": g.id,
        "displayName": g.display_name,
        "meta": {
            "resourceType": "Group",
            "created": g.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "lastModified": g.updated_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "version": etag(g.version),
            "location": format!("{base}/Groups/{}", g.id),
        },
    });
    if let Some(e) = &g.external_id {
        r["externalId"] = json!(e);
    }
    if with_members {
        let m = members(state, caller, base, g).await?;
        if !m.is_empty() {
            r["members"] = Value::Array(m);
        }
    }
    Ok(r)
}

fn wants_members(p: &muster_scim::Projection) -> bool {
    muster_scim::projection::is_returned(&ResourceSchemas::group(), p, "members")
}

/// What a whole Group body (create, PUT) says: its name, external id and
/// members' ids.
struct GroupBody {
    display_name: String,
    external_id: Option<String>,
    members: Option<Vec<String>>,
}

fn group_body(body: &Value) -> ScimResult<GroupBody> {
    let obj = body.as_object().cloned().unwrap_or_default();
    let display_name = get_ci(&obj, "displayName")
        .and_then(|(_, v)| v.as_str())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Fail(ScimError::invalid_value("displayName is required")))?
        .to_owned();
    let external_id = match get_ci(&obj, "externalId").map(|(_, v)| v) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(Fail(ScimError::invalid_value(
                "externalId must be a string",
            )))
        }
    };
    let members = match get_ci(&obj, "members").map(|(_, v)| v) {
        None | Some(Value::Null) => None,
        Some(Value::Array(list)) => Some(
            list.iter()
                .map(|m| {
                    m.get("value")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .ok_or_else(|| {
                            Fail(ScimError::invalid_value("members.value must be a string"))
                        })
                })
                .collect::<ScimResult<Vec<_>>>()?,
        ),
        Some(_) => return Err(Fail(ScimError::invalid_value("members must be a list"))),
    };
    if members
        .as_ref()
        .is_some_and(|m| m.len() > MAX_MEMBER_CHANGES)
    {
        return Err(Fail(ScimError::too_many(format!(
            "more than {MAX_MEMBER_CHANGES} members in one request"
        ))));
    }
    Ok(GroupBody {
        display_name,
        external_id,
        members,
    })
}

/// Most member ids one request may name.
const MAX_MEMBER_CHANGES: usize = 100_000;

/// Creates a Group (a role the client may grant) with its members.
pub(crate) async fn create_group(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    body: &Value,
) -> ScimResult<Value> {
    let b = group_body(body)?;
    let g = ops::scim::group_create(state, caller, &b.display_name, b.external_id).await?;
    let g = match b.members.filter(|m| !m.is_empty()) {
        Some(ids) => {
            ops::scim::group_change(state, caller, &g, None, None, vec![Members::Add(ids)]).await?
        }
        None => g,
    };
    render(state, caller, &base_url(state, headers), &g, true).await
}

/// Replaces a Group (PUT): name, external id and exactly these members.
pub(crate) async fn replace_group(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    id: &str,
    body: &Value,
) -> ScimResult<Value> {
    let g = find(state, caller, id).await?;
    check_if_match(headers, &etag(g.version))?;
    let b = group_body(body)?;
    let members = match b.members {
        Some(ids) => Members::Replace(ids),
        None => Members::RemoveAll,
    };
    let g = ops::scim::group_change(
        state,
        caller,
        &g,
        Some(b.display_name),
        Some(b.external_id),
        vec![members],
    )
    .await?;
    render(state, caller, &base_url(state, headers), &g, true).await
}

/// Applies a PATCH to a Group.
pub(crate) async fn patch_group(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    id: &str,
    body: &Value,
) -> ScimResult<GroupRow> {
    let g = find(state, caller, id).await?;
    check_if_match(headers, &etag(g.version))?;
    let req = PatchRequest::from_json(body)?;
    let mut rename = None;
    let mut external_id = None;
    let mut members = Vec::new();
    let mut named = 0usize;
    for c in muster_scim::group_changes(&req.operations, &g.id)? {
        match c {
            GroupChange::SetDisplayName(n) => rename = Some(n),
            GroupChange::SetExternalId(e) => external_id = Some(e),
            GroupChange::AddMembers(ids) => {
                named += ids.len();
                members.push(Members::Add(ids));
            }
            GroupChange::RemoveMembers(ids) => {
                named += ids.len();
                members.push(Members::Remove(ids));
            }
            GroupChange::RemoveAllMembers => members.push(Members::RemoveAll),
            GroupChange::ReplaceMembers(ids) => {
                named += ids.len();
                members.push(Members::Replace(ids));
            }
        }
    }
    if named > MAX_MEMBER_CHANGES {
        return Err(Fail(ScimError::too_many(format!(
            "more than {MAX_MEMBER_CHANGES} members in one request"
        ))));
    }
    Ok(ops::scim::group_change(state, caller, &g, rename, external_id, members).await?)
}

pub(crate) async fn delete_group(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    id: &str,
) -> ScimResult<()> {
    let g = find(state, caller, id).await?;
    check_if_match(headers, &etag(g.version))?;
    ops::scim::group_delete(state, caller, &g).await?;
    Ok(())
}

pub(crate) async fn create(
    State(state): State<AppState>,
    ScimCaller(caller): ScimCaller,
    req: Request,
) -> ScimResult<Answer> {
    let (headers, body) = body_of(req, &state).await?;
    let g = create_group(&state, &caller, &headers, &body).await?;
    Ok(Answer::resource(StatusCode::CREATED, g))
}

pub(crate) async fn read(
    State(state): State<AppState>,
    ScimCaller(caller): ScimCaller,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ScimResult<Response> {
    let (_, projection) = projection_of(query.as_deref())?;
    let g = find(&state, &caller, &id).await?;
    let tag = etag(g.version);
    if let Some(r) = not_modified(&headers, &tag) {
        return Ok(r);
    }
    let base = base_url(&state, &headers);
    let body = render(&state, &caller, &base, &g, wants_members(&projection)).await?;
    let mut a = Answer::resource(StatusCode::OK, body);
    a.body = a
        .body
        .map(|b| muster_scim::project(&b, &ResourceSchemas::group(), &projection));
    Ok(a.into_response())
}

pub(crate) async fn replace(
    State(state): State<AppState>,
    ScimCaller(caller): ScimCaller,
    Path(id): Path<String>,
    req: Request,
) -> ScimResult<Answer> {
    let (headers, body) = body_of(req, &state).await?;
    let g = replace_group(&state, &caller, &headers, &id, &body).await?;
    Ok(Answer::resource(StatusCode::OK, g))
}

pub(crate) async fn patch(
    State(state): State<AppState>,
    ScimCaller(caller): ScimCaller,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    req: Request,
) -> ScimResult<Answer> {
    let (q, projection) = projection_of(query.as_deref())?;
    let (headers, body) = body_of(req, &state).await?;
    let g = patch_group(&state, &caller, &headers, &id, &body).await?;
    // Without `attributes` or `excludedAttributes` the answer is 204 (RFC
    // 7644 §3.5.2, as Entra ID and Okta expect for Groups): a large group
    // is not read back for a client that reads nothing.
    if q.attributes.is_none() && q.excluded_attributes.is_none() {
        let mut a = Answer::no_content();
        a.etag = Some(etag(g.version));
        return Ok(a);
    }
    let with_members = wants_members(&projection);
    let base = base_url(&state, &headers);
    let body = render(&state, &caller, &base, &g, with_members).await?;
    let body = muster_scim::project(&body, &ResourceSchemas::group(), &projection);
    Ok(Answer::resource(StatusCode::OK, body))
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    ScimCaller(caller): ScimCaller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ScimResult<Answer> {
    delete_group(&state, &caller, &headers, &id).await?;
    Ok(Answer::no_content())
}

pub(crate) async fn list(
    State(state): State<AppState>,
    ScimCaller(caller): ScimCaller,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ScimResult<Answer> {
    let search = Search::from_query(list_query(query.as_deref())?)?;
    answer_search(&state, &caller, &headers, search).await
}

pub(crate) async fn search(
    State(state): State<AppState>,
    ScimCaller(caller): ScimCaller,
    req: Request,
) -> ScimResult<Answer> {
    let (headers, body) = body_of(req, &state).await?;
    answer_search(&state, &caller, &headers, Search::from_body(body)?).await
}

/// A list of Groups: a tenant has few roles, so the filter runs on all
/// of them; members are read only when the filter or the answer needs
/// them.
async fn answer_search(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    search: Search,
) -> ScimResult<Answer> {
    let schemas = ResourceSchemas::group();
    let sort = match &search.sort {
        Some((by, order)) => Some(muster_scim::SortBy::new(by, order.as_deref(), &schemas)?),
        None => None,
    };
    let filter_members = search
        .filter
        .as_ref()
        .is_some_and(|f| f.to_string().to_ascii_lowercase().contains("members"));
    let with_members = filter_members || wants_members(&search.projection);
    let t = caller.principal.tenant.clone();
    let groups = state.db(move |s| s.scim_group_list(&t)).await?;
    let base = base_url(state, headers);
    let mut matched = Vec::new();
    for g in &groups {
        let r = render(state, caller, &base, g, with_members).await?;
        let keep = match &search.filter {
            Some(f) => muster_scim::filter::eval::matches(f, &r, &schemas)?,
            None => true,
        };
        if keep {
            matched.push(r);
        }
    }
    if let Some(s) = &sort {
        s.sort(&mut matched, &schemas);
    }
    let total = matched.len() as u64;
    let page = matched
        .into_iter()
        .skip((search.start - 1) as usize)
        .take(search.count as usize)
        .map(|g| muster_scim::project(&g, &schemas, &search.projection))
        .collect();
    Ok(users::list_answer(page, total, search.start))
}
