//! The fixtures of the browser client's board tests (`web-client/test/board-model.test.js`) are
//! what the server's own `Board` makes of a scripted lesson: the applied ops, snapshots along the
//! way and the SVG of each page. This test runs the lesson again and compares the result with
//! the committed `web-client/test/fixtures/board-lesson.json`, so a change to the Rust board
//! that the JS model has not followed fails CI. To refresh the file after such a change (and
//! then make the JS model pass `node --test web-client/test/board-model.test.js`):
//!
//! `TANDEM_UPDATE_FIXTURES=1 cargo test -p tandem-signaling --test board_fixtures`

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tandem_signaling::classboard::board::{Author, Board, BoardLimits, BoardOp, board_svg};

/// The committed fixture file, relative to this crate.
fn fixture_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../web-client/test/fixtures/board-lesson.json")
}

#[test]
fn the_browser_board_fixtures_are_what_the_server_board_produces() {
    let produced = lesson();
    let path = fixture_path();
    if std::env::var_os("TANDEM_UPDATE_FIXTURES").is_some() {
        let text = serde_json::to_string(&produced).expect("serialises") + "\n";
        std::fs::write(&path, text).expect("write the fixture file");
        return;
    }
    let committed: Value = std::fs::read_to_string(&path)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    if let Some(at) = difference(&committed, &produced, String::new()) {
        panic!(
            "{} is not what the server's Board produces any more (first difference at {at}). \
             Refresh it with `TANDEM_UPDATE_FIXTURES=1 cargo test -p tandem-signaling --test \
             board_fixtures`, then make the JS board model pass \
             `node --test web-client/test/board-model.test.js`.",
            path.display()
        );
    }
}

/// Where two JSON documents first differ (`None`: they are equal). Numbers compare by value, so
/// `4` and `4.0` are the same, as they are to JavaScript.
fn difference(a: &Value, b: &Value, at: String) -> Option<String> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => (x.as_f64() != y.as_f64()).then_some(at),
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() {
                return Some(format!("{at} ({} items, now {})", x.len(), y.len()));
            }
            x.iter()
                .zip(y)
                .enumerate()
                .find_map(|(i, (x, y))| difference(x, y, format!("{at}[{i}]")))
        }
        (Value::Object(x), Value::Object(y)) => {
            if let Some(key) = x
                .keys()
                .chain(y.keys())
                .find(|k| x.contains_key(*k) != y.contains_key(*k))
            {
                return Some(format!("{at}.{key} (only on one side)"));
            }
            x.iter()
                .find_map(|(k, v)| difference(v, &y[k], format!("{at}.{k}")))
        }
        _ => (a != b).then_some(at),
    }
}

/// The scripted lesson through the server's `Board`, as the fixture file holds it.
fn lesson() -> Value {
    let mut board = Board::new(BoardLimits::default());
    let teacher = Author::teacher("r_1");
    let a = Author::classroom("r_2");
    let b = Author::classroom("r_3");
    let script: Vec<(&Author, Value)> = vec![
        (
            &teacher,
            json!({"op":"set_draw_permission","target":{"classroom":"r_2"},"allowed":true}),
        ),
        (
            &a,
            json!({"op":"stroke_begin","object_id":"r_2:1","page":0,"tool":"pen","color":"#E53935","width":4,"point":[100,120.5]}),
        ),
        (
            &a,
            json!({"op":"stroke_append","object_id":"r_2:1","points":[[104,123],[110.25,130]]}),
        ),
        (
            &a,
            json!({"op":"stroke_append","object_id":"r_2:1","points":[[120.123,140.456]]}),
        ),
        (&a, json!({"op":"stroke_end","object_id":"r_2:1"})),
        (
            &teacher,
            json!({"op":"shape_add","object_id":"r_1:1","page":0,"shape":"arrow","color":"#000000","width":3,"from":[200,200],"to":[400,260]}),
        ),
        (
            &teacher,
            json!({"op":"shape_add","object_id":"r_1:2","page":0,"shape":"rect","color":"#1E88E5","width":2,"from":[300,180],"to":[50,50],"fill":"#ffeb3b80"}),
        ),
        (
            &teacher,
            json!({"op":"shape_add","object_id":"r_1:3","page":0,"shape":"ellipse","color":"#43a047","width":5,"from":[600,300],"to":[800,420]}),
        ),
        (
            &teacher,
            json!({"op":"shape_add","object_id":"r_1:4","page":0,"shape":"line","color":"#8e24aa","width":6,"from":[10,800],"to":[1500,820]}),
        ),
        (
            &teacher,
            json!({"op":"text_add","object_id":"r_1:5","page":0,"at":[60,400],"text":"1/2 > 1/3\n<b> & 'q'","color":"#000000","size":32}),
        ),
        (
            &a,
            json!({"op":"stroke_begin","object_id":"r_2:2","page":0,"tool":"highlighter","color":"#ffeb3b","width":16,"point":[10,10]}),
        ),
        (&a, json!({"op":"stroke_end","object_id":"r_2:2"})),
        (&teacher, json!({"op":"erase","object_ids":["r_2:1"]})),
        (&teacher, json!({"op":"undo"})),
        (&a, json!({"op":"undo"})),
        (&a, json!({"op":"redo"})),
        (
            &teacher,
            json!({"op":"set_draw_permission","target":"all","allowed":true}),
        ),
        (
            &b,
            json!({"op":"stroke_begin","object_id":"r_3:1","page":0,"tool":"pen","color":"#000000","width":2,"point":[700,700]}),
        ),
        (
            &b,
            json!({"op":"stroke_append","object_id":"r_3:1","points":[[710,705],[720,712]]}),
        ),
        (
            &teacher,
            json!({"op":"set_draw_permission","target":{"classroom":"r_3"},"allowed":false}),
        ),
        (&teacher, json!({"op":"add_page"})),
        (&teacher, json!({"op":"set_page","page":1})),
        (
            &teacher,
            json!({"op":"stroke_begin","object_id":"r_1:6","page":1,"tool":"pen","color":"#e53935","width":8,"point":[400,400]}),
        ),
        (
            &teacher,
            json!({"op":"stroke_append","object_id":"r_1:6","points":[[410,420],[430,450]]}),
        ),
        (&teacher, json!({"op":"stroke_end","object_id":"r_1:6"})),
        (&teacher, json!({"op":"clear_page","page":0})),
        (&teacher, json!({"op":"undo"})),
        (&teacher, json!({"op":"redo"})),
        (&teacher, json!({"op":"undo"})),
        (
            &teacher,
            json!({"op":"set_draw_permission","target":{"classroom":"r_3"},"allowed":true}),
        ),
        (&b, json!({"op":"erase","object_ids":["r_3:1"]})),
        (&teacher, json!({"op":"set_page","page":0})),
    ];
    let mut now = Instant::now();
    let mut ops = Vec::new();
    let mut snapshots = Vec::new();
    for (i, (author, value)) in script.into_iter().enumerate() {
        now += Duration::from_millis(100);
        let op: BoardOp = serde_json::from_value(value.clone()).expect("op parses");
        let applied = board
            .apply(author, op, now)
            .unwrap_or_else(|e| panic!("op {i} {value} rejected: {e}"));
        ops.push(serde_json::to_value(&applied).expect("serialises"));
        if i % 5 == 4 {
            snapshots.push(serde_json::to_value(board.snapshot()).expect("serialises"));
        }
    }
    let end = board.snapshot();
    let svgs: Vec<String> = (0..end.pages.len() as u32)
        .map(|p| board_svg(&end, p))
        .collect();
    json!({
        "ops": ops,
        "snapshots": snapshots,
        "final": end,
        "svg": svgs,
    })
}
