//! Webhook subscriptions and the change feed (docs/events.md#webhook-subscriptions): the calls behind
//! `muster admin subscription ...`, for scripts and other Rust programs.
use crate::{seg, to_json, Client, ClientError};
use muster_proto::{
    ChangesPage, DeliveryInfo, Page, ReconcileReport, RedeliverRequest, SubscriptionCreated,
    SubscriptionInfo, SubscriptionPatch, SubscriptionSpec, WebhookSecretRotate,
};
use reqwest::Method;

impl Client {
    /// `POST /api/v1/subscriptions`; the answer holds the `whsec_` secret,
    /// shown once.
    pub async fn subscription_create(
        &self,
        spec: &SubscriptionSpec,
    ) -> Result<SubscriptionCreated, ClientError> {
        self.post("/api/v1/subscriptions", spec).await
    }

    /// `GET /api/v1/subscriptions`
    pub async fn subscription_list(&self) -> Result<Vec<SubscriptionInfo>, ClientError> {
        self.get("/api/v1/subscriptions").await
    }

    /// `GET /api/v1/subscriptions/{id}`
    pub async fn subscription_get(&self, id: &str) -> Result<SubscriptionInfo, ClientError> {
        self.get(&format!("/api/v1/subscriptions/{}", seg(id)?))
            .await
    }

    /// `PATCH /api/v1/subscriptions/{id}`: absent fields stay.
    pub async fn subscription_update(
        &self,
        id: &str,
        patch: &SubscriptionPatch,
    ) -> Result<SubscriptionInfo, ClientError> {
        let path = format!("/api/v1/subscriptions/{}", seg(id)?);
        self.call(Method::PATCH, &path, &[], Some(to_json(patch)?))
            .await
    }

    /// Stops deliveries to the subscription (they resume, from where they
    /// stopped, when it is enabled again).
    pub async fn subscription_disable(&self, id: &str) -> Result<SubscriptionInfo, ClientError> {
        self.subscription_set_state(id, "disabled").await
    }

    /// Resumes deliveries (e.g. after a 410 disabled it).
    pub async fn subscription_enable(&self, id: &str) -> Result<SubscriptionInfo, ClientError> {
        self.subscription_set_state(id, "active").await
    }

    async fn subscription_set_state(
        &self,
        id: &str,
        state: &str,
    ) -> Result<SubscriptionInfo, ClientError> {
        let patch = SubscriptionPatch {
            state: Some(state.to_owned()),
            ..SubscriptionPatch::default()
        };
        self.subscription_update(id, &patch).await
    }

    /// `DELETE /api/v1/subscriptions/{id}`
    pub async fn subscription_delete(&self, id: &str) -> Result<(), ClientError> {
        self.delete(&format!("/api/v1/subscriptions/{}", seg(id)?))
            .await
    }

    /// `POST /api/v1/subscriptions/{id}/rotate-secret`: a new secret (shown
    /// once); the old one keeps signing too until the overlap ends.
    pub async fn subscription_rotate_secret(
        &self,
        id: &str,
        request: &WebhookSecretRotate,
    ) -> Result<SubscriptionCreated, ClientError> {
        let path = format!("/api/v1/subscriptions/{}/rotate-secret", seg(id)?);
        self.post(&path, request).await
    }

    /// `GET /api/v1/subscriptions/{id}/deliveries`: the delivery log, oldest
    /// first, after the attempt numbered `after`.
    pub async fn subscription_deliveries(
        &self,
        id: &str,
        after: Option<i64>,
        limit: Option<u32>,
    ) -> Result<Page<DeliveryInfo>, ClientError> {
        let mut q = Vec::new();
        if let Some(a) = after {
            q.push(("after", a.to_string()));
        }
        if let Some(l) = limit {
            q.push(("limit", l.to_string()));
        }
        let path = format!("/api/v1/subscriptions/{}/deliveries", seg(id)?);
        self.get_query(&path, &q).await
    }

    /// `POST /api/v1/subscriptions/{id}/redeliver`: sends one event (by id
    /// or cursor) or a cursor range again.
    pub async fn subscription_redeliver(
        &self,
        id: &str,
        request: &RedeliverRequest,
    ) -> Result<SubscriptionInfo, ClientError> {
        let path = format!("/api/v1/subscriptions/{}/redeliver", seg(id)?);
        self.post(&path, request).await
    }

    /// `POST /api/v1/subscriptions/{id}/reconcile`: compares a SCIM
    /// target's Users with what they should be and repairs the drift
    /// (with `dry_run`, only reports it).
    pub async fn subscription_reconcile(
        &self,
        id: &str,
        dry_run: bool,
    ) -> Result<ReconcileReport, ClientError> {
        let path = format!("/api/v1/subscriptions/{}/reconcile", seg(id)?);
        self.call(
            Method::POST,
            &path,
            &[("dry_run", dry_run.to_string())],
            None,
        )
        .await
    }

    /// `GET /api/v1/changes`: the tenant's change events after `after`,
    /// waiting up to `wait` seconds for one when there is none yet.
    pub async fn changes(
        &self,
        after: Option<i64>,
        limit: Option<u32>,
        wait: Option<u64>,
    ) -> Result<ChangesPage, ClientError> {
        let mut q = Vec::new();
        if let Some(a) = after {
            q.push(("after", a.to_string()));
        }
        if let Some(l) = limit {
            q.push(("limit", l.to_string()));
        }
        if let Some(w) = wait {
            q.push(("wait", w.to_string()));
        }
        self.get_query("/api/v1/changes", &q).await
    }
}
