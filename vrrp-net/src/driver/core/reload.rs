//! Reload as a transaction: [`DriverCore::plan_reload`] checks the whole
//! new configuration and works out what changes and which sockets it
//! needs, changing nothing; the shell opens those sockets; only then does
//! [`DriverCore::commit_reload`] apply it. A failure before the commit
//! leaves every instance and address as it was.

use std::collections::{BTreeSet, HashMap, HashSet};

use vrrp_core::{Family, InstanceId, RouterError, Timestamp, TrackId, Vrid};

use super::record::Input;
use super::tables::TrackName;
use super::{DriverCore, SocketKey, SocketReport, SocketSpec, VipKey, with_source};
use crate::driver::api::{DriverConfig, DriverError, InstanceSpec, ReloadSummary};

/// A checked reload, ready to commit.
#[derive(Debug, Clone)]
pub struct ReloadPlan {
    config: DriverConfig,
    summary: ReloadSummary,
    sockets: Vec<SocketSpec>,
}

impl ReloadPlan {
    /// The sockets the new configuration needs: open (or re-open with
    /// another membership) every one not open that way yet before
    /// committing, and pass what happened to
    /// [`DriverCore::commit_reload`].
    pub fn sockets(&self) -> &[SocketSpec] {
        &self.sockets
    }

    /// What the reload will change.
    pub fn summary(&self) -> &ReloadSummary {
        &self.summary
    }
}

/// Checks a configuration on its own (no system state needed).
pub(super) fn validate(config: &DriverConfig) -> Result<(), DriverError> {
    let mut names = HashSet::new();
    let mut keys: HashMap<(&str, Family, Vrid), &str> = HashMap::new();
    let mut vmacs: HashMap<&str, &str> = HashMap::new();
    for spec in &config.instances {
        if let Some(v) = &spec.vmac {
            let bad = |reason: String| DriverError::BadVmac {
                instance: spec.name.clone(),
                reason,
            };
            if v.name == spec.interface || config.instances.iter().any(|o| o.interface == v.name) {
                return Err(bad(format!("{} is an instance's interface", v.name)));
            }
            if let Some(other) = vmacs.insert(&v.name, &spec.name) {
                return Err(bad(format!("{} is also {other}'s", v.name)));
            }
            if v.name.is_empty() || v.name.len() >= 16 || v.name.contains(['/', ' ']) {
                return Err(bad(format!("{:?} is not an interface name", v.name)));
            }
        }
        if !names.insert(spec.name.as_str()) {
            return Err(DriverError::DuplicateName(spec.name.clone()));
        }
        let engine = spec.engine_config();
        engine.validate().map_err(|e| DriverError::Config {
            instance: spec.name.clone(),
            error: RouterError::Config(e),
        })?;
        let key = (spec.interface.as_str(), engine.family(), engine.vrid);
        if let Some(other) = keys.insert(key, &spec.name) {
            return Err(DriverError::DuplicateVrid {
                interface: spec.interface.clone(),
                vrid: engine.vrid,
                a: other.to_owned(),
                b: spec.name.clone(),
            });
        }
    }
    let mut grouped = HashSet::new();
    for group in &config.sync_groups {
        for member in group {
            if !names.contains(member.as_str()) {
                return Err(DriverError::UnknownInstance(member.clone()));
            }
            if !grouped.insert(member.as_str()) {
                return Err(DriverError::GroupedTwice(member.clone()));
            }
        }
    }
    Ok(())
}

/// Whether `new` can be applied to a running instance configured as
/// `old` without leaving the protocol: same interface, VRID, version and
/// family.
fn same_identity(old: &InstanceSpec, new: &InstanceSpec) -> bool {
    old.interface == new.interface && old.vmac == new.vmac && old.config.same_identity(&new.config)
}

impl DriverCore {
    /// Checks `config` and works out what it changes, without changing
    /// anything. Errors name the instance at fault.
    pub fn plan_reload(&mut self, config: DriverConfig) -> Result<ReloadPlan, DriverError> {
        validate(&config)?;
        let mut summary = ReloadSummary::default();
        let group_of = |groups: &[Vec<String>], name: &str| -> Option<Vec<String>> {
            groups.iter().find(|g| g.iter().any(|n| n == name)).cloned()
        };
        let mut restart: BTreeSet<String> = BTreeSet::new();
        for spec in &config.instances {
            let Some(entry) = self
                .names
                .get(&spec.name)
                .and_then(|id| self.entries.get(id))
            else {
                continue;
            };
            let group_changed =
                group_of(&self.groups, &spec.name) != group_of(&config.sync_groups, &spec.name);
            if group_changed || !same_identity(&entry.spec, spec) {
                restart.insert(spec.name.clone());
            }
        }
        // A sync group starts together: if one member restarts (or is
        // new), all of its members do.
        for group in &config.sync_groups {
            let any = group
                .iter()
                .any(|n| restart.contains(n) || !self.names.contains_key(n));
            if any {
                for n in group.iter().filter(|n| self.names.contains_key(*n)) {
                    restart.insert(n.clone());
                }
            }
        }
        for spec in &config.instances {
            match self
                .names
                .get(&spec.name)
                .and_then(|id| self.entries.get(id))
            {
                None => summary.added.push(spec.name.clone()),
                Some(_) if restart.contains(&spec.name) => {
                    summary.restarted.push(spec.name.clone())
                }
                Some(entry) if entry.spec == *spec => summary.unchanged.push(spec.name.clone()),
                Some(_) => summary.updated.push(spec.name.clone()),
            }
        }
        let new_names: HashSet<&str> = config.instances.iter().map(|s| s.name.as_str()).collect();
        for id in &self.order {
            if let Some(e) = self.entries.get(id)
                && !new_names.contains(e.name.as_str())
            {
                summary.removed.push(e.name.clone());
            }
        }
        let with_ids: Vec<(InstanceSpec, super::IfaceId)> = config
            .instances
            .iter()
            .map(|s| (s.clone(), self.ifaces.intern(s.socket_interface())))
            .collect();
        let sockets = self
            .sockets_for(with_ids.iter().map(|(s, i)| (s, *i)))
            .into_values()
            .collect();
        Ok(ReloadPlan {
            config,
            summary,
            sockets,
        })
    }

    /// Applies a planned reload. `opened` reports the sockets of
    /// [`ReloadPlan::sockets`] the shell opened for it (the ones already
    /// open as wanted need no report). Unchanged instances are not
    /// touched; updated ones change in place (no priority 0, no
    /// transition); restarted and removed ones stop gracefully first.
    pub fn commit_reload(
        &mut self,
        now: Timestamp,
        plan: ReloadPlan,
        opened: Vec<(SocketKey, SocketReport)>,
    ) -> ReloadSummary {
        let ReloadPlan {
            config,
            summary,
            sockets,
        } = plan;
        for name in summary.removed.iter().chain(&summary.restarted) {
            if let Some(id) = self.names.get(name).copied() {
                self.remove_entry(now, id);
            }
        }
        for name in &summary.updated {
            let (Some(id), Some(spec)) = (
                self.names.get(name).copied(),
                config.instances.iter().find(|s| s.name == *name),
            ) else {
                continue;
            };
            self.update_entry(now, id, spec.clone());
        }
        let mut started: Vec<InstanceId> = Vec::new();
        for spec in &config.instances {
            let new = summary.added.contains(&spec.name) || summary.restarted.contains(&spec.name);
            if !new {
                continue;
            }
            match self.add_entry(now, spec.clone()) {
                Ok(id) => started.push(id),
                // validate() ran and the old instance is gone: this cannot
                // fail, but an instance lost must be said.
                Err(e) => tracing::error!(instance = %spec.name, error = %e, "instance not added"),
            }
        }
        let fresh: HashSet<&str> = summary
            .added
            .iter()
            .chain(&summary.restarted)
            .map(String::as_str)
            .collect();
        if let Err(e) = self.add_groups(&config.sync_groups, |g| {
            g.iter().all(|n| fresh.contains(n.as_str()))
        }) {
            tracing::error!(error = %e, "sync group not set up");
        }
        self.groups = config.sync_groups.clone();
        self.foreign_policy = config.foreign_addresses;
        self.routes.statics = config.static_routes.clone();
        self.rules.statics = config.static_rules.clone();
        self.static_vips = super::addresses::static_vips(&config.static_addresses);
        self.order = config
            .instances
            .iter()
            .filter_map(|s| self.names.get(&s.name).copied())
            .collect();
        self.forget_unfollowed_routes();
        self.wanted_sockets = sockets.into_iter().map(|s| (s.key, s)).collect();
        self.sockets
            .retain(|k, _| self.wanted_sockets.contains_key(k));
        for (key, report) in opened {
            let slot = self.sockets.entry(key).or_default();
            match report {
                SocketReport::Opened {
                    ifindex,
                    join_multicast,
                } => {
                    slot.open = Some((ifindex, join_multicast));
                    slot.error = None;
                }
                SocketReport::Failed(e) => {
                    slot.open = None;
                    slot.error = Some(e);
                }
            }
        }
        self.refresh_bindings(now);
        for id in started {
            self.recorder.record(now, Input::Start { id });
            let _ = self.router.start(now, id);
        }
        self.changed = true;
        self.reconcile_all(now);
        self.drain(now);
        // After the last words of stopped instances: close what is no
        // longer wanted.
        self.effects
            .push_back(super::Effect::Sockets(self.wanted_sockets()));
        summary
    }

    /// Changes a running instance in place.
    fn update_entry(&mut self, now: Timestamp, id: InstanceId, spec: InstanceSpec) {
        let Some(entry) = self.entries.get(&id) else {
            return;
        };
        let binding_track = entry.binding_track;
        let old_tracks = entry.tracks.clone();
        let old_keys: Vec<VipKey> = entry.vips.iter().map(|(k, _)| k.clone()).collect();
        let current_source = self
            .router
            .instance(id)
            .map(|i| i.config().primary_address)
            .filter(|a| !a.is_unspecified());
        let engine = spec.engine_config();
        let auto_source = engine.primary_address.is_unspecified();
        let multicast = engine.unicast_peers.is_empty();
        let config = if auto_source {
            with_source(engine, current_source)
        } else {
            engine
        };
        let vips = self.vip_keys(&spec);
        for key in &old_keys {
            if let Some(list) = self.vip_index.get_mut(key) {
                list.retain(|i| *i != id);
                if list.is_empty() {
                    self.vip_index.remove(key);
                }
            }
        }
        for (key, _) in &vips {
            self.vip_index.entry(key.clone()).or_default().push(id);
        }
        let wanted = self.wanted_tracks(&spec, binding_track);
        let wanted_ids: HashSet<TrackId> = wanted.iter().map(|(t, _, _)| *t).collect();
        for (track, _) in &old_tracks {
            if !wanted_ids.contains(track) {
                self.recorder
                    .record(now, Input::Untrack { id, track: *track });
                let _ = self.router.untrack(now, id, *track);
            }
        }
        for (track, config, up) in &wanted {
            let same = old_tracks.iter().any(|(t, c)| t == track && c == config);
            // A tracked object kept as it was keeps its state; a changed
            // or new one is set from what is known now.
            if !same {
                let up = match self.tracks.name(*track) {
                    Some(TrackName::Binding(_)) => {
                        self.entries.get(&id).is_some_and(|e| e.binding.is_ok())
                    }
                    _ => *up,
                };
                self.recorder.record(
                    now,
                    Input::Track {
                        id,
                        track: *track,
                        config: *config,
                        up,
                    },
                );
                let _ = self.router.track(now, id, *track, *config, up);
            }
        }
        if let Some(e) = self.entries.get_mut(&id) {
            e.vips = vips;
            e.tracks = wanted.into_iter().map(|(t, c, _)| (t, c)).collect();
            e.auto_source = auto_source;
            e.multicast = multicast;
            e.spec = spec;
        }
        self.recorder.record(
            now,
            Input::Reconfigure {
                id,
                config: Box::new(config.clone()),
            },
        );
        if let Err(e) = self.router.reconfigure(now, id, config) {
            tracing::error!(instance = ?id, error = %e, "in-place change refused");
        }
    }
}
