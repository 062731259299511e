//! A classroom's media legs recover as the browser client's do (`docs/protocol.md`, "Recovery
//! without reloading"): a leg that goes `failed`, or stays `disconnected` for
//! [`RESTART_AFTER`], restarts ICE, and again every [`RETRY_EVERY`] until it connects. Without
//! this, a load-test classroom whose leg lost consent (its generator starved for 30 s, its
//! emulated link dropped out) stayed dark for the rest of the run, which no browser does, and
//! the run measured the client's give-up rather than the server.
//!
//! How a leg restarts is the caller's: the publish leg re-offers with new credentials, the
//! subscribe leg asks the server for a new offer (`ice_restart`). This module only decides
//! *when*.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use webrtc::peer_connection::RTCPeerConnectionState;

/// How long a leg may stay `disconnected` before it restarts ICE (the browser client's figure).
pub const RESTART_AFTER: Duration = Duration::from_secs(3);

/// How long a restart has to connect before the next one.
pub const RETRY_EVERY: Duration = Duration::from_secs(15);

/// Watch one leg's connection state and call `restart` when it needs one, until the leg closes
/// (or its state's sender is dropped). Errors of a restart are logged; the next try comes
/// [`RETRY_EVERY`] later.
pub(crate) async fn keep_leg_up<F, Fut>(
    leg: &'static str,
    mut state: watch::Receiver<RTCPeerConnectionState>,
    mut restart: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    use RTCPeerConnectionState::{Closed, Connected, Disconnected, Failed};
    loop {
        // Wait for a leg in trouble: failed, or disconnected for long enough.
        loop {
            let now = *state.borrow_and_update();
            match now {
                Closed => return,
                Failed => break,
                Disconnected => {
                    match tokio::time::timeout(
                        RESTART_AFTER,
                        state.wait_for(|s| *s != Disconnected),
                    )
                    .await
                    {
                        Err(_) => break,
                        Ok(Err(_)) => return,
                        Ok(Ok(_)) => continue,
                    }
                }
                _ => {}
            }
            if state.changed().await.is_err() {
                return;
            }
        }
        // Restart until it connects.
        loop {
            tracing::info!(leg, "media leg lost: restarting ICE");
            if let Err(err) = restart().await {
                tracing::warn!(leg, %err, "ICE restart failed");
            }
            let connected = tokio::time::timeout(
                RETRY_EVERY,
                state.wait_for(|s| matches!(s, Connected | Closed)),
            )
            .await;
            match connected.map(|s| s.map(|s| *s)) {
                Ok(Ok(Connected)) => break,
                Ok(Ok(_)) | Ok(Err(_)) => return,
                Err(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use RTCPeerConnectionState::{Closed, Connected, Connecting, Disconnected, Failed};

    /// A watched leg and the number of restarts it asked for.
    fn leg() -> (
        watch::Sender<RTCPeerConnectionState>,
        Arc<AtomicUsize>,
        tokio::task::JoinHandle<()>,
    ) {
        let (tx, rx) = watch::channel(Connected);
        let restarts = Arc::new(AtomicUsize::new(0));
        let counted = restarts.clone();
        let task = tokio::spawn(keep_leg_up("test", rx, move || {
            counted.fetch_add(1, Ordering::SeqCst);
            async { Ok(()) }
        }));
        (tx, restarts, task)
    }

    async fn wait(d: Duration) {
        tokio::time::sleep(d).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_disconnection_is_left_to_ice() {
        let (tx, restarts, task) = leg();
        tx.send_replace(Disconnected);
        wait(Duration::from_secs(2)).await;
        tx.send_replace(Connected);
        wait(Duration::from_secs(60)).await;
        assert_eq!(restarts.load(Ordering::SeqCst), 0);
        tx.send_replace(Closed);
        task.await.expect("the watcher ends when the leg closes");
    }

    #[tokio::test(start_paused = true)]
    async fn a_leg_disconnected_for_3_s_restarts_and_retries_every_15_s_until_connected() {
        let (tx, restarts, task) = leg();
        tx.send_replace(Disconnected);
        wait(RESTART_AFTER - Duration::from_millis(100)).await;
        assert_eq!(restarts.load(Ordering::SeqCst), 0, "not before 3 s");
        wait(Duration::from_millis(200)).await;
        assert_eq!(restarts.load(Ordering::SeqCst), 1, "restarted at 3 s");
        tx.send_replace(Connecting);
        wait(RETRY_EVERY).await;
        assert_eq!(
            restarts.load(Ordering::SeqCst),
            2,
            "not connected 15 s later: again"
        );
        tx.send_replace(Connected);
        wait(Duration::from_secs(60)).await;
        assert_eq!(
            restarts.load(Ordering::SeqCst),
            2,
            "connected: no more restarts"
        );
        // Trouble again later: the watcher is still there.
        tx.send_replace(Failed);
        wait(Duration::from_millis(10)).await;
        assert_eq!(
            restarts.load(Ordering::SeqCst),
            3,
            "a failed leg restarts at once"
        );
        drop(tx);
        task.await.expect("the watcher ends with its leg");
    }
}
