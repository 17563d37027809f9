//! Proves that `VrrpSocket` carries VRRP payloads between two namespaced
//! routers over multicast and unicast, IPv4 and IPv6, with the right
//! source, destination, interface and TTL 255, and the IPv4 header removed,
//! one datagram at a time or in `recvmmsg` batches.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::{Received, join, spawn_receiver, wait_ready};
use vrrp_net::socket::{Family, RECV_BATCH, RecvBatch, SocketConfig, VrrpSocket};
use vrrp_net::testnet::{Lan, Router};

/// A VRRPv3 advertisement, VRID 51, priority 100, one address, as the
/// engine would produce it (the checksum is not checked by the socket).
fn advert(vrid: u8, addr: IpAddr) -> Vec<u8> {
    let mut p = vec![0x31, vrid, 100, 1, 0x00, 100, 0xab, 0xcd];
    match addr {
        IpAddr::V4(a) => p.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => p.extend_from_slice(&a.octets()),
    }
    p
}

/// Sends `payload` to `dst` from `router` three times, 20 ms apart.
fn send_from(
    router: &Router,
    family: Family,
    source: IpAddr,
    payload: Vec<u8>,
    dst: IpAddr,
) -> Result<()> {
    let ifname = router.ifname().to_owned();
    join(router.spawn(move || async move {
        let config = SocketConfig::new(ifname, family).with_source(source);
        let socket = VrrpSocket::open(&config).context("open sender")?;
        for _ in 0..3 {
            socket.send_to(&payload, dst).await.context("send")?;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        ensure!(
            socket.stats().sent == 3,
            "sent counter {:?}",
            socket.stats()
        );
        Ok(())
    }))
}

fn exchange(family: Family, multicast: bool) -> Result<()> {
    let lan = Lan::new(2)?;
    let (r1, r2) = (lan.router(1)?, lan.router(2)?);
    let (source, dst) = match (family, multicast) {
        (Family::Ipv4, true) => (
            IpAddr::V4(r1.ipv4()),
            vrrp_core::wire::multicast_group(family),
        ),
        (Family::Ipv4, false) => (IpAddr::V4(r1.ipv4()), IpAddr::V4(r2.ipv4())),
        (_, true) => (
            IpAddr::V6(r1.link_local()),
            vrrp_core::wire::multicast_group(family),
        ),
        (_, false) => (IpAddr::V6(r1.ipv6()), IpAddr::V6(r2.ipv6())),
    };
    let payload = advert(51, source);
    let (receiver, ready) = spawn_receiver(r2, family, multicast, Duration::from_secs(3), |got| {
        !got.is_empty()
    })?;
    wait_ready(&ready)?;
    send_from(r1, family, source, payload.clone(), dst)?;
    let (ifindex, got) = join(receiver)?;
    let first = got.first().context("nothing received")?;
    assert_eq!(
        first,
        &Received {
            ifindex,
            src: source,
            dst,
            ttl: Some(255),
            payload,
        }
    );
    Ok(())
}

#[test]
fn ipv4_multicast_exchange() -> Result<()> {
    exchange(Family::Ipv4, true)
}

#[test]
fn ipv6_multicast_exchange() -> Result<()> {
    exchange(Family::Ipv6, true)
}

#[test]
fn ipv4_unicast_exchange_without_joining() -> Result<()> {
    exchange(Family::Ipv4, false)
}

#[test]
fn ipv6_unicast_exchange_without_joining() -> Result<()> {
    exchange(Family::Ipv6, false)
}

/// 255 advertisements in one `send_batch`, with a destination of the wrong
/// family in the middle: that one is reported, all the others arrive, in
/// order, with the right source, destination and TTL.
fn batch_exchange(family: Family) -> Result<()> {
    let lan = Lan::new(2)?;
    let (r1, r2) = (lan.router(1)?, lan.router(2)?);
    let (source, wrong) = match family {
        Family::Ipv4 => (
            IpAddr::V4(r1.ipv4()),
            vrrp_core::wire::multicast_group(Family::Ipv6),
        ),
        _ => (
            IpAddr::V6(r1.link_local()),
            vrrp_core::wire::multicast_group(Family::Ipv4),
        ),
    };
    let dst = vrrp_core::wire::multicast_group(family);
    let payloads: Vec<Vec<u8>> = (1..=255u8).map(|vrid| advert(vrid, source)).collect();
    let (receiver, ready) = spawn_receiver(r2, family, true, Duration::from_secs(5), |got| {
        got.len() >= 255
    })?;
    wait_ready(&ready)?;
    let ifname = r1.ifname().to_owned();
    let sent = payloads.clone();
    join(r1.spawn(move || async move {
        let config = SocketConfig::new(ifname, family).with_source(source);
        let socket = VrrpSocket::open(&config).context("open sender")?;
        let mut batch: Vec<(&[u8], IpAddr)> = sent.iter().map(|p| (p.as_slice(), dst)).collect();
        batch.insert(100, (&[0x31], wrong));
        let outcome = socket.send_batch(&batch).await;
        ensure!(outcome.sent == 255, "sent {}", outcome.sent);
        ensure!(outcome.errors.len() == 1, "errors {:?}", outcome.errors);
        ensure!(
            socket.stats().sent == 255 && socket.stats().send_errors == 1,
            "counters {:?}",
            socket.stats()
        );
        Ok(())
    }))?;
    let (ifindex, got) = join(receiver)?;
    ensure!(got.len() == 255, "received {}", got.len());
    for (got, payload) in got.iter().zip(payloads) {
        assert_eq!(
            got,
            &Received {
                ifindex,
                src: source,
                dst,
                ttl: Some(255),
                payload,
            }
        );
    }
    Ok(())
}

#[test]
fn ipv4_batch_of_255_in_one_call() -> Result<()> {
    batch_exchange(Family::Ipv4)
}

#[test]
fn ipv6_batch_of_255_in_one_call() -> Result<()> {
    batch_exchange(Family::Ipv6)
}

/// 100 advertisements queued on the receiver, then read with
/// `read_batch`: at most what was asked per call (and never more than
/// [`RECV_BATCH`]), all of them in order with their source, destination
/// and TTL, a short batch once the queue is empty, then nothing.
fn read_in_batches(family: Family) -> Result<()> {
    let lan = Lan::new(2)?;
    let (r1, r2) = (lan.router(1)?, lan.router(2)?);
    let source = match family {
        Family::Ipv4 => IpAddr::V4(r1.ipv4()),
        _ => IpAddr::V6(r1.link_local()),
    };
    let dst = vrrp_core::wire::multicast_group(family);
    let payloads: Vec<Vec<u8>> = (1..=100u8).map(|vrid| advert(vrid, source)).collect();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (sent_tx, sent_rx) = std::sync::mpsc::channel::<()>();
    let ifname = r2.ifname().to_owned();
    let receiver = r2.spawn(move || async move {
        let config = SocketConfig::new(ifname, family).with_multicast(true);
        let socket = VrrpSocket::open(&config).context("open receiver")?;
        ready_tx.send(()).context("test gone")?;
        tokio::task::spawn_blocking(move || sent_rx.recv())
            .await
            .context("join")?
            .context("sender gone")?;
        let mut batch = RecvBatch::new();
        let mut got = Vec::new();
        let mut calls = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        // The sender is done, but the last datagrams may still be on
        // their way through the bridge: read until all 100 are in.
        while got.len() < 100 && tokio::time::Instant::now() < deadline {
            let asked = if calls.is_empty() { 7 } else { 1000 };
            let n = socket
                .read_batch(&mut batch, asked, |p| {
                    got.push((p.src, p.dst, p.ttl, p.payload.to_vec()));
                })
                .context("read_batch")?;
            calls.push((asked, n));
            if n == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let after = socket
            .read_batch(&mut batch, RECV_BATCH, |_| {})
            .context("read_batch on an empty queue")?;
        Ok::<_, anyhow::Error>((got, calls, after, socket.stats().received))
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .context("receiver not ready")?;
    let ifname = r1.ifname().to_owned();
    let sent = payloads.clone();
    join(r1.spawn(move || async move {
        let config = SocketConfig::new(ifname, family).with_source(source);
        let socket = VrrpSocket::open(&config).context("open sender")?;
        let batch: Vec<(&[u8], IpAddr)> = sent.iter().map(|p| (p.as_slice(), dst)).collect();
        let outcome = socket.send_batch(&batch).await;
        ensure!(outcome.sent == 100, "sent {}", outcome.sent);
        Ok(())
    }))?;
    sent_tx.send(()).context("receiver gone")?;
    let (got, calls, after, counted) = join(receiver)?;
    ensure!(
        got.len() == 100,
        "received {} in calls {calls:?}",
        got.len()
    );
    ensure!(calls[0] == (7, 7), "the first call asked for 7: {calls:?}");
    ensure!(
        calls.iter().all(|&(asked, n)| n <= asked.min(RECV_BATCH)),
        "a call took more than asked or than a batch: {calls:?}"
    );
    ensure!(
        calls.iter().any(|&(_, n)| n == RECV_BATCH),
        "no full batch: {calls:?}"
    );
    ensure!(after == 0, "an empty queue gave {after}");
    ensure!(counted == 100, "counted {counted}");
    for (i, (got, payload)) in got.iter().zip(payloads).enumerate() {
        ensure!(
            *got == (source, dst, Some(255), payload),
            "datagram {i}: {got:?}"
        );
    }
    Ok(())
}

#[test]
fn ipv4_read_in_batches() -> Result<()> {
    read_in_batches(Family::Ipv4)
}

#[test]
fn ipv6_read_in_batches() -> Result<()> {
    read_in_batches(Family::Ipv6)
}

#[test]
fn family_mismatch_and_missing_interface_are_errors() -> Result<()> {
    let lan = Lan::new(1)?;
    let r1 = lan.router(1)?;
    join(r1.spawn(|| async {
        let missing = VrrpSocket::open(&SocketConfig::new("nosuch0", Family::Ipv4));
        ensure!(missing.is_err(), "opened a socket on a missing interface");
        let socket = VrrpSocket::open(&SocketConfig::new("eth0", Family::Ipv4))?;
        let wrong = socket
            .send_to(&[0x31], vrrp_core::wire::multicast_group(Family::Ipv6))
            .await;
        ensure!(wrong.is_err(), "sent to an IPv6 address on an IPv4 socket");
        let wrong_source =
            SocketConfig::new("eth0", Family::Ipv4).with_source("2001:db8::1".parse()?);
        ensure!(
            VrrpSocket::open(&wrong_source).is_err(),
            "an IPv6 source on an IPv4 socket"
        );
        Ok(())
    }))
}

#[test]
fn opening_outside_a_runtime_is_an_error_not_a_panic() {
    let result = VrrpSocket::open(&SocketConfig::new("lo", Family::Ipv4));
    assert!(result.is_err());
}
