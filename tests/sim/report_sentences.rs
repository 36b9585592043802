//! What the report says about its counters and its stranded machines, in
//! both forms: what "sent", "re-sent" and "succeeded" count (a downgrade
//! after a rollback is a success), and machines stranded because a promote
//! was refused are said to be so.

use rmmsim::metrics::{Report, html, markdown};

use crate::common::*;

/// 30 stable and 5 beta machines, instant agents; 1.0.1 lands at 10m.
fn fleet(name: &str) -> PlanBuilder {
    one_update(name, 5, "2026-03-02T00:00:00Z", hours(3), mins(10))
        .agent(|a| instant(a).heartbeat(secs(60)))
        .client(Client::new("c").site("s").site(Site::new("lab").channel(Channel::Beta)))
        .fleet(Fleet::new(30, "c/s", OLD))
        .fleet(Fleet::new(5, "c/lab", OLD))
}

/// Both forms of the report, each as one line of text.
fn forms(r: &Report) -> [String; 2] {
    [markdown(r), html(r)]
}

#[test]
fn a_downgrade_after_a_rollback_counts_as_a_success_and_the_report_says_so() {
    let r = run(&checked(
        &fleet("downgrade-success")
            .health_gate(0, 1.0)
            .event(hours(1), Event::promote(NEW))
            .event(hours(2), Event::rollback(NEW)),
    ));
    assert_eq!(
        r.final_versions.iter().collect::<Vec<_>>(),
        [(&OLD, &35)],
        "everyone was moved back"
    );
    // Every machine updated twice, up to 1.0.1 and back down: both count.
    assert_eq!((r.server.successes, r.server.failures), (70, 0), "{:?}", r.server);
    for text in forms(&r) {
        assert!(
            text.contains("Server: ") && text.contains("70 succeeded"),
            "the counters are shown"
        );
        for meaning in [
            "sent: updates the server decided to send a machine, each counted once",
            "re-sent: each later send of a pending update",
            "a downgrade after a rollback is an update too, and counts as a success",
            "this run rolled back 1.0.1: the machines moved back off it are among these successes",
        ] {
            assert!(text.contains(meaning), "`{meaning}` not in:\n{text}");
        }
    }
}

#[test]
fn machines_stranded_by_a_refused_promote_are_said_to_be() {
    // The gate wants 50 beta successes; 5 beta machines cannot give them.
    let r = run(&checked(
        &fleet("refused-promote")
            .health_gate(50, 0.2)
            .event(hours(1), Event::promote(NEW)),
    ));
    assert!(r.timeline.iter().any(|e| e.outcome.starts_with("refused: health gate")));
    assert_eq!(r.stranded.len(), 30, "every stable machine is stranded");
    for text in forms(&r) {
        assert!(
            text.contains(
                "30 machines on stable are stranded because the promote of 1.0.1 was refused at 1h \
                 (health gate refused 1.0.1: 5 successes (at least 50 needed)"
            ),
            "no sentence on the refusal:\n{text}"
        );
        let rows = text
            .matches("beta has 1.0.1; stranded because the promote of 1.0.1 was refused at 1h")
            .count();
        assert_eq!(rows, 25, "each row of the table (25 shown) says why");
    }
    // A promote that goes through strands nobody, and no sentence says otherwise.
    let r = run(&checked(
        &fleet("forced-promote")
            .health_gate(50, 0.2)
            .event(hours(1), Event::promote(NEW).force()),
    ));
    assert!(r.stranded.is_empty() && !markdown(&r).contains("was refused"));
}
