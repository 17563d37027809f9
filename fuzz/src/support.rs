//! Helpers shared by the fuzz targets.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A peer that sends fixed chunks (one per read, then end of stream) and
/// swallows whatever it is sent: a server's reply, delivered in the
/// segments the fuzzer chose.
#[derive(Debug, Default)]
pub struct Scripted {
    chunks: VecDeque<Vec<u8>>,
    /// Bytes written to the peer.
    pub written: usize,
    answers: bool,
    reader: Option<Waker>,
}

impl Scripted {
    /// A peer that will send `chunks`, in order, at once (a server that
    /// talks first, or one that does not wait for the request).
    pub fn new(chunks: impl IntoIterator<Item = Vec<u8>>) -> Self {
        Scripted {
            chunks: chunks.into_iter().filter(|c| !c.is_empty()).collect(),
            ..Scripted::default()
        }
    }

    /// A peer that sends `chunks` once it has received something: a server
    /// answering a request.
    pub fn answering(chunks: impl IntoIterator<Item = Vec<u8>>) -> Self {
        Scripted {
            answers: true,
            ..Scripted::new(chunks)
        }
    }
}

impl AsyncRead for Scripted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.answers && self.written == 0 {
            self.reader = Some(cx.waker().clone());
            return Poll::Pending;
        }
        if let Some(mut chunk) = self.chunks.pop_front() {
            let n = chunk.len().min(buf.remaining());
            buf.put_slice(&chunk[..n]);
            if n < chunk.len() {
                self.chunks.push_front(chunk.split_off(n));
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Scripted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.written += buf.len();
        if let Some(w) = self.reader.take() {
            w.wake();
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Cuts `bytes` into chunks whose sizes (1..=256) come from `sizes`, cycled;
/// the whole as one chunk when `sizes` is empty.
pub fn chunked(bytes: &[u8], sizes: &[u8]) -> Vec<Vec<u8>> {
    if sizes.is_empty() {
        return vec![bytes.to_vec()];
    }
    let mut out = Vec::new();
    let mut rest = bytes;
    let mut i = 0;
    while !rest.is_empty() {
        let n = (usize::from(sizes[i % sizes.len()]) + 1).min(rest.len());
        out.push(rest[..n].to_vec());
        rest = &rest[n..];
        i += 1;
    }
    out
}

/// A single-threaded tokio runtime, built once per process.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime without I/O or timers always builds")
    })
}
