//! Routes and listeners: `/ws`, `/health`, `/ready`, `/metrics`, the web app at `/`, and
//! webhooks in at `/hooks/<mesh>/<hook>`.

use std::{fs::File, io::BufReader, sync::Arc};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use anyhow::Context;

use super::socket::SocketKiller;
use crate::admission::Limits;
use crate::app::Broker;

async fn health() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

async fn ready(broker: web::Data<Arc<Broker>>) -> HttpResponse {
    if !broker.ready.load(std::sync::atomic::Ordering::SeqCst) {
        return HttpResponse::ServiceUnavailable().body("starting\n");
    }
    let pg = match broker.pool.get().await {
        Ok(client) => client.query_one("SELECT 1", &[]).await.map(|_| ()).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = pg {
        return HttpResponse::ServiceUnavailable().body(format!("postgres: {e}\n"));
    }
    // Cluster mode: not ready until the pub/sub subscription is up. A later Redis outage keeps
    // the node ready (it serves its local sessions and catches up from the log; the
    // plexus_redis_connected gauge is what alerts), instead of taking every node out at once.
    if !broker.fanout.ready() {
        return HttpResponse::ServiceUnavailable().body("redis: pub/sub not established yet\n");
    }
    HttpResponse::Ok().content_type("text/plain").body("ready\n")
}

async fn metrics(broker: web::Data<Arc<Broker>>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(crate::metrics::render(&broker.pool, &broker.backlog))
}

async fn ws(req: HttpRequest, body: web::Payload, broker: web::Data<Arc<Broker>>) -> actix_web::Result<HttpResponse> {
    if !broker.ready.load(std::sync::atomic::Ordering::SeqCst) {
        return Ok(HttpResponse::ServiceUnavailable().body("not ready\n"));
    }
    let http = &broker.cfg.http;
    let limits = Limits {
        max_connections: http.max_connections,
        max_per_address: http.max_connections_per_address,
        max_pending_per_address: http.max_pending_hellos_per_address,
    };
    let slot = match broker.admission.admit(req.peer_addr().map(|a| a.ip()), limits) {
        Ok(slot) => slot,
        Err(refusal) => {
            crate::metrics::connections_refused().with_label_values(&[refusal.as_str()]).inc();
            return Ok(HttpResponse::ServiceUnavailable()
                .insert_header(("Retry-After", "5"))
                .body(format!("{refusal}\n")));
        }
    };
    let killer = req.conn_data::<Arc<SocketKiller>>().cloned();
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let broker = broker.get_ref().clone();
    actix_web::rt::spawn(super::connection::run(broker, session, stream, slot, killer));
    Ok(response)
}

fn tls_config(cert: &str, key: &str) -> anyhow::Result<rustls::ServerConfig> {
    use rustls_pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_reader_iter(&mut BufReader::new(
        File::open(cert).with_context(|| format!("opening tls_cert {cert}"))?,
    ))
    .collect::<Result<_, _>>()
    .context("reading tls_cert")?;
    let key = PrivateKeyDer::from_pem_reader(&mut BufReader::new(
        File::open(key).with_context(|| format!("opening tls_key {key}"))?,
    ))
    .context("reading tls_key")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?)
}

/// Build the HTTP server(s); run the returned future inside an actix system. Signals are the
/// caller's: the node drains (see `app::drain`) before the server stops.
pub fn build(broker: Arc<Broker>) -> anyhow::Result<actix_web::dev::Server> {
    let cfg = broker.cfg.http.clone();
    let data = web::Data::new(broker.clone());
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/ws", web::get().to(ws))
            .route("/health", web::get().to(health))
            .route("/ready", web::get().to(ready))
            .route("/metrics", web::get().to(metrics))
            .route("/", web::get().to(super::web::serve))
            .route("/assets/{file:.*}", web::get().to(super::web::serve))
            .route("/hooks/{mesh}/{hook}", web::post().to(super::webhooks::receive))
    })
    // Pushes are small frames written as they happen; with Nagle on, each one waits for the
    // peer's delayed ACK of the previous (measured: ~20 ms added to reminder pushes at 100/s).
    .tcp_nodelay(true)
    // Keep a handle on each socket so a peer that stops reading can be cut off for good.
    .on_connect(|conn, ext| {
        if let Some(killer) = SocketKiller::for_connection(conn) {
            ext.insert(Arc::new(killer));
        }
    })
    .disable_signals()
    .shutdown_timeout(5);
    server = server.workers(socket_workers(cfg.workers));
    if !cfg.listen.is_empty() {
        server = server.bind(&cfg.listen).with_context(|| format!("binding {}", cfg.listen))?;
        tracing::info!(listen = %cfg.listen, node_id = %broker.node_id, "serving ws://{}/ws", cfg.listen);
    }
    if !cfg.tls_listen.is_empty() {
        let tls = tls_config(&cfg.tls_cert, &cfg.tls_key)?;
        server =
            server.bind_rustls_0_23(&cfg.tls_listen, tls).with_context(|| format!("binding {}", cfg.tls_listen))?;
        tracing::info!(listen = %cfg.tls_listen, "serving wss://{}/ws", cfg.tls_listen);
    }
    Ok(server.run())
}

/// actix worker threads: as configured, or half the cores (at least one). The broker's own
/// runtime does the work (actors, writers, dispatch); socket threads only move frames, and
/// one per core each would make every message cross more threads than there are cores —
/// measured on 2 cores, one socket thread gave 13% more 1:1 throughput and a lower p99 at
/// 5,000 msgs/s (benches/README.md).
fn socket_workers(configured: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}
