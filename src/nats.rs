//! What the NATS JetStream source and sink share (cargo feature `nats`): the
//! connection, on [`crate::io_runtime`], and how a client error reads.

use async_nats::jetstream::Context;
use weir_actors::UserError;

/// Connects to `url` and opens its JetStream context. A refused or lost
/// connection is retryable (a restart may find the server back).
pub(crate) async fn connect(url: &str) -> Result<Context, UserError> {
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(std::time::Duration::from_secs(10))
        .connect(url)
        .await
        .map_err(|e| format!("NATS {url}: cannot connect: {e}"))?;
    Ok(async_nats::jetstream::new(client))
}
