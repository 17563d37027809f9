//! The local API: a Unix socket (`/run/vrrpd/NAME.sock`, next to the pid
//! file, mode 0600) speaking newline-delimited JSON, and the client the
//! CLI verbs use.
//!
//! A client sends one request line and reads:
//! - `{"command":"status"}`: one line, the full status document;
//! - `{"command":"events"}`: the event stream, one JSON object a line,
//!   until it hangs up (the modern notify FIFO: state changes with their
//!   reason, sync groups, tracked objects, real servers, quorums, checks,
//!   reloads with their diff, maintenance, address repairs);
//! - `{"command":"maintenance","name":N,"on":true|false}`: an instance or
//!   a sync group in (or out of) maintenance; one reply line;
//! - `{"command":"diff","config":PATH}`: what a reload to PATH would
//!   change, nothing applied; one reply line;
//! - `{"command":"dump"}`: the flight recorder (`flight_record`: a header
//!   object, then one object per record); one reply line;
//! - `{"command":"reload","dry_run":false|true}`: what SIGHUP does, with
//!   the answer: `result` (`applied`, or `dry_run` when nothing was
//!   applied) and the diff (`changes`, `text`); a refused reload is an
//!   error naming why (a configuration error names file, line and key).
//!
//! Replies are `{"ok":true,...}` or `{"ok":false,"error":"..."}`. The
//! socket task only parses and forwards: the daemon loop answers
//! ([`Request`] with a reply channel), so a reply reflects its state.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, anyhow};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt as _, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Longest request line.
pub const MAX_REQUEST: usize = 64 * 1024;
/// Time a client has to send its request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once (event followers included); beyond that a
/// new one is refused with an error line.
pub const MAX_CLIENTS: usize = 64;
/// Events buffered for a slow follower before it misses some (it is told
/// how many).
pub const EVENT_BUFFER: usize = 4096;

/// A request line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// The status document.
    Status,
    /// Follow the event stream.
    Events,
    /// Maintenance on or off for an instance or a sync group.
    Maintenance {
        /// Instance or sync group name.
        name: String,
        /// On or off.
        on: bool,
    },
    /// What a reload to `config` would change (nothing applied).
    Diff {
        /// The configuration file (absolute, as the daemon reads it).
        config: PathBuf,
    },
    /// The flight recorder's contents.
    Dump,
    /// Read the configuration file again and apply it (SIGHUP), or only
    /// say what that would change.
    Reload {
        /// Only the diff; nothing applied.
        #[serde(default)]
        dry_run: bool,
    },
}

/// A request for the daemon loop, with where to answer.
#[derive(Debug)]
pub struct Request {
    /// What is asked.
    pub command: Command,
    /// The reply: a JSON object (`ok` is added when missing).
    pub reply: oneshot::Sender<Result<serde_json::Value, String>>,
}

/// The event stream's sender: serialised JSON lines.
pub type Events = broadcast::Sender<Arc<str>>;

/// A new event stream sender.
pub fn events() -> Events {
    broadcast::channel(EVENT_BUFFER).0
}

/// Publishes `event` (a JSON object) on the stream, with its wall-clock
/// time (`ts`, seconds since the epoch) added; nobody listening is fine.
pub fn publish(events: &Events, mut event: serde_json::Value) {
    if events.receiver_count() == 0 {
        return;
    }
    if let Some(obj) = event.as_object_mut() {
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        obj.insert("ts".to_owned(), serde_json::json!(ts));
    }
    let _ = events.send(Arc::from(event.to_string()));
}

/// Binds the socket at `path` (mode 0600, its directory created). The
/// caller holds the pid-file lock, so a file already there is a stale
/// socket of a dead daemon and is replaced.
pub fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(anyhow!(e).context(format!("removing {}", path.display()))),
    }
    // Created 0600 from the start: no window where others may connect.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = std::os::unix::net::UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = bound.with_context(|| format!("control socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("control socket {}", path.display()))?;
    listener.set_nonblocking(true)?;
    Ok(UnixListener::from_std(listener)?)
}

/// Serves the socket until `cancel`, then removes it.
pub async fn serve(
    listener: UnixListener,
    path: PathBuf,
    requests: mpsc::Sender<Request>,
    events: Events,
    cancel: CancellationToken,
) {
    tracing::info!(socket = %path.display(), "control socket up");
    let clients = Arc::new(AtomicUsize::new(0));
    loop {
        let stream = tokio::select! {
            () = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "control socket: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (requests, events, cancel) = (requests.clone(), events.clone(), cancel.clone());
        let clients = clients.clone();
        tokio::spawn(async move {
            let mut stream = stream;
            if clients.fetch_add(1, Ordering::Relaxed) >= MAX_CLIENTS {
                let _ = write_line(
                    &mut stream,
                    &serde_json::json!({"ok": false, "error": "too many clients"}),
                )
                .await;
            } else {
                tokio::select! {
                    () = cancel.cancelled() => {}
                    r = client(stream, requests, events) => {
                        if let Err(e) = r {
                            tracing::debug!(error = %e, "control socket client");
                        }
                    }
                }
            }
            clients.fetch_sub(1, Ordering::Relaxed);
        });
    }
    let _ = std::fs::remove_file(&path);
}

async fn write_line(stream: &mut UnixStream, value: &serde_json::Value) -> std::io::Result<()> {
    let mut line = value.to_string();
    line.push('\n');
    stream.write_all(line.as_bytes()).await
}

async fn client(
    stream: UnixStream,
    requests: mpsc::Sender<Request>,
    events: Events,
) -> anyhow::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    let read = tokio::time::timeout(
        REQUEST_TIMEOUT,
        (&mut reader)
            .take(MAX_REQUEST as u64)
            .read_until(b'\n', &mut line),
    )
    .await;
    let mut stream = reader.into_inner();
    let command = match read {
        Err(_) => return Err(anyhow!("no request in time")),
        Ok(r) => {
            r?;
            serde_json::from_slice::<Command>(&line)
        }
    };
    let command = match command {
        Ok(c) => c,
        Err(e) => {
            let err = serde_json::json!({"ok": false, "error": format!("bad request: {e}")});
            write_line(&mut stream, &err).await?;
            return Ok(());
        }
    };
    if command == Command::Events {
        let mut rx = events.subscribe();
        write_line(
            &mut stream,
            &serde_json::json!({"ok": true, "type": "hello"}),
        )
        .await?;
        loop {
            match rx.recv().await {
                Ok(e) => {
                    stream.write_all(e.as_bytes()).await?;
                    stream.write_all(b"\n").await?;
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    let lag = serde_json::json!({"type": "lagged", "missed": n});
                    write_line(&mut stream, &lag).await?;
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            }
        }
    }
    let (tx, rx) = oneshot::channel();
    requests
        .send(Request { command, reply: tx })
        .await
        .map_err(|_| anyhow!("the daemon is stopping"))?;
    let reply = match rx.await {
        Ok(Ok(mut v)) => {
            if let Some(o) = v.as_object_mut() {
                o.entry("ok").or_insert(serde_json::Value::Bool(true));
            }
            v
        }
        Ok(Err(e)) => serde_json::json!({"ok": false, "error": e}),
        Err(_) => serde_json::json!({"ok": false, "error": "the daemon is stopping"}),
    };
    write_line(&mut stream, &reply).await?;
    Ok(())
}

/// Sends `command` to the daemon at `socket` and returns its one reply;
/// an `ok: false` reply is an error with the daemon's words.
pub async fn call(socket: &Path, command: &Command) -> anyhow::Result<serde_json::Value> {
    let stream = connect(socket).await?;
    let mut reader = BufReader::new(stream);
    send(reader.get_mut(), command).await?;
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    anyhow::ensure!(!line.is_empty(), "the daemon closed the connection");
    let v: serde_json::Value = serde_json::from_str(&line).context("reply")?;
    if v["ok"] == serde_json::Value::Bool(true) {
        Ok(v)
    } else {
        Err(anyhow!(
            "{}",
            v["error"].as_str().unwrap_or("the daemon refused")
        ))
    }
}

/// Follows the event stream at `socket`, calling `each` with every line
/// (the first is the greeting, `{"ok":true,"type":"hello"}`) until the
/// daemon hangs up or `each` returns false.
pub async fn follow(socket: &Path, mut each: impl FnMut(&str) -> bool) -> anyhow::Result<()> {
    let stream = connect(socket).await?;
    let mut reader = BufReader::new(stream);
    send(reader.get_mut(), &Command::Events).await?;
    let mut lines = reader.lines();
    let first = lines.next_line().await?.context("no answer")?;
    let v: serde_json::Value = serde_json::from_str(&first).context("reply")?;
    if v["ok"] != serde_json::Value::Bool(true) {
        anyhow::bail!("{}", v["error"].as_str().unwrap_or("the daemon refused"));
    }
    // The greeting too: a reader knows from it that it is subscribed.
    if !each(&first) {
        return Ok(());
    }
    while let Some(line) = lines.next_line().await? {
        if !each(&line) {
            break;
        }
    }
    Ok(())
}

async fn connect(socket: &Path) -> anyhow::Result<UnixStream> {
    UnixStream::connect(socket).await.with_context(|| {
        format!(
            "cannot reach the daemon at {} (is it running, under this --name?)",
            socket.display()
        )
    })
}

async fn send(stream: &mut UnixStream, command: &Command) -> anyhow::Result<()> {
    let mut line = serde_json::to_string(command)?;
    line.push('\n');
    stream.write_all(line.as_bytes()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_tagged_json() {
        let c: Command =
            serde_json::from_str(r#"{"command":"maintenance","name":"VI_1","on":true}"#)
                .expect("parse");
        assert_eq!(
            c,
            Command::Maintenance {
                name: "VI_1".into(),
                on: true
            }
        );
        assert!(serde_json::from_str::<Command>(r#"{"command":"rm -rf"}"#).is_err());
        assert_eq!(
            serde_json::from_str::<Command>(r#"{"command":"reload"}"#).expect("parse"),
            Command::Reload { dry_run: false }
        );
        assert_eq!(
            serde_json::to_string(&Command::Reload { dry_run: true }).expect("json"),
            r#"{"command":"reload","dry_run":true}"#
        );
        assert_eq!(
            serde_json::to_string(&Command::Status).expect("json"),
            r#"{"command":"status"}"#
        );
    }

    #[tokio::test]
    async fn a_client_gets_its_reply_and_followers_the_events() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("vrrpd-api-{}", std::process::id()));
        let path = dir.join("t.sock");
        let listener = bind(&path)?;
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&path)?.permissions().mode() & 0o777,
            0o600
        );
        let (tx, mut rx) = mpsc::channel::<Request>(4);
        let events = events();
        let cancel = CancellationToken::new();
        let server = tokio::spawn(serve(
            listener,
            path.clone(),
            tx,
            events.clone(),
            cancel.clone(),
        ));
        tokio::spawn(async move {
            while let Some(r) = rx.recv().await {
                let _ = r.reply.send(match r.command {
                    Command::Status => Ok(serde_json::json!({"status": 1})),
                    _ => Err("no".to_owned()),
                });
            }
        });
        let v = call(&path, &Command::Status).await?;
        assert_eq!(v["status"], 1);
        assert_eq!(v["ok"], true);
        let e = call(
            &path,
            &Command::Diff {
                config: "/x".into(),
            },
        )
        .await
        .expect_err("refused");
        assert_eq!(e.to_string(), "no");

        let follower = tokio::spawn({
            let path = path.clone();
            async move {
                let mut got = Vec::new();
                follow(&path, |l| {
                    got.push(l.to_owned());
                    got.len() < 3
                })
                .await
                .map(|()| got)
            }
        });
        while events.receiver_count() == 0 {
            tokio::task::yield_now().await;
        }
        publish(&events, serde_json::json!({"type": "a"}));
        publish(&events, serde_json::json!({"type": "b"}));
        let got = follower.await??;
        let types: Vec<String> = got
            .iter()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).expect("json")["type"].to_string()
            })
            .collect();
        assert_eq!(types, ["\"hello\"", "\"a\"", "\"b\""]);
        cancel.cancel();
        server.await?;
        assert!(!path.exists(), "socket removed at exit");
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}
