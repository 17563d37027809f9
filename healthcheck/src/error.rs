//! Error types: configuration errors, the reason a probe counted as down, and
//! genhash failures.

use std::io;
use std::time::Duration;

/// A check or runner configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A timing value breaks an invariant of the scheduler.
    #[error("invalid timing: {0}")]
    InvalidTiming(&'static str),
    /// A timing duration is longer than [`MAX_DURATION`](crate::MAX_DURATION).
    #[error("{field} of {value:?} is longer than the maximum of {max:?}")]
    DurationTooLong {
        /// The [`Timing`](crate::Timing) field.
        field: &'static str,
        /// Its value.
        value: Duration,
        /// The limit, [`MAX_DURATION`](crate::MAX_DURATION).
        max: Duration,
    },
    /// An HTTP path is not a valid request target.
    #[error("invalid HTTP path {path:?}: {detail}")]
    InvalidPath {
        /// The path as configured.
        path: String,
        /// Why it was rejected.
        detail: String,
    },
    /// A virtual host or SNI name is not a valid header value or DNS name.
    #[error("invalid host name {0:?}")]
    InvalidHostName(String),
    /// An expected MD5 digest is not 32 hexadecimal digits.
    #[error("invalid MD5 digest {0:?}: expected 32 hexadecimal digits")]
    InvalidDigest(String),
    /// An expected status range is empty or outside 100..=999.
    #[error("invalid status code range {start}..={end}")]
    InvalidStatusRange {
        /// First code of the range.
        start: u16,
        /// Last code of the range.
        end: u16,
    },
    /// The TLS configuration could not be built.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// A CA file could not be read or holds no certificate.
    #[error("CA file {path}: {detail}")]
    CaFile {
        /// The file as configured.
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// A DNS record type or name could not be parsed.
    #[error("invalid DNS {what} {value:?}")]
    InvalidDns {
        /// `"record type"` or `"name"`.
        what: &'static str,
        /// The value as configured.
        value: String,
    },
    /// A script check has an empty program path.
    #[error("script check has no program")]
    EmptyProgram,
    /// The ICMP payload is larger than one echo request can carry here.
    #[error("ICMP payload of {0} bytes is too large (max 1400)")]
    IcmpPayloadTooLarge(usize),
    /// The ICMP source address family differs from the target's.
    #[error("address family of source {source_addr} does not match target {target}")]
    AddressFamilyMismatch {
        /// Configured source address.
        source_addr: std::net::IpAddr,
        /// Configured target address.
        target: std::net::IpAddr,
    },
    /// A body regular expression does not compile.
    #[error("invalid regular expression {pattern:?}: {detail}")]
    InvalidRegex {
        /// The pattern as configured.
        pattern: String,
        /// The compiler's message.
        detail: String,
    },
    /// The runner has shut down and accepts no more checks.
    #[error("the runner has shut down")]
    RunnerStopped,
}

/// Why one probe attempt counted as a failure.
///
/// Every failure is a value, never a panic or a hang: the runner turns it
/// into a "down" vote for the round. `Display` gives the human reason that
/// ends up in logs and transitions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DownReason {
    /// The attempt did not finish within the check's timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The connection attempt did not finish within `connect_timeout`.
    #[error("connect timed out after {0:?}")]
    ConnectTimeout(Duration),
    /// The target refused the connection (TCP RST / ICMP port unreachable).
    #[error("connection refused")]
    ConnectionRefused,
    /// The peer reset or closed the connection mid-exchange.
    #[error("connection reset or closed by peer")]
    ConnectionReset,
    /// Any other socket error.
    #[error("{op}: {kind}: {message}")]
    Io {
        /// What was being done (`"connect"`, `"bind"`, `"send"`...).
        op: &'static str,
        /// The error class.
        kind: io::ErrorKind,
        /// The operating system's message.
        message: String,
    },
    /// The TLS handshake failed (bad certificate, protocol mismatch...).
    #[error("TLS: {0}")]
    Tls(String),
    /// The reply is not valid HTTP/1.x.
    #[error("bad HTTP reply: {0}")]
    Http(String),
    /// The HTTP status is not one of the expected codes.
    #[error("HTTP status {0} not expected")]
    HttpStatus(u16),
    /// The body's MD5 digest differs from the configured one.
    #[error("body digest {actual} differs from expected {expected}")]
    DigestMismatch {
        /// Configured digest, lowercase hex.
        expected: String,
        /// Digest of the body received, lowercase hex.
        actual: String,
    },
    /// The body matched the regular expression it must not match, or did
    /// not match the one it must.
    #[error("{}", if *no_match { "body matches the regular expression (regex_no_match)" } else { "body does not match the regular expression" })]
    RegexMismatch {
        /// Whether the check wanted no match.
        no_match: bool,
    },
    /// The body is larger than the configured cap; reading stopped there.
    #[error("body larger than {limit} bytes")]
    BodyTooLarge {
        /// The cap in bytes.
        limit: u64,
    },
    /// The script could not be started.
    #[error("script did not start: {0}")]
    ScriptSpawn(String),
    /// The script exited with a code that means "down".
    #[error("script exited with status {0}")]
    ScriptExit(i32),
    /// The script was killed by a signal.
    #[error("script killed by signal {0}")]
    ScriptSignal(i32),
    /// An ICMP error (destination unreachable...) came back for the echo.
    #[error("ICMP error type {icmp_type} code {code}")]
    IcmpError {
        /// ICMP (or ICMPv6) type of the error message.
        icmp_type: u8,
        /// Its code.
        code: u8,
    },
    /// The DNS server answered with an error response code.
    #[error("DNS response code {0}")]
    DnsRcode(String),
    /// The DNS answer lacks an expected record.
    #[error("DNS answer lacks {missing:?} (got {got:?})")]
    DnsAnswerMismatch {
        /// First expected value not found.
        missing: String,
        /// What the answer section held for the queried type.
        got: Vec<String>,
    },
    /// The DNS reply could not be decoded or does not match the query.
    #[error("bad DNS reply: {0}")]
    DnsMalformed(String),
    /// The SMTP server did not greet (or answer HELO) as expected.
    #[error("SMTP: {0}")]
    Smtp(String),
    /// The UDP reply differs from the expected bytes.
    #[error("UDP reply does not match the expected payload")]
    UdpReplyMismatch,
    /// A custom probe reported a failure.
    #[error("{0}")]
    Custom(String),
    /// The probe task ended abnormally (a bug, reported instead of lost).
    #[error("probe task failed: {0}")]
    Internal(String),
}

impl DownReason {
    /// Classifies an I/O error from operation `op`.
    #[must_use]
    pub fn from_io(op: &'static str, err: &io::Error) -> Self {
        match err.kind() {
            io::ErrorKind::ConnectionRefused => DownReason::ConnectionRefused,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof => DownReason::ConnectionReset,
            kind => DownReason::Io {
                op,
                kind,
                message: err.to_string(),
            },
        }
    }
}

/// Why `genhash` could not produce a digest.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GenhashError {
    /// The URL could not be parsed or uses an unsupported scheme.
    #[error("invalid URL {url:?}: {detail}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it was rejected.
        detail: String,
    },
    /// The host name did not resolve to any address.
    #[error("cannot resolve {host}: {detail}")]
    Resolve {
        /// Host part of the URL.
        host: String,
        /// Resolver message.
        detail: String,
    },
    /// The request options are inconsistent.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The fetch failed.
    #[error("{0}")]
    Fetch(DownReason),
}
