//! The entry points of the `scim_filter` and `scim_patch` fuzz targets
//! (`fuzz/`, see `docs/fuzzing.md`), also run over the committed corpora
//! by this crate's `tests/scim/fuzz_corpus.rs`. Each returns for every
//! input and asserts what must hold; a panic is a bug.
use crate::filter::eval::{matches_with, EvalOptions};
use crate::patch::{apply, group_changes, validate};
use crate::projection::{project, Projection};
use crate::schema::{
    custom_extension, AttrType, CustomAttr, ResourceSchemas, MUSTER_USER_EXTENSION,
};
use crate::sort::SortBy;
use crate::{Filter, PatchPath, PatchRequest};
use serde_json::{json, Value};

/// The schemas of the fixed User: core, Enterprise and a custom extension.
pub fn user_schemas() -> ResourceSchemas {
    let attrs = [
        ("badgeId", AttrType::String, false),
        ("floors", AttrType::Integer, true),
        ("hired", AttrType::DateTime, false),
        ("remote", AttrType::Boolean, false),
        ("fte", AttrType::Decimal, false),
    ];
    let attrs: Vec<CustomAttr> = attrs
        .iter()
        .map(|(n, t, m)| CustomAttr {
            name: n.to_string(),
            attr_type: *t,
            multi_valued: *m,
        })
        .collect();
    match custom_extension(MUSTER_USER_EXTENSION, "MusterUser", &attrs) {
        Ok(ext) => ResourceSchemas::user().with_extension(ext),
        Err(_) => ResourceSchemas::user(),
    }
}

/// The fixed User the targets work on.
pub fn fixed_user() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
                    MUSTER_USER_EXTENSION],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "701984",
        "userName": "bjensen@example.com",
        "name": {"formatted": "Ms. Barbara J Jensen, III", "familyName": "Jensen", "givenName": "Barbara",
                 "middleName": "Jane", "honorificPrefix": "Ms.", "honorificSuffix": "III"},
        "displayName": "Babs Jensen",
        "nickName": "Babs",
        "title": "Tour Guide",
        "userType": "Employee",
        "preferredLanguage": "en-US",
        "locale": "en-US",
        "timezone": "America/Los_Angeles",
        "active": true,
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "phoneNumbers": [{"value": "555-555-5555", "type": "work"}, {"value": "555-555-4444", "type": "mobile"}],
        "addresses": [
            {"type": "work", "streetAddress": "100 Universal City Plaza", "locality": "Hollywood",
             "region": "CA", "postalCode": "91608", "country": "USA", "primary": true},
            {"type": "home", "streetAddress": "456 Hollywood Blvd", "locality": "Hollywood",
             "region": "CA", "postalCode": "91608", "country": "USA"}
        ],
        "groups": [{"value": "e9e30dba-f08f-4109-8486-d5c6a331660a", "display": "Tour Guides", "type": "direct"}],
        "roles": [{"value": "guide", "primary": true}],
        "meta": {"resourceType": "User", "created": "2010-01-23T04:56:22Z",
                 "lastModified": "2011-05-13T04:42:34Z", "version": "W/\"3694e05e9dff591\"",
                 "location": "https://example.com/v2/Users/2819c223-7f76-453a-919d-413861904646"},
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "701984", "costCenter": "4130", "organization": "Universal Studios",
            "division": "Theme Park", "department": "Tour Operations",
            "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d", "displayName": "John Smith"}
        },
        MUSTER_USER_EXTENSION: {"badgeId": "B-17", "floors": [3, 4], "hired": "2009-04-01T09:00:00+02:00",
                                "remote": false, "fte": 0.8}
    })
}

/// The fixed Group.
pub fn fixed_group() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": "e9e30dba-f08f-4109-8486-d5c6a331660a",
        "externalId": "tour-guides",
        "displayName": "Tour Guides",
        "members": [
            {"value": "2819c223-7f76-453a-919d-413861904646", "display": "Babs Jensen", "type": "User",
             "$ref": "https://example.com/v2/Users/2819c223-7f76-453a-919d-413861904646"},
            {"value": "902c246b-6245-4190-8e05-00816be7344a", "display": "Mandy Pepperidge", "type": "User"}
        ],
        "meta": {"resourceType": "Group", "created": "2010-01-23T04:56:22Z", "lastModified": "2011-05-13T04:42:34Z"}
    })
}

/// Filter text: parse; the canonical form re-parses to the same AST and
/// prints the same; evaluation (lenient and strict) returns, and `not`
/// inverts it; the same text as a PATCH path, an `attributes` list and a
/// `sortBy`.
pub fn filter(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let user = fixed_user();
    let schemas = user_schemas();
    if let Ok(f) = Filter::parse(text) {
        let printed = f.to_string();
        match Filter::parse(&printed) {
            Ok(again) => {
                assert_eq!(again, f, "the canonical form parses to another filter");
                assert_eq!(
                    again.to_string(),
                    printed,
                    "the canonical form is not stable"
                );
            }
            Err(e) => panic!("the canonical form does not parse: {e}"),
        }
        let cost = f.cost();
        assert!(cost.depth <= crate::filter::MAX_DEPTH + 1 && cost.comparisons <= cost.nodes);
        let _ = f.index_answerable(&["id", "userName", "externalId"]);
        for strict in [false, true] {
            let opts = EvalOptions { strict };
            let yes = matches_with(&f, &user, &schemas, opts);
            let no = matches_with(&Filter::Not(Box::new(f.clone())), &user, &schemas, opts);
            match (yes, no) {
                (Ok(a), Ok(b)) => assert_ne!(a, b, "not does not invert the filter"),
                (Err(a), Err(b)) => assert_eq!(a, b),
                _ => panic!("a filter and its negation disagree on failing"),
            }
        }
        let _ = matches_with(
            &f,
            &fixed_group(),
            &ResourceSchemas::group(),
            EvalOptions::default(),
        );
    }
    if let Ok(p) = PatchPath::parse(text) {
        match PatchPath::parse(&p.to_string()) {
            Ok(again) => assert_eq!(again, p, "a PATCH path prints as another"),
            Err(e) => panic!("a printed PATCH path does not parse: {e}"),
        }
    }
    if let Ok(p) = Projection::parse(Some(text), None) {
        let out = project(&user, &schemas, &p);
        assert_eq!(out.get("id"), user.get("id"), "id is always returned");
    }
    if let Ok(p) = Projection::parse(None, Some(text)) {
        let out = project(&user, &schemas, &p);
        assert_eq!(
            out.get("schemas"),
            user.get("schemas"),
            "schemas is always returned"
        );
    }
    if let Ok(s) = SortBy::new(text, None, &schemas) {
        let mut v = vec![user.clone(), fixed_group(), json!({})];
        s.sort(&mut v, &schemas);
    }
}

/// A PATCH body applied to the fixed User and the fixed Group: a success
/// validates against the schemas and reports `changed` truly; a failure
/// is a 4xx with a `scimType`; the Group's typed changes return.
pub fn patch(data: &[u8]) {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let ops = match PatchRequest::from_json(&body) {
        Ok(r) => r.operations,
        Err(e) => {
            assert!(e.scim_type.is_some() && e.status == 400);
            return;
        }
    };
    let targets = [
        (fixed_user(), user_schemas()),
        (fixed_group(), ResourceSchemas::group()),
    ];
    for (resource, schemas) in &targets {
        match apply(resource, &ops, schemas) {
            Ok(out) => {
                if let Err(e) = validate(&out.resource, schemas) {
                    panic!("a PATCH result does not validate: {e}");
                }
                assert_eq!(out.changed, &out.resource != resource);
            }
            Err(e) => {
                assert!(
                    e.scim_type.is_some(),
                    "a PATCH error without a scimType: {e}"
                );
                assert_eq!(e.status, 400, "{e}");
            }
        }
    }
    let _ = group_changes(&ops, "e9e30dba-f08f-4109-8486-d5c6a331660a");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixed_resources_validate() {
        validate(&fixed_user(), &user_schemas()).unwrap();
        validate(&fixed_group(), &ResourceSchemas::group()).unwrap();
        assert_eq!(user_schemas().extensions.len(), 2);
    }
}
