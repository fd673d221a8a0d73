//! The SCIM sink (docs/provisioning.md): each person an event names is
//! brought to what they should be on the target (a SCIM 2.0 service
//! provider), from their state now, not from the event: the User is
//! looked up by the match attribute before one is created (and linked if
//! found, also on a 409), changed with PATCH of only what differs from
//! what was last sent (or PUT, per target), deactivated with
//! `active: false` (or deleted, per target) when the person leaves or
//! falls out of scope, and put into a Group per role, created on demand.
//! What was last sent is kept per person ([`muster_store::TargetLink`]),
//! so an event whose changes are already there costs no request.
//!
//! Events of different people are sent concurrently (up to the target's
//! `concurrency`, and never faster than its `rate_per_second`); a
//! person's own events stay in order, and the later events of a person
//! in the same window are satisfied by the one sync.
pub(crate) mod client;
pub(crate) mod map;
pub(crate) mod reconcile;

use super::Outcome;
use crate::base::state::AppState;
use client::{Fail, Shared, Target};
use map::{eq_filter, Desired, Plan};
use muster_core::ExternalId;
use muster_proto::{
    ChangeEventInfo, ScimDeprovision, ScimMatch, ScimOnMissing, ScimTarget, ScimUpdate,
};
use muster_store::{LinkKind, PersonRow, SubscriptionRow, TargetLink};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// Events looked at ahead for people to sync at the same time.
const WINDOW: usize = 64;

/// Managers provisioned ahead of their reports, at most this many
/// levels up at once.
const MANAGER_DEPTH: usize = 8;

/// People provisioned per backfill step.
const BACKFILL_PAGE: u32 = 50;

/// A target's settings as stored (the defaults where it has none); an
/// error rather than defaults when they do not parse (a newer build's),
/// so that a target is never sent to with settings it was not given.
pub(crate) fn settings(sub: &SubscriptionRow) -> Result<ScimTarget, String> {
    serde_json::from_value(sub.target.clone())
        .map_err(|_| "the stored SCIM settings do not parse".to_owned())
}

/// What the rounds of each subscription share (see [`Shared`]), made
/// again when its settings change.
#[derive(Default)]
pub(crate) struct Targets {
    open: tokio::sync::Mutex<HashMap<String, Arc<Shared>>>,
}

impl Targets {
    pub(crate) async fn retain(&self, live: &HashSet<String>) {
        self.open.lock().await.retain(|id, _| live.contains(id));
    }

    pub(crate) async fn open(
        &self,
        http: &reqwest::Client,
        state: &AppState,
        sub: &SubscriptionRow,
    ) -> Result<Round, String> {
        let cfg = settings(sub)?;
        let print = super::fingerprint(sub);
        let shared = {
            let mut open = self.open.lock().await;
            match open.get(&sub.id) {
                Some(s) if s.print == print => s.clone(),
                _ => {
                    let s = Arc::new(Shared::new(print, cfg.concurrency));
                    open.insert(sub.id.clone(), s.clone());
                    s
                }
            }
        };
        Round::new(http.clone(), state, sub, cfg, shared)
    }
}

/// A target opened for one round of one subscription.
pub(crate) struct Round {
    target: Target,
    plan: Plan,
    /// Outcomes of events already synced this round (ahead of their turn).
    done: HashMap<String, Outcome>,
}

/// What was sent to the target for one person, as it now stands.
struct Linked {
    id: String,
    before: Option<Desired>,
}

impl Round {
    pub(crate) fn new(
        http: reqwest::Client,
        state: &AppState,
        sub: &SubscriptionRow,
        cfg: ScimTarget,
        shared: Arc<Shared>,
    ) -> Result<Round, String> {
        let plan = Plan::new(&cfg, &sub.attributes)?;
        let secret = client::secret(state, sub)?;
        url_allowed(state, &sub.url)?;
        Ok(Round {
            target: Target::new(http, sub, cfg, secret, shared, state.clock.now()),
            plan,
            done: HashMap::new(),
        })
    }

    /// Syncs the person of `ahead[0]`, and with it those of the events
    /// after it (up to the target's concurrency, each person once).
    pub(crate) async fn send(
        &mut self,
        state: &AppState,
        sub: &SubscriptionRow,
        ahead: &[ChangeEventInfo],
    ) -> Outcome {
        if let Some(o) = ahead.first().and_then(|e| self.done.remove(&e.id)) {
            return o;
        }
        let window = &ahead[..ahead.len().min(WINDOW)];
        let mut people: Vec<(&str, Vec<&str>)> = Vec::new();
        for ev in window {
            let who = ev.data.external_id.as_str();
            match people.iter_mut().find(|(p, _)| *p == who) {
                Some((_, evs)) => evs.push(&ev.id),
                None => people.push((who, vec![&ev.id])),
            }
        }
        people.truncate(self.target.cfg.concurrency.clamp(1, 32) as usize);
        let results =
            futures::future::join_all(people.iter().map(|(who, _)| self.sync(state, sub, who)))
                .await;
        for ((_, evs), r) in people.iter().zip(results) {
            match r {
                Ok(status) => {
                    for id in evs {
                        self.done
                            .insert((*id).to_owned(), Outcome::Delivered(status));
                    }
                }
                Err(f) => {
                    self.done.insert(evs[0].to_owned(), failed(f));
                }
            }
        }
        let first = ahead.first().map(|e| e.id.as_str()).unwrap_or_default();
        self.done
            .remove(first)
            .unwrap_or_else(|| failed(Fail::person(None, "nothing was sent for this event")))
    }

    /// Provisions the next people after `after` (in external id order):
    /// `Some(last done)` while there are more, `None` at the end. One
    /// person's refusal does not hold the others back (a reconcile
    /// reports it); a failing target stops the step.
    pub(crate) async fn backfill(
        &mut self,
        state: &AppState,
        sub: &SubscriptionRow,
        after: &str,
    ) -> Result<Option<String>, Fail> {
        let (t, a) = (sub.tenant.clone(), after.to_owned());
        let rows = state
            .db(move |s| s.person_list(&t, (!a.is_empty()).then_some(a.as_str()), BACKFILL_PAGE))
            .await
            .map_err(|_| store_fail())?;
        let n = self.target.cfg.concurrency.clamp(1, 32) as usize;
        let mut refused = 0usize;
        for chunk in rows.chunks(n) {
            let results =
                futures::future::join_all(chunk.iter().map(|row| self.sync_row(state, sub, row)))
                    .await;
            for r in results {
                match r {
                    Ok(_) => {}
                    Err(f) if f.target => return Err(f),
                    Err(_) => refused += 1,
                }
            }
        }
        if refused > 0 {
            tracing::warn!(subscription = %sub.id, refused, "the target refused some people while provisioning those already there; a reconcile lists them");
        }
        Ok(match rows.last() {
            Some(last) if rows.len() == BACKFILL_PAGE as usize => {
                Some(last.external_id.as_str().to_owned())
            }
            _ => None,
        })
    }

    /// Brings one person to what they should be on the target.
    async fn sync(
        &self,
        state: &AppState,
        sub: &SubscriptionRow,
        who: &str,
    ) -> Result<Option<u16>, Fail> {
        match person(state, sub, who).await? {
            Some(row) => self.sync_row(state, sub, &row).await,
            None => Ok(None),
        }
    }

    async fn sync_row(
        &self,
        state: &AppState,
        sub: &SubscriptionRow,
        row: &PersonRow,
    ) -> Result<Option<u16>, Fail> {
        let want = self.desired(state, sub, row).await?;
        let link = links(
            state,
            sub,
            LinkKind::User,
            vec![row.external_id.as_str().to_owned()],
        )
        .await?
        .pop()
        .flatten();
        self.apply(state, sub, row.external_id.as_str(), &want, link)
            .await
    }

    /// What the person should be, with their manager's id on the target.
    pub(crate) async fn desired(
        &self,
        state: &AppState,
        sub: &SubscriptionRow,
        row: &PersonRow,
    ) -> Result<Desired, Fail> {
        self.desired_at(state, sub, row, 0).await
    }

    /// [`Self::desired`]; a manager not on the target yet is provisioned
    /// first (up to [`MANAGER_DEPTH`] levels up), so that the User names
    /// them from the start.
    fn desired_at<'a>(
        &'a self,
        state: &'a AppState,
        sub: &'a SubscriptionRow,
        row: &'a PersonRow,
        depth: usize,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Desired, Fail>> + Send + 'a>>
    {
        Box::pin(async move {
            let manager = row
                .state
                .attrs
                .get(muster_core::schema::MANAGER)
                .and_then(|v| v.as_str())
                .map(str::to_owned);
            let manager_id = match manager {
                Some(m) if self.plan.reads("manager") && m != row.external_id.as_str() => {
                    let link = links(state, sub, LinkKind::User, vec![m.clone()])
                        .await?
                        .pop()
                        .flatten();
                    match link {
                        Some(l) => Some(l.target_id),
                        None if depth < MANAGER_DEPTH => {
                            self.provision_manager(state, sub, &m, depth).await?
                        }
                        None => None,
                    }
                }
                _ => None,
            };
            Ok(Desired::of(&self.plan, row, manager_id.as_deref()))
        })
    }

    /// Provisions a person's manager `m` ahead of them when the manager
    /// belongs on the target; their id there, if they are. A refusal of
    /// the manager leaves the person without one rather than held back.
    async fn provision_manager(
        &self,
        state: &AppState,
        sub: &SubscriptionRow,
        m: &str,
        depth: usize,
    ) -> Result<Option<String>, Fail> {
        let Some(row) = person(state, sub, m).await? else {
            return Ok(None);
        };
        let want = self.desired_at(state, sub, &row, depth + 1).await?;
        if !want.active {
            return Ok(None);
        }
        let link = links(state, sub, LinkKind::User, vec![m.to_owned()])
            .await?
            .pop()
            .flatten();
        match self.apply(state, sub, m, &want, link).await {
            Ok(_) => {}
            Err(f) if f.target => return Err(f),
            Err(_) => return Ok(None),
        }
        Ok(links(state, sub, LinkKind::User, vec![m.to_owned()])
            .await?
            .pop()
            .flatten()
            .map(|l| l.target_id))
    }

    /// Takes the person's User from `link` (what was last sent, `None`:
    /// never linked) to `want`, and their group memberships with it.
    /// Returns the status of the last request made (`None`: none needed).
    pub(crate) async fn apply(
        &self,
        state: &AppState,
        sub: &SubscriptionRow,
        ext: &str,
        want: &Desired,
        link: Option<TargetLink>,
    ) -> Result<Option<u16>, Fail> {
        let cfg = &self.target.cfg;
        let mut status = None;
        let mut linked = link.map(|l| Linked {
            before: Desired::from_sent(&l.sent),
            id: l.target_id,
        });
        let mut look_up = true;
        // At most: a lookup, a create answered 409 and linked, a change.
        for _ in 0..4 {
            let Some(l) = linked.as_ref() else {
                if !want.active {
                    // Nobody is created only to be inactive.
                    return Ok(status);
                }
                if look_up {
                    look_up = false;
                    if let Some(id) = self.look_up(sub, want).await? {
                        let id = self.take_over(state, sub, ext, id).await?;
                        linked = Some(Linked { id, before: None });
                        continue;
                    }
                }
                let a = self
                    .target
                    .call(sub, Method::POST, "/Users", Some(&want.user(&self.plan)))
                    .await?;
                status = Some(a.status);
                match a.status {
                    200..=299 => {
                        let id = resource_id(&a.body)
                            .ok_or_else(|| target_fail(a.status, "a created User came back without an id"))?;
                        let done = Desired {
                            groups: BTreeSet::new(),
                            ..want.clone()
                        };
                        put_link(state, sub, LinkKind::User, ext, &id, done.to_sent()).await?;
                        linked = Some(Linked {
                            id,
                            before: Some(done),
                        });
                        break;
                    }
                    409 => match self.look_up(sub, want).await? {
                        Some(id) => {
                            let id = self.take_over(state, sub, ext, id).await?;
                            linked = Some(Linked { id, before: None });
                            continue;
                        }
                        None => {
                            return Err(Fail::person(
                                Some(409),
                                "the target holds a conflicting User that the match attribute does not find (uniqueness)",
                            ))
                        }
                    },
                    _ => return Err(target_fail(a.status, "the target has no /Users")),
                }
            };
            let unchanged = l
                .before
                .as_ref()
                .is_some_and(|b| b.attrs == want.attrs && b.active == want.active);
            if unchanged {
                break;
            }
            let path = format!("/Users/{}", urlencoding::encode(&l.id));
            if !want.active && cfg.deprovision == ScimDeprovision::Delete {
                let a = self.target.call(sub, Method::DELETE, &path, None).await?;
                forget_link(state, sub, LinkKind::User, ext).await?;
                return Ok(Some(a.status));
            }
            let a = match cfg.update {
                ScimUpdate::Put => {
                    let mut u = want.user(&self.plan);
                    u["id"] = json!(l.id);
                    self.target.call(sub, Method::PUT, &path, Some(&u)).await?
                }
                ScimUpdate::Patch => {
                    let ops = want.patch_ops(&self.plan, l.before.as_ref());
                    if ops.is_empty() {
                        break;
                    }
                    let body = json!({"schemas": [PATCH_OP], "Operations": ops});
                    self.target
                        .call(sub, Method::PATCH, &path, Some(&body))
                        .await?
                }
            };
            status = Some(a.status);
            match a.status {
                200..=299 => {
                    let groups = l
                        .before
                        .as_ref()
                        .map(|b| b.groups.clone())
                        .unwrap_or_default();
                    let done = Desired {
                        groups,
                        ..want.clone()
                    };
                    put_link(state, sub, LinkKind::User, ext, &l.id, done.to_sent()).await?;
                    linked = Some(Linked {
                        id: l.id.clone(),
                        before: Some(done),
                    });
                    break;
                }
                404 => {
                    // Deleted on the target behind our back.
                    forget_link(state, sub, LinkKind::User, ext).await?;
                    look_up = cfg.on_missing == ScimOnMissing::Rematch;
                    linked = None;
                }
                _ => {
                    return Err(Fail::person(
                        Some(a.status),
                        format!("the target refused the change ({})", a.status),
                    ))
                }
            }
        }
        let Some(l) = linked else {
            return Ok(status);
        };
        if self.plan.groups {
            if let Some(s) = self.memberships(state, sub, ext, want, &l).await? {
                status = Some(s);
            }
        }
        Ok(status)
    }

    /// Adds the User to the Groups of the roles it gained and takes it
    /// out of those it lost, recording each change as it is made.
    async fn memberships(
        &self,
        state: &AppState,
        sub: &SubscriptionRow,
        ext: &str,
        want: &Desired,
        l: &Linked,
    ) -> Result<Option<u16>, Fail> {
        // Linked without knowing its memberships: every Group is added
        // (adding a member twice changes nothing).
        let known = l.before.as_ref().map(|b| b.groups.clone());
        let add: Vec<&String> = want
            .groups
            .iter()
            .filter(|g| known.as_ref().is_none_or(|k| !k.contains(*g)))
            .collect();
        let known = known.unwrap_or_default();
        let remove: Vec<String> = known.difference(&want.groups).cloned().collect();
        if add.is_empty() && remove.is_empty() {
            return Ok(None);
        }
        let mut now = known.clone();
        let mut status = None;
        let mut result = Ok(());
        for role in add {
            let member = json!({"op": "add", "path": "members", "value": [{"value": l.id}]});
            match self.group_patch(state, sub, role, member, true).await {
                Ok(s) => {
                    status = s.or(status);
                    now.insert(role.clone());
                }
                Err(f) => {
                    result = Err(f);
                    break;
                }
            }
        }
        if result.is_ok() {
            for role in remove {
                let filter = format!("members[value eq {}]", Value::String(l.id.clone()));
                let member = json!({"op": "remove", "path": filter});
                match self.group_patch(state, sub, &role, member, false).await {
                    Ok(s) => {
                        status = s.or(status);
                        now.remove(&role);
                    }
                    Err(f) => {
                        result = Err(f);
                        break;
                    }
                }
            }
        }
        let done = Desired {
            groups: now,
            ..want.clone()
        };
        put_link(state, sub, LinkKind::User, ext, &l.id, done.to_sent()).await?;
        result.map(|_| status)
    }

    /// PATCHes the Group of `role` (created first when `create` and it is
    /// not there); a Group deleted behind our back is found or made again.
    async fn group_patch(
        &self,
        state: &AppState,
        sub: &SubscriptionRow,
        role: &str,
        op: Value,
        create: bool,
    ) -> Result<Option<u16>, Fail> {
        let body = json!({"schemas": [PATCH_OP], "Operations": [op]});
        for _ in 0..2 {
            let Some(gid) = self.group_id(state, sub, role, create).await? else {
                return Ok(None);
            };
            let path = format!("/Groups/{}", urlencoding::encode(&gid));
            let a = self
                .target
                .call(sub, Method::PATCH, &path, Some(&body))
                .await?;
            match a.status {
                200..=299 => return Ok(Some(a.status)),
                404 => forget_link(state, sub, LinkKind::Group, role).await?,
                s => {
                    return Err(Fail::person(
                        Some(s),
                        format!("the target refused a group membership ({s})"),
                    ))
                }
            }
        }
        Err(Fail::person(
            Some(404),
            "a Group keeps disappearing on the target",
        ))
    }

    /// The target's id of the Group of `role`: as linked, else found by
    /// display name, else (with `create`) created.
    async fn group_id(
        &self,
        state: &AppState,
        sub: &SubscriptionRow,
        role: &str,
        create: bool,
    ) -> Result<Option<String>, Fail> {
        let known = |links: Vec<Option<TargetLink>>| links.into_iter().flatten().next();
        if let Some(l) = known(links(state, sub, LinkKind::Group, vec![role.to_owned()]).await?) {
            return Ok(Some(l.target_id));
        }
        // One at a time, so that two people of a new role make one Group.
        let _one = self.target.shared.groups.lock().await;
        if let Some(l) = known(links(state, sub, LinkKind::Group, vec![role.to_owned()]).await?) {
            return Ok(Some(l.target_id));
        }
        let found = self
            .target
            .find(sub, "Groups", &eq_filter("displayName", role))
            .await?
            .as_ref()
            .and_then(resource_id);
        let id = match found {
            Some(id) => id,
            None if !create => return Ok(None),
            None => {
                let g = json!({"schemas": [GROUP_SCHEMA], "displayName": role});
                let a = self
                    .target
                    .call(sub, Method::POST, "/Groups", Some(&g))
                    .await?;
                match a.status {
                    200..=299 => resource_id(&a.body).ok_or_else(|| {
                        target_fail(a.status, "a created Group came back without an id")
                    })?,
                    s => {
                        return Err(Fail::person(
                            Some(s),
                            format!("the target refused to create a Group ({s})"),
                        ))
                    }
                }
            }
        };
        put_link(state, sub, LinkKind::Group, role, &id, Value::Null).await?;
        Ok(Some(id))
    }

    /// A User the match attribute found, taken for `ext` unless it is
    /// another person's: a leaver's User (last sent inactive) passes to
    /// the person found with it now, as when someone is rehired under a
    /// new id; an active person's is never taken (one User, one person).
    async fn take_over(
        &self,
        state: &AppState,
        sub: &SubscriptionRow,
        ext: &str,
        id: String,
    ) -> Result<String, Fail> {
        let (sid, tid) = (sub.id.clone(), id.clone());
        let owner = state
            .db(move |s| s.target_link_of(&sid, LinkKind::User, &tid))
            .await
            .map_err(|_| store_fail())?;
        match owner {
            Some(l) if l.key != ext => {
                if Desired::from_sent(&l.sent).is_none_or(|d| d.active) {
                    return Err(Fail::person(
                        None,
                        "the User the match attribute finds on the target is another active person's",
                    ));
                }
                forget_link(state, sub, LinkKind::User, &l.key).await?;
                Ok(id)
            }
            _ => Ok(id),
        }
    }

    /// The target's id of the person's User, found by the match attribute.
    async fn look_up(&self, sub: &SubscriptionRow, want: &Desired) -> Result<Option<String>, Fail> {
        let attr = match self.target.cfg.match_on {
            ScimMatch::UserName => "userName",
            ScimMatch::ExternalId => "externalId",
        };
        let Some(value) = want.attrs.get(attr).and_then(Value::as_str) else {
            return Ok(None);
        };
        Ok(self
            .target
            .find(sub, "Users", &eq_filter(attr, value))
            .await?
            .as_ref()
            .and_then(resource_id))
    }

    pub(crate) fn plan(&self) -> &Plan {
        &self.plan
    }

    pub(crate) fn target(&self) -> &Target {
        &self.target
    }
}

/// A stored target URL is judged again at every round, whatever it
/// passed when it was saved (an IP literal is connected to without the
/// resolver that judges names).
fn url_allowed(state: &AppState, url: &str) -> Result<(), String> {
    let u = reqwest::Url::parse(url).map_err(|_| "refused: the URL is not valid".to_owned())?;
    crate::http::outbound::Rule::webhooks(&state.config)
        .check_url(&u)
        .map_err(|why| format!("refused: {why}"))
}

/// The person `who` of the subscription's tenant, if there is one.
async fn person(
    state: &AppState,
    sub: &SubscriptionRow,
    who: &str,
) -> Result<Option<PersonRow>, Fail> {
    let Ok(ext) = ExternalId::parse(who) else {
        return Ok(None);
    };
    let t = sub.tenant.clone();
    state
        .db(move |s| match s.person_get(&t, &ext) {
            Ok(r) => Ok(Some(r)),
            Err(muster_store::StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        })
        .await
        .map_err(|_| store_fail())
}

fn resource_id(body: &Value) -> Option<String> {
    body.get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn target_fail(status: u16, error: &str) -> Fail {
    Fail {
        status: Some(status),
        error: error.to_owned(),
        retry_after: None,
        target: true,
    }
}

fn store_fail() -> Fail {
    Fail {
        status: None,
        error: "the database failed".into(),
        retry_after: None,
        target: true,
    }
}

pub(crate) fn failed(f: Fail) -> Outcome {
    Outcome::Failed {
        status: f.status,
        error: f.error,
        retry_after: f.retry_after,
        target: f.target,
    }
}

pub(crate) async fn links(
    state: &AppState,
    sub: &SubscriptionRow,
    kind: LinkKind,
    keys: Vec<String>,
) -> Result<Vec<Option<TargetLink>>, Fail> {
    let id = sub.id.clone();
    state
        .db(move |s| {
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            s.target_links(&id, kind, &refs)
        })
        .await
        .map_err(|_| store_fail())
}

pub(crate) async fn put_link(
    state: &AppState,
    sub: &SubscriptionRow,
    kind: LinkKind,
    key: &str,
    target_id: &str,
    sent: Value,
) -> Result<(), Fail> {
    let (id, link) = (
        sub.id.clone(),
        TargetLink {
            key: key.to_owned(),
            target_id: target_id.to_owned(),
            sent,
        },
    );
    state
        .db(move |s| s.target_link_put(&id, kind, &link))
        .await
        .map_err(|_| store_fail())
}

pub(crate) async fn forget_link(
    state: &AppState,
    sub: &SubscriptionRow,
    kind: LinkKind,
    key: &str,
) -> Result<(), Fail> {
    let (id, key) = (sub.id.clone(), key.to_owned());
    state
        .db(move |s| s.target_link_delete(&id, kind, &key))
        .await
        .map_err(|_| store_fail())
}
