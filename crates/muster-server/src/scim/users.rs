//! SCIM Users are people (docs/scim.md#users). A person shows as a User
//! with the core schema, the enterprise extension and Muster's extension;
//! a User written over SCIM becomes person attributes, and what the
//! person schema has no place for is kept verbatim in `scim_extra`, so an
//! identity provider reads back what it wrote.
use super::*;
use crate::ops;
use axum::extract::{Path, RawQuery, State};
use muster_core::schema::{core_type, valid_custom_name, AttrType as PersonType};
use muster_scim::schema::{
    custom_extension, AttrType, CustomAttr, ENTERPRISE_USER_SCHEMA, MUSTER_USER_EXTENSION,
    USER_SCHEMA,
};
use muster_scim::{PatchOperation, PatchRequest, ResourceSchemas};
use muster_store::{scim_attrs, PersonRow, ScimLookup};
use serde_json::{json, Map};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The attribute that keeps what a SCIM client wrote and the person
/// schema has no place for (JSON text).
pub(crate) use muster_core::schema::SCIM_EXTRA;

/// One SCIM attribute that is a person attribute: (extension URN or core,
/// attribute, sub-attribute, person attribute).
type Mapped = (
    Option<&'static str>,
    &'static str,
    Option<&'static str>,
    &'static str,
);

const MAPPED: &[Mapped] = &[
    (None, "userName", None, scim_attrs::USER_NAME),
    (None, "externalId", None, scim_attrs::EXTERNAL_ID),
    (None, "name", Some("givenName"), "given_name"),
    (None, "name", Some("familyName"), "family_name"),
    (None, "displayName", None, "display_name"),
    (None, "title", None, "job_title"),
    (
        Some(ENTERPRISE_USER_SCHEMA),
        "employeeNumber",
        None,
        scim_attrs::EMPLOYEE_NUMBER,
    ),
    (
        Some(ENTERPRISE_USER_SCHEMA),
        "department",
        None,
        "department",
    ),
    (
        Some(ENTERPRISE_USER_SCHEMA),
        "costCenter",
        None,
        "cost_center",
    ),
    (
        Some(ENTERPRISE_USER_SCHEMA),
        "organization",
        None,
        "organization",
    ),
    (Some(ENTERPRISE_USER_SCHEMA), "division", None, "division"),
];

/// The person attributes of [`MAPPED`], in its order.
pub(crate) const MAPPED_ATTRS: [&str; MAPPED.len()] = {
    let mut out = [""; MAPPED.len()];
    let mut i = 0;
    while i < MAPPED.len() {
        out[i] = MAPPED[i].3;
        i += 1;
    }
    out
};

/// Person attributes with a place of their own in the User (the mapped
/// ones, `email`, `employment_status` through `active`, the manager).
fn has_scim_place(attr: &str) -> bool {
    MAPPED.iter().any(|m| m.3 == attr)
        || matches!(attr, "email" | muster_core::schema::MANAGER | SCIM_EXTRA)
}

/// The SCIM path of a person attribute, for error details.
pub(crate) fn scim_name(attr: &str) -> String {
    if let Some((urn, name, sub, _)) = MAPPED.iter().find(|m| m.3 == attr) {
        let path = match sub {
            Some(sub) => format!("{name}.{sub}"),
            None => (*name).to_owned(),
        };
        return match urn {
            Some(urn) => format!("{urn}:{path}"),
            None => path,
        };
    }
    match attr {
        "email" => "emails.value".into(),
        muster_core::schema::MANAGER => format!("{ENTERPRISE_USER_SCHEMA}:manager"),
        SCIM_EXTRA => "the attributes Muster keeps as given".into(),
        "roles" => "groups".into(),
        other => format!("{MUSTER_USER_EXTENSION}:{other}"),
    }
}

/// The core person attributes the User schemas have no place for; they
/// are in Muster's extension under their own names. `location` is
/// written like any other; the dates are the HR system's and read-only
/// here. The status is not repeated: `active` shows and sets it.
const MUSTER_CORE: [&str; 3] = ["location", "hire_date", "termination_date"];

/// The [`MUSTER_CORE`] attributes a SCIM client reads but never writes.
const MUSTER_READ_ONLY: [&str; 2] = ["hire_date", "termination_date"];

pub(crate) fn is_read_only(attr: &str) -> bool {
    MUSTER_READ_ONLY.contains(&attr)
}

/// How a tenant's Users look: the schemas (with Muster's extension of the
/// tenant's own attributes) and that extension's attributes.
pub(crate) struct UserSchemas {
    pub schemas: ResourceSchemas,
    /// Person attributes in Muster's extension, with their SCIM types.
    pub muster: Vec<(String, AttrType)>,
}

impl UserSchemas {
    /// `custom`: the tenant's custom attributes and their declared types.
    pub fn new(custom: &BTreeMap<String, PersonType>) -> Self {
        let mut muster: Vec<(String, AttrType)> = MUSTER_CORE
            .iter()
            .map(|a| (a.to_string(), AttrType::String))
            .collect();
        for (name, ty) in custom {
            if has_scim_place(name) || muster.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
                continue;
            }
            let t = match ty {
                PersonType::Bool => AttrType::Boolean,
                PersonType::Integer => AttrType::Integer,
                _ => AttrType::String,
            };
            muster.push((name.clone(), t));
        }
        let attrs: Vec<CustomAttr> = muster
            .iter()
            .map(|(n, t)| CustomAttr {
                name: n.clone(),
                attr_type: *t,
                multi_valued: false,
            })
            .collect();
        let schemas = match custom_extension(MUSTER_USER_EXTENSION, "MusterUser", &attrs) {
            Ok(mut ext) => {
                for a in &mut ext.attributes {
                    if MUSTER_READ_ONLY.contains(&a.name.as_str()) {
                        a.mutability = muster_scim::schema::Mutability::ReadOnly;
                    }
                }
                ResourceSchemas::user().with_extension(ext)
            }
            // Names are person attribute names, which are ATTRNAMEs; a
            // refusal would leave the extension out rather than fail.
            Err(_) => ResourceSchemas::user(),
        };
        UserSchemas { schemas, muster }
    }
}

/// Each tenant's [`UserSchemas`], built from its mappings' declared
/// custom attributes and kept for a few seconds, and its number of Users
/// (counting a million people takes longer than answering a page).
#[derive(Default)]
pub(crate) struct SchemaCache {
    map: Mutex<HashMap<String, (Instant, Arc<UserSchemas>)>>,
    counts: Mutex<HashMap<String, Count>>,
    /// Held by a tenant's first count, so that the lists arriving with it
    /// wait for that one count instead of each starting its own.
    first_count: tokio::sync::Mutex<()>,
}

/// A tenant's number of Users, as counted at `at`.
struct Count {
    at: Instant,
    n: u64,
    /// A recount is under way.
    counting: bool,
}

const SCHEMA_TTL: Duration = Duration::from_secs(10);

/// How old the `totalResults` of an unfiltered list may be before the
/// Users are counted again.
const COUNT_TTL: Duration = Duration::from_secs(2);

/// How many Users the tenant has. Only the tenant's first list waits for
/// a count; after that a list answers with the last count, and one older
/// than [`COUNT_TTL`] starts a recount in the background for the lists
/// after it, so no list waits behind counting a million people.
async fn user_count(state: &AppState, tenant: &muster_core::TenantId) -> ScimResult<u64> {
    let recount = {
        let mut counts = state
            .scim_schemas
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match counts.get_mut(tenant.as_str()) {
            None => None,
            Some(c) if c.counting || c.at.elapsed() < COUNT_TTL => return Ok(c.n),
            Some(c) => {
                c.counting = true;
                Some(c.n)
            }
        }
    };
    let count = {
        let (state, t) = (state.clone(), tenant.clone());
        async move {
            let tt = t.clone();
            let got = state.db(move |s| s.scim_count(&tt)).await;
            let mut counts = state
                .scim_schemas
                .counts
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            match &got {
                Ok(n) => {
                    counts.insert(
                        t.as_str().to_owned(),
                        Count {
                            at: Instant::now(),
                            n: *n,
                            counting: false,
                        },
                    );
                }
                // The last count stays; the next list tries again.
                Err(_) => {
                    if let Some(c) = counts.get_mut(t.as_str()) {
                        c.counting = false;
                    }
                }
            }
            got
        }
    };
    match recount {
        Some(last) => {
            tokio::spawn(count);
            Ok(last)
        }
        None => {
            let _first = state.scim_schemas.first_count.lock().await;
            let done = state
                .scim_schemas
                .counts
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(tenant.as_str())
                .map(|c| c.n);
            match done {
                Some(n) => Ok(n),
                None => Ok(count.await?),
            }
        }
    }
}

impl std::fmt::Debug for SchemaCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SchemaCache")
    }
}

pub(crate) async fn user_schemas(
    state: &AppState,
    tenant: &muster_core::TenantId,
) -> ScimResult<Arc<UserSchemas>> {
    {
        let map = state
            .scim_schemas
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some((at, s)) = map.get(tenant.as_str()) {
            if at.elapsed() < SCHEMA_TTL {
                return Ok(s.clone());
            }
        }
    }
    let t = tenant.clone();
    let built = Arc::new(state.db(move |s| load_user_schemas(s, &t)).await?);
    state
        .scim_schemas
        .map
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(tenant.as_str().to_owned(), (Instant::now(), built.clone()));
    Ok(built)
}

/// A tenant's [`UserSchemas`], from its mappings' declared custom
/// attributes.
pub(crate) fn load_user_schemas(
    store: &dyn muster_store::Store,
    tenant: &muster_core::TenantId,
) -> Result<UserSchemas, muster_store::StoreError> {
    let mut custom = BTreeMap::new();
    for m in store.mapping_list(tenant)? {
        let Some(attrs) = m.document.get("attributes").and_then(Value::as_object) else {
            continue;
        };
        for (name, spec) in attrs {
            if !valid_custom_name(name) {
                continue;
            }
            let ty = match spec.get("type").and_then(Value::as_str) {
                Some("bool") => PersonType::Bool,
                Some("integer") => PersonType::Integer,
                _ => PersonType::String,
            };
            custom.entry(name.clone()).or_insert(ty);
        }
    }
    Ok(UserSchemas::new(&custom))
}

/// What rendering a page of people needs besides the people: their
/// managers' SCIM ids and the tenant's groups.
pub(crate) struct Render {
    pub base: String,
    managers: HashMap<String, String>,
    groups: HashMap<String, String>,
}

/// Most Users whose managers and groups are looked up in place (see
/// [`AppState::db_read`]).
const HOT_READ_ROWS: usize = 8;

impl Render {
    pub async fn for_rows(
        state: &AppState,
        tenant: &muster_core::TenantId,
        base: String,
        rows: &[PersonRow],
    ) -> ScimResult<Self> {
        let wanted: Vec<String> = rows
            .iter()
            .filter_map(|r| r.state.attrs.get(muster_core::schema::MANAGER))
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        let any_roles = rows.iter().any(|r| !r.state.roles.is_empty());
        if wanted.is_empty() && !any_roles {
            return Ok(Render {
                base,
                managers: HashMap::new(),
                groups: HashMap::new(),
            });
        }
        let t = tenant.clone();
        let few = rows.len() <= HOT_READ_ROWS;
        let look_up = move |s: &dyn muster_store::Store| {
            let refs: Vec<&str> = wanted.iter().map(String::as_str).collect();
            let ids = if refs.is_empty() {
                Vec::new()
            } else {
                s.scim_ids(&t, &refs)?
            };
            let managers: HashMap<String, String> = wanted
                .iter()
                .zip(ids)
                .filter_map(|(e, id)| id.map(|id| (e.clone(), id)))
                .collect();
            let groups = if any_roles {
                s.scim_group_list(&t)?
                    .into_iter()
                    .map(|g| (g.display_name, g.id))
                    .collect()
            } else {
                HashMap::new()
            };
            Ok((managers, groups))
        };
        // One User's managers and groups are a short read: in place, like
        // the other point reads of a request; a page's go to the pool.
        let (managers, groups) = if few {
            state.db_read(look_up).await?
        } else {
            state.db(look_up).await?
        };
        Ok(Render {
            base,
            managers,
            groups,
        })
    }

    /// The person as a SCIM User.
    pub fn user(&self, row: &PersonRow, us: &UserSchemas) -> Value {
        let attrs = &row.state.attrs;
        let text = |a: &str| attrs.get(a).and_then(|v| v.as_str()).map(str::to_owned);
        let mut r: Map<String, Value> = text(SCIM_EXTRA)
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default();
        let id = row.scim_id.clone().unwrap_or_default();
        r.insert("id".into(), json!(id));
        for (urn, name, sub, attr) in MAPPED {
            let value = attrs.get(*attr).map(|v| v.expose().clone());
            set_leaf(&mut r, *urn, name, *sub, value);
        }
        // userName is required: a person that never had one shows its
        // external id.
        if !r.contains_key("userName") {
            r.insert("userName".into(), json!(row.external_id.as_str()));
        }
        match text("email") {
            Some(email) => {
                let mut emails = r
                    .get("emails")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let at = emails
                    .iter()
                    .position(|e| e.get("primary") == Some(&Value::Bool(true)))
                    .or(if emails.is_empty() { None } else { Some(0) });
                match at {
                    Some(i) => emails[i]["value"] = json!(email),
                    None => emails.push(json!({"value": email, "type": "work", "primary": true})),
                }
                r.insert("emails".into(), Value::Array(emails));
            }
            None => {
                r.remove("emails");
            }
        }
        let status = text("employment_status");
        r.insert(
            "active".into(),
            json!(status.as_deref() != Some("terminated")),
        );
        let manager = text(muster_core::schema::MANAGER)
            .and_then(|m| self.managers.get(&m).cloned())
            .map(|id| json!({"value": id, "$ref": format!("{}/Users/{id}", self.base)}));
        set_leaf(
            &mut r,
            Some(ENTERPRISE_USER_SCHEMA),
            "manager",
            None,
            manager,
        );
        for (name, _) in &us.muster {
            let value = attrs.get(name).map(|v| v.expose().clone());
            set_leaf(&mut r, Some(MUSTER_USER_EXTENSION), name, None, value);
        }
        let groups: Vec<Value> = row
            .state
            .roles
            .iter()
            .filter_map(|role| {
                self.groups.get(role).map(|gid| {
                    json!({"value": gid, "display": role, "type": "direct",
                           "$ref": format!("{}/Groups/{gid}", self.base)})
                })
            })
            .collect();
        if groups.is_empty() {
            r.remove("groups");
        } else {
            r.insert("groups".into(), Value::Array(groups));
        }
        let mut schemas = vec![json!(USER_SCHEMA)];
        for urn in [ENTERPRISE_USER_SCHEMA, MUSTER_USER_EXTENSION] {
            if r.contains_key(urn) {
                schemas.push(json!(urn));
            }
        }
        r.insert("schemas".into(), Value::Array(schemas));
        r.insert(
            "meta".into(),
            json!({
                "resourceType": "User",
                "lastModified": row.updated_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "version": etag(row.version),
                "location": format!("{}/Users/{id}", self.base),
            }),
        );
        Value::Object(r)
    }
}

/// Sets (or, with `None`, removes) `name[.sub]` in the core schema or in
/// extension `urn`; an emptied complex attribute or extension goes.
fn set_leaf(
    r: &mut Map<String, Value>,
    urn: Option<&str>,
    name: &str,
    sub: Option<&str>,
    value: Option<Value>,
) {
    let holder = match urn {
        None => &mut *r,
        Some(urn) => {
            if value.is_none() && !r.contains_key(urn) {
                return;
            }
            let e = r.entry(urn.to_owned()).or_insert_with(|| json!({}));
            if !e.is_object() {
                *e = json!({});
            }
            match e.as_object_mut() {
                Some(m) => m,
                None => return,
            }
        }
    };
    match sub {
        None => match value {
            Some(v) => {
                holder.insert(name.to_owned(), v);
            }
            None => {
                holder.remove(name);
            }
        },
        Some(sub) => {
            if value.is_none() && !holder.contains_key(name) {
                // nothing to remove
            } else {
                let c = holder.entry(name.to_owned()).or_insert_with(|| json!({}));
                if !c.is_object() {
                    *c = json!({});
                }
                if let Some(m) = c.as_object_mut() {
                    match value {
                        Some(v) => {
                            m.insert(sub.to_owned(), v);
                        }
                        None => {
                            m.remove(sub);
                        }
                    }
                    if m.is_empty() {
                        holder.remove(name);
                    }
                }
            }
        }
    }
    if let Some(urn) = urn {
        if r.get(urn)
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
        {
            r.remove(urn);
        }
    }
}

/// Takes `name[.sub]` out of the core schema or extension `urn`.
fn take_leaf(
    r: &mut Map<String, Value>,
    urn: Option<&str>,
    name: &str,
    sub: Option<&str>,
) -> Option<Value> {
    let holder = match urn {
        None => r,
        Some(urn) => r.get_mut(urn)?.as_object_mut()?,
    };
    let key = holder
        .keys()
        .find(|k| k.eq_ignore_ascii_case(name))?
        .clone();
    match sub {
        None => holder.remove(&key),
        Some(sub) => {
            let c = holder.get_mut(&key)?.as_object_mut()?;
            let skey = c.keys().find(|k| k.eq_ignore_ascii_case(sub))?.clone();
            let v = c.remove(&skey);
            if c.is_empty() {
                holder.remove(&key);
            }
            v
        }
    }
}

/// Reads a request body as a whole User: read-only attributes (`id`,
/// `meta`, `groups`) and `password` (Muster keeps no credentials) are
/// ignored (RFC 7644 §3.3), explicit nulls are no value, and the rest
/// goes through the PATCH engine's coercion and checks (booleans as
/// strings, a bare `manager`).
pub(crate) fn body_to_user(body: &Value, us: &UserSchemas) -> ScimResult<Value> {
    let mut v = body.as_object().cloned().unwrap_or_default();
    v.retain(|k, val| {
        !val.is_null()
            && !["id", "meta", "groups", "password", "schemas"]
                .iter()
                .any(|r| r.eq_ignore_ascii_case(k))
    });
    // Read-only attributes a client repeats are ignored, as for PUT.
    let ext_key = v
        .keys()
        .find(|k| k.eq_ignore_ascii_case(MUSTER_USER_EXTENSION))
        .cloned();
    if let Some(ext) = ext_key
        .and_then(|k| v.get_mut(&k))
        .and_then(Value::as_object_mut)
    {
        ext.retain(|k, _| !MUSTER_READ_ONLY.iter().any(|r| r.eq_ignore_ascii_case(k)));
    }
    let op = PatchOperation::from_json(&json!({"op": "add", "value": Value::Object(v)}), 0)?;
    let out = muster_scim::apply(&json!({"schemas": [USER_SCHEMA]}), &[op], &us.schemas).map_err(
        |mut e| {
            if let Some(rest) = e.detail.strip_prefix("operation 0: ") {
                e.detail = rest.to_owned();
            }
            Fail(e)
        },
    )?;
    let user = out.resource;
    if user
        .get("userName")
        .and_then(Value::as_str)
        .is_none_or(|s| s.trim().is_empty())
    {
        return Err(Fail(ScimError::invalid_value("userName is required")));
    }
    Ok(user)
}

/// What a User says of the person: every attribute SCIM has a place for
/// (`null` where the User has no value), the manager's SCIM id, and the
/// key value the client's SCIM key names.
pub(crate) struct UserAttrs {
    pub attrs: BTreeMap<String, Value>,
    pub manager: Option<String>,
    pub active: Option<bool>,
}

pub(crate) fn user_attrs(user: &Value, us: &UserSchemas) -> ScimResult<UserAttrs> {
    let mut r = user.as_object().cloned().unwrap_or_default();
    for k in ["id", "meta", "groups", "schemas"] {
        r.remove(k);
    }
    let mut attrs = BTreeMap::new();
    for (urn, name, sub, attr) in MAPPED {
        let v = take_leaf(&mut r, *urn, name, *sub).unwrap_or(Value::Null);
        attrs.insert(attr.to_string(), v);
    }
    // emails: the primary one (or the first) is the person's email; the
    // list itself is kept, for its types and the other addresses.
    let email = r
        .get("emails")
        .and_then(Value::as_array)
        .and_then(|list| {
            list.iter()
                .find(|e| e.get("primary") == Some(&Value::Bool(true)))
                .or(list.first())
        })
        .and_then(|e| e.get("value"))
        .cloned()
        .unwrap_or(Value::Null);
    attrs.insert("email".into(), email);
    let active = r.remove("active").and_then(|a| a.as_bool());
    let manager = take_leaf(&mut r, Some(ENTERPRISE_USER_SCHEMA), "manager", None)
        .and_then(|m| m.get("value").and_then(Value::as_str).map(str::to_owned))
        .filter(|m| !m.is_empty());
    for (name, _) in &us.muster {
        let v = take_leaf(&mut r, Some(MUSTER_USER_EXTENSION), name, None).unwrap_or(Value::Null);
        if !MUSTER_READ_ONLY.contains(&name.as_str()) {
            attrs.insert(name.clone(), v);
        }
    }
    r.remove(MUSTER_USER_EXTENSION);
    // Empty values say nothing worth keeping (Entra sends "roles": []).
    r.retain(|_, v| match v {
        Value::Null => false,
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    });
    if r.get(ENTERPRISE_USER_SCHEMA)
        .and_then(Value::as_object)
        .is_some_and(Map::is_empty)
    {
        r.remove(ENTERPRISE_USER_SCHEMA);
    }
    let extra = if r.is_empty() {
        Value::Null
    } else {
        let text = serde_json::to_string(&Value::Object(r)).unwrap_or_default();
        if text.len() > muster_core::schema::MAX_SCIM_EXTRA_LEN {
            return Err(Fail(ScimError::invalid_value(format!(
                "the User's attributes that Muster keeps as given (phone numbers, addresses, \
                 name parts, ...) are longer than {} bytes together",
                muster_core::schema::MAX_SCIM_EXTRA_LEN
            ))));
        }
        json!(text)
    };
    attrs.insert(SCIM_EXTRA.into(), extra);
    Ok(UserAttrs {
        attrs,
        manager,
        active,
    })
}

/// The SCIM attribute a client's people are keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key {
    UserName,
    ExternalId,
    EmployeeNumber,
}

impl Key {
    pub fn parse(s: Option<&str>) -> Option<Key> {
        match s {
            None | Some("userName") => Some(Key::UserName),
            Some("externalId") => Some(Key::ExternalId),
            Some("employeeNumber") => Some(Key::EmployeeNumber),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Key::UserName => "userName",
            Key::ExternalId => "externalId",
            Key::EmployeeNumber => "employeeNumber",
        }
    }
    pub fn attr(self) -> &'static str {
        match self {
            Key::UserName => scim_attrs::USER_NAME,
            Key::ExternalId => scim_attrs::EXTERNAL_ID,
            Key::EmployeeNumber => scim_attrs::EMPLOYEE_NUMBER,
        }
    }
    pub fn of(caller: &Caller) -> Key {
        Key::parse(caller.principal.scim_key.as_deref()).unwrap_or(Key::UserName)
    }
    /// The external id a new person gets from its User.
    pub fn external_id(self, ua: &UserAttrs) -> ScimResult<muster_core::ExternalId> {
        let v = ua
            .attrs
            .get(self.attr())
            .and_then(Value::as_str)
            .unwrap_or("");
        if v.is_empty() {
            return Err(Fail(ScimError::invalid_value(format!(
                "{} is required: it keys the people of this SCIM client",
                self.as_str()
            ))));
        }
        muster_core::ExternalId::parse_incoming(v).map_err(|e| {
            let why = match e {
                muster_core::IdError::Invisible { .. } => e.to_string(),
                _ => "1 to 256 bytes, no control characters or '/', no white space at either end"
                    .to_owned(),
            };
            Fail(ScimError::invalid_value(format!(
                "{} cannot key a person: {why}",
                self.as_str()
            )))
        })
    }
}

/// The person attributes to write: those that differ from `stored` (all
/// given ones for a new person), with the status `active` implies and
/// the manager's external id.
pub(crate) async fn changes(
    state: &AppState,
    caller: &Caller,
    ua: UserAttrs,
    stored: Option<&PersonRow>,
) -> ScimResult<BTreeMap<String, Value>> {
    let UserAttrs {
        mut attrs,
        manager,
        active,
    } = ua;
    let stored_attrs = stored.map(|r| &r.state.attrs);
    let stored_status = stored_attrs
        .and_then(|a| a.get("employment_status"))
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    // `active` and the status say the same thing twice: a status the
    // User changes wins; else `active` decides, keeping a status it
    // agrees with (`leave` is active too).
    let given = attrs
        .get("employment_status")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let explicit = given.filter(|g| Some(g) != stored_status.as_ref());
    let status = match (explicit, active, stored_status.as_deref()) {
        (Some(s), _, _) => s,
        (None, Some(false), _) => "terminated".to_owned(),
        (None, Some(true), Some("terminated") | None) | (None, None, None) => "active".to_owned(),
        (None, _, Some(s)) => s.to_owned(),
    };
    attrs.insert("employment_status".into(), json!(status));
    let manager_ext = match manager {
        None => Value::Null,
        Some(m) => {
            let t = caller.principal.tenant.clone();
            let found = state
                .db_read(move |s| s.scim_find(&t, &ScimLookup::Id(m), 1))
                .await?;
            match found.first() {
                Some(p) => json!(p.external_id.as_str()),
                None => {
                    return Err(Fail(ScimError::invalid_value(
                        "manager.value names no User",
                    )))
                }
            }
        }
    };
    attrs.insert(muster_core::schema::MANAGER.into(), manager_ext);
    // The API's attribute check wants strings for core attributes.
    let mut out = BTreeMap::new();
    for (k, v) in attrs {
        let v = match (&v, core_type(&k)) {
            (Value::Bool(_) | Value::Number(_), Some(_)) => json!(v.to_string()),
            _ => v,
        };
        let old = stored_attrs.and_then(|a| a.get(&k)).map(|x| x.expose());
        let same = match (&v, old) {
            (Value::Null, None) => true,
            (v, Some(o)) => v == o,
            _ => false,
        };
        if !same {
            out.insert(k, v);
        }
    }
    Ok(out)
}

/// The person behind a SCIM id, or 404.
pub(crate) async fn find(state: &AppState, caller: &Caller, id: &str) -> ScimResult<PersonRow> {
    let (t, id) = (caller.principal.tenant.clone(), id.to_owned());
    state
        .db_read(move |s| s.scim_find(&t, &ScimLookup::Id(id), 1))
        .await?
        .pop()
        .ok_or_else(|| Fail(ScimError::status(404, "no User with this id")))
}

/// Refuses a `userName` another User has (RFC 7643 §4.1.1: unique).
async fn check_unique(
    state: &AppState,
    caller: &Caller,
    user_name: &str,
    me: Option<&str>,
) -> ScimResult<()> {
    let (t, u) = (caller.principal.tenant.clone(), user_name.to_owned());
    let taken = state
        .db_read(move |s| s.scim_find(&t, &ScimLookup::UserName(u), 2))
        .await?;
    if taken
        .iter()
        .any(|p| p.scim_id.as_deref() != me && p.state.attrs.contains_key(scim_attrs::USER_NAME))
    {
        return Err(Fail(ScimError::new(
            ScimType::Uniqueness,
            "userName is taken by another User",
        )));
    }
    Ok(())
}

async fn render_one(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    row: &PersonRow,
    us: &UserSchemas,
) -> ScimResult<Value> {
    let render = Render::for_rows(
        state,
        &caller.principal.tenant,
        base_url(state, headers),
        std::slice::from_ref(row),
    )
    .await?;
    Ok(render.user(row, us))
}

/// Creates (or, for a person SCIM deleted, brings back; for a person an
/// HR file brought and no SCIM client named yet, takes over) the person a
/// User describes. Used by `POST /Users` and bulk.
pub(crate) async fn create_user(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    body: &Value,
) -> ScimResult<Value> {
    let us = user_schemas(state, &caller.principal.tenant).await?;
    let user = body_to_user(body, &us)?;
    let user_name = user["userName"].as_str().unwrap_or_default().to_owned();
    check_unique(state, caller, &user_name, None).await?;
    let ua = user_attrs(&user, &us)?;
    let external_id = Key::of(caller).external_id(&ua)?;
    let (t, e) = (caller.principal.tenant.clone(), external_id.clone());
    let stored = match state.db_read(move |s| s.person_get(&t, &e)).await {
        Ok(p) => Some(p),
        Err(ApiError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    if let Some(p) = &stored {
        if p.scim_id.is_some() && p.state.attrs.contains_key(scim_attrs::USER_NAME) {
            return Err(Fail(ScimError::new(
                ScimType::Uniqueness,
                format!("a User with this {} exists", Key::of(caller).as_str()),
            )));
        }
    }
    let attrs = changes(state, caller, ua, stored.as_ref()).await?;
    let row = ops::scim::write_user(state, caller, &external_id, attrs).await?;
    render_one(state, caller, headers, &row, &us).await
}

/// Replaces a User (PUT): attributes the body leaves out are cleared.
pub(crate) async fn replace_user(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    id: &str,
    body: &Value,
) -> ScimResult<Value> {
    let row = find(state, caller, id).await?;
    check_if_match(headers, &etag(row.version))?;
    let us = user_schemas(state, &caller.principal.tenant).await?;
    let user = body_to_user(body, &us)?;
    let user_name = user["userName"].as_str().unwrap_or_default().to_owned();
    check_unique(state, caller, &user_name, row.scim_id.as_deref()).await?;
    let ua = user_attrs(&user, &us)?;
    let attrs = changes(state, caller, ua, Some(&row)).await?;
    let row = ops::scim::write_user(state, caller, &row.external_id, attrs).await?;
    render_one(state, caller, headers, &row, &us).await
}

/// Applies a PATCH (RFC 7644 §3.5.2) to a User.
pub(crate) async fn patch_user(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    id: &str,
    body: &Value,
) -> ScimResult<Value> {
    let row = find(state, caller, id).await?;
    check_if_match(headers, &etag(row.version))?;
    let us = user_schemas(state, &caller.principal.tenant).await?;
    let req = PatchRequest::from_json(body)?;
    let current = render_one(state, caller, headers, &row, &us).await?;
    let out = muster_scim::apply(&current, &req.operations, &us.schemas)?;
    if !out.changed {
        return Ok(current);
    }
    let user = out.resource;
    let user_name = user["userName"].as_str().unwrap_or_default().to_owned();
    check_unique(state, caller, &user_name, row.scim_id.as_deref()).await?;
    let ua = user_attrs(&user, &us)?;
    let attrs = changes(state, caller, ua, Some(&row)).await?;
    let row = ops::scim::write_user(state, caller, &row.external_id, attrs).await?;
    render_one(state, caller, headers, &row, &us).await
}

pub(crate) async fn delete_user(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    id: &str,
) -> ScimResult<()> {
    let row = find(state, caller, id).await?;
    check_if_match(headers, &etag(row.version))?;
    ops::scim::delete_user(state, caller, &row).await?;
    Ok(())
}

pub(crate) async fn create(
    State(state): State<AppState>,
    ScimCaller(caller): ScimCaller,
    req: Request,
) -> ScimResult<Answer> {
    let (headers, body) = body_of(req, &state).await?;
    let user = create_user(&state, &caller, &headers, &body).await?;
    Ok(Answer::resource(StatusCode::CREATED, user))
}

pub(crate) async fn read(
    State(state): State<AppState>,
    ScimCaller(caller): ScimCaller,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ScimResult<Response> {
    let (_, projection) = projection_of(query.as_deref())?;
    let row = find(&state, &caller, &id).await?;
    let tag = etag(row.version);
    if let Some(r) = not_modified(&headers, &tag) {
        return Ok(r);
    }
    let us = user_schemas(&state, &caller.principal.tenant).await?;
    let user = render_one(&state, &caller, &headers, &row, &us).await?;
    let mut a = Answer::resource(StatusCode::OK, user);
    a.body = a
        .body
        .map(|b| muster_scim::project(&b, &us.schemas, &projection));
    Ok(a.into_response())
}

pub(crate) async fn replace(
    State(state): State<AppState>,
    ScimCaller(caller): ScimCaller,
    Path(id): Path<String>,
    req: Request,
) -> ScimResult<Answer> {
    let (headers, body) = body_of(req, &state).await?;
    let user = replace_user(&state, &caller, &headers, &id, &body).await?;
    Ok(Answer::resource(StatusCode::OK, user))
}

pub(crate) async fn patch(
    State(state): State<AppState>,
    ScimCaller(caller): ScimCaller,
    Path(id): Path<String>,
    req: Request,
) -> ScimResult<Answer> {
    let (headers, body) = body_of(req, &state).await?;
    let user = patch_user(&state, &caller, &headers, &id, &body).await?;
    Ok(Answer::resource(StatusCode::OK, user))
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    ScimCaller(caller): ScimCaller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ScimResult<Answer> {
    delete_user(&state, &caller, &headers, &id).await?;
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
    let search = Search::from_body(body)?;
    answer_search(&state, &caller, &headers, search).await
}

/// People a filter can be answered from with an index, or `None` when it
/// needs a scan: `id`, `userName`, `externalId`, `emails.value` (or
/// `emails`) and the enterprise `employeeNumber` compared with `eq`; an
/// `and` with such a side; an `or` of which both sides are.
fn index_lookups(f: &muster_scim::Filter) -> Option<Vec<ScimLookup>> {
    use muster_scim::{CompValue, CompareOp, Filter};
    match f {
        Filter::And(a, b) => index_lookups(a).or_else(|| index_lookups(b)),
        Filter::Or(a, b) => {
            let mut l = index_lookups(a)?;
            l.extend(index_lookups(b)?);
            Some(l)
        }
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value: CompValue::String(v),
        } => {
            let core = path
                .urn
                .as_deref()
                .is_none_or(|u| u.eq_ignore_ascii_case(USER_SCHEMA));
            let ent = path
                .urn
                .as_deref()
                .is_some_and(|u| u.eq_ignore_ascii_case(ENTERPRISE_USER_SCHEMA));
            let name = path.name.to_ascii_lowercase();
            let sub = path.sub.as_deref().map(str::to_ascii_lowercase);
            let v = v.clone();
            match (core, ent, name.as_str(), sub.as_deref()) {
                (true, _, "id", None) => Some(vec![ScimLookup::Id(v)]),
                (true, _, "username", None) => Some(vec![ScimLookup::UserName(v)]),
                (true, _, "externalid", None) => Some(vec![ScimLookup::ExternalId(v)]),
                (true, _, "emails", None | Some("value")) => Some(vec![ScimLookup::Email(v)]),
                (_, true, "employeenumber", None) => Some(vec![ScimLookup::EmployeeNumber(v)]),
                _ => None,
            }
        }
        Filter::ValuePath { path, filter } if path.name.eq_ignore_ascii_case("emails") => {
            match filter.as_ref() {
                Filter::Compare {
                    path: p,
                    op: CompareOp::Eq,
                    value: CompValue::String(v),
                } if p.name.eq_ignore_ascii_case("value") => {
                    Some(vec![ScimLookup::Email(v.clone())])
                }
                Filter::And(..) => None,
                _ => None,
            }
        }
        _ => None,
    }
}

/// Most candidates one indexed lookup reads.
const LOOKUP_LIMIT: u32 = 1000;

/// Answers a list or `.search` (RFC 7644 §3.4.2): from an index when the
/// filter allows, from the store's stable order (external id) when there
/// is neither filter nor sort, and by reading at most
/// `scim.max_scan` people otherwise; beyond that it is `tooMany`.
async fn answer_search(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    search: Search,
) -> ScimResult<Answer> {
    let us = user_schemas(state, &caller.principal.tenant).await?;
    let tenant = caller.principal.tenant.clone();
    let base = base_url(state, headers);
    let sort = match &search.sort {
        Some((by, order)) => Some(muster_scim::SortBy::new(by, order.as_deref(), &us.schemas)?),
        None => None,
    };
    if let Some(f) = &search.filter {
        let cost = f.cost();
        if cost.comparisons > 32 {
            return Err(Fail(ScimError::too_many(
                "the filter has more than 32 comparisons",
            )));
        }
    }
    let lookups = search.filter.as_ref().and_then(index_lookups);
    let rows = match (&search.filter, &lookups, &sort) {
        (None, _, None) => {
            let (t1, t2) = (tenant.clone(), tenant.clone());
            let (start, count) = (search.start, search.count);
            let total = user_count(state, &t1).await?;
            let rows = if count == 0 {
                Vec::new()
            } else {
                state
                    .db(move |s| s.scim_page(&t2, start - 1, count as u32))
                    .await?
            };
            let render = Render::for_rows(state, &tenant, base, &rows).await?;
            let page: Vec<Value> = rows
                .iter()
                .map(|r| {
                    muster_scim::project(&render.user(r, &us), &us.schemas, &search.projection)
                })
                .collect();
            return Ok(list_answer(page, total, search.start));
        }
        (Some(_), Some(l), _) => {
            let l = l.clone();
            let t = tenant.clone();
            state
                .db(move |s| {
                    let mut out: Vec<PersonRow> = Vec::new();
                    for by in &l {
                        for r in s.scim_find(&t, by, LOOKUP_LIMIT)? {
                            if !out.iter().any(|o| o.external_id == r.external_id) {
                                out.push(r);
                            }
                        }
                    }
                    Ok(out)
                })
                .await?
        }
        _ => {
            let max = state.config.scim.max_scan;
            let t = tenant.clone();
            let total = user_count(state, &t).await?;
            if total > max {
                return Err(Fail(ScimError::too_many(format!(
                    "this filter or sort would read all {total} Users, more than scim.max_scan \
                     ({max}); filter with eq on id, userName, externalId, emails.value or \
                     employeeNumber"
                ))));
            }
            let t = tenant.clone();
            state
                .db(move |s| {
                    let mut out = Vec::new();
                    let mut offset = 0u64;
                    loop {
                        let page = s.scim_page(&t, offset, 1000)?;
                        let n = page.len();
                        out.extend(page);
                        offset += n as u64;
                        if n < 1000 || offset > max {
                            break;
                        }
                    }
                    Ok(out)
                })
                .await?
        }
    };
    let render = Render::for_rows(state, &tenant, base, &rows).await?;
    let mut matched: Vec<Value> = Vec::new();
    for r in &rows {
        let u = render.user(r, &us);
        let keep = match &search.filter {
            Some(f) => muster_scim::filter::eval::matches(f, &u, &us.schemas)?,
            None => true,
        };
        if keep {
            matched.push(u);
        }
    }
    if let Some(s) = &sort {
        s.sort(&mut matched, &us.schemas);
    }
    let total = matched.len() as u64;
    let page: Vec<Value> = matched
        .into_iter()
        .skip((search.start - 1) as usize)
        .take(search.count as usize)
        .map(|u| muster_scim::project(&u, &us.schemas, &search.projection))
        .collect();
    Ok(list_answer(page, total, search.start))
}

pub(crate) fn list_answer(page: Vec<Value>, total: u64, start: u64) -> Answer {
    let list = muster_scim::ListResponse::new(page, total, start);
    Answer::ok(serde_json::to_value(list).unwrap_or_default())
}
