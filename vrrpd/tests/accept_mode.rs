//! RFC 5798 Accept_Mode against keepalived 2.2.7 in strict mode, on one
//! keepalived.conf: a master that is not the address owner and runs
//! without accept mode (strict mode's default) drops pings and TCP
//! connections to its virtual addresses (excluded IPv6 ones too, a global
//! one whose neighbour discovery still works and a link-local one), and one with `accept` answers them,
//! from a client on the LAN, alike for keepalived and for `vrrpd` running
//! the file converted by `import-keepalived`. vrrpd's nftables table is
//! there from start, put back when an operator deletes it, and gone when
//! vrrpd stops.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use common::{Daemon, serial, test_dir, wait_address};
use vrrp_net::testnet::{Keepalived, Lan, Netns, Router};

const T: Duration = Duration::from_secs(15);
const PORT: u16 = 8071;
const GUARDED: &str = "192.0.2.71";
const GUARDED6: &str = "2001:db8::71";
/// A link-local one: matched with its interface.
const GUARDED_LL: &str = "fe80::71";
const OPEN: &str = "192.0.2.72";

const CONF: &str = "global_defs {\n  vrrp_strict\n  vrrp_version 3\n}\n\
vrrp_instance GUARDED {\n  state BACKUP\n  interface eth0\n  virtual_router_id 71\n  priority 100\n  advert_int 0.1\n  \
virtual_ipaddress {\n    192.0.2.71/24\n  }\n  virtual_ipaddress_excluded {\n    2001:db8::71/64\n    fe80::71/64 dev eth0\n  }\n}\n\
vrrp_instance OPEN {\n  state BACKUP\n  interface eth0\n  virtual_router_id 72\n  priority 100\n  advert_int 0.1\n  \
accept\n  virtual_ipaddress {\n    192.0.2.72/24\n  }\n}\n";

/// A TCP server on `PORT` (every address, both families) in the
/// namespace; killed on drop.
struct Listener(Child);

impl Listener {
    fn start(ns: &Netns) -> Result<Listener> {
        let code = format!(
            "import socket\ns=socket.socket(socket.AF_INET6)\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
             s.bind(('::',{PORT}))\ns.listen(16)\nwhile True:\n  c,_=s.accept()\n  c.close()\n"
        );
        let child = Command::new("ip")
            .args(["netns", "exec", ns.name(), "python3", "-c", &code])
            .stdin(Stdio::null())
            .spawn()
            .context("python3 listener")?;
        Ok(Listener(child))
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether `addr` answers an ICMP echo from the client within a second
/// (a ping socket: the kernel fills in the identifier and checksum).
fn pings(client: &Router, addr: &str) -> Result<bool> {
    use socket2::{Domain, Protocol, Socket, Type};
    let target = socket_addr(client, addr, 0)?;
    client
        .ns()
        .run(move || async move {
            let (domain, protocol, request, reply) = match target {
                std::net::SocketAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4, 8, 0),
                std::net::SocketAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6, 128, 129),
            };
            let socket = Socket::new(domain, Type::DGRAM, Some(protocol))?;
            let deadline = Instant::now() + Duration::from_secs(1);
            socket.send_to(&[request, 0, 0, 0, 0, 0, 0, 1, b'v', b'r'], &target.into())?;
            let mut buf = [0u8; 256];
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok::<bool, std::io::Error>(false);
                }
                socket.set_read_timeout(Some(left))?;
                match std::io::Read::read(&mut &socket, &mut buf) {
                    Ok(n) if n > 0 && buf[0] == reply => return Ok(true),
                    Ok(_) => {}
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            || e.kind() == std::io::ErrorKind::TimedOut =>
                    {
                        return Ok(false);
                    }
                    Err(e) => return Err(e),
                }
            }
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .map_err(Into::into)
}

/// Whether a TCP connection to `addr:PORT` from the client succeeds
/// within a second.
fn connects(client: &Router, addr: &str) -> Result<bool> {
    let target = socket_addr(client, addr, PORT)?;
    client
        .ns()
        .run(move || async move {
            matches!(
                tokio::time::timeout(
                    Duration::from_secs(1),
                    tokio::net::TcpStream::connect(target)
                )
                .await,
                Ok(Ok(_))
            )
        })
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// `addr:port`, a link-local address scoped to the client's eth0.
fn socket_addr(client: &Router, addr: &str, port: u16) -> Result<std::net::SocketAddr> {
    let ip: std::net::IpAddr = addr.parse()?;
    Ok(match ip {
        std::net::IpAddr::V6(v6) if v6.is_unicast_link_local() => {
            let out = client
                .ns()
                .ip(&["-o", "link", "show", "eth0"])
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let index: u32 = out
                .split(':')
                .next()
                .and_then(|n| n.trim().parse().ok())
                .context("eth0's index")?;
            std::net::SocketAddrV6::new(v6, port, 0, index).into()
        }
        _ => std::net::SocketAddr::new(ip, port),
    })
}

/// Ping and TCP for each address, as seen from the client.
fn reachability(client: &Router, addrs: &[&str]) -> Result<Vec<(String, bool, bool)>> {
    addrs
        .iter()
        .map(|a| Ok(((*a).to_owned(), pings(client, a)?, connects(client, a)?)))
        .collect()
}

/// The MAC the client's neighbour table has for `addr`, if any.
fn neighbour(client: &Router, addr: &str) -> Result<Option<String>> {
    let out = client
        .ns()
        .ip(&["-6", "neigh", "show", addr, "dev", "eth0"])
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let words: Vec<&str> = out.split_whitespace().collect();
    Ok(words
        .windows(2)
        .find(|w| w[0] == "lladdr")
        .map(|w| w[1].to_owned()))
}

fn mac(r: &Router) -> String {
    r.mac()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn nft_tables(r: &Router) -> Result<String> {
    let out = r
        .ns()
        .exec("nft", &["list", "tables"])
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn wait_until(what: &str, check: impl FnMut() -> Result<bool>) -> Result<()> {
    common::wait_for(what, T, check)
}

/// What the client sees of a strict-mode master running `CONF`: the
/// guarded addresses dropped, the open one answered, and neighbour
/// discovery for the guarded IPv6 address working.
fn expected(client: &Router, master: &Router, who: &str) -> Result<Vec<(String, bool, bool)>> {
    let seen = reachability(client, &[GUARDED, GUARDED6, GUARDED_LL, OPEN])?;
    let want = vec![
        (GUARDED.to_owned(), false, false),
        (GUARDED6.to_owned(), false, false),
        (GUARDED_LL.to_owned(), false, false),
        (OPEN.to_owned(), true, true),
    ];
    ensure!(
        seen == want,
        "{who}: (address, ping, tcp) {seen:?}, expected {want:?}"
    );
    ensure!(
        neighbour(client, GUARDED6)?.as_deref() == Some(mac(master).as_str()),
        "{who}: neighbour discovery for {GUARDED6} failed: {:?}",
        neighbour(client, GUARDED6)?
    );
    Ok(seen)
}

/// Counter `key` of the daemon called `name`, from `vrrpd status --json`
/// (the same counters /metrics shows as `vrrpd_KEY`).
fn counter(name: &str, key: &str) -> Result<u64> {
    let out = Command::new(env!("CARGO_BIN_EXE_vrrpd"))
        .args(["status", "--json", "--name", name])
        .output()?;
    ensure!(out.status.success(), "vrrpd status: {out:?}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    doc["counters"]
        .as_array()
        .and_then(|rows| {
            rows.iter()
                .find(|r| r[0] == key)
                .and_then(|r| r[1].as_u64())
        })
        .with_context(|| format!("no counter {key} in {doc}"))
}

#[test]
fn a_no_accept_master_drops_traffic_to_its_addresses_like_keepalived_strict_mode() -> Result<()> {
    let _serial = serial();
    let started = Instant::now();
    let lan = Lan::new(3)?;
    let (ka_router, ours_router, client) = (lan.router(1)?, lan.router(2)?, lan.router(3)?);
    let dir = test_dir("accept-mode")?;
    // Ping sockets for root in the client's namespace.
    client
        .ns()
        .sysctl(&["net.ipv4.ping_group_range=0 0"])
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let ka_conf = dir.join("keepalived.conf");
    std::fs::write(&ka_conf, CONF)?;
    let toml = common::import_whole(&ka_conf)?;

    // keepalived, alone: master of both.
    let ka_listener = Listener::start(ka_router.ns())?;
    let ka = Keepalived::start(ka_router.ns(), CONF)?;
    for vip in [GUARDED, GUARDED6, GUARDED_LL, OPEN] {
        wait_address(ka_router, vip, T).with_context(|| ka.log())?;
    }
    let keepalived_view = expected(client, ka_router, "keepalived").with_context(|| ka.log())?;
    ka.stop(T)?;
    drop(ka_listener);
    client
        .ns()
        .ip(&["-6", "neigh", "flush", "dev", "eth0"])
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    // vrrpd on the converted file, alone: the same view.
    let _listener = Listener::start(ours_router.ns())?;
    let name = format!("accept-{}", std::process::id());
    let mut ours = Daemon::start_with(ours_router, &dir, "ours", &toml, &["--name", &name], &[])?;
    wait_until("vrrpd's table at start", || {
        Ok(nft_tables(ours_router)?.contains("table inet vrrpd"))
    })?;
    ours.wait_state("GUARDED", "master", T)?;
    ours.wait_state("OPEN", "master", T)?;
    for vip in [GUARDED, GUARDED6, GUARDED_LL, OPEN] {
        wait_address(ours_router, vip, T)?;
    }
    let vrrpd_view = expected(client, ours_router, "vrrpd").with_context(|| ours.log_text())?;
    ensure!(keepalived_view == vrrpd_view);

    // An operator deletes the table: put back, the address dropped again.
    ours_router
        .ns()
        .exec("nft", &["delete", "table", "inet", "vrrpd"])
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    ours.wait_message("changed or deleted from outside", T)?;
    wait_until("the table back", || {
        Ok(nft_tables(ours_router)?.contains("table inet vrrpd"))
    })?;
    wait_until("the repair counted in the status", || {
        Ok(counter(&name, "firewall_repairs")? >= 1)
    })?;
    ensure!(counter(&name, "firewall_errors")? == 0);
    ensure!(!pings(client, GUARDED)?, "answered after the repair");
    ensure!(!connects(client, GUARDED)?, "connected after the repair");

    // Stopped: the table goes with the addresses.
    let status = ours.stop()?;
    ensure!(status.success(), "vrrpd exit {status:?}");
    ensure!(
        !nft_tables(ours_router)?.contains("inet vrrpd"),
        "table left behind: {}",
        nft_tables(ours_router)?
    );
    eprintln!("accept mode test: {:?}", started.elapsed());
    Ok(())
}
