//! Webhooks in: the admin ops that register and remove hooks, and `POST /hooks/<mesh>/<hook>`,
//! which checks the signature (HMAC-SHA256 over `"<timestamp>." ‖ body`, see
//! `plexus_proto::webhook`), the timestamp's window and the size, accepts each signature once,
//! and turns the body into a mesh event from `webhook:<name>` in one transaction. Every refusal
//! stores nothing; secrets are never logged.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use plexus_proto::{
    coord::{Change, CoordEvent},
    ops::Done,
    webhook::{self as wh, WebhookCreate, WebhookCreated, WebhookDelete, WebhookList, Webhooks},
};
use uuid::Uuid;

use super::{dispatch::Authed, ops::actor};
use crate::{
    app::Broker,
    coord::events,
    error::OpError,
    store::{self, audit, webhooks as db, StoreError},
};

/// `webhook_create` (admins): a new hook and its secret, shown once.
pub async fn webhook_create(broker: &Broker, a: &Authed, b: WebhookCreate) -> Result<WebhookCreated, OpError> {
    let (id, mut secret) = (Uuid::new_v4(), [0u8; 32]);
    plexus_crypto::random_bytes(&mut secret);
    let mut client = broker.pool.get().await.map_err(StoreError::from)?;
    let tx = client.transaction().await.map_err(StoreError::from)?;
    db::create(&tx, a.who.mesh_id, id, &b, &secret, a.who.member_id).await?;
    let detail = serde_json::json!({ "name": b.name, "target": b.target, "priority": b.priority });
    audit::append(&tx, a.who.mesh_id, actor(a), "webhook.created", &id.to_string(), detail).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(WebhookCreated { id, secret: plexus_crypto::hex(&secret), path: format!("/hooks/{}/{id}", a.who.mesh_id) })
}

/// `webhook_list` (admins).
pub async fn webhook_list(broker: &Broker, a: &Authed, _: WebhookList) -> Result<Webhooks, OpError> {
    Ok(Webhooks { hooks: db::list(&broker.pool, a.who.mesh_id).await? })
}

/// `webhook_delete` (admins).
pub async fn webhook_delete(broker: &Broker, a: &Authed, b: WebhookDelete) -> Result<Done, OpError> {
    let mut client = broker.pool.get().await.map_err(StoreError::from)?;
    let tx = client.transaction().await.map_err(StoreError::from)?;
    let name = db::delete(&tx, a.who.mesh_id, b.id).await?.ok_or(OpError::NotFound("webhook"))?;
    let detail = serde_json::json!({ "name": name });
    audit::append(&tx, a.who.mesh_id, actor(a), "webhook.deleted", &b.id.to_string(), detail).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(Done {})
}

/// `webhook_subscribe` (admins): deliver the mesh's events of `kinds` to a URL.
pub async fn webhook_subscribe(
    broker: &Broker,
    a: &Authed,
    b: wh::WebhookSubscribe,
) -> Result<wh::WebhookSubscribed, OpError> {
    let (id, mut secret) = (Uuid::new_v4(), [0u8; 32]);
    plexus_crypto::random_bytes(&mut secret);
    let mut client = broker.pool.get().await.map_err(StoreError::from)?;
    let tx = client.transaction().await.map_err(StoreError::from)?;
    db::subscribe(&tx, a.who.mesh_id, id, &b.url, &secret, &b.kinds, a.who.member_id).await?;
    let detail = serde_json::json!({ "url": b.url, "kinds": b.kinds });
    audit::append(&tx, a.who.mesh_id, actor(a), "webhook.subscribed", &id.to_string(), detail).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(wh::WebhookSubscribed { id, secret: plexus_crypto::hex(&secret) })
}

/// `webhook_subscriptions` (admins).
pub async fn webhook_subscriptions(
    broker: &Broker,
    a: &Authed,
    _: wh::WebhookSubscriptions,
) -> Result<wh::Subscriptions, OpError> {
    Ok(wh::Subscriptions { subscriptions: db::subscriptions(&broker.pool, a.who.mesh_id).await? })
}

/// `webhook_attempts` (admins): a subscription's delivery log.
pub async fn webhook_attempts(broker: &Broker, a: &Authed, b: wh::WebhookAttempts) -> Result<wh::Attempts, OpError> {
    let limit = b.limit.unwrap_or(100);
    let attempts = db::attempts(&broker.pool, a.who.mesh_id, b.id, limit)
        .await?
        .ok_or(OpError::NotFound("webhook subscription"))?;
    Ok(wh::Attempts { attempts })
}

/// `webhook_unsubscribe` (admins).
pub async fn webhook_unsubscribe(broker: &Broker, a: &Authed, b: wh::WebhookUnsubscribe) -> Result<Done, OpError> {
    let mut client = broker.pool.get().await.map_err(StoreError::from)?;
    let tx = client.transaction().await.map_err(StoreError::from)?;
    let url = db::unsubscribe(&tx, a.who.mesh_id, b.id).await?.ok_or(OpError::NotFound("webhook subscription"))?;
    audit::append(
        &tx,
        a.who.mesh_id,
        actor(a),
        "webhook.unsubscribed",
        &b.id.to_string(),
        serde_json::json!({ "url": url }),
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(Done {})
}

fn refuse(status: actix_web::http::StatusCode, why: &str) -> HttpResponse {
    crate::metrics::webhooks().with_label_values(&[status.as_str()]).inc();
    HttpResponse::build(status).content_type("text/plain").body(format!("{why}\n"))
}

/// `POST /hooks/{mesh}/{hook}`.
pub async fn receive(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    broker: web::Data<Arc<Broker>>,
) -> HttpResponse {
    use actix_web::http::StatusCode;
    let (Ok(mesh_id), Ok(hook_id)) = (path.0.parse::<Uuid>(), path.1.parse::<Uuid>()) else {
        return refuse(StatusCode::NOT_FOUND, "no such webhook");
    };
    if body.len() > wh::MAX_BODY {
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, "body over 64 KiB");
    }
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (Some(timestamp), Some(signature)) = (header(wh::TIMESTAMP_HEADER), header(wh::SIGNATURE_HEADER)) else {
        return refuse(StatusCode::UNAUTHORIZED, "x-plexus-timestamp and x-plexus-signature are required");
    };
    let Some(given) = signature.strip_prefix("sha256=").and_then(plexus_crypto::unhex) else {
        return refuse(StatusCode::UNAUTHORIZED, "x-plexus-signature must be sha256=<hex>");
    };
    let hook = match db::get(&broker.pool, mesh_id, hook_id).await {
        Ok(Some(h)) => h,
        Ok(None) => return refuse(StatusCode::NOT_FOUND, "no such webhook"),
        Err(e) => {
            tracing::warn!(error = %e, "webhook lookup failed");
            return refuse(StatusCode::SERVICE_UNAVAILABLE, "try again");
        }
    };
    let expected = plexus_crypto::hmac_sha256(&hook.secret, &[&wh::signed_bytes(&timestamp, &body)]);
    if !plexus_crypto::equal(&expected, &given) {
        return refuse(StatusCode::UNAUTHORIZED, "bad signature");
    }
    let now = crate::clock::now_ms() / 1000;
    match timestamp.parse::<u64>() {
        Ok(t) if t.abs_diff(now) <= wh::REPLAY_WINDOW_SECS => {}
        _ => return refuse(StatusCode::UNAUTHORIZED, "timestamp outside the 5-minute window"),
    }
    let payload = String::from_utf8_lossy(&body).into_owned();
    match deliver(&broker, mesh_id, hook_id, &hook, &given, payload).await {
        Ok(Some(seq)) => {
            crate::metrics::webhooks().with_label_values(&["202"]).inc();
            HttpResponse::Accepted().content_type("application/json").body(format!("{{\"seq\":{seq}}}\n"))
        }
        Ok(None) => refuse(StatusCode::CONFLICT, "this signature was already accepted"),
        Err(e) => {
            tracing::warn!(%hook_id, error = %e, "webhook delivery failed");
            refuse(StatusCode::SERVICE_UNAVAILABLE, "try again")
        }
    }
}

/// The event, in one transaction with the signature's first sighting; `None` for a replay.
async fn deliver(
    broker: &Broker,
    mesh_id: Uuid,
    hook_id: Uuid,
    hook: &db::Hook,
    signature: &[u8],
    payload: String,
) -> Result<Option<u64>, OpError> {
    let mut client = broker.pool.get().await.map_err(StoreError::from)?;
    let tx = client.transaction().await.map_err(StoreError::from)?;
    if !db::first_sighting(&tx, mesh_id, hook_id, signature).await? {
        return Ok(None);
    }
    let from = events::Sender {
        mesh_id,
        member_id: hook_id,
        session_id: hook_id,
        name: format!("webhook:{}", hook.name),
        session_pubkey: Vec::new(),
        member_pubkey: Vec::new(),
    };
    let shown: String = payload.chars().take(200).collect();
    let event = CoordEvent {
        summary: format!("webhook {}: {shown}", hook.name),
        change: Change::Webhook { hook: hook.name.clone(), payload },
    };
    let msg = events::append(&tx, &from, hook.target.clone(), "webhook", hook.priority, &event).await?;
    let seq = msg.seq;
    events::commit(&broker.coord, mesh_id, tx, vec![msg]).await?;
    Ok(Some(seq))
}

/// Forget accepted signatures once their timestamps would be refused anyway.
pub async fn prune(broker: &Broker) -> Result<u64, store::StoreError> {
    db::prune_seen(&broker.pool, std::time::Duration::from_secs(2 * wh::REPLAY_WINDOW_SECS)).await
}
