//! Proves each probe against real loopback servers the test starts itself,
//! good and misbehaving: every bad target is a prompt "down" with the right
//! reason, never a hang.

mod support;

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use healthcheck::{
    BodyRegex, DnsCheck, DownReason, GenhashRequest, HttpCheck, Md5Digest, Probe, ProbeReport,
    ProbeSuccess, ScriptCheck, SmtpCheck, StatusRanges, TcpCheck, TlsOptions, TlsVerify, UdpCheck,
    genhash,
};
use support::{DnsMode, Misbehave};

const TIMEOUT: Duration = Duration::from_millis(800);

async fn run(probe: Probe) -> ProbeReport {
    let prober = probe.prepare().expect("valid probe");
    let started = Instant::now();
    let report = prober.run(1, TIMEOUT).await;
    assert!(
        started.elapsed() < TIMEOUT + Duration::from_secs(1),
        "probe overran its timeout: {report:?}"
    );
    report
}

async fn expect_up(probe: Probe) {
    let report = run(probe).await;
    assert_eq!(report.result, Ok(ProbeSuccess::default()), "{report:?}");
}

async fn expect_down(probe: Probe) -> DownReason {
    match run(probe).await.result {
        Err(reason) => reason,
        Ok(success) => panic!("expected down, got up {success:?}"),
    }
}

fn http(target: SocketAddr, path: &str) -> HttpCheck {
    let mut check = HttpCheck::new(target);
    check.path = path.to_owned();
    check
}

#[tokio::test]
async fn tcp_up_and_refused() {
    let server = support::http_server().await;
    expect_up(Probe::Tcp(TcpCheck::new(server))).await;

    let mut bound = TcpCheck::new(server);
    bound.bind = Some("127.0.0.2".parse().expect("ip"));
    expect_up(Probe::Tcp(bound)).await;

    let closed = support::closed_port().await;
    assert_eq!(
        expect_down(Probe::Tcp(TcpCheck::new(closed))).await,
        DownReason::ConnectionRefused
    );

    // A source address this host does not have cannot be bound.
    let mut foreign = TcpCheck::new(server);
    foreign.bind = Some("192.0.2.77".parse().expect("ip"));
    assert!(matches!(
        expect_down(Probe::Tcp(foreign)).await,
        DownReason::Io { op: "bind", .. }
    ));
}

/// Where connections to a listener come from, as the listener sees them.
async fn peer_of(listener: &tokio::net::TcpListener) -> SocketAddr {
    let (_, peer) = tokio::time::timeout(TIMEOUT, listener.accept())
        .await
        .expect("a connection")
        .expect("accept");
    peer
}

#[tokio::test]
async fn sources_bind_address_port_and_interface() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let target = listener.local_addr().expect("addr");
    let free_port = {
        let l = std::net::TcpListener::bind("127.0.0.2:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    // keepalived's bindto + bind_port: the server sees that source.
    let mut tcp = TcpCheck::new(target);
    tcp.bind = Some("127.0.0.2".parse().expect("ip"));
    tcp.bind_port = Some(free_port);
    let (report, peer) = tokio::join!(run(Probe::Tcp(tcp.clone())), peer_of(&listener));
    assert_eq!(report.result, Ok(ProbeSuccess::default()), "{report:?}");
    assert_eq!(peer, SocketAddr::from(([127, 0, 0, 2], free_port)));
    // Again at once: the port in TIME_WAIT is reused.
    let (report, peer) = tokio::join!(run(Probe::Tcp(tcp)), peer_of(&listener));
    assert_eq!(report.result, Ok(ProbeSuccess::default()), "{report:?}");
    assert_eq!(peer.port(), free_port);
    // The same for HTTP: the request arrives from the bound source.
    let mut web = http(target, "/");
    web.bind = Some("127.0.0.3".parse().expect("ip"));
    web.bind_interface = Some("lo".to_owned());
    let probe = tokio::spawn(run(Probe::Http(web)));
    let (mut conn, peer) = listener.accept().await.expect("accept");
    assert_eq!(peer.ip(), std::net::IpAddr::from([127, 0, 0, 3]));
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = [0u8; 1024];
    let _ = conn.read(&mut buf).await;
    conn.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
        .await
        .expect("reply");
    drop(conn);
    let report = probe.await.expect("probe");
    assert_eq!(report.result, Ok(ProbeSuccess::default()), "{report:?}");
    // keepalived's bind_if: an interface that is not there is a clean
    // failure of the attempt.
    let mut nowhere = TcpCheck::new(target);
    nowhere.bind_interface = Some("nosuch0".to_owned());
    assert!(matches!(
        expect_down(Probe::Tcp(nowhere)).await,
        DownReason::Io { op: "bind_if", .. }
    ));
    let mut udp = UdpCheck::new(target);
    udp.bind_interface = Some("nosuch0".to_owned());
    assert!(matches!(
        expect_down(Probe::Udp(udp)).await,
        DownReason::Io { op: "bind_if", .. }
    ));
}

#[tokio::test]
async fn http_regex_like_keepalived_s() {
    // PAGE is "<html><body>healthy</body></html>\n".
    let server = support::http_server().await;
    let with = |regex: BodyRegex| {
        let mut check = http(server, "/");
        check.regex = Some(regex);
        Probe::Http(check)
    };
    expect_up(with(BodyRegex::new("health[a-z]"))).await;
    assert_eq!(
        expect_down(with(BodyRegex::new("unhealthy"))).await,
        DownReason::RegexMismatch { no_match: false }
    );
    // regex_no_match: up while the body does not match.
    let mut absent = BodyRegex::new("error|fail");
    absent.no_match = true;
    expect_up(with(absent)).await;
    let mut present = BodyRegex::new("healthy");
    present.no_match = true;
    assert_eq!(
        expect_down(with(present)).await,
        DownReason::RegexMismatch { no_match: true }
    );
    // regex_options caseless.
    let mut caseless = BodyRegex::new("HEALTHY");
    assert!(matches!(
        expect_down(with(caseless.clone())).await,
        DownReason::RegexMismatch { .. }
    ));
    caseless.options.set("caseless");
    expect_up(with(caseless)).await;
    // regex_min_offset / regex_max_offset: "healthy" starts at byte 12.
    let mut window = BodyRegex::new("healthy");
    window.min_offset = 12;
    window.max_offset = Some(12);
    expect_up(with(window.clone())).await;
    window.min_offset = 13;
    window.max_offset = None;
    assert!(matches!(
        expect_down(with(window.clone())).await,
        DownReason::RegexMismatch { .. }
    ));
    window.min_offset = 0;
    window.max_offset = Some(11);
    assert!(matches!(
        expect_down(with(window)).await,
        DownReason::RegexMismatch { .. }
    ));
    // With a digest too, both must hold (keepalived checks the digest first).
    let mut both = http(server, "/");
    both.regex = Some(BodyRegex::new("healthy"));
    both.digest = Some(Md5Digest::of(b"something else"));
    assert!(matches!(
        expect_down(Probe::Http(both)).await,
        DownReason::DigestMismatch { .. }
    ));
    // A pattern the regex crate cannot compile is a configuration error.
    let mut bad = http(server, "/");
    bad.regex = Some(BodyRegex::new("(unclosed"));
    assert!(Probe::Http(bad).prepare().is_err());
}

#[tokio::test]
async fn http_status_ranges_and_digest() {
    let server = support::http_server().await;
    expect_up(Probe::Http(http(server, "/"))).await;
    assert_eq!(
        expect_down(Probe::Http(http(server, "/status/503"))).await,
        DownReason::HttpStatus(503)
    );

    let mut redirect_ok = http(server, "/status/302");
    redirect_ok.status = StatusRanges::new([200..=200, 300..=399]).expect("ranges");
    expect_up(Probe::Http(redirect_ok)).await;

    let mut digest_ok = http(server, "/");
    digest_ok.digest = Some(Md5Digest::of(support::PAGE));
    expect_up(Probe::Http(digest_ok)).await;

    let mut digest_bad = http(server, "/");
    digest_bad.digest = Some(Md5Digest::of(b"something else"));
    match expect_down(Probe::Http(digest_bad)).await {
        DownReason::DigestMismatch { actual, .. } => {
            assert_eq!(actual, Md5Digest::of(support::PAGE).to_string());
        }
        other => panic!("expected digest mismatch, got {other}"),
    }
}

#[tokio::test]
async fn http_sends_virtual_host_and_keepalived_agent() {
    let server = support::http_server().await;
    let mut vhost = http(server, "/host");
    vhost.virtual_host = Some("www.example.com".to_owned());
    vhost.digest = Some(Md5Digest::of(b"www.example.com"));
    expect_up(Probe::Http(vhost)).await;

    let mut default_host = http(server, "/host");
    default_host.digest = Some(Md5Digest::of(server.to_string().as_bytes()));
    expect_up(Probe::Http(default_host)).await;

    let mut agent = http(server, "/agent");
    agent.digest = Some(Md5Digest::of(b"KeepAliveClient"));
    expect_up(Probe::Http(agent)).await;
}

#[tokio::test]
async fn http_bad_servers_are_down_with_a_reason() {
    let refused = support::closed_port().await;
    assert_eq!(
        expect_down(Probe::Http(http(refused, "/"))).await,
        DownReason::ConnectionRefused
    );

    let reset = support::misbehaving_server(Misbehave::Reset).await;
    assert_eq!(
        expect_down(Probe::Http(http(reset, "/"))).await,
        DownReason::ConnectionReset
    );

    let silent = support::misbehaving_server(Misbehave::Silent).await;
    assert_eq!(
        expect_down(Probe::Http(http(silent, "/"))).await,
        DownReason::Timeout(TIMEOUT)
    );

    let loris = support::misbehaving_server(Misbehave::SlowLoris).await;
    assert_eq!(
        expect_down(Probe::Http(http(loris, "/"))).await,
        DownReason::Timeout(TIMEOUT)
    );

    let not_http = support::misbehaving_server(Misbehave::NotHttp).await;
    let reason = expect_down(Probe::Http(http(not_http, "/"))).await;
    assert!(matches!(reason, DownReason::Http(_)), "{reason:?}");

    let mut truncated = http(
        support::misbehaving_server(Misbehave::TruncatedBody).await,
        "/",
    );
    truncated.digest = Some(Md5Digest::of(b"x"));
    assert_eq!(
        expect_down(Probe::Http(truncated)).await,
        DownReason::ConnectionReset
    );
}

#[tokio::test]
async fn huge_body_stops_at_the_cap() {
    let server = support::http_server().await;
    let mut huge = http(server, "/huge");
    huge.digest = Some(Md5Digest::of(b""));
    huge.max_body = 256 * 1024;
    assert_eq!(
        expect_down(Probe::Http(huge)).await,
        DownReason::BodyTooLarge { limit: 256 * 1024 }
    );
    // Without a digest the body is not read at all: up on status alone.
    expect_up(Probe::Http(http(server, "/huge"))).await;
}

#[tokio::test]
async fn https_with_and_without_verification() {
    let identity = support::self_signed();
    let server = support::https_server(&identity).await;

    let mut insecure = http(server, "/sni");
    insecure.tls = Some(TlsOptions::insecure());
    insecure.virtual_host = Some("localhost".to_owned());
    insecure.digest = Some(Md5Digest::of(b"localhost"));
    expect_up(Probe::Http(insecure.clone())).await;

    let mut explicit_sni = insecure.clone();
    explicit_sni.tls = Some(TlsOptions {
        verify: TlsVerify::Insecure,
        sni: Some("sni.example".to_owned()),
        send_sni: true,
    });
    explicit_sni.digest = Some(Md5Digest::of(b"sni.example"));
    expect_up(Probe::Http(explicit_sni.clone())).await;

    // keepalived without `enable_sni`: no name in the handshake, whatever
    // the virtual host.
    let mut no_sni = explicit_sni;
    no_sni.tls = Some(TlsOptions {
        send_sni: false,
        ..TlsOptions::insecure()
    });
    no_sni.digest = Some(Md5Digest::of(b""));
    expect_up(Probe::Http(no_sni.clone())).await;
    no_sni.digest = Some(Md5Digest::of(b"localhost"));
    assert!(matches!(
        expect_down(Probe::Http(no_sni)).await,
        DownReason::DigestMismatch { .. }
    ));

    // Verified against the right CA: up. Against the system roots: the
    // self-signed certificate is invalid, a clean TLS failure.
    let mut ca_file = tempfile("healthcheck-ca", identity.pem.as_bytes());
    let mut verified = insecure.clone();
    verified.tls = Some(TlsOptions {
        verify: TlsVerify::CaFile(ca_file.path.clone()),
        sni: None,
        send_sni: true,
    });
    expect_up(Probe::Http(verified.clone())).await;

    let mut wrong_name = verified.clone();
    wrong_name.tls = Some(TlsOptions {
        verify: TlsVerify::CaFile(ca_file.path.clone()),
        sni: Some("other.example".to_owned()),
        send_sni: true,
    });
    assert!(matches!(
        expect_down(Probe::Http(wrong_name)).await,
        DownReason::Tls(_)
    ));

    let other_ca = support::self_signed();
    ca_file.rewrite(other_ca.pem.as_bytes());
    let mut untrusted = insecure.clone();
    untrusted.tls = Some(TlsOptions {
        verify: TlsVerify::CaFile(ca_file.path.clone()),
        sni: None,
        send_sni: true,
    });
    match expect_down(Probe::Http(untrusted)).await {
        DownReason::Tls(message) => assert!(message.contains("certificate"), "{message}"),
        other => panic!("expected TLS failure, got {other}"),
    }

    // TLS to a plain HTTP server, and plain HTTP to a TLS server.
    let plain = support::http_server().await;
    let mut tls_to_plain = http(plain, "/");
    tls_to_plain.tls = Some(TlsOptions::insecure());
    assert!(matches!(
        expect_down(Probe::Http(tls_to_plain)).await,
        DownReason::Tls(_)
    ));
    let plain_to_tls = expect_down(Probe::Http(http(server, "/"))).await;
    assert!(
        matches!(
            plain_to_tls,
            DownReason::Http(_) | DownReason::ConnectionReset
        ),
        "{plain_to_tls}"
    );
}

#[tokio::test]
async fn genhash_prints_the_body_digest() {
    let server = support::http_server().await;
    let report = genhash(&GenhashRequest::new(format!("http://{server}/")))
        .await
        .expect("genhash");
    assert_eq!(report.status, 200);
    assert_eq!(report.body_len, support::PAGE.len() as u64);
    assert_eq!(report.digest, Md5Digest::of(support::PAGE));

    let identity = support::self_signed();
    let tls_server = support::https_server(&identity).await;
    let mut request = GenhashRequest::new(format!("https://localhost:{}/sni", tls_server.port()));
    request.connect_to = Some(tls_server);
    let report = genhash(&request).await.expect("genhash over TLS");
    assert_eq!(
        report.digest,
        Md5Digest::of(b"localhost"),
        "SNI from the URL host"
    );

    let mut huge = GenhashRequest::new(format!("http://{server}/huge"));
    huge.max_body = 1024 * 1024;
    assert!(matches!(
        genhash(&huge).await,
        Err(healthcheck::GenhashError::Fetch(
            DownReason::BodyTooLarge { .. }
        ))
    ));
    assert!(matches!(
        genhash(&GenhashRequest::new("ftp://x/")).await,
        Err(healthcheck::GenhashError::InvalidUrl { .. })
    ));
}

#[tokio::test]
async fn smtp_greeting_and_helo() {
    let good = support::smtp_server("220-mx.example ESMTP\r\n220 ready\r\n", "250 hello\r\n").await;
    expect_up(Probe::Smtp(SmtpCheck::new(good))).await;
    let mut helo = SmtpCheck::new(good);
    helo.helo_name = Some("checker.example".to_owned());
    expect_up(Probe::Smtp(helo)).await;

    let busy = support::smtp_server("554 no service\r\n", "250 hello\r\n").await;
    assert!(
        matches!(expect_down(Probe::Smtp(SmtpCheck::new(busy))).await, DownReason::Smtp(m) if m.contains("554"))
    );

    let rude = support::smtp_server("220 ready\r\n", "550 go away\r\n").await;
    let mut rude_helo = SmtpCheck::new(rude);
    rude_helo.helo_name = Some("checker.example".to_owned());
    assert!(
        matches!(expect_down(Probe::Smtp(rude_helo)).await, DownReason::Smtp(m) if m.contains("550"))
    );

    let ssh = support::misbehaving_server(Misbehave::NotHttp).await;
    assert!(matches!(
        expect_down(Probe::Smtp(SmtpCheck::new(ssh))).await,
        DownReason::Smtp(_)
    ));
    let silent = support::misbehaving_server(Misbehave::Silent).await;
    assert_eq!(
        expect_down(Probe::Smtp(SmtpCheck::new(silent))).await,
        DownReason::Timeout(TIMEOUT)
    );
}

#[tokio::test]
async fn dns_answers_rcodes_and_bad_replies() {
    let server = support::dns_server(DnsMode::Answer).await;
    expect_up(Probe::Dns(DnsCheck::new(server, "www.example.com."))).await;
    let mut expected = DnsCheck::new(server, "www.example.com");
    expected.expected = vec!["192.0.2.11".to_owned(), "192.0.2.10".to_owned()];
    expect_up(Probe::Dns(expected.clone())).await;

    expected.expected.push("192.0.2.99".to_owned());
    match expect_down(Probe::Dns(expected)).await {
        DownReason::DnsAnswerMismatch { missing, got } => {
            assert_eq!(missing, "192.0.2.99");
            assert_eq!(got, ["192.0.2.10", "192.0.2.11"]);
        }
        other => panic!("expected answer mismatch, got {other}"),
    }

    let nx = support::dns_server(DnsMode::NxDomain).await;
    assert!(matches!(
        expect_down(Probe::Dns(DnsCheck::new(nx, "nope.example."))).await,
        DownReason::DnsRcode(_)
    ));
    let garbage = support::dns_server(DnsMode::WrongIdThenGarbage).await;
    assert!(matches!(
        expect_down(Probe::Dns(DnsCheck::new(garbage, "www.example.com."))).await,
        DownReason::DnsMalformed(_)
    ));
    let spoofed_first = support::dns_server(DnsMode::WrongIdThenAnswer).await;
    expect_up(Probe::Dns(DnsCheck::new(spoofed_first, "www.example.com."))).await;

    let closed = support::closed_port().await;
    assert_eq!(
        expect_down(Probe::Dns(DnsCheck::new(closed, "www.example.com."))).await,
        DownReason::ConnectionRefused
    );
    let mut bad_type = DnsCheck::new(server, "x.");
    bad_type.record_type = "NOPE".to_owned();
    assert!(Probe::Dns(bad_type).prepare().is_err());
}

#[tokio::test]
async fn udp_reply_silence_and_refusal() {
    let echo = support::udp_echo_server().await;
    let mut check = UdpCheck::new(echo);
    check.payload = b"ping".to_vec();
    check.require_reply = true;
    check.expected_prefix = Some(b"pi".to_vec());
    expect_up(Probe::Udp(check.clone())).await;

    check.expected_prefix = Some(b"pong".to_vec());
    assert_eq!(
        expect_down(Probe::Udp(check)).await,
        DownReason::UdpReplyMismatch
    );

    let closed = support::closed_port().await;
    assert_eq!(
        expect_down(Probe::Udp(UdpCheck::new(closed))).await,
        DownReason::ConnectionRefused
    );

    // A UDP socket that never answers: fine without require_reply, down with.
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_addr = silent.local_addr().expect("addr");
    expect_up(Probe::Udp(UdpCheck::new(silent_addr))).await;
    let mut must_reply = UdpCheck::new(silent_addr);
    must_reply.require_reply = true;
    assert_eq!(
        expect_down(Probe::Udp(must_reply)).await,
        DownReason::Timeout(TIMEOUT)
    );
}

#[tokio::test]
async fn script_exit_codes_and_weights() {
    expect_up(Probe::Script(ScriptCheck::shell("exit 0"))).await;
    assert_eq!(
        expect_down(Probe::Script(ScriptCheck::shell("exit 3"))).await,
        DownReason::ScriptExit(3)
    );

    let mut dynamic = ScriptCheck::shell("exit 12");
    dynamic.dynamic_weight = true;
    let report = run(Probe::Script(dynamic)).await;
    assert_eq!(report.result, Ok(ProbeSuccess::with_weight(10)));

    assert_eq!(
        expect_down(Probe::Script(ScriptCheck::shell("kill -TERM $$"))).await,
        DownReason::ScriptSignal(15)
    );
    assert!(matches!(
        expect_down(Probe::Script(ScriptCheck::new(
            "/nonexistent/healthcheck-script",
            Vec::<String>::new()
        )))
        .await,
        DownReason::ScriptSpawn(_)
    ));
}

#[tokio::test]
async fn script_flooding_stdout_costs_nothing() {
    // 200 MB to stdout and stderr, then success: discarded, not buffered.
    let flood =
        ScriptCheck::shell("head -c 100000000 /dev/zero; head -c 100000000 /dev/zero >&2; exit 0");
    expect_up(Probe::Script(flood)).await;
}

#[tokio::test]
async fn hanging_script_is_killed_with_its_process_group() {
    let pid_file = tempfile("healthcheck-grandchild", b"");
    let command = format!(
        "sleep 300 & echo $! > {}; sleep 300",
        pid_file.path.display()
    );
    assert_eq!(
        expect_down(Probe::Script(ScriptCheck::shell(command))).await,
        DownReason::Timeout(TIMEOUT)
    );
    let grandchild: i32 = std::fs::read_to_string(&pid_file.path)
        .expect("pid file")
        .trim()
        .parse()
        .expect("a pid");
    // SIGKILL is delivered at once, but the zombie waits for its parent's
    // reaper (init); poll briefly until it is gone or a zombie.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let state = std::fs::read_to_string(format!("/proc/{grandchild}/stat"));
        let alive = match &state {
            Ok(stat) => !stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z'),
            Err(_) => false,
        };
        if !alive {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "grandchild {grandchild} survived: {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A file under the temp dir, removed on drop.
struct TempFile {
    path: std::path::PathBuf,
}

impl TempFile {
    fn rewrite(&mut self, contents: &[u8]) {
        std::fs::write(&self.path, contents).expect("write temp file");
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn tempfile(prefix: &str, contents: &[u8]) -> TempFile {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let path = std::env::temp_dir().join(format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let mut file = std::fs::File::create(&path).expect("create temp file");
    file.write_all(contents).expect("write temp file");
    TempFile { path }
}

#[tokio::test]
async fn longest_timeouts_do_not_overflow() {
    // Duration::MAX is far beyond what Timing accepts (MAX_DURATION), but a
    // probe run directly must still not panic on it.
    let mut tcp = TcpCheck::new(support::closed_port().await);
    tcp.connect_timeout = Some(Duration::MAX);
    let report = Probe::Tcp(tcp)
        .prepare()
        .expect("valid")
        .run(0, Duration::MAX)
        .await;
    assert_eq!(report.result, Err(DownReason::ConnectionRefused));
    let udp = UdpCheck::new(support::udp_echo_server().await);
    let report = Probe::Udp(udp)
        .prepare()
        .expect("valid")
        .run(0, Duration::MAX)
        .await;
    assert!(report.result.is_ok(), "{:?}", report.result);
}
