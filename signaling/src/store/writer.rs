//! The database writer: one thread owns the one connection that writes, and commits what is
//! queued in batches (group commit).
//!
//! **Why a writer thread and WAL readers, not a pool.** SQLite lets one connection write at a
//! time, whatever the number of connections: a pool of writers would only queue on the file's
//! write lock (with `SQLITE_BUSY` retries and sleeps) instead of on a channel. So all writes go
//! to one thread, in the order they were sent, and reads (reports, a class brought back to life)
//! use reader connections of their own that see a consistent WAL snapshot while the writer goes
//! on ([`super::Store::with_reader`]). The thread takes what is queued (up to a batch) and commits
//! it in **one transaction**: the cost of a commit (the WAL append, and the fsync with
//! `synchronous=FULL`) is paid once per batch rather than once per stroke segment, so many
//! classes drawing at once cost about as many commits as one does. No async worker ever runs a
//! statement or waits on a database lock: callers `await` their answer.
//!
//! **Semantics a caller can rely on.**
//! - *Acknowledged after commit:* a caller is answered only after the transaction holding its
//!   write is committed; if the commit fails, every write of the batch fails.
//! - *One failure fails one caller:* each write runs under a savepoint of its own; a write whose
//!   statements fail is rolled back to its savepoint and answered with its error, and the rest of
//!   the batch commits. (If SQLite had to abandon the whole transaction, e.g. a full disk, the
//!   whole batch fails.)
//! - *Order:* writes are run and committed in the order they were queued, and the answers of a
//!   batch are sent in that order. Whoever needs its broadcasts in commit order (a class's
//!   board) still has to serialise its own callers: answers wake tasks that may run in any order.
//! - *Backpressure:* the queue is bounded (`--db-write-queue`); a caller waits (asynchronously)
//!   for room.
//! - *Stop:* [`Writer::stop`] is queued like a write, so everything sent before it is committed
//!   before the thread exits.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::{Connection, ffi};
use tokio::sync::{mpsc, oneshot};

/// Writes committed in one transaction at most.
pub const MAX_BATCH: usize = 256;

/// Counters of the writer, for tests and metrics.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Transactions committed.
    pub commits: AtomicU64,
    /// Writes answered with success.
    pub writes: AtomicU64,
}

/// A write the thread runs inside the batch's transaction.
trait Job: Send {
    /// Run the statements; whether they succeeded.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answer the caller once the batch is committed (`Ok`) or could not be.
    fn answer(self: Box<Self>, commit: Result<(), &rusqlite::Error>);
}

struct Call<F, T, E> {
    f: Option<F>,
    out: Option<Result<T, E>>,
    reply: oneshot::Sender<Result<T, E>>,
}

impl<F, T, E> Job for Call<F, T, E>
where
    F: FnOnce(&Connection) -> Result<T, E> + Send,
    T: Send,
    E: From<rusqlite::Error> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(f) = self.f.take() else {
            return false;
        };
        // A panicking write fails its caller, not the thread that every other write needs.
        let out = std::panic::catch_unwind(AssertUnwindSafe(|| f(conn)))
            .unwrap_or_else(|_| Err(E::from(failure(ffi::SQLITE_INTERNAL, "the write panicked"))));
        let ok = out.is_ok();
        self.out = Some(out);
        ok
    }

    fn answer(self: Box<Self>, commit: Result<(), &rusqlite::Error>) {
        let out = match (commit, self.out) {
            // Its own failure stands, whatever happened to the batch.
            (_, Some(Err(err))) => Err(err),
            (Ok(()), Some(Ok(value))) => Ok(value),
            // Undone with the batch, or never run because the batch failed before it.
            (Err(err), Some(Ok(_)) | None) => Err(E::from(copy(err))),
            (Ok(()), None) => Err(E::from(stopped())),
        };
        // The caller may have gone (e.g. its connection closed): nothing to tell.
        let _ = self.reply.send(out);
    }
}

enum Command {
    /// A write, run in a batch's transaction under a savepoint of its own.
    Write(Box<dyn Job>),
    /// Run alone, outside any transaction (e.g. a WAL checkpoint), after what is queued before.
    Alone(Box<dyn Job>),
    /// Commit what came before, then end the thread.
    Stop(oneshot::Sender<()>),
}

/// The handle callers write through; clones share the one thread.
#[derive(Clone, Debug)]
pub struct Writer {
    tx: mpsc::Sender<Command>,
    stats: Arc<WriterStats>,
}

impl Writer {
    /// Start the thread that owns `conn`, with room for `queue` waiting writes.
    pub fn spawn(conn: Connection, queue: usize) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let stats = Arc::new(WriterStats::default());
        let counters = Arc::clone(&stats);
        std::thread::Builder::new()
            .name("tandem-db-writer".into())
            .spawn(move || run(conn, rx, &counters))?;
        Ok(Self { tx, stats })
    }

    /// Run `f` in the writer's next transaction; the answer comes once that is committed.
    pub async fn write<T, E>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<rusqlite::Error> + Send + 'static,
    {
        self.send(f, Command::Write).await
    }

    /// Run `f` on the writer's connection outside any transaction, after everything queued
    /// before it is committed.
    pub async fn alone<T, E>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<rusqlite::Error> + Send + 'static,
    {
        self.send(f, Command::Alone).await
    }

    async fn send<T, E>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        command: fn(Box<dyn Job>) -> Command,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<rusqlite::Error> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Call {
            f: Some(f),
            out: None,
            reply,
        });
        if self.tx.send(command(job)).await.is_err() {
            return Err(E::from(stopped()));
        }
        answer.await.unwrap_or_else(|_| Err(E::from(stopped())))
    }

    /// Commit everything queued so far, then end the thread. Writes sent after this fail.
    pub async fn stop(&self) {
        let (done, stopped) = oneshot::channel();
        if self.tx.send(Command::Stop(done)).await.is_ok() {
            let _ = stopped.await;
        }
    }

    /// Writes waiting in the queue now.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }
}

/// Wait for `future` on this thread. For the few synchronous callers (a classroom joining or
/// leaving, a class ending, housekeeping): they wait for their own commit, holding no database
/// lock meanwhile. On a worker of the multi-thread runtime the wait is `block_in_place`, so the
/// worker's other tasks move to another thread and the runtime goes on. Board ops, polls, votes
/// and class creation `await` instead.
pub fn wait<T>(future: impl std::future::Future<Output = T>) -> T {
    // `unconstrained`: called on an async worker, the channels must not count against that
    // task's cooperative budget, which this loop cannot give back by yielding.
    let block = || futures_executor::block_on(tokio::task::unconstrained(future));
    match tokio::runtime::Handle::try_current() {
        Ok(rt) if rt.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(block)
        }
        _ => block(),
    }
}

/// `/metrics`: `tandem_db_commits_total`, `tandem_db_writes_total`, `tandem_db_write_queue`.
impl prometheus_client::collector::Collector for Writer {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        let commits = ConstCounter::new(self.stats.commits.load(Ordering::Relaxed));
        commits.encode(encoder.encode_descriptor(
            "tandem_db_commits",
            "Database transactions committed by the writer thread (each holds a batch of writes)",
            None,
            commits.metric_type(),
        )?)?;
        let writes = ConstCounter::new(self.stats.writes.load(Ordering::Relaxed));
        writes.encode(encoder.encode_descriptor(
            "tandem_db_writes",
            "Database writes committed (board ops, votes, records)",
            None,
            writes.metric_type(),
        )?)?;
        let queued = ConstGauge::new(self.queued() as i64);
        queued.encode(encoder.encode_descriptor(
            "tandem_db_write_queue",
            "Database writes waiting for the writer thread (at most --db-write-queue)",
            None,
            queued.metric_type(),
        )?)?;
        Ok(())
    }
}

fn failure(code: std::ffi::c_int, message: &str) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(ffi::Error::new(code), Some(message.to_owned()))
}

fn stopped() -> rusqlite::Error {
    failure(ffi::SQLITE_ABORT, "the database writer has stopped")
}

/// The batch's error, for each of its callers (`rusqlite::Error` is not `Clone`).
fn copy(err: &rusqlite::Error) -> rusqlite::Error {
    match err {
        rusqlite::Error::SqliteFailure(code, message) => rusqlite::Error::SqliteFailure(
            *code,
            Some(message.clone().unwrap_or_else(|| err.to_string())),
        ),
        other => failure(ffi::SQLITE_ERROR, &other.to_string()),
    }
}

fn run(conn: Connection, mut rx: mpsc::Receiver<Command>, stats: &WriterStats) {
    let mut next: Option<Command> = None;
    loop {
        let command = match next.take() {
            Some(command) => command,
            None => match rx.blocking_recv() {
                Some(command) => command,
                // Every handle is gone.
                None => break,
            },
        };
        match command {
            Command::Stop(done) => {
                let _ = done.send(());
                break;
            }
            Command::Alone(mut job) => {
                let ok = job.run(&conn);
                stats.writes.fetch_add(u64::from(ok), Ordering::Relaxed);
                job.answer(Ok(()));
            }
            Command::Write(job) => {
                let mut batch = vec![job];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(Command::Write(job)) => batch.push(job),
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                commit_batch(&conn, batch, stats);
            }
        }
    }
    // Writes queued after a stop are dropped here: their callers are told the writer stopped.
    rx.close();
    tracing::debug!("database writer stopped");
}

/// Run a batch in one transaction, each write under its own savepoint, commit, then answer.
fn commit_batch(conn: &Connection, mut batch: Vec<Box<dyn Job>>, stats: &WriterStats) {
    let outcome = run_batch(conn, &mut batch);
    if outcome.is_ok() {
        stats.commits.fetch_add(1, Ordering::Relaxed);
    } else if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    for job in batch {
        job.answer(outcome.as_ref().map(|_| ()));
    }
    if let Ok(ok) = outcome {
        stats.writes.fetch_add(ok, Ordering::Relaxed);
    }
}

/// The batch's transaction; how many writes succeeded in it, or why it could not commit.
fn run_batch(conn: &Connection, batch: &mut [Box<dyn Job>]) -> rusqlite::Result<u64> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let mut ok = 0;
    for job in batch.iter_mut() {
        conn.execute_batch("SAVEPOINT write")?;
        if job.run(conn) {
            ok += 1;
        } else if !conn.is_autocommit() {
            conn.execute_batch("ROLLBACK TO write")?;
        }
        if conn.is_autocommit() {
            // SQLite gave up the whole transaction (an I/O error, a full disk): the writes
            // before this one are undone too.
            return Err(failure(
                ffi::SQLITE_ABORT,
                "the transaction was abandoned; nothing in it was written",
            ));
        }
        conn.execute_batch("RELEASE write")?;
    }
    conn.execute_batch("COMMIT")?;
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn open(path: &std::path::Path) -> Connection {
        let conn = Connection::open(path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY)")
            .unwrap();
        conn
    }

    fn count(path: &std::path::Path) -> i64 {
        Connection::open(path)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap()
    }

    fn insert(k: i64) -> impl FnOnce(&Connection) -> rusqlite::Result<()> + Send + 'static {
        move |conn| conn.execute("INSERT INTO t (k) VALUES (?1)", [k]).map(drop)
    }

    /// Keep the writer thread busy in a write of its own until the returned sender is dropped,
    /// so that what is sent meanwhile queues up and goes into the next batch.
    async fn hold(writer: &Writer) -> (std::sync::mpsc::Sender<()>, tokio::task::JoinHandle<()>) {
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = oneshot::channel();
        let w = writer.clone();
        let first = tokio::spawn(async move {
            w.write(move |conn| {
                let _ = started_tx.send(());
                let _ = held.recv();
                insert(0)(conn)
            })
            .await
            .unwrap();
        });
        started.await.unwrap();
        (release, first)
    }

    async fn until_queued(writer: &Writer, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while writer.queued() < n {
            assert!(Instant::now() < deadline, "{n} writes queued in time");
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_failing_write_fails_only_its_caller_and_answers_come_after_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let writer = Writer::spawn(open(&path), 64).unwrap();
        let (release, first) = hold(&writer).await;

        // Ten writes queue up behind the held one; the fourth inserts a new key, then one that
        // is taken.
        let mut callers = Vec::new();
        for k in 1..=10 {
            let (w, path) = (writer.clone(), path.clone());
            callers.push(tokio::spawn(async move {
                let result = if k == 4 {
                    w.write(|conn| {
                        insert(100)(conn)?;
                        insert(0)(conn)
                    })
                    .await
                } else {
                    w.write(insert(k)).await
                };
                // What another connection sees the moment the answer arrives.
                (k, result, count(&path))
            }));
        }
        until_queued(&writer, 10).await;
        assert_eq!(count(&path), 0, "nothing is visible before a commit");
        drop(release);
        first.await.unwrap();

        for caller in callers {
            let (k, result, seen) = caller.await.unwrap();
            if k == 4 {
                let err = result.expect_err("a taken key fails");
                assert!(
                    err.to_string().contains("UNIQUE"),
                    "its own error, not the batch's: {err}"
                );
            } else {
                result.unwrap_or_else(|err| panic!("write {k} failed: {err}"));
                assert_eq!(
                    seen, 10,
                    "write {k} answered only once its batch was committed"
                );
            }
        }
        assert_eq!(
            count(&path),
            10,
            "the held write and nine of ten; nothing of the failed one"
        );
        assert_eq!(
            writer.stats().commits.load(Ordering::Relaxed),
            2,
            "the ten queued writes went into one transaction"
        );
        assert_eq!(writer.stats().writes.load(Ordering::Relaxed), 10);
    }

    #[tokio::test]
    async fn stop_commits_what_was_queued_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let writer = Writer::spawn(open(&path), 64).unwrap();
        let (release, first) = hold(&writer).await;
        let callers: Vec<_> = (1..=5)
            .map(|k| {
                let w = writer.clone();
                tokio::spawn(async move { w.write(insert(k)).await })
            })
            .collect();
        until_queued(&writer, 5).await;
        let w = writer.clone();
        let stopping = tokio::spawn(async move { w.stop().await });
        until_queued(&writer, 6).await;
        drop(release);
        stopping.await.unwrap();
        first.await.unwrap();
        for caller in callers {
            caller.await.unwrap().unwrap();
        }
        assert_eq!(
            count(&path),
            6,
            "everything queued before the stop is stored"
        );
        let late = writer.write(insert(99)).await;
        assert!(
            late.is_err_and(|err| err.to_string().contains("stopped")),
            "a write after the stop is refused"
        );
    }

    /// More waits than a task's cooperative budget (128), through a queue smaller than the
    /// number of writes, on an async worker.
    async fn many_synchronous_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let writer = Writer::spawn(open(&path), 4).unwrap();
        for k in 0..300 {
            wait(writer.write(insert(k))).unwrap();
        }
        assert_eq!(count(&path), 300);
    }

    #[tokio::test]
    async fn a_synchronous_caller_on_a_current_thread_runtime_gets_its_answer() {
        many_synchronous_writes().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_synchronous_caller_on_a_multi_thread_worker_gets_its_answer() {
        // On a worker thread, not the test's own `block_on` thread.
        tokio::spawn(many_synchronous_writes()).await.unwrap();
        // And on the blocking pool.
        tokio::task::spawn_blocking(|| {
            tokio::runtime::Handle::current().block_on(many_synchronous_writes())
        })
        .await
        .unwrap();
    }
}
