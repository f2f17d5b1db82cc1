//! A client of weir's REST API for the `weir` command (`weir list`,
//! `savepoint`, `stop`, `cancel`), as Flink's `flink` command talks to its
//! cluster: blocking HTTP/1.1 over a plain TCP connection, one request per
//! connection, with timeouts. It only speaks to weir's own server (JSON
//! bodies, `Content-Length` or chunked), which is all it needs.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde_json::Value;

/// What went wrong talking to a server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answered at the address.
    #[error("nothing answers at {address}: {cause} (is a job running with --web-port? pass --address HOST:PORT)")]
    Unreachable {
        /// The address tried.
        address: String,
        /// Why.
        cause: String,
    },
    /// The server answered with an error (its message).
    #[error("{address} answered {status}: {message}")]
    Refused {
        /// The address.
        address: String,
        /// The HTTP status code.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// The answer was not what weir's server sends.
    #[error("{address} did not answer as weir's REST API does: {cause}")]
    Garbled {
        /// The address.
        address: String,
        /// What was wrong.
        cause: String,
    },
}

/// How long a request may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Sends `method path` (with a JSON `body`) to `address` (`HOST:PORT`) and
/// returns the JSON answer of a 2xx status; any other status is
/// [`ClientError::Refused`] with the server's message.
pub fn call(
    address: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, ClientError> {
    let unreachable = |cause: String| ClientError::Unreachable {
        address: address.to_string(),
        cause,
    };
    let garbled = |cause: String| ClientError::Garbled {
        address: address.to_string(),
        cause,
    };
    let target = address
        .to_socket_addrs()
        .map_err(|e| unreachable(e.to_string()))?
        .next()
        .ok_or_else(|| unreachable("the address resolves to nothing".into()))?;
    let mut stream =
        TcpStream::connect_timeout(&target, TIMEOUT).map_err(|e| unreachable(e.to_string()))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .and_then(|_| stream.set_write_timeout(Some(TIMEOUT)))
        .map_err(|e| unreachable(e.to_string()))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nAccept: application/json\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| unreachable(e.to_string()))?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .map_err(|e| garbled(format!("reading the answer: {e}")))?;
    let (status, body) = parse_response(&answer).map_err(garbled)?;
    let json: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&body).map_err(|e| garbled(format!("the body is not JSON: {e}")))?
    };
    if (200..300).contains(&status) {
        Ok(json)
    } else {
        let message = json
            .get("errors")
            .and_then(Value::as_array)
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_string))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_else(|| json.to_string());
        Err(ClientError::Refused {
            address: address.to_string(),
            status,
            message,
        })
    }
}

/// Splits an HTTP/1.1 response into its status and (de-chunked) body.
fn parse_response(bytes: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = std::str::from_utf8(&bytes[..split]).map_err(|_| "headers are not text")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or("no status line")?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line `{status_line}`"))?;
    let chunked = lines.any(|line| {
        let lower = line.to_ascii_lowercase();
        lower.starts_with("transfer-encoding:") && lower.contains("chunked")
    });
    let body = &bytes[split + 4..];
    if chunked {
        Ok((status, dechunk(body)?))
    } else {
        Ok((status, body.to_vec()))
    }
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("a chunk size line does not end")?;
        let size_text = std::str::from_utf8(&body[..line_end]).map_err(|_| "bad chunk size")?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size `{size_text}`"))?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if body.len() < size + 2 {
            return Err("a chunk is cut short".into());
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plain_and_chunked_bodies() {
        let plain = b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse_response(plain).unwrap(), (404, b"{}".to_vec()));
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n3\r\n\":1\r\n1\r\n}\r\n0\r\n\r\n";
        assert_eq!(
            parse_response(chunked).unwrap(),
            (200, b"{\"a\":1}".to_vec())
        );
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
    }

    #[test]
    fn nothing_listening_says_so() {
        // Bind and drop: the port is free (and, on loopback, refused).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let address = format!("127.0.0.1:{port}");
        let error = call(&address, "GET", "/jobs", None).unwrap_err();
        assert!(matches!(error, ClientError::Unreachable { .. }), "{error}");
        assert!(error.to_string().contains("--web-port"), "{error}");
    }
}
