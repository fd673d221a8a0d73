//! `muster admin subscription ...`: webhook, NATS and SCIM subscriptions
//! (docs/events.md#webhook-subscriptions, docs/provisioning.md), their
//! delivery log, manual redelivery, secret rotation and a SCIM target's
//! reconcile.
use crate::output::{opt, print_json, table, time};
use clap::Subcommand;
use muster_client::{Client, ClientError};
use muster_proto::{
    DeliveryInfo, NatsCredentials, Page, ReconcileReport, RedeliverRequest, ScimSecret, ScimTarget,
    SubscriptionCreated, SubscriptionInfo, SubscriptionKind, SubscriptionPatch, SubscriptionSpec,
    WebhookSecretRotate,
};
use std::path::PathBuf;

/// A NATS subscription's settings; its secrets are read from files, never
/// from the command line.
#[derive(Debug, Default, clap::Args)]
pub struct NatsArgs {
    /// nats: the first subject tokens (default `muster`): events go to
    /// `<prefix>.<tenant>.<event type>`.
    #[arg(long, value_name = "PREFIX")]
    subject_prefix: Option<String>,
    /// nats: a `.creds` file (user JWT and NKey seed).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["nats_token_file", "nats_user"])]
    nats_creds_file: Option<PathBuf>,
    /// nats: a file holding the server token.
    #[arg(long, value_name = "FILE", conflicts_with = "nats_user")]
    nats_token_file: Option<PathBuf>,
    /// nats: the user name (its password from --nats-password-file).
    #[arg(long, value_name = "USER", requires = "nats_password_file")]
    nats_user: Option<String>,
    /// nats: a file holding the user's password.
    #[arg(long, value_name = "FILE", requires = "nats_user")]
    nats_password_file: Option<PathBuf>,
}

impl NatsArgs {
    fn is_empty(&self) -> bool {
        self.subject_prefix.is_none() && !self.credentials_given()
    }

    fn credentials_given(&self) -> bool {
        self.nats_creds_file.is_some() || self.nats_token_file.is_some() || self.nats_user.is_some()
    }

    /// The credentials the files hold (`None`: none given).
    fn credentials(&self) -> Result<Option<NatsCredentials>, ClientError> {
        let read = read_secret;
        if !self.credentials_given() {
            return Ok(None);
        }
        Ok(Some(NatsCredentials {
            token: self.nats_token_file.as_ref().map(read).transpose()?,
            user: self.nats_user.clone(),
            password: self.nats_password_file.as_ref().map(read).transpose()?,
            creds: self.nats_creds_file.as_ref().map(read).transpose()?,
        }))
    }
}

/// A SCIM target's settings and secrets; the secrets are read from
/// files, never from the command line.
#[derive(Debug, Default, clap::Args)]
pub struct ScimArgs {
    /// scim: the target's settings (auth, match, mapping, scope, limits;
    /// docs/provisioning.md), a TOML file (or JSON, named *.json).
    #[arg(long, value_name = "FILE")]
    scim_settings: Option<PathBuf>,
    /// scim: a file holding the target's bearer token.
    #[arg(long, value_name = "FILE")]
    scim_token_file: Option<PathBuf>,
    /// scim: a file holding the HTTP Basic password (auth = "basic").
    #[arg(long, value_name = "FILE")]
    scim_password_file: Option<PathBuf>,
    /// scim: a file holding the OAuth client secret (auth = "oauth").
    #[arg(long, value_name = "FILE")]
    scim_client_secret_file: Option<PathBuf>,
}

fn read_secret(p: &PathBuf) -> Result<String, ClientError> {
    std::fs::read_to_string(p)
        .map(|t| t.trim_end_matches(['\n', '\r']).to_owned())
        .map_err(|e| ClientError::InvalidInput(format!("{}: {e}", p.display())))
}

impl ScimArgs {
    fn is_empty(&self) -> bool {
        self.scim_settings.is_none() && self.secret_given().is_none()
    }

    fn secret_given(&self) -> Option<()> {
        (self.scim_token_file.is_some()
            || self.scim_password_file.is_some()
            || self.scim_client_secret_file.is_some())
        .then_some(())
    }

    fn settings(&self) -> Result<Option<ScimTarget>, ClientError> {
        let Some(p) = &self.scim_settings else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(p)
            .map_err(|e| ClientError::InvalidInput(format!("{}: {e}", p.display())))?;
        let parsed = if p.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| e.to_string())
        } else {
            toml::from_str(&text).map_err(|e| e.to_string())
        };
        parsed
            .map(Some)
            .map_err(|e| ClientError::InvalidInput(format!("{}: {e}", p.display())))
    }

    fn secret(&self) -> Result<Option<ScimSecret>, ClientError> {
        if self.secret_given().is_none() {
            return Ok(None);
        }
        Ok(Some(ScimSecret {
            token: self.scim_token_file.as_ref().map(read_secret).transpose()?,
            password: self
                .scim_password_file
                .as_ref()
                .map(read_secret)
                .transpose()?,
            client_secret: self
                .scim_client_secret_file
                .as_ref()
                .map(read_secret)
                .transpose()?,
        }))
    }
}

fn parse_kind(s: &str) -> Result<SubscriptionKind, String> {
    SubscriptionKind::parse(s)
        .ok_or_else(|| format!("'{s}' is not a kind: use webhook, nats or scim"))
}

#[derive(Debug, Subcommand)]
pub enum SubscriptionCmd {
    /// Subscribe a receiver (its `whsec_` secret is printed once), a
    /// NATS JetStream stream (`--kind nats`) or an application's SCIM
    /// server (`--kind scim`), which gets the people already there first.
    Create {
        /// Where events go: a webhook's https URL (http only to allowed
        /// private destinations), a NATS server's tls:// (or nats://) URL,
        /// a SCIM target's base URL (before `/Users`).
        /// (`--url` is the gateway's.)
        #[arg(value_name = "URL")]
        endpoint: String,
        /// webhook (default), nats or scim.
        #[arg(long, value_parser = parse_kind, default_value = "webhook")]
        kind: SubscriptionKind,
        #[command(flatten)]
        nats: NatsArgs,
        #[command(flatten)]
        scim: ScimArgs,
        /// Attributes its events may carry, comma-separated (`roles` for
        /// the role set, `*` for all). Data minimisation: required.
        #[arg(long, value_delimiter = ',', required = true)]
        attributes: Vec<String>,
        /// Event names, comma-separated (default: all).
        #[arg(long, value_delimiter = ',')]
        events: Vec<String>,
        /// Start with the tenant's first event instead of the next one.
        #[arg(long)]
        from_beginning: bool,
    },
    /// List the tenant's subscriptions.
    List,
    /// Show one subscription and where its delivery stands.
    Show { id: String },
    /// Change a subscription's URL, events, attributes, NATS or SCIM settings.
    Update {
        id: String,
        #[command(flatten)]
        nats: NatsArgs,
        #[command(flatten)]
        scim: ScimArgs,
        /// The new receiver URL (`--url` is the gateway's).
        #[arg(long, value_name = "URL")]
        endpoint: Option<String>,
        /// Event names, comma-separated.
        #[arg(long, value_delimiter = ',')]
        events: Option<Vec<String>>,
        /// Attributes, comma-separated.
        #[arg(long, value_delimiter = ',')]
        attributes: Option<Vec<String>>,
    },
    /// Stop deliveries (events wait; nothing is lost).
    Disable { id: String },
    /// Resume deliveries from where they stopped (e.g. after a 410).
    Enable { id: String },
    /// Remove a subscription and its delivery log.
    Delete { id: String },
    /// A new secret (printed once); the old one keeps signing during the
    /// overlap.
    RotateSecret {
        id: String,
        /// How long the old secret keeps signing too, in seconds
        /// (default: the gateway's, a day).
        #[arg(long, value_name = "SECONDS")]
        overlap: Option<u64>,
    },
    /// The delivery log: every attempt, oldest first.
    Deliveries {
        id: String,
        /// Attempts after this one (the SEQ column).
        #[arg(long)]
        after: Option<i64>,
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Compare a SCIM target's Users with what Muster says they should be
    /// and repair the drift; prints what it found and did.
    Reconcile {
        id: String,
        /// Report the drift, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Send an event (by id or cursor) or a cursor range again.
    Redeliver {
        id: String,
        /// The event's id (`webhook-id`), from the delivery log.
        #[arg(long, conflicts_with_all = ["from", "to"], required_unless_present = "from")]
        event: Option<String>,
        /// The first cursor to send again.
        #[arg(long)]
        from: Option<i64>,
        /// The last cursor to send again (default: --from).
        #[arg(long, requires = "from")]
        to: Option<i64>,
    },
}

pub const SUBSCRIPTION_HEADER: [&str; 7] = [
    "ID",
    "KIND",
    "STATE",
    "URL",
    "EVENTS",
    "ATTRIBUTES",
    "CURSOR",
];

pub fn subscription_row(s: &SubscriptionInfo) -> Vec<String> {
    vec![
        s.id.clone(),
        s.kind.as_str().into(),
        s.state.clone(),
        s.url.clone(),
        s.events.join(","),
        s.attributes.join(","),
        s.cursor.to_string(),
    ]
}

fn show(s: &SubscriptionInfo, json: bool) {
    if json {
        print_json(s);
        return;
    }
    table(&SUBSCRIPTION_HEADER, &[subscription_row(s)]);
    if let Some(p) = &s.subject_prefix {
        println!("subjects:      {p}.<tenant>.<event type>");
    }
    if let Some(r) = &s.disabled_reason {
        println!("disabled:      {r}");
    }
    if s.attempt > 0 {
        println!("failed tries:  {} at the event after the cursor", s.attempt);
    }
    if let Some(t) = &s.next_attempt_at {
        println!("next attempt:  {}", time(t));
    }
    if let Some(t) = &s.previous_secret_until {
        println!("old secret:    signs too until {}", time(t));
    }
    if let Some(p) = &s.provisioning {
        if p.backfilling {
            println!("provisioning:  the people already there, first");
        }
        if let Some(t) = &p.quarantined_since {
            println!(
                "quarantined:   since {} ({}); tried hourly, then daily",
                time(t),
                opt(&p.quarantine_reason)
            );
        }
    }
}

fn print_report(r: &ReconcileReport, json: bool) {
    if json {
        print_json(r);
        return;
    }
    let verb = if r.dry_run { "would be " } else { "" };
    println!(
        "{} Users on the target, {} people in scope{}",
        r.target_users,
        r.in_scope,
        if r.dry_run {
            " (dry run: nothing changed)"
        } else {
            ""
        }
    );
    let list = |what: &str, ids: &[String]| {
        println!("{what}: {}", ids.len());
        for id in ids {
            println!("  {id}");
        }
    };
    list(&format!("{verb}created"), &r.created);
    list(
        &format!("{verb}linked (found by the match attribute)"),
        &r.linked,
    );
    println!("{verb}updated: {}", r.updated.len());
    for u in &r.updated {
        println!("  {}: {}", u.external_id, u.paths.join(", "));
    }
    list(&format!("{verb}deactivated"), &r.deactivated);
    println!("group memberships {verb}changed: {}", r.memberships);
    list(
        &format!(
            "Users no person is linked to{}",
            if r.extra_deactivated {
                " (deactivated)"
            } else {
                ""
            }
        ),
        &r.extra,
    );
    println!("failed: {}", r.failed.len());
    for f in &r.failed {
        println!("  {}: {}", f.external_id, f.error);
    }
}

fn show_secret(created: &SubscriptionCreated, json: bool) {
    if json {
        print_json(created);
    } else {
        show(&created.subscription, false);
        if let Some(secret) = &created.secret {
            println!("secret:        {secret}");
            println!("(the secret is shown once and will not be shown again; store it now)");
        }
    }
}

fn delivery_row(d: &DeliveryInfo) -> Vec<String> {
    vec![
        d.seq.to_string(),
        time(&d.at),
        d.cursor.to_string(),
        d.event_id.clone(),
        d.attempt.to_string(),
        d.status.map_or_else(|| "-".into(), |s| s.to_string()),
        format!("{}{}", d.outcome, if d.manual { " (manual)" } else { "" }),
        opt(&d.error),
    ]
}

fn print_deliveries(page: &Page<DeliveryInfo>, json: bool) {
    if json {
        print_json(page);
        return;
    }
    let rows: Vec<_> = page.items.iter().map(delivery_row).collect();
    table(
        &[
            "SEQ", "AT", "CURSOR", "EVENT", "ATTEMPT", "STATUS", "OUTCOME", "ERROR",
        ],
        &rows,
    );
    if let Some(c) = &page.next_cursor {
        eprintln!("(more: --after {c})");
    }
}

pub async fn subscription_cmd(
    c: &Client,
    cmd: SubscriptionCmd,
    json: bool,
) -> Result<(), ClientError> {
    match cmd {
        SubscriptionCmd::Create {
            endpoint: url,
            kind,
            nats,
            scim,
            attributes,
            events,
            from_beginning,
        } => {
            let spec = SubscriptionSpec {
                kind,
                url,
                credentials: nats.credentials()?,
                scim: scim.settings()?,
                scim_secret: scim.secret()?,
                subject_prefix: nats.subject_prefix,
                events,
                attributes,
                from_beginning,
            };
            show_secret(&c.subscription_create(&spec).await?, json);
        }
        SubscriptionCmd::List => {
            let l = c.subscription_list().await?;
            if json {
                print_json(&l);
            } else {
                let rows: Vec<_> = l.iter().map(subscription_row).collect();
                table(&SUBSCRIPTION_HEADER, &rows);
            }
        }
        SubscriptionCmd::Show { id } => show(&c.subscription_get(&id).await?, json),
        SubscriptionCmd::Update {
            id,
            nats,
            scim,
            endpoint: url,
            events,
            attributes,
        } => {
            if url.is_none()
                && events.is_none()
                && attributes.is_none()
                && nats.is_empty()
                && scim.is_empty()
            {
                return Err(ClientError::InvalidInput(
                    "nothing to change: give --endpoint, --events, --attributes, --subject-prefix, NATS credentials or SCIM settings".into(),
                ));
            }
            let patch = SubscriptionPatch {
                url,
                credentials: nats.credentials()?,
                scim: scim.settings()?,
                scim_secret: scim.secret()?,
                subject_prefix: nats.subject_prefix,
                events,
                attributes,
                state: None,
            };
            show(&c.subscription_update(&id, &patch).await?, json);
        }
        SubscriptionCmd::Disable { id } => show(&c.subscription_disable(&id).await?, json),
        SubscriptionCmd::Enable { id } => show(&c.subscription_enable(&id).await?, json),
        SubscriptionCmd::Delete { id } => {
            c.subscription_delete(&id).await?;
            if !json {
                println!("subscription {id} deleted");
            }
        }
        SubscriptionCmd::RotateSecret { id, overlap } => {
            let req = WebhookSecretRotate {
                overlap_seconds: overlap,
            };
            show_secret(&c.subscription_rotate_secret(&id, &req).await?, json);
        }
        SubscriptionCmd::Reconcile { id, dry_run } => {
            print_report(&c.subscription_reconcile(&id, dry_run).await?, json);
        }
        SubscriptionCmd::Deliveries { id, after, limit } => {
            let page = c.subscription_deliveries(&id, after, limit).await?;
            print_deliveries(&page, json);
        }
        SubscriptionCmd::Redeliver {
            id,
            event,
            from,
            to,
        } => {
            let req = RedeliverRequest {
                event_id: event,
                from_cursor: from,
                to_cursor: to,
            };
            let s = c.subscription_redeliver(&id, &req).await?;
            if json {
                print_json(&s);
            } else if let Some((from, to)) = req.from_cursor.zip(req.to_cursor.or(req.from_cursor))
            {
                println!("subscription {id}: events {from}..={to} queued for redelivery");
            } else {
                println!("subscription {id}: the event queued for redelivery");
            }
        }
    }
    Ok(())
}
