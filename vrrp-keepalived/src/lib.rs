//! keepalived's glue between VRRP, health checks and IPVS, as a library:
//! what a daemon (or any service embedding `vrrp-net`) needs to behave like
//! keepalived, without writing it again.
//!
//! - [`track`]: tracked scripts (`vrrp_script`) and tracked files
//!   (`track_file`) as `healthcheck` checks feeding the VRRP driver's
//!   tracked objects with keepalived's verdict and weight rules, their
//!   state kept across reloads ([`Trackers`]).
//! - [`event`]: the driver's state changes as keepalived notifies them,
//!   sync groups included, with no final state lost when the broadcast
//!   lags ([`EventStream`]); one [`Event`] stream for every consumer.
//! - [`notify`]: keepalived's notify scripts and their arguments
//!   (`INSTANCE name STATE priority`), in order per instance and group
//!   ([`Notifier`]) on bounded queues ([`ScriptQueues`]) where a hung
//!   script delays only its own queue, and only up to its timeout.
//! - [`attach`]: for a service embedding the driver, a health check
//!   that moves a priority and notify scripts, in one call each.
//! - [`real_servers`]: the `virtual_server` half: real-server health from
//!   checks ([`lvs::HealthAggregator`]) kept across reloads, the IPVS table
//!   synced on change, reconciled in full on demand, `notify_up/down` and
//!   `quorum_up/down` ([`RealServers`]).
//!
//! It lives apart from `vrrp-net` because it joins crates `vrrp-net` must
//! not depend on (`healthcheck`, `lvs`), and because its rules are
//! keepalived's conventions rather than VRRP.
//!
//! The notification path, runnable without root: state changes in,
//! keepalived's script calls out.
//!
//! ```
//! use std::time::Duration;
//! use vrrp_core::{Priority, Reason, State, Vrid};
//! use vrrp_keepalived::{Command, Notifier, NotifyScripts, ScriptQueues, Translator};
//! use vrrp_net::driver::StateEvent;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let log = std::env::temp_dir().join(format!("vk-doc-{}", std::process::id()));
//! let mut notifier = Notifier::new(ScriptQueues::new(Duration::from_secs(5)));
//! let scripts = NotifyScripts {
//!     generic: Some(Command::shell(format!("echo \"$*\" >> {}", log.display()))),
//!     ..NotifyScripts::default()
//! };
//! notifier.configure([("VI_1".to_owned(), scripts)], []);
//!
//! let mut rules = Translator::default();
//! for (from, to) in [(State::Initialize, State::Backup), (State::Backup, State::Master)] {
//!     let change = StateEvent {
//!         instance: "VI_1".into(),
//!         vrid: Vrid::new(51).ok_or("vrid")?,
//!         from,
//!         to,
//!         reason: Reason::Startup,
//!         priority: Priority::new(150),
//!         at: Duration::ZERO,
//!     };
//!     for event in rules.handle(&change) {
//!         notifier.handle(&event);
//!     }
//! }
//! notifier.queues().finish(Duration::from_secs(5)).await;
//! assert_eq!(
//!     std::fs::read_to_string(&log)?,
//!     "INSTANCE VI_1 BACKUP 150\nINSTANCE VI_1 MASTER 150\n"
//! );
//! # std::fs::remove_file(&log)?;
//! # Ok(())
//! # }
//! ```

pub mod attach;
pub mod command;
pub mod event;
pub mod notify;
pub mod queue;
pub mod real_servers;
pub mod track;

pub use command::{Command, RunError};
pub use event::{Event, EventStream, NotifyState, Removal, SyncGroup, Translator};
pub use notify::{Notifier, NotifyScripts};
pub use queue::{Batch, ScriptQueues, ScriptStats};
pub use real_servers::{
    RealServerError, RealServerSpec, RealServerStatus, RealServers, VirtualServerSpec,
};
pub use track::{
    FileSpec, FileUse, ScriptSpec, TrackError, TrackStatus, TrackUpdate, Trackers, init_files,
};
