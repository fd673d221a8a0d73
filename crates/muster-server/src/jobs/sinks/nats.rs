//! The NATS JetStream sink (docs/events.md#nats-jetstream): each event is
//! published to `<prefix>.<tenant>.<event type>` with the event's id as
//! `Nats-Msg-Id`, and counts as delivered only once the stream has
//! acknowledged it. A redelivery after a crash carries the same id, so the
//! stream drops it as a duplicate within its duplicate window.
//!
//! Where the connection may go is the outbound destination rule's call
//! ([`crate::http::outbound`]): `tls://` always, plain `nats://` only
//! where private destinations are allowed, a host name resolved and
//! checked at every connection, and no server the cluster advertises
//! later (only the one named).
use super::Outcome;
use crate::base::sealed::secret_aad;
use crate::base::state::AppState;
use crate::http::outbound::{Protocol, Rule};
use muster_proto::{ChangeEventInfo, NatsCredentials};
use muster_store::SubscriptionRow;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

/// The subject prefix of a subscription that names none.
pub const DEFAULT_PREFIX: &str = "muster";

/// What a `nats` subscription keeps besides its URL (its `target`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatsTarget {
    pub subject_prefix: String,
}

impl NatsTarget {
    pub fn of(sub: &SubscriptionRow) -> NatsTarget {
        serde_json::from_value(sub.target.clone()).unwrap_or_else(|_| NatsTarget {
            subject_prefix: DEFAULT_PREFIX.into(),
        })
    }
}

/// A subject prefix is one or more tokens of letters, digits, `_` and
/// `-`, joined by dots: no wildcard, no empty token, at most 64 bytes.
pub fn check_prefix(prefix: &str) -> Result<(), &'static str> {
    let token_ok = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    if prefix.len() > 64 || !prefix.split('.').all(token_ok) {
        return Err("must be tokens of letters, digits, '_' and '-' joined by '.', at most 64 characters (no wildcards)");
    }
    Ok(())
}

/// The subject an event of `sub` goes to.
pub fn subject(prefix: &str, sub: &SubscriptionRow, ev: &ChangeEventInfo) -> String {
    format!("{prefix}.{}.{}", sub.tenant.as_str(), ev.kind)
}

/// Which credentials are set, checked: one way to log in at most.
pub fn check_credentials(c: &NatsCredentials) -> Result<(), &'static str> {
    let ways = [
        c.token.is_some(),
        c.user.is_some() || c.password.is_some(),
        c.creds.is_some(),
    ];
    if ways.iter().filter(|w| **w).count() > 1 {
        return Err("give one of token, user and password, or creds");
    }
    if c.user.is_some() != c.password.is_some() {
        return Err("user and password go together");
    }
    if let Some(creds) = &c.creds {
        // The client reads the file's text itself; what it cannot read is
        // refused here rather than at the first delivery.
        if async_nats::ConnectOptions::new()
            .credentials(creds)
            .is_err()
        {
            return Err("creds: not the text of a NATS .creds file");
        }
    }
    Ok(())
}

/// Open connections, one per subscription, with the fingerprint of the
/// URL and credentials it was opened with: a changed subscription gets a
/// new one.
pub(crate) struct Connections {
    open: tokio::sync::Mutex<HashMap<String, (Vec<u8>, async_nats::Client)>>,
    timeout: Duration,
}

/// A subscription's connection for one round.
pub(crate) struct Publisher {
    js: async_nats::jetstream::Context,
    prefix: String,
    /// Published, not yet acknowledged: (event id, its acknowledgement).
    in_flight: VecDeque<(String, async_nats::jetstream::context::PublishAckFuture)>,
}

impl Connections {
    pub(crate) fn new(timeout: Duration) -> Self {
        Self {
            open: Default::default(),
            timeout,
        }
    }

    pub(crate) async fn retain(&self, live: &HashSet<String>) {
        self.open.lock().await.retain(|id, _| live.contains(id));
    }

    pub(crate) async fn open(
        &self,
        state: &AppState,
        sub: &SubscriptionRow,
    ) -> Result<Publisher, String> {
        let prefix = NatsTarget::of(sub).subject_prefix;
        let print = super::fingerprint(sub);
        let kept = match self.open.lock().await.get(&sub.id) {
            Some((p, client))
                if *p == print
                    && client.connection_state() == async_nats::connection::State::Connected =>
            {
                Some(client.clone())
            }
            _ => None,
        };
        if let Some(client) = kept {
            return Ok(self.publisher(client, prefix));
        }
        // Connecting may take up to the timeout: not under the lock, which
        // every other NATS subscription's round takes too. (A subscription
        // is sent by one task at a time, so no two connect for it at once.)
        let client = self.connect(state, sub).await?;
        self.open
            .lock()
            .await
            .insert(sub.id.clone(), (print, client.clone()));
        Ok(self.publisher(client, prefix))
    }

    fn publisher(&self, client: async_nats::Client, prefix: String) -> Publisher {
        let mut js = async_nats::jetstream::new(client);
        js.set_timeout(self.timeout);
        Publisher {
            js,
            prefix,
            in_flight: VecDeque::new(),
        }
    }

    async fn connect(
        &self,
        state: &AppState,
        sub: &SubscriptionRow,
    ) -> Result<async_nats::Client, String> {
        let rule = Rule::webhooks(&state.config);
        let refused = |why: String| {
            tracing::warn!(subscription = %sub.id, reason = %why, "a NATS connection was refused by the outbound destination rule");
            format!("refused: {why}")
        };
        let url = url::Url::parse(&sub.url).map_err(|_| refused("the URL is not valid".into()))?;
        rule.check_url_as(&url, Protocol::Nats)
            .map_err(|e| refused(e.to_string()))?;
        let port = url.port().unwrap_or(4222);
        let tls = url.scheme() == "tls";
        // A plain connection goes to the address that was checked; a TLS
        // one by name, which its certificate must match.
        let address = match url.host() {
            Some(url::Host::Domain(name)) if !rule.allow_private => {
                let ips = rule
                    .resolve(name, port)
                    .await
                    .map_err(|e| refused(e.to_string()))?;
                if tls {
                    format!("tls://{name}:{port}")
                } else {
                    format!("nats://{}", std::net::SocketAddr::new(ips[0], port))
                }
            }
            _ => url.to_string(),
        };
        let creds = credentials(state, sub)?;
        let mut options = match (&creds.token, &creds.user, &creds.password, &creds.creds) {
            (Some(t), _, _, _) => async_nats::ConnectOptions::with_token(t.clone()),
            (_, Some(u), Some(p), _) => {
                async_nats::ConnectOptions::with_user_and_password(u.clone(), p.clone())
            }
            (_, _, _, Some(c)) => async_nats::ConnectOptions::new()
                .credentials(c)
                .map_err(|_| "the stored NATS credentials do not parse".to_owned())?,
            _ => async_nats::ConnectOptions::new(),
        };
        options = options
            .name("muster")
            .connection_timeout(self.timeout)
            .request_timeout(Some(self.timeout))
            .ignore_discovered_servers()
            .require_tls(tls);
        options.connect(address).await.map_err(|e| {
            use async_nats::ConnectErrorKind as K;
            match e.kind() {
                K::Authentication | K::AuthorizationViolation => {
                    "the NATS server refused the credentials".to_owned()
                }
                K::TimedOut => "connecting to the NATS server timed out".to_owned(),
                K::Tls => "the TLS handshake with the NATS server failed".to_owned(),
                _ => "cannot connect to the NATS server".to_owned(),
            }
        })
    }
}

/// The subscription's credentials, opened (none: anonymous).
fn credentials(state: &AppState, sub: &SubscriptionRow) -> Result<NatsCredentials, String> {
    let text = state
        .master_key
        .open_box(&secret_aad(&sub.id), &sub.secret_sealed)
        .map_err(|_| {
            tracing::error!(subscription = %sub.id, "sealed NATS credentials do not open");
            "the stored NATS credentials do not open".to_owned()
        })?;
    if text.is_empty() {
        return Ok(NatsCredentials::default());
    }
    serde_json::from_slice(&text).map_err(|_| "the stored NATS credentials do not parse".into())
}

/// The credentials as they are sealed (empty: none).
pub fn credentials_text(c: &Option<NatsCredentials>) -> String {
    match c {
        Some(c) if *c != NatsCredentials::default() => serde_json::to_string(c).unwrap_or_default(),
        _ => String::new(),
    }
}

/// Messages published before their turn, whose acknowledgements are
/// taken in order. Acknowledging one by one costs a round trip each; a
/// window ahead keeps the connection busy while it stays short enough
/// that what a round leaves unacknowledged is little to publish again.
const WINDOW: usize = 64;

impl Publisher {
    /// Publishes `ahead[0]` (and up to a window of what follows, once) and
    /// waits for `ahead[0]`'s acknowledgement.
    pub(crate) async fn publish(
        &mut self,
        sub: &SubscriptionRow,
        ahead: &[ChangeEventInfo],
    ) -> Outcome {
        let failed = |error: String| Outcome::Failed {
            status: None,
            error,
            retry_after: None,
            target: false,
        };
        let Some(ev) = ahead.first() else {
            return failed("nothing to send".into());
        };
        // In flight is always a run of `ahead` from its head; anything else
        // (after a failure) starts again.
        if self.in_flight.front().is_some_and(|(id, _)| *id != ev.id) {
            self.in_flight.clear();
        }
        let have = self.in_flight.len();
        for next in ahead.iter().skip(have).take(WINDOW.saturating_sub(have)) {
            match self.start(sub, next).await {
                Ok(ack) => self.in_flight.push_back((next.id.clone(), ack)),
                Err(why) if self.in_flight.is_empty() => return failed(why),
                // The ones in flight are answered first.
                Err(_) => break,
            }
        }
        let Some((_, ack)) = self.in_flight.pop_front() else {
            return failed("the publish failed".into());
        };
        use async_nats::jetstream::context::PublishErrorKind as K;
        match ack.await {
            Ok(_) => Outcome::Delivered(None),
            Err(e) => {
                self.in_flight.clear();
                failed(match e.kind() {
                    K::StreamNotFound => {
                        format!(
                            "no JetStream stream takes subject {}",
                            subject(&self.prefix, sub, ev)
                        )
                    }
                    K::TimedOut => "the stream did not acknowledge in time".into(),
                    K::BrokenPipe => "the connection to the NATS server broke".into(),
                    _ => "the NATS server refused the publish".into(),
                })
            }
        }
    }

    /// Publishes one event, not waiting for its acknowledgement.
    async fn start(
        &self,
        sub: &SubscriptionRow,
        ev: &ChangeEventInfo,
    ) -> Result<async_nats::jetstream::context::PublishAckFuture, String> {
        let body = serde_json::to_vec(ev).map_err(|_| "the event does not serialise".to_owned())?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, ev.id.as_str());
        headers.insert("Content-Type", "application/json");
        self.js
            .publish_with_headers(subject(&self.prefix, sub, ev), headers, body.into())
            .await
            .map_err(|_| "the connection to the NATS server failed".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_plain_subject_tokens() {
        for ok in ["muster", "hr.people", "a-b_c.d1"] {
            assert!(check_prefix(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a..b", "a.*", "a.>", "a b", ".a", "a.", &"x".repeat(65)] {
            assert!(check_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn one_way_to_log_in_at_most() {
        let c = |t: Option<&str>, u: Option<&str>, p: Option<&str>| NatsCredentials {
            token: t.map(Into::into),
            user: u.map(Into::into),
            password: p.map(Into::into),
            creds: None,
        };
        assert!(check_credentials(&c(Some("t"), None, None)).is_ok());
        assert!(check_credentials(&c(None, Some("u"), Some("p"))).is_ok());
        assert!(check_credentials(&c(Some("t"), Some("u"), Some("p"))).is_err());
        assert!(check_credentials(&c(None, Some("u"), None)).is_err());
        let creds = NatsCredentials {
            creds: Some("not a creds file".into()),
            ..Default::default()
        };
        assert!(check_credentials(&creds).is_err());
        assert!(!format!("{:?}", c(Some("tok-secret"), None, None)).contains("tok-secret"));
    }
}
