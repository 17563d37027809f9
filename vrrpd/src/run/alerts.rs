//! keepalived's notify FIFOs and alert mails.
//!
//! Events come in through an [`AlertSender`] (cloned into the VRRP
//! notifier and the load balancer): a bounded channel, so the state
//! machine never waits. One task writes each event's line to the FIFOs it
//! belongs to, in the order the events happened, and hands mails to a
//! worker with a bounded queue of its own; an event or mail that finds its
//! queue full is dropped and counted, never waited for.
//!
//! FIFO lines are keepalived's (`vrrp_notify.c`, `ipwrapper.c`):
//!
//! ```text
//! INSTANCE "VI_1" MASTER 150
//! GROUP "G1" BACKUP 0
//! VS [192.0.2.1]:tcp:80 DOWN
//! RS [198.51.100.1]:tcp:80 [192.0.2.1]:tcp:80 UP
//! ```
//!
//! A FIFO is created when missing (and removed at exit only then), opened
//! read-write and non-blocking as keepalived opens it, so a missing reader
//! never blocks a write; its script is started first, with the FIFO's path
//! as its last argument, and is sent SIGTERM when vrrpd stops.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use healthcheck::mail::{Mail, rfc5322_date, send_mail};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vrrp_core::State;

use super::plan::{AlertPlan, Command, FifoPlan, SmtpPlan};

/// Events in flight to the alert task before new ones are dropped.
const EVENT_QUEUE: usize = 4096;
/// Mails waiting for the relay before new ones are dropped.
const MAIL_QUEUE: usize = 64;
/// How long the exit waits for queued mails.
const MAIL_GRACE: Duration = Duration::from_secs(2);

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alert {
    /// An instance changed state.
    Instance {
        /// Its name.
        name: String,
        /// The new state.
        state: State,
        /// Its priority now.
        priority: u8,
    },
    /// A sync group changed state.
    Group {
        /// Its name.
        name: String,
        /// The new state.
        state: State,
    },
    /// A virtual server gained or lost quorum.
    VirtualServer {
        /// keepalived's name of it.
        label: String,
        /// Quorum now.
        up: bool,
        /// keepalived's mail body (`=> Lost quorum 1+0=1 <= 0 <=`).
        detail: String,
        /// Whether to mail it.
        smtp: bool,
    },
    /// A real server came up or went down.
    RealServer {
        /// keepalived's name of it.
        label: String,
        /// Its virtual server's.
        vs: String,
        /// Up now.
        up: bool,
    },
    /// A check of a real server changed state (mail only).
    Checker {
        /// The real server.
        label: String,
        /// Its virtual server.
        vs: String,
        /// The real server is up now.
        rs_up: bool,
        /// keepalived's body for the checker (`=> TCP CHECK failed on
        /// service <=`).
        body: String,
    },
}

/// Counters of what was lost rather than waited for.
#[derive(Debug, Default)]
pub struct AlertStats {
    /// Events dropped because the alert task was behind.
    pub events_dropped: AtomicU64,
    /// FIFO lines not written (no room in the FIFO, or an error).
    pub fifo_lines_dropped: AtomicU64,
    /// Mails dropped because the mail queue was full.
    pub mails_dropped: AtomicU64,
    /// Mails the relay accepted.
    pub mails_sent: AtomicU64,
    /// Mails that failed.
    pub mails_failed: AtomicU64,
}

/// Where events are sent from; cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub struct AlertSender {
    tx: Option<mpsc::Sender<Alert>>,
    stats: Arc<AlertStats>,
}

impl AlertSender {
    /// A sender that drops everything (nothing configured).
    pub fn none() -> Self {
        AlertSender {
            tx: None,
            stats: Arc::default(),
        }
    }

    /// Queues an event.
    pub fn send(&self, alert: Alert) {
        if let Some(tx) = &self.tx
            && tx.try_send(alert).is_err()
        {
            self.stats.events_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The running alert task.
pub struct Alerts {
    sender: AlertSender,
    task: Option<JoinHandle<()>>,
    /// Cancelled by [`Alerts::finish`]: the task writes what is queued and
    /// ends, whoever still holds a sender.
    closing: CancellationToken,
}

struct OpenFifo {
    plan: FifoPlan,
    file: Option<std::fs::File>,
    created: bool,
    reader: Option<std::process::Child>,
}

impl Alerts {
    /// Opens the FIFOs (starting their readers first) and starts the task;
    /// with nothing configured, a sender that drops everything.
    pub fn start(plan: &AlertPlan, router_id: &str) -> Alerts {
        if plan.fifos.is_empty() && plan.smtp.is_none() {
            return Alerts {
                sender: AlertSender::none(),
                task: None,
                closing: CancellationToken::new(),
            };
        }
        let stats = Arc::new(AlertStats::default());
        let fifos: Vec<OpenFifo> = plan.fifos.iter().filter_map(open_fifo).collect();
        let mail = plan.smtp.clone().map(|smtp| {
            let (tx, rx) = mpsc::channel(MAIL_QUEUE);
            let worker = tokio::spawn(mail_worker(smtp.clone(), rx, stats.clone()));
            (smtp, tx, worker)
        });
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let state = Task {
            fifos,
            mail,
            instances: plan.instances.clone(),
            groups: plan.groups.clone(),
            router_id: router_id.to_owned(),
            last_mailed: HashMap::new(),
            stats: stats.clone(),
        };
        let closing = CancellationToken::new();
        Alerts {
            sender: AlertSender {
                tx: Some(tx),
                stats,
            },
            task: Some(tokio::spawn(state.run(rx, closing.clone()))),
            closing,
        }
    }

    /// A sender for the event sources.
    pub fn sender(&self) -> AlertSender {
        self.sender.clone()
    }

    /// Writes what is queued, waits for queued mails (each within its
    /// time limit), stops the readers and removes the FIFOs vrrpd made.
    pub async fn finish(mut self) {
        self.sender.tx = None;
        self.closing.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
            let s = &self.sender.stats;
            let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
            tracing::info!(
                events_dropped = n(&s.events_dropped),
                fifo_lines_dropped = n(&s.fifo_lines_dropped),
                mails_sent = n(&s.mails_sent),
                mails_failed = n(&s.mails_failed),
                mails_dropped = n(&s.mails_dropped),
                "alerts stopped"
            );
        }
    }
}

/// keepalived's `fifo_open`: create when missing (owned as configured),
/// start the reader, then open read-write and non-blocking.
fn open_fifo(plan: &FifoPlan) -> Option<OpenFifo> {
    let path = &plan.path;
    let created = match nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o644)) {
        Ok(()) => {
            if let Some((uid, gid)) = plan.owner
                && let Err(e) = std::os::unix::fs::chown(path, Some(uid), gid)
            {
                tracing::warn!(fifo = %path.display(), error = %e, "cannot set the FIFO's owner");
            }
            true
        }
        Err(nix::errno::Errno::EEXIST) => false,
        Err(e) => {
            tracing::error!(fifo = %path.display(), error = %e, "cannot create notify FIFO");
            return None;
        }
    };
    let reader = plan.script.as_ref().and_then(|s| start_reader(s, path));
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc_flags())
        .open(path)
    {
        Ok(file) => Some(OpenFifo {
            plan: plan.clone(),
            file: Some(file),
            created,
            reader,
        }),
        Err(e) => {
            tracing::error!(fifo = %path.display(), error = %e, "cannot open notify FIFO");
            if created {
                let _ = std::fs::remove_file(path);
            }
            if let Some(mut r) = reader {
                let _ = r.kill();
                let _ = r.wait();
            }
            None
        }
    }
}

/// `O_NONBLOCK | O_NOFOLLOW`, as keepalived opens its FIFOs.
fn libc_flags() -> i32 {
    (nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_NOFOLLOW).bits()
}

/// Starts a FIFO's reader with the path appended, in its own process
/// group.
fn start_reader(command: &Command, fifo: &std::path::Path) -> Option<std::process::Child> {
    let path = fifo.display().to_string();
    let mut cmd = if command.shell {
        let mut c = std::process::Command::new("/bin/sh");
        c.args(["-c", &command.argv.join(" "), "vrrpd-notify-fifo", &path]);
        c
    } else {
        let mut argv = command.argv.iter();
        let mut c = std::process::Command::new(argv.next()?);
        c.args(argv).arg(&path);
        c
    };
    cmd.stdin(std::process::Stdio::null()).process_group(0);
    if let Some(gid) = command.gid {
        cmd.gid(gid);
    }
    if let Some(uid) = command.uid {
        cmd.uid(uid);
    }
    match cmd.spawn() {
        Ok(child) => Some(child),
        Err(e) => {
            tracing::error!(script = ?command.argv, error = %e, "cannot start the notify FIFO's script");
            None
        }
    }
}

/// Waits up to `limit` for the reader to exit.
async fn exited(child: &mut std::process::Child, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A reader whose FIFO was closed: time to read what is left and see the
/// end, then SIGTERM to its process group (as keepalived stops its
/// children), SIGKILL a second later.
async fn stop_reader(child: &mut std::process::Child) {
    if exited(child, Duration::from_millis(500)).await {
        return;
    }
    let Ok(pid) = i32::try_from(child.id()) else {
        return;
    };
    let group = nix::unistd::Pid::from_raw(-pid);
    let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGTERM);
    if !exited(child, Duration::from_secs(1)).await {
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
        let _ = exited(child, Duration::from_secs(1)).await;
    }
}

/// keepalived's state words in FIFO lines (a stopped instance is back in
/// Initialize: STOP).
fn state_word(state: State) -> &'static str {
    state.keepalived_name()
}

/// keepalived's FIFO line of an event (`None`: mail only).
pub fn fifo_line(alert: &Alert) -> Option<String> {
    Some(match alert {
        Alert::Instance {
            name,
            state,
            priority,
        } => format!("INSTANCE \"{name}\" {} {priority}\n", state_word(*state)),
        Alert::Group { name, state } => format!("GROUP \"{name}\" {} 0\n", state_word(*state)),
        Alert::VirtualServer { label, up, .. } => {
            format!("VS {label} {}\n", if *up { "UP" } else { "DOWN" })
        }
        Alert::RealServer { label, vs, up } => {
            format!("RS {label} {vs} {}\n", if *up { "UP" } else { "DOWN" })
        }
        Alert::Checker { .. } => return None,
    })
}

/// keepalived's subject and body of a VRRP state change (`smtp.c`,
/// `vrrp_notify.c`); `None` for a state it does not mail.
fn vrrp_mail(router_id: &str, group: bool, name: &str, state: State) -> Option<(String, String)> {
    let (what, body) = match (group, state) {
        (false, State::Master) => (
            "Entering MASTER state",
            "=> VRRP Instance is now owning VRRP VIPs <=",
        ),
        (false, State::Backup) => (
            "Entering BACKUP state",
            "=> VRRP Instance is no longer owning VRRP VIPs <=",
        ),
        (false, State::Fault) => (
            "Entering FAULT state",
            "=> VRRP Instance is no longer owning VRRP VIPs <=",
        ),
        (false, State::Initialize) => ("Stopping", "=> VRRP Instance stopping <="),
        (true, State::Master) => (
            "Entering MASTER state",
            "=> All VRRP group instances are now in MASTER state <=",
        ),
        (true, State::Backup) => (
            "Entering BACKUP state",
            "=> All VRRP group instances are now in BACKUP state <=",
        ),
        (true, State::Fault) => (
            "Entering FAULT state",
            "=> All VRRP group instances are now in FAULT state <=",
        ),
        (true, State::Initialize) => (
            "Stopping",
            "=> All VRRP group instances are now stopping <=",
        ),
        _ => return None,
    };
    let kind = if group { "Group" } else { "Instance" };
    Some((
        format!("[{router_id}] VRRP {kind} {name} - {what}"),
        body.to_owned(),
    ))
}

struct Task {
    fifos: Vec<OpenFifo>,
    mail: Option<(SmtpPlan, mpsc::Sender<Mail>, JoinHandle<()>)>,
    instances: std::collections::BTreeSet<String>,
    groups: std::collections::BTreeSet<String>,
    router_id: String,
    /// keepalived's `last_email_state`: no second mail for one state.
    last_mailed: HashMap<(bool, String), State>,
    stats: Arc<AlertStats>,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::Receiver<Alert>, closing: CancellationToken) {
        loop {
            tokio::select! {
                biased;
                alert = rx.recv() => match alert {
                    Some(alert) => self.handle(&alert),
                    None => break,
                },
                () = closing.cancelled() => {
                    // Senders may outlive the exit (an event source still
                    // held): what is queued is written, later sends drop.
                    rx.close();
                    while let Some(alert) = rx.recv().await {
                        self.handle(&alert);
                    }
                    break;
                }
            }
        }
        // Closed first, so that a reader sees the end after the last line.
        for f in &mut self.fifos {
            f.file = None;
        }
        for f in &mut self.fifos {
            if let Some(r) = &mut f.reader {
                stop_reader(r).await;
            }
            if f.created {
                let _ = std::fs::remove_file(&f.plan.path);
            }
        }
        if let Some((_, tx, mut worker)) = self.mail.take() {
            drop(tx);
            // Like keepalived, do not hold the exit for a slow relay: what
            // is not sent in two seconds is lost (and logged).
            if tokio::time::timeout(MAIL_GRACE, &mut worker).await.is_err() {
                worker.abort();
                tracing::warn!("alert mails still queued at exit were not sent");
            }
        }
    }

    fn handle(&mut self, alert: &Alert) {
        if let Some(line) = fifo_line(alert) {
            let vrrp = matches!(alert, Alert::Instance { .. } | Alert::Group { .. });
            for f in &mut self.fifos {
                if let Some(file) = &mut f.file
                    && ((vrrp && f.plan.vrrp) || (!vrrp && f.plan.lvs))
                {
                    // One write of a line shorter than PIPE_BUF: whole or
                    // not at all.
                    if file.write(line.as_bytes()).ok() != Some(line.len()) {
                        self.stats
                            .fifo_lines_dropped
                            .fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        let Some((smtp, _, _)) = &self.mail else {
            return;
        };
        let no_faults = smtp.no_email_faults;
        let mail = match alert {
            Alert::Instance { name, state, .. } | Alert::Group { name, state } => {
                let group = matches!(alert, Alert::Group { .. });
                let wanted = if group {
                    self.groups.contains(name)
                } else {
                    self.instances.contains(name)
                };
                if !wanted || (no_faults && *state == State::Fault) {
                    return;
                }
                let key = (group, name.clone());
                if self.last_mailed.get(&key) == Some(state) {
                    return;
                }
                let Some(m) = vrrp_mail(&self.router_id, group, name, *state) else {
                    return;
                };
                self.last_mailed.insert(key, *state);
                m
            }
            Alert::VirtualServer {
                label,
                up,
                detail,
                smtp,
            } => {
                if !*smtp {
                    return;
                }
                (
                    format!(
                        "[{}] Virtualserver {label} - {}",
                        self.router_id,
                        if *up { "UP" } else { "DOWN" }
                    ),
                    detail.clone(),
                )
            }
            Alert::Checker {
                label,
                vs,
                rs_up,
                body,
            } => (
                format!(
                    "[{}] Realserver {label} of virtual server {vs} - {}",
                    self.router_id,
                    if *rs_up { "UP" } else { "DOWN" }
                ),
                body.clone(),
            ),
            Alert::RealServer { .. } => return,
        };
        self.queue_mail(&mail.0, &mail.1);
    }

    fn queue_mail(&self, subject: &str, body: &str) {
        let Some((smtp, tx, _)) = &self.mail else {
            return;
        };
        let data = Mail::message(
            &rfc5322_date(SystemTime::now()),
            &smtp.from,
            &smtp.to,
            subject,
            body,
        );
        let mail = Mail {
            helo: smtp.helo.clone(),
            from: smtp.from.clone(),
            to: smtp.to.clone(),
            data,
        };
        if tx.try_send(mail).is_err() {
            self.stats.mails_dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(subject, "alert mail dropped: the mail queue is full");
        }
    }
}

async fn mail_worker(smtp: SmtpPlan, mut rx: mpsc::Receiver<Mail>, stats: Arc<AlertStats>) {
    let server = (smtp.server.0.as_str(), smtp.server.1);
    while let Some(mail) = rx.recv().await {
        match send_mail(server, &mail, smtp.timeout).await {
            Ok(()) => {
                stats.mails_sent.fetch_add(1, Ordering::Relaxed);
                tracing::info!(relay = %smtp.server.0, "alert mail sent");
            }
            Err(e) => {
                stats.mails_failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(relay = %smtp.server.0, error = %e, "alert mail not sent");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_keepalived_s() {
        let lines: Vec<String> = [
            Alert::Instance {
                name: "VI_1".into(),
                state: State::Master,
                priority: 150,
            },
            Alert::Group {
                name: "G".into(),
                state: State::Fault,
            },
            Alert::Instance {
                name: "VI_1".into(),
                state: State::Initialize,
                priority: 0,
            },
            Alert::VirtualServer {
                label: "[192.0.2.1]:tcp:80".into(),
                up: false,
                detail: String::new(),
                smtp: false,
            },
            Alert::RealServer {
                label: "[198.51.100.1]:tcp:80".into(),
                vs: "[WEB]:0".into(),
                up: true,
            },
        ]
        .iter()
        .filter_map(fifo_line)
        .collect();
        assert_eq!(
            lines,
            [
                "INSTANCE \"VI_1\" MASTER 150\n",
                "GROUP \"G\" FAULT 0\n",
                "INSTANCE \"VI_1\" STOP 0\n",
                "VS [192.0.2.1]:tcp:80 DOWN\n",
                "RS [198.51.100.1]:tcp:80 [WEB]:0 UP\n"
            ]
        );
        assert_eq!(
            vrrp_mail("lb1", false, "VI_1", State::Master),
            Some((
                "[lb1] VRRP Instance VI_1 - Entering MASTER state".to_owned(),
                "=> VRRP Instance is now owning VRRP VIPs <=".to_owned()
            ))
        );
    }
}
