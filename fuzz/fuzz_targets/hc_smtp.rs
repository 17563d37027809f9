//! SMTP reply reading (RFC 5321 4.2): whatever the server sends and however
//! TCP segments it, the check never panics or hangs; the verdict does not
//! depend on segmentation once the reply completes within the 4 KiB cap;
//! the reply code of a prefix never changes as more bytes arrive; and a
//! reply built from lines (`NNN-text` continuations, then `NNN text`) gives
//! the last line's code, up only when it is the expected one.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use healthcheck::DownReason;
use healthcheck::fuzzing::{smtp_expect_reply, smtp_reply_code};
use libfuzzer_sys::fuzz_target;
use vrrp_fuzz::support::{Scripted, chunked, runtime};

const MAX_REPLY: usize = 4096;

fn expect(chunks: Vec<Vec<u8>>, code: u16) -> Result<(), DownReason> {
    let mut peer = Scripted::new(chunks);
    runtime().block_on(smtp_expect_reply(&mut peer, code))
}

/// The shortest prefix that settles the verdict (it ends at a newline).
fn settled_at(reply: &[u8]) -> Option<usize> {
    reply
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .map(|(i, _)| i + 1)
        .find(|&end| smtp_reply_code(&reply[..end]).is_some())
}

fn raw(data: &[u8]) {
    // Layout: expected code (2 bytes), segment-size count, sizes, reply.
    let Some((head, rest)) = data.split_first_chunk::<3>() else {
        return;
    };
    let code = u16::from_le_bytes([head[0], head[1]]) % 1000;
    let (sizes, reply) = rest.split_at(usize::from(head[2] % 8).min(rest.len()));
    let whole = smtp_reply_code(reply);
    // Monotone: a verdict on a prefix is the verdict on the whole.
    if let Some(end) = settled_at(reply) {
        assert_eq!(
            smtp_reply_code(&reply[..end]),
            whole,
            "a later byte changed the verdict"
        );
    } else {
        assert_eq!(whole, None);
    }
    let segmented = expect(chunked(reply, sizes), code);
    match settled_at(reply) {
        Some(end) if end <= MAX_REPLY => {
            assert_eq!(
                segmented,
                expect(vec![reply.to_vec()], code),
                "segmentation changed the verdict"
            );
            assert_eq!(segmented.is_ok(), whole == Some(Ok(code)));
        }
        Some(_) => {}
        None => assert!(segmented.is_err(), "an incomplete reply passed"),
    }
}

#[derive(Arbitrary, Debug)]
struct Line {
    code: u16,
    /// `NNN<CRLF>` with no text (allowed for the last line).
    bare: bool,
    text: String,
    lf_only: bool,
}

fn structured(data: &[u8]) -> arbitrary::Result<()> {
    let mut u = Unstructured::new(data);
    let lines: Vec<Line> = u.arbitrary()?;
    let Some(last) = lines.last() else {
        return Ok(());
    };
    let expected = if bool::arbitrary(&mut u)? {
        last.code % 1000
    } else {
        u16::arbitrary(&mut u)? % 1000
    };
    let sizes: Vec<u8> = u.arbitrary()?;
    let mut reply = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let final_line = i + 1 == lines.len();
        reply.extend_from_slice(format!("{:03}", line.code % 1000).as_bytes());
        if !(final_line && line.bare) {
            reply.push(if final_line { b' ' } else { b'-' });
            let text: String = line
                .text
                .chars()
                .filter(|c| *c != '\n' && *c != '\r')
                .collect();
            reply.extend_from_slice(text.as_bytes());
        }
        reply.extend_from_slice(if line.lf_only { b"\n" } else { b"\r\n" });
    }
    assert_eq!(smtp_reply_code(&reply), Some(Ok(last.code % 1000)));
    if reply.len() <= MAX_REPLY {
        let result = expect(chunked(&reply, &sizes), expected);
        assert_eq!(result.is_ok(), expected == last.code % 1000, "{result:?}");
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    raw(data);
    let _ = structured(data);
});
