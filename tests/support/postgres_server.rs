//! A PostgreSQL server for one test: `initdb` and `pg_ctl` from Debian's
//! package (as the `postgres` user when the tests run as root, which
//! `initdb` refuses), on a free port (another if a server of another test
//! took that one first), with its data and socket in a
//! temporary directory; stopped and removed when dropped. Without
//! PostgreSQL, [`Server::start`] says so and returns `None`, unless
//! `WEIR_REQUIRE_SERVERS` is set (CI), where it fails.

#![allow(dead_code)] // each test file uses what it needs

use super::servers::{free_port, missing};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// A PostgreSQL server of one test.
pub struct Server {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    /// Root runs the server as the `postgres` user (initdb refuses root).
    as_postgres: bool,
}

/// Where `initdb`, `pg_ctl` and `psql` are: the directory `pg_ctl` in the
/// `PATH` links to (Debian puts the tools in /usr/lib/postgresql/<version>/bin),
/// else the newest version there.
fn bin_dir() -> Option<PathBuf> {
    let complete = |dir: &Path| {
        ["initdb", "pg_ctl", "psql"]
            .iter()
            .all(|t| dir.join(t).is_file())
    };
    let in_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .filter_map(|dir| std::fs::canonicalize(dir.join("pg_ctl")).ok())
            .filter_map(|pg_ctl| pg_ctl.parent().map(Path::to_path_buf))
            .find(|dir| complete(dir))
    });
    in_path.or_else(|| {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
            .filter(|bin| complete(bin))
            .collect();
        versions.sort();
        versions.pop()
    })
}

impl Server {
    /// Starts a server, or `None` (after saying why) when PostgreSQL is not installed.
    pub fn start(tag: &str, settings: &[&str]) -> Option<Server> {
        let Some(bin) = bin_dir() else {
            return missing("PostgreSQL", "apt-get install postgresql");
        };
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "weir-pg-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let as_postgres = unsafe { libc::geteuid() } == 0;
        if as_postgres {
            run_ok(Command::new("chown").arg("postgres:").arg(&dir));
        }
        let mut server = Server {
            bin,
            dir,
            port: 0,
            as_postgres,
        };
        let data = server.dir.join("data");
        server.tool(
            "initdb",
            &[
                "-D",
                path(&data),
                "-U",
                "weir",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        // A free port can be taken by another test's server before this
        // one binds it: then this one fails to start, and tries another.
        for attempt in 1..=5 {
            server.port = free_port();
            let mut options = format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                server.port,
                path(&server.dir)
            );
            for setting in settings {
                options.push_str(&format!(" -c {setting}"));
            }
            let log = server.dir.join(format!("log.{attempt}"));
            let started = server
                .command("pg_ctl")
                .args([
                    "-D",
                    path(&data),
                    "-l",
                    path(&log),
                    "-o",
                    &options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ])
                .output()
                .unwrap_or_else(|e| panic!("pg_ctl: {e}"));
            if started.status.success() {
                return Some(server);
            }
            let printed = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(
                printed.contains("Address already in use"),
                "pg_ctl start: {}\n{}\n{printed}",
                String::from_utf8_lossy(&started.stdout),
                String::from_utf8_lossy(&started.stderr)
            );
        }
        panic!("PostgreSQL found its port taken 5 times in a row")
    }

    fn command(&self, tool: &str) -> Command {
        let program = self.bin.join(tool);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    fn tool(&self, tool: &str, args: &[&str]) -> String {
        run_ok(self.command(tool).args(args))
    }

    pub fn connection(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=weir dbname=postgres",
            self.port
        )
    }

    /// The rows `sql` returns, one line each, columns separated by `|`.
    pub fn query(&self, sql: &str) -> Vec<String> {
        let out = self.tool(
            "psql",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "weir",
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-c",
                sql,
            ],
        );
        out.lines().map(str::to_string).collect()
    }

    pub fn one(&self, sql: &str) -> String {
        let rows = self.query(sql);
        assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
        rows[0].clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = self
            .command("pg_ctl")
            .args(["-D", path(&data), "-m", "immediate", "-w", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn run_ok(command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
