//! keepalived's check retry defaults reach the running checks: imported
//! from a keepalived.conf that sets no `retry` and no
//! `delay_before_retry`, an HTTP_GET answered 500 is tried twice, 3 s
//! apart (keepalived's HTTP default); a DNS_CHECK left unanswered four
//! times, delay_loop apart after each timeout (retry 3, delay_before_retry
//! = delay_loop); a failing MISC_CHECK once (retry 0); then the real
//! server is down. Real sockets, a real script, the real check runner.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use healthcheck::{Health, Runner, RunnerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::{Options, import_str};
use crate::config::{self, Target};

type Seen = Arc<Mutex<Vec<Instant>>>;

fn record(seen: &Seen) {
    if let Ok(mut s) = seen.lock() {
        s.push(Instant::now());
    }
}

/// The attempts a server saw before `until` (when the runner decided the
/// check was down): the runner goes on trying a down server every
/// delay_loop, and under load this test may read the transition late.
fn times(seen: &Seen, until: Instant) -> Vec<Instant> {
    seen.lock()
        .map(|s| s.iter().copied().filter(|t| *t <= until).collect())
        .unwrap_or_default()
}

fn gaps(t: &[Instant]) -> Vec<Duration> {
    t.windows(2).map(|w| w[1] - w[0]).collect()
}

/// An HTTP server that answers every request 500 and notes when.
async fn failing_http(seen: Seen) -> std::io::Result<u16> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                record(&seen);
                let _ = conn
                    .write_all(b"HTTP/1.0 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
                    .await;
            });
        }
    });
    Ok(port)
}

/// A DNS server that never answers and notes each query.
async fn silent_dns(seen: Seen) -> std::io::Result<u16> {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let port = socket.local_addr()?.port();
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while socket.recv_from(&mut buf).await.is_ok() {
            record(&seen);
        }
    });
    Ok(port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_without_retry_settings_retry_as_keepalived_does() -> anyhow::Result<()> {
    let http_seen = Seen::default();
    let dns_seen = Seen::default();
    let http = failing_http(http_seen.clone()).await?;
    let dns = silent_dns(dns_seen.clone()).await?;
    let dir = std::env::temp_dir().join(format!("vrrpd-retry-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let counter = dir.join("misc-runs");
    let script = dir.join("misc.sh");
    std::fs::write(
        &script,
        format!("echo run >> {}\nexit 1\n", counter.display()),
    )?;
    let conf = format!(
        "virtual_server 192.0.2.50 80 {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n\
         \x20 real_server 127.0.0.1 {http} {{\n    HTTP_GET {{\n      url {{\n        path /health\n        status_code 200\n      }}\n      connect_timeout 1\n    }}\n  }}\n\
         \x20 real_server 127.0.0.1 {dns} {{\n    DNS_CHECK {{\n      connect_timeout 1\n      type A\n      name example.org\n    }}\n  }}\n\
         \x20 real_server 127.0.0.2 80 {{\n    MISC_CHECK {{\n      misc_path \"/bin/sh {}\"\n    }}\n  }}\n}}\n",
        script.display()
    );
    let imported = import_str(
        &conf,
        Path::new("keepalived.conf"),
        &Options {
            config_id: "node1".into(),
        },
    )?;
    let (outcome, errors) = config::read(&imported.toml(), Path::new("out.toml"), Target::ThisHost);
    anyhow::ensure!(errors.is_empty(), "{errors:#?}");
    let plan = crate::plan::plan(&outcome.effective);

    let runner = Runner::spawn(RunnerConfig::default(), CancellationToken::new());
    let mut transitions = runner.subscribe();
    let mut ids = Vec::new();
    for rs in &plan.virtual_servers[0].real_servers {
        for c in &rs.checks {
            ids.push((runner.add(c.clone())?, rs.addr));
        }
    }
    anyhow::ensure!(ids.len() == 3, "three checks, got {ids:?}");

    // Attempts each server had seen when it was declared down.
    let misc_runs = || {
        std::fs::read_to_string(&counter)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    let (mut http_down, mut dns_down, mut misc_down) = (None, None, None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while http_down.is_none() || dns_down.is_none() || misc_down.is_none() {
        let t = tokio::time::timeout_at(deadline, transitions.recv()).await??;
        if t.health != Health::Down {
            continue;
        }
        let Some((_, addr)) = ids.iter().find(|(id, _)| *id == t.check) else {
            continue;
        };
        match addr.port() {
            p if p == http => http_down = Some(times(&http_seen, t.at)),
            p if p == dns => dns_down = Some(times(&dns_seen, t.at)),
            _ => misc_down = Some(misc_runs()),
        }
    }
    runner.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);

    let http_down = http_down.unwrap_or_default();
    assert_eq!(http_down.len(), 2, "HTTP_GET: one try and one retry");
    let g = gaps(&http_down)[0];
    assert!(
        g >= Duration::from_millis(2_900) && g < Duration::from_millis(4_500),
        "HTTP_GET retries after 3 s, saw {g:?}"
    );
    let dns_down = dns_down.unwrap_or_default();
    assert_eq!(dns_down.len(), 4, "DNS_CHECK: one try and three retries");
    for g in gaps(&dns_down) {
        assert!(
            g >= Duration::from_millis(1_900) && g < Duration::from_millis(3_500),
            "DNS_CHECK retries delay_loop after a 1 s timeout, saw {g:?}"
        );
    }
    assert_eq!(misc_down, Some(1), "MISC_CHECK: no retry");
    Ok(())
}
