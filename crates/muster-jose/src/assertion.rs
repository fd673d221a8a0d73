//! The checks of a `private_key_jwt` client assertion (RFC 7523 2.2 and 3,
//! RFC 7521 4.2) that need no store: what is read before the client is
//! known, the signature against the client's registered keys, and the
//! claim rules of RFC 7523 3 but the replay check of item 7, which the
//! caller makes with what [`check_claims`] returns.
use crate::jwk::AssertionKey;
use crate::jws::{self, SigError};
use jsonwebtoken::{decode_header, Algorithm, Header};
use serde::Deserialize;

/// RFC 7523 2.2.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY: i64 = 30;
/// The longest `jti` remembered, in bytes.
pub const MAX_JTI: usize = 256;

/// Why an assertion was refused. [`AssertionError::reason`] is the text a
/// client may be told (after its signature verified) and the audit keeps;
/// none quotes the assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssertionError {
    NotAJwt,
    AlgNotAccepted,
    ClaimsUndecodable,
    ClientIdMismatch,
    SubRequired,
    NoMatchingKey,
    Malformed,
    BadSignature,
    ClaimsMalformed,
    MissingClaim,
    WrongIssuer,
    WrongSubject,
    WrongAudience,
    Expired,
    TooLong,
    NotYetValid,
    JtiRequired,
    IssuedTooLongAgo,
    IatRequired,
}

impl AssertionError {
    /// Every reason, for tables and tests.
    pub const ALL: [AssertionError; 19] = {
        use AssertionError::*;
        [
            NotAJwt,
            AlgNotAccepted,
            ClaimsUndecodable,
            ClientIdMismatch,
            SubRequired,
            NoMatchingKey,
            Malformed,
            BadSignature,
            ClaimsMalformed,
            MissingClaim,
            WrongIssuer,
            WrongSubject,
            WrongAudience,
            Expired,
            TooLong,
            NotYetValid,
            JtiRequired,
            IssuedTooLongAgo,
            IatRequired,
        ]
    };

    /// The reason in words, as `Display` writes it.
    pub fn reason(self) -> &'static str {
        match self {
            Self::NotAJwt => "not a JWT",
            Self::AlgNotAccepted => "alg must be RS256, ES256 or EdDSA",
            Self::ClaimsUndecodable => "the claims do not decode",
            Self::ClientIdMismatch => "client_id differs from the assertion's sub",
            Self::SubRequired => "sub is required",
            Self::NoMatchingKey => "no registered key matches the JWT's kid and alg",
            Self::Malformed => "the assertion is malformed",
            Self::BadSignature => "the signature does not verify with the registered key",
            Self::ClaimsMalformed => "the signed claims are malformed",
            Self::MissingClaim => "exp, iss, sub and aud are required",
            Self::WrongIssuer => "iss is not the client id",
            Self::WrongSubject => "sub is not the client id",
            Self::WrongAudience => "aud is neither the token endpoint nor the issuer",
            Self::Expired => "the assertion has expired",
            Self::TooLong => "exp lies further ahead than the gateway accepts",
            Self::NotYetValid => "the assertion is not valid yet",
            Self::JtiRequired => "jti is required",
            Self::IssuedTooLongAgo => "iat lies further back than the gateway accepts",
            Self::IatRequired => "iat is required when exp lies further ahead than the longest age",
        }
    }
}

/// The claims RFC 7523 3 speaks of, as the signer sent them.
impl std::fmt::Display for AssertionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for AssertionError {}

#[derive(Debug, Default, Deserialize)]
pub struct Claims {
    #[serde(default)]
    pub iss: Option<String>,
    #[serde(default)]
    pub sub: Option<String>,
    #[serde(default)]
    pub aud: Option<Audience>,
    #[serde(default)]
    pub exp: Option<i64>,
    #[serde(default)]
    pub nbf: Option<i64>,
    #[serde(default)]
    pub iat: Option<i64>,
    #[serde(default)]
    pub jti: Option<String>,
}

/// `aud`: one string or an array of them (RFC 7519 4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    /// Whether it names one of `wanted`.
    pub fn names(&self, wanted: &[&str]) -> bool {
        match self {
            Self::One(a) => wanted.contains(&a.as_str()),
            Self::Many(all) => all.iter().any(|a| wanted.contains(&a.as_str())),
        }
    }
}

/// What a verified assertion leaves to remember against replay (RFC 7523
/// 3, item 7): its `jti`, until `forget_at`. That is its `exp`, or, when
/// it carries `iat`, the end of its age, if sooner: past it the age rule
/// refuses the assertion anyway, so a replay cache never holds more than
/// the longest age's worth of assertions however long they live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub exp: i64,
    pub jti: String,
    /// Unix seconds, leeway included.
    pub forget_at: i64,
}

/// How long assertions may live, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// How far ahead `exp` may lie.
    pub max_lifetime: i64,
    /// How far back `iat` may lie; an assertion whose `exp` lies further
    /// ahead than this must carry `iat`.
    pub max_age: i64,
}

/// The claim checks of RFC 7523 3, items 1 to 7 but the replay check, for
/// `client_id` at `issuer` (the token endpoint is `{issuer}/oauth2/token`)
/// at `t` (Unix seconds) with assertions living within `life` and
/// [`LEEWAY`] of clock skew.
pub fn check_claims(
    claims: Claims,
    client_id: &str,
    issuer: &str,
    t: i64,
    life: Lifetimes,
) -> Result<Accepted, AssertionError> {
    let (Some(exp), Some(iss), Some(sub), Some(aud)) =
        (claims.exp, &claims.iss, &claims.sub, &claims.aud)
    else {
        return Err(AssertionError::MissingClaim);
    };
    if iss != client_id {
        return Err(AssertionError::WrongIssuer);
    }
    if sub != client_id {
        return Err(AssertionError::WrongSubject);
    }
    let token_endpoint = format!("{issuer}/oauth2/token");
    if !aud.names(&[token_endpoint.as_str(), issuer]) {
        return Err(AssertionError::WrongAudience);
    }
    if exp <= t.saturating_sub(LEEWAY) {
        return Err(AssertionError::Expired);
    }
    if exp > t.saturating_add(life.max_lifetime).saturating_add(LEEWAY) {
        return Err(AssertionError::TooLong);
    }
    let ahead = t.saturating_add(LEEWAY);
    if claims.nbf.is_some_and(|n| n > ahead) || claims.iat.is_some_and(|i| i > ahead) {
        return Err(AssertionError::NotYetValid);
    }
    let forget_at = match claims.iat {
        Some(iat) => {
            let aged = iat.saturating_add(life.max_age).saturating_add(LEEWAY);
            if t > aged {
                return Err(AssertionError::IssuedTooLongAgo);
            }
            aged.min(exp.saturating_add(LEEWAY))
        }
        None if exp > t.saturating_add(life.max_age).saturating_add(LEEWAY) => {
            return Err(AssertionError::IatRequired)
        }
        None => exp.saturating_add(LEEWAY),
    };
    let jti = claims
        .jti
        .filter(|j| !j.is_empty() && j.len() <= MAX_JTI)
        .ok_or(AssertionError::JtiRequired)?;
    Ok(Accepted {
        exp,
        jti,
        forget_at,
    })
}

#[derive(Debug, Deserialize)]
struct Unverified {
    #[serde(default)]
    sub: Option<String>,
}

/// What is read of an assertion before its client is known: the header,
/// whose `alg` must be one clients sign with, and the client it names
/// (`client_id` when sent, RFC 7521 4.2, else `sub`).
pub fn read_unverified(
    assertion: &str,
    client_id: Option<&str>,
) -> Result<(Header, String), AssertionError> {
    let header = decode_header(assertion).map_err(|_| AssertionError::NotAJwt)?;
    if !matches!(
        header.alg,
        Algorithm::RS256 | Algorithm::ES256 | Algorithm::EdDSA
    ) {
        return Err(AssertionError::AlgNotAccepted);
    }
    let unverified = jsonwebtoken::dangerous::insecure_decode::<Unverified>(assertion)
        .map_err(|_| AssertionError::ClaimsUndecodable)?
        .claims;
    let client_id = match (client_id, unverified.sub) {
        (Some(id), Some(sub)) if id != sub => return Err(AssertionError::ClientIdMismatch),
        (Some(id), _) => id.to_owned(),
        (None, Some(sub)) => sub,
        (None, None) => return Err(AssertionError::SubRequired),
    };
    Ok((header, client_id))
}

/// Checks the assertion's signature with the client's registered `keys`:
/// only those of the header's `alg`, and of its `kid` when it names one
/// (RFC 7515 4.1.4). Returns the claims, to be checked by [`check_claims`];
/// claims that do not decode as [`Claims`] once the signature verified
/// ([`AssertionError::ClaimsMalformed`]) come from the key's holder.
pub fn verify_signature(
    assertion: &str,
    header: &Header,
    keys: &[AssertionKey],
) -> Result<Claims, AssertionError> {
    let mut candidates = keys
        .iter()
        .filter(|k| k.alg == header.alg)
        .filter(|k| match &header.kid {
            Some(kid) => k.kid.as_deref() == Some(kid.as_str()),
            None => true,
        })
        .peekable();
    if candidates.peek().is_none() {
        return Err(AssertionError::NoMatchingKey);
    }
    let mut signed = false;
    for k in candidates {
        match jws::verify(assertion, k.alg, &k.key) {
            Ok(()) => {
                signed = true;
                break;
            }
            Err(SigError::Invalid) => continue,
            Err(_) => return Err(AssertionError::Malformed),
        }
    }
    if !signed {
        return Err(AssertionError::BadSignature);
    }
    jws::payload(assertion).ok_or(AssertionError::ClaimsMalformed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn every_reason_is_told_in_words_of_its_own() {
        let all = AssertionError::ALL;
        let reasons: std::collections::BTreeSet<_> = all.iter().map(|e| e.to_string()).collect();
        assert_eq!(reasons.len(), all.len());
    }

    #[test]
    fn an_audience_is_one_name_or_a_list() {
        let one: Audience = serde_json::from_str(r#""a""#).unwrap();
        assert!(one.names(&["b", "a"]));
        assert!(!one.names(&["b"]));
        let many: Audience = serde_json::from_str(r#"["x","a"]"#).unwrap();
        assert!(many.names(&["a"]));
        assert!(!many.names(&["b"]));
    }
}
