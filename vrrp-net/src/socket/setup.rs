//! Socket options per family: TTL / hop limit 255, multicast loop off,
//! the group joined (or not), packet info and TTL of every packet.

use nix::sys::socket::{self, sockopt};
use socket2::{InterfaceIndexOrAddress, Socket};
use vrrp_core::wire::{
    MULTICAST_V4 as VRRP_MULTICAST_V4, MULTICAST_V6 as VRRP_MULTICAST_V6, REQUIRED_TTL as VRRP_TTL,
};

use super::SocketError;

pub(super) fn configure_v4(socket: &Socket, ifindex: u32, join: bool) -> Result<(), SocketError> {
    let ttl = u32::from(VRRP_TTL);
    socket
        .set_ttl_v4(ttl)
        .map_err(SocketError::setup("IP_TTL"))?;
    socket
        .set_multicast_ttl_v4(ttl)
        .map_err(SocketError::setup("IP_MULTICAST_TTL"))?;
    socket
        .set_multicast_loop_v4(false)
        .map_err(SocketError::setup("IP_MULTICAST_LOOP"))?;
    // Internetwork control precedence, as keepalived sends.
    socket
        .set_tos_v4(0xc0)
        .map_err(SocketError::setup("IP_TOS"))?;
    // The outgoing interface is fixed by SO_BINDTODEVICE and by the
    // `ipi_ifindex` of every send, so IP_MULTICAST_IF is not needed.
    // Only groups this socket joined, on this interface.
    socket
        .set_multicast_all_v4(false)
        .map_err(SocketError::setup("IP_MULTICAST_ALL"))?;
    socket::setsockopt(socket, sockopt::Ipv4PacketInfo, &true).map_err(|e| SocketError::Setup {
        what: "IP_PKTINFO",
        error: e.into(),
    })?;
    socket::setsockopt(socket, sockopt::Ipv4RecvTtl, &true).map_err(|e| SocketError::Setup {
        what: "IP_RECVTTL",
        error: e.into(),
    })?;
    if join {
        socket
            .join_multicast_v4_n(&VRRP_MULTICAST_V4, &InterfaceIndexOrAddress::Index(ifindex))
            .map_err(SocketError::setup("IP_ADD_MEMBERSHIP 224.0.0.18"))?;
    }
    Ok(())
}

pub(super) fn configure_v6(socket: &Socket, ifindex: u32, join: bool) -> Result<(), SocketError> {
    let hops = u32::from(VRRP_TTL);
    socket
        .set_unicast_hops_v6(hops)
        .map_err(SocketError::setup("IPV6_UNICAST_HOPS"))?;
    socket
        .set_multicast_hops_v6(hops)
        .map_err(SocketError::setup("IPV6_MULTICAST_HOPS"))?;
    socket
        .set_multicast_loop_v6(false)
        .map_err(SocketError::setup("IPV6_MULTICAST_LOOP"))?;
    socket
        .set_tclass_v6(0xc0)
        .map_err(SocketError::setup("IPV6_TCLASS"))?;
    socket
        .set_multicast_if_v6(ifindex)
        .map_err(SocketError::setup("IPV6_MULTICAST_IF"))?;
    // IPV6_MULTICAST_ALL appeared in Linux 4.20; older kernels deliver every
    // joined group, which the device binding already narrows enough.
    if let Err(err) = socket.set_multicast_all_v6(false) {
        tracing::debug!(%err, "IPV6_MULTICAST_ALL not supported");
    }
    socket::setsockopt(socket, sockopt::Ipv6RecvPacketInfo, &true).map_err(|e| {
        SocketError::Setup {
            what: "IPV6_RECVPKTINFO",
            error: e.into(),
        }
    })?;
    socket::setsockopt(socket, sockopt::Ipv6RecvHopLimit, &true).map_err(|e| {
        SocketError::Setup {
            what: "IPV6_RECVHOPLIMIT",
            error: e.into(),
        }
    })?;
    if join {
        socket
            .join_multicast_v6(&VRRP_MULTICAST_V6, ifindex)
            .map_err(SocketError::setup("IPV6_JOIN_GROUP ff02::12"))?;
    }
    Ok(())
}
