//! The state machine of one instance against RFC 3768 / RFC 5798 and
//! keepalived's behaviour, driven with hand-made advertisements and time.

#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::time::Duration;

use vrrp_core::wire::{AdvertRepr, IpPair, MULTICAST_V4, MULTICAST_V6};
use vrrp_core::{
    Auth, Centisecs, ChecksumMode, DropReason, InitialState, Instance, InstanceConfig, Output,
    Priority, Reason, RxMeta, State, Timestamp, TrackConfig, TrackId, Version, VirtualAddress,
    Vrid,
};

const ME: &str = "192.0.2.10";
const VIP: &str = "192.0.2.100";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ms(n: u64) -> Timestamp {
    Timestamp::from_millis(n)
}

fn config(version: Version, prio: u8) -> InstanceConfig {
    InstanceConfig::new(Vrid::new(42).unwrap(), version, ip(ME))
        .with_priority(Priority::new(prio))
        .with_address(VirtualAddress::host(ip(VIP)))
}

fn started(cfg: InstanceConfig) -> Instance {
    let mut i = Instance::new(cfg).unwrap();
    i.handle_startup(Timestamp::ZERO);
    drain(&mut i);
    i
}

fn drain(i: &mut Instance) -> Vec<Output> {
    std::iter::from_fn(|| i.poll_output()).collect()
}

/// An advertisement from `src` as bytes.
fn advert(
    version: Version,
    src: &str,
    prio: u8,
    interval_cs: u16,
    addrs: &[&str],
    auth: Auth,
) -> (RxMeta, Vec<u8>) {
    let src = ip(src);
    let dst = if src.is_ipv4() {
        IpAddr::V4(MULTICAST_V4)
    } else {
        IpAddr::V6(MULTICAST_V6)
    };
    let addrs: Vec<IpAddr> = addrs.iter().map(|a| ip(a)).collect();
    let repr = AdvertRepr {
        version,
        vrid: Vrid::new(42).unwrap(),
        priority: Priority::new(prio),
        interval: Centisecs::new(interval_cs),
        auth,
        addresses: addrs.iter().copied(),
    };
    let mut buf = vec![0u8; 1100];
    let len = repr
        .emit(&mut buf, &IpPair { src, dst }, ChecksumMode::Rfc)
        .unwrap();
    buf.truncate(len);
    (
        RxMeta {
            src,
            dst,
            ttl: Some(255),
        },
        buf,
    )
}

fn v3(src: &str, prio: u8) -> (RxMeta, Vec<u8>) {
    advert(Version::V3, src, prio, 100, &[VIP], Auth::None)
}

/// Whether `o` adds exactly the instance's one virtual address.
fn adds_vip(o: &Output) -> bool {
    matches!(o, Output::AddAddresses { vrid, addresses }
        if vrid.get() == 42 && addresses[..] == [VirtualAddress::host(ip(VIP))])
}

/// Whether `o` removes exactly the instance's one virtual address.
fn removes_vip(o: &Output) -> bool {
    matches!(o, Output::RemoveAddresses { vrid, addresses }
        if vrid.get() == 42 && addresses[..] == [VirtualAddress::host(ip(VIP))])
}

fn transitions(outs: &[Output]) -> Vec<(State, State)> {
    outs.iter()
        .filter_map(|o| match o {
            Output::StateChanged { from, to, .. } => Some((*from, *to)),
            _ => None,
        })
        .collect()
}

#[test]
fn master_down_interval_follows_the_rfc_formulas() {
    // RFC 3768: 3 * 1 s + (256 - 100) / 256 s = 3.609375 s exactly.
    let v2 = started(config(Version::V2, 100));
    assert_eq!(
        v2.master_down_interval(),
        Duration::from_nanos(3_609_375_000)
    );
    // RFC 5798 with a 10 ms interval: 30 ms + 156 * 10 ms / 256 = 36.09375 ms.
    let v3 = started(config(Version::V3, 100).with_interval(Centisecs::new(1)));
    assert_eq!(v3.skew_time(), Duration::from_nanos(6_093_750));
    assert_eq!(v3.master_down_interval(), Duration::from_nanos(36_093_750));
    // Priority 254: the smallest skew.
    let v3 = started(config(Version::V3, 254));
    assert_eq!(v3.skew_time(), Duration::from_nanos(7_812_500));
}

#[test]
fn backup_takes_over_after_master_down_interval_and_not_before() {
    let mut i = started(config(Version::V3, 100));
    assert_eq!(i.state(), State::Backup);
    let mdi = i.master_down_interval();
    let deadline = i.poll_timeout().unwrap();
    assert_eq!(deadline, Timestamp::ZERO + mdi);
    // Early and repeated timeouts do nothing.
    i.handle_timeout(Timestamp::ZERO + mdi - Duration::from_nanos(1));
    assert_eq!(i.state(), State::Backup);
    assert!(drain(&mut i).is_empty());
    i.handle_timeout(deadline);
    assert_eq!(i.state(), State::Master);
    let outs = drain(&mut i);
    assert!(matches!(
        outs[0],
        Output::StateChanged {
            from: State::Backup,
            to: State::Master,
            reason: Reason::MasterDown
        }
    ));
    assert!(matches!(outs[1], Output::Transmit(t) if t.priority == Priority::new(100)));
    assert!(adds_vip(&outs[2]), "{:?}", outs[2]);
    assert!(matches!(outs[3], Output::Announce { count: 5, .. }));
    i.handle_timeout(deadline);
    assert!(drain(&mut i).is_empty(), "a repeated timeout is a no-op");
    assert_eq!(i.statistics().master_transitions, 1);
}

#[test]
fn accepted_adverts_reset_the_timer_and_v3_learns_the_interval() {
    let mut i = started(config(Version::V3, 100));
    let (rx, bytes) = advert(Version::V3, "192.0.2.20", 200, 50, &[VIP], Auth::None);
    i.handle_advert(ms(1000), &rx, &bytes).unwrap();
    assert_eq!(i.master_adver_interval(), Centisecs::new(50));
    // 3 * 500 ms + 156 * 500 ms / 256
    let mdi = Duration::from_nanos(1_500_000_000 + 156 * 500_000_000 / 256);
    assert_eq!(i.master_down_interval(), mdi);
    assert_eq!(i.poll_timeout(), Some(ms(1000) + mdi));
    assert_eq!(i.master_address(), Some(ip("192.0.2.20")));
    assert_eq!(i.statistics().rcvd_advertisements, 1);
}

#[test]
fn owner_and_configured_master_start_as_master() {
    let mut owner = Instance::new(config(Version::V2, 255)).unwrap();
    owner.handle_startup(Timestamp::ZERO);
    assert_eq!(owner.state(), State::Master);
    assert!(matches!(
        drain(&mut owner)[0],
        Output::StateChanged {
            reason: Reason::AddressOwner,
            ..
        }
    ));
    let mut cfg = config(Version::V3, 100);
    cfg.initial_state = InitialState::Master;
    let mut m = Instance::new(cfg).unwrap();
    m.handle_startup(Timestamp::ZERO);
    assert_eq!(m.state(), State::Master);
}

#[test]
fn backup_start_removes_leftover_addresses() {
    let mut i = Instance::new(config(Version::V3, 100)).unwrap();
    i.handle_startup(Timestamp::ZERO);
    assert!(drain(&mut i).iter().any(removes_vip));
}

fn master(prio: u8) -> Instance {
    let mut i = started(config(Version::V3, prio));
    let t = i.poll_timeout().unwrap();
    i.handle_timeout(t);
    drain(&mut i);
    assert_eq!(i.state(), State::Master);
    i
}

#[test]
fn master_steps_down_for_higher_priority_or_equal_priority_from_higher_address() {
    let mut m = master(100);
    let (rx, b) = v3("192.0.2.20", 150);
    m.handle_advert(ms(5000), &rx, &b).unwrap();
    assert_eq!(m.state(), State::Backup);
    let outs = drain(&mut m);
    // One last advertisement of ours (so a winner that never heard us
    // learns that a split brain ended), then the step down.
    assert!(matches!(outs[0], Output::Transmit(t) if t.priority.get() == 100));
    assert!(
        matches!(outs[1], Output::StateChanged { to: State::Backup, reason: Reason::Preempted { priority, .. }, .. } if priority.get() == 150)
    );
    assert!(outs.iter().any(removes_vip));

    let mut m = master(100);
    let (rx, b) = v3("192.0.2.20", 100); // .20 > .10
    m.handle_advert(ms(5000), &rx, &b).unwrap();
    assert_eq!(m.state(), State::Backup);

    let mut m = master(100);
    let (rx, b) = v3("192.0.2.5", 100); // .5 < .10: we win and say so at once
    m.handle_advert(ms(5000), &rx, &b).unwrap();
    assert_eq!(m.state(), State::Master);
    // ... and announce the addresses again (garp_lower_prio_repeat).
    assert!(matches!(
        drain(&mut m)[..],
        [Output::Transmit(_), Output::Announce { count: 5, .. }]
    ));
}

#[test]
fn lower_prio_no_advert_keeps_quiet() {
    let mut cfg = config(Version::V3, 100);
    cfg.lower_prio_no_advert = true;
    let mut m = started(cfg);
    let t = m.poll_timeout().unwrap();
    m.handle_timeout(t);
    drain(&mut m);
    let (rx, b) = v3("192.0.2.5", 50);
    m.handle_advert(ms(5000), &rx, &b).unwrap();
    // No advertisement; the announcements still go (keepalived sends
    // them whatever vrrp_lower_prio_no_advert says).
    assert!(matches!(
        drain(&mut m)[..],
        [Output::Announce { count: 5, .. }]
    ));
}

#[test]
fn master_answers_priority_zero_with_an_advert() {
    let mut m = master(100);
    let (rx, b) = v3("192.0.2.20", 0);
    m.handle_advert(ms(5000), &rx, &b).unwrap();
    assert!(matches!(drain(&mut m)[..], [Output::Transmit(t)] if t.priority.get() == 100));
    assert_eq!(m.poll_timeout(), Some(ms(6000)));
}

#[test]
fn priority_zero_makes_the_backup_take_over_after_skew_time() {
    let mut b = started(config(Version::V3, 100));
    let (rx, bytes) = v3("192.0.2.20", 200);
    b.handle_advert(ms(1000), &rx, &bytes).unwrap();
    let (rx, bytes) = v3("192.0.2.20", 0);
    b.handle_advert(ms(1500), &rx, &bytes).unwrap();
    assert_eq!(b.statistics().rcvd_pri_zero_packets, 1);
    assert_eq!(b.poll_timeout(), Some(ms(1500) + b.skew_time()));
    b.handle_timeout(ms(1500) + b.skew_time());
    assert_eq!(b.state(), State::Master);
}

#[test]
fn shutdown_of_a_master_sends_priority_zero_and_releases_addresses() {
    let mut m = master(100);
    m.handle_shutdown(ms(9000));
    let outs = drain(&mut m);
    assert!(matches!(
        outs[0],
        Output::StateChanged {
            to: State::Initialize,
            reason: Reason::Shutdown,
            ..
        }
    ));
    assert!(matches!(outs[1], Output::Transmit(t) if t.priority == Priority::STOP));
    assert!(removes_vip(&outs[2]), "{:?}", outs[2]);
    assert_eq!(m.poll_timeout(), None);
    assert_eq!(m.statistics().sent_pri_zero_packets, 1);
}

#[test]
fn preempt_discards_lower_priority_and_nopreempt_accepts_it() {
    let mut b = started(config(Version::V3, 200));
    let (rx, bytes) = v3("192.0.2.20", 100);
    b.handle_advert(ms(100), &rx, &bytes).unwrap();
    // Discarded: the timer still runs from start-up.
    assert_eq!(
        b.poll_timeout(),
        Some(Timestamp::ZERO + b.master_down_interval())
    );

    let mut cfg = config(Version::V3, 200);
    cfg.preempt = false;
    let mut b = started(cfg);
    b.handle_advert(ms(100), &rx, &bytes).unwrap();
    assert_eq!(b.poll_timeout(), Some(ms(100) + b.master_down_interval()));
}

#[test]
fn preempt_delay_accepts_a_lower_master_until_the_delay_has_passed() {
    let mut cfg = config(Version::V3, 200);
    cfg.preempt_delay = Duration::from_secs(10);
    let mut b = started(cfg);
    let (rx, bytes) = v3("192.0.2.20", 100);
    let mut t = 100;
    while t < 10_100 {
        b.handle_advert(ms(t), &rx, &bytes).unwrap();
        assert_eq!(
            b.poll_timeout(),
            Some(ms(t) + b.master_down_interval()),
            "accepted at {t} ms"
        );
        t += 1000;
    }
    // Past the deadline the lower master's adverts no longer hold us back.
    b.handle_advert(ms(10_100), &rx, &bytes).unwrap();
    assert_eq!(b.poll_timeout(), Some(ms(9_100) + b.master_down_interval()));
}

#[test]
fn weights_move_the_priority_and_weight_zero_faults() {
    let mut i = started(config(Version::V3, 100));
    i.track(ms(1), TrackId(1), TrackConfig::weight(-20), true);
    i.track(ms(1), TrackId(2), TrackConfig::weight(10), false);
    assert_eq!(i.effective_priority().get(), 100);
    i.set_track_state(ms(2), TrackId(1), false);
    assert_eq!(i.effective_priority().get(), 80);
    i.set_track_state(ms(3), TrackId(2), true);
    assert_eq!(i.effective_priority().get(), 90);
    i.track(ms(4), TrackId(3), TrackConfig::weight(500), true);
    assert_eq!(i.effective_priority().get(), 254, "clamped to 254");
    i.track(
        ms(4),
        TrackId(4),
        TrackConfig {
            weight: -30,
            reverse: true,
        },
        true,
    );
    assert_eq!(i.effective_priority().get(), 254);
    i.set_base_priority(ms(4), Priority::new(5));
    i.untrack(ms(4), TrackId(3));
    assert_eq!(
        i.effective_priority().get(),
        1,
        "5 - 20 + 10 - 30 clamps to 1"
    );
    drain(&mut i);

    i.track(ms(5), TrackId(9), TrackConfig::weight(0), true);
    assert_eq!(i.state(), State::Backup);
    i.set_track_state(ms(6), TrackId(9), false);
    assert_eq!(i.state(), State::Fault);
    assert!(matches!(
        drain(&mut i).last(),
        Some(Output::StateChanged {
            to: State::Fault,
            reason: Reason::TrackFailed(TrackId(9)),
            ..
        })
    ));
    assert_eq!(i.poll_timeout(), None, "silent in fault");
    let (rx, bytes) = v3("192.0.2.20", 100);
    assert_eq!(
        i.handle_advert(ms(7), &rx, &bytes),
        Err(DropReason::NotRunning)
    );
    i.set_track_state(ms(8), TrackId(9), true);
    assert_eq!(i.state(), State::Backup, "leaving Fault re-enters Backup");
}

#[test]
fn owner_priority_ignores_weights() {
    let mut i = started(config(Version::V3, 255));
    i.track(ms(1), TrackId(1), TrackConfig::weight(-50), false);
    assert_eq!(i.effective_priority(), Priority::OWNER);
}

#[test]
fn master_going_to_fault_sends_priority_zero() {
    let mut m = master(100);
    m.track(ms(5000), TrackId(1), TrackConfig::weight(0), false);
    let outs = drain(&mut m);
    assert_eq!(transitions(&outs), vec![(State::Master, State::Fault)]);
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::Transmit(t) if t.priority == Priority::STOP))
    );
    assert!(outs.iter().any(removes_vip));
}

#[test]
fn gratuitous_arp_bursts_and_refresh() {
    let mut cfg = config(Version::V3, 100);
    cfg.garp.master_refresh = Some(Duration::from_secs(60));
    cfg.garp.refresh_repeat = 2;
    let mut i = started(cfg);
    let t = i.poll_timeout().unwrap();
    i.handle_timeout(t);
    let outs = drain(&mut i);
    assert!(outs.iter().any(|o| matches!(o, Output::Announce {
        vrid, addresses, count: 5, interval: Duration::ZERO
    } if vrid.get() == 42 && addresses[..] == [VirtualAddress::host(ip(VIP))])));
    // Second burst 5 s later (keepalived's garp_master_delay).
    let mut seen = Vec::new();
    let mut now = t;
    while now < t + Duration::from_secs(61) {
        now = i.poll_timeout().unwrap();
        i.handle_timeout(now);
        for o in drain(&mut i) {
            if let Output::Announce { count, .. } = o {
                seen.push((now - t, count));
            }
        }
    }
    assert_eq!(
        seen,
        vec![(Duration::from_secs(5), 5), (Duration::from_secs(60), 2)]
    );
}

#[test]
fn adverts_keep_their_cadence() {
    let mut m = master(100);
    let start = m.poll_timeout().unwrap();
    // The driver wakes 3 ms late; the next advert stays on the schedule.
    m.handle_timeout(start + Duration::from_millis(3));
    assert_eq!(m.poll_timeout(), Some(start + Duration::from_secs(1)));
}

#[test]
fn drops_are_classified_and_counted() {
    let mut i = started(config(Version::V2, 100));
    let good = advert(Version::V2, "192.0.2.20", 100, 100, &[VIP], Auth::None);
    assert_eq!(i.handle_advert(ms(1), &good.0, &good.1), Ok(()));

    let mut ttl = good.0;
    ttl.ttl = Some(64);
    assert_eq!(
        i.handle_advert(ms(1), &ttl, &good.1),
        Err(DropReason::IpTtl)
    );
    assert_eq!(
        i.handle_advert(ms(1), &good.0, &good.1[..10]),
        Err(DropReason::PacketLength)
    );
    let mut bad = good.1.clone();
    bad[8] ^= 1;
    assert_eq!(
        i.handle_advert(ms(1), &good.0, &bad),
        Err(DropReason::Checksum)
    );
    let mut typ = good.1.clone();
    typ[0] = 0x22;
    assert_eq!(
        i.handle_advert(ms(1), &good.0, &typ),
        Err(DropReason::InvalidType)
    );
    let mut ver = good.1.clone();
    ver[0] = 0x41;
    assert_eq!(
        i.handle_advert(ms(1), &good.0, &ver),
        Err(DropReason::Version)
    );
    let v3 = advert(Version::V3, "192.0.2.20", 100, 100, &[VIP], Auth::None);
    assert_eq!(
        i.handle_advert(ms(1), &v3.0, &v3.1),
        Err(DropReason::VersionMismatch)
    );
    let slow = advert(Version::V2, "192.0.2.20", 100, 200, &[VIP], Auth::None);
    assert_eq!(
        i.handle_advert(ms(1), &slow.0, &slow.1),
        Err(DropReason::AdvertInterval)
    );
    let other = advert(
        Version::V2,
        "192.0.2.20",
        100,
        100,
        &["192.0.2.99"],
        Auth::None,
    );
    assert_eq!(
        i.handle_advert(ms(1), &other.0, &other.1),
        Err(DropReason::AddressList)
    );
    let owner = advert(
        Version::V2,
        "192.0.2.20",
        255,
        100,
        &["192.0.2.99"],
        Auth::None,
    );
    assert_eq!(
        i.handle_advert(ms(1), &owner.0, &owner.1),
        Ok(()),
        "the owner's list is authoritative"
    );
    let pass = advert(
        Version::V2,
        "192.0.2.20",
        100,
        100,
        &[VIP],
        Auth::password(b"x").unwrap(),
    );
    assert_eq!(
        i.handle_advert(ms(1), &pass.0, &pass.1),
        Err(DropReason::AuthTypeMismatch)
    );
    let own = advert(Version::V2, ME, 100, 100, &[VIP], Auth::None);
    assert_eq!(
        i.handle_advert(ms(1), &own.0, &own.1),
        Err(DropReason::OwnPacket)
    );

    let s = i.statistics();
    assert_eq!(s.rcvd_advertisements, 2);
    assert_eq!(
        (
            s.ip_ttl_errors,
            s.packet_length_errors,
            s.checksum_errors,
            s.rcvd_invalid_type_packets,
            s.version_mismatch,
            s.version_errors
        ),
        (1, 1, 1, 1, 1, 1)
    );
    assert_eq!(
        (
            s.adv_interval_errors,
            s.address_list_errors,
            s.auth_type_mismatch,
            s.own_packets
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(s.dropped(), 10);
}

#[test]
fn v2_password_authentication() {
    let mut cfg = config(Version::V2, 100);
    cfg.auth = Auth::password(b"s3cr3t").unwrap();
    let mut i = started(cfg);
    let ok = advert(
        Version::V2,
        "192.0.2.20",
        100,
        100,
        &[VIP],
        Auth::password(b"s3cr3t").unwrap(),
    );
    assert_eq!(i.handle_advert(ms(1), &ok.0, &ok.1), Ok(()));
    let wrong = advert(
        Version::V2,
        "192.0.2.20",
        100,
        100,
        &[VIP],
        Auth::password(b"guess").unwrap(),
    );
    assert_eq!(
        i.handle_advert(ms(1), &wrong.0, &wrong.1),
        Err(DropReason::AuthFailure)
    );
    let none = advert(Version::V2, "192.0.2.20", 100, 100, &[VIP], Auth::None);
    assert_eq!(
        i.handle_advert(ms(1), &none.0, &none.1),
        Err(DropReason::AuthTypeMismatch)
    );
    let mut ah = ok.1.clone();
    ah[4] = 2; // IP Authentication Header, gone since RFC 3768
    // Fix the checksum so only the auth type is wrong.
    ah[6] = 0;
    ah[7] = 0;
    let sum = !ah
        .chunks(2)
        .fold(0u32, |s, c| s + u32::from(u16::from_be_bytes([c[0], c[1]])));
    let sum = {
        let mut s = !sum;
        while s >> 16 != 0 {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    };
    ah[6..8].copy_from_slice(&sum.to_be_bytes());
    assert_eq!(
        i.handle_advert(ms(1), &ok.0, &ah),
        Err(DropReason::InvalidAuthType)
    );
}

#[test]
fn unicast_accepts_only_peers_and_skips_the_ttl_check() {
    let mut cfg = config(Version::V3, 100);
    cfg.unicast_peers = vec![ip("192.0.2.20"), ip("192.0.2.30")];
    let mut i = started(cfg);
    let (mut rx, b) = v3("192.0.2.20", 100);
    rx.ttl = Some(62);
    assert_eq!(i.handle_advert(ms(1), &rx, &b), Ok(()));
    let (rx, b) = v3("192.0.2.40", 100);
    assert_eq!(
        i.handle_advert(ms(1), &rx, &b),
        Err(DropReason::UnknownPeer)
    );
    // A master sends one advert to each peer.
    let mut cfg = config(Version::V3, 255);
    cfg.unicast_peers = vec![ip("192.0.2.20"), ip("192.0.2.30")];
    let mut m = Instance::new(cfg).unwrap();
    m.handle_startup(Timestamp::ZERO);
    let dests: Vec<IpAddr> = drain(&mut m)
        .into_iter()
        .filter_map(|o| match o {
            Output::Transmit(t) => Some(t.destination),
            _ => None,
        })
        .collect();
    assert_eq!(dests, vec![ip("192.0.2.20"), ip("192.0.2.30")]);
}

#[test]
fn encoded_adverts_decode_to_the_config() {
    let mut cfg = config(Version::V2, 254);
    cfg.auth = Auth::password(b"pw").unwrap();
    let mut m = Instance::new(cfg.clone()).unwrap();
    m.handle_startup(Timestamp::ZERO);
    let t = m.poll_timeout().unwrap();
    m.handle_timeout(t);
    let tx = drain(&mut m)
        .into_iter()
        .find_map(|o| {
            if let Output::Transmit(t) = o {
                Some(t)
            } else {
                None
            }
        })
        .unwrap();
    let mut buf = [0xa5u8; 64];
    let len = m.encode(&tx, &mut buf).unwrap();
    let mut peer_cfg = cfg;
    peer_cfg.primary_address = ip("192.0.2.20");
    let mut peer = started(peer_cfg.with_priority(Priority::new(100)));
    let rx = RxMeta {
        src: ip(ME),
        dst: tx.destination,
        ttl: Some(255),
    };
    assert_eq!(peer.handle_advert(ms(1), &rx, &buf[..len]), Ok(()));
    assert_eq!(peer.master_address(), Some(ip(ME)));
}

#[test]
fn invalid_configs_are_refused() {
    let mut cfg = config(Version::V2, 100);
    cfg.advert_interval = Centisecs::new(50);
    assert!(Instance::new(cfg).is_err(), "v2 cannot carry 500 ms");
    let cfg = config(Version::V3, 100).with_interval(Centisecs::new(5000));
    assert!(Instance::new(cfg).is_err(), "v3 cannot carry 50 s");
    let cfg = InstanceConfig::new(Vrid::new(1).unwrap(), Version::V2, ip("fe80::1"));
    assert!(Instance::new(cfg).is_err(), "v2 is IPv4 only");
    let cfg = config(Version::V3, 100).with_address(VirtualAddress::host(ip("2001:db8::1")));
    assert!(Instance::new(cfg).is_err(), "mixed families");
    let mut cfg = config(Version::V3, 100);
    cfg.auth = Auth::password(b"x").unwrap();
    assert!(Instance::new(cfg).is_err(), "auth is v2 only");
    assert!(Instance::new(config(Version::V3, 0)).is_err());
}

#[test]
fn ipv6_v3_round_trip() {
    let mut cfg = InstanceConfig::new(Vrid::new(42).unwrap(), Version::V3, ip("fe80::1"))
        .with_address(VirtualAddress {
            addr: ip("2001:db8::100"),
            prefix_len: 64,
        });
    cfg.priority = Priority::new(100);
    let mut b = started(cfg);
    let (rx, bytes) = advert(
        Version::V3,
        "fe80::2",
        150,
        100,
        &["2001:db8::100"],
        Auth::None,
    );
    assert_eq!(b.handle_advert(ms(1), &rx, &bytes), Ok(()));
}

#[test]
fn instances_taking_over_together_share_one_cadence() {
    // 255 VRIDs becoming master at the same instant advertise at the same
    // instants, so the driver wakes once per interval for all of them
    // (one wake-up and one batch instead of 255 of each).
    let mut deadlines = Vec::new();
    for vrid in [1u8, 64, 128, 255] {
        let mut cfg = config(Version::V3, 255).with_interval(Centisecs::new(1));
        cfg.vrid = Vrid::new(vrid).unwrap();
        let mut i = Instance::new(cfg).unwrap();
        i.handle_startup(Timestamp::ZERO);
        drain(&mut i);
        let next = i.poll_timeout().unwrap();
        assert_eq!(next, ms(10), "one interval after taking over");
        deadlines.push(next);
        i.handle_timeout(next);
        assert_eq!(i.poll_timeout().unwrap() - next, Duration::from_millis(10));
    }
    deadlines.dedup();
    assert_eq!(deadlines.len(), 1, "one phase: {deadlines:?}");
}

fn owner() -> Instance {
    let cfg = InstanceConfig::new(Vrid::new(42).unwrap(), Version::V3, ip(ME))
        .with_priority(Priority::OWNER)
        .with_address(VirtualAddress::host(ip(ME)));
    let i = started(cfg);
    assert_eq!(i.state(), State::Master, "an owner starts as master");
    i
}

#[test]
fn the_address_owner_discards_every_advertisement_and_counts_them() {
    // RFC 5798 7.1: "the local router is not the IPvX address owner".
    let mut o = owner();
    for (src, prio) in [("192.0.2.200", 255), ("192.0.2.200", 254), ("192.0.2.1", 0)] {
        let (rx, b) = advert(Version::V3, src, prio, 100, &[ME], Auth::None);
        assert_eq!(
            o.handle_advert(ms(100), &rx, &b),
            Err(DropReason::AddressOwner)
        );
    }
    assert_eq!(o.state(), State::Master);
    assert!(drain(&mut o).is_empty(), "no output at all");
    assert_eq!(o.statistics().owner_discards, 3);
    assert_eq!(o.statistics().rcvd_advertisements, 0);
}

#[test]
fn an_owner_keeping_keepalived_2_2_7_behaviour_is_demoted_and_comes_back() {
    let mut cfg = InstanceConfig::new(Vrid::new(42).unwrap(), Version::V3, ip(ME))
        .with_priority(Priority::OWNER)
        .with_address(VirtualAddress::host(ip(ME)));
    cfg.owner_ignore_adverts = false;
    let mut o = started(cfg);
    // A spoofed owner advertisement from a higher address.
    let (rx, b) = advert(Version::V3, "192.0.2.200", 255, 100, &[ME], Auth::None);
    o.handle_advert(ms(100), &rx, &b).unwrap();
    assert_eq!(o.state(), State::Backup);
    // The spoofing stops: Master_Down_Interval later it is master again.
    let at = o.poll_timeout().unwrap();
    assert_eq!(at, ms(100) + o.master_down_interval());
    o.handle_timeout(at);
    assert_eq!(o.state(), State::Master);
}

#[test]
fn an_advertisement_without_addresses_is_dropped() {
    // RFC 9568 erratum 8299 (5.2.5: "If the received count is 0, the VRRP
    // advertisement MUST be ignored").
    let mut b = started(config(Version::V3, 100));
    let (rx, bytes) = advert(Version::V3, "192.0.2.20", 200, 100, &[], Auth::None);
    assert_eq!(
        b.handle_advert(ms(10), &rx, &bytes),
        Err(DropReason::ZeroAddressCount)
    );
    // Even from a sender claiming to be the owner, whose list is otherwise
    // authoritative.
    let (rx, bytes) = advert(Version::V3, "192.0.2.20", 255, 100, &[], Auth::None);
    assert_eq!(
        b.handle_advert(ms(10), &rx, &bytes),
        Err(DropReason::ZeroAddressCount)
    );
    assert_eq!(b.statistics().zero_address_count, 2);
    assert_eq!(
        b.poll_timeout(),
        Some(Timestamp::ZERO + b.master_down_interval()),
        "the timer was not touched"
    );
    // An instance without virtual addresses (keepalived allows it) talks
    // with its like: a count of 0 is its own list.
    let bare = InstanceConfig::new(Vrid::new(42).unwrap(), Version::V3, ip(ME));
    let mut b = started(bare);
    let (rx, bytes) = advert(Version::V3, "192.0.2.20", 200, 100, &[], Auth::None);
    assert_eq!(b.handle_advert(ms(10), &rx, &bytes), Ok(()));
}

#[test]
fn priority_zero_is_honoured_only_from_the_current_master() {
    let mut b = started(config(Version::V3, 100));
    // Nobody heard yet: a priority 0 from anyone is ignored.
    let (rx, bytes) = v3("192.0.2.30", 0);
    assert_eq!(
        b.handle_advert(ms(500), &rx, &bytes),
        Err(DropReason::PriorityZeroNotFromMaster)
    );
    let (rx, bytes) = v3("192.0.2.20", 200);
    b.handle_advert(ms(1000), &rx, &bytes).unwrap();
    let timer = b.poll_timeout();
    // Another host's priority 0 leaves the timer where the master set it.
    let (rx, bytes) = v3("192.0.2.30", 0);
    assert_eq!(
        b.handle_advert(ms(1100), &rx, &bytes),
        Err(DropReason::PriorityZeroNotFromMaster)
    );
    assert_eq!(b.poll_timeout(), timer);
    assert_eq!(b.statistics().pri_zero_not_from_master, 2);
    // The master's own priority 0: Skew_Time (RFC 5798 6.4.2).
    let (rx, bytes) = v3("192.0.2.20", 0);
    b.handle_advert(ms(1200), &rx, &bytes).unwrap();
    assert_eq!(b.poll_timeout(), Some(ms(1200) + b.skew_time()));
}

#[test]
fn a_multicast_advertisement_of_unknown_ttl_fails_the_ttl_check() {
    let mut b = started(config(Version::V3, 100));
    let (mut rx, bytes) = v3("192.0.2.20", 200);
    rx.ttl = None;
    assert_eq!(b.handle_advert(ms(10), &rx, &bytes), Err(DropReason::IpTtl));
}

fn announces(outs: &[Output]) -> Vec<u32> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Announce { count, .. } => Some(*count),
            _ => None,
        })
        .collect()
}

#[test]
fn lower_priority_adverts_get_announcements_now_and_after_the_delay_rate_limited() {
    let mut cfg = config(Version::V3, 200);
    cfg.garp.lower_prio_repeat = 3;
    cfg.garp.lower_prio_delay = Duration::from_secs(2);
    cfg.garp.master_delay = Duration::ZERO;
    cfg.initial_state = InitialState::Master;
    let mut m = started(cfg);
    assert_eq!(m.state(), State::Master);
    let (rx, b) = v3("192.0.2.20", 100);
    m.handle_advert(ms(1000), &rx, &b).unwrap();
    assert_eq!(announces(&drain(&mut m)), vec![3], "a burst at once");
    // Another lower-priority advert 100 ms later: an advert, no new burst.
    m.handle_advert(ms(1100), &rx, &b).unwrap();
    let outs = drain(&mut m);
    assert!(matches!(outs[..], [Output::Transmit(_)]), "{outs:?}");
    // After a second, a burst again.
    m.handle_advert(ms(2000), &rx, &b).unwrap();
    assert_eq!(announces(&drain(&mut m)), vec![3]);
    // The delayed burst of the first one, 2 s after it.
    let mut delayed = Vec::new();
    let mut now = ms(2000);
    while now < ms(3500) {
        now = m.poll_timeout().unwrap();
        m.handle_timeout(now);
        if !announces(&drain(&mut m)).is_empty() {
            delayed.push(now);
        }
    }
    assert_eq!(delayed, vec![ms(3000)]);

    // garp_lower_prio_repeat 0: no announcement.
    let mut cfg = config(Version::V3, 200);
    cfg.garp.lower_prio_repeat = 0;
    cfg.initial_state = InitialState::Master;
    let mut m = started(cfg);
    m.handle_advert(ms(1000), &rx, &b).unwrap();
    assert!(announces(&drain(&mut m)).is_empty());
}

#[test]
fn reconfigure_in_place_keeps_the_state_and_never_sends_priority_zero() {
    let mut m = master(200);
    let before = m.statistics().transitions;
    // Priority 200 -> 150: a priority change, nothing else.
    let mut cfg = config(Version::V3, 150);
    m.reconfigure(ms(5000), cfg.clone()).unwrap();
    assert_eq!(m.state(), State::Master);
    let outs = drain(&mut m);
    assert_eq!(
        outs,
        vec![Output::PriorityChanged {
            from: Priority::new(200),
            to: Priority::new(150)
        }]
    );
    // A virtual address added and the old one removed: the master adds,
    // announces and removes exactly those.
    let extra = VirtualAddress::host(ip("192.0.2.101"));
    cfg.virtual_addresses = vec![extra];
    m.reconfigure(ms(5001), cfg.clone()).unwrap();
    let outs = drain(&mut m);
    assert_eq!(outs.len(), 3, "{outs:?}");
    assert!(removes_vip(&outs[0]));
    assert!(matches!(&outs[1], Output::AddAddresses { addresses, .. } if addresses[..] == [extra]));
    assert!(
        matches!(&outs[2], Output::Announce { addresses, count: 5, .. } if addresses[..] == [extra])
    );
    assert_eq!(m.statistics().transitions, before);
    assert_eq!(m.statistics().sent_pri_zero_packets, 0);
    // The next advertisement carries the new list.
    let t = m.poll_timeout().unwrap();
    m.handle_timeout(t);
    let Some(Output::Transmit(tx)) = m.poll_output() else {
        panic!("an advertisement");
    };
    let mut buf = [0u8; 64];
    let len = m.encode(&tx, &mut buf).unwrap();
    assert_eq!(&buf[8..len], &[192, 0, 2, 101]);
    // Another VRID is another virtual router.
    let other = InstanceConfig::new(Vrid::new(43).unwrap(), Version::V3, ip(ME));
    assert_eq!(
        m.reconfigure(ms(6000), other),
        Err(vrrp_core::ConfigError::IdentityChanged)
    );
}

#[test]
fn a_backup_reconfigured_to_owner_takes_over_at_once() {
    let mut b = started(config(Version::V3, 100));
    let mut cfg = config(Version::V3, 255);
    cfg.virtual_addresses = vec![VirtualAddress::host(ip(ME))];
    b.reconfigure(ms(10), cfg).unwrap();
    assert_eq!(b.state(), State::Master);
}

#[test]
fn a_healed_partition_is_re_announced_whichever_side_hears_first() {
    // Two masters after a partition: A (200, .10) and B (100, .20).
    fn pair() -> (Instance, Instance) {
        let mut a = config(Version::V3, 200);
        a.initial_state = InitialState::Master;
        let mut b = InstanceConfig::new(Vrid::new(42).unwrap(), Version::V3, ip("192.0.2.20"))
            .with_priority(Priority::new(100))
            .with_address(VirtualAddress::host(ip(VIP)));
        b.initial_state = InitialState::Master;
        (started(a), started(b))
    }
    /// Delivers every advertisement `from` has queued to `to`.
    fn deliver(now: Timestamp, from: &mut Instance, to: &mut Instance) -> usize {
        let mut n = 0;
        for o in drain(from) {
            if let Output::Transmit(t) = o {
                let mut buf = [0u8; 64];
                let len = from.encode(&t, &mut buf).unwrap();
                let rx = RxMeta {
                    src: from.config().primary_address,
                    dst: t.destination,
                    ttl: Some(255),
                };
                let _ = to.handle_advert(now, &rx, &buf[..len]);
                n += 1;
            }
        }
        n
    }
    for a_first in [true, false] {
        let (mut a, mut b) = pair();
        drain(&mut a);
        drain(&mut b);
        let now = ms(1000);
        if a_first {
            // A's advertisement reaches B first: B steps down, and its last
            // advertisement reaches A.
            a.handle_timeout(a.poll_timeout().unwrap());
            assert_eq!(deliver(now, &mut a, &mut b), 1);
            assert_eq!(b.state(), State::Backup);
            assert_eq!(deliver(now, &mut b, &mut a), 1, "B's last word");
        } else {
            b.handle_timeout(b.poll_timeout().unwrap());
            assert_eq!(deliver(now, &mut b, &mut a), 1);
        }
        let outs = drain(&mut a);
        assert!(
            outs.iter()
                .any(|o| matches!(o, Output::Announce { count: 5, .. })),
            "A re-announces ({a_first}): {outs:?}"
        );
        assert_eq!(a.state(), State::Master);
    }
}

#[test]
fn maintenance_leaves_master_with_priority_zero_and_stays_backup_until_cleared() {
    let mut m = master(100);
    m.set_maintenance(ms(9000), true);
    assert!(m.in_maintenance());
    let outs = drain(&mut m);
    assert!(matches!(
        outs[0],
        Output::StateChanged {
            from: State::Master,
            to: State::Backup,
            reason: Reason::Maintenance,
        }
    ));
    assert!(matches!(outs[1], Output::Transmit(t) if t.priority == Priority::STOP));
    assert!(removes_vip(&outs[2]), "{:?}", outs[2]);
    // No master anywhere for a long time: still Backup, no timer at all.
    assert_eq!(m.poll_timeout(), None);
    m.handle_timeout(ms(60_000));
    assert_eq!(m.state(), State::Backup);
    // A priority-0 advertisement from the master we follow does not tempt
    // it either.
    let (rx, b) = v3("192.0.2.20", 200);
    m.handle_advert(ms(61_000), &rx, &b).unwrap();
    let (rx, b) = v3("192.0.2.20", 0);
    m.handle_advert(ms(61_500), &rx, &b).unwrap();
    m.handle_timeout(ms(70_000));
    assert_eq!(m.state(), State::Backup);
    assert!(transitions(&drain(&mut m)).is_empty());
    // Cleared: Master_Down_Interval from now, then master.
    m.set_maintenance(ms(70_000), false);
    let deadline = m.poll_timeout().unwrap();
    assert_eq!(deadline, ms(70_000) + m.master_down_interval());
    m.handle_timeout(deadline);
    assert_eq!(m.state(), State::Master);
}

#[test]
fn maintenance_holds_back_an_owner_and_survives_a_fault_and_a_reconfigure() {
    let mut o = started(config(Version::V3, 255));
    assert_eq!(o.state(), State::Master);
    o.set_maintenance(ms(1000), true);
    drain(&mut o);
    assert_eq!(o.state(), State::Backup);
    // Reconfigured in place (a reload): still in maintenance.
    o.reconfigure(ms(2000), config(Version::V3, 255)).unwrap();
    assert_eq!(o.state(), State::Backup);
    // A fault and its end bring it back to Backup, not Master.
    o.track(ms(3000), TrackId(1), TrackConfig::weight(0), false);
    assert_eq!(o.state(), State::Fault);
    o.set_track_state(ms(4000), TrackId(1), true);
    assert_eq!(o.state(), State::Backup);
    assert!(o.in_maintenance());
    // Cleared, the owner takes over at once.
    o.set_maintenance(ms(5000), false);
    assert_eq!(o.state(), State::Master);
}

#[test]
fn a_sync_group_in_maintenance_leaves_master_member_by_member_with_priority_zero() {
    use vrrp_core::Router;
    let mut r = Router::new();
    let cfg = |vrid: u8| {
        InstanceConfig::new(Vrid::new(vrid).unwrap(), Version::V3, ip(ME))
            .with_priority(Priority::new(100))
            .with_address(VirtualAddress::host(ip(VIP)))
    };
    let a = r.add_instance(1, cfg(1)).unwrap();
    let b = r.add_instance(1, cfg(2)).unwrap();
    r.add_sync_group(&[a, b]).unwrap();
    r.handle_startup(Timestamp::ZERO);
    while r.poll_output().is_some() {}
    let t = r.poll_timeout().unwrap();
    r.handle_timeout(t);
    while r.poll_output().is_some() {}
    assert_eq!(r.instance(a).unwrap().state(), State::Master);
    assert_eq!(r.instance(b).unwrap().state(), State::Master);

    r.set_maintenance(ms(5000), &[a, b], true).unwrap();
    let outs: Vec<_> = std::iter::from_fn(|| r.poll_output()).collect();
    for id in [a, b] {
        let mine: Vec<&Output> = outs
            .iter()
            .filter(|(i, _)| *i == id)
            .map(|(_, o)| o)
            .collect();
        assert!(
            matches!(
                mine[0],
                Output::StateChanged {
                    to: State::Backup,
                    reason: Reason::Maintenance,
                    ..
                }
            ),
            "{mine:?}"
        );
        assert!(
            mine.iter()
                .any(|o| matches!(o, Output::Transmit(t) if t.priority == Priority::STOP)),
            "{mine:?}"
        );
    }
    // Nobody else: the group stays Backup.
    r.handle_timeout(ms(60_000));
    assert_eq!(r.instance(a).unwrap().state(), State::Backup);
    assert_eq!(r.instance(b).unwrap().state(), State::Backup);
    // An unknown id changes nothing.
    let ghost = vrrp_core::InstanceId(9);
    assert!(r.set_maintenance(ms(61_000), &[a, ghost], false).is_err());
    assert!(r.instance(a).unwrap().in_maintenance());
    r.set_maintenance(ms(61_000), &[a, b], false).unwrap();
    let t = r.poll_timeout().unwrap();
    r.handle_timeout(t);
    assert_eq!(r.instance(a).unwrap().state(), State::Master);
    assert_eq!(r.instance(b).unwrap().state(), State::Master);
}
