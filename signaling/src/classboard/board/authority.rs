//! The authoritative board of one class: [`Board`] checks each op (permission, limits, rate-limit
//! bucket), gives it the next sequence number, keeps the catch-up log, the graveyard of removed
//! objects and each author's undo/redo history, and answers late joiners with a [`Catchup`].

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::model::*;

/// What a (re)connecting client needs to reach the current board.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Catchup {
    /// Apply these ops, in order, to the board you have.
    Delta { ops: Vec<Applied> },
    /// Your seq is older than the in-memory log: replace your board with this.
    Snapshot { snapshot: BoardSnapshot },
}

/// An accepted, not yet committed op (see [`Board::prepare`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    applied: Applied,
    book: Book,
}

impl Prepared {
    /// The op as it will be broadcast and stored.
    pub fn applied(&self) -> &Applied {
        &self.applied
    }
}

/// Server-side bookkeeping that goes with an op (never sent to clients).
#[derive(Debug, Clone, PartialEq)]
enum Book {
    None,
    Created { id: String, page: u32, open: bool },
    Appended { id: String, count: usize },
    Ended { id: String },
    Removed { ids: Vec<String> },
    Undo { skip: usize },
    Redo { skip: usize },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum EntryKind {
    /// The action added these objects (stroke, shape, text).
    Added,
    /// The action removed these objects (erase, clear page).
    Removed,
}

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    kind: EntryKind,
    ids: Vec<String>,
}

#[derive(Debug, Default)]
struct History {
    undo: VecDeque<Entry>,
    redo: Vec<Entry>,
}

#[derive(Debug)]
struct OpenStroke {
    author: String,
    page: u32,
    points: usize,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The authoritative board of one class.
#[derive(Debug)]
pub struct Board {
    limits: BoardLimits,
    state: BoardSnapshot,
    pub(super) log: VecDeque<Applied>,
    /// What the ops in `log` weigh together (see [`op_weight`]).
    pub(super) log_points: usize,
    /// Every object id ever created in this class (live or in the graveyard).
    ids_in_use: HashSet<String>,
    /// Removed objects, kept while an undo/redo entry could put them back; `None` once no entry
    /// refers to them any more (the id stays, so it is never reused and never looks alive).
    graveyard: HashMap<String, Option<PagedObject>>,
    /// How many undo/redo entries (of all authors) name each object id.
    history_refs: HashMap<String, u32>,
    open_strokes: HashMap<String, OpenStroke>,
    history: HashMap<String, History>,
    buckets: HashMap<String, Bucket>,
}

impl Board {
    pub fn new(limits: BoardLimits) -> Self {
        Self {
            limits,
            state: BoardSnapshot::new(),
            log: VecDeque::new(),
            log_points: 0,
            ids_in_use: HashSet::new(),
            graveyard: HashMap::new(),
            history_refs: HashMap::new(),
            open_strokes: HashMap::new(),
            history: HashMap::new(),
            buckets: HashMap::new(),
        }
    }

    pub fn limits(&self) -> &BoardLimits {
        &self.limits
    }

    /// Sequence number of the last accepted op (0 for a new board).
    pub fn seq(&self) -> u64 {
        self.state.seq
    }

    pub fn current_page(&self) -> u32 {
        self.state.current_page
    }

    /// Whether `author` may draw right now.
    pub fn may_draw(&self, author: &Author) -> bool {
        author.is_teacher || self.state.permissions.may_draw(&author.classroom_id)
    }

    /// The board as a late joiner gets it.
    pub fn snapshot(&self) -> BoardSnapshot {
        self.state.clone()
    }

    /// Read-only view of the state without cloning.
    pub fn state(&self) -> &BoardSnapshot {
        &self.state
    }

    /// Check, normalise and apply `op` from `author`; returns what to broadcast.
    pub fn apply(
        &mut self,
        author: &Author,
        op: BoardOp,
        now: Instant,
    ) -> Result<Applied, BoardError> {
        let prepared = self.prepare(author, op, now)?;
        self.commit(prepared)
    }

    /// Check and normalise `op` without changing the board (only the author's rate-limit bucket).
    /// Store [`Prepared::applied`], then [`Board::commit`] it. Nothing may be committed in
    /// between (the hub holds the class's write turn from `prepare` to `commit`).
    pub fn prepare(
        &mut self,
        author: &Author,
        op: BoardOp,
        now: Instant,
    ) -> Result<Prepared, BoardError> {
        self.take_token(&author.classroom_id, now)?;
        self.plan(author, op, true)
    }

    /// Make a prepared op take effect.
    pub fn commit(&mut self, prepared: Prepared) -> Result<Applied, BoardError> {
        if prepared.applied.seq != self.state.seq + 1 {
            return Err(BoardError::OutOfOrder {
                expected: self.state.seq + 1,
                got: prepared.applied.seq,
            });
        }
        Ok(self.commit_unchecked(prepared))
    }

    /// Re-apply a stored op after a restart: no permission, rate or limit checks (it was checked
    /// when it was accepted), but it must be the next seq and still valid.
    pub fn replay(&mut self, applied: &Applied) -> Result<(), BoardError> {
        if applied.seq != self.state.seq + 1 {
            return Err(BoardError::OutOfOrder {
                expected: self.state.seq + 1,
                got: applied.seq,
            });
        }
        let prepared = self.plan(&applied.author, applied.op.clone(), false)?;
        if prepared.applied != *applied {
            return Err(BoardError::Invalid(format!(
                "stored op {} does not replay to the same effect",
                applied.seq
            )));
        }
        self.commit_unchecked(prepared);
        Ok(())
    }

    /// What a client that has seen everything up to `since` needs: the missed ops if they are
    /// still in the in-memory log, otherwise a full snapshot.
    pub fn ops_since(&self, since: u64) -> Catchup {
        let seq = self.state.seq;
        if since == seq {
            return Catchup::Delta { ops: Vec::new() };
        }
        let snapshot = || Catchup::Snapshot {
            snapshot: self.snapshot(),
        };
        if since > seq {
            return snapshot();
        }
        match self.log.front() {
            Some(first) if first.seq <= since + 1 => {
                let skip = (since + 1 - first.seq) as usize;
                Catchup::Delta {
                    ops: self.log.iter().skip(skip).cloned().collect(),
                }
            }
            _ => snapshot(),
        }
    }

    fn take_token(&mut self, who: &str, now: Instant) -> Result<(), BoardError> {
        let rate = f64::from(self.limits.max_ops_per_sec_per_client);
        let burst = f64::from(self.limits.burst_ops_per_client.max(1));
        let bucket = self.buckets.entry(who.to_string()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.at = bucket.at.max(now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(BoardError::RateLimited)
        }
    }

    fn alive(&self, id: &str) -> bool {
        self.ids_in_use.contains(id) && !self.graveyard.contains_key(id)
    }

    fn page_len(&self, page: u32) -> Result<usize, BoardError> {
        self.state
            .pages
            .get(page as usize)
            .map(|p| p.objects.len())
            .ok_or_else(|| BoardError::NotFound(format!("page {page}")))
    }

    fn check_new_object(&self, id: &str, page: u32, enforce: bool) -> Result<(), BoardError> {
        check_object_id(id)?;
        if self.ids_in_use.contains(id) {
            return Err(BoardError::Invalid(format!(
                "object id {id} is already used"
            )));
        }
        let len = self.page_len(page)?;
        if enforce && len >= self.limits.max_objects_per_page {
            return Err(BoardError::LimitObjects {
                limit: self.limits.max_objects_per_page,
            });
        }
        Ok(())
    }

    fn open_stroke(&self, author: &Author, id: &str) -> Result<&OpenStroke, BoardError> {
        match self.open_strokes.get(id) {
            Some(open) if open.author != author.classroom_id => {
                Err(BoardError::Forbidden("that stroke belongs to someone else"))
            }
            Some(open) => Ok(open),
            None if self.alive(id) => {
                Err(BoardError::Invalid(format!("{id} is not an open stroke")))
            }
            None => Err(BoardError::NotFound(format!("object {id}"))),
        }
    }

    /// Validate and normalise; `enforce` = permissions and limits (off when replaying).
    fn plan(&self, author: &Author, op: BoardOp, enforce: bool) -> Result<Prepared, BoardError> {
        if enforce && !author.is_teacher {
            if !op.is_drawing() {
                return Err(BoardError::Forbidden("only the teacher may do that"));
            }
            if !self.state.permissions.may_draw(&author.classroom_id) {
                return Err(BoardError::Forbidden("the teacher has not allowed drawing"));
            }
        }
        let limits = &self.limits;
        let (op, book) = match op {
            BoardOp::StrokeBegin {
                object_id,
                page,
                tool,
                color,
                width,
                point,
            } => {
                self.check_new_object(&object_id, page, enforce)?;
                let op = BoardOp::StrokeBegin {
                    object_id: object_id.clone(),
                    page,
                    tool,
                    color: norm_color(&color)?,
                    width: norm_width(width)?,
                    point: norm_point(point)?,
                };
                let book = Book::Created {
                    id: object_id,
                    page,
                    open: true,
                };
                (op, book)
            }
            BoardOp::StrokeAppend {
                object_id, points, ..
            } => {
                let open = self.open_stroke(author, &object_id)?;
                if points.is_empty() {
                    return Err(BoardError::Invalid("no points".into()));
                }
                if enforce && open.points + points.len() > limits.max_points_per_stroke {
                    return Err(BoardError::LimitPoints {
                        limit: limits.max_points_per_stroke,
                    });
                }
                let points = points
                    .into_iter()
                    .map(norm_point)
                    .collect::<Result<Vec<_>, _>>()?;
                let book = Book::Appended {
                    id: object_id.clone(),
                    count: points.len(),
                };
                let op = BoardOp::StrokeAppend {
                    object_id,
                    page: Some(open.page),
                    points,
                };
                (op, book)
            }
            BoardOp::StrokeEnd { object_id, .. } => {
                let open = self.open_stroke(author, &object_id)?;
                let op = BoardOp::StrokeEnd {
                    object_id: object_id.clone(),
                    page: Some(open.page),
                };
                (op, Book::Ended { id: object_id })
            }
            BoardOp::ShapeAdd {
                object_id,
                page,
                shape,
                color,
                width,
                from,
                to,
                fill,
            } => {
                self.check_new_object(&object_id, page, enforce)?;
                let fill = match shape {
                    ShapeKind::Rect | ShapeKind::Ellipse => {
                        fill.as_deref().map(norm_color).transpose()?
                    }
                    ShapeKind::Line | ShapeKind::Arrow => None,
                };
                let op = BoardOp::ShapeAdd {
                    object_id: object_id.clone(),
                    page,
                    shape,
                    color: norm_color(&color)?,
                    width: norm_width(width)?,
                    from: norm_point(from)?,
                    to: norm_point(to)?,
                    fill,
                };
                let book = Book::Created {
                    id: object_id,
                    page,
                    open: false,
                };
                (op, book)
            }
            BoardOp::TextAdd {
                object_id,
                page,
                at,
                text,
                color,
                size,
            } => {
                self.check_new_object(&object_id, page, enforce)?;
                let text = norm_text(&text);
                if text.trim().is_empty() {
                    return Err(BoardError::Invalid("empty text".into()));
                }
                if enforce && text.chars().count() > limits.max_text_chars {
                    return Err(BoardError::Invalid(format!(
                        "text longer than {} characters",
                        limits.max_text_chars
                    )));
                }
                if !size.is_finite() || !(MIN_TEXT_SIZE..=MAX_TEXT_SIZE).contains(&size) {
                    return Err(BoardError::Invalid(format!(
                        "text size must be {MIN_TEXT_SIZE}..={MAX_TEXT_SIZE}"
                    )));
                }
                let op = BoardOp::TextAdd {
                    object_id: object_id.clone(),
                    page,
                    at: norm_point(at)?,
                    text,
                    color: norm_color(&color)?,
                    size: round2(size),
                };
                let book = Book::Created {
                    id: object_id,
                    page,
                    open: false,
                };
                (op, book)
            }
            BoardOp::Erase { object_ids } => {
                if object_ids.is_empty() {
                    return Err(BoardError::Invalid("nothing to erase".into()));
                }
                let mut seen = HashSet::new();
                let ids: Vec<String> = object_ids
                    .into_iter()
                    .filter(|id| seen.insert(id.clone()))
                    .collect();
                let mut authors: HashMap<&str, &str> = HashMap::new();
                for page in &self.state.pages {
                    for o in &page.objects {
                        if seen.contains(&o.id) {
                            authors.insert(&o.id, &o.author);
                        }
                    }
                }
                for id in &ids {
                    match authors.get(id.as_str()) {
                        None => return Err(BoardError::NotFound(format!("object {id}"))),
                        Some(owner) if !author.is_teacher && *owner != author.classroom_id => {
                            return Err(BoardError::Forbidden(
                                "a classroom may erase only its own drawings",
                            ));
                        }
                        Some(_) => {}
                    }
                }
                let book = Book::Removed { ids: ids.clone() };
                (BoardOp::Erase { object_ids: ids }, book)
            }
            BoardOp::Undo { .. } => {
                let (skip, effect) = self.plan_history(author, false, enforce)?;
                let op = BoardOp::Undo {
                    effect: Some(effect),
                };
                (op, Book::Undo { skip })
            }
            BoardOp::Redo { .. } => {
                let (skip, effect) = self.plan_history(author, true, enforce)?;
                let op = BoardOp::Redo {
                    effect: Some(effect),
                };
                (op, Book::Redo { skip })
            }
            BoardOp::ClearPage { page } => {
                let ids = self
                    .state
                    .pages
                    .get(page as usize)
                    .ok_or_else(|| BoardError::NotFound(format!("page {page}")))?
                    .objects
                    .iter()
                    .map(|o| o.id.clone())
                    .collect();
                (BoardOp::ClearPage { page }, Book::Removed { ids })
            }
            BoardOp::AddPage { .. } => {
                let n = self.state.pages.len();
                if enforce && n >= limits.max_pages {
                    return Err(BoardError::LimitPages {
                        limit: limits.max_pages,
                    });
                }
                let op = BoardOp::AddPage {
                    page: Some(n as u32),
                };
                (op, Book::None)
            }
            BoardOp::SetPage { page } => {
                self.page_len(page)?;
                (BoardOp::SetPage { page }, Book::None)
            }
            BoardOp::SetDrawPermission { target, allowed } => {
                if let DrawTarget::Classroom(id) = &target
                    && (id.is_empty() || id.len() > MAX_CLASSROOM_ID_LEN)
                {
                    return Err(BoardError::Invalid("bad classroom id".into()));
                }
                (BoardOp::SetDrawPermission { target, allowed }, Book::None)
            }
        };
        Ok(Prepared {
            applied: Applied {
                seq: self.state.seq + 1,
                author: author.clone(),
                op,
            },
            book,
        })
    }

    /// The next undo (or redo) of `author` that still does something, and how many dead entries
    /// on top of it to drop.
    fn plan_history(
        &self,
        author: &Author,
        redo: bool,
        enforce: bool,
    ) -> Result<(usize, UndoEffect), BoardError> {
        let nothing = || {
            BoardError::NotFound(if redo {
                "nothing to redo".into()
            } else {
                "nothing to undo".into()
            })
        };
        let history = self.history.get(&author.classroom_id).ok_or_else(nothing)?;
        let entries: Box<dyn Iterator<Item = &Entry>> = if redo {
            Box::new(history.redo.iter().rev())
        } else {
            Box::new(history.undo.iter().rev())
        };
        for (skip, entry) in entries.enumerate() {
            // Undo of an addition and redo of a removal remove; the other two restore.
            let removes = (entry.kind == EntryKind::Added) != redo;
            let mut effect = UndoEffect::default();
            if removes {
                effect.remove = entry
                    .ids
                    .iter()
                    .filter(|id| self.alive(id))
                    .cloned()
                    .collect();
            } else {
                effect.restore = entry
                    .ids
                    .iter()
                    .filter_map(|id| self.graveyard.get(id)?.as_ref())
                    .cloned()
                    .collect();
                effect.restore.sort_by_key(|r| (r.page, r.object.z));
            }
            if effect.is_empty() {
                continue;
            }
            if enforce {
                let mut per_page: BTreeMap<u32, usize> = BTreeMap::new();
                for r in &effect.restore {
                    *per_page.entry(r.page).or_default() += 1;
                }
                for (page, n) in per_page {
                    if self.page_len(page)? + n > self.limits.max_objects_per_page {
                        return Err(BoardError::LimitObjects {
                            limit: self.limits.max_objects_per_page,
                        });
                    }
                }
            }
            return Ok((skip, effect));
        }
        Err(nothing())
    }

    fn commit_unchecked(&mut self, prepared: Prepared) -> Applied {
        let Prepared { applied, book } = prepared;
        // Keep what is about to disappear, so that undo/redo can bring it back (and free it at
        // the end if no entry can).
        let mut buried: Vec<String> = Vec::new();
        let mut dropped: Vec<Entry> = Vec::new();
        match &applied.op {
            BoardOp::Erase { object_ids } => {
                self.bury(object_ids);
                buried.extend(object_ids.iter().cloned());
            }
            BoardOp::ClearPage { .. } => {
                if let Book::Removed { ids } = &book {
                    self.bury(ids);
                    buried.extend(ids.iter().cloned());
                }
            }
            BoardOp::Undo {
                effect: Some(effect),
            }
            | BoardOp::Redo {
                effect: Some(effect),
            } => {
                self.bury(&effect.remove);
                buried.extend(effect.remove.iter().cloned());
                for r in &effect.restore {
                    self.graveyard.remove(&r.object.id);
                }
            }
            _ => {}
        }
        self.state.reduce(&applied);
        let who = applied.author.classroom_id.clone();
        match book {
            Book::None => {}
            Book::Created { id, page, open } => {
                self.ids_in_use.insert(id.clone());
                if open {
                    let stroke = OpenStroke {
                        author: who.clone(),
                        page,
                        points: 1,
                    };
                    self.open_strokes.insert(id.clone(), stroke);
                }
                self.push_history(
                    &who,
                    Entry {
                        kind: EntryKind::Added,
                        ids: vec![id],
                    },
                    &mut dropped,
                );
            }
            Book::Appended { id, count } => {
                if let Some(open) = self.open_strokes.get_mut(&id) {
                    open.points += count;
                }
            }
            Book::Ended { id } => {
                self.open_strokes.remove(&id);
            }
            Book::Removed { ids } => self.push_history(
                &who,
                Entry {
                    kind: EntryKind::Removed,
                    ids,
                },
                &mut dropped,
            ),
            Book::Undo { skip } => {
                let h = self.history.entry(who).or_default();
                let keep = h.undo.len().saturating_sub(skip);
                dropped.extend(h.undo.drain(keep..));
                if let Some(entry) = h.undo.pop_back() {
                    h.redo.push(entry);
                }
            }
            Book::Redo { skip } => {
                let depth = self.limits.max_undo_depth.max(1);
                let h = self.history.entry(who).or_default();
                let keep = h.redo.len().saturating_sub(skip);
                dropped.extend(h.redo.drain(keep..));
                if let Some(entry) = h.redo.pop() {
                    h.undo.push_back(entry);
                    if h.undo.len() > depth {
                        dropped.extend(h.undo.pop_front());
                    }
                }
            }
        }
        self.free_unreachable(buried, dropped);
        self.log_points += op_weight(&applied.op);
        self.log.push_back(applied.clone());
        while self.log.len() > self.limits.log_capacity.max(1)
            || (self.log_points > self.limits.log_max_points && self.log.len() > 1)
        {
            if let Some(old) = self.log.pop_front() {
                self.log_points = self.log_points.saturating_sub(op_weight(&old.op));
            }
        }
        applied
    }

    /// A new action of `who`: onto its undo stack (the oldest falls off past the depth), and
    /// its redo stack is cleared. What leaves the history goes to `dropped`.
    fn push_history(&mut self, who: &str, entry: Entry, dropped: &mut Vec<Entry>) {
        for id in &entry.ids {
            *self.history_refs.entry(id.clone()).or_default() += 1;
        }
        let depth = self.limits.max_undo_depth.max(1);
        let h = self.history.entry(who.to_string()).or_default();
        h.undo.push_back(entry);
        if h.undo.len() > depth {
            dropped.extend(h.undo.pop_front());
        }
        dropped.append(&mut h.redo);
    }

    /// Entries have left the history and objects were buried: free every buried object that no
    /// entry can bring back any more. This is what bounds a long lesson's memory to the live
    /// board plus the undo depth.
    fn free_unreachable(&mut self, buried: Vec<String>, dropped: Vec<Entry>) {
        let mut candidates = buried;
        for entry in dropped {
            for id in entry.ids {
                if let Some(refs) = self.history_refs.get_mut(&id) {
                    *refs = refs.saturating_sub(1);
                    if *refs == 0 {
                        self.history_refs.remove(&id);
                    }
                }
                candidates.push(id);
            }
        }
        for id in candidates {
            if !self.history_refs.contains_key(&id)
                && let Some(dead) = self.graveyard.get_mut(&id)
            {
                *dead = None;
            }
        }
    }

    /// Objects held for undo/redo (for tests of what is freed).
    pub fn buried_objects(&self) -> usize {
        self.graveyard.values().filter(|o| o.is_some()).count()
    }

    /// Move live objects to the graveyard (before the reducer removes them from the pages).
    fn bury(&mut self, ids: &[String]) {
        if ids.is_empty() {
            return;
        }
        let wanted: HashSet<&str> = ids.iter().map(String::as_str).collect();
        for (p, page) in self.state.pages.iter().enumerate() {
            for o in &page.objects {
                if wanted.contains(o.id.as_str()) {
                    let dead = PagedObject {
                        page: p as u32,
                        object: o.clone(),
                    };
                    self.graveyard.insert(o.id.clone(), Some(dead));
                }
            }
        }
        for id in ids {
            self.open_strokes.remove(id);
        }
    }
}

/// What an op weighs in the catch-up log: one, plus its points, plus the points of the objects an
/// undo or redo puts back (text counts 16 characters a point).
fn op_weight(op: &BoardOp) -> usize {
    let object = |o: &BoardObject| match &o.shape {
        Shape::Stroke { points, .. } => points.len(),
        Shape::Text { text, .. } => text.len() / 16 + 1,
        _ => 2,
    };
    1 + match op {
        BoardOp::StrokeAppend { points, .. } => points.len(),
        BoardOp::TextAdd { text, .. } => text.len() / 16,
        BoardOp::Undo {
            effect: Some(effect),
        }
        | BoardOp::Redo {
            effect: Some(effect),
        } => effect.restore.iter().map(|r| object(&r.object)).sum(),
        _ => 0,
    }
}
