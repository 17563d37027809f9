//! The consumers of the daemon's event stream.
//!
//! Every [`Event`] — an instance or a sync group changing state (from the
//! VRRP driver through [`vrrp_keepalived::EventStream`], which never loses
//! a final state), a real server, a quorum or a checker changing (from
//! [`vrrp_keepalived::RealServers`]) — reaches [`Consumers::dispatch`], in
//! order. A consumer that can be slow keeps its own bounded queue (notify
//! scripts: [`vrrp_keepalived::ScriptQueues`]), so none delays another.
//! Add new consumers here: a notify FIFO, alert mail, a local API.

use vrrp_keepalived::{Event, Notifier};

use super::api;

/// Everything that reads the events.
#[derive(Debug)]
pub struct Consumers {
    /// keepalived's notify scripts.
    pub notifier: Notifier,
    /// The control socket's event stream (instances' state changes go
    /// there from the driver directly, with their reasons).
    pub stream: api::Events,
}

impl Consumers {
    /// The consumers of a daemon.
    pub fn new(notifier: Notifier, stream: api::Events) -> Self {
        Consumers { notifier, stream }
    }

    /// Hands `event` to every consumer.
    pub fn dispatch(&mut self, event: &Event) {
        match event {
            Event::Group { name, state } => {
                tracing::info!(group = %name, %state, "sync group state")
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
        let json = match event {
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
        };
        if let Some(json) = json {
            api::publish(&self.stream, json);
        }
        self.notifier.handle(event);
    }
}
