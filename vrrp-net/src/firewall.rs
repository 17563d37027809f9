//! Accept mode (RFC 5798 6.1 `Accept_Mode`, 6.4.3): a master that does
//! not own its virtual addresses and runs with `no_accept` (keepalived's
//! default in strict mode) must not accept packets addressed to them.
//! Like keepalived's nftables build, the driver keeps an nftables table of
//! its own whose sets hold the virtual addresses of such instances, dropped
//! on input (destination) and output (source), with neighbour
//! solicitations and advertisements let through so that IPv6 neighbour
//! discovery still works, and link-local addresses matched together with
//! their interface.
//!
//! This module is the sans-IO part ([`ruleset`], [`deletion`]: the nft
//! scripts for a set of [`BlockedAddress`]es) and the I/O part
//! ([`Firewall`]: runs the `nft` binary, checks that what it installed is
//! still there, deletes the table at stop). Which address is blocked when
//! is decided by the driver's core.
//!
//! Why the `nft` binary rather than nftables netlink messages: each update
//! replaces the whole table in one atomic transaction (`nft -f -`), which
//! makes every update a repair too; building nftables expressions by hand
//! over netlink would be a few hundred lines of encoding for a path that
//! runs at start, on a reload and on a repair, never on a state change
//! (the core blocks the addresses in every state, so no takeover waits
//! for it). The cost is a process start or two (a few milliseconds, tens
//! on a loaded host) per change, and one `nft list` every 2 s to notice
//! a table deleted or changed from outside.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;

/// The nftables settings (keepalived's `nftables`, `nftables_priority`,
/// `nftables_counters`, `nftables_ifindex`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FirewallConfig {
    /// The `inet` table's name (default `vrrpd`; keepalived's tables are
    /// `ip keepalived` and `ip6 keepalived`, of other families, so both
    /// daemons can run on one host).
    pub table: String,
    /// The priority of the input and output chains (keepalived's default
    /// -1: before the usual filter chains at 0).
    pub priority: i32,
    /// A counter on each drop rule.
    pub counters: bool,
    /// Match link-local addresses with the interface's index rather than
    /// its name.
    pub ifindex: bool,
    /// The `nft` program.
    pub nft: String,
}

impl Default for FirewallConfig {
    fn default() -> Self {
        FirewallConfig {
            table: "vrrpd".to_owned(),
            priority: -1,
            counters: false,
            ifindex: false,
            nft: "nft".to_owned(),
        }
    }
}

/// A virtual address to block, with its interface (which matters for
/// IPv6 link-local addresses only).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockedAddress {
    /// The address.
    pub addr: IpAddr,
    /// The interface's name.
    pub device: String,
    /// The interface's index.
    pub ifindex: u32,
}

fn is_link_local(addr: &IpAddr) -> bool {
    matches!(addr, IpAddr::V6(a) if (a.segments()[0] & 0xffc0) == 0xfe80)
}

fn elements(items: &[String]) -> String {
    if items.is_empty() {
        String::new()
    } else {
        format!(" elements = {{ {} }};", items.join(", "))
    }
}

/// The nft script that makes the table exactly this (created if missing,
/// replaced otherwise, in one transaction).
pub fn ruleset(config: &FirewallConfig, blocked: &BTreeSet<BlockedAddress>) -> String {
    let t = &config.table;
    let counter = if config.counters { "counter " } else { "" };
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    let mut ll = Vec::new();
    for b in blocked {
        match b.addr {
            IpAddr::V4(a) => v4.push(a.to_string()),
            IpAddr::V6(a) if is_link_local(&b.addr) => ll.push(if config.ifindex {
                format!("{a} . {}", b.ifindex)
            } else {
                format!("{a} . \"{}\"", b.device.replace('"', ""))
            }),
            IpAddr::V6(a) => v6.push(a.to_string()),
        }
    }
    let (iif, oif, if_type) = if config.ifindex {
        ("iif", "oif", "iface_index")
    } else {
        ("iifname", "oifname", "ifname")
    };
    let mut s = String::new();
    // Create-then-delete makes the deletion succeed whether or not the
    // table exists; the whole file is one transaction.
    let _ = writeln!(s, "table inet {t}\ndelete table inet {t}");
    let _ = writeln!(s, "table inet {t} {{");
    let _ = writeln!(s, "  set vips4 {{ type ipv4_addr;{} }}", elements(&v4));
    let _ = writeln!(s, "  set vips6 {{ type ipv6_addr;{} }}", elements(&v6));
    let _ = writeln!(
        s,
        "  set vips6_ll {{ type ipv6_addr . {if_type};{} }}",
        elements(&ll)
    );
    for (chain, hook, dir, ifm) in [
        ("in", "input", "daddr", iif),
        ("out", "output", "saddr", oif),
    ] {
        let _ = writeln!(
            s,
            "  chain {chain} {{\n    type filter hook {hook} priority {}; policy accept;",
            config.priority
        );
        // Neighbour discovery must work for the addresses (RFC 4861).
        let _ = writeln!(
            s,
            "    icmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert }} accept"
        );
        let _ = writeln!(s, "    ip6 {dir} fe80::/10 goto {chain}_ll");
        let _ = writeln!(s, "    ip {dir} @vips4 {counter}drop");
        let _ = writeln!(s, "    ip6 {dir} @vips6 {counter}drop\n  }}");
        let _ = writeln!(
            s,
            "  chain {chain}_ll {{\n    ip6 {dir} . meta {ifm} @vips6_ll {counter}drop\n  }}"
        );
    }
    let _ = writeln!(s, "}}");
    s
}

/// The nft script that deletes the table, if it exists.
pub fn deletion(config: &FirewallConfig) -> String {
    let t = &config.table;
    format!("table inet {t}\ndelete table inet {t}\n")
}

/// Counters change under traffic: a listing compared with an earlier one
/// leaves them out.
fn without_counters(listing: &str) -> String {
    listing
        .split_whitespace()
        .collect::<Vec<_>>()
        .split(|w| *w == "counter")
        .enumerate()
        .map(|(i, part)| {
            // After "counter": "packets N bytes M" go.
            let skip = if i == 0 { 0 } else { 4.min(part.len()) };
            part.get(skip..).unwrap_or_default().join(" ")
        })
        .collect::<Vec<_>>()
        .join(" counter ")
}

/// Why the firewall could not be changed or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FirewallError {
    /// The `nft` program could not be run.
    #[error("cannot run {program}: {error}")]
    Spawn {
        /// The program.
        program: String,
        /// The OS's error.
        error: std::io::Error,
    },
    /// `nft` refused the change.
    #[error("{program} failed: {stderr}")]
    Refused {
        /// The program.
        program: String,
        /// What it said.
        stderr: String,
    },
}

/// The table as installed: applies rulesets, remembers nft's own listing
/// of what it installed, and tells whether the table still is so.
#[derive(Debug)]
pub struct Firewall {
    config: FirewallConfig,
    /// What was last installed, and nft's listing of it.
    installed: Option<(BTreeSet<BlockedAddress>, String)>,
    /// Deleted for good (the driver stopped): later changes are ignored.
    closed: bool,
}

impl Firewall {
    /// Nothing installed yet.
    pub fn new(config: FirewallConfig) -> Self {
        Firewall {
            config,
            installed: None,
            closed: false,
        }
    }

    /// The settings.
    pub fn config(&self) -> &FirewallConfig {
        &self.config
    }

    /// The addresses blocked now (`None`: no table installed).
    pub fn installed(&self) -> Option<&BTreeSet<BlockedAddress>> {
        self.installed.as_ref().map(|(b, _)| b)
    }

    async fn nft(&self, args: &[&str], stdin: Option<&str>) -> Result<String, FirewallError> {
        let program = self.config.nft.clone();
        let mut child = tokio::process::Command::new(&program)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|error| FirewallError::Spawn {
                program: program.clone(),
                error,
            })?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes())
                .await
                .map_err(|error| FirewallError::Spawn {
                    program: program.clone(),
                    error,
                })?;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|error| FirewallError::Spawn {
                program: program.clone(),
                error,
            })?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(FirewallError::Refused {
                program,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            })
        }
    }

    async fn listing(&self) -> Result<String, FirewallError> {
        self.nft(&["list", "table", "inet", &self.config.table], None)
            .await
            .map(|l| without_counters(&l))
    }

    /// Makes the table block exactly `blocked` (one transaction). Does
    /// nothing once [`Firewall::remove`] was called.
    pub async fn apply(&mut self, blocked: &BTreeSet<BlockedAddress>) -> Result<(), FirewallError> {
        if self.closed {
            return Ok(());
        }
        let script = ruleset(&self.config, blocked);
        if let Err(e) = self.nft(&["-f", "-"], Some(&script)).await {
            self.installed = None;
            return Err(e);
        }
        let listing = self.listing().await.unwrap_or_default();
        self.installed = Some((blocked.clone(), listing));
        Ok(())
    }

    /// Whether the table is still as installed (an operator may have
    /// deleted or edited it); `Ok(true)` when nothing is installed.
    pub async fn intact(&self) -> Result<bool, FirewallError> {
        let Some((_, listing)) = &self.installed else {
            return Ok(true);
        };
        match self.listing().await {
            Ok(now) => Ok(&now == listing),
            Err(FirewallError::Refused { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Puts the table back as installed if it is not so any more; returns
    /// whether it did.
    pub async fn repair(&mut self) -> Result<bool, FirewallError> {
        if self.intact().await? {
            return Ok(false);
        }
        let blocked = self.installed().cloned().unwrap_or_default();
        self.apply(&blocked).await.map(|()| true)
    }

    /// Deletes the table, for good (at stop): later changes are ignored.
    pub async fn remove(&mut self) -> Result<(), FirewallError> {
        self.installed = None;
        self.closed = true;
        self.nft(&["-f", "-"], Some(&deletion(&self.config)))
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(addr: &str, dev: &str, ifindex: u32) -> BlockedAddress {
        BlockedAddress {
            addr: addr.parse().expect("address"),
            device: dev.into(),
            ifindex,
        }
    }

    #[test]
    fn addresses_go_to_the_set_of_their_kind() {
        let set: BTreeSet<_> = [
            b("192.0.2.100", "eth0", 2),
            b("2001:db8::100", "eth0", 2),
            b("fe80::100", "eth1", 3),
        ]
        .into_iter()
        .collect();
        let s = ruleset(&FirewallConfig::default(), &set);
        assert!(s.contains("set vips4 { type ipv4_addr; elements = { 192.0.2.100 }; }"));
        assert!(s.contains("set vips6 { type ipv6_addr; elements = { 2001:db8::100 }; }"));
        assert!(s.contains(
            "set vips6_ll { type ipv6_addr . ifname; elements = { fe80::100 . \"eth1\" }; }"
        ));
        assert!(s.contains("ip daddr @vips4 drop"));
        assert!(s.contains("ip6 saddr @vips6 drop"));
        assert!(s.contains("ip6 daddr . meta iifname @vips6_ll drop"));
        assert!(s.contains("ip6 saddr . meta oifname @vips6_ll drop"));
        assert!(s.contains("type filter hook input priority -1; policy accept;"));
        // Neighbour discovery is accepted before any drop.
        let nd = s.find("nd-neighbor-solicit").expect("nd rule");
        assert!(nd < s.find("@vips6 drop").expect("drop"));
        assert!(s.starts_with("table inet vrrpd\ndelete table inet vrrpd\n"));
    }

    #[test]
    fn settings_change_the_rules() {
        let config = FirewallConfig {
            table: "t1".into(),
            priority: -150,
            counters: true,
            ifindex: true,
            nft: "nft".into(),
        };
        let set: BTreeSet<_> = [b("fe80::1", "eth1", 7)].into_iter().collect();
        let s = ruleset(&config, &set);
        assert!(s.contains("table inet t1 {"));
        assert!(s.contains("priority -150;"));
        assert!(s.contains("ip daddr @vips4 counter drop"));
        assert!(s.contains("type ipv6_addr . iface_index; elements = { fe80::1 . 7 };"));
        assert!(s.contains("ip6 daddr . meta iif @vips6_ll counter drop"));
    }

    #[test]
    fn an_empty_set_has_no_elements_clause() {
        let s = ruleset(&FirewallConfig::default(), &BTreeSet::new());
        assert!(s.contains("set vips4 { type ipv4_addr; }"));
        assert!(!s.contains("elements"));
    }

    #[test]
    fn counters_do_not_count_as_a_change() {
        let a = "ip daddr @vips4 counter packets 0 bytes 0 drop\nip6 x";
        let b = "ip daddr @vips4 counter packets 12 bytes 1008 drop\nip6 x";
        assert_eq!(without_counters(a), without_counters(b));
        assert_ne!(
            without_counters(a),
            without_counters("ip daddr @vips4 drop")
        );
    }
}
