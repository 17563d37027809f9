//! keepalived's route blocks (`virtual_routes` in a `vrrp_instance`):
//! one route a line, in iproute2's words, carried as written into the
//! TOML's `virtual_routes` once vrrp-net's route parser accepts it.

use vrrp_net::route::Route;
use vrrp_net::rule::Rule;

use super::Fate;
use super::keywords::Cx;
use super::parse::Node;
use crate::config::KeyPath;

/// A line's words without keepalived's own `no_track` (vrrpd always puts
/// back a route or rule deleted while it is wanted, as it does with
/// addresses).
fn tracked_words(words: &[String]) -> Vec<&str> {
    words
        .iter()
        .map(String::as_str)
        .filter(|w| *w != "no_track")
        .collect()
}

impl Cx {
    /// The routes of a `virtual_routes { ... }` block at `key`, without
    /// `no_track`. A route vrrpd cannot install as keepalived would
    /// (metrics such as `mtu`, `encap`) is dropped with its line and why.
    pub(super) fn route_lines(
        &mut self,
        n: &Node,
        key: &KeyPath,
        start: usize,
        row: &str,
    ) -> Vec<String> {
        self.carried_lines::<Route>(n, key, start, row, "route", |words| {
            tracked_words(words).join(" ")
        })
    }

    /// The rules of a `virtual_rules { ... }` or `static_rules { ... }`
    /// block at `key`, `no_track` taken out as for routes (and, as
    /// keepalived does, such a rule gets no protocol); a rule vrrpd cannot
    /// install as keepalived would is dropped with its line and why.
    pub(super) fn rule_lines(
        &mut self,
        n: &Node,
        key: &KeyPath,
        start: usize,
        row: &str,
    ) -> Vec<String> {
        self.carried_lines::<Rule>(n, key, start, row, "rule", |words| {
            let kept = tracked_words(words);
            let mut text = kept.join(" ");
            // keepalived marks a tracked rule with its protocol (18) and
            // leaves a `no_track` one without any, unless one is written.
            let untracked = words.iter().any(|w| w == "no_track");
            if untracked && !kept.iter().any(|w| *w == "protocol" || *w == "proto") {
                text.push_str(" protocol 0");
            }
            text
        })
    }

    /// The lines of block `n` that parse as a `T` once `text_of` has
    /// rewritten them, carried at `key[start..]`; the others are dropped
    /// with their line and the parser's reason.
    fn carried_lines<T: std::str::FromStr>(
        &mut self,
        n: &Node,
        key: &KeyPath,
        start: usize,
        row: &str,
        what: &str,
        text_of: impl Fn(&[String]) -> String,
    ) -> Vec<String>
    where
        T::Err: std::fmt::Display,
    {
        let mut out = Vec::new();
        if n.children.is_none() {
            self.note(
                n.pos,
                format!("`{}` without a block; nothing carried", n.keyword()),
            );
        }
        for line in n.block() {
            let text = text_of(&line.words);
            match text.parse::<T>() {
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
                        format!("{what} `{}` dropped: {e}", line.words.join(" ")),
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
        let text = "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 1\n  virtual_ipaddress {\n    192.0.2.100/24\n  }\n  virtual_routes {\n    src 192.0.2.100 to 198.51.100.0/24 via 192.0.2.254 dev eth0\n    203.0.113.0/24 via 192.0.2.254 dev eth0 table 100 metric 5 no_track\n    blackhole 198.51.100.128/25\n    192.0.2.0/24 via 192.0.2.254 or 192.0.2.253\n    198.51.100.192/26 dev eth0 mtu 1400\n  }\n}\n";
        let options = Options {
            config_id: "n".to_owned(),
        };
        let imported = import_str(text, Path::new("keepalived.conf"), &options)
            .unwrap_or_else(|e| panic!("{e}"));
        let w: Vec<String> = imported.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(w.len(), 1, "{w:#?}");
        assert!(
            imported.warnings[0].line == 12 && w[0].contains("`mtu` is not supported"),
            "{w:#?}"
        );
        assert_eq!(imported.report.rows["virtual_routes entry"], [4, 0, 1]);
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
                "192.0.2.0/24 table 254 proto 18 nexthop via 192.0.2.254 nexthop via 192.0.2.253",
            ]
        );
    }

    #[test]
    fn virtual_and_static_rules_are_carried_as_keepalived_sets_them() {
        let text = "static_rules {\n  from 198.51.100.0/24 table 101 priority 201\n}\nvrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 1\n  virtual_ipaddress {\n    192.0.2.100/24\n  }\n  virtual_rules {\n    from 192.0.2.100 table 100\n    to 203.0.113.0/24 table 100 no_track\n    from 192.0.2.0/24 ipproto tcp table 1\n  }\n}\n";
        let options = Options {
            config_id: "n".to_owned(),
        };
        let imported = import_str(text, Path::new("keepalived.conf"), &options)
            .unwrap_or_else(|e| panic!("{e}"));
        let w: Vec<String> = imported.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(w.len(), 1, "{w:#?}");
        assert!(
            imported.warnings[0].line == 13 && w[0].contains("`ipproto`"),
            "{w:#?}"
        );
        assert_eq!(imported.report.rows["virtual_rules entry"], [2, 0, 1]);
        assert_eq!(imported.report.rows["static_rules entry"], [1, 0, 0]);
        let toml = imported.toml();
        let (outcome, errors) = config::read(&toml, Path::new("out.toml"), Target::OtherHost);
        assert!(errors.is_empty(), "{errors:#?}\n{toml}");
        let driver = crate::plan::plan(&outcome.effective).driver;
        let rules: Vec<String> = driver.instances[0]
            .rules
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            rules,
            [
                "inet from 192.0.2.100/32 table 100 protocol 18",
                "inet to 203.0.113.0/24 table 100 protocol 0",
            ]
        );
        assert_eq!(driver.static_rules.len(), 1);
    }
}
