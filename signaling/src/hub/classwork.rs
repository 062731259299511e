//! The shared whiteboard, polls and the class report, as hub operations.
//!
//! The rule for everything that changes: **write, then tell.** An op is prepared (checked,
//! normalised, numbered) under the class lock, written to SQLite by the writer thread (awaited,
//! with no lock held), then committed to the in-memory board and only then broadcast; the
//! broadcast is the author's acknowledgement. The class's write turn, held from `prepare` to the
//! broadcast, keeps one class's changes in one order; other classes go on meanwhile. A refused
//! op goes back to its sender as an `error` and nobody else's board changes. Polls and votes
//! work the same way (a poll change is made on a copy that replaces the class's polls once it is
//! stored).

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use tandem_sfu::ClassroomId;
use tokio::sync::OwnedMutexGuard;

use super::{Hub, HubError, Seat, unix_now};
use crate::class::Class;
use crate::classboard::board::{
    Author, Board, BoardError, BoardOp, COORD_LIMIT, Catchup, Point, board_svg,
};
use crate::classboard::poll::{Poll, PollError, PollSpec, PollState, Polls};
use crate::classboard::report::{AttendanceRow, ClassReport};
use crate::classboard::store::{BoardStore, PollStore, StoreError};
use crate::protocol::{ErrorCode, ParticipantRole, ServerMessage};

/// How often poll timers are checked.
const POLL_TICK: Duration = Duration::from_secs(1);

/// Wait for the class's turn to write: held from checking a change to broadcasting it, so the
/// class's changes are stored and told in one order (the writer thread commits them in the order
/// they are queued, but its answers may wake their callers in any order).
async fn write_turn(class: &Mutex<Class>) -> OwnedMutexGuard<()> {
    let turn = Arc::clone(&class.lock().write_turn);
    turn.lock_owned().await
}

/// Run the rest of a change (await its write, then commit and broadcast) in a task of its own:
/// once a write is queued, a caller that goes away (its connection closes) must not leave it
/// stored but never applied in memory or told.
async fn to_the_end(
    rest: impl std::future::Future<Output = Result<(), HubError>> + Send + 'static,
) -> Result<(), HubError> {
    tokio::spawn(rest).await.unwrap_or_else(|err| {
        tracing::error!(%err, "a class change failed half-way");
        Err(HubError::new(ErrorCode::Internal, "the change failed"))
    })
}

pub(super) fn store_error(err: StoreError) -> HubError {
    tracing::error!(%err, "board or poll records");
    HubError::new(
        ErrorCode::Internal,
        "the class records could not be written or read",
    )
}

fn board_error(err: BoardError) -> HubError {
    let code = match &err {
        BoardError::Forbidden(_) => ErrorCode::Forbidden,
        BoardError::LimitPoints { .. }
        | BoardError::LimitObjects { .. }
        | BoardError::LimitPages { .. } => ErrorCode::LimitExceeded,
        BoardError::RateLimited => ErrorCode::RateLimited,
        BoardError::NotFound(_) => ErrorCode::NotFound,
        BoardError::Invalid(_) | BoardError::OutOfOrder { .. } => ErrorCode::Invalid,
    };
    HubError::new(code, err.to_string())
}

fn poll_error(err: PollError) -> HubError {
    let code = match &err {
        PollError::Forbidden(_) => ErrorCode::Forbidden,
        PollError::NotFound(_) => ErrorCode::NotFound,
        PollError::Closed => ErrorCode::PollClosed,
        PollError::Invalid(_) => ErrorCode::Invalid,
        PollError::AlreadyOpen(_) => ErrorCode::PollAlreadyOpen,
        PollError::LimitPolls { .. } => ErrorCode::LimitExceeded,
    };
    HubError::new(code, err.to_string())
}

/// Who acts in a poll: the teacher, or anybody else (whom the engine refuses teacher actions).
fn actor(class: &Class, id: &ClassroomId) -> Author {
    class
        .author(id)
        .unwrap_or_else(|| Author::classroom(id.as_str()))
}

fn counts_message(class: &Class, poll_id: u64) -> Option<ServerMessage> {
    let results = class.polls.results(poll_id).ok()?;
    Some(ServerMessage::PollCounts {
        poll_id,
        counts: results.counts,
        voters_total: results.voters_total,
    })
}

/// What a (re)joining participant needs to know about polls: every poll (oldest first), the
/// published results, its own vote in the open poll, and (the teacher) the counts so far.
pub(super) fn poll_news(class: &Class, id: &ClassroomId) -> Vec<ServerMessage> {
    let is_teacher = class.is_teacher(id);
    let mut news = Vec::new();
    for poll in class.polls.all() {
        news.push(ServerMessage::Poll { poll: poll.clone() });
        if poll.state == PollState::Published
            && let Ok(results) = class.polls.results(poll.poll_id)
        {
            news.push(ServerMessage::PollResult { results });
        }
        if poll.state == PollState::Open
            && let Some(vote) = class.polls.vote_of(poll.poll_id, id.as_str())
        {
            news.push(ServerMessage::PollVoted {
                poll_id: poll.poll_id,
                choices: vote.choices.clone(),
            });
        }
        if is_teacher
            && poll.state != PollState::Published
            && let Some(counts) = counts_message(class, poll.poll_id)
        {
            news.push(counts);
        }
    }
    news
}

impl Hub {
    /// A class's board and polls as stored: what a revived class and a report start from.
    pub(super) fn load_classwork(&self, class_id: &str) -> Result<(Board, Polls), HubError> {
        let board_limits = self.config.board_limits();
        let poll_limits = self.config.poll_limits();
        // A reader of its own: replaying a long board never holds up other classes' writes.
        self.store
            .with_reader(|conn| {
                Ok::<_, StoreError>((
                    BoardStore::load_board(conn, class_id, board_limits)?,
                    PollStore::load_polls(conn, class_id, poll_limits)?,
                ))
            })
            .map_err(HubError::from)?
            .map_err(store_error)
    }

    /// Whether `seat` is a pupil's vote-only seat.
    pub fn is_pupil(&self, seat: &Seat) -> bool {
        self.class_of(seat)
            .map(|c| c.lock().is_pupil(&seat.classroom_id))
            .unwrap_or(false)
    }

    /// A board op: check, store, commit, broadcast to every classroom (the author included).
    ///
    /// The class's write turn is held from `prepare` to the broadcast, so the class's ops are
    /// stored, committed and broadcast one at a time in seq order, while other classes' writes
    /// share the writer's transactions. No lock is held while the write is awaited.
    pub async fn board_op(&self, seat: &Seat, op: BoardOp) -> Result<(), HubError> {
        let class_arc = self.class_of(seat)?;
        let turn = write_turn(&class_arc).await;
        let prepared = {
            let mut class = class_arc.lock();
            let author = class.author(&seat.classroom_id).ok_or_else(|| {
                HubError::new(ErrorCode::Forbidden, "only classrooms draw on the board")
            })?;
            class
                .board
                .prepare(&author, op, Instant::now())
                .map_err(board_error)?
        };
        let writer = self.store.writer().clone();
        let class_id = seat.class_id.as_str().to_owned();
        let row = prepared.applied().clone();
        to_the_end(async move {
            writer
                .write(move |conn| BoardStore::append_op(conn, &class_id, &row))
                .await
                .map_err(store_error)?;
            let mut class = class_arc.lock();
            let applied = class.board.commit(prepared).map_err(board_error)?;
            class.broadcast(&ServerMessage::BoardOp { applied });
            drop(turn);
            Ok(())
        })
        .await
    }

    /// Catch-up for a classroom that has seen the board up to `since_seq` (a snapshot without
    /// it). Sent through the outbox, so it cannot overtake an op broadcast before it.
    pub fn board_sync(&self, seat: &Seat, since_seq: Option<u64>) -> Result<(), HubError> {
        let class_arc = self.class_of(seat)?;
        let mut class = class_arc.lock();
        if class.author(&seat.classroom_id).is_none() {
            return Err(HubError::new(
                ErrorCode::Forbidden,
                "only classrooms see the board",
            ));
        }
        let catchup = match since_seq {
            Some(since) => class.board.ops_since(since),
            None => Catchup::Snapshot {
                snapshot: class.board.snapshot(),
            },
        };
        class.send_to(&seat.classroom_id, ServerMessage::BoardCatchup { catchup });
        Ok(())
    }

    /// The laser pointer moves (`Some`) or is switched off: shown live to the other classrooms,
    /// never stored. Whoever may draw may point.
    pub fn laser(&self, seat: &Seat, at: Option<(u32, Point)>) -> Result<(), HubError> {
        let class_arc = self.class_of(seat)?;
        let mut class = class_arc.lock();
        let may_point = class
            .author(&seat.classroom_id)
            .is_some_and(|a| class.board.may_draw(&a));
        if !may_point {
            return Err(HubError::new(
                ErrorCode::Forbidden,
                "the teacher has not allowed drawing",
            ));
        }
        let message = match at {
            Some((page, point)) => {
                if page as usize >= class.board.state().pages.len() {
                    return Err(HubError::new(ErrorCode::NotFound, "no such page"));
                }
                let ok = |v: f64| v.is_finite() && v.abs() <= COORD_LIMIT;
                if !ok(point.0) || !ok(point.1) {
                    return Err(HubError::new(
                        ErrorCode::Invalid,
                        format!("a point must be within ±{COORD_LIMIT}"),
                    ));
                }
                ServerMessage::Laser {
                    classroom_id: seat.classroom_id.clone(),
                    page,
                    point,
                }
            }
            None => ServerMessage::LaserOff {
                classroom_id: seat.classroom_id.clone(),
            },
        };
        class.broadcast_except(&seat.classroom_id, &message);
        Ok(())
    }

    /// Store `poll` as changed in `staged` (a copy of the class's polls); once it is committed,
    /// the copy becomes the class's polls and `then` tells whom it concerns. If the write fails
    /// the class's polls stay as they are on record. Hold the class's write turn (`turn`).
    async fn save_poll(
        &self,
        class_arc: Arc<Mutex<Class>>,
        turn: OwnedMutexGuard<()>,
        staged: Polls,
        poll: Poll,
        then: impl FnOnce(&mut Class, Poll) + Send + 'static,
    ) -> Result<(), HubError> {
        let writer = self.store.writer().clone();
        to_the_end(async move {
            let class_id = class_arc.lock().record.class_id.clone();
            let row = poll.clone();
            writer
                .write(move |conn| PollStore::save_poll(conn, &class_id, &row))
                .await
                .map_err(store_error)?;
            let mut class = class_arc.lock();
            class.polls = staged;
            then(&mut class, poll);
            drop(turn);
            Ok(())
        })
        .await
    }

    /// Announce a poll's new state to everyone and its counts to the teacher.
    fn announce_poll(class: &mut Class, poll: Poll) {
        let counts = counts_message(class, poll.poll_id);
        class.broadcast_everyone(&ServerMessage::Poll { poll });
        if let Some(counts) = counts {
            class.send_to_teachers(&counts);
        }
    }

    /// A teacher's change to a poll (`change` on a copy of the class's polls), stored, then
    /// announced.
    async fn change_poll(
        &self,
        seat: &Seat,
        change: impl FnOnce(&mut Polls, &Author) -> Result<Poll, PollError>,
        then: impl FnOnce(&mut Class, Poll) + Send + 'static,
    ) -> Result<(), HubError> {
        let class_arc = self.class_of(seat)?;
        let turn = write_turn(&class_arc).await;
        let (staged, poll) = {
            let class = class_arc.lock();
            let teacher = actor(&class, &seat.classroom_id);
            let mut staged = class.polls.clone();
            let poll = change(&mut staged, &teacher).map_err(poll_error)?;
            (staged, poll)
        };
        self.save_poll(class_arc, turn, staged, poll, then).await
    }

    pub async fn poll_start(&self, seat: &Seat, spec: PollSpec) -> Result<(), HubError> {
        let class = seat.class_id.clone();
        self.change_poll(
            seat,
            |polls, teacher| polls.start(teacher, spec, SystemTime::now()),
            move |c, poll| {
                tracing::info!(%class, poll = poll.poll_id, "poll started");
                Self::announce_poll(c, poll);
            },
        )
        .await
    }

    /// A classroom or a pupil votes (or changes its vote) while the poll is open.
    pub async fn poll_vote(
        &self,
        seat: &Seat,
        poll_id: u64,
        choices: &[u32],
    ) -> Result<(), HubError> {
        let class_arc = self.class_of(seat)?;
        let turn = write_turn(&class_arc).await;
        let (class_id, vote) = {
            let class = class_arc.lock();
            let voter = class.voter(&seat.classroom_id).ok_or_else(|| {
                HubError::new(
                    ErrorCode::Forbidden,
                    "the teacher asks; classrooms and pupils vote",
                )
            })?;
            let vote = class
                .polls
                .prepare_vote(&voter, poll_id, choices, SystemTime::now())
                .map_err(poll_error)?;
            (class.record.class_id.clone(), vote)
        };
        let writer = self.store.writer().clone();
        let voter = seat.classroom_id.clone();
        to_the_end(async move {
            let row = vote.clone();
            writer
                .write(move |conn| PollStore::save_vote(conn, &class_id, &row))
                .await
                .map_err(store_error)?;
            let mut class = class_arc.lock();
            let voted = ServerMessage::PollVoted {
                poll_id,
                choices: vote.choices.clone(),
            };
            class.polls.commit_vote(vote);
            class.send_to(&voter, voted);
            if let Some(counts) = counts_message(&class, poll_id) {
                class.send_to_teachers(&counts);
            }
            drop(turn);
            Ok(())
        })
        .await
    }

    pub async fn poll_close(&self, seat: &Seat, poll_id: u64) -> Result<(), HubError> {
        self.change_poll(
            seat,
            |polls, teacher| polls.close(teacher, poll_id),
            Self::announce_poll,
        )
        .await
    }

    /// The teacher shows the result on every screen (closing the poll if it is still open).
    pub async fn poll_publish(&self, seat: &Seat, poll_id: u64) -> Result<(), HubError> {
        self.change_poll(
            seat,
            |polls, teacher| polls.publish(teacher, poll_id).map(|results| results.poll),
            move |class, poll| {
                class.broadcast_everyone(&ServerMessage::Poll { poll });
                if let Ok(results) = class.polls.results(poll_id) {
                    class.broadcast_everyone(&ServerMessage::PollResult { results });
                }
            },
        )
        .await
    }

    /// Close the polls whose timer ran out, in every live class.
    pub async fn tick_polls(&self, now: SystemTime) {
        let classes: Vec<_> = self.classes.iter().map(|c| c.value().clone()).collect();
        for class_arc in classes {
            let due = |class: &Class| {
                class
                    .polls
                    .all()
                    .any(|p| p.state == PollState::Open && !p.accepts_votes_at(now))
            };
            if !due(&class_arc.lock()) {
                continue;
            }
            let turn = write_turn(&class_arc).await;
            let (staged, closed) = {
                let class = class_arc.lock();
                let mut staged = class.polls.clone();
                let closed = staged.tick(now);
                (staged, closed)
            };
            if closed.is_empty() {
                continue;
            }
            let writer = self.store.writer().clone();
            let done = to_the_end(async move {
                let class_id = class_arc.lock().record.class_id.clone();
                let rows = closed.clone();
                writer
                    .write(move |conn| {
                        rows.iter()
                            .try_for_each(|poll| PollStore::save_poll(conn, &class_id, poll))
                    })
                    .await
                    .map_err(store_error)?;
                let mut class = class_arc.lock();
                class.polls = staged;
                for poll in closed {
                    tracing::info!(class = %class.record.class_id, poll = poll.poll_id, "poll timer ran out");
                    Self::announce_poll(&mut class, poll);
                }
                drop(turn);
                Ok(())
            })
            .await;
            if let Err(err) = done {
                tracing::error!(%err, "poll timer: closed polls not stored");
            }
        }
    }

    /// Check poll timers about once a second until the server shuts down.
    pub fn spawn_poll_timer(self: &Arc<Self>) {
        let hub: Weak<Self> = Arc::downgrade(self);
        let mut shutdown = self.shutdown_signal();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL_TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    biased;
                    () = crate::serve::until_shutdown(&mut shutdown) => break,
                    _ = tick.tick() => {}
                }
                let Some(hub) = hub.upgrade() else { break };
                hub.tick_polls(SystemTime::now()).await;
            }
        });
    }

    /// The class report for the teacher, during or after the class: attendance, every poll with
    /// its results, and the board pages as SVG. Read from the records, so it is the same after a
    /// restart or after the class ended.
    pub fn report(
        &self,
        class_id: &str,
        token: &str,
        utc_offset_minutes: i32,
    ) -> Result<ClassReport, HubError> {
        self.authorize_report(class_id, token)?;
        self.build_report(class_id, utc_offset_minutes)
    }

    /// Whether `token` is the teacher token of `class_id`, which opens its report.
    pub fn authorize_report(&self, class_id: &str, token: &str) -> Result<(), HubError> {
        if self.store.class(class_id)?.is_none() {
            return Err(HubError::new(ErrorCode::NotFound, "no such class"));
        }
        let claims = self.tokens.verify(token, class_id, unix_now())?;
        if claims.role != ParticipantRole::Master {
            return Err(HubError::new(
                ErrorCode::Forbidden,
                "the class report is for the teacher",
            ));
        }
        Ok(())
    }

    /// Build the report of a class (already authorised). Reads with a reader connection of its
    /// own and replays the whole board: call it off the async workers (`spawn_blocking`).
    pub fn build_report(
        &self,
        class_id: &str,
        utc_offset_minutes: i32,
    ) -> Result<ClassReport, HubError> {
        let record = self
            .store
            .class(class_id)?
            .ok_or_else(|| HubError::new(ErrorCode::NotFound, "no such class"))?;
        let at = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);
        let attendance = self
            .store
            .attendance(class_id)?
            .into_iter()
            .map(|a| AttendanceRow {
                classroom_id: a.classroom_id,
                name: a.name,
                role: a.role,
                joined_at: at(a.joined_at),
                left_at: a.left_at.map(at),
            })
            .collect();
        let (board, polls) = self.load_classwork(class_id)?;
        let snapshot = board.snapshot();
        let board_pages = (0..snapshot.pages.len() as u32)
            .map(|page| board_svg(&snapshot, page))
            .collect();
        let polls = polls
            .all()
            .filter_map(|p| polls.results(p.poll_id).ok())
            .collect();
        Ok(ClassReport {
            class_id: record.class_id,
            title: record.title,
            teacher_name: record.teacher_name,
            started_at: at(record.created_at),
            ended_at: record.ended_at.map_or_else(SystemTime::now, at),
            utc_offset_minutes,
            attendance,
            polls,
            board_pages,
        })
    }
}
