//! Helpers shared by the integration tests (each test file includes this
//! module and uses part of it).
#![allow(dead_code)]

use std::net::IpAddr;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use vrrp_net::socket::{Family, RECV_BUFFER_LEN, SocketConfig, VrrpSocket};
use vrrp_net::testnet::{NsTask, Router};

/// How long any single wait in a test may take.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(5);

/// A received packet, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub ifindex: u32,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ttl: Option<u8>,
    pub payload: Vec<u8>,
}

/// The receiver thread: the ifindex of eth0 and the packets collected.
pub type ReceiverTask = NsTask<Result<(u32, Vec<Received>)>>;

/// Opens a VRRP socket on `router`'s eth0 and collects packets until
/// `done` says so or `timeout` passes. `ready` is signalled once the socket
/// is open. Also returns the ifindex of eth0 as seen in the namespace.
pub fn spawn_receiver(
    router: &Router,
    family: Family,
    join_multicast: bool,
    timeout: Duration,
    done: impl Fn(&[Received]) -> bool + Send + 'static,
) -> Result<(ReceiverTask, mpsc::Receiver<()>)> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let ifname = router.ifname().to_owned();
    let task = router.spawn(move || async move {
        let config = SocketConfig::new(ifname, family).with_multicast(join_multicast);
        let socket = VrrpSocket::open(&config).context("open receiver")?;
        let ifindex = socket.ifindex();
        ready_tx.send(()).map_err(|_| anyhow!("test gone"))?;
        let mut got = Vec::new();
        let mut buf = vec![0; RECV_BUFFER_LEN];
        let deadline = tokio::time::Instant::now() + timeout;
        while !done(&got) {
            let packet = tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await;
            let Ok(packet) = packet else {
                break;
            };
            let packet = packet.context("recv")?;
            got.push(Received {
                ifindex: packet.ifindex,
                src: packet.src,
                dst: packet.dst,
                ttl: packet.ttl,
                payload: packet.payload.to_vec(),
            });
        }
        Ok((ifindex, got))
    });
    Ok((task, ready_rx))
}

/// Waits for a readiness signal.
pub fn wait_ready(rx: &mpsc::Receiver<()>) -> Result<()> {
    rx.recv_timeout(STEP_TIMEOUT)
        .map_err(|e| anyhow!("receiver not ready: {e}"))
}

/// Flattens a namespace task result.
pub fn join<T>(task: NsTask<Result<T>>) -> Result<T> {
    task.join().map_err(|e| anyhow!("{e}"))?
}

/// What the observer saw on the wire, with when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wire {
    /// A VRRP advertisement.
    Advert {
        src: IpAddr,
        vrid: u8,
        priority: u8,
        version: u8,
    },
    /// A gratuitous ARP for an address.
    Arp(IpAddr),
    /// An unsolicited neighbour advertisement for an address.
    Na(IpAddr),
}

/// The capture thread: frames with their kernel arrival times.
pub type CaptureTask = NsTask<Result<Vec<(std::time::Instant, Wire)>>>;

/// Frames captured on a router's eth0 (AF_PACKET, every protocol), with
/// their arrival time, until `stop` is set.
pub fn spawn_capture(
    router: &Router,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<(CaptureTask, mpsc::Receiver<()>)> {
    use std::sync::atomic::Ordering;
    let (ready_tx, ready_rx) = mpsc::channel();
    let task = router.spawn(move || async move {
        use etherparse::{Icmpv6Type, NetSlice, SlicedPacket, TransportSlice};
        use socket2::{Domain, Protocol, Socket, Type};
        let eth_p_all = i32::from((libc::ETH_P_ALL as u16).to_be());
        use std::os::fd::AsRawFd as _;
        let socket = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(eth_p_all)))?;
        socket.set_read_timeout(Some(Duration::from_millis(20)))?;
        // Kernel receive timestamps: the test thread may be scheduled late
        // on a busy machine, the kernel's clock is not.
        nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::ReceiveTimestampns, &true)?;
        ready_tx.send(()).map_err(|_| anyhow!("test gone"))?;
        let mut seen = Vec::new();
        let mut buf = [0u8; 9000];
        // Map the kernel's CLOCK_REALTIME stamps onto Instants.
        let (base_instant, base_real) = (std::time::Instant::now(), std::time::SystemTime::now());
        while !stop.load(Ordering::Relaxed) {
            let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
            let mut iov = [std::io::IoSliceMut::new(&mut buf)];
            let Ok(msg) = nix::sys::socket::recvmsg::<()>(socket.as_raw_fd(), &mut iov, Some(&mut cmsg), nix::sys::socket::MsgFlags::empty()) else {
                continue;
            };
            let n = msg.bytes;
            let mut at = std::time::Instant::now();
            for c in msg.cmsgs().into_iter().flatten() {
                if let nix::sys::socket::ControlMessageOwned::ScmTimestampns(ts) = c {
                    let real = std::time::UNIX_EPOCH + Duration::from(ts);
                    at = match real.duration_since(base_real) {
                        Ok(d) => base_instant + d,
                        Err(e) => base_instant - e.duration(),
                    };
                }
            }
            let frame = buf.get(..n).unwrap_or_default();
            let Ok(p) = SlicedPacket::from_ethernet(frame) else { continue };
            let wire = match (&p.net, &p.transport) {
                (Some(NetSlice::Arp(arp)), _) => {
                    let spa: [u8; 4] = arp.sender_protocol_addr().try_into().unwrap_or([0; 4]);
                    let tpa: [u8; 4] = arp.target_protocol_addr().try_into().unwrap_or([1; 4]);
                    if spa != tpa {
                        continue;
                    }
                    Wire::Arp(IpAddr::from(spa))
                }
                (Some(NetSlice::Ipv4(ip)), _) if ip.header().protocol().0 == 112 => {
                    let pl = ip.payload().payload;
                    if pl.len() < 4 {
                        continue;
                    }
                    Wire::Advert { src: ip.header().source_addr().into(), vrid: pl[1], priority: pl[2], version: pl[0] >> 4 }
                }
                (Some(NetSlice::Ipv6(ip)), Some(TransportSlice::Icmpv6(icmp))) => {
                    if !matches!(icmp.icmp_type(), Icmpv6Type::NeighborAdvertisement(f) if !f.solicited) {
                        continue;
                    }
                    let _ = ip;
                    let target: [u8; 16] = icmp.payload().get(..16).and_then(|s| s.try_into().ok()).unwrap_or([0; 16]);
                    Wire::Na(IpAddr::from(target))
                }
                (Some(NetSlice::Ipv6(ip)), _) if ip.payload().ip_number.0 == 112 => {
                    let pl = ip.payload().payload;
                    if pl.len() < 4 {
                        continue;
                    }
                    Wire::Advert { src: ip.header().source_addr().into(), vrid: pl[1], priority: pl[2], version: pl[0] >> 4 }
                }
                _ => continue,
            };
            seen.push((at, wire));
        }
        Ok(seen)
    });
    Ok((task, ready_rx))
}

/// A `vrrp_net::driver` running in a router namespace.
pub struct Node {
    pub cancel: tokio_util::sync::CancellationToken,
    kill: tokio_util::sync::CancellationToken,
    events: mpsc::Receiver<(std::time::Instant, vrrp_net::driver::StateEvent)>,
    /// Every event seen so far.
    pub seen: Vec<(std::time::Instant, vrrp_net::driver::StateEvent)>,
    task: NsTask<Result<()>>,
}

impl Node {
    /// Starts the driver with `config` inside `router`'s namespace.
    pub fn start(router: &Router, config: vrrp_net::driver::DriverConfig) -> Result<Node> {
        let cancel = tokio_util::sync::CancellationToken::new();
        let kill = tokio_util::sync::CancellationToken::new();
        let (tx, rx) = mpsc::channel();
        let (c, k) = (cancel.clone(), kill.clone());
        let task = router.spawn(move || async move {
            let handle = vrrp_net::driver::spawn(config).await?;
            let mut events = handle.subscribe_from_start();
            loop {
                tokio::select! {
                    ev = events.recv() => match ev {
                        Ok(ev) => { let _ = tx.send((std::time::Instant::now(), ev)); }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(_) => break,
                    },
                    () = c.cancelled() => {
                        handle.shutdown().await?;
                        return Ok(());
                    }
                    () = k.cancelled() => {
                        handle.abort().await;
                        return Ok(());
                    }
                }
            }
            Ok(())
        });
        Ok(Node {
            cancel,
            kill,
            events: rx,
            seen: Vec::new(),
            task,
        })
    }

    /// Waits until `instance` enters `state`; returns when (in the test's
    /// clock). Looks at events already seen first.
    pub fn wait_state(
        &mut self,
        instance: &str,
        state: vrrp_core::State,
        timeout: Duration,
    ) -> Result<std::time::Instant> {
        if let Some((at, _)) = self
            .seen
            .iter()
            .rev()
            .find(|(_, e)| e.instance == instance)
            .filter(|(_, e)| e.to == state)
        {
            return Ok(*at);
        }
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let (at, ev) = self.events.recv_timeout(left).map_err(|_| {
                anyhow!(
                    "{instance} did not reach {state} in {timeout:?}; saw {:?}",
                    self.seen
                )
            })?;
            self.seen.push((at, ev.clone()));
            if ev.instance == instance && ev.to == state {
                return Ok(at);
            }
        }
    }

    /// Collects events that arrived meanwhile.
    pub fn poll(&mut self) {
        while let Ok(e) = self.events.try_recv() {
            self.seen.push(e);
        }
    }

    /// Graceful stop.
    pub fn stop(mut self) -> Result<Vec<(std::time::Instant, vrrp_net::driver::StateEvent)>> {
        self.cancel.cancel();
        join(self.task)?;
        self.seen.extend(self.events.try_iter());
        Ok(self.seen)
    }

    /// Crash: no priority 0, addresses left behind.
    pub fn kill(self) -> Result<()> {
        self.kill.cancel();
        join(self.task)
    }
}

/// Whether `addr` is configured in the router's namespace.
pub fn has_address(router: &Router, addr: &str) -> Result<bool> {
    let out = router.addresses().map_err(|e| anyhow!("{e}"))?;
    Ok(out
        .split_whitespace()
        .any(|w| w.split('/').next() == Some(addr)))
}
