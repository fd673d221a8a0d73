//! Limits on authentication: slowing down those who guess, aggregating
//! what their failures write to the audit trail, the token request rate,
//! and which address a request comes from. Operators' view:
//! `docs/security.md`.
//!
//! **A correct credential is never refused because of other people's
//! failures.** Nothing is refused before the credential is checked; a
//! failed check is answered as always (401), but once the failures counted
//! against it pass a threshold within `limits.failed_auth_window_seconds`,
//! the answer is held back: `limits.failed_auth_delay_ms` for the first
//! failure over the threshold, doubling with each further one, up to
//! `limits.failed_auth_max_delay_ms`. The wait is an async sleep (no
//! thread is held), and at most [`MAX_WAITING`] answers wait at once per
//! instance (beyond that a failure is answered at once: memory stays
//! bounded while the connection cap bounds the attacker's parallelism).
//! Failures are counted per (source address, client id) pair
//! (`limits.failed_auth_max`) and per source address
//! (`limits.failed_auth_address_max`, higher: many honest clients may share
//! one NAT or proxy). A client id alone is never a key, so nobody can make
//! another address's requests slower by naming someone's client id. An
//! IPv6 source counts by its /64 prefix, the block one subscriber gets.
//!
//! What counts as guessing: an unknown client id or token, a wrong secret,
//! a signature or assertion that does not verify, a credential that cannot
//! be read. What does not: a request without credentials, the reuse of a
//! one-time token, nonce or `jti` (the credential was genuine once), an
//! expired or revoked token, a disabled client, and every refusal after a
//! signature verified.
//!
//! The counters live in the database ([`muster_store::Store::auth_failure_record`],
//! one write per failure; a success costs nothing): the count a failure
//! gets back is the whole cluster's, so failures spread over instances add
//! up at once. The heartbeat purges expired counters.
//!
//! **Audit of unauthenticated failures.** Anyone can fail to authenticate,
//! and each audit entry is appended to a tenant's hash chain forever, so
//! failures are aggregated ([`audit_failure`]): the first failure of a
//! (tenant, principal, source, reason, address) window is written at once,
//! the further ones of that window are counted in memory and written as one
//! summary entry (`count`, `since`, `until`) when the window has passed.
//! A tenant gets at most [`AUDIT_KEYS_PER_TENANT`] such windows at a time
//! per instance; failures beyond that go into one summary for the tenant
//! (`reason: many_sources`). So an outsider adds a bounded number of
//! entries per window, however many requests or addresses they use.
//!
//! **Token requests** (`limits.token_requests_per_second`, 0: off): a
//! cluster-wide rate per source address (before authentication) and per
//! client id (after it: only those holding the client's credential spend
//! its share). Each instance enforces its share, the rate divided by the
//! number of live instances (from the heartbeat table), with a token
//! bucket in memory holding one second's share: no database work per
//! grant, and grant throughput scales with instances. A load balancer that
//! spreads requests unevenly makes the effective limit lower, never higher.
//!
//! **Source address.** The peer's address, unless the peer is one of
//! `limits.trusted_proxies`: then the forwarding header the operator names
//! (`limits.trusted_proxy_header`: `X-Forwarded-For`, or `Forwarded` of
//! RFC 7239) is read from the right, past the trusted proxies, and the
//! first address not trusted is the client. One header only: a proxy that
//! sets one passes the other through from the client unchanged.
use crate::base::config::Limits;
use crate::base::config::{parse_proxies, parse_proxy_header, ProxyHeader};
use crate::base::state::AppState;
use axum::http::HeaderMap;
use chrono::{DateTime, Duration, Utc};
use ipnet::IpNet;
use muster_core::TenantId;
use muster_store::AuditDraft;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// How many keys are tracked before expired ones are swept out.
const SWEEP_AT: usize = 10_000;
/// Failure answers held back at the same time, per instance.
pub const MAX_WAITING: usize = 4096;
/// Aggregation windows one tenant may have open at a time, per instance.
pub const AUDIT_KEYS_PER_TENANT: usize = 64;

/// Failed-authentication limits and their audit aggregation (see the
/// module docs).
#[derive(Debug)]
pub struct FailureLimiter {
    pair_max: u32,
    addr_max: u32,
    window: Duration,
    first_delay: std::time::Duration,
    max_delay: std::time::Duration,
    waiting: AtomicUsize,
    proxies: Vec<IpNet>,
    header: ProxyHeader,
    audit: FailureAudit,
}

impl FailureLimiter {
    pub fn new(limits: &Limits) -> anyhow::Result<Self> {
        Ok(Self {
            pair_max: limits.failed_auth_max,
            addr_max: limits.failed_auth_address_max,
            window: Duration::seconds(limits.failed_auth_window_seconds.clamp(1, 86_400) as i64),
            first_delay: std::time::Duration::from_millis(limits.failed_auth_delay_ms),
            max_delay: std::time::Duration::from_millis(limits.failed_auth_max_delay_ms),
            waiting: AtomicUsize::new(0),
            proxies: parse_proxies(&limits.trusted_proxies)?,
            header: parse_proxy_header(&limits.trusted_proxy_header)?,
            audit: FailureAudit::default(),
        })
    }

    /// Whether failures are counted at all.
    pub fn enabled(&self) -> bool {
        self.pair_max > 0 || self.addr_max > 0
    }

    /// The lower of the two thresholds that are on (for the heartbeat).
    pub fn lowest_max(&self) -> u32 {
        [self.pair_max, self.addr_max]
            .into_iter()
            .filter(|m| *m > 0)
            .min()
            .unwrap_or(0)
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    fn max_for(&self, key: &str) -> u32 {
        if key.starts_with("pair:") {
            self.pair_max
        } else {
            self.addr_max
        }
    }

    /// How long the answer to a failure waits, `failures` being the count
    /// of `key` in its window with this one.
    pub fn delay(&self, key: &str, failures: u32) -> std::time::Duration {
        let max = self.max_for(key);
        if max == 0 || failures <= max {
            return std::time::Duration::ZERO;
        }
        let doublings = (failures - max - 1).min(20);
        self.first_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay)
    }

    /// The address a request comes from (see the module docs): `peer`
    /// unless it is a trusted proxy.
    pub fn client_addr(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusted(peer) {
            return peer;
        }
        let hops = match self.header {
            ProxyHeader::XForwardedFor => x_forwarded_for(headers),
            ProxyHeader::Forwarded => forwarded_for(headers),
        };
        let mut nearest = peer;
        for hop in hops.into_iter().rev() {
            match hop.map(canonical) {
                // The proxy that appended it could not name the client
                // ("unknown", an obfuscated node): it is the best we know.
                None => return nearest,
                Some(ip) if self.trusted(ip) => nearest = ip,
                Some(ip) => return ip,
            }
        }
        nearest
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        self.proxies.iter().any(|n| n.contains(&ip))
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// One node of a forwarding header: an address, with or without a port,
/// IPv6 in brackets or not (RFC 7239 6); `None` when it is none of these.
fn node(s: &str) -> Option<IpAddr> {
    let s = s.trim().trim_matches('"');
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    s.strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .and_then(|r| r.parse().ok())
}

/// `X-Forwarded-For` entries, left to right over all its lines.
fn x_forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| {
            v.to_str()
                .map_or_else(|_| vec![None], |s| s.split(',').map(node).collect())
        })
        .collect()
}

/// The `for=` node of each `Forwarded` element (RFC 7239 4), left to right.
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all("forwarded")
        .iter()
        .flat_map(|v| {
            v.to_str().map_or_else(
                |_| vec![None],
                |s| {
                    s.split(',')
                        .map(|element| {
                            element.split(';').find_map(|pair| {
                                let (k, v) = pair.split_once('=')?;
                                k.trim().eq_ignore_ascii_case("for").then(|| node(v))?
                            })
                        })
                        .collect()
                },
            )
        })
        .collect()
}

/// How an address is counted: IPv4 whole, IPv6 by its /64.
pub fn addr_key(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let prefix = Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1));
            format!("{prefix}/64")
        }
    }
}

/// The failure-counter keys of a request: its source address and, when it
/// names one, the (address, client id) pair.
pub fn keys(addr: IpAddr, client_id: Option<&str>) -> Vec<String> {
    let mut out = vec![format!("addr:{}", addr_key(addr))];
    out.extend(client_id.and_then(|c| pair_key(addr, c)));
    out
}

/// The counter key of an (address, client id) pair; none for an id no
/// client can have.
pub fn pair_key(addr: IpAddr, client_id: &str) -> Option<String> {
    (!client_id.is_empty() && client_id.len() <= 256)
        .then(|| format!("pair:{}|{client_id}", addr_key(addr)))
}

/// Decrements the count of waiting answers when dropped.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Counts a failed authentication against `keys` in the database and,
/// when a key is over its threshold, holds the answer back (see the module
/// docs). A database error is logged: the failure answer goes out regardless.
pub async fn record_failure(state: &AppState, keys: Vec<String>) {
    state.metrics.auth_failed();
    let limiter = state.auth_failures.clone();
    let keys: Vec<String> = keys
        .into_iter()
        .filter(|k| limiter.max_for(k) > 0)
        .collect();
    if keys.is_empty() {
        return;
    }
    let (now, window) = (state.clock.now(), limiter.window());
    let k2 = keys.clone();
    let counts = match state
        .db(move |s| s.auth_failure_record(&k2, window, now))
        .await
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = ?e, "could not count a failed authentication");
            return;
        }
    };
    let wait = keys
        .iter()
        .zip(&counts)
        .map(|(k, (n, _))| limiter.delay(k, *n))
        .max()
        .unwrap_or_default();
    if wait.is_zero() {
        return;
    }
    if limiter.waiting.fetch_add(1, Ordering::SeqCst) >= MAX_WAITING {
        limiter.waiting.fetch_sub(1, Ordering::SeqCst);
        return;
    }
    let _slot = Waiting(&limiter.waiting);
    tokio::time::sleep(wait).await;
}

/// One aggregation window's identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct AuditKey {
    tenant: TenantId,
    principal: String,
    source: String,
    reason: String,
    addr: String,
}

#[derive(Debug)]
struct Open {
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    more: u64,
}

/// A tenant's windows opened in its current budget window, and what did
/// not fit.
#[derive(Debug)]
struct Budget {
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    opened: usize,
    overflow: u64,
}

impl Budget {
    fn new(now: DateTime<Utc>) -> Self {
        Self {
            since: now,
            until: now,
            opened: 0,
            overflow: 0,
        }
    }
}

#[derive(Debug, Default)]
struct Windows {
    open: HashMap<AuditKey, Open>,
    tenants: HashMap<TenantId, Budget>,
}

/// Aggregates the audit entries of failed authentications (see the module
/// docs).
#[derive(Debug, Default)]
struct FailureAudit(Mutex<Windows>);

fn entry(k: &AuditKey, at: DateTime<Utc>, detail: serde_json::Value) -> AuditDraft {
    AuditDraft {
        tenant: k.tenant.clone(),
        at,
        principal: k.principal.clone(),
        on_behalf_of: None,
        source: k.source.clone(),
        action: "auth.failed".into(),
        person: None,
        detail,
    }
}

fn summary(k: &AuditKey, o: &Open, now: DateTime<Utc>) -> Option<AuditDraft> {
    (o.more > 0).then(|| {
        entry(
            k,
            now,
            serde_json::json!({
                "reason": k.reason,
                "address": k.addr,
                "count": o.more,
                "since": o.since,
                "until": o.until,
            }),
        )
    })
}

fn overflow(tenant: &TenantId, b: &Budget, now: DateTime<Utc>) -> Option<AuditDraft> {
    (b.overflow > 0).then(|| AuditDraft {
        tenant: tenant.clone(),
        at: now,
        principal: "system:auth-limits".into(),
        on_behalf_of: None,
        source: "auth".into(),
        action: "auth.failed".into(),
        person: None,
        detail: serde_json::json!({
            "reason": "many_sources",
            "count": b.overflow,
            "since": b.since,
            "until": b.until,
        }),
    })
}

impl FailureAudit {
    /// The entries to append for one failure: the first of its window, or
    /// nothing while the window runs (plus summaries of windows it finds
    /// ended).
    fn note(&self, key: AuditKey, now: DateTime<Utc>, window: Duration) -> Vec<AuditDraft> {
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let w = &mut *guard;
        let mut out = Vec::new();
        if let Some(o) = w.open.get_mut(&key) {
            if now < o.since + window {
                o.more += 1;
                o.until = now;
                return out;
            }
            out.extend(summary(&key, o, now));
            w.open.remove(&key);
        }
        let b = w
            .tenants
            .entry(key.tenant.clone())
            .or_insert_with(|| Budget::new(now));
        if now >= b.since + window {
            out.extend(overflow(&key.tenant, b, now));
            *b = Budget::new(now);
        }
        if b.opened >= AUDIT_KEYS_PER_TENANT {
            b.overflow += 1;
            b.until = now;
            return out;
        }
        b.opened += 1;
        out.push(entry(
            &key,
            now,
            serde_json::json!({ "reason": key.reason, "address": key.addr }),
        ));
        w.open.insert(
            key,
            Open {
                since: now,
                until: now,
                more: 0,
            },
        );
        out
    }

    /// Summaries of the windows that have ended (all of them when `all`,
    /// at shutdown), which are then forgotten.
    fn due(&self, now: DateTime<Utc>, window: Duration, all: bool) -> Vec<AuditDraft> {
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let w = &mut *guard;
        let mut out = Vec::new();
        w.open.retain(|k, o| {
            if all || now >= o.since + window {
                out.extend(summary(k, o, now));
                false
            } else {
                true
            }
        });
        w.tenants.retain(|t, b| {
            if all || now >= b.since + window {
                out.extend(overflow(t, b, now));
                false
            } else {
                true
            }
        });
        out
    }
}

async fn append(state: &AppState, drafts: Vec<AuditDraft>) {
    for d in drafts {
        if let Err(e) = state.db(move |s| s.audit_append(d)).await {
            tracing::warn!(error = ?e, "could not audit a failed authentication");
        }
    }
}

/// Audits a failed authentication, aggregated (see the module docs). The
/// credential itself is never recorded.
pub async fn audit_failure(
    state: &AppState,
    tenant: TenantId,
    principal: String,
    source: &str,
    reason: &str,
    addr: IpAddr,
) {
    let key = AuditKey {
        tenant,
        principal,
        source: source.to_owned(),
        reason: reason.to_owned(),
        addr: addr_key(addr),
    };
    let limiter = &state.auth_failures;
    let drafts = limiter.audit.note(key, state.clock.now(), limiter.window());
    append(state, drafts).await;
}

/// Writes the summaries of aggregation windows that have ended (every
/// window when `all`: the instance is stopping).
pub async fn flush_audit(state: &AppState, all: bool) {
    let limiter = &state.auth_failures;
    let drafts = limiter.audit.due(state.clock.now(), limiter.window(), all);
    append(state, drafts).await;
}

/// Token-endpoint request rate per key, shared out between instances.
#[derive(Debug)]
pub struct RequestLimiter {
    /// Cluster-wide requests per second per key (0: no limit).
    per_second: u32,
    /// Live instances (at least 1), from the heartbeat table.
    instances: AtomicUsize,
    /// key -> (tokens left, when last refilled)
    buckets: Mutex<HashMap<String, (f64, DateTime<Utc>)>>,
}

impl RequestLimiter {
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second,
            instances: AtomicUsize::new(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn set_instances(&self, n: usize) {
        self.instances.store(n.max(1), Ordering::Relaxed);
    }

    /// This instance's share of the rate, per second.
    fn share(&self) -> f64 {
        f64::from(self.per_second) / self.instances.load(Ordering::Relaxed).max(1) as f64
    }

    /// Takes one request for each key, or `Err(seconds)` to wait.
    pub fn allow(&self, keys: &[String], now: DateTime<Utc>) -> Result<(), u64> {
        if self.per_second == 0 {
            return Ok(());
        }
        let rate = self.share();
        // A bucket holds one second's share, and at least one request.
        let cap = rate.max(1.0);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= SWEEP_AT {
            // A bucket untouched for a second is full again: forget it.
            buckets.retain(|_, (_, at)| now - *at < Duration::seconds(1));
        }
        let mut wait = 0.0f64;
        for k in keys {
            let (tokens, at) = buckets.entry(k.clone()).or_insert((cap, now));
            let elapsed = (now - *at).num_milliseconds().max(0) as f64 / 1000.0;
            *tokens = (*tokens + elapsed * rate).min(cap);
            *at = now;
            if *tokens < 1.0 {
                wait = wait.max((1.0 - *tokens) / rate);
            }
        }
        if wait > 0.0 {
            return Err(wait.ceil().max(1.0) as u64);
        }
        for k in keys {
            if let Some((tokens, _)) = buckets.get_mut(k) {
                *tokens -= 1.0;
            }
        }
        Ok(())
    }
}

/// Audits a refused credential of a known principal, aggregated by
/// [`crate::auth::ratelimit::audit_failure`] (whoever sent it may be anyone); the
/// credential itself is never recorded.
pub async fn audit_refusal(
    state: &AppState,
    principal: &muster_store::ClientRow,
    source: &str,
    why: &str,
    addr: std::net::IpAddr,
) {
    audit_failure(
        state,
        principal.tenant.clone(),
        principal.principal_name(),
        source,
        why,
        addr,
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn k(s: &str) -> Vec<String> {
        vec![s.to_owned()]
    }

    #[test]
    fn each_instance_enforces_its_share_of_the_request_rate() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let l = RequestLimiter::new(10);
        l.set_instances(2);
        for _ in 0..5 {
            assert!(l.allow(&k("client:a"), t0).is_ok());
        }
        assert_eq!(l.allow(&k("client:a"), t0), Err(1));
        assert!(l.allow(&k("client:b"), t0).is_ok(), "per key");
        // A fifth of a second refills one request at 5 per second.
        assert!(l
            .allow(&k("client:a"), t0 + Duration::milliseconds(200))
            .is_ok());
        assert!(RequestLimiter::new(0).allow(&k("x"), t0).is_ok());
    }
    fn limiter(env: &[(&str, &str)]) -> FailureLimiter {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        let c = crate::base::config::Config::load_from(None, env).unwrap();
        FailureLimiter::new(&c.limits).unwrap()
    }

    #[test]
    fn failures_over_the_threshold_wait_longer_each_time_up_to_the_cap() {
        let l = limiter(&[
            ("MUSTER_LIMITS__FAILED_AUTH_MAX", "3"),
            ("MUSTER_LIMITS__FAILED_AUTH_ADDRESS_MAX", "10"),
            ("MUSTER_LIMITS__FAILED_AUTH_DELAY_MS", "100"),
            ("MUSTER_LIMITS__FAILED_AUTH_MAX_DELAY_MS", "1000"),
        ]);
        let ms = |k: &str, n| l.delay(k, n).as_millis();
        assert_eq!(ms("pair:1.2.3.4|c", 3), 0, "within the threshold");
        assert_eq!(ms("pair:1.2.3.4|c", 4), 100);
        assert_eq!(ms("pair:1.2.3.4|c", 5), 200);
        assert_eq!(ms("pair:1.2.3.4|c", 7), 800);
        assert_eq!(ms("pair:1.2.3.4|c", 8), 1000, "capped");
        assert_eq!(ms("pair:1.2.3.4|c", u32::MAX), 1000);
        assert_eq!(ms("addr:1.2.3.4", 10), 0, "the address has its own");
        assert_eq!(ms("addr:1.2.3.4", 11), 100);
        let off = limiter(&[
            ("MUSTER_LIMITS__FAILED_AUTH_MAX", "0"),
            ("MUSTER_LIMITS__FAILED_AUTH_ADDRESS_MAX", "0"),
        ]);
        assert!(!off.enabled());
        assert!(off.delay("addr:x", 1000).is_zero());
    }

    #[test]
    fn ipv6_sources_count_by_their_64_prefix_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(addr_key(a), "2001:db8:1:2::/64");
        assert_eq!(addr_key(a), addr_key(b));
        assert_eq!(addr_key("::ffff:192.0.2.7".parse().unwrap()), "192.0.2.7");
        assert_eq!(
            keys("192.0.2.7".parse().unwrap(), Some("hr")),
            vec![
                "addr:192.0.2.7".to_string(),
                "pair:192.0.2.7|hr".to_string()
            ]
        );
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn forwarded_addresses_are_read_only_from_trusted_proxies_from_the_right() {
        let l = limiter(&[("MUSTER_LIMITS__TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1")]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let h = headers(&[("x-forwarded-for", "198.51.100.1, 203.0.113.9, 10.1.1.1")]);
        // An untrusted peer's header is ignored.
        assert_eq!(l.client_addr(ip("203.0.113.50"), &h), ip("203.0.113.50"));
        // From a trusted one: right to left past trusted hops; what the
        // client wrote further left is not believed.
        assert_eq!(l.client_addr(ip("10.0.0.2"), &h), ip("203.0.113.9"));
        assert_eq!(l.client_addr(ip("::ffff:192.0.2.1"), &h), ip("203.0.113.9"));
        // Several header lines are one list; ports and brackets are dropped.
        let h = headers(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("x-forwarded-for", "[2001:db8::5]:443, 10.0.0.9"),
        ]);
        assert_eq!(l.client_addr(ip("10.0.0.2"), &h), ip("2001:db8::5"));
        // An unreadable hop: the proxy that wrote it is the best we know.
        let h = headers(&[("x-forwarded-for", "unknown, 10.0.0.7")]);
        assert_eq!(l.client_addr(ip("10.0.0.2"), &h), ip("10.0.0.7"));
        // No header: the proxy itself.
        assert_eq!(
            l.client_addr(ip("10.0.0.2"), &HeaderMap::new()),
            ip("10.0.0.2")
        );
        // `Forwarded` is not read unless it is the configured header.
        let h = headers(&[("forwarded", "for=198.51.100.1")]);
        assert_eq!(l.client_addr(ip("10.0.0.2"), &h), ip("10.0.0.2"));

        let l = limiter(&[
            ("MUSTER_LIMITS__TRUSTED_PROXIES", "10.0.0.0/8"),
            ("MUSTER_LIMITS__TRUSTED_PROXY_HEADER", "forwarded"),
        ]);
        let h = headers(&[(
            "forwarded",
            "for=198.51.100.1, For=\"[2001:db8:cafe::17]:4711\";proto=https, for=10.2.2.2;by=10.0.0.1",
        )]);
        assert_eq!(l.client_addr(ip("10.0.0.2"), &h), ip("2001:db8:cafe::17"));
        let h = headers(&[("forwarded", "for=_hidden, for=10.3.3.3")]);
        assert_eq!(l.client_addr(ip("10.0.0.2"), &h), ip("10.3.3.3"));
        let h = headers(&[("x-forwarded-for", "198.51.100.1")]);
        assert_eq!(l.client_addr(ip("10.0.0.2"), &h), ip("10.0.0.2"));
    }

    #[test]
    fn a_trusted_proxy_entry_that_is_no_address_is_named_in_the_error() {
        let env = vec![(
            "MUSTER_LIMITS__TRUSTED_PROXIES".to_string(),
            "10.0.0.0/8,proxy.internal".to_string(),
        )];
        let e = crate::base::config::Config::load_from(None, env).unwrap_err();
        let text = format!("{e:#}");
        assert!(text.contains("'proxy.internal'"), "{text}");
    }

    #[test]
    fn repeated_failures_are_audited_once_and_summed_when_the_window_ends() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let w = Duration::seconds(60);
        let a = FailureAudit::default();
        let key = |addr: &str, reason: &str| AuditKey {
            tenant: TenantId::default_tenant(),
            principal: "anonymous".into(),
            source: "login-sync".into(),
            reason: reason.into(),
            addr: addr.into(),
        };
        assert_eq!(a.note(key("1.1.1.1", "malformed"), t0, w).len(), 1);
        for i in 1..=99 {
            let at = t0 + Duration::milliseconds(i * 10);
            assert!(a.note(key("1.1.1.1", "malformed"), at, w).is_empty());
        }
        // Another reason is another window.
        assert_eq!(a.note(key("1.1.1.1", "bad_signature"), t0, w).len(), 1);
        assert!(a.due(t0 + Duration::seconds(59), w, false).is_empty());
        let due = a.due(t0 + Duration::seconds(60), w, false);
        assert_eq!(due.len(), 1, "only the window with repeats has a summary");
        assert_eq!(due[0].detail["count"], 99);
        assert_eq!(due[0].detail["reason"], "malformed");
        assert_eq!(due[0].detail["address"], "1.1.1.1");
        assert!(a.due(t0 + Duration::seconds(120), w, false).is_empty());
    }

    #[test]
    fn many_addresses_cannot_grow_a_tenants_audit_beyond_its_budget() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let w = Duration::seconds(60);
        let a = FailureAudit::default();
        let mut written = 0;
        for i in 0..1000u32 {
            let k = AuditKey {
                tenant: TenantId::default_tenant(),
                principal: "anonymous".into(),
                source: "login-sync".into(),
                reason: "malformed".into(),
                addr: format!("addr-{i}"),
            };
            written += a.note(k, t0, w).len();
        }
        assert_eq!(written, AUDIT_KEYS_PER_TENANT);
        let due = a.due(t0 + w, w, false);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].detail["reason"], "many_sources");
        assert_eq!(due[0].detail["count"], 1000 - AUDIT_KEYS_PER_TENANT as u64);
    }
}
