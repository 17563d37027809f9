//! Pure parsing of a received datagram: where the VRRP payload lies (the
//! IPv4 header stripped) and what the IP layer said about it.

use std::net::IpAddr;

use etherparse::{IpNumber, Ipv4HeaderSlice};
use vrrp_core::wire::IP_PROTOCOL as VRRP_PROTOCOL;

use super::Family;
use super::cmsg::RawMeta;

/// Works out where the VRRP payload lies in `buf` and the packet's
/// addresses, or `None` if the packet is malformed.
pub(super) fn parse_datagram(
    family: Family,
    default_ifindex: u32,
    meta: &RawMeta,
    buf: &[u8],
) -> Option<(std::ops::Range<usize>, Header)> {
    let data = buf.get(..meta.len)?;
    let ifindex = meta.ifindex.unwrap_or(default_ifindex);
    match family {
        Family::Ipv4 => {
            let ip = Ipv4HeaderSlice::from_slice(data).ok()?;
            if ip.protocol() != IpNumber(VRRP_PROTOCOL) {
                return None;
            }
            let header_len = ip.slice().len();
            // The kernel reassembles fragments before raw delivery, so
            // total length bounds the payload; never trust it beyond
            // what was received.
            let end = usize::from(ip.total_len()).min(data.len());
            if end < header_len {
                return None;
            }
            let header = Header {
                ifindex,
                src: IpAddr::V4(ip.source_addr()),
                dst: IpAddr::V4(ip.destination_addr()),
                ttl: meta.ttl.or(Some(ip.ttl())),
            };
            Some((header_len..end, header))
        }
        _ => {
            let header = Header {
                ifindex,
                src: meta.src?,
                dst: meta.pktinfo_dst?,
                ttl: meta.ttl,
            };
            Some((0..data.len(), header))
        }
    }
}

/// [`parse_datagram`] for the fuzz targets, with the metadata `recvmsg`
/// reports as plain values.
#[cfg(feature = "fuzzing")]
pub(crate) fn parse_datagram_for_fuzzing(
    family: Family,
    default_ifindex: u32,
    meta: &crate::fuzzing::DatagramMeta,
    buf: &[u8],
) -> Option<crate::fuzzing::ParsedDatagram> {
    let raw = RawMeta {
        len: meta.len,
        truncated: false,
        src: meta.src,
        pktinfo_dst: meta.pktinfo_dst,
        ifindex: meta.ifindex,
        ttl: meta.ttl,
        received: None,
        kernel_drops: None,
    };
    parse_datagram(family, default_ifindex, &raw, buf).map(|(payload, h)| {
        crate::fuzzing::ParsedDatagram {
            payload,
            ifindex: h.ifindex,
            src: h.src,
            dst: h.dst,
            ttl: h.ttl,
        }
    })
}

/// What the IP layer said about a datagram.
pub(super) struct Header {
    pub(super) ifindex: u32,
    pub(super) src: IpAddr,
    pub(super) dst: IpAddr,
    pub(super) ttl: Option<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use vrrp_core::wire::MULTICAST_V4 as VRRP_MULTICAST_V4;

    fn meta(len: usize) -> RawMeta {
        RawMeta {
            len,
            truncated: false,
            src: None,
            pktinfo_dst: None,
            ifindex: Some(4),
            ttl: None,
            received: None,
            kernel_drops: None,
        }
    }

    fn ipv4_packet(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let header = etherparse::Ipv4Header::new(
            u16::try_from(payload.len()).unwrap_or(0),
            255,
            IpNumber(VRRP_PROTOCOL),
            [192, 0, 2, 1],
            [224, 0, 0, 18],
        );
        if let Ok(header) = header {
            let _ = header.write(&mut out);
        }
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn ipv4_header_is_stripped() {
        let packet = ipv4_packet(&[0x31, 1, 2, 3]);
        let parsed = parse_datagram(Family::Ipv4, 9, &meta(packet.len()), &packet);
        let Some((range, header)) = parsed else {
            panic!("valid packet rejected");
        };
        assert_eq!(packet.get(range), Some(&[0x31, 1, 2, 3][..]));
        assert_eq!(header.ifindex, 4);
        assert_eq!(header.ttl, Some(255));
        assert_eq!(header.src, IpAddr::from([192, 0, 2, 1]));
        assert_eq!(header.dst, IpAddr::V4(VRRP_MULTICAST_V4));
    }

    #[test]
    fn garbage_never_panics() {
        let packet = ipv4_packet(&[0x31, 1, 2, 3]);
        for cut in 0..packet.len() {
            let _ = parse_datagram(Family::Ipv4, 1, &meta(cut), &packet);
        }
        // Length beyond the buffer, wrong protocol, short header length.
        assert!(parse_datagram(Family::Ipv4, 1, &meta(999), &packet).is_none());
        let mut other = packet.clone();
        other[9] = 6;
        assert!(parse_datagram(Family::Ipv4, 1, &meta(other.len()), &other).is_none());
        let mut short = packet.clone();
        short[0] = 0x41;
        assert!(parse_datagram(Family::Ipv4, 1, &meta(short.len()), &short).is_none());
        let mut seed = 0x1234_5678_u32;
        for len in 0..64 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    seed.to_be_bytes()[0]
                })
                .collect();
            let _ = parse_datagram(Family::Ipv4, 1, &meta(len), &bytes);
            let _ = parse_datagram(Family::Ipv6, 1, &meta(len), &bytes);
        }
        // IPv6 without the destination from IPV6_PKTINFO is dropped.
        assert!(parse_datagram(Family::Ipv6, 1, &meta(4), &[0x31, 1, 2, 3]).is_none());
    }
}
