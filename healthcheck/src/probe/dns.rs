//! DNS query check (keepalived `DNS_CHECK`), over UDP with hickory-proto.
//!
//! The query is built here (no resolver): one datagram out, the first reply
//! with our id back. Replies with another id are ignored, as a resolver
//! would; a reply that does not decode counts as down.

use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::str::FromStr;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use crate::error::{ConfigError, DownReason};
use crate::schedule::{ProbeResult, ProbeSuccess};

/// Largest reply read (RFC 6891 section 6.2.5 suggests 4096 with EDNS;
/// without EDNS a server sends at most 512).
const MAX_REPLY: usize = 4096;

/// Up when the server answers the query with NOERROR and, if `expected` is
/// not empty, every expected value is among the answers of the queried type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DnsCheck {
    /// Server address and port (usually 53).
    pub server: SocketAddr,
    /// Source address and port to send from; `None` for any.
    pub bind: Option<SocketAddr>,
    /// Interface to send through (keepalived `bind_if`).
    pub bind_interface: Option<String>,
    /// Name to query, such as `www.example.com.`.
    pub name: String,
    /// Record type mnemonic, such as `A`, `AAAA`, `MX`, `SOA` (default `A`).
    pub record_type: String,
    /// Values the answer must hold, in presentation format (`192.0.2.1`,
    /// `mail.example.com.`); compared without case or trailing dot.
    pub expected: Vec<String>,
}

impl DnsCheck {
    /// An `A` query for `name` at `server`, accepting any answer.
    #[must_use]
    pub fn new(server: SocketAddr, name: impl Into<String>) -> Self {
        Self {
            server,
            bind: None,
            bind_interface: None,
            name: name.into(),
            record_type: "A".to_owned(),
            expected: Vec::new(),
        }
    }
}

#[derive(Debug)]
pub(crate) struct PreparedDns {
    server: SocketAddr,
    bind: Option<SocketAddr>,
    bind_interface: Option<String>,
    query: Query,
    expected: Vec<String>,
    id_keys: RandomState,
}

impl PreparedDns {
    pub(crate) fn new(check: &DnsCheck) -> Result<Self, ConfigError> {
        let mut name = Name::from_ascii(&check.name).map_err(|_| ConfigError::InvalidDns {
            what: "name",
            value: check.name.clone(),
        })?;
        // A checker has no search list: every name is absolute.
        name.set_fqdn(true);
        let record_type =
            RecordType::from_str(&check.record_type.to_ascii_uppercase()).map_err(|_| {
                ConfigError::InvalidDns {
                    what: "record type",
                    value: check.record_type.clone(),
                }
            })?;
        Ok(Self {
            server: check.server,
            bind: check.bind,
            bind_interface: check.bind_interface.clone(),
            query: Query::query(name, record_type),
            expected: check
                .expected
                .iter()
                .map(|value| normalize(value))
                .collect(),
            id_keys: RandomState::new(),
        })
    }

    pub(crate) async fn probe(&self, serial: u64) -> ProbeResult {
        // Unpredictable ids (RFC 5452 section 9.2), distinct per attempt.
        let id = (self.id_keys.hash_one(serial) & 0xffff) as u16;
        let mut request = Message::new(id, MessageType::Query, OpCode::Query);
        request.metadata.recursion_desired = true;
        request.add_query(self.query.clone());
        let bytes = request
            .to_vec()
            .map_err(|e| DownReason::Internal(format!("encode DNS query: {e}")))?;

        let source = super::Source {
            address: self.bind.map(|b| b.ip()),
            port: self.bind.map(|b| b.port()).filter(|p| *p != 0),
            interface: self.bind_interface.as_deref(),
        };
        let socket = super::udp_socket(self.server, source).await?;
        socket
            .send(&bytes)
            .await
            .map_err(|e| DownReason::from_io("send", &e))?;

        let mut buf = vec![0_u8; MAX_REPLY];
        loop {
            let len = socket
                .recv(&mut buf)
                .await
                .map_err(|e| DownReason::from_io("recv", &e))?;
            if let Some(result) = self.on_datagram(id, buf.get(..len).unwrap_or_default()) {
                return result;
            }
        }
    }

    /// The verdict on one received datagram, `None` if it is not an
    /// answer to query `id`.
    pub(crate) fn on_datagram(&self, id: u16, reply: &[u8]) -> Option<ProbeResult> {
        // Too short to carry an id: noise, not an answer to us.
        if reply.len() < 2 || reply[..2] != id.to_be_bytes() {
            return None;
        }
        Some(
            Message::from_vec(reply)
                .map_err(|e| DownReason::DnsMalformed(e.to_string()))
                .and_then(|message| self.judge(&message)),
        )
    }

    fn judge(&self, message: &Message) -> ProbeResult {
        if message.metadata.message_type != MessageType::Response {
            return Err(DownReason::DnsMalformed(
                "reply is not a response".to_owned(),
            ));
        }
        let same_question = message.queries.first().is_some_and(|q| {
            q.name() == self.query.name()
                && q.query_type() == self.query.query_type()
                && q.query_class() == self.query.query_class()
        });
        if !same_question {
            return Err(DownReason::DnsMalformed(
                "reply is for another question".to_owned(),
            ));
        }
        if message.metadata.response_code != ResponseCode::NoError {
            return Err(DownReason::DnsRcode(
                message.metadata.response_code.to_string(),
            ));
        }
        let got: Vec<String> = message
            .answers
            .iter()
            .filter(|record| record.record_type() == self.query.query_type())
            .map(|record| normalize(&record.data.to_string()))
            .collect();
        if let Some(missing) = self.expected.iter().find(|value| !got.contains(value)) {
            return Err(DownReason::DnsAnswerMismatch {
                missing: missing.clone(),
                got,
            });
        }
        Ok(ProbeSuccess::default())
    }
}

fn normalize(value: &str) -> String {
    value.trim().trim_end_matches('.').to_ascii_lowercase()
}
