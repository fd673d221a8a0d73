//! The one gate every write path goes through (imports, the people API,
//! and later SCIM and login sync): turn what a source says into an
//! [`Incoming`] record and check it against the writer's policy.
use crate::ops::input::RoleName;
use muster_core::person::Incoming;
use muster_core::policy::{Violation, WritePolicy};
use muster_core::schema::{coerce, core_type, valid_custom_name, ROLES};
use muster_core::{AttrValue, ExternalId};
use muster_proto::ErrorCode;
use muster_proto::RowErrorInfo;
use std::collections::BTreeMap;

/// Row errors for every write outside `policy`, naming the attribute or
/// role and the client.
pub fn policy_errors(
    row: u64,
    client: &str,
    policy: &WritePolicy,
    incoming: &Incoming,
    column_of: &dyn Fn(&str) -> Option<String>,
) -> Vec<RowErrorInfo> {
    policy
        .violations(incoming)
        .into_iter()
        .map(|v| match v {
            Violation::Attribute(a) => RowErrorInfo {
                row,
                column: column_of(&a),
                message: format!("client '{client}' may not write the attribute '{a}'"),
                attribute: Some(a),
                code: ErrorCode::AttributeNotPermitted.as_str().into(),
            },
            Violation::Role(r) => RowErrorInfo {
                row,
                column: column_of(ROLES),
                attribute: Some(ROLES.into()),
                code: ErrorCode::RoleNotPermitted.as_str().into(),
                message: format!("client '{client}' may not grant the role '{r}'"),
            },
        })
        .collect()
}

fn err(
    row: u64,
    attribute: Option<&str>,
    code: ErrorCode,
    message: impl Into<String>,
) -> RowErrorInfo {
    RowErrorInfo {
        row,
        column: None,
        attribute: attribute.map(str::to_owned),
        code: code.as_str().to_owned(),
        message: message.into(),
    }
}

/// A person as the API describes it, checked attribute by attribute.
pub fn incoming_from_api(
    row: u64,
    external_id: &str,
    attributes: &BTreeMap<String, serde_json::Value>,
    roles: Option<&Vec<String>>,
) -> Result<Incoming, Vec<RowErrorInfo>> {
    let mut errors = Vec::new();
    let id = match ExternalId::parse_incoming(external_id) {
        Ok(id) => Some(id),
        Err(e) => {
            errors.push(err(row, None, ErrorCode::InvalidKey, e.to_string()));
            None
        }
    };
    let mut attrs = BTreeMap::new();
    for (name, value) in attributes {
        if name == ROLES {
            errors.push(err(
                row,
                Some(name),
                ErrorCode::InvalidAttribute,
                "roles are given in the 'roles' list, not as an attribute",
            ));
            continue;
        }
        let parsed = match (core_type(name), value) {
            (_, serde_json::Value::Null) => Ok(None),
            (Some(ty), serde_json::Value::String(s)) => {
                let s = s.trim();
                if s.is_empty() {
                    Ok(None)
                } else {
                    coerce(&ty, s).map(Some).map_err(|e| (e.code, e.message))
                }
            }
            (Some(_), _) => Err((
                ErrorCode::InvalidType,
                "value must be a string or null".to_owned(),
            )),
            (None, v) if valid_custom_name(name) => match v {
                serde_json::Value::String(s)
                    if s.len() > muster_core::schema::max_value_len(name) =>
                {
                    Err((ErrorCode::ValueTooLong, "value is too long".to_owned()))
                }
                serde_json::Value::String(_)
                | serde_json::Value::Bool(_)
                | serde_json::Value::Number(_) => Ok(Some(AttrValue::from_json(v.clone()))),
                _ => Err((
                    ErrorCode::InvalidType,
                    "value must be a string, boolean, number or null".to_owned(),
                )),
            },
            (None, _) => Err((ErrorCode::UnknownAttribute, "no such attribute".to_owned())),
        };
        match parsed {
            Ok(v) => {
                attrs.insert(name.clone(), v);
            }
            Err((code, message)) => errors.push(err(row, Some(name), code, message)),
        }
    }
    let roles = match roles {
        None => None,
        Some(list) => {
            let mut set = std::collections::BTreeSet::new();
            for r in list {
                if RoleName::parse(r).is_some() {
                    set.insert(r.clone());
                } else {
                    errors.push(err(
                        row,
                        Some(ROLES),
                        ErrorCode::InvalidRole,
                        "a role name is 1 to 64 letters, digits or '_.:-'",
                    ));
                }
            }
            Some(set)
        }
    };
    match id {
        Some(external_id) if errors.is_empty() => Ok(Incoming {
            external_id,
            attrs,
            roles,
        }),
        _ => Err(errors),
    }
}

/// Manager references of API and login-sync writes: a person's
/// `manager_external_id` must name someone in the same request or already
/// stored, and not the person themself. Returns, by position in `batch`,
/// the items refused and why (naming the attribute, never the value).
pub async fn manager_errors(
    state: &crate::base::state::AppState,
    tenant: &muster_core::TenantId,
    batch: &[muster_store::BatchItem],
) -> crate::base::error::ApiResult<Vec<(usize, RowErrorInfo)>> {
    use muster_core::schema::MANAGER;
    let in_request: std::collections::HashSet<&str> = batch
        .iter()
        .map(|b| b.incoming.external_id.as_str())
        .collect();
    let mut out = Vec::new();
    let mut lookup: Vec<(usize, String)> = Vec::new();
    for (i, b) in batch.iter().enumerate() {
        let Some(m) = manager_of(&b.incoming) else {
            continue;
        };
        if m == b.incoming.external_id.as_str() {
            out.push((
                i,
                err(
                    b.row,
                    Some(MANAGER),
                    ErrorCode::SelfManager,
                    "a person cannot be their own manager",
                ),
            ));
        } else if !in_request.contains(m.as_str()) {
            lookup.push((i, m));
        }
    }
    if !lookup.is_empty() {
        let (t, ids) = (
            tenant.clone(),
            lookup.iter().map(|(_, m)| m.clone()).collect::<Vec<_>>(),
        );
        let found = state
            .db(move |s| {
                let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
                s.person_exists(&t, &refs)
            })
            .await?;
        for ((i, _), found) in lookup.into_iter().zip(found) {
            if !found {
                out.push((
                    i,
                    err(
                        batch[i].row,
                        Some(MANAGER),
                        ErrorCode::UnknownManager,
                        "the manager is neither in this request nor already stored",
                    ),
                ));
            }
        }
    }
    out.sort_by_key(|(i, _)| *i);
    Ok(out)
}

/// The manager a record names (`None` when it names none or clears it).
pub(crate) fn manager_of(inc: &Incoming) -> Option<String> {
    inc.attrs
        .get(muster_core::schema::MANAGER)
        .and_then(|v| v.as_ref())
        .and_then(|v| v.as_str())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn api_records_are_typed_and_errors_never_quote_values() {
        let mut a = BTreeMap::new();
        a.insert(
            "email".to_string(),
            serde_json::json!("not-an-email-SECRET"),
        );
        a.insert("given_name".to_string(), serde_json::json!("Ada"));
        a.insert("bogus!".to_string(), serde_json::json!("x"));
        let e = incoming_from_api(0, "E1", &a, None).unwrap_err();
        assert_eq!(e.len(), 2);
        assert!(e.iter().all(|e| !e.message.contains("SECRET")));
        a.remove("email");
        a.remove("bogus!");
        a.insert("cost_center".to_string(), serde_json::json!(1234));
        let ok = incoming_from_api(0, "E1", &a, Some(&vec!["staff".into()])).unwrap();
        assert_eq!(ok.attrs.len(), 2);
    }
    #[test]
    fn policy_errors_name_attribute_and_client() {
        let p = WritePolicy {
            attributes: vec!["given_name".into()],
            roles: vec![],
        };
        let mut a = BTreeMap::new();
        a.insert("department".to_string(), serde_json::json!("R&D"));
        let inc = incoming_from_api(0, "E1", &a, None).unwrap();
        let e = policy_errors(7, "hr-feed", &p, &inc, &|_| Some("Dept".into()));
        assert_eq!(e[0].code, ErrorCode::AttributeNotPermitted.as_str());
        assert!(e[0].message.contains("department") && e[0].message.contains("hr-feed"));
        assert_eq!(e[0].column.as_deref(), Some("Dept"));
    }
}
