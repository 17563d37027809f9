//! Network-namespace LANs for integration tests (feature `testnet`).
//!
//! [`Lan::new`] builds one bridge namespace holding a bridge and `n` router
//! namespaces, each joined to the bridge by a veth pair whose router end is
//! `eth0` with `192.0.2.N/24`, `2001:db8::N/64` and MAC `02:42:c0:00:02:N`.
//! IPv6 duplicate address detection is disabled in router namespaces, so
//! the addresses (and the link-local one) are usable as soon as `new`
//! returns. Namespace names carry the process id and a counter, so tests
//! may run in parallel; [`Lan`]'s `Drop` deletes every namespace, also when
//! a test panics, and `new` first deletes namespaces left by dead
//! processes.
//!
//! Code runs inside a namespace either as a command ([`Netns::exec`]) or on
//! a dedicated thread that has entered it, with its own current-thread
//! tokio runtime ([`Netns::spawn`]): sockets and netlink handles created
//! there belong to that namespace.
//!
//! [`Keepalived`] starts Debian's keepalived in a router namespace with a
//! private configuration, pid files and log.
//!
//! Needs root, `ip` (iproute2) and, for [`Keepalived`], `keepalived`.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Write as _};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sched::CloneFlags;
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

/// Prefix of every namespace created here.
const NS_PREFIX: &str = "vnt-";
/// Name of each router's LAN interface.
pub const ROUTER_IFNAME: &str = "eth0";
/// Most routers on one LAN (addresses .1 to .250).
pub const MAX_ROUTERS: usize = 250;

static NEXT_LAN: AtomicUsize = AtomicUsize::new(0);

/// Errors of the test network helpers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestnetError {
    /// A command could not be started.
    #[error("cannot run {cmd}: {error}")]
    Spawn {
        /// The command line.
        cmd: String,
        /// OS error.
        error: io::Error,
    },
    /// A command exited unsuccessfully.
    #[error("{cmd} failed ({status}): {stderr}")]
    Command {
        /// The command line.
        cmd: String,
        /// Its exit status.
        status: ExitStatus,
        /// What it wrote to stderr.
        stderr: String,
    },
    /// Entering a namespace failed.
    #[error("entering namespace {ns}: {error}")]
    Setns {
        /// Namespace name.
        ns: String,
        /// OS error.
        error: io::Error,
    },
    /// A file operation failed.
    #[error("{what}: {error}")]
    Io {
        /// What was being done.
        what: String,
        /// OS error.
        error: io::Error,
    },
    /// A thread running in a namespace panicked.
    #[error("namespace thread panicked: {0}")]
    ThreadPanicked(String),
    /// Something did not happen in time.
    #[error("timed out waiting for {0}")]
    Timeout(String),
    /// An argument was out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

fn command_line(program: &OsStr, args: &[&OsStr]) -> String {
    let mut line = program.to_string_lossy().into_owned();
    for arg in args {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

/// Runs `program args`, returning its output if it exits successfully.
fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<Output, TestnetError> {
    let os_args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    let cmd = command_line(OsStr::new(program), &os_args);
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|error| TestnetError::Spawn {
        cmd: cmd.clone(),
        error,
    })?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())
            .map_err(|error| TestnetError::Io {
                what: format!("writing stdin of {cmd}"),
                error,
            })?;
    }
    let output = child
        .wait_with_output()
        .map_err(|error| TestnetError::Spawn {
            cmd: cmd.clone(),
            error,
        })?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(TestnetError::Command {
            cmd,
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}

/// A named network namespace (`ip netns add`). Dropping it does not delete
/// it: [`Lan`] owns the lifetime of its namespaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Netns {
    name: String,
}

impl Netns {
    fn create(name: String) -> Result<Self, TestnetError> {
        run("ip", &["netns", "add", &name], None)?;
        Ok(Self { name })
    }

    fn delete(&self) -> Result<(), TestnetError> {
        run("ip", &["netns", "del", &self.name], None).map(|_| ())
    }

    /// The namespace name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The path of the namespace file (`/run/netns/NAME`).
    #[must_use]
    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// Runs `program args` inside the namespace (`ip netns exec`) and
    /// returns its output; a non-zero exit is an error.
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<Output, TestnetError> {
        let mut full = vec!["netns", "exec", &self.name, program];
        full.extend_from_slice(args);
        run("ip", &full, None)
    }

    /// Runs `program args` inside the namespace with `input` on its
    /// standard input (e.g. `nft -f -`); a non-zero exit is an error.
    pub fn exec_with_input(
        &self,
        program: &str,
        args: &[&str],
        input: &str,
    ) -> Result<Output, TestnetError> {
        let mut full = vec!["netns", "exec", &self.name, program];
        full.extend_from_slice(args);
        run("ip", &full, Some(input))
    }

    /// Runs `ip -n NAME args` and returns its stdout.
    pub fn ip(&self, args: &[&str]) -> Result<String, TestnetError> {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        let output = run("ip", &full, None)?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Runs several `ip` commands (one per line, without the leading `ip`)
    /// in one process inside the namespace (`ip -n NAME -batch -`).
    pub fn ip_batch(&self, commands: &str) -> Result<(), TestnetError> {
        run("ip", &["-n", &self.name, "-batch", "-"], Some(commands)).map(|_| ())
    }

    /// Sets sysctls (`key=value` items) inside the namespace.
    pub fn sysctl(&self, settings: &[&str]) -> Result<(), TestnetError> {
        let mut args = vec!["-q", "-w"];
        args.extend_from_slice(settings);
        self.exec("sysctl", &args).map(|_| ())
    }

    /// Runs `f` on a new thread that has entered this namespace, inside a
    /// current-thread tokio runtime (I/O and time enabled) built on that
    /// thread. Sockets and netlink handles created by `f` belong to the
    /// namespace.
    pub fn spawn<F, Fut, T>(&self, f: F) -> NsTask<T>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T>,
        T: Send + 'static,
    {
        let name = self.name.clone();
        let path = self.path();
        let handle = std::thread::Builder::new()
            .name(format!("ns-{name}"))
            .spawn(move || {
                let file = File::open(&path).map_err(|error| TestnetError::Setns {
                    ns: name.clone(),
                    error,
                })?;
                nix::sched::setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| {
                    TestnetError::Setns {
                        ns: name.clone(),
                        error: e.into(),
                    }
                })?;
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|error| TestnetError::Io {
                        what: "building tokio runtime".into(),
                        error,
                    })?;
                Ok(runtime.block_on(f()))
            });
        NsTask {
            handle: handle.map_err(|error| TestnetError::Io {
                what: "spawning namespace thread".into(),
                error,
            }),
        }
    }

    /// [`Self::spawn`] and wait for the result.
    pub fn run<F, Fut, T>(&self, f: F) -> Result<T, TestnetError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T>,
        T: Send + 'static,
    {
        self.spawn(f).join()
    }
}

/// A thread running inside a namespace, see [`Netns::spawn`].
#[derive(Debug)]
pub struct NsTask<T> {
    handle: Result<JoinHandle<Result<T, TestnetError>>, TestnetError>,
}

impl<T> NsTask<T> {
    /// Waits for the thread and returns what its future returned. A panic
    /// in the thread becomes [`TestnetError::ThreadPanicked`].
    pub fn join(self) -> Result<T, TestnetError> {
        let handle = self.handle?;
        match handle.join() {
            Ok(result) => result,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic".to_owned());
                Err(TestnetError::ThreadPanicked(message))
            }
        }
    }

    /// Whether the thread has finished.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.handle.as_ref().is_ok_and(JoinHandle::is_finished)
    }
}

/// One router of a [`Lan`].
#[derive(Debug)]
pub struct Router {
    number: usize,
    ns: Netns,
    port: String,
    bridge_ns: Netns,
}

impl Router {
    /// Router number, from 1: the last byte of its addresses.
    #[must_use]
    pub fn number(&self) -> usize {
        self.number
    }

    /// The router's namespace.
    #[must_use]
    pub fn ns(&self) -> &Netns {
        &self.ns
    }

    /// The LAN interface name inside the router namespace.
    #[must_use]
    pub fn ifname(&self) -> &'static str {
        ROUTER_IFNAME
    }

    /// The name of the bridge port (in the bridge namespace) facing this
    /// router.
    #[must_use]
    pub fn port(&self) -> &str {
        &self.port
    }

    /// `192.0.2.N`.
    #[must_use]
    pub fn ipv4(&self) -> Ipv4Addr {
        Ipv4Addr::new(192, 0, 2, self.last_byte())
    }

    /// `2001:db8::N`.
    #[must_use]
    pub fn ipv6(&self) -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(self.last_byte()))
    }

    /// `02:42:c0:00:02:N`.
    #[must_use]
    pub fn mac(&self) -> [u8; 6] {
        [0x02, 0x42, 0xc0, 0x00, 0x02, self.last_byte()]
    }

    /// The EUI-64 link-local address the kernel derives from the MAC.
    #[must_use]
    pub fn link_local(&self) -> Ipv6Addr {
        let m = self.mac();
        Ipv6Addr::new(
            0xfe80,
            0,
            0,
            0,
            u16::from_be_bytes([m[0] ^ 0x02, m[1]]),
            u16::from_be_bytes([m[2], 0xff]),
            u16::from_be_bytes([0xfe, m[3]]),
            u16::from_be_bytes([m[4], m[5]]),
        )
    }

    fn last_byte(&self) -> u8 {
        u8::try_from(self.number).unwrap_or(u8::MAX)
    }

    /// Sets the router's `eth0` administratively up or down
    /// (`ip link set eth0 up|down`).
    pub fn set_link(&self, up: bool) -> Result<(), TestnetError> {
        let state = if up { "up" } else { "down" };
        self.ns
            .ip(&["link", "set", "dev", ROUTER_IFNAME, state])
            .map(|_| ())
    }

    /// Sets the bridge port facing this router up or down: the router's
    /// `eth0` stays administratively up but loses carrier, as when a cable
    /// is pulled.
    pub fn set_carrier(&self, up: bool) -> Result<(), TestnetError> {
        let state = if up { "up" } else { "down" };
        self.bridge_ns
            .ip(&["link", "set", "dev", &self.port, state])
            .map(|_| ())
    }

    /// Stops (`blocked`) or restores the flooding of multicast frames by
    /// the bridge to this router (`mcast_flood off|on` on its bridge port):
    /// the router then receives no multicast from the LAN, while what it
    /// sends still reaches the others. See [`Lan::block_multicast`] to cut
    /// multicast in both directions.
    pub fn block_incoming_multicast(&self, blocked: bool) -> Result<(), TestnetError> {
        let state = if blocked { "off" } else { "on" };
        self.bridge_ns
            .ip(&[
                "link",
                "set",
                "dev",
                &self.port,
                "type",
                "bridge_slave",
                "mcast_flood",
                state,
            ])
            .map(|_| ())
    }

    /// Deletes the router's `eth0` (and the bridge port facing it), as
    /// when a NIC is unplugged or a veth or VLAN is destroyed.
    pub fn delete_link(&self) -> Result<(), TestnetError> {
        self.ns
            .ip(&["link", "del", "dev", ROUTER_IFNAME])
            .map(|_| ())
    }

    /// Creates the router's `eth0` again after [`Router::delete_link`]:
    /// same name, MAC and addresses, a new interface index.
    pub fn recreate_link(&self) -> Result<(), TestnetError> {
        let mac = format_mac(self.mac());
        let (port, ns) = (&self.port, self.ns.name());
        self.bridge_ns.ip_batch(&format!(
            "link add {port} type veth peer name {ROUTER_IFNAME} address {mac} netns {ns}\n\
             link set {port} master br0\n\
             link set {port} up\n"
        ))?;
        self.ns.ip_batch(&format!(
            "link set {ROUTER_IFNAME} up\n\
             addr add {}/24 dev {ROUTER_IFNAME}\n\
             addr add {}/64 dev {ROUTER_IFNAME} nodad\n",
            self.ipv4(),
            self.ipv6()
        ))?;
        wait_for_link_local(self)
    }

    /// The output of `ip -o addr show dev eth0` in the router namespace.
    pub fn addresses(&self) -> Result<String, TestnetError> {
        self.ns.ip(&["-o", "addr", "show", "dev", ROUTER_IFNAME])
    }

    /// Runs `f` in the router's namespace, see [`Netns::spawn`].
    pub fn spawn<F, Fut, T>(&self, f: F) -> NsTask<T>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T>,
        T: Send + 'static,
    {
        self.ns.spawn(f)
    }
}

/// A LAN of router namespaces around a bridge namespace. Deleted on drop.
#[derive(Debug)]
pub struct Lan {
    bridge: Netns,
    routers: Vec<Router>,
}

impl Lan {
    /// Builds a LAN of `routers` routers (1 to [`MAX_ROUTERS`]).
    pub fn new(routers: usize) -> Result<Self, TestnetError> {
        if routers == 0 || routers > MAX_ROUTERS {
            return Err(TestnetError::InvalidArgument(format!(
                "{routers} routers (1 to {MAX_ROUTERS})"
            )));
        }
        cleanup_stale_namespaces();
        let id = format!(
            "{NS_PREFIX}{}-{}",
            std::process::id(),
            NEXT_LAN.fetch_add(1, Ordering::Relaxed)
        );
        let bridge = Netns::create(format!("{id}-br"))?;
        // From here on, Drop cleans up whatever was created.
        let mut lan = Self {
            bridge,
            routers: Vec::with_capacity(routers),
        };
        lan.bridge.sysctl(&[
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ])?;
        lan.bridge.ip_batch(
            "link add br0 type bridge mcast_snooping 0 stp_state 0 forward_delay 0\n\
             link set br0 up\n",
        )?;
        for number in 1..=routers {
            let ns = Netns::create(format!("{id}-r{number}"))?;
            let router = Router {
                number,
                ns,
                port: format!("p{number}"),
                bridge_ns: lan.bridge.clone(),
            };
            lan.routers.push(router);
        }
        for router in &lan.routers {
            router.ns.sysctl(&[
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
                "net.ipv6.conf.default.router_solicitations=0",
            ])?;
            let mac = format_mac(router.mac());
            let port = &router.port;
            let ns = router.ns.name();
            lan.bridge.ip_batch(&format!(
                "link add {port} type veth peer name {ROUTER_IFNAME} address {mac} netns {ns}\n\
                 link set {port} master br0\n\
                 link set {port} up\n"
            ))?;
            router.ns.ip_batch(&format!(
                "link set lo up\n\
                 link set {ROUTER_IFNAME} up\n\
                 addr add {}/24 dev {ROUTER_IFNAME}\n\
                 addr add {}/64 dev {ROUTER_IFNAME} nodad\n",
                router.ipv4(),
                router.ipv6()
            ))?;
        }
        for router in &lan.routers {
            wait_for_link_local(router)?;
        }
        Ok(lan)
    }

    /// The bridge namespace.
    #[must_use]
    pub fn bridge(&self) -> &Netns {
        &self.bridge
    }

    /// Router `number` (from 1).
    pub fn router(&self, number: usize) -> Result<&Router, TestnetError> {
        number
            .checked_sub(1)
            .and_then(|i| self.routers.get(i))
            .ok_or_else(|| TestnetError::InvalidArgument(format!("no router {number}")))
    }

    /// All routers, in order.
    #[must_use]
    pub fn routers(&self) -> &[Router] {
        &self.routers
    }

    /// Makes the LAN a network without multicast (`blocked`), or restores
    /// it: the bridge stops flooding multicast frames to every port
    /// (`mcast_flood off`; its multicast snooping is off, so all multicast
    /// is flooding). Broadcast (ARP) still passes. IPv6 neighbour discovery
    /// needs multicast, so blocking also installs permanent neighbour
    /// entries for every router's global and link-local address on every
    /// other router, keeping IPv6 unicast working.
    ///
    /// iptables, nftables and tc drop actions are not available on the
    /// machines these tests run on; the bridge needs only `ip`.
    pub fn block_multicast(&self, blocked: bool) -> Result<(), TestnetError> {
        if blocked {
            for router in &self.routers {
                let mut batch = String::new();
                for other in self.routers.iter().filter(|o| o.number != router.number) {
                    let mac = format_mac(other.mac());
                    for addr in [other.ipv6(), other.link_local()] {
                        let _ = writeln!(
                            batch,
                            "neigh replace {addr} lladdr {mac} dev {ROUTER_IFNAME} nud permanent"
                        );
                    }
                }
                if !batch.is_empty() {
                    router.ns.ip_batch(&batch)?;
                }
            }
        }
        let state = if blocked { "off" } else { "on" };
        let batch: String = self
            .routers
            .iter()
            .map(|r| {
                format!(
                    "link set dev {} type bridge_slave mcast_flood {state}\n",
                    r.port
                )
            })
            .collect();
        self.bridge.ip_batch(&batch)
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for router in &self.routers {
            if let Err(err) = router.ns.delete() {
                tracing::warn!(%err, "deleting test namespace");
            }
        }
        if let Err(err) = self.bridge.delete() {
            tracing::warn!(%err, "deleting test namespace");
        }
    }
}

fn format_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn wait_for_link_local(router: &Router) -> Result<(), TestnetError> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let wanted = router.link_local().to_string();
    loop {
        let out = router.ns.ip(&[
            "-6",
            "-o",
            "addr",
            "show",
            "dev",
            ROUTER_IFNAME,
            "scope",
            "link",
        ])?;
        if out.contains(&wanted) && !out.contains("tentative") {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(TestnetError::Timeout(format!(
                "link-local {wanted} in {} (have: {out})",
                router.ns.name()
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Deletes namespaces named by this module whose creating process is gone.
fn cleanup_stale_namespaces() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(NS_PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = run("ip", &["netns", "del", &name], None);
        }
    }
}

static NEXT_KEEPALIVED: AtomicUsize = AtomicUsize::new(0);

/// Installs Debian's keepalived with apt-get if it is not on the PATH.
pub fn ensure_keepalived() -> Result<(), TestnetError> {
    if run("keepalived", &["--version"], None).is_ok() {
        return Ok(());
    }
    run(
        "apt-get",
        &["install", "-y", "--no-install-recommends", "keepalived"],
        None,
    )
    .map(|_| ())
}

/// A keepalived process (VRRP subsystem only) in a namespace, with its own
/// directory for configuration, pid files and log. Killed on drop.
#[derive(Debug)]
pub struct Keepalived {
    child: Option<Child>,
    dir: PathBuf,
    ns: String,
}

impl Keepalived {
    /// Writes `config` and starts
    /// `keepalived -n -l -D -G -P -f CONF -p PID -r VRRP_PID ...` in `ns`,
    /// in its own process group, output to a log file in its directory.
    pub fn start(ns: &Netns, config: &str) -> Result<Self, TestnetError> {
        ensure_keepalived()?;
        let dir = std::env::temp_dir().join("vrrp-net-testnet").join(format!(
            "{}-ka{}",
            ns.name(),
            NEXT_KEEPALIVED.fetch_add(1, Ordering::Relaxed)
        ));
        let io_err = |what: &str| {
            let what = what.to_owned();
            move |error| TestnetError::Io { what, error }
        };
        std::fs::create_dir_all(&dir).map_err(io_err("creating keepalived dir"))?;
        let conf = dir.join("keepalived.conf");
        std::fs::write(&conf, config).map_err(io_err("writing keepalived.conf"))?;
        let log = File::create(dir.join("keepalived.log")).map_err(io_err("creating log"))?;
        let log_err = log.try_clone().map_err(io_err("cloning log"))?;
        let path = |file: &str| dir.join(file).to_string_lossy().into_owned();
        let args = [
            "netns".to_owned(),
            "exec".to_owned(),
            ns.name().to_owned(),
            "keepalived".to_owned(),
            "--dont-fork".to_owned(),
            "--log-console".to_owned(),
            "--log-detail".to_owned(),
            "--no-syslog".to_owned(),
            "--vrrp".to_owned(),
            format!("--use-file={}", path("keepalived.conf")),
            format!("--pid={}", path("keepalived.pid")),
            format!("--vrrp_pid={}", path("vrrp.pid")),
            format!("--checkers_pid={}", path("checkers.pid")),
            format!("--bfd_pid={}", path("bfd.pid")),
        ];
        let child = {
            use std::os::unix::process::CommandExt as _;
            Command::new("ip")
                .args(&args)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log_err)
                .process_group(0)
                .spawn()
                .map_err(|error| TestnetError::Spawn {
                    cmd: format!("ip {}", args.join(" ")),
                    error,
                })?
        };
        Ok(Self {
            child: Some(child),
            dir,
            ns: ns.name().to_owned(),
        })
    }

    /// The process id of the keepalived parent process.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The directory holding configuration, pid files and log.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What keepalived has logged so far.
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("keepalived.log")).unwrap_or_default()
    }

    /// Waits until the log contains `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Result<(), TestnetError> {
        let deadline = Instant::now() + timeout;
        while !self.log().contains(needle) {
            if Instant::now() > deadline {
                let mut msg = String::new();
                let _ = write!(
                    msg,
                    "{needle:?} in keepalived log of {}:\n{}",
                    self.ns,
                    self.log()
                );
                return Err(TestnetError::Timeout(msg));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Whether the parent process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Stops keepalived gracefully with SIGTERM (it then sends priority 0
    /// advertisements and removes its addresses), waiting up to `timeout`
    /// before killing the whole process group.
    pub fn stop(mut self, timeout: Duration) -> Result<ExitStatus, TestnetError> {
        let Some(mut child) = self.child.take() else {
            return Err(TestnetError::InvalidArgument("already stopped".into()));
        };
        let pid = pid_of(&child)?;
        let _ = signal::kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(None) => {
                    let _ = signal::killpg(pid, Signal::SIGKILL);
                    return child.wait().map_err(|error| TestnetError::Io {
                        what: "waiting for keepalived".into(),
                        error,
                    });
                }
                Err(error) => {
                    return Err(TestnetError::Io {
                        what: "waiting for keepalived".into(),
                        error,
                    });
                }
            }
        }
    }

    /// Kills keepalived and its children at once with SIGKILL (a crash: no
    /// priority 0 advertisement, addresses left behind).
    pub fn kill(mut self) -> Result<ExitStatus, TestnetError> {
        let Some(mut child) = self.child.take() else {
            return Err(TestnetError::InvalidArgument("already stopped".into()));
        };
        kill_group(&mut child)
    }
}

fn pid_of(child: &Child) -> Result<Pid, TestnetError> {
    i32::try_from(child.id())
        .map(Pid::from_raw)
        .map_err(|_| TestnetError::InvalidArgument("pid out of range".into()))
}

fn kill_group(child: &mut Child) -> Result<ExitStatus, TestnetError> {
    let pid = pid_of(child)?;
    let _ = signal::killpg(pid, Signal::SIGKILL);
    child.wait().map_err(|error| TestnetError::Io {
        what: "waiting for keepalived".into(),
        error,
    })
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill_group(&mut child);
        }
    }
}
