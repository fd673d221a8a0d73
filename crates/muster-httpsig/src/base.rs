//! Signature base construction (RFC 9421 section 2.5) and the parsing of a
//! `Signature-Input` member into covered components and parameters.

use crate::error::VerifyError;
use crate::request::{Request, TargetUri};
use crate::SIGNATURE_INPUT;
use sfv::{BareItem, Dictionary, InnerList, ListEntry, ListSerializer, Parser, Version};

/// Derived components this crate implements (RFC 9421 section 2.2).
const DERIVED: &[&str] = &[
    "@method",
    "@target-uri",
    "@authority",
    "@scheme",
    "@request-target",
    "@path",
    "@query",
];

/// Why one component could not be turned into a base line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ComponentError {
    Unsupported,
    Unavailable,
    InvalidValue,
    InvalidTargetUri,
}

/// A component name is acceptable when it is a supported derived component
/// or a lowercase field name (RFC 9421 section 2.1: field names are
/// lowercased in identifiers).
pub(crate) fn is_supported_component(name: &str) -> bool {
    if name.starts_with('@') {
        return DERIVED.contains(&name);
    }
    !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
        })
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The value of one component (RFC 9421 sections 2.1 and 2.2).
pub(crate) fn component_value(req: &Request<'_>, name: &str) -> Result<String, ComponentError> {
    if !is_supported_component(name) {
        return Err(ComponentError::Unsupported);
    }
    if let Some(derived) = name.strip_prefix('@') {
        if derived == "method" {
            // The method is taken as is, without case change (section 2.2.1).
            return if is_token(req.method) {
                Ok(req.method.to_owned())
            } else {
                Err(ComponentError::InvalidValue)
            };
        }
        let uri = TargetUri::parse(req.target_uri).ok_or(ComponentError::InvalidTargetUri)?;
        return Ok(match derived {
            // A target URI has no fragment (RFC 9110 section 7.1).
            "target-uri" => uri.without_fragment().to_owned(),
            "authority" => uri.authority(),
            "scheme" => uri.scheme(),
            "request-target" => uri.request_target(),
            "path" => uri.path().to_owned(),
            "query" => uri.query(),
            _ => return Err(ComponentError::Unsupported),
        });
    }
    let value = req
        .combined_header(name)
        .ok_or(ComponentError::Unavailable)?;
    // A line break in a value would let a sender forge further base lines.
    if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
        return Err(ComponentError::InvalidValue);
    }
    Ok(value)
}

/// Builds the base from the covered component names and the serialised
/// `@signature-params` value. Component names come from a validated inner
/// list, so they need no quoting beyond `"name"`.
pub(crate) fn build_base(
    req: &Request<'_>,
    components: &[String],
    signature_params: &str,
) -> Result<String, (String, ComponentError)> {
    let mut base = String::new();
    for name in components {
        let value = component_value(req, name).map_err(|e| (name.clone(), e))?;
        base.push('"');
        base.push_str(name);
        base.push_str("\": ");
        base.push_str(&value);
        base.push('\n');
    }
    base.push_str("\"@signature-params\": ");
    base.push_str(signature_params);
    Ok(base)
}

/// Serialises an inner list with its parameters, as it appears after
/// `label=` in `Signature-Input` and on the `@signature-params` line.
pub(crate) fn serialize_inner_list(list: &InnerList) -> String {
    let entry = ListEntry::InnerList(list.clone());
    let mut ser = ListSerializer::new();
    ser.members([&entry]);
    // A list with one member always serialises to Some.
    ser.finish().unwrap_or_default()
}

/// Parses a dictionary field as RFC 8941 (the version RFC 9421 and RFC 9530
/// are written against).
pub(crate) fn parse_dictionary(value: &str, field: &str) -> Result<Dictionary, VerifyError> {
    Parser::new(value)
        .with_version(Version::Rfc8941)
        .parse::<Dictionary>()
        .map_err(|_| VerifyError::Malformed(format!("{field} is not a structured dictionary")))
}

/// One parsed `Signature-Input` member.
#[derive(Debug, Clone)]
pub(crate) struct SignatureInput {
    pub label: String,
    pub components: Vec<String>,
    pub created: Option<i64>,
    pub expires: Option<i64>,
    pub nonce: Option<String>,
    pub keyid: Option<String>,
    pub alg: Option<String>,
    pub tag: Option<String>,
    /// The inner list re-serialised in canonical form (section 2.3): the
    /// `@signature-params` value.
    pub serialized: String,
}

/// Finds the member for `label` (or the first member) of `Signature-Input`
/// and reads it (RFC 9421 section 3.2 steps 1-4).
pub(crate) fn parse_signature_input(
    req: &Request<'_>,
    label: Option<&str>,
) -> Result<SignatureInput, VerifyError> {
    let field = req
        .combined_header(SIGNATURE_INPUT)
        .ok_or(VerifyError::MissingSignature)?;
    let dict = parse_dictionary(&field, "Signature-Input")?;
    let (key, entry) = match label {
        Some(l) => dict.get_key_value(l).ok_or(VerifyError::MissingSignature)?,
        None => dict.first().ok_or(VerifyError::MissingSignature)?,
    };
    let ListEntry::InnerList(list) = entry else {
        return Err(malformed("a Signature-Input member is not an inner list"));
    };

    let mut components = Vec::with_capacity(list.items.len());
    for item in &list.items {
        let BareItem::String(name) = &item.bare_item else {
            return Err(malformed("a covered component is not a string"));
        };
        let name = name.as_str().to_owned();
        if !item.params.is_empty() || !is_supported_component(&name) {
            return Err(VerifyError::UnsupportedComponent(name));
        }
        if name == "@signature-params" || components.contains(&name) {
            return Err(malformed("a covered component is repeated or reserved"));
        }
        components.push(name);
    }

    let mut input = SignatureInput {
        label: key.as_str().to_owned(),
        components,
        created: None,
        expires: None,
        nonce: None,
        keyid: None,
        alg: None,
        tag: None,
        serialized: serialize_inner_list(list),
    };
    for (name, value) in &list.params {
        match name.as_str() {
            "created" => input.created = Some(integer_param(value, "created")?),
            "expires" => input.expires = Some(integer_param(value, "expires")?),
            "nonce" => input.nonce = Some(string_param(value, "nonce")?),
            "keyid" => input.keyid = Some(string_param(value, "keyid")?),
            "alg" => input.alg = Some(string_param(value, "alg")?),
            "tag" => input.tag = Some(string_param(value, "tag")?),
            // Unknown parameters stay covered through `serialized`.
            _ => {}
        }
    }
    Ok(input)
}

fn malformed(detail: &str) -> VerifyError {
    VerifyError::Malformed(detail.to_owned())
}

fn integer_param(value: &BareItem, name: &str) -> Result<i64, VerifyError> {
    value
        .as_integer()
        .map(i64::from)
        .ok_or_else(|| VerifyError::Malformed(format!("the {name} parameter is not an integer")))
}

fn string_param(value: &BareItem, name: &str) -> Result<String, VerifyError> {
    value
        .as_string()
        .map(|s| s.as_str().to_owned())
        .ok_or_else(|| VerifyError::Malformed(format!("the {name} parameter is not a string")))
}

/// The signature base for the signature `label` (or the first one) that the
/// request's `Signature-Input` describes: what a verifier recomputes, exposed
/// for tests and for debugging interoperability.
pub fn signature_base(req: &Request<'_>, label: Option<&str>) -> Result<String, VerifyError> {
    let input = parse_signature_input(req, label)?;
    build_base(req, &input.components, &input.serialized).map_err(component_error)
}

pub(crate) fn component_error((name, err): (String, ComponentError)) -> VerifyError {
    match err {
        ComponentError::Unsupported => VerifyError::UnsupportedComponent(name),
        ComponentError::Unavailable => VerifyError::ComponentUnavailable(name),
        ComponentError::InvalidValue => {
            VerifyError::Malformed(format!("the value of {name} cannot be signed"))
        }
        ComponentError::InvalidTargetUri => malformed("the target URI is not absolute"),
    }
}
