//! A class's life around its lessons: a class nobody is in ends by itself, old records go after
//! `--retention-days`, the server notes that it is alive so a crash can be accounted for at the
//! next start, and a shutdown tells every connection and closes the attendance.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{Hub, HubError, unix_now};

/// How often the server writes that it is alive: the most attendance a crash can over-count.
pub const SEEN_EVERY: Duration = Duration::from_secs(15);

impl Hub {
    /// Turns true when the server starts shutting down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Tell every connection (and the accept loop) that the server is shutting down.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Run `then` once the reconnect grace period has passed, unless the server shuts down first.
    /// The timer holds the hub weakly, so a pending grace period does not keep a stopped server
    /// alive.
    pub(super) fn after_grace(self: &Arc<Self>, then: impl FnOnce(&Hub) + Send + 'static) {
        let hub: Weak<Self> = Arc::downgrade(self);
        let grace = Duration::from_secs(self.config.reconnect_grace_secs);
        let mut shutdown = self.shutdown_signal();
        tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(grace) => {}
                () = crate::serve::until_shutdown(&mut shutdown) => return,
            }
            if let Some(hub) = hub.upgrade() {
                then(&hub);
            }
        });
    }

    /// The last of a shutdown, once connections are told: close the attendance of everyone
    /// still in a class, note the time, fold the WAL into the database file and stop the writer
    /// thread. The writer runs writes in the order they were queued, so every write queued
    /// before these is committed first.
    pub fn finish_shutdown(&self) -> Result<(), HubError> {
        let now = unix_now();
        let closed = self.store.close_open_attendance(now)?;
        self.store.mark_seen(now)?;
        self.store.checkpoint()?;
        self.store.stop_writer();
        tracing::info!(attendance_closed = closed, "records closed and flushed");
        Ok(())
    }

    /// At start: attendance rows a crash left open are closed at the last time the server said it
    /// was alive (or at their own join, if it never did). Returns how many.
    pub fn close_attendance_after_crash(&self) -> Result<usize, HubError> {
        let seen = self.store.last_seen()?.unwrap_or(0);
        let closed = self.store.close_open_attendance(seen)?;
        if closed > 0 {
            tracing::warn!(
                closed,
                last_seen = seen,
                "attendance left open by an unclean stop, closed at the last time the server was seen"
            );
        }
        self.store.mark_seen(unix_now())?;
        Ok(closed)
    }

    fn class_idle(&self) -> Duration {
        Duration::from_secs_f64((self.config.class_idle_minutes * 60.0).max(0.0))
    }

    /// End the live classes that have had nobody in them for `--class-idle-minutes`, and the
    /// classes on record with no sign of life for as long; delete what is past retention.
    /// `empty_since` remembers when each live class was first seen empty.
    pub fn sweep_classes(&self, empty_since: &mut HashMap<String, Instant>, now: Instant) {
        let idle = self.class_idle();
        let live: Vec<(String, bool)> = self
            .classes
            .iter()
            .map(|c| (c.key().clone(), c.value().lock().participants.is_empty()))
            .collect();
        empty_since.retain(|id, _| live.iter().any(|(l, empty)| l == id && *empty));
        for (class_id, empty) in live {
            if !empty {
                continue;
            }
            let since = *empty_since.entry(class_id.clone()).or_insert(now);
            if now.saturating_duration_since(since) >= idle {
                empty_since.remove(&class_id);
                self.end_empty_class(&class_id);
            }
        }
        // Classes on record that nobody opened since the last start (or ever).
        let before = unix_now().saturating_sub(idle.as_secs());
        match self.store.stale_classes(before) {
            Ok(stale) => {
                for class_id in stale {
                    if !self.classes.contains_key(&class_id) {
                        if let Err(err) = self.store.end_class(&class_id, unix_now()) {
                            tracing::error!(%err, class = %class_id, "stale class not ended");
                        } else {
                            tracing::info!(class = %class_id, "class ended: nobody came");
                        }
                    }
                }
            }
            Err(err) => tracing::error!(%err, "stale classes not read"),
        }
        if self.config.retention_days > 0.0 {
            let keep = Duration::from_secs_f64(self.config.retention_days * 86_400.0);
            let before = unix_now().saturating_sub(keep.as_secs());
            match self.store.delete_ended_before(before) {
                Ok(0) => {}
                Ok(n) => tracing::info!(classes = n, "records past retention deleted"),
                Err(err) => tracing::error!(%err, "records past retention not deleted"),
            }
        }
    }

    /// End a live class if it is still empty: it leaves memory and its record is closed.
    fn end_empty_class(&self, class_id: &str) {
        // Removed only if nobody is in it at that very moment. `try_lock`, because a thread that
        // holds a class lock may be waiting for this map.
        let removed = self
            .classes
            .remove_if(class_id, |_, class| {
                class
                    .try_lock()
                    .is_some_and(|class| class.participants.is_empty())
            })
            .is_some();
        if !removed {
            return;
        }
        if let Err(err) = self.store.end_class(class_id, unix_now()) {
            tracing::error!(%err, class = %class_id, "idle class not recorded as ended");
        }
        tracing::info!(class = %class_id, "class ended: nobody in it");
    }

    /// Run the sweep and the "still alive" note until the server shuts down.
    pub fn spawn_housekeeping(self: &Arc<Self>) {
        let hub: Weak<Self> = Arc::downgrade(self);
        let mut shutdown = self.shutdown_signal();
        let every =
            (self.class_idle() / 4).clamp(Duration::from_millis(100), Duration::from_secs(60));
        tokio::spawn(async move {
            let mut sweep = tokio::time::interval(every);
            sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut seen = tokio::time::interval(SEEN_EVERY);
            seen.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut empty_since = HashMap::new();
            loop {
                tokio::select! {
                    // Nothing is written once shutdown begins: its own last note is the last.
                    biased;
                    () = crate::serve::until_shutdown(&mut shutdown) => break,
                    _ = sweep.tick() => {
                        let Some(hub) = hub.upgrade() else { break };
                        // The sweep reads and writes the database: off the async workers.
                        let mut since = std::mem::take(&mut empty_since);
                        let done = tokio::task::spawn_blocking(move || {
                            hub.sweep_classes(&mut since, Instant::now());
                            since
                        });
                        match done.await {
                            Ok(since) => empty_since = since,
                            Err(err) => tracing::error!(%err, "class sweep failed"),
                        }
                    }
                    _ = seen.tick() => {
                        let Some(hub) = hub.upgrade() else { break };
                        if let Err(err) = hub.store.mark_seen(unix_now()) {
                            tracing::error!(%err, "last seen not written");
                        }
                    }
                }
            }
        });
    }
}
