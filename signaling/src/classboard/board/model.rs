//! The board's data model: the wire types (ops, objects, pages, permissions, errors), the limits,
//! the validation that normalises what a client sends, and [`BoardSnapshot::apply`] — the reducer
//! that the server and every client run on each [`Applied`] op. No I/O, no clock, no history.

use std::collections::{BTreeMap, HashSet};

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
    pub(super) fn is_empty(&self) -> bool {
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
    pub(super) fn is_drawing(&self) -> bool {
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

    pub(super) fn reduce(&mut self, applied: &Applied) {
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

pub(super) fn round2(v: f64) -> f64 {
    let r = (v * 100.0).round() / 100.0;
    if r == 0.0 { 0.0 } else { r }
}

pub(super) fn norm_point(p: Point) -> Result<Point, BoardError> {
    let ok = |v: f64| v.is_finite() && v.abs() <= COORD_LIMIT;
    if ok(p.0) && ok(p.1) {
        Ok(Point(round2(p.0), round2(p.1)))
    } else {
        Err(BoardError::Invalid(format!(
            "coordinates must be finite and within ±{COORD_LIMIT}"
        )))
    }
}

pub(super) fn norm_width(w: f64) -> Result<f64, BoardError> {
    if w.is_finite() && (MIN_WIDTH..=MAX_WIDTH).contains(&w) {
        Ok(round2(w))
    } else {
        Err(BoardError::Invalid(format!(
            "width must be {MIN_WIDTH}..={MAX_WIDTH}"
        )))
    }
}

/// `#rrggbb` or `#rrggbbaa` (hex, any case) → lower case.
pub(super) fn norm_color(c: &str) -> Result<String, BoardError> {
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
pub(super) fn norm_text(t: &str) -> String {
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

pub(super) fn check_object_id(id: &str) -> Result<(), BoardError> {
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
