//! Resolving one virtual or static address: its address, `dev`, `label`
//! and keepalived's `scope`, `brd`, `peer`, `preferred_lft` and
//! `no_track`, as keepalived 2.2.7 reads them (`alloc_ipaddress`).

use std::net::{IpAddr, Ipv4Addr};

use vrrp_core::VirtualAddress;
use vrrp_net::addr::AddrAttrs;

use super::super::effective::Vip;
use super::super::error::{ErrorKind, KeyPath};
use super::super::raw::VirtualIp;
use super::{Resolver, kernel_name};

/// keepalived's scope names (`rtscope_default`); numbers 0..=255 too.
pub(crate) const SCOPE_NAMES: &[(&str, u8)] = &[
    ("global", 0),
    ("site", 200),
    ("link", 253),
    ("host", 254),
    ("nowhere", 255),
];

/// A scope as keepalived (and `ip`) reads it: a name or a number (decimal
/// or `0x` hex).
pub(crate) fn parse_scope(text: &str) -> Result<u8, String> {
    if let Some((_, n)) = SCOPE_NAMES.iter().find(|(name, _)| *name == text) {
        return Ok(*n);
    }
    let n = match text.strip_prefix("0x") {
        Some(hex) => u8::from_str_radix(hex, 16).ok(),
        None => text.parse::<u8>().ok(),
    };
    n.ok_or_else(|| {
        format!("scope `{text}` is neither global, site, link, host, nowhere nor a number 0..255")
    })
}

/// How a scope is written back: its name, else its number.
pub(crate) fn scope_text(scope: u8) -> String {
    SCOPE_NAMES
        .iter()
        .find(|(_, n)| *n == scope)
        .map_or_else(|| scope.to_string(), |(name, _)| (*name).to_owned())
}

impl Resolver {
    /// One address at `key`; `None` (with the errors said) if it cannot be
    /// used.
    pub(super) fn vip(&mut self, key: KeyPath, v: VirtualIp) -> Option<Vip> {
        let bad = |r: &mut Resolver, why: String| r.err(key.clone(), ErrorKind::Invalid(why));
        for (what, name) in [("dev", &v.dev), ("label", &v.label)] {
            if let Some(Err(e)) = name.as_deref().map(|name| kernel_name(what, name)) {
                bad(self, e);
            }
        }
        let mut address = match v.address.parse::<VirtualAddress>() {
            Ok(a) => a,
            Err(e) => {
                bad(self, e.to_string());
                return None;
            }
        };
        let v6 = address.addr.is_ipv6();
        let mut attrs = AddrAttrs::default();
        let mut ok = true;
        if let Some(scope) = &v.scope {
            match parse_scope(scope) {
                // The kernel works out an IPv6 address's scope itself
                // (keepalived ignores the word, with an error).
                Ok(_) if v6 => {
                    bad(
                        self,
                        format!(
                            "scope `{scope}`: an IPv6 address's scope is the kernel's; remove it"
                        ),
                    );
                    ok = false;
                }
                Ok(n) => attrs.scope = Some(n),
                Err(e) => {
                    bad(self, e);
                    ok = false;
                }
            }
        }
        if let Some(peer) = &v.peer {
            let (text, len) = match peer.split_once('/') {
                Some((a, l)) => (a, Some(l)),
                None => (peer.as_str(), None),
            };
            let max = if v6 { 128 } else { 32 };
            match (text.parse::<IpAddr>(), len.map(str::parse::<u8>)) {
                (Ok(p), _) if p.is_ipv6() != v6 => {
                    bad(
                        self,
                        format!("peer {p} is not of the family of {}", address.addr),
                    );
                    ok = false;
                }
                (Ok(_), _) if v.address.contains('/') => {
                    bad(self, "with a peer, the prefix length goes on the peer (`peer ADDR/LEN`), as in keepalived and ip".to_owned());
                    ok = false;
                }
                (Ok(p), None) => {
                    attrs.peer = Some(p);
                    address.prefix_len = max;
                }
                (Ok(p), Some(Ok(l))) if l <= max => {
                    attrs.peer = Some(p);
                    address.prefix_len = l;
                }
                _ => {
                    bad(
                        self,
                        format!("peer `{peer}` is not an address with an optional prefix length"),
                    );
                    ok = false;
                }
            }
        }
        if let Some(brd) = &v.brd {
            let prefix = u32::from(address.prefix_len);
            match (address.addr, brd.as_str()) {
                (IpAddr::V6(_), _) => {
                    bad(
                        self,
                        format!(
                            "brd `{brd}`: IPv6 has no broadcast address (keepalived drops such an address)"
                        ),
                    );
                    ok = false;
                }
                (_, _) if attrs.peer.is_some() => {
                    bad(
                        self,
                        "brd and peer together: a point-to-point address has no broadcast address"
                            .to_owned(),
                    );
                    ok = false;
                }
                (IpAddr::V4(a), "+" | "-") if prefix <= 30 => {
                    let host_mask = u32::MAX >> prefix;
                    let base = u32::from(a);
                    attrs.broadcast = Some(Ipv4Addr::from(if brd == "+" {
                        base | host_mask
                    } else {
                        base & !host_mask
                    }));
                }
                (IpAddr::V4(_), "+" | "-") => {
                    bad(
                        self,
                        format!("brd `{brd}` needs a prefix of at most 30 bits, not /{prefix}"),
                    );
                    ok = false;
                }
                (IpAddr::V4(_), text) => match text.parse::<Ipv4Addr>() {
                    Ok(b) => attrs.broadcast = Some(b),
                    Err(_) => {
                        bad(
                            self,
                            format!("brd `{text}` is neither an IPv4 address, `+` nor `-`"),
                        );
                        ok = false;
                    }
                },
            }
        }
        match v.preferred_lft.as_deref() {
            Some("forever") => attrs.preferred_lft = None,
            Some(n) => match n.parse::<u32>() {
                Ok(u32::MAX) => attrs.preferred_lft = None,
                Ok(secs) => attrs.preferred_lft = Some(secs).filter(|_| v6),
                Err(_) => {
                    bad(
                        self,
                        format!(
                            "preferred_lft `{n}` is neither seconds (0..4294967295) nor `forever`"
                        ),
                    );
                    ok = false;
                }
            },
            // keepalived's defaults: a /128 deprecated (not chosen as a
            // source address), a shorter prefix preferred forever.
            None if v6 && address.prefix_len == 128 => attrs.preferred_lft = Some(0),
            None => {}
        }
        ok.then_some(Vip {
            address,
            dev: v.dev,
            label: v.label,
            attrs,
            no_track: v.no_track,
        })
    }
}

/// The raw form of an effective address (what `vrrpd config show`
/// writes): resolving it again gives the same address.
pub(crate) fn vip_to_raw(v: &Vip) -> VirtualIp {
    let a = &v.attrs;
    let address = if a.peer.is_some() {
        v.address.addr.to_string()
    } else {
        v.address.to_string()
    };
    VirtualIp {
        address,
        dev: v.dev.clone(),
        label: v.label.clone(),
        scope: a.scope.map(scope_text),
        brd: a.broadcast.map(|b| b.to_string()),
        peer: a.peer.map(|p| format!("{p}/{}", v.address.prefix_len)),
        preferred_lft: match (v.address.addr.is_ipv6(), a.preferred_lft) {
            (false, _) => None,
            (true, Some(secs)) => Some(secs.to_string()),
            (true, None) => Some("forever".to_owned()),
        },
        no_track: v.no_track,
    }
}
