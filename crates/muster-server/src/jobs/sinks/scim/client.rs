//! Requests to a SCIM target (RFC 7644): authenticated as its settings
//! say (a bearer token, OAuth 2.0 client credentials fetched and renewed,
//! or HTTP Basic), within its concurrency and request-rate limits, over
//! the delivery HTTP client (whose resolver applies the outbound
//! destination rule at every connection), and sorted into what the
//! target's answer means: a failure of the target (it is down, overloaded
//! or refuses us: retried, and quarantined if it goes on) or of one
//! person's request (retried, then dead-lettered).
use crate::base::sealed::secret_aad;
use crate::base::state::AppState;
use crate::jobs::sinks::webhook::{retry_after, transport_error};
use muster_proto::{ScimAuth, ScimSecret, ScimTarget};
use muster_store::SubscriptionRow;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, Semaphore};
use tokio::time::Instant;

/// Why a request did not do what it was for. Never a value from the
/// request or the answer: statuses and SCIM error types only.
#[derive(Debug, Clone)]
pub(crate) struct Fail {
    pub status: Option<u16>,
    pub error: String,
    pub retry_after: Option<Duration>,
    /// The target as a whole fails (down, overloaded, refusing our
    /// credentials), not this one person's request.
    pub target: bool,
}

impl Fail {
    pub fn person(status: Option<u16>, error: impl Into<String>) -> Fail {
        Fail {
            status,
            error: error.into(),
            retry_after: None,
            target: false,
        }
    }
}

/// An answer: its status and body (`Null` when empty or not JSON).
pub(crate) struct Answer {
    pub status: u16,
    pub body: Value,
}

/// What one subscription's rounds share: its OAuth token, its request
/// rate and its requests in flight.
pub(crate) struct Shared {
    /// A fingerprint of the settings it was made for.
    pub print: Vec<u8>,
    token: Mutex<Option<(String, Instant)>>,
    /// When the next request may go (the rate limit).
    next_slot: Mutex<Instant>,
    permits: Semaphore,
    /// Held while a Group is looked for and created, so that two people
    /// of a new role make one.
    pub groups: Mutex<()>,
}

impl Shared {
    pub fn new(print: Vec<u8>, concurrency: u32) -> Shared {
        Shared {
            print,
            token: Mutex::new(None),
            next_slot: Mutex::new(Instant::now()),
            permits: Semaphore::new(concurrency.clamp(1, 32) as usize),
            groups: Mutex::new(()),
        }
    }
}

/// A target opened for a round: where, how to log in, and the limits.
pub(crate) struct Target {
    pub http: reqwest::Client,
    pub base: String,
    pub cfg: ScimTarget,
    secret: ScimSecret,
    pub shared: Arc<Shared>,
    pub now: chrono::DateTime<chrono::Utc>,
}

/// The subscription's secret, opened.
pub(crate) fn secret(state: &AppState, sub: &SubscriptionRow) -> Result<ScimSecret, String> {
    let text = state
        .master_key
        .open_box(&secret_aad(&sub.id), &sub.secret_sealed)
        .map_err(|_| {
            tracing::error!(subscription = %sub.id, "a sealed SCIM target secret does not open");
            "the stored target secret does not open".to_owned()
        })?;
    if text.is_empty() {
        return Ok(ScimSecret::default());
    }
    serde_json::from_slice(&text).map_err(|_| "the stored target secret does not parse".into())
}

/// The secret as it is sealed (empty: none).
pub(crate) fn secret_text(s: &Option<ScimSecret>) -> String {
    match s {
        Some(s) if *s != ScimSecret::default() => serde_json::to_string(s).unwrap_or_default(),
        _ => String::new(),
    }
}

/// What the settings' `auth` needs, present.
pub(crate) fn check_auth(t: &ScimTarget, s: &ScimSecret) -> Result<(), String> {
    let need = |ok: bool, what: &str| {
        if ok {
            Ok(())
        } else {
            Err(format!("{what} (auth is '{}')", auth_name(t.auth)))
        }
    };
    match t.auth {
        ScimAuth::Bearer => need(s.token.is_some(), "scim_secret.token is required"),
        ScimAuth::Basic => {
            need(t.username.is_some(), "scim.username is required")?;
            need(s.password.is_some(), "scim_secret.password is required")
        }
        ScimAuth::Oauth => {
            need(t.token_url.is_some(), "scim.token_url is required")?;
            need(t.client_id.is_some(), "scim.client_id is required")?;
            need(
                s.client_secret.is_some(),
                "scim_secret.client_secret is required",
            )
        }
        ScimAuth::None => Ok(()),
    }
}

fn auth_name(a: ScimAuth) -> &'static str {
    match a {
        ScimAuth::Bearer => "bearer",
        ScimAuth::Basic => "basic",
        ScimAuth::Oauth => "oauth",
        ScimAuth::None => "none",
    }
}

fn scim_type(body: &Value) -> String {
    match body.get("scimType").and_then(Value::as_str) {
        // A SCIM error keyword (RFC 7644 3.12), never the detail, which
        // may quote a value.
        Some(t) if t.len() <= 32 && t.bytes().all(|b| b.is_ascii_alphabetic()) => {
            format!(" ({t})")
        }
        _ => String::new(),
    }
}

impl Target {
    pub fn new(
        http: reqwest::Client,
        sub: &SubscriptionRow,
        cfg: ScimTarget,
        secret: ScimSecret,
        shared: Arc<Shared>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Target {
        Target {
            http,
            base: sub.url.trim_end_matches('/').to_owned(),
            cfg,
            secret,
            shared,
            now,
        }
    }

    /// Waits for the next request slot the rate limit allows.
    async fn pace(&self) {
        if self.cfg.rate_per_second == 0 {
            return;
        }
        let gap = Duration::from_secs_f64(1.0 / f64::from(self.cfg.rate_per_second));
        let at = {
            let mut next = self.shared.next_slot.lock().await;
            let now = Instant::now();
            let at = (*next).max(now);
            *next = at + gap;
            at
        };
        tokio::time::sleep_until(at).await;
    }

    /// An OAuth access token, fetched when there is none or it is about
    /// to expire (RFC 6749 4.4, the client authenticating with HTTP Basic
    /// as 2.3.1 recommends).
    async fn oauth_token(&self, renew: bool) -> Result<String, Fail> {
        let mut held = self.shared.token.lock().await;
        if !renew {
            if let Some((t, until)) = held.as_ref() {
                if *until > Instant::now() {
                    return Ok(t.clone());
                }
            }
        }
        let down = |error: String| Fail {
            status: None,
            error,
            retry_after: None,
            target: true,
        };
        let url = self.cfg.token_url.clone().unwrap_or_default();
        let mut form = vec![("grant_type", "client_credentials".to_owned())];
        if let Some(s) = &self.cfg.oauth_scope {
            form.push(("scope", s.clone()));
        }
        let res = self
            .http
            .post(&url)
            .basic_auth(
                self.cfg.client_id.clone().unwrap_or_default(),
                self.secret.client_secret.clone(),
            )
            .form(&form)
            .send()
            .await
            .map_err(|e| down(format!("token endpoint: {}", transport_error_text(&e))))?;
        let status = res.status().as_u16();
        if !res.status().is_success() {
            return Err(Fail {
                status: Some(status),
                error: format!("the token endpoint answered {status}"),
                retry_after: retry_after(res.headers(), self.now),
                target: true,
            });
        }
        let body: Value = res
            .json()
            .await
            .map_err(|_| down("the token endpoint's answer is not JSON".into()))?;
        let token = body
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or_else(|| down("the token endpoint's answer has no access_token".into()))?
            .to_owned();
        let life = body
            .get("expires_in")
            .and_then(Value::as_u64)
            .unwrap_or(300);
        // Renewed a little before it runs out.
        let until = Instant::now() + Duration::from_secs(life.saturating_sub(30).max(1));
        *held = Some((token.clone(), until));
        Ok(token)
    }

    async fn authorise(
        &self,
        req: reqwest::RequestBuilder,
        renew: bool,
    ) -> Result<reqwest::RequestBuilder, Fail> {
        Ok(match self.cfg.auth {
            ScimAuth::Bearer => req.bearer_auth(self.secret.token.clone().unwrap_or_default()),
            ScimAuth::Basic => req.basic_auth(
                self.cfg.username.clone().unwrap_or_default(),
                self.secret.password.clone(),
            ),
            ScimAuth::Oauth => req.bearer_auth(self.oauth_token(renew).await?),
            ScimAuth::None => req,
        })
    }

    /// One request to `path` (after the base URL). 2xx, 404 and 409 are
    /// answers for the caller to read; anything else is a [`Fail`].
    pub async fn call(
        &self,
        sub: &SubscriptionRow,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, Fail> {
        let _permit = self.shared.permits.acquire().await.ok();
        let mut renewed = false;
        loop {
            self.pace().await;
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .header(
                    reqwest::header::ACCEPT,
                    "application/scim+json, application/json",
                );
            if let Some(b) = body {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, "application/scim+json")
                    .body(serde_json::to_vec(b).unwrap_or_default());
            }
            let req = self.authorise(req, renewed).await?;
            let res = req.send().await.map_err(|e| Fail {
                status: None,
                error: transport_error(&e, sub),
                retry_after: None,
                target: true,
            })?;
            let status = res.status().as_u16();
            // An OAuth token the target no longer takes: one more try
            // with a new one.
            if status == 401 && self.cfg.auth == ScimAuth::Oauth && !renewed {
                renewed = true;
                continue;
            }
            let wait = retry_after(res.headers(), self.now);
            let text = res.bytes().await.unwrap_or_default();
            let body: Value = serde_json::from_slice(&text).unwrap_or(Value::Null);
            return match status {
                200..=299 | 404 | 409 => Ok(Answer { status, body }),
                401 | 403 | 408 | 429 | 500..=599 => Err(Fail {
                    status: Some(status),
                    error: format!("the target answered {status}{}", scim_type(&body)),
                    retry_after: wait,
                    target: true,
                }),
                _ => Err(Fail::person(
                    Some(status),
                    format!("the target answered {status}{}", scim_type(&body)),
                )),
            };
        }
    }

    /// The first resource of `/{kind}?filter=...`, if any.
    pub async fn find(
        &self,
        sub: &SubscriptionRow,
        kind: &str,
        filter: &str,
    ) -> Result<Option<Value>, Fail> {
        let q: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("filter", filter)
            .append_pair("count", "2")
            .finish();
        let a = self
            .call(sub, reqwest::Method::GET, &format!("/{kind}?{q}"), None)
            .await?;
        if a.status != 200 {
            return Err(Fail {
                status: Some(a.status),
                error: format!("a lookup on the target answered {}", a.status),
                retry_after: None,
                target: true,
            });
        }
        Ok(a.body
            .get("Resources")
            .and_then(Value::as_array)
            .and_then(|r| r.first())
            .cloned())
    }
}

fn transport_error_text(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "the request timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "the request failed"
    }
}
