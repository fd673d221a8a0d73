//! The webhook sink, per the Standard Webhooks specification: the
//! `webhook-id`, `webhook-timestamp` and `webhook-signature` headers (the
//! signing and the `whsec_` secrets are `muster_webhook`'s). Where a
//! delivery may connect is decided by [`crate::http::outbound`], at
//! connect time.
use super::Outcome;
use crate::base::sealed::secret_aad;
use crate::base::state::AppState;
use chrono::{DateTime, Utc};
use muster_proto::ChangeEventInfo;
use muster_store::SubscriptionRow;
use muster_webhook::{secret_bytes, signature_header};
use std::time::Duration;

pub use muster_webhook::new_secret;

/// A `Retry-After` longer than this is treated as this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The signing keys of a subscription now: the current secret, and the
/// previous one during a rotation overlap.
pub(super) fn signing_keys(
    state: &AppState,
    sub: &SubscriptionRow,
    now: DateTime<Utc>,
) -> Vec<Vec<u8>> {
    let aad = secret_aad(&sub.id);
    let mut sealed = vec![&sub.secret_sealed];
    if let (Some(prev), Some(until)) = (&sub.previous_secret_sealed, sub.previous_until) {
        if until > now {
            sealed.push(prev);
        }
    }
    sealed
        .into_iter()
        .filter_map(|s| match state.master_key.open_box(&aad, s) {
            Ok(secret) => String::from_utf8(secret)
                .ok()
                .as_deref()
                .and_then(secret_bytes),
            Err(_) => {
                tracing::error!(subscription = %sub.id, "a sealed webhook secret does not open");
                None
            }
        })
        .collect()
}

/// A `Retry-After` (RFC 9110 10.2.3), seconds or a date, capped.
pub(crate) fn retry_after(h: &reqwest::header::HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let v = h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    let d = match v.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = DateTime::parse_from_rfc2822(v).ok()?.with_timezone(&Utc);
            (at - now).to_std().ok()?
        }
    };
    Some(d.min(MAX_RETRY_AFTER))
}

pub(super) async fn send(
    http: &reqwest::Client,
    state: &AppState,
    keys: &[Vec<u8>],
    sub: &SubscriptionRow,
    ev: &ChangeEventInfo,
) -> Outcome {
    let now = state.clock.now();
    let body = match serde_json::to_vec(ev) {
        Ok(b) => b,
        Err(_) => {
            return Outcome::Failed {
                status: None,
                error: "the event does not serialise".into(),
                retry_after: None,
                target: false,
            }
        }
    };
    let ts = now.timestamp();
    let Some(signature) = signature_header(keys, &ev.id, ts, &body) else {
        return Outcome::Failed {
            status: None,
            error: "no signing secret opens".into(),
            retry_after: None,
            target: false,
        };
    };
    // An IP literal is connected to without the resolver: judged here. A
    // stored URL is judged again at every delivery, whatever it passed
    // when it was saved.
    let rule = crate::http::outbound::Rule::webhooks(&state.config);
    let url = match reqwest::Url::parse(&sub.url) {
        Ok(u) => u,
        Err(_) => {
            return Outcome::Failed {
                status: None,
                error: "refused: the URL is not valid".into(),
                retry_after: None,
                target: false,
            }
        }
    };
    if let Err(why) = rule.check_url(&url) {
        tracing::warn!(subscription = %sub.id, reason = %why, "a webhook delivery was refused by the outbound destination rule");
        return Outcome::Failed {
            status: None,
            error: format!("refused: {why}"),
            retry_after: None,
            target: false,
        };
    }
    let res = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", &ev.id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    match res {
        Ok(r) if r.status().is_success() => Outcome::Delivered(Some(r.status().as_u16())),
        Ok(r) if r.status() == reqwest::StatusCode::GONE => Outcome::Gone,
        Ok(r) => Outcome::Failed {
            status: Some(r.status().as_u16()),
            error: format!("the receiver answered {}", r.status().as_u16()),
            retry_after: retry_after(r.headers(), now),
            target: false,
        },
        Err(e) => Outcome::Failed {
            status: None,
            error: transport_error(&e, sub),
            retry_after: None,
            target: false,
        },
    }
}

/// Why a request got no answer, in words that carry no URL or data (and
/// a warning when the outbound destination rule refused it).
pub(crate) fn transport_error(e: &reqwest::Error, sub: &SubscriptionRow) -> String {
    if let Some(why) = crate::http::outbound::refusal(e) {
        tracing::warn!(subscription = %sub.id, reason = %why, "a delivery was refused by the outbound destination rule");
        format!("refused: {why}")
    } else if e.is_timeout() {
        "the request timed out".into()
    } else if e.is_connect() {
        "cannot connect to the receiver".into()
    } else {
        "the request failed".into()
    }
}
