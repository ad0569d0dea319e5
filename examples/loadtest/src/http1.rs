//! A minimal HTTP/1.1 keep-alive client for the callers: one connection per caller, requests
//! written as prepared bytes, answers framed by `content-length` or chunked encoding.
//!
//! The load tool shares the machine with the server it measures, so every microsecond its
//! callers spend is taken from the server. A general client (reqwest) costs about as much CPU
//! per `/schedule` call as the server's whole HTTP side; this one writes one buffer and reads
//! the answer, which is all a caller needs.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest answer head or body accepted.
const MAX_ANSWER: usize = 1 << 20;

/// An answer: status and body.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status code.
    pub status: u16,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

/// One keep-alive connection.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    /// Connects to `host:port` (an `http://host:port` base URL without the scheme).
    pub async fn connect(authority: &str) -> io::Result<Conn> {
        let stream = TcpStream::connect(authority).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(4096),
        })
    }

    /// Sends `request` (a complete HTTP/1.1 request) and reads the answer.
    pub async fn send(&mut self, request: &[u8]) -> io::Result<Answer> {
        self.stream.write_all(request).await?;
        self.buf.clear();
        loop {
            if let Some((status, head_len, framing)) = parse_head(&self.buf)? {
                let body = self.read_body(head_len, framing).await?;
                return Ok(Answer { status, body });
            }
            self.fill().await?;
        }
    }

    /// Reads more bytes into the buffer; an early close is an error.
    async fn fill(&mut self) -> io::Result<()> {
        if self.buf.len() > MAX_ANSWER {
            return Err(invalid("answer too large"));
        }
        let n = self.stream.read_buf(&mut self.buf).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection before answering",
            ));
        }
        Ok(())
    }

    async fn read_body(&mut self, head_len: usize, framing: Framing) -> io::Result<Vec<u8>> {
        match framing {
            Framing::Length(len) => {
                if len > MAX_ANSWER {
                    return Err(invalid("answer too large"));
                }
                while self.buf.len() < head_len + len {
                    self.fill().await?;
                }
                Ok(self.buf[head_len..head_len + len].to_vec())
            }
            Framing::Chunked => {
                let mut body = Vec::new();
                let mut at = head_len;
                loop {
                    // A chunk: its size in hex, CRLF, the bytes, CRLF; size 0 ends the body.
                    let Some(line_end) = find_crlf(&self.buf[at..]) else {
                        self.fill().await?;
                        continue;
                    };
                    let line = std::str::from_utf8(&self.buf[at..at + line_end])
                        .map_err(|_| invalid("chunk size is not text"))?;
                    let hex = line.split(';').next().unwrap_or_default().trim();
                    let size =
                        usize::from_str_radix(hex, 16).map_err(|_| invalid("bad chunk size"))?;
                    if body.len() + size > MAX_ANSWER {
                        return Err(invalid("answer too large"));
                    }
                    let data = at + line_end + 2;
                    if size == 0 {
                        // No trailers are expected: the final CRLF ends the answer.
                        while self.buf.len() < data + 2 {
                            self.fill().await?;
                        }
                        return Ok(body);
                    }
                    while self.buf.len() < data + size + 2 {
                        self.fill().await?;
                    }
                    body.extend_from_slice(&self.buf[data..data + size]);
                    at = data + size + 2;
                }
            }
        }
    }
}

/// How an answer's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
}

/// The status, head length and framing once the head is complete.
fn parse_head(buf: &[u8]) -> io::Result<Option<(u16, usize, Framing)>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut answer = httparse::Response::new(&mut headers);
    let head_len = match answer.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(invalid(&format!("bad answer head: {e}"))),
    };
    let status = answer.code.unwrap_or(0);
    let mut framing = Framing::Length(0);
    for h in answer.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let len = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| invalid("bad content-length"))?;
            framing = Framing::Length(len);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding")
            && h.value.eq_ignore_ascii_case(b"chunked")
        {
            framing = Framing::Chunked;
        }
    }
    Ok(Some((status, head_len, framing)))
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::net::TcpListener;

    /// A server that answers each request (read up to its blank line) with the next of
    /// `answers`, on one connection.
    async fn serve(answers: Vec<&'static [u8]>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            for answer in answers {
                let mut got = Vec::new();
                while !got.ends_with(b"\r\n\r\n") {
                    let mut b = [0u8; 1];
                    if s.read(&mut b).await.unwrap() == 0 {
                        return;
                    }
                    got.push(b[0]);
                }
                // Split the answer in two writes so the client must read more than once.
                let (a, b) = answer.split_at(answer.len() / 2);
                s.write_all(a).await.unwrap();
                s.flush().await.unwrap();
                tokio::task::yield_now().await;
                s.write_all(b).await.unwrap();
            }
        });
        addr
    }

    const GET: &[u8] = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";

    #[tokio::test]
    async fn reads_length_and_chunked_answers_on_one_connection() {
        let addr = serve(vec![
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
            b"HTTP/1.1 400 Bad Request\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\n\r\n",
        ])
        .await;
        let mut conn = Conn::connect(&addr).await.unwrap();
        let a = conn.send(GET).await.unwrap();
        assert_eq!((a.status, a.body.as_slice()), (200, &b"hello"[..]));
        let a = conn.send(GET).await.unwrap();
        assert_eq!((a.status, a.body.as_slice()), (400, &b"abcde"[..]));
        let a = conn.send(GET).await.unwrap();
        assert_eq!((a.status, a.body.len()), (204, 0));
    }

    #[tokio::test]
    async fn a_closed_connection_or_a_bad_head_is_an_error() {
        let addr = serve(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort"]).await;
        let mut conn = Conn::connect(&addr).await.unwrap();
        let e = conn.send(GET).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);

        let addr = serve(vec![b"NOT HTTP AT ALL\r\n\r\n"]).await;
        let mut conn = Conn::connect(&addr).await.unwrap();
        let e = conn.send(GET).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}
