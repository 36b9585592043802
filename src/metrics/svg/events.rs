//! Events on the chart: a grey line across every time panel, and labels in
//! a lane of their own above the plot, stacked in rows so that no label
//! covers another, another's leader line, or a curve.

use plotters::element::{DashedPathElement, PathElement, Text};
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{Color, FontStyle, IntoFont};

use super::palette::{EventStyle, event_label, event_style};
use super::{Area, DrawError, Rect};
use crate::metrics::report::Report;

/// Label size (plotters' units; the SVG's font-size is this / 1.24).
const FONT: f64 = 14.0;
/// Height of a row of the lane, pixels.
pub(super) const ROW: i32 = 15;
/// Space between a label and its line, and between labels.
const GAP: i32 = 4;

/// An event to mark: when, what its label says, how it is drawn.
#[derive(Debug, Clone)]
pub(super) struct Mark {
    /// Seconds from the start.
    pub t_s: f64,
    /// The label.
    pub text: String,
    /// Line and label style.
    pub style: EventStyle,
}

/// Every event of the timeline.
pub(super) fn marks(report: &Report) -> Vec<Mark> {
    report
        .timeline
        .iter()
        .map(|e| Mark {
            t_s: e.at_s,
            text: event_label(e),
            style: event_style(e),
        })
        .collect()
}

/// A label's width in pixels, estimated (0.6 em a character, a tenth more in bold).
fn text_width(text: &str, bold: bool) -> i32 {
    let em = FONT / 1.24;
    let w = text.chars().count() as f64 * em * if bold { 0.66 } else { 0.6 };
    w.ceil() as i32
}

/// Where a label sits in the lane: its row (0 next to the plot) and
/// whether it ends at its line (near the right edge) or starts there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Slot {
    /// Row, counted up from the plot.
    pub row: usize,
    /// True: the label is left of its line.
    pub before_line: bool,
}

/// Places labels at pixel columns (any order) in few rows, none covering
/// another label or a leader line. Labels are placed right to left, each
/// in the lowest row where its words cover nothing and its leader line
/// crosses no label below: a label starts at its line, so the labels to
/// its right, already placed, never sit across it. Near the right edge
/// (`right`, the last column a label may reach) a label ends at its line
/// instead; when that leaves no clean place, it takes the lowest row its
/// words fit in.
pub(super) fn pack(labels: &[(i32, &Mark)], right: i32) -> Vec<Slot> {
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse((labels[i].0, i)));
    // Per row, the columns taken: labels and the leader lines through it.
    let mut taken: Vec<Vec<(i32, i32)>> = Vec::new();
    let mut slots = vec![
        Slot {
            row: 0,
            before_line: false
        };
        labels.len()
    ];
    for i in order {
        let (x, mark) = labels[i];
        let w = text_width(&mark.text, mark.style.bold) + GAP;
        let before_line = x + w > right;
        let span = if before_line { (x - w, x) } else { (x, x + w) };
        let clear = |row: &[(i32, i32)], (a, b): (i32, i32)| row.iter().all(|&(c, d)| b + GAP <= c || d + GAP <= a);
        let fits = |r: usize| taken.get(r).is_none_or(|row| clear(row, span));
        let leader_clear = |r: usize| taken[..r.min(taken.len())].iter().all(|row| clear(row, (x - 1, x + 1)));
        let row = (0..=taken.len())
            .find(|&r| fits(r) && leader_clear(r))
            .or_else(|| (0..=taken.len()).find(|&r| fits(r)))
            .unwrap_or(taken.len());
        if taken.len() <= row {
            taken.resize(row + 1, Vec::new());
        }
        taken[row].push(span);
        for below in &mut taken[..row] {
            below.push((x - 1, x + 1));
        }
        slots[i] = Slot { row, before_line };
    }
    slots
}

/// Rows a packing uses.
pub(super) fn rows(slots: &[Slot]) -> usize {
    slots.iter().map(|s| s.row + 1).max().unwrap_or(0)
}

/// Pixel height of a lane of `rows` rows (none: no lane).
pub(super) fn lane_height(rows: usize) -> i32 {
    if rows == 0 { 0 } else { rows as i32 * ROW + 6 }
}

/// The events' lines across a plot, at pixel columns `xs`.
pub(super) fn draw_lines(root: &Area<'_>, rect: Rect, marks: &[(i32, &Mark)]) -> Result<(), DrawError> {
    for &(x, mark) in marks {
        line(root, x, (rect.y0, rect.y1), mark.style)?;
    }
    Ok(())
}

fn line(root: &Area<'_>, x: i32, (y0, y1): (i32, i32), s: EventStyle) -> Result<(), DrawError> {
    let style = s.colour.stroke_width(s.width);
    match s.dash {
        Some((dash, gap)) => root.draw(&DashedPathElement::new(vec![(x, y0), (x, y1)], dash, gap, style)),
        None => root.draw(&PathElement::new(vec![(x, y0), (x, y1)], style)),
    }
}

/// The labels above a plot whose top is `rect.y0`, each joined to its line.
pub(super) fn draw_lane(root: &Area<'_>, rect: Rect, marks: &[(i32, &Mark)], slots: &[Slot]) -> Result<(), DrawError> {
    for (&(x, mark), slot) in marks.iter().zip(slots) {
        let bottom = rect.y0 - 3 - slot.row as i32 * ROW;
        let s = mark.style;
        root.draw(&PathElement::new(
            vec![(x, rect.y0), (x, bottom - ROW / 2 + 2)],
            s.colour.stroke_width(1),
        ))?;
        let (anchor, tx) = if slot.before_line {
            (HPos::Right, x - GAP)
        } else {
            (HPos::Left, x + GAP)
        };
        let font = ("sans-serif", FONT).into_font();
        let font = if s.bold { font.style(FontStyle::Bold) } else { font };
        let style = font.color(&s.colour).pos(Pos::new(anchor, VPos::Bottom));
        root.draw(&Text::new(mark.text.clone(), (tx, bottom), style))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::recorder::TimelineEntry;

    fn mark(text: &str) -> Mark {
        let e = TimelineEntry {
            at_s: 0.0,
            action: text.into(),
            outcome: String::new(),
        };
        Mark {
            t_s: 0.0,
            text: text.into(),
            style: event_style(&e),
        }
    }

    #[test]
    fn labels_close_in_time_stack_and_far_ones_share_a_row() {
        let (a, b, c) = (mark("publish 1.0.1"), mark("publish 1.0.2"), mark("promote 1.0.2"));
        let slots = pack(&[(100, &a), (110, &b), (600, &c)], 1200);
        assert_eq!(slots.iter().map(|s| s.row).collect::<Vec<_>>(), vec![1, 0, 0]);
        assert_eq!(rows(&slots), 2);
    }

    #[test]
    fn a_leader_line_never_crosses_a_label_below_it() {
        // The earlier label goes up a row, and its line passes left of the
        // later label's start.
        let (a, b) = (mark("promote 1.0.1"), mark("rollback 1.0.1"));
        let slots = pack(&[(100, &a), (130, &b)], 1200);
        assert_eq!((slots[0].row, slots[1].row), (1, 0));
        // A label may not cover a line running up through its row: the
        // label at 60 would cover the line at 100 in row 0, and the label
        // at 100 in row 1.
        let (c, d, e) = (mark("abcdef"), mark("b"), mark("a long label here"));
        let slots = pack(&[(100, &c), (130, &d), (60, &e)], 1200);
        assert_eq!((slots[0].row, slots[1].row), (1, 0));
        assert_eq!(slots[2].row, 2, "{slots:?}");
    }

    #[test]
    fn when_no_place_is_clean_a_label_still_gets_a_row() {
        // Two labels ending at lines 2 px apart at the right edge: the
        // second's line must cross the first's words; it is placed anyway.
        let (a, b) = (mark("rollback 1.0.1"), mark("promote 1.0.1"));
        let slots = pack(&[(1195, &a), (1193, &b)], 1200);
        assert!(slots.iter().all(|s| s.before_line));
        assert_ne!(slots[0].row, slots[1].row);
    }

    #[test]
    fn labels_near_the_right_edge_end_at_their_line() {
        let a = mark("promote 1.0.1");
        assert!(pack(&[(1190, &a)], 1200)[0].before_line);
        assert!(!pack(&[(100, &a)], 1200)[0].before_line);
    }
}
