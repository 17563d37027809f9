//! keepalived's `bindto`, `bind_port` and `bind_if`, and HTTP_GET's
//! `regex`, imported from a keepalived.conf and run by the real check
//! runner on real sockets across two network namespaces: the real server
//! sees the TCP check come from the bound address and port; a check of the
//! real server's IPv6 link-local address works through `bind_if` and is a
//! clean failure through an interface that is not there; the body regex
//! and `regex_no_match` decide up and down on the server's real answer.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use healthcheck::{Health, Runner, RunnerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use vrrp_net::testnet::Lan;

use super::{Options, import_str};
use crate::config::{self, Target};

const PORT: u16 = 8080;
const BIND_PORT: u16 = 40_123;

/// A web server on every address of its namespace: notes each peer and
/// answers `state: ready`.
async fn web_server(peers: Arc<Mutex<Vec<SocketAddr>>>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(("::", PORT)).await?;
    loop {
        let (mut conn, peer) = listener.accept().await?;
        if let Ok(mut p) = peers.lock() {
            p.push(peer);
        }
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let _ = tokio::time::timeout(Duration::from_millis(200), conn.read(&mut buf)).await;
            let _ = conn
                .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 12\r\n\r\nstate: ready")
                .await;
        });
    }
}

#[test]
fn check_sources_and_regexes_on_real_sockets() -> anyhow::Result<()> {
    let lan = Lan::new(2).map_err(|e| anyhow::anyhow!("{e}"))?;
    let checker = lan.router(1).map_err(|e| anyhow::anyhow!("{e}"))?;
    let server = lan.router(2).map_err(|e| anyhow::anyhow!("{e}"))?;
    checker
        .ns()
        .ip(&["addr", "add", "192.0.2.201/24", "dev", "eth0"])
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let peers = Arc::new(Mutex::new(Vec::new()));
    let seen = peers.clone();
    let _web = server.spawn(move || web_server(seen));
    let rs4 = server.ipv4();
    let link_local = server.link_local();
    let conf = format!(
        r#"virtual_server 192.0.2.50 {PORT} {{
    protocol TCP
    delay_loop 1
    real_server {rs4} {PORT} {{
        TCP_CHECK {{
            bindto 192.0.2.201
            bind_port {BIND_PORT}
        }}
        HTTP_GET {{
            url {{
                path /
                regex "state: (ready|warming)"
            }}
        }}
    }}
}}
virtual_server 2001:db8::50 {PORT} {{
    protocol TCP
    delay_loop 1
    real_server 2001:db8::2 {PORT} {{
        TCP_CHECK {{
            connect_ip {link_local}
            bind_if eth0
        }}
        TCP_CHECK {{
            connect_ip {link_local}
            bind_if eth9
        }}
        HTTP_GET {{
            url {{
                path /
                regex ready
                regex_no_match
            }}
        }}
    }}
}}
"#
    );
    let imported = import_str(
        &conf,
        std::path::Path::new("keepalived.conf"),
        &Options::default(),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    assert!(imported.warnings.is_empty(), "{:#?}", imported.warnings);
    let (outcome, errors) = config::read(
        &imported.toml(),
        std::path::Path::new("out.toml"),
        Target::OtherHost,
    );
    assert!(errors.is_empty(), "{errors:#?}");
    let specs: Vec<healthcheck::CheckSpec> = crate::plan::plan(&outcome.effective)
        .virtual_servers
        .into_iter()
        .flat_map(|v| v.real_servers)
        .flat_map(|r| r.checks)
        .collect();
    assert_eq!(specs.len(), 5);
    // Run them in the checker's namespace until each has a verdict.
    let verdicts = checker
        .ns()
        .run(move || async move {
            let runner = Runner::spawn(RunnerConfig::default(), CancellationToken::new());
            let mut ids = Vec::new();
            for mut spec in specs {
                spec.timing.initial = Health::Down;
                spec.timing.warmup = Duration::ZERO;
                spec.timing.retry = 0;
                let name = spec.name.clone();
                ids.push((name, runner.add(spec)?));
            }
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            let mut out = Vec::new();
            for (name, id) in ids {
                let mut watch = runner
                    .watch(id)
                    .ok_or_else(|| anyhow::anyhow!("no watch"))?;
                loop {
                    let status = watch.borrow_and_update().clone();
                    if status.stats.successes + status.stats.failures > 0 {
                        out.push((
                            name,
                            status.health,
                            status.last_reason.map(|r| r.to_string()),
                        ));
                        break;
                    }
                    tokio::time::timeout_at(deadline, watch.changed()).await??;
                }
            }
            runner.shutdown().await;
            Ok::<_, anyhow::Error>(out)
        })
        .map_err(|e| anyhow::anyhow!("{e}"))??;
    let health: Vec<Health> = verdicts.iter().map(|v| v.1).collect();
    assert_eq!(
        health,
        [
            Health::Up,
            Health::Up,
            Health::Up,
            Health::Down,
            Health::Down
        ],
        "{verdicts:#?}"
    );
    // The eth9 check failed binding its interface; the no-match check
    // failed on the body.
    assert!(
        verdicts[3]
            .2
            .as_deref()
            .is_some_and(|r| r.contains("bind_if")),
        "{verdicts:#?}"
    );
    assert!(
        verdicts[4]
            .2
            .as_deref()
            .is_some_and(|r| r.contains("regex_no_match")),
        "{verdicts:#?}"
    );
    let peers = peers.lock().map(|p| p.clone()).unwrap_or_default();
    let bound = SocketAddr::from(([192, 0, 2, 201], BIND_PORT));
    assert!(
        peers
            .iter()
            .any(|p| p.ip().to_canonical() == bound.ip() && p.port() == BIND_PORT),
        "no connection from {bound}: {peers:?}"
    );
    assert!(
        peers
            .iter()
            .any(|p| matches!(p, SocketAddr::V6(v6) if *v6.ip() == checker.link_local())),
        "no connection from the checker's link-local address: {peers:?}"
    );
    Ok(())
}
