//! The person schema: the typed core attributes (docs/people.md#the-person-schema) and the checks that
//! turn a cleaned-up text value into a typed [`AttrValue`].
use crate::value::AttrValue;
use chrono::NaiveDate;
use muster_proto::ErrorCode;
use serde::{Deserialize, Serialize};

/// The declared type of an attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "values")]
pub enum AttrType {
    String,
    Email,
    /// ISO `YYYY-MM-DD`; other layouts are converted by a mapping's date format.
    Date,
    Enum(Vec<String>),
    Bool,
    Integer,
}

/// `pending`: hired with a `hire_date` still in the future (see
/// [`crate::person::settle`]); it becomes `active` on that date.
pub const EMPLOYMENT_STATUSES: [&str; 4] = ["active", "leave", "terminated", "pending"];

/// The core attributes, in the order docs/people.md#core-attributes lists them.
/// The attribute naming a person's manager by external id.
pub const MANAGER: &str = "manager_external_id";

pub const CORE_ATTRIBUTES: [&str; 11] = [
    "given_name",
    "family_name",
    "display_name",
    "email",
    "department",
    "job_title",
    "manager_external_id",
    "location",
    "employment_status",
    "hire_date",
    "termination_date",
];

/// The pseudo-attribute that carries a person's role set.
pub const ROLES: &str = "roles";

/// Longest text value accepted for any attribute, in bytes.
pub const MAX_VALUE_LEN: usize = 1024;

/// The attribute in which the SCIM door keeps what a User has beyond the
/// person schema, as JSON text (docs/scim.md#users).
pub const SCIM_EXTRA: &str = "scim_extra";

/// Longest [`SCIM_EXTRA`] value, in bytes: a User's phone numbers,
/// addresses and the like together.
pub const MAX_SCIM_EXTRA_LEN: usize = 16 * 1024;

/// Longest text value accepted for the attribute `name`.
pub fn max_value_len(name: &str) -> usize {
    if name == SCIM_EXTRA {
        MAX_SCIM_EXTRA_LEN
    } else {
        MAX_VALUE_LEN
    }
}

pub fn core_type(name: &str) -> Option<AttrType> {
    Some(match name {
        "given_name"
        | "family_name"
        | "display_name"
        | "department"
        | "job_title"
        | "manager_external_id"
        | "location" => AttrType::String,
        "email" => AttrType::Email,
        "employment_status" => {
            AttrType::Enum(EMPLOYMENT_STATUSES.iter().map(|s| s.to_string()).collect())
        }
        "hire_date" | "termination_date" => AttrType::Date,
        _ => return None,
    })
}

/// A custom attribute's name: `[a-z][a-z0-9_]{0,63}`, not a core name.
pub fn valid_custom_name(name: &str) -> bool {
    let mut b = name.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_lowercase())
        && name.len() <= 64
        && b.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
        && core_type(name).is_none()
        && name != ROLES
}

/// Why a value does not fit its type. `code` is stable and machine-readable;
/// `message` never repeats the value (it may be personnel data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError {
    pub code: ErrorCode,
    pub message: String,
}

impl ValueError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Checks and converts `text` (already trimmed and transformed) to `ty`.
pub fn coerce(ty: &AttrType, text: &str) -> Result<AttrValue, ValueError> {
    coerce_owned(ty, text.to_owned())
}

/// [`coerce`] for a value the caller owns: text types keep its allocation.
pub fn coerce_owned(ty: &AttrType, text: String) -> Result<AttrValue, ValueError> {
    if text.len() > MAX_VALUE_LEN {
        return Err(ValueError::new(
            ErrorCode::ValueTooLong,
            format!("value is longer than {MAX_VALUE_LEN} bytes"),
        ));
    }
    // Line breaks and tabs are text (a quoted CSV cell may hold them);
    // other control characters are not.
    if text
        .bytes()
        .any(|b| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')) || b == 0x7f)
        || (!text.is_ascii()
            && text
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')))
    {
        return Err(ValueError::new(
            ErrorCode::InvalidCharacters,
            "value contains control characters",
        ));
    }
    match ty {
        AttrType::String => Ok(AttrValue::string(text)),
        AttrType::Email => {
            if is_email(&text) {
                Ok(AttrValue::string(text))
            } else {
                Err(ValueError::new(
                    ErrorCode::InvalidEmail,
                    "value is not an e-mail address",
                ))
            }
        }
        AttrType::Date => match parse_iso_date(&text) {
            Some(d) => Ok(AttrValue::string(iso_date(d))),
            None => Err(ValueError::new(
                ErrorCode::InvalidDate,
                "value is not a date in the form YYYY-MM-DD",
            )),
        },
        AttrType::Enum(allowed) => {
            if allowed.contains(&text) {
                Ok(AttrValue::string(text))
            } else {
                Err(ValueError::new(
                    ErrorCode::InvalidEnum,
                    format!("value is not one of: {}", allowed.join(", ")),
                ))
            }
        }
        AttrType::Bool => match text.to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "1" => Ok(AttrValue::bool(true)),
            "false" | "no" | "n" | "0" => Ok(AttrValue::bool(false)),
            _ => Err(ValueError::new(
                ErrorCode::InvalidBool,
                "value is not a boolean (true/false, yes/no, 1/0)",
            )),
        },
        AttrType::Integer => text
            .parse::<i64>()
            .map(AttrValue::integer)
            .map_err(|_| ValueError::new(ErrorCode::InvalidInteger, "value is not a whole number")),
    }
}

/// Parses exactly `YYYY-MM-DD` (a real calendar date). Hand-written: this
/// runs for every date of every imported row.
pub fn parse_iso_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)
}

/// Formats a date as `YYYY-MM-DD`.
pub fn iso_date(d: NaiveDate) -> String {
    use chrono::Datelike;
    let mut s = String::with_capacity(10);
    let _ = std::fmt::Write::write_fmt(
        &mut s,
        format_args!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day()),
    );
    s
}

/// A deliberately modest check: one `@`, a non-empty local part, a domain
/// with a dot and no spaces. Deliverability is the mail system's business.
fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn core_types_are_known_and_custom_names_do_not_shadow_them() {
        assert_eq!(core_type("email"), Some(AttrType::Email));
        assert!(core_type("cost_center").is_none());
        assert!(valid_custom_name("cost_center"));
        assert!(!valid_custom_name("email"));
        assert!(!valid_custom_name("Cost"));
        assert!(!valid_custom_name("roles"));
    }
    #[test]
    fn values_are_checked_against_their_type_without_quoting_them() {
        assert!(coerce(&AttrType::Email, "a@b.co").is_ok());
        let e = coerce(&AttrType::Email, "secret-value").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidEmail);
        assert!(!e.message.contains("secret-value"));
        assert_eq!(
            coerce(&AttrType::Date, "2024-02-29").ok(),
            Some(AttrValue::string("2024-02-29"))
        );
        assert!(coerce(&AttrType::Date, "2023-02-29").is_err());
        assert_eq!(
            coerce(&AttrType::Bool, "Yes").ok(),
            Some(AttrValue::bool(true))
        );
        assert_eq!(
            coerce(&AttrType::Integer, "42").ok(),
            Some(AttrValue::integer(42))
        );
        assert!(coerce(core_type("employment_status").as_ref().unwrap(), "gone").is_err());
        assert!(coerce(&AttrType::String, "Zoë\nline two").is_ok());
        assert!(coerce(&AttrType::String, "Zoë\u{85}").is_err());
        assert!(coerce(&AttrType::String, "bell\u{7}").is_err());
    }
}
