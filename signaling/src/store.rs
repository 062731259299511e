//! Class records in SQLite: classes and attendance (who joined, when, and when they left).

use std::path::Path;

use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, params};

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

/// The database: one writer connection and a few reader connections on the same WAL file.
///
/// **Why this shape.** Writes are single-row statements (a board op, a vote, an attendance row)
/// in WAL mode with `synchronous=NORMAL`: no fsync, tens of microseconds each. They run on the
/// caller's thread under the writer's mutex, inside the class's own critical section, so "stored,
/// then acknowledged" stays one straight line of code and a board op is broadcast only after its
/// row is committed. A dedicated writer thread with batched commits would add a thread hop and a
/// wake-up to every stroke segment to save microseconds. What stalled the server was a long
/// *read* (a class report replays a whole board) holding that one mutex: reads now take a
/// connection of their own from [`Store::with_reader`], and WAL lets them read a consistent
/// snapshot while the writer goes on. Long reads (reports) are also run on the blocking pool by
/// their callers, never on an async worker.
pub struct Store {
    conn: Mutex<Connection>,
    path: std::path::PathBuf,
    /// Idle reader connections, reused; more are opened when all are busy.
    readers: Mutex<Vec<Connection>>,
}

/// Reader connections kept open between uses.
const KEPT_READERS: usize = 4;

impl Store {
    pub fn open(path: &Path) -> rusqlite::Result<Self> {
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
        Ok(Self {
            conn: Mutex::new(conn),
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

    /// Note that the server is alive now (cheap: one row, rewritten).
    pub fn mark_seen(&self, at: u64) -> rusqlite::Result<()> {
        self.conn.lock().execute(
            "INSERT INTO server_seen (id, last_seen) VALUES (1, ?1)
             ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen",
            params![at],
        )?;
        Ok(())
    }

    /// When the server last said it was alive.
    pub fn last_seen(&self) -> rusqlite::Result<Option<u64>> {
        self.conn
            .lock()
            .query_row("SELECT last_seen FROM server_seen WHERE id = 1", [], |r| {
                r.get(0)
            })
            .optional()
    }

    /// Close every open attendance row at `at` (never before the row's own join). Returns how
    /// many were closed. At shutdown `at` is now; at start after a crash it is the last time the
    /// server was seen alive.
    pub fn close_open_attendance(&self, at: u64) -> rusqlite::Result<usize> {
        self.conn.lock().execute(
            "UPDATE attendance SET left_at = MAX(joined_at, ?1) WHERE left_at IS NULL",
            params![at],
        )
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
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        let old = "SELECT class_id FROM classes WHERE ended_at IS NOT NULL AND ended_at < ?1";
        for table in ["attendance", "board_ops", "polls", "votes"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE class_id IN ({old})"),
                params![before],
            )?;
        }
        let classes = tx.execute(
            "DELETE FROM classes WHERE ended_at IS NOT NULL AND ended_at < ?1",
            params![before],
        )?;
        tx.commit()?;
        Ok(classes)
    }

    /// Fold the WAL back into the database file (at shutdown, so the next start reads one file).
    pub fn checkpoint(&self) -> rusqlite::Result<()> {
        self.conn
            .lock()
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
    }

    /// Run `f` with the connection (for modules that keep their own tables here).
    pub fn with_conn<T>(&self, f: impl FnOnce(&Connection) -> T) -> T {
        f(&self.conn.lock())
    }

    pub fn insert_class(&self, class: &ClassRecord) -> rusqlite::Result<()> {
        self.conn.lock().execute(
            "INSERT INTO classes (class_id, title, teacher_name, created_at, ended_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![class.class_id, class.title, class.teacher_name, class.created_at, class.ended_at],
        )?;
        Ok(())
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
        let conn = self.conn.lock();
        conn.execute(
            "UPDATE classes SET ended_at = ?2 WHERE class_id = ?1 AND ended_at IS NULL",
            params![class_id, at],
        )?;
        conn.execute(
            "UPDATE attendance SET left_at = ?2 WHERE class_id = ?1 AND left_at IS NULL",
            params![class_id, at],
        )?;
        Ok(())
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
        let conn = self.conn.lock();
        conn.execute(
            "INSERT INTO attendance (class_id, classroom_id, name, role, joined_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![class_id, classroom_id, name, role, at],
        )?;
        Ok(conn.last_insert_rowid())
    }

    pub fn left(&self, attendance_id: i64, at: u64) -> rusqlite::Result<()> {
        self.conn.lock().execute(
            "UPDATE attendance SET left_at = ?2 WHERE id = ?1 AND left_at IS NULL",
            params![attendance_id, at],
        )?;
        Ok(())
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
            store
                .insert_class(&ClassRecord {
                    class_id: "c_1".into(),
                    title: "Fractions".into(),
                    teacher_name: "Ms Li".into(),
                    created_at: 10,
                    ended_at: None,
                })
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
