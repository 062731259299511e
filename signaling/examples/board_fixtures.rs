//! Prints JSON fixtures for the browser client's board reducer tests
//! (`web-client/test/board-model.test.js`): a scripted lesson run through the server's own
//! `Board`, with the applied ops, snapshots along the way and the SVG of each page.
//!
//! `cargo run -p tandem-signaling --example board_fixtures > web-client/test/fixtures/board-lesson.json`

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tandem_signaling::classboard::board::{Author, Board, BoardLimits, BoardOp, board_svg};

fn main() {
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
    let out = json!({
        "ops": ops,
        "snapshots": snapshots,
        "final": end,
        "svg": svgs,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&out).expect("serialises")
    );
}
