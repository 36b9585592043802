//! The report for people, built once as a document (headings, sentences,
//! lists, tables, the chart) and rendered to Markdown (`report.md`) and to
//! one self-contained HTML page (`report.html`), so the two never drift.

use std::fmt::Write;

use quick_xml::escape::escape;

/// How a piece of text stands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mark {
    /// Plain.
    #[default]
    Plain,
    /// Something that held (`ok`).
    Ok,
    /// Something that failed: bold in Markdown, red in HTML.
    Fail,
}

/// Text with a mark.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Text {
    /// The words.
    pub text: String,
    /// How they stand out.
    pub mark: Mark,
}

impl Text {
    /// Plain text.
    pub fn plain(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            mark: Mark::Plain,
        }
    }

    /// Marked text.
    pub fn marked(text: impl Into<String>, mark: Mark) -> Self {
        Self {
            text: text.into(),
            mark,
        }
    }
}

impl From<String> for Text {
    fn from(text: String) -> Self {
        Self::plain(text)
    }
}

impl From<&str> for Text {
    fn from(text: &str) -> Self {
        Self::plain(text)
    }
}

/// A part of the page.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// A section heading.
    Heading(String),
    /// A paragraph.
    Para(String),
    /// A bulleted list; an item may have items of its own.
    List(Vec<(Text, Vec<String>)>),
    /// A table, and how many rows were left out of it.
    Table {
        /// Column names.
        head: Vec<String>,
        /// Cells, row by row.
        rows: Vec<Vec<Text>>,
        /// Rows not shown (all of them are in report.json).
        more: usize,
    },
    /// The convergence chart.
    Chart,
}

/// A page: a title with its verdict, then blocks.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The heading's text.
    pub title: String,
    /// The verdict after the title.
    pub verdict: Text,
    /// Everything below it.
    pub blocks: Vec<Block>,
}

/// A Markdown table: a header, a rule and the rows, with `|` in cells
/// escaped so a cell never splits. The one table writer of every Markdown
/// rmmsim prints (reports, `compare`, the check summary, `bench`).
pub fn md_table<S: AsRef<str>>(head: &[S], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    md_table_aligned(head, head.len(), rows)
}

/// [`md_table`] with the columns from `numeric_from` on aligned right, as
/// numbers read best.
pub fn md_table_aligned<S: AsRef<str>>(
    head: &[S],
    numeric_from: usize,
    rows: impl IntoIterator<Item = Vec<String>>,
) -> String {
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut out = String::new();
    let line = |cells: Vec<String>| format!("| {} |\n", cells.join(" | "));
    out += &line(head.iter().map(|h| cell(h.as_ref())).collect());
    let rule: String = (0..head.len())
        .map(|i| if i < numeric_from { "---|" } else { "---:|" })
        .collect();
    out += &format!("|{rule}\n");
    for row in rows {
        out += &line(row.iter().map(|c| cell(c)).collect());
    }
    out
}

fn md_text(t: &Text) -> String {
    match t.mark {
        Mark::Fail => format!("**{}**", t.text),
        Mark::Plain | Mark::Ok => t.text.clone(),
    }
}

pub(super) const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1320px;color:#222;line-height:1.4}\
h1 .ok{color:#087f23}h1 .fail{color:#b00020}table{border-collapse:collapse;margin:.5em 0 1.5em}\
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}th{background:#f3f3f3}\
.fail{color:#b00020;font-weight:600}.ok{color:#087f23}ul{margin-top:.2em}\
figure{margin:0}svg{max-width:100%;height:auto}";

fn e(s: &str) -> String {
    escape(s).into_owned()
}

fn html_text(t: &Text) -> String {
    match t.mark {
        Mark::Plain => e(&t.text),
        Mark::Ok => format!("<span class=\"ok\">{}</span>", e(&t.text)),
        Mark::Fail => format!("<span class=\"fail\">{}</span>", e(&t.text)),
    }
}

fn more_line(more: usize) -> Option<String> {
    (more > 0).then(|| format!("…and {more} more (all in report.json)."))
}

impl Document {
    /// As Markdown; the chart is the file `chart` beside it.
    pub fn markdown(&self, chart: &str) -> String {
        let mut md = format!("# {}: {}\n\n", self.title, md_text(&self.verdict));
        for block in &self.blocks {
            match block {
                Block::Heading(h) => {
                    let _ = writeln!(md, "## {h}\n");
                }
                Block::Para(p) => {
                    let _ = writeln!(md, "{p}\n");
                }
                Block::List(items) => {
                    for (item, sub) in items {
                        let _ = writeln!(md, "- {}", md_text(item));
                        for s in sub {
                            let _ = writeln!(md, "  - {s}");
                        }
                    }
                    md.push('\n');
                }
                Block::Table { head, rows, more } => {
                    md += &md_table(head, rows.iter().map(|r| r.iter().map(md_text).collect()));
                    if let Some(line) = more_line(*more) {
                        let _ = write!(md, "\n{line}\n");
                    }
                    md.push('\n');
                }
                Block::Chart => {
                    let _ = writeln!(md, "![share of machines on each version over time]({chart})\n");
                }
            }
        }
        md
    }

    /// As one self-contained page, the chart's SVG inline.
    pub fn html(&self, svg: &str) -> String {
        let mut h = format!(
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} — rmmsim</title><style>{STYLE}</style></head><body>",
            e(&self.title)
        );
        let _ = write!(h, "<h1>{}: {}</h1>", e(&self.title), html_text(&self.verdict));
        for block in &self.blocks {
            match block {
                Block::Heading(t) => {
                    let _ = write!(h, "<h2>{}</h2>", e(t));
                }
                Block::Para(p) => {
                    let _ = write!(h, "<p>{}</p>", e(p));
                }
                Block::List(items) => {
                    h.push_str("<ul>");
                    for (item, sub) in items {
                        let _ = write!(h, "<li>{}", html_text(item));
                        if !sub.is_empty() {
                            h.push_str("<ul>");
                            for s in sub {
                                let _ = write!(h, "<li>{}</li>", e(s));
                            }
                            h.push_str("</ul>");
                        }
                        h.push_str("</li>");
                    }
                    h.push_str("</ul>\n");
                }
                Block::Table { head, rows, more } => {
                    h.push_str("<table><tr>");
                    for c in head {
                        let _ = write!(h, "<th>{}</th>", e(c));
                    }
                    h.push_str("</tr>");
                    for row in rows {
                        h.push_str("<tr>");
                        for c in row {
                            let _ = write!(h, "<td>{}</td>", html_text(c));
                        }
                        h.push_str("</tr>");
                    }
                    h.push_str("</table>\n");
                    if let Some(line) = more_line(*more) {
                        let _ = write!(h, "<p>{}</p>", e(&line));
                    }
                }
                Block::Chart => {
                    let _ = write!(h, "<figure>{svg}</figure>");
                }
            }
        }
        h.push_str("</body></html>\n");
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipe_in_a_cell_does_not_split_it() {
        let t = md_table(&["a", "b"], [vec!["x|y".to_owned(), "z".to_owned()]]);
        assert_eq!(t, "| a | b |\n|---|---|\n| x\\|y | z |\n");
    }

    #[test]
    fn both_forms_carry_every_block() {
        let doc = Document {
            title: "t <1>".into(),
            verdict: Text::marked("FAILED", Mark::Fail),
            blocks: vec![
                Block::Heading("In short".into()),
                Block::List(vec![(Text::plain("a & b"), vec!["sub".into()])]),
                Block::Table {
                    head: vec!["k".into()],
                    rows: vec![vec![Text::marked("FAIL", Mark::Fail)]],
                    more: 2,
                },
                Block::Chart,
            ],
        };
        let md = doc.markdown("c.svg");
        assert!(md.starts_with("# t <1>: **FAILED**\n"), "{md}");
        assert!(md.contains("- a & b\n  - sub\n") && md.contains("| **FAIL** |") && md.contains("…and 2 more"));
        assert!(md.contains("](c.svg)"));
        let html = doc.html("<svg/>");
        assert!(
            html.contains("<h1>t &lt;1&gt;: <span class=\"fail\">FAILED</span></h1>"),
            "{html}"
        );
        assert!(html.contains("<li>a &amp; b<ul><li>sub</li></ul></li>") && html.contains("<figure><svg/></figure>"));
        assert!(html.contains("…and 2 more"));
    }
}
