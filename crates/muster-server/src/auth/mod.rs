//! Who is calling: the bearer-token extractor, the caller's effective
//! permissions (role narrowed by the token's scope), and `On-Behalf-Of`.
//! A request signed with HTTP Message Signatures was already verified by
//! [`crate::auth::signing::verify_signature`]; the extractor takes its client.
pub(crate) mod client_assertion;
pub(crate) mod keys;
pub(crate) mod login_sync;
pub(crate) mod oauth;
pub(crate) mod ratelimit;
pub(crate) mod signing;

use crate::auth::signing::{has_signature, SignedBy};
use crate::base::error::ApiError;
use crate::base::state::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use muster_core::policy::{parse_scope, role_permissions, Permission, Permissions};
use muster_core::secret;
use muster_proto::ErrorCode;
use muster_store::{ClientRow, TokenRefusal};

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: ClientRow,
    pub permissions: Permissions,
    /// Recorded in audit; never used for authorisation.
    pub on_behalf_of: Option<String>,
}

impl Caller {
    pub fn require(&self, p: Permission) -> Result<(), ApiError> {
        if self.permissions.contains(&p) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(p.as_str().to_owned()))
        }
    }
    pub fn has(&self, p: Permission) -> bool {
        self.permissions.contains(&p)
    }
    pub fn name(&self) -> String {
        self.principal.principal_name()
    }
}

/// Reads and checks `On-Behalf-Of`: at most 256 printable characters.
pub fn on_behalf_of(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("on-behalf-of") else {
        return Ok(None);
    };
    let s = v
        .to_str()
        .ok()
        .filter(|s| !s.is_empty() && s.len() <= 256 && !s.chars().any(char::is_control))
        .ok_or_else(|| {
            ApiError::bad_request(
                ErrorCode::InvalidHeader,
                "the On-Behalf-Of header must be 1 to 256 printable ASCII characters",
            )
        })?;
    Ok(Some(s.trim().to_owned()))
}

/// Effective permissions: the role's, narrowed by the token's scope (`*`:
/// all of the role's).
pub fn effective_permissions(role: &str, scope: &str) -> Permissions {
    let role = role_permissions(role).unwrap_or_default();
    if scope == "*" {
        return role;
    }
    match parse_scope(scope) {
        Ok(s) => role.intersection(&s).copied().collect(),
        Err(_) => Permissions::new(),
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(SignedBy(client)) = parts.extensions.get::<SignedBy>().cloned() {
            // A signature carries no scope: the client's whole role applies.
            let permissions = role_permissions(&client.role).unwrap_or_default();
            return Ok(Caller {
                principal: client,
                permissions,
                on_behalf_of: on_behalf_of(&parts.headers)?,
            });
        }
        if has_signature(&parts.headers) {
            // Only reachable on a route outside the verifying middleware.
            return Err(ApiError::Unauthorized(
                "request signatures are not accepted on this route",
            ));
        }
        let token = authorization(&parts.headers, "bearer")
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::Unauthorized(
                "an Authorization: Bearer token is required",
            ))?;
        // Nothing is refused by address before the token is checked: a
        // valid token always passes. An unknown token counts as guessing
        // by source address (see `crate::auth::ratelimit`); an expired, revoked
        // or already used one was genuine and does not.
        let now = state.clock.now();
        let digest = secret::digest(token);
        let outcome = state.db(move |s| s.token_use(digest, now)).await?;
        let grant = match outcome {
            Ok(g) => g,
            Err(refusal) => {
                if refusal == TokenRefusal::Unknown {
                    if let Some(peer) = parts
                        .extensions
                        .get::<ConnectInfo<std::net::SocketAddr>>()
                        .map(|c| c.0.ip())
                    {
                        let addr = state.auth_failures.client_addr(peer, &parts.headers);
                        crate::auth::ratelimit::record_failure(
                            state,
                            crate::auth::ratelimit::keys(addr, None),
                        )
                        .await;
                    }
                }
                return Err(ApiError::Unauthorized(refusal.reason()));
            }
        };
        let on_behalf_of = on_behalf_of(&parts.headers)?;
        let permissions = effective_permissions(&grant.principal.role, &grant.scope);
        Ok(Caller {
            principal: grant.principal,
            permissions,
            on_behalf_of,
        })
    }
}

/// The credentials of the `Authorization` header when it uses `scheme`,
/// compared case-insensitively (RFC 9110 11.1), trimmed.
pub fn authorization<'a>(headers: &'a HeaderMap, scheme: &str) -> Option<&'a str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (s, rest) = v.trim_start().split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn the_authorization_scheme_is_matched_in_any_case() {
        let mut h = HeaderMap::new();
        for v in ["Basic abc", "basic abc", "BASIC  abc ", "bAsIc abc"] {
            h.insert(header::AUTHORIZATION, v.parse().unwrap());
            assert_eq!(authorization(&h, "basic"), Some("abc"), "{v}");
            assert_eq!(authorization(&h, "bearer"), None, "{v}");
        }
        h.insert(header::AUTHORIZATION, "Basicabc".parse().unwrap());
        assert_eq!(authorization(&h, "basic"), None);
    }

    #[test]
    fn a_scope_narrows_but_never_widens_the_role() {
        let p = effective_permissions("importer", "imports:create people:read");
        assert_eq!(
            p.into_iter().collect::<Vec<_>>(),
            vec![Permission::ImportsCreate]
        );
        assert_eq!(effective_permissions("reader", "*").len(), 1);
        assert!(effective_permissions("nobody", "*").is_empty());
    }
}
