//! Debug builds only: faults injected on request, so that the daemon's
//! supervision can be proven on the real binary. Release builds compile
//! none of this.
//!
//! `VRRPD_DEBUG_FAULT=KIND:MS[,KIND:MS...]`, KIND being
//! - `http-panic`: the HTTP listener task panics MS ms after start-up;
//! - `runner-stop`: the health-check runner is stopped MS ms after
//!   start-up, as if it had ended on its own.
//!
//! (The VRRP driver's own trigger is vrrp-net's
//! `VRRP_NET_DEBUG_PANIC_AFTER_MS`.)

use std::time::Duration;

/// The delay after which fault `kind` is asked for, if it is.
pub fn after(kind: &str) -> Option<Duration> {
    let spec = std::env::var("VRRPD_DEBUG_FAULT").ok()?;
    spec.split(',').find_map(|item| {
        let (k, ms) = item.split_once(':')?;
        (k.trim() == kind)
            .then(|| ms.trim().parse().ok())
            .flatten()
            .map(Duration::from_millis)
    })
}
