//! keepalived's `genhash`: the MD5 digest of a URL's body, to paste into an
//! HTTP check's `digest`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use http::Uri;

use crate::error::{DownReason, GenhashError};
use crate::probe::http::{DEFAULT_MAX_BODY, PreparedHttp};
use crate::probe::{HttpCheck, Md5Digest, StatusRanges, TlsOptions, TlsVerify};

/// What to fetch and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenhashRequest {
    /// `http://host[:port]/path` or `https://...`.
    pub url: String,
    /// Connect to this address instead of resolving the URL's host
    /// (keepalived genhash's `-s`/`-p`); the URL still gives `Host` and SNI.
    pub connect_to: Option<SocketAddr>,
    /// `Host` header; defaults to the URL's authority.
    pub virtual_host: Option<String>,
    /// Certificate check for `https`; genhash, like keepalived's, defaults
    /// to none.
    pub tls_verify: TlsVerify,
    /// SNI name; defaults to the virtual host's name.
    pub sni: Option<String>,
    /// Source address.
    pub bind: Option<IpAddr>,
    /// Limit on the whole fetch.
    pub timeout: Duration,
    /// Largest body accepted.
    pub max_body: u64,
}

impl GenhashRequest {
    /// Defaults: no certificate check, 10 s timeout, 16 MiB body cap.
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            connect_to: None,
            virtual_host: None,
            tls_verify: TlsVerify::Insecure,
            sni: None,
            bind: None,
            timeout: Duration::from_secs(10),
            max_body: 16 * DEFAULT_MAX_BODY,
        }
    }
}

/// The fetched page's summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenhashReport {
    /// Address connected to.
    pub target: SocketAddr,
    /// HTTP status of the reply (the digest is computed whatever it is).
    pub status: u16,
    /// Body length in bytes.
    pub body_len: u64,
    /// MD5 of the body.
    pub digest: Md5Digest,
}

/// Fetches `request.url` once and digests its body, like keepalived's
/// `genhash`.
///
/// # Errors
/// [`GenhashError`] for a bad URL, a name that does not resolve, or a fetch
/// that fails (with the same [`DownReason`] a check would give).
pub async fn genhash(request: &GenhashRequest) -> Result<GenhashReport, GenhashError> {
    let invalid = |detail: &str| GenhashError::InvalidUrl {
        url: request.url.clone(),
        detail: detail.to_owned(),
    };
    let uri: Uri = request
        .url
        .parse()
        .map_err(|e: http::uri::InvalidUri| invalid(&e.to_string()))?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        Some(_) => return Err(invalid("scheme must be http or https")),
        None => return Err(invalid("missing http:// or https://")),
    };
    let authority = uri.authority().ok_or_else(|| invalid("missing host"))?;
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let path = uri.path_and_query().map_or("/", |pq| pq.as_str());

    let target = match request.connect_to {
        Some(target) => target,
        None => resolve(host, port).await?,
    };
    let check = HttpCheck {
        target,
        bind: request.bind,
        bind_port: None,
        bind_interface: None,
        connect_timeout: None,
        path: path.to_owned(),
        virtual_host: Some(
            request
                .virtual_host
                .clone()
                .unwrap_or_else(|| authority.as_str().to_owned()),
        ),
        status: StatusRanges::default(),
        digest: None,
        regex: None,
        max_body: request.max_body,
        tls: tls.then(|| TlsOptions {
            verify: request.tls_verify.clone(),
            sni: request.sni.clone(),
            send_sni: true,
        }),
    };
    let prepared = PreparedHttp::new(&check)?;
    let outcome = tokio::time::timeout(request.timeout, prepared.fetch(true))
        .await
        .map_err(|_elapsed| GenhashError::Fetch(DownReason::Timeout(request.timeout)))?
        .map_err(GenhashError::Fetch)?;
    let (body_len, digest) = outcome
        .body
        .ok_or_else(|| GenhashError::Fetch(DownReason::Internal("body was not read".to_owned())))?;
    Ok(GenhashReport {
        target,
        status: outcome.status,
        body_len,
        digest,
    })
}

async fn resolve(host: &str, port: u16) -> Result<SocketAddr, GenhashError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let resolve_error = |detail: String| GenhashError::Resolve {
        host: host.to_owned(),
        detail,
    };
    tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| resolve_error(e.to_string()))?
        .next()
        .ok_or_else(|| resolve_error("no address".to_owned()))
}
