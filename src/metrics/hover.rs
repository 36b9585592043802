//! Hover values on the report page's chart: where each panel's plot is and
//! the values of its series, as JSON beside the inline SVG, and a small
//! inline script that shows them under the pointer. Nothing is fetched: the
//! page stays one self-contained file.

use super::report::Report;
use super::svg::HoverPanel;

/// Reads the data beside it and shows, over any panel, the time under the
/// pointer and every series' value then, with a line across the panel.
const SCRIPT: &str = r#"(function () {
  var fig = document.currentScript.parentNode, svg = fig.querySelector('svg');
  var data = JSON.parse(fig.querySelector('script[type="application/json"]').textContent);
  var start = Date.parse(data.start), ns = 'http://www.w3.org/2000/svg';
  var tip = document.createElement('div');
  tip.style.cssText = 'position:fixed;display:none;pointer-events:none;background:#fff;border:1px solid #888;' +
    'border-radius:3px;padding:4px 7px;font:12px system-ui,sans-serif;line-height:1.35;box-shadow:0 1px 4px rgba(0,0,0,.25)';
  document.body.appendChild(tip);
  var cursor = document.createElementNS(ns, 'line');
  cursor.setAttribute('stroke', '#000');
  cursor.setAttribute('stroke-opacity', '0.35');
  cursor.setAttribute('display', 'none');
  svg.appendChild(cursor);
  function valueAt(changes, i) {
    var lo = 0, hi = changes.length - 1;
    if (hi < 0 || changes[0][0] > i) return 0;
    while (lo < hi) { var mid = (lo + hi + 1) >> 1; if (changes[mid][0] <= i) lo = mid; else hi = mid - 1; }
    return changes[lo][1];
  }
  function span(s) {
    s = Math.round(Math.abs(s));
    var parts = [], d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    if (d) parts.push(d + 'd');
    if (h) parts.push(h + 'h');
    if (m) parts.push(m + 'm');
    if (s % 60 || !parts.length) parts.push(s % 60 + 's');
    return parts.join(' ');
  }
  function show(v, unit) {
    if (unit === 'share') return (v * 100).toFixed(1) + ' %';
    if (unit === 'count') return String(Math.round(v));
    return v.toFixed(1) + ' ' + unit;
  }
  function line(text, colour) {
    var row = document.createElement('div');
    if (colour) { var dot = document.createElement('span'); dot.textContent = '\u25A0 '; dot.style.color = colour; row.appendChild(dot); }
    row.appendChild(document.createTextNode(text));
    tip.appendChild(row);
    return row;
  }
  function hide() { tip.style.display = 'none'; cursor.setAttribute('display', 'none'); }
  svg.addEventListener('mousemove', function (ev) {
    var m = svg.getScreenCTM();
    if (!m) return;
    var p = svg.createSVGPoint();
    p.x = ev.clientX; p.y = ev.clientY;
    p = p.matrixTransform(m.inverse());
    var q = null;
    data.panels.forEach(function (k) { if (p.x >= k.x0 && p.x <= k.x1 && p.y >= k.y0 && p.y <= k.y1) q = k; });
    if (!q) { hide(); return; }
    var t = q.t0 + (p.x - q.x0) / (q.x1 - q.x0) * (q.t1 - q.t0);
    var i = Math.max(0, Math.min(q.n - 1, Math.round((t - q.from) / q.every)));
    var at = q.from + i * q.every;
    tip.textContent = '';
    var when = span(at - q.origin) + (at < q.origin ? ' before ' : ' after ') + q.origin_name;
    line(when + ', ' + new Date(start + at * 1000).toISOString().slice(0, 19).replace('T', ' ') + ' UTC').style.fontWeight = '600';
    q.series.forEach(function (s) {
      var v = valueAt(s.changes, i);
      if (v || !s.omit_zero) line(s.label + ': ' + show(v, s.unit), s.colour);
    });
    var x = q.x0 + (at - q.t0) / (q.t1 - q.t0) * (q.x1 - q.x0);
    cursor.setAttribute('x1', x); cursor.setAttribute('x2', x);
    cursor.setAttribute('y1', q.y0); cursor.setAttribute('y2', q.y1);
    cursor.setAttribute('display', 'inline');
    tip.style.display = 'block';
    var left = ev.clientX + 14, top = ev.clientY + 14;
    if (left + tip.offsetWidth > window.innerWidth) left = ev.clientX - tip.offsetWidth - 14;
    if (top + tip.offsetHeight > window.innerHeight) top = ev.clientY - tip.offsetHeight - 14;
    tip.style.left = left + 'px'; tip.style.top = top + 'px';
  });
  svg.addEventListener('mouseleave', hide);
})();"#;

/// The data a page's hover script reads: the run's start and every panel.
#[derive(serde::Serialize)]
struct HoverData<'a> {
    start: String,
    panels: &'a [HoverPanel],
}

/// The JSON and the script that go right after the chart's SVG.
pub(super) fn hover_html(report: &Report, panels: &[HoverPanel]) -> String {
    let data = HoverData {
        start: report.scenario.start.to_string(),
        panels,
    };
    // Inside a script element "</" would end it; JSON may write it as "<\/".
    let json = serde_json::to_string(&data)
        .unwrap_or_else(|_| "{\"panels\":[]}".to_owned())
        .replace("</", "<\\/");
    format!("<script type=\"application/json\">{json}</script><script>{SCRIPT}</script>")
}
