//! The `virtual_server` half: IPVS services kept in step with the real
//! servers' health checks, with keepalived's notify_up / notify_down /
//! quorum_up / quorum_down scripts.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use healthcheck::{CheckId, Health as CheckHealth, RunnerHandle, Transition};
use lvs::{Event, Health, Ipvs, IpvsClient, LoadBalancer, ServiceKey, ShutdownMode};

use super::alerts::{Alert, AlertSender, checker_bodies};
use super::exec;
use super::http::RealServerDoc;
use super::plan::{Command, VirtualServerPlan};

type Server = (ServiceKey, SocketAddr);

/// The running load balancer.
pub struct Balancer {
    lb: LoadBalancer,
    ipvs: Box<dyn Ipvs + Send>,
    checks: HashMap<CheckId, Server>,
    by_server: HashMap<Server, Vec<CheckId>>,
    up_scripts: HashMap<Server, (Option<Command>, Option<Command>)>,
    quorum_scripts: HashMap<ServiceKey, (Option<Command>, Option<Command>)>,
    script_timeout: Duration,
    alerts: AlertSender,
    /// Names and mail settings of the services that notify.
    notifying: HashMap<ServiceKey, Notifying>,
    /// keepalived's mail bodies of the checks of real servers that mail.
    mailing_checks: HashMap<CheckId, [&'static str; 2]>,
    no_checker_emails: bool,
    /// The services in configuration order.
    order: HashMap<ServiceKey, usize>,
}

/// What the FIFO lines and mails of one service say about it.
struct Notifying {
    label: String,
    smtp: bool,
    quorum: u32,
    hysteresis: u32,
    sorry_server: bool,
    /// Label, weight and mail setting of each real server.
    servers: HashMap<SocketAddr, (String, u32, bool)>,
}

impl Balancer {
    /// Connects to IPVS, programs the services and starts the checks.
    pub fn start(
        plans: &[VirtualServerPlan],
        runner: &RunnerHandle,
        script_timeout: Duration,
    ) -> anyhow::Result<Self> {
        let ipvs =
            IpvsClient::connect().context("IPVS is not available (is the ip_vs module loaded?)")?;
        Self::with_ipvs(plans, runner, script_timeout, Box::new(ipvs))
    }

    /// Like [`Balancer::start`] on any IPVS table (an in-memory one in tests).
    pub fn with_ipvs(
        plans: &[VirtualServerPlan],
        runner: &RunnerHandle,
        script_timeout: Duration,
        ipvs: Box<dyn Ipvs + Send>,
    ) -> anyhow::Result<Self> {
        let lb = LoadBalancer::new(plans.iter().map(|p| p.server.clone()).collect())?;
        let mut b = Balancer {
            lb,
            ipvs,
            checks: HashMap::new(),
            by_server: HashMap::new(),
            up_scripts: HashMap::new(),
            quorum_scripts: HashMap::new(),
            script_timeout,
            alerts: AlertSender::none(),
            notifying: HashMap::new(),
            mailing_checks: HashMap::new(),
            no_checker_emails: false,
            order: HashMap::new(),
        };
        b.add_checks(plans, runner)?;
        b.refresh(runner)?;
        Ok(b)
    }

    /// Applies a new set of virtual servers: checks restart, the table is
    /// reconciled in place (unchanged services and servers are not touched
    /// in the kernel).
    pub fn reload(
        &mut self,
        plans: &[VirtualServerPlan],
        runner: &RunnerHandle,
    ) -> anyhow::Result<()> {
        for id in self.checks.keys() {
            runner.remove(*id);
        }
        self.checks.clear();
        self.by_server.clear();
        self.up_scripts.clear();
        self.quorum_scripts.clear();
        self.notifying.clear();
        self.mailing_checks.clear();
        self.order.clear();
        self.lb
            .reload(plans.iter().map(|p| p.server.clone()).collect())?;
        self.add_checks(plans, runner)?;
        self.refresh(runner)
    }

    fn add_checks(
        &mut self,
        plans: &[VirtualServerPlan],
        runner: &RunnerHandle,
    ) -> anyhow::Result<()> {
        for p in plans {
            let key = p.server.service.key;
            let next = self.order.len();
            self.order.entry(key).or_insert(next);
            self.quorum_scripts
                .insert(key, (p.quorum_up.clone(), p.quorum_down.clone()));
            if p.notifies {
                let weights: HashMap<SocketAddr, u32> = p
                    .server
                    .real_servers
                    .iter()
                    .map(|r| (r.destination.addr, r.destination.weight))
                    .collect();
                self.notifying.insert(
                    key,
                    Notifying {
                        label: p.label.clone(),
                        smtp: p.smtp_alert,
                        quorum: p.server.quorum,
                        hysteresis: p.server.hysteresis,
                        sorry_server: p.server.sorry_server.is_some(),
                        servers: p
                            .real_servers
                            .iter()
                            .map(|r| {
                                let w = weights.get(&r.addr).copied().unwrap_or(1);
                                (r.addr, (r.label.clone(), w, r.smtp_alert))
                            })
                            .collect(),
                    },
                );
            }
            for rs in &p.real_servers {
                let server = (key, rs.addr);
                self.up_scripts
                    .insert(server, (rs.notify_up.clone(), rs.notify_down.clone()));
                let mut ids = Vec::new();
                for c in &rs.checks {
                    let id = runner.add(c.spec.clone())?;
                    self.checks.insert(id, server);
                    if p.notifies && rs.smtp_alert {
                        self.mailing_checks
                            .insert(id, checker_bodies(&c.spec.probe));
                    }
                    ids.push(id);
                }
                self.by_server.insert(server, ids);
            }
        }
        Ok(())
    }

    /// Sends real and virtual server changes (and, for real servers that
    /// mail, their checks' changes) to the notify FIFOs and alert mails.
    ///
    /// Announces each service's quorum as keepalived does at start
    /// (`init_service_vs`): up when its live real servers weigh
    /// `quorum + hysteresis` or more, down when they do not and a sorry
    /// server takes over.
    pub fn set_alerts(&mut self, alerts: AlertSender, no_checker_emails: bool) {
        self.alerts = alerts;
        self.no_checker_emails = no_checker_emails;
        let mut keys: Vec<&ServiceKey> = self.notifying.keys().collect();
        keys.sort_by_key(|k| self.order.get(*k).copied().unwrap_or(usize::MAX));
        for key in keys {
            let Some(n) = self.notifying.get(key) else {
                continue;
            };
            let weight = self.live_weight(key, n);
            let up = weight >= u64::from(n.quorum) + u64::from(n.hysteresis);
            if !up && !n.sorry_server {
                continue;
            }
            let threshold = i64::from(n.quorum) + i64::from(n.hysteresis);
            self.alerts.send(Alert::VirtualServer {
                label: n.label.clone(),
                up,
                detail: format!(
                    "=> {} {}+{}={threshold} <= {weight} <=",
                    if up {
                        "Starting with quorum up"
                    } else {
                        "Starting with quorum down"
                    },
                    n.quorum,
                    n.hysteresis
                ),
                smtp: n.smtp,
            });
        }
    }

    /// The weight of a service's live real servers.
    fn live_weight(&self, key: &ServiceKey, n: &Notifying) -> u64 {
        n.servers
            .iter()
            .filter(|(addr, _)| self.lb.health(key, **addr) == Some(Health::Up))
            .map(|(_, s)| u64::from(s.1))
            .sum()
    }

    /// Reacts to a check's transition; returns whether it was ours.
    pub fn on_transition(&mut self, runner: &RunnerHandle, t: &Transition) -> anyhow::Result<bool> {
        let Some(server) = self.checks.get(&t.check).copied() else {
            return Ok(false);
        };
        let was_up = self.lb.health(&server.0, server.1) == Some(Health::Up);
        self.refresh(runner)?;
        self.checker_mail(server, t, was_up);
        Ok(true)
    }

    /// keepalived mails each check's change of state (with
    /// `no_checker_emails`, only those that change the real server's).
    fn checker_mail(&self, (key, addr): Server, t: &Transition, was_up: bool) {
        let Some(bodies) = self.mailing_checks.get(&t.check) else {
            return;
        };
        let rs_up = self.lb.health(&key, addr) == Some(Health::Up);
        if self.no_checker_emails && rs_up == was_up {
            return;
        }
        let Some(n) = self.notifying.get(&key) else {
            return;
        };
        let up = t.health == CheckHealth::Up;
        self.alerts.send(Alert::Checker {
            label: n
                .servers
                .get(&addr)
                .map(|s| s.0.clone())
                .unwrap_or_default(),
            vs: n.label.clone(),
            rs_up,
            body: bodies[usize::from(!up)].to_owned(),
        });
    }

    /// keepalived's quorum mail body: `=> Lost quorum 3+1=2 <= 1 <=`.
    fn quorum_detail(&self, key: &ServiceKey, n: &Notifying, up: bool) -> String {
        let weight = self.live_weight(key, n);
        // The threshold that was crossed: quorum + hysteresis coming up,
        // quorum - hysteresis going down.
        let threshold = if up {
            i64::from(n.quorum) + i64::from(n.hysteresis)
        } else {
            i64::from(n.quorum) - i64::from(n.hysteresis)
        };
        format!(
            "=> {} {}+{}={threshold} <= {weight} <=",
            if up { "Gained quorum" } else { "Lost quorum" },
            n.quorum,
            n.hysteresis
        )
    }

    /// Recomputes every real server's health from its checks and syncs.
    fn refresh(&mut self, runner: &RunnerHandle) -> anyhow::Result<()> {
        for ((key, addr), ids) in &self.by_server {
            if ids.is_empty() {
                continue;
            }
            let all_up = ids.iter().all(|id| {
                runner
                    .watch(*id)
                    .is_some_and(|w| w.borrow().health == CheckHealth::Up)
            });
            let _ = self
                .lb
                .set_health(key, *addr, if all_up { Health::Up } else { Health::Down });
        }
        let changes = self.lb.sync(self.ipvs.as_mut())?;
        if !changes.is_empty() {
            tracing::info!(changes = changes.len(), "IPVS table updated");
        }
        self.run_events();
        Ok(())
    }

    fn run_events(&mut self) {
        while let Some(event) = self.lb.poll_event() {
            tracing::info!(?event, "load balancer event");
            self.notify(&event);
            let command = match &event {
                Event::RealServerUp { service, server } => self
                    .up_scripts
                    .get(&(*service, *server))
                    .and_then(|s| s.0.clone()),
                Event::RealServerDown { service, server } => self
                    .up_scripts
                    .get(&(*service, *server))
                    .and_then(|s| s.1.clone()),
                Event::QuorumUp { service } => {
                    self.quorum_scripts.get(service).and_then(|s| s.0.clone())
                }
                Event::QuorumDown { service } => {
                    self.quorum_scripts.get(service).and_then(|s| s.1.clone())
                }
                _ => None,
            };
            if let Some(c) = command {
                let timeout = self.script_timeout;
                tokio::spawn(async move {
                    if let Err(e) = exec::run_once(&c, &[], timeout).await {
                        tracing::warn!(script = ?c.argv, error = %e, "load balancer script failed");
                    }
                });
            }
        }
    }

    /// The FIFO line (and mail) of a load balancer event.
    fn notify(&self, event: &Event) {
        match event {
            Event::RealServerUp { service, server } | Event::RealServerDown { service, server } => {
                if let Some(n) = self.notifying.get(service) {
                    self.alerts.send(Alert::RealServer {
                        label: n
                            .servers
                            .get(server)
                            .map(|s| s.0.clone())
                            .unwrap_or_default(),
                        vs: n.label.clone(),
                        up: matches!(event, Event::RealServerUp { .. }),
                    });
                }
            }
            Event::QuorumUp { service } | Event::QuorumDown { service } => {
                if let Some(n) = self.notifying.get(service) {
                    let up = matches!(event, Event::QuorumUp { .. });
                    self.alerts.send(Alert::VirtualServer {
                        label: n.label.clone(),
                        up,
                        detail: self.quorum_detail(service, n, up),
                        smtp: n.smtp,
                    });
                }
            }
            _ => {}
        }
    }

    /// Real servers for /status.
    pub fn statuses(&self) -> Vec<RealServerDoc> {
        let mut v: Vec<RealServerDoc> = self
            .by_server
            .keys()
            .map(|(key, addr)| RealServerDoc {
                service: key.to_string(),
                server: addr.to_string(),
                up: self.lb.health(key, *addr) == Some(Health::Up),
            })
            .collect();
        v.sort_by(|a, b| (&a.service, &a.server).cmp(&(&b.service, &b.server)));
        v
    }

    /// Removes our services from the kernel (keepalived's default on stop).
    pub fn shutdown(mut self) {
        if let Err(e) = self.lb.shutdown(self.ipvs.as_mut(), ShutdownMode::Release) {
            tracing::warn!(error = %e, "releasing IPVS services failed");
        }
        self.run_events();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use healthcheck::{CheckSpec, Probe, Runner, RunnerConfig, TcpCheck, Timing};
    use lvs::{
        Destination, ForwardMethod, MemoryIpvs, RealServer, Scheduler, Service, VirtualServer,
    };
    use tokio_util::sync::CancellationToken;

    use super::super::plan::{RealServerCheck, RealServerPlan};
    use super::*;

    /// An in-memory table the test can look into while the balancer owns it.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<MemoryIpvs>>);

    macro_rules! forward {
        ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
            $(fn $name(&mut self, $($arg: $ty),*) -> $ret {
                self.0.lock().map_err(|_| lvs::Error::Io(std::io::Error::other("poisoned")))?.$name($($arg),*)
            })*
        };
    }

    impl Ipvs for Shared {
        forward! {
            services() -> Result<Vec<lvs::Service>, lvs::Error>;
            destinations(service: &ServiceKey) -> Result<Vec<lvs::DestinationStatus>, lvs::Error>;
            add_service(service: &lvs::Service) -> Result<(), lvs::Error>;
            update_service(service: &lvs::Service) -> Result<(), lvs::Error>;
            delete_service(service: &ServiceKey) -> Result<(), lvs::Error>;
            add_destination(service: &ServiceKey, destination: &Destination) -> Result<(), lvs::Error>;
            update_destination(service: &ServiceKey, destination: &Destination) -> Result<(), lvs::Error>;
            delete_destination(service: &ServiceKey, destination: SocketAddr) -> Result<(), lvs::Error>;
        }
    }

    fn destinations(table: &Shared, key: &ServiceKey) -> Vec<SocketAddr> {
        let mut t = table.clone();
        t.destinations(key)
            .map(|v| v.into_iter().map(|d| d.destination.addr).collect())
            .unwrap_or_default()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn health_checks_drive_the_table_and_the_scripts() -> anyhow::Result<()> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let real = listener.local_addr()?;
        let key = ServiceKey::tcp("192.0.2.50:80".parse()?);
        let dir = std::env::temp_dir().join(format!("vrrpd-balancer-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let log = dir.join("events");
        let script = |word: &str| {
            Some(Command::new(vec![
                "/bin/sh".into(),
                "-c".into(),
                format!("echo {word} >> {}", log.display()),
            ]))
        };
        let mut timing = Timing::every(Duration::from_millis(50));
        timing.timeout = Duration::from_millis(200);
        timing.retry = 0;
        timing.warmup = Duration::ZERO;
        let plan = VirtualServerPlan {
            server: VirtualServer::new(Service::new(key, Scheduler::WRR)).with_real_server(
                RealServer::new(Destination::new(real, ForwardMethod::Masquerade)),
            ),
            real_servers: vec![RealServerPlan {
                addr: real,
                checks: vec![RealServerCheck {
                    spec: CheckSpec {
                        name: "web".into(),
                        probe: Probe::Tcp(TcpCheck::new(real)),
                        timing,
                    },
                }],
                notify_up: script("up"),
                notify_down: script("down"),
                label: format!("[{}]:tcp:{}", real.ip(), real.port()),
                smtp_alert: false,
            }],
            quorum_up: script("quorum-up"),
            quorum_down: script("quorum-down"),
            label: "[192.0.2.50]:tcp:80".into(),
            notifies: true,
            smtp_alert: false,
        };
        // keepalived's lvs_notify_fifo, read by the test.
        let fifo = dir.join("lvs.fifo");
        let alerts = super::super::alerts::Alerts::start(
            &super::super::plan::AlertPlan {
                fifos: vec![super::super::plan::FifoPlan {
                    path: fifo.clone(),
                    owner: None,
                    script: None,
                    vrrp: false,
                    lvs: true,
                }],
                ..Default::default()
            },
            "test",
        );
        let mut reader = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
                .open(&fifo)?
        };
        let runner = Runner::spawn(RunnerConfig::default(), CancellationToken::new());
        let mut transitions = runner.subscribe();
        let table = Shared::default();
        let mut b = Balancer::with_ipvs(
            &[plan],
            &runner,
            Duration::from_secs(5),
            Box::new(table.clone()),
        )?;
        b.set_alerts(alerts.sender(), false);
        assert_eq!(
            destinations(&table, &key),
            vec![real],
            "up from the start (no alpha)"
        );

        // The real server goes away: its check fails and it leaves the table.
        drop(listener);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !destinations(&table, &key).is_empty() {
            let t = tokio::time::timeout_at(deadline, transitions.recv()).await??;
            b.on_transition(&runner, &t)?;
        }
        assert!(!b.statuses()[0].up, "reported down");
        // It comes back.
        let _listener = tokio::net::TcpListener::bind(real).await?;
        while destinations(&table, &key).is_empty() {
            let t = tokio::time::timeout_at(deadline, transitions.recv()).await??;
            b.on_transition(&runner, &t)?;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let events = std::fs::read_to_string(&log)?;
        let lines: Vec<&str> = events.lines().collect();
        assert!(lines.contains(&"down") && lines.contains(&"up"), "{events}");
        assert!(
            lines.contains(&"quorum-down") && lines.contains(&"quorum-up"),
            "{events}"
        );
        b.shutdown();
        assert!(
            table.clone().services()?.is_empty(),
            "services released on stop"
        );
        runner.shutdown().await;
        alerts.finish().await;
        let mut text = String::new();
        use std::io::Read;
        let _ = reader.read_to_string(&mut text);
        let rs = format!("[{}]:tcp:{}", real.ip(), real.port());
        assert_eq!(
            text,
            format!(
                "VS [192.0.2.50]:tcp:80 UP\n\
                 RS {rs} [192.0.2.50]:tcp:80 DOWN\nVS [192.0.2.50]:tcp:80 DOWN\n\
                 RS {rs} [192.0.2.50]:tcp:80 UP\nVS [192.0.2.50]:tcp:80 UP\n"
            ),
            "keepalived's lines, in keepalived's order"
        );
        assert!(!fifo.exists(), "the FIFO vrrpd made is removed at exit");
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    /// aiosmtpd on a free loopback port, spooling messages into `dir`.
    fn relay(dir: &std::path::Path) -> anyhow::Result<(std::process::Child, u16)> {
        std::fs::create_dir_all(dir.join("spool"))?;
        std::fs::write(
            dir.join("smtp_spool.py"),
            include_str!("../../../healthcheck/tests/support/smtp_spool.py"),
        )?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = std::process::Command::new("/usr/bin/python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "smtp_spool.Spool"])
            .arg(dir.join("spool"))
            .env("PYTHONPATH", dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "aiosmtpd did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok((child, port))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn checker_and_quorum_mails_reach_a_real_relay() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("vrrpd-balancer-mail-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (mut relay, port) = relay(&dir)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let real = listener.local_addr()?;
        let key = ServiceKey::tcp("192.0.2.50:80".parse()?);
        let mut timing = Timing::every(Duration::from_millis(50));
        timing.timeout = Duration::from_millis(200);
        timing.retry = 0;
        timing.warmup = Duration::ZERO;
        let rs_label = format!("[{}]:tcp:{}", real.ip(), real.port());
        let plan = VirtualServerPlan {
            server: VirtualServer::new(Service::new(key, Scheduler::WRR)).with_real_server(
                RealServer::new(Destination::new(real, ForwardMethod::Masquerade)),
            ),
            real_servers: vec![RealServerPlan {
                addr: real,
                checks: vec![RealServerCheck {
                    spec: CheckSpec {
                        name: "web".into(),
                        probe: Probe::Tcp(TcpCheck::new(real)),
                        timing,
                    },
                }],
                notify_up: None,
                notify_down: None,
                label: rs_label.clone(),
                smtp_alert: true,
            }],
            quorum_up: None,
            quorum_down: None,
            label: "[192.0.2.50]:tcp:80".into(),
            notifies: true,
            smtp_alert: true,
        };
        let alerts = super::super::alerts::Alerts::start(
            &super::super::plan::AlertPlan {
                smtp: Some(super::super::plan::SmtpPlan {
                    server: ("127.0.0.1".into(), port),
                    helo: "lb1.example.com".into(),
                    from: "keepalived@lb1.example.com".into(),
                    to: vec!["ops@example.com".into()],
                    timeout: Duration::from_secs(5),
                    no_email_faults: false,
                    no_checker_emails: false,
                }),
                ..Default::default()
            },
            "lb1",
        );
        let runner = Runner::spawn(RunnerConfig::default(), CancellationToken::new());
        let mut transitions = runner.subscribe();
        let table = Shared::default();
        let mut b = Balancer::with_ipvs(
            &[plan],
            &runner,
            Duration::from_secs(5),
            Box::new(table.clone()),
        )?;
        b.set_alerts(alerts.sender(), false);
        drop(listener);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !destinations(&table, &key).is_empty() {
            let t = tokio::time::timeout_at(deadline, transitions.recv()).await??;
            b.on_transition(&runner, &t)?;
        }
        let _listener = tokio::net::TcpListener::bind(real).await?;
        while destinations(&table, &key).is_empty() {
            let t = tokio::time::timeout_at(deadline, transitions.recv()).await??;
            b.on_transition(&runner, &t)?;
        }
        b.shutdown();
        runner.shutdown().await;
        alerts.finish().await;
        let mut files: Vec<_> = std::fs::read_dir(dir.join("spool"))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        files.sort();
        let mails: Vec<(String, String)> = files
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p).unwrap_or_default();
                let subject = text
                    .lines()
                    .find_map(|l| l.strip_prefix("Subject: "))
                    .unwrap_or_default()
                    .to_owned();
                let body = text
                    .split("\r\n\r\n")
                    .nth(1)
                    .unwrap_or_default()
                    .trim()
                    .to_owned();
                (subject, body)
            })
            .collect();
        let vs = "[lb1] Virtualserver [192.0.2.50]:tcp:80";
        let rs = format!("[lb1] Realserver {rs_label} of virtual server [192.0.2.50]:tcp:80");
        assert_eq!(
            mails,
            [
                (
                    format!("{vs} - UP"),
                    "=> Starting with quorum up 1+0=1 <= 1 <=".to_owned()
                ),
                (
                    format!("{vs} - DOWN"),
                    "=> Lost quorum 1+0=1 <= 0 <=".to_owned()
                ),
                (
                    format!("{rs} - DOWN"),
                    "=> TCP CHECK failed on service <=".to_owned()
                ),
                (
                    format!("{vs} - UP"),
                    "=> Gained quorum 1+0=1 <= 1 <=".to_owned()
                ),
                (
                    format!("{rs} - UP"),
                    "=> TCP CHECK succeed on service <=".to_owned()
                ),
            ],
            // keepalived's checker updates the real server, which updates
            // the quorum (and mails it), then mails the check's result.
            "keepalived's subjects and bodies, in keepalived's order"
        );
        let _ = relay.kill();
        let _ = relay.wait();
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}
