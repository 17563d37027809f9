//! keepalived's `down_timer_adverts`: a backup's Master_Down_Interval is
//! N advertisement intervals plus Skew_Time (RFC 5798 6.1 has N = 3): the
//! backup takes over exactly then after the master's last advertisement,
//! and not a nanosecond before; 0 counts as 1.

#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::time::Duration;

use vrrp_core::wire::{AdvertRepr, IpPair, MULTICAST_V4};
use vrrp_core::{
    Auth, Centisecs, ChecksumMode, Instance, InstanceConfig, Priority, RxMeta, State, Timestamp,
    Version, VirtualAddress, Vrid,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn backup(adverts: u8) -> Instance {
    let config = InstanceConfig::v3(Vrid::new(42).unwrap())
        .primary_address(ip("192.0.2.10"))
        .virtual_address(VirtualAddress::host(ip("192.0.2.100")))
        .advert_interval(Centisecs::new(10))
        .priority(Priority::new(100))
        .down_timer_adverts(adverts)
        .build()
        .unwrap();
    let mut i = Instance::new(config).unwrap();
    i.handle_startup(Timestamp::ZERO);
    while i.poll_output().is_some() {}
    i
}

/// The master's advertisement (priority 200, 100 ms) at `at`.
fn hear_master(i: &mut Instance, at: Timestamp) {
    let (src, dst) = (ip("192.0.2.20"), IpAddr::V4(MULTICAST_V4));
    let repr = AdvertRepr {
        version: Version::V3,
        vrid: Vrid::new(42).unwrap(),
        priority: Priority::new(200),
        interval: Centisecs::new(10),
        auth: Auth::None,
        addresses: [ip("192.0.2.100")].into_iter(),
    };
    let mut buf = [0u8; 64];
    let len = repr
        .emit(&mut buf, &IpPair { src, dst }, ChecksumMode::Rfc)
        .unwrap();
    let meta = RxMeta {
        src,
        dst,
        ttl: Some(255),
    };
    i.handle_advert(at, &meta, &buf[..len]).unwrap();
    while i.poll_output().is_some() {}
}

#[test]
fn the_backup_waits_down_timer_adverts_intervals_plus_skew() {
    // Skew_Time at priority 100 and 100 ms: 156 * 100 ms / 256.
    let skew = Duration::from_nanos(60_937_500);
    for (n, waits) in [(1u8, 100u64), (3, 300), (5, 500), (100, 10_000), (0, 100)] {
        let mut i = backup(n);
        assert_eq!(
            i.master_down_interval(),
            Duration::from_millis(waits) + skew,
            "down_timer_adverts {n}"
        );
        let last = Timestamp::from_millis(1_000);
        hear_master(&mut i, Timestamp::from_millis(900));
        hear_master(&mut i, last);
        let deadline = last + Duration::from_millis(waits) + skew;
        i.handle_timeout(deadline - Duration::from_nanos(1));
        assert_eq!(i.state(), State::Backup, "down_timer_adverts {n}: early");
        i.handle_timeout(deadline);
        assert_eq!(i.state(), State::Master, "down_timer_adverts {n}: due");
    }
}
