//! The delivery engine, one for every kind of subscription: it keeps
//! one cursor per subscription and hands that subscription's events to
//! its sink ([`crate::jobs::sinks`]: a webhook, a NATS stream) one at a
//! time in cursor order, so each person's changes arrive in order, with
//! data minimisation (`muster_webhook::minimise`). Each subscription with
//! work has a task of its own (up to `webhooks.concurrency`, shared fairly
//! between the tenants with work, see `plan`), so subscriptions do not
//! wait for each other and one tenant's dead receivers do not hold back
//! another tenant's, and a task works only while it holds the
//! subscription's lease, so of several instances one at a time sends a
//! subscription's events, and another takes over when the holder dies. A
//! failed event holds the subscription back and is retried on the
//! configured schedule (with jitter, never before a `Retry-After`); after
//! the last retry it is dead-lettered (logged as `dead`) and the cursor
//! moves on. A webhook's 410 disables the subscription. Progress is saved
//! after the attempts it records, so a crash can only repeat a delivery
//! (at least once), never skip one.
use crate::base::error::ApiError;
use crate::base::state::AppState;
use crate::jobs::sinks::{Outcome, Sinks};
use chrono::{DateTime, Utc};
use muster_core::TenantId;
use muster_proto::{AttributeChange, ChangeEventData, ChangeEventInfo};
use muster_store::{
    AuditDraft, ChangeEvent, DeliveryProgress, DeliveryRecord, DeliverySave, SubscriptionRow,
};
use muster_webhook::minimise;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Events read per subscription per round (progress commits once a round).
const PAGE: u32 = 500;

/// The wire form of an event. With `allowed` (a subscription's attribute
/// list), only those attributes are carried, and an event none of whose
/// changes is allowed gives `None`: it is not sent at all (see
/// [`muster_webhook::minimise`]).
pub fn event_info(ev: &ChangeEvent, allowed: Option<&[String]>) -> Option<ChangeEventInfo> {
    let changes = minimise(&ev.kind, &ev.detail, allowed)?
        .into_iter()
        .map(|c| AttributeChange {
            attribute: c.attribute,
            value: c.value,
        })
        .collect();
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

/// How a round for one subscription ended.
#[derive(Debug, PartialEq, Eq)]
enum Round {
    /// There may be more to send now: claim again and go on.
    More,
    /// Caught up, waiting for a retry, or disabled: hand the lease back.
    Done,
    /// Nothing to do after all (nothing was saved): hand the lease back.
    Idle,
    /// Another instance holds the subscription now: stop, release nothing.
    Lost,
}

/// What the delivery tasks of one instance share.
struct Deliverer {
    state: AppState,
    sinks: Sinks,
    schedule: Vec<Duration>,
    /// How long a claim or save holds the subscription.
    lease: chrono::Duration,
    /// A round saves its progress (renewing the lease) after this long.
    round_time: Duration,
}

impl Deliverer {
    fn owner(&self) -> String {
        self.state.instance.to_string()
    }

    /// Commits a round while this instance holds the lease; `false` when
    /// it does not any more.
    async fn save(&self, sub: &SubscriptionRow, save: DeliverySave) -> anyhow::Result<bool> {
        let (id, owner, lease, now) = (
            sub.id.clone(),
            self.owner(),
            self.lease,
            self.state.clock.now(),
        );
        let disabled = save.disable.is_some();
        for r in &save.records {
            self.state.metrics.delivery(&sub.id, &r.outcome);
        }
        let kept = self
            .state
            .db(move |s| s.subscription_save(&id, &owner, lease, &save, now))
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        if kept && disabled {
            audit_system(&self.state, sub, "subscription.disabled", Some(GONE)).await;
        }
        Ok(kept)
    }

    /// Commits a round and audits what it did to the subscription.
    async fn save_noting(
        &self,
        sub: &SubscriptionRow,
        save: DeliverySave,
        notes: Notes,
    ) -> anyhow::Result<bool> {
        let quarantined = save.progress.sink.quarantine.is_some();
        let kept = self.save(sub, save).await?;
        if kept {
            if sub.kind == muster_proto::SubscriptionKind::Scim {
                self.state.metrics.quarantined(&sub.id, quarantined);
            }
            if notes.recovered {
                tracing::info!(subscription = %sub.id, "a quarantined target answers again");
                audit_system(&self.state, sub, "subscription.recovered", None).await;
            }
            if let Some(why) = notes.quarantined {
                tracing::warn!(subscription = %sub.id, reason = %why, "a target that keeps failing is quarantined: it is tried hourly, then daily");
                audit_system(&self.state, sub, "subscription.quarantined", Some(&why)).await;
            }
        }
        Ok(kept)
    }

    /// Moves the progress on after a failed attempt (number `attempt` at
    /// `at`): a retry on the schedule; after the last one the event is
    /// dead, unless the target as a whole fails (a SCIM target's
    /// `target` failures), which quarantines it instead, and keeps it so
    /// while it goes on failing.
    #[allow(clippy::too_many_arguments)]
    fn after_failure(
        &self,
        sub: &SubscriptionRow,
        p: &mut DeliveryProgress,
        attempt: u32,
        at: DateTime<Utc>,
        error: &str,
        retry_after: Option<Duration>,
        target: bool,
        notes: &mut Notes,
    ) -> Fate {
        let later =
            |d: Duration| at + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::hours(10));
        p.sink.failed_for = Some(crate::jobs::sinks::fingerprint_text(sub));
        let quarantines = target && sub.kind == muster_proto::SubscriptionKind::Scim;
        if let Some(q) = p.sink.quarantine.as_mut() {
            if quarantines {
                q.tries += 1;
                q.reason = error.to_owned();
                p.next_attempt_at = Some(later(quarantine_delay(q.tries, retry_after)));
                return Fate::Quarantined;
            }
            // It answered (about this one event): it is up again.
            p.sink.quarantine = None;
            p.attempt = 0;
            notes.recovered = true;
            return self.after_failure(sub, p, 1, at, error, retry_after, target, notes);
        }
        if attempt as usize > self.schedule.len() {
            if quarantines {
                p.sink.quarantine = Some(muster_store::Quarantine {
                    since: at,
                    tries: 0,
                    reason: error.to_owned(),
                });
                p.attempt = attempt;
                p.next_attempt_at = Some(later(quarantine_delay(0, retry_after)));
                notes.quarantined = Some(error.to_owned());
                return Fate::Quarantined;
            }
            return Fate::Dead;
        }
        p.attempt = attempt;
        p.next_attempt_at = Some(later(retry_delay(
            &self.schedule,
            attempt as usize,
            retry_after,
        )));
        Fate::Retry
    }
}

/// A success after a quarantine lifts it.
fn succeeded(p: &mut DeliveryProgress, notes: &mut Notes) {
    if p.sink.quarantine.take().is_some() {
        notes.recovered = true;
    }
    p.sink.failed_for = None;
    p.attempt = 0;
    p.next_attempt_at = None;
}

/// Whether the next try is due: its time has come, or the destination
/// (URL, secret, settings) changed since it last failed, as when an
/// administrator fixes a target's credentials.
fn due(sub: &SubscriptionRow, now: DateTime<Utc>) -> bool {
    let p = &sub.progress;
    p.next_attempt_at.is_none_or(|t| t <= now)
        || p.sink
            .failed_for
            .as_ref()
            .is_some_and(|f| *f != crate::jobs::sinks::fingerprint_text(sub))
}

const GONE: &str = "the receiver answered 410 Gone";

/// Audits what delivery itself did to a subscription: disabled it (410),
/// quarantined its target, or saw the target recover.
async fn audit_system(state: &AppState, sub: &SubscriptionRow, action: &str, reason: Option<&str>) {
    let d = AuditDraft {
        tenant: sub.tenant.clone(),
        at: state.clock.now(),
        principal: "system:webhooks".into(),
        on_behalf_of: None,
        source: "webhooks".into(),
        action: action.into(),
        person: None,
        detail: serde_json::json!({
            "subscription": sub.id,
            "reason": reason,
        }),
    };
    if let Err(e) = state.db(move |s| s.audit_append(d)).await {
        tracing::error!(subscription = %sub.id, error = ?e, action, "cannot audit a subscription's change");
    }
}

/// How long a quarantined target waits for its next try: hourly for the
/// first tries, then daily (as identity providers back off from a
/// failing application), never sooner than its `Retry-After`.
fn quarantine_delay(tries: u32, retry_after: Option<Duration>) -> Duration {
    let base = if tries < QUARANTINE_HOURLY_TRIES {
        Duration::from_secs(3600)
    } else {
        Duration::from_secs(24 * 3600)
    };
    base.max(retry_after.unwrap_or_default())
}

/// Hourly tries of a quarantined target before they become daily.
const QUARANTINE_HOURLY_TRIES: u32 = 6;

/// What a failed attempt comes to.
#[derive(Debug, PartialEq, Eq)]
enum Fate {
    /// Tried again at `next_attempt_at`.
    Retry,
    /// No retry left: the event is dead-lettered and the cursor moves on.
    Dead,
    /// The target is put aside (or stays so): nothing is lost, it is
    /// tried again rarely until a request succeeds.
    Quarantined,
}

/// What a round did to the subscription that is audited once it saves.
#[derive(Default)]
struct Notes {
    quarantined: Option<String>,
    recovered: bool,
}

/// One round for one subscription, under its lease: a manual redelivery
/// range first, else the events after its cursor, one at a time, until one
/// fails, the page ends, the round has run for `round_time`, or the
/// dispatcher asks for the slot back (`yield_now`, between attempts).
/// A subscription a client owns carries no more than that client's read
/// policy allows now, however the policy changed since it was made
/// (docs/events.md#nodes-that-manage-their-own-subscription).
/// Narrows a subscription a node manages to what its owner may read now.
/// While the owner is disabled or gone, nothing is sent and the cursor
/// stays put (`None`), so a re-enabled node misses nothing.
async fn bounded_by_owner(
    state: &AppState,
    mut sub: SubscriptionRow,
) -> anyhow::Result<Option<SubscriptionRow>> {
    let Some(owner) = sub.owner.clone() else {
        return Ok(Some(sub));
    };
    let client = state
        .db(move |s| match s.client_get(&owner) {
            Ok(c) => Ok(Some(c)),
            Err(muster_store::StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let Some(client) = client else {
        return Ok(None);
    };
    if client.disabled || client.tenant != sub.tenant {
        return Ok(None);
    }
    sub.attributes = client.read_policy.narrow(&sub.attributes);
    sub.events.retain(|e| client.read_policy.may_see(e));
    Ok(Some(sub))
}

async fn deliver_round(
    d: &Deliverer,
    sub: SubscriptionRow,
    yield_now: &AtomicBool,
) -> anyhow::Result<Round> {
    let state = &d.state;
    let Some(sub) = bounded_by_owner(state, sub).await? else {
        return Ok(Round::Idle);
    };
    let now = state.clock.now();
    let started = tokio::time::Instant::now();
    let mut p: DeliveryProgress = sub.progress.clone();
    let mut save = DeliverySave {
        redeliver_seen: p.redeliver,
        ..Default::default()
    };
    // The sink opens once a round (secrets, a connection), not once an
    // event.
    let mut sink = d.sinks.open(state, &sub).await;

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
            let info = [info];
            let mut r = record(&sub, ev, 1, state.clock.now(), true);
            match sink.send(&d.sinks, state, &sub, &info).await {
                Outcome::Delivered(st) => {
                    r.status = st;
                    r.outcome = "delivered".into();
                }
                Outcome::Gone => {
                    r.status = Some(410);
                    r.outcome = "gone".into();
                    save.disable = Some(GONE.into());
                    save.records.push(r);
                    break;
                }
                Outcome::Failed { status, error, .. } => {
                    r.status = status;
                    r.outcome = "failed".into();
                    r.error = Some(error);
                }
            }
            save.records.push(r);
            if started.elapsed() >= d.round_time || yield_now.load(Ordering::SeqCst) {
                break;
            }
        }
        // Moves the range on past what was sent, or ends it.
        p.redeliver = (!events.is_empty() && next <= to).then_some((next, to));
        let gone = save.disable.is_some();
        save.progress = p;
        return Ok(match d.save(&sub, save).await? {
            false => Round::Lost,
            true if gone => Round::Done,
            true => Round::More,
        });
    }

    if !due(&sub, now) {
        return Ok(Round::Idle);
    }
    let mut notes = Notes::default();
    // The people who were there before the subscription come first.
    if let Some(after) = p.sink.backfill.clone() {
        let at = state.clock.now();
        match sink.backfill(state, &sub, &after).await {
            Ok(position) => {
                p.sink.backfill = position;
                p.sink.backfill_error = None;
                succeeded(&mut p, &mut notes);
            }
            Err(Outcome::Failed {
                error,
                retry_after,
                target,
                ..
            }) => {
                let attempt = p.attempt + 1;
                if d.after_failure(
                    &sub,
                    &mut p,
                    attempt,
                    at,
                    &error,
                    retry_after,
                    target,
                    &mut notes,
                ) == Fate::Dead
                {
                    // Nothing is dead-lettered here: the backfill waits
                    // for its last retry's delay again.
                    p.next_attempt_at = Some(
                        at + chrono::Duration::from_std(retry_delay(
                            &d.schedule,
                            d.schedule.len().max(1),
                            retry_after,
                        ))
                        .unwrap_or(chrono::Duration::hours(1)),
                    );
                }
                tracing::warn!(subscription = %sub.id, error = %error, "provisioning the people already there failed; it is tried again");
                p.sink.backfill_error = Some(error);
            }
            Err(_) => {}
        }
        let waiting = p.next_attempt_at.is_some();
        save.progress = p;
        return Ok(match d.save_noting(&sub, save, notes).await? {
            false => Round::Lost,
            true if waiting => Round::Done,
            true => Round::More,
        });
    }
    let tenant = sub.tenant.clone();
    let after = p.cursor;
    let events = state
        .db(move |s| s.changes_list(&tenant, after, PAGE))
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    if events.is_empty() {
        return Ok(Round::Idle);
    }
    let mut next = if events.len() == PAGE as usize {
        Round::More
    } else {
        Round::Done
    };
    // What the subscription gets of the page, in order: a sink may send
    // some of what is ahead before the current event is answered (NATS
    // publishes a window ahead and takes the acknowledgements in order).
    let (wanted, payloads): (Vec<usize>, Vec<ChangeEventInfo>) = events
        .iter()
        .enumerate()
        .filter_map(|(i, ev)| payload_for(&sub, ev).map(|info| (i, info)))
        .unzip();
    let mut w = 0;
    for (i, ev) in events.iter().enumerate() {
        if wanted.get(w) != Some(&i) {
            p.cursor = ev.cursor;
            continue;
        }
        let ahead = &payloads[w..];
        w += 1;
        let attempt = p.attempt + 1;
        let at = state.clock.now();
        let mut r = record(&sub, ev, attempt, at, false);
        match sink.send(&d.sinks, state, &sub, ahead).await {
            Outcome::Delivered(st) => {
                r.status = st;
                r.outcome = "delivered".into();
                state
                    .metrics
                    .delivered(&sub.id, &ev.created_at, state.clock.now());
                p.cursor = ev.cursor;
                succeeded(&mut p, &mut notes);
                save.records.push(r);
            }
            Outcome::Gone => {
                r.status = Some(410);
                r.outcome = "gone".into();
                save.records.push(r);
                save.disable = Some(GONE.into());
                tracing::warn!(subscription = %sub.id, "a receiver answered 410: subscription disabled");
                next = Round::Done;
                break;
            }
            Outcome::Failed {
                status,
                error,
                retry_after,
                target,
            } => {
                r.status = status;
                let fate = d.after_failure(
                    &sub,
                    &mut p,
                    attempt,
                    at,
                    &error,
                    retry_after,
                    target,
                    &mut notes,
                );
                r.error = Some(error);
                match fate {
                    Fate::Dead => {
                        r.outcome = "dead".into();
                        tracing::warn!(subscription = %sub.id, cursor = ev.cursor, "an event was dead-lettered after its last attempt");
                        p.cursor = ev.cursor;
                        p.attempt = 0;
                        p.next_attempt_at = None;
                        save.records.push(r);
                        continue;
                    }
                    Fate::Retry => r.outcome = "failed".into(),
                    Fate::Quarantined => r.outcome = "quarantined".into(),
                }
                save.records.push(r);
                next = Round::Done;
                break;
            }
        }
        if started.elapsed() >= d.round_time || yield_now.load(Ordering::SeqCst) {
            next = Round::More;
            break;
        }
    }
    save.progress = p;
    Ok(match d.save_noting(&sub, save, notes).await? {
        false => Round::Lost,
        true => next,
    })
}

/// Rounds one task runs for a subscription before it hands its slot (and
/// lease) back, so that a long backlog does not starve other
/// subscriptions when there are more of them than slots.
const ROUNDS_PER_TURN: usize = 20;

/// Delivers one subscription for a turn: claims its lease, then runs
/// rounds (each save renews the lease; each round reads the subscription
/// afresh, so an admin's changes apply from the next page on), and hands
/// the lease back at the end unless another instance took it. The turn
/// ends early when the dispatcher sets `yield_now` (its tenant holds more
/// than its share of the slots while another tenant waits): after the
/// attempt in flight, whose progress is saved as usual. Returns the id and
/// whether it was delivered at all (if not, it is held elsewhere or
/// failed, and is left alone for a poll interval).
async fn drive(d: Arc<Deliverer>, id: String, yield_now: Arc<AtomicBool>) -> (String, bool) {
    let owner = d.owner();
    let (i, o, lease, now) = (id.clone(), owner.clone(), d.lease, d.state.clock.now());
    let mut sub = match d
        .state
        .db(move |s| s.subscription_claim(&i, &o, lease, now))
        .await
    {
        Ok(Some(sub)) => sub,
        // Held by another instance, disabled or deleted.
        Ok(None) => return (id, false),
        Err(e) => {
            tracing::error!(subscription = %id, error = ?e, "cannot claim a subscription");
            return (id, false);
        }
    };
    let tenant = sub.tenant.clone();
    for round in 0..ROUNDS_PER_TURN {
        if round > 0 {
            // Held since the claim (the last save renewed it): a read will do.
            let (t, i) = (tenant.clone(), id.clone());
            sub = match d.state.db(move |s| s.subscription_get(&t, &i)).await {
                Ok(sub) if sub.state == muster_store::SubscriptionState::Active => sub,
                // Disabled or deleted under our hold.
                Ok(_) | Err(ApiError::NotFound(_)) => break,
                Err(e) => {
                    tracing::error!(subscription = %id, error = ?e, "cannot read a subscription");
                    break;
                }
            };
        }
        match deliver_round(&d, sub.clone(), &yield_now).await {
            Ok(Round::More) if yield_now.load(Ordering::SeqCst) => break,
            Ok(Round::More) => continue,
            Ok(Round::Done) => break,
            Ok(Round::Idle) => {
                release(&d, &id, &owner).await;
                return (id, round > 0);
            }
            Ok(Round::Lost) => {
                tracing::warn!(subscription = %id, "lost a subscription's delivery lease; another instance carries on");
                return (id, false);
            }
            Err(e) => {
                tracing::error!(subscription = %id, error = %e, "a delivery round failed");
                release(&d, &id, &owner).await;
                return (id, false);
            }
        }
    }
    release(&d, &id, &owner).await;
    (id, true)
}

async fn release(d: &Deliverer, id: &str, owner: &str) {
    let (i, o) = (id.to_owned(), owner.to_owned());
    if let Err(e) = d.state.db(move |s| s.subscription_release(&i, &o)).await {
        tracing::error!(subscription = %id, error = ?e, "cannot release a subscription's lease");
    }
}

/// Whether a subscription has something to send now, given its tenant's
/// newest event cursor.
fn has_work(sub: &SubscriptionRow, head: i64, now: DateTime<Utc>) -> bool {
    let p = &sub.progress;
    p.redeliver.is_some() || ((p.cursor < head || p.sink.backfill.is_some()) && due(sub, now))
}

/// A delivery task in flight: its subscription's tenant, and the flag that
/// asks it to hand its slot back after the attempt it is making.
struct InFlight {
    tenant: TenantId,
    yield_now: Arc<AtomicBool>,
}

/// What the dispatcher does now: the subscriptions to start (with their
/// tenants), and how many more tasks of each tenant to ask to yield.
#[derive(Debug, Default, PartialEq, Eq)]
struct Plan {
    start: Vec<(TenantId, String)>,
    yields: Vec<(TenantId, usize)>,
}

/// Shares `limit` slots between the tenants with work (those with a task
/// in flight or a subscription waiting). Each may hold its fair share,
/// `limit` divided by their number (at least one): free slots go first to
/// tenants under their share, one at a time round the tenants, then to
/// whoever still waits, so no slot stays idle while there is work. When a
/// tenant under its share still waits (every slot is taken), tenants over
/// their share are asked to give back the excess, each slot after the
/// attempt in flight, which takes at most `request_timeout_seconds`.
///
/// `held` counts each tenant's tasks in flight and those of them already
/// asked to yield; `waiting` lists each tenant's subscriptions with work
/// and no task. `turn` rotates where the round starts, among tenants and
/// among each tenant's subscriptions, so that each gets its turn.
fn plan(
    limit: usize,
    held: &BTreeMap<TenantId, (usize, usize)>,
    waiting: &BTreeMap<TenantId, Vec<String>>,
    turn: usize,
) -> Plan {
    let tenants: BTreeSet<&TenantId> = held
        .iter()
        .filter(|(_, (n, _))| *n > 0)
        .map(|(t, _)| t)
        .chain(
            waiting
                .iter()
                .filter(|(_, w)| !w.is_empty())
                .map(|(t, _)| t),
        )
        .collect();
    if tenants.is_empty() {
        return Plan::default();
    }
    let share = (limit / tenants.len()).max(1);
    let mut holds: BTreeMap<&TenantId, usize> = held.iter().map(|(t, (n, _))| (t, *n)).collect();
    let mut free = limit.saturating_sub(holds.values().sum());
    // Each tenant's queue, rotated by the turn.
    let mut queues: Vec<(&TenantId, std::collections::VecDeque<&String>)> = waiting
        .iter()
        .filter(|(_, w)| !w.is_empty())
        .map(|(t, w)| {
            let mut q: std::collections::VecDeque<&String> = w.iter().collect();
            q.rotate_left(turn % w.len());
            (t, q)
        })
        .collect();
    if !queues.is_empty() {
        let k = turn % queues.len();
        queues.rotate_left(k);
    }
    let mut plan = Plan::default();
    for within_share in [true, false] {
        loop {
            let mut started = false;
            for (t, q) in queues.iter_mut() {
                let h = holds.entry(*t).or_insert(0);
                if free == 0 || (within_share && *h >= share) {
                    continue;
                }
                if let Some(id) = q.pop_front() {
                    plan.start.push((TenantId::clone(t), id.clone()));
                    *h += 1;
                    free -= 1;
                    started = true;
                }
            }
            if !started || free == 0 {
                break;
            }
        }
    }
    // Slots owed to tenants that still wait below their share, less those
    // that tasks already asked to yield will free.
    let owed: usize = queues
        .iter()
        .map(|(t, q)| {
            let h = holds.get(*t).copied().unwrap_or(0);
            q.len().min(share.saturating_sub(h))
        })
        .sum();
    let mut owed = owed.saturating_sub(held.values().map(|(_, leaving)| leaving).sum());
    for (t, (_, leaving)) in held {
        if owed == 0 {
            break;
        }
        let n = holds.get(t).copied().unwrap_or(0);
        let excess = n.saturating_sub(*leaving).saturating_sub(share).min(owed);
        if excess > 0 {
            plan.yields.push((t.clone(), excess));
            owed -= excess;
        }
    }
    plan
}

/// The HTTP client deliveries go out with (webhooks, SCIM targets and
/// their token endpoints): the configured timeout, and the outbound
/// destination rule at every connection. No redirects: a receiver has no
/// reason to send a signed POST on to somewhere else, and a 3xx is
/// recorded as the answer.
pub(crate) fn http_client(state: &AppState) -> Result<reqwest::Client, String> {
    let cfg = &state.config.webhooks;
    let builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(cfg.request_timeout_seconds))
        .user_agent("Muster-Webhooks/1")
        // Keep-alive: a warm connection per subscription in flight.
        .pool_max_idle_per_host(cfg.concurrency.max(1))
        .tcp_nodelay(true);
    crate::http::outbound::Rule::webhooks(&state.config)
        .client(builder, crate::http::outbound::Redirects::None)
        .map_err(|_| "no HTTP client for outbound requests".to_owned())
}

/// The delivery worker: runs until `stop` (or until its task is aborted,
/// which aborts the deliveries in flight), woken by committed changes,
/// by a finished delivery task, or every `webhooks.poll_interval_ms` (for
/// due retries and other instances' changes).
///
/// Each subscription with work gets a task of its own, up to
/// `webhooks.concurrency` at once, so a slow or dead receiver holds back
/// only its own subscription; the tenants share those slots fairly
/// (`plan`), so one tenant's dead receivers cannot take them all from
/// another tenant for longer than one request timeout. A task delivers
/// under the subscription's lease (`Store::subscription_claim`), so of
/// several instances on one database only one sends a given
/// subscription's events at a time.
pub async fn run(state: AppState, stop: Arc<AtomicBool>) {
    let cfg = state.config.webhooks.clone();
    let schedule = match cfg.schedule() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "webhook delivery is off: the retry schedule is invalid");
            return;
        }
    };
    let limit = cfg.concurrency.max(1);
    let http = match http_client(&state) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhook delivery is off: no HTTP client");
            return;
        }
    };
    let lease_secs = cfg.lease_seconds.max(3);
    let d = Arc::new(Deliverer {
        state: state.clone(),
        sinks: Sinks::new(http, Duration::from_secs(cfg.request_timeout_seconds)),
        schedule,
        lease: chrono::Duration::seconds(i64::try_from(lease_secs).unwrap_or(60)),
        round_time: Duration::from_secs(lease_secs) / 3,
    });
    let poll = Duration::from_millis(cfg.poll_interval_ms.max(10));
    let mut tasks: tokio::task::JoinSet<(String, bool)> = tokio::task::JoinSet::new();
    let mut flights: HashMap<String, InFlight> = HashMap::new();
    // Subscriptions left alone until then: held by another instance (or
    // failing), so that looking again does not become a busy loop.
    let mut resting: HashMap<String, tokio::time::Instant> = HashMap::new();
    let mut turn = 0usize;
    let finished = |done: Result<(String, bool), tokio::task::JoinError>,
                    flights: &mut HashMap<String, InFlight>,
                    resting: &mut HashMap<String, tokio::time::Instant>| {
        if let Ok((id, worked)) = done {
            flights.remove(&id);
            if !worked {
                resting.insert(id, tokio::time::Instant::now() + poll);
            }
        }
    };
    while !stop.load(Ordering::SeqCst) {
        let woken = state.changes_committed.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        while let Some(done) = tasks.try_join_next() {
            finished(done, &mut flights, &mut resting);
        }
        let now = tokio::time::Instant::now();
        resting.retain(|_, until| *until > now);
        // Listed even when every slot is taken: a tenant waiting below its
        // share makes the tenants over theirs give slots back.
        match dispatch_list(&d).await {
            Ok(candidates) if !candidates.is_empty() => {
                let mut waiting: BTreeMap<TenantId, Vec<String>> = BTreeMap::new();
                for (tenant, id) in candidates {
                    if !resting.contains_key(&id) && !flights.contains_key(&id) {
                        waiting.entry(tenant).or_default().push(id);
                    }
                }
                let mut held: BTreeMap<TenantId, (usize, usize)> = BTreeMap::new();
                for f in flights.values() {
                    let h = held.entry(f.tenant.clone()).or_default();
                    h.0 += 1;
                    h.1 += usize::from(f.yield_now.load(Ordering::SeqCst));
                }
                turn = turn.wrapping_add(1);
                let p = plan(limit, &held, &waiting, turn);
                for (tenant, id) in p.start {
                    let yield_now = Arc::new(AtomicBool::new(false));
                    tasks.spawn(drive(d.clone(), id.clone(), yield_now.clone()));
                    flights.insert(id, InFlight { tenant, yield_now });
                }
                for (tenant, n) in p.yields {
                    flights
                        .values()
                        .filter(|f| f.tenant == tenant && !f.yield_now.load(Ordering::SeqCst))
                        .take(n)
                        .for_each(|f| f.yield_now.store(true, Ordering::SeqCst));
                }
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = ?e, "cannot list subscriptions"),
        }
        tokio::select! {
            _ = &mut woken => {}
            _ = tokio::time::sleep(poll) => {}
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                finished(done, &mut flights, &mut resting);
            }
        }
    }
}

/// The active subscriptions with something to send now, with their
/// tenants. What the sinks keep open for any other is let go.
async fn dispatch_list(d: &Deliverer) -> Result<Vec<(TenantId, String)>, ApiError> {
    let state = &d.state;
    let subs = state.db(|s| s.subscription_active()).await?;
    d.sinks
        .retain(&subs.iter().map(|s| s.id.clone()).collect())
        .await;
    if subs.is_empty() {
        return Ok(Vec::new());
    }
    let tenants: BTreeSet<TenantId> = subs.iter().map(|s| s.tenant.clone()).collect();
    let heads = state
        .db(move |s| {
            tenants
                .into_iter()
                .map(|t| s.changes_head(&t).map(|h| (t, h)))
                .collect::<Result<HashMap<_, _>, _>>()
        })
        .await?;
    let now = state.clock.now();
    Ok(subs
        .into_iter()
        .filter(|s| has_work(s, heads.get(&s.tenant).copied().unwrap_or(0), now))
        .map(|s| (s.tenant, s.id))
        .collect())
}

/// Hands back every lease this instance holds (a clean shutdown), so
/// another instance need not wait for them to run out.
pub async fn release_all(state: &AppState) {
    let owner = state.instance.to_string();
    let released = state
        .db(move |s| {
            for sub in s.subscription_active()? {
                s.subscription_release(&sub.id, &owner)?;
            }
            Ok(())
        })
        .await;
    if let Err(e) = released {
        tracing::warn!(error = ?e, "could not hand back the subscription leases");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn retry_delays_follow_the_schedule_with_jitter_and_retry_after() {
        let s = [Duration::from_secs(5), Duration::from_secs(300)];
        let d = retry_delay(&s, 2, None);
        assert!(d >= Duration::from_secs(270) && d <= Duration::from_secs(330));
        let d = retry_delay(&s, 1, Some(Duration::from_secs(60)));
        assert_eq!(d, Duration::from_secs(60));
    }

    fn tenant(name: &str) -> TenantId {
        TenantId::parse(name).unwrap()
    }

    fn subs(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i}")).collect()
    }

    fn started(p: &Plan, t: &str) -> usize {
        p.start.iter().filter(|(x, _)| x.as_str() == t).count()
    }

    #[test]
    fn free_slots_go_to_each_tenant_up_to_its_share_before_anyone_gets_more() {
        let waiting = BTreeMap::from([(tenant("a"), subs("a", 10)), (tenant("b"), subs("b", 1))]);
        let p = plan(4, &BTreeMap::new(), &waiting, 0);
        // Share 2 each; b needs one, and its unused slot goes to a.
        assert_eq!((started(&p, "a"), started(&p, "b")), (3, 1));
        assert!(p.yields.is_empty());
    }

    #[test]
    fn a_tenant_holding_every_slot_is_asked_to_give_back_its_excess_to_a_waiting_one() {
        let held = BTreeMap::from([(tenant("a"), (4, 0))]);
        let waiting = BTreeMap::from([
            (tenant("a"), subs("a", 30)),
            (tenant("b"), subs("b", 1)),
            (tenant("c"), subs("c", 5)),
        ]);
        let p = plan(4, &held, &waiting, 0);
        assert!(p.start.is_empty(), "no slot is free");
        // Share 1 each (4 slots, 3 tenants): b and c are owed one each.
        assert_eq!(p.yields, vec![(tenant("a"), 2)]);
        // Those already asked are not asked again.
        let held = BTreeMap::from([(tenant("a"), (4, 2))]);
        assert!(plan(4, &held, &waiting, 0).yields.is_empty());
        // A slot freed goes to a tenant below its share, not back to a.
        let held = BTreeMap::from([(tenant("a"), (3, 1))]);
        let p = plan(4, &held, &waiting, 7);
        assert_eq!((started(&p, "a"), p.start.len()), (0, 1));
    }

    #[test]
    fn one_tenant_alone_may_use_every_slot_and_each_of_its_subscriptions_gets_a_turn() {
        let waiting = BTreeMap::from([(tenant("a"), subs("a", 5))]);
        let first = plan(2, &BTreeMap::new(), &waiting, 0);
        assert_eq!(first.start.len(), 2);
        let next = plan(2, &BTreeMap::new(), &waiting, 2);
        assert_ne!(first.start, next.start);
        assert!(
            plan(2, &BTreeMap::from([(tenant("a"), (2, 0))]), &waiting, 0)
                .start
                .is_empty()
        );
    }
}
