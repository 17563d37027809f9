//! Health checkers in the spirit of keepalived's checker process, usable
//! without VRRP.
//!
//! - [`Scheduler`] (sans-IO) decides when each check runs and what its
//!   results mean: `delay_loop` kept as an exact cadence, timeout, `retry`
//!   and `delay_before_retry`, `rise`/`fall`, initial state, seeded warmup
//!   and symmetric jitter, a bound on attempts in flight, and a histogram of
//!   how late attempts start ([`LagHistogram`], and in the fixed buckets of
//!   [`DurationBuckets`] with each check's attempt durations). It never reads a clock:
//!   `now` is a parameter, so it is tested in simulated time. Durations are
//!   capped at [`MAX_DURATION`] and every deadline saturates: no input can
//!   make it panic.
//! - [`Probe`] is what to check: [`TcpCheck`], [`HttpCheck`] (HTTP and
//!   HTTPS, status ranges, MD5 body digest, SNI, optional certificate
//!   check), [`ScriptCheck`] (with keepalived's `misc_dynamic` weights),
//!   [`IcmpCheck`] (v4 and v6), [`DnsCheck`], [`SmtpCheck`], [`UdpCheck`],
//!   [`FileCheck`] (keepalived's `track_file`: a value, watched with
//!   inotify) or a [`CustomProbe`]. Probes are the only code doing I/O;
//!   every failure is a [`DownReason`], never a hang or unbounded memory.
//! - [`Runner`] drives many checks on tokio and publishes [`Transition`]s on
//!   a broadcast channel plus each check's [`CheckStatus`] on a watch
//!   channel, for consumers such as a VRRP daemon (tracked objects) or an
//!   IPVS manager (real server weights). Identical checks run once for all
//!   their users; attempts in flight are bounded
//!   ([`RunnerConfig::max_in_flight`], by default half the open-files limit,
//!   see [`raise_open_files_limit`]), so thousands of hanging targets cannot
//!   exhaust file descriptors. 10,000 checks a second (half TCP, half HTTP
//!   with a digest) run on schedule on one core: see
//!   `benches/healthcheck_vs_keepalived.sh`.
//! - [`genhash()`] prints what keepalived's `genhash` prints: the digest of a
//!   URL's body.
//! - [`mail`] sends keepalived's alert mails through an SMTP relay.
//! - [`process`] counts running processes for keepalived's
//!   `vrrp_track_process`, from the kernel's process events.
//!
//! A consumer adds checks, subscribes, and reacts to transitions:
//!
//! ```
//! use std::time::Duration;
//! use healthcheck::{CheckSpec, Health, Probe, Runner, RunnerConfig, TcpCheck, Timing};
//! use tokio_util::sync::CancellationToken;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let target = listener.local_addr()?;
//!
//! let runner = Runner::spawn(RunnerConfig::default(), CancellationToken::new());
//! let mut transitions = runner.subscribe();
//!
//! let mut timing = Timing::every(Duration::from_millis(50));
//! timing.initial = Health::Down;
//! let id = runner.add(CheckSpec {
//!     name: "web1".into(),
//!     probe: Probe::Tcp(TcpCheck::new(target)),
//!     timing,
//! })?;
//!
//! let transition = transitions.recv().await?;
//! assert_eq!((transition.check, transition.health), (id, Health::Up));
//! assert_eq!(runner.watch(id).map(|w| w.borrow().health), Some(Health::Up));
//!
//! drop(listener); // connections are now refused...
//! let transition = transitions.recv().await?;
//! assert_eq!(transition.health, Health::Down);
//! println!("{id} down: {}", transition.reason.map(|r| r.to_string()).unwrap_or_default());
//!
//! runner.shutdown().await;
//! # Ok(())
//! # }
//! ```
// `unsafe` only in `sys` (registering the inotify descriptor with tokio).
#![deny(unsafe_code)]

mod attempts;
pub mod check;
pub mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod genhash;
pub mod lag;
pub mod mail;
pub mod probe;
pub mod process;
pub mod runner;
pub mod schedule;
mod sys;
mod timer;

pub use check::{CheckId, Health, MAX_DURATION, Timing};
pub use error::{ConfigError, DownReason, GenhashError};
pub use genhash::{GenhashReport, GenhashRequest, genhash};
pub use lag::{BUCKET_BOUNDS_MICROS, DurationBuckets, LagHistogram};
pub use probe::{
    BodyRegex, CustomProbe, DnsCheck, FileCheck, HttpCheck, IcmpCheck, Md5Digest, Probe,
    ProbeFuture, ProbeReport, Prober, RegexOptions, ScriptCheck, SmtpCheck, StatusRanges, TcpCheck,
    TlsOptions, TlsVerify, UdpCheck, Weighted, parse_tracked_value,
};
pub use runner::{
    CheckSpec, Runner, RunnerConfig, RunnerHandle, RunnerStats, default_max_in_flight,
    raise_open_files_limit,
};
pub use schedule::{
    CheckStats, CheckStatus, Output, ProbeRequest, ProbeResult, ProbeSuccess, ProbeToken,
    Scheduler, Transition,
};
