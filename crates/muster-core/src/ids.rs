//! Validated identifiers. A value of these types is known to be well formed,
//! so code past the edge never re-checks it.
use serde::{Deserialize, Serialize};
use std::fmt;

/// Why an identifier does not parse. Each message is one whole sentence
/// naming the identifier ("the external id is longer than 256 bytes"), to
/// be shown as it is, never spliced into another sentence; it never quotes
/// the value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    #[error("the {what} must not be empty")]
    Empty { what: &'static str },
    #[error("the {what} is longer than {max} bytes")]
    TooLong { what: &'static str, max: usize },
    /// `rule` says what the identifier may hold.
    #[error("the {what} {rule}")]
    BadChar {
        what: &'static str,
        rule: &'static str,
    },
}

/// A tenant's id: 1 to 64 characters of `a-z`, `0-9`, `-` and `_`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        const WHAT: &str = "tenant id";
        if s.is_empty() {
            return Err(IdError::Empty { what: WHAT });
        }
        if s.len() > 64 {
            return Err(IdError::TooLong {
                what: WHAT,
                max: 64,
            });
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(IdError::BadChar {
                what: WHAT,
                rule: "may contain only a-z, 0-9, '-' and '_'",
            });
        }
        Ok(Self(s.to_owned()))
    }
    pub fn default_tenant() -> Self {
        Self("default".to_owned())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(&s)
    }
}
impl From<TenantId> for String {
    fn from(t: TenantId) -> String {
        t.0
    }
}
impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({})", self.0)
    }
}

/// A person's key within a tenant (employee number, usercode): 1 to 256 bytes
/// of printable text, no control characters, not padded with white space.
///
/// An external id is an identifier, not an attribute value: it appears in
/// per-item API results and audit entries, but never in log lines.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ExternalId(String);

impl ExternalId {
    pub const MAX_LEN: usize = 256;
    pub fn parse(s: &str) -> Result<Self, IdError> {
        const WHAT: &str = "external id";
        if s.is_empty() {
            return Err(IdError::Empty { what: WHAT });
        }
        if s.len() > Self::MAX_LEN {
            return Err(IdError::TooLong {
                what: WHAT,
                max: Self::MAX_LEN,
            });
        }
        if s.chars().any(|c| c.is_control()) || s.trim() != s || s.contains('/') {
            return Err(IdError::BadChar {
                what: WHAT,
                rule:
                    "must not contain control characters or '/', nor begin or end with white space",
            });
        }
        Ok(Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl TryFrom<String> for ExternalId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(&s)
    }
}
impl From<ExternalId> for String {
    fn from(t: ExternalId) -> String {
        t.0
    }
}
impl fmt::Display for ExternalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
/// Debug stays quiet so that a stray `{:?}` of a record cannot put an
/// employee number into a log line.
impl fmt::Debug for ExternalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ExternalId(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn tenant_ids_are_lowercase_slugs() {
        assert!(TenantId::parse("acme-eu_1").is_ok());
        assert!(TenantId::parse("Acme").is_err());
        assert!(TenantId::parse("").is_err());
        assert!(TenantId::parse(&"a".repeat(65)).is_err());
    }
    #[test]
    fn every_id_error_reads_as_one_sentence_naming_the_id() {
        let long = "x".repeat(300);
        let msg = |r: Result<ExternalId, IdError>| r.err().map(|e| e.to_string());
        assert_eq!(
            msg(ExternalId::parse(&long)).as_deref(),
            Some("the external id is longer than 256 bytes")
        );
        assert_eq!(
            msg(ExternalId::parse("")).as_deref(),
            Some("the external id must not be empty")
        );
        assert_eq!(
            msg(ExternalId::parse("a/b")).as_deref(),
            Some("the external id must not contain control characters or '/', nor begin or end with white space")
        );
        assert_eq!(
            TenantId::parse("Acme")
                .err()
                .map(|e| e.to_string())
                .as_deref(),
            Some("the tenant id may contain only a-z, 0-9, '-' and '_'")
        );
    }

    #[test]
    fn external_ids_refuse_control_characters_and_padding() {
        assert!(ExternalId::parse("E-1001").is_ok());
        assert!(ExternalId::parse(" E1").is_err());
        assert!(ExternalId::parse("E\n1").is_err());
        assert!(ExternalId::parse("a/b").is_err());
        assert_eq!(
            format!("{:?}", ExternalId::parse("E1").ok()),
            "Some(ExternalId(..))"
        );
    }
}
