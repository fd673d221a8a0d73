//! What the SCIM door changes (docs/scim.md): people written through the
//! one write path (`ops::people::write_from`, source `scim`), a SCIM
//! DELETE (terminated and unlinked, never removed), Groups as roles whose
//! membership is written person by person under a write policy narrowed
//! to the one role, and clients' SCIM tokens.
use crate::auth::Caller;
use crate::base::error::{ApiError, ApiResult};
use crate::base::state::AppState;
use crate::ops::audit::recorded;
use crate::ops::input::Overlap;
use crate::ops::people::write_from;
use muster_core::mapping::valid_role_name;
use muster_core::policy::{Permission, WritePolicy};
use muster_core::secret;
use muster_core::ExternalId;
use muster_proto::{ErrorCode, RowErrorInfo, SyncItem};
use muster_store::{
    AdminTokenRow, Audit, AuditDraft, GroupRow, GroupUpdate, NewScimToken, PersonRow, ScimLookup,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The audit source of every SCIM change.
pub(crate) const SOURCE: &str = "scim";

/// People written per transaction by a membership change.
const MEMBER_BATCH: usize = 500;

/// A refusal of the write gate as one error: the first row error's
/// message names the attribute or role, never the value.
fn refused(errors: Vec<RowErrorInfo>) -> ApiError {
    let forbidden = errors.iter().any(|e| {
        e.code == ErrorCode::AttributeNotPermitted.as_str()
            || e.code == ErrorCode::RoleNotPermitted.as_str()
    });
    ApiError::Unprocessable {
        code: if forbidden {
            ErrorCode::NotPermitted
        } else {
            ErrorCode::InvalidPerson
        },
        detail: "the User does not make a valid person; see errors".into(),
        errors,
    }
}

/// Writes the attributes of one person (`null` removes one) and, for a
/// person SCIM had deleted, gives it a new SCIM id. Returns the person as
/// stored.
pub(crate) async fn write_user(
    state: &AppState,
    caller: &Caller,
    external_id: &ExternalId,
    attrs: BTreeMap<String, Value>,
) -> ApiResult<PersonRow> {
    caller.require(Permission::ScimProvision)?;
    if !attrs.is_empty() {
        let item = SyncItem {
            external_id: external_id.to_string(),
            attributes: attrs,
            roles: None,
        };
        let mut results = write_from(state, caller, vec![item], SOURCE).await?;
        if let Some(r) = results.pop() {
            if r.status == "error" {
                return Err(refused(r.errors));
            }
        }
    }
    let (t, e) = (caller.principal.tenant.clone(), external_id.clone());
    let row = state.db_read(move |s| s.person_get(&t, &e)).await?;
    if row.scim_id.is_some() {
        return Ok(row);
    }
    let (t, e) = (caller.principal.tenant.clone(), external_id.clone());
    let audit = person_audit(state, caller, "person.scim_linked");
    state.db(move |s| s.scim_link(&t, &e, true, audit)).await
}

/// The audit entry of a change of a person's SCIM link.
fn person_audit(state: &AppState, caller: &Caller, action: &'static str) -> Audit<PersonRow> {
    let (tenant, at, principal, on_behalf_of) = (
        caller.principal.tenant.clone(),
        state.clock.now(),
        caller.name(),
        caller.on_behalf_of.clone(),
    );
    Box::new(move |p: &PersonRow| {
        vec![AuditDraft {
            tenant,
            at,
            principal,
            on_behalf_of,
            source: SOURCE.into(),
            action: action.into(),
            person: Some(p.external_id.to_string()),
            detail: json!({ "scim_id": p.scim_id }),
        }]
    })
}

/// SCIM DELETE of a User: Muster never deletes a person. The person is
/// terminated (as a snapshot import terminates the people a file left
/// out), and its SCIM id is taken away, so SCIM no longer finds it; its
/// history stays in the audit trail, and a later create with the same key
/// brings it back with a new id.
pub(crate) async fn delete_user(
    state: &AppState,
    caller: &Caller,
    person: &PersonRow,
) -> ApiResult<PersonRow> {
    let status = person
        .state
        .attrs
        .get("employment_status")
        .and_then(|v| v.as_str());
    if status != Some("terminated") {
        let attrs = BTreeMap::from([("employment_status".to_owned(), json!("terminated"))]);
        let item = SyncItem {
            external_id: person.external_id.to_string(),
            attributes: attrs,
            roles: None,
        };
        if let Some(r) = write_from(state, caller, vec![item], SOURCE).await?.pop() {
            if r.status == "error" {
                return Err(refused(r.errors));
            }
        }
    }
    let (t, e) = (caller.principal.tenant.clone(), person.external_id.clone());
    let audit = person_audit(state, caller, "person.scim_deleted");
    state.db(move |s| s.scim_link(&t, &e, false, audit)).await
}

/// A group (role) name: a valid role name the caller's write policy may
/// grant, else 403.
fn grantable(caller: &Caller, role: &str) -> ApiResult<()> {
    if !valid_role_name(role) {
        return Err(ApiError::unprocessable(
            ErrorCode::InvalidRole,
            "displayName: a Group is a role, and a role name is 1 to 64 letters, digits or '_.:-'",
        ));
    }
    if !caller.principal.write_policy.may_grant(role) {
        return Err(ApiError::Unprocessable {
            code: ErrorCode::NotPermitted,
            detail: format!(
                "client '{}' may not grant the role of this Group (its write policy's roles)",
                caller.principal.client_id
            ),
            errors: Vec::new(),
        });
    }
    Ok(())
}

fn group_detail(g: &GroupRow) -> Value {
    json!({ "id": g.id, "display_name": g.display_name, "external_id": g.external_id })
}

/// Creates a Group: a role the caller may grant; its name is unique in
/// the tenant.
pub(crate) async fn group_create(
    state: &AppState,
    caller: &Caller,
    display_name: &str,
    external_id: Option<String>,
) -> ApiResult<GroupRow> {
    caller.require(Permission::ScimProvision)?;
    grantable(caller, display_name)?;
    let now = state.clock.now();
    let g = GroupRow {
        tenant: caller.principal.tenant.clone(),
        id: uuid::Uuid::new_v4().to_string(),
        display_name: display_name.to_owned(),
        external_id,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    let audit = scim_recorded(state, caller, "scim_group.created");
    state.db(move |s| s.scim_group_create(g, audit)).await
}

/// [`recorded`] with the SCIM source.
fn scim_recorded(state: &AppState, caller: &Caller, action: &str) -> Audit<GroupRow> {
    let inner = recorded(state, caller, action, group_detail);
    Box::new(move |g| {
        let mut entries = inner(g);
        for e in &mut entries {
            e.source = SOURCE.into();
        }
        entries
    })
}

/// The people behind SCIM ids, as external ids; `strict`: an id that
/// names no User is an error naming `members.value`.
async fn member_ids(
    state: &AppState,
    caller: &Caller,
    ids: Vec<String>,
    strict: bool,
) -> ApiResult<Vec<String>> {
    let t = caller.principal.tenant.clone();
    let found = state
        .db(move |s| {
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let p = s.scim_find(&t, &ScimLookup::Id(id), 1)?.pop();
                out.push(p.map(|p| p.external_id.to_string()));
            }
            Ok(out)
        })
        .await?;
    if strict && found.iter().any(Option::is_none) {
        return Err(ApiError::unprocessable(
            ErrorCode::InvalidPerson,
            "members.value names no User",
        ));
    }
    Ok(found.into_iter().flatten().collect())
}

/// Grants (`grant`) or takes away `role` for these people, under the
/// caller's policy narrowed to that one role: no attribute and no other
/// role changes (`muster_core::person::apply`).
async fn set_role(
    state: &AppState,
    caller: &Caller,
    role: &str,
    people: Vec<String>,
    grant: bool,
) -> ApiResult<()> {
    let mut narrowed = caller.clone();
    narrowed.principal.write_policy = WritePolicy {
        attributes: Vec::new(),
        roles: vec![role.to_owned()],
    };
    let roles = if grant {
        vec![role.to_owned()]
    } else {
        Vec::new()
    };
    for chunk in people.chunks(MEMBER_BATCH) {
        let items = chunk
            .iter()
            .map(|e| SyncItem {
                external_id: e.clone(),
                attributes: BTreeMap::new(),
                roles: Some(roles.clone()),
            })
            .collect();
        for r in write_from(state, &narrowed, items, SOURCE).await? {
            if r.status == "error" {
                return Err(refused(r.errors));
            }
        }
    }
    Ok(())
}

/// The members of a role, page by page: the whole membership is never
/// held at once. Pages follow the external id, so a page whose people
/// lose the role meanwhile does not shift the next one.
struct MemberPages {
    role: String,
    after: Option<String>,
    done: bool,
}

impl MemberPages {
    fn of(role: &str) -> Self {
        MemberPages {
            role: role.to_owned(),
            after: None,
            done: false,
        }
    }

    /// The external ids of the next page; `None` after the last.
    async fn next(&mut self, state: &AppState, caller: &Caller) -> ApiResult<Option<Vec<String>>> {
        if self.done {
            return Ok(None);
        }
        let (t, r, a) = (
            caller.principal.tenant.clone(),
            self.role.clone(),
            self.after.clone(),
        );
        let page = state
            .db(move |s| s.scim_role_members(&t, &r, a.as_deref(), MEMBER_BATCH as u32))
            .await?;
        self.done = page.len() < MEMBER_BATCH;
        let ids: Vec<String> = page.iter().map(|p| p.external_id.to_string()).collect();
        self.after = ids.last().cloned();
        Ok(Some(ids))
    }
}

/// A change of a Group's members, in the terms of `muster_scim::GroupChange`.
pub(crate) enum Members {
    Add(Vec<String>),
    Remove(Vec<String>),
    RemoveAll,
    Replace(Vec<String>),
}

/// Applies a change of a Group's name, external id and members, then
/// counts one more version of the Group. A rename renames the role on
/// every member.
pub(crate) async fn group_change(
    state: &AppState,
    caller: &Caller,
    group: &GroupRow,
    rename: Option<String>,
    external_id: Option<Option<String>>,
    members: Vec<Members>,
) -> ApiResult<GroupRow> {
    caller.require(Permission::ScimProvision)?;
    grantable(caller, &group.display_name)?;
    let mut role = group.display_name.clone();
    if let Some(new) = rename.as_deref().filter(|n| *n != role) {
        grantable(caller, new)?;
        let taken = {
            let (t, n) = (caller.principal.tenant.clone(), new.to_owned());
            state
                .db(move |s| s.scim_group_list(&t))
                .await?
                .into_iter()
                .any(|g| g.display_name == n)
        };
        if taken {
            return Err(ApiError::Conflict(
                "displayName: another Group has this name".into(),
            ));
        }
        // Members move to the new role first, then the group is renamed.
        let new_role = new.to_owned();
        let mut pages = MemberPages::of(&role);
        while let Some(ids) = pages.next(state, caller).await? {
            set_role(state, caller, &new_role, ids.clone(), true).await?;
            set_role(state, caller, &role, ids, false).await?;
        }
        role = new_role;
    }
    for m in members {
        match m {
            Members::Add(ids) => {
                let people = member_ids(state, caller, ids, true).await?;
                set_role(state, caller, &role, people, true).await?;
            }
            Members::Remove(ids) => {
                let people = member_ids(state, caller, ids, false).await?;
                set_role(state, caller, &role, people, false).await?;
            }
            Members::RemoveAll => {
                let mut pages = MemberPages::of(&role);
                while let Some(ids) = pages.next(state, caller).await? {
                    set_role(state, caller, &role, ids, false).await?;
                }
            }
            Members::Replace(ids) => {
                let keep: BTreeSet<String> = member_ids(state, caller, ids, true)
                    .await?
                    .into_iter()
                    .collect();
                let mut pages = MemberPages::of(&role);
                while let Some(ids) = pages.next(state, caller).await? {
                    let gone = ids.into_iter().filter(|e| !keep.contains(e)).collect();
                    set_role(state, caller, &role, gone, false).await?;
                }
                set_role(state, caller, &role, keep.into_iter().collect(), true).await?;
            }
        }
    }
    let renamed = rename.is_some_and(|n| n != group.display_name);
    let audited = renamed || external_id.is_some();
    let change = GroupUpdate {
        display_name: renamed.then(|| role.clone()),
        external_id,
        if_version: None,
        now: state.clock.now(),
    };
    let audit: Audit<GroupRow> = if audited {
        scim_recorded(state, caller, "scim_group.updated")
    } else {
        // Only members changed: each person's change is in the trail.
        Box::new(|_| Vec::new())
    };
    let (t, id) = (caller.principal.tenant.clone(), group.id.clone());
    state
        .db(move |s| s.scim_group_update(&t, &id, change, audit))
        .await
}

/// Deletes a Group: the role is taken away from every member, then the
/// group goes.
pub(crate) async fn group_delete(
    state: &AppState,
    caller: &Caller,
    group: &GroupRow,
) -> ApiResult<GroupRow> {
    caller.require(Permission::ScimProvision)?;
    grantable(caller, &group.display_name)?;
    let role = group.display_name.clone();
    let mut pages = MemberPages::of(&role);
    while let Some(ids) = pages.next(state, caller).await? {
        set_role(state, caller, &role, ids, false).await?;
    }
    let audit = scim_recorded(state, caller, "scim_group.deleted");
    let (t, id) = (caller.principal.tenant.clone(), group.id.clone());
    state.db(move |s| s.scim_group_delete(&t, &id, audit)).await
}

/// Which SCIM attribute keys a client's people (docs/scim.md#keys).
pub(crate) const SCIM_KEYS: [&str; 3] = ["userName", "externalId", "employeeNumber"];

/// Mints a SCIM token for one of the tenant's clients (docs/scim.md#authentication):
/// shown once, stored as a digest, never expiring; the client's earlier
/// SCIM tokens keep working for the overlap. `key` sets which SCIM
/// attribute keys the client's people.
pub(crate) async fn token_rotate(
    state: &AppState,
    caller: &Caller,
    client_id: String,
    key: Option<String>,
    overlap: Overlap,
) -> ApiResult<(AdminTokenRow, String, chrono::DateTime<chrono::Utc>)> {
    caller.require(Permission::ClientsAdmin)?;
    let client = crate::ops::own_client(state, caller, client_id).await?;
    if key.as_deref().is_some_and(|k| !SCIM_KEYS.contains(&k)) {
        return Err(ApiError::unprocessable(
            ErrorCode::InvalidParameter,
            "key: userName, externalId or employeeNumber",
        ));
    }
    let now = state.clock.now();
    let until = crate::ops::admin_tokens::expiry(now, overlap.seconds());
    let (token, digest) = secret::generate("mst_");
    let new = NewScimToken {
        tenant: client.tenant.clone(),
        client_id: client.client_id.clone(),
        id: uuid::Uuid::now_v7().to_string(),
        digest,
        created_at: now,
        previous_until: until,
        key: key.clone(),
    };
    let seconds = overlap.seconds();
    let audit = recorded(
        state,
        caller,
        "client.scim_token_rotated",
        move |t: &AdminTokenRow| json!({ "id": t.id, "client_id": t.admin, "key": key, "overlap_seconds": seconds }),
    );
    let row = state.db(move |s| s.scim_token_rotate(new, audit)).await?;
    Ok((row, token, until))
}
