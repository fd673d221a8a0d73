use super::*;
use crate::ScimType;
use serde_json::json;

const BJ: &str = "2819c223-7f76-453a-919d-413861904646";
const JS: &str = "08e1d05d-121c-4561-8b96-473d93df9210";
const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn ops(body: Value) -> Vec<PatchOperation> {
    body["Operations"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, o)| PatchOperation::from_json(o, i).unwrap())
        .collect()
}

fn body(operations: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations})
}

pub(crate) fn user() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENT],
        "id": BJ,
        "externalId": "701984",
        "userName": "bjensen@example.com",
        "name": {"familyName": "Jensen", "givenName": "Barbara"},
        "active": true,
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "addresses": [
            {"type": "work", "streetAddress": "100 Universal City Plaza", "locality": "Hollywood",
             "region": "CA", "postalCode": "91608", "country": "USA", "primary": true},
            {"type": "home", "streetAddress": "456 Hollywood Blvd", "locality": "Hollywood",
             "region": "CA", "postalCode": "91608", "country": "USA"}
        ],
        "meta": {"resourceType": "User", "created": "2010-01-23T04:56:22Z",
                 "lastModified": "2011-05-13T04:42:34Z", "version": "W/\"3694e05e9dff591\""},
        ENT: {"employeeNumber": "701984", "department": "Tour Operations"}
    })
}

fn group() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": "e9e30dba-f08f-4109-8486-d5c6a331660a",
        "displayName": "Tour Guides",
        "members": [
            {"value": BJ, "$ref": format!("https://example.com/v2/Users/{BJ}"), "display": "Babs Jensen"},
            {"value": "902c246b-6245-4190-8e05-00816be7344a", "display": "Mandy Pepperidge"}
        ]
    })
}

fn run_user(operations: Value) -> Result<PatchOutcome, ScimError> {
    apply(&user(), &ops(body(operations)), &ResourceSchemas::user())
}

fn run_group(operations: Value) -> Result<PatchOutcome, ScimError> {
    apply(&group(), &ops(body(operations)), &ResourceSchemas::group())
}

fn ok_user(operations: Value) -> Value {
    let out = run_user(operations).unwrap();
    validate(&out.resource, &ResourceSchemas::user()).unwrap();
    out.resource
}

fn err_type(r: Result<PatchOutcome, ScimError>) -> ScimType {
    r.unwrap_err().scim_type.unwrap()
}

fn member_ids(g: &Value) -> Vec<&str> {
    g["members"]
        .as_array()
        .map(|a| a.iter().map(|m| m["value"].as_str().unwrap()).collect())
        .unwrap_or_default()
}

// RFC 7644 §3.5.2.1

#[test]
fn rfc_add_a_member_to_a_group() {
    let out = run_group(json!([{
        "op": "add", "path": "members",
        "value": [{"display": "James Smith", "$ref": format!("https://example.com/v2/Users/{JS}"), "value": JS}]
    }]))
    .unwrap();
    assert!(out.changed);
    assert_eq!(
        member_ids(&out.resource),
        [BJ, "902c246b-6245-4190-8e05-00816be7344a", JS]
    );
    assert_eq!(out.resource["members"][2]["display"], "James Smith");
}

#[test]
fn rfc_add_without_a_path_merges_attributes() {
    let r = ok_user(json!([{
        "op": "add",
        "value": {"emails": [{"value": "babs@jensen.org", "type": "home"}, {"value": "b@new.org", "type": "other"}],
                  "nickname": "Babs"}
    }]));
    assert_eq!(
        r["nickName"], "Babs",
        "the attribute is stored under its schema name"
    );
    assert!(r.get("nickname").is_none());
    let emails: Vec<&str> = r["emails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["value"].as_str().unwrap())
        .collect();
    assert_eq!(
        emails,
        ["bjensen@example.com", "babs@jensen.org", "b@new.org"],
        "the existing value is not added twice"
    );
}

#[test]
fn adding_what_is_there_changes_nothing() {
    let out = run_user(json!([
        {"op": "add", "path": "emails", "value": [{"value": "BABS@jensen.org", "type": "home"}]},
        {"op": "add", "path": "userName", "value": "bjensen@example.com"},
        {"op": "replace", "path": "name", "value": {"givenName": "Barbara"}}
    ]))
    .unwrap();
    assert!(!out.changed);
    assert_eq!(out.resource, user());
}

// RFC 7644 §3.5.2.2

#[test]
fn rfc_remove_all_members() {
    let out = run_group(json!([{"op": "remove", "path": "members"}])).unwrap();
    assert!(out.resource.get("members").is_none());
}

#[test]
fn rfc_remove_one_member() {
    let out = run_group(json!([{"op": "remove", "path": format!("members[value eq \"{BJ}\"]")}]))
        .unwrap();
    assert_eq!(
        member_ids(&out.resource),
        ["902c246b-6245-4190-8e05-00816be7344a"]
    );
}

#[test]
fn rfc_remove_work_emails_by_a_complex_filter() {
    let r = ok_user(
        json!([{"op": "remove", "path": "emails[type eq \"work\" and value ew \"example.com\"]"}]),
    );
    assert_eq!(
        r["emails"],
        json!([{"value": "babs@jensen.org", "type": "home"}])
    );
}

#[test]
fn rfc_remove_one_member_and_add_another() {
    // The RFC's own example has no space between `eq` and the value.
    let out = run_group(json!([
        {"op": "remove", "path": format!("members[value eq\"{BJ}\"]")},
        {"op": "add", "path": "members", "value": [{"display": "James Smith", "value": JS}]}
    ]))
    .unwrap();
    assert_eq!(
        member_ids(&out.resource),
        ["902c246b-6245-4190-8e05-00816be7344a", JS]
    );
}

#[test]
fn rfc_remove_all_members_and_add_new_ones() {
    let out = run_group(json!([
        {"op": "remove", "path": "members"},
        {"op": "add", "path": "members", "value": [{"display": "Babs Jensen", "value": BJ}, {"display": "James Smith", "value": JS}]}
    ]))
    .unwrap();
    assert_eq!(member_ids(&out.resource), [BJ, JS]);
    assert!(out.resource["members"][0].get("$ref").is_none());
}

#[test]
fn a_filtered_remove_that_matches_nothing_is_no_target() {
    assert_eq!(
        err_type(run_group(
            json!([{"op": "remove", "path": "members[value eq \"nobody\"]"}])
        )),
        ScimType::NoTarget
    );
    assert_eq!(
        err_type(run_user(json!([{"op": "remove"}]))),
        ScimType::NoTarget
    );
}

#[test]
fn removing_an_absent_attribute_is_no_change() {
    let out = run_user(json!([{"op": "remove", "path": "nickName"}])).unwrap();
    assert!(!out.changed);
}

// RFC 7644 §3.5.2.3

#[test]
fn rfc_replace_all_members() {
    let out = run_group(json!([{
        "op": "replace", "path": "members",
        "value": [{"display": "Babs Jensen", "value": BJ}, {"display": "James Smith", "value": JS}]
    }]))
    .unwrap();
    assert_eq!(
        out.resource["members"],
        json!([{"display": "Babs Jensen", "value": BJ}, {"display": "James Smith", "value": JS}])
    );
}

#[test]
fn rfc_replace_the_work_address() {
    let r = ok_user(json!([{
        "op": "replace", "path": "addresses[type eq \"work\"]",
        "value": {"type": "work", "streetAddress": "911 Universal City Plaza", "locality": "Hollywood",
                  "region": "CA", "postalCode": "91608", "country": "US",
                  "formatted": "911 Universal City Plaza\nHollywood, CA 91608 US", "primary": true}
    }]));
    assert_eq!(
        r["addresses"][0]["streetAddress"],
        "911 Universal City Plaza"
    );
    assert_eq!(r["addresses"][0]["country"], "US");
    assert_eq!(r["addresses"][1]["streetAddress"], "456 Hollywood Blvd");
}

#[test]
fn rfc_replace_a_sub_attribute_of_the_work_address() {
    let r = ok_user(
        json!([{"op": "replace", "path": "addresses[type eq \"work\"].streetAddress", "value": "1010 Broadway Ave"}]),
    );
    assert_eq!(r["addresses"][0]["streetAddress"], "1010 Broadway Ave");
    assert_eq!(r["addresses"][0]["locality"], "Hollywood");
    assert_eq!(r["addresses"][1]["streetAddress"], "456 Hollywood Blvd");
}

#[test]
fn rfc_replace_without_a_path() {
    let r = ok_user(json!([{
        "op": "replace",
        "value": {"emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}], "nickname": "Babs"}
    }]));
    assert_eq!(
        r["emails"],
        json!([{"value": "bjensen@example.com", "type": "work", "primary": true}])
    );
    assert_eq!(r["nickName"], "Babs");
}

#[test]
fn a_filtered_replace_that_matches_nothing_is_no_target() {
    let r = run_user(
        json!([{"op": "replace", "path": "addresses[type eq \"other\"].streetAddress", "value": "x"}]),
    );
    let e = r.unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::NoTarget));
    assert!(
        !e.detail.contains("other"),
        "the detail does not echo the filter: {}",
        e.detail
    );
}

#[test]
fn replace_of_a_complex_attribute_keeps_the_sub_attributes_not_given() {
    let r = ok_user(
        json!([{"op": "replace", "path": "name", "value": {"givenName": "Babs", "familyName": null}}]),
    );
    assert_eq!(r["name"], json!({"givenName": "Babs"}));
}

// Mutability and errors (RFC 7644 §3.5.2, RFC 7643 §2.2)

#[test]
fn required_read_only_and_immutable_attributes_are_protected() {
    assert_eq!(
        err_type(run_user(json!([{"op": "remove", "path": "userName"}]))),
        ScimType::Mutability
    );
    assert_eq!(
        err_type(run_user(
            json!([{"op": "replace", "value": {"userName": null}}])
        )),
        ScimType::Mutability
    );
    assert_eq!(
        err_type(run_user(
            json!([{"op": "replace", "path": "id", "value": "x"}])
        )),
        ScimType::Mutability
    );
    assert_eq!(
        err_type(run_user(json!([{"op": "remove", "path": "meta"}]))),
        ScimType::Mutability
    );
    assert_eq!(
        err_type(run_user(
            json!([{"op": "add", "path": "groups", "value": [{"value": "g"}]}])
        )),
        ScimType::Mutability
    );
    assert_eq!(
        err_type(run_user(
            json!([{"op": "replace", "path": "schemas", "value": []}])
        )),
        ScimType::Mutability
    );
    assert_eq!(
        err_type(run_group(
            json!([{"op": "replace", "path": format!("members[value eq \"{BJ}\"].value"), "value": JS}])
        )),
        ScimType::Mutability
    );
    // The same id again is no change (Okta repeats it).
    let out = run_user(json!([{"op": "replace", "value": {"id": BJ, "active": true}}])).unwrap();
    assert!(!out.changed);
}

#[test]
fn bad_paths_values_and_bodies_have_their_scim_types() {
    assert_eq!(
        err_type(run_user(
            json!([{"op": "add", "path": "bogus", "value": "x"}])
        )),
        ScimType::InvalidPath
    );
    assert_eq!(
        err_type(run_user(
            json!([{"op": "add", "path": "name[givenName pr]", "value": "x"}])
        )),
        ScimType::InvalidPath
    );
    assert_eq!(
        err_type(run_user(
            json!([{"op": "add", "path": "emails[type eq]", "value": "x"}])
        )),
        ScimType::InvalidFilter
    );
    assert_eq!(
        err_type(run_user(
            json!([{"op": "add", "path": "active", "value": "yes"}])
        )),
        ScimType::InvalidValue
    );
    assert_eq!(
        err_type(run_user(
            json!([{"op": "add", "path": "name", "value": [1]}])
        )),
        ScimType::InvalidValue
    );
    assert_eq!(
        err_type(run_user(
            json!([{"op": "add", "path": "emails", "value": [{"bogus": 1}]}])
        )),
        ScimType::InvalidValue
    );
    assert_eq!(
        err_type(run_user(json!([{"op": "add", "value": "x"}]))),
        ScimType::InvalidValue
    );
    assert_eq!(
        err_type(run_user(json!([{"op": "add", "path": "title"}]))),
        ScimType::InvalidSyntax
    );
    let e = PatchOperation::from_json(&json!({"op": "move", "path": "x"}), 3).unwrap_err();
    assert_eq!(
        (e.scim_type, e.detail.contains("operation 3")),
        (Some(ScimType::InvalidSyntax), true)
    );
    let e =
        run_user(json!([{"op": "add", "path": "active", "value": "Secret Value"}])).unwrap_err();
    assert!(!e.detail.contains("Secret"), "{}", e.detail);
}

#[test]
fn a_failing_operation_fails_the_whole_patch() {
    let r = run_user(json!([
        {"op": "replace", "path": "title", "value": "Boss"},
        {"op": "remove", "path": "userName"}
    ]));
    assert!(r.is_err());
}

#[test]
fn setting_one_primary_clears_the_others() {
    let r = ok_user(
        json!([{"op": "add", "path": "emails", "value": [{"value": "new@example.com", "type": "other", "primary": true}]}]),
    );
    let prim: Vec<bool> = r["emails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["primary"] == json!(true))
        .collect();
    assert_eq!(prim, [false, false, true]);
    assert!(r["emails"][0].get("primary").is_none());
    let r = ok_user(
        json!([{"op": "replace", "path": "emails[type eq \"home\"].primary", "value": true}]),
    );
    assert_eq!(r["emails"][1]["primary"], true);
    assert!(r["emails"][0].get("primary").is_none());
    assert_eq!(
        err_type(run_user(
            json!([{"op": "replace", "path": "emails", "value": [
            {"value": "a@x", "primary": true}, {"value": "b@x", "primary": true}]}])
        )),
        ScimType::InvalidValue
    );
}

#[test]
fn urn_qualified_paths_and_keys_reach_the_extension() {
    let r = ok_user(json!([
        {"op": "replace", "path": format!("{ENT}:department"), "value": "Sales"},
        {"op": "add", "value": {format!("{ENT}:costCenter"): "4130", "name.middleName": "Jane"}},
        {"op": "add", "value": {ENT: {"division": "West"}}}
    ]));
    assert_eq!(
        r[ENT],
        json!({"employeeNumber": "701984", "department": "Sales", "costCenter": "4130", "division": "West"})
    );
    assert_eq!(r["name"]["middleName"], "Jane");
}

#[test]
fn an_extension_emptied_leaves_schemas_and_one_added_joins_them() {
    let r = ok_user(json!([{"op": "remove", "path": ENT}]));
    assert!(r.get(ENT).is_none());
    assert_eq!(
        r["schemas"],
        json!(["urn:ietf:params:scim:schemas:core:2.0:User"])
    );
    let out = apply(
        &r,
        &ops(body(
            json!([{"op": "add", "path": format!("{ENT}:department"), "value": "Ops"}]),
        )),
        &ResourceSchemas::user(),
    )
    .unwrap();
    assert_eq!(
        out.resource["schemas"],
        json!(["urn:ietf:params:scim:schemas:core:2.0:User", ENT])
    );
}

// Microsoft Entra ID (its "Known issues and resolutions with SCIM 2.0
// compliance" notes): capitalised ops, booleans as strings, manager as a
// bare string, adds through a filter that matches nothing, member removal
// by a value list.

#[test]
fn entra_capitalised_ops_and_string_booleans() {
    let r = ok_user(json!([{"op": "Replace", "path": "active", "value": "False"}]));
    assert_eq!(r["active"], false);
    let r = ok_user(json!([{"op": "Add", "value": {"active": "True", "displayName": "Babs"}}]));
    assert_eq!(
        (r["active"].clone(), r["displayName"].clone()),
        (json!(true), json!("Babs"))
    );
}

#[test]
fn entra_manager_as_a_bare_string() {
    let r = ok_user(json!([{"op": "Add", "path": format!("{ENT}:manager"), "value": JS}]));
    assert_eq!(r[ENT]["manager"], json!({"value": JS}));
    let r =
        ok_user(json!([{"op": "Replace", "path": format!("{ENT}:manager.value"), "value": BJ}]));
    assert_eq!(r[ENT]["manager"], json!({"value": BJ}));
    // Clearing the manager: Entra sends a remove, some clients a null.
    let r = ok_user(json!([{"op": "Replace", "path": format!("{ENT}:manager"), "value": null}]));
    assert!(r[ENT].get("manager").is_none());
}

#[test]
fn entra_adds_an_email_through_a_filter_that_matches_nothing() {
    let r = ok_user(json!([
        {"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555 0100"},
        {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "barbara@example.com"}
    ]));
    assert_eq!(
        r["phoneNumbers"],
        json!([{"type": "mobile", "value": "+1 555 0100"}])
    );
    assert_eq!(
        r["emails"][0],
        json!({"value": "barbara@example.com", "type": "work", "primary": true})
    );
}

#[test]
fn entra_removes_members_by_listing_them() {
    let out = run_group(json!([{"op": "Remove", "path": "members", "value": [{"value": BJ}, {"value": "not-a-member"}]}])).unwrap();
    assert_eq!(
        member_ids(&out.resource),
        ["902c246b-6245-4190-8e05-00816be7344a"]
    );
    let out =
        run_group(json!([{"op": "Replace", "path": "displayName", "value": "Guides"}])).unwrap();
    assert_eq!(out.resource["displayName"], "Guides");
}

// Okta ("SCIM 2.0 PATCH" in its provisioning guide): deactivation as a
// replace without a path, the Group rename repeating the id, members by
// filter.

#[test]
fn okta_deactivates_with_a_replace_without_a_path() {
    let out = run_user(json!([{"op": "replace", "value": {"active": false}}])).unwrap();
    assert!(out.changed);
    assert_eq!(out.resource["active"], false);
    let again = apply(
        &out.resource,
        &ops(body(json!([{"op": "replace", "value": {"active": false}}]))),
        &ResourceSchemas::user(),
    )
    .unwrap();
    assert!(!again.changed);
}

#[test]
fn okta_renames_a_group_repeating_its_id() {
    let out = run_group(json!([{"op": "replace", "value": {"id": "e9e30dba-f08f-4109-8486-d5c6a331660a", "displayName": "Test SCIMv2"}}])).unwrap();
    assert_eq!(out.resource["displayName"], "Test SCIMv2");
    let out = run_group(
        json!([{"op": "add", "path": "members", "value": [{"value": BJ, "display": "Babs"}]}]),
    )
    .unwrap();
    assert_eq!(
        member_ids(&out.resource).len(),
        2,
        "an existing member is not added twice"
    );
    assert_eq!(
        out.resource["members"][0]["display"], "Babs Jensen",
        "its immutable display stays"
    );
}

// The Group membership view

fn changes(operations: Value) -> Result<Vec<GroupChange>, ScimError> {
    group_changes(&ops(body(operations)), "g-1")
}

#[test]
fn group_patches_become_typed_membership_changes() {
    let c = changes(json!([
        {"op": "Add", "path": "members", "value": [{"value": "a"}, {"value": "b"}, {"value": "a"}]},
        {"op": "remove", "path": "members[value eq \"c\" or value eq \"d\"]"},
        {"op": "Remove", "path": "members", "value": [{"value": "e"}]},
        {"op": "remove", "path": "members"},
        {"op": "replace", "path": "members", "value": [{"value": "f"}]},
        {"op": "replace", "value": {"id": "g-1", "displayName": "Test SCIMv2", "externalId": "x"}},
        {"op": "replace", "path": "urn:ietf:params:scim:schemas:core:2.0:Group:displayName", "value": "n"},
        {"op": "add", "value": {"members": [{"value": "g"}]}},
        {"op": "remove", "path": "externalId"}
    ]))
    .unwrap();
    use GroupChange::*;
    assert_eq!(
        c,
        vec![
            AddMembers(vec!["a".into(), "b".into()]),
            RemoveMembers(vec!["c".into(), "d".into()]),
            RemoveMembers(vec!["e".into()]),
            RemoveAllMembers,
            ReplaceMembers(vec!["f".into()]),
            SetDisplayName("Test SCIMv2".into()),
            SetExternalId(Some("x".into())),
            SetDisplayName("n".into()),
            AddMembers(vec!["g".into()]),
            SetExternalId(None),
        ]
    );
}

#[test]
fn group_changes_refuse_what_needs_the_member_list() {
    let t = |v: Value| changes(v).unwrap_err().scim_type.unwrap();
    assert_eq!(
        t(json!([{"op": "remove", "path": "members[display eq \"x\"]"}])),
        ScimType::InvalidFilter
    );
    assert_eq!(
        t(json!([{"op": "replace", "path": "members[value eq \"x\"]", "value": {"value": "y"}}])),
        ScimType::InvalidPath
    );
    assert_eq!(
        t(json!([{"op": "remove", "path": "displayName"}])),
        ScimType::Mutability
    );
    assert_eq!(
        t(json!([{"op": "replace", "value": {"id": "other"}}])),
        ScimType::Mutability
    );
    assert_eq!(
        t(json!([{"op": "add", "path": "members", "value": [{"display": "x"}]}])),
        ScimType::InvalidValue
    );
    assert_eq!(
        t(json!([{"op": "add", "path": "bogus", "value": 1}])),
        ScimType::InvalidPath
    );
    assert_eq!(t(json!([{"op": "remove"}])), ScimType::NoTarget);
}

#[test]
fn the_fixed_user_validates_and_a_broken_one_does_not() {
    let s = ResourceSchemas::user();
    validate(&user(), &s).unwrap();
    let mut u = user();
    u["active"] = json!("true");
    assert!(validate(&u, &s).is_err());
    let mut u = user();
    u.as_object_mut().unwrap().remove("userName");
    assert!(validate(&u, &s).is_err());
    let mut u = user();
    u["emails"][1]["primary"] = json!(true);
    assert!(validate(&u, &s).is_err());
    let mut u = user();
    u["schemas"] = json!(["urn:ietf:params:scim:schemas:core:2.0:User"]);
    assert!(validate(&u, &s).is_err());
}

#[test]
fn a_value_emptied_by_nulls_is_removed() {
    let r = ok_user(
        json!([{"op": "add", "path": "emails[type eq \"home\"]", "value": {"value": null, "type": null}}]),
    );
    assert_eq!(r["emails"].as_array().unwrap().len(), 1);
    let r = ok_user(json!([{"op": "replace", "path": "emails[type eq \"home\"]", "value": {}}]));
    assert_eq!(r["emails"].as_array().unwrap().len(), 1);
    let r = ok_user(
        json!([{"op": "replace", "path": "name", "value": {"givenName": null, "familyName": null}}]),
    );
    assert!(r.get("name").is_none());
}
