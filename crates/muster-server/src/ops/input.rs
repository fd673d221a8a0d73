//! Parsed input of the operations. Each type can hold only a valid value:
//! a door parses what it received into these once, and an operation never
//! checks its arguments again. A parse failure names the field and the
//! rule, never the value.
use crate::base::error::{ApiError, ApiResult};
use muster_core::policy::{ReadPolicy, WritePolicy, BUILTIN_ROLES};
use muster_core::schema::{core_type, valid_custom_name, ROLES};
use muster_proto::ErrorCode;
use muster_proto::{ReadPolicyInfo, RotateSecretRequest, WritePolicyInfo};

/// Letters, digits, `-`, `_` and `.`, within `len`.
fn is_name(s: &str, len: std::ops::RangeInclusive<usize>) -> bool {
    len.contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A client id (also an issuer's name): 3 to 64 characters of letters,
/// digits, `-`, `_` and `.`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientId(String);

impl ClientId {
    pub const RULE: &'static str = "3 to 64 characters of letters, digits, '-', '_' and '.'";

    pub fn parse(s: &str) -> Option<Self> {
        is_name(s, 3..=64).then(|| Self(s.to_owned()))
    }
    /// A fresh id for a client created without one.
    pub fn generate() -> Self {
        Self(format!(
            "mc_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..16]
        ))
    }
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A mapping's name: 1 to 64 characters of letters, digits, `-`, `_` and `.`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MappingName(String);

impl MappingName {
    pub fn parse(s: &str) -> ApiResult<Self> {
        if is_name(s, 1..=64) {
            Ok(Self(s.to_owned()))
        } else {
            Err(ApiError::bad_request(
                ErrorCode::InvalidMappingName,
                "mapping name: 1 to 64 characters of letters, digits, '-', '_' and '.'",
            ))
        }
    }
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A role a person can hold: 1 to 64 characters of letters, digits, `-`,
/// `_`, `.` and `:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RoleName(String);

impl RoleName {
    pub fn parse(s: &str) -> Option<Self> {
        let ok = (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        ok.then(|| Self(s.to_owned()))
    }
}

/// One of the built-in roles a client can have (docs/people.md#roles-and-permissions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientRole(&'static str);

impl ClientRole {
    pub fn parse(s: &str) -> ApiResult<Self> {
        BUILTIN_ROLES
            .iter()
            .find(|r| **r == s)
            .map(|r| Self(r))
            .ok_or_else(|| {
                ApiError::unprocessable(
                    ErrorCode::InvalidRole,
                    format!("role: must be one of {}", BUILTIN_ROLES.join(", ")),
                )
            })
    }
    pub fn as_str(&self) -> &'static str {
        self.0
    }
}

/// The lifetime of a client's access tokens: 1 second to 1 day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenTtl(u64);

impl TokenTtl {
    pub fn parse(seconds: u64) -> ApiResult<Self> {
        if (1..=86_400).contains(&seconds) {
            Ok(Self(seconds))
        } else {
            Err(ApiError::unprocessable(
                ErrorCode::InvalidTtl,
                "token_ttl_seconds: must be between 1 and 86400",
            ))
        }
    }
    pub fn seconds(self) -> u64 {
        self.0
    }
}

/// How long the old credential keeps working after a rotation: at most 30
/// days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Overlap(u64);

impl Overlap {
    pub const MAX_SECONDS: u64 = 30 * 86_400;

    /// The optional body `{"overlap_seconds": N}` of a rotation (an empty
    /// body: `default`).
    pub fn from_body(body: &[u8], default: u64) -> ApiResult<Self> {
        let req: RotateSecretRequest = if body.iter().all(u8::is_ascii_whitespace) {
            RotateSecretRequest::default()
        } else {
            serde_json::from_slice(body).map_err(|_| {
                ApiError::bad_request(
                    ErrorCode::InvalidBody,
                    "the body must be a JSON object with an optional overlap_seconds",
                )
            })?
        };
        Self::of(req.overlap_seconds, default)
    }

    /// `seconds`, or `default` when absent, held to [`Self::MAX_SECONDS`].
    pub fn of(seconds: Option<u64>, default: u64) -> ApiResult<Self> {
        let overlap = seconds.unwrap_or(default);
        if overlap > Self::MAX_SECONDS {
            return Err(ApiError::unprocessable(
                ErrorCode::InvalidOverlap,
                "overlap_seconds: at most 2592000 (30 days)",
            ));
        }
        Ok(Self(overlap))
    }
    pub fn seconds(self) -> u64 {
        self.0
    }
}

/// A write policy whose attributes are attribute names (or `*`, or the
/// role set) and whose roles are role names (or `*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckedWritePolicy(WritePolicy);

impl CheckedWritePolicy {
    pub fn parse(p: &WritePolicyInfo) -> ApiResult<Self> {
        for a in &p.attributes {
            if a != "*" && !is_attribute_name(a) {
                return Err(ApiError::unprocessable(
                    ErrorCode::InvalidWritePolicy,
                    format!("write_policy.attributes: '{a}' is not an attribute name"),
                ));
            }
        }
        for r in &p.roles {
            if r != "*" && RoleName::parse(r).is_none() {
                return Err(ApiError::unprocessable(
                    ErrorCode::InvalidWritePolicy,
                    format!("write_policy.roles: '{r}' is not a role name"),
                ));
            }
        }
        Ok(Self(WritePolicy {
            attributes: p.attributes.clone(),
            roles: p.roles.clone(),
        }))
    }
    pub fn into_inner(self) -> WritePolicy {
        self.0
    }
}

/// Whether `a` names an attribute: a core or custom one, or the role set.
fn is_attribute_name(a: &str) -> bool {
    a == ROLES || core_type(a).is_some() || valid_custom_name(a)
}

/// A read policy whose attributes are attribute names (or `*`, or the
/// role set) and whose events are event names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckedReadPolicy(ReadPolicy);

impl CheckedReadPolicy {
    pub fn parse(p: &ReadPolicyInfo) -> ApiResult<Self> {
        let bad = |detail: String| ApiError::unprocessable(ErrorCode::InvalidReadPolicy, detail);
        if p.attributes.is_empty() {
            return Err(bad(
                "read_policy.attributes: list the attributes the client may read ('*' for all)"
                    .into(),
            ));
        }
        if let Some(a) = p
            .attributes
            .iter()
            .find(|a| *a != "*" && !is_attribute_name(a))
        {
            return Err(bad(format!(
                "read_policy.attributes: '{a}' is not an attribute name"
            )));
        }
        if let Some(e) = p
            .events
            .iter()
            .find(|e| !muster_store::EVENT_KINDS.contains(&e.as_str()))
        {
            return Err(bad(format!(
                "read_policy.events: '{e}' is not an event name"
            )));
        }
        Ok(Self(ReadPolicy {
            attributes: p.attributes.clone(),
            events: p.events.clone(),
        }))
    }
    pub fn into_inner(self) -> ReadPolicy {
        self.0
    }
}

pub(crate) fn read_policy_info(p: &ReadPolicy) -> ReadPolicyInfo {
    ReadPolicyInfo {
        attributes: p.attributes.clone(),
        events: p.events.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_policy_names_attributes_and_events_only() {
        let p = |a: &[&str], e: &[&str]| ReadPolicyInfo {
            attributes: a.iter().map(|s| s.to_string()).collect(),
            events: e.iter().map(|s| s.to_string()).collect(),
        };
        assert!(CheckedReadPolicy::parse(&p(
            &["given_name", "roles", "cost_centre"],
            &["person.created"]
        ))
        .is_ok());
        assert!(CheckedReadPolicy::parse(&p(&["*"], &[])).is_ok());
        for (bad, names) in [
            (p(&[], &[]), "list the attributes"),
            (p(&["given name"], &[]), "'given name'"),
            (p(&["*"], &["person.moved"]), "'person.moved'"),
        ] {
            let e = CheckedReadPolicy::parse(&bad).unwrap_err();
            let e = format!("{e:?}");
            assert!(e.contains(names), "{e}");
        }
    }
    #[test]
    fn names_hold_only_what_their_rule_allows() {
        assert!(ClientId::parse("ab").is_none());
        assert!(ClientId::parse("abc").is_some());
        assert!(ClientId::parse(&"a".repeat(65)).is_none());
        assert!(ClientId::parse("a b c").is_none());
        assert!(ClientId::generate().into_inner().starts_with("mc_"));
        assert!(MappingName::parse("").is_err());
        assert!(MappingName::parse("hr.v2").is_ok());
        assert!(MappingName::parse("hr/v2").is_err());
        assert!(RoleName::parse("app:editor").is_some());
        assert!(RoleName::parse("app editor").is_none());
        assert!(RoleName::parse("").is_none());
        assert!(ClientRole::parse("importer").is_ok());
        assert!(ClientRole::parse("root").is_err());
    }

    #[test]
    fn lifetimes_and_overlaps_stay_within_their_bounds() {
        assert!(TokenTtl::parse(0).is_err());
        assert_eq!(TokenTtl::parse(86_400).unwrap().seconds(), 86_400);
        assert!(TokenTtl::parse(86_401).is_err());
        assert_eq!(Overlap::from_body(b"", 60).unwrap().seconds(), 60);
        assert_eq!(
            Overlap::from_body(br#"{"overlap_seconds": 5}"#, 60)
                .unwrap()
                .seconds(),
            5
        );
        assert!(Overlap::from_body(br#"{"overlap_seconds": 2592001}"#, 60).is_err());
        assert!(Overlap::from_body(b"not json", 60).is_err());
        assert!(Overlap::from_body(br#"{"overlap": 5}"#, 60).is_err());
    }

    #[test]
    fn a_write_policy_names_attributes_and_roles() {
        let ok = WritePolicyInfo {
            attributes: vec!["*".into(), "department".into()],
            roles: vec!["app:editor".into()],
        };
        assert!(CheckedWritePolicy::parse(&ok).is_ok());
        let bad_role = WritePolicyInfo {
            attributes: vec![],
            roles: vec!["no spaces".into()],
        };
        assert!(CheckedWritePolicy::parse(&bad_role).is_err());
    }
}
