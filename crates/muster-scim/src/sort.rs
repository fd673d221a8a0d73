//! `sortBy` and `sortOrder` (RFC 7644 §3.4.2.3): resources ordered by one
//! attribute, strings without case unless `caseExact`, numbers by value,
//! `dateTime`s as instants. A multi-valued attribute sorts by its primary
//! value, else its first; a complex attribute named without a
//! sub-attribute by its `value`. Resources without a value come last when
//! ascending and first when descending, as the RFC says.
use crate::error::ScimError;
use crate::filter::eval::parse_datetime;
use crate::path::AttrPath;
use crate::schema::{get_ci, AttrType, Attribute, Resolved, ResourceSchemas};
use serde_json::Value;
use std::cmp::Ordering;

/// `sortOrder`; ascending by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortOrder {
    #[default]
    Ascending,
    Descending,
}

impl SortOrder {
    /// `ascending` / `descending` in any case; absent is ascending.
    pub fn parse(s: Option<&str>) -> Result<Self, ScimError> {
        match s.map(str::trim) {
            None | Some("") => Ok(SortOrder::Ascending),
            Some(x) if x.eq_ignore_ascii_case("ascending") => Ok(SortOrder::Ascending),
            Some(x) if x.eq_ignore_ascii_case("descending") => Ok(SortOrder::Descending),
            Some(_) => Err(ScimError::invalid_value(
                "sortOrder must be ascending or descending",
            )),
        }
    }
}

/// A resolved `sortBy`.
#[derive(Debug, Clone, PartialEq)]
pub struct SortBy {
    path: AttrPath,
    order: SortOrder,
}

/// The value a resource sorts by.
#[derive(Debug, Clone, PartialEq)]
pub enum SortKey {
    Bool(bool),
    Number(f64),
    Time(chrono::DateTime<chrono::FixedOffset>),
    Text(String),
}

impl SortKey {
    fn rank(&self) -> u8 {
        match self {
            SortKey::Bool(_) => 0,
            SortKey::Number(_) => 1,
            SortKey::Time(_) => 2,
            SortKey::Text(_) => 3,
        }
    }

    fn cmp_key(&self, other: &SortKey) -> Ordering {
        match (self, other) {
            (SortKey::Bool(a), SortKey::Bool(b)) => a.cmp(b),
            (SortKey::Number(a), SortKey::Number(b)) => a.total_cmp(b),
            (SortKey::Time(a), SortKey::Time(b)) => a.cmp(b),
            (SortKey::Text(a), SortKey::Text(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl SortBy {
    /// Checks `sortBy` against the schemas: an attribute they do not know
    /// is `invalidValue`, as is a bad `sortOrder`.
    pub fn new(
        sort_by: &str,
        order: Option<&str>,
        schemas: &ResourceSchemas,
    ) -> Result<Self, ScimError> {
        let order = SortOrder::parse(order)?;
        let path = AttrPath::parse(sort_by.trim())
            .map_err(|_| ScimError::invalid_value("sortBy is not an attribute path"))?;
        match schemas.resolve(&path) {
            Some(Resolved::Attr { .. }) => Ok(SortBy { path, order }),
            _ => Err(ScimError::invalid_value(
                "sortBy names no attribute of this resource type",
            )),
        }
    }

    /// The key a resource sorts by, if it has one.
    pub fn key(&self, resource: &Value, schemas: &ResourceSchemas) -> Option<SortKey> {
        sort_key(resource, &self.path, schemas)
    }

    /// Orders two resources.
    pub fn compare(&self, a: &Value, b: &Value, schemas: &ResourceSchemas) -> Ordering {
        self.order_keys(self.key(a, schemas).as_ref(), self.key(b, schemas).as_ref())
    }

    /// Sorts in place (stable: equal keys keep their order). Each key is
    /// computed once, and the resources are moved, not copied.
    pub fn sort(&self, resources: &mut [Value], schemas: &ResourceSchemas) {
        let keys: Vec<Option<SortKey>> = resources.iter().map(|r| self.key(r, schemas)).collect();
        let mut order: Vec<usize> = (0..resources.len()).collect();
        order.sort_by(|&i, &j| self.order_keys(keys[i].as_ref(), keys[j].as_ref()));
        let mut taken: Vec<Value> = resources.iter_mut().map(std::mem::take).collect();
        for (slot, i) in resources.iter_mut().zip(order) {
            *slot = std::mem::take(&mut taken[i]);
        }
    }

    /// RFC 7644 §3.4.2.3: a resource without a value sorts last ascending
    /// (and so first descending).
    fn order_keys(&self, a: Option<&SortKey>, b: Option<&SortKey>) -> Ordering {
        let ord = match (a, b) {
            (Some(x), Some(y)) => x.cmp_key(y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        match self.order {
            SortOrder::Ascending => ord,
            SortOrder::Descending => ord.reverse(),
        }
    }
}

/// The key of one resource for a path.
pub fn sort_key(resource: &Value, path: &AttrPath, schemas: &ResourceSchemas) -> Option<SortKey> {
    let Resolved::Attr {
        extension,
        attr,
        sub,
    } = schemas.resolve(path)?
    else {
        return None;
    };
    let root = resource.as_object()?;
    let container = match extension {
        Some(ext) => get_ci(root, &ext.id)?.1.as_object()?,
        None => root,
    };
    let raw = get_ci(container, &attr.name)?.1;
    let one = if attr.multi_valued {
        let items = raw.as_array()?;
        items
            .iter()
            .find(|e| {
                e.as_object()
                    .and_then(|o| get_ci(o, "primary"))
                    .is_some_and(|(_, p)| p == &Value::Bool(true))
            })
            .or_else(|| items.iter().find(|e| !e.is_null()))?
    } else {
        raw
    };
    let (leaf, def): (&Value, &Attribute) = match (sub, attr.attr_type) {
        (Some(s), _) => (get_ci(one.as_object()?, &s.name)?.1, s),
        (None, AttrType::Complex) => {
            let s = attr.sub_attribute("value")?;
            (get_ci(one.as_object()?, "value")?.1, s)
        }
        (None, _) => (one, attr),
    };
    match (def.attr_type, leaf) {
        (AttrType::Boolean, Value::Bool(b)) => Some(SortKey::Bool(*b)),
        (AttrType::Integer | AttrType::Decimal, Value::Number(n)) => {
            n.as_f64().map(SortKey::Number)
        }
        (AttrType::DateTime, Value::String(s)) => parse_datetime(s).map(SortKey::Time),
        (_, Value::String(s)) => Some(SortKey::Text(if def.case_exact {
            s.clone()
        } else {
            s.to_lowercase()
        })),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn users() -> Vec<Value> {
        vec![
            json!({"id": "1", "userName": "bob", "emails": [{"value": "z@x", "type": "home"}, {"value": "b@x", "primary": true}],
                   "meta": {"created": "2020-01-01T00:00:00Z"}}),
            json!({"id": "2", "userName": "Alice", "emails": [{"value": "c@x"}], "meta": {"created": "2019-12-31T23:00:00-02:00"}}),
            json!({"id": "3", "name": {"givenName": "Zed"}}),
            json!({"id": "4", "userName": "carol", "emails": [{"value": "a@x"}], "meta": {"created": "2019-06-01T00:00:00Z"}}),
        ]
    }

    fn order(by: &str, ord: Option<&str>) -> Vec<String> {
        let s = ResourceSchemas::user();
        let mut v = users();
        SortBy::new(by, ord, &s).unwrap().sort(&mut v, &s);
        v.iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn strings_sort_without_case_and_missing_values_come_last_ascending() {
        assert_eq!(order("userName", None), ["2", "1", "4", "3"]);
        assert_eq!(order("USERNAME", Some("Descending")), ["3", "4", "1", "2"]);
    }

    #[test]
    fn a_multi_valued_attribute_sorts_by_its_primary_or_first_value() {
        assert_eq!(order("emails", None), ["4", "1", "2", "3"]);
        assert_eq!(order("emails.value", None), ["4", "1", "2", "3"]);
    }

    #[test]
    fn datetimes_sort_as_instants() {
        // 2019-12-31T23:00-02:00 is 2020-01-01T01:00Z, after user 1.
        assert_eq!(order("meta.created", None), ["4", "1", "2", "3"]);
    }

    #[test]
    fn case_exact_strings_keep_their_case() {
        let s = ResourceSchemas::user();
        let by = SortBy::new("externalId", None, &s).unwrap();
        let a = json!({"externalId": "B"});
        let b = json!({"externalId": "a"});
        assert_eq!(by.compare(&a, &b, &s), Ordering::Less);
        let by = SortBy::new("userName", None, &s).unwrap();
        assert_eq!(
            by.compare(&json!({"userName": "B"}), &json!({"userName": "a"}), &s),
            Ordering::Greater
        );
    }

    #[test]
    fn unknown_attributes_and_orders_are_invalid_value() {
        let s = ResourceSchemas::user();
        assert_eq!(
            SortBy::new("bogus", None, &s).unwrap_err().scim_type,
            Some(crate::ScimType::InvalidValue)
        );
        assert!(SortBy::new("userName", Some("up"), &s).is_err());
    }
}
