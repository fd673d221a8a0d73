//! Person attribute values. Their `Debug` and `Display` print a placeholder,
//! so that no personnel data can reach a log line by accident.
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// One attribute value: a JSON string, boolean or integer (dates are ISO
/// `YYYY-MM-DD` strings). The wrapped value is reachable only on purpose.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AttrValue(serde_json::Value);

impl AttrValue {
    pub fn string(s: impl Into<String>) -> Self {
        Self(serde_json::Value::String(s.into()))
    }
    pub fn bool(b: bool) -> Self {
        Self(serde_json::Value::Bool(b))
    }
    pub fn integer(i: i64) -> Self {
        Self(serde_json::Value::from(i))
    }
    /// The raw JSON value, for serialisation and comparison.
    pub fn expose(&self) -> &serde_json::Value {
        &self.0
    }
    pub fn into_json(self) -> serde_json::Value {
        self.0
    }
    pub fn from_json(v: serde_json::Value) -> Self {
        Self(v)
    }
    pub fn as_str(&self) -> Option<&str> {
        self.0.as_str()
    }
}

impl fmt::Debug for AttrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}
impl fmt::Display for AttrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A person's attributes by name, in a stable order (the order matters for
/// the canonical hash).
pub type Attributes = BTreeMap<String, AttrValue>;

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn values_never_print_their_content() {
        let v = AttrValue::string("ada@example.com");
        assert_eq!(format!("{v:?} {v}"), "<redacted> <redacted>");
    }
}
