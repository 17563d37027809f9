//! What vrrpd(8) says that clap cannot know: the description, signals,
//! exit statuses, environment and files. Kept here, in one place; the
//! tests in `super::tests` fail when the code handles a signal, uses an
//! exit status or reads an environment variable that is not listed.

/// DESCRIPTION, one paragraph per entry (`code` spans are set in bold).
pub const DESCRIPTION: &[&str] = &[
    "vrrpd moves virtual IP addresses between routers with VRRP (versions 2 and 3, \
     RFC 3768 and RFC 5798), checks the health of services, and keeps the kernel's \
     IPVS load balancer in step with it, all configured by one TOML file, \
     vrrpd.toml(5). It is a replacement for keepalived: it uses keepalived's option \
     names and defaults, talks to keepalived routers on the wire, and converts an \
     existing keepalived.conf with `vrrpd import-keepalived`.",
    "`vrrpd check` validates a configuration and prints it with every default filled \
     in; `vrrpd run` runs the daemon in the foreground (systemd starts it with \
     `Type=notify`: it reports READY, RELOADING and STOPPING). It needs \
     CAP_NET_ADMIN and CAP_NET_RAW (raw sockets, addresses, IPVS); tracked and \
     notify scripts run as the user the configuration names.",
];

/// SIGNALS: what the running daemon (`vrrpd run`) does on each signal it
/// handles.
pub const SIGNALS: &[(&str, &str)] = &[
    (
        "SIGTERM",
        "Stop: every master instance sends an advertisement with priority 0, so that \
         a backup takes over at once, removes its virtual addresses, and the IPVS \
         services vrrpd added are removed; `notify_stop` scripts run.",
    ),
    ("SIGINT", "The same as SIGTERM."),
    (
        "SIGHUP",
        "Reload: the configuration file is read again. When it is valid, instances \
         whose settings did not change keep running undisturbed, changed ones are \
         restarted, added and removed ones are started and stopped, and tracked \
         scripts and virtual servers are updated. When it is not, the errors are \
         logged and the running configuration stays. A new `global.http` address \
         needs a restart. `vrrpd ctl reload` does the same over the control socket \
         and answers with the diff it applied or why it was refused; \
         `vrrpd ctl reload --dry-run` only prints the diff.",
    ),
];

/// EXIT STATUS: every status a vrrpd command exits with.
pub const EXIT_STATUSES: &[(u8, &str)] = &[
    (0, "Success."),
    (
        1,
        "A failure other than the configuration: the daemon stopped on a run-time \
         error, `vrrpd status` could not reach a daemon, a file could not be written, \
         a URL could not be fetched; also a reload the running daemon refused \
         (`vrrpd ctl reload`: it says why, and keeps running as it was).",
    ),
    (
        2,
        "The configuration is invalid (`check`, `run`), the keepalived.conf cannot be \
         carried (`import-keepalived`), or the command line is wrong. The systemd unit \
         does not restart the daemon after this status: restarting does not fix a \
         file.",
    ),
    (
        3,
        "`run`: another vrrpd already runs with this configuration's name: it holds \
         the pid file's lock (/run/vrrpd/vrrpd.pid, or /run/vrrpd/NAME.pid with \
         --name). Nothing was touched. The systemd unit does not restart after it.",
    ),
];

/// ENVIRONMENT.
pub const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "VRRPD_LOG",
        "What is logged, as a tracing filter: a level (error, warn, info, debug, \
         trace) or directives such as `info,vrrp_net=debug`. The default is info.",
    ),
    (
        "NOTIFY_SOCKET",
        "Set by systemd: where `vrrpd run` reports readiness, reloads and stopping.",
    ),
    (
        "PATH",
        "Where a script named by a bare name (no slash) is looked up, by `check` and \
         `run` alike, as keepalived does; the file found is checked and run by its \
         full name.",
    ),
    (
        "WATCHDOG_USEC",
        "Set by systemd with WatchdogSec=: `vrrpd run` sends WATCHDOG=1 at half that \
         period while its VRRP loop makes progress, so a stalled loop is restarted.",
    ),
    (
        "VRRPD_DEBUG_FAULT",
        "Debug builds only (tests): KIND:MS injects a fault MS milliseconds after \
         start-up, to prove that every way out releases the addresses. Release \
         builds do not read it.",
    ),
];

/// FILES.
pub const FILES: &[(&str, &str)] = &[
    (
        "/etc/vrrpd/vrrpd.toml",
        "The configuration file the packaged systemd unit runs with, see vrrpd.toml(5). \
         As installed it configures nothing; its commented example is a valid start.",
    ),
    (
        "/usr/lib/systemd/system/vrrpd.service",
        "The systemd unit: installed, not enabled. `systemctl enable --now vrrpd` \
         starts it; `systemctl reload vrrpd` checks the file, then sends SIGHUP.",
    ),
    (
        "/run/vrrpd/vrrpd.pid",
        "The running daemon's pid, locked while it runs (/run/vrrpd/NAME.pid with \
         --name, or -p FILE): a second copy with the same name exits with status 3.",
    ),
    (
        "/run/vrrpd/vrrpd.addresses",
        "The record of the addresses the daemon added (next to the pid file), so \
         that a crash's leftovers are removed at the next start and an operator's \
         own addresses are kept.",
    ),
    (
        "/usr/share/doc/vrrpd/examples/",
        "Example configurations: keepalived's common setups written as vrrpd.toml.",
    ),
];

/// SEE ALSO, as (page, section).
pub const SEE_ALSO: &[(&str, &str)] = &[
    ("vrrpd.toml", "5"),
    ("keepalived", "8"),
    ("keepalived.conf", "5"),
    ("systemd.service", "5"),
    ("ipvsadm", "8"),
];
