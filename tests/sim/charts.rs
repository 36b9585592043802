//! convergence.svg and the report page, read back from their text: event
//! labels in a lane above the plots, one zoomed panel per promote and
//! rollback, a dozen versions in colours apart from each other and from the
//! grey events, the share powered on, time panels that line up, hover
//! values on the page, and the index of a run of several scenarios.

use std::collections::BTreeMap;

use rmmsim::metrics::{self, Report};
use rmmsim::sim::TransportKind;

use crate::cli::scenario;
use crate::common::*;

/// A `<text>` of the SVG: where, its fill, its words.
#[derive(Debug, Clone)]
struct SvgText {
    x: f64,
    y: f64,
    fill: String,
    words: String,
}

/// A `<polyline>`: its stroke, width and points.
#[derive(Debug, Clone)]
struct SvgLine {
    stroke: String,
    width: u32,
    points: Vec<(f64, f64)>,
}

/// An SVG element's attribute.
fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let from = tag.find(&key)? + key.len();
    Some(tag[from..].split('"').next()?.to_owned())
}

/// Every text and polyline, in document order.
fn elements(svg: &str) -> Vec<Result<SvgText, SvgLine>> {
    let mut out = Vec::new();
    let mut rest = svg;
    while let Some(at) = rest.find('<') {
        rest = &rest[at..];
        let end = rest.find('>').unwrap();
        let tag = &rest[..=end];
        if tag.starts_with("<text ") {
            let close = rest.find("</text>").unwrap();
            out.push(Ok(SvgText {
                x: attr(tag, "x").unwrap().parse().unwrap(),
                y: attr(tag, "y").unwrap().parse().unwrap(),
                fill: attr(tag, "fill").unwrap(),
                words: rest[end + 1..close].trim().to_owned(),
            }));
        } else if tag.starts_with("<polyline ") {
            let points = attr(tag, "points").unwrap();
            out.push(Err(SvgLine {
                stroke: attr(tag, "stroke").unwrap(),
                width: attr(tag, "stroke-width").unwrap().parse().unwrap(),
                points: points
                    .split_whitespace()
                    .map(|p| {
                        let (x, y) = p.split_once(',').unwrap();
                        (x.parse().unwrap(), y.parse().unwrap())
                    })
                    .collect(),
            }));
        }
        rest = &rest[end + 1..];
    }
    out
}

fn texts(svg: &str) -> Vec<SvgText> {
    elements(svg).into_iter().filter_map(Result::ok).collect()
}

fn rgb(hex: &str) -> (i32, i32, i32) {
    let c = |i: usize| i32::from_str_radix(&hex[i..i + 2], 16).unwrap();
    (c(1), c(3), c(5))
}

fn is_grey(hex: &str) -> bool {
    let (r, g, b) = rgb(hex);
    r == g && g == b
}

/// The legend of the first panel that has one: (words, colour of the line
/// drawn just before them), entries 15 px apart from the first.
fn first_legend(svg: &str) -> Vec<(String, String)> {
    let els = elements(svg);
    let mut entries: Vec<(String, String, f64)> = Vec::new();
    for pair in els.windows(2) {
        if let (Err(line), Ok(text)) = (&pair[0], &pair[1])
            && line.points.len() == 2
            && line.points[0].1 == line.points[1].1
            && line.points[1].0 - line.points[0].0 == 22.0
        {
            if let Some((_, _, y)) = entries.last()
                && text.y != y + 15.0
            {
                break;
            }
            entries.push((text.words.clone(), line.stroke.clone(), text.y));
        }
    }
    entries.into_iter().map(|(w, c, _)| (w, c)).collect()
}

/// A day with a promote and a rollback of 1.0.1 on 20 stable machines and
/// 5 beta testers, and a site outage.
fn story() -> PlanBuilder {
    one_update("charts", 3, "2026-01-05T00:00:00Z", hours(6), mins(10))
        .health_gate(0, 1.0)
        .sample_every(mins(2))
        .agent(|a| instant(a).heartbeat(secs(60)))
        .client(Client::new("c").site("s").site(Site::new("b").channel(Channel::Beta)))
        .fleet(Fleet::new(20, "c/s", OLD))
        .fleet(Fleet::new(5, "c/b", OLD))
        .event(hours(1), Event::promote(NEW))
        .event(hours(3), Event::rollback(NEW))
        .event(hours(4), Event::disconnect(1.0, hours(1)).site("c/s"))
}

fn story_report() -> Report {
    run_on(&checked(&story()), TransportKind::Direct)
}

/// The plot top of the first panel: its 0 % and 100 % ticks extended to
/// the axis's top, 105 %.
fn first_plot_top(t: &[SvgText]) -> f64 {
    let y = |w: &str| t.iter().find(|x| x.words == w).unwrap().y;
    let (y100, y0) = (y("100%"), y("0%"));
    y100 - (y0 - y100) * 0.05
}

#[test]
fn event_labels_sit_in_a_lane_above_the_plot() {
    let r = story_report();
    let svg = metrics::convergence_svg(&r).unwrap();
    let t = texts(&svg);
    let top = first_plot_top(&t);
    for label in ["promote 1.0.1", "rollback 1.0.1", "1.0.1"] {
        let found: Vec<&SvgText> = t.iter().filter(|x| x.words == label).collect();
        assert!(!found.is_empty(), "{label} labelled");
        // The first is the lane's (zoomed panels have lanes of their own, further down).
        assert!(
            found[0].y <= top,
            "{label} at y {} is not above the plot top {top}",
            found[0].y
        );
        assert!(
            found[0].y > top - 60.0,
            "{label} at y {} is in the lane right above it",
            found[0].y
        );
    }
    // Neutral tones: no event is drawn in a version's colour.
    let events: Vec<&SvgText> = t
        .iter()
        .filter(|x| {
            x.words.starts_with("promote") || x.words.starts_with("rollback") || x.words.starts_with("disconnect")
        })
        .collect();
    assert!(events.len() >= 3);
    assert!(events.iter().all(|x| is_grey(&x.fill)), "{events:?}");
}

#[test]
fn each_promote_and_rollback_has_a_zoomed_panel() {
    let r = story_report();
    assert_eq!(r.zooms.len(), 2);
    let svg = metrics::convergence_svg(&r).unwrap();
    let captions: Vec<String> = texts(&svg)
        .into_iter()
        .filter(|x| x.words.contains(" up close"))
        .map(|x| x.words)
        .collect();
    assert_eq!(captions.len(), 2, "{captions:?}");
    assert!(
        captions[0].starts_with("promote 1.0.1 up close: the stable channel, 90 % on it within"),
        "{captions:?}"
    );
    assert!(
        captions[1].starts_with("rollback 1.0.1 up close: the whole fleet, 90 % off it within"),
        "{captions:?}"
    );
    // The promote's window: from before it to twice its t90 (at least 5 minutes).
    let z = &r.zooms[0];
    let t90 = r.builds[1]
        .convergence
        .iter()
        .find(|c| c.reference == "promote")
        .unwrap()
        .figures
        .t90_s;
    assert_eq!(z.t90_s, t90, "the zoom's t90 is the promote's");
    let span = (2.0 * t90.unwrap()).max(300.0);
    let (first, last) = (z.curve.times_s[0], *z.curve.times_s.last().unwrap());
    assert!(first < z.at_s && (z.at_s - first - span / 10.0).abs() < 1.0, "{first}");
    assert!(
        (last - (z.at_s + span)).abs() <= z.curve.every_s,
        "{last} vs {}",
        z.at_s + span
    );
    // Finer than the run's samples: the rollout is not a sliver.
    assert!(z.curve.every_s * 20.0 < r.curve.every_s);
    let on_new = |k: usize| z.curve.stable[1][k];
    assert_eq!((on_new(0), on_new(z.curve.times_s.len() - 1)), (0.0, 1.0));
}

/// Twelve builds, one landing every 20 minutes, on 5 beta machines.
fn twelve_versions() -> Report {
    let mut plan = PlanBuilder::new("dozen", date("2026-01-05T00:00:00Z"), hours(5))
        .seed(4)
        .agent(|a| instant(a).heartbeat(secs(60)))
        .client(Client::new("c").site(Site::new("b").channel(Channel::Beta)))
        .fleet(Fleet::new(5, "c/b", OLD))
        .build(Build::new(OLD).channel(Channel::Stable).published(secs(0)));
    for k in 1..12 {
        plan = plan.build(Build::new(Version::new(1, 0, k)).published(mins(20 * k)));
    }
    run_on(&checked(&plan), TransportKind::Direct)
}

#[test]
fn twelve_versions_get_twelve_colours_apart_from_each_other_and_from_grey() {
    let r = twelve_versions();
    assert_eq!(r.curve.versions.len(), 12);
    let svg = metrics::convergence_svg(&r).unwrap();
    let legend = first_legend(&svg);
    assert_eq!(legend.len(), 12, "{legend:?}");
    let colours: Vec<(i32, i32, i32)> = legend.iter().map(|(_, c)| rgb(c)).collect();
    for (k, &(r, g, b)) in colours.iter().enumerate() {
        let spread = r.max(g).max(b) - r.min(g).min(b);
        assert!(spread >= 60, "{} is nearly grey: {:?}", legend[k].0, colours[k]);
        for (j, &(r2, g2, b2)) in colours.iter().enumerate().skip(k + 1) {
            let d = f64::from((r - r2).pow(2) + (g - g2).pow(2) + (b - b2).pow(2)).sqrt();
            assert!(d >= 40.0, "{} and {} too close: {d:.0}", legend[k].0, legend[j].0);
        }
    }
}

#[test]
fn promoted_and_rolled_back_builds_stand_out() {
    let r = story_report();
    let svg = metrics::convergence_svg(&r).unwrap();
    let legend = first_legend(&svg);
    let words: Vec<&str> = legend.iter().map(|(w, _)| w.as_str()).collect();
    assert_eq!(words, ["1.0.0", "1.0.1 rolled back"]);
    let widths: BTreeMap<String, u32> = elements(&svg)
        .into_iter()
        .filter_map(Result::err)
        .filter(|l| l.points.len() > 50)
        .map(|l| (l.stroke, l.width))
        .collect();
    let width = |k: usize| widths[&legend[k].1];
    assert!(width(1) > width(0), "{widths:?}");
}

#[test]
fn the_share_powered_on_is_plotted_and_shows_the_outage() {
    let r = story_report();
    let svg = metrics::convergence_svg(&r).unwrap();
    assert!(svg.contains("share of the fleet powered on"));
    // The series is the curve's: 20 of 25 machines go dark for an hour at 4h.
    let at = |h: f64| r.curve.online[(h * 3600.0 / r.curve.every_s) as usize];
    assert_eq!((at(3.5), at(4.5), at(5.5)), (1.0, 0.2, 1.0));
    let page = metrics::html(&r);
    let panels = hover_panels(&page);
    let online = panels
        .iter()
        .flat_map(|p| p["series"].as_array().unwrap())
        .find(|s| s["label"] == "powered on")
        .expect("an online series");
    assert_eq!(replay(online, r.curve.online.len()), r.curve.online);
}

/// Where each time axis's description is: centred under its plot.
fn time_axis_centres(svg: &str) -> Vec<f64> {
    texts(svg)
        .into_iter()
        .filter(|t| t.words == "hours since start")
        .map(|t| t.x)
        .collect()
}

#[test]
fn time_panels_line_up_and_an_unlimited_run_has_no_egress_axis() {
    let r = story_report();
    let svg = metrics::convergence_svg(&r).unwrap();
    let xs = time_axis_centres(&svg);
    assert_eq!(xs.len(), 5, "fleet, stable, beta, powered on, storm");
    assert!(xs.iter().all(|&x| x == xs[0]), "{xs:?}");
    assert!(!svg.contains("egress, Mbit/s"), "no limit: no egress axis");
    assert!(
        !texts(&svg).iter().any(|t| t.words == "egress"),
        "no limit: no egress line"
    );
    assert!(svg.contains("egress unlimited"));

    let limited = run_on(&checked(&story().egress(1e6)), TransportKind::Direct);
    let svg = metrics::convergence_svg(&limited).unwrap();
    assert_eq!(
        time_axis_centres(&svg),
        xs,
        "a right-hand egress axis does not narrow its panel"
    );
    assert!(svg.contains("egress, Mbit/s"));
}

#[test]
fn a_channel_nobody_is_on_says_so() {
    let r = twelve_versions();
    let svg = metrics::convergence_svg(&r).unwrap();
    assert!(svg.contains("stable channel: no machines on stable"));
    assert!(!svg.contains("share of the stable channel"));
    assert!(svg.contains("share of the beta channel"));
}

#[test]
fn the_same_run_draws_the_same_chart() {
    let plan = checked(&story());
    let a = run_on(&plan, TransportKind::Direct);
    let b = run_on(&plan, TransportKind::Direct);
    assert_eq!(
        metrics::convergence_svg(&a).unwrap(),
        metrics::convergence_svg(&b).unwrap()
    );
}

/// The hover data of a report page.
fn hover_panels(page: &str) -> Vec<serde_json::Value> {
    let open = "<script type=\"application/json\">";
    let start = page.find(open).expect("hover data") + open.len();
    let end = start + page[start..].find("</script>").unwrap();
    let data: serde_json::Value = serde_json::from_str(&page[start..end].replace("<\\/", "</")).unwrap();
    data["panels"].as_array().unwrap().clone()
}

/// A hover series' values at every sample, from its changes.
fn replay(series: &serde_json::Value, n: usize) -> Vec<f64> {
    let changes = series["changes"].as_array().unwrap();
    let mut out = Vec::with_capacity(n);
    let mut k = 0;
    let mut v = 0.0;
    for i in 0..n {
        while k < changes.len() && changes[k][0].as_u64().unwrap() as usize <= i {
            v = changes[k][1].as_f64().unwrap();
            k += 1;
        }
        out.push(v);
    }
    out
}

#[test]
fn the_report_page_carries_hover_values_for_every_panel() {
    let r = story_report();
    let page = metrics::html(&r);
    let panels = hover_panels(&page);
    assert_eq!(panels.len(), 5 + r.zooms.len());
    // The fleet panel's series are the curve's, version by version.
    let fleet = &panels[0]["series"];
    for (k, v) in r.curve.versions.iter().enumerate() {
        let s = fleet
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["label"].as_str().unwrap().starts_with(&v.to_string()))
            .unwrap();
        assert_eq!(replay(s, r.curve.times_s.len()), r.curve.fleet[k], "{v}");
    }
    // A zoomed panel's are its own finer samples.
    let z = &r.zooms[0];
    let zp = &panels[5];
    assert_eq!(zp["n"].as_u64().unwrap() as usize, z.curve.times_s.len());
    assert_eq!(replay(&zp["series"][1], z.curve.times_s.len()), z.curve.stable[1]);
    // Full-width plots share their columns; the script reads the data inline.
    assert!(
        panels[..5]
            .iter()
            .all(|p| p["x0"] == panels[0]["x0"] && p["x1"] == panels[0]["x1"])
    );
    assert!(page.contains("<script>(function () {") && page.contains("mousemove"));
    for outside in ["src=", "<link", "@import", "url(", "http://", "https://"] {
        let without_svg_ns = page.replace("http://www.w3.org/2000/svg", "");
        assert!(
            !without_svg_ns.contains(outside),
            "report.html refers outside itself: {outside}"
        );
    }
}

#[test]
fn a_run_of_several_scenarios_writes_an_index_linking_each_report() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("pass.toml"), scenario("tiny", mins(10)).to_toml()).unwrap();
    std::fs::write(d.join("fail.toml"), scenario("tiny-fail", secs(1)).to_toml()).unwrap();
    let out = rmmsim(d, &["run", "pass.toml", "fail.toml", "--out", "r", "--quiet"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let index = std::fs::read_to_string(d.join("r/index.html")).unwrap();
    assert!(
        index.contains("<h1>2 scenarios: <span class=\"fail\">1 FAILED</span></h1>"),
        "{index}"
    );
    let row = |name: &str| {
        let link = format!("<a href=\"{name}/report.html\">{name}</a>");
        index
            .lines()
            .find(|l| l.contains(&link))
            .unwrap_or_else(|| panic!("{name} linked: {index}"))
            .to_owned()
    };
    assert!(row("tiny").contains("<span class=\"ok\">passed</span>"));
    let failed = row("tiny-fail");
    assert!(failed.contains("<span class=\"fail\">FAILED</span>") && failed.contains("t90 1.0.1 (stable): observed"));
    for name in ["tiny", "tiny-fail"] {
        assert!(d.join("r").join(name).join("report.html").is_file());
    }
    // One scenario: its report alone, no index.
    let out = rmmsim(d, &["run", "pass.toml", "--out", "one", "--quiet"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!d.join("one/index.html").exists());
}
