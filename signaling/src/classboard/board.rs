//! The shared whiteboard of one class: a sans-IO, server-authoritative state machine.
//!
//! Every client message that changes the board is a [`BoardOp`]. [`Board::apply`] checks it
//! (permission, limits, validity), normalises it, gives it the next server sequence number and
//! returns it as an [`Applied`] — the one thing the server broadcasts and stores. A client keeps a
//! [`BoardSnapshot`] and feeds every `Applied` to [`BoardSnapshot::apply`], the very reducer the
//! server uses for its own state, so every screen ends with the same board.
//!
//! A rejected op changes nothing that anybody else can see: the error goes back to its sender only,
//! and no sequence number is used. (It does use one of the sender's rate-limit tokens.)
//!
//! **Laser pointer** is deliberately *not* a board op: it is relayed live to the other screens
//! without a sequence number and is never stored or replayed.
//!
//! **Durability**: to write an op to the database *before* it takes effect, call
//! [`Board::prepare`], store [`Prepared::applied`], then [`Board::commit`]; [`Board::apply`] is
//! `prepare` + `commit` in one step.
//!
//! **Coordinates** are board units on a logical page of [`PAGE_WIDTH`] × [`PAGE_HEIGHT`] (origin top
//! left, y down); objects may reach beyond it up to ±[`COORD_LIMIT`]. Coordinates, widths and text
//! sizes are rounded to 0.01 so that they survive JSON exactly.
//!
//! **Undo/redo** work on the author's own actions (stroke, shape, text, erase, clear page): undo of
//! a drawing removes it, undo of an erase or a clear restores what it removed. An action whose
//! objects are all gone already (someone else erased them) is skipped. A new action clears the
//! author's redo stack. Page changes and permission changes are not undoable.
//!
//! Who may do what: the teacher everything; a remote classroom may draw (stroke, shape, text,
//! erase *its own* objects, undo, redo) only while the teacher allows it, and nothing else.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// Logical page width in board units (16:9); the SVG export's view box.
pub const PAGE_WIDTH: f64 = 1600.0;
/// Logical page height in board units.
pub const PAGE_HEIGHT: f64 = 900.0;
/// Coordinates must be finite and within `-COORD_LIMIT..=COORD_LIMIT`.
pub const COORD_LIMIT: f64 = 10_000.0;
/// Stroke and shape widths must be within `MIN_WIDTH..=MAX_WIDTH`.
pub const MIN_WIDTH: f64 = 0.5;
/// See [`MIN_WIDTH`].
pub const MAX_WIDTH: f64 = 100.0;
/// Text sizes (font size in board units) must be within `MIN_TEXT_SIZE..=MAX_TEXT_SIZE`.
pub const MIN_TEXT_SIZE: f64 = 6.0;
/// See [`MIN_TEXT_SIZE`].
pub const MAX_TEXT_SIZE: f64 = 200.0;
/// Object ids are 1..=64 characters of `A-Z a-z 0-9 - _ : .`, chosen by the client, unique per class
/// for the whole lesson (an id is never reused, not even after erase).
pub const MAX_OBJECT_ID_LEN: usize = 64;
/// Longest classroom id accepted in `set_draw_permission`.
pub const MAX_CLASSROOM_ID_LEN: usize = 128;

/// Limits of one class's board. Every field is a named setting (`--board-*` flags in the server).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoardLimits {
    /// Points in one stroke, the first point included. Default 5000.
    pub max_points_per_stroke: usize,
    /// Sustained board ops per second per client (token bucket refill rate). Default 60.
    pub max_ops_per_sec_per_client: u32,
    /// Token bucket size: how many ops a client may send at once. Default 120.
    pub burst_ops_per_client: u32,
    /// Objects on one page (strokes, shapes, texts). Default 2000.
    pub max_objects_per_page: usize,
    /// Pages per class. Default 50.
    pub max_pages: usize,
    /// Characters in one text object. Default 2000.
    pub max_text_chars: usize,
    /// Undo steps kept per author. Default 100.
    pub max_undo_depth: usize,
    /// Applied ops kept in memory for catch-up; an older client gets a full snapshot. Default 10000.
    pub log_capacity: usize,
    /// Points (and text, 16 characters a point) the catch-up log may hold, so a lesson of long
    /// strokes keeps a bounded log too. Default 200000 (about 3 MB of points).
    pub log_max_points: usize,
}

impl Default for BoardLimits {
    fn default() -> Self {
        Self {
            max_points_per_stroke: 5000,
            max_ops_per_sec_per_client: 60,
            burst_ops_per_client: 120,
            max_objects_per_page: 2000,
            max_pages: 50,
            max_text_chars: 2000,
            max_undo_depth: 100,
            log_capacity: 10_000,
            log_max_points: 200_000,
        }
    }
}

/// Who sent an op: a classroom of the class, and whether it is the teacher's (master) classroom.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Author {
    pub classroom_id: String,
    pub is_teacher: bool,
}

impl Author {
    pub fn teacher(classroom_id: impl Into<String>) -> Self {
        Self {
            classroom_id: classroom_id.into(),
            is_teacher: true,
        }
    }

    pub fn classroom(classroom_id: impl Into<String>) -> Self {
        Self {
            classroom_id: classroom_id.into(),
            is_teacher: false,
        }
    }
}

/// A point `[x, y]` in board units.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point(pub f64, pub f64);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StrokeTool {
    Pen,
    /// Drawn translucent (opacity 0.4) under nothing in particular: just a wide see-through pen.
    Highlighter,
}

/// The geometric shapes of `shape_add`; each is given by two corner points `from` and `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShapeKind {
    Line,
    Arrow,
    Rect,
    Ellipse,
}

/// What an object looks like. Colours are `#rrggbb` or `#rrggbbaa`, lower case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Shape {
    Stroke {
        tool: StrokeTool,
        color: String,
        width: f64,
        points: Vec<Point>,
    },
    Line {
        color: String,
        width: f64,
        from: Point,
        to: Point,
    },
    /// A line with an arrow head at `to`.
    Arrow {
        color: String,
        width: f64,
        from: Point,
        to: Point,
    },
    /// Axis-aligned rectangle with corners `from` and `to`.
    Rect {
        color: String,
        width: f64,
        from: Point,
        to: Point,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fill: Option<String>,
    },
    /// Ellipse inscribed in the rectangle with corners `from` and `to`.
    Ellipse {
        color: String,
        width: f64,
        from: Point,
        to: Point,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fill: Option<String>,
    },
    /// Text whose first line's top left is `at`; `size` is the font size; lines split at `\n`.
    Text {
        color: String,
        size: f64,
        at: Point,
        text: String,
    },
}

/// One object on a page. `z` is the sequence number of the op that created it; a page's objects
/// are always sorted by `z` (paint order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoardObject {
    pub id: String,
    /// Classroom id of the author.
    pub author: String,
    pub z: u64,
    #[serde(flatten)]
    pub shape: Shape,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Page {
    pub objects: Vec<BoardObject>,
}

/// Who may draw besides the teacher: `all` plus per-classroom exceptions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrawPermissions {
    pub all: bool,
    /// Exceptions to `all` (only entries that differ from `all` are kept).
    pub classrooms: BTreeMap<String, bool>,
}

impl DrawPermissions {
    pub fn may_draw(&self, classroom_id: &str) -> bool {
        self.classrooms
            .get(classroom_id)
            .copied()
            .unwrap_or(self.all)
    }
}

/// Whom `set_draw_permission` is about: `"all"` or `{"classroom": "r_2"}`.
/// Setting `all` removes every per-classroom exception.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrawTarget {
    All,
    Classroom(String),
}

/// An object and the page it lives on (in undo/redo effects).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PagedObject {
    pub page: u32,
    pub object: BoardObject,
}

/// What an undo or redo did, filled in by the server: objects to remove (by id) and objects to
/// put back (each into its page, at its `z` position).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UndoEffect {
    #[serde(default)]
    pub remove: Vec<String>,
    #[serde(default)]
    pub restore: Vec<PagedObject>,
}

impl UndoEffect {
    fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.restore.is_empty()
    }
}

/// A board operation, as a client sends it and (normalised, see each variant) as the server
/// broadcasts it inside [`Applied`]. JSON: tagged by `"op"`, snake case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum BoardOp {
    /// Start a freehand stroke with its first point; more points follow with `stroke_append`.
    StrokeBegin {
        object_id: String,
        page: u32,
        tool: StrokeTool,
        color: String,
        width: f64,
        point: Point,
    },
    /// Append points to one's own open stroke. `page` is filled in by the server.
    StrokeAppend {
        object_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        page: Option<u32>,
        points: Vec<Point>,
    },
    /// Finish one's own stroke (no more points). `page` is filled in by the server.
    StrokeEnd {
        object_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        page: Option<u32>,
    },
    /// Add a line, arrow, rectangle or ellipse. `fill` only for rect and ellipse.
    ShapeAdd {
        object_id: String,
        page: u32,
        shape: ShapeKind,
        color: String,
        width: f64,
        from: Point,
        to: Point,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fill: Option<String>,
    },
    TextAdd {
        object_id: String,
        page: u32,
        at: Point,
        text: String,
        color: String,
        size: f64,
    },
    /// Stroke eraser: remove whole objects (a classroom: only its own).
    Erase { object_ids: Vec<String> },
    /// Undo the author's last action. `effect` is filled in by the server (a client sends none).
    Undo {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        effect: Option<UndoEffect>,
    },
    /// Redo the author's last undone action. `effect` is filled in by the server.
    Redo {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        effect: Option<UndoEffect>,
    },
    /// Teacher: remove everything on a page (undoable by the teacher).
    ClearPage { page: u32 },
    /// Teacher: add an empty page at the end; `page` (its index) is filled in by the server.
    AddPage {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        page: Option<u32>,
    },
    /// Teacher: the page everyone is shown (clients follow it).
    SetPage { page: u32 },
    /// Teacher: allow or forbid drawing for one classroom or all.
    SetDrawPermission { target: DrawTarget, allowed: bool },
}

impl BoardOp {
    /// Ops a remote classroom may send while it is allowed to draw.
    fn is_drawing(&self) -> bool {
        matches!(
            self,
            BoardOp::StrokeBegin { .. }
                | BoardOp::StrokeAppend { .. }
                | BoardOp::StrokeEnd { .. }
                | BoardOp::ShapeAdd { .. }
                | BoardOp::TextAdd { .. }
                | BoardOp::Erase { .. }
                | BoardOp::Undo { .. }
                | BoardOp::Redo { .. }
        )
    }
}

/// An accepted op: its server sequence number, its author and the normalised op.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    pub seq: u64,
    pub author: Author,
    pub op: BoardOp,
}

/// Why an op was rejected. [`BoardError::code`] is the stable wire code.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BoardError {
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("a stroke may have at most {limit} points")]
    LimitPoints { limit: usize },
    #[error("too many board operations; slow down")]
    RateLimited,
    #[error("a page may hold at most {limit} objects")]
    LimitObjects { limit: usize },
    #[error("a class may have at most {limit} pages")]
    LimitPages { limit: usize },
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("out of order: expected seq {expected}, got {got}")]
    OutOfOrder { expected: u64, got: u64 },
}

impl BoardError {
    pub fn code(&self) -> &'static str {
        match self {
            BoardError::Forbidden(_) => "forbidden",
            BoardError::LimitPoints { .. } => "limit_points",
            BoardError::RateLimited => "rate_limited",
            BoardError::LimitObjects { .. } => "limit_objects",
            BoardError::LimitPages { .. } => "limit_pages",
            BoardError::Invalid(_) | BoardError::OutOfOrder { .. } => "invalid",
            BoardError::NotFound(_) => "not_found",
        }
    }
}

/// The whole visible board at sequence number `seq`: what a late joiner receives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoardSnapshot {
    pub seq: u64,
    pub pages: Vec<Page>,
    pub current_page: u32,
    pub permissions: DrawPermissions,
}

impl Default for BoardSnapshot {
    fn default() -> Self {
        Self::new()
    }
}

impl BoardSnapshot {
    /// The board of a new class: one empty page, nobody but the teacher may draw, seq 0.
    pub fn new() -> Self {
        Self {
            seq: 0,
            pages: vec![Page::default()],
            current_page: 0,
            permissions: DrawPermissions::default(),
        }
    }

    /// The client reducer: apply the next accepted op. Ops must come in order without gaps
    /// (`applied.seq == self.seq + 1`), otherwise `OutOfOrder` and nothing changes — the client
    /// then asks for a catch-up.
    pub fn apply(&mut self, applied: &Applied) -> Result<(), BoardError> {
        if applied.seq != self.seq + 1 {
            return Err(BoardError::OutOfOrder {
                expected: self.seq + 1,
                got: applied.seq,
            });
        }
        self.reduce(applied);
        Ok(())
    }

    pub fn object(&self, id: &str) -> Option<(u32, &BoardObject)> {
        self.pages.iter().enumerate().find_map(|(p, page)| {
            page.objects
                .iter()
                .find(|o| o.id == id)
                .map(|o| (p as u32, o))
        })
    }

    fn reduce(&mut self, applied: &Applied) {
        let seq = applied.seq;
        let author = &applied.author.classroom_id;
        self.seq = seq;
        let new_object = |id: &str, shape: Shape| BoardObject {
            id: id.to_string(),
            author: author.clone(),
            z: seq,
            shape,
        };
        match &applied.op {
            BoardOp::StrokeBegin {
                object_id,
                page,
                tool,
                color,
                width,
                point,
            } => {
                let shape = Shape::Stroke {
                    tool: *tool,
                    color: color.clone(),
                    width: *width,
                    points: vec![*point],
                };
                self.push_object(*page, new_object(object_id, shape));
            }
            BoardOp::StrokeAppend {
                object_id,
                page,
                points,
            } => {
                if let Some(Shape::Stroke { points: have, .. }) =
                    self.object_mut(*page, object_id).map(|o| &mut o.shape)
                {
                    have.extend_from_slice(points);
                }
            }
            BoardOp::StrokeEnd { .. } => {}
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
                let (color, width, from, to) = (color.clone(), *width, *from, *to);
                let shape = match shape {
                    ShapeKind::Line => Shape::Line {
                        color,
                        width,
                        from,
                        to,
                    },
                    ShapeKind::Arrow => Shape::Arrow {
                        color,
                        width,
                        from,
                        to,
                    },
                    ShapeKind::Rect => Shape::Rect {
                        color,
                        width,
                        from,
                        to,
                        fill: fill.clone(),
                    },
                    ShapeKind::Ellipse => Shape::Ellipse {
                        color,
                        width,
                        from,
                        to,
                        fill: fill.clone(),
                    },
                };
                self.push_object(*page, new_object(object_id, shape));
            }
            BoardOp::TextAdd {
                object_id,
                page,
                at,
                text,
                color,
                size,
            } => {
                let shape = Shape::Text {
                    color: color.clone(),
                    size: *size,
                    at: *at,
                    text: text.clone(),
                };
                self.push_object(*page, new_object(object_id, shape));
            }
            BoardOp::Erase { object_ids } => self.remove_objects(object_ids),
            BoardOp::Undo { effect } | BoardOp::Redo { effect } => {
                if let Some(effect) = effect {
                    self.remove_objects(&effect.remove);
                    for r in &effect.restore {
                        if let Some(page) = self.pages.get_mut(r.page as usize) {
                            let at = page.objects.partition_point(|o| o.z < r.object.z);
                            page.objects.insert(at, r.object.clone());
                        }
                    }
                }
            }
            BoardOp::ClearPage { page } => {
                if let Some(page) = self.pages.get_mut(*page as usize) {
                    page.objects.clear();
                }
            }
            BoardOp::AddPage { .. } => self.pages.push(Page::default()),
            BoardOp::SetPage { page } => self.current_page = *page,
            BoardOp::SetDrawPermission { target, allowed } => match target {
                DrawTarget::All => {
                    self.permissions.all = *allowed;
                    self.permissions.classrooms.clear();
                }
                DrawTarget::Classroom(id) => {
                    if *allowed == self.permissions.all {
                        self.permissions.classrooms.remove(id);
                    } else {
                        self.permissions.classrooms.insert(id.clone(), *allowed);
                    }
                }
            },
        }
    }

    fn push_object(&mut self, page: u32, object: BoardObject) {
        if let Some(page) = self.pages.get_mut(page as usize) {
            page.objects.push(object);
        }
    }

    /// Finds an object, looking on `page` first (newest first) when the page is known.
    fn object_mut(&mut self, page: Option<u32>, id: &str) -> Option<&mut BoardObject> {
        let (p, i) = match page.and_then(|p| {
            let objects = &self.pages.get(p as usize)?.objects;
            objects
                .iter()
                .rposition(|o| o.id == id)
                .map(|i| (p as usize, i))
        }) {
            Some(found) => found,
            None => self.pages.iter().enumerate().find_map(|(p, page)| {
                page.objects.iter().position(|o| o.id == id).map(|i| (p, i))
            })?,
        };
        Some(&mut self.pages[p].objects[i])
    }

    fn remove_objects(&mut self, ids: &[String]) {
        if ids.is_empty() {
            return;
        }
        let ids: HashSet<&str> = ids.iter().map(String::as_str).collect();
        for page in &mut self.pages {
            page.objects.retain(|o| !ids.contains(o.id.as_str()));
        }
    }
}

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
    log: VecDeque<Applied>,
    /// What the ops in `log` weigh together (see [`op_weight`]).
    log_points: usize,
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
    /// between (hold the class lock from `prepare` to `commit`).
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

fn round2(v: f64) -> f64 {
    let r = (v * 100.0).round() / 100.0;
    if r == 0.0 { 0.0 } else { r }
}

fn norm_point(p: Point) -> Result<Point, BoardError> {
    let ok = |v: f64| v.is_finite() && v.abs() <= COORD_LIMIT;
    if ok(p.0) && ok(p.1) {
        Ok(Point(round2(p.0), round2(p.1)))
    } else {
        Err(BoardError::Invalid(format!(
            "coordinates must be finite and within ±{COORD_LIMIT}"
        )))
    }
}

fn norm_width(w: f64) -> Result<f64, BoardError> {
    if w.is_finite() && (MIN_WIDTH..=MAX_WIDTH).contains(&w) {
        Ok(round2(w))
    } else {
        Err(BoardError::Invalid(format!(
            "width must be {MIN_WIDTH}..={MAX_WIDTH}"
        )))
    }
}

/// `#rrggbb` or `#rrggbbaa` (hex, any case) → lower case.
fn norm_color(c: &str) -> Result<String, BoardError> {
    let hex = c.strip_prefix('#').unwrap_or("");
    if (hex.len() == 6 || hex.len() == 8) && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(c.to_ascii_lowercase())
    } else {
        Err(BoardError::Invalid(format!(
            "colour must be #rrggbb or #rrggbbaa, not {:?}",
            c.chars().take(20).collect::<String>()
        )))
    }
}

/// Line breaks become `\n`, tabs spaces, other control characters are dropped.
fn norm_text(t: &str) -> String {
    t.replace("\r\n", "\n")
        .chars()
        .filter_map(|c| match c {
            '\n' => Some('\n'),
            '\t' | '\r' => Some(' '),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect()
}

fn check_object_id(id: &str) -> Result<(), BoardError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_OBJECT_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(BoardError::Invalid(format!(
            "object id must be 1..={MAX_OBJECT_ID_LEN} characters of A-Z a-z 0-9 - _ : ."
        )))
    }
}

/// A complete, standalone SVG document of one page (white background, view box
/// [`PAGE_WIDTH`] × [`PAGE_HEIGHT`]). A page that does not exist renders empty. It has no XML
/// prolog, so it can also be inlined into HTML; the browser turns it into a PNG for download.
pub fn board_svg(snapshot: &BoardSnapshot, page: u32) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}"><rect width="{w}" height="{h}" fill="#ffffff"/>"##,
        w = PAGE_WIDTH,
        h = PAGE_HEIGHT
    );
    let objects = snapshot
        .pages
        .get(page as usize)
        .map(|p| p.objects.as_slice())
        .unwrap_or_default();
    for o in objects {
        svg_object(&mut s, &o.shape);
    }
    s.push_str("</svg>\n");
    s
}

fn svg_object(s: &mut String, shape: &Shape) {
    use std::fmt::Write;
    let n = num;
    match shape {
        Shape::Stroke {
            tool,
            color,
            width,
            points,
        } => {
            let mut d = String::new();
            for (i, p) in points.iter().enumerate() {
                let _ = write!(
                    d,
                    "{}{} {}",
                    if i == 0 { "M" } else { " L" },
                    n(p.0),
                    n(p.1)
                );
            }
            if points.len() == 1 {
                // A single point: a zero-length segment that the round cap turns into a dot.
                let _ = write!(d, " L{} {}", n(points[0].0), n(points[0].1));
            }
            let factor = if *tool == StrokeTool::Highlighter {
                0.4
            } else {
                1.0
            };
            let _ = write!(
                s,
                r#"<path d="{d}" fill="none"{} stroke-width="{}" stroke-linecap="round" stroke-linejoin="round"/>"#,
                paint("stroke", color, factor),
                n(*width)
            );
        }
        Shape::Line {
            color,
            width,
            from,
            to,
        }
        | Shape::Arrow {
            color,
            width,
            from,
            to,
        } => {
            let _ = write!(
                s,
                r#"<line x1="{}" y1="{}" x2="{}" y2="{}"{} stroke-width="{}" stroke-linecap="round"/>"#,
                n(from.0),
                n(from.1),
                n(to.0),
                n(to.1),
                paint("stroke", color, 1.0),
                n(*width)
            );
            // An arrow is a line with a head at its end.
            if matches!(shape, Shape::Arrow { .. }) {
                let angle = (to.1 - from.1).atan2(to.0 - from.0);
                let head = (width * 4.0).max(12.0);
                let spread = 0.45_f64;
                let a = (
                    to.0 - head * (angle - spread).cos(),
                    to.1 - head * (angle - spread).sin(),
                );
                let b = (
                    to.0 - head * (angle + spread).cos(),
                    to.1 - head * (angle + spread).sin(),
                );
                let _ = write!(
                    s,
                    r#"<polygon points="{},{} {},{} {},{}"{}/>"#,
                    n(to.0),
                    n(to.1),
                    n(a.0),
                    n(a.1),
                    n(b.0),
                    n(b.1),
                    paint("fill", color, 1.0)
                );
            }
        }
        Shape::Rect {
            color,
            width,
            from,
            to,
            fill,
        } => {
            let _ = write!(
                s,
                r#"<rect x="{}" y="{}" width="{}" height="{}"{}{} stroke-width="{}"/>"#,
                n(from.0.min(to.0)),
                n(from.1.min(to.1)),
                n((to.0 - from.0).abs()),
                n((to.1 - from.1).abs()),
                fill_paint(fill.as_deref()),
                paint("stroke", color, 1.0),
                n(*width)
            );
        }
        Shape::Ellipse {
            color,
            width,
            from,
            to,
            fill,
        } => {
            let _ = write!(
                s,
                r#"<ellipse cx="{}" cy="{}" rx="{}" ry="{}"{}{} stroke-width="{}"/>"#,
                n((from.0 + to.0) / 2.0),
                n((from.1 + to.1) / 2.0),
                n((to.0 - from.0).abs() / 2.0),
                n((to.1 - from.1).abs() / 2.0),
                fill_paint(fill.as_deref()),
                paint("stroke", color, 1.0),
                n(*width)
            );
        }
        Shape::Text {
            color,
            size,
            at,
            text,
        } => {
            let _ = write!(
                s,
                r#"<text font-family="sans-serif" font-size="{}"{} xml:space="preserve">"#,
                n(*size),
                paint("fill", color, 1.0)
            );
            for (i, line) in text.split('\n').enumerate() {
                let y = at.1 + size * (1.0 + 1.25 * i as f64);
                let _ = write!(
                    s,
                    r#"<tspan x="{}" y="{}">{}</tspan>"#,
                    n(at.0),
                    n(y),
                    xml_escape(line)
                );
            }
            s.push_str("</text>");
        }
    }
}

fn fill_paint(fill: Option<&str>) -> String {
    match fill {
        Some(c) => paint("fill", c, 1.0),
        None => r#" fill="none""#.to_string(),
    }
}

/// ` stroke="#rrggbb"` plus ` stroke-opacity` when the colour has alpha or a factor applies.
fn paint(attr: &str, color: &str, factor: f64) -> String {
    let rgb = color.get(..7).unwrap_or("#000000");
    let alpha = color
        .get(7..9)
        .and_then(|a| u8::from_str_radix(a, 16).ok())
        .map_or(1.0, |a| f64::from(a) / 255.0);
    let opacity = alpha * factor;
    let mut out = format!(r#" {attr}="{}""#, xml_escape(rgb));
    if opacity < 1.0 {
        out.push_str(&format!(
            r#" {attr}-opacity="{}""#,
            (opacity * 1000.0).round() / 1000.0
        ));
    }
    out
}

fn num(v: f64) -> String {
    format!("{}", round2(v))
}

/// Escape text for XML/HTML content and attribute values.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::time::Duration;

    fn teacher() -> Author {
        Author::teacher("r_1")
    }
    fn room_a() -> Author {
        Author::classroom("r_2")
    }
    fn room_b() -> Author {
        Author::classroom("r_3")
    }

    fn begin(id: &str, page: u32, x: f64, y: f64) -> BoardOp {
        BoardOp::StrokeBegin {
            object_id: id.into(),
            page,
            tool: StrokeTool::Pen,
            color: "#1E88E5".into(),
            width: 3.0,
            point: Point(x, y),
        }
    }
    fn append(id: &str, points: &[(f64, f64)]) -> BoardOp {
        BoardOp::StrokeAppend {
            object_id: id.into(),
            page: None,
            points: points.iter().map(|&(x, y)| Point(x, y)).collect(),
        }
    }
    fn end(id: &str) -> BoardOp {
        BoardOp::StrokeEnd {
            object_id: id.into(),
            page: None,
        }
    }
    fn rect(id: &str, page: u32) -> BoardOp {
        BoardOp::ShapeAdd {
            object_id: id.into(),
            page,
            shape: ShapeKind::Rect,
            color: "#000000".into(),
            width: 2.0,
            from: Point(10.0, 10.0),
            to: Point(110.0, 60.0),
            fill: Some("#ffeb3b80".into()),
        }
    }
    fn allow(target: DrawTarget, allowed: bool) -> BoardOp {
        BoardOp::SetDrawPermission { target, allowed }
    }
    fn ids_on(board: &Board, page: usize) -> Vec<String> {
        board.state().pages[page]
            .objects
            .iter()
            .map(|o| o.id.clone())
            .collect()
    }
    fn wire(a: &Applied) -> Applied {
        serde_json::from_str(&serde_json::to_string(a).unwrap()).unwrap()
    }

    /// A clock that moves 50 ms per op, so that tests stay under the rate limit.
    struct Clock(Instant);
    impl Clock {
        fn tick(&mut self) -> Instant {
            self.0 += Duration::from_millis(50);
            self.0
        }
    }

    #[test]
    fn teacher_draws_a_stroke_that_grows_and_everyone_sees_the_same_line() {
        let mut board = Board::new(BoardLimits::default());
        let mut clock = Clock(Instant::now());
        let mut screen = BoardSnapshot::new();
        for op in [
            begin("t1", 0, 100.0, 100.0),
            append("t1", &[(110.0, 105.0), (120.0, 111.5)]),
            append("t1", &[(130.0, 120.0)]),
            end("t1"),
        ] {
            let applied = board.apply(&teacher(), op, clock.tick()).unwrap();
            screen.apply(&wire(&applied)).unwrap();
        }
        assert_eq!(screen, board.snapshot());
        let (_, stroke) = screen.object("t1").unwrap();
        match &stroke.shape {
            Shape::Stroke { points, color, .. } => {
                assert_eq!(points.len(), 4);
                assert_eq!(color, "#1e88e5", "colours are normalised to lower case");
            }
            other => panic!("not a stroke: {other:?}"),
        }
        assert_eq!(screen.seq, 4);
    }

    #[test]
    fn seq_increases_by_one_per_accepted_op_and_rejections_use_none() {
        let mut board = Board::new(BoardLimits::default());
        let mut clock = Clock(Instant::now());
        let mut seqs = Vec::new();
        for i in 0..10 {
            let ok = board.apply(&teacher(), rect(&format!("r{i}"), 0), clock.tick());
            seqs.push(ok.unwrap().seq);
            let rejected = board.apply(&room_a(), rect(&format!("x{i}"), 0), clock.tick());
            assert_eq!(rejected.unwrap_err().code(), "forbidden");
        }
        assert_eq!(seqs, (1..=10).collect::<Vec<u64>>());
    }

    #[test]
    fn classrooms_draw_only_when_the_teacher_allows_it() {
        let mut board = Board::new(BoardLimits::default());
        let mut clock = Clock(Instant::now());
        let err = board.apply(&room_a(), begin("a1", 0, 1.0, 1.0), clock.tick());
        assert_eq!(err.unwrap_err().code(), "forbidden");

        // Per classroom.
        let r2 = DrawTarget::Classroom("r_2".into());
        board
            .apply(&teacher(), allow(r2, true), clock.tick())
            .unwrap();
        board
            .apply(&room_a(), begin("a1", 0, 1.0, 1.0), clock.tick())
            .unwrap();
        let err = board.apply(&room_b(), begin("b1", 0, 1.0, 1.0), clock.tick());
        assert_eq!(err.unwrap_err().code(), "forbidden");

        // All, with one exception.
        board
            .apply(&teacher(), allow(DrawTarget::All, true), clock.tick())
            .unwrap();
        board
            .apply(&room_b(), begin("b1", 0, 1.0, 1.0), clock.tick())
            .unwrap();
        let r3 = DrawTarget::Classroom("r_3".into());
        board
            .apply(&teacher(), allow(r3, false), clock.tick())
            .unwrap();
        let err = board.apply(&room_b(), append("b1", &[(2.0, 2.0)]), clock.tick());
        assert_eq!(err.unwrap_err().code(), "forbidden", "revoked mid-stroke");
        board
            .apply(&room_a(), append("a1", &[(2.0, 2.0)]), clock.tick())
            .unwrap();

        // Revoking all removes every exception; the teacher may always draw.
        board
            .apply(&teacher(), allow(DrawTarget::All, false), clock.tick())
            .unwrap();
        assert!(board.state().permissions.classrooms.is_empty());
        assert!(!board.may_draw(&room_a()));
        assert!(board.may_draw(&teacher()));
        board
            .apply(&teacher(), begin("t1", 0, 5.0, 5.0), clock.tick())
            .unwrap();
    }

    #[test]
    fn classrooms_may_not_run_the_board_or_touch_other_drawings() {
        let mut board = Board::new(BoardLimits::default());
        let mut clock = Clock(Instant::now());
        board
            .apply(&teacher(), allow(DrawTarget::All, true), clock.tick())
            .unwrap();
        board
            .apply(&teacher(), begin("t1", 0, 1.0, 1.0), clock.tick())
            .unwrap();
        board
            .apply(&room_a(), begin("a1", 0, 1.0, 1.0), clock.tick())
            .unwrap();
        let before = board.snapshot();
        for op in [
            BoardOp::ClearPage { page: 0 },
            BoardOp::AddPage { page: None },
            BoardOp::SetPage { page: 0 },
            allow(DrawTarget::All, true),
            append("t1", &[(3.0, 3.0)]),
            BoardOp::Erase {
                object_ids: vec!["t1".into()],
            },
        ] {
            let err = board.apply(&room_b(), op, clock.tick()).unwrap_err();
            assert_eq!(err.code(), "forbidden", "{err}");
        }
        // Nor may the teacher append to a classroom's stroke; but the teacher may erase it.
        let err = board.apply(&teacher(), append("a1", &[(3.0, 3.0)]), clock.tick());
        assert_eq!(err.unwrap_err().code(), "forbidden");
        assert_eq!(board.snapshot(), before);
        let erase = BoardOp::Erase {
            object_ids: vec!["a1".into()],
        };
        board.apply(&teacher(), erase, clock.tick()).unwrap();
        assert_eq!(ids_on(&board, 0), vec!["t1"]);
    }

    #[test]
    fn invalid_ops_are_rejected_and_change_nothing() {
        let mut board = Board::new(BoardLimits::default());
        let mut clock = Clock(Instant::now());
        board
            .apply(&teacher(), begin("t1", 0, 1.0, 1.0), clock.tick())
            .unwrap();
        board.apply(&teacher(), end("t1"), clock.tick()).unwrap();
        let before = board.snapshot();
        let bad_colour = BoardOp::StrokeBegin {
            object_id: "c1".into(),
            page: 0,
            tool: StrokeTool::Pen,
            color: "red".into(),
            width: 2.0,
            point: Point(0.0, 0.0),
        };
        let bad_width = BoardOp::StrokeBegin {
            object_id: "c2".into(),
            page: 0,
            tool: StrokeTool::Highlighter,
            color: "#ff0000".into(),
            width: 500.0,
            point: Point(0.0, 0.0),
        };
        let cases: Vec<(BoardOp, &str)> = vec![
            (bad_colour, "invalid"),
            (bad_width, "invalid"),
            (begin("c3", 0, f64::NAN, 0.0), "invalid"),
            (begin("c4", 0, 20_000.0, 0.0), "invalid"),
            (begin("bad id!", 0, 0.0, 0.0), "invalid"),
            (begin("t1", 0, 0.0, 0.0), "invalid"),
            (begin("c5", 7, 0.0, 0.0), "not_found"),
            (append("t1", &[(2.0, 2.0)]), "invalid"),
            (append("nope", &[(2.0, 2.0)]), "not_found"),
            (
                BoardOp::Erase {
                    object_ids: vec!["t1".into(), "nope".into()],
                },
                "not_found",
            ),
            (BoardOp::Erase { object_ids: vec![] }, "invalid"),
            (BoardOp::SetPage { page: 3 }, "not_found"),
            (BoardOp::ClearPage { page: 3 }, "not_found"),
            (
                BoardOp::TextAdd {
                    object_id: "x1".into(),
                    page: 0,
                    at: Point(0.0, 0.0),
                    text: "  ".into(),
                    color: "#000000".into(),
                    size: 24.0,
                },
                "invalid",
            ),
            (BoardOp::Redo { effect: None }, "not_found"),
        ];
        for (op, code) in cases {
            let err = board
                .apply(&teacher(), op.clone(), clock.tick())
                .unwrap_err();
            assert_eq!(err.code(), code, "{op:?}: {err}");
            assert_eq!(board.snapshot(), before, "{op:?} changed the board");
        }
        assert_eq!(board.seq(), 2);
    }

    #[test]
    fn stroke_points_limit() {
        let limits = BoardLimits {
            max_points_per_stroke: 5,
            ..BoardLimits::default()
        };
        let mut board = Board::new(limits);
        let mut clock = Clock(Instant::now());
        board
            .apply(&teacher(), begin("t1", 0, 0.0, 0.0), clock.tick())
            .unwrap();
        board
            .apply(
                &teacher(),
                append("t1", &[(1.0, 1.0), (2.0, 2.0)]),
                clock.tick(),
            )
            .unwrap();
        let before = board.snapshot();
        let err = board.apply(
            &teacher(),
            append("t1", &[(3.0, 3.0), (4.0, 4.0), (5.0, 5.0)]),
            clock.tick(),
        );
        assert_eq!(err.unwrap_err().code(), "limit_points");
        assert_eq!(board.snapshot(), before);
        board
            .apply(
                &teacher(),
                append("t1", &[(3.0, 3.0), (4.0, 4.0)]),
                clock.tick(),
            )
            .unwrap();
    }

    #[test]
    fn objects_per_page_limit_also_holds_for_undo() {
        let limits = BoardLimits {
            max_objects_per_page: 3,
            ..BoardLimits::default()
        };
        let mut board = Board::new(limits);
        let mut clock = Clock(Instant::now());
        for i in 0..3 {
            board
                .apply(&teacher(), rect(&format!("r{i}"), 0), clock.tick())
                .unwrap();
        }
        let before = board.snapshot();
        let err = board.apply(&teacher(), rect("r3", 0), clock.tick());
        assert_eq!(err.unwrap_err().code(), "limit_objects");
        assert_eq!(board.snapshot(), before);

        // The teacher clears the page, a classroom draws on it, and undoing the clear would
        // put three objects back next to the classroom's one: over the limit, nothing changes.
        board
            .apply(&teacher(), BoardOp::ClearPage { page: 0 }, clock.tick())
            .unwrap();
        board
            .apply(&teacher(), allow(DrawTarget::All, true), clock.tick())
            .unwrap();
        board.apply(&room_a(), rect("a1", 0), clock.tick()).unwrap();
        let before = board.snapshot();
        let err = board.apply(&teacher(), BoardOp::Undo { effect: None }, clock.tick());
        assert_eq!(err.unwrap_err().code(), "limit_objects");
        assert_eq!(board.snapshot(), before);
        // Once the classroom takes its drawing back, the undo goes through.
        board
            .apply(&room_a(), BoardOp::Undo { effect: None }, clock.tick())
            .unwrap();
        board
            .apply(&teacher(), BoardOp::Undo { effect: None }, clock.tick())
            .unwrap();
        assert_eq!(ids_on(&board, 0), vec!["r0", "r1", "r2"]);
    }

    #[test]
    fn pages_limit_and_page_switch() {
        let limits = BoardLimits {
            max_pages: 3,
            ..BoardLimits::default()
        };
        let mut board = Board::new(limits);
        let mut clock = Clock(Instant::now());
        for expected in 1..3 {
            let a = board
                .apply(&teacher(), BoardOp::AddPage { page: None }, clock.tick())
                .unwrap();
            assert_eq!(
                a.op,
                BoardOp::AddPage {
                    page: Some(expected)
                }
            );
        }
        let before = board.snapshot();
        let err = board.apply(&teacher(), BoardOp::AddPage { page: None }, clock.tick());
        assert_eq!(err.unwrap_err().code(), "limit_pages");
        assert_eq!(board.snapshot(), before);
        board
            .apply(&teacher(), BoardOp::SetPage { page: 2 }, clock.tick())
            .unwrap();
        assert_eq!(board.current_page(), 2);
    }

    #[test]
    fn rate_limit_is_a_token_bucket_per_client() {
        let limits = BoardLimits {
            max_ops_per_sec_per_client: 10,
            burst_ops_per_client: 20,
            ..BoardLimits::default()
        };
        let mut board = Board::new(limits);
        let t0 = Instant::now();
        board
            .apply(&teacher(), begin("t1", 0, 0.0, 0.0), t0)
            .unwrap();
        for i in 1..20 {
            board
                .apply(&teacher(), append("t1", &[(i as f64, 0.0)]), t0)
                .unwrap();
        }
        let before = board.snapshot();
        let err = board.apply(&teacher(), append("t1", &[(99.0, 0.0)]), t0);
        assert_eq!(err.unwrap_err().code(), "rate_limited");
        assert_eq!(board.snapshot(), before);
        // Another client has its own bucket: its op is judged on its merits.
        let err = board.apply(&room_a(), begin("a1", 0, 0.0, 0.0), t0);
        assert_eq!(err.unwrap_err().code(), "forbidden");
        // 100 ms later one token is back, not two.
        let t1 = t0 + Duration::from_millis(100);
        board
            .apply(&teacher(), append("t1", &[(21.0, 0.0)]), t1)
            .unwrap();
        let err = board.apply(&teacher(), append("t1", &[(22.0, 0.0)]), t1);
        assert_eq!(err.unwrap_err().code(), "rate_limited");
    }

    #[test]
    fn another_client_is_not_slowed_by_a_flooding_one() {
        let limits = BoardLimits {
            max_ops_per_sec_per_client: 1,
            burst_ops_per_client: 2,
            ..BoardLimits::default()
        };
        let mut board = Board::new(limits);
        let t0 = Instant::now();
        board
            .apply(&teacher(), allow(DrawTarget::All, true), t0)
            .unwrap();
        board
            .apply(&teacher(), begin("t1", 0, 0.0, 0.0), t0)
            .unwrap();
        assert_eq!(
            board.apply(&teacher(), end("t1"), t0).unwrap_err().code(),
            "rate_limited"
        );
        board
            .apply(&room_a(), begin("a1", 0, 0.0, 0.0), t0)
            .unwrap();
    }

    #[test]
    fn the_catch_up_log_is_bounded_by_points_too() {
        let limits = BoardLimits {
            log_max_points: 1000,
            max_ops_per_sec_per_client: 10_000,
            burst_ops_per_client: 10_000,
            ..BoardLimits::default()
        };
        let mut board = Board::new(limits);
        let mut clock = Clock(Instant::now());
        let long: Vec<(f64, f64)> = (0..400).map(|i| (i as f64, 1.0)).collect();
        for i in 0..10 {
            let id = format!("s{i}");
            for op in [begin(&id, 0, 0.0, 0.0), append(&id, &long), end(&id)] {
                board.apply(&teacher(), op, clock.tick()).unwrap();
            }
        }
        assert!(board.log_points <= 1000, "{}", board.log_points);
        assert!(board.log.len() < 30, "old ops left the log");
        // A client far behind gets a snapshot; one just behind still gets the delta.
        assert!(matches!(board.ops_since(1), Catchup::Snapshot { .. }));
        let seq = board.seq();
        assert!(matches!(board.ops_since(seq - 2), Catchup::Delta { ops } if ops.len() == 2));
    }

    #[test]
    fn cleared_and_erased_objects_are_freed_once_no_undo_can_bring_them_back() {
        let limits = BoardLimits {
            max_undo_depth: 3,
            ..BoardLimits::default()
        };
        let mut board = Board::new(limits);
        let mut clock = Clock(Instant::now());
        // Ten rounds of a full page that the teacher clears.
        for round in 0..10 {
            for i in 0..20 {
                let id = format!("t{round}_{i}");
                for op in [
                    begin(&id, 0, 0.0, 0.0),
                    append(&id, &[(5.0, 5.0)]),
                    end(&id),
                ] {
                    board.apply(&teacher(), op, clock.tick()).unwrap();
                }
            }
            board
                .apply(&teacher(), BoardOp::ClearPage { page: 0 }, clock.tick())
                .unwrap();
        }
        // Only the clear still within the teacher's 3-deep history can come back.
        assert_eq!(board.buried_objects(), 20);
        // And it does come back.
        board
            .apply(&teacher(), BoardOp::Undo { effect: None }, clock.tick())
            .unwrap();
        assert_eq!(ids_on(&board, 0).len(), 20);
        assert_eq!(board.buried_objects(), 0);
        // A new action drops the redo stack: an erase nobody can undo past frees at once.
        board
            .apply(&teacher(), BoardOp::ClearPage { page: 0 }, clock.tick())
            .unwrap();
        for i in 0..3 {
            board
                .apply(&teacher(), rect(&format!("n{i}"), 0), clock.tick())
                .unwrap();
        }
        assert_eq!(board.buried_objects(), 0, "the clear fell off the history");
        // A freed id is still never reused and never looks alive.
        let again = board.apply(&teacher(), begin("t9_0", 0, 1.0, 1.0), clock.tick());
        assert!(again.is_err());
    }

    #[test]
    fn undo_and_redo_of_ones_own_actions() {
        let mut board = Board::new(BoardLimits::default());
        let mut clock = Clock(Instant::now());
        board
            .apply(&teacher(), allow(DrawTarget::All, true), clock.tick())
            .unwrap();
        for op in [
            begin("t1", 0, 0.0, 0.0),
            append("t1", &[(5.0, 5.0)]),
            end("t1"),
        ] {
            board.apply(&teacher(), op, clock.tick()).unwrap();
        }
        board.apply(&room_a(), rect("a1", 0), clock.tick()).unwrap();
        board
            .apply(&teacher(), rect("t2", 0), clock.tick())
            .unwrap();
        assert_eq!(ids_on(&board, 0), vec!["t1", "a1", "t2"]);

        // The classroom's undo removes its rectangle, not the teacher's newer one.
        let undo = board
            .apply(&room_a(), BoardOp::Undo { effect: None }, clock.tick())
            .unwrap();
        assert_eq!(
            undo.op,
            BoardOp::Undo {
                effect: Some(UndoEffect {
                    remove: vec!["a1".into()],
                    restore: vec![],
                })
            }
        );
        assert_eq!(ids_on(&board, 0), vec!["t1", "t2"]);
        // Redo puts it back in its old place (paint order).
        board
            .apply(&room_a(), BoardOp::Redo { effect: None }, clock.tick())
            .unwrap();
        assert_eq!(ids_on(&board, 0), vec!["t1", "a1", "t2"]);

        // Erase and undo the erase: the whole stroke comes back with all its points.
        let full = board.snapshot();
        let erase = BoardOp::Erase {
            object_ids: vec!["t1".into(), "a1".into()],
        };
        board.apply(&teacher(), erase, clock.tick()).unwrap();
        assert_eq!(ids_on(&board, 0), vec!["t2"]);
        board
            .apply(&teacher(), BoardOp::Undo { effect: None }, clock.tick())
            .unwrap();
        assert_eq!(board.state().pages, full.pages);

        // Clear page by the teacher, undo restores the page, redo clears it again.
        board
            .apply(&teacher(), BoardOp::ClearPage { page: 0 }, clock.tick())
            .unwrap();
        assert!(ids_on(&board, 0).is_empty());
        board
            .apply(&teacher(), BoardOp::Undo { effect: None }, clock.tick())
            .unwrap();
        assert_eq!(board.state().pages, full.pages);
        board
            .apply(&teacher(), BoardOp::Redo { effect: None }, clock.tick())
            .unwrap();
        assert!(ids_on(&board, 0).is_empty());
        board
            .apply(&teacher(), BoardOp::Undo { effect: None }, clock.tick())
            .unwrap();

        // A new action clears the redo stack.
        board
            .apply(&teacher(), BoardOp::Undo { effect: None }, clock.tick())
            .unwrap(); // removes t2
        assert_eq!(ids_on(&board, 0), vec!["t1", "a1"]);
        board
            .apply(&teacher(), rect("t3", 0), clock.tick())
            .unwrap();
        let err = board.apply(&teacher(), BoardOp::Redo { effect: None }, clock.tick());
        assert_eq!(err.unwrap_err().code(), "not_found");

        // Undo skips actions whose objects are already gone: the teacher erases a2 ...
        board.apply(&room_a(), rect("a2", 0), clock.tick()).unwrap();
        let erase = BoardOp::Erase {
            object_ids: vec!["a2".into()],
        };
        board.apply(&teacher(), erase, clock.tick()).unwrap();
        // ... so the classroom's undo goes past "a2" to ... its redo of "a1".
        let undo = board
            .apply(&room_a(), BoardOp::Undo { effect: None }, clock.tick())
            .unwrap();
        match undo.op {
            BoardOp::Undo {
                effect: Some(effect),
            } => assert_eq!(effect.remove, vec!["a1".to_string()]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn undo_of_an_open_stroke_removes_it_and_ends_it() {
        let mut board = Board::new(BoardLimits::default());
        let mut clock = Clock(Instant::now());
        board
            .apply(&teacher(), begin("t1", 0, 0.0, 0.0), clock.tick())
            .unwrap();
        board
            .apply(&teacher(), BoardOp::Undo { effect: None }, clock.tick())
            .unwrap();
        let err = board.apply(&teacher(), append("t1", &[(1.0, 1.0)]), clock.tick());
        assert_eq!(err.unwrap_err().code(), "not_found");
        board
            .apply(&teacher(), BoardOp::Redo { effect: None }, clock.tick())
            .unwrap();
        let err = board.apply(&teacher(), append("t1", &[(1.0, 1.0)]), clock.tick());
        assert_eq!(
            err.unwrap_err().code(),
            "invalid",
            "a restored stroke is finished"
        );
    }

    #[test]
    fn catchup_is_a_delta_while_the_log_reaches_back_and_a_snapshot_after() {
        let limits = BoardLimits {
            log_capacity: 5,
            ..BoardLimits::default()
        };
        let mut board = Board::new(limits);
        let mut clock = Clock(Instant::now());
        for i in 0..8 {
            board
                .apply(&teacher(), rect(&format!("r{i}"), 0), clock.tick())
                .unwrap();
        }
        match board.ops_since(3) {
            Catchup::Delta { ops } => {
                assert_eq!(
                    ops.iter().map(|a| a.seq).collect::<Vec<_>>(),
                    [4, 5, 6, 7, 8]
                )
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(board.ops_since(8), Catchup::Delta { ops: vec![] });
        assert!(matches!(board.ops_since(2), Catchup::Snapshot { .. }));
        assert!(matches!(board.ops_since(99), Catchup::Snapshot { .. }));
    }

    #[test]
    fn client_reducer_rejects_gaps() {
        let mut board = Board::new(BoardLimits::default());
        let t = Instant::now();
        let a1 = board.apply(&teacher(), rect("r1", 0), t).unwrap();
        let a2 = board.apply(&teacher(), rect("r2", 0), t).unwrap();
        let mut screen = BoardSnapshot::new();
        assert_eq!(screen.apply(&a2).unwrap_err().code(), "invalid");
        screen.apply(&a1).unwrap();
        screen.apply(&a2).unwrap();
        assert_eq!(screen, board.snapshot());
    }

    #[test]
    fn op_json_shapes() {
        let op: BoardOp = serde_json::from_str(
            r##"{"op":"stroke_begin","object_id":"r_2:17","page":0,"tool":"highlighter","color":"#FFEB3B","width":12,"point":[100.5,200]}"##,
        )
        .unwrap();
        assert!(matches!(op, BoardOp::StrokeBegin { .. }));
        let op: BoardOp = serde_json::from_str(
            r#"{"op":"set_draw_permission","target":{"classroom":"r_2"},"allowed":true}"#,
        )
        .unwrap();
        assert_eq!(op, allow(DrawTarget::Classroom("r_2".into()), true));
        let op: BoardOp =
            serde_json::from_str(r#"{"op":"set_draw_permission","target":"all","allowed":false}"#)
                .unwrap();
        assert_eq!(op, allow(DrawTarget::All, false));
        let op: BoardOp = serde_json::from_str(r#"{"op":"undo"}"#).unwrap();
        assert_eq!(op, BoardOp::Undo { effect: None });

        let mut board = Board::new(BoardLimits::default());
        let a = board
            .apply(&teacher(), begin("t1", 0, 1.234, 2.0), Instant::now())
            .unwrap();
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            r##"{"seq":1,"author":{"classroom_id":"r_1","is_teacher":true},"op":{"op":"stroke_begin","object_id":"t1","page":0,"tool":"pen","color":"#1e88e5","width":3.0,"point":[1.23,2.0]}}"##
        );
        let snap = serde_json::to_string(&board.snapshot()).unwrap();
        assert_eq!(
            snap,
            r##"{"seq":1,"pages":[{"objects":[{"id":"t1","author":"r_1","z":1,"type":"stroke","tool":"pen","color":"#1e88e5","width":3.0,"points":[[1.23,2.0]]}]}],"current_page":0,"permissions":{"all":false,"classrooms":{}}}"##
        );
    }

    #[test]
    fn svg_export_draws_every_object_and_escapes_text() {
        let mut board = Board::new(BoardLimits::default());
        let mut clock = Clock(Instant::now());
        let ops = vec![
            begin("s1", 0, 10.0, 10.0),
            append("s1", &[(20.0, 20.0)]),
            BoardOp::StrokeBegin {
                object_id: "h1".into(),
                page: 0,
                tool: StrokeTool::Highlighter,
                color: "#ffeb3b".into(),
                width: 20.0,
                point: Point(50.0, 50.0),
            },
            rect("r1", 0),
            BoardOp::ShapeAdd {
                object_id: "e1".into(),
                page: 0,
                shape: ShapeKind::Ellipse,
                color: "#00ff00".into(),
                width: 2.0,
                from: Point(0.0, 0.0),
                to: Point(100.0, 50.0),
                fill: None,
            },
            BoardOp::ShapeAdd {
                object_id: "l1".into(),
                page: 0,
                shape: ShapeKind::Line,
                color: "#000000".into(),
                width: 2.0,
                from: Point(0.0, 0.0),
                to: Point(100.0, 50.0),
                fill: Some("#ffffff".into()),
            },
            BoardOp::ShapeAdd {
                object_id: "a1".into(),
                page: 0,
                shape: ShapeKind::Arrow,
                color: "#000000".into(),
                width: 2.0,
                from: Point(0.0, 0.0),
                to: Point(100.0, 0.0),
                fill: None,
            },
            BoardOp::TextAdd {
                object_id: "x1".into(),
                page: 0,
                at: Point(30.0, 40.0),
                text: "1 < 2 & \"half\"\nline two".into(),
                color: "#000000".into(),
                size: 24.0,
            },
        ];
        for op in ops {
            board.apply(&teacher(), op, clock.tick()).unwrap();
        }
        let svg = board_svg(&board.snapshot(), 0);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains(r#"<path d="M10 10 L20 20""#), "{svg}");
        assert!(
            svg.contains(r#"stroke-opacity="0.4""#),
            "highlighter: {svg}"
        );
        assert!(
            svg.contains(r##"fill="#ffeb3b" fill-opacity="0.502""##),
            "{svg}"
        );
        assert!(svg.contains("<ellipse cx=\"50\" cy=\"25\" rx=\"50\" ry=\"25\""));
        assert!(svg.contains("<line x1=\"0\" y1=\"0\" x2=\"100\" y2=\"50\""));
        assert!(
            svg.contains("<polygon points=\"100,0 "),
            "arrow head: {svg}"
        );
        assert!(svg.contains("1 &lt; 2 &amp; &quot;half&quot;</tspan>"));
        assert!(svg.contains("line two</tspan>"));
        assert!(!svg.contains("NaN"));
        // An unknown page renders empty.
        assert_eq!(board_svg(&board.snapshot(), 9).matches("<rect").count(), 1);
    }

    /// splitmix64: a tiny seeded generator for the property tests.
    pub(crate) struct Rng(u64);
    impl Rng {
        pub(crate) fn new(seed: u64) -> Self {
            Self(seed)
        }
        pub(crate) fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        pub(crate) fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
        pub(crate) fn coord(&mut self) -> f64 {
            (self.below(1_600_000) as f64) / 1000.0
        }
        pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
            if items.is_empty() {
                None
            } else {
                Some(&items[self.below(items.len() as u64) as usize])
            }
        }
    }

    /// A random op, often valid, sometimes not (unknown ids, bad colours, someone else's stroke).
    pub(crate) fn random_op(rng: &mut Rng, ids: &[String], next_id: &mut u64) -> BoardOp {
        let mut fresh = || {
            *next_id += 1;
            format!("o{next_id}")
        };
        let known = |rng: &mut Rng| {
            rng.pick(ids)
                .cloned()
                .unwrap_or_else(|| "missing".to_string())
        };
        let page = rng.below(4) as u32;
        let colors = ["#000000", "#E53935", "#1e88e5cc", "blue"];
        let palette = if rng.below(20) == 0 { 4 } else { 3 };
        let color = colors[rng.below(palette) as usize].to_string();
        match rng.below(100) {
            0..20 => BoardOp::StrokeBegin {
                object_id: if rng.below(30) == 0 {
                    known(rng)
                } else {
                    fresh()
                },
                page,
                tool: if rng.below(4) == 0 {
                    StrokeTool::Highlighter
                } else {
                    StrokeTool::Pen
                },
                color,
                width: 1.0 + rng.below(300) as f64 / 10.0,
                point: Point(rng.coord(), rng.coord()),
            },
            20..45 => BoardOp::StrokeAppend {
                // Mostly a recent stroke, as while drawing.
                object_id: match rng.pick(&ids[ids.len().saturating_sub(3)..]) {
                    Some(id) if rng.below(3) != 0 => id.clone(),
                    _ => known(rng),
                },
                page: None,
                points: (0..1 + rng.below(6))
                    .map(|_| Point(rng.coord(), rng.coord()))
                    .collect(),
            },
            45..52 => BoardOp::StrokeEnd {
                object_id: known(rng),
                page: None,
            },
            52..60 => BoardOp::ShapeAdd {
                object_id: fresh(),
                page,
                shape: [
                    ShapeKind::Line,
                    ShapeKind::Arrow,
                    ShapeKind::Rect,
                    ShapeKind::Ellipse,
                ][rng.below(4) as usize],
                color,
                width: 2.5,
                from: Point(rng.coord(), rng.coord()),
                to: Point(rng.coord(), rng.coord()),
                fill: if rng.below(2) == 0 {
                    Some("#ffeb3b80".into())
                } else {
                    None
                },
            },
            60..64 => BoardOp::TextAdd {
                object_id: fresh(),
                page,
                at: Point(rng.coord(), rng.coord()),
                text: format!("x = {}\r\ny < 2", rng.below(100)),
                color,
                size: 18.0 + rng.below(20) as f64,
            },
            64..72 => BoardOp::Erase {
                object_ids: (0..1 + rng.below(3)).map(|_| known(rng)).collect(),
            },
            72..81 => BoardOp::Undo { effect: None },
            81..87 => BoardOp::Redo { effect: None },
            87..89 => BoardOp::ClearPage { page },
            89..91 => BoardOp::AddPage { page: None },
            91..94 => BoardOp::SetPage { page },
            _ => BoardOp::SetDrawPermission {
                target: match rng.below(3) {
                    0 => DrawTarget::All,
                    1 => DrawTarget::Classroom("r_2".into()),
                    _ => DrawTarget::Classroom("r_3".into()),
                },
                allowed: rng.below(3) != 0,
            },
        }
    }

    pub(crate) fn small_limits() -> BoardLimits {
        BoardLimits {
            max_points_per_stroke: 12,
            max_objects_per_page: 25,
            max_pages: 4,
            max_undo_depth: 30,
            log_capacity: 64,
            ..BoardLimits::default()
        }
    }

    #[test]
    fn snapshot_plus_missed_ops_equals_the_live_board_on_random_lessons() {
        let authors = [teacher(), room_a(), room_b()];
        let mut codes: BTreeMap<&'static str, usize> = BTreeMap::new();
        for seed in 1..=12u64 {
            let mut rng = Rng::new(seed);
            let mut board = Board::new(small_limits());
            let mut clock = Clock(Instant::now());
            let mut screen = BoardSnapshot::new(); // a client that saw everything
            let mut applied: Vec<Applied> = Vec::new();
            let mut saved: Vec<BoardSnapshot> = vec![BoardSnapshot::new()];
            let mut ids: Vec<String> = Vec::new();
            let mut next_id = 0;
            for _ in 0..1500 {
                let who = if rng.below(3) == 0 { 1 } else { 3 };
                let author = &authors[rng.below(who) as usize];
                let op = random_op(&mut rng, &ids, &mut next_id);
                let before = board.snapshot();
                match board.apply(author, op.clone(), clock.tick()) {
                    Err(e) => {
                        *codes.entry(e.code()).or_default() += 1;
                        assert_eq!(
                            board.snapshot(),
                            before,
                            "rejected {op:?} changed the board"
                        );
                    }
                    Ok(a) => {
                        *codes.entry("ok").or_default() += 1;
                        assert_eq!(a.seq, before.seq + 1, "no gaps");
                        if let BoardOp::StrokeBegin { object_id, .. }
                        | BoardOp::ShapeAdd { object_id, .. }
                        | BoardOp::TextAdd { object_id, .. } = &a.op
                        {
                            ids.push(object_id.clone());
                        }
                        screen.apply(&wire(&a)).unwrap();
                        assert_eq!(screen, board.snapshot(), "client diverged after {a:?}");
                        applied.push(a);
                        if rng.below(25) == 0 {
                            saved.push(board.snapshot());
                        }
                    }
                }
            }
            let fin = board.snapshot();
            let undos = applied
                .iter()
                .filter(|a| matches!(a.op, BoardOp::Undo { .. }))
                .count();
            assert!(undos > 10, "seed {seed}: only {undos} undos");
            // Late joiners / reconnecting classrooms: old snapshot + missed ops == live board.
            for old in &saved {
                let n = old.seq as usize;
                let mut late =
                    serde_json::from_str::<BoardSnapshot>(&serde_json::to_string(old).unwrap())
                        .unwrap();
                match board.ops_since(old.seq) {
                    Catchup::Delta { ops } => {
                        assert_eq!(ops, applied[n..]);
                        for a in &ops {
                            late.apply(&wire(a)).unwrap();
                        }
                    }
                    Catchup::Snapshot { snapshot } => {
                        assert!(fin.seq - old.seq > small_limits().log_capacity as u64);
                        late = snapshot;
                    }
                }
                assert_eq!(late, fin, "seed {seed}: from seq {n}");
                let mut replayed = old.clone();
                for a in &applied[n..] {
                    replayed.apply(&wire(a)).unwrap();
                }
                assert_eq!(replayed, fin);
            }
            // A server restart: replaying the stored ops gives the same board, and the same
            // future (undo stacks, open strokes, ids in use are rebuilt too).
            let mut restarted = Board::new(small_limits());
            for a in &applied {
                restarted.replay(&wire(a)).unwrap();
            }
            assert_eq!(restarted.snapshot(), fin);
            for _ in 0..300 {
                let author = &authors[rng.below(3) as usize];
                let op = random_op(&mut rng, &ids, &mut next_id);
                let t = clock.tick();
                let live = board.apply(author, op.clone(), t);
                let again = restarted.apply(author, op, t);
                assert_eq!(live, again);
            }
        }
        for code in [
            "ok",
            "forbidden",
            "invalid",
            "not_found",
            "limit_objects",
            "limit_points",
            "limit_pages",
        ] {
            assert!(codes.contains_key(code), "no {code}: {codes:?}");
        }
    }
}
