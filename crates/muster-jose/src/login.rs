//! The checks of a login-sync token (an ID-token-like JWT from a tenant's
//! identity provider) that need no store, cache or network: the peek at
//! the header and claims that finds the issuer and key, the signature and
//! `iss`/`aud` check against the issuer's keys, and the time and identity
//! claim rules (RFC 7519 4.1). The replay check of `jti` and the issuer's
//! keys are the caller's.
use crate::jws::b64_json;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use std::collections::BTreeSet;

/// A JSON object of claims.
pub type ClaimMap = serde_json::Map<String, serde_json::Value>;

/// The JWS algorithms an issuer may accept.
pub const SUPPORTED_ALGS: [&str; 4] = ["RS256", "ES256", "EdDSA", "HS256"];
/// The algorithms an issuer accepts unless told otherwise.
pub const DEFAULT_ALGS: [&str; 3] = ["RS256", "ES256", "EdDSA"];
/// Clock skew tolerated on `exp`, `nbf` and `iat` by default, and at most
/// (seconds).
pub const DEFAULT_SKEW: u64 = 60;
pub const MAX_SKEW: u64 = 600;
/// How long a fetched JWK Set is used by default (seconds).
pub const DEFAULT_JWKS_CACHE: u64 = 300;
/// An unknown `kid` refetches the JWK Set at most this often, so random
/// `kid` values cannot turn the gateway into a fetch amplifier.
pub const MIN_REFETCH_SECONDS: i64 = 10;
/// RFC 7518 3.2: an HS256 key is at least as long as the hash output.
pub const MIN_HS256_SECRET: usize = 32;
/// The longest token read, in bytes.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
const MAX_JTI: usize = 256;
const MAX_SUB: usize = 256;

/// Why a login-sync token was refused; each has its own problem `code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    MissingToken,
    Malformed,
    AlgNone,
    UnknownIssuer,
    WrongAudience,
    AlgNotAllowed,
    Hs256NotConfigured,
    JwksUnavailable,
    UnknownKid,
    BadSignature,
    MissingClaim,
    Expired,
    NotYetValid,
    JtiReplayed,
}

impl Refusal {
    /// Every refusal, for tables and tests.
    pub const ALL: [Refusal; 14] = [
        Refusal::MissingToken,
        Refusal::Malformed,
        Refusal::AlgNone,
        Refusal::UnknownIssuer,
        Refusal::WrongAudience,
        Refusal::AlgNotAllowed,
        Refusal::Hs256NotConfigured,
        Refusal::JwksUnavailable,
        Refusal::UnknownKid,
        Refusal::BadSignature,
        Refusal::MissingClaim,
        Refusal::Expired,
        Refusal::NotYetValid,
        Refusal::JtiReplayed,
    ];

    /// The stable machine-readable code (the problem's `code`).
    pub fn code(self) -> &'static str {
        match self {
            Refusal::MissingToken => "missing_token",
            Refusal::Malformed => "malformed_token",
            Refusal::AlgNone => "alg_none",
            Refusal::UnknownIssuer => "unknown_issuer",
            Refusal::WrongAudience => "wrong_audience",
            Refusal::AlgNotAllowed => "alg_not_allowed",
            Refusal::Hs256NotConfigured => "hs256_not_configured",
            Refusal::JwksUnavailable => "jwks_unavailable",
            Refusal::UnknownKid => "unknown_kid",
            Refusal::BadSignature => "bad_signature",
            Refusal::MissingClaim => "missing_claim",
            Refusal::Expired => "token_expired",
            Refusal::NotYetValid => "token_not_yet_valid",
            Refusal::JtiReplayed => "jti_replayed",
        }
    }

    /// The reason for people; it never quotes the token.
    pub fn detail(self) -> &'static str {
        match self {
            Refusal::MissingToken => "an Authorization: Bearer JWT is required",
            Refusal::Malformed => "the token is not a JWS compact serialization with JSON claims",
            Refusal::AlgNone => "unsecured JWTs (alg none) are never accepted",
            Refusal::UnknownIssuer => "iss names no registered issuer",
            Refusal::WrongAudience => "aud does not name the issuer's registered audience",
            Refusal::AlgNotAllowed => "the issuer does not accept this alg",
            Refusal::Hs256NotConfigured => "HS256 is not configured for this issuer",
            Refusal::JwksUnavailable => "the issuer's JWK Set could not be fetched",
            Refusal::UnknownKid => "no key of the issuer matches the token's kid and alg",
            Refusal::BadSignature => "the signature does not verify",
            Refusal::MissingClaim => "exp, sub and jti are required",
            Refusal::Expired => "the token has expired",
            Refusal::NotYetValid => "the token is not valid yet (nbf or iat)",
            Refusal::JtiReplayed => "this jti was already used",
        }
    }

    /// Whether the refusal counts as guessing by source address: every
    /// token that cannot pass does; a missing token, a replayed `jti` and
    /// a verified token outside its validity do not.
    pub fn is_guessing(self) -> bool {
        !matches!(
            self,
            Refusal::MissingToken | Refusal::JtiReplayed | Refusal::Expired | Refusal::NotYetValid
        )
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.detail())
    }
}

impl std::error::Error for Refusal {}

/// The parts of a JWT read before its signature is checked, only to find
/// the issuer and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unverified {
    pub alg: String,
    pub kid: Option<String>,
    pub iss: String,
    pub aud: Vec<String>,
}

/// Reads the header and the `iss` and `aud` claims of `token` without
/// checking anything but their shape.
pub fn unverified(token: &str) -> Result<Unverified, Refusal> {
    let parts: Vec<&str> = token.split('.').collect();
    // RFC 7515 7.1: three parts; five would be a JWE, which is not accepted.
    let [h, c, _] = parts.as_slice() else {
        return Err(Refusal::Malformed);
    };
    let header = b64_json(h).ok_or(Refusal::Malformed)?;
    let alg = header
        .get("alg")
        .and_then(|a| a.as_str())
        .ok_or(Refusal::Malformed)?;
    if alg.eq_ignore_ascii_case("none") {
        return Err(Refusal::AlgNone);
    }
    // RFC 7515 4.1.11: extensions we do not understand must be refused.
    if header.contains_key("crit") {
        return Err(Refusal::Malformed);
    }
    let kid = match header.get("kid") {
        None => None,
        Some(serde_json::Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(Refusal::Malformed),
    };
    let claims = b64_json(c).ok_or(Refusal::Malformed)?;
    let iss = claims
        .get("iss")
        .and_then(|v| v.as_str())
        .ok_or(Refusal::UnknownIssuer)?
        .to_owned();
    // RFC 7519 4.1.3: one string or an array of strings.
    let aud = match claims.get("aud") {
        Some(serde_json::Value::String(a)) => vec![a.clone()],
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    Ok(Unverified {
        alg: alg.to_owned(),
        kid,
        iss,
        aud,
    })
}

/// What `jsonwebtoken` is asked to check of a token of `issuer` for
/// `audience` under `alg`: the signature, `iss` and `aud` (RFC 7519
/// 4.1.1, 4.1.3). Times are checked afterwards by [`check_claims`], against
/// the caller's clock and the issuer's skew.
pub fn validation(alg: Algorithm, issuer: &str, audience: &str) -> Validation {
    let mut v = Validation::new(alg);
    v.validate_exp = false;
    v.validate_nbf = false;
    v.set_required_spec_claims(&["iss", "aud"]);
    v.set_issuer(&[issuer]);
    v.set_audience(&[audience]);
    v
}

/// Verifies `token` with the first of `keys` its signature verifies with,
/// under `validation` (see [`validation`]); returns its claims.
pub fn verify_signature(
    token: &str,
    keys: &[DecodingKey],
    validation: &Validation,
) -> Result<ClaimMap, Refusal> {
    for k in keys {
        match decode::<ClaimMap>(token, k, validation) {
            Ok(data) => return Ok(data.claims),
            Err(e) => match e.kind() {
                ErrorKind::InvalidSignature => continue,
                ErrorKind::InvalidAudience => return Err(Refusal::WrongAudience),
                ErrorKind::InvalidIssuer => return Err(Refusal::UnknownIssuer),
                ErrorKind::MissingRequiredClaim(_) => return Err(Refusal::MissingClaim),
                _ => return Err(Refusal::Malformed),
            },
        }
    }
    Err(Refusal::BadSignature)
}

/// What a verified token's claims leave: `exp` (to remember `jti` until),
/// the subject and the `jti`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub exp: i64,
    pub sub: String,
    pub jti: String,
}

/// The time and identity claims of a verified token, at `t` (Unix
/// seconds) with the issuer's `skew`: RFC 7519 4.1.4, 4.1.5 (and 4.1.6 for
/// `iat`), a usable `sub` (1 to 256 bytes, no control characters), and a
/// `jti` (4.1.7, 1 to 256 bytes) to remember.
pub fn check_claims(claims: &ClaimMap, t: i64, skew: i64) -> Result<Accepted, Refusal> {
    let num = |name: &str| -> Result<Option<i64>, Refusal> {
        match claims.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .or_else(|| v.as_f64().map(|f| f as i64))
                .map(Some)
                .ok_or(Refusal::Malformed),
        }
    };
    let exp = num("exp")?.ok_or(Refusal::MissingClaim)?;
    if exp <= t.saturating_sub(skew) {
        return Err(Refusal::Expired);
    }
    let ahead = t.saturating_add(skew);
    if num("nbf")?.is_some_and(|n| n > ahead) || num("iat")?.is_some_and(|i| i > ahead) {
        return Err(Refusal::NotYetValid);
    }
    let sub = claims
        .get("sub")
        .and_then(|s| s.as_str())
        .filter(|s| !s.is_empty() && s.len() <= MAX_SUB && !s.chars().any(char::is_control))
        .ok_or(Refusal::MissingClaim)?
        .to_owned();
    // RFC 7519 4.1.7; the caller remembers it until the token could not
    // pass anyway.
    let jti = claims
        .get("jti")
        .and_then(|j| j.as_str())
        .filter(|j| !j.is_empty() && j.len() <= MAX_JTI)
        .ok_or(Refusal::MissingClaim)?
        .to_owned();
    Ok(Accepted { exp, sub, jti })
}

/// Why a roles claim could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolesError {
    /// An array holding something other than strings.
    NotStrings,
    /// Neither an array nor a string.
    NotAListOrString,
}

impl RolesError {
    pub fn message(self) -> &'static str {
        match self {
            RolesError::NotStrings => "the roles claim must hold strings",
            RolesError::NotAListOrString => "the roles claim must be an array or a string",
        }
    }
}

/// The role names of the claim `name`: an array of names or one string of
/// space-separated names. `None` when the token lacks the claim. Whether
/// each is a valid role name is the caller's rule.
pub fn roles_claim(claims: &ClaimMap, name: &str) -> Result<Option<BTreeSet<String>>, RolesError> {
    match claims.get(name) {
        None => Ok(None),
        Some(serde_json::Value::String(s)) => {
            Ok(Some(s.split_whitespace().map(str::to_owned).collect()))
        }
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<BTreeSet<_>>>()
            .map(Some)
            .ok_or(RolesError::NotStrings),
        Some(_) => Err(RolesError::NotAListOrString),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use base64::Engine as _;

    fn jwt(header: serde_json::Value, claims: serde_json::Value) -> String {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.",
            b64.encode(header.to_string()),
            b64.encode(claims.to_string())
        )
    }

    #[test]
    fn alg_none_is_refused_before_anything_else() {
        let t = jwt(
            serde_json::json!({"alg": "none"}),
            serde_json::json!({"iss": "x"}),
        );
        assert_eq!(unverified(&t).err(), Some(Refusal::AlgNone));
        let t = jwt(
            serde_json::json!({"alg": "NONE"}),
            serde_json::json!({"iss": "x"}),
        );
        assert_eq!(unverified(&t).err(), Some(Refusal::AlgNone));
    }

    #[test]
    fn crit_headers_and_jwe_are_refused() {
        let t = jwt(
            serde_json::json!({"alg": "RS256", "crit": ["exp"]}),
            serde_json::json!({"iss": "x"}),
        );
        assert_eq!(unverified(&t).err(), Some(Refusal::Malformed));
        assert_eq!(unverified("a.b.c.d.e").err(), Some(Refusal::Malformed));
    }

    #[test]
    fn aud_may_be_a_string_or_an_array() {
        let t = jwt(
            serde_json::json!({"alg": "RS256", "kid": "k"}),
            serde_json::json!({"iss": "x", "aud": ["a", "b"]}),
        );
        let u = unverified(&t).unwrap();
        assert_eq!(u.aud, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(u.kid.as_deref(), Some("k"));
        let t = jwt(
            serde_json::json!({"alg": "RS256"}),
            serde_json::json!({"iss": "x", "aud": "a"}),
        );
        assert_eq!(unverified(&t).unwrap().aud, vec!["a".to_string()]);
    }

    #[test]
    fn a_token_without_iss_or_with_a_kid_that_is_no_string_is_refused() {
        let t = jwt(serde_json::json!({"alg": "RS256"}), serde_json::json!({}));
        assert_eq!(unverified(&t).err(), Some(Refusal::UnknownIssuer));
        let t = jwt(
            serde_json::json!({"alg": "RS256", "kid": 7}),
            serde_json::json!({"iss": "x"}),
        );
        assert_eq!(unverified(&t).err(), Some(Refusal::Malformed));
    }

    #[test]
    fn every_refusal_has_a_distinct_code() {
        let codes: BTreeSet<_> = Refusal::ALL.iter().map(|r| r.code()).collect();
        assert_eq!(codes.len(), Refusal::ALL.len());
        let details: BTreeSet<_> = Refusal::ALL.iter().map(|r| r.detail()).collect();
        assert_eq!(details.len(), Refusal::ALL.len());
    }

    #[test]
    fn only_tokens_that_cannot_pass_count_as_guessing() {
        let not: Vec<_> = Refusal::ALL.iter().filter(|r| !r.is_guessing()).collect();
        assert_eq!(
            not,
            [
                &Refusal::MissingToken,
                &Refusal::Expired,
                &Refusal::NotYetValid,
                &Refusal::JtiReplayed
            ]
        );
    }

    fn claims(v: serde_json::Value) -> ClaimMap {
        match v {
            serde_json::Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn roles_are_a_list_or_a_space_separated_string() {
        let c = claims(serde_json::json!({
            "list": ["b", "a", "b"], "text": " a  b ", "mixed": ["a", 1], "num": 3
        }));
        let ab: BTreeSet<String> = ["a", "b"].map(String::from).into();
        assert_eq!(roles_claim(&c, "list"), Ok(Some(ab.clone())));
        assert_eq!(roles_claim(&c, "text"), Ok(Some(ab)));
        assert_eq!(roles_claim(&c, "absent"), Ok(None));
        assert_eq!(roles_claim(&c, "mixed"), Err(RolesError::NotStrings));
        assert_eq!(roles_claim(&c, "num"), Err(RolesError::NotAListOrString));
    }
}
