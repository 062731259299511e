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

/// The database. Writes are short and rare next to media, so one connection behind a mutex does;
/// WAL keeps readers from blocking the writer.
pub struct Store {
    conn: Mutex<Connection>,
}

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
            CREATE INDEX IF NOT EXISTS attendance_class ON attendance(class_id);",
        )?;
        // Whiteboard ops, polls and votes live in the same file.
        crate::classboard::store::migrate(&conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
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
        self.conn
            .lock()
            .query_row(
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
        let conn = self.conn.lock();
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
