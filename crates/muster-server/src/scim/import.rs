//! SCIM files as imports (docs/scim.md#scim-files-as-imports): each row
//! of a BulkRequest or ListResponse that creates a User becomes a record
//! of person attributes, by the same User mapping the SCIM door uses, and
//! a mapping built here reads it. So an identity provider's export goes
//! through the import's validation pass, dry run, snapshot mode and row
//! errors like any HR file, and its people are the same people the SCIM
//! door writes.
//!
//! The record's field names are the SCIM attribute paths (`userName`,
//! `emails.value`, `urn:...:enterprise:2.0:User:department`), so a row
//! error names the attribute as the file has it.
use super::users::{body_to_user, scim_name, user_attrs, Key, UserSchemas};
use muster_core::mapping::{MappingDoc, MappingError, MappingFormat};
use muster_core::policy::WritePolicy;
use muster_core::schema::{core_type, MANAGER};
use muster_core::TenantId;
use muster_intake::records::{Item, Record, RowProblem};
use muster_proto::ErrorCode;
use muster_scim::schema::AttrType;
use muster_store::{ScimLookup, Store, StoreError};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// The field of the record that carries the status `active` implies.
const ACTIVE: &str = "active";
/// The field of the record that carries the manager's external id.
const MANAGER_FIELD: &str = "manager";

/// Managers' SCIM ids looked up, at most: past it, the cache starts over.
const MANAGERS_KEPT: usize = 100_000;

/// Turns the rows of one SCIM file into records for [`ScimRows::mapping`].
pub(crate) struct ScimRows<'a> {
    store: &'a dyn Store,
    tenant: TenantId,
    us: UserSchemas,
    key: Key,
    policy: WritePolicy,
    /// Managers' SCIM ids already looked up, with their external ids.
    managers: HashMap<String, Option<String>>,
}

impl<'a> ScimRows<'a> {
    pub fn new(
        store: &'a dyn Store,
        tenant: &TenantId,
        scim_key: Option<&str>,
        policy: &WritePolicy,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            store,
            tenant: tenant.clone(),
            us: super::users::load_user_schemas(store, tenant)?,
            key: Key::parse(scim_key).unwrap_or(Key::UserName),
            policy: policy.clone(),
            managers: HashMap::new(),
        })
    }

    /// The person attributes a User can give, each read from the field of
    /// its SCIM name; the person's key is the client's SCIM key. Custom
    /// attributes keep their declared types.
    pub fn mapping(&self) -> Result<MappingDoc, MappingError> {
        let mut attributes = Map::new();
        for attr in self.attrs() {
            let mut spec = json!({ "column": field(attr) });
            if core_type(attr).is_none() {
                let ty = match self.us.muster.iter().find(|(n, _)| n == attr) {
                    Some((_, AttrType::Boolean)) => "bool",
                    Some((_, AttrType::Integer)) => "integer",
                    _ => "string",
                };
                spec["type"] = json!(ty);
            }
            attributes.insert(attr.to_owned(), spec);
        }
        attributes.insert("employment_status".into(), json!({ "column": ACTIVE }));
        attributes.insert(MANAGER.into(), json!({ "column": MANAGER_FIELD }));
        let doc = json!({ "key": field(self.key.attr()), "attributes": attributes });
        MappingDoc::parse(&doc.to_string(), MappingFormat::Json)
    }

    /// Every person attribute a User's mapping writes, but the status and
    /// the manager (their fields are not the User's own).
    fn attrs(&self) -> Vec<&str> {
        let mut out: Vec<&str> = super::users::MAPPED_ATTRS.to_vec();
        out.push("email");
        out.push(super::users::SCIM_EXTRA);
        out.extend(
            self.us
                .muster
                .iter()
                .map(|(n, _)| n.as_str())
                .filter(|n| !super::users::is_read_only(n)),
        );
        out
    }

    /// One row of the file as a record, or its problem; an error when the
    /// store cannot be asked about the row's manager.
    pub fn row(&mut self, row: u64, op: Map<String, Value>) -> Result<Item, StoreError> {
        Ok(match self.record(&op)? {
            Ok(object) => Item::Record(Record::Object { row, object }),
            Err((column, code, message)) => Item::Problem(RowProblem {
                row,
                column: column.map(str::to_owned),
                code,
                message,
            }),
        })
    }

    fn record(
        &mut self,
        op: &Map<String, Value>,
    ) -> Result<Result<Map<String, Value>, Problem>, StoreError> {
        match self.user(op) {
            Ok((out, manager)) => match manager {
                None => Ok(Ok(out)),
                Some(id) => Ok(self.manager(id)?.map(|ext| {
                    let mut out = out;
                    out.insert(MANAGER_FIELD.into(), Value::String(ext));
                    out
                })),
            },
            Err(p) => Ok(Err(p)),
        }
    }

    /// The record of the operation's User, and its manager's SCIM id.
    fn user(
        &self,
        op: &Map<String, Value>,
    ) -> Result<(Map<String, Value>, Option<String>), Problem> {
        let get = |name: &str| {
            op.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        };
        let method = get("method").and_then(Value::as_str).unwrap_or("");
        if !method.eq_ignore_ascii_case("POST") {
            return Err((
                Some("method"),
                ErrorCode::UnsupportedOperation,
                "only POST operations that create Users are imported: send PUT, PATCH and \
                 DELETE to /scim/v2/Bulk, and use mode=snapshot to deactivate the people a \
                 file leaves out"
                    .into(),
            ));
        }
        let path = get("path").and_then(Value::as_str).unwrap_or("");
        if !path.trim_end_matches('/').eq_ignore_ascii_case("/Users") {
            return Err((
                Some("path"),
                ErrorCode::UnsupportedOperation,
                "only Users (path /Users) are imported: Groups go to /scim/v2/Bulk".into(),
            ));
        }
        let Some(data) = get("data").filter(|d| d.is_object()) else {
            return Err((
                Some("data"),
                ErrorCode::MissingField,
                "the operation has no User in data".into(),
            ));
        };
        let user = body_to_user(data, &self.us).map_err(scim_problem)?;
        let ua = user_attrs(&user, &self.us).map_err(scim_problem)?;
        let mut out = Map::new();
        for (attr, v) in ua.attrs {
            // A User given whole clears what it leaves out, but only what
            // the client may write: the rest is not its to clear.
            if !v.is_null() || self.policy.may_write(&attr) {
                out.insert(field(&attr), v);
            }
        }
        match ua.active {
            Some(true) => {
                out.insert(ACTIVE.into(), json!("active"));
            }
            Some(false) => {
                out.insert(ACTIVE.into(), json!("terminated"));
            }
            None => {}
        }
        if ua.manager.is_none() && self.policy.may_write(MANAGER) {
            out.insert(MANAGER_FIELD.into(), Value::Null);
        }
        Ok((out, ua.manager))
    }

    /// The external id of the person whose SCIM id is `id`.
    fn manager(&mut self, id: String) -> Result<Result<String, Problem>, StoreError> {
        if id.starts_with("bulkId:") {
            return Ok(Err((
                Some(MANAGER_FIELD),
                ErrorCode::UnknownManager,
                "manager.value: a bulkId reference is resolved only by /scim/v2/Bulk; an import \
                 names the manager by the id of a stored User"
                    .into(),
            )));
        }
        if let Some(found) = self.managers.get(&id) {
            return Ok(found.clone().ok_or_else(no_manager));
        }
        let found = self
            .store
            .scim_find(&self.tenant, &ScimLookup::Id(id.clone()), 1)?
            .first()
            .map(|p| p.external_id.to_string());
        if self.managers.len() >= MANAGERS_KEPT {
            self.managers.clear();
        }
        self.managers.insert(id, found.clone());
        Ok(found.ok_or_else(no_manager))
    }
}

type Problem = (Option<&'static str>, ErrorCode, String);

fn no_manager() -> Problem {
    (
        Some(MANAGER_FIELD),
        ErrorCode::UnknownManager,
        "manager.value names no stored User".into(),
    )
}

/// A User the SCIM rules refuse: the detail names the attribute, never
/// its value.
fn scim_problem(e: super::Fail) -> Problem {
    (None, ErrorCode::InvalidUser, e.0.detail)
}

/// The record field a person attribute is read from: its SCIM name.
fn field(attr: &str) -> String {
    scim_name(attr)
}
