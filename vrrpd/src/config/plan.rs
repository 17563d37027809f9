//! The whole [`Plan`] the runtime runs, built from a validated [`Config`].

use crate::run::plan::{
    Command, GroupPlan, Notify, Plan, RealServerCheck, RealServerPlan, TrackFile, TrackScript,
    VirtualServerPlan,
};

use super::command::CommandSpec;
use super::error::{ConfigError, ConfigErrors, ErrorKind, KeyPath};
use super::schema::Config;
use super::validate::resolve_user;

impl Config {
    /// Everything the daemon runs: driver configuration, scripts, files,
    /// notify scripts, virtual servers with their checks, HTTP listener.
    /// Fails only if a configured user vanished since validation.
    pub fn plan(&self) -> Result<Plan, ConfigErrors> {
        let mut errors = Vec::new();
        let mut cmd = |c: &CommandSpec| -> Command {
            let user = c.user.as_deref().or(self.global.script_user.as_deref());
            let ids = match user {
                Some(u) => match resolve_user(u) {
                    Some(ids) => Some(ids),
                    None => {
                        errors.push(ConfigError {
                            file: Default::default(),
                            line: 0,
                            column: 0,
                            key: KeyPath::default(),
                            kind: ErrorKind::UnknownUser(u.to_owned()),
                        });
                        None
                    }
                },
                None => None,
            };
            Command {
                argv: c.command.clone(),
                shell: c.shell,
                uid: ids.map(|(u, _)| u),
                gid: ids.and_then(|(_, g)| g),
            }
        };
        let (driver, tracking) = self.driver_config();
        let notify = self
            .instance
            .iter()
            .map(|(name, i)| {
                (
                    name.clone(),
                    Notify {
                        master: i.notify_master.as_ref().map(&mut cmd),
                        backup: i.notify_backup.as_ref().map(&mut cmd),
                        fault: i.notify_fault.as_ref().map(&mut cmd),
                        stop: i.notify_stop.as_ref().map(&mut cmd),
                        generic: i.notify.as_ref().map(&mut cmd),
                    },
                )
            })
            .collect();
        let groups = self
            .sync_group
            .iter()
            .map(|(name, g)| GroupPlan {
                name: name.clone(),
                members: g.group.clone(),
                notify: Notify {
                    master: g.notify_master.as_ref().map(&mut cmd),
                    backup: g.notify_backup.as_ref().map(&mut cmd),
                    fault: g.notify_fault.as_ref().map(&mut cmd),
                    stop: g.notify_stop.as_ref().map(&mut cmd),
                    generic: g.notify.as_ref().map(&mut cmd),
                },
            })
            .collect();
        let scripts = self
            .script
            .iter()
            .filter_map(|(name, s)| {
                let id = *tracking.scripts.get(name)?;
                Some(TrackScript {
                    id,
                    name: name.clone(),
                    command: cmd(&s.command),
                    interval: s.interval.get(),
                    timeout: s.timeout.unwrap_or(s.interval).get(),
                    rise: s.rise,
                    fall: s.fall,
                    init_fail: s.init_fail,
                })
            })
            .collect();
        let files = tracking
            .files
            .iter()
            .map(|(path, id)| TrackFile {
                id: *id,
                path: path.into(),
            })
            .collect();
        let lvs = self.virtual_servers();
        let checks = self.real_server_checks();
        let virtual_servers = self
            .virtual_server
            .iter()
            .zip(lvs)
            .map(|(vs, server)| {
                let key = server.service.key;
                let real_servers = vs
                    .real_server
                    .iter()
                    .zip(&server.real_servers)
                    .map(|(rs, lrs)| {
                        let addr = lrs.destination.addr;
                        RealServerPlan {
                            addr,
                            checks: checks
                                .iter()
                                .filter(|c| c.service == key && c.server == addr)
                                .map(|c| RealServerCheck {
                                    spec: c.spec.clone(),
                                })
                                .collect(),
                            notify_up: rs.notify_up.as_ref().map(&mut cmd),
                            notify_down: rs.notify_down.as_ref().map(&mut cmd),
                        }
                    })
                    .collect();
                VirtualServerPlan {
                    quorum_up: vs.quorum_up.as_ref().map(&mut cmd),
                    quorum_down: vs.quorum_down.as_ref().map(&mut cmd),
                    server,
                    real_servers,
                }
            })
            .collect();
        let plan = Plan {
            driver,
            notify,
            groups,
            scripts,
            files,
            virtual_servers,
            http: self.global.http.as_ref().map(|h| h.listen),
            notify_timeout: self.global.notify_timeout.get(),
        };
        if errors.is_empty() {
            Ok(plan)
        } else {
            Err(ConfigErrors(errors))
        }
    }
}
