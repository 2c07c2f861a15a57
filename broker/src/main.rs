//! The `plexus-broker` binary: run a node, print or check configuration, apply migrations.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use plexus_broker::{app::Broker, config::Config, edge, store};

#[derive(Parser)]
#[command(name = "plexus-broker", version, about = "A Plexus broker node")]
struct Cli {
    /// Configuration file (TOML); PLEXUS_* environment variables override it.
    #[arg(long, short, global = true, env = "PLEXUS_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the node (the default).
    Run,
    /// Print the default configuration with every key documented.
    DefaultConfig,
    /// Validate a configuration (file + environment) and exit.
    CheckConfig,
    /// Apply database migrations and exit.
    Migrate,
    /// Exit 0 when `GET <url>` answers 200 (container HEALTHCHECK; the image has no shell).
    Healthcheck {
        /// e.g. http://127.0.0.1:7700/health
        #[arg(long, default_value = "http://127.0.0.1:7700/health")]
        url: String,
    },
}

/// A minimal HTTP/1.1 GET for the healthcheck (plain http to a local port only).
fn http_ok(url: &str) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").ok_or_else(|| anyhow::anyhow!("only http:// URLs"))?;
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let addr = std::net::ToSocketAddrs::to_socket_addrs(host)?.next().ok_or_else(|| anyhow::anyhow!("no address"))?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(2)))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head)?;
    if &head[9..12] == b"200" {
        Ok(())
    } else {
        anyhow::bail!("{}", String::from_utf8_lossy(&head))
    }
}

fn init_logging(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.log.filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if cfg.log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// SIGTERM (orchestrators) or SIGINT (Ctrl-C); returns which.
async fn wait_for_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => return "SIGTERM",
                _ = tokio::signal::ctrl_c() => return "SIGINT",
            }
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    "SIGINT"
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::Healthcheck { url } => match http_ok(&url) {
            Ok(()) => Ok(()),
            Err(e) => {
                eprintln!("unhealthy: {e}");
                std::process::exit(1);
            }
        },
        Command::DefaultConfig => {
            print!("{}", plexus_broker::config::DEFAULT_CONFIG);
            Ok(())
        }
        Command::CheckConfig => {
            Config::load(cli.config.as_deref())?;
            println!("configuration ok");
            Ok(())
        }
        Command::Migrate => {
            let cfg = Config::load(cli.config.as_deref())?;
            init_logging(&cfg);
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async {
                let pool = store::connect(&cfg.database.url, 2)?;
                let v = store::migrate::migrate(&pool).await?;
                println!("schema at version {v}");
                anyhow::Ok(())
            })
        }
        Command::Run => {
            let mut cfg = Config::load(cli.config.as_deref())?;
            init_logging(&cfg);
            if let Some(open_files) = plexus_broker::fd_limit::raise_open_files() {
                let capacity = plexus_broker::fd_limit::connection_capacity(open_files);
                if capacity < cfg.http.max_connections {
                    tracing::warn!(
                        open_files,
                        configured = cfg.http.max_connections,
                        allowed = capacity,
                        "the open-file limit allows fewer connections than http.max_connections (each holds two \
                         descriptors); lowering it. Raise the limit (LimitNOFILE, ulimit -n) to allow more"
                    );
                    cfg.http.max_connections = capacity;
                }
            }
            // Actors, writers and dispatchers run here; actix workers only move frames.
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("plexus-broker").build()?;
            let broker = rt.block_on(Broker::start(cfg)).context("starting the broker")?;
            let result = actix_rt::System::new().block_on(async {
                let server = edge::http::build(broker.clone())?;
                let handle = server.handle();
                let running = actix_rt::spawn(server);
                let signal = wait_for_signal().await;
                tracing::info!(node_id = %broker.node_id, signal, "draining");
                let limit = std::time::Duration::from_secs(broker.cfg.node.drain_timeout_secs.max(1));
                let drain = broker.rt.spawn(plexus_broker::app::drain(broker.clone()));
                if tokio::time::timeout(limit, drain).await.is_err() {
                    tracing::warn!("drain did not finish within node.drain_timeout_secs; stopping anyway");
                }
                handle.stop(true).await;
                let _ = running.await;
                anyhow::Ok(())
            });
            tracing::info!(node_id = %broker.node_id, "stopped");
            rt.shutdown_timeout(std::time::Duration::from_secs(5));
            result
        }
    }
}
