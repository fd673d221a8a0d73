//! The PATCH engine (RFC 7644 §3.5.2): `add`, `remove` and `replace` on a
//! resource in its SCIM JSON representation, given its schemas, and the
//! Group membership view of a PATCH ([`group_changes`]) that lets the
//! server change members without loading the member list.
//!
//! Beside the RFC, the engine takes what real clients send (see
//! `docs/scim.md`): `op` in any case, booleans as the strings "True" and
//! "False" for boolean attributes, a bare string for a complex attribute
//! with a `value` sub-attribute (Entra's `manager`), member removal by a
//! `value` list, explicit `null` meaning "clear", `id` repeated unchanged
//! in a replace (Okta's Group rename).
use crate::error::ScimError;
use crate::filter::eval::{element_matches, is_present, parse_datetime, EvalOptions};
use crate::filter::{CompValue, CompareOp, Filter, PatchPath};
use crate::path::{is_attr_name, AttrPath};
use crate::schema::{get_ci, AttrType, Attribute, Mutability, Resolved, ResourceSchemas, Schema};
use serde_json::{Map, Value};

/// The operations of RFC 7644 §3.5.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    Add,
    Remove,
    Replace,
}

impl OpKind {
    /// `add`, `remove`, `replace` in any case (Entra sends `Add`,
    /// `Replace`).
    pub fn parse(s: &str) -> Option<OpKind> {
        [OpKind::Add, OpKind::Remove, OpKind::Replace]
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
    }
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Add => "add",
            OpKind::Remove => "remove",
            OpKind::Replace => "replace",
        }
    }
}

/// One PATCH operation. `value: Some(Value::Null)` is an explicit null,
/// `None` an absent member. Its `Debug` shows the op only: the path's
/// filter and the value are request data.
#[derive(Clone, PartialEq)]
pub struct PatchOperation {
    pub op: OpKind,
    pub path: Option<String>,
    pub value: Option<Value>,
}

impl std::fmt::Debug for PatchOperation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PatchOperation")
            .field("op", &self.op)
            .field("path", &self.path.as_ref().map(|_| "<redacted>"))
            .field("value", &self.value.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl PatchOperation {
    /// Reads one element of `Operations`; member names in any case.
    /// `index` numbers the operation in error details.
    pub fn from_json(v: &Value, index: usize) -> Result<Self, ScimError> {
        let obj = v.as_object().ok_or_else(|| {
            ScimError::invalid_syntax(format!("operation {index} is not an object"))
        })?;
        let op = get_ci(obj, "op")
            .and_then(|(_, o)| o.as_str())
            .ok_or_else(|| ScimError::invalid_syntax(format!("operation {index} has no \"op\"")))?;
        let op = OpKind::parse(op).ok_or_else(|| {
            ScimError::invalid_syntax(format!(
                "operation {index}: \"op\" must be add, remove or replace"
            ))
        })?;
        let path = match get_ci(obj, "path").map(|(_, p)| p) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(ScimError::invalid_path(format!(
                    "operation {index}: \"path\" must be a string"
                )))
            }
        };
        let value = get_ci(obj, "value").map(|(_, v)| v.clone());
        Ok(PatchOperation { op, path, value })
    }
}

/// The result of [`apply`]: the new resource and whether it differs from
/// the old one (an unchanged PATCH writes nothing).
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOutcome {
    pub resource: Value,
    pub changed: bool,
}

/// Applies the operations in order (RFC 7644 §3.5.2: all or nothing;
/// the first failing operation fails the whole request).
pub fn apply(
    resource: &Value,
    ops: &[PatchOperation],
    schemas: &ResourceSchemas,
) -> Result<PatchOutcome, ScimError> {
    let mut root = resource
        .as_object()
        .cloned()
        .ok_or_else(|| ScimError::invalid_value("the resource is not an object"))?;
    for (index, op) in ops.iter().enumerate() {
        Engine { schemas, index }.apply_op(&mut root, op)?;
    }
    normalise_extensions(&mut root, schemas);
    let out = Value::Object(root);
    let changed = &out != resource;
    Ok(PatchOutcome {
        resource: out,
        changed,
    })
}

/// An attribute an operation targets.
struct Target<'s> {
    ext: Option<&'s Schema>,
    attr: &'s Attribute,
    sub: Option<&'s Attribute>,
    filter: Option<Filter>,
    /// The attribute path for error details: names only, never the
    /// filter's values.
    label: String,
}

enum Resolve<'s> {
    Attr(Target<'s>),
    Extension(&'s Schema),
}

/// A name from the request fit to appear in an error detail.
fn shown(name: &str) -> &str {
    if is_attr_name(name) && name.len() <= 64 {
        name
    } else {
        "(a name that is not an attribute name)"
    }
}

struct Engine<'s> {
    schemas: &'s ResourceSchemas,
    index: usize,
}

impl<'s> Engine<'s> {
    fn err_prefix(&self) -> String {
        format!("operation {}", self.index)
    }

    fn apply_op(
        &mut self,
        root: &mut Map<String, Value>,
        op: &PatchOperation,
    ) -> Result<(), ScimError> {
        let value = op.value.as_ref();
        if op.op != OpKind::Remove && value.is_none() {
            return Err(ScimError::invalid_syntax(format!(
                "{}: {} needs a \"value\"",
                self.err_prefix(),
                op.op.as_str()
            )));
        }
        match op.path.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
            None => {
                if op.op == OpKind::Remove {
                    // RFC 7644 §3.5.2.2: remove without a path.
                    return Err(ScimError::no_target(format!(
                        "{}: remove needs a \"path\"",
                        self.err_prefix()
                    )));
                }
                self.apply_no_path(root, op.op, value.unwrap_or(&Value::Null))
            }
            Some(path) => match self.resolve(path)? {
                Resolve::Attr(t) => self.apply_attr(root, op.op, &t, value),
                Resolve::Extension(ext) => self.apply_extension(root, op.op, ext, value),
            },
        }
    }

    fn resolve(&self, path: &str) -> Result<Resolve<'s>, ScimError> {
        if let Some(ext) = self.schemas.extension(path.trim()) {
            return Ok(Resolve::Extension(ext));
        }
        let pp = PatchPath::parse(path.trim())?;
        let label = pp.attr.to_string();
        let resolved = self.schemas.resolve(&pp.attr).ok_or_else(|| {
            ScimError::invalid_path(format!(
                "{}: the path names no attribute of this resource",
                self.err_prefix()
            ))
        })?;
        let (ext, attr, sub) = match resolved {
            Resolved::Extension(ext) if pp.filter.is_none() => return Ok(Resolve::Extension(ext)),
            Resolved::Extension(_) => {
                return Err(ScimError::invalid_path(format!(
                    "{}: a schema takes no value filter",
                    self.err_prefix()
                )))
            }
            Resolved::Attr {
                extension,
                attr,
                sub,
            } => (extension, attr, sub),
        };
        if ext.is_none() && attr.name == "schemas" {
            return Err(ScimError::mutability(format!(
                "{}: schemas is maintained by the service provider",
                self.err_prefix()
            )));
        }
        let sub = match (&pp.filter, &pp.sub) {
            (Some(_), _) if !(attr.multi_valued && attr.attr_type == AttrType::Complex) => {
                return Err(ScimError::invalid_path(format!(
                    "{}: {label} is not multi-valued and complex and takes no value filter",
                    self.err_prefix()
                )))
            }
            (Some(_), Some(s)) => Some(attr.sub_attribute(s).ok_or_else(|| {
                ScimError::invalid_path(format!(
                    "{}: {label} has no sub-attribute {}",
                    self.err_prefix(),
                    shown(s)
                ))
            })?),
            _ => sub,
        };
        let label = match (&pp.filter, sub) {
            (Some(_), Some(s)) => format!("{label}[...].{}", s.name),
            (Some(_), None) => format!("{label}[...]"),
            _ => label,
        };
        Ok(Resolve::Attr(Target {
            ext,
            attr,
            sub,
            filter: pp.filter,
            label,
        }))
    }

    /// RFC 7644 §3.5.2.1/§3.5.2.3 without a path: the value is an object
    /// of attributes; keys may be dotted (`name.givenName`), URN-qualified
    /// (`urn:...:User:department`) or an extension's URN holding an object.
    fn apply_no_path(
        &mut self,
        root: &mut Map<String, Value>,
        kind: OpKind,
        value: &Value,
    ) -> Result<(), ScimError> {
        let obj = value.as_object().ok_or_else(|| {
            ScimError::invalid_value(format!(
                "{}: without a path the value must be an object of attributes",
                self.err_prefix()
            ))
        })?;
        for (k, v) in obj {
            if k.eq_ignore_ascii_case("schemas") {
                // The engine keeps `schemas` in step with the extensions.
                continue;
            }
            if let Some(ext) = self.schemas.extension(k) {
                self.apply_extension(root, kind, ext, Some(v))?;
            } else if self.schemas.is_core(k) {
                let inner = v.as_object().ok_or_else(|| {
                    ScimError::invalid_value(format!(
                        "{}: the core schema's member must be an object",
                        self.err_prefix()
                    ))
                })?;
                for (k2, v2) in inner {
                    if self.schemas.extension(k2).is_some() || k2.contains(':') {
                        return Err(ScimError::invalid_path(format!(
                            "{}: a schema URN inside the core schema's object",
                            self.err_prefix()
                        )));
                    }
                    self.apply_key(root, kind, k2, v2)?;
                }
            } else {
                self.apply_key(root, kind, k, v)?;
            }
        }
        Ok(())
    }

    fn apply_key(
        &mut self,
        root: &mut Map<String, Value>,
        kind: OpKind,
        key: &str,
        v: &Value,
    ) -> Result<(), ScimError> {
        match self.resolve(key)? {
            Resolve::Attr(t) => self.apply_attr(root, kind, &t, Some(v)),
            Resolve::Extension(ext) => self.apply_extension(root, kind, ext, Some(v)),
        }
    }

    /// A whole extension as the target: add/replace take an object of its
    /// attributes; remove clears it.
    fn apply_extension(
        &mut self,
        root: &mut Map<String, Value>,
        kind: OpKind,
        ext: &'s Schema,
        value: Option<&Value>,
    ) -> Result<(), ScimError> {
        let clear = kind == OpKind::Remove || value.is_none_or(Value::is_null);
        if clear {
            let Some((key, _)) = get_ci(root, &ext.id) else {
                return Ok(());
            };
            let key = key.clone();
            let current = root
                .get(&key)
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            for attr in &ext.attributes {
                let present = get_ci(&current, &attr.name).is_some_and(|(_, v)| is_present(v));
                if present && (attr.required || attr.mutability != Mutability::ReadWrite) {
                    return Err(ScimError::mutability(format!(
                        "{}: {}:{} cannot be removed",
                        self.err_prefix(),
                        ext.id,
                        attr.name
                    )));
                }
            }
            root.remove(&key);
            return Ok(());
        }
        let obj = value.and_then(Value::as_object).ok_or_else(|| {
            ScimError::invalid_value(format!(
                "{}: the value of an extension schema must be an object",
                self.err_prefix()
            ))
        })?;
        for (k, v) in obj {
            if k.eq_ignore_ascii_case("schemas") {
                continue;
            }
            let path = AttrPath::parse(&format!("{}:{k}", ext.id)).map_err(|_| {
                ScimError::invalid_path(format!(
                    "{}: {} is no attribute name",
                    self.err_prefix(),
                    shown(k)
                ))
            })?;
            let Some(Resolved::Attr { attr, sub, .. }) = self.schemas.resolve(&path) else {
                return Err(ScimError::invalid_path(format!(
                    "{}: {} has no attribute {}",
                    self.err_prefix(),
                    ext.id,
                    shown(k)
                )));
            };
            let t = Target {
                ext: Some(ext),
                attr,
                sub,
                filter: None,
                label: path.to_string(),
            };
            self.apply_attr(root, kind, &t, Some(v))?;
        }
        Ok(())
    }

    fn apply_attr(
        &mut self,
        root: &mut Map<String, Value>,
        kind: OpKind,
        t: &Target<'s>,
        value: Option<&Value>,
    ) -> Result<(), ScimError> {
        let container: &mut Map<String, Value> = match t.ext {
            None => root,
            Some(ext) => {
                let key = match get_ci(root, &ext.id) {
                    Some((k, _)) => k.clone(),
                    None => {
                        if kind == OpKind::Remove {
                            return self.compute_absent(kind, t);
                        }
                        root.insert(ext.id.clone(), Value::Object(Map::new()));
                        ext.id.clone()
                    }
                };
                match root.get_mut(&key) {
                    Some(Value::Object(o)) => o,
                    Some(other) => {
                        *other = Value::Object(Map::new());
                        match other {
                            Value::Object(o) => o,
                            _ => return Ok(()),
                        }
                    }
                    None => return Ok(()),
                }
            }
        };
        let key = get_ci(container, &t.attr.name).map(|(k, _)| k.clone());
        let old = key
            .as_ref()
            .and_then(|k| container.get(k))
            .filter(|v| !v.is_null())
            .cloned();
        if t.attr.mutability == Mutability::ReadOnly {
            // RFC 7643 §2.2: never written by a client; the value it
            // already has, repeated, is no change (Okta repeats `id`).
            let same = match kind {
                OpKind::Remove => old.is_none(),
                _ => t.sub.is_none() && t.filter.is_none() && value == old.as_ref(),
            };
            if !same {
                return Err(ScimError::mutability(format!(
                    "{}: {} is readOnly",
                    self.err_prefix(),
                    t.label
                )));
            }
            return Ok(());
        }
        let new = self.compute(kind, t, old.as_ref(), value)?;
        self.check_mutability(t, old.as_ref(), new.as_ref())?;
        if let Some(k) = key {
            container.remove(&k);
        }
        if let Some(n) = new {
            container.insert(t.attr.name.clone(), n);
        }
        Ok(())
    }

    /// A remove on an attribute of an extension the resource does not have.
    fn compute_absent(&self, kind: OpKind, t: &Target<'s>) -> Result<(), ScimError> {
        if t.filter.is_some() && kind != OpKind::Add {
            return Err(self.no_target(t));
        }
        Ok(())
    }

    fn no_target(&self, t: &Target<'s>) -> ScimError {
        ScimError::no_target(format!(
            "{}: the filter of {} matches no value",
            self.err_prefix(),
            t.label
        ))
    }

    fn check_mutability(
        &self,
        t: &Target<'s>,
        old: Option<&Value>,
        new: Option<&Value>,
    ) -> Result<(), ScimError> {
        if old == new {
            return Ok(());
        }
        let label = &t.label;
        match t.attr.mutability {
            Mutability::ReadOnly => {
                return Err(ScimError::mutability(format!(
                    "{}: {label} is readOnly",
                    self.err_prefix()
                )))
            }
            Mutability::Immutable if old.is_some() => {
                return Err(ScimError::mutability(format!(
                    "{}: {label} is immutable",
                    self.err_prefix()
                )))
            }
            _ => {}
        }
        if t.attr.required && new.is_none() {
            return Err(ScimError::mutability(format!(
                "{}: {label} is required and cannot be removed",
                self.err_prefix()
            )));
        }
        Ok(())
    }

    /// The attribute's new value from its old one.
    fn compute(
        &self,
        kind: OpKind,
        t: &Target<'s>,
        old: Option<&Value>,
        value: Option<&Value>,
    ) -> Result<Option<Value>, ScimError> {
        let attr = t.attr;
        if let Some(filter) = &t.filter {
            return self.compute_filtered(kind, t, filter, old, value);
        }
        if let Some(sub) = t.sub {
            return self.compute_sub(kind, t, sub, old, value);
        }
        match kind {
            OpKind::Remove => {
                // Entra removes members by listing them as the value.
                match value {
                    Some(v) if attr.multi_valued && !v.is_null() => self.remove_listed(t, old, v),
                    _ => Ok(None),
                }
            }
            OpKind::Add | OpKind::Replace => {
                let v = self.coerce_attr(attr, value.unwrap_or(&Value::Null), &t.label)?;
                if v.is_null() {
                    return Ok(None);
                }
                if attr.multi_valued {
                    let items = match v {
                        Value::Array(a) => a,
                        other => vec![other],
                    };
                    let base = if kind == OpKind::Add { old } else { None };
                    self.add_values(t, base, items)
                } else if attr.attr_type == AttrType::Complex {
                    // RFC 7644 §3.5.2.1 and §3.5.2.3: the given
                    // sub-attributes replace or add, the others stay.
                    let mut obj = old.and_then(Value::as_object).cloned().unwrap_or_default();
                    if let Value::Object(n) = v {
                        for (k, sv) in n {
                            let sub = attr.sub_attribute(&k);
                            set_member(
                                &mut obj,
                                &k,
                                sv,
                                sub.map(|s| s.mutability),
                                self,
                                &t.label,
                            )?;
                        }
                    }
                    Ok(non_empty(obj))
                } else {
                    Ok(Some(v))
                }
            }
        }
    }

    fn compute_sub(
        &self,
        kind: OpKind,
        t: &Target<'s>,
        sub: &'s Attribute,
        old: Option<&Value>,
        value: Option<&Value>,
    ) -> Result<Option<Value>, ScimError> {
        let attr = t.attr;
        let v = match kind {
            OpKind::Remove => Value::Null,
            _ => self.coerce_attr(sub, value.unwrap_or(&Value::Null), &t.label)?,
        };
        if !attr.multi_valued {
            let mut obj = old.and_then(Value::as_object).cloned().unwrap_or_default();
            set_member(&mut obj, &sub.name, v, Some(sub.mutability), self, &t.label)?;
            return Ok(non_empty(obj));
        }
        let mut elems = as_elements(old);
        if elems.is_empty() {
            if v.is_null() {
                return Ok(None);
            }
            // RFC 7644 §3.5.2.3: a target that does not exist is added.
            let mut obj = Map::new();
            obj.insert(sub.name.clone(), v);
            return Ok(Some(Value::Array(vec![Value::Object(obj)])));
        }
        let touched: Vec<usize> = (0..elems.len()).collect();
        for e in elems.iter_mut() {
            if let Value::Object(o) = e {
                set_member(
                    o,
                    &sub.name,
                    v.clone(),
                    Some(sub.mutability),
                    self,
                    &t.label,
                )?;
            }
        }
        elems.retain(|e| !matches!(e, Value::Object(o) if o.is_empty()));
        self.finish_multi(t, elems, &touched)
    }

    fn compute_filtered(
        &self,
        kind: OpKind,
        t: &Target<'s>,
        filter: &Filter,
        old: Option<&Value>,
        value: Option<&Value>,
    ) -> Result<Option<Value>, ScimError> {
        let attr = t.attr;
        let mut elems = as_elements(old);
        let mut matched = Vec::new();
        for (i, e) in elems.iter().enumerate() {
            if element_matches(filter, e, attr, EvalOptions::default())? {
                matched.push(i);
            }
        }
        let sub_value = |this: &Self| -> Result<Value, ScimError> {
            match (kind, t.sub) {
                (OpKind::Remove, _) => Ok(Value::Null),
                (_, Some(sub)) => this.coerce_attr(sub, value.unwrap_or(&Value::Null), &t.label),
                (_, None) => this.coerce_element(attr, value.unwrap_or(&Value::Null), &t.label),
            }
        };
        let v = sub_value(self)?;
        if matched.is_empty() {
            if kind != OpKind::Add {
                return Err(self.no_target(t));
            }
            // An add through a filter that matches nothing adds a value
            // built from the filter's equalities (Entra's
            // `emails[type eq "work"].value`); another filter is noTarget.
            let Some(mut obj) = eq_terms(filter, attr) else {
                return Err(self.no_target(t));
            };
            match (t.sub, v) {
                (_, Value::Null) => return Ok(old.cloned()),
                (Some(sub), v) => {
                    obj.insert(sub.name.clone(), v);
                }
                (None, Value::Object(n)) => {
                    for (k, sv) in n {
                        if !sv.is_null() {
                            obj.insert(k, sv);
                        }
                    }
                }
                (None, _) => return Err(self.bad_type(t)),
            }
            let obj = self.coerce_element(attr, &Value::Object(obj), &t.label)?;
            elems.push(obj);
            let touched = [elems.len() - 1];
            return self.finish_multi(t, elems, &touched);
        }
        match (kind, t.sub) {
            (OpKind::Remove, None) => {
                let mut i = 0;
                elems.retain(|_| {
                    let keep = !matched.contains(&i);
                    i += 1;
                    keep
                });
                self.finish_multi(t, elems, &[])
            }
            (_, Some(sub)) => {
                for &i in &matched {
                    if let Some(Value::Object(o)) = elems.get_mut(i) {
                        set_member(
                            o,
                            &sub.name,
                            v.clone(),
                            Some(sub.mutability),
                            self,
                            &t.label,
                        )?;
                    }
                }
                elems.retain(|e| !matches!(e, Value::Object(o) if o.is_empty()));
                self.finish_multi(t, elems, &matched)
            }
            (OpKind::Replace, None) => {
                // RFC 7644 §3.5.2.3: all matching values are replaced.
                // A value replaced by null or {} is removed.
                let new = match v {
                    Value::Null => None,
                    Value::Object(o) => Some(strip_nulls(o)).filter(|o| !o.is_empty()),
                    _ => return Err(self.bad_type(t)),
                };
                for &i in matched.iter().rev() {
                    let old_elem = elems
                        .get(i)
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default();
                    match &new {
                        None => {
                            elems.remove(i);
                        }
                        Some(n) => {
                            let n = self.keep_fixed_subs(t, &old_elem, n.clone())?;
                            if let Some(slot) = elems.get_mut(i) {
                                *slot = Value::Object(n);
                            }
                        }
                    }
                }
                let touched = if new.is_some() { matched } else { Vec::new() };
                self.finish_multi(t, elems, &touched)
            }
            (OpKind::Add, None) => {
                let Value::Object(n) = v else {
                    return Err(self.bad_type(t));
                };
                for &i in &matched {
                    if let Some(Value::Object(o)) = elems.get_mut(i) {
                        for (k, sv) in &n {
                            let m = attr.sub_attribute(k).map(|s| s.mutability);
                            set_member(o, k, sv.clone(), m, self, &t.label)?;
                        }
                    }
                }
                elems.retain(|e| !matches!(e, Value::Object(o) if o.is_empty()));
                self.finish_multi(t, elems, &matched)
            }
        }
    }

    /// A replaced value keeps the old value's readOnly sub-attributes and
    /// must keep its immutable ones (RFC 7643 §2.2).
    fn keep_fixed_subs(
        &self,
        t: &Target<'s>,
        old: &Map<String, Value>,
        mut new: Map<String, Value>,
    ) -> Result<Map<String, Value>, ScimError> {
        for sub in &t.attr.sub_attributes {
            let o = get_ci(old, &sub.name)
                .map(|(_, v)| v.clone())
                .filter(is_present);
            match sub.mutability {
                Mutability::ReadOnly => {
                    if let Some(o) = o {
                        new.insert(sub.name.clone(), o);
                    }
                }
                Mutability::Immutable => {
                    let n = get_ci(&new, &sub.name).map(|(_, v)| v.clone());
                    if o.is_some() && o != n {
                        return Err(ScimError::mutability(format!(
                            "{}: {}.{} is immutable",
                            self.err_prefix(),
                            t.attr.name,
                            sub.name
                        )));
                    }
                }
                _ => {}
            }
        }
        Ok(new)
    }

    fn bad_type(&self, t: &Target<'s>) -> ScimError {
        ScimError::invalid_value(format!(
            "{}: the value of {} has the wrong type",
            self.err_prefix(),
            t.label
        ))
    }

    /// RFC 7644 §3.5.2.1: an add to a multi-valued attribute appends the
    /// new values; a value already there is left alone, and a value with
    /// the same `value` (and `type`) as one there is merged into it.
    fn add_values(
        &self,
        t: &Target<'s>,
        old: Option<&Value>,
        items: Vec<Value>,
    ) -> Result<Option<Value>, ScimError> {
        let attr = t.attr;
        let mut elems = as_elements(old);
        let mut touched = Vec::new();
        for item in items {
            if item.is_null() {
                continue;
            }
            if attr.attr_type == AttrType::Complex {
                let Value::Object(obj) = item else {
                    return Err(self.bad_type(t));
                };
                let obj = strip_nulls(obj);
                if obj.is_empty() {
                    continue;
                }
                let key = identity(attr, &obj);
                let same = elems.iter().position(|e| {
                    e.as_object().is_some_and(|eo| match &key {
                        Some(k) => identity(attr, eo).as_ref() == Some(k),
                        None => eq_ci(eo, &obj),
                    })
                });
                match same {
                    Some(i) => {
                        if let Some(Value::Object(eo)) = elems.get_mut(i) {
                            for (k, v) in obj {
                                let sub = attr.sub_attribute(&k);
                                // Immutable sub-attributes already set stay.
                                let current = get_ci(eo, &k).map(|(_, x)| x);
                                let fixed = sub
                                    .is_some_and(|s| s.mutability == Mutability::Immutable)
                                    && current.is_some_and(is_present);
                                // A value equal but for case is left as it is.
                                let same = current.is_some_and(|x| match sub {
                                    Some(s) => same_simple(s, x, &v),
                                    None => x == &v,
                                });
                                if !fixed && !same {
                                    set_member(
                                        eo,
                                        &k,
                                        v,
                                        sub.map(|s| s.mutability),
                                        self,
                                        &t.label,
                                    )?;
                                }
                            }
                        }
                        touched.push(i);
                    }
                    None => {
                        elems.push(Value::Object(obj));
                        touched.push(elems.len() - 1);
                    }
                }
            } else if !elems.iter().any(|e| same_simple(attr, e, &item)) {
                elems.push(item);
                touched.push(elems.len() - 1);
            }
        }
        self.finish_multi(t, elems, &touched)
    }

    /// Entra's member removal: `{"op":"remove","path":"members","value":
    /// [{"value":"id"}]}` removes the listed values; one not there is
    /// ignored.
    fn remove_listed(
        &self,
        t: &Target<'s>,
        old: Option<&Value>,
        v: &Value,
    ) -> Result<Option<Value>, ScimError> {
        let attr = t.attr;
        let listed = match self.coerce_attr(attr, v, &t.label)? {
            Value::Array(a) => a,
            Value::Null => Vec::new(),
            other => vec![other],
        };
        let mut elems = as_elements(old);
        for item in listed {
            match (&item, attr.attr_type) {
                (Value::Object(obj), AttrType::Complex) => {
                    let obj = strip_nulls(obj.clone());
                    let by_value = obj.contains_key("value").then(|| value_key(attr, &obj));
                    elems.retain(|e| {
                        let Some(eo) = e.as_object() else { return true };
                        match &by_value {
                            Some(k) => value_key(attr, eo) != *k,
                            None => !eq_ci(eo, &obj),
                        }
                    });
                }
                _ => elems.retain(|e| !same_simple(attr, e, &item)),
            }
        }
        self.finish_multi(t, elems, &[])
    }

    /// Ends a multi-valued change: `primary` is true on one value at most
    /// (RFC 7643 §2.4): a value this operation made primary clears the
    /// others; two made primary at once are `invalidValue`.
    fn finish_multi(
        &self,
        t: &Target<'s>,
        mut elems: Vec<Value>,
        touched: &[usize],
    ) -> Result<Option<Value>, ScimError> {
        let is_primary = |e: &Value| {
            e.as_object()
                .and_then(|o| get_ci(o, "primary"))
                .is_some_and(|(_, p)| p == &Value::Bool(true))
        };
        let primaries: Vec<usize> = (0..elems.len())
            .filter(|&i| is_primary(&elems[i]))
            .collect();
        if primaries.len() > 1 {
            let fresh: Vec<usize> = primaries
                .iter()
                .copied()
                .filter(|i| touched.contains(i))
                .collect();
            if fresh.len() != 1 {
                return Err(ScimError::invalid_value(format!(
                    "{}: primary may be true on one value of {} only",
                    self.err_prefix(),
                    t.attr.name
                )));
            }
            for &i in &primaries {
                if i != fresh[0] {
                    if let Some(Value::Object(o)) = elems.get_mut(i) {
                        if let Some(k) = get_ci(o, "primary").map(|(k, _)| k.clone()) {
                            o.remove(&k);
                        }
                    }
                }
            }
        }
        Ok(if elems.is_empty() {
            None
        } else {
            Some(Value::Array(elems))
        })
    }

    /// A whole attribute value from the request in the attribute's type
    /// (an array for a multi-valued attribute; one value is taken as a
    /// list of one).
    fn coerce_attr(&self, attr: &Attribute, v: &Value, label: &str) -> Result<Value, ScimError> {
        if v.is_null() {
            return Ok(Value::Null);
        }
        if attr.multi_valued {
            let items: Vec<&Value> = match v {
                Value::Array(a) => a.iter().collect(),
                other => vec![other],
            };
            let mut out = Vec::with_capacity(items.len());
            for i in items {
                let c = self.coerce_element(attr, i, label)?;
                if !c.is_null() {
                    out.push(c);
                }
            }
            return Ok(Value::Array(out));
        }
        self.coerce_element(attr, v, label)
    }

    /// One value in the attribute's type (RFC 7643 §2.3). Besides the
    /// exact JSON types: "true"/"false" in any case for a boolean, and a
    /// scalar for a complex attribute with a `value` sub-attribute.
    /// readOnly sub-attributes in a value are ignored (as RFC 7644 §3.5.1
    /// does for PUT); explicit nulls are kept, meaning "clear".
    fn coerce_element(&self, attr: &Attribute, v: &Value, label: &str) -> Result<Value, ScimError> {
        let bad = || {
            ScimError::invalid_value(format!(
                "{}: a value of {label} is not of type {}",
                self.err_prefix(),
                type_name(attr.attr_type)
            ))
        };
        Ok(match (attr.attr_type, v) {
            (_, Value::Null) => Value::Null,
            (AttrType::Complex, Value::Object(o)) => {
                let mut out = Map::new();
                for (k, sv) in o {
                    let Some(sub) = attr.sub_attribute(k) else {
                        return Err(ScimError::invalid_value(format!(
                            "{}: {label} has no sub-attribute {}",
                            self.err_prefix(),
                            shown(k)
                        )));
                    };
                    if sub.mutability == Mutability::ReadOnly {
                        continue;
                    }
                    let sub_label = format!("{label}.{}", sub.name);
                    out.insert(sub.name.clone(), self.coerce_attr(sub, sv, &sub_label)?);
                }
                Value::Object(out)
            }
            (AttrType::Complex, Value::String(_) | Value::Number(_) | Value::Bool(_)) => {
                let Some(vs) = attr.sub_attribute("value") else {
                    return Err(bad());
                };
                let mut out = Map::new();
                out.insert(vs.name.clone(), self.coerce_element(vs, v, label)?);
                Value::Object(out)
            }
            (AttrType::Boolean, Value::Bool(_)) => v.clone(),
            (AttrType::Boolean, Value::String(s)) if s.eq_ignore_ascii_case("true") => {
                Value::Bool(true)
            }
            (AttrType::Boolean, Value::String(s)) if s.eq_ignore_ascii_case("false") => {
                Value::Bool(false)
            }
            (AttrType::String | AttrType::Reference | AttrType::Binary, Value::String(_)) => {
                v.clone()
            }
            (AttrType::DateTime, Value::String(s)) if parse_datetime(s).is_some() => v.clone(),
            (AttrType::Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => v.clone(),
            (AttrType::Decimal, Value::Number(_)) => v.clone(),
            _ => return Err(bad()),
        })
    }
}

fn type_name(t: AttrType) -> &'static str {
    match t {
        AttrType::String => "string",
        AttrType::Boolean => "boolean",
        AttrType::Decimal => "decimal",
        AttrType::Integer => "integer",
        AttrType::DateTime => "dateTime",
        AttrType::Reference => "reference",
        AttrType::Complex => "complex",
        AttrType::Binary => "binary",
    }
}

/// Sets (or with null removes) one member of an object, under the
/// schema's spelling, refusing to change a readOnly or a set immutable
/// sub-attribute (RFC 7643 §2.2).
fn set_member(
    obj: &mut Map<String, Value>,
    name: &str,
    v: Value,
    mutability: Option<Mutability>,
    e: &Engine<'_>,
    label: &str,
) -> Result<(), ScimError> {
    let key = get_ci(obj, name).map(|(k, _)| k.clone());
    let old = key
        .as_ref()
        .and_then(|k| obj.get(k))
        .filter(|x| !x.is_null());
    let changed = old != Some(&v) && !(old.is_none() && v.is_null());
    if changed {
        match mutability {
            Some(Mutability::ReadOnly) => {
                return Err(ScimError::mutability(format!(
                    "{}: {label} has a readOnly sub-attribute {}",
                    e.err_prefix(),
                    shown(name)
                )))
            }
            Some(Mutability::Immutable) if old.is_some() => {
                return Err(ScimError::mutability(format!(
                    "{}: {label} has an immutable sub-attribute {}",
                    e.err_prefix(),
                    shown(name)
                )))
            }
            _ => {}
        }
    }
    if let Some(k) = key {
        obj.remove(&k);
    }
    if !v.is_null() {
        obj.insert(name.to_string(), v);
    }
    Ok(())
}

fn non_empty(obj: Map<String, Value>) -> Option<Value> {
    if obj.is_empty() {
        None
    } else {
        Some(Value::Object(obj))
    }
}

fn strip_nulls(mut obj: Map<String, Value>) -> Map<String, Value> {
    obj.retain(|_, v| !v.is_null());
    obj
}

fn as_elements(old: Option<&Value>) -> Vec<Value> {
    match old {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.iter().filter(|v| !v.is_null()).cloned().collect(),
        Some(other) => vec![other.clone()],
    }
}

fn fold_str(s: &str, exact: bool) -> String {
    if exact {
        s.to_string()
    } else {
        s.to_lowercase()
    }
}

/// A value's `value` sub-attribute, folded by its caseExact.
fn value_key(attr: &Attribute, obj: &Map<String, Value>) -> Option<String> {
    let exact = attr.sub_attribute("value").is_some_and(|s| s.case_exact);
    get_ci(obj, "value").map(|(_, v)| match v {
        Value::String(s) => fold_str(s, exact),
        other => other.to_string(),
    })
}

/// What makes two values of a multi-valued complex attribute "the same"
/// for an add: equal `value` and equal `type` (absent counts as a type).
fn identity(attr: &Attribute, obj: &Map<String, Value>) -> Option<(String, String)> {
    let v = value_key(attr, obj)?;
    let ty = get_ci(obj, "type")
        .and_then(|(_, t)| t.as_str())
        .map(str::to_lowercase)
        .unwrap_or_default();
    Some((v, ty))
}

fn eq_ci(a: &Map<String, Value>, b: &Map<String, Value>) -> bool {
    let a: Vec<_> = a.iter().filter(|(_, v)| !v.is_null()).collect();
    let b: Vec<_> = b.iter().filter(|(_, v)| !v.is_null()).collect();
    a.len() == b.len()
        && a.iter().all(|(k, v)| {
            b.iter()
                .any(|(k2, v2)| k.eq_ignore_ascii_case(k2) && v == v2)
        })
}

fn same_simple(attr: &Attribute, a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) if !attr.case_exact => {
            x.to_lowercase() == y.to_lowercase()
        }
        _ => a == b,
    }
}

/// The `attr eq literal` terms of a value filter made of `eq` and `and`
/// only, as the members of a new value; `None` for any other filter.
fn eq_terms(f: &Filter, attr: &Attribute) -> Option<Map<String, Value>> {
    match f {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value,
        } if path.urn.is_none() && path.sub.is_none() => {
            let sub = attr.sub_attribute(&path.name)?;
            let v = match value {
                CompValue::String(s) => Value::String(s.clone()),
                CompValue::Bool(b) => Value::Bool(*b),
                CompValue::Number(n) => Value::Number(n.clone()),
                CompValue::Null => return None,
            };
            let mut m = Map::new();
            m.insert(sub.name.clone(), v);
            Some(m)
        }
        Filter::And(a, b) => {
            let mut m = eq_terms(a, attr)?;
            for (k, v) in eq_terms(b, attr)? {
                if m.get(&k).is_some_and(|x| x != &v) {
                    return None;
                }
                m.insert(k, v);
            }
            Some(m)
        }
        _ => None,
    }
}

/// Extensions in step with `schemas` (RFC 7643 §3: an extension's URN is
/// listed when the resource has values of it): an empty extension object
/// goes, and `schemas` lists exactly the extensions present.
fn normalise_extensions(root: &mut Map<String, Value>, schemas: &ResourceSchemas) {
    for ext in &schemas.extensions {
        let key = get_ci(root, &ext.id).map(|(k, _)| k.clone());
        let present = key
            .as_ref()
            .and_then(|k| root.get(k))
            .is_some_and(is_present);
        if !present {
            if let Some(k) = &key {
                root.remove(k);
            }
        }
        let list = root
            .entry("schemas")
            .or_insert_with(|| Value::Array(Vec::new()));
        if !list.is_array() {
            *list = Value::Array(Vec::new());
        }
        if let Value::Array(ids) = list {
            let listed = ids
                .iter()
                .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(&ext.id)));
            if present && !listed {
                ids.push(Value::String(ext.id.clone()));
            } else if !present && listed {
                ids.retain(|s| !s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(&ext.id)));
            }
            if ids.is_empty() {
                ids.push(Value::String(schemas.core.id.clone()));
            }
        }
    }
}

/// Checks that a resource fits its schemas as the engine leaves one: an
/// object; every attribute known and of its type (as stored, so booleans
/// are JSON booleans); required attributes present; no stored nulls; at
/// most one `primary` per multi-valued attribute; `schemas` listing each
/// extension present. The fuzz target checks every PATCH result with it.
pub fn validate(resource: &Value, schemas: &ResourceSchemas) -> Result<(), ScimError> {
    let root = resource
        .as_object()
        .ok_or_else(|| ScimError::invalid_value("the resource is not an object"))?;
    let listed: Vec<&str> = match get_ci(root, "schemas").map(|(_, v)| v) {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => return Err(ScimError::invalid_value("schemas must be a list of URNs")),
    };
    for (k, v) in root {
        if k.eq_ignore_ascii_case("schemas") {
            continue;
        }
        if let Some(ext) = schemas.extension(k) {
            let obj = v.as_object().filter(|o| !o.is_empty()).ok_or_else(|| {
                ScimError::invalid_value(format!("{} must be a non-empty object", ext.id))
            })?;
            if !listed.iter().any(|s| s.eq_ignore_ascii_case(&ext.id)) {
                return Err(ScimError::invalid_value(format!(
                    "schemas does not list {}",
                    ext.id
                )));
            }
            for (ek, ev) in obj {
                let attr = ext.attribute(ek).ok_or_else(|| {
                    ScimError::invalid_value(format!("{} has no attribute {}", ext.id, shown(ek)))
                })?;
                validate_value(attr, ev, true)?;
            }
            continue;
        }
        let attr = schemas
            .top_level()
            .find(|a| a.name.eq_ignore_ascii_case(k))
            .ok_or_else(|| ScimError::invalid_value(format!("unknown attribute {}", shown(k))))?;
        validate_value(attr, v, true)?;
    }
    for attr in &schemas.core.attributes {
        if attr.required && !get_ci(root, &attr.name).is_some_and(|(_, v)| is_present(v)) {
            return Err(ScimError::invalid_value(format!(
                "{} is required",
                attr.name
            )));
        }
    }
    Ok(())
}

fn validate_value(attr: &Attribute, v: &Value, whole: bool) -> Result<(), ScimError> {
    let bad = || ScimError::invalid_value(format!("{} does not fit its schema", attr.name));
    if v.is_null() {
        return Err(bad());
    }
    if whole && attr.multi_valued {
        let Value::Array(items) = v else {
            return Err(bad());
        };
        let primaries = items
            .iter()
            .filter(|e| {
                e.as_object()
                    .and_then(|o| get_ci(o, "primary"))
                    .is_some_and(|(_, p)| p == &Value::Bool(true))
            })
            .count();
        if primaries > 1 || items.is_empty() {
            return Err(bad());
        }
        return items
            .iter()
            .try_for_each(|e| validate_value(attr, e, false));
    }
    let ok = match (attr.attr_type, v) {
        (AttrType::Complex, Value::Object(o)) => {
            for (k, sv) in o {
                let sub = attr.sub_attribute(k).ok_or_else(bad)?;
                validate_value(sub, sv, true)?;
            }
            !o.is_empty()
        }
        (AttrType::Boolean, Value::Bool(_)) => true,
        (AttrType::String | AttrType::Reference | AttrType::Binary, Value::String(_)) => true,
        (AttrType::DateTime, Value::String(s)) => parse_datetime(s).is_some(),
        (AttrType::Integer, Value::Number(n)) => n.is_i64() || n.is_u64(),
        (AttrType::Decimal, Value::Number(_)) => true,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(bad())
    }
}

/// One membership change of a Group, from [`group_changes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupChange {
    /// Add these member ids (already members are no change).
    AddMembers(Vec<String>),
    /// Remove these member ids (ids that are not members are ignored).
    RemoveMembers(Vec<String>),
    /// Remove every member.
    RemoveAllMembers,
    /// The members are exactly these ids.
    ReplaceMembers(Vec<String>),
    SetDisplayName(String),
    /// `None` clears it.
    SetExternalId(Option<String>),
}

/// A PATCH on a Group as typed changes, in order, so the server can apply
/// member changes without the member list (RFC 7644 §3.5.2 examples on
/// `members`, Entra's and Okta's Group PATCHes). `group_id` is the
/// Group's id: Okta repeats it in a replace, which is no change. Member
/// filters must be `value eq "id"` joined by `or`; anything else the
/// server would need the list for is `invalidFilter`.
pub fn group_changes(
    ops: &[PatchOperation],
    group_id: &str,
) -> Result<Vec<GroupChange>, ScimError> {
    let schemas = ResourceSchemas::group();
    let mut out = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let ctx = GroupCtx {
            schemas: &schemas,
            index: i,
            group_id,
        };
        if op.op != OpKind::Remove && op.value.is_none() {
            return Err(ScimError::invalid_syntax(format!(
                "operation {i}: {} needs a \"value\"",
                op.op.as_str()
            )));
        }
        match op.path.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
            None => {
                if op.op == OpKind::Remove {
                    return Err(ScimError::no_target(format!(
                        "operation {i}: remove needs a \"path\""
                    )));
                }
                let obj = op
                    .value
                    .as_ref()
                    .and_then(Value::as_object)
                    .ok_or_else(|| {
                        ScimError::invalid_value(format!(
                        "operation {i}: without a path the value must be an object of attributes"
                    ))
                    })?;
                for (k, v) in obj {
                    if k.eq_ignore_ascii_case("schemas") {
                        continue;
                    }
                    if schemas.is_core(k) {
                        let inner = v.as_object().ok_or_else(|| {
                            ScimError::invalid_value(format!(
                                "operation {i}: the core schema's member must be an object"
                            ))
                        })?;
                        for (k2, v2) in inner {
                            ctx.attribute(op.op, k2, None, Some(v2), &mut out)?;
                        }
                        continue;
                    }
                    ctx.attribute(op.op, k, None, Some(v), &mut out)?;
                }
            }
            Some(path) => {
                let pp = PatchPath::parse(path)?;
                let name = pp.attr.to_string();
                if pp.sub.is_some() || pp.attr.sub.is_some() {
                    return Err(ScimError::invalid_path(format!(
                        "operation {i}: sub-attributes of a Group cannot be patched one by one"
                    )));
                }
                ctx.attribute(
                    op.op,
                    &name,
                    pp.filter.as_ref(),
                    op.value.as_ref(),
                    &mut out,
                )?;
            }
        }
    }
    Ok(out)
}

struct GroupCtx<'a> {
    schemas: &'a ResourceSchemas,
    index: usize,
    group_id: &'a str,
}

impl GroupCtx<'_> {
    fn attribute(
        &self,
        kind: OpKind,
        name: &str,
        filter: Option<&Filter>,
        value: Option<&Value>,
        out: &mut Vec<GroupChange>,
    ) -> Result<(), ScimError> {
        let i = self.index;
        let Some(Resolved::Attr {
            attr, sub: None, ..
        }) = AttrPath::parse(name)
            .ok()
            .and_then(|p| self.schemas.resolve(&p))
        else {
            return Err(ScimError::invalid_path(format!(
                "operation {i}: the path names no attribute of a Group"
            )));
        };
        let value = value.filter(|v| !v.is_null());
        match attr.name.as_str() {
            "members" => match (kind, filter) {
                (OpKind::Remove, Some(f)) => out.push(GroupChange::RemoveMembers(
                    member_filter_ids(f).ok_or_else(|| {
                        ScimError::invalid_filter(format!(
                            "operation {i}: a members filter must be value eq \"id\", joined by or"
                        ))
                    })?,
                )),
                (_, Some(_)) => {
                    return Err(ScimError::invalid_path(format!(
                        "operation {i}: {} on a filtered members path is not supported",
                        kind.as_str()
                    )))
                }
                (OpKind::Remove, None) => match value {
                    None => out.push(GroupChange::RemoveAllMembers),
                    Some(v) => out.push(GroupChange::RemoveMembers(member_ids(v, i)?)),
                },
                (OpKind::Add, None) => {
                    if let Some(v) = value {
                        out.push(GroupChange::AddMembers(member_ids(v, i)?));
                    }
                }
                (OpKind::Replace, None) => match value {
                    None => out.push(GroupChange::RemoveAllMembers),
                    Some(v) => out.push(GroupChange::ReplaceMembers(member_ids(v, i)?)),
                },
            },
            "displayName" | "externalId" if filter.is_some() => {
                return Err(ScimError::invalid_path(format!(
                    "operation {i}: {} takes no value filter",
                    attr.name
                )))
            }
            "displayName" => match (kind, value) {
                (OpKind::Remove, _) | (_, None) => {
                    return Err(ScimError::mutability(format!(
                        "operation {i}: displayName is required and cannot be removed"
                    )))
                }
                (_, Some(Value::String(s))) => out.push(GroupChange::SetDisplayName(s.clone())),
                _ => {
                    return Err(ScimError::invalid_value(format!(
                        "operation {i}: displayName must be a string"
                    )))
                }
            },
            "externalId" => match (kind, value) {
                (OpKind::Remove, _) | (_, None) => out.push(GroupChange::SetExternalId(None)),
                (_, Some(Value::String(s))) => {
                    out.push(GroupChange::SetExternalId(Some(s.clone())))
                }
                _ => {
                    return Err(ScimError::invalid_value(format!(
                        "operation {i}: externalId must be a string"
                    )))
                }
            },
            "id" if kind != OpKind::Remove
                && value.and_then(Value::as_str) == Some(self.group_id) => {}
            other => {
                return Err(ScimError::mutability(format!(
                    "operation {i}: {other} cannot be changed"
                )));
            }
        }
        Ok(())
    }
}

/// Member ids from `[{"value": "id"}, ...]`, one such object, or bare
/// id strings.
fn member_ids(v: &Value, i: usize) -> Result<Vec<String>, ScimError> {
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    let mut ids = Vec::with_capacity(items.len());
    for item in items {
        let id = match item {
            Value::String(s) => s.clone(),
            Value::Object(o) => match get_ci(o, "value") {
                Some((_, Value::String(s))) => s.clone(),
                _ => {
                    return Err(ScimError::invalid_value(format!(
                        "operation {i}: every member needs a string \"value\""
                    )))
                }
            },
            _ => {
                return Err(ScimError::invalid_value(format!(
                    "operation {i}: a member must be an object"
                )))
            }
        };
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

fn member_filter_ids(f: &Filter) -> Option<Vec<String>> {
    match f {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value: CompValue::String(s),
        } if path.urn.is_none()
            && path.sub.is_none()
            && path.name.eq_ignore_ascii_case("value") =>
        {
            Some(vec![s.clone()])
        }
        Filter::Or(a, b) => {
            let mut ids = member_filter_ids(a)?;
            for id in member_filter_ids(b)? {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            Some(ids)
        }
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests;
