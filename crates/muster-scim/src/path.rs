//! Attribute paths (RFC 7644 §3.10, the `attrPath` rule of §3.4.2.2
//! Figure 1): `[URI ":"] ATTRNAME ["." ATTRNAME]`. Names are compared
//! case-insensitively (RFC 7643 §2.1); a path keeps the spelling it was
//! written with, so its `Display` gives back what was parsed.
use crate::error::ScimError;
use std::fmt;

/// An attribute path: an optional schema URN, an attribute name and an
/// optional sub-attribute name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttrPath {
    pub urn: Option<String>,
    pub name: String,
    pub sub: Option<String>,
}

impl AttrPath {
    /// A path to a top-level attribute of the core schema.
    pub fn new(name: impl Into<String>) -> Self {
        AttrPath {
            urn: None,
            name: name.into(),
            sub: None,
        }
    }

    /// The same path with a sub-attribute.
    pub fn with_sub(mut self, sub: impl Into<String>) -> Self {
        self.sub = Some(sub.into());
        self
    }

    /// Parses a whole string as an attribute path. Errors are
    /// `invalidPath` and name the offset, never the text.
    pub fn parse(s: &str) -> Result<Self, ScimError> {
        parse_attr_path(s).map_err(|(off, what)| {
            ScimError::invalid_path(format!("invalid attribute path at offset {off}: {what}"))
        })
    }

    /// Whether two paths name the same attribute, ignoring case. A URN
    /// is compared only when both have one.
    pub fn same_as(&self, other: &AttrPath) -> bool {
        let urn_ok = match (&self.urn, &other.urn) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            _ => true,
        };
        let sub_ok = match (&self.sub, &other.sub) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            (None, None) => true,
            _ => false,
        };
        urn_ok && sub_ok && self.name.eq_ignore_ascii_case(&other.name)
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(u) = &self.urn {
            write!(f, "{u}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(s) = &self.sub {
            write!(f, ".{s}")?;
        }
        Ok(())
    }
}

/// `ATTRNAME = ALPHA *(nameChar)`, `nameChar = "-" / "_" / DIGIT / ALPHA`
/// (RFC 7643 §2.1). `$ref` is accepted as well: RFC 7643 §2.4 names the
/// `$ref` sub-attribute and paths such as `members.$ref` use it.
pub fn is_attr_name(s: &str) -> bool {
    if s.eq_ignore_ascii_case("$ref") {
        return true;
    }
    let mut c = s.chars();
    match c.next() {
        Some(first) if first.is_ascii_alphabetic() => {}
        _ => return false,
    }
    c.all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
}

/// A character that may appear in a path token: a URN (RFC 8141 letters,
/// digits and `-._:`), a name, `$` of `$ref`, and the `.` of a sub-attribute.
pub(crate) fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '$' | '+' | '%')
}

/// Splits a path token: the URN is everything before the last `:`, the
/// rest is `name[.sub]`. Returns the offset and what was expected on error.
pub(crate) fn parse_attr_path(s: &str) -> Result<AttrPath, (usize, &'static str)> {
    if s.is_empty() {
        return Err((0, "an attribute name"));
    }
    if let Some(bad) = s.char_indices().find(|(_, c)| !is_path_char(*c)) {
        return Err((bad.0, "an attribute name character"));
    }
    let (urn, rest, base) = match s.rfind(':') {
        Some(i) => {
            let urn = &s[..i];
            if urn.len() < 5 || !urn[..4].eq_ignore_ascii_case("urn:") {
                return Err((0, "a schema URN starting with \"urn:\""));
            }
            (Some(urn.to_string()), &s[i + 1..], i + 1)
        }
        None => (None, s, 0),
    };
    let (name, sub) = match rest.find('.') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    if !is_attr_name(name) {
        return Err((base, "an attribute name"));
    }
    if let Some(sub) = sub {
        if !is_attr_name(sub) {
            return Err((base + name.len() + 1, "a sub-attribute name"));
        }
    }
    Ok(AttrPath {
        urn,
        name: name.to_string(),
        sub: sub.map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_urn_qualified_path_splits_at_the_last_colon() {
        let p = AttrPath::parse(
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
        )
        .unwrap();
        assert_eq!(
            p.urn.as_deref(),
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
        );
        assert_eq!(p.name, "manager");
        assert_eq!(p.sub.as_deref(), Some("value"));
        assert_eq!(
            p.to_string(),
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"
        );
    }

    #[test]
    fn bad_paths_are_invalid_path_with_an_offset() {
        for (s, off) in [
            ("", 0),
            ("1abc", 0),
            ("name.", 5),
            ("a.b.c", 2),
            ("x:y", 0),
            ("a b", 1),
        ] {
            let e = AttrPath::parse(s).unwrap_err();
            assert_eq!(e.scim_type, Some(crate::ScimType::InvalidPath), "{s}");
            assert!(
                e.detail.contains(&format!("offset {off}")),
                "{s}: {}",
                e.detail
            );
        }
        assert!(AttrPath::parse("members.$ref").is_ok());
    }

    #[test]
    fn paths_compare_without_case() {
        let a = AttrPath::parse("name.GivenName").unwrap();
        let b = AttrPath::parse("NAME.givenname").unwrap();
        assert!(a.same_as(&b));
        assert!(!a.same_as(&AttrPath::new("name")));
    }
}
