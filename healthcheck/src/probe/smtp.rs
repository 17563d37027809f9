//! SMTP greeting check (keepalived `SMTP_CHECK`).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::error::DownReason;
use crate::schedule::{ProbeResult, ProbeSuccess};

/// The longest reply (all lines of a multi-line reply) read before giving up;
/// RFC 5321 4.5.3.1.5 limits a reply line to 512 octets.
const MAX_REPLY: usize = 4096;

/// Up when the server greets with `220` and, if `helo_name` is set, answers
/// `HELO` with `250`. The check ends with `QUIT`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SmtpCheck {
    /// Address and port of the server (usually port 25).
    pub target: SocketAddr,
    /// Source address to connect from (keepalived `bindto`).
    pub bind: Option<IpAddr>,
    /// Source port (keepalived `bind_port`).
    pub bind_port: Option<u16>,
    /// Interface to connect through (keepalived `bind_if`).
    pub bind_interface: Option<String>,
    /// Limit on the connect alone.
    pub connect_timeout: Option<Duration>,
    /// Name sent in `HELO`; `None` skips the `HELO` exchange.
    pub helo_name: Option<String>,
}

impl SmtpCheck {
    /// Greeting-only check of `target`.
    #[must_use]
    pub fn new(target: SocketAddr) -> Self {
        Self {
            target,
            bind: None,
            bind_port: None,
            bind_interface: None,
            connect_timeout: None,
            helo_name: None,
        }
    }
}

pub(crate) async fn probe(check: &SmtpCheck) -> ProbeResult {
    let source = super::Source {
        address: check.bind,
        port: check.bind_port,
        interface: check.bind_interface.as_deref(),
    };
    let mut stream = super::connect_tcp(check.target, source, check.connect_timeout).await?;
    expect_reply(&mut stream, 220, "greeting").await?;
    if let Some(name) = &check.helo_name {
        let command = format!("HELO {name}\r\n");
        stream
            .write_all(command.as_bytes())
            .await
            .map_err(|e| DownReason::from_io("send HELO", &e))?;
        expect_reply(&mut stream, 250, "HELO").await?;
    }
    // Politeness only: the verdict is already known.
    let _ = stream.write_all(b"QUIT\r\n").await;
    Ok(ProbeSuccess::default())
}

/// Reads one (possibly multi-line, RFC 5321 4.2.1) reply and checks its code.
pub(crate) async fn expect_reply(
    stream: &mut (impl AsyncRead + Unpin),
    code: u16,
    what: &str,
) -> Result<(), DownReason> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0_u8; 512];
    loop {
        if let Some(reply_code) = complete_reply_code(&buf) {
            return match reply_code {
                Ok(got) if got == code => Ok(()),
                Ok(got) => Err(DownReason::Smtp(format!(
                    "{what}: expected {code}, got {got}"
                ))),
                Err(line) => Err(DownReason::Smtp(format!(
                    "{what}: not an SMTP reply: {line:?}"
                ))),
            };
        }
        if buf.len() >= MAX_REPLY {
            return Err(DownReason::Smtp(format!(
                "{what}: reply longer than {MAX_REPLY} bytes"
            )));
        }
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| DownReason::from_io("read", &e))?;
        if n == 0 {
            return Err(DownReason::Smtp(format!(
                "{what}: connection closed before a full reply"
            )));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// `Some(Ok(code))` once `buf` holds a full reply (its last line is
/// `NNN<SP>...` or `NNN<CRLF>`), `Some(Err(line))` at the first line that is
/// not a reply line, `None` while more bytes are needed.
pub(crate) fn complete_reply_code(buf: &[u8]) -> Option<Result<u16, String>> {
    let mut rest = buf;
    while let Some(end) = rest.iter().position(|&b| b == b'\n') {
        let line = &rest[..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        rest = &rest[end + 1..];
        let code = line
            .get(..3)
            .filter(|digits| digits.iter().all(u8::is_ascii_digit))
            .and_then(|digits| std::str::from_utf8(digits).ok())
            .and_then(|digits| digits.parse::<u16>().ok());
        let Some(code) = code else {
            return Some(Err(String::from_utf8_lossy(line)
                .chars()
                .take(80)
                .collect()));
        };
        match line.get(3) {
            Some(b'-') => continue,
            Some(b' ') | None => return Some(Ok(code)),
            Some(_) => {
                return Some(Err(String::from_utf8_lossy(line)
                    .chars()
                    .take(80)
                    .collect()));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::complete_reply_code;

    #[test]
    fn multi_line_reply_completes_at_last_line() {
        assert_eq!(complete_reply_code(b"220-hello\r\n"), None);
        assert_eq!(
            complete_reply_code(b"220-hello\r\n220 ready\r\n"),
            Some(Ok(220))
        );
        assert_eq!(complete_reply_code(b"554 go away\r\n"), Some(Ok(554)));
        assert_eq!(complete_reply_code(b"220\r\n"), Some(Ok(220)));
        assert!(matches!(
            complete_reply_code(b"HTTP/1.1 400 Bad\r\n"),
            Some(Err(_))
        ));
        assert_eq!(complete_reply_code(b"220 partial"), None);
    }
}
