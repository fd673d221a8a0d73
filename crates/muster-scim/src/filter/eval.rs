//! Filter evaluation (RFC 7644 §3.4.2.2) against a resource in its SCIM
//! JSON representation, given its schemas.
//!
//! - Attribute names are matched without case (RFC 7643 §2.1); strings
//!   compare without case unless the attribute is `caseExact`.
//! - `gt`/`ge`/`lt`/`le` order strings lexically (by code point, after
//!   case folding where not `caseExact`), numbers numerically and
//!   `dateTime`s as instants (RFC 3339, RFC 7643 §2.3.5). On booleans and
//!   binary values they are `invalidFilter`, as RFC 7644 §3.4.2.2 says;
//!   `co`/`sw`/`ew` on booleans, numbers and binary are too.
//! - A multi-valued attribute matches when any of its values does.
//! - A complex attribute named without a sub-attribute compares its
//!   `value` sub-attribute (so `emails co "example.com"`, an RFC example,
//!   looks at the addresses); a complex attribute without one is
//!   `invalidFilter`.
//! - `pr` is false for null, "", [] and {}.
//! - `ne` is the negation of `eq`, so it matches a resource without the
//!   attribute; `eq null` matches when the attribute has no value.
//! - A literal of another type than the attribute's (`active eq "yes"`)
//!   matches nothing.
//! - An attribute the schemas do not define matches nothing, or is
//!   `invalidFilter` with [`EvalOptions::strict`].
use super::{CompValue, CompareOp, Filter};
use crate::error::ScimError;
use crate::schema::{get_ci, AttrType, Attribute, Resolved, ResourceSchemas};
use crate::AttrPath;
use serde_json::Value;
use std::cmp::Ordering;

/// How a filter is evaluated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EvalOptions {
    /// Refuse attributes the schemas do not define with `invalidFilter`
    /// instead of matching nothing.
    pub strict: bool,
}

/// Whether the resource matches the filter (lenient on unknown attributes).
pub fn matches(
    filter: &Filter,
    resource: &Value,
    schemas: &ResourceSchemas,
) -> Result<bool, ScimError> {
    matches_with(filter, resource, schemas, EvalOptions::default())
}

/// Whether the resource matches the filter, with options.
pub fn matches_with(
    filter: &Filter,
    resource: &Value,
    schemas: &ResourceSchemas,
    opts: EvalOptions,
) -> Result<bool, ScimError> {
    let scope = Scope::Resource(schemas);
    eval(filter, resource, &scope, opts)
}

/// Whether one value of a multi-valued complex attribute matches a value
/// filter (the `[...]` of a value path, paths relative to the attribute).
pub fn element_matches(
    filter: &Filter,
    element: &Value,
    attr: &Attribute,
    opts: EvalOptions,
) -> Result<bool, ScimError> {
    eval(filter, element, &Scope::Element(attr), opts)
}

/// What paths are resolved against.
pub(crate) enum Scope<'a> {
    Resource(&'a ResourceSchemas),
    Element(&'a Attribute),
}

/// The values a path selects and the definition they have.
pub(crate) struct Found<'a, 'v> {
    pub values: Vec<&'v Value>,
    pub def: &'a Attribute,
}

fn unknown(path: &AttrPath, opts: EvalOptions) -> Result<bool, ScimError> {
    if opts.strict {
        Err(ScimError::invalid_filter(format!(
            "the filter names an unknown attribute {path}"
        )))
    } else {
        Ok(false)
    }
}

/// The values at a path: for a multi-valued attribute all its values, for
/// a sub-attribute of a multi-valued one the sub-attribute of each.
pub(crate) fn lookup<'a, 'v>(
    res: &'v Value,
    path: &AttrPath,
    scope: &Scope<'a>,
) -> Option<Found<'a, 'v>> {
    let (container, attr, sub) = match scope {
        Scope::Resource(schemas) => match schemas.resolve(path)? {
            Resolved::Attr {
                extension,
                attr,
                sub,
            } => {
                let obj = res.as_object()?;
                let container = match extension {
                    Some(ext) => get_ci(obj, &ext.id).map(|(_, v)| v),
                    None => Some(res),
                };
                (container, attr, sub)
            }
            Resolved::Extension(_) => return None,
        },
        Scope::Element(parent) => {
            if path.urn.is_some() || path.sub.is_some() {
                return None;
            }
            (Some(res), parent.sub_attribute(&path.name)?, None)
        }
    };
    let mut values = Vec::new();
    let raw = container
        .and_then(Value::as_object)
        .and_then(|o| get_ci(o, &attr.name))
        .map(|(_, v)| v);
    let top: Vec<&Value> = match raw {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) if attr.multi_valued => a.iter().collect(),
        Some(v) => vec![v],
    };
    match sub {
        None => values.extend(top),
        Some(s) => {
            for v in top {
                if let Some((_, sv)) = v.as_object().and_then(|o| get_ci(o, &s.name)) {
                    match sv {
                        Value::Array(a) if s.multi_valued => values.extend(a.iter()),
                        Value::Null => {}
                        other => values.push(other),
                    }
                }
            }
        }
    }
    Some(Found {
        values,
        def: sub.unwrap_or(attr),
    })
}

/// RFC 7644 §3.4.2.2 "pr": a value that is not null, "", [] or {}.
pub(crate) fn is_present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => a.iter().any(is_present),
        Value::Object(o) => o.values().any(is_present),
        _ => true,
    }
}

fn eval(f: &Filter, res: &Value, scope: &Scope<'_>, opts: EvalOptions) -> Result<bool, ScimError> {
    match f {
        Filter::And(a, b) => Ok(eval(a, res, scope, opts)? && eval(b, res, scope, opts)?),
        Filter::Or(a, b) => Ok(eval(a, res, scope, opts)? || eval(b, res, scope, opts)?),
        Filter::Not(a) => Ok(!eval(a, res, scope, opts)?),
        Filter::Present(path) => match lookup(res, path, scope) {
            None => unknown(path, opts),
            Some(found) => Ok(found.values.iter().any(|v| is_present(v))),
        },
        Filter::ValuePath { path, filter } => {
            let Some(found) = lookup(res, path, scope) else {
                return unknown(path, opts);
            };
            if found.def.attr_type != AttrType::Complex || path.sub.is_some() {
                return Err(ScimError::invalid_filter(format!(
                    "{path} is not a complex attribute and takes no value filter"
                )));
            }
            for v in found.values {
                if eval(filter, v, &Scope::Element(found.def), opts)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Filter::Compare { path, op, value } => {
            let Some(found) = lookup(res, path, scope) else {
                return unknown(path, opts);
            };
            let (values, def): (Vec<&Value>, &Attribute) =
                if found.def.attr_type == AttrType::Complex {
                    // A complex attribute compares its `value` sub-attribute.
                    let Some(vdef) = found.def.sub_attribute("value") else {
                        return Err(ScimError::invalid_filter(format!(
                            "{path} is complex: name one of its sub-attributes"
                        )));
                    };
                    let vals = found
                        .values
                        .iter()
                        .filter_map(|v| {
                            v.as_object()
                                .and_then(|o| get_ci(o, "value"))
                                .map(|(_, x)| x)
                        })
                        .filter(|x| !x.is_null())
                        .collect();
                    (vals, vdef)
                } else {
                    (found.values, found.def)
                };
            compare_all(&values, def, *op, value, path)
        }
    }
}

fn compare_all(
    values: &[&Value],
    def: &Attribute,
    op: CompareOp,
    lit: &CompValue,
    path: &AttrPath,
) -> Result<bool, ScimError> {
    check_operator(def, op, lit, path)?;
    if matches!(lit, CompValue::Null) {
        let any = values.iter().any(|v| is_present(v));
        return Ok(if op == CompareOp::Eq { !any } else { any });
    }
    if op == CompareOp::Ne {
        for v in values {
            if compare_one(v, def, CompareOp::Eq, lit) {
                return Ok(false);
            }
        }
        return Ok(true);
    }
    Ok(values.iter().any(|v| compare_one(v, def, op, lit)))
}

/// The operator/type combinations RFC 7644 §3.4.2.2 refuses.
fn check_operator(
    def: &Attribute,
    op: CompareOp,
    lit: &CompValue,
    path: &AttrPath,
) -> Result<(), ScimError> {
    use CompareOp::*;
    let ordering = matches!(op, Gt | Ge | Lt | Le);
    let substring = matches!(op, Co | Sw | Ew);
    let bad = match def.attr_type {
        AttrType::Boolean => ordering || substring,
        AttrType::Binary => ordering,
        AttrType::Integer | AttrType::Decimal => substring,
        _ => false,
    } || (matches!(lit, CompValue::Null) && !matches!(op, Eq | Ne));
    if bad {
        Err(ScimError::invalid_filter(format!(
            "operator {} cannot be used on {path}",
            op.as_str()
        )))
    } else {
        Ok(())
    }
}

fn fold(s: &str, case_exact: bool) -> String {
    if case_exact {
        s.to_string()
    } else {
        s.to_lowercase()
    }
}

fn ordering_holds(op: CompareOp, ord: Ordering) -> bool {
    match op {
        CompareOp::Eq => ord == Ordering::Equal,
        CompareOp::Ne => ord != Ordering::Equal,
        CompareOp::Gt => ord == Ordering::Greater,
        CompareOp::Ge => ord != Ordering::Less,
        CompareOp::Lt => ord == Ordering::Less,
        CompareOp::Le => ord != Ordering::Greater,
        _ => false,
    }
}

/// An RFC 3339 instant (RFC 7643 §2.3.5).
pub(crate) fn parse_datetime(s: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_rfc3339(s).ok()
}

fn compare_one(actual: &Value, def: &Attribute, op: CompareOp, lit: &CompValue) -> bool {
    match (def.attr_type, actual, lit) {
        (AttrType::Boolean, Value::Bool(a), CompValue::Bool(b)) => ordering_holds(op, a.cmp(b)),
        (AttrType::Integer | AttrType::Decimal, Value::Number(a), CompValue::Number(b)) => {
            num_cmp(a, b).is_some_and(|o| ordering_holds(op, o))
        }
        (AttrType::DateTime, Value::String(a), CompValue::String(b))
            if !matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew) =>
        {
            match (parse_datetime(a), parse_datetime(b)) {
                (Some(x), Some(y)) => ordering_holds(op, x.cmp(&y)),
                _ => false,
            }
        }
        (
            AttrType::String | AttrType::Reference | AttrType::Binary | AttrType::DateTime,
            Value::String(a),
            CompValue::String(b),
        ) => {
            let exact = def.case_exact || def.attr_type == AttrType::Binary;
            let (a, b) = (fold(a, exact), fold(b, exact));
            match op {
                CompareOp::Co => a.contains(&b),
                CompareOp::Sw => a.starts_with(&b),
                CompareOp::Ew => a.ends_with(&b),
                _ => ordering_holds(op, a.cmp(&b)),
            }
        }
        _ => false,
    }
}

/// Numbers compare exactly as integers when both are, else as f64.
pub(crate) fn num_cmp(a: &serde_json::Number, b: &serde_json::Number) -> Option<Ordering> {
    match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => match (a.as_u64(), b.as_u64()) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
        },
    }
}
