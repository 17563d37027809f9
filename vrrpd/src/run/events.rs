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

/// Everything that reads the events.
#[derive(Debug)]
pub struct Consumers {
    /// keepalived's notify scripts.
    pub notifier: Notifier,
}

impl Consumers {
    /// The consumers of a daemon.
    pub fn new(notifier: Notifier) -> Self {
        Consumers { notifier }
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
        self.notifier.handle(event);
    }
}
