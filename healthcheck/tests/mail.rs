//! The alert mail client against a real SMTP server (Debian's
//! python3-aiosmtpd, with a handler that spools each message and its
//! envelope to a directory): the envelope, keepalived's headers and body,
//! dot-stuffing; a refused connection, a relay that never greets and a
//! relay that refuses a recipient are clean errors within the time limit.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use healthcheck::mail::{Mail, MailError, send_mail};

const SPOOL: &str = include_str!("support/smtp_spool.py");

/// aiosmtpd on a free loopback port, spooling into its own directory.
struct Relay {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Relay {
    fn start(name: &str) -> Relay {
        let dir =
            std::env::temp_dir().join(format!("healthcheck-mail-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("spool")).expect("dir");
        std::fs::write(dir.join("smtp_spool.py"), SPOOL).expect("handler");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new("/usr/bin/python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "smtp_spool.Spool"])
            .arg(dir.join("spool"))
            .env("PYTHONPATH", &dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3-aiosmtpd (apt-get install python3-aiosmtpd)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Relay { child, port, dir }
    }

    fn messages(&self) -> Vec<String> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.join("spool"))
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "eml"));
        files.sort();
        files
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn mail(to: &[&str], body: &str) -> Mail {
    let to: Vec<String> = to.iter().map(|s| (*s).to_owned()).collect();
    Mail {
        helo: "lb-1.example.com".into(),
        from: "keepalived@lb-1.example.com".into(),
        data: Mail::message(
            "Mon, 01 Mar 2021 09:44:08 +0000",
            "keepalived@lb-1.example.com",
            &to,
            "[lb-1] VRRP Instance VI_1 - Entering MASTER state",
            body,
        ),
        to,
    }
}

#[tokio::test]
async fn a_real_relay_gets_keepalived_s_message() {
    let relay = Relay::start("ok");
    let m = mail(
        &["ops@example.com", "oncall@example.com"],
        "=> VRRP Instance is now owning VRRP VIPs <=\r\n.a line with a dot",
    );
    send_mail(("127.0.0.1", relay.port), &m, Duration::from_secs(5))
        .await
        .expect("accepted");
    let got = relay.messages();
    assert_eq!(got.len(), 1, "{got:#?}");
    let text = &got[0];
    for line in [
        "X-Envelope-From: keepalived@lb-1.example.com",
        "X-Envelope-To: ops@example.com,oncall@example.com",
        "X-Helo: lb-1.example.com",
        "Subject: [lb-1] VRRP Instance VI_1 - Entering MASTER state",
        "From: keepalived@lb-1.example.com",
        "To: ops@example.com, oncall@example.com",
        "X-Mailer: Keepalived (vrrpd)",
        "Date: Mon, 01 Mar 2021 09:44:08 +0000",
        "=> VRRP Instance is now owning VRRP VIPs <=",
        // Dot-stuffed on the wire, unstuffed by the relay.
        ".a line with a dot",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    // Many in a row, each its own connection.
    for n in 0..5 {
        let m = mail(&["ops@example.com"], &format!("message {n}"));
        send_mail(("localhost", relay.port), &m, Duration::from_secs(5))
            .await
            .expect("accepted");
    }
    assert_eq!(relay.messages().len(), 6);
}

#[tokio::test]
async fn broken_relays_are_clean_errors_in_time() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let m = mail(&["ops@example.com"], "x");
    let started = Instant::now();
    let e = send_mail(("127.0.0.1", closed), &m, Duration::from_secs(2))
        .await
        .expect_err("refused");
    assert!(matches!(e, MailError::Exchange(_)), "{e}");
    assert!(started.elapsed() < Duration::from_secs(1));
    // A relay that accepts and never speaks.
    let mute = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = mute.local_addr().expect("addr").port();
    let hold = tokio::spawn(async move {
        let (conn, _) = mute.accept().await.expect("accept");
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(conn);
    });
    let started = Instant::now();
    let e = send_mail(("127.0.0.1", port), &m, Duration::from_millis(300))
        .await
        .expect_err("silent");
    assert_eq!(e, MailError::Timeout("greeting"));
    assert!(started.elapsed() < Duration::from_secs(1));
    hold.abort();
    // Addresses that would break the envelope.
    let mut bad = mail(&["ops@example.com>\r\nRCPT TO:<x@y"], "x");
    bad.from = "a@b".into();
    assert!(matches!(
        send_mail(("127.0.0.1", closed), &bad, Duration::from_secs(1)).await,
        Err(MailError::BadAddress(_))
    ));
}
