//! Credentials and the OAuth 2.0 token source.
//!
//! An [`Auth::ClientCredentials`] client fetches access tokens from
//! `/oauth2/token` (RFC 6749 4.4) and keeps one in a [`TokenCache`] until
//! [`RENEW_MARGIN`] before it expires. The cache is plain data driven by
//! the instant the caller passes in, so expiry is tested without sleeping.
use crate::signer::{JwtAssertionKey, RequestSigner};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use std::time::{Duration, Instant};

/// A cached token is replaced this long before it expires, so that it does
/// not run out between being sent and being checked.
pub const RENEW_MARGIN: Duration = Duration::from_secs(30);

/// How the client authenticates itself at the token endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ClientAuthMethod {
    /// `client_secret_basic`: HTTP Basic (RFC 6749 2.3.1). The default.
    #[default]
    Basic,
    /// `client_secret_post`: `client_id` and `client_secret` form fields.
    Post,
}

impl ClientAuthMethod {
    /// The RFC 8414 name of the method.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuthMethod::Basic => "client_secret_basic",
            ClientAuthMethod::Post => "client_secret_post",
        }
    }
}

/// What the client presents. `Debug` shows the client id, never a secret.
#[derive(Clone)]
pub enum Auth {
    /// An admin API token (`mat_...`) or an access token obtained
    /// elsewhere, sent as is.
    Bearer(SecretString),
    /// OAuth 2.0 client credentials; access tokens are fetched as needed.
    ClientCredentials {
        client_id: String,
        client_secret: SecretString,
        /// Narrows the token to some of the client's permissions.
        scope: Option<String>,
        method: ClientAuthMethod,
    },
    /// OAuth 2.0 client credentials where the client proves itself with a
    /// signed JWT (`private_key_jwt`, RFC 7523 2.2) instead of a secret.
    PrivateKeyJwt {
        client_id: String,
        key: JwtAssertionKey,
        scope: Option<String>,
    },
    /// No token at all: every API request is signed (RFC 9421, docs/authentication.md#signed-requests).
    Signed(RequestSigner),
}

impl Auth {
    /// Client credentials sent by HTTP Basic, without a scope.
    pub fn client_credentials(client_id: impl Into<String>, client_secret: SecretString) -> Self {
        Auth::ClientCredentials {
            client_id: client_id.into(),
            client_secret,
            scope: None,
            method: ClientAuthMethod::Basic,
        }
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Bearer(_) => f.write_str("Bearer([redacted])"),
            Auth::ClientCredentials {
                client_id,
                scope,
                method,
                ..
            } => f
                .debug_struct("ClientCredentials")
                .field("client_id", client_id)
                .field("client_secret", &"[redacted]")
                .field("scope", scope)
                .field("method", method)
                .finish(),
            Auth::PrivateKeyJwt {
                client_id,
                key,
                scope,
            } => f
                .debug_struct("PrivateKeyJwt")
                .field("client_id", client_id)
                .field("key", key)
                .field("scope", scope)
                .finish(),
            Auth::Signed(signer) => f.debug_tuple("Signed").field(signer).finish(),
        }
    }
}

/// The `Authorization` value for `client_secret_basic`: RFC 6749 2.3.1 has
/// the id and the secret form-urlencoded before they are joined with `:`
/// and base64-encoded (RFC 7617), so a `:` in either survives.
pub fn basic_authorization(client_id: &str, client_secret: &SecretString) -> SecretString {
    let pair = SecretString::from(format!(
        "{}:{}",
        urlencoding::encode(client_id),
        urlencoding::encode(client_secret.expose_secret())
    ));
    SecretString::from(format!("Basic {}", STANDARD.encode(pair.expose_secret())))
}

/// When a token fetched at `fetched` that lives `expires_in` should be
/// replaced: [`RENEW_MARGIN`] before it expires, or at once if it lives
/// less than that.
pub fn renewal_due(fetched: Instant, expires_in: Duration) -> Instant {
    fetched + expires_in.saturating_sub(RENEW_MARGIN)
}

/// The `error` parameter of a `WWW-Authenticate: Bearer ...` challenge
/// (RFC 6750 3), e.g. `invalid_token`.
pub fn bearer_error(challenge: &str) -> Option<String> {
    let s = challenge.trim_start();
    let scheme_end = s.find(|c: char| c.is_ascii_whitespace()).unwrap_or(s.len());
    if !s[..scheme_end].eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut rest = s[scheme_end..].chars().peekable();
    loop {
        while rest
            .peek()
            .is_some_and(|c| c.is_ascii_whitespace() || *c == ',')
        {
            rest.next();
        }
        let name: String = rest
            .by_ref()
            .take_while(|c| *c != '=')
            .collect::<String>()
            .trim()
            .to_owned();
        if name.is_empty() {
            return None;
        }
        while rest.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            rest.next();
        }
        let mut value = String::new();
        if rest.peek() == Some(&'"') {
            rest.next();
            while let Some(c) = rest.next() {
                match c {
                    '\\' => value.extend(rest.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = rest.next_if(|c| *c != ',') {
                value.push(c);
            }
            value = value.trim().to_owned();
        }
        if name.eq_ignore_ascii_case("error") {
            return Some(value);
        }
    }
}

struct Cached {
    token: SecretString,
    renew_at: Instant,
    /// How often it was handed out; a refusal after a use tells that
    /// tokens are single-use.
    uses: u32,
}

/// The token a client-credentials client holds between requests.
#[derive(Default)]
pub struct TokenCache {
    current: Option<Cached>,
    /// Learnt when a token that had been used was refused before its
    /// expiry: the client's tokens are one-time, so caching them only
    /// costs a refused request.
    single_use: bool,
}

impl TokenCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The cached token, if it is not due for renewal at `now`.
    pub fn get(&mut self, now: Instant) -> Option<SecretString> {
        let c = self.current.as_mut().filter(|c| now < c.renew_at)?;
        c.uses += 1;
        Some(c.token.clone())
    }

    /// Keeps a token fetched at `fetched` (unless tokens are single-use)
    /// and returns it; it counts as used once.
    pub fn store(
        &mut self,
        token: SecretString,
        fetched: Instant,
        expires_in: Duration,
    ) -> SecretString {
        if !self.single_use {
            self.current = Some(Cached {
                token: token.clone(),
                renew_at: renewal_due(fetched, expires_in),
                uses: 1,
            });
        }
        token
    }

    /// The server refused `token` (`invalid_token`): forget it, so that
    /// the next caller fetches a fresh one. A second caller refused the
    /// same token does not drop the fresh one another caller fetched.
    pub fn refused(&mut self, token: &SecretString) {
        let same = self
            .current
            .as_ref()
            .is_some_and(|c| c.token.expose_secret() == token.expose_secret());
        if same {
            if self.current.as_ref().is_some_and(|c| c.uses > 1) {
                self.single_use = true;
            }
            self.current = None;
        }
    }

    /// Drops `token` if it is the cached one (it was revoked on purpose,
    /// which says nothing about the token policy).
    pub fn forget(&mut self, token: &str) {
        if self
            .current
            .as_ref()
            .is_some_and(|c| c.token.expose_secret() == token)
        {
            self.current = None;
        }
    }

    /// Whether the tokens turned out to be one-time.
    pub fn single_use(&self) -> bool {
        self.single_use
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_match_the_rfc_6749_example() {
        // RFC 6749 2.3.1: client s6BhdRkqt3, secret gX1fBat3bV.
        let h = basic_authorization("s6BhdRkqt3", &SecretString::from("gX1fBat3bV"));
        assert_eq!(h.expose_secret(), "Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW");
    }

    #[test]
    fn basic_credentials_are_form_encoded_before_base64() {
        let h = basic_authorization("hr:feed", &SecretString::from("a b/c%d:e"));
        let b64 = h.expose_secret().strip_prefix("Basic ").unwrap();
        let raw = String::from_utf8(STANDARD.decode(b64).unwrap()).unwrap();
        assert_eq!(raw, "hr%3Afeed:a%20b%2Fc%25d%3Ae");
        // Exactly one unencoded colon separates the two.
        assert_eq!(raw.matches(':').count(), 1);
    }

    #[test]
    fn a_token_is_renewed_thirty_seconds_before_it_expires() {
        let t0 = Instant::now();
        let mut c = TokenCache::new();
        let tok = c.store(SecretString::from("mct_a"), t0, Duration::from_secs(900));
        assert_eq!(tok.expose_secret(), "mct_a");
        assert!(c.get(t0).is_some());
        assert!(c.get(t0 + Duration::from_secs(869)).is_some());
        assert!(c.get(t0 + Duration::from_secs(870)).is_none());
        assert!(c.get(t0 + Duration::from_secs(2000)).is_none());
    }

    #[test]
    fn a_token_shorter_lived_than_the_margin_is_never_reused() {
        let t0 = Instant::now();
        assert_eq!(renewal_due(t0, Duration::from_secs(10)), t0);
        let mut c = TokenCache::new();
        c.store(SecretString::from("mct_a"), t0, Duration::from_secs(10));
        assert!(c.get(t0).is_none());
    }

    #[test]
    fn a_refused_token_is_dropped_and_a_reused_one_marks_single_use() {
        let t0 = Instant::now();
        let life = Duration::from_secs(900);
        let mut c = TokenCache::new();
        let a = c.store(SecretString::from("mct_a"), t0, life);
        // A refusal of a token nobody else used: expired or revoked.
        c.refused(&a);
        assert!(c.get(t0).is_none());
        assert!(!c.single_use());

        let b = c.store(SecretString::from("mct_b"), t0, life);
        let again = c.get(t0).unwrap();
        assert_eq!(again.expose_secret(), b.expose_secret());
        c.refused(&again);
        assert!(c.single_use());
        // From now on nothing is cached.
        c.store(SecretString::from("mct_c"), t0, life);
        assert!(c.get(t0).is_none());
    }

    #[test]
    fn a_late_refusal_does_not_drop_a_newer_token() {
        let t0 = Instant::now();
        let life = Duration::from_secs(900);
        let mut c = TokenCache::new();
        let old = c.store(SecretString::from("mct_old"), t0, life);
        c.refused(&old);
        c.store(SecretString::from("mct_new"), t0, life);
        c.refused(&old);
        assert_eq!(c.get(t0).unwrap().expose_secret(), "mct_new");
        c.forget("mct_old");
        assert!(c.get(t0).is_some());
        c.forget("mct_new");
        assert!(c.get(t0).is_none());
        assert!(!c.single_use());
    }

    #[test]
    fn bearer_challenges_yield_their_error() {
        assert_eq!(
            bearer_error(r#"Bearer error="invalid_token", error_description="the token was used""#)
                .as_deref(),
            Some("invalid_token")
        );
        assert_eq!(
            bearer_error(r#"bearer realm="muster", error=invalid_token"#).as_deref(),
            Some("invalid_token")
        );
        assert_eq!(
            bearer_error(r#"Bearer error_description="a, \"b\"", error="insufficient_scope""#)
                .as_deref(),
            Some("insufficient_scope")
        );
        assert_eq!(bearer_error(r#"Basic realm="muster""#), None);
        assert_eq!(bearer_error("Bearer"), None);
        assert_eq!(bearer_error(r#"Bearer realm="x""#), None);
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let a = Auth::client_credentials("hr-feed", SecretString::from("mcs_topsecret"));
        let shown = format!("{a:?}");
        assert!(
            shown.contains("hr-feed") && !shown.contains("topsecret"),
            "{shown}"
        );
        let b = Auth::Bearer(SecretString::from("mat_topsecret"));
        assert!(!format!("{b:?}").contains("topsecret"));
    }
}
