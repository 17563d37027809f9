//! Routes and policy rules in the configuration: keepalived's
//! `virtual_routes` and `virtual_rules` (installed while the instance is
//! Master, in keepalived's and iproute2's words), `static_routes` and
//! `static_rules` (while the daemon runs), and
//! vrrpd's `export_routes` (each virtual address as a host route in a
//! kernel table while Master, for a routing daemon such as BIRD or FRR to
//! announce). The driver owns and heals them like the virtual addresses.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use vrrp_net::route::{PROTOCOL_KEEPALIVED, Route};
use vrrp_net::rule::Rule;

use super::error::{ErrorKind, KeyPath};
use super::schema::Documented;

/// `export_routes = { table = N, protocol = P, metric = M }`: each virtual
/// address as a /32 or /128 route out of its interface in kernel table
/// `table` while the instance is Master, removed otherwise.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Documented)]
#[serde(deny_unknown_fields)]
pub struct ExportRoutes {
    /// The kernel routing table (1..=4294967295, not 255: the kernel's
    /// local table).
    #[key(required, vrrpd_only)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    /// The routes' protocol number (`ip route ... proto P`), for the
    /// routing daemon to select them by.
    #[key(default_is = "18 (RTPROT_KEEPALIVED)", vrrpd_only)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<u8>,
    /// The routes' metric.
    #[key(default_is = "the kernel's: 0 for IPv4, 1024 for IPv6", vrrpd_only)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
}

/// `export_routes`, resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Export {
    /// The table.
    pub table: u32,
    /// The protocol.
    pub protocol: u8,
    /// The metric, when set.
    pub metric: Option<u32>,
}

impl Export {
    /// The host route of virtual address `addr` out of `device`.
    pub fn route(&self, addr: IpAddr, device: &str) -> Route {
        let mut route = Route::new(addr, if addr.is_ipv4() { 32 } else { 128 });
        route.table = self.table;
        route.protocol = self.protocol;
        route.metric = self.metric;
        route.device = Some(device.to_owned());
        // A host route out of the interface: link scope, as `ip route add
        // ADDR dev IF` makes it.
        route.scope = Some(253);
        route
    }

    /// Back to the TOML form.
    pub fn to_raw(self) -> ExportRoutes {
        ExportRoutes {
            table: Some(self.table),
            protocol: Some(self.protocol),
            metric: self.metric,
        }
    }
}

/// Resolves `export_routes` of the instance at `k`; problems go to `err`.
pub fn export(
    raw: Option<ExportRoutes>,
    k: &KeyPath,
    err: &mut impl FnMut(KeyPath, ErrorKind),
) -> Option<Export> {
    let raw = raw?;
    let k = k.key("export_routes");
    let table = match raw.table {
        None => {
            err(k, ErrorKind::Missing("table"));
            return None;
        }
        Some(0 | 255) => {
            err(
                k.key("table"),
                ErrorKind::Invalid(
                    "table 0 is no table and 255 is the kernel's local table: choose another"
                        .to_owned(),
                ),
            );
            return None;
        }
        Some(t) => t,
    };
    Some(Export {
        table,
        protocol: raw.protocol.unwrap_or(PROTOCOL_KEEPALIVED),
        metric: raw.metric,
    })
}

/// Parses route lines (`virtual_routes`, `static_routes`) written at key
/// `key`; each bad line is a problem at its index.
pub fn parse_routes(
    lines: &[String],
    key: &KeyPath,
    err: &mut impl FnMut(KeyPath, ErrorKind),
) -> Vec<Route> {
    let mut out = Vec::with_capacity(lines.len());
    for (n, line) in lines.iter().enumerate() {
        match line.parse::<Route>() {
            Ok(r) => out.push(r),
            Err(e) => err(
                key.index(n),
                ErrorKind::Invalid(format!("route `{line}`: {e}")),
            ),
        }
    }
    out
}

/// Parses rule lines (`virtual_rules`, `static_rules`) written at key
/// `key`; each bad line is a problem at its index.
pub fn parse_rules(
    lines: &[String],
    key: &KeyPath,
    err: &mut impl FnMut(KeyPath, ErrorKind),
) -> Vec<Rule> {
    let mut out = Vec::with_capacity(lines.len());
    for (n, line) in lines.iter().enumerate() {
        match line.parse::<Rule>() {
            Ok(r) => out.push(r),
            Err(e) => err(
                key.index(n),
                ErrorKind::Invalid(format!("rule `{line}`: {e}")),
            ),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{ConfigErrors, Effective, parse};
    use crate::plan::plan;

    /// `config` printed (`write_toml`) reads back to itself.
    fn assert_prints_back(config: Effective) {
        let mut out = Vec::new();
        config
            .write_toml(&mut out)
            .unwrap_or_else(|e| panic!("{e}"));
        let printed = String::from_utf8(out).unwrap_or_default();
        assert_eq!(parse(&printed, Path::new("p.toml")).ok(), Some(config));
    }

    /// The error `vrrpd check` gives for `text` read from `file`.
    fn error_of(text: &str, file: &str) -> String {
        parse(text, Path::new(file))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    const BASE: &str = "[instance.VI_1]\ninterface = \"eth0\"\nvirtual_router_id = 1\nvirtual_ipaddress = [\"192.0.2.100/24\", \"192.0.2.101 dev eth1\"]\n";

    fn load(extra: &str) -> Result<Effective, ConfigErrors> {
        parse(&format!("{BASE}{extra}"), Path::new("r.toml"))
    }

    #[test]
    fn virtual_and_exported_routes_reach_the_driver_and_print_back() {
        let text = "virtual_routes = [\"198.51.100.0/24 via 192.0.2.254 dev eth0 table 100 metric 5\", \"blackhole 203.0.113.0/24\"]\nexport_routes = { table = 198, protocol = 248 }\n";
        let config = load(text).unwrap_or_else(|e| panic!("{e}"));
        let p = plan(&config);
        let routes: Vec<String> = p.driver.instances[0]
            .routes
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            routes,
            [
                "198.51.100.0/24 via 192.0.2.254 dev eth0 table 100 metric 5 proto 18",
                "blackhole 203.0.113.0/24 table 254 proto 18",
                "192.0.2.100/32 dev eth0 table 198 proto 248 scope 253",
                "192.0.2.101/32 dev eth1 table 198 proto 248 scope 253",
            ]
        );
        // `vrrpd check` prints what loads back to the same configuration.
        let mut out = Vec::new();
        config
            .write_toml(&mut out)
            .unwrap_or_else(|e| panic!("{e}"));
        let printed = String::from_utf8(out).unwrap_or_default();
        let again =
            parse(&printed, Path::new("printed.toml")).unwrap_or_else(|e| panic!("{e}\n{printed}"));
        assert_eq!(again, config);
    }

    #[test]
    fn bad_routes_name_the_line_and_key() {
        let e = load("virtual_routes = [\"198.51.100.0/24 via 192.0.2.254\", \"198.51.100.1/24 dev eth0\"]\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("r.toml:5:"), "{e}");
        assert!(e.contains("instance.VI_1.virtual_routes[1]"), "{e}");
        assert!(e.contains("host bits"), "{e}");
        let e = load("export_routes = { protocol = 248 }\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("`table` is required"), "{e}");
        let e = load("export_routes = { table = 255 }\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("local table"), "{e}");
    }

    #[test]
    fn virtual_servers_export_their_addresses_and_marks_are_refused() {
        let text = "[virtual_server_group]\nweb = [\"192.0.2.10-11 80\", \"fwmark 7\"]\n\
                    [[virtual_server]]\nip = \"192.0.2.5\"\nport = 80\nexport_routes = { table = 198, protocol = 248, metric = 10 }\n\
                    [[virtual_server.real_server]]\nip = \"192.0.2.6\"\n\
                    [[virtual_server]]\ngroup = \"web\"\nexport_routes = { table = 199 }\n\
                    [[virtual_server.real_server]]\nip = \"192.0.2.7\"\nport = 80\n\
                    [[virtual_server]]\nip = \"2001:db8::10\"\nport = 80\nexport_routes = { table = 199 }\n\
                    [[virtual_server.real_server]]\nip = \"2001:db8::11\"\n\
                    [[virtual_server]]\nip = \"192.0.2.8\"\nport = 80\n\
                    [[virtual_server.real_server]]\nip = \"192.0.2.9\"\n";
        let config = parse(text, Path::new("vs.toml")).unwrap_or_else(|e| panic!("{e}"));
        let routes: Vec<(String, String)> = plan(&config)
            .vs_routes
            .iter()
            .map(|(k, r)| (k.to_string(), r.to_string()))
            .collect();
        let want = |k: &str, r: &str| (k.to_owned(), r.to_owned());
        assert_eq!(
            routes,
            [
                want(
                    "tcp/192.0.2.5:80",
                    "192.0.2.5/32 dev lo table 198 metric 10 proto 248 scope 253"
                ),
                want(
                    "tcp/192.0.2.10:80",
                    "192.0.2.10/32 dev lo table 199 proto 18 scope 253"
                ),
                want(
                    "tcp/192.0.2.11:80",
                    "192.0.2.11/32 dev lo table 199 proto 18 scope 253"
                ),
                want(
                    "tcp/[2001:db8::10]:80",
                    "2001:db8::10/128 dev lo table 199 proto 18 scope 253"
                ),
            ]
        );
        assert_prints_back(config);
        let e = error_of(
            "[[virtual_server]]\nfwmark = 7\nexport_routes = { table = 198 }\n",
            "fw.toml",
        );
        assert!(
            e.contains("fw.toml:3:") && e.contains("virtual_server[0].export_routes"),
            "{e}"
        );
        assert!(e.contains("firewall-mark service has no address"), "{e}");
        let e = error_of(
            "[virtual_server_group]\nm = [\"fwmark 7\"]\n[[virtual_server]]\ngroup = \"m\"\nexport_routes = { table = 255 }\n",
            "fw.toml",
        );
        assert!(e.contains("local table"), "{e}");
    }

    #[test]
    fn static_routes_reach_the_driver_and_bad_ones_name_their_line() {
        let text =
            format!("static_routes = [\"198.51.100.0/24 via 192.0.2.254 table 100\"]\n{BASE}");
        let config = parse(&text, Path::new("s.toml")).unwrap_or_else(|e| panic!("{e}"));
        let routes: Vec<String> = plan(&config)
            .driver
            .static_routes
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            routes,
            ["198.51.100.0/24 via 192.0.2.254 table 100 proto 18"]
        );
        assert_prints_back(config);
        let bad = format!("static_routes = [\n  \"198.51.100.0/24\",\n]\n{BASE}");
        let e = error_of(&bad, "s.toml");
        assert!(
            e.contains("s.toml:2:") && e.contains("static_routes[0]"),
            "{e}"
        );
        assert!(e.contains("needs `via` or `dev`"), "{e}");
    }

    #[test]
    fn virtual_and_static_rules_reach_the_driver() {
        let text = format!(
            "static_rules = [\"fwmark 7 table 7 priority 70\"]\n{BASE}virtual_rules = [\"from 192.0.2.0/24 table 100\", \"to 198.51.100.0/24 lookup main priority 5 protocol 0\"]\n"
        );
        let config = parse(&text, Path::new("r.toml")).unwrap_or_else(|e| panic!("{e}"));
        let p = plan(&config);
        let show = |r: &[vrrp_net::rule::Rule]| -> Vec<String> {
            r.iter().map(ToString::to_string).collect()
        };
        assert_eq!(
            show(&p.driver.instances[0].rules),
            [
                "inet from 192.0.2.0/24 table 100 protocol 18",
                "inet to 198.51.100.0/24 priority 5 table 254 protocol 0",
            ]
        );
        assert_eq!(
            show(&p.driver.static_rules),
            ["inet priority 70 fwmark 0x7 table 7 protocol 18"]
        );
        assert_prints_back(config);
        let e = load("virtual_rules = [\"from 192.0.2.0/24 uidrange 1-2\"]\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("r.toml:5:") && e.contains("virtual_rules[0]"),
            "{e}"
        );
        assert!(e.contains("`uidrange` is not supported in a rule"), "{e}");
    }

    #[test]
    fn excluded_addresses_reach_the_driver_flagged_and_print_back() {
        let config =
            load("virtual_ipaddress_excluded = [\"2001:db8::61/64\", \"192.0.2.200 dev eth1\"]\n")
                .unwrap_or_else(|e| panic!("{e}"));
        let p = plan(&config);
        let vips: Vec<(String, bool)> = p.driver.instances[0]
            .vips
            .iter()
            .map(|v| (v.address.to_string(), v.excluded))
            .collect();
        assert_eq!(
            vips,
            [
                ("192.0.2.100/24".to_owned(), false),
                ("192.0.2.101/32".to_owned(), false),
                ("2001:db8::61/64".to_owned(), true),
                ("192.0.2.200/32".to_owned(), true),
            ]
        );
        // The advertisements carry the others only: an IPv6 address on an
        // IPv4 instance is no error.
        assert_eq!(
            config.instances["VI_1"]
                .core_config()
                .virtual_addresses
                .len(),
            2
        );
        assert_prints_back(config);
    }
}
