//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`): the
//! code that judges what a checked server sent, without the sockets. Not
//! a public API: each function is a thin adapter over one internal one.

use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::{ConfigError, DownReason};
use crate::probe::icmp::{Expected, SocketKind, Verdict};
use crate::probe::{DnsCheck, HttpCheck, UdpCheck, dns, http, smtp, udp};
use crate::schedule::ProbeResult;

/// One GET exchanged over `stream` (which plays the server) and judged as
/// [`crate::Probe::Http`] judges it: status, then digest when one is set.
///
/// # Errors
/// The check's configuration is invalid.
pub async fn http_exchange<S>(check: &HttpCheck, stream: S) -> Result<ProbeResult, ConfigError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let prepared = http::PreparedHttp::new(check)?;
    Ok(
        match prepared.exchange(stream, check.digest.is_some()).await {
            Ok(outcome) => prepared.judge(outcome),
            Err(reason) => Err(reason),
        },
    )
}

/// The verdict on one datagram received by a DNS check that sent query
/// `id`; `None` if it is not an answer to that query.
///
/// # Errors
/// The check's configuration is invalid.
pub fn dns_reply(
    check: &DnsCheck,
    id: u16,
    reply: &[u8],
) -> Result<Option<ProbeResult>, ConfigError> {
    Ok(dns::PreparedDns::new(check)?.on_datagram(id, reply))
}

/// The SMTP reply code once `buf` holds a complete reply, the offending
/// line if it is not a reply, `None` while more bytes are needed.
pub fn smtp_reply_code(buf: &[u8]) -> Option<Result<u16, String>> {
    smtp::complete_reply_code(buf)
}

/// Reads one SMTP reply from `stream` and checks that its code is `code`.
///
/// # Errors
/// Why the check would be down.
pub async fn smtp_expect_reply(
    stream: &mut (impl AsyncRead + Unpin),
    code: u16,
) -> Result<(), DownReason> {
    smtp::expect_reply(stream, code, "reply").await
}

/// What an ICMP check makes of one received packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpVerdict {
    /// The echo reply to our request.
    Reply,
    /// An ICMP error quoting our request.
    Error {
        /// ICMP type.
        icmp_type: u8,
        /// ICMP code.
        code: u8,
    },
    /// Anything else: ignored.
    Unrelated,
}

/// Classifies `packet` for an echo request `ident`/`sequence`/`payload`
/// sent over IPv4 (`v4`) or IPv6 on a raw socket (`raw_socket`, where IPv4
/// packets carry their IP header) or a ping socket.
pub fn icmp_classify(
    v4: bool,
    raw_socket: bool,
    ident: u16,
    sequence: u16,
    payload: &[u8],
    packet: &[u8],
    from_target: bool,
) -> IcmpVerdict {
    let expected = Expected {
        v4,
        kind: if raw_socket {
            SocketKind::Raw
        } else {
            SocketKind::Datagram
        },
        ident,
        sequence,
        payload,
    };
    match expected.classify(packet, from_target) {
        Verdict::Reply => IcmpVerdict::Reply,
        Verdict::Error { icmp_type, code } => IcmpVerdict::Error { icmp_type, code },
        Verdict::Unrelated => IcmpVerdict::Unrelated,
    }
}

/// The verdict on the reply datagram of a UDP check that requires one.
pub fn udp_reply(check: &UdpCheck, reply: &[u8]) -> ProbeResult {
    udp::judge_reply(check, reply)
}
