//! keepalived's route blocks (`virtual_routes` in a `vrrp_instance`):
//! one route a line, in iproute2's words, carried as written into the
//! TOML's `virtual_routes` once vrrp-net's route parser accepts it.

use vrrp_net::route::Route;

use super::Fate;
use super::keywords::Cx;
use super::parse::Node;
use crate::config::KeyPath;

impl Cx {
    /// The routes of a `virtual_routes { ... }` block at `key`. keepalived's
    /// own words are taken out: `no_track` (vrrpd always puts back a
    /// route deleted while it is wanted, as it does with addresses). A
    /// route vrrpd cannot install as keepalived would (multipath `nexthop`
    /// or `or`, metrics such as `mtu`) is dropped with its line and why.
    pub(super) fn route_lines(
        &mut self,
        n: &Node,
        key: &KeyPath,
        start: usize,
        row: &str,
    ) -> Vec<String> {
        let mut out = Vec::new();
        if n.children.is_none() {
            self.note(
                n.pos,
                format!("`{}` without a block; nothing carried", n.keyword()),
            );
        }
        for line in n.block() {
            let words: Vec<&str> = line
                .words
                .iter()
                .map(String::as_str)
                .filter(|w| *w != "no_track")
                .collect();
            let text = words.join(" ");
            match text.parse::<Route>() {
                Ok(_) => {
                    self.locations
                        .insert(key.index(start + out.len()).to_string(), line.pos);
                    self.report.count(row, Fate::Carried);
                    out.push(text);
                }
                Err(e) => {
                    self.report.count(row, Fate::Dropped);
                    self.note(
                        line.pos,
                        format!("route `{}` dropped: {e}", line.words.join(" ")),
                    );
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{Options, import_str};
    use crate::config::{self, Target};

    #[test]
    fn virtual_routes_are_carried_and_unsupported_ones_named() {
        let text = "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 1\n  virtual_ipaddress {\n    192.0.2.100/24\n  }\n  virtual_routes {\n    src 192.0.2.100 to 198.51.100.0/24 via 192.0.2.254 dev eth0\n    203.0.113.0/24 via 192.0.2.254 dev eth0 table 100 metric 5 no_track\n    blackhole 198.51.100.128/25\n    192.0.2.0/24 via 192.0.2.254 or 192.0.2.253\n  }\n}\n";
        let options = Options {
            config_id: "n".to_owned(),
        };
        let imported = import_str(text, Path::new("keepalived.conf"), &options)
            .unwrap_or_else(|e| panic!("{e}"));
        let w: Vec<String> = imported.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(w.len(), 1, "{w:#?}");
        assert!(
            imported.warnings[0].line == 11 && w[0].contains("`or` is not supported"),
            "{w:#?}"
        );
        assert_eq!(imported.report.rows["virtual_routes entry"], [3, 0, 1]);
        let toml = imported.toml();
        let (outcome, errors) = config::read(&toml, Path::new("out.toml"), Target::OtherHost);
        assert!(errors.is_empty(), "{errors:#?}\n{toml}");
        let routes: Vec<String> = crate::plan::plan(&outcome.effective).driver.instances[0]
            .routes
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            routes,
            [
                "198.51.100.0/24 via 192.0.2.254 dev eth0 src 192.0.2.100 table 254 proto 18",
                "203.0.113.0/24 via 192.0.2.254 dev eth0 table 100 metric 5 proto 18",
                "blackhole 198.51.100.128/25 table 254 proto 18",
            ]
        );
    }
}
