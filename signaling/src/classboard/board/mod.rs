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

mod authority;
mod model;
mod svg;

/// Kept at its old path for callers outside the crate (the load-test report).
pub use super::escape::xml_escape;
pub use authority::*;
pub use model::*;
pub use svg::board_svg;

#[cfg(test)]
pub(crate) mod tests;
