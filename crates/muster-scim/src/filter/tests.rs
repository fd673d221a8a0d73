use super::eval::{matches, matches_with, EvalOptions};
use super::*;
use crate::schema::ResourceSchemas;
use crate::ScimType;
use serde_json::json;

/// Every filter example of RFC 7644 §3.4.2.2.
pub(crate) const RFC_EXAMPLES: &[&str] = &[
    r#"userName eq "bjensen""#,
    r#"name.familyName co "O'Malley""#,
    r#"userName sw "J""#,
    r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
    r#"title pr"#,
    r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
    r#"meta.lastModified ge "2011-05-13T04:42:34Z""#,
    r#"meta.lastModified lt "2011-05-13T04:42:34Z""#,
    r#"meta.lastModified le "2011-05-13T04:42:34Z""#,
    r#"title pr and userType eq "Employee""#,
    r#"title pr or userType eq "Intern""#,
    r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
    r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
    r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
    r#"userType eq "Employee" and (emails.type eq "work")"#,
    r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
    r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
];

fn p(s: &str) -> Filter {
    Filter::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn cmp(path: &str, op: CompareOp, v: CompValue) -> Filter {
    Filter::Compare {
        path: AttrPath::parse(path).unwrap(),
        op,
        value: v,
    }
}

fn s(v: &str) -> CompValue {
    CompValue::String(v.to_string())
}

fn b(f: Filter) -> Box<Filter> {
    Box::new(f)
}

#[test]
fn every_rfc_example_parses_and_prints_back_to_the_same_text() {
    for (i, ex) in RFC_EXAMPLES.iter().enumerate() {
        let f = p(ex);
        if i != 14 {
            // Example 14's redundant parentheses are not kept (below).
            assert_eq!(&f.to_string(), ex, "canonical form of {ex}");
        }
        assert_eq!(p(&f.to_string()), f);
    }
}

#[test]
fn the_rfc_examples_have_the_expected_trees() {
    assert_eq!(
        p(RFC_EXAMPLES[0]),
        cmp("userName", CompareOp::Eq, s("bjensen"))
    );
    let f = p(RFC_EXAMPLES[3]);
    let Filter::Compare { path, op, .. } = &f else {
        panic!()
    };
    assert_eq!(
        path.urn.as_deref(),
        Some("urn:ietf:params:scim:schemas:core:2.0:User")
    );
    assert_eq!((path.name.as_str(), *op), ("userName", CompareOp::Sw));
    assert_eq!(p(RFC_EXAMPLES[4]), Filter::Present(AttrPath::new("title")));
    assert_eq!(
        p(RFC_EXAMPLES[13]),
        Filter::And(
            b(cmp("userType", CompareOp::Ne, s("Employee"))),
            b(Filter::Not(b(Filter::Or(
                b(cmp("emails", CompareOp::Co, s("example.com"))),
                b(cmp("emails.value", CompareOp::Co, s("example.org"))),
            ))))
        )
    );
    assert_eq!(
        p(RFC_EXAMPLES[15]),
        Filter::And(
            b(cmp("userType", CompareOp::Eq, s("Employee"))),
            b(Filter::ValuePath {
                path: AttrPath::new("emails"),
                filter: b(Filter::And(
                    b(cmp("type", CompareOp::Eq, s("work"))),
                    b(cmp("value", CompareOp::Co, s("@example.com"))),
                )),
            })
        )
    );
    // Parentheses around a single term leave no trace in the tree.
    assert_eq!(
        p(RFC_EXAMPLES[14]).to_string(),
        r#"userType eq "Employee" and emails.type eq "work""#
    );
}

#[test]
fn not_binds_tighter_than_and_and_and_tighter_than_or() {
    let f = p("a pr or b pr and c pr");
    assert_eq!(
        f,
        Filter::Or(
            b(Filter::Present(AttrPath::new("a"))),
            b(Filter::And(
                b(Filter::Present(AttrPath::new("b"))),
                b(Filter::Present(AttrPath::new("c")))
            ))
        )
    );
    let g = p("a pr and b pr or c pr");
    assert!(matches!(g, Filter::Or(ref l, _) if matches!(**l, Filter::And(..))));
    let h = p("not (a pr) and b pr");
    assert!(matches!(h, Filter::And(ref l, _) if matches!(**l, Filter::Not(_))));
    // Left associativity; a right-nested group keeps its parentheses.
    assert_eq!(
        p("a pr and b pr and c pr").to_string(),
        "a pr and b pr and c pr"
    );
    assert_eq!(
        p("a pr and (b pr and c pr)").to_string(),
        "a pr and (b pr and c pr)"
    );
    assert_eq!(
        p("(a pr or b pr) and c pr").to_string(),
        "(a pr or b pr) and c pr"
    );
    assert_eq!(
        p("a pr or (b pr or c pr)").to_string(),
        "a pr or (b pr or c pr)"
    );
}

#[test]
fn keywords_and_operators_are_case_insensitive_and_print_in_lower_case() {
    let f = p(r#"userName EQ "x" AND NOT (title Pr) Or active eq TRUE"#);
    assert_eq!(
        f.to_string(),
        r#"userName eq "x" and not (title pr) or active eq true"#
    );
}

#[test]
fn literals_are_json_with_escapes_numbers_and_keywords() {
    let f = p(r#"displayName eq "a \"q\" \\ \u00e9\n""#);
    assert_eq!(f, cmp("displayName", CompareOp::Eq, s("a \"q\" \\ é\n")));
    assert_eq!(p(&f.to_string()), f);
    assert_eq!(
        p("x gt -1.5e3"),
        cmp(
            "x",
            CompareOp::Gt,
            CompValue::Number(serde_json::Number::from_f64(-1500.0).unwrap())
        )
    );
    assert_eq!(
        p("x eq 42"),
        cmp("x", CompareOp::Eq, CompValue::Number(42.into()))
    );
    assert_eq!(p("x eq null"), cmp("x", CompareOp::Eq, CompValue::Null));
    assert_eq!(
        p("x ne False"),
        cmp("x", CompareOp::Ne, CompValue::Bool(false))
    );
}

#[test]
fn parse_errors_are_invalid_filter_with_the_offset_and_what_was_expected() {
    let cases = [
        ("", 0, "an attribute path"),
        ("userName", 8, "a space and an operator"),
        ("userName xx \"a\"", 9, "an operator"),
        ("userName eq", 11, "a space and a value"),
        ("userName eq bjensen", 12, "a value"),
        ("userName eq \"bjensen", 20, "closing quote"),
        ("title pr and", 12, "a space"),
        ("title pr junk", 9, "\"and\", \"or\" or the end"),
        ("(title pr", 9, "\")\""),
        ("emails[type eq \"work\"", 21, "\"]\""),
        (
            "emails[type[value pr]]",
            11,
            "no value path inside a value path",
        ),
        ("x eq 01", 5, "a JSON number"),
        ("x eq \"\\q\"", 5, "valid escapes"),
        ("1x pr", 0, "an attribute name"),
    ];
    for (src, off, what) in cases {
        let e = Filter::parse(src).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{src}");
        assert_eq!(e.status, 400);
        assert!(
            e.detail.contains(&format!("offset {off}")),
            "{src}: {}",
            e.detail
        );
        assert!(e.detail.contains(what), "{src}: {}", e.detail);
    }
}

#[test]
fn an_error_never_echoes_the_value() {
    let e = Filter::parse(r#"userName eq "Jensen" xyzzy"#).unwrap_err();
    assert!(
        !e.detail.contains("Jensen") && !e.detail.contains("xyzzy"),
        "{}",
        e.detail
    );
}

#[test]
fn input_is_bounded_in_length_and_depth_without_overflowing_the_stack() {
    let long = format!("userName eq \"{}\"", "a".repeat(MAX_FILTER_LEN));
    let e = Filter::parse(&long).unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::InvalidFilter));

    let deep = format!("{}a pr{}", "(".repeat(2000), ")".repeat(2000));
    assert!(deep.len() <= MAX_FILTER_LEN);
    assert_eq!(
        Filter::parse(&deep).unwrap_err().scim_type,
        Some(ScimType::InvalidFilter)
    );
    let nots = format!("{}a pr{}", "not (".repeat(800), ")".repeat(800));
    assert_eq!(
        Filter::parse(&nots).unwrap_err().scim_type,
        Some(ScimType::InvalidFilter)
    );
    let chain = vec!["a pr"; 400].join(" or ");
    assert!(chain.len() <= MAX_FILTER_LEN);
    let e = Filter::parse(&chain).unwrap_err();
    assert!(e.detail.contains("levels deep"), "{}", e.detail);

    let ok = vec!["a pr"; MAX_DEPTH].join(" or ");
    let f = p(&ok);
    assert_eq!(f.cost().comparisons, MAX_DEPTH);
    assert!(f.cost().depth <= MAX_DEPTH + 1);
    let nested = format!(
        "{}a pr{}",
        "(".repeat(MAX_DEPTH - 1),
        ")".repeat(MAX_DEPTH - 1)
    );
    assert!(Filter::parse(&nested).is_ok());
}

#[test]
fn the_server_can_see_an_indexed_equality() {
    let f = p(r#"userName eq "bjensen""#);
    let (path, v) = f.indexed_eq().unwrap();
    assert_eq!((path.name.as_str(), v), ("userName", "bjensen"));
    assert!(f.index_answerable(&["username"]));
    assert!(
        p(r#"userName eq "a" or externalId eq "b""#).index_answerable(&["userName", "externalId"])
    );
    assert!(p(r#"userName eq "a" and title pr"#).index_answerable(&["userName"]));
    assert!(!p(r#"userName eq "a" or title pr"#).index_answerable(&["userName"]));
    assert!(!p(r#"userName co "a""#).index_answerable(&["userName"]));
    assert_eq!(
        p(RFC_EXAMPLES[16]).cost(),
        Cost {
            nodes: 9,
            comparisons: 4,
            depth: 4
        }
    );
}

#[test]
fn patch_paths_take_a_value_path_and_a_sub_attribute() {
    let pp = PatchPath::parse(r#"addresses[type eq "work"].streetAddress"#).unwrap();
    assert_eq!(pp.attr, AttrPath::new("addresses"));
    assert_eq!(pp.filter, Some(cmp("type", CompareOp::Eq, s("work"))));
    assert_eq!(pp.sub.as_deref(), Some("streetAddress"));
    assert_eq!(pp.to_string(), r#"addresses[type eq "work"].streetAddress"#);

    let pp =
        PatchPath::parse(r#"members[value eq "2819c223-7f76-453a-919d-413861904646"]"#).unwrap();
    assert!(pp.sub.is_none() && pp.filter.is_some());
    let pp = PatchPath::parse(
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
    )
    .unwrap();
    assert_eq!(pp.attr.sub.as_deref(), Some("value"));

    for bad in [
        "emails[type eq \"work\"]x",
        "name.x[a pr]",
        "emails[type eq \"w\"].",
        "",
    ] {
        let e = PatchPath::parse(bad).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidPath), "{bad}");
    }
    for bad in ["emails[type eq]", "emails["] {
        let e = PatchPath::parse(bad).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{bad}");
    }
}

fn user() -> serde_json::Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "701984",
        "userName": "bjensen@example.com",
        "name": {"familyName": "O'Malley", "givenName": "Barbara"},
        "title": "Tour Guide",
        "userType": "Employee",
        "active": true,
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "meta": {"resourceType": "User", "lastModified": "2011-05-13T04:42:34Z",
                 "created": "2010-01-23T04:56:22Z"},
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "701984", "department": "Tour Operations",
            "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}
        }
    })
}

fn m(f: &str) -> bool {
    matches(&p(f), &user(), &ResourceSchemas::user()).unwrap_or_else(|e| panic!("{f}: {e}"))
}

#[test]
fn the_rfc_examples_evaluate_against_a_user() {
    let expected = [
        false, true, false, false, true, false, true, false, true, true, true, true, true, false,
        true, true, true,
    ];
    for (ex, want) in RFC_EXAMPLES.iter().zip(expected) {
        assert_eq!(m(ex), want, "{ex}");
    }
}

#[test]
fn strings_compare_without_case_unless_case_exact() {
    assert!(m(r#"userName eq "BJENSEN@example.com""#));
    assert!(m(r#"USERNAME sw "bJ""#));
    assert!(m(r#"name.familyName ew "MALLEY""#));
    assert!(m(r#"externalId eq "701984""#));
    assert!(
        !m(r#"id eq "2819C223-7F76-453A-919D-413861904646""#),
        "id is caseExact"
    );
    assert!(m(r#"id eq "2819c223-7f76-453a-919d-413861904646""#));
    assert!(m(r#"title gt "Tour" and title lt "tour guidf""#));
}

#[test]
fn datetimes_compare_as_instants() {
    assert!(m(r#"meta.lastModified eq "2011-05-13T06:42:34+02:00""#));
    assert!(m(r#"meta.lastModified gt "2011-05-13T04:42:33.999Z""#));
    assert!(!m(r#"meta.lastModified gt "2011-05-13T06:42:34+02:00""#));
}

#[test]
fn multi_valued_and_value_paths_match_when_any_value_does() {
    assert!(m(r#"emails.value ew "jensen.org""#));
    assert!(m(r#"emails[type eq "home" and value sw "babs"]"#));
    assert!(!m(r#"emails[type eq "work" and value sw "babs"]"#));
    assert!(m(r#"emails[primary eq true]"#));
    assert!(m(r#"emails.primary eq true"#));
    assert!(!m(r#"emails.type ne "home""#), "ne is the negation of eq");
    assert!(m(r#"emails.type ne "other""#));
}

#[test]
fn extension_attributes_are_found_by_their_urn() {
    assert!(m(
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "tour operations""#
    ));
    assert!(m(
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d""#
    ));
    assert!(m(
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager eq "26118915-6090-4610-87e4-49d8ca9f808d""#
    ));
    assert!(
        !m(r#"department eq "Tour Operations""#),
        "unqualified extension names are unknown"
    );
}

#[test]
fn presence_absence_and_null() {
    assert!(m("name pr"));
    assert!(!m("nickName pr"));
    assert!(m("nickName eq null"));
    assert!(!m("title eq null"));
    assert!(m("nickName ne \"x\""));
    let r = json!({"userName": "", "emails": [], "name": {}, "title": null});
    let sc = ResourceSchemas::user();
    for f in ["userName pr", "emails pr", "name pr", "title pr"] {
        assert!(!matches(&p(f), &r, &sc).unwrap(), "{f}");
    }
}

#[test]
fn booleans_take_only_eq_and_ne_and_type_mismatches_match_nothing() {
    assert!(m("active eq true"));
    assert!(m("active ne false"));
    assert!(!m(r#"active eq "true""#));
    for f in ["active gt true", "active co \"t\"", "x gt null"] {
        let e = matches_with(
            &p(f),
            &user(),
            &ResourceSchemas::user(),
            EvalOptions::default(),
        );
        if f.starts_with("x ") {
            assert!(!e.unwrap());
        } else {
            assert_eq!(
                e.unwrap_err().scim_type,
                Some(ScimType::InvalidFilter),
                "{f}"
            );
        }
    }
    let e = matches(&p("name eq \"x\""), &user(), &ResourceSchemas::user()).unwrap_err();
    assert!(e.detail.contains("complex"));
}

#[test]
fn unknown_attributes_match_nothing_unless_strict() {
    assert!(!m(r#"nosuch eq "x""#));
    assert!(m(r#"not (nosuch pr)"#), "an unknown attribute is absent");
    let strict = EvalOptions { strict: true };
    let e = matches_with(&p("nosuch pr"), &user(), &ResourceSchemas::user(), strict).unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::InvalidFilter));
    assert!(matches_with(&p("title pr"), &user(), &ResourceSchemas::user(), strict).unwrap());
}

#[test]
fn debug_output_hides_the_literals_and_patch_values() {
    let f = p(r#"userName eq "bjensen" and x eq 42"#);
    let d = format!("{f:?}");
    assert!(
        !d.contains("bjensen") && !d.contains("42") && d.contains("<redacted>"),
        "{d}"
    );
    let op = crate::patch::PatchOperation::from_json(
        &json!({"op": "add", "path": "emails[value eq \"a@b\"]", "value": "secret"}),
        0,
    )
    .unwrap();
    let d = format!("{op:?}");
    assert!(!d.contains("a@b") && !d.contains("secret"), "{d}");
}

#[test]
fn numbers_print_in_a_form_that_parses_back_to_the_same_number() {
    for lit in [
        "-0",
        "0",
        "1E5",
        "1e-7",
        "-12.50",
        "123456789012345678901234567890",
        "18446744073709551615",
        "-9223372036854775808",
        "2.5e+3",
        "1e-63",
        "0.1",
        "5e-324",
        "1.7976931348623157e308",
    ] {
        let f = p(&format!("x eq {lit}"));
        assert_eq!(p(&f.to_string()), f, "{lit} printed as {f}");
    }
    for bad in [
        "x eq 1e400",
        "x eq +1",
        "x eq 1.",
        "x eq .5",
        "x eq -",
        "x eq 0x10",
    ] {
        assert!(Filter::parse(bad).is_err(), "{bad}");
    }
}
