//! The message shapes of RFC 7644: list responses (§3.4.2), the
//! `.search` body (§3.4.3), PATCH requests (§3.5.2) and bulk requests
//! and responses (§3.7), with the `bulkId` references of §3.7.2.
use crate::error::ScimError;
use crate::patch::PatchOperation;
use crate::schema::get_ci;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const SEARCH_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
pub const BULK_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";

/// A list response (RFC 7644 §3.4.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListResponse<T> {
    pub schemas: Vec<String>,
    pub total_results: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub start_index: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub items_per_page: Option<u64>,
    #[serde(rename = "Resources", default = "Vec::new")]
    pub resources: Vec<T>,
}

impl<T> ListResponse<T> {
    /// A page of `resources` out of `total_results`, starting at the
    /// 1-based `start_index`.
    pub fn new(resources: Vec<T>, total_results: u64, start_index: u64) -> Self {
        ListResponse {
            schemas: vec![LIST_RESPONSE.to_string()],
            total_results,
            start_index: Some(start_index),
            items_per_page: Some(resources.len() as u64),
            resources,
        }
    }
}

/// The body of `POST .search` (RFC 7644 §3.4.3).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SearchRequest {
    pub schemas: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub excluded_attributes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort_order: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_index: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
}

/// A PATCH request (RFC 7644 §3.5.2). `Operations` is matched in any
/// case, as clients vary; `schemas` must list the PatchOp URN.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchRequest {
    pub operations: Vec<PatchOperation>,
}

impl PatchRequest {
    /// Reads a request body. Errors are `invalidSyntax` (or the
    /// operation's own `invalidPath`), by operation number.
    pub fn from_json(v: &Value) -> Result<Self, ScimError> {
        let obj = v
            .as_object()
            .ok_or_else(|| ScimError::invalid_syntax("the PATCH body is not an object"))?;
        let listed = get_ci(obj, "schemas")
            .and_then(|(_, s)| s.as_array())
            .is_some_and(|a| {
                a.iter()
                    .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(PATCH_OP)))
            });
        if !listed {
            return Err(ScimError::invalid_syntax(format!(
                "schemas must list {PATCH_OP}"
            )));
        }
        let ops = get_ci(obj, "Operations")
            .and_then(|(_, o)| o.as_array())
            .ok_or_else(|| ScimError::invalid_syntax("Operations must be a list"))?;
        if ops.is_empty() {
            return Err(ScimError::invalid_syntax("Operations is empty"));
        }
        let operations = ops
            .iter()
            .enumerate()
            .map(|(i, o)| PatchOperation::from_json(o, i))
            .collect::<Result<_, _>>()?;
        Ok(PatchRequest { operations })
    }

    /// Reads a request body from bytes.
    pub fn from_slice(body: &[u8]) -> Result<Self, ScimError> {
        let v: Value = serde_json::from_slice(body).map_err(|e| {
            ScimError::invalid_syntax(format!(
                "the body is not JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        Self::from_json(&v)
    }

    /// The request as JSON (for clients and tests).
    pub fn to_json(&self) -> Value {
        let ops: Vec<Value> = self
            .operations
            .iter()
            .map(|o| {
                let mut m = Map::new();
                m.insert("op".into(), Value::String(o.op.as_str().into()));
                if let Some(p) = &o.path {
                    m.insert("path".into(), Value::String(p.clone()));
                }
                if let Some(v) = &o.value {
                    m.insert("value".into(), v.clone());
                }
                Value::Object(m)
            })
            .collect();
        json!({"schemas": [PATCH_OP], "Operations": ops})
    }
}

impl<'de> Deserialize<'de> for PatchRequest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        PatchRequest::from_json(&v).map_err(|e| serde::de::Error::custom(e.detail))
    }
}

/// A bulk request (RFC 7644 §3.7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkRequest {
    pub schemas: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub fail_on_errors: Option<u32>,
    #[serde(rename = "Operations", alias = "operations")]
    pub operations: Vec<BulkOperation>,
}

/// One operation of a bulk request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkOperation {
    pub method: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bulk_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub version: Option<String>,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub data: Option<Value>,
}

/// A bulk response (RFC 7644 §3.7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BulkResponse {
    pub schemas: Vec<String>,
    #[serde(rename = "Operations")]
    pub operations: Vec<BulkOperationResponse>,
}

impl BulkResponse {
    pub fn new(operations: Vec<BulkOperationResponse>) -> Self {
        BulkResponse {
            schemas: vec![BULK_RESPONSE.to_string()],
            operations,
        }
    }
}

/// One operation's result; `status` is a string as in the RFC's
/// examples (RFC 7644 §3.7.3), `response` the error body of a failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkOperationResponse {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub location: Option<String>,
    pub method: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bulk_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub version: Option<String>,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub response: Option<Value>,
}

impl BulkOperationResponse {
    /// A failed operation: the status and the error body (RFC 7644 §3.7.3).
    pub fn failed(method: &str, bulk_id: Option<String>, err: &ScimError) -> Self {
        BulkOperationResponse {
            location: None,
            method: method.to_string(),
            bulk_id,
            version: None,
            status: err.status.to_string(),
            response: serde_json::to_value(err).ok(),
        }
    }
}

const BULK_PREFIX: &str = "bulkId:";

/// The `bulkId`s that `data` refers to ("bulkId:xyz" strings anywhere in
/// it, RFC 7644 §3.7.2), in order, without repeats.
pub fn bulk_references(data: &Value) -> Vec<String> {
    let mut out = Vec::new();
    collect_refs(data, &mut out);
    out
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            if let Some(id) = s.strip_prefix(BULK_PREFIX) {
                if !out.iter().any(|o| o == id) {
                    out.push(id.to_string());
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        Value::Object(o) => o.values().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

fn conflict(detail: String) -> ScimError {
    // RFC 7644 §3.7.1: a reference the service provider cannot resolve
    // is answered with 409 (Conflict).
    ScimError::status(409, detail)
}

/// Replaces each "bulkId:xyz" in `data` with the id created for `xyz`.
/// A reference to a bulkId that has no id (yet) is a 409.
pub fn resolve_bulk_ids(
    data: &mut Value,
    created: &HashMap<String, String>,
) -> Result<(), ScimError> {
    match data {
        Value::String(s) => {
            if let Some(id) = s.strip_prefix(BULK_PREFIX) {
                let real = created.get(id).ok_or_else(|| {
                    conflict("the data refers to a bulkId that has no resource".to_string())
                })?;
                *s = real.clone();
            }
            Ok(())
        }
        Value::Array(a) => a.iter_mut().try_for_each(|x| resolve_bulk_ids(x, created)),
        Value::Object(o) => o
            .values_mut()
            .try_for_each(|x| resolve_bulk_ids(x, created)),
        _ => Ok(()),
    }
}

/// The order to run a bulk request's operations in so that every
/// referenced `bulkId` is created before it is used (RFC 7644 §3.7.2):
/// the request's order where it allows. Duplicate bulkIds are
/// `invalidValue`; a reference to a bulkId no operation has, or circular
/// references, are 409 (RFC 7644 §3.7.1), naming the operation.
pub fn bulk_order(ops: &[BulkOperation]) -> Result<Vec<usize>, ScimError> {
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        if let Some(id) = op.bulk_id.as_deref() {
            if by_id.insert(id, i).is_some() {
                return Err(ScimError::invalid_value(format!(
                    "operation {i} repeats the bulkId of an earlier one"
                )));
            }
        }
    }
    let mut deps: Vec<Vec<usize>> = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        let mut d = Vec::new();
        for r in op.data.as_ref().map(bulk_references).unwrap_or_default() {
            let &j = by_id.get(r.as_str()).ok_or_else(|| {
                conflict(format!("operation {i} refers to a bulkId no operation has"))
            })?;
            d.push(j);
        }
        deps.push(d);
    }
    // Repeatedly take the first operation whose references are all done.
    let mut done = vec![false; ops.len()];
    let mut order = Vec::with_capacity(ops.len());
    while order.len() < ops.len() {
        let next = (0..ops.len()).find(|&i| !done[i] && deps[i].iter().all(|&j| done[j]));
        match next {
            Some(i) => {
                done[i] = true;
                order.push(i);
            }
            None => {
                let first = (0..ops.len()).find(|&i| !done[i]).unwrap_or(0);
                return Err(conflict(format!(
                    "operation {first} is part of circular bulkId references"
                )));
            }
        }
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::OpKind;

    #[test]
    fn a_patch_request_accepts_operations_in_any_case() {
        for key in ["Operations", "operations", "OPERATIONS"] {
            let body = json!({"schemas": [PATCH_OP], key: [{"op": "Replace", "path": "active", "value": false}]});
            let r = PatchRequest::from_json(&body).unwrap();
            assert_eq!(r.operations[0].op, OpKind::Replace);
            assert_eq!(r.operations[0].path.as_deref(), Some("active"));
        }
        let r: PatchRequest = serde_json::from_str(&format!(
            r#"{{"schemas":["{PATCH_OP}"],"Operations":[{{"op":"remove","path":"title"}}]}}"#
        ))
        .unwrap();
        assert_eq!(
            r.to_json()["Operations"][0],
            json!({"op": "remove", "path": "title"})
        );
    }

    #[test]
    fn a_patch_request_without_its_schema_or_operations_is_invalid_syntax() {
        for body in [
            json!({"Operations": [{"op": "add", "value": {}}]}),
            json!({"schemas": [PATCH_OP]}),
            json!({"schemas": [PATCH_OP], "Operations": []}),
            json!([1]),
        ] {
            let e = PatchRequest::from_json(&body).unwrap_err();
            assert_eq!(e.scim_type, Some(crate::ScimType::InvalidSyntax), "{body}");
        }
        let e = PatchRequest::from_slice(b"{not json").unwrap_err();
        assert!(e.detail.contains("line 1"));
    }

    #[test]
    fn a_list_response_has_the_rfc_shape() {
        let l = ListResponse::new(vec![json!({"id": "1"})], 3, 1);
        assert_eq!(
            serde_json::to_value(&l).unwrap(),
            json!({"schemas": [LIST_RESPONSE], "totalResults": 3, "startIndex": 1, "itemsPerPage": 1,
                   "Resources": [{"id": "1"}]})
        );
    }

    #[test]
    fn a_search_request_reads_the_rfc_example() {
        // RFC 7644 §3.4.3, Figure 4.
        let r: SearchRequest = serde_json::from_value(json!({
            "schemas": [SEARCH_REQUEST],
            "attributes": ["displayName", "userName"],
            "filter": "displayName sw \"smith\"",
            "startIndex": 1,
            "count": 10
        }))
        .unwrap();
        assert_eq!(
            r.attributes.as_deref().unwrap(),
            ["displayName", "userName"]
        );
        assert_eq!((r.start_index, r.count), (Some(1), Some(10)));
        assert!(crate::Filter::parse(r.filter.as_deref().unwrap()).is_ok());
    }

    fn bulk() -> BulkRequest {
        // After RFC 7644 §3.7.2: a Group created with a member created in
        // the same request, listed before it.
        serde_json::from_value(json!({
            "schemas": [BULK_REQUEST],
            "failOnErrors": 1,
            "Operations": [
                {"method": "POST", "path": "/Groups", "bulkId": "ytrewq",
                 "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Tour Guides",
                          "members": [{"type": "User", "value": "bulkId:qwerty"}]}},
                {"method": "POST", "path": "/Users", "bulkId": "qwerty",
                 "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "Alice"}}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn bulk_operations_run_after_the_ones_they_refer_to() {
        let b = bulk();
        assert_eq!(b.fail_on_errors, Some(1));
        assert_eq!(bulk_order(&b.operations).unwrap(), [1, 0]);
        let mut data = b.operations[0].data.clone().unwrap();
        assert_eq!(bulk_references(&data), ["qwerty"]);
        let created = HashMap::from([("qwerty".to_string(), "92b725cd".to_string())]);
        resolve_bulk_ids(&mut data, &created).unwrap();
        assert_eq!(data["members"][0]["value"], "92b725cd");
    }

    #[test]
    fn unknown_and_circular_bulk_references_are_conflicts() {
        let mut b = bulk();
        b.operations[1].data =
            Some(json!({"userName": "Alice", "manager": {"value": "bulkId:ytrewq"}}));
        let e = bulk_order(&b.operations).unwrap_err();
        assert_eq!(e.status, 409);
        assert!(e.detail.contains("circular"));
        let mut b = bulk();
        b.operations[0].data = Some(json!({"members": [{"value": "bulkId:nope"}]}));
        assert_eq!(bulk_order(&b.operations).unwrap_err().status, 409);
        let mut d = json!({"value": "bulkId:nope"});
        assert_eq!(
            resolve_bulk_ids(&mut d, &HashMap::new())
                .unwrap_err()
                .status,
            409
        );
        let mut b = bulk();
        b.operations[1].bulk_id = Some("ytrewq".into());
        assert_eq!(
            bulk_order(&b.operations).unwrap_err().scim_type,
            Some(crate::ScimType::InvalidValue)
        );
    }

    #[test]
    fn a_bulk_response_carries_string_statuses_and_error_bodies() {
        let e = ScimError::new(crate::ScimType::Uniqueness, "userName is already taken");
        let r = BulkResponse::new(vec![BulkOperationResponse::failed(
            "POST",
            Some("qwerty".into()),
            &e,
        )]);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["Operations"][0]["status"], "409");
        assert_eq!(v["Operations"][0]["bulkId"], "qwerty");
        assert_eq!(v["Operations"][0]["response"]["scimType"], "uniqueness");
        assert_eq!(v["schemas"], json!([BULK_RESPONSE]));
    }
}
