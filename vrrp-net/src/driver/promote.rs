//! keepalived's `promote_secondaries`: the kernel deletes every secondary
//! address of a subnet with its primary unless
//! `net.ipv4.conf.IF.promote_secondaries` is on, and then promotes one
//! instead. keepalived turns it on for the interface of an instance that
//! asks, when it is off, and turns it off again at exit if it was the one
//! to turn it on; so does the driver.

use std::collections::BTreeSet;

use super::api::InstanceSpec;

fn path(interface: &str) -> String {
    format!("/proc/sys/net/ipv4/conf/{interface}/promote_secondaries")
}

/// The interfaces whose `promote_secondaries` the driver turned on.
#[derive(Debug, Default)]
pub(crate) struct PromoteSecondaries {
    turned_on: BTreeSet<String>,
}

impl PromoteSecondaries {
    /// Turns the setting on for the interfaces of the instances that ask
    /// (and have no virtual MAC interface), where it is off. An interface
    /// that is missing now is left alone, as keepalived leaves it.
    pub(crate) fn apply(&mut self, specs: &[InstanceSpec]) {
        for spec in specs
            .iter()
            .filter(|s| s.promote_secondaries && s.vmac.is_none())
        {
            let name = &spec.interface;
            if self.turned_on.contains(name) {
                continue;
            }
            let Ok(current) = std::fs::read_to_string(path(name)) else {
                continue;
            };
            if current.trim() != "0" {
                continue;
            }
            match std::fs::write(path(name), "1\n") {
                Ok(()) => {
                    tracing::info!(interface = %name, "promote_secondaries turned on");
                    self.turned_on.insert(name.clone());
                }
                Err(e) => {
                    tracing::warn!(interface = %name, error = %e, "cannot turn promote_secondaries on");
                }
            }
        }
    }

    /// Turns it off again where the driver turned it on.
    pub(crate) fn restore(&mut self) {
        for name in std::mem::take(&mut self.turned_on) {
            // Gone with its interface: nothing to restore.
            if std::fs::write(path(&name), "0\n").is_ok() {
                tracing::info!(interface = %name, "promote_secondaries turned off again");
            }
        }
    }
}
