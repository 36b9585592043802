//! The progress bar `run` and `compare` draw on stderr while a scenario
//! simulates: simulated days done, and how long it has taken. The simulator
//! reports its progress through [`SimOptions::progress`]; drawing it is the
//! terminal's business, so it lives here.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::metrics::Report;
use crate::scenario::Plan;
use crate::sim::{self, Progress, SimOptions, TransportKind};

/// Runs a plan and builds its report, with a bar on stderr while it runs
/// when `show` and stderr is a terminal.
pub(super) fn execute(plan: &Plan, transport: TransportKind, show: bool) -> anyhow::Result<Report> {
    let bar = (show && std::io::stderr().is_terminal()).then(|| bar(plan));
    let options = SimOptions {
        transport,
        progress: bar
            .clone()
            .map(|bar| Arc::new(move |p: Progress| draw(&bar, p)) as sim::ProgressSink),
    };
    let report = sim::execute(plan, &options);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    report
}

/// A bar counting the plan's seconds, named after it.
fn bar(plan: &Plan) -> ProgressBar {
    let total = plan.duration.as_secs().max(1);
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{prefix} [{bar:30}] {msg} ({elapsed} wall)")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(plan.name.clone());
    bar
}

fn draw(bar: &ProgressBar, p: Progress) {
    let days = |d: Duration| d.as_secs_f64() / 86_400.0;
    bar.set_position(p.done.as_secs());
    bar.set_message(format!("day {:.1} of {:.1}", days(p.done), days(p.total)));
}
