//! Class records in SQLite: classes and attendance (who joined, when, and when they left).

use std::path::Path;

use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, params};

pub mod writer;

use writer::Writer;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassRecord {
    pub class_id: String,
    pub title: String,
    pub teacher_name: String,
    pub created_at: u64,
    pub ended_at: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AttendanceRecord {
    pub classroom_id: String,
    pub name: String,
    pub role: String,
    pub joined_at: u64,
    pub left_at: Option<u64>,
}

/// The database: a writer thread that owns the one connection that writes (see [`writer`] for
/// why, and for what a caller may rely on), and reader connections on the same WAL file.
///
/// Writes are sent to the writer thread and committed in batches; a caller is answered after
/// its write is committed. Async callers (board ops, polls, votes, class creation) `await`
/// [`Store::write`]; the few synchronous ones (most methods below) wait for
/// their own commit on their thread, holding no lock meanwhile (a classroom joining or leaving, a
/// class ending, housekeeping: a few per class per lesson). Reads take a connection of
/// their own from [`Store::with_reader`]: WAL lets them read a consistent snapshot while the
/// writer goes on, and long reads (reports) are run on the blocking pool by their callers.
pub struct Store {
    writer: Writer,
    path: std::path::PathBuf,
    /// Idle reader connections, reused; more are opened when all are busy.
    readers: Mutex<Vec<Connection>>,
}

/// Reader connections kept open between uses.
const KEPT_READERS: usize = 4;

/// Writes that may wait for the writer thread before callers wait for room (`--db-write-queue`).
pub const DEFAULT_WRITE_QUEUE: usize = 4096;

impl Store {
    pub fn open(path: &Path) -> rusqlite::Result<Self> {
        Self::open_with(path, DEFAULT_WRITE_QUEUE)
    }

    /// Open the database with room for `write_queue` writes waiting for the writer thread.
    pub fn open_with(path: &Path, write_queue: usize) -> rusqlite::Result<Self> {
        let conn = Connection::open(path)?;
        // WAL + NORMAL: a committed row survives a killed process (not a power cut).
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS classes (
                class_id TEXT PRIMARY KEY,
                title TEXT NOT NULL,
                teacher_name TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                ended_at INTEGER
            );
            CREATE TABLE IF NOT EXISTS attendance (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                class_id TEXT NOT NULL REFERENCES classes(class_id),
                classroom_id TEXT NOT NULL,
                name TEXT NOT NULL,
                role TEXT NOT NULL,
                joined_at INTEGER NOT NULL,
                left_at INTEGER
            );
            CREATE INDEX IF NOT EXISTS attendance_class ON attendance(class_id);
            -- One row: when this server last said it was alive (closes attendance after a crash).
            CREATE TABLE IF NOT EXISTS server_seen (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                last_seen INTEGER NOT NULL
            );",
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Whiteboard ops, polls and votes live in the same file.
        crate::classboard::store::migrate(&conn)?;
        let writer = Writer::spawn(conn, write_queue).map_err(|err| {
            rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                Some(format!("starting the database writer thread: {err}")),
            )
        })?;
        Ok(Self {
            writer,
            path: path.to_path_buf(),
            readers: Mutex::default(),
        })
    }

    /// Run `f` with a reader connection of its own (a consistent snapshot; the writer and other
    /// readers go on meanwhile). For reads that may take long, e.g. a report.
    pub fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> T) -> rusqlite::Result<T> {
        let pooled = self.readers.lock().pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => {
                let conn = Connection::open(&self.path)?;
                conn.busy_timeout(std::time::Duration::from_secs(5))?;
                conn.pragma_update(None, "query_only", true)?;
                conn
            }
        };
        let out = f(&conn);
        let mut readers = self.readers.lock();
        if readers.len() < KEPT_READERS {
            readers.push(conn);
        }
        Ok(out)
    }

    /// Run `f` in the writer thread's next transaction; the answer comes once it is committed.
    /// `f` must not begin, commit or roll back a transaction itself.
    pub async fn write<T, E>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<rusqlite::Error> + Send + 'static,
    {
        self.writer.write(f).await
    }

    /// The writer's handle, for a task that outlives its borrow of the store.
    pub fn writer(&self) -> &Writer {
        &self.writer
    }

    /// A write for a synchronous caller: waits on this thread for its commit.
    fn write_now<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> rusqlite::Result<T> {
        writer::wait(self.writer.write(f))
    }

    /// Commit everything queued, then stop the writer thread (the last of a shutdown). Writes
    /// after this fail.
    pub fn stop_writer(&self) {
        writer::wait(self.writer.stop());
    }

    /// Note that the server is alive now (cheap: one row, rewritten).
    pub fn mark_seen(&self, at: u64) -> rusqlite::Result<()> {
        self.write_now(move |conn| {
            conn.execute(
                "INSERT INTO server_seen (id, last_seen) VALUES (1, ?1)
                 ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen",
                params![at],
            )
            .map(drop)
        })
    }

    /// When the server last said it was alive.
    pub fn last_seen(&self) -> rusqlite::Result<Option<u64>> {
        self.with_reader(|conn| {
            conn.query_row("SELECT last_seen FROM server_seen WHERE id = 1", [], |r| {
                r.get(0)
            })
            .optional()
        })?
    }

    /// Close every open attendance row at `at` (never before the row's own join). Returns how
    /// many were closed. At shutdown `at` is now; at start after a crash it is the last time the
    /// server was seen alive.
    pub fn close_open_attendance(&self, at: u64) -> rusqlite::Result<usize> {
        self.write_now(move |conn| {
            conn.execute(
                "UPDATE attendance SET left_at = MAX(joined_at, ?1) WHERE left_at IS NULL",
                params![at],
            )
        })
    }

    /// Classes not ended whose last sign of life (creation, a join or a leave) is before
    /// `before`.
    pub fn stale_classes(&self, before: u64) -> rusqlite::Result<Vec<String>> {
        self.with_reader(|conn| {
            let mut stmt = conn.prepare(
                "SELECT c.class_id FROM classes c WHERE c.ended_at IS NULL
                 AND MAX(c.created_at, COALESCE((SELECT MAX(MAX(a.joined_at, COALESCE(a.left_at, a.joined_at)))
                     FROM attendance a WHERE a.class_id = c.class_id), 0)) < ?1",
            )?;
            let rows = stmt.query_map(params![before], |r| r.get(0))?;
            rows.collect()
        })?
    }

    /// Delete everything about classes that ended before `before`. Returns how many classes.
    pub fn delete_ended_before(&self, before: u64) -> rusqlite::Result<usize> {
        // One write: its savepoint makes the deletes all or nothing.
        self.write_now(move |conn| {
            let old = "SELECT class_id FROM classes WHERE ended_at IS NOT NULL AND ended_at < ?1";
            for table in ["attendance", "board_ops", "polls", "votes"] {
                conn.execute(
                    &format!("DELETE FROM {table} WHERE class_id IN ({old})"),
                    params![before],
                )?;
            }
            conn.execute(
                "DELETE FROM classes WHERE ended_at IS NOT NULL AND ended_at < ?1",
                params![before],
            )
        })
    }

    /// Fold the WAL back into the database file (at shutdown, so the next start reads one file),
    /// after everything queued before is committed.
    pub fn checkpoint(&self) -> rusqlite::Result<()> {
        writer::wait(
            self.writer
                .alone(|conn| conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))),
        )
    }

    pub async fn insert_class(&self, class: &ClassRecord) -> rusqlite::Result<()> {
        let class = class.clone();
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO classes (class_id, title, teacher_name, created_at, ended_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![class.class_id, class.title, class.teacher_name, class.created_at, class.ended_at],
            )
            .map(drop)
        })
        .await
    }

    pub fn class(&self, class_id: &str) -> rusqlite::Result<Option<ClassRecord>> {
        self.with_reader(|conn| {
            conn.query_row(
                "SELECT class_id, title, teacher_name, created_at, ended_at FROM classes WHERE class_id = ?1",
                params![class_id],
                |row| {
                    Ok(ClassRecord {
                        class_id: row.get(0)?,
                        title: row.get(1)?,
                        teacher_name: row.get(2)?,
                        created_at: row.get(3)?,
                        ended_at: row.get(4)?,
                    })
                },
            )
            .optional()
        })?
    }

    pub fn end_class(&self, class_id: &str, at: u64) -> rusqlite::Result<()> {
        let class_id = class_id.to_owned();
        self.write_now(move |conn| {
            conn.execute(
                "UPDATE classes SET ended_at = ?2 WHERE class_id = ?1 AND ended_at IS NULL",
                params![class_id, at],
            )?;
            conn.execute(
                "UPDATE attendance SET left_at = ?2 WHERE class_id = ?1 AND left_at IS NULL",
                params![class_id, at],
            )
            .map(drop)
        })
    }

    /// Record a classroom arriving; returns the row to close when it leaves.
    pub fn joined(
        &self,
        class_id: &str,
        classroom_id: &str,
        name: &str,
        role: &str,
        at: u64,
    ) -> rusqlite::Result<i64> {
        let row = [class_id, classroom_id, name, role].map(str::to_owned);
        self.write_now(move |conn| {
            let [class_id, classroom_id, name, role] = row;
            conn.execute(
                "INSERT INTO attendance (class_id, classroom_id, name, role, joined_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![class_id, classroom_id, name, role, at],
            )?;
            Ok(conn.last_insert_rowid())
        })
    }

    pub fn left(&self, attendance_id: i64, at: u64) -> rusqlite::Result<()> {
        self.write_now(move |conn| {
            conn.execute(
                "UPDATE attendance SET left_at = ?2 WHERE id = ?1 AND left_at IS NULL",
                params![attendance_id, at],
            )
            .map(drop)
        })
    }

    pub fn attendance(&self, class_id: &str) -> rusqlite::Result<Vec<AttendanceRecord>> {
        self.with_reader(|conn| Self::attendance_on(conn, class_id))?
    }

    fn attendance_on(conn: &Connection, class_id: &str) -> rusqlite::Result<Vec<AttendanceRecord>> {
        let mut stmt = conn.prepare(
            "SELECT classroom_id, name, role, joined_at, left_at FROM attendance WHERE class_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map(params![class_id], |row| {
            Ok(AttendanceRecord {
                classroom_id: row.get(0)?,
                name: row.get(1)?,
                role: row.get(2)?,
                joined_at: row.get(3)?,
                left_at: row.get(4)?,
            })
        })?;
        rows.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_and_attendance_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tandem.db");
        {
            let store = Store::open(&path).unwrap();
            writer::wait(store.insert_class(&ClassRecord {
                class_id: "c_1".into(),
                title: "Fractions".into(),
                teacher_name: "Ms Li".into(),
                created_at: 10,
                ended_at: None,
            }))
            .unwrap();
            let row = store
                .joined("c_1", "r_1", "Hotan No. 3", "classroom", 20)
                .unwrap();
            store.left(row, 80).unwrap();
            store
                .joined("c_1", "r_2", "Kashgar No. 1", "classroom", 30)
                .unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.class("c_1").unwrap().unwrap().title, "Fractions");
        store.end_class("c_1", 100).unwrap();
        let attendance = store.attendance("c_1").unwrap();
        assert_eq!(attendance.len(), 2);
        assert_eq!(attendance[0].left_at, Some(80));
        assert_eq!(
            attendance[1].left_at,
            Some(100),
            "ending a class closes open attendance"
        );
        assert_eq!(store.class("c_1").unwrap().unwrap().ended_at, Some(100));
    }
}
