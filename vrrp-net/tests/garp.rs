//! Proves `AnnounceSocket`: a gratuitous ARP and an unsolicited neighbour
//! advertisement sent by one router are captured on its neighbour with an
//! AF_PACKET socket, and parse as what RFC 5798 6.4.2 / RFC 4861 7.2.6 ask.

mod common;

use std::io::Read as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use common::{join, wait_ready};
use etherparse::{ArpOperation, Icmpv6Type, NetSlice, SlicedPacket, TransportSlice};
use socket2::{Domain, Protocol, Socket, Type};
use vrrp_net::garp::{ALL_NODES, AnnounceSocket};
use vrrp_net::link::link_by_name;
use vrrp_net::testnet::Lan;

/// Operation, Ethernet destination and source, sender and target IPv4.
type ArpSeen = (ArpOperation, [u8; 6], [u8; 6], Ipv4Addr, Ipv4Addr);
/// Override-and-not-solicited, checksum valid, IPv6 destination, target,
/// hop limit, options, Ethernet source.
type NaSeen = (bool, bool, Ipv6Addr, Ipv6Addr, u8, Vec<u8>, [u8; 6]);

#[derive(Debug, Default)]
struct Seen {
    arp: Option<ArpSeen>,
    na: Option<NaSeen>,
}

fn inspect(frame: &[u8], vip4: Ipv4Addr, vip6: Ipv6Addr, seen: &mut Seen) {
    let Ok(packet) = SlicedPacket::from_ethernet(frame) else {
        return;
    };
    let eth_src: [u8; 6] = frame
        .get(6..12)
        .and_then(|s| s.try_into().ok())
        .unwrap_or([0; 6]);
    let eth_dst: [u8; 6] = frame
        .get(..6)
        .and_then(|s| s.try_into().ok())
        .unwrap_or([0; 6]);
    match (&packet.net, &packet.transport) {
        (Some(NetSlice::Arp(arp)), _) => {
            let spa: [u8; 4] = arp.sender_protocol_addr().try_into().unwrap_or([0; 4]);
            let tpa: [u8; 4] = arp.target_protocol_addr().try_into().unwrap_or([0; 4]);
            if Ipv4Addr::from(spa) == vip4 {
                seen.arp = Some((arp.operation(), eth_dst, eth_src, spa.into(), tpa.into()));
            }
        }
        (Some(NetSlice::Ipv6(ip)), Some(TransportSlice::Icmpv6(icmp))) => {
            let Icmpv6Type::NeighborAdvertisement(flags) = icmp.icmp_type() else {
                return;
            };
            let header = ip.header();
            let target: [u8; 16] = icmp
                .payload()
                .get(..16)
                .and_then(|s| s.try_into().ok())
                .unwrap_or([0; 16]);
            if Ipv6Addr::from(target) != vip6 {
                return;
            }
            let checksum_ok = icmp.is_checksum_valid(header.source(), header.destination());
            seen.na = Some((
                flags.r#override && !flags.solicited,
                checksum_ok,
                header.destination_addr(),
                Ipv6Addr::from(target),
                header.hop_limit(),
                icmp.payload().get(16..).unwrap_or_default().to_vec(),
                eth_src,
            ));
        }
        _ => {}
    }
}

#[test]
fn gratuitous_arp_and_unsolicited_na_are_captured_by_the_neighbour() -> Result<()> {
    let lan = Lan::new(2)?;
    let (r1, r2) = (lan.router(1)?, lan.router(2)?);
    let mac = r1.mac();
    let vip4 = Ipv4Addr::new(192, 0, 2, 100);
    let vip6: Ipv6Addr = "2001:db8::100".parse()?;

    let (ready_tx, ready_rx) = mpsc::channel();
    let capture = r2.spawn(move || async move {
        let eth_p_all = i32::from((libc::ETH_P_ALL as u16).to_be());
        let socket = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(eth_p_all)))?;
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
        ready_tx.send(()).map_err(|_| anyhow!("test gone"))?;
        let mut seen = Seen::default();
        let mut buf = [0u8; 2048];
        let deadline = Instant::now() + Duration::from_secs(3);
        while (seen.arp.is_none() || seen.na.is_none()) && Instant::now() < deadline {
            let Ok(n) = (&socket).read(&mut buf) else {
                continue;
            };
            inspect(buf.get(..n).unwrap_or_default(), vip4, vip6, &mut seen);
        }
        Ok(seen)
    });
    wait_ready(&ready_rx)?;

    join(r1.spawn(move || async move {
        let link = link_by_name("eth0").await?.context("eth0")?;
        ensure!(link.mac == Some(mac), "mac {:?}", link.mac);
        let sender = AnnounceSocket::open(link.ifindex, mac)?;
        for _ in 0..3 {
            sender
                .announce_all(&[IpAddr::V4(vip4), IpAddr::V6(vip6)])
                .await?;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }))?;

    let seen = join(capture)?;
    let arp = seen.arp.context("no gratuitous ARP captured")?;
    assert_eq!(arp, (ArpOperation::REQUEST, [0xff; 6], mac, vip4, vip4));
    let na = seen.na.context("no neighbour advertisement captured")?;
    let mut option = vec![2, 1];
    option.extend_from_slice(&mac);
    assert_eq!(na, (true, true, ALL_NODES, vip6, 255, option, mac));
    Ok(())
}
