//! DNS check replies. Any datagram: judging it never panics, and only a
//! datagram carrying our query id is taken as the answer. Replies built
//! from arbitrary headers, questions and A/AAAA/CNAME/NS/MX answers (sent
//! through hickory's encoder, so on the wire as a server sends them) are
//! judged as RFC 1035 reads them: up only for a response to our question
//! with NOERROR whose answers of the queried type include every expected
//! value, written as an operator writes it (any case, trailing dot or not).
#![no_main]

use std::net::{Ipv4Addr, Ipv6Addr};

use arbitrary::{Arbitrary, Unstructured};
use healthcheck::fuzzing::dns_reply;
use healthcheck::{DnsCheck, DownReason};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, NS};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use libfuzzer_sys::fuzz_target;

const QNAME: &str = "www.example.com";

fn check(record_type: &str, expected: Vec<String>) -> DnsCheck {
    let mut c = DnsCheck::new("192.0.2.53:53".parse().expect("address"), QNAME);
    c.record_type = record_type.to_owned();
    c.expected = expected;
    c
}

fn raw(data: &[u8]) {
    let Some(&[hi, lo]) = data.first_chunk::<2>() else {
        assert_eq!(
            dns_reply(&check("A", vec![]), 0, data).expect("valid check"),
            None
        );
        return;
    };
    let id = u16::from_be_bytes([hi, lo]);
    for (ty, expected) in [
        ("A", vec![]),
        ("MX", vec!["10 mail.example.com".to_owned()]),
    ] {
        let c = check(ty, expected);
        let verdict = dns_reply(&c, id, data).expect("valid check");
        assert!(verdict.is_some(), "a datagram with our id was ignored");
        if verdict.is_some_and(|v| v.is_ok()) {
            let m = Message::from_vec(data).expect("an accepted reply decodes");
            assert_eq!(m.metadata.message_type, MessageType::Response);
            assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        }
        assert_eq!(
            dns_reply(&c, id ^ 1, data).expect("valid check"),
            None,
            "another id was taken"
        );
    }
}

#[derive(Arbitrary, Debug)]
struct Label(u8, Vec<u8>);

fn name_text(labels: &[Label]) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut parts: Vec<String> = labels
        .iter()
        .take(4)
        .map(|l| {
            let mut s: String =
                l.1.iter()
                    .take(12)
                    .map(|b| char::from(CHARS[usize::from(*b) % CHARS.len()]))
                    .collect();
            s.insert(0, char::from(CHARS[usize::from(l.0) % 26]));
            s
        })
        .collect();
    if parts.is_empty() {
        parts.push("example".to_owned());
    }
    parts.join(".")
}

#[derive(Arbitrary, Debug)]
enum Answer {
    A([u8; 4]),
    Aaaa([u8; 16]),
    Cname(Vec<Label>),
    Ns(Vec<Label>),
    Mx(u16, Vec<Label>),
}

impl Answer {
    fn rtype(&self) -> RecordType {
        match self {
            Answer::A(_) => RecordType::A,
            Answer::Aaaa(_) => RecordType::AAAA,
            Answer::Cname(_) => RecordType::CNAME,
            Answer::Ns(_) => RecordType::NS,
            Answer::Mx(..) => RecordType::MX,
        }
    }

    /// Presentation format (RFC 1035 5.1) without the final dot.
    fn text(&self) -> String {
        match self {
            Answer::A(o) => Ipv4Addr::from(*o).to_string(),
            Answer::Aaaa(o) => Ipv6Addr::from(*o).to_string(),
            Answer::Cname(n) | Answer::Ns(n) => name_text(n),
            Answer::Mx(p, n) => format!("{p} {}", name_text(n)),
        }
    }

    fn rdata(&self) -> Option<RData> {
        let name = |n: &[Label]| Name::from_ascii(format!("{}.", name_text(n))).ok();
        Some(match self {
            Answer::A(o) => RData::A(A(Ipv4Addr::from(*o))),
            Answer::Aaaa(o) => RData::AAAA(AAAA(Ipv6Addr::from(*o))),
            Answer::Cname(n) => RData::CNAME(CNAME(name(n)?)),
            Answer::Ns(n) => RData::NS(NS(name(n)?)),
            Answer::Mx(p, n) => RData::MX(MX::new(*p, name(n)?)),
        })
    }
}

#[derive(Arbitrary, Debug)]
enum Expect {
    /// The presentation of answer `i`, as an operator might write it.
    Answer {
        i: u8,
        upper: bool,
        dot: bool,
    },
    Other(Answer),
}

fn structured(data: &[u8]) -> arbitrary::Result<()> {
    let mut u = Unstructured::new(data);
    let qtype = *u.choose(&[
        RecordType::A,
        RecordType::AAAA,
        RecordType::CNAME,
        RecordType::NS,
        RecordType::MX,
    ])?;
    let id = u16::arbitrary(&mut u)?;
    let is_response = u.ratio(7, 8)?;
    let same_name = u.ratio(7, 8)?;
    let same_type = u.ratio(7, 8)?;
    let has_question = u.ratio(15, 16)?;
    let rcode = *u.choose(&[
        ResponseCode::NoError,
        ResponseCode::NoError,
        ResponseCode::ServFail,
        ResponseCode::NXDomain,
        ResponseCode::Refused,
    ])?;
    let answers: Vec<Answer> = u.arbitrary()?;
    let expects: Vec<Expect> = u.arbitrary()?;

    let got_texts: Vec<String> = answers
        .iter()
        .filter(|a| a.rtype() == qtype)
        .map(|a| a.text().to_ascii_lowercase())
        .collect();
    let mut expected = Vec::new();
    for e in expects.iter().take(4) {
        match e {
            Expect::Answer { i, upper, dot } if !answers.is_empty() => {
                let a = &answers[usize::from(*i) % answers.len()];
                let mut t = a.text();
                if *upper {
                    t = t.to_ascii_uppercase();
                }
                if *dot && !matches!(a, Answer::A(_) | Answer::Aaaa(_)) {
                    t.push('.');
                }
                expected.push(t);
            }
            Expect::Answer { .. } => {}
            Expect::Other(a) => expected.push(a.text()),
        }
    }
    // Expected values are text, compared with the answers of the queried type.
    let all_present = expected
        .iter()
        .all(|e| got_texts.contains(&e.trim_end_matches('.').to_ascii_lowercase()));

    let mut m = Message::new(
        id,
        if is_response {
            MessageType::Response
        } else {
            MessageType::Query
        },
        OpCode::Query,
    );
    m.metadata.response_code = rcode;
    let owner = Name::from_ascii(format!("{QNAME}.")).expect("valid name");
    if has_question {
        let qname = if same_name {
            owner.clone()
        } else {
            Name::from_ascii("other.example.").expect("valid name")
        };
        let t = if same_type {
            qtype
        } else if qtype == RecordType::A {
            RecordType::MX
        } else {
            RecordType::A
        };
        m.add_query(Query::query(qname, t));
    }
    for a in &answers {
        let Some(rdata) = a.rdata() else {
            return Ok(());
        };
        m.add_answer(Record::from_rdata(owner.clone(), 60, rdata));
    }
    let Ok(bytes) = m.to_vec() else { return Ok(()) };

    let c = check(&qtype.to_string(), expected.clone());
    let verdict = dns_reply(&c, id, &bytes)
        .expect("valid check")
        .expect("our id");
    let question = has_question && same_name && same_type;
    let why = format!(
        "{verdict:?} all {all_present} answers {answers:?} expects {expects:?} qtype {qtype} response {is_response} question {question} {rcode:?} got {got_texts:?} expected {expected:?}"
    );
    match verdict {
        Ok(_) => assert!(
            is_response && question && rcode == ResponseCode::NoError && all_present,
            "{why}"
        ),
        Err(DownReason::DnsMalformed(_)) => assert!(!is_response || !question, "{why}"),
        Err(DownReason::DnsRcode(_)) => assert!(
            is_response && question && rcode != ResponseCode::NoError,
            "{why}"
        ),
        Err(DownReason::DnsAnswerMismatch { .. }) => {
            assert!(
                is_response && question && rcode == ResponseCode::NoError && !all_present,
                "{why}"
            )
        }
        Err(other) => panic!("unexpected verdict {other:?}"),
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    raw(data);
    let _ = structured(data);
});
