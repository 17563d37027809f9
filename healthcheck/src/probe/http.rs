//! HTTP and HTTPS GET check (keepalived `HTTP_GET` / `SSL_GET`).
//!
//! One fresh connection per attempt (no pool, no redirects): the point is to
//! see what a new client would see. The body is read only when a digest or
//! a regular expression is expected, streamed into MD5 and capped at
//! `max_body` bytes.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::header::{CONNECTION, HOST, HeaderValue, USER_AGENT};
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use md5::{Digest, Md5};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{CryptoProvider, ring};
use tokio_rustls::rustls::{
    self, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::error::{ConfigError, DownReason};
use crate::schedule::{ProbeResult, ProbeSuccess};

/// keepalived sends this User-Agent; some servers' access rules expect it.
const USER_AGENT_VALUE: &str = "KeepAliveClient";
/// Bound on the response head buffer (hyper's minimum is 8 KiB).
const MAX_HEAD_BUFFER: usize = 64 * 1024;
/// Default cap on the body streamed into the digest.
pub(crate) const DEFAULT_MAX_BODY: u64 = 1024 * 1024;

/// An MD5 digest, as keepalived's `digest` option and `genhash` print it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Md5Digest([u8; 16]);

impl Md5Digest {
    /// Wraps raw digest bytes.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The raw digest bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Digest of `data`.
    #[must_use]
    pub fn of(data: &[u8]) -> Self {
        Self(Md5::digest(data).into())
    }
}

impl fmt::Display for Md5Digest {
    /// Lowercase hex, 32 digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Md5Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Md5Digest({self})")
    }
}

impl FromStr for Md5Digest {
    type Err = ConfigError;

    /// Parses 32 hex digits, either case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || ConfigError::InvalidDigest(s.to_owned());
        let digits = s.as_bytes();
        if digits.len() != 32 {
            return Err(invalid());
        }
        let mut out = [0_u8; 16];
        for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
            let text = std::str::from_utf8(pair).map_err(|_| invalid())?;
            *byte = u8::from_str_radix(text, 16).map_err(|_| invalid())?;
        }
        Ok(Self(out))
    }
}

/// The HTTP status codes that count as up, as inclusive ranges.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StatusRanges(Vec<RangeInclusive<u16>>);

impl StatusRanges {
    /// Codes in any of `ranges`.
    ///
    /// # Errors
    /// [`ConfigError::InvalidStatusRange`] for an empty range or one outside
    /// 100..=999.
    pub fn new(ranges: impl IntoIterator<Item = RangeInclusive<u16>>) -> Result<Self, ConfigError> {
        let ranges: Vec<_> = ranges.into_iter().collect();
        for range in &ranges {
            if range.is_empty() || *range.start() < 100 || *range.end() > 999 {
                return Err(ConfigError::InvalidStatusRange {
                    start: *range.start(),
                    end: *range.end(),
                });
            }
        }
        if ranges.is_empty() {
            return Err(ConfigError::InvalidStatusRange { start: 0, end: 0 });
        }
        Ok(Self(ranges))
    }

    /// Whether `code` is expected.
    #[must_use]
    pub fn contains(&self, code: u16) -> bool {
        self.0.iter().any(|range| range.contains(&code))
    }
}

impl Default for StatusRanges {
    /// Any 2xx, keepalived's default.
    fn default() -> Self {
        Self(vec![200..=299])
    }
}

/// How the server certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsVerify {
    /// No verification at all (keepalived's `SSL_GET` without a CA): the
    /// check proves the service answers, not who it is.
    Insecure,
    /// Verify against the system's trusted roots.
    SystemRoots,
    /// Verify against the certificates in this PEM file only.
    CaFile(PathBuf),
}

/// TLS settings of an HTTPS check.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TlsOptions {
    /// Certificate verification.
    pub verify: TlsVerify,
    /// Server name sent in SNI and verified; defaults to the virtual host's
    /// name. With neither, no SNI is sent and an IP certificate is expected.
    pub sni: Option<String>,
    /// Send the server name in the TLS handshake (SNI); off, the name is
    /// still what the certificate is verified against. keepalived sends it
    /// only with `enable_sni`.
    pub send_sni: bool,
}

impl TlsOptions {
    /// TLS without certificate verification and without explicit SNI.
    #[must_use]
    pub fn insecure() -> Self {
        Self {
            verify: TlsVerify::Insecure,
            sni: None,
            send_sni: true,
        }
    }
}

/// PCRE2 options of keepalived's `regex_options` that have an equivalent
/// here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RegexOptions {
    /// `caseless`: letters match either case.
    pub caseless: bool,
    /// `multiline`: `^` and `$` match at line boundaries.
    pub multiline: bool,
    /// `dotall`: `.` matches a newline too.
    pub dotall: bool,
    /// `extended`: whitespace and `#` comments in the pattern are ignored.
    pub extended: bool,
    /// `ungreedy`: quantifiers are lazy unless followed by `?`.
    pub ungreedy: bool,
    /// `utf` / `ucp`: the body is UTF-8 and classes are Unicode's.
    pub unicode: bool,
}

impl RegexOptions {
    /// The option named as keepalived's `regex_options` names it; `None`
    /// for a PCRE2 option without an equivalent.
    pub fn set(&mut self, name: &str) -> Option<()> {
        match name {
            "caseless" => self.caseless = true,
            "multiline" => self.multiline = true,
            "dotall" => self.dotall = true,
            "extended" => self.extended = true,
            "ungreedy" => self.ungreedy = true,
            "utf" | "ucp" => self.unicode = true,
            // Options that change nothing a match can see here.
            "no_auto_capture" | "no_auto_possess" | "no_start_optimize" | "no_dotstar_anchor"
            | "never_ucp" | "never_utf" | "never_backslash_c" | "dupnames" => {}
            _ => return None,
        }
        Some(())
    }

    /// The names of the options set, as keepalived writes them.
    #[must_use]
    pub fn names(&self) -> Vec<&'static str> {
        [
            (self.caseless, "caseless"),
            (self.multiline, "multiline"),
            (self.dotall, "dotall"),
            (self.extended, "extended"),
            (self.ungreedy, "ungreedy"),
            (self.unicode, "utf"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }
}

/// keepalived's `regex` on a URL: the body must match (or, with
/// `no_match`, must not), the match starting between `min_offset` and
/// `max_offset` bytes into the body. The syntax is the `regex` crate's:
/// PCRE's without look-around and back-references.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BodyRegex {
    /// The pattern.
    pub pattern: String,
    /// Options (keepalived's `regex_options`).
    pub options: RegexOptions,
    /// Up when the body does not match (keepalived's `regex_no_match`).
    pub no_match: bool,
    /// The match may not start before this offset (`regex_min_offset`).
    pub min_offset: usize,
    /// The match must start at or before this offset (`regex_max_offset`).
    pub max_offset: Option<usize>,
}

impl BodyRegex {
    /// A pattern that must match anywhere in the body.
    #[must_use]
    pub fn new(pattern: impl Into<String>) -> Self {
        Self {
            pattern: pattern.into(),
            options: RegexOptions::default(),
            no_match: false,
            min_offset: 0,
            max_offset: None,
        }
    }

    /// The compiled pattern.
    ///
    /// # Errors
    /// [`ConfigError::InvalidRegex`] when the pattern does not compile.
    pub fn compile(&self) -> Result<regex::bytes::Regex, ConfigError> {
        let o = self.options;
        regex::bytes::RegexBuilder::new(&self.pattern)
            .case_insensitive(o.caseless)
            .multi_line(o.multiline)
            .dot_matches_new_line(o.dotall)
            .ignore_whitespace(o.extended)
            .swap_greed(o.ungreedy)
            .unicode(o.unicode)
            .build()
            .map_err(|e| ConfigError::InvalidRegex {
                pattern: self.pattern.clone(),
                detail: e.to_string(),
            })
    }

    /// Whether `body` matches within the offsets.
    fn matches(regex: &regex::bytes::Regex, offsets: (usize, Option<usize>), body: &[u8]) -> bool {
        let (min, max) = offsets;
        if min > body.len() {
            return false;
        }
        regex
            .find_at(body, min)
            .is_some_and(|m| max.is_none_or(|max| m.start() <= max))
    }
}

/// GET `path` and check the status and, optionally, the body's MD5 digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpCheck {
    /// Address and port of the server.
    pub target: SocketAddr,
    /// Source address to connect from (keepalived `bindto`).
    pub bind: Option<IpAddr>,
    /// Source port (keepalived `bind_port`).
    pub bind_port: Option<u16>,
    /// Interface to connect through (keepalived `bind_if`).
    pub bind_interface: Option<String>,
    /// Limit on the connect alone.
    pub connect_timeout: Option<Duration>,
    /// Request target, such as `/health?full=1`.
    pub path: String,
    /// `Host` header (keepalived `virtualhost`); defaults to the target
    /// address.
    pub virtual_host: Option<String>,
    /// Status codes that count as up.
    pub status: StatusRanges,
    /// Expected MD5 of the body.
    pub digest: Option<Md5Digest>,
    /// A regular expression the body must (or must not) match.
    pub regex: Option<BodyRegex>,
    /// Largest body read for the digest or the regular expression; a
    /// longer body is a failure.
    pub max_body: u64,
    /// `Some` for HTTPS.
    pub tls: Option<TlsOptions>,
}

impl HttpCheck {
    /// GET `/` over plain HTTP, expecting any 2xx.
    #[must_use]
    pub fn new(target: SocketAddr) -> Self {
        Self {
            target,
            bind: None,
            bind_port: None,
            bind_interface: None,
            connect_timeout: None,
            path: "/".to_owned(),
            virtual_host: None,
            status: StatusRanges::default(),
            digest: None,
            regex: None,
            max_body: DEFAULT_MAX_BODY,
            tls: None,
        }
    }
}

/// What one GET returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FetchOutcome {
    pub(crate) status: u16,
    /// Length and digest of the body, when it was read.
    pub(crate) body: Option<(u64, Md5Digest)>,
    /// Whether the body matched the regular expression, when there is one.
    pub(crate) regex_matched: Option<bool>,
}

/// An [`HttpCheck`] with its request and TLS configuration built once.
#[derive(Debug)]
pub(crate) struct PreparedHttp {
    target: SocketAddr,
    bind: Option<IpAddr>,
    bind_port: Option<u16>,
    bind_interface: Option<String>,
    connect_timeout: Option<Duration>,
    /// The compiled regular expression, its offsets and `no_match`.
    regex: Option<(regex::bytes::Regex, (usize, Option<usize>), bool)>,
    uri: Uri,
    host: HeaderValue,
    status: StatusRanges,
    digest: Option<Md5Digest>,
    max_body: u64,
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
}

impl PreparedHttp {
    pub(crate) fn new(check: &HttpCheck) -> Result<Self, ConfigError> {
        let uri = parse_path(&check.path)?;
        let host_text = match &check.virtual_host {
            Some(vhost) => vhost.clone(),
            None => check.target.to_string(),
        };
        let host = HeaderValue::from_str(&host_text)
            .map_err(|_| ConfigError::InvalidHostName(host_text.clone()))?;
        let tls = match &check.tls {
            None => None,
            Some(options) => {
                let name_text = options
                    .sni
                    .clone()
                    .or_else(|| check.virtual_host.as_deref().map(strip_port));
                let server_name = match name_text {
                    Some(name) => ServerName::try_from(name.clone())
                        .map_err(|_| ConfigError::InvalidHostName(name))?,
                    None => ServerName::IpAddress(check.target.ip().into()),
                };
                Some((
                    client_config(&options.verify, options.send_sni)?,
                    server_name,
                ))
            }
        };
        let regex = match &check.regex {
            None => None,
            Some(r) => Some((r.compile()?, (r.min_offset, r.max_offset), r.no_match)),
        };
        Ok(Self {
            target: check.target,
            bind: check.bind,
            bind_port: check.bind_port,
            bind_interface: check.bind_interface.clone(),
            connect_timeout: check.connect_timeout,
            regex,
            uri,
            host,
            status: check.status.clone(),
            digest: check.digest,
            max_body: check.max_body,
            tls,
        })
    }

    pub(crate) async fn probe(&self) -> ProbeResult {
        let outcome = self
            .fetch(self.digest.is_some() || self.regex.is_some())
            .await?;
        self.judge(outcome)
    }

    /// Up when the status is expected, the body has the expected digest
    /// and the regular expression matches (or not, as configured).
    pub(crate) fn judge(&self, outcome: FetchOutcome) -> ProbeResult {
        if !self.status.contains(outcome.status) {
            return Err(DownReason::HttpStatus(outcome.status));
        }
        if let (Some(expected), Some((_, actual))) = (self.digest, outcome.body)
            && expected != actual
        {
            return Err(DownReason::DigestMismatch {
                expected: expected.to_string(),
                actual: actual.to_string(),
            });
        }
        // keepalived checks the status, then the digest, then the regex.
        if let (Some((_, _, no_match)), Some(matched)) = (&self.regex, outcome.regex_matched)
            && matched == *no_match
        {
            return Err(DownReason::RegexMismatch {
                no_match: *no_match,
            });
        }
        Ok(ProbeSuccess::default())
    }

    /// One GET on a fresh connection; reads the body only if `read_body`.
    pub(crate) async fn fetch(&self, read_body: bool) -> Result<FetchOutcome, DownReason> {
        let source = super::Source {
            address: self.bind,
            port: self.bind_port,
            interface: self.bind_interface.as_deref(),
        };
        let tcp = super::connect_tcp(self.target, source, self.connect_timeout).await?;
        match &self.tls {
            None => self.exchange(tcp, read_body).await,
            Some((config, server_name)) => {
                let stream = TlsConnector::from(Arc::clone(config))
                    .connect(server_name.clone(), tcp)
                    .await
                    .map_err(|e| classify_tls_error(&e))?;
                self.exchange(stream, read_body).await
            }
        }
    }

    pub(crate) async fn exchange<S>(
        &self,
        stream: S,
        read_body: bool,
    ) -> Result<FetchOutcome, DownReason>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
            .max_buf_size(MAX_HEAD_BUFFER)
            .handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
            .await
            .map_err(|e| classify_hyper_error(&e))?;
        let request = Request::get(self.uri.clone())
            .header(HOST, self.host.clone())
            .header(USER_AGENT, USER_AGENT_VALUE)
            .header(CONNECTION, "close")
            .body(Empty::new())
            .map_err(|e| DownReason::Internal(e.to_string()))?;
        let max_body = self.max_body;
        let regex = self.regex.as_ref().map(|(r, offsets, _)| (r, *offsets));
        let exchange = async move {
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| classify_hyper_error(&e))?;
            let status = response.status().as_u16();
            let (body, regex_matched) = if read_body {
                let (length, digest, matched) =
                    read_body_of(response.into_body(), max_body, regex).await?;
                (Some((length, digest)), matched)
            } else {
                (None, None)
            };
            Ok::<_, DownReason>(FetchOutcome {
                status,
                body,
                regex_matched,
            })
        };
        // The connection is driven here rather than in a spawned task, so
        // that dropping the probe (timeout, shutdown) drops the socket too.
        let mut exchange = std::pin::pin!(exchange);
        let mut connection = std::pin::pin!(connection);
        let mut connection_done = false;
        let mut connection_error = None;
        loop {
            tokio::select! {
                outcome = &mut exchange => {
                    // A request cancelled because the connection failed (for
                    // instance on bytes sent before any request, like an SSH
                    // banner) is better explained by the connection's error.
                    return match (outcome, connection_error) {
                        (Err(_), Some(cause)) => Err(cause),
                        (outcome, _) => outcome,
                    };
                }
                result = &mut connection, if !connection_done => {
                    connection_done = true;
                    connection_error = result.err().map(|e| classify_hyper_error(&e));
                }
            }
        }
    }
}

/// Streams `body` into MD5 (and, with a regular expression, into a buffer
/// it is matched against), failing once it exceeds `max_body` bytes.
async fn read_body_of(
    mut body: hyper::body::Incoming,
    max_body: u64,
    regex: Option<(&regex::bytes::Regex, (usize, Option<usize>))>,
) -> Result<(u64, Md5Digest, Option<bool>), DownReason> {
    let mut hasher = Md5::new();
    let mut length: u64 = 0;
    let mut kept = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| classify_hyper_error(&e))?;
        if let Ok(data) = frame.into_data() {
            length = length.saturating_add(data.len() as u64);
            if length > max_body {
                return Err(DownReason::BodyTooLarge { limit: max_body });
            }
            hasher.update(&data);
            if regex.is_some() {
                kept.extend_from_slice(&data);
            }
        }
    }
    let matched = regex.map(|(r, offsets)| BodyRegex::matches(r, offsets, &kept));
    Ok((length, Md5Digest(hasher.finalize().into()), matched))
}

fn parse_path(path: &str) -> Result<Uri, ConfigError> {
    let invalid = |detail: &str| ConfigError::InvalidPath {
        path: path.to_owned(),
        detail: detail.to_owned(),
    };
    if !path.starts_with('/') {
        return Err(invalid("must start with '/'"));
    }
    let uri: Uri = path
        .parse()
        .map_err(|e: http::uri::InvalidUri| invalid(&e.to_string()))?;
    if uri.scheme().is_some() || uri.authority().is_some() {
        return Err(invalid("must be a path, not a URL"));
    }
    Ok(uri)
}

/// `host:port` → `host`, `[v6]:port` → `v6`, anything else unchanged.
fn strip_port(host: &str) -> String {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest).to_owned();
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name.to_owned()
        }
        _ => host.to_owned(),
    }
}

fn classify_hyper_error(err: &hyper::Error) -> DownReason {
    // hyper wraps the real cause: an I/O error, or another hyper error (a
    // request "canceled" because of an unexpected message, for instance).
    let mut innermost = err;
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return DownReason::from_io("http", io);
        }
        if let Some(inner) = cause.downcast_ref::<hyper::Error>() {
            innermost = inner;
        }
        source = cause.source();
    }
    if innermost.is_incomplete_message() || innermost.is_canceled() {
        DownReason::ConnectionReset
    } else {
        DownReason::Http(innermost.to_string())
    }
}

fn classify_tls_error(err: &std::io::Error) -> DownReason {
    match err.kind() {
        std::io::ErrorKind::ConnectionRefused
        | std::io::ErrorKind::ConnectionReset
        | std::io::ErrorKind::ConnectionAborted
        | std::io::ErrorKind::BrokenPipe
        | std::io::ErrorKind::UnexpectedEof => DownReason::ConnectionReset,
        _ => DownReason::Tls(err.to_string()),
    }
}

fn client_config(verify: &TlsVerify, send_sni: bool) -> Result<Arc<ClientConfig>, ConfigError> {
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::Tls(e.to_string()))?;
    let mut config = match verify {
        TlsVerify::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth(),
        TlsVerify::SystemRoots => builder
            .with_root_certificates(system_roots()?)
            .with_no_client_auth(),
        TlsVerify::CaFile(path) => builder
            .with_root_certificates(roots_from_file(path)?)
            .with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.enable_sni = send_sni;
    Ok(Arc::new(config))
}

fn system_roots() -> Result<Arc<RootCertStore>, ConfigError> {
    // Loading the system store reads many files: once per process.
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let loaded = rustls_native_certs::load_native_certs();
            let mut store = RootCertStore::empty();
            let (added, _ignored) = store.add_parsable_certificates(loaded.certs);
            if added == 0 {
                let errors: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
                return Err(format!(
                    "no usable system root certificate ({})",
                    errors.join("; ")
                ));
            }
            Ok(Arc::new(store))
        })
        .clone()
        .map_err(ConfigError::Tls)
}

fn roots_from_file(path: &std::path::Path) -> Result<Arc<RootCertStore>, ConfigError> {
    let ca_error = |detail: String| ConfigError::CaFile {
        path: path.display().to_string(),
        detail,
    };
    let mut store = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| ca_error(e.to_string()))? {
        let cert = cert.map_err(|e| ca_error(e.to_string()))?;
        store.add(cert).map_err(|e| ca_error(e.to_string()))?;
    }
    if store.is_empty() {
        return Err(ca_error("no certificate found".to_owned()));
    }
    Ok(Arc::new(store))
}

/// Accepts any certificate but still checks the handshake signatures, so the
/// session is at least consistent with the certificate presented.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_parses_and_prints_round_trip() {
        let text = "9e107d9d372bb6826bd81d3542a419d6";
        let digest: Md5Digest = text.parse().expect("valid digest");
        assert_eq!(digest.to_string(), text);
        assert_eq!(
            Md5Digest::of(b"The quick brown fox jumps over the lazy dog"),
            digest
        );
        assert_eq!(
            "9E107D9D372BB6826BD81D3542A419D6".parse::<Md5Digest>(),
            Ok(digest)
        );
        assert!(
            "9e107d9d372bb6826bd81d3542a419d"
                .parse::<Md5Digest>()
                .is_err()
        );
        assert!(
            "zz107d9d372bb6826bd81d3542a419d6"
                .parse::<Md5Digest>()
                .is_err()
        );
        assert!("é".repeat(16).parse::<Md5Digest>().is_err());
    }

    #[test]
    fn status_ranges_validate_and_match() {
        let ranges = StatusRanges::new([200..=204, 301..=301]).expect("valid");
        assert!(ranges.contains(204) && ranges.contains(301));
        assert!(!ranges.contains(205) && !ranges.contains(500));
        #[allow(clippy::reversed_empty_ranges)] // the point of the test
        let reversed = 300..=200;
        assert!(StatusRanges::new([reversed]).is_err());
        assert!(StatusRanges::new([0..=99]).is_err());
        assert!(StatusRanges::new([]).is_err());
        assert!(StatusRanges::default().contains(299));
    }

    #[test]
    fn paths_must_be_origin_form() {
        assert!(parse_path("/a/b?c=d").is_ok());
        assert!(parse_path("a").is_err());
        assert!(parse_path("http://x/").is_err());
        assert!(parse_path("/bad path").is_err());
    }

    #[test]
    fn port_is_stripped_for_sni() {
        assert_eq!(strip_port("www.example.com:8443"), "www.example.com");
        assert_eq!(strip_port("www.example.com"), "www.example.com");
        assert_eq!(strip_port("[2001:db8::1]:443"), "2001:db8::1");
        assert_eq!(strip_port("2001:db8::1"), "2001:db8::1");
    }
}
