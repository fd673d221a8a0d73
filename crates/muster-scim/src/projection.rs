//! `attributes` and `excludedAttributes` (RFC 7644 §3.4.2.5, §3.9):
//! which attributes of a resource a response carries, honouring each
//! attribute's `returned` (RFC 7643 §2.2): `always` is always there (`id`,
//! `schemas`), `never` never, `request` only when named in `attributes`,
//! `default` unless `attributes` names others or `excludedAttributes`
//! names it. Names may be sub-attribute paths (`name.givenName`,
//! `emails.value`), URN-qualified (`urn:...:enterprise:2.0:User:department`)
//! or an extension's URN alone (all of that extension). When both lists
//! are given, `attributes` wins and `excludedAttributes` is ignored.
//! Names the schemas do not know select nothing.
use crate::error::ScimError;
use crate::path::AttrPath;
use crate::schema::{AttrType, Attribute, Resolved, ResourceSchemas, Returned, Schema};
use serde_json::{Map, Value};

/// The parsed parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Projection {
    attributes: Vec<String>,
    excluded: Vec<String>,
}

impl Projection {
    /// From the query parameters, comma-separated (RFC 7644 §3.9).
    pub fn parse(attributes: Option<&str>, excluded: Option<&str>) -> Result<Self, ScimError> {
        let split = |s: Option<&str>| -> Vec<String> {
            s.map(|s| {
                s.split(',')
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
        };
        Self::from_lists(&split(attributes), &split(excluded))
    }

    /// From the lists of a `.search` body (RFC 7644 §3.4.3). A name that is
    /// not an attribute path is `invalidValue`, naming its position.
    pub fn from_lists(attributes: &[String], excluded: &[String]) -> Result<Self, ScimError> {
        for (which, list) in [("attributes", attributes), ("excludedAttributes", excluded)] {
            for (i, name) in list.iter().enumerate() {
                if AttrPath::parse(name.trim()).is_err() {
                    return Err(ScimError::invalid_value(format!(
                        "{which}: entry {i} is not an attribute path"
                    )));
                }
            }
        }
        Ok(Projection {
            attributes: attributes.iter().map(|s| s.trim().to_string()).collect(),
            excluded: excluded.iter().map(|s| s.trim().to_string()).collect(),
        })
    }

    /// Whether `attributes` was given.
    pub fn has_attributes(&self) -> bool {
        !self.attributes.is_empty()
    }
}

/// What one list says about one attribute.
enum Pick {
    /// Not named.
    No,
    /// Named whole (or its whole extension).
    Whole,
    /// These sub-attributes are named.
    Subs(Vec<String>),
}

fn pick(list: &[Resolved<'_>], ext: Option<&Schema>, attr: &Attribute) -> Pick {
    let mut subs = Vec::new();
    for r in list {
        match r {
            Resolved::Extension(e) => {
                if ext.is_some_and(|x| x.id == e.id) {
                    return Pick::Whole;
                }
            }
            Resolved::Attr {
                extension,
                attr: a,
                sub,
            } => {
                let same_ext = extension.map(|e| &e.id) == ext.map(|e| &e.id);
                if same_ext && a.name == attr.name {
                    match sub {
                        None => return Pick::Whole,
                        Some(s) => subs.push(s.name.clone()),
                    }
                }
            }
        }
    }
    if subs.is_empty() {
        Pick::No
    } else {
        Pick::Subs(subs)
    }
}

/// The resource as a response carries it.
pub fn project(resource: &Value, schemas: &ResourceSchemas, p: &Projection) -> Value {
    let Some(root) = resource.as_object() else {
        return resource.clone();
    };
    let resolve = |names: &[String]| -> Vec<Resolved<'_>> {
        names.iter().filter_map(|n| schemas.find(n)).collect()
    };
    let wanted = resolve(&p.attributes);
    let excluded = if p.has_attributes() {
        Vec::new()
    } else {
        resolve(&p.excluded)
    };
    let mode = Mode {
        requested: p.has_attributes(),
        wanted: &wanted,
        excluded: &excluded,
    };
    let mut out = Map::new();
    for (k, v) in root {
        if k.eq_ignore_ascii_case("schemas") {
            out.insert(k.clone(), v.clone());
            continue;
        }
        if let Some(ext) = schemas.extension(k) {
            let mut eo = Map::new();
            if let Some(obj) = v.as_object() {
                for (ek, ev) in obj {
                    if let Some(attr) = ext.attribute(ek) {
                        if let Some(x) = mode.decide(Some(ext), attr, ev) {
                            eo.insert(ek.clone(), x);
                        }
                    }
                }
            }
            if !eo.is_empty() {
                out.insert(k.clone(), Value::Object(eo));
            }
            continue;
        }
        match schemas.top_level().find(|a| a.name.eq_ignore_ascii_case(k)) {
            Some(attr) => {
                if let Some(x) = mode.decide(None, attr, v) {
                    out.insert(k.clone(), x);
                }
            }
            None => {
                if !mode.requested {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
    }
    Value::Object(out)
}

struct Mode<'a, 'b> {
    requested: bool,
    wanted: &'a [Resolved<'b>],
    excluded: &'a [Resolved<'b>],
}

impl Mode<'_, '_> {
    fn decide(&self, ext: Option<&Schema>, attr: &Attribute, v: &Value) -> Option<Value> {
        match attr.returned {
            Returned::Never => return None,
            Returned::Always => return Some(v.clone()),
            _ => {}
        }
        if self.requested {
            return match pick(self.wanted, ext, attr) {
                Pick::Whole => Some(default_subs(attr, v, &[], true)),
                Pick::Subs(subs) => keep_subs(attr, v, &subs),
                Pick::No => None,
            };
        }
        if attr.returned == Returned::Request {
            return None;
        }
        match pick(self.excluded, ext, attr) {
            Pick::Whole => None,
            Pick::Subs(subs) => Some(default_subs(attr, v, &subs, false)),
            Pick::No => Some(default_subs(attr, v, &[], false)),
        }
    }
}

/// The value without `never` sub-attributes, without `request` ones
/// unless the attribute was named, and without the excluded ones.
fn default_subs(attr: &Attribute, v: &Value, excluded: &[String], named: bool) -> Value {
    if attr.attr_type != AttrType::Complex {
        return v.clone();
    }
    let filter = |o: &Map<String, Value>| -> Map<String, Value> {
        o.iter()
            .filter(|(k, _)| match attr.sub_attribute(k) {
                Some(s) => match s.returned {
                    Returned::Always => true,
                    Returned::Never => false,
                    Returned::Request => named,
                    Returned::Default => !excluded.iter().any(|e| e.eq_ignore_ascii_case(k)),
                },
                None => true,
            })
            .map(|(k, x)| (k.clone(), x.clone()))
            .collect()
    };
    map_elements(v, &filter)
}

fn keep_subs(attr: &Attribute, v: &Value, subs: &[String]) -> Option<Value> {
    let filter = |o: &Map<String, Value>| -> Map<String, Value> {
        o.iter()
            .filter(|(k, _)| {
                subs.iter().any(|s| s.eq_ignore_ascii_case(k))
                    || attr
                        .sub_attribute(k)
                        .is_some_and(|s| s.returned == Returned::Always)
            })
            .map(|(k, x)| (k.clone(), x.clone()))
            .collect()
    };
    let out = map_elements(v, &filter);
    match &out {
        Value::Object(o) if o.is_empty() => None,
        Value::Array(a) if a.is_empty() => None,
        _ => Some(out),
    }
}

type Object = Map<String, Value>;

/// Applies `f` to an object, or to each object of an array (dropping
/// values left empty).
fn map_elements(v: &Value, f: &dyn Fn(&Object) -> Object) -> Value {
    match v {
        Value::Object(o) => Value::Object(f(o)),
        Value::Array(a) => Value::Array(
            a.iter()
                .filter_map(|e| match e {
                    Value::Object(o) => {
                        let m = f(o);
                        (!m.is_empty()).then_some(Value::Object(m))
                    }
                    other => Some(other.clone()),
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Whether the named attribute would be in a response (used by the
/// server to skip loading what is not returned).
pub fn is_returned(schemas: &ResourceSchemas, p: &Projection, path: &str) -> bool {
    let probe = match schemas.find(path) {
        Some(Resolved::Attr {
            extension, attr, ..
        }) => (extension, attr),
        _ => return false,
    };
    let wanted: Vec<_> = p
        .attributes
        .iter()
        .filter_map(|n| schemas.find(n))
        .collect();
    let excluded: Vec<_> = p.excluded.iter().filter_map(|n| schemas.find(n)).collect();
    let mode = Mode {
        requested: p.has_attributes(),
        wanted: &wanted,
        excluded: &excluded,
    };
    let sample = if probe.1.attr_type == AttrType::Complex {
        let mut m = Map::new();
        for s in &probe.1.sub_attributes {
            m.insert(s.name.clone(), Value::Bool(true));
        }
        Value::Object(m)
    } else {
        Value::Bool(true)
    };
    mode.decide(probe.0, probe.1, &sample).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

    fn user() -> Value {
        crate::patch::tests::user()
    }

    fn proj(a: Option<&str>, x: Option<&str>) -> Value {
        project(
            &user(),
            &ResourceSchemas::user(),
            &Projection::parse(a, x).unwrap(),
        )
    }

    fn keys(v: &Value) -> Vec<&str> {
        let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        k.sort();
        k
    }

    #[test]
    fn without_parameters_everything_returned_by_default_is_there() {
        assert_eq!(proj(None, None), user());
    }

    #[test]
    fn attributes_keep_only_those_named_and_the_always_returned() {
        let v = proj(Some("userName, name.givenName,emails.value"), None);
        assert_eq!(keys(&v), ["emails", "id", "name", "schemas", "userName"]);
        assert_eq!(v["name"], json!({"givenName": "Barbara"}));
        assert_eq!(
            v["emails"],
            json!([{"value": "bjensen@example.com"}, {"value": "babs@jensen.org"}])
        );
    }

    #[test]
    fn urn_qualified_names_and_whole_extensions_are_selected() {
        let v = proj(Some(&format!("{ENT}:department")), None);
        assert_eq!(v[ENT], json!({"department": "Tour Operations"}));
        let v = proj(Some(ENT), None);
        assert_eq!(v[ENT], user()[ENT]);
        assert_eq!(keys(&v), ["id", "schemas", ENT]);
        let v = proj(
            Some("urn:ietf:params:scim:schemas:core:2.0:User:userName"),
            None,
        );
        assert_eq!(keys(&v), ["id", "schemas", "userName"]);
    }

    #[test]
    fn excluded_attributes_drop_those_named_but_never_the_always_returned() {
        let v = proj(
            None,
            Some(&format!(
                "emails,name.familyName,id,schemas,{ENT}:employeeNumber"
            )),
        );
        assert!(v.get("emails").is_none());
        assert_eq!(v["name"], json!({"givenName": "Barbara"}));
        assert_eq!(v["id"], user()["id"]);
        assert!(v.get("schemas").is_some());
        assert_eq!(v[ENT], json!({"department": "Tour Operations"}));
        let v = proj(None, Some(ENT));
        assert!(v.get(ENT).is_none());
    }

    #[test]
    fn attributes_win_over_excluded_attributes() {
        let v = proj(Some("userName"), Some("userName"));
        assert_eq!(v["userName"], "bjensen@example.com");
    }

    #[test]
    fn returned_never_and_request_are_honoured() {
        let mut core = crate::schema::user_schema();
        core.attributes
            .push(Attribute::string("secretish").returned(Returned::Never));
        core.attributes
            .push(Attribute::string("onRequest").returned(Returned::Request));
        let s = ResourceSchemas::new(core, vec![]);
        let r = json!({"id": "1", "userName": "u", "secretish": "x", "onRequest": "y"});
        let all = project(&r, &s, &Projection::default());
        assert_eq!(keys(&all), ["id", "userName"]);
        let some = project(
            &r,
            &s,
            &Projection::parse(Some("onRequest,secretish"), None).unwrap(),
        );
        assert_eq!(keys(&some), ["id", "onRequest"]);
        assert!(is_returned(
            &s,
            &Projection::parse(Some("onRequest"), None).unwrap(),
            "onRequest"
        ));
        assert!(!is_returned(&s, &Projection::default(), "onRequest"));
        assert!(!is_returned(&s, &Projection::default(), "secretish"));
    }

    #[test]
    fn a_bad_name_is_invalid_value_by_position() {
        let e = Projection::parse(Some("userName,1bad"), None).unwrap_err();
        assert_eq!(e.scim_type, Some(crate::ScimType::InvalidValue));
        assert!(e.detail.contains("entry 1"));
    }
}
