//! Person records: what a source says about a person ([`Incoming`]), what is
//! stored ([`PersonState`]), how the one is applied to the other, and the
//! field-level diff that audit entries and change events carry.
use crate::ids::ExternalId;
use crate::policy::WritePolicy;
use crate::schema::ROLES;
use crate::value::{AttrValue, Attributes};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// What one row, API call or login says about one person. An attribute
/// mapped to `None` is cleared (the source says it has no value); an
/// attribute absent from `attrs` is left as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub external_id: ExternalId,
    pub attrs: BTreeMap<String, Option<AttrValue>>,
    /// `None`: the source says nothing of roles.
    pub roles: Option<BTreeSet<String>>,
}

impl Incoming {
    pub fn new(external_id: ExternalId) -> Self {
        Self {
            external_id,
            attrs: BTreeMap::new(),
            roles: None,
        }
    }

    /// The part of a fingerprint that depends on who writes: computed once
    /// per batch, not per record.
    pub fn fingerprint_key(writer: &str, policy: &WritePolicy) -> FingerprintKey {
        let mut h = Sha256::new();
        h.update(writer.as_bytes());
        h.update([0]);
        h.update(policy.fingerprint().as_bytes());
        h.update([0]);
        FingerprintKey(h)
    }

    /// A digest of this record as written by `writer` under `policy`.
    ///
    /// Applying the same record with the same policy twice gives the same
    /// state, so a store that remembers the fingerprint of the write that
    /// produced a person's current state can skip an identical record
    /// without decoding what it stored.
    pub fn fingerprint(&self, writer: &str, policy: &WritePolicy) -> [u8; 16] {
        self.fingerprint_with(&Self::fingerprint_key(writer, policy))
    }

    pub fn fingerprint_with(&self, key: &FingerprintKey) -> [u8; 16] {
        let mut h = key.0.clone();
        let mut bytes = |tag: u8, b: &[u8]| {
            h.update([tag]);
            h.update((b.len() as u32).to_be_bytes());
            h.update(b);
        };
        bytes(b'k', self.external_id.as_str().as_bytes());
        for (k, v) in &self.attrs {
            bytes(b'a', k.as_bytes());
            match v.as_ref().map(AttrValue::expose) {
                None => bytes(b'n', b""),
                Some(serde_json::Value::String(s)) => bytes(b's', s.as_bytes()),
                Some(other) => bytes(b'j', other.to_string().as_bytes()),
            }
        }
        if let Some(roles) = &self.roles {
            bytes(b'r', b"");
            for r in roles {
                bytes(b'o', r.as_bytes());
            }
        }
        let full = h.finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        out
    }
}

/// See [`Incoming::fingerprint_key`].
#[derive(Clone)]
pub struct FingerprintKey(Sha256);

/// A stored person's attributes and roles.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PersonState {
    pub attrs: Attributes,
    pub roles: BTreeSet<String>,
}

/// The state after applying `incoming` to `stored`. The policy must already
/// have been checked ([`WritePolicy::violations`] empty); it matters here
/// only for roles: a client changes membership of the roles it may grant,
/// and roles outside its policy stay as they were.
pub fn apply(
    stored: Option<&PersonState>,
    incoming: &Incoming,
    policy: &WritePolicy,
) -> PersonState {
    let mut next = stored.cloned().unwrap_or_default();
    for (k, v) in &incoming.attrs {
        match v {
            Some(v) => {
                next.attrs.insert(k.clone(), v.clone());
            }
            None => {
                next.attrs.remove(k);
            }
        }
    }
    if let Some(roles) = &incoming.roles {
        if policy.all_roles() {
            next.roles = roles.clone();
        } else {
            next.roles.retain(|r| !policy.may_grant(r));
            next.roles.extend(roles.iter().cloned());
        }
    }
    next
}

/// One attribute's change; `roles` appears as a sorted array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    pub attribute: String,
    pub before: Option<AttrValue>,
    pub after: Option<AttrValue>,
}

pub fn diff(before: Option<&PersonState>, after: &PersonState) -> Vec<FieldChange> {
    let empty = PersonState::default();
    let before = before.unwrap_or(&empty);
    let mut out = Vec::new();
    let names: BTreeSet<&String> = before.attrs.keys().chain(after.attrs.keys()).collect();
    for name in names {
        let b = before.attrs.get(name);
        let a = after.attrs.get(name);
        if b != a {
            out.push(FieldChange {
                attribute: name.clone(),
                before: b.cloned(),
                after: a.cloned(),
            });
        }
    }
    if before.roles != after.roles {
        let arr = |s: &BTreeSet<String>| {
            if s.is_empty() {
                None
            } else {
                Some(AttrValue::from_json(serde_json::Value::from(
                    s.iter().cloned().collect::<Vec<_>>(),
                )))
            }
        };
        out.push(FieldChange {
            attribute: ROLES.into(),
            before: arr(&before.roles),
            after: arr(&after.roles),
        });
    }
    out
}

/// A value in a change record: an attribute's value or the role set.
#[derive(Clone, Copy)]
enum ValRef<'a> {
    Attr(&'a AttrValue),
    Roles(&'a BTreeSet<String>),
}

impl Serialize for ValRef<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ValRef::Attr(v) => v.serialize(s),
            ValRef::Roles(r) => s.collect_seq(r.iter()),
        }
    }
}

fn roles_ref(r: &BTreeSet<String>) -> Option<ValRef<'_>> {
    (!r.is_empty()).then_some(ValRef::Roles(r))
}

/// Field order is alphabetical, so this text is what a JSON value with
/// sorted keys would print: one canonical form.
#[derive(Serialize)]
struct ChangeRef<'a> {
    after: Option<ValRef<'a>>,
    attribute: &'a str,
    before: Option<ValRef<'a>>,
}

#[derive(Serialize)]
struct DetailRef<'a> {
    changes: Vec<ChangeRef<'a>>,
    version: i64,
}

/// The audit detail of a change, as canonical JSON text:
/// `{"changes":[{"after":..,"attribute":..,"before":..}],"version":N}`.
/// Written straight from the two states, without copying their values.
pub fn change_detail_json(
    before: Option<&PersonState>,
    after: &PersonState,
    version: i64,
) -> String {
    let empty = PersonState::default();
    let b = before.unwrap_or(&empty);
    let mut changes = Vec::new();
    let names: BTreeSet<&String> = b.attrs.keys().chain(after.attrs.keys()).collect();
    for name in names {
        let (x, y) = (b.attrs.get(name), after.attrs.get(name));
        if x != y {
            changes.push(ChangeRef {
                after: y.map(ValRef::Attr),
                attribute: name,
                before: x.map(ValRef::Attr),
            });
        }
    }
    if b.roles != after.roles {
        changes.push(ChangeRef {
            after: roles_ref(&after.roles),
            attribute: ROLES,
            before: roles_ref(&b.roles),
        });
    }
    serde_json::to_string(&DetailRef { changes, version }).unwrap_or_default()
}

/// The audit detail of a change as it is stored (and hashed). A creation
/// keeps only the new state, `{"created":{..},"roles":[..],"version":N}`:
/// its diff would repeat every attribute's name with a null before it, and
/// creations are most of what a first import writes, to the largest table.
/// Readers see [`display_detail`], the diff, either way.
pub fn stored_detail_json(
    before: Option<&PersonState>,
    after: &PersonState,
    version: i64,
) -> String {
    match before {
        Some(b) => change_detail_json(Some(b), after, version),
        None => {
            let attrs = serde_json::to_string(&after.attrs).unwrap_or_default();
            let roles = serde_json::to_string(&after.roles).unwrap_or_default();
            created_detail_json(&attrs, &roles, version)
        }
    }
}

/// The stored detail of a creation from the new state's attributes and
/// roles as JSON text (as `person_data` keeps them).
pub fn created_detail_json(attrs_json: &str, roles_json: &str, version: i64) -> String {
    format!("{{\"created\":{attrs_json},\"roles\":{roles_json},\"version\":{version}}}")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreatedDetail {
    created: Attributes,
    roles: BTreeSet<String>,
    version: i64,
}

/// The detail readers see: the canonical diff ([`change_detail_json`]). A
/// stored creation is expanded; anything else (a diff, or text that was
/// edited and no longer parses) is given as stored.
pub fn display_detail(stored: &str) -> std::borrow::Cow<'_, str> {
    if stored.starts_with("{\"created\":") {
        if let Ok(c) = serde_json::from_str::<CreatedDetail>(stored) {
            let state = PersonState {
                attrs: c.created,
                roles: c.roles,
            };
            return change_detail_json(None, &state, c.version).into();
        }
    }
    stored.into()
}

/// [`display_detail`] of an owned text, copying only what it expands.
pub fn into_display_detail(stored: String) -> String {
    match display_detail(&stored) {
        std::borrow::Cow::Owned(shown) => shown,
        std::borrow::Cow::Borrowed(_) => stored,
    }
}

/// What kind of change a write is, for counts and events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Created,
    Updated,
    Deactivated,
    Reactivated,
    Unchanged,
}

impl ChangeKind {
    /// The audit action and event name: `person.created`, ...
    pub fn event_name(self) -> &'static str {
        match self {
            ChangeKind::Created => "person.created",
            ChangeKind::Updated => "person.updated",
            ChangeKind::Deactivated => "person.deactivated",
            ChangeKind::Reactivated => "person.reactivated",
            ChangeKind::Unchanged => "person.unchanged",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Created => "created",
            ChangeKind::Updated => "updated",
            ChangeKind::Deactivated => "deactivated",
            ChangeKind::Reactivated => "reactivated",
            ChangeKind::Unchanged => "unchanged",
        }
    }
}

pub fn is_terminated(s: &PersonState) -> bool {
    s.attrs
        .get("employment_status")
        .and_then(|v| v.as_str())
        .is_some_and(|v| v == "terminated")
}

/// Effective dates. A person's employment status follows their dates:
///
/// - a `termination_date` on or before `today` (and not before the
///   `hire_date`, which would be an earlier employment) makes them
///   `terminated`;
/// - a `hire_date` after `today` makes an `active` (or status-less) person
///   `pending`, and a `pending` person whose `hire_date` has come becomes
///   `active`.
///
/// `today` is an ISO date (`YYYY-MM-DD`), as dates are stored, so the
/// comparisons are on text. Returns whether the state changed. Every write
/// path settles what it stores, and the scheduler settles people whose
/// [`due_on`] date has come.
pub fn settle(state: &mut PersonState, today: &str) -> bool {
    let status = state
        .attrs
        .get("employment_status")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    let next = match (
        status.as_deref(),
        termination_due_on(state),
        date_of(state, "hire_date"),
    ) {
        (Some("terminated"), _, _) => None,
        (_, Some(t), _) if t <= today => Some("terminated"),
        (Some("pending"), _, Some(h)) if h <= today => Some("active"),
        (None | Some("active"), _, Some(h)) if h > today => Some("pending"),
        _ => None,
    };
    match next {
        Some(n) if status.as_deref() != Some(n) => {
            state
                .attrs
                .insert("employment_status".into(), AttrValue::string(n));
            true
        }
        _ => false,
    }
}

/// The date on which [`settle`] will next change this (settled) state, if
/// any: the stores keep it beside the person so that the scheduler finds
/// due transitions without reading every person.
pub fn due_on(state: &PersonState) -> Option<String> {
    let status = state
        .attrs
        .get("employment_status")
        .and_then(|v| v.as_str());
    if status == Some("terminated") {
        return None;
    }
    let hire = (status == Some("pending"))
        .then(|| date_of(state, "hire_date"))
        .flatten();
    match (termination_due_on(state), hire) {
        (Some(t), Some(h)) => Some(t.min(h).to_owned()),
        (t, h) => t.or(h).map(str::to_owned),
    }
}

fn date_of<'a>(state: &'a PersonState, name: &str) -> Option<&'a str> {
    state.attrs.get(name).and_then(|v| v.as_str())
}

/// The termination date that ends the current employment: none when it
/// lies before the hire date (a rehire keeps its old termination date).
fn termination_due_on(state: &PersonState) -> Option<&str> {
    let t = date_of(state, "termination_date")?;
    match date_of(state, "hire_date") {
        Some(h) if t < h => None,
        _ => Some(t),
    }
}

/// Today's date as [`settle`] compares it: the UTC calendar day.
pub fn today(now: chrono::DateTime<chrono::Utc>) -> String {
    now.format("%Y-%m-%d").to_string()
}

pub fn classify(before: Option<&PersonState>, after: &PersonState) -> ChangeKind {
    match before {
        None => ChangeKind::Created,
        Some(b) if b == after => ChangeKind::Unchanged,
        Some(b) => match (is_terminated(b), is_terminated(after)) {
            (false, true) => ChangeKind::Deactivated,
            (true, false) => ChangeKind::Reactivated,
            _ => ChangeKind::Updated,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inc(pairs: &[(&str, Option<&str>)]) -> Incoming {
        let mut i = Incoming::new(ExternalId::parse("E1").unwrap());
        for (k, v) in pairs {
            i.attrs.insert(k.to_string(), v.map(AttrValue::string));
        }
        i
    }

    #[test]
    fn applying_sets_clears_and_keeps_unmentioned_attributes() {
        let all = WritePolicy::allow_all();
        let s1 = apply(
            None,
            &inc(&[("given_name", Some("Ada")), ("location", Some("HQ"))]),
            &all,
        );
        let s2 = apply(
            Some(&s1),
            &inc(&[("location", None), ("department", Some("R&D"))]),
            &all,
        );
        assert_eq!(s2.attrs.len(), 2);
        assert!(s2.attrs.contains_key("given_name") && !s2.attrs.contains_key("location"));
        let d = diff(Some(&s1), &s2);
        assert_eq!(
            d.iter().map(|c| c.attribute.as_str()).collect::<Vec<_>>(),
            ["department", "location"]
        );
        assert_eq!(classify(Some(&s2), &s2.clone()), ChangeKind::Unchanged);
    }

    #[test]
    fn a_limited_policy_leaves_roles_outside_it_alone() {
        let stored = PersonState {
            roles: ["admin".to_string(), "staff".to_string()].into(),
            ..Default::default()
        };
        let p = WritePolicy {
            attributes: vec![],
            roles: vec!["staff".into(), "vpn".into()],
        };
        let mut i = inc(&[]);
        i.roles = Some(["vpn".to_string()].into());
        let next = apply(Some(&stored), &i, &p);
        assert_eq!(next.roles, ["admin".to_string(), "vpn".to_string()].into());
    }

    #[test]
    fn termination_is_a_deactivation() {
        let all = WritePolicy::allow_all();
        let a = apply(None, &inc(&[("employment_status", Some("active"))]), &all);
        let t = apply(
            Some(&a),
            &inc(&[("employment_status", Some("terminated"))]),
            &all,
        );
        assert_eq!(classify(Some(&a), &t), ChangeKind::Deactivated);
        assert_eq!(classify(Some(&t), &a), ChangeKind::Reactivated);
        assert_eq!(classify(None, &a), ChangeKind::Created);
    }

    fn dated(pairs: &[(&str, &str)]) -> PersonState {
        let mut s = PersonState::default();
        for (k, v) in pairs {
            s.attrs.insert(k.to_string(), AttrValue::string(*v));
        }
        s
    }

    #[test]
    fn a_termination_date_that_has_come_terminates() {
        let mut s = dated(&[
            ("employment_status", "active"),
            ("hire_date", "2020-01-01"),
            ("termination_date", "2025-06-30"),
        ]);
        assert_eq!(due_on(&s).as_deref(), Some("2025-06-30"));
        assert!(!settle(&mut s, "2025-06-29"));
        assert!(settle(&mut s, "2025-06-30"));
        assert!(is_terminated(&s));
        assert_eq!(due_on(&s), None);
        assert!(
            !settle(&mut s, "2025-07-01"),
            "settling twice changes nothing"
        );
    }

    #[test]
    fn a_future_hire_is_pending_until_its_date() {
        let mut s = dated(&[("employment_status", "active"), ("hire_date", "2025-09-01")]);
        assert!(settle(&mut s, "2025-08-01"));
        assert_eq!(s.attrs["employment_status"].as_str(), Some("pending"));
        assert_eq!(due_on(&s).as_deref(), Some("2025-09-01"));
        assert!(!settle(&mut s, "2025-08-31"));
        assert!(settle(&mut s, "2025-09-01"));
        assert_eq!(s.attrs["employment_status"].as_str(), Some("active"));
        assert_eq!(due_on(&s), None);
    }

    #[test]
    fn an_old_termination_date_does_not_end_a_rehire() {
        let mut s = dated(&[
            ("employment_status", "active"),
            ("hire_date", "2024-01-01"),
            ("termination_date", "2022-12-31"),
        ]);
        assert!(!settle(&mut s, "2025-01-01"));
        assert_eq!(due_on(&s), None);
        let mut leave = dated(&[("employment_status", "leave"), ("hire_date", "2030-01-01")]);
        assert!(
            !settle(&mut leave, "2025-01-01"),
            "leave is the source's word"
        );
    }

    #[test]
    fn the_change_detail_is_canonical_json_of_the_diff() {
        let all = WritePolicy::allow_all();
        let a = apply(
            None,
            &inc(&[("given_name", Some("Ada")), ("location", Some("HQ"))]),
            &all,
        );
        let mut i = inc(&[("location", None), ("department", Some("R&D"))]);
        i.roles = Some(["staff".to_string()].into());
        let b = apply(Some(&a), &i, &all);
        let text = change_detail_json(Some(&a), &b, 2);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v.to_string(), text, "sorted keys, compact: canonical");
        assert_eq!(v["version"], 2);
        let attrs: Vec<&str> = v["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["attribute"].as_str().unwrap())
            .collect();
        let expected: Vec<String> = diff(Some(&a), &b)
            .into_iter()
            .map(|c| c.attribute)
            .collect();
        assert_eq!(attrs, expected);
        assert_eq!(v["changes"][2]["after"], serde_json::json!(["staff"]));
        assert!(v["changes"][1]["after"].is_null());
    }

    #[test]
    fn a_stored_creation_reads_as_its_diff() {
        let all = WritePolicy::allow_all();
        let mut states = vec![PersonState::default()];
        let mut i = inc(&[
            ("given_name", Some("Ada \"the\" first")),
            ("location", Some("Zürich")),
            ("department", Some("")),
        ]);
        states.push(apply(None, &i, &all));
        i.roles = Some(["staff".to_string(), "a\\b".to_string()].into());
        states.push(apply(None, &i, &all));
        let mut odd = states[2].clone();
        odd.attrs.insert(
            "count".into(),
            AttrValue::from_json(serde_json::json!(12.5)),
        );
        odd.attrs.insert(
            "tags".into(),
            AttrValue::from_json(serde_json::json!(["x", {"y": null}])),
        );
        states.push(odd);
        for (n, state) in states.iter().enumerate() {
            for version in [1, 7] {
                let stored = stored_detail_json(None, state, version);
                assert!(stored.len() < change_detail_json(None, state, version).len() || n == 0);
                assert_eq!(
                    display_detail(&stored),
                    change_detail_json(None, state, version),
                    "state {n}"
                );
                let (a, r) = (
                    serde_json::to_string(&state.attrs).unwrap(),
                    serde_json::to_string(&state.roles).unwrap(),
                );
                assert_eq!(created_detail_json(&a, &r, version), stored);
            }
        }
        // A change to a stored person is kept as its diff.
        let b = apply(Some(&states[1]), &inc(&[("location", None)]), &all);
        let stored = stored_detail_json(Some(&states[1]), &b, 2);
        assert_eq!(stored, change_detail_json(Some(&states[1]), &b, 2));
        assert_eq!(display_detail(&stored), stored);
        // Edited text is shown as it is, not expanded or dropped.
        for edited in [r#"{"created":{"a":"b"},"roles":[]}"#, r#"{"created":"#] {
            assert_eq!(display_detail(edited), edited);
        }
    }

    #[test]
    fn fingerprints_depend_on_writer_policy_and_content() {
        let all = WritePolicy::allow_all();
        let a = inc(&[("given_name", Some("Ada"))]);
        let b = inc(&[("given_name", Some("Bob"))]);
        assert_eq!(a.fingerprint("c1", &all), a.clone().fingerprint("c1", &all));
        assert_ne!(a.fingerprint("c1", &all), b.fingerprint("c1", &all));
        assert_ne!(a.fingerprint("c1", &all), a.fingerprint("c2", &all));
    }
}
