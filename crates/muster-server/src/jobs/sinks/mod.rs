//! Where a subscription's events go: one delivery engine
//! ([`crate::jobs::delivery`]) hands each event to its subscription's
//! sink and records what came back. A sink is opened once a round (a
//! webhook's signing secrets, a NATS connection, a SCIM target) and
//! sends one event at a time; the engine keeps the cursor, order,
//! retries, quarantine and log for all kinds.
pub(crate) mod nats;
pub(crate) mod scim;
pub(crate) mod webhook;

use crate::base::state::AppState;
use muster_proto::{ChangeEventInfo, SubscriptionKind};
use muster_store::SubscriptionRow;
use std::time::Duration;

/// What sending one event came to.
pub(crate) enum Outcome {
    /// Taken (a webhook's 2xx status).
    Delivered(Option<u16>),
    /// A webhook's receiver answered 410: the subscription is disabled.
    Gone,
    Failed {
        status: Option<u16>,
        error: String,
        retry_after: Option<Duration>,
        /// The destination as a whole fails (down, overloaded, refusing
        /// the credentials), not this one event: after the last retry a
        /// SCIM target is quarantined rather than the event dead-lettered.
        target: bool,
    },
}

/// A fingerprint of what a subscription's open sink was made for: its
/// URL, sealed secret and settings. When it changes, the sink opens anew.
pub(crate) fn fingerprint(sub: &SubscriptionRow) -> Vec<u8> {
    fingerprint_of(sub).to_vec()
}

/// [`fingerprint`] as text, as the progress keeps it.
pub(crate) fn fingerprint_text(sub: &SubscriptionRow) -> String {
    fingerprint_of(sub)[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn fingerprint_of(sub: &SubscriptionRow) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(sub.url.as_bytes());
    h.update([0]);
    h.update(&sub.secret_sealed);
    h.update([0]);
    h.update(sub.target.to_string().as_bytes());
    h.finalize().into()
}

/// What every delivery task of an instance shares: a webhook HTTP client
/// and the open NATS connections.
pub(crate) struct Sinks {
    http: reqwest::Client,
    nats: nats::Connections,
    scim: scim::Targets,
}

/// A sink opened for one round of one subscription.
pub(crate) enum Open {
    /// A webhook's signing keys (the current and, during a rotation
    /// overlap, the previous secret).
    Webhook(Vec<Vec<u8>>),
    Nats(Box<nats::Publisher>),
    Scim(Box<scim::Round>),
    /// It cannot send this round: every event fails with this.
    Broken(String),
}

impl Sinks {
    pub(crate) fn new(http: reqwest::Client, timeout: Duration) -> Self {
        Self {
            http,
            nats: nats::Connections::new(timeout),
            scim: Default::default(),
        }
    }

    pub(crate) async fn open(&self, state: &AppState, sub: &SubscriptionRow) -> Open {
        match sub.kind {
            SubscriptionKind::Webhook => {
                Open::Webhook(webhook::signing_keys(state, sub, state.clock.now()))
            }
            SubscriptionKind::Nats => match self.nats.open(state, sub).await {
                Ok(p) => Open::Nats(Box::new(p)),
                Err(why) => Open::Broken(why),
            },
            SubscriptionKind::Scim => match self.scim.open(&self.http, state, sub).await {
                Ok(r) => Open::Scim(Box::new(r)),
                Err(why) => Open::Broken(why),
            },
        }
    }

    /// Forgets what is kept open for subscriptions not in `live`.
    pub(crate) async fn retain(&self, live: &std::collections::HashSet<String>) {
        self.nats.retain(live).await;
        self.scim.retain(live).await;
    }
}

impl Open {
    /// Sends `ahead[0]`, the subscription's next event; the rest are the
    /// events after it in order, which a sink may send early (and send
    /// again, with the same ids, if the round ends first).
    pub(crate) async fn send(
        &mut self,
        sinks: &Sinks,
        state: &AppState,
        sub: &SubscriptionRow,
        ahead: &[ChangeEventInfo],
    ) -> Outcome {
        let Some(ev) = ahead.first() else {
            return Outcome::Failed {
                status: None,
                error: "nothing to send".into(),
                retry_after: None,
                target: false,
            };
        };
        match self {
            Open::Webhook(keys) => webhook::send(&sinks.http, state, keys, sub, ev).await,
            Open::Nats(p) => p.publish(sub, ahead).await,
            Open::Scim(r) => r.send(state, sub, ahead).await,
            Open::Broken(why) => Outcome::Failed {
                status: None,
                error: why.clone(),
                retry_after: None,
                target: sub.kind == SubscriptionKind::Scim,
            },
        }
    }

    /// Provisions the next of the people who were there before the
    /// subscription (see [`muster_store::SinkProgress::backfill`]):
    /// `Ok(Some(position))` while more remain, `Ok(None)` when done (or
    /// for a kind that has nothing to backfill).
    pub(crate) async fn backfill(
        &mut self,
        state: &AppState,
        sub: &SubscriptionRow,
        after: &str,
    ) -> Result<Option<String>, Outcome> {
        match self {
            Open::Scim(r) => r.backfill(state, sub, after).await.map_err(scim::failed),
            Open::Broken(why) => Err(Outcome::Failed {
                status: None,
                error: why.clone(),
                retry_after: None,
                target: true,
            }),
            _ => Ok(None),
        }
    }
}
