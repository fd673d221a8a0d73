//! Webhook delivery (SPEC 4) per the Standard Webhooks specification:
//! signing (`webhook-id`, `webhook-timestamp`, `webhook-signature`, secrets
//! `whsec_...`), the event payload with data minimisation, the destination
//! check, and the delivery worker.
//!
//! The worker keeps one cursor per subscription and sends that
//! subscription's events one at a time in cursor order, so each person's
//! changes arrive in order. A failed event holds the subscription back and
//! is retried on the configured schedule (with jitter, never before a
//! `Retry-After`); after the last retry it is dead-lettered (logged as
//! `dead`) and the cursor moves on. A 410 disables the subscription.
//! Progress is saved after the attempts it records, so a crash can only
//! repeat a delivery (at least once), never skip one.
use crate::state::AppState;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use muster_proto::{AttributeChange, ChangeEventData, ChangeEventInfo};
use muster_store::{ChangeEvent, DeliveryProgress, DeliveryRecord, SubscriptionRow};
use sha2::Sha256;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Secret prefix of the Standard Webhooks specification.
pub const SECRET_PREFIX: &str = "whsec_";
/// Events read per subscription per round.
const PAGE: u32 = 100;
/// A `Retry-After` longer than this is treated as this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// A new secret: `whsec_` + base64 of 32 random bytes.
pub fn new_secret() -> String {
    let mut k = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut k);
    format!("{SECRET_PREFIX}{}", B64.encode(k))
}

/// The key bytes of a `whsec_` secret.
pub fn secret_bytes(secret: &str) -> Option<Vec<u8>> {
    B64.decode(secret.strip_prefix(SECRET_PREFIX)?).ok()
}

/// One signature: `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")).
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length; this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
}

/// Associated data of a sealed webhook secret: binds it to its subscription.
pub fn secret_aad(subscription_id: &str) -> Vec<u8> {
    format!("muster-webhook-secret:{subscription_id}").into_bytes()
}

/// The wire form of an event. With `allowed` (a subscription's attribute
/// list), only those attributes are carried, and an event none of whose
/// changes is allowed gives `None`: it is not sent at all.
pub fn event_info(ev: &ChangeEvent, allowed: Option<&[String]>) -> Option<ChangeEventInfo> {
    let detail: serde_json::Value = serde_json::from_str(&ev.detail).ok()?;
    let roles_event = ev.kind == "roles.changed";
    let all = allowed.is_none_or(|a| a.iter().any(|x| x == "*"));
    let changes: Vec<AttributeChange> = detail["changes"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter_map(|c| {
                    let name = c["attribute"].as_str()?;
                    // roles travel in roles.changed only
                    if (name == muster_core::schema::ROLES) != roles_event {
                        return None;
                    }
                    if !all && !allowed.is_some_and(|a| a.iter().any(|x| x == name)) {
                        return None;
                    }
                    Some(AttributeChange {
                        attribute: name.to_owned(),
                        value: c["after"].clone(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    if allowed.is_some() && changes.is_empty() {
        return None;
    }
    Some(ChangeEventInfo {
        id: ev.id.clone(),
        cursor: ev.cursor,
        kind: ev.kind.clone(),
        timestamp: ev.created_at.clone(),
        data: ChangeEventData {
            external_id: ev.external_id.clone(),
            version: ev.version,
            source: ev.source.clone(),
            principal: ev.principal.clone(),
            on_behalf_of: ev.on_behalf_of.clone(),
            changes,
        },
    })
}

/// Whether an address is one a subscription may not point at unless
/// `webhooks.allow_private_destinations` is set.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                // 100.64.0.0/10, carrier-grade NAT
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let seg = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (seg & 0xfe00) == 0xfc00 // unique local
                || (seg & 0xffc0) == 0xfe80 // link local
        }
    }
}

/// Checks a destination URL: http(s), a host, and (unless allowed) no
/// address of the host in a private range. The reason is for the caller.
pub async fn check_destination(url: &str, allow_private: bool) -> Result<(), String> {
    let u = reqwest::Url::parse(url).map_err(|_| "url: not a valid URL".to_owned())?;
    match u.scheme() {
        "https" => {}
        "http" if allow_private => {}
        "http" => return Err("url: must be https".into()),
        _ => return Err("url: must be https".into()),
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("url: must not carry credentials".into());
    }
    let host = u.host_str().ok_or("url: has no host")?.to_owned();
    if allow_private {
        return Ok(());
    }
    let port = u.port_or_known_default().unwrap_or(443);
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let addrs: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|_| "url: the host does not resolve".to_owned())?
            .map(|a| a.ip())
            .collect(),
    };
    if addrs.is_empty() || addrs.into_iter().any(is_private) {
        return Err("url: private, loopback and link-local destinations are not allowed".into());
    }
    Ok(())
}

/// The signing keys of a subscription now: the current secret, and the
/// previous one during a rotation overlap.
fn signing_keys(state: &AppState, sub: &SubscriptionRow, now: DateTime<Utc>) -> Vec<Vec<u8>> {
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

enum Outcome {
    Delivered(u16),
    Gone,
    Failed {
        status: Option<u16>,
        error: String,
        retry_after: Option<Duration>,
    },
}

fn retry_after(h: &reqwest::header::HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
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

async fn send(
    http: &reqwest::Client,
    state: &AppState,
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
            }
        }
    };
    let ts = now.timestamp();
    let keys = signing_keys(state, sub, now);
    if keys.is_empty() {
        return Outcome::Failed {
            status: None,
            error: "no signing secret opens".into(),
            retry_after: None,
        };
    }
    let signature = keys
        .iter()
        .map(|k| sign(k, &ev.id, ts, &body))
        .collect::<Vec<_>>()
        .join(" ");
    let res = http
        .post(&sub.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", &ev.id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    match res {
        Ok(r) if r.status().is_success() => Outcome::Delivered(r.status().as_u16()),
        Ok(r) if r.status() == reqwest::StatusCode::GONE => Outcome::Gone,
        Ok(r) => Outcome::Failed {
            status: Some(r.status().as_u16()),
            error: format!("the receiver answered {}", r.status().as_u16()),
            retry_after: retry_after(r.headers(), now),
        },
        Err(e) => Outcome::Failed {
            status: None,
            error: if e.is_timeout() {
                "the request timed out".into()
            } else if e.is_connect() {
                "cannot connect to the receiver".into()
            } else {
                "the request failed".into()
            },
            retry_after: None,
        },
    }
}

/// The delay before retry number `n` (1-based), with +-10% jitter, and
/// never shorter than the receiver's `Retry-After`.
fn retry_delay(schedule: &[Duration], n: usize, retry_after: Option<Duration>) -> Duration {
    let base = schedule.get(n - 1).copied().unwrap_or_default();
    let jitter: f64 = rand::Rng::gen_range(&mut rand::thread_rng(), 0.9..1.1);
    base.mul_f64(jitter).max(retry_after.unwrap_or_default())
}

fn record(
    sub: &SubscriptionRow,
    ev: &ChangeEvent,
    attempt: u32,
    at: DateTime<Utc>,
    manual: bool,
) -> DeliveryRecord {
    DeliveryRecord {
        seq: 0,
        subscription_id: sub.id.clone(),
        event_id: ev.id.clone(),
        cursor: ev.cursor,
        attempt,
        at,
        status: None,
        outcome: String::new(),
        error: None,
        manual,
    }
}

/// Whether `sub` wants this event at all, and what it may see of it.
fn payload_for(sub: &SubscriptionRow, ev: &ChangeEvent) -> Option<ChangeEventInfo> {
    if !sub.events.iter().any(|e| e == &ev.kind) {
        return None;
    }
    event_info(ev, Some(&sub.attributes))
}

/// One round for one subscription: a manual redelivery range first, else
/// the events after its cursor until one fails.
async fn deliver_subscription(
    state: &AppState,
    http: &reqwest::Client,
    schedule: &[Duration],
    sub: SubscriptionRow,
) -> anyhow::Result<()> {
    let now = state.clock.now();
    let mut p: DeliveryProgress = sub.progress.clone();
    let mut records = Vec::new();
    let mut disable = None;

    if let Some((from, to)) = p.redeliver {
        let tenant = sub.tenant.clone();
        let n = u32::try_from((to - from + 1).clamp(1, i64::from(PAGE))).unwrap_or(PAGE);
        let events = state
            .db(move |s| s.changes_list(&tenant, from - 1, n))
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let mut next = to + 1;
        for ev in events.iter().filter(|e| e.cursor <= to) {
            next = ev.cursor + 1;
            let Some(info) = payload_for(&sub, ev) else {
                continue;
            };
            let mut r = record(&sub, ev, 1, state.clock.now(), true);
            match send(http, state, &sub, &info).await {
                Outcome::Delivered(st) => {
                    r.status = Some(st);
                    r.outcome = "delivered".into();
                }
                Outcome::Gone => {
                    r.status = Some(410);
                    r.outcome = "gone".into();
                    disable = Some("the receiver answered 410 Gone");
                    records.push(r);
                    break;
                }
                Outcome::Failed { status, error, .. } => {
                    r.status = status;
                    r.outcome = "failed".into();
                    r.error = Some(error);
                }
            }
            records.push(r);
        }
        // Moves the range on past what was sent, or ends it.
        p.redeliver = (!events.is_empty() && next <= to).then_some((next, to));
        save(state, &sub.id, p, records, disable).await?;
        return Ok(());
    }

    if p.next_attempt_at.is_some_and(|t| t > now) {
        return Ok(());
    }
    let tenant = sub.tenant.clone();
    let after = p.cursor;
    let events = state
        .db(move |s| s.changes_list(&tenant, after, PAGE))
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    if events.is_empty() {
        return Ok(());
    }
    for ev in &events {
        let Some(info) = payload_for(&sub, ev) else {
            p.cursor = ev.cursor;
            continue;
        };
        let attempt = p.attempt + 1;
        let at = state.clock.now();
        let mut r = record(&sub, ev, attempt, at, false);
        match send(http, state, &sub, &info).await {
            Outcome::Delivered(st) => {
                r.status = Some(st);
                r.outcome = "delivered".into();
                p.cursor = ev.cursor;
                p.attempt = 0;
                p.next_attempt_at = None;
                records.push(r);
            }
            Outcome::Gone => {
                r.status = Some(410);
                r.outcome = "gone".into();
                records.push(r);
                disable = Some("the receiver answered 410 Gone");
                tracing::warn!(subscription = %sub.id, "a receiver answered 410: subscription disabled");
                break;
            }
            Outcome::Failed {
                status,
                error,
                retry_after,
            } => {
                r.status = status;
                r.error = Some(error);
                if attempt as usize > schedule.len() {
                    r.outcome = "dead".into();
                    tracing::warn!(subscription = %sub.id, cursor = ev.cursor, "an event was dead-lettered after its last attempt");
                    p.cursor = ev.cursor;
                    p.attempt = 0;
                    p.next_attempt_at = None;
                    records.push(r);
                    continue;
                }
                r.outcome = "failed".into();
                records.push(r);
                let delay = retry_delay(schedule, attempt as usize, retry_after);
                p.attempt = attempt;
                p.next_attempt_at = Some(
                    at + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(10)),
                );
                break;
            }
        }
    }
    save(state, &sub.id, p, records, disable).await
}

async fn save(
    state: &AppState,
    id: &str,
    p: DeliveryProgress,
    records: Vec<DeliveryRecord>,
    disable: Option<&'static str>,
) -> anyhow::Result<()> {
    let id = id.to_owned();
    let now = state.clock.now();
    state
        .db(move |s| s.subscription_progress(&id, &p, &records, disable, now))
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))
}

/// The delivery worker: runs until `stop`, woken by committed changes or
/// every `webhooks.poll_interval_ms` (for due retries and other instances'
/// changes).
pub async fn run(state: AppState, stop: Arc<AtomicBool>) {
    let cfg = state.config.webhooks.clone();
    let schedule = match cfg.schedule() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "webhook delivery is off: the retry schedule is invalid");
            return;
        }
    };
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(cfg.request_timeout_seconds))
        // A redirect could lead anywhere, past the destination check.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("Muster-Webhooks/1")
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhook delivery is off: no HTTP client");
            return;
        }
    };
    let poll = Duration::from_millis(cfg.poll_interval_ms.max(10));
    while !stop.load(Ordering::SeqCst) {
        let woken = state.changes_committed.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        match state.db(|s| s.subscription_active()).await {
            Ok(subs) => {
                for sub in subs {
                    let id = sub.id.clone();
                    if let Err(e) = deliver_subscription(&state, &http, &schedule, sub).await {
                        tracing::error!(subscription = %id, error = %e, "webhook delivery round failed");
                    }
                }
            }
            Err(e) => tracing::error!(error = ?e, "cannot list subscriptions"),
        }
        tokio::select! {
            _ = &mut woken => {}
            _ = tokio::time::sleep(poll) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn signatures_reproduce_the_standard_webhooks_test_vector() {
        // The vector the Standard Webhooks reference libraries test against
        // (e.g. the Svix/Standard Webhooks PHP library's testSignFunctionWorks):
        // a receiver's stock library verifies what we send.
        let key = secret_bytes("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            sign(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn private_ranges_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "169.254.169.254",
            "::1",
            "fd00::1",
            "::ffff:10.0.0.1",
            "100.64.1.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:2800:220:1::1"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn retry_delays_follow_the_schedule_with_jitter_and_retry_after() {
        let s = [Duration::from_secs(5), Duration::from_secs(300)];
        let d = retry_delay(&s, 2, None);
        assert!(d >= Duration::from_secs(270) && d <= Duration::from_secs(330));
        let d = retry_delay(&s, 1, Some(Duration::from_secs(60)));
        assert_eq!(d, Duration::from_secs(60));
    }

    #[test]
    fn new_secrets_have_32_random_bytes() {
        let a = new_secret();
        assert_eq!(secret_bytes(&a).unwrap().len(), 32);
        assert_ne!(a, new_secret());
    }
}
