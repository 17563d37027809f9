//! A small SMTP client for alert mail (RFC 5321): one message per
//! connection, `HELO`, `MAIL FROM`, one `RCPT TO` per recipient, `DATA`,
//! `QUIT`, as keepalived's `smtp.c` sends its alerts. No TLS and no
//! authentication (neither has keepalived): it talks to a local relay.
//! Every step is bounded by one time limit and every reply by the SMTP
//! check's reply cap, so a stuck relay costs one task for that long.
//!
//! ```no_run
//! use std::time::Duration;
//! use healthcheck::mail::{Mail, send_mail};
//! # async fn f() -> Result<(), healthcheck::mail::MailError> {
//! let mail = Mail {
//!     helo: "lb-1.example.com".into(),
//!     from: "keepalived@lb-1.example.com".into(),
//!     to: vec!["ops@example.com".into()],
//!     data: Mail::message("Mon, 01 Mar 2021 09:44:08 +0000", "keepalived@lb-1.example.com",
//!         &["ops@example.com".into()], "[lb-1] VRRP Instance VI_1 - Entering MASTER state",
//!         "=> VRRP Instance is now owning VRRP VIPs <="),
//! };
//! send_mail(("127.0.0.1", 25), &mail, Duration::from_secs(30)).await?;
//! # Ok(()) }
//! ```

use std::time::{Duration, SystemTime};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::error::DownReason;
use crate::probe::smtp::expect_reply;

/// One message and its envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// The name sent in `HELO`.
    pub helo: String,
    /// The envelope sender (`MAIL FROM:<...>`).
    pub from: String,
    /// The envelope recipients (`RCPT TO:<...>` each).
    pub to: Vec<String>,
    /// The message (headers, blank line, body), lines ending in CRLF; it
    /// is dot-stuffed when sent.
    pub data: String,
}

/// Why a message was not accepted by the relay.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MailError {
    /// The relay's name did not resolve.
    #[error("cannot resolve {host}: {detail}")]
    Resolve {
        /// The name.
        host: String,
        /// Why.
        detail: String,
    },
    /// A step did not finish within the time limit.
    #[error("{0}: no answer within the time limit")]
    Timeout(&'static str),
    /// Connecting, sending or a reply failed (a refused connection, an
    /// unexpected code...).
    #[error("{0}")]
    Exchange(DownReason),
    /// An address would break the envelope (a CR, LF or angle bracket).
    #[error("{0:?} cannot be sent in an SMTP envelope")]
    BadAddress(String),
}

impl Mail {
    /// keepalived's alert message: `Date`, `From`, `Subject`, `X-Mailer`
    /// and `To` headers, a blank line, the body.
    #[must_use]
    pub fn message(date: &str, from: &str, to: &[String], subject: &str, body: &str) -> String {
        format!(
            "Date: {date}\r\nFrom: {from}\r\nSubject: {subject}\r\nX-Mailer: Keepalived (vrrpd)\r\nTo: {}\r\n\r\n{body}\r\n",
            to.join(", ")
        )
    }
}

/// `time` as RFC 5322 section 3.3 writes a date, in UTC
/// (`Mon, 01 Mar 2021 09:44:08 +0000`).
#[must_use]
pub fn rfc5322_date(time: SystemTime) -> String {
    let secs = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let weekday = DAYS[usize::try_from(days.rem_euclid(7)).unwrap_or(0)];
    let month_name = MONTHS[usize::try_from(month - 1).unwrap_or(0)];
    format!(
        "{weekday}, {day:02} {month_name} {year} {:02}:{:02}:{:02} +0000",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Sends `mail` through the relay at `server` (a name or an address, and
/// a port), each step within `limit`.
///
/// # Errors
/// A [`MailError`] saying which step failed.
pub async fn send_mail(server: (&str, u16), mail: &Mail, limit: Duration) -> Result<(), MailError> {
    for address in std::iter::once(&mail.from).chain(&mail.to) {
        if address.contains(['\r', '\n', '<', '>']) {
            return Err(MailError::BadAddress(address.clone()));
        }
    }
    let addresses: Vec<std::net::SocketAddr> =
        match tokio::time::timeout(limit, tokio::net::lookup_host(server)).await {
            Ok(Ok(a)) => a.collect(),
            Ok(Err(e)) => {
                return Err(MailError::Resolve {
                    host: server.0.to_owned(),
                    detail: e.to_string(),
                });
            }
            Err(_) => return Err(MailError::Timeout("resolve")),
        };
    let Some(target) = addresses.first().copied() else {
        return Err(MailError::Resolve {
            host: server.0.to_owned(),
            detail: "no address".to_owned(),
        });
    };
    let mut stream = within(limit, "connect", async {
        TcpStream::connect(target)
            .await
            .map_err(|e| DownReason::from_io("connect", &e))
    })
    .await?;
    within(
        limit,
        "greeting",
        expect_reply(&mut stream, 220, "greeting"),
    )
    .await?;
    let s = &mut stream;
    command(s, format!("HELO {}\r\n", mail.helo), 250, "HELO", limit).await?;
    command(
        s,
        format!("MAIL FROM:<{}>\r\n", mail.from),
        250,
        "MAIL",
        limit,
    )
    .await?;
    for to in &mail.to {
        command(s, format!("RCPT TO:<{to}>\r\n"), 250, "RCPT", limit).await?;
    }
    command(s, "DATA\r\n".to_owned(), 354, "DATA", limit).await?;
    command(
        s,
        format!("{}.\r\n", dot_stuffed(&mail.data)),
        250,
        "BODY",
        limit,
    )
    .await?;
    // The message is accepted; QUIT is politeness.
    let _ = command(s, "QUIT\r\n".to_owned(), 221, "QUIT", limit).await;
    Ok(())
}

/// `f` within `limit`.
async fn within<T>(
    limit: Duration,
    what: &'static str,
    f: impl std::future::Future<Output = Result<T, DownReason>>,
) -> Result<T, MailError> {
    match tokio::time::timeout(limit, f).await {
        Ok(result) => result.map_err(MailError::Exchange),
        Err(_) => Err(MailError::Timeout(what)),
    }
}

/// Sends `line` and expects `code` back, within `limit`.
async fn command(
    stream: &mut TcpStream,
    line: String,
    code: u16,
    what: &'static str,
    limit: Duration,
) -> Result<(), MailError> {
    within(limit, what, async {
        stream
            .write_all(line.as_bytes())
            .await
            .map_err(|e| DownReason::from_io("send", &e))?;
        expect_reply(stream, code, what).await
    })
    .await
}

/// RFC 5321 4.5.2: a line starting with `.` gets one more.
fn dot_stuffed(data: &str) -> String {
    let mut out = String::with_capacity(data.len() + 8);
    for line in data.split_inclusive('\n') {
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
    }
    if !out.ends_with("\r\n") {
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc_5322_in_utc() {
        assert_eq!(
            rfc5322_date(SystemTime::UNIX_EPOCH),
            "Thu, 01 Jan 1970 00:00:00 +0000"
        );
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_614_591_848);
        assert_eq!(rfc5322_date(t), "Mon, 01 Mar 2021 09:44:08 +0000");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc5322_date(leap), "Tue, 29 Feb 2000 00:00:00 +0000");
    }

    #[test]
    fn lines_starting_with_a_dot_are_stuffed() {
        assert_eq!(dot_stuffed("a\r\n.b\r\n"), "a\r\n..b\r\n");
        assert_eq!(dot_stuffed("x"), "x\r\n");
    }
}
