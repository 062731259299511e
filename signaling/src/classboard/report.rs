//! The class report for the teacher: attendance, polls with their results, and the board pages.
//!
//! [`report_html`] is one self-contained page (no external files, no scripts): an attendance
//! table with durations, each poll with an inline-SVG bar chart and counts, and each board page
//! as an SVG image (a `data:` URL, so nothing in it can run). [`report_csv`] has the attendance
//! and the poll results for spreadsheets (RFC 4180, CRLF line ends).
//!
//! Times are shown at the report's `utc_offset_minutes` (the teacher's time zone, if known).

use std::fmt::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::escape::xml_escape;
use super::poll::{PollKind, PollResults, PollState, VoterKind};

/// One stay of one participant (a classroom that rejoins has several rows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttendanceRow {
    pub classroom_id: String,
    pub name: String,
    /// `teacher`, `classroom` or `pupil`.
    pub role: String,
    pub joined_at: SystemTime,
    /// `None`: still there when the class ended (counted until `ended_at`).
    pub left_at: Option<SystemTime>,
}

/// Everything the report shows.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassReport {
    pub class_id: String,
    pub title: String,
    pub teacher_name: String,
    pub started_at: SystemTime,
    pub ended_at: SystemTime,
    /// Offset of the teacher's time zone from UTC, for displayed times.
    pub utc_offset_minutes: i32,
    pub attendance: Vec<AttendanceRow>,
    pub polls: Vec<PollResults>,
    /// Board pages as SVG documents (from `board_svg`), in page order.
    pub board_pages: Vec<String>,
}

impl AttendanceRow {
    /// Time present, up to `ended_at` when the row has no `left_at`.
    pub fn duration(&self, ended_at: SystemTime) -> Duration {
        self.left_at
            .unwrap_or(ended_at)
            .duration_since(self.joined_at)
            .unwrap_or_default()
    }
}

/// `1:02:05` (h:mm:ss) or `12:05` (m:ss).
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// RFC 3339 at the given offset, to the second: `2026-01-01T09:30:00+08:00` (`Z` for UTC).
pub fn format_time(t: SystemTime, utc_offset_minutes: i32) -> String {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    } + i64::from(utc_offset_minutes) * 60;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let zone = if utc_offset_minutes == 0 {
        "Z".to_string()
    } else {
        let a = utc_offset_minutes.abs();
        let sign = if utc_offset_minutes < 0 { '-' } else { '+' };
        format!("{sign}{:02}:{:02}", a / 60, a % 60)
    };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}{zone}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn kind_label(kind: PollKind) -> &'static str {
    match kind {
        PollKind::Single => "single choice",
        PollKind::Multiple => "multiple choice",
        PollKind::YesNo => "yes/no",
        PollKind::QuickAbcd => "A–D",
    }
}

fn state_label(state: PollState) -> &'static str {
    match state {
        PollState::Open => "open",
        PollState::Closed => "closed",
        PollState::Published => "published",
    }
}

fn voter_kind_label(kind: VoterKind) -> &'static str {
    match kind {
        VoterKind::Classroom => "classroom",
        VoterKind::Pupil => "pupil",
    }
}

/// Horizontal bar chart of one poll as an inline SVG element.
pub fn poll_chart_svg(results: &PollResults) -> String {
    const LABEL_W: f64 = 200.0;
    const BAR_W: f64 = 320.0;
    const ROW_H: f64 = 30.0;
    let total: u32 = results.counts.iter().sum();
    let max = results.counts.iter().copied().max().unwrap_or(0).max(1);
    let height = ROW_H * results.poll.options.len() as f64 + 10.0;
    let width = LABEL_W + BAR_W + 110.0;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{}">"#,
        xml_escape(&results.poll.question)
    );
    for (i, option) in results.poll.options.iter().enumerate() {
        let count = results.counts.get(i).copied().unwrap_or(0);
        let y = 5.0 + ROW_H * i as f64;
        let w = BAR_W * f64::from(count) / f64::from(max);
        let pct = if total == 0 {
            0
        } else {
            (f64::from(count) * 100.0 / f64::from(total)).round() as u32
        };
        let label: String = option.chars().take(28).collect();
        let label = if label.len() < option.len() {
            format!("{label}…")
        } else {
            label
        };
        let _ = write!(
            s,
            r##"<text x="{lx}" y="{ty}" text-anchor="end" font-family="sans-serif" font-size="14">{label}</text><rect x="{bx}" y="{ry}" width="{w:.1}" height="{bh}" fill="#1e88e5"/><text x="{cx:.1}" y="{ty}" font-family="sans-serif" font-size="14">{count} ({pct}%)</text>"##,
            lx = LABEL_W - 8.0,
            ty = y + 19.0,
            label = xml_escape(&label),
            bx = LABEL_W,
            ry = y + 4.0,
            bh = ROW_H - 8.0,
            cx = LABEL_W + w + 6.0,
        );
    }
    s.push_str("</svg>");
    s
}

/// The report page's one style sheet, inline so the page is one file to save.
const REPORT_CSS: &str = "
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}
th{background:#f3f3f3}td.num{text-align:right}section.poll{margin-bottom:1.5rem}
figure{margin:1rem 0}figure img{width:100%;border:1px solid #ccc}.muted{color:#666}
";

/// The Content-Security-Policy of the report page: no script at all, its one inline style sheet
/// by hash, the board pages as `data:` images, nothing fetched.
pub fn report_csp() -> String {
    use base64::Engine;
    let hash = ring::digest::digest(&ring::digest::SHA256, REPORT_CSS.as_bytes());
    format!(
        "default-src 'none'; style-src 'sha256-{}'; img-src data:; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'none'",
        base64::engine::general_purpose::STANDARD.encode(hash.as_ref())
    )
}

/// The report as one self-contained HTML page.
pub fn report_html(r: &ClassReport) -> String {
    let e = xml_escape;
    let tz = r.utc_offset_minutes;
    let mut h = String::new();
    let _ = write!(
        h,
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Class report: {title}</title>
<style>{css}</style></head><body>
<h1>{title}</h1>
<p>Teacher: {teacher} · Class <code>{class_id}</code> · {start} – {end} ({dur})</p>
"#,
        css = REPORT_CSS,
        title = e(&r.title),
        teacher = e(&r.teacher_name),
        class_id = e(&r.class_id),
        start = e(&format_time(r.started_at, tz)),
        end = e(&format_time(r.ended_at, tz)),
        dur = format_duration(r.ended_at.duration_since(r.started_at).unwrap_or_default()),
    );

    h.push_str("<h2>Attendance</h2>\n");
    if r.attendance.is_empty() {
        h.push_str("<p class=\"muted\">Nobody joined.</p>\n");
    } else {
        h.push_str("<table><thead><tr><th>Name</th><th>Role</th><th>Classroom</th><th>Joined</th><th>Left</th><th>Duration</th></tr></thead><tbody>\n");
        for row in &r.attendance {
            let left = row
                .left_at
                .map_or_else(|| "(until the end)".to_string(), |t| format_time(t, tz));
            let _ = writeln!(
                h,
                r#"<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td class="num">{}</td></tr>"#,
                e(&row.name),
                e(&row.role),
                e(&row.classroom_id),
                e(&format_time(row.joined_at, tz)),
                e(&left),
                format_duration(row.duration(r.ended_at)),
            );
        }
        h.push_str("</tbody></table>\n");
    }

    h.push_str("<h2>Polls</h2>\n");
    if r.polls.is_empty() {
        h.push_str("<p class=\"muted\">No polls.</p>\n");
    }
    for p in &r.polls {
        let _ = write!(
            h,
            "<section class=\"poll\"><h3>{}</h3><p class=\"muted\">{} · {} · {} voter{}{}</p>\n{}\n",
            e(&p.poll.question),
            kind_label(p.poll.kind),
            state_label(p.poll.state),
            p.voters_total,
            if p.voters_total == 1 { "" } else { "s" },
            if p.poll.anonymous {
                " · anonymous"
            } else {
                ""
            },
            poll_chart_svg(p),
        );
        h.push_str("<table><thead><tr><th>Option</th><th>Votes</th></tr></thead><tbody>");
        for (i, option) in p.poll.options.iter().enumerate() {
            let _ = write!(
                h,
                r#"<tr><td>{}</td><td class="num">{}</td></tr>"#,
                e(option),
                p.counts.get(i).copied().unwrap_or(0)
            );
        }
        h.push_str("</tbody></table>\n");
        if let Some(voters) = &p.voters {
            h.push_str(
                "<table><thead><tr><th>Voter</th><th></th><th>Chose</th></tr></thead><tbody>",
            );
            for v in voters {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                    e(&v.display_name),
                    voter_kind_label(v.kind),
                    e(&chosen(&p.poll.options, &v.choices))
                );
            }
            h.push_str("</tbody></table>\n");
        }
        h.push_str("</section>\n");
    }

    h.push_str("<h2>Board</h2>\n");
    if r.board_pages.is_empty() {
        h.push_str("<p class=\"muted\">The board was not used.</p>\n");
    }
    for (i, svg) in r.board_pages.iter().enumerate() {
        let _ = writeln!(
            h,
            r#"<figure><img alt="Board page {n}" src="data:image/svg+xml;base64,{}"><figcaption>Page {n}</figcaption></figure>"#,
            base64(svg.as_bytes()),
            n = i + 1
        );
    }
    h.push_str("</body></html>\n");
    h
}

fn chosen(options: &[String], choices: &[u32]) -> String {
    choices
        .iter()
        .map(|&c| options.get(c as usize).map_or("?", String::as_str))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Attendance and poll results as CSV: two tables separated by an empty line, each with its
/// own header row.
pub fn report_csv(r: &ClassReport) -> String {
    let tz = r.utc_offset_minutes;
    let mut out = String::new();
    let mut row = |cells: &[&str]| {
        let line: Vec<String> = cells.iter().map(|c| csv_field(c)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    };
    row(&[
        "section",
        "classroom_id",
        "name",
        "role",
        "joined_at",
        "left_at",
        "duration_secs",
    ]);
    for a in &r.attendance {
        row(&[
            "attendance",
            &a.classroom_id,
            &a.name,
            &a.role,
            &format_time(a.joined_at, tz),
            &a.left_at.map(|t| format_time(t, tz)).unwrap_or_default(),
            &a.duration(r.ended_at).as_secs().to_string(),
        ]);
    }
    row(&[]);
    row(&[
        "section", "poll_id", "question", "kind", "option", "votes", "voters",
    ]);
    for p in &r.polls {
        for (i, option) in p.poll.options.iter().enumerate() {
            let voters = p.voters.as_ref().map_or(String::new(), |vs| {
                vs.iter()
                    .filter(|v| v.choices.contains(&(i as u32)))
                    .map(|v| v.display_name.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            });
            row(&[
                "poll",
                &p.poll.poll_id.to_string(),
                &p.poll.question,
                kind_label(p.poll.kind),
                option,
                &p.counts.get(i).copied().unwrap_or(0).to_string(),
                &voters,
            ]);
        }
    }
    out
}

/// Characters that make a spreadsheet read a cell as a formula when it starts with one (OWASP's
/// list, plus the full-width forms some spreadsheets and input methods treat the same way).
const FORMULA_STARTS: [char; 10] = [
    '=', '+', '-', '@', '\t', '\r', '\u{FF1D}', '\u{FF0B}', '\u{FF0D}', '\u{FF20}',
];

/// One CSV cell: quoted when it holds a comma, a semicolon (the separator of European
/// spreadsheet locales, where an unquoted `;` would start a new cell), a quote, a line break or
/// an edge space (quotes doubled); a cell starting with a formula character gets a leading `'` so
/// spreadsheets do not run it.
pub fn csv_field(s: &str) -> String {
    let s = if s.starts_with(FORMULA_STARTS) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', ';', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::board::{Author, Board, BoardLimits, BoardOp, Point, ShapeKind, board_svg};
    use super::super::poll::{PollLimits, PollSpec, Polls, Voter};
    use super::*;
    use std::time::Instant;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_767_258_000 + secs) // 2026-01-01T09:00:00Z
    }

    fn sample() -> ClassReport {
        let teacher = Author::teacher("r_1");
        let mut polls = Polls::new(PollLimits::default());
        let spec: PollSpec = serde_json::from_str(
            r#"{"question":"Which is bigger: 1/2 or 1/3?","kind":"single","options":["1/2","1/3"],"anonymous":false}"#,
        )
        .unwrap();
        polls.start(&teacher, spec, at(60)).unwrap();
        let tricky = Voter {
            voter_id: "p_1".into(),
            display_name: "Smith, \"Jo\"".into(),
            kind: VoterKind::Pupil,
        };
        polls.vote(&tricky, 1, &[0], at(70)).unwrap();
        let room = Voter {
            voter_id: "r_2".into(),
            display_name: "Room 2 <b>".into(),
            kind: VoterKind::Classroom,
        };
        polls.vote(&room, 1, &[0], at(71)).unwrap();
        polls.publish(&teacher, 1).unwrap();
        let spec: PollSpec =
            serde_json::from_str(r#"{"question":"Ready?","kind":"yes_no"}"#).unwrap();
        polls.start(&teacher, spec, at(200)).unwrap();
        polls.vote(&room, 2, &[1], at(201)).unwrap();
        polls.close(&teacher, 2).unwrap();

        let mut board = Board::new(BoardLimits::default());
        let op = BoardOp::ShapeAdd {
            object_id: "t1".into(),
            page: 0,
            shape: ShapeKind::Rect,
            color: "#000000".into(),
            width: 2.0,
            from: Point(10.0, 10.0),
            to: Point(200.0, 100.0),
            fill: None,
        };
        board.apply(&teacher, op, Instant::now()).unwrap();

        ClassReport {
            class_id: "c_5f2b".into(),
            title: "Grade 2 Maths: fractions".into(),
            teacher_name: "Ms Li".into(),
            started_at: at(0),
            ended_at: at(2700),
            utc_offset_minutes: 0,
            attendance: vec![
                AttendanceRow {
                    classroom_id: "r_1".into(),
                    name: "Ms Li".into(),
                    role: "teacher".into(),
                    joined_at: at(0),
                    left_at: None,
                },
                AttendanceRow {
                    classroom_id: "r_2".into(),
                    name: "Smith, \"Jo\"".into(),
                    role: "classroom".into(),
                    joined_at: at(30),
                    left_at: Some(at(30 + 3725)),
                },
                AttendanceRow {
                    classroom_id: "r_3".into(),
                    name: "=cmd()".into(),
                    role: "classroom".into(),
                    joined_at: at(100),
                    left_at: Some(at(160)),
                },
            ],
            polls: vec![polls.results(1).unwrap(), polls.results(2).unwrap()],
            board_pages: vec![board_svg(&board.snapshot(), 0)],
        }
    }

    #[test]
    fn csv_quotes_commas_quotes_and_formulas() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("Smith, \"Jo\""), "\"Smith, \"\"Jo\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
        assert_eq!(csv_field("-1,5"), "\"'-1,5\"");
        // European locales split on `;`: a cell holding one is quoted, or its tail would be a
        // cell of its own and could start a formula.
        assert_eq!(csv_field("Room 1;=1+1"), "\"Room 1;=1+1\"");
        // Full-width signs, tab and carriage return at the start are neutralised too.
        for sign in ["\u{FF1D}", "\u{FF0B}", "\u{FF0D}", "\u{FF20}", "\t", "\r"] {
            let cell = format!("{sign}SUM(A1)");
            assert!(
                csv_field(&cell).trim_start_matches('"').starts_with('\''),
                "{cell:?}"
            );
        }
        let csv = report_csv(&sample());
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(
            lines[0],
            "section,classroom_id,name,role,joined_at,left_at,duration_secs"
        );
        assert_eq!(
            lines[1],
            "attendance,r_1,Ms Li,teacher,2026-01-01T09:00:00Z,,2700"
        );
        assert_eq!(
            lines[2],
            "attendance,r_2,\"Smith, \"\"Jo\"\"\",classroom,2026-01-01T09:00:30Z,2026-01-01T10:02:35Z,3725"
        );
        assert_eq!(
            lines[3],
            "attendance,r_3,'=cmd(),classroom,2026-01-01T09:01:40Z,2026-01-01T09:02:40Z,60"
        );
        assert_eq!(lines[4], "");
        assert_eq!(
            lines[5],
            "section,poll_id,question,kind,option,votes,voters"
        );
        assert_eq!(
            lines[6],
            "poll,1,Which is bigger: 1/2 or 1/3?,single choice,1/2,2,\"Room 2 <b>; Smith, \"\"Jo\"\"\""
        );
        assert_eq!(
            lines[7],
            "poll,1,Which is bigger: 1/2 or 1/3?,single choice,1/3,0,"
        );
        assert_eq!(
            lines[8], "poll,2,Ready?,yes/no,Yes,0,",
            "anonymous: no names"
        );
        assert_eq!(lines[9], "poll,2,Ready?,yes/no,No,1,");
        assert_eq!(lines[10], "");
        assert_eq!(lines.len(), 11);
    }

    #[test]
    fn html_report_is_self_contained_and_escaped() {
        let html = report_html(&sample());
        assert!(html.starts_with("<!doctype html>"));
        assert!(html.contains("<h1>Grade 2 Maths: fractions</h1>"));
        assert!(html.contains("Smith, &quot;Jo&quot;"));
        assert!(html.contains("Room 2 &lt;b&gt;"));
        assert!(!html.contains("Room 2 <b>"));
        assert!(html.contains("<td class=\"num\">1:02:05</td>"), "duration");
        assert!(
            html.contains("<td class=\"num\">45:00</td>"),
            "until the end"
        );
        assert_eq!(html.matches("<section class=\"poll\">").count(), 2);
        assert!(html.contains("2 (100%)"), "bar chart counts");
        assert!(html.contains("anonymous"));
        assert!(html.contains("src=\"data:image/svg+xml;base64,"));
        assert!(!html.contains("<script"));
        assert!(!html.contains("http://") || !html.contains("src=\"http"));
    }

    #[test]
    fn helpers() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(format_time(UNIX_EPOCH, 0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(at(0), 480), "2026-01-01T17:00:00+08:00");
        assert_eq!(
            format_time(UNIX_EPOCH + Duration::from_secs(951_782_400), -90),
            "2000-02-28T22:30:00-01:30"
        );
        assert_eq!(format_duration(Duration::from_secs(59)), "0:59");
        assert_eq!(format_duration(Duration::from_secs(3600)), "1:00:00");
    }
}
