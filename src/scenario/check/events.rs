//! `[[events]]`: exactly one action each, every reference resolved.

use toml::Spanned;

use super::fleet::find_site;
use super::{Check, End, Problems, at};
use crate::protocol::{Platform, Version, VersionError};
use crate::scenario::plan::{Action, BuildPlan, ClientPlan, EventPlan, GroupPlan, Target};
use crate::scenario::spec::{Dur, EventSpec, Spec};

/// The keys a version reference is resolved against.
const BUILD_KEYS: &[&str] = &["builds[].version"];

pub(super) fn build_ref(builds: &[BuildPlan], v: &Spanned<Version>, key: String) -> Check<Version> {
    let version = *v.get_ref();
    if builds.iter().any(|b| b.version == version) {
        Ok(version)
    } else {
        let known: Vec<String> = builds.iter().map(|b| b.version.to_string()).collect();
        let why = format!("no build {version} in [[builds]] (defined: {})", known.join(", "));
        Err(at(v, key, why).refers(BUILD_KEYS))
    }
}

/// Every event (with the publishes of builds that have `published`), in
/// time order.
pub(super) fn check_events(
    spec: &Spec,
    end: End,
    clients: &[ClientPlan],
    builds: &[BuildPlan],
    groups: &[GroupPlan],
    p: &mut Problems,
) -> Vec<EventPlan> {
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
        let when = &e.get_ref().at;
        if let Some(late) = end.after(when, format!("events[{i}].at"), "at") {
            p.add(late);
        }
        let Some(action) = check_event(e, i, clients, builds, groups, p) else {
            continue;
        };
        if let Action::Publish(v) = action {
            if events.iter().any(|x| x.action == Action::Publish(v)) {
                let publish = e.get_ref().publish.as_ref().unwrap_or_else(|| unreachable!());
                let why = format!("{v} is already published (by its `published` key or an earlier event)");
                p.add(at(publish, format!("events[{i}].publish"), why));
            }
        }
        events.push(EventPlan {
            at: when.get_ref().0,
            action,
        });
    }
    // Stable: events at the same time keep their file order.
    events.sort_by_key(|e| e.at);
    events
}

/// Event `i`'s action; `None` with its problems recorded.
fn check_event(
    e: &Spanned<EventSpec>,
    i: usize,
    clients: &[ClientPlan],
    builds: &[BuildPlan],
    groups: &[GroupPlan],
    p: &mut Problems,
) -> Option<Action> {
    p.ok(check_shape(e, i))?;
    let target = p.ok(check_target(e.get_ref(), i, clients, groups));
    p.ok(action(e, i, target, builds))
}

/// What event `i` does; `target` is `None` when it names one that does not
/// exist (that problem is recorded already).
fn action(e: &Spanned<EventSpec>, i: usize, target: Option<Target>, builds: &[BuildPlan]) -> Check<Action> {
    let spec = e.get_ref();
    let key = |k: &str| format!("events[{i}].{k}");
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
        return update(u, key("update"), target.unwrap_or(Target::All), builds);
    }
    if let Some(c) = &spec.set_channel {
        return set_channel(c, key("set_channel"), target);
    }
    if let Some(f) = &spec.disconnect {
        return disconnect(f, spec.for_.as_ref(), i, target.unwrap_or(Target::All));
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

/// `set_channel = "beta" | "stable" | "inherit"` on a group, site or client
/// (`None`: one that does not exist).
fn set_channel(c: &Spanned<String>, key: String, target: Option<Target>) -> Check<Action> {
    if target == Some(Target::All) {
        return Err(at(c, key, "needs a group, site or client"));
    }
    let target = target.unwrap_or(Target::All);
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
                let why = format!("no fleet entry named `{}` (defined: {})", g.get_ref(), known.join(", "));
                at(g, key("group"), why).refers(&["fleet[].name"])
            }),
        (None, Some(s), None) => find_site(clients, s, key("site")).map(|(c, s)| Target::Site(c, s)),
        (None, None, Some(c)) => clients
            .iter()
            .position(|x| &x.name == c.get_ref())
            .map(Target::Client)
            .ok_or_else(|| {
                at(c, key("client"), format!("no client named `{}`", c.get_ref())).refers(&["clients[].name"])
            }),
        _ => Err(at(
            &spec.at,
            format!("events[{i}]"),
            "give at most one of group, site, client",
        )),
    }
}
