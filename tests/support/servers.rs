//! What the server fixtures share: finding a server's program, skipping
//! (or, with `WEIR_REQUIRE_SERVERS` set, failing) when it is missing, and a
//! free loopback port. A test file that includes a fixture includes this
//! too, once, as `mod servers` (the fixtures use `super::servers`).
#![allow(dead_code)] // each fixture uses what it needs

use std::path::PathBuf;

/// The first `name` on `PATH`, else the first of `elsewhere` that exists.
pub fn find_program(name: &str, elsewhere: &[&str]) -> Option<PathBuf> {
    let in_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    });
    in_path.or_else(|| {
        elsewhere
            .iter()
            .map(PathBuf::from)
            .find(|path| path.is_file())
    })
}

/// Says that `what` is not installed (and how to install it) and skips the
/// test (`None`); fails it instead when `WEIR_REQUIRE_SERVERS` is set (CI).
pub fn missing<T>(what: &str, install: &str) -> Option<T> {
    assert!(
        std::env::var_os("WEIR_REQUIRE_SERVERS").is_none(),
        "WEIR_REQUIRE_SERVERS is set and {what} is not installed"
    );
    eprintln!("skipped: {what} is not installed ({install})");
    None
}

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
