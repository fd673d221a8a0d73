//! SCIM errors (RFC 7644 §3.12): an HTTP status, an optional `scimType`
//! from Table 9 and a detail text. The detail names an attribute, a path
//! or a character offset, never a value taken from the request, so no
//! personnel data reaches an error body or a log through it.
use serde::ser::{Serialize, SerializeMap, Serializer};
use std::fmt;

/// The URN of the error message schema (RFC 7644 §3.12).
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// The `scimType` values of RFC 7644 §3.12, Table 9.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScimType {
    InvalidFilter,
    TooMany,
    Uniqueness,
    Mutability,
    InvalidSyntax,
    InvalidPath,
    NoTarget,
    InvalidValue,
    InvalidVers,
    Sensitive,
}

impl ScimType {
    /// Every value, in the order of Table 9.
    pub const ALL: [ScimType; 10] = [
        ScimType::InvalidFilter,
        ScimType::TooMany,
        ScimType::Uniqueness,
        ScimType::Mutability,
        ScimType::InvalidSyntax,
        ScimType::InvalidPath,
        ScimType::NoTarget,
        ScimType::InvalidValue,
        ScimType::InvalidVers,
        ScimType::Sensitive,
    ];

    /// The wire string of Table 9.
    pub fn as_str(self) -> &'static str {
        match self {
            ScimType::InvalidFilter => "invalidFilter",
            ScimType::TooMany => "tooMany",
            ScimType::Uniqueness => "uniqueness",
            ScimType::Mutability => "mutability",
            ScimType::InvalidSyntax => "invalidSyntax",
            ScimType::InvalidPath => "invalidPath",
            ScimType::NoTarget => "noTarget",
            ScimType::InvalidValue => "invalidValue",
            ScimType::InvalidVers => "invalidVers",
            ScimType::Sensitive => "sensitive",
        }
    }

    /// The status Table 9 pairs with the type: 400, except `uniqueness`
    /// (409). A failed `If-Match` precondition is the server's 412
    /// without a `scimType` (RFC 7644 §3.14).
    pub fn default_status(self) -> u16 {
        match self {
            ScimType::Uniqueness => 409,
            _ => 400,
        }
    }
}

impl fmt::Display for ScimType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ScimType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A SCIM error; serialises as the RFC 7644 §3.12 error body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SCIM {status}{}: {detail}", scim_type.map(|t| format!(" {t}")).unwrap_or_default())]
pub struct ScimError {
    pub status: u16,
    pub scim_type: Option<ScimType>,
    pub detail: String,
}

impl ScimError {
    /// An error of a Table 9 type with that type's usual status.
    pub fn new(scim_type: ScimType, detail: impl Into<String>) -> Self {
        ScimError {
            status: scim_type.default_status(),
            scim_type: Some(scim_type),
            detail: detail.into(),
        }
    }

    /// An error without a `scimType` (e.g. 404, 409 of a bulk reference).
    pub fn status(status: u16, detail: impl Into<String>) -> Self {
        ScimError {
            status,
            scim_type: None,
            detail: detail.into(),
        }
    }

    pub fn invalid_filter(detail: impl Into<String>) -> Self {
        Self::new(ScimType::InvalidFilter, detail)
    }
    pub fn invalid_path(detail: impl Into<String>) -> Self {
        Self::new(ScimType::InvalidPath, detail)
    }
    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self::new(ScimType::InvalidValue, detail)
    }
    pub fn invalid_syntax(detail: impl Into<String>) -> Self {
        Self::new(ScimType::InvalidSyntax, detail)
    }
    pub fn mutability(detail: impl Into<String>) -> Self {
        Self::new(ScimType::Mutability, detail)
    }
    pub fn no_target(detail: impl Into<String>) -> Self {
        Self::new(ScimType::NoTarget, detail)
    }
    pub fn too_many(detail: impl Into<String>) -> Self {
        Self::new(ScimType::TooMany, detail)
    }
}

impl Serialize for ScimError {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = if self.scim_type.is_some() { 4 } else { 3 };
        let mut m = s.serialize_map(Some(n))?;
        m.serialize_entry("schemas", &[ERROR_SCHEMA])?;
        // RFC 7644 §3.12: "status" is a string.
        m.serialize_entry("status", &self.status.to_string())?;
        if let Some(t) = self.scim_type {
            m.serialize_entry("scimType", t.as_str())?;
        }
        m.serialize_entry("detail", &self.detail)?;
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_serialises_as_the_rfc_body_with_a_string_status() {
        let e = ScimError::invalid_filter("expected an operator at offset 9");
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                "status": "400",
                "scimType": "invalidFilter",
                "detail": "expected an operator at offset 9"
            })
        );
    }

    #[test]
    fn an_error_without_a_type_has_no_scim_type_member() {
        let e = ScimError::status(404, "no such resource");
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["status"], "404");
        assert!(v.get("scimType").is_none());
    }

    #[test]
    fn every_table_9_value_has_its_wire_string() {
        let names: Vec<_> = ScimType::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(
            names,
            [
                "invalidFilter",
                "tooMany",
                "uniqueness",
                "mutability",
                "invalidSyntax",
                "invalidPath",
                "noTarget",
                "invalidValue",
                "invalidVers",
                "sensitive"
            ]
        );
        assert_eq!(ScimType::Uniqueness.default_status(), 409);
    }
}
