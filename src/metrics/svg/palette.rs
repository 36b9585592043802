//! The chart's colours: one per version, old to new, and the neutral
//! tones of event markers, which no version uses.

use plotters::style::RGBColor;

use crate::metrics::recorder::TimelineEntry;

/// Hue of the oldest version (CIE LCh degrees: blue) and how far the
/// newest turns from it (through green, ochre and red to magenta).
const HUE_OLDEST: f64 = 260.0;
const HUE_TURN: f64 = 280.0;
/// Chroma: saturated enough to stand apart from the grey event markers.
const CHROMA: f64 = 55.0;
/// Lightness of two or three versions, and the light/dark pair that
/// neighbours alternate between when there are more, so a dozen builds
/// whose hues are close still differ.
const LIGHTNESS_FEW: f64 = 52.0;
const LIGHTNESS_PAIR: [f64; 2] = [66.0, 36.0];

/// The colour of version `i` of `n`, oldest first: hue runs from blue (old)
/// to magenta (new), neighbours alternate light and dark.
pub(crate) fn version_colour(i: usize, n: usize) -> RGBColor {
    let f = if n <= 1 { 0.0 } else { i as f64 / (n - 1) as f64 };
    let lightness = if n <= 3 { LIGHTNESS_FEW } else { LIGHTNESS_PAIR[i % 2] };
    lch_to_srgb(lightness, CHROMA, HUE_OLDEST - HUE_TURN * f)
}

/// CIE LCh (D65) to sRGB, clipped to the gamut.
fn lch_to_srgb(l: f64, c: f64, hue_deg: f64) -> RGBColor {
    let (a, b) = (c * hue_deg.to_radians().cos(), c * hue_deg.to_radians().sin());
    let fy = (l + 16.0) / 116.0;
    let (fx, fz) = (fy + a / 500.0, fy - b / 200.0);
    let inv = |t: f64| {
        let t3 = t * t * t;
        if t3 > 216.0 / 24_389.0 {
            t3
        } else {
            (116.0 * t - 16.0) * 27.0 / 24_389.0
        }
    };
    let (x, y, z) = (0.950_47 * inv(fx), inv(fy), 1.088_83 * inv(fz));
    let r = 3.240_454_2 * x - 1.537_138_5 * y - 0.498_531_4 * z;
    let g = -0.969_266 * x + 1.876_010_8 * y + 0.041_556 * z;
    let bl = 0.055_643_4 * x - 0.204_025_9 * y + 1.057_225_2 * z;
    let gamma = |v: f64| {
        let v = v.clamp(0.0, 1.0);
        let s = if v <= 0.003_130_8 {
            12.92 * v
        } else {
            1.055 * v.powf(1.0 / 2.4) - 0.055
        };
        (s * 255.0).round() as u8
    };
    RGBColor(gamma(r), gamma(g), gamma(bl))
}

/// How an event is marked: a grey line (never a version's colour), its
/// weight and dashes, and whether its label is bold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct EventStyle {
    /// The line's and label's grey.
    pub colour: RGBColor,
    /// Line width.
    pub width: u32,
    /// Dash and gap lengths; `None`: solid.
    pub dash: Option<(u32, u32)>,
    /// Bold label (promotes and rollbacks).
    pub bold: bool,
}

const fn grey(v: u8) -> RGBColor {
    RGBColor(v, v, v)
}

/// Promotes solid dark grey, rollbacks black and dashed, both bold; builds
/// landing light grey dotted; a refused promote and anything else mid grey.
pub(crate) fn event_style(entry: &TimelineEntry) -> EventStyle {
    let a = entry.action.as_str();
    let refused = entry.outcome.starts_with("refused");
    let style = |v, width, dash, bold| EventStyle {
        colour: grey(v),
        width,
        dash,
        bold,
    };
    if a.starts_with("publish") {
        style(165, 1, Some((2, 4)), false)
    } else if a.starts_with("promote") && !refused {
        style(80, 2, None, true)
    } else if a.starts_with("rollback") {
        style(0, 2, Some((8, 4)), true)
    } else {
        style(110, 1, Some((5, 3)), false)
    }
}

/// What an event's label says: its action, and that it was refused when it
/// was. A build landing says its version alone, so that a build a day fits
/// on a two-week axis without stacking; its grey and the caption tell it apart.
pub(crate) fn event_label(entry: &TimelineEntry) -> String {
    if let Some(version) = entry.action.strip_prefix("publish ") {
        version.to_owned()
    } else if entry.outcome.starts_with("refused") {
        format!("{} (refused)", entry.action)
    } else {
        entry.action.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lch_round_trips_known_colours() {
        // White, black and a mid grey have no chroma.
        assert_eq!(lch_to_srgb(100.0, 0.0, 0.0), RGBColor(255, 255, 255));
        assert_eq!(lch_to_srgb(0.0, 0.0, 0.0), RGBColor(0, 0, 0));
        let RGBColor(r, g, b) = lch_to_srgb(53.39, 0.0, 0.0);
        assert!(r == g && g == b && (127..=129).contains(&r), "{r} {g} {b}");
    }

    #[test]
    fn versions_are_coloured_and_events_grey() {
        for n in 1..=20 {
            for i in 0..n {
                let RGBColor(r, g, b) = version_colour(i, n);
                let spread = r.max(g).max(b) - r.min(g).min(b);
                assert!(spread >= 60, "version {i} of {n} is nearly grey: {r} {g} {b}");
            }
        }
    }
}
