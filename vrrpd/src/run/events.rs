//! The consumers of the daemon's event stream.
//!
//! Every [`Event`] — an instance or a sync group changing state (from the
//! VRRP driver through [`vrrp_keepalived::EventStream`], which never loses
//! a final state), a real server, a quorum or a checker changing (from
//! [`vrrp_keepalived::RealServers`]) — reaches [`Consumers::dispatch`], in
//! order. A consumer that can be slow keeps its own bounded queue (notify
//! scripts: [`vrrp_keepalived::ScriptQueues`]; notify FIFOs and alert
//! mails: [`super::alerts`]), so none delays another.

use vrrp_core::State;
use vrrp_keepalived::{Event, Notifier, NotifyState};

use super::alerts::{Alert, AlertSender};
use super::lvs_alerts::LvsAlerts;

/// Everything that reads the events.
#[derive(Debug)]
pub struct Consumers {
    /// keepalived's notify scripts.
    pub notifier: Notifier,
    /// keepalived's notify FIFOs and alert mails.
    pub alerts: AlertSender,
    /// What the FIFO lines and mails say about IPVS events.
    pub lvs: LvsAlerts,
}

/// The state keepalived's FIFO lines and mails name (`None`: not told
/// there).
fn alert_state(state: NotifyState) -> Option<State> {
    match state {
        NotifyState::Master => Some(State::Master),
        NotifyState::Backup => Some(State::Backup),
        NotifyState::Fault => Some(State::Fault),
        NotifyState::Stop => Some(State::Initialize),
        _ => None,
    }
}

impl Consumers {
    /// The consumers of a daemon.
    pub fn new(notifier: Notifier, alerts: AlertSender, lvs: LvsAlerts) -> Self {
        Consumers {
            notifier,
            alerts,
            lvs,
        }
    }

    /// Hands `event` to every consumer.
    pub fn dispatch(&mut self, event: &Event) {
        self.dispatch_all(std::slice::from_ref(event));
    }

    /// Hands a batch of events from one source (a driver event, or one
    /// sync of the IPVS table) to every consumer, in order.
    pub fn dispatch_all(&mut self, events: &[Event]) {
        for event in events {
            match event {
                Event::Instance {
                    name,
                    state,
                    priority,
                } => {
                    if let Some(state) = alert_state(*state) {
                        self.alerts.send(Alert::Instance {
                            name: name.clone(),
                            state,
                            priority: *priority,
                        });
                    }
                }
                Event::Group { name, state } => {
                    tracing::info!(group = %name, %state, "sync group state");
                    if let Some(state) = alert_state(*state) {
                        self.alerts.send(Alert::Group {
                            name: name.clone(),
                            state,
                        });
                    }
                }
                Event::RealServer {
                    service,
                    server,
                    up,
                } => {
                    tracing::info!(%service, %server, up, "real server");
                }
                Event::Quorum { service, up } => tracing::info!(%service, up, "quorum"),
                _ => {}
            }
            self.notifier.handle(event);
        }
        for alert in self.lvs.on_events(events) {
            self.alerts.send(alert);
        }
    }
}
