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
    /// An invisible format character (a zero-width space, a byte order
    /// mark, a direction mark): the id would look like another one. Names
    /// the code point and its place, never the id.
    #[error("the {what} holds an invisible format character, U+{code:04X}, at character {position}: remove it (it makes the id look like another)")]
    Invisible {
        what: &'static str,
        code: u32,
        position: usize,
    },
}

/// `s` without its invisible format characters (see [`is_invisible_format`]).
pub fn visible(s: &str) -> std::borrow::Cow<'_, str> {
    if s.chars().any(is_invisible_format) {
        s.chars()
            .filter(|c| !is_invisible_format(*c))
            .collect::<String>()
            .into()
    } else {
        s.into()
    }
}

/// Whether `c` is an invisible format character (Unicode general category
/// Cf): zero-width spaces and joiners, direction marks and embeddings,
/// the byte order mark, the soft hyphen, invisible operators, tag
/// characters, and the other Cf code points of Unicode 15.
pub fn is_invisible_format(c: char) -> bool {
    matches!(c as u32,
        0x00AD
        | 0x0600..=0x0605
        | 0x061C
        | 0x06DD
        | 0x070F
        | 0x0890..=0x0891
        | 0x08E2
        | 0x180E
        | 0x200B..=0x200F
        | 0x202A..=0x202E
        | 0x2060..=0x2064
        | 0x2066..=0x206F
        | 0xFEFF
        | 0xFFF9..=0xFFFB
        | 0x110BD
        | 0x110CD
        | 0x13430..=0x1343F
        | 0x1BCA0..=0x1BCA3
        | 0x1D173..=0x1D17A
        | 0xE0001
        | 0xE0020..=0xE007F)
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
    /// [`ExternalId::parse`] for a key arriving from outside (a file, an
    /// API body, a SCIM resource): also refuses invisible format
    /// characters, which make one person's key look like another's. Stored
    /// keys are read with `parse`, so a key stored before this rule still
    /// reads.
    pub fn parse_incoming(s: &str) -> Result<Self, IdError> {
        let id = Self::parse(s)?;
        if let Some((i, c)) = s.chars().enumerate().find(|(_, c)| is_invisible_format(*c)) {
            return Err(IdError::Invisible {
                what: "external id",
                code: c as u32,
                position: i + 1,
            });
        }
        Ok(id)
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
        // Zero-width and other format characters are refused at intake,
        // named by code point and place, and still read when stored.
        for (key, code, at) in [
            ("E\u{200B}1001", 0x200B, 2),
            ("\u{FEFF}E1001", 0xFEFF, 1),
            ("E1001\u{2060}", 0x2060, 6),
            ("E10\u{200E}01", 0x200E, 4),
            ("E1\u{00AD}001", 0x00AD, 3),
            ("E\u{E0041}1", 0xE0041, 2),
        ] {
            let e = ExternalId::parse_incoming(key).unwrap_err();
            assert_eq!(
                e,
                IdError::Invisible {
                    what: "external id",
                    code,
                    position: at
                },
                "{key:?}"
            );
            assert!(!e.to_string().contains("E1"), "{e}");
            assert!(ExternalId::parse(key).is_ok());
        }
        assert!(ExternalId::parse_incoming("Zoë-Ångström 7").is_ok());
        assert_eq!(
            format!("{:?}", ExternalId::parse("E1").ok()),
            "Some(ExternalId(..))"
        );
    }
}
