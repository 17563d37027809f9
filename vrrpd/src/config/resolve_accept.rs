//! Resolving RFC 5798 Accept_Mode (keepalived's `accept` / `no_accept`,
//! and what strict mode implies), the nftables settings of the firewall
//! that enforces it, and keepalived's `garp_extra_if`.

use std::time::Duration;

use super::super::duration::Dur;

use vrrp_core::{Priority, Version};
use vrrp_net::firewall::FirewallConfig;

use super::super::error::{ErrorKind, KeyPath};
use super::Resolver;

/// nftables refuses longer table names (NFT_NAME_MAXLEN 256, with the
/// terminating NUL); keepalived's limit is lower still (64).
const MAX_TABLE_NAME: usize = 63;

/// keepalived's longest `garp_extra_if`: a day.
const MAX_EXTRA_GARP: Duration = Duration::from_secs(86_400);

impl Resolver {
    /// `global.vrrp_garp_extra_if` (more than 0, up to a day) and `_all`.
    pub(super) fn garp_extra_if_global(
        &mut self,
        interval: Option<Dur>,
        all: Option<bool>,
    ) -> Option<(Duration, bool)> {
        let d = interval?.get();
        if d.is_zero() || d > MAX_EXTRA_GARP {
            self.err(
                KeyPath::root("global").key("vrrp_garp_extra_if"),
                ErrorKind::Invalid("must be more than 0 and at most a day (86400s)".to_owned()),
            );
            return None;
        }
        Some((d, all.unwrap_or(false)))
    }

    /// An instance's `garp_extra_if` (0 to a day; 0: off) and `_all`,
    /// else the global one.
    pub(super) fn garp_extra_if(
        &mut self,
        k: &KeyPath,
        interval: Option<Dur>,
        all: Option<bool>,
        global: Option<(Duration, bool)>,
    ) -> Option<(Duration, bool)> {
        match interval.map(Dur::get) {
            Some(d) if d > MAX_EXTRA_GARP => {
                self.err(
                    k.key("garp_extra_if"),
                    ErrorKind::Invalid("must be at most a day (86400s)".to_owned()),
                );
                None
            }
            Some(d) if d.is_zero() => None,
            Some(d) => Some((d, all.unwrap_or(false))),
            None => global.map(|(d, g_all)| (d, all.unwrap_or(g_all))),
        }
    }

    /// An instance's accept mode, as keepalived decides it: on unless
    /// strict mode (the owner always accepts); asked for with VRRPv2 in
    /// strict mode, refused (keepalived turns it off with an error: RFC
    /// 3768 has no accept mode).
    pub(super) fn accept_mode(
        &mut self,
        k: &KeyPath,
        set: Option<bool>,
        strict: bool,
        version: Version,
        priority: Priority,
    ) -> bool {
        if priority.is_owner() {
            return true;
        }
        match set {
            Some(true) if strict && version == Version::V2 => {
                self.err(
                    k.key("accept"),
                    ErrorKind::Strict(
                        "accept mode is not allowed with VRRPv2 in strict mode (RFC 3768 has none; keepalived turns it off)"
                            .to_owned(),
                    ),
                );
                false
            }
            Some(a) => a,
            None => !strict,
        }
    }

    /// `nftables`, `nftables_priority`, `nftables_counters`,
    /// `nftables_ifindex`.
    pub(super) fn nftables(
        &mut self,
        table: Option<String>,
        priority: Option<i32>,
        counters: Option<bool>,
        ifindex: Option<bool>,
    ) -> FirewallConfig {
        let d = FirewallConfig::default();
        let table = match table {
            Some(t)
                if !t.is_empty()
                    && t.len() <= MAX_TABLE_NAME
                    && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && t.starts_with(|c: char| c.is_ascii_alphabetic()) =>
            {
                t
            }
            Some(t) => {
                self.err(
                    KeyPath::root("global").key("nftables"),
                    ErrorKind::Invalid(format!(
                        "table name {t:?}: a letter, then letters, digits and _, at most {MAX_TABLE_NAME}"
                    )),
                );
                d.table.clone()
            }
            None => d.table.clone(),
        };
        FirewallConfig {
            table,
            priority: priority.unwrap_or(d.priority),
            counters: counters.unwrap_or(d.counters),
            ifindex: ifindex.unwrap_or(d.ifindex),
            ..d
        }
    }
}
