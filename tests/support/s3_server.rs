//! An S3-compatible server for one test: moto in server mode (PyPI's
//! `moto[server]`, its `moto_server` on `PATH`),
//! on a loopback port it picks itself (`-p 0`, read from the line it
//! prints once it listens: a port picked for it could be taken by another
//! test's server in the meantime, and the readiness probe would then talk
//! to that one), in memory; killed when dropped. Each server gets
//! a bucket of its own, registered with weir
//! ([`weir::location::configure_s3_bucket`]) so that `s3://<bucket>/...`
//! reaches it. Without moto, [`Server::start`] says so and returns `None`,
//! unless `WEIR_REQUIRE_SERVERS` is set (CI), where it fails.
#![allow(dead_code)] // each test file uses what it needs

use super::servers::{find_program, missing};

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use weir::location::{configure_s3_bucket, S3Options};

pub struct Server {
    child: Child,
    port: u16,
    /// The bucket this server's tests write to.
    pub bucket: String,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
}

impl Server {
    pub fn start(tag: &str) -> Option<Server> {
        let Some(binary) = find_program("moto_server", &[]) else {
            return missing("moto_server", "pip install 'moto[server]'");
        };
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let mut child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
        let stderr = child.stderr.take().expect("stderr is piped");
        let port = match announced_port(stderr).recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(port)) => port,
            Ok(Err(log)) => {
                let _ = child.kill();
                panic!("moto_server exited before it listened:\n{log}")
            }
            Err(_) => {
                let _ = child.kill();
                panic!("moto_server did not say where it listens within 60 s")
            }
        };
        let endpoint = format!("http://127.0.0.1:{port}");
        let bucket = format!(
            "weir-{}-{}-{}",
            tag.to_ascii_lowercase().replace('_', "-"),
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut server = Server {
            child,
            port,
            bucket,
            endpoint,
        };
        let mut up = false;
        for _ in 0..600 {
            if server.request("GET", "/", b"").is_ok() {
                up = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(up, "moto_server did not answer on port {port} within 30 s");
        assert!(
            matches!(server.child.try_wait(), Ok(None)),
            "moto_server exited"
        );
        let (status, body) = server
            .request("PUT", &format!("/{}", server.bucket), b"")
            .unwrap();
        assert_eq!(status, 200, "cannot create the bucket: {body}");
        configure_s3_bucket(&server.bucket, server.options());
        Some(server)
    }

    /// The options that reach this server.
    pub fn options(&self) -> S3Options {
        S3Options {
            endpoint: Some(self.endpoint.clone()),
            region: Some("us-east-1".into()),
            access_key_id: Some("weir-test".into()),
            secret_access_key: Some("weir-test-secret".into()),
            path_style: Some(true),
            ..S3Options::default()
        }
    }

    /// `s3://<bucket>/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("s3://{}/{path}", self.bucket)
    }

    /// One plain HTTP request (moto does not check signatures): the status and body.
    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> std::io::Result<(u16, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        )?;
        stream.write_all(body)?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response)?;
        let text = String::from_utf8_lossy(&response).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {text:?}")))?;
        let body = text
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_string();
        Ok((status, body))
    }

    /// The keys under `prefix`, sorted (at most 1000: enough for a test).
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let (status, body) = self
            .request(
                "GET",
                &format!("/{}?list-type=2&prefix={prefix}", self.bucket),
                b"",
            )
            .unwrap();
        assert_eq!(status, 200, "{body}");
        let mut keys: Vec<String> = body
            .split("<Key>")
            .skip(1)
            .filter_map(|part| part.split_once("</Key>").map(|(k, _)| k.to_string()))
            .collect();
        keys.sort();
        keys
    }
}

/// Reads moto's log: sends the port of its `Running on http://127.0.0.1:PORT`
/// line (or, if it ends first, what it printed), then keeps reading, so
/// that the server never blocks on a full pipe (it logs every request).
fn announced_port(stderr: ChildStderr) -> mpsc::Receiver<Result<u16, String>> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut printed = String::new();
        let mut waiting = Some(sender);
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let Some(sender) = waiting.as_ref() else {
                continue;
            };
            let port = line
                .split_once("Running on http://127.0.0.1:")
                .and_then(|(_, rest)| rest.trim().parse::<u16>().ok());
            match port {
                Some(port) => {
                    let _ = sender.send(Ok(port));
                    waiting = None;
                }
                None => {
                    printed.push_str(&line);
                    printed.push('\n');
                }
            }
        }
        if let Some(sender) = waiting {
            let _ = sender.send(Err(printed));
        }
    });
    receiver
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
