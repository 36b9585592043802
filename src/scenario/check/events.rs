//! `[[events]]`: exactly one action each, every reference resolved.

use std::time::Duration;

use toml::Spanned;

use super::{Check, Problem, at, find_site};
use crate::protocol::{Platform, Version, VersionError};
use crate::scenario::plan::{Action, BuildPlan, ClientPlan, EventPlan, GroupPlan, Target};
use crate::scenario::spec::{Dur, EventSpec, Spec};

pub(super) fn build_ref(builds: &[BuildPlan], v: &Spanned<Version>, key: String) -> Check<Version> {
    let version = *v.get_ref();
    if builds.iter().any(|b| b.version == version) {
        Ok(version)
    } else {
        let known: Vec<String> = builds.iter().map(|b| b.version.to_string()).collect();
        Err(at(
            v,
            key,
            format!("no build {version} in [[builds]] (defined: {})", known.join(", ")),
        ))
    }
}

pub(super) fn check_events(
    spec: &Spec,
    duration: Duration,
    clients: &[ClientPlan],
    builds: &[BuildPlan],
    groups: &[GroupPlan],
) -> Check<Vec<EventPlan>> {
    let mut events: Vec<EventPlan> = builds
        .iter()
        .filter_map(|b| {
            b.published.map(|at| EventPlan {
                at,
                action: Action::Publish(b.version),
            })
        })
        .collect();
    for (i, e) in spec.events.iter().enumerate() {
        let action = check_event(e, i, clients, builds, groups)?;
        let when = e.get_ref().at.get_ref().0;
        if when > duration {
            return Err(at(
                &e.get_ref().at,
                format!("events[{i}].at"),
                "is after the end of the scenario",
            ));
        }
        if let Action::Publish(v) = action {
            if events.iter().any(|x| x.action == Action::Publish(v)) {
                let p = e.get_ref().publish.as_ref().unwrap_or_else(|| unreachable!());
                return Err(at(
                    p,
                    format!("events[{i}].publish"),
                    format!("{v} is already published (by its `published` key or an earlier event)"),
                ));
            }
        }
        events.push(EventPlan { at: when, action });
    }
    // Stable: events at the same time keep their file order.
    events.sort_by_key(|e| e.at);
    Ok(events)
}

fn check_event(
    e: &Spanned<EventSpec>,
    i: usize,
    clients: &[ClientPlan],
    builds: &[BuildPlan],
    groups: &[GroupPlan],
) -> Check<Action> {
    check_shape(e, i)?;
    let spec = e.get_ref();
    let key = |k: &str| format!("events[{i}].{k}");
    let target = check_target(spec, i, clients, groups)?;
    if let Some(v) = &spec.publish {
        let version = build_ref(builds, v, key("publish"))?;
        if builds.iter().any(|b| b.version == version && b.published.is_some()) {
            let why = format!("{version} has a `published` time already; remove one of the two");
            return Err(at(v, key("publish"), why));
        }
        return Ok(Action::Publish(version));
    }
    if let Some(v) = &spec.promote {
        let version = build_ref(builds, v, key("promote"))?;
        let scope = match (&spec.os, &spec.arch) {
            (None, None) => None,
            (Some(os), Some(arch)) => Some(Platform::new(os, arch).map_err(|err| at(e, key("os"), err.to_string()))?),
            _ => return Err(at(e, format!("events[{i}]"), "give both os and arch, or neither")),
        };
        return Ok(Action::Promote {
            version,
            scope,
            force: spec.force,
        });
    }
    if let Some(v) = &spec.rollback {
        return Ok(Action::Rollback(build_ref(builds, v, key("rollback"))?));
    }
    if let Some(u) = &spec.update {
        return update(u, key("update"), target, builds);
    }
    if let Some(c) = &spec.set_channel {
        return set_channel(c, key("set_channel"), target);
    }
    if let Some(f) = &spec.disconnect {
        return disconnect(f, spec.for_.as_ref(), i, target);
    }
    let down = spec
        .server_restart
        .as_ref()
        .unwrap_or_else(|| unreachable!("check_shape saw one action"));
    if down.get_ref().0.is_zero() {
        return Err(at(down, key("server_restart"), "downtime must be above 0s"));
    }
    Ok(Action::ServerRestart { down: down.get_ref().0 })
}

/// Exactly one action, and only the keys that action takes.
fn check_shape(e: &Spanned<EventSpec>, i: usize) -> Check<()> {
    let spec = e.get_ref();
    let here = || format!("events[{i}]");
    let actions = [
        spec.publish.is_some(),
        spec.promote.is_some(),
        spec.rollback.is_some(),
        spec.update.is_some(),
        spec.set_channel.is_some(),
        spec.disconnect.is_some(),
        spec.server_restart.is_some(),
    ];
    if actions.iter().filter(|&&a| a).count() != 1 {
        let all = "publish, promote, rollback, update, set_channel, disconnect, server_restart";
        return Err(at(e, here(), format!("needs exactly one of {all}")));
    }
    let has_target = spec.group.is_some() || spec.site.is_some() || spec.client.is_some();
    let targeted = spec.update.is_some() || spec.set_channel.is_some() || spec.disconnect.is_some();
    if has_target && !targeted {
        return Err(at(
            e,
            here(),
            "group/site/client only go with update, set_channel or disconnect",
        ));
    }
    if (spec.os.is_some() || spec.arch.is_some() || spec.force) && spec.promote.is_none() {
        return Err(at(e, here(), "os/arch/force only go with promote"));
    }
    if spec.for_.is_some() && spec.disconnect.is_none() {
        return Err(at(e, format!("events[{i}].for"), "`for` only goes with disconnect"));
    }
    Ok(())
}

/// `update = "latest"` or a version of `[[builds]]`.
fn update(u: &Spanned<String>, key: String, target: Target, builds: &[BuildPlan]) -> Check<Action> {
    let version = match u.get_ref().as_str() {
        "latest" => None,
        text => {
            let v: Version = text
                .parse()
                .map_err(|err: VersionError| at(u, key.clone(), err.to_string()))?;
            Some(build_ref(builds, &Spanned::new(u.span(), v), key)?)
        }
    };
    Ok(Action::Update { target, version })
}

/// `set_channel = "beta" | "stable" | "inherit"` on a group, site or client.
fn set_channel(c: &Spanned<String>, key: String, target: Target) -> Check<Action> {
    if target == Target::All {
        return Err(at(c, key, "needs a group, site or client"));
    }
    let channel = match c.get_ref().as_str() {
        "inherit" => None,
        other => Some(
            other
                .parse()
                .map_err(|_| at(c, key, "expected beta, stable or inherit"))?,
        ),
    };
    Ok(Action::SetChannel { target, channel })
}

/// `disconnect = <fraction>` with `for = <duration>`.
fn disconnect(f: &Spanned<f64>, for_: Option<&Spanned<Dur>>, i: usize, target: Target) -> Check<Action> {
    let fraction = *f.get_ref();
    if !(fraction > 0.0 && fraction <= 1.0) {
        return Err(at(
            f,
            format!("events[{i}].disconnect"),
            "a fraction above 0, at most 1",
        ));
    }
    let Some(duration) = for_.map(|d| d.get_ref().0).filter(|d| !d.is_zero()) else {
        return Err(at(
            f,
            format!("events[{i}].for"),
            "disconnect needs `for`, a duration above 0s",
        ));
    };
    Ok(Action::Disconnect {
        target,
        fraction,
        duration,
    })
}

fn check_target(spec: &EventSpec, i: usize, clients: &[ClientPlan], groups: &[GroupPlan]) -> Check<Target> {
    let key = |k: &str| format!("events[{i}].{k}");
    match (&spec.group, &spec.site, &spec.client) {
        (None, None, None) => Ok(Target::All),
        (Some(g), None, None) => groups
            .iter()
            .position(|x| &x.name == g.get_ref())
            .map(Target::Group)
            .ok_or_else(|| {
                let known: Vec<&str> = groups.iter().map(|x| x.name.as_str()).collect();
                at(
                    g,
                    key("group"),
                    format!("no fleet entry named `{}` (defined: {})", g.get_ref(), known.join(", ")),
                )
            }),
        (None, Some(s), None) => find_site(clients, s, key("site")).map(|(c, s)| Target::Site(c, s)),
        (None, None, Some(c)) => clients
            .iter()
            .position(|x| &x.name == c.get_ref())
            .map(Target::Client)
            .ok_or_else(|| at(c, key("client"), format!("no client named `{}`", c.get_ref()))),
        _ => Err(Problem {
            offset: spec.at.span().start,
            key: format!("events[{i}]"),
            message: "give at most one of group, site, client".into(),
        }),
    }
}
