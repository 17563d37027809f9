//! keepalived's notify FIFO lines and alert mails for IPVS events, sans IO:
//! [`vrrp_keepalived::RealServers`]' events (real server up/down, quorum
//! gained/lost, one check's change) in, [`Alert`]s out, with keepalived's
//! names (`[192.0.2.1]:tcp:80`), quorum arithmetic in the mail body and
//! mail settings (`smtp_alert` per virtual and real server,
//! `no_checker_emails`).

use std::collections::HashMap;
use std::net::SocketAddr;

use lvs::ServiceKey;
use vrrp_keepalived::Event;

use super::alerts::Alert;
use super::plan::{VirtualServerSpec, VsNotify};

/// One notifying service.
#[derive(Debug)]
struct Service {
    label: String,
    smtp: bool,
    quorum: u32,
    hysteresis: u32,
    sorry_server: bool,
    /// Configuration order (start-up announcements follow it).
    order: usize,
    servers: HashMap<SocketAddr, Server>,
}

#[derive(Debug)]
struct Server {
    label: String,
    weight: u32,
    smtp: bool,
    up: bool,
    /// Check name to keepalived's mail bodies (up, down).
    checks: HashMap<String, [&'static str; 2]>,
}

/// The IPVS half of the notify FIFOs and alert mails (see the module
/// docs).
#[derive(Debug, Default)]
pub struct LvsAlerts {
    services: HashMap<ServiceKey, Service>,
    no_checker_emails: bool,
}

impl LvsAlerts {
    /// The services of `specs` that notify (`notify[i]` describes
    /// `specs[i]`), their real servers' health as `up` says.
    pub fn new(
        specs: &[VirtualServerSpec],
        notify: &[VsNotify],
        no_checker_emails: bool,
        up: impl Fn(ServiceKey, SocketAddr) -> bool,
    ) -> Self {
        let mut services = HashMap::new();
        for (order, (spec, n)) in specs.iter().zip(notify).enumerate() {
            if !n.notifies {
                continue;
            }
            let key = spec.server.service.key;
            let weights: HashMap<SocketAddr, u32> = spec
                .server
                .real_servers
                .iter()
                .map(|r| (r.destination.addr, r.destination.weight))
                .collect();
            let servers = n
                .real_servers
                .iter()
                .map(|r| {
                    (
                        r.addr,
                        Server {
                            label: r.label.clone(),
                            weight: weights.get(&r.addr).copied().unwrap_or(1),
                            smtp: r.smtp_alert,
                            up: up(key, r.addr),
                            checks: r.checks.iter().cloned().collect(),
                        },
                    )
                })
                .collect();
            services.insert(
                key,
                Service {
                    label: n.label.clone(),
                    smtp: n.smtp_alert,
                    quorum: spec.server.quorum,
                    hysteresis: spec.server.hysteresis,
                    sorry_server: spec.server.sorry_server.is_some(),
                    order,
                    servers,
                },
            );
        }
        LvsAlerts {
            services,
            no_checker_emails,
        }
    }

    /// keepalived's announcement of each service's quorum at start
    /// (`init_service_vs`): up when its live real servers weigh `quorum +
    /// hysteresis` or more; down when they do not and a sorry server takes
    /// over; in configuration order.
    pub fn at_start(&self) -> Vec<Alert> {
        let mut services: Vec<&Service> = self.services.values().collect();
        services.sort_by_key(|s| s.order);
        let mut out = Vec::new();
        for s in services {
            let weight = live_weight(s);
            let threshold = u64::from(s.quorum) + u64::from(s.hysteresis);
            let up = weight >= threshold;
            if !up && !s.sorry_server {
                continue;
            }
            out.push(Alert::VirtualServer {
                label: s.label.clone(),
                up,
                detail: format!(
                    "=> {} {}+{}={threshold} <= {weight} <=",
                    if up {
                        "Starting with quorum up"
                    } else {
                        "Starting with quorum down"
                    },
                    s.quorum,
                    s.hysteresis
                ),
                smtp: s.smtp,
            });
        }
        out
    }

    /// The alerts of one batch of events from one sync, in keepalived's
    /// order: real server and quorum changes first, then the checks' mails
    /// (keepalived mails a check's change after it has moved the real
    /// server).
    pub fn on_events(&mut self, events: &[Event]) -> Vec<Alert> {
        let mut out = Vec::new();
        let mut checkers = Vec::new();
        for e in events {
            match e {
                Event::RealServer {
                    service,
                    server,
                    up,
                } => {
                    let Some(s) = self.services.get_mut(service) else {
                        continue;
                    };
                    let label = match s.servers.get_mut(server) {
                        Some(r) => {
                            r.up = *up;
                            r.label.clone()
                        }
                        None => continue,
                    };
                    out.push(Alert::RealServer {
                        label,
                        vs: s.label.clone(),
                        up: *up,
                    });
                }
                Event::Quorum { service, up } => {
                    let Some(s) = self.services.get(service) else {
                        continue;
                    };
                    out.push(Alert::VirtualServer {
                        label: s.label.clone(),
                        up: *up,
                        detail: quorum_detail(s, *up),
                        smtp: s.smtp,
                    });
                }
                Event::Checker { .. } => checkers.push(e),
                _ => {}
            }
        }
        for e in checkers {
            let Event::Checker {
                service,
                server,
                check,
                up,
            } = e
            else {
                continue;
            };
            let Some(s) = self.services.get(service) else {
                continue;
            };
            let Some(r) = s.servers.get(server) else {
                continue;
            };
            if !r.smtp {
                continue;
            }
            let Some(bodies) = r.checks.get(check) else {
                continue;
            };
            // With no_checker_emails, only a check that moved its real
            // server mails (the server's state now is the check's).
            if self.no_checker_emails && r.up != *up {
                continue;
            }
            out.push(Alert::Checker {
                label: r.label.clone(),
                vs: s.label.clone(),
                rs_up: r.up,
                body: bodies[usize::from(!*up)].to_owned(),
            });
        }
        out
    }
}

/// The weight of a service's live real servers.
fn live_weight(s: &Service) -> u64 {
    s.servers
        .values()
        .filter(|r| r.up)
        .map(|r| u64::from(r.weight))
        .sum()
}

/// keepalived's quorum mail body: `=> Lost quorum 3+1=2 <= 1 <=`.
fn quorum_detail(s: &Service, up: bool) -> String {
    let weight = live_weight(s);
    // The threshold that was crossed: quorum + hysteresis coming up,
    // quorum - hysteresis going down.
    let threshold = if up {
        i64::from(s.quorum) + i64::from(s.hysteresis)
    } else {
        i64::from(s.quorum) - i64::from(s.hysteresis)
    };
    format!(
        "=> {} {}+{}={threshold} <= {weight} <=",
        if up { "Gained quorum" } else { "Lost quorum" },
        s.quorum,
        s.hysteresis
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::plan::RsNotify;
    use lvs::{Destination, ForwardMethod, RealServer, Scheduler, Service as LvsService};

    fn setup(no_checker_emails: bool) -> (LvsAlerts, ServiceKey, SocketAddr, SocketAddr) {
        let key = ServiceKey::tcp("192.0.2.50:80".parse().expect("addr"));
        let a: SocketAddr = "192.0.2.21:80".parse().expect("addr");
        let b: SocketAddr = "192.0.2.22:80".parse().expect("addr");
        let mut server = lvs::VirtualServer::new(LvsService::new(key, Scheduler::WRR))
            .with_real_server(RealServer::new(Destination::new(
                a,
                ForwardMethod::Masquerade,
            )))
            .with_real_server(RealServer::new(Destination::new(
                b,
                ForwardMethod::Masquerade,
            )));
        server.quorum = 2;
        let spec = VirtualServerSpec {
            server,
            real_servers: Vec::new(),
            quorum_up: None,
            quorum_down: None,
        };
        let rs = |addr: SocketAddr| RsNotify {
            addr,
            label: format!("[{}]:tcp:{}", addr.ip(), addr.port()),
            smtp_alert: true,
            checks: vec![(
                "web".to_owned(),
                ["=> TCP CHECK succeed <=", "=> TCP CHECK failed <="],
            )],
        };
        let notify = VsNotify {
            label: "[192.0.2.50]:tcp:80".into(),
            notifies: true,
            smtp_alert: true,
            real_servers: vec![rs(a), rs(b)],
        };
        (
            LvsAlerts::new(&[spec], &[notify], no_checker_emails, |_, _| true),
            key,
            a,
            b,
        )
    }

    #[test]
    fn quorum_is_announced_at_start_and_lost_with_keepalived_arithmetic() {
        let (mut alerts, key, a, _) = setup(false);
        assert_eq!(
            alerts.at_start(),
            vec![Alert::VirtualServer {
                label: "[192.0.2.50]:tcp:80".into(),
                up: true,
                detail: "=> Starting with quorum up 2+0=2 <= 2 <=".into(),
                smtp: true,
            }]
        );
        let out = alerts.on_events(&[
            Event::Checker {
                service: key,
                server: a,
                check: "web".into(),
                up: false,
            },
            Event::RealServer {
                service: key,
                server: a,
                up: false,
            },
            Event::Quorum {
                service: key,
                up: false,
            },
        ]);
        assert_eq!(
            out,
            vec![
                Alert::RealServer {
                    label: "[192.0.2.21]:tcp:80".into(),
                    vs: "[192.0.2.50]:tcp:80".into(),
                    up: false,
                },
                Alert::VirtualServer {
                    label: "[192.0.2.50]:tcp:80".into(),
                    up: false,
                    detail: "=> Lost quorum 2+0=2 <= 1 <=".into(),
                    smtp: true,
                },
                Alert::Checker {
                    label: "[192.0.2.21]:tcp:80".into(),
                    vs: "[192.0.2.50]:tcp:80".into(),
                    rs_up: false,
                    body: "=> TCP CHECK failed <=".into(),
                },
            ],
            "the check's mail comes after the change it caused"
        );
    }

    #[test]
    fn no_checker_emails_mails_only_checks_that_moved_their_server() {
        let (mut alerts, key, a, _) = setup(true);
        // A check going down while its server stays up (another check of
        // it still fails... or the server is held up): no mail.
        let out = alerts.on_events(&[Event::Checker {
            service: key,
            server: a,
            check: "web".into(),
            up: false,
        }]);
        assert!(out.is_empty(), "{out:?}");
        let (mut alerts, ..) = setup(false);
        let out = alerts.on_events(&[Event::Checker {
            service: key,
            server: a,
            check: "web".into(),
            up: false,
        }]);
        assert_eq!(out.len(), 1, "without no_checker_emails every change mails");
    }
}
