//! What a reload would change: the running plan against a new one, sans
//! IO. `vrrpd diff -c FILE` prints it without applying anything (a dry
//! run); every applied reload puts it on the event stream.
//!
//! Instances are classified the way the VRRP driver applies a reload
//! (`vrrp_net::driver::VrrpHandle::reconfigure`): same identity on the
//! wire (interface, VRID, version, family) and same sync group means an
//! update in place (no priority 0, no state change); otherwise a restart.

use std::collections::BTreeMap;
use std::fmt::Debug;

use serde::Serialize;
use vrrp_net::driver::InstanceSpec;

use super::plan::Plan;

/// What happens to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// New: started.
    Added,
    /// No longer configured: stopped (an instance gracefully).
    Removed,
    /// Changed in place.
    Updated,
    /// Stopped and started again (an instance whose identity on the wire
    /// or sync group changed).
    Restarted,
    /// Changed, but only a restart of the daemon applies it.
    NeedsRestart,
}

/// One changed object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// `instance`, `sync_group`, `virtual_server`, `track_script`,
    /// `track_file`, `notify` or `global`.
    pub kind: &'static str,
    /// The object's name.
    pub name: String,
    /// What a reload does to it.
    pub action: Action,
    /// What changed (`priority: 100 -> 150`).
    pub details: Vec<String>,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let action = match self.action {
            Action::Added => "added",
            Action::Removed => "removed",
            Action::Updated => "updated in place",
            Action::Restarted => "restarted",
            Action::NeedsRestart => "changed (a daemon restart applies it)",
        };
        write!(f, "{} {}: {action}", self.kind, self.name)?;
        if !self.details.is_empty() {
            write!(f, " ({})", self.details.join("; "))?;
        }
        Ok(())
    }
}

fn field<T: Debug + PartialEq>(out: &mut Vec<String>, name: &str, old: &T, new: &T) {
    if old != new {
        out.push(format!("{name}: {old:?} -> {new:?}"));
    }
}

fn group_of(plan: &Plan, instance: &str) -> Option<String> {
    plan.groups
        .iter()
        .find(|g| g.members.iter().any(|m| m == instance))
        .map(|g| g.name.clone())
}

fn instance_details(old: &InstanceSpec, new: &InstanceSpec) -> Vec<String> {
    let mut d = Vec::new();
    let (a, b) = (&old.config, &new.config);
    field(&mut d, "interface", &old.interface, &new.interface);
    field(&mut d, "vrid", &a.vrid.get(), &b.vrid.get());
    field(&mut d, "version", &a.version, &b.version);
    field(&mut d, "priority", &a.priority.get(), &b.priority.get());
    field(
        &mut d,
        "advert_interval_cs",
        &a.advert_interval,
        &b.advert_interval,
    );
    field(&mut d, "preempt", &a.preempt, &b.preempt);
    field(&mut d, "preempt_delay", &a.preempt_delay, &b.preempt_delay);
    field(
        &mut d,
        "primary_address",
        &a.primary_address,
        &b.primary_address,
    );
    let vips = |s: &InstanceSpec| -> Vec<String> {
        if s.vips.is_empty() {
            s.config
                .virtual_addresses
                .iter()
                .map(|v| format!("{}/{}", v.addr, v.prefix_len))
                .collect()
        } else {
            s.vips
                .iter()
                .map(|v| format!("{}/{}", v.address.addr, v.address.prefix_len))
                .collect()
        }
    };
    let (va, vb) = (vips(old), vips(new));
    let plus: Vec<&String> = vb.iter().filter(|v| !va.contains(v)).collect();
    let minus: Vec<&String> = va.iter().filter(|v| !vb.contains(v)).collect();
    if !plus.is_empty() || !minus.is_empty() {
        let mut s = String::from("virtual addresses:");
        for v in plus {
            s.push_str(&format!(" +{v}"));
        }
        for v in minus {
            s.push_str(&format!(" -{v}"));
        }
        d.push(s);
    } else if old.vips != new.vips {
        d.push("virtual address devices or labels".to_owned());
    }
    field(&mut d, "auth", &a.auth, &b.auth);
    field(&mut d, "unicast_peers", &a.unicast_peers, &b.unicast_peers);
    field(&mut d, "initial_state", &a.initial_state, &b.initial_state);
    field(&mut d, "garp", &a.garp, &b.garp);
    field(&mut d, "checksum_mode", &a.checksum_mode, &b.checksum_mode);
    field(&mut d, "check_ttl", &a.check_ttl, &b.check_ttl);
    field(
        &mut d,
        "lower_prio_no_advert",
        &a.lower_prio_no_advert,
        &b.lower_prio_no_advert,
    );
    field(
        &mut d,
        "owner_ignore_adverts",
        &a.owner_ignore_adverts,
        &b.owner_ignore_adverts,
    );
    field(
        &mut d,
        "track_interfaces",
        &old.track_interfaces,
        &new.track_interfaces,
    );
    let tracks = |s: &InstanceSpec| -> Vec<(u64, i32, bool)> {
        s.tracks
            .iter()
            .map(|(id, c, _)| (u64::from(id.0), c.weight, c.reverse))
            .collect()
    };
    field(&mut d, "tracked objects", &tracks(old), &tracks(new));
    field(&mut d, "accept", &old.accept, &new.accept);
    field(
        &mut d,
        "garp_extra_if",
        &old.garp_extra_if,
        &new.garp_extra_if,
    );
    if d.is_empty() && old != new {
        d.push("other settings".to_owned());
    }
    d
}

/// Everything that differs between the running plan and `new`, in a
/// stable order: instances (in the new configuration's order, then the
/// removed ones), sync groups, notify scripts, tracked scripts and files,
/// virtual servers, global settings.
pub fn diff(old: &Plan, new: &Plan) -> Vec<Change> {
    let mut out = Vec::new();
    let olds: BTreeMap<&str, &InstanceSpec> = old
        .driver
        .instances
        .iter()
        .map(|i| (i.name.as_str(), i))
        .collect();
    for n in &new.driver.instances {
        let change = match olds.get(n.name.as_str()) {
            None => Some((Action::Added, Vec::new())),
            Some(o) => {
                let mut details = instance_details(o, n);
                let (go, gn) = (group_of(old, &n.name), group_of(new, &n.name));
                if go != gn {
                    details.push(format!("sync group: {go:?} -> {gn:?}"));
                }
                let restart =
                    o.interface != n.interface || !o.config.same_identity(&n.config) || go != gn;
                if restart {
                    Some((Action::Restarted, details))
                } else if *o != n {
                    Some((Action::Updated, details))
                } else {
                    None
                }
            }
        };
        if let Some((action, details)) = change {
            out.push(Change {
                kind: "instance",
                name: n.name.clone(),
                action,
                details,
            });
        }
    }
    for o in &old.driver.instances {
        if !new.driver.instances.iter().any(|n| n.name == o.name) {
            out.push(Change {
                kind: "instance",
                name: o.name.clone(),
                action: Action::Removed,
                details: Vec::new(),
            });
        }
    }
    named(
        &mut out,
        "sync_group",
        old.groups
            .iter()
            .map(|g| (g.name.clone(), format!("{g:?}"))),
        new.groups
            .iter()
            .map(|g| (g.name.clone(), format!("{g:?}"))),
        Action::Updated,
    );
    // An added or removed instance brings or takes its scripts: only
    // changed scripts of kept instances are worth a line.
    let kept = |n: &String| {
        old.notify.iter().any(|(o, _)| o == n) && new.notify.iter().any(|(o, _)| o == n)
    };
    named(
        &mut out,
        "notify",
        old.notify
            .iter()
            .filter(|(n, _)| kept(n))
            .map(|(n, s)| (n.clone(), format!("{s:?}"))),
        new.notify
            .iter()
            .filter(|(n, _)| kept(n))
            .map(|(n, s)| (n.clone(), format!("{s:?}"))),
        Action::Updated,
    );
    named(
        &mut out,
        "track_script",
        old.scripts
            .iter()
            .map(|s| (s.name.clone(), format!("{s:?}"))),
        new.scripts
            .iter()
            .map(|s| (s.name.clone(), format!("{s:?}"))),
        Action::Updated,
    );
    named(
        &mut out,
        "track_file",
        old.files
            .iter()
            .map(|f| (f.path.display().to_string(), format!("{f:?}"))),
        new.files
            .iter()
            .map(|f| (f.path.display().to_string(), format!("{f:?}"))),
        Action::Updated,
    );
    named(
        &mut out,
        "virtual_server",
        old.virtual_servers
            .iter()
            .map(|v| (v.server.service.key.to_string(), format!("{v:?}"))),
        new.virtual_servers
            .iter()
            .map(|v| (v.server.service.key.to_string(), format!("{v:?}"))),
        Action::Updated,
    );
    named(
        &mut out,
        "export_route",
        old.vs_routes
            .iter()
            .map(|(k, r)| (k.to_string(), r.to_string())),
        new.vs_routes
            .iter()
            .map(|(k, r)| (k.to_string(), r.to_string())),
        Action::Updated,
    );
    if old.http != new.http {
        out.push(Change {
            kind: "global",
            name: "http".to_owned(),
            action: Action::NeedsRestart,
            details: vec![format!("{:?} -> {:?}", old.http, new.http)],
        });
    }
    if old.notify_timeout != new.notify_timeout {
        out.push(Change {
            kind: "global",
            name: "notify_timeout".to_owned(),
            action: Action::NeedsRestart,
            details: vec![format!(
                "{:?} -> {:?}",
                old.notify_timeout, new.notify_timeout
            )],
        });
    }
    if old.driver.firewall != new.driver.firewall {
        out.push(Change {
            kind: "global",
            name: "nftables".to_owned(),
            action: Action::NeedsRestart,
            details: vec![format!(
                "{:?} -> {:?}",
                old.driver.firewall, new.driver.firewall
            )],
        });
    }
    if old.router_id != new.router_id {
        out.push(Change {
            kind: "global",
            name: "router_id".to_owned(),
            action: Action::NeedsRestart,
            details: vec![format!("{:?} -> {:?}", old.router_id, new.router_id)],
        });
    }
    out
}

/// Added, removed and changed objects known by name, compared by their
/// whole description.
fn named(
    out: &mut Vec<Change>,
    kind: &'static str,
    old: impl Iterator<Item = (String, String)>,
    new: impl Iterator<Item = (String, String)>,
    changed: Action,
) {
    let old: BTreeMap<String, String> = old.collect();
    let new: Vec<(String, String)> = new.collect();
    for (name, desc) in &new {
        let action = match old.get(name) {
            None => Some(Action::Added),
            Some(o) if o != desc => Some(changed),
            Some(_) => None,
        };
        if let Some(action) = action {
            out.push(Change {
                kind,
                name: name.clone(),
                action,
                details: Vec::new(),
            });
        }
    }
    for name in old.keys() {
        if !new.iter().any(|(n, _)| n == name) {
            out.push(Change {
                kind,
                name: name.clone(),
                action: Action::Removed,
                details: Vec::new(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vrrp_core::{InstanceConfig, Priority, Version, VirtualAddress, Vrid};

    fn spec(name: &str, iface: &str, vrid: u8, prio: u8, vips: &[&str]) -> InstanceSpec {
        let mut c = InstanceConfig::new(
            Vrid::new(vrid).expect("vrid"),
            Version::V3,
            "0.0.0.0".parse().expect("ip"),
        )
        .with_priority(Priority::new(prio));
        for v in vips {
            c = c.with_address(VirtualAddress::host(v.parse().expect("ip")));
        }
        InstanceSpec::new(name, iface, c)
    }

    fn plan(instances: Vec<InstanceSpec>) -> Plan {
        let mut p = Plan::default();
        p.driver.instances = instances;
        p
    }

    #[test]
    fn classifies_instances_like_the_driver_applies_a_reload() {
        let old = plan(vec![
            spec("same", "eth0", 1, 100, &["192.0.2.1"]),
            spec("prio", "eth0", 2, 100, &["192.0.2.2"]),
            spec("moved", "eth0", 3, 100, &["192.0.2.3"]),
            spec("gone", "eth0", 4, 100, &["192.0.2.4"]),
        ]);
        let new = plan(vec![
            spec("same", "eth0", 1, 100, &["192.0.2.1"]),
            spec("prio", "eth0", 2, 150, &["192.0.2.2", "192.0.2.22"]),
            spec("moved", "eth1", 3, 100, &["192.0.2.3"]),
            spec("new", "eth0", 5, 100, &["192.0.2.5"]),
        ]);
        let d = diff(&old, &new);
        let lines: Vec<String> = d.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "instance prio: updated in place (priority: 100 -> 150; virtual addresses: +192.0.2.22/32)",
                "instance moved: restarted (interface: \"eth0\" -> \"eth1\")",
                "instance new: added",
                "instance gone: removed",
            ]
        );
        assert!(diff(&old, &old).is_empty());
    }

    #[test]
    fn exported_routes_of_virtual_servers_show_in_the_diff() {
        let key = |t: &str| t.parse::<lvs::ServiceKey>().expect("key");
        let route = |t: &str| t.parse::<vrrp_net::route::Route>().expect("route");
        let old = Plan {
            vs_routes: vec![(
                key("tcp/192.0.2.5:80"),
                route("192.0.2.5/32 dev lo table 198 proto 248"),
            )],
            ..Plan::default()
        };
        let new = Plan {
            vs_routes: vec![(
                key("tcp/192.0.2.5:80"),
                route("192.0.2.5/32 dev lo table 199 proto 248"),
            )],
            ..Plan::default()
        };
        let lines: Vec<String> = diff(&old, &new).iter().map(ToString::to_string).collect();
        assert_eq!(lines, ["export_route tcp/192.0.2.5:80: updated in place"]);
        assert_eq!(diff(&new, &Plan::default()).len(), 1, "removed");
    }

    #[test]
    fn global_settings_need_a_restart() {
        let old = plan(Vec::new());
        let mut new = plan(Vec::new());
        new.http = Some("127.0.0.1:9100".parse().expect("addr"));
        let d = diff(&old, &new);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].action, Action::NeedsRestart);
        assert_eq!(d[0].name, "http");
    }
}
