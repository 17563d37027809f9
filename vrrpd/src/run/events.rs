//! The consumers of the daemon's event stream.
//!
//! Every [`Event`] — an instance or a sync group changing state (from the
//! VRRP driver through [`vrrp_keepalived::EventStream`], which never loses
//! a final state), a real server, a quorum or a checker changing (from
//! [`vrrp_keepalived::RealServers`]) — reaches [`Consumers::dispatch`], in
//! order. A consumer that can be slow keeps its own bounded queue (notify
//! scripts: [`vrrp_keepalived::ScriptQueues`]; notify FIFOs and alert
//! mails: [`super::alerts`]; the control socket's subscribers: [`api`]), so
//! none delays another.

use vrrp_core::State;
use vrrp_keepalived::{Event, Notifier, NotifyState};

use super::alerts::{Alert, AlertSender};
use super::api;
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
    /// The control socket's event stream (instances' state changes go
    /// there from the driver directly, with their reasons).
    pub stream: api::Events,
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

/// The control socket's line for an event (instances' come from the
/// driver with their reasons).
fn stream_json(event: &Event) -> Option<serde_json::Value> {
    match event {
        Event::Group { name, state } => {
            Some(serde_json::json!({"type": "group", "group": name, "state": state.word()}))
        }
        Event::RealServer {
            service,
            server,
            up,
        } => Some(serde_json::json!({
            "type": "real_server",
            "service": service.to_string(),
            "server": server.to_string(),
            "up": up,
        })),
        Event::Quorum { service, up } => Some(serde_json::json!({
            "type": "quorum",
            "service": service.to_string(),
            "up": up,
        })),
        Event::Checker {
            service,
            server,
            check,
            up,
        } => Some(serde_json::json!({
            "type": "check",
            "service": service.to_string(),
            "server": server.to_string(),
            "check": check,
            "up": up,
        })),
        _ => None,
    }
}

impl Consumers {
    /// The consumers of a daemon.
    pub fn new(
        notifier: Notifier,
        alerts: AlertSender,
        lvs: LvsAlerts,
        stream: api::Events,
    ) -> Self {
        Consumers {
            notifier,
            alerts,
            lvs,
            stream,
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
            if let Some(json) = stream_json(event) {
                api::publish(&self.stream, json);
            }
            self.notifier.handle(event);
        }
        for alert in self.lvs.on_events(events) {
            self.alerts.send(alert);
        }
    }
}
