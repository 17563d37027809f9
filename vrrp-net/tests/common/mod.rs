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

type ReloadRequest = (
    vrrp_net::driver::DriverConfig,
    mpsc::Sender<Result<vrrp_net::driver::ReloadSummary, String>>,
);

/// A `vrrp_net::driver` running in a router namespace.
pub struct Node {
    pub cancel: tokio_util::sync::CancellationToken,
    kill: tokio_util::sync::CancellationToken,
    events: mpsc::Receiver<(std::time::Instant, vrrp_net::driver::StateEvent)>,
    /// Every event seen so far.
    pub seen: Vec<(std::time::Instant, vrrp_net::driver::StateEvent)>,
    snapshot: tokio::sync::watch::Receiver<vrrp_net::driver::Snapshot>,
    reloads: tokio::sync::mpsc::UnboundedSender<ReloadRequest>,
    task: NsTask<Result<()>>,
}

impl Node {
    /// Starts the driver with `config` inside `router`'s namespace and
    /// waits until it runs (or says why not).
    pub fn start(router: &Router, config: vrrp_net::driver::DriverConfig) -> Result<Node> {
        let cancel = tokio_util::sync::CancellationToken::new();
        let kill = tokio_util::sync::CancellationToken::new();
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let (reloads, mut reload_rx) = tokio::sync::mpsc::unbounded_channel::<ReloadRequest>();
        let (c, k) = (cancel.clone(), kill.clone());
        let task = router.spawn(move || async move {
            let handle = match vrrp_net::driver::spawn(config).await {
                Ok(h) => h,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return Err(e.into());
                }
            };
            let _ = ready_tx.send(Ok(handle.watch()));
            let mut events = handle.subscribe_from_start();
            loop {
                tokio::select! {
                    ev = events.recv() => match ev {
                        Ok(ev) => { let _ = tx.send((std::time::Instant::now(), ev)); }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(_) => break,
                    },
                    Some((config, reply)) = reload_rx.recv() => {
                        let _ = reply.send(handle.reconfigure(config).await.map_err(|e| e.to_string()));
                    }
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
        let snapshot = ready_rx
            .recv_timeout(STEP_TIMEOUT)
            .map_err(|e| anyhow!("driver did not start: {e}"))?
            .map_err(|e| anyhow!("driver did not start: {e}"))?;
        Ok(Node {
            cancel,
            kill,
            events: rx,
            seen: Vec::new(),
            snapshot,
            reloads,
            task,
        })
    }

    /// The driver's status now.
    pub fn snapshot(&self) -> vrrp_net::driver::Snapshot {
        self.snapshot.borrow().clone()
    }

    /// Reloads the driver with `config`.
    pub fn reload(
        &self,
        config: vrrp_net::driver::DriverConfig,
    ) -> Result<Result<vrrp_net::driver::ReloadSummary, String>> {
        let (tx, rx) = mpsc::channel();
        self.reloads
            .send((config, tx))
            .map_err(|_| anyhow!("driver task gone"))?;
        rx.recv_timeout(STEP_TIMEOUT)
            .map_err(|e| anyhow!("no reload answer: {e}"))
    }

    /// Waits until the status satisfies `f` (the snapshot is published on
    /// every change and every second).
    pub fn wait_snapshot(
        &self,
        what: &str,
        timeout: Duration,
        f: impl Fn(&vrrp_net::driver::Snapshot) -> bool,
    ) -> Result<vrrp_net::driver::Snapshot> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let snap = self.snapshot();
            if f(&snap) {
                return Ok(snap);
            }
            if std::time::Instant::now() > deadline {
                anyhow::bail!("{what}: not seen in {timeout:?}; status {snap:#?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The state of `instance` now.
    pub fn state(&self, instance: &str) -> Option<vrrp_core::State> {
        self.snapshot()
            .instances
            .iter()
            .find(|i| i.name == instance)
            .map(|i| i.state)
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

/// Polls `f` every 2 ms until it holds or `timeout` passes; returns how
/// long it took.
pub fn wait_until(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Result<bool>,
) -> Result<Duration> {
    let start = std::time::Instant::now();
    loop {
        if f()? {
            return Ok(start.elapsed());
        }
        if start.elapsed() > timeout {
            anyhow::bail!("{what}: not within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A fresh state file path for one test's driver (the directory is left
/// for the test to inspect; files are tiny).
pub fn state_file(test: &str) -> std::path::PathBuf {
    std::env::temp_dir()
        .join(format!("vrrp-net-test-{}", std::process::id()))
        .join(format!("{test}.owned"))
}

/// Sends `count` advertisements from `router`'s eth0 (its own address) for
/// `vrid` with `priority` and address list `vips`, `every` apart: a
/// spoofer, or a peer that is no VRRP implementation.
pub fn spawn_adverts(
    router: &Router,
    vrid: u8,
    priority: u8,
    vips: Vec<IpAddr>,
    count: usize,
    every: Duration,
) -> NsTask<Result<()>> {
    let src = IpAddr::V4(router.ipv4());
    router.spawn(move || async move {
        use vrrp_core::wire::{AdvertRepr, IpPair, MULTICAST_V4};
        let socket = VrrpSocket::open(&SocketConfig::new("eth0", Family::Ipv4).with_source(src))?;
        let dst = IpAddr::V4(MULTICAST_V4);
        let repr = AdvertRepr {
            version: vrrp_core::Version::V3,
            vrid: vrrp_core::Vrid::new(vrid).context("vrid")?,
            priority: vrrp_core::Priority::new(priority),
            interval: vrrp_core::Centisecs::new(10),
            auth: vrrp_core::Auth::None,
            addresses: vips.iter().copied(),
        };
        let mut buf = [0u8; 256];
        let len = repr
            .emit(&mut buf, &IpPair { src, dst }, vrrp_core::ChecksumMode::Rfc)
            .map_err(|e| anyhow!("{e}"))?;
        for _ in 0..count {
            socket.send_to(&buf[..len], dst).await?;
            tokio::time::sleep(every).await;
        }
        Ok(())
    })
}

/// Address events for one address in a namespace, with when they came.
pub struct AddressWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: NsTask<Result<Vec<(std::time::Instant, bool)>>>,
}

impl AddressWatch {
    /// Starts watching `addr` (added: true, removed: false) in `router`.
    pub fn start(router: &Router, addr: IpAddr) -> Result<AddressWatch> {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let s = stop.clone();
        let task = router.spawn(move || async move {
            let mut watcher = vrrp_net::link::LinkWatcher::new().await?;
            let _ = ready_tx.send(());
            let mut seen = Vec::new();
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                let next = tokio::time::timeout(Duration::from_millis(20), watcher.next()).await;
                let Ok(event) = next else { continue };
                match event? {
                    vrrp_net::link::LinkEvent::AddressAdded(a) if a.addr == addr => {
                        seen.push((std::time::Instant::now(), true));
                    }
                    vrrp_net::link::LinkEvent::AddressRemoved(a) if a.addr == addr => {
                        seen.push((std::time::Instant::now(), false));
                    }
                    _ => {}
                }
            }
            Ok(seen)
        });
        wait_ready(&ready_rx)?;
        Ok(AddressWatch { stop, task })
    }

    /// Stops and returns the events.
    pub fn finish(self) -> Result<Vec<(std::time::Instant, bool)>> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
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
