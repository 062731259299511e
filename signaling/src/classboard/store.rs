//! SQLite persistence of boards, polls and votes.
//!
//! The rule: **write, then acknowledge.** Every accepted board op ([`BoardStore::append_op`]), poll
//! change ([`PollStore::save_poll`]) and vote ([`PollStore::save_vote`]) is committed to SQLite
//! before the server tells anyone about it. After a restart [`BoardStore::load_board`] replays
//! the class's ops and [`PollStore::load_polls`] reads its polls, so the board (including
//! undo history) and the polls are exactly as they were.
//!
//! **Journal and sync mode.** [`configure`] puts the database in WAL mode with
//! `synchronous=NORMAL` by default ([`Durability::Normal`]): a commit is in the WAL file (the OS page
//! cache) when `execute` returns, so it survives the server *process* being killed or crashing at
//! any point — which is what we promise. It does **not** survive a power loss or kernel crash: the
//! last commits before it may be lost (the database stays consistent). `NORMAL` avoids one
//! `fsync` per commit, which matters because every stroke segment is a write (dozens per second
//! per drawing classroom); the server's writer thread also commits what is queued in one
//! transaction (`crate::store::writer`). [`Durability::Full`] (`synchronous=FULL`) fsyncs the WAL on every commit and
//! also survives power loss, at the price of a disk flush per op; use it where the disk is fast
//! or the promise must cover power loss.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

use super::board::{Applied, Author, Board, BoardError, BoardLimits, BoardOp};
use super::poll::{Poll, PollLimits, Polls, Vote, VoterKind};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("stored JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("stored board op {seq} of class {class_id} does not replay: {source}")]
    Replay {
        class_id: String,
        seq: u64,
        source: BoardError,
    },
}

/// How hard SQLite flushes commits to disk (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// WAL + `synchronous=NORMAL`: survives a process kill, not a power loss. The default.
    #[default]
    Normal,
    /// WAL + `synchronous=FULL`: also survives a power loss; one fsync per commit.
    Full,
}

/// Set the journal and sync mode (and a busy timeout). Call once per connection.
pub fn configure(conn: &Connection, sync: Durability) -> rusqlite::Result<()> {
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") && !mode.eq_ignore_ascii_case("memory") {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "journal_mode is {mode}, WAL is needed"
        )));
    }
    conn.pragma_update(
        None,
        "synchronous",
        match sync {
            Durability::Normal => "NORMAL",
            Durability::Full => "FULL",
        },
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(())
}

/// Create the tables if they are not there yet.
pub fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "
        CREATE TABLE IF NOT EXISTS board_ops (
            class_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            author TEXT NOT NULL,          -- classroom id
            author_is_teacher INTEGER NOT NULL,
            op_json TEXT NOT NULL,         -- the normalised BoardOp
            at INTEGER NOT NULL,           -- Unix ms when it was stored
            PRIMARY KEY (class_id, seq)
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS polls (
            class_id TEXT NOT NULL,
            poll_id INTEGER NOT NULL,
            state TEXT NOT NULL,
            poll_json TEXT NOT NULL,       -- the whole Poll
            updated_at INTEGER NOT NULL,
            PRIMARY KEY (class_id, poll_id)
        );
        CREATE TABLE IF NOT EXISTS votes (
            class_id TEXT NOT NULL,
            poll_id INTEGER NOT NULL,
            voter_id TEXT NOT NULL,
            voter_kind TEXT NOT NULL,      -- classroom | pupil
            display_name TEXT,             -- NULL for anonymous polls
            choices_json TEXT NOT NULL,    -- [option index, ...]
            at INTEGER NOT NULL,           -- Unix ms of the (last) vote
            UNIQUE (class_id, poll_id, voter_id)
        );
        ",
    )
}

/// Open (creating if needed) a database file, configured and migrated.
pub fn open(path: impl AsRef<Path>, sync: Durability) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    configure(&conn, sync)?;
    migrate(&conn)?;
    Ok(conn)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Board ops of all classes.
pub struct BoardStore;

impl BoardStore {
    /// Store an accepted op. Call it before broadcasting or acknowledging the op; a second op
    /// with the same class and seq is refused (primary key).
    pub fn append_op(
        conn: &Connection,
        class_id: &str,
        applied: &Applied,
    ) -> Result<(), StoreError> {
        let op_json = serde_json::to_string(&applied.op)?;
        conn.prepare_cached(
            "INSERT INTO board_ops (class_id, seq, author, author_is_teacher, op_json, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            class_id,
            applied.seq as i64,
            applied.author.classroom_id,
            applied.author.is_teacher,
            op_json,
            now_ms()
        ])?;
        Ok(())
    }

    /// The stored ops of a class after `after_seq`, in order.
    pub fn load_ops(
        conn: &Connection,
        class_id: &str,
        after_seq: u64,
    ) -> Result<Vec<Applied>, StoreError> {
        let mut stmt = conn.prepare_cached(
            "SELECT seq, author, author_is_teacher, op_json FROM board_ops
             WHERE class_id = ?1 AND seq > ?2 ORDER BY seq",
        )?;
        let rows = stmt.query_map(params![class_id, after_seq as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, bool>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?;
        let mut ops = Vec::new();
        for row in rows {
            let (seq, classroom_id, is_teacher, op_json) = row?;
            let op: BoardOp = serde_json::from_str(&op_json)?;
            ops.push(Applied {
                seq: seq as u64,
                author: Author {
                    classroom_id,
                    is_teacher,
                },
                op,
            });
        }
        Ok(ops)
    }

    /// Rebuild a class's board by replaying its stored ops (an empty board if there are none).
    pub fn load_board(
        conn: &Connection,
        class_id: &str,
        limits: BoardLimits,
    ) -> Result<Board, StoreError> {
        let mut board = Board::new(limits);
        for applied in Self::load_ops(conn, class_id, 0)? {
            board
                .replay(&applied)
                .map_err(|source| StoreError::Replay {
                    class_id: class_id.to_string(),
                    seq: applied.seq,
                    source,
                })?;
        }
        Ok(board)
    }

    /// Forget a class's board (e.g. when a class is deleted).
    pub fn delete_board(conn: &Connection, class_id: &str) -> Result<(), StoreError> {
        conn.execute(
            "DELETE FROM board_ops WHERE class_id = ?1",
            params![class_id],
        )?;
        Ok(())
    }
}

/// Polls and votes of all classes.
pub struct PollStore;

fn kind_str(kind: VoterKind) -> &'static str {
    match kind {
        VoterKind::Classroom => "classroom",
        VoterKind::Pupil => "pupil",
    }
}

impl PollStore {
    /// Insert or update a poll (after `start`, `close`, `publish`, `tick`).
    pub fn save_poll(conn: &Connection, class_id: &str, poll: &Poll) -> Result<(), StoreError> {
        let state = serde_json::to_value(poll.state)?;
        conn.prepare_cached(
            "INSERT INTO polls (class_id, poll_id, state, poll_json, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (class_id, poll_id) DO UPDATE SET
                state = excluded.state, poll_json = excluded.poll_json,
                updated_at = excluded.updated_at",
        )?
        .execute(params![
            class_id,
            poll.poll_id as i64,
            state.as_str().unwrap_or_default(),
            serde_json::to_string(poll)?,
            now_ms()
        ])?;
        Ok(())
    }

    /// Insert a vote or replace the voter's earlier vote in that poll.
    pub fn save_vote(conn: &Connection, class_id: &str, vote: &Vote) -> Result<(), StoreError> {
        conn.prepare_cached(
            "INSERT INTO votes (class_id, poll_id, voter_id, voter_kind, display_name, choices_json, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (class_id, poll_id, voter_id) DO UPDATE SET
                voter_kind = excluded.voter_kind, display_name = excluded.display_name,
                choices_json = excluded.choices_json, at = excluded.at",
        )?
        .execute(params![
            class_id,
            vote.poll_id as i64,
            vote.voter_id,
            kind_str(vote.kind),
            vote.display_name,
            serde_json::to_string(&vote.choices)?,
            vote.at_ms as i64
        ])?;
        Ok(())
    }

    /// All polls and votes of a class.
    pub fn load_polls(
        conn: &Connection,
        class_id: &str,
        limits: PollLimits,
    ) -> Result<Polls, StoreError> {
        let mut stmt = conn
            .prepare_cached("SELECT poll_json FROM polls WHERE class_id = ?1 ORDER BY poll_id")?;
        let mut polls = Vec::new();
        for json in stmt.query_map(params![class_id], |r| r.get::<_, String>(0))? {
            polls.push(serde_json::from_str::<Poll>(&json?)?);
        }
        let mut stmt = conn.prepare_cached(
            "SELECT poll_id, voter_id, voter_kind, display_name, choices_json, at FROM votes
             WHERE class_id = ?1 ORDER BY poll_id, voter_id",
        )?;
        let rows = stmt.query_map(params![class_id], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })?;
        let mut votes = Vec::new();
        for row in rows {
            let (poll_id, voter_id, kind, display_name, choices, at) = row?;
            votes.push(Vote {
                poll_id: poll_id as u64,
                voter_id,
                kind: if kind == "pupil" {
                    VoterKind::Pupil
                } else {
                    VoterKind::Classroom
                },
                display_name,
                choices: serde_json::from_str(&choices)?,
                at_ms: at as u64,
            });
        }
        Ok(Polls::from_parts(limits, polls, votes))
    }

    /// Whether a class has any stored poll (e.g. to decide whether to show a poll section).
    pub fn has_polls(conn: &Connection, class_id: &str) -> Result<bool, StoreError> {
        Ok(conn
            .query_row(
                "SELECT 1 FROM polls WHERE class_id = ?1 LIMIT 1",
                params![class_id],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::super::board::{
        BoardOp, BoardSnapshot, Catchup, DrawTarget, Point, ShapeKind, StrokeTool,
    };
    use super::super::poll::{PollKind, PollSpec, PollState, Voter};
    use super::*;
    use std::time::{Duration, Instant};

    fn begin(id: &str, x: f64) -> BoardOp {
        BoardOp::StrokeBegin {
            object_id: id.into(),
            page: 0,
            tool: StrokeTool::Pen,
            color: "#e53935".into(),
            width: 4.0,
            point: Point(x, 10.0),
        }
    }

    /// What the lead's handler does: apply, store, then broadcast.
    fn apply_and_store(
        board: &mut Board,
        conn: &Connection,
        author: &Author,
        op: BoardOp,
        now: Instant,
    ) -> Result<Applied, BoardError> {
        let prepared = board.prepare(author, op, now)?;
        BoardStore::append_op(conn, "c_1", prepared.applied()).unwrap();
        board.commit(prepared)
    }

    #[test]
    fn mode_is_wal_and_sync_is_as_chosen() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(dir.path().join("t.db"), Durability::Normal).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!((mode.as_str(), sync), ("wal", 1));
        let conn = open(dir.path().join("t.db"), Durability::Full).unwrap();
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2);
    }

    #[test]
    fn the_board_is_all_there_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tandem.db");
        let teacher = Author::teacher("r_1");
        let room = Author::classroom("r_2");
        let mut t = Instant::now();
        let mut tick = || {
            t += Duration::from_millis(40);
            t
        };
        let (before, ops) = {
            let conn = open(&path, Durability::Normal).unwrap();
            let mut board = Board::new(BoardLimits::default());
            let script = [
                (&teacher, begin("t1", 10.0)),
                (
                    &teacher,
                    BoardOp::StrokeAppend {
                        object_id: "t1".into(),
                        page: None,
                        points: vec![Point(20.0, 30.0), Point(40.5, 60.25)],
                    },
                ),
                (
                    &teacher,
                    BoardOp::StrokeEnd {
                        object_id: "t1".into(),
                        page: None,
                    },
                ),
                (
                    &teacher,
                    BoardOp::SetDrawPermission {
                        target: DrawTarget::Classroom("r_2".into()),
                        allowed: true,
                    },
                ),
                (
                    &room,
                    BoardOp::ShapeAdd {
                        object_id: "a1".into(),
                        page: 0,
                        shape: ShapeKind::Ellipse,
                        color: "#000000".into(),
                        width: 2.0,
                        from: Point(0.0, 0.0),
                        to: Point(50.0, 50.0),
                        fill: None,
                    },
                ),
                (&teacher, BoardOp::AddPage { page: None }),
                (&teacher, BoardOp::SetPage { page: 1 }),
                (&teacher, BoardOp::ClearPage { page: 0 }),
                (&teacher, BoardOp::Undo { effect: None }),
                (
                    &teacher,
                    BoardOp::Erase {
                        object_ids: vec!["a1".into()],
                    },
                ),
                (&room, begin("a2", 99.0)), // still being drawn when the server dies
            ];
            for (author, op) in script {
                apply_and_store(&mut board, &conn, author, op, tick()).unwrap();
            }
            // A rejected op is not stored.
            let err = apply_and_store(&mut board, &conn, &room, begin("a1", 1.0), tick());
            assert!(err.is_err());
            let ops = BoardStore::load_ops(&conn, "c_1", 0).unwrap();
            (board.snapshot(), ops)
        }; // everything dropped: the "process" is gone

        let conn = open(&path, Durability::Normal).unwrap();
        let mut board = BoardStore::load_board(&conn, "c_1", BoardLimits::default()).unwrap();
        assert_eq!(board.snapshot(), before);
        assert_eq!(board.seq(), 11);
        assert_eq!(board.current_page(), 1);
        // A classroom that had seen up to seq 5 catches up from the reloaded log.
        let mut screen = BoardSnapshot::new();
        for a in &ops[..5] {
            screen.apply(a).unwrap();
        }
        match board.ops_since(5) {
            Catchup::Delta { ops } => ops.iter().for_each(|a| screen.apply(a).unwrap()),
            other => panic!("{other:?}"),
        }
        assert_eq!(screen, before);
        // The lesson goes on: seq continues, the open stroke can still grow, undo history is back.
        let a = apply_and_store(
            &mut board,
            &conn,
            &room,
            BoardOp::StrokeAppend {
                object_id: "a2".into(),
                page: None,
                points: vec![Point(100.0, 11.0)],
            },
            tick(),
        )
        .unwrap();
        assert_eq!(a.seq, 12);
        let undo = apply_and_store(
            &mut board,
            &conn,
            &teacher,
            BoardOp::Undo { effect: None },
            tick(),
        )
        .unwrap();
        match undo.op {
            BoardOp::Undo { effect: Some(e) } => {
                assert_eq!(e.restore.len(), 1);
                assert_eq!(e.restore[0].object.id, "a1");
            }
            other => panic!("{other:?}"),
        }
        // Other classes are unaffected.
        let other = BoardStore::load_board(&conn, "c_2", BoardLimits::default()).unwrap();
        assert_eq!(other.snapshot(), BoardSnapshot::new());
    }

    #[test]
    fn a_random_lesson_survives_a_restart_exactly() {
        use super::super::board::tests::{Rng, random_op, small_limits};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tandem.db");
        let authors = [
            Author::teacher("r_1"),
            Author::classroom("r_2"),
            Author::classroom("r_3"),
        ];
        let mut rng = Rng::new(42);
        let mut ids = Vec::new();
        let mut next_id = 0;
        let mut t = Instant::now();
        let before = {
            let conn = open(&path, Durability::Normal).unwrap();
            let mut board = Board::new(small_limits());
            for _ in 0..800 {
                t += Duration::from_millis(20);
                let author = &authors[rng.below(3) as usize];
                let op = random_op(&mut rng, &ids, &mut next_id);
                if let Ok(a) = apply_and_store(&mut board, &conn, author, op, t)
                    && let BoardOp::StrokeBegin { object_id, .. }
                    | BoardOp::ShapeAdd { object_id, .. }
                    | BoardOp::TextAdd { object_id, .. } = &a.op
                {
                    ids.push(object_id.clone());
                }
            }
            assert!(board.seq() > 200);
            board.snapshot()
        };
        let conn = open(&path, Durability::Normal).unwrap();
        let board = BoardStore::load_board(&conn, "c_1", small_limits()).unwrap();
        assert_eq!(board.snapshot(), before);
    }

    #[test]
    fn polls_and_votes_are_all_there_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tandem.db");
        let teacher = Author::teacher("r_1");
        let at = |s: u64| UNIX_EPOCH + Duration::from_secs(1_767_225_600 + s);
        let mia = Voter {
            voter_id: "p_1".into(),
            display_name: "Mia".into(),
            kind: VoterKind::Pupil,
        };
        let room = Voter {
            voter_id: "r_2".into(),
            display_name: "Room 2".into(),
            kind: VoterKind::Classroom,
        };
        let before = {
            let conn = open(&path, Durability::Normal).unwrap();
            let mut polls = Polls::new(PollLimits::default());
            let spec: PollSpec = serde_json::from_str(
                r#"{"question":"2+2?","kind":"single","options":["3","4"],"anonymous":false}"#,
            )
            .unwrap();
            let p = polls.start(&teacher, spec, at(0)).unwrap();
            PollStore::save_poll(&conn, "c_1", &p).unwrap();
            for (voter, choice) in [(&mia, 0), (&room, 1), (&mia, 1)] {
                let vote = polls.prepare_vote(voter, 1, &[choice], at(1)).unwrap();
                PollStore::save_vote(&conn, "c_1", &vote).unwrap();
                polls.commit_vote(vote);
            }
            let p = polls.close(&teacher, 1).unwrap();
            PollStore::save_poll(&conn, "c_1", &p).unwrap();
            let spec: PollSpec =
                serde_json::from_str(r#"{"question":"Ready?","kind":"yes_no","timer_secs":120}"#)
                    .unwrap();
            let p = polls.start(&teacher, spec, at(10)).unwrap();
            PollStore::save_poll(&conn, "c_1", &p).unwrap();
            let vote = polls.vote(&mia, 2, &[0], at(11)).unwrap();
            PollStore::save_vote(&conn, "c_1", &vote).unwrap();
            assert!(PollStore::has_polls(&conn, "c_1").unwrap());
            polls
        };
        let conn = open(&path, Durability::Normal).unwrap();
        let mut polls = PollStore::load_polls(&conn, "c_1", PollLimits::default()).unwrap();
        assert_eq!(polls, before);
        assert_eq!(polls.counts(1).unwrap(), vec![0, 2], "Mia changed her vote");
        let stored: i64 = conn
            .query_row("SELECT COUNT(*) FROM votes WHERE poll_id = 1", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(stored, 2, "one row per voter");
        let names: Vec<Option<String>> = conn
            .prepare("SELECT display_name FROM votes WHERE poll_id = 2")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(names, vec![None], "anonymous poll: no name stored");
        // The second poll is still open after the restart, and its timer still runs.
        assert_eq!(polls.get(2).unwrap().state, PollState::Open);
        polls.vote(&room, 2, &[1], at(60)).unwrap();
        assert_eq!(polls.tick(at(130)).len(), 1);
        assert!(!PollStore::has_polls(&conn, "c_other").unwrap());
        assert_eq!(polls.get(2).unwrap().kind, PollKind::YesNo);
    }

    #[test]
    fn a_seq_is_stored_only_once() {
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn).unwrap();
        let mut board = Board::new(BoardLimits::default());
        let a = board
            .apply(&Author::teacher("r_1"), begin("t1", 1.0), Instant::now())
            .unwrap();
        BoardStore::append_op(&conn, "c_1", &a).unwrap();
        assert!(BoardStore::append_op(&conn, "c_1", &a).is_err());
        BoardStore::delete_board(&conn, "c_1").unwrap();
        assert!(BoardStore::load_ops(&conn, "c_1", 0).unwrap().is_empty());
    }
}
