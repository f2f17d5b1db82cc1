//! Knowing when actors are gone. An actor holds an [`Alive`] token, dropped
//! with the actor itself: after it stopped, was canceled or panicked. Its
//! supervisor awaits the matching [`Gone`] receivers before it starts what
//! must not overlap the old actors: a restart's new subtasks, or the job's
//! outcome (after which another run may take the same directories).

use std::time::Duration;

use futures::channel::oneshot;

/// Held by an actor; its drop says the actor is gone.
pub struct Alive(#[allow(dead_code)] oneshot::Sender<()>);

/// Resolves when the matching [`Alive`] is dropped.
pub type Gone = oneshot::Receiver<()>;

/// A token for one actor and what tells that it is gone.
pub fn token() -> (Alive, Gone) {
    let (tx, rx) = oneshot::channel();
    (Alive(tx), rx)
}

/// Waits until every actor of `gone` is gone, or `limit` passed; returns
/// how many were still there then.
pub async fn all_gone(gone: Vec<Gone>, limit: Duration) -> usize {
    let deadline = std::time::Instant::now() + limit;
    let mut still_there = 0;
    for receiver in gone {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if actix_rt::time::timeout(left, receiver).await.is_err() {
            still_there += 1;
        }
    }
    still_there
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn gone_once_every_token_is_dropped() {
        let (a, gone_a) = token();
        let (b, gone_b) = token();
        drop(a);
        let waiting = actix_rt::spawn(all_gone(vec![gone_a, gone_b], Duration::from_secs(30)));
        actix_rt::task::yield_now().await;
        drop(b);
        assert_eq!(waiting.await.unwrap(), 0);
    }

    #[actix_rt::test]
    async fn the_limit_counts_who_is_still_there() {
        let (_kept, gone) = token();
        let (dropped, gone_too) = token();
        drop(dropped);
        assert_eq!(
            all_gone(vec![gone, gone_too], Duration::from_millis(1)).await,
            1
        );
    }
}
