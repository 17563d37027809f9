//! Proves the ICMP and ICMPv6 echo probe: loopback answers; in a fresh
//! network namespace (created and deleted here; needs root) an absent
//! documentation address times out and an unreachable route fails at once.
//! Only 127.0.0.1, ::1, 192.0.2.0/24 and 2001:db8::/64 are ever pinged.

use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use healthcheck::{DownReason, IcmpCheck, Probe, ProbeSuccess};

const TIMEOUT: Duration = Duration::from_millis(400);

async fn ping(target: &str) -> Result<ProbeSuccess, DownReason> {
    let target: IpAddr = target.parse().expect("ip");
    let prober = Probe::Icmp(IcmpCheck::new(target))
        .prepare()
        .expect("valid");
    let started = Instant::now();
    let report = prober.run(3, TIMEOUT).await;
    assert!(
        started.elapsed() < TIMEOUT + Duration::from_secs(1),
        "probe overran its timeout"
    );
    report.result
}

#[tokio::test]
async fn loopback_answers_v4_and_v6() {
    assert_eq!(ping("127.0.0.1").await, Ok(ProbeSuccess::default()));
    assert_eq!(ping("::1").await, Ok(ProbeSuccess::default()));
    // Concurrent pings of one target must not take each other's replies.
    let (a, b, c) = tokio::join!(ping("127.0.0.1"), ping("127.0.0.1"), ping("::1"));
    assert!(a.is_ok() && b.is_ok() && c.is_ok(), "{a:?} {b:?} {c:?}");
}

#[test]
fn invalid_icmp_configs_are_rejected() {
    let mut check = IcmpCheck::new("127.0.0.1".parse().expect("ip"));
    check.source = Some("::1".parse().expect("ip"));
    assert!(Probe::Icmp(check.clone()).prepare().is_err());
    check.source = None;
    check.payload_len = 9000;
    assert!(Probe::Icmp(check).prepare().is_err());
}

/// A network namespace deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Self {
        let name = format!("hc-icmp-{}", std::process::id());
        let ns = Netns(name);
        ns.ip(&["netns", "add", &ns.0]);
        for args in [
            &["link", "set", "lo", "up"][..],
            // No dummy driver on every kernel: a veth pair whose far end
            // has no address answers neither ARP nor neighbour solicitation.
            &["link", "add", "hc0", "type", "veth", "peer", "name", "hc1"],
            &["link", "set", "hc0", "up"],
            &["link", "set", "hc1", "up"],
            &["addr", "add", "192.0.2.2/24", "dev", "hc0"],
            &["addr", "add", "2001:db8::2/64", "dev", "hc0", "nodad"],
            &["route", "add", "unreachable", "192.0.2.128/25"],
        ] {
            let mut full = vec!["-n", ns.0.as_str()];
            full.extend_from_slice(args);
            ns.ip(&full);
        }
        ns
    }

    fn ip(&self, args: &[&str]) {
        let status = Command::new("ip").args(args).status().expect("run ip");
        assert!(status.success(), "ip {args:?} failed");
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn namespace_unreachable_targets_are_down() {
    let ns = Netns::new();
    let path = format!("/run/netns/{}", ns.0);
    // The probes run on a thread moved into the namespace; sockets created
    // there belong to it. The test's other threads are unaffected.
    let results = std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("open netns");
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let (own, absent_v4, absent_v6, unreachable) = tokio::join!(
                ping("192.0.2.2"),
                ping("192.0.2.1"),
                ping("2001:db8::1"),
                ping("192.0.2.200"),
            );
            (own, absent_v4, absent_v6, unreachable)
        })
    })
    .join()
    .expect("namespace thread");
    let (own, absent_v4, absent_v6, unreachable) = results;
    assert_eq!(own, Ok(ProbeSuccess::default()), "own address answers");
    assert_eq!(absent_v4, Err(DownReason::Timeout(TIMEOUT)));
    assert_eq!(absent_v6, Err(DownReason::Timeout(TIMEOUT)));
    assert!(
        matches!(&unreachable, Err(DownReason::Io { op: "send", .. })),
        "unreachable route fails at send: {unreachable:?}"
    );
}
