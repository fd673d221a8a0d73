//! Where a subscription's events go: one delivery engine
//! ([`crate::jobs::delivery`]) hands each event to its subscription's
//! sink and records what came back. A sink is opened once a round (a
//! webhook's signing secrets, a NATS connection) and sends one event at a
//! time; the engine keeps the cursor, order, retries and log for all kinds.
pub(crate) mod nats;
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
    },
}

/// What every delivery task of an instance shares: a webhook HTTP client
/// and the open NATS connections.
pub(crate) struct Sinks {
    http: reqwest::Client,
    nats: nats::Connections,
}

/// A sink opened for one round of one subscription.
pub(crate) enum Open {
    /// A webhook's signing keys (the current and, during a rotation
    /// overlap, the previous secret).
    Webhook(Vec<Vec<u8>>),
    Nats(Box<nats::Publisher>),
    /// It cannot send this round: every event fails with this.
    Broken(String),
}

impl Sinks {
    pub(crate) fn new(http: reqwest::Client, timeout: Duration) -> Self {
        Self {
            http,
            nats: nats::Connections::new(timeout),
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
        }
    }

    /// Forgets what is kept open for subscriptions not in `live`.
    pub(crate) async fn retain(&self, live: &std::collections::HashSet<String>) {
        self.nats.retain(live).await;
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
            };
        };
        match self {
            Open::Webhook(keys) => webhook::send(&sinks.http, state, keys, sub, ev).await,
            Open::Nats(p) => p.publish(sub, ahead).await,
            Open::Broken(why) => Outcome::Failed {
                status: None,
                error: why.clone(),
                retry_after: None,
            },
        }
    }
}
