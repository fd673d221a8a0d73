//! What a person should look like on a SCIM target (docs/provisioning.md):
//! the attribute mapping (SCIM paths and the expressions that fill them),
//! the scope, and the User a mapping gives, kept flat (path to value) so
//! that what changed since the last send is a comparison of two maps and
//! becomes PATCH operations (RFC 7644 section 3.5.2) directly.
use muster_proto::{ScimScope, ScimTarget};
use muster_scim::schema::{ENTERPRISE_USER_SCHEMA, USER_SCHEMA};
use muster_store::PersonRow;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The enterprise extension's attribute `name`.
fn ent(name: &str) -> String {
    format!("{ENTERPRISE_USER_SCHEMA}:{name}")
}

/// The mapping a target gets unless it overrides a path: what the SCIM
/// door reads a User into, the other way round. `manager` is the
/// manager's id on the target (set once the manager is there).
pub(crate) fn default_mapping() -> Vec<(String, String)> {
    [
        ("userName", "coalesce(user_name, email, external_id)"),
        ("externalId", "external_id"),
        ("name.givenName", "given_name"),
        ("name.familyName", "family_name"),
        (
            "displayName",
            "coalesce(display_name, join(\" \", given_name, family_name))",
        ),
        ("title", "job_title"),
        ("emails[type eq \"work\"].value", "email"),
    ]
    .into_iter()
    .map(|(p, e)| (p.to_owned(), e.to_owned()))
    .chain(
        [
            ("employeeNumber", "coalesce(employee_number, external_id)"),
            ("department", "department"),
            ("costCenter", "cost_center"),
            ("organization", "organization"),
            ("division", "division"),
            ("manager.value", "manager"),
        ]
        .into_iter()
        .map(|(p, e)| (ent(p), e.to_owned())),
    )
    .collect()
}

/// A place in a User: `attr`, `attr.sub`, `attr[type eq "t"].sub`, each
/// optionally after an extension's URN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TargetPath {
    pub urn: Option<String>,
    pub attr: String,
    /// A multi-valued attribute's element, chosen by its `type`.
    pub of_type: Option<String>,
    pub sub: Option<String>,
}

fn is_name(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic())
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'$')
}

impl TargetPath {
    pub fn parse(text: &str) -> Result<TargetPath, String> {
        let bad = || format!("'{text}' is not a SCIM path this mapping can fill");
        let (urn, rest) = if text.len() > 4 && text[..4].eq_ignore_ascii_case("urn:") {
            // The attribute follows the URN's last colon (RFC 7644 3.10).
            let head = text.split('[').next().unwrap_or(text);
            let cut = head.rfind(':').ok_or_else(bad)?;
            // urn:<namespace>:<rest> (RFC 8141).
            if text[..cut].matches(':').count() < 2 {
                return Err(bad());
            }
            (Some(text[..cut].to_owned()), &text[cut + 1..])
        } else {
            (None, text)
        };
        let (attr, of_type, after) = match rest.find('[') {
            Some(open) => {
                let close = rest.find(']').ok_or_else(bad)?;
                let inner = rest[open + 1..close].trim();
                let t = inner
                    .strip_prefix("type eq \"")
                    .and_then(|t| t.strip_suffix('"'))
                    .filter(|t| !t.is_empty() && !t.contains('"'))
                    .ok_or_else(bad)?;
                (
                    &rest[..open],
                    Some(t.to_owned()),
                    rest[close + 1..].strip_prefix('.').ok_or_else(bad)?,
                )
            }
            None => match rest.split_once('.') {
                Some((a, s)) => (a, None, s),
                None => (rest, None, ""),
            },
        };
        let sub = (!after.is_empty()).then(|| after.to_owned());
        if !is_name(attr) || sub.as_deref().is_some_and(|s| !is_name(s)) {
            return Err(bad());
        }
        if of_type.is_some() && sub.is_none() {
            return Err(bad());
        }
        Ok(TargetPath {
            urn,
            attr: attr.to_owned(),
            of_type,
            sub,
        })
    }

    /// Where the value sits within its attribute, for building a User.
    fn set(&self, user: &mut Map<String, Value>, value: Value) {
        let holder = match &self.urn {
            Some(urn) => user
                .entry(urn.clone())
                .or_insert_with(|| json!({}))
                .as_object_mut(),
            None => Some(user),
        };
        let Some(holder) = holder else { return };
        match (&self.of_type, &self.sub) {
            (Some(t), Some(sub)) => {
                let list = holder.entry(self.attr.clone()).or_insert_with(|| json!([]));
                let Some(list) = list.as_array_mut() else {
                    return;
                };
                let at = list.iter().position(|e| e["type"] == json!(t));
                let i = match at {
                    Some(i) => i,
                    None => {
                        let primary = list.is_empty();
                        list.push(json!({"type": t, "primary": primary}));
                        list.len() - 1
                    }
                };
                list[i][sub.as_str()] = value;
            }
            (None, Some(sub)) => {
                let c = holder.entry(self.attr.clone()).or_insert_with(|| json!({}));
                if let Some(c) = c.as_object_mut() {
                    c.insert(sub.clone(), value);
                }
            }
            _ => {
                holder.insert(self.attr.clone(), value);
            }
        }
    }

    /// The value at this path in a User read from the target.
    pub fn get<'a>(&self, user: &'a Value) -> Option<&'a Value> {
        let holder = match &self.urn {
            Some(urn) => user.get(urn)?,
            None => user,
        };
        let a = holder.get(&self.attr)?;
        let v = match (&self.of_type, &self.sub) {
            (Some(t), Some(sub)) => a
                .as_array()?
                .iter()
                .find(|e| e["type"] == json!(t))?
                .get(sub)?,
            (None, Some(sub)) => a.get(sub)?,
            _ => a,
        };
        (!v.is_null()).then_some(v)
    }

    /// The path of the whole attribute (an element's list, a complex
    /// attribute's parent), URN-qualified where it is in an extension.
    fn attribute_path(&self) -> String {
        match &self.urn {
            Some(urn) => format!("{urn}:{}", self.attr),
            None => self.attr.clone(),
        }
    }
}

/// An expression over a person: an attribute name, a quoted text, or a
/// function of expressions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expr {
    Attr(String),
    Text(String),
    Call(Func, Vec<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    /// The first argument with a value.
    Coalesce,
    /// The arguments with a value, joined by the first (a text).
    Join,
    /// The arguments' texts run together (nothing when one is absent).
    Append,
    Lower,
    Upper,
}

impl Expr {
    pub fn parse(text: &str) -> Result<Expr, String> {
        let mut p = Parser { s: text, at: 0 };
        let e = p.expr()?;
        p.space();
        if p.at != text.len() {
            return Err(format!("unexpected text at character {}", p.at + 1));
        }
        Ok(e)
    }

    /// The person attributes it reads.
    pub fn attributes(&self, out: &mut BTreeSet<String>) {
        match self {
            Expr::Attr(a) => {
                out.insert(a.clone());
            }
            Expr::Text(_) => {}
            Expr::Call(_, args) => args.iter().for_each(|a| a.attributes(out)),
        }
    }

    fn eval(&self, get: &dyn Fn(&str) -> Option<Value>) -> Option<Value> {
        let text = |v: Value| match v {
            Value::String(s) => Some(s),
            Value::Null => None,
            other => Some(other.to_string()),
        };
        match self {
            Expr::Attr(a) => get(a).filter(|v| !v.is_null() && v != &json!("")),
            Expr::Text(t) => Some(Value::String(t.clone())),
            Expr::Call(Func::Coalesce, args) => args.iter().find_map(|a| a.eval(get)),
            Expr::Call(Func::Join, args) => {
                let sep = args.first().and_then(|a| a.eval(get)).and_then(text)?;
                let parts: Vec<String> = args[1..]
                    .iter()
                    .filter_map(|a| a.eval(get).and_then(text))
                    .collect();
                (!parts.is_empty()).then(|| Value::String(parts.join(&sep)))
            }
            Expr::Call(Func::Append, args) => {
                let parts: Option<Vec<String>> =
                    args.iter().map(|a| a.eval(get).and_then(text)).collect();
                Some(Value::String(parts?.concat()))
            }
            Expr::Call(f @ (Func::Lower | Func::Upper), args) => {
                let t = args.first()?.eval(get).and_then(text)?;
                Some(Value::String(if *f == Func::Lower {
                    t.to_lowercase()
                } else {
                    t.to_uppercase()
                }))
            }
        }
    }
}

struct Parser<'a> {
    s: &'a str,
    at: usize,
}

impl Parser<'_> {
    fn space(&mut self) {
        while self.s[self.at..].starts_with(' ') {
            self.at += 1;
        }
    }

    fn expr(&mut self) -> Result<Expr, String> {
        self.space();
        let rest = &self.s[self.at..];
        if let Some(body) = rest.strip_prefix('"') {
            let end = body
                .find('"')
                .ok_or_else(|| format!("a text at character {} is not closed", self.at + 1))?;
            self.at += end + 2;
            return Ok(Expr::Text(body[..end].to_owned()));
        }
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(rest.len());
        if len == 0 {
            return Err(format!(
                "expected an attribute, a \"text\" or a function at character {}",
                self.at + 1
            ));
        }
        let name = &rest[..len];
        self.at += len;
        self.space();
        if !self.s[self.at..].starts_with('(') {
            return Ok(Expr::Attr(name.to_owned()));
        }
        let func = match name.to_ascii_lowercase().as_str() {
            "coalesce" => Func::Coalesce,
            "join" => Func::Join,
            "append" => Func::Append,
            "lower" | "tolower" => Func::Lower,
            "upper" | "toupper" => Func::Upper,
            _ => {
                return Err(format!(
                    "'{name}' is not a function: coalesce, join, append, lower, upper"
                ))
            }
        };
        self.at += 1;
        let mut args = Vec::new();
        loop {
            args.push(self.expr()?);
            self.space();
            match self.s[self.at..].chars().next() {
                Some(',') => self.at += 1,
                Some(')') => {
                    self.at += 1;
                    break;
                }
                _ => return Err(format!("expected ',' or ')' at character {}", self.at + 1)),
            }
        }
        let arity_ok = match func {
            Func::Lower | Func::Upper => args.len() == 1,
            Func::Join => args.len() >= 2,
            Func::Coalesce | Func::Append => !args.is_empty(),
        };
        if !arity_ok {
            return Err(format!("'{name}' takes other arguments"));
        }
        Ok(Expr::Call(func, args))
    }
}

/// A target's mapping and scope, parsed once a round.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub paths: Vec<(TargetPath, String, Expr)>,
    pub scope: ScimScope,
    pub filter: Option<muster_scim::Filter>,
    /// The attributes the subscription may send (`*`: any).
    pub allowed: Vec<String>,
    pub groups: bool,
    /// The person attributes the mapping's expressions read.
    reads: BTreeSet<String>,
}

impl Plan {
    /// The default mapping with the target's overrides, checked.
    pub fn new(t: &ScimTarget, allowed: &[String]) -> Result<Plan, String> {
        let mut chosen: BTreeMap<String, Option<String>> = default_mapping()
            .into_iter()
            .map(|(p, e)| (p, Some(e)))
            .collect();
        for (p, e) in &t.mapping {
            chosen.insert(p.clone(), e.clone());
        }
        let mut paths = Vec::new();
        for (p, e) in chosen {
            let Some(e) = e else { continue };
            let path = TargetPath::parse(&p).map_err(|why| format!("mapping: {why}"))?;
            let expr = Expr::parse(&e).map_err(|why| format!("mapping '{p}': {why}"))?;
            paths.push((path, p, expr));
        }
        if !paths
            .iter()
            .any(|(p, _, _)| p.urn.is_none() && p.attr == "userName")
        {
            return Err("mapping: userName must be mapped".into());
        }
        if let Some((_, p, _)) = paths.iter().find(|(p, _, _)| {
            p.urn.is_none()
                && matches!(
                    p.attr.as_str(),
                    "id" | "active" | "groups" | "meta" | "schemas"
                )
        }) {
            return Err(format!("mapping: '{p}' is not Muster's to map"));
        }
        let filter = match &t.scope.filter {
            Some(f) => Some(
                muster_scim::Filter::parse(f).map_err(|e| format!("scope.filter: {}", e.detail))?,
            ),
            None => None,
        };
        let mut reads = BTreeSet::new();
        for (_, _, e) in &paths {
            e.attributes(&mut reads);
        }
        Ok(Plan {
            reads,
            paths,
            scope: t.scope.clone(),
            filter,
            allowed: allowed.to_vec(),
            groups: t.groups && may(allowed, "roles"),
        })
    }
}

impl Plan {
    /// Whether the mapping reads `attr` at all.
    pub fn reads(&self, attr: &str) -> bool {
        self.reads.contains(attr)
    }
}

fn may(allowed: &[String], attr: &str) -> bool {
    allowed.iter().any(|a| a == "*" || a == attr)
}

/// What a person should be on the target: the mapped values (path to
/// value), whether active, and the groups (roles) to be in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Desired {
    pub attrs: BTreeMap<String, Value>,
    pub active: bool,
    /// In scope at all: out of scope, a linked User is deprovisioned.
    pub in_scope: bool,
    pub groups: BTreeSet<String>,
}

impl Desired {
    /// `manager`: the manager's id on the target, when there.
    pub fn of(plan: &Plan, row: &PersonRow, manager: Option<&str>) -> Desired {
        let attrs = &row.state.attrs;
        let get = |a: &str| -> Option<Value> {
            match a {
                "external_id" => Some(json!(row.external_id.as_str())),
                "manager" => manager.map(|m| json!(m)),
                a if may(&plan.allowed, a) => attrs.get(a).map(|v| v.expose().clone()),
                _ => None,
            }
        };
        let mut out = BTreeMap::new();
        for (_, key, expr) in &plan.paths {
            if let Some(v) = expr.eval(&get) {
                out.insert(key.clone(), v);
            }
        }
        let text = |a: &str| attrs.get(a).and_then(|v| v.as_str()).unwrap_or_default();
        let status = text("employment_status");
        let s = &plan.scope;
        let mut in_scope = (s.statuses.is_empty() || s.statuses.iter().any(|x| x == status))
            && (s.departments.is_empty() || s.departments.iter().any(|d| d == text("department")))
            && (s.roles.is_empty() || s.roles.iter().any(|r| row.state.roles.contains(r)));
        let mut d = Desired {
            attrs: out,
            active: true,
            in_scope: true,
            groups: if plan.groups {
                row.state.roles.clone()
            } else {
                BTreeSet::new()
            },
        };
        if in_scope {
            if let Some(f) = &plan.filter {
                let user = d.user(plan);
                in_scope = muster_scim::filter::eval::matches(
                    f,
                    &user,
                    &muster_scim::schema::ResourceSchemas::user(),
                )
                .unwrap_or(false);
            }
        }
        d.in_scope = in_scope;
        d.active = in_scope && status != "terminated";
        d
    }

    /// The whole User (for a create or a PUT).
    pub fn user(&self, plan: &Plan) -> Value {
        let mut u = Map::new();
        let mut schemas = vec![json!(USER_SCHEMA)];
        for (path, key, _) in &plan.paths {
            if let Some(v) = self.attrs.get(key) {
                if let Some(urn) = &path.urn {
                    if !schemas.contains(&json!(urn)) {
                        schemas.push(json!(urn));
                    }
                }
                path.set(&mut u, v.clone());
            }
        }
        u.insert("active".into(), json!(self.active));
        u.insert("schemas".into(), Value::Array(schemas));
        Value::Object(u)
    }

    /// The stored form of what was sent.
    pub fn to_sent(&self) -> Value {
        json!({"attrs": self.attrs, "active": self.active, "groups": self.groups})
    }

    pub fn from_sent(v: &Value) -> Option<Desired> {
        Some(Desired {
            attrs: serde_json::from_value(v.get("attrs")?.clone()).ok()?,
            active: v.get("active")?.as_bool()?,
            in_scope: true,
            groups: serde_json::from_value(v.get("groups")?.clone()).ok()?,
        })
    }

    /// The PATCH operations that take the target from `before` (what was
    /// sent last, `None`: unknown) to this. An element of a multi-valued
    /// attribute is sent as the attribute's whole list, which every
    /// target takes (a value-filtered path fails where no element
    /// matches yet, RFC 7644 3.5.2.3).
    pub fn patch_ops(&self, plan: &Plan, before: Option<&Desired>) -> Vec<Value> {
        let mut ops = Vec::new();
        let mut lists: BTreeSet<String> = BTreeSet::new();
        for (path, key, _) in &plan.paths {
            let new = self.attrs.get(key);
            let old = before.and_then(|b| b.attrs.get(key));
            if before.is_some() && new == old {
                continue;
            }
            if path.of_type.is_some() {
                lists.insert(path.attribute_path());
                continue;
            }
            match new {
                Some(v) => ops.push(json!({"op": "replace", "path": key, "value": v})),
                None if old.is_some() => ops.push(json!({"op": "remove", "path": key})),
                None => {}
            }
        }
        if !lists.is_empty() {
            let user = self.user(plan);
            for list in lists {
                let p = TargetPath::parse(&list).ok();
                match p.as_ref().and_then(|p| p.get(&user)) {
                    Some(v) => ops.push(json!({"op": "replace", "path": list, "value": v})),
                    None => ops.push(json!({"op": "remove", "path": list})),
                }
            }
        }
        if before.is_none_or(|b| b.active != self.active) {
            ops.push(json!({"op": "replace", "path": "active", "value": self.active}));
        }
        ops
    }

    /// The mapped paths where a User read from the target differs from
    /// this (its `active` included).
    pub fn drift(&self, plan: &Plan, user: &Value) -> Vec<String> {
        let mut out = Vec::new();
        for (path, key, _) in &plan.paths {
            let have = path.get(user);
            if have != self.attrs.get(key) {
                out.push(key.clone());
            }
        }
        if is_active(user) != self.active {
            out.push("active".into());
        }
        out
    }
}

/// Whether a User read from a target is active: a boolean, or the text
/// some targets send (`"False"`); absent means active (RFC 7643 4.1.1).
pub(crate) fn is_active(user: &Value) -> bool {
    match user.get("active") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => !s.eq_ignore_ascii_case("false"),
        _ => true,
    }
}

/// A SCIM filter on `attr` equal to `value` (a JSON string literal).
pub(crate) fn eq_filter(attr: &str, value: &str) -> String {
    format!("{attr} eq {}", Value::String(value.to_owned()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn paths_parse_with_urns_sub_attributes_and_typed_elements() {
        let p = TargetPath::parse("emails[type eq \"work\"].value").unwrap();
        assert_eq!(
            (p.attr.as_str(), p.of_type.as_deref(), p.sub.as_deref()),
            ("emails", Some("work"), Some("value"))
        );
        let p = TargetPath::parse(&ent("manager.value")).unwrap();
        assert_eq!(p.urn.as_deref(), Some(ENTERPRISE_USER_SCHEMA));
        assert_eq!(
            (p.attr.as_str(), p.sub.as_deref()),
            ("manager", Some("value"))
        );
        for bad in [
            "",
            "emails[type eq work].value",
            "emails[type eq \"w\"]",
            "1x",
            "a.b.c",
            "urn:x",
        ] {
            assert!(TargetPath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn expressions_coalesce_join_and_change_case() {
        let vals: BTreeMap<&str, Value> = [
            ("a", json!("Ada")),
            ("b", json!("Lovelace")),
            ("n", json!(7)),
        ]
        .into();
        let get = |k: &str| vals.get(k).cloned();
        let ev = |s: &str| Expr::parse(s).unwrap().eval(&get);
        assert_eq!(ev("coalesce(x, b)"), Some(json!("Lovelace")));
        assert_eq!(ev("join(\" \", a, x, b)"), Some(json!("Ada Lovelace")));
        assert_eq!(
            ev("lower(append(a, \".\", b))"),
            Some(json!("ada.lovelace"))
        );
        assert_eq!(ev("append(a, x)"), None);
        assert_eq!(ev("n"), Some(json!(7)));
        assert_eq!(ev("upper(n)"), Some(json!("7")));
        for bad in [
            "",
            "f(a)",
            "join(a)",
            "lower(a, b)",
            "\"open",
            "a b",
            "coalesce(a",
        ] {
            assert!(Expr::parse(bad).is_err(), "{bad}");
        }
    }

    fn person(attrs: Value, roles: &[&str]) -> PersonRow {
        let state: muster_core::person::PersonState = serde_json::from_value(json!({
            "attrs": attrs, "roles": roles,
        }))
        .unwrap();
        PersonRow {
            external_id: muster_core::ExternalId::parse("e1").unwrap(),
            state,
            version: 1,
            updated_at: chrono::Utc::now(),
            updated_by: "t".into(),
            on_behalf_of: None,
            source: "t".into(),
            source_system: None,
            scim_id: None,
        }
    }

    #[test]
    fn a_person_becomes_a_user_and_changes_become_patch_operations() {
        let plan = Plan::new(&ScimTarget::default(), &["*".into()]).unwrap();
        let p = person(
            json!({"given_name": "Ada", "family_name": "Lovelace", "email": "ada@example.com",
                   "department": "R&D", "employment_status": "active"}),
            &["eng"],
        );
        let d = Desired::of(&plan, &p, Some("m-1"));
        let u = d.user(&plan);
        assert_eq!(u["userName"], "ada@example.com");
        assert_eq!(u["displayName"], "Ada Lovelace");
        assert_eq!(
            u["emails"][0],
            json!({"type": "work", "primary": true, "value": "ada@example.com"})
        );
        assert_eq!(u[ENTERPRISE_USER_SCHEMA]["manager"]["value"], "m-1");
        assert_eq!(u[ENTERPRISE_USER_SCHEMA]["employeeNumber"], "e1");
        assert_eq!(u["active"], true);
        assert!(d.drift(&plan, &u).is_empty());

        let mut later = d.clone();
        later.attrs.insert("title".into(), json!("Countess"));
        later.attrs.remove(&ent("department"));
        later
            .attrs
            .insert("emails[type eq \"work\"].value".into(), json!("a@x.org"));
        later.active = false;
        let ops = later.patch_ops(&plan, Some(&d));
        assert!(ops.contains(&json!({"op": "replace", "path": "title", "value": "Countess"})));
        assert!(ops.contains(&json!({"op": "remove", "path": ent("department")})));
        assert!(ops.contains(&json!({"op": "replace", "path": "emails",
            "value": [{"type": "work", "primary": true, "value": "a@x.org"}]})));
        assert!(ops.contains(&json!({"op": "replace", "path": "active", "value": false})));
        assert_eq!(ops.len(), 4);
        assert!(d.patch_ops(&plan, Some(&d)).is_empty());
        assert_eq!(Desired::from_sent(&d.to_sent()).unwrap().attrs, d.attrs);
        let drift = later.drift(&plan, &u);
        assert!(drift.contains(&"title".to_string()) && drift.contains(&"active".to_string()));
    }

    #[test]
    fn scope_and_termination_decide_active_and_unlisted_attributes_are_not_sent() {
        let mut t = ScimTarget::default();
        t.scope.departments = vec!["Sales".into()];
        let plan = Plan::new(
            &t,
            &[
                "email".into(),
                "department".into(),
                "employment_status".into(),
            ],
        )
        .unwrap();
        let sales = person(
            json!({"email": "s@x", "department": "Sales", "given_name": "S"}),
            &["r"],
        );
        let d = Desired::of(&plan, &sales, None);
        assert!(d.in_scope && d.active);
        assert!(
            !d.attrs.contains_key("name.givenName"),
            "given_name is not listed"
        );
        assert!(d.groups.is_empty(), "roles are not listed");
        let other = person(json!({"email": "o@x", "department": "Ops"}), &[]);
        assert!(!Desired::of(&plan, &other, None).active);
        let gone = person(
            json!({"email": "g@x", "department": "Sales", "employment_status": "terminated"}),
            &[],
        );
        let g = Desired::of(&plan, &gone, None);
        assert!(g.in_scope && !g.active);

        t.scope.departments.clear();
        t.scope.filter = Some("userName ew \"@x\"".into());
        let plan = Plan::new(&t, &["*".into()]).unwrap();
        assert!(Desired::of(&plan, &other, None).in_scope);
        let elsewhere = person(json!({"email": "e@y"}), &[]);
        assert!(!Desired::of(&plan, &elsewhere, None).in_scope);
    }

    #[test]
    fn mappings_that_cannot_work_are_refused() {
        let mut t = ScimTarget::default();
        t.mapping.insert("userName".into(), None);
        assert!(Plan::new(&t, &["*".into()])
            .unwrap_err()
            .contains("userName"));
        let mut t = ScimTarget::default();
        t.mapping.insert("active".into(), Some("x".into()));
        assert!(Plan::new(&t, &["*".into()]).is_err());
        let mut t = ScimTarget::default();
        t.mapping.insert("title".into(), Some("nope(x)".into()));
        assert!(Plan::new(&t, &["*".into()])
            .unwrap_err()
            .contains("mapping 'title'"));
        assert_eq!(eq_filter("userName", "a\"b"), "userName eq \"a\\\"b\"");
    }
}
