//! Webhooks out: every node takes leases on outbound subscriptions no live lease holds and
//! delivers their events — coordination events (plaintext by design) of the subscribed kinds,
//! in log order — as signed `POST`s (the webhooks-in scheme, with the event id as the
//! idempotency key). The cursor moves only after a 2xx and only while the node holds the
//! lease, so a node that dies mid-delivery leaves the event to whoever takes the lease next:
//! at least once, never by two nodes at a time. Failures are retried with exponential backoff
//! and jitter; after `webhooks.max_failures` in a row the subscription is disabled and audited.

use std::{sync::Arc, time::Duration};

use plexus_proto::{
    controls::Controls,
    types::Sealing,
    webhook::{self as wh},
};
use serde_json::json;

use crate::{
    app::Broker,
    store::{self, webhooks as db},
};

/// How long a lease lasts unless renewed.
const LEASE: Duration = Duration::from_secs(10);
/// How often leases are taken and renewed.
const TICK: Duration = Duration::from_millis(500);
/// The slowest endpoint a delivery waits for.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Run the deliveries of this node forever.
pub fn spawn(broker: Arc<Broker>) {
    tokio::spawn(async move {
        let mut running: std::collections::HashMap<uuid::Uuid, tokio::task::JoinHandle<()>> = Default::default();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            running.retain(|_, t| !t.is_finished());
            let subs = match db::lease(&broker.pool, &broker.node_id, LEASE).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook leases unavailable");
                    continue;
                }
            };
            for sub in subs {
                if let std::collections::hash_map::Entry::Vacant(slot) = running.entry(sub.id) {
                    let broker = broker.clone();
                    slot.insert(tokio::spawn(async move { deliver_some(&broker, sub).await }));
                }
            }
        }
    });
}

/// Deliver what waits for one subscription, in order, until caught up or failing.
async fn deliver_some(broker: &Broker, mut sub: db::Subscription) {
    let wants = Controls { kinds: Some(sub.kinds.clone()), ..Controls::default() };
    let events = match store::log::messages_between(&broker.pool, sub.mesh_id, sub.cursor_seq, None, 100).await {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "webhook events unavailable");
            return;
        }
    };
    for m in events {
        let wanted = m.sealing == Sealing::Plain && m.subtype.as_deref().is_some_and(|s| wants.wants_kind(s));
        if !wanted {
            sub.cursor_seq = m.seq;
            continue;
        }
        let event: serde_json::Value = serde_json::from_slice(&m.ciphertext).unwrap_or(serde_json::Value::Null);
        let body = json!({
            "id": m.id, "seq": m.seq, "mesh": sub.mesh_id, "subtype": m.subtype, "from": m.sender_name,
            "sent_at_ms": m.sent_at_ms, "event": event,
        })
        .to_string();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let outcome = post(&sub, &m.id.to_string(), body.clone()).await;
            let ok = matches!(outcome, Ok(s) if (200..300).contains(&s));
            match db::attempted(&broker.pool, &sub, &broker.node_id, m.seq, attempt, outcome).await {
                Ok(Some(failures)) => sub.failures = failures,
                // Another node holds the lease now: it delivers from here.
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "could not record a webhook attempt");
                    return;
                }
            }
            if ok {
                break;
            }
            if sub.failures >= broker.cfg.webhooks.max_failures.max(1) {
                disable(broker, &sub).await;
                return;
            }
            tokio::time::sleep(backoff(attempt)).await;
        }
        sub.cursor_seq = m.seq;
    }
}

/// 250 ms doubling to a minute, each with up to half again of jitter.
fn backoff(attempt: u32) -> Duration {
    let base = 250u64.saturating_mul(1 << attempt.min(8)).min(60_000);
    Duration::from_millis(base + u64::from(plexus_crypto::random_below((base / 2).max(1) as u32)))
}

async fn disable(broker: &Broker, sub: &db::Subscription) {
    let result = async {
        let mut client = broker.pool.get().await?;
        let tx = client.transaction().await?;
        db::disable(&tx, sub.mesh_id, sub.id).await?;
        let detail = json!({ "url": sub.url, "failures": sub.failures });
        let actor = store::audit::Actor { member: None, name: "broker" };
        store::audit::append(&tx, sub.mesh_id, actor, "webhook.disabled", &sub.id.to_string(), detail).await?;
        tx.commit().await?;
        Ok::<(), store::StoreError>(())
    }
    .await;
    match result {
        Ok(()) => {
            tracing::warn!(subscription = %sub.id, failures = sub.failures, "webhook disabled after failing in a row");
        }
        Err(e) => tracing::warn!(error = %e, "could not disable a failing webhook"),
    }
}

/// One signed `POST`; the HTTP status, or why there was none.
async fn post(sub: &db::Subscription, idempotency_key: &str, body: String) -> Result<u16, String> {
    let timestamp = (crate::clock::now_ms() / 1000).to_string();
    let mac = plexus_crypto::hmac_sha256(&sub.secret, &[&wh::signed_bytes(&timestamp, body.as_bytes())]);
    let signature = format!("sha256={}", plexus_crypto::hex(&mac));
    let (url, key) = (sub.url.clone(), idempotency_key.to_owned());
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(REQUEST_TIMEOUT))
            .http_status_as_error(false)
            .build()
            .into();
        agent
            .post(&url)
            .header("content-type", "application/json")
            .header(wh::TIMESTAMP_HEADER, &timestamp)
            .header(wh::SIGNATURE_HEADER, &signature)
            .header(wh::IDEMPOTENCY_HEADER, &key)
            .send(&body)
            .map(|r| r.status().as_u16())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_a_minute_with_jitter() {
        assert!((250..=375 + 250).contains(&(backoff(0).as_millis() as u64)));
        let b3 = backoff(3).as_millis() as u64;
        assert!((2000..3000).contains(&b3), "{b3}");
        assert!(backoff(30).as_millis() as u64 <= 90_000);
    }
}
