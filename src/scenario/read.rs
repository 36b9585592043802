//! Reading a file into `spec::Spec` with every mistake found, not only the
//! first: serde stops at the first value it cannot take, so the file is read
//! again with that value taken out (or, for a key the file must have, a
//! stand-in put in its place) until it reads. The checks then run on what
//! was read, and a problem of theirs about a value that was taken out or
//! stood in for is not shown: the file's own error about it was.

use std::borrow::Cow;
use std::ops::Range;

use serde_path_to_error::Segment;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::check::{Problem, under, unindexed};
use super::key_path;
use super::spec::Spec;

/// Most times a file is read again: past this many mistakes (far more than
/// are listed), it is not read further and the checks do not run.
const MAX_ROUNDS: usize = 200;

/// Stand-ins for the keys a table must have, by key path without indices,
/// as TOML: a file missing one (or holding a bad value of it) is still
/// checked for everything else. Every required key of every table is here
/// (a test holds the list to `spec`); one missing from it loses its table
/// instead.
const STAND_INS: [(&str, &str); 12] = [
    ("scenario", "{}"),
    ("scenario.name", "\"scenario\""),
    ("scenario.start", "\"2000-01-01T00:00:00Z\""),
    // Long enough that nothing is after the end of it.
    ("scenario.duration", "\"100000d\""),
    ("clients[].name", "\"client\""),
    ("clients[].sites[].name", "\"site\""),
    ("builds[].version", "\"999999999.0.0\""),
    ("fleet[].count", "1"),
    ("fleet[].site", "\"\""),
    ("fleet[].version", "\"0.0.0\""),
    ("events[].at", "\"0s\""),
    ("expect[].metric", "\"\""),
];

/// A key whose problems depend on another's value: when the other could
/// not be read, theirs are not shown (the stand-in duration is no guide to
/// how fine the curves may be sampled).
const DEPENDS: [(&str, &str); 1] = [("scenario.duration", "scenario.sample_every")];

/// What reading a file found.
pub(super) struct Read {
    /// The spec, with bad values taken out and stand-ins for missing keys;
    /// `None` when the file could not be read that far (TOML syntax, or a
    /// table that cannot stand without the key it lacks).
    pub spec: Option<Spec>,
    /// What is wrong with the file as TOML and as a scenario's shape.
    pub problems: Vec<Problem>,
    /// Keys (`fleet[2].count`) taken out or stood in for.
    broken: Vec<String>,
}

impl Read {
    /// Whether a problem the checks found is about a value that could not
    /// be read: the value itself, one that depends on it, or a reference
    /// that may be to it (`no build 1.2.0` when a build's version was bad).
    pub(super) fn hides(&self, p: &Problem) -> bool {
        self.broken.iter().any(|b| {
            let plain = unindexed(b);
            under(&p.key, b)
                || DEPENDS.iter().any(|(on, dep)| b == on && p.key == *dep)
                || p.refers.iter().any(|r| under(&plain, r) || under(r, &plain))
        })
    }
}

/// A path segment that names a place in the TOML tree.
#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    Index(usize),
}

/// Reads `text` as far as it goes, collecting every mistake.
pub(super) fn read(text: &str) -> Read {
    let (mut root, syntax) = DeTable::parse_recoverable(text);
    let mut read = Read {
        spec: None,
        problems: Vec::new(),
        broken: Vec::new(),
    };
    if !syntax.is_empty() {
        read.problems = syntax.iter().map(|e| problem(e, String::new())).collect();
        return read;
    }
    let mut stood_in = Vec::new();
    for _ in 0..MAX_ROUNDS {
        let de = toml::de::Deserializer::from(root.clone());
        let e = match serde_path_to_error::deserialize::<_, Spec>(de) {
            Ok(spec) => {
                read.spec = Some(spec);
                return read;
            }
            Err(e) => e,
        };
        let (path, shown) = (place(e.path()), shown_key(e.path()));
        let error = e.into_inner();
        let missing = error
            .message()
            .strip_prefix("missing field `")
            .and_then(|m| m.strip_suffix('`'));
        let at = missing.map_or_else(|| key(&path), |field| key_path(&key(&path), field));
        // A key missing because a bad value of it was taken out was reported.
        if !read.broken.iter().any(|b| under(&at, b)) {
            read.problems.push(problem(&error, shown));
        }
        match mend(&mut root, &path, missing, &mut stood_in) {
            Some(key) if read.broken.contains(&key) => {}
            Some(key) => read.broken.push(key),
            None => return read,
        }
    }
    read
}

/// A problem of the TOML reader, worded plainly, at `key`.
fn problem(e: &toml::de::Error, key: String) -> Problem {
    Problem {
        offset: e.span().map_or(0, |s| s.start),
        key,
        message: plain(e.message()),
        refers: &[],
    }
}

/// The path of an error as places in the tree: up to the first segment
/// that is not a key or an index (an enum's variant), without the private
/// fields `Spanned` values and datetimes are read through.
fn place(path: &serde_path_to_error::Path) -> Vec<Seg> {
    let mut out = Vec::new();
    for segment in path {
        match segment {
            Segment::Map { key } if key.starts_with("$__") => {}
            Segment::Map { key } => out.push(Seg::Key(key.clone())),
            Segment::Seq { index } => out.push(Seg::Index(*index)),
            Segment::Enum { .. } | Segment::Unknown => break,
        }
    }
    out
}

/// The key an error names: its whole path (an enum's variant too), without
/// the private fields.
fn shown_key(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Map { key } if key.starts_with("$__") => {}
            Segment::Map { key } | Segment::Enum { variant: key } => out = key_path(&out, key),
            Segment::Seq { index } => out += &format!("[{index}]"),
            Segment::Unknown => out = key_path(&out, "?"),
        }
    }
    out
}

/// `fleet[2].count`, as the errors name keys.
fn key(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => out = key_path(&out, k),
            Seg::Index(i) => out += &format!("[{i}]"),
        }
    }
    out
}

/// Makes the next reading get past this error: a stand-in for a missing
/// key that has one (each key once: `stood_in`), else the deepest key along
/// `path` taken out. The key mended, or `None` when nothing can be (the
/// root lacks a key with no stand-in, or a stand-in was refused: reading
/// stops).
fn mend(
    root: &mut Spanned<DeTable<'_>>,
    path: &[Seg],
    missing: Option<&str>,
    stood_in: &mut Vec<String>,
) -> Option<String> {
    if let Some(field) = missing {
        let at = key_path(&key(path), field);
        if let Some((_, toml)) = STAND_INS.iter().find(|(k, _)| *k == unindexed(&at)) {
            if stood_in.contains(&at) {
                return None;
            }
            // At the table that lacks it: a check that blames the stand-in
            // points there.
            let span = span_at(root, path)?;
            let value = Spanned::new(span.clone(), DeValue::parse(toml).ok()?.into_inner());
            stood_in.push(at.clone());
            table_at(root, path)?.insert(Spanned::new(span, Cow::Owned(field.to_owned())), value);
            return Some(at);
        }
    }
    let depth = resolved(root, path);
    let last = path[..depth].iter().rposition(|s| matches!(s, Seg::Key(_)))?;
    let Seg::Key(name) = &path[last] else { return None };
    table_at(root, &path[..last])?.remove(name.as_str());
    Some(key(&path[..=last]))
}

/// How many segments of `path` lead somewhere in the tree.
fn resolved(root: &mut Spanned<DeTable<'_>>, path: &[Seg]) -> usize {
    (0..=path.len())
        .rev()
        .find(|&n| span_at(root, &path[..n]).is_some())
        .unwrap_or(0)
}

/// The table at `path` (the root for an empty path).
fn table_at<'a, 'i>(root: &'a mut Spanned<DeTable<'i>>, path: &[Seg]) -> Option<&'a mut DeTable<'i>> {
    let Some((first, rest)) = path.split_first() else {
        return Some(root.get_mut());
    };
    let mut here = step_table(root.get_mut(), first)?;
    for seg in rest {
        here = step(here, seg)?;
    }
    match here.get_mut() {
        DeValue::Table(t) => Some(t),
        _ => None,
    }
}

/// Where in the text the value at `path` is (the root for an empty path);
/// `None` when `path` leads nowhere.
fn span_at(root: &mut Spanned<DeTable<'_>>, path: &[Seg]) -> Option<Range<usize>> {
    let Some((first, rest)) = path.split_first() else {
        return Some(root.span());
    };
    let mut here = step_table(root.get_mut(), first)?;
    for seg in rest {
        here = step(here, seg)?;
    }
    Some(here.span())
}

fn step_table<'a, 'i>(table: &'a mut DeTable<'i>, seg: &Seg) -> Option<&'a mut Spanned<DeValue<'i>>> {
    match seg {
        Seg::Key(k) => table.get_mut(k.as_str()),
        Seg::Index(_) => None,
    }
}

fn step<'a, 'i>(value: &'a mut Spanned<DeValue<'i>>, seg: &Seg) -> Option<&'a mut Spanned<DeValue<'i>>> {
    match (value.get_mut(), seg) {
        (DeValue::Table(t), Seg::Key(k)) => t.get_mut(k.as_str()),
        (DeValue::Array(a), Seg::Index(i)) => a.get_mut(*i),
        _ => None,
    }
}

/// serde's `invalid type: string "100", expected u32` as `expected a whole
/// number, found a string`; other messages as they are.
pub(super) fn plain(message: &str) -> String {
    let (rest, value) = match (
        message.strip_prefix("invalid type: "),
        message.strip_prefix("invalid value: "),
    ) {
        (Some(rest), _) => (rest, false),
        (_, Some(rest)) => (rest, true),
        _ => return message.to_owned(),
    };
    // What was found may quote the file, so split at the last `, expected`.
    match rest.rsplit_once(", expected ") {
        Some((found, expected)) => format!(
            "expected {}, found {}",
            expected_words(expected, value),
            found_words(found)
        ),
        None => message.to_owned(),
    }
}

/// serde's name for what it wanted, in the file's terms; for a value out of
/// range, the range.
fn expected_words(expected: &str, out_of_range: bool) -> String {
    let max = match expected {
        "u8" => Some(u64::from(u8::MAX)),
        "u16" => Some(u64::from(u16::MAX)),
        "u32" => Some(u64::from(u32::MAX)),
        "u64" | "usize" => Some(u64::MAX),
        _ => None,
    };
    match (expected, max) {
        (_, Some(max)) if out_of_range => format!("a whole number from 0 to {max}"),
        (_, Some(_)) | ("i8" | "i16" | "i32" | "i64" | "isize", _) => "a whole number".into(),
        ("f32" | "f64", _) => "a number".into(),
        ("a string" | "a borrowed string" | "a string or bytes", _) => "a string".into(),
        ("a boolean", _) => "true or false".into(),
        ("a sequence", _) => "an array".into(),
        ("a map", _) => "a table".into(),
        (other, _) if other.starts_with("struct ") => "a table".into(),
        (other, _) => other.to_owned(),
    }
}

/// serde's description of what it found (`string "100"`, ``integer `5` ``),
/// in the file's terms.
fn found_words(found: &str) -> String {
    let quoted = |prefix: &str| {
        found
            .strip_prefix(prefix)
            .and_then(|v| v.strip_prefix('`'))
            .and_then(|v| v.strip_suffix('`'))
            .map(str::to_owned)
    };
    if found.starts_with("string ") {
        return "a string".into();
    }
    match found {
        "map" => "a table".into(),
        "sequence" => "an array".into(),
        _ => quoted("integer ")
            .or_else(|| quoted("floating point "))
            .or_else(|| quoted("boolean "))
            .unwrap_or_else(|| found.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serdes_words_become_the_files() {
        let cases = [
            (
                "invalid type: string \"100\", expected u32",
                "expected a whole number, found a string",
            ),
            (
                "invalid type: floating point `1.5`, expected u64",
                "expected a whole number, found 1.5",
            ),
            (
                "invalid value: integer `-1`, expected u32",
                "expected a whole number from 0 to 4294967295, found -1",
            ),
            (
                "invalid type: boolean `true`, expected f64",
                "expected a number, found true",
            ),
            (
                "invalid type: integer `5`, expected a string",
                "expected a string, found 5",
            ),
            (
                "invalid type: string \"x\", expected a boolean",
                "expected true or false, found a string",
            ),
            (
                "invalid type: map, expected a sequence",
                "expected an array, found a table",
            ),
            (
                "invalid type: sequence, expected struct GateSpec",
                "expected a table, found an array",
            ),
            // The file's text may hold `, expected`: split at the last.
            (
                "invalid type: string \"a, expected b\", expected u64",
                "expected a whole number, found a string",
            ),
            ("unknown field `x`, expected `a`", "unknown field `x`, expected `a`"),
        ];
        for (serde, plain_) in cases {
            assert_eq!(plain(serde), plain_, "{serde}");
        }
    }

    #[test]
    fn keys_without_indices_and_inside_others() {
        assert_eq!(unindexed("clients[3].sites[12].name"), "clients[].sites[].name");
        assert!(under("fleet[2].count", "fleet[2]") && under("fleet[2].count", "fleet"));
        assert!(under("fleet", "fleet") && !under("fleets", "fleet") && !under("fleet", "fleet[2]"));
    }

    /// A file with every table present and empty: each required key is
    /// named once as missing, and a stand-in keeps its table, so the
    /// checks see one of each. A required key added to `spec` without a
    /// stand-in fails this (its table would be dropped instead).
    #[test]
    fn every_required_key_has_a_stand_in() {
        let text = "[scenario]\n[[clients]]\nsites = [{}]\n[[builds]]\n[[fleet]]\n[[events]]\n[[expect]]\n";
        let read = read(text);
        let spec = read.spec.as_ref().expect("read with stand-ins");
        let kept = (
            spec.clients.len(),
            spec.clients[0].sites.len(),
            spec.builds.len(),
            spec.fleet.len(),
            spec.events.len(),
            spec.expect.len(),
        );
        assert_eq!(kept, (1, 1, 1, 1, 1, 1));
        let mut named: Vec<String> = read
            .problems
            .iter()
            .map(|p| {
                let field = p
                    .message
                    .strip_prefix("missing field `")
                    .and_then(|m| m.strip_suffix('`'));
                unindexed(&key_path(&p.key, field.unwrap_or_else(|| panic!("{}", p.message))))
            })
            .collect();
        named.sort();
        let mut wanted: Vec<String> = STAND_INS.iter().skip(1).map(|(k, _)| (*k).to_owned()).collect();
        wanted.sort();
        assert_eq!(named, wanted);
        // With no [scenario] at all, that is the one thing said.
        let read = super::read("");
        assert!(read.spec.is_some());
        let said: Vec<&str> = read.problems.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(said, ["missing field `scenario`"]);
    }

    #[test]
    fn a_bad_value_is_taken_out_and_its_key_stood_in_for_silently() {
        let text = "[scenario]\nname = 5\nstart = \"2026-01-05T00:00:00Z\"\nduration = \"1h\"\n";
        let read = read(text);
        assert!(read.spec.is_some());
        let said: Vec<(&str, &str)> = read
            .problems
            .iter()
            .map(|p| (p.key.as_str(), p.message.as_str()))
            .collect();
        assert_eq!(said, [("scenario.name", "expected a string, found 5")]);
        assert_eq!(read.broken, ["scenario.name"]);
    }
}
