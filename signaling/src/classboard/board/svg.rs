//! SVG rendering of one board page (the export the class report and the browser's PNG download use).

use super::model::{BoardSnapshot, PAGE_HEIGHT, PAGE_WIDTH, Shape, StrokeTool, round2};
use crate::classboard::escape::xml_escape;

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
