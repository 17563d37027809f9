//! Proves the crate against a real ip_vs: every test programs the kernel and
//! compares `ipvsadm -Sn` (parsed) with what the crate lists and with what it
//! was asked for.
//!
//! These run inside the VM booted by `lvs/vm/run-vm-tests.sh`, whose init sets
//! `LVS_VM_TEST=1` and loads ip_vs and every scheduler module. Without that
//! variable (a normal `cargo test` on a host without IPVS) each test returns
//! at once; the script fails unless every test printed its
//! `LVS-KERNEL-TEST-RAN` marker in the VM. Run with `--test-threads=1`: the
//! IPVS table is one per network namespace and each test flushes it.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use lvs::{
    AddressFamily, Change, Destination, Error, Event, ForwardMethod, Health, HealthAggregator,
    Ipvs, IpvsClient, LoadBalancer, Ownership, Persistence, RealServer, Scheduler, ServerChecks,
    Service, ServiceFlags, ServiceKey, ShutdownMode, Table, VirtualServer,
};

/// A flushed kernel table, or `None` outside the VM.
fn kernel(test: &str) -> Option<IpvsClient> {
    if std::env::var_os("LVS_VM_TEST").is_none() {
        eprintln!("{test}: skipped (needs the ip_vs VM: lvs/vm/run-vm-tests.sh)");
        return None;
    }
    let mut ipvs = IpvsClient::connect().expect("IPVS family resolves in the VM");
    ipvs.flush().expect("flush");
    Some(ipvs)
}

/// Printed only when a test got to its end in the VM; the script counts these.
fn ran(test: &str) {
    println!("LVS-KERNEL-TEST-RAN {test}");
}

fn sa(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ipvsadm -Sn` parsed into a [`Table`], with the connection thresholds
/// (which `-S` does not print) from `ipvsadm -Ln --thresholds`.
fn ipvsadm() -> Table {
    let mut table = parse_ipvsadm_save(&run(&["ipvsadm", "-Sn"]));
    let mut service = None;
    for line in run(&["ipvsadm", "-Ln", "--thresholds"]).lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["TCP", addr, ..] => service = Some(ServiceKey::tcp(sa(addr))),
            ["UDP", addr, ..] => service = Some(ServiceKey::udp(sa(addr))),
            ["SCTP", addr, ..] => service = Some(ServiceKey::sctp(sa(addr))),
            ["FWM", mark, "IPv6", ..] => {
                service = Some(ServiceKey::fwmark(
                    AddressFamily::Ipv6,
                    mark.parse().expect("mark"),
                ))
            }
            ["FWM", mark, ..] => {
                service = Some(ServiceKey::fwmark(
                    AddressFamily::Ipv4,
                    mark.parse().expect("mark"),
                ))
            }
            ["->", "RemoteAddress:Port", ..] => {}
            // `-> ADDR UTHRESHOLD LTHRESHOLD ACTIVECONN INACTCONN`
            ["->", addr, upper, lower, ..] => {
                let key = service.expect("destination after its service");
                let d = table
                    .services
                    .get_mut(&key)
                    .and_then(|e| e.destinations.get_mut(&sa(addr)))
                    .expect("same table");
                d.upper_threshold = upper.parse().expect("upper threshold");
                d.lower_threshold = lower.parse().expect("lower threshold");
            }
            _ => {}
        }
    }
    table
}

fn parse_ipvsadm_save(text: &str) -> Table {
    let mut table = Table::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let mut key = None;
        let mut v6 = false;
        let mut mark = None;
        let mut scheduler = None;
        let mut timeout = None;
        let mut mask = None;
        let mut flags = ServiceFlags::NONE;
        let mut dest = None;
        let mut forward = None;
        let (mut weight, mut upper, mut lower) = (1, 0, 0);
        let mut i = 1;
        while i < words.len() {
            let arg = words.get(i + 1).copied().unwrap_or("");
            let mut takes = true;
            match words[i] {
                "-t" => key = Some(ServiceKey::tcp(sa(arg))),
                "-u" => key = Some(ServiceKey::udp(sa(arg))),
                "--sctp-service" => key = Some(ServiceKey::sctp(sa(arg))),
                "-f" => mark = Some(arg.parse::<u32>().expect("mark")),
                "-s" => scheduler = Some(Scheduler::new(arg).expect("scheduler")),
                "-p" => timeout = Some(arg.parse::<u64>().expect("timeout")),
                "-M" => mask = Some(arg.to_owned()),
                "-b" => {
                    for f in arg.split(',') {
                        flags = flags
                            | match f {
                                "sh-fallback" | "mh-fallback" | "flag-1" => ServiceFlags::SCHED1,
                                "sh-port" | "mh-port" | "flag-2" => ServiceFlags::SCHED2,
                                "flag-3" => ServiceFlags::SCHED3,
                                other => panic!("unknown sched flag {other}"),
                            };
                    }
                }
                "-r" => dest = Some(sa(arg)),
                "-w" => weight = arg.parse().expect("weight"),
                "-x" => upper = arg.parse().expect("upper"),
                "-y" => lower = arg.parse().expect("lower"),
                "--tun-type" => assert_eq!(arg, "ipip"),
                "-6" => (v6, takes) = (true, false),
                "-o" => (flags, takes) = (flags | ServiceFlags::ONE_PACKET, false),
                "-g" => (forward, takes) = (Some(ForwardMethod::Route), false),
                "-m" => (forward, takes) = (Some(ForwardMethod::Masquerade), false),
                "-i" => (forward, takes) = (Some(ForwardMethod::Tunnel), false),
                other => panic!("unexpected ipvsadm -S word {other:?} in {line:?}"),
            }
            i += if takes { 2 } else { 1 };
        }
        let family = if v6 {
            AddressFamily::Ipv6
        } else {
            AddressFamily::Ipv4
        };
        let key = key
            .or(mark.map(|m| ServiceKey::fwmark(family, m)))
            .expect("service key");
        match words[0] {
            "-A" => {
                let mut service =
                    Service::new(key, scheduler.expect("scheduler")).with_flags(flags);
                if let Some(t) = timeout {
                    let prefix_len = mask.map(|m| match m.parse::<std::net::Ipv4Addr>() {
                        Ok(v4) => u32::from(v4).leading_ones() as u8,
                        Err(_) => m.parse::<u8>().expect("IPv6 prefix length"),
                    });
                    let prefix_len = prefix_len.filter(|&l| l != key.family().max_prefix_len());
                    service = service.with_persistence(Persistence {
                        timeout: Duration::from_secs(t),
                        prefix_len,
                    });
                }
                table.insert_service(service);
            }
            "-a" => {
                let d = Destination::new(dest.expect("-r"), forward.expect("forwarding method"))
                    .with_weight(weight)
                    .with_thresholds(upper, lower);
                assert!(
                    table.insert_destination(&key, d),
                    "destination before its service: {line}"
                );
            }
            other => panic!("unexpected ipvsadm -S line start {other:?}"),
        }
    }
    table
}

/// The kernel (via ipvsadm), the crate's listing and `want` all agree.
#[track_caller]
fn assert_kernel_is(ipvs: &mut IpvsClient, want: &Table) {
    let seen_by_ipvsadm = ipvsadm();
    let seen_by_crate = ipvs.table().expect("list");
    assert_eq!(
        seen_by_crate,
        seen_by_ipvsadm,
        "crate listing vs ipvsadm:\n{}\n{}",
        run(&["ipvsadm", "-Sn"]),
        run(&["ipvsadm", "-Ln", "--thresholds"])
    );
    assert_eq!(seen_by_ipvsadm, want.normalized(), "ipvsadm -Sn vs wanted");
}

fn table_of(entries: &[(&Service, &[Destination])]) -> Table {
    let mut t = Table::default();
    for (s, ds) in entries {
        t.insert_service((*s).clone());
        for d in *ds {
            t.insert_destination(&s.key, *d);
        }
    }
    t
}

/// The desired table of a balancer, as a [`Table`].
fn desired_table(lb: &LoadBalancer) -> Table {
    let mut t = Table::default();
    for (key, d) in lb.desired() {
        t.insert_service(d.service.clone());
        for dest in d.destinations.values() {
            t.insert_destination(&key, *dest);
        }
    }
    t
}

fn schedulers() -> Vec<Scheduler> {
    let list = std::env::var("LVS_VM_SCHEDULERS").expect("the VM init names the loaded schedulers");
    let modules = std::fs::read_to_string("/proc/modules").expect("/proc/modules");
    let names: Vec<Scheduler> = list
        .split_whitespace()
        .map(|s| Scheduler::new(s).expect("name"))
        .collect();
    assert!(
        names.len() >= 13,
        "expected the mainline schedulers, got {list:?}"
    );
    for s in &names {
        let module = format!("ip_vs_{} ", s.name());
        assert!(
            modules.lines().any(|l| l.starts_with(&module)),
            "module ip_vs_{} is not loaded",
            s.name()
        );
    }
    names
}

#[test]
fn every_loaded_scheduler_add_then_edit_in_place() {
    let Some(mut ipvs) = kernel("every_loaded_scheduler_add_then_edit_in_place") else {
        return;
    };
    let names = schedulers();
    let mut want = Table::default();
    for (i, s) in names.iter().enumerate() {
        let port = 1000 + u16::try_from(i).expect("few");
        let service = Service::new(ServiceKey::tcp(sa(&format!("192.0.2.1:{port}"))), s.clone());
        ipvs.add_service(&service).expect("add service");
        let d =
            Destination::new(sa(&format!("10.0.0.1:{port}")), ForwardMethod::Route).with_weight(2);
        ipvs.add_destination(&service.key, &d).expect("add dest");
        want.insert_service(service.clone());
        want.insert_destination(&service.key, d);
    }
    assert_kernel_is(&mut ipvs, &want);
    // rotate every service to the next scheduler, in place
    for (i, s) in names.iter().enumerate() {
        let key = ServiceKey::tcp(sa(&format!("192.0.2.1:{}", 1000 + i)));
        let next = names[(i + 1) % names.len()].clone();
        assert_ne!(&next, s);
        let service = Service::new(key, next);
        ipvs.update_service(&service).expect("edit scheduler");
        want.services.get_mut(&key).expect("present").service = service;
    }
    assert_kernel_is(&mut ipvs, &want);
    ran("every_loaded_scheduler_add_then_edit_in_place");
}

#[test]
fn nat_dr_tun_thresholds_and_method_edit() {
    let Some(mut ipvs) = kernel("nat_dr_tun_thresholds_and_method_edit") else {
        return;
    };
    let service = Service::new(ServiceKey::tcp(sa("192.0.2.2:80")), Scheduler::WLC);
    let nat = Destination::new(sa("10.0.0.1:8080"), ForwardMethod::Masquerade)
        .with_weight(5)
        .with_thresholds(1000, 100);
    let dr = Destination::new(sa("10.0.0.2:80"), ForwardMethod::Route).with_weight(0);
    let tun = Destination::new(sa("10.0.0.3:80"), ForwardMethod::Tunnel)
        .with_weight(7)
        .with_thresholds(50, 0);
    ipvs.add_service(&service).expect("add");
    for d in [nat, dr, tun] {
        ipvs.add_destination(&service.key, &d).expect("add dest");
    }
    assert_kernel_is(&mut ipvs, &table_of(&[(&service, &[nat, dr, tun])]));
    let status = ipvs.destinations(&service.key).expect("list");
    assert!(
        status
            .iter()
            .all(|s| s.active_connections == 0 && s.inactive_connections == 0)
    );
    // forwarding method and weight change in place
    let dr_to_tun = Destination {
        forward: ForwardMethod::Tunnel,
        weight: 3,
        ..dr
    };
    ipvs.update_destination(&service.key, &dr_to_tun)
        .expect("edit");
    assert_kernel_is(&mut ipvs, &table_of(&[(&service, &[nat, dr_to_tun, tun])]));
    ipvs.delete_destination(&service.key, nat.addr)
        .expect("delete");
    assert_kernel_is(&mut ipvs, &table_of(&[(&service, &[dr_to_tun, tun])]));
    ran("nat_dr_tun_thresholds_and_method_edit");
}

#[test]
fn ipv6_sctp_and_persistence_netmasks() {
    let Some(mut ipvs) = kernel("ipv6_sctp_and_persistence_netmasks") else {
        return;
    };
    let udp6 = Service::new(ServiceKey::udp(sa("[2001:db8::1]:53")), Scheduler::SH)
        .with_persistence(Persistence {
            timeout: Duration::from_secs(120),
            prefix_len: Some(64),
        })
        .with_flags(ServiceFlags::SCHED1 | ServiceFlags::SCHED2);
    let tcp6 = Service::new(ServiceKey::tcp(sa("[2001:db8::1]:443")), Scheduler::MH)
        .with_persistence(Persistence::new(Duration::from_secs(300)));
    let sctp4 = Service::new(ServiceKey::sctp(sa("192.0.2.3:3868")), Scheduler::RR)
        .with_persistence(Persistence {
            timeout: Duration::from_secs(60),
            prefix_len: Some(24),
        });
    let d6a = Destination::new(sa("[2001:db8:1::10]:53"), ForwardMethod::Route).with_weight(2);
    let d6b = Destination::new(sa("[2001:db8:1::11]:5353"), ForwardMethod::Masquerade);
    let d6c = Destination::new(sa("[2001:db8:1::12]:443"), ForwardMethod::Tunnel);
    let d4 = Destination::new(sa("10.0.0.5:3868"), ForwardMethod::Masquerade);
    for s in [&udp6, &tcp6, &sctp4] {
        ipvs.add_service(s).expect("add");
    }
    ipvs.add_destination(&udp6.key, &d6a).expect("dest");
    ipvs.add_destination(&udp6.key, &d6b).expect("dest");
    ipvs.add_destination(&tcp6.key, &d6c).expect("dest");
    ipvs.add_destination(&sctp4.key, &d4).expect("dest");
    assert_kernel_is(
        &mut ipvs,
        &table_of(&[(&udp6, &[d6a, d6b]), (&tcp6, &[d6c]), (&sctp4, &[d4])]),
    );
    // persistence off and a new prefix, in place
    let tcp6_plain = Service::new(tcp6.key, Scheduler::WRR);
    let udp6_48 = udp6.clone().with_persistence(Persistence {
        timeout: Duration::from_secs(30),
        prefix_len: Some(48),
    });
    ipvs.update_service(&tcp6_plain).expect("edit");
    ipvs.update_service(&udp6_48).expect("edit");
    assert_kernel_is(
        &mut ipvs,
        &table_of(&[
            (&udp6_48, &[d6a, d6b]),
            (&tcp6_plain, &[d6c]),
            (&sctp4, &[d4]),
        ]),
    );
    ran("ipv6_sctp_and_persistence_netmasks");
}

#[test]
fn fwmark_services_v4_and_v6() {
    let Some(mut ipvs) = kernel("fwmark_services_v4_and_v6") else {
        return;
    };
    let fw4 = Service::new(ServiceKey::fwmark(AddressFamily::Ipv4, 1), Scheduler::WRR);
    let fw6 = Service::new(ServiceKey::fwmark(AddressFamily::Ipv6, 1), Scheduler::LC)
        .with_persistence(Persistence::new(Duration::from_secs(10)));
    let d4 = Destination::new(sa("10.0.0.7:0"), ForwardMethod::Route).with_weight(4);
    let d6 = Destination::new(sa("[2001:db8:2::7]:0"), ForwardMethod::Route);
    ipvs.add_service(&fw4).expect("add");
    ipvs.add_service(&fw6).expect("add");
    ipvs.add_destination(&fw4.key, &d4).expect("dest");
    ipvs.add_destination(&fw6.key, &d6).expect("dest");
    assert_kernel_is(&mut ipvs, &table_of(&[(&fw4, &[d4]), (&fw6, &[d6])]));
    ipvs.delete_service(&fw4.key).expect("delete");
    assert_kernel_is(&mut ipvs, &table_of(&[(&fw6, &[d6])]));
    ran("fwmark_services_v4_and_v6");
}

#[test]
fn kernel_errors_are_typed() {
    let Some(mut ipvs) = kernel("kernel_errors_are_typed") else {
        return;
    };
    let service = Service::new(ServiceKey::tcp(sa("192.0.2.4:80")), Scheduler::RR);
    let missing = ServiceKey::tcp(sa("192.0.2.4:81"));
    let d = Destination::new(sa("10.0.0.1:80"), ForwardMethod::Route);
    ipvs.add_service(&service).expect("add");
    assert!(matches!(ipvs.add_service(&service), Err(Error::ServiceExists(k)) if k == service.key));
    assert!(
        matches!(ipvs.delete_service(&missing), Err(Error::ServiceNotFound { service: k, .. }) if k == missing)
    );
    assert!(matches!(
        ipvs.add_destination(&missing, &d),
        Err(Error::ServiceNotFound { .. })
    ));
    // the kernel's destination dump for a missing service is empty, not an error
    assert!(matches!(ipvs.destinations(&missing), Ok(ref d) if d.is_empty()));
    ipvs.add_destination(&service.key, &d).expect("dest");
    assert!(matches!(
        ipvs.add_destination(&service.key, &d),
        Err(Error::DestinationExists { .. })
    ));
    let other = Destination::new(sa("10.0.0.2:80"), ForwardMethod::Route);
    assert!(matches!(
        ipvs.update_destination(&service.key, &other),
        Err(Error::DestinationNotFound { .. })
    ));
    assert!(matches!(
        ipvs.delete_destination(&service.key, other.addr),
        Err(Error::DestinationNotFound { .. })
    ));
    let bogus = Service::new(
        ServiceKey::tcp(sa("192.0.2.4:82")),
        Scheduler::new("nosuchsched").expect("name"),
    );
    assert!(
        matches!(ipvs.add_service(&bogus), Err(Error::SchedulerNotFound { ref scheduler, .. }) if scheduler == "nosuchsched")
    );
    let heavy = d.with_weight(u32::MAX);
    assert!(matches!(
        ipvs.update_destination(&service.key, &heavy),
        Err(Error::OutOfRange { .. })
    ));
    let inverted = d.with_thresholds(10, 20);
    assert!(matches!(
        ipvs.update_destination(&service.key, &inverted),
        Err(Error::OutOfRange { .. })
    ));
    let zero_prefix = Service::new(ServiceKey::tcp(sa("[2001:db8::4]:80")), Scheduler::RR)
        .with_persistence(Persistence {
            timeout: Duration::from_secs(5),
            prefix_len: Some(0),
        });
    assert!(matches!(
        ipvs.add_service(&zero_prefix),
        Err(Error::InvalidArgument { .. })
    ));
    // nothing half-done
    assert_kernel_is(&mut ipvs, &table_of(&[(&service, &[d])]));
    ran("kernel_errors_are_typed");
}

fn web_vs() -> VirtualServer {
    VirtualServer::new(Service::new(
        ServiceKey::tcp(sa("192.0.2.10:80")),
        Scheduler::WRR,
    ))
    .with_real_server(RealServer::new(
        Destination::new(sa("10.0.1.1:80"), ForwardMethod::Route).with_weight(3),
    ))
    .with_real_server(RealServer::new(
        Destination::new(sa("10.0.1.2:80"), ForwardMethod::Route).with_weight(2),
    ))
}

fn dns_vs() -> VirtualServer {
    VirtualServer::new(Service::new(
        ServiceKey::udp(sa("[2001:db8::53]:53")),
        Scheduler::RR,
    ))
    .with_real_server(
        RealServer::new(Destination::new(
            sa("[2001:db8:3::1]:53"),
            ForwardMethod::Masquerade,
        ))
        .inhibit_on_failure(),
    )
}

#[test]
fn health_flap_removes_and_readds_real_server() {
    let Some(mut ipvs) = kernel("health_flap_removes_and_readds_real_server") else {
        return;
    };
    let vs = web_vs();
    let key = vs.service.key;
    let mut lb = LoadBalancer::new(vec![vs]).expect("config");
    lb.sync(&mut ipvs).expect("sync");
    assert_kernel_is(&mut ipvs, &desired_table(&lb));
    for round in 0..3 {
        lb.set_health(&key, sa("10.0.1.1:80"), Health::Down)
            .expect("known");
        let changes = lb.sync(&mut ipvs).expect("sync");
        assert_eq!(
            changes.iter().filter(|c| c.writes()).collect::<Vec<_>>(),
            vec![&Change::DeleteDestination(key, sa("10.0.1.1:80"))]
        );
        assert_kernel_is(&mut ipvs, &desired_table(&lb));
        assert!(
            !ipvsadm().services[&key]
                .destinations
                .contains_key(&sa("10.0.1.1:80")),
            "round {round}"
        );
        lb.set_health(&key, sa("10.0.1.1:80"), Health::Up)
            .expect("known");
        lb.sync(&mut ipvs).expect("sync");
        assert_eq!(
            ipvsadm().services[&key].destinations[&sa("10.0.1.1:80")].weight,
            3
        );
        assert_kernel_is(&mut ipvs, &desired_table(&lb));
    }
    let events: Vec<Event> = std::iter::from_fn(|| lb.poll_event()).collect();
    assert_eq!(events.len(), 6);
    ran("health_flap_removes_and_readds_real_server");
}

#[test]
fn inhibit_on_failure_keeps_weight_zero_entry() {
    let Some(mut ipvs) = kernel("inhibit_on_failure_keeps_weight_zero_entry") else {
        return;
    };
    let vs = dns_vs();
    let key = vs.service.key;
    let server = sa("[2001:db8:3::1]:53");
    let mut lb = LoadBalancer::new(vec![vs]).expect("config");
    lb.sync(&mut ipvs).expect("sync");
    lb.set_health(&key, server, Health::Down).expect("known");
    let changes = lb.sync(&mut ipvs).expect("sync");
    assert!(
        changes.iter().all(|c| !matches!(
            c,
            Change::DeleteDestination(..) | Change::AddDestination(..)
        )),
        "{changes:?}"
    );
    assert_eq!(ipvsadm().services[&key].destinations[&server].weight, 0);
    assert_kernel_is(&mut ipvs, &desired_table(&lb));
    lb.set_health(&key, server, Health::Up).expect("known");
    lb.sync(&mut ipvs).expect("sync");
    assert_eq!(ipvsadm().services[&key].destinations[&server].weight, 1);
    ran("inhibit_on_failure_keeps_weight_zero_entry");
}

#[test]
fn sorry_server_and_quorum_with_hysteresis() {
    let Some(mut ipvs) = kernel("sorry_server_and_quorum_with_hysteresis") else {
        return;
    };
    let sorry = Destination::new(sa("10.0.1.99:80"), ForwardMethod::Masquerade);
    let vs = web_vs().with_quorum(4, 1).with_sorry_server(sorry); // weights 3 + 2
    let key = vs.service.key;
    let mut lb = LoadBalancer::new(vec![vs]).expect("config");
    lb.sync(&mut ipvs).expect("sync");
    assert_eq!(lb.has_quorum(&key), Some(true));
    // 3 >= 4-1: quorum holds
    lb.set_health(&key, sa("10.0.1.2:80"), Health::Down)
        .expect("known");
    lb.sync(&mut ipvs).expect("sync");
    assert_eq!(lb.has_quorum(&key), Some(true));
    assert!(
        !ipvsadm().services[&key]
            .destinations
            .contains_key(&sorry.addr)
    );
    // 0 < 3: lost, sorry server alone
    lb.set_health(&key, sa("10.0.1.1:80"), Health::Down)
        .expect("known");
    lb.sync(&mut ipvs).expect("sync");
    let seen = ipvsadm();
    assert_eq!(
        seen.services[&key]
            .destinations
            .keys()
            .copied()
            .collect::<Vec<_>>(),
        vec![sorry.addr]
    );
    assert_kernel_is(&mut ipvs, &desired_table(&lb));
    // 3 < 4+1: still lost, live server kept out
    lb.set_health(&key, sa("10.0.1.1:80"), Health::Up)
        .expect("known");
    lb.sync(&mut ipvs).expect("sync");
    assert_eq!(
        ipvsadm().services[&key]
            .destinations
            .keys()
            .copied()
            .collect::<Vec<_>>(),
        vec![sorry.addr]
    );
    // 5 >= 5: regained, sorry server gone
    lb.set_health(&key, sa("10.0.1.2:80"), Health::Up)
        .expect("known");
    lb.sync(&mut ipvs).expect("sync");
    let seen = ipvsadm();
    assert_eq!(
        seen.services[&key]
            .destinations
            .keys()
            .copied()
            .collect::<Vec<_>>(),
        vec![sa("10.0.1.1:80"), sa("10.0.1.2:80")]
    );
    assert_kernel_is(&mut ipvs, &desired_table(&lb));
    let quorum: Vec<Event> = std::iter::from_fn(|| lb.poll_event())
        .filter(|e| matches!(e, Event::QuorumUp { .. } | Event::QuorumDown { .. }))
        .collect();
    assert_eq!(
        quorum,
        vec![
            Event::QuorumDown { service: key },
            Event::QuorumUp { service: key }
        ]
    );
    ran("sorry_server_and_quorum_with_hysteresis");
}

#[test]
fn restart_adopts_table_without_flush_and_spares_foreign_entries() {
    let Some(mut ipvs) = kernel("restart_adopts_table_without_flush_and_spares_foreign_entries")
    else {
        return;
    };
    // someone else's service, and someone else's server inside ours
    run(&["ipvsadm", "-A", "-t", "192.0.2.77:25", "-s", "rr"]);
    let mut first = LoadBalancer::new(vec![web_vs(), dns_vs()]).expect("config");
    first.sync(&mut ipvs).expect("sync");
    run(&[
        "ipvsadm",
        "-a",
        "-t",
        "192.0.2.10:80",
        "-r",
        "10.0.9.9:80",
        "-g",
        "-w",
        "1",
    ]);
    let record = first.ownership().to_text();
    assert!(
        first
            .shutdown(&mut ipvs, ShutdownMode::Keep)
            .expect("shutdown")
            .is_empty()
    );
    let before = ipvsadm();

    // a second instance, no record: adopts, writes nothing
    let mut second = LoadBalancer::new(vec![web_vs(), dns_vs()]).expect("config");
    let mut fresh = IpvsClient::connect().expect("connect");
    let changes = second.sync(&mut fresh).expect("sync");
    assert!(changes.iter().all(|c| !c.writes()), "{changes:?}");
    assert_eq!(ipvsadm(), before);

    // a third instance with the record and dns_vs removed from the config: deletes only that
    let mut third = LoadBalancer::new(vec![web_vs()])
        .expect("config")
        .with_ownership(Ownership::parse(&record).expect("record"));
    let changes = third.sync(&mut fresh).expect("sync");
    let writes: Vec<&Change> = changes.iter().filter(|c| c.writes()).collect();
    assert_eq!(writes, vec![&Change::DeleteService(dns_vs().service.key)]);
    let after = ipvsadm();
    assert!(
        after
            .services
            .contains_key(&ServiceKey::tcp(sa("192.0.2.77:25"))),
        "foreign service kept"
    );
    assert!(
        after.services[&web_vs().service.key]
            .destinations
            .contains_key(&sa("10.0.9.9:80")),
        "foreign server kept"
    );

    // release on shutdown removes ours only
    third
        .shutdown(&mut fresh, ShutdownMode::Release)
        .expect("shutdown");
    let left: Vec<ServiceKey> = ipvsadm().services.keys().copied().collect();
    assert_eq!(left, vec![ServiceKey::tcp(sa("192.0.2.77:25"))]);
    ran("restart_adopts_table_without_flush_and_spares_foreign_entries");
}

/// A real TCP connection through IPVS (local client to a VIP on lo, balanced to
/// a local listener) survives a weight edit and a restarted balancer: the
/// entries are edited in place, never deleted and re-added.
#[test]
fn live_connection_survives_edit_and_restart() {
    let Some(mut ipvs) = kernel("live_connection_survives_edit_and_restart") else {
        return;
    };
    let vip = "192.0.2.200";
    let _ = Command::new("ip")
        .args(["addr", "add", &format!("{vip}/32"), "dev", "lo"])
        .status();
    let listener = TcpListener::bind("0.0.0.0:18080").expect("listen");
    let vs = VirtualServer::new(Service::new(
        ServiceKey::tcp(sa(&format!("{vip}:18080"))),
        Scheduler::RR,
    ))
    .with_real_server(RealServer::new(
        Destination::new(sa("127.0.0.1:18080"), ForwardMethod::Masquerade).with_weight(1),
    ));
    let key = vs.service.key;
    let mut lb = LoadBalancer::new(vec![vs.clone()]).expect("config");
    lb.sync(&mut ipvs).expect("sync");

    let mut client = TcpStream::connect(sa(&format!("{vip}:18080"))).expect("connect through IPVS");
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let (mut server, _) = listener.accept().expect("accept");
    let echo = |client: &mut TcpStream, server: &mut TcpStream, byte: u8| {
        client.write_all(&[byte]).expect("write");
        let mut b = [0u8; 1];
        server.read_exact(&mut b).expect("server read");
        server.write_all(&b).expect("server write");
        client.read_exact(&mut b).expect("client read");
        assert_eq!(b[0], byte);
    };
    echo(&mut client, &mut server, 1);
    let active = |ipvs: &mut IpvsClient| -> u32 {
        ipvs.destinations(&key)
            .expect("list")
            .iter()
            .map(|d| d.active_connections)
            .sum()
    };
    assert_eq!(active(&mut ipvs), 1, "the connection goes through IPVS");

    // weight change: edited in place
    let mut heavier = vs.clone();
    heavier.real_servers[0].destination.weight = 5;
    lb.reload(vec![heavier.clone()]).expect("config");
    let changes = lb.sync(&mut ipvs).expect("sync");
    assert!(
        changes
            .iter()
            .filter(|c| c.writes())
            .all(|c| matches!(c, Change::UpdateDestination(..))),
        "{changes:?}"
    );
    echo(&mut client, &mut server, 2);
    assert_eq!(active(&mut ipvs), 1);

    // restart: a new instance adopts the table
    drop(lb);
    let mut restarted = LoadBalancer::new(vec![heavier]).expect("config");
    let changes = restarted
        .sync(&mut IpvsClient::connect().expect("connect"))
        .expect("sync");
    assert!(changes.iter().all(|c| !c.writes()), "{changes:?}");
    echo(&mut client, &mut server, 3);
    assert_eq!(active(&mut ipvs), 1);
    let by_crate: BTreeMap<SocketAddr, u32> = ipvs
        .destinations(&key)
        .expect("list")
        .iter()
        .map(|d| (d.destination.addr, d.destination.weight))
        .collect();
    assert_eq!(by_crate, BTreeMap::from([(sa("127.0.0.1:18080"), 5)]));
    ran("live_connection_survives_edit_and_restart");
}

/// Periodic reconciliation against a real kernel: entries deleted or edited
/// with ipvsadm behind the balancer's back (-d, -e, -D, and -a of a managed
/// server that is down) are found by a full sync, repaired and counted;
/// entries nobody manages are left alone.
#[test]
fn full_sync_repairs_and_counts_ipvsadm_drift() {
    let Some(mut ipvs) = kernel("full_sync_repairs_and_counts_ipvsadm_drift") else {
        return;
    };
    let web = web_vs();
    let dns = dns_vs();
    let (web_key, dns_key) = (web.service.key, dns.service.key);
    let mut lb = LoadBalancer::new(vec![web, dns]).expect("config");
    let first = lb.sync_report(&mut ipvs).expect("sync");
    assert_eq!((first.writes(), first.repairs), (5, 0));
    let wanted = desired_table(&lb);
    assert_kernel_is(&mut ipvs, &wanted);

    run(&["ipvsadm", "-d", "-t", "192.0.2.10:80", "-r", "10.0.1.1:80"]);
    run(&[
        "ipvsadm",
        "-e",
        "-t",
        "192.0.2.10:80",
        "-r",
        "10.0.1.2:80",
        "-g",
        "-w",
        "9",
    ]);
    run(&["ipvsadm", "-D", "-u", "[2001:db8::53]:53"]);
    // Someone else's service: not ours to touch.
    run(&["ipvsadm", "-A", "-t", "192.0.2.99:80", "-s", "rr"]);
    let report = lb.sync_report(&mut ipvs).expect("sync");
    assert_eq!(
        (report.writes(), report.repairs),
        (4, 4),
        "re-add, re-weight, re-create service and its server: {:?}",
        report.changes
    );
    let mut with_foreign = wanted.clone();
    with_foreign.insert_service(Service::new(
        ServiceKey::tcp(sa("192.0.2.99:80")),
        Scheduler::RR,
    ));
    assert_kernel_is(&mut ipvs, &with_foreign);

    // A down server added back by hand is taken out again (and counted).
    lb.set_health(&web_key, sa("10.0.1.1:80"), Health::Down)
        .expect("known");
    let report = lb.sync_changed(&mut ipvs).expect("sync");
    assert_eq!((report.writes(), report.repairs), (1, 0), "a health change");
    run(&[
        "ipvsadm",
        "-a",
        "-t",
        "192.0.2.10:80",
        "-r",
        "10.0.1.1:80",
        "-g",
        "-w",
        "3",
    ]);
    let report = lb.sync_report(&mut ipvs).expect("sync");
    assert_eq!((report.writes(), report.repairs), (1, 1));
    assert!(
        !ipvsadm().services[&web_key]
            .destinations
            .contains_key(&sa("10.0.1.1:80"))
    );
    let quiet = lb.sync_report(&mut ipvs).expect("sync");
    assert_eq!((quiet.writes(), quiet.repairs), (0, 0));
    assert_eq!(lb.stats().repairs, 5);
    assert!(ipvsadm().services.contains_key(&dns_key));
    ran("full_sync_repairs_and_counts_ipvsadm_drift");
}

/// SIGHUP at library level against a real kernel: with the checks kept by
/// (service, server, check), a reload neither puts a dead real server back
/// nor drains an alpha one that came up, and writes nothing.
#[test]
fn reload_keeps_dead_server_out_and_alpha_server_in() {
    let Some(mut ipvs) = kernel("reload_keeps_dead_server_out_and_alpha_server_in") else {
        return;
    };
    let mut dns = dns_vs();
    dns.alpha = true;
    let config = || vec![web_vs(), dns.clone()];
    let web_key = ServiceKey::tcp(sa("192.0.2.10:80"));
    let dns_key = dns.service.key;
    let dns_rs = sa("[2001:db8:3::1]:53");
    let checks = || {
        vec![
            ServerChecks::new(web_key, sa("10.0.1.1:80"), [(0_usize, Health::Up)]),
            ServerChecks::new(
                web_key,
                sa("10.0.1.2:80"),
                [(0, Health::Up), (1, Health::Up)],
            ),
            ServerChecks::new(dns_key, dns_rs, [(0, Health::Down)]),
        ]
    };
    let mut lb = LoadBalancer::new(config()).expect("config");
    let mut agg = HealthAggregator::new();
    agg.configure(checks());
    agg.apply(&mut lb);
    lb.sync(&mut ipvs).expect("sync");
    // Alpha: inhibited at weight 0 until its check passes.
    assert_eq!(ipvsadm().services[&dns_key].destinations[&dns_rs].weight, 0);
    agg.set(&web_key, sa("10.0.1.2:80"), &1, Health::Down)
        .expect("known");
    agg.set(&dns_key, dns_rs, &0, Health::Up).expect("known");
    agg.apply(&mut lb);
    lb.sync_changed(&mut ipvs).expect("sync");
    let before = ipvsadm();
    assert!(
        !before.services[&web_key]
            .destinations
            .contains_key(&sa("10.0.1.2:80"))
    );
    assert_eq!(before.services[&dns_key].destinations[&dns_rs].weight, 1);
    while lb.poll_event().is_some() {}

    for _ in 0..3 {
        lb.reload(config()).expect("config");
        assert_eq!(agg.configure(checks()).kept, 4);
        agg.apply(&mut lb);
        let report = lb.sync_changed(&mut ipvs).expect("sync");
        assert_eq!(report.writes(), 0, "{:?}", report.changes);
        assert_eq!(ipvsadm(), before);
        assert_eq!(lb.poll_event(), None, "no notify_up/down, no quorum change");
    }
    ran("reload_keeps_dead_server_out_and_alpha_server_in");
}
