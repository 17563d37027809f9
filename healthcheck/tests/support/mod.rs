//! Loopback servers the probe tests start themselves: a hyper HTTP(S)
//! server, a DNS responder, an SMTP greeter, and one misbehaving server per
//! bad case. Each runs on the test's own runtime and dies with it.

#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Body, Bytes, Frame};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

pub const PAGE: &[u8] = b"<html><body>healthy</body></html>\n";

/// A body of `remaining` bytes of 'x', sent in 64 KiB chunks, never buffered.
pub struct Endless {
    pub remaining: u64,
}

impl Body for Endless {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(64 * 1024);
        self.remaining -= n;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'x'; n as usize])))))
    }
}

type BoxBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn full(data: impl Into<Bytes>) -> BoxBody {
    use http_body_util::BodyExt;
    Full::new(data.into()).boxed()
}

/// Routes: `/` the page, `/status/NNN`, `/host` echoes Host, `/sni` echoes
/// the TLS server name (set by the TLS accept loop), `/huge` a 1 GiB body.
fn route(req: &Request<hyper::body::Incoming>, sni: &str) -> Response<BoxBody> {
    use http_body_util::BodyExt;
    let path = req.uri().path();
    let respond = |status: u16, body: BoxBody| {
        let mut response = Response::new(body);
        *response.status_mut() =
            hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
        response
    };
    if let Some(code) = path.strip_prefix("/status/") {
        return respond(code.parse().unwrap_or(500), full("status"));
    }
    match path {
        "/" => respond(200, full(PAGE)),
        "/host" => {
            let host = req
                .headers()
                .get(hyper::header::HOST)
                .map(|h| h.as_bytes().to_vec())
                .unwrap_or_default();
            respond(200, full(host))
        }
        "/agent" => {
            let agent = req
                .headers()
                .get(hyper::header::USER_AGENT)
                .map(|h| h.as_bytes().to_vec())
                .unwrap_or_default();
            respond(200, full(agent))
        }
        "/sni" => respond(200, full(sni.to_owned())),
        "/huge" => respond(200, Endless { remaining: 1 << 30 }.boxed()),
        _ => respond(404, full("not found")),
    }
}

async fn serve<S>(io: S, sni: String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let response = route(&req, &sni);
        async move { Ok::<_, Infallible>(response) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .await;
}

pub async fn http_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, String::new()));
        }
    });
    addr
}

/// A self-signed certificate for `localhost` and 127.0.0.1, and its PEM.
pub struct SelfSigned {
    pub cert: CertificateDer<'static>,
    pub key: Vec<u8>,
    pub pem: String,
}

pub fn self_signed() -> SelfSigned {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("rcgen");
    SelfSigned {
        cert: certified.cert.der().clone(),
        key: certified.signing_key.serialize_der(),
        pem: certified.cert.pem(),
    }
}

pub async fn https_server(identity: &SelfSigned) -> SocketAddr {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![identity.cert.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key.clone())),
        )
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    let sni = tls.get_ref().1.server_name().unwrap_or("").to_owned();
                    serve(tls, sni).await;
                }
            });
        }
    });
    addr
}

/// How a raw TCP server misbehaves.
#[derive(Clone, Copy, Debug)]
pub enum Misbehave {
    /// Read the request, then close with RST.
    Reset,
    /// Accept and never send a byte.
    Silent,
    /// Read the request, send a status line, then one header byte every
    /// 100 ms forever.
    SlowLoris,
    /// Answer with an SSH banner.
    NotHttp,
    /// Send a valid head announcing a body, then close mid-body.
    TruncatedBody,
}

pub async fn misbehaving_server(how: Misbehave) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(misbehave(stream, how));
        }
    });
    addr
}

async fn misbehave(mut stream: TcpStream, how: Misbehave) {
    let mut buf = [0_u8; 1024];
    match how {
        Misbehave::Reset => {
            let _ = stream.read(&mut buf).await;
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            drop(stream);
        }
        Misbehave::Silent => {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        Misbehave::SlowLoris => {
            let _ = stream.read(&mut buf).await;
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\n").await;
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if stream.write_all(b"X").await.is_err() {
                    return;
                }
            }
        }
        Misbehave::NotHttp => {
            let _ = stream.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").await;
            let _ = stream.read(&mut buf).await;
        }
        Misbehave::TruncatedBody => {
            let _ = stream.read(&mut buf).await;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly a little")
                .await;
        }
    }
}

/// A port on 127.0.0.1 with nothing listening.
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    addr
}

/// An SMTP server sending `greeting`, answering HELO with `helo_reply`.
pub async fn smtp_server(greeting: &'static str, helo_reply: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = stream.write_all(greeting.as_bytes()).await;
                let mut buf = [0_u8; 512];
                loop {
                    let n = match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    let line = &buf[..n];
                    let reply: &[u8] = if line.starts_with(b"HELO") {
                        helo_reply.as_bytes()
                    } else if line.starts_with(b"QUIT") {
                        b"221 bye\r\n"
                    } else {
                        b"500 what\r\n"
                    };
                    if stream.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// How the DNS responder answers.
#[derive(Clone, Copy, Debug)]
pub enum DnsMode {
    /// A records 192.0.2.10 and 192.0.2.11 for any A query.
    Answer,
    /// NXDOMAIN.
    NxDomain,
    /// First a reply with a wrong id, then garbage with the right id.
    WrongIdThenGarbage,
    /// First a reply with a wrong id, then the right answer.
    WrongIdThenAnswer,
}

pub async fn dns_server(mode: DnsMode) -> SocketAddr {
    use hickory_proto::op::{Message, ResponseCode};
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{RData, Record};

    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = socket.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = [0_u8; 1500];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let id = query.metadata.id;
            let mut reply = Message::response(id, query.metadata.op_code);
            reply.add_queries(query.queries.iter().cloned());
            if let Some(q) = query.queries.first() {
                for ip in [[192, 0, 2, 10], [192, 0, 2, 11]] {
                    reply.answers.push(Record::from_rdata(
                        q.name().clone(),
                        60,
                        RData::A(A::from(std::net::Ipv4Addr::from(ip))),
                    ));
                }
            }
            let good = reply.to_vec().expect("encode");
            let mut wrong_id = good.clone();
            wrong_id[0] ^= 0xff;
            match mode {
                DnsMode::Answer => {
                    let _ = socket.send_to(&good, from).await;
                }
                DnsMode::NxDomain => {
                    let mut nx = Message::response(id, query.metadata.op_code);
                    nx.add_queries(query.queries.iter().cloned());
                    nx.metadata.response_code = ResponseCode::NXDomain;
                    let _ = socket.send_to(&nx.to_vec().expect("encode"), from).await;
                }
                DnsMode::WrongIdThenGarbage => {
                    let _ = socket.send_to(&wrong_id, from).await;
                    let mut garbage = id.to_be_bytes().to_vec();
                    garbage.extend_from_slice(&[0xff; 9]);
                    let _ = socket.send_to(&garbage, from).await;
                }
                DnsMode::WrongIdThenAnswer => {
                    let _ = socket.send_to(&wrong_id, from).await;
                    let _ = socket.send_to(&good, from).await;
                }
            }
        }
    });
    addr
}

/// A UDP echo server.
pub async fn udp_echo_server() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = socket.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = [0_u8; 1500];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let _ = socket.send_to(&buf[..n], from).await;
        }
    });
    addr
}
