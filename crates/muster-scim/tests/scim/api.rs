//! The crate as the `/scim/v2` door will use it: a list request with a
//! filter, a projection and a sort; a PATCH from the wire; a Group PATCH
//! as membership changes; an error body.
use muster_scim::filter::eval::matches;
use muster_scim::schema::ResourceSchemas;
use muster_scim::{
    apply, group_changes, project, Filter, GroupChange, ListResponse, PatchRequest, Projection,
    ScimError, SortBy,
};
use serde_json::{json, Value};

fn people() -> Vec<Value> {
    ["carol", "Alice", "bob"]
        .iter()
        .enumerate()
        .map(|(i, n)| {
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": i.to_string(), "userName": n,
                   "active": i != 1, "emails": [{"value": format!("{n}@example.com"), "type": "work"}]})
        })
        .collect()
}

#[test]
fn a_filtered_sorted_projected_list_response() {
    let schemas = ResourceSchemas::user();
    let f = Filter::parse("active eq true and emails[type eq \"work\"]").unwrap();
    assert!(!f.index_answerable(&["userName"]));
    let mut hits: Vec<Value> = people()
        .into_iter()
        .filter(|p| matches(&f, p, &schemas).unwrap())
        .collect();
    SortBy::new("userName", Some("ascending"), &schemas)
        .unwrap()
        .sort(&mut hits, &schemas);
    let p = Projection::parse(Some("userName"), None).unwrap();
    let page: Vec<Value> = hits.iter().map(|r| project(r, &schemas, &p)).collect();
    let body = serde_json::to_value(ListResponse::new(page, 2, 1)).unwrap();
    assert_eq!(
        body,
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "totalResults": 2,
               "startIndex": 1, "itemsPerPage": 2,
               "Resources": [
                   {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": "2", "userName": "bob"},
                   {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": "0", "userName": "carol"}]})
    );
}

#[test]
fn a_patch_from_the_wire_and_an_unchanged_repeat() {
    let schemas = ResourceSchemas::user();
    let body = br#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations":[{"op":"Replace","path":"active","value":"False"}]}"#;
    let req = PatchRequest::from_slice(body).unwrap();
    let first = apply(&people()[0], &req.operations, &schemas).unwrap();
    assert!(first.changed);
    assert_eq!(first.resource["active"], false);
    let again = apply(&first.resource, &req.operations, &schemas).unwrap();
    assert!(!again.changed);
}

#[test]
fn a_group_patch_as_membership_changes() {
    let req: PatchRequest = serde_json::from_value(json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "remove", "path": "members[value eq \"u1\"]"},
                       {"op": "add", "path": "members", "value": [{"value": "u2"}]}]
    }))
    .unwrap();
    assert_eq!(
        group_changes(&req.operations, "g").unwrap(),
        [
            GroupChange::RemoveMembers(vec!["u1".into()]),
            GroupChange::AddMembers(vec!["u2".into()])
        ]
    );
}

#[test]
fn an_error_body_names_the_position_not_the_value() {
    let e: ScimError = Filter::parse("userName eq \"Barbara Jensen\" garbage").unwrap_err();
    let v = serde_json::to_value(&e).unwrap();
    assert_eq!(v["status"], "400");
    assert_eq!(v["scimType"], "invalidFilter");
    let d = v["detail"].as_str().unwrap();
    assert!(
        d.contains("offset 29") && !d.contains("Barbara") && !d.contains("garbage"),
        "{d}"
    );
}
