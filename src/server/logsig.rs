//! U13: a log message normalised into its signature, so that the same event
//! logged by many machines, with different numbers, ids and paths in it,
//! counts as one. Pure: no I/O, no state.
//!
//! The rules, applied in this order (this project's choice; the source says
//! only "the message with numbers, ids and paths normalised away"):
//!
//! 1. **Quoted values** become `<str>` inside their quotes: a run between two
//!    `"`, `'` or `` ` `` where the opening quote does not follow a letter,
//!    digit or `>` and the closing one is not followed by a letter, digit or
//!    `<` (so `can't` and `agent's` are not quotes, and a placeholder next
//!    to a quote counts as the word it replaced). `open "C:\x y.txt" failed`
//!    → `open "<str>" failed`.
//! 2. The rest is cut into words at white space; runs of white space
//!    (newlines included) become one space, and the ends are trimmed.
//! 3. **URLs** (a word holding `://`) become `<url>`; **paths** become
//!    `<path>`: a word (or what follows `=` in it) that starts with `/`,
//!    `~/`, `./`, `../`, `\\` or a drive (`C:\`, `C:/`), or that holds a
//!    letter and `/` or `\` with either two separators or a `.` after the
//!    last one (`downloads/agent.exe`, `a/b/c`; not `read/write`, `TCP/IP`).
//!    Trailing punctuation (`,;:.!?)]}`) stays outside the placeholder.
//! 4. Inside other words: **uuids** (8-4-4-4-12 hex digits, any case)
//!    become `<uuid>` (`win-<uuid>` keeps its prefix); **hex** becomes
//!    `<hex>`: `0x` followed by hex digits, or a run of 6 or more hex digits
//!    holding both a decimal digit and a letter (digests, commit ids);
//!    **numbers** become `<num>`: a run of decimal digits with any `.digits`
//!    after it (`42`, `3.5`, `0.6.58`, `10.0.0.1`), unless it follows a
//!    letter, so identifiers keep their digits (`sha256`, `x86_64`, `E1001`,
//!    `pc42`; a lone `v` before a version is not such a letter: `v0.6.58` →
//!    `v<num>`). Units stay: `350ms` → `<num>ms`.
//! 5. The signature is cut to [`MAX_SIGNATURE_BYTES`].
//!
//! The placeholders hold no digit, quote or separator, so normalising a
//! signature under the cap again gives it back unchanged. Case is kept.

/// Longest signature kept, in bytes (cut at a character boundary): two
/// messages that differ only past this point share a signature.
pub const MAX_SIGNATURE_BYTES: usize = 1024;

/// The characters a quoted value may be quoted with.
const QUOTES: [char; 3] = ['"', '\'', '`'];

/// What values are replaced by.
const PLACEHOLDERS: [&str; 6] = ["<str>", "<url>", "<path>", "<uuid>", "<hex>", "<num>"];

/// Punctuation a path or URL may end with that is not part of it.
const TRAILING: &[char] = &[',', ';', ':', '.', '!', '?', ')', ']', '}'];

/// Normalises a log message into its signature (placeholders for numbers,
/// uuids, hex, paths, quoted values); see the module's documentation.
pub fn signature_of(message: &str) -> String {
    let unquoted = if message.contains(QUOTES) {
        std::borrow::Cow::Owned(replace_quoted(message))
    } else {
        std::borrow::Cow::Borrowed(message)
    };
    let mut out = String::with_capacity(unquoted.len().min(MAX_SIGNATURE_BYTES));
    for (i, word) in unquoted.split_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        push_word(&mut out, word);
        if out.len() > MAX_SIGNATURE_BYTES {
            break;
        }
    }
    truncate(&mut out, MAX_SIGNATURE_BYTES);
    out
}

/// Cuts `s` to at most `max` bytes, at a character boundary.
pub(crate) fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// Rule 1: every quoted value replaced by `<str>`, its quotes kept.
fn replace_quoted(message: &str) -> String {
    let chars: Vec<char> = message.chars().collect();
    let mut out = String::with_capacity(message.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let opens = QUOTES.contains(&c) && (i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '>'));
        let close = opens.then(|| closing_quote(&chars, i)).flatten();
        match close {
            Some(j) => {
                out.push(c);
                out.push_str("<str>");
                out.push(c);
                i = j + 1;
            }
            None => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Where the quote opened at `open` closes: the next same quote that is not
/// followed by a letter or digit.
fn closing_quote(chars: &[char], open: usize) -> Option<usize> {
    let q = chars[open];
    let ends = |j: usize| chars.get(j + 1).is_none_or(|n| !(n.is_alphanumeric() || *n == '<'));
    (open + 1..chars.len()).find(|&j| chars[j] == q && ends(j))
}

/// Rules 3 and 4 for one word.
fn push_word(out: &mut String, word: &str) {
    let body = word.trim_end_matches(TRAILING);
    let tail = &word[body.len()..];
    // A URL or a path may follow `key=`.
    let eq = match body.find("://") {
        Some(at) => body[..at].rfind('='),
        None => body.rfind('='),
    };
    let (key, value) = eq.map_or(("", body), |eq| body.split_at(eq + 1));
    let lead = value.len() - value.trim_start_matches(['(', '[', '{']).len();
    let rest = &value[lead..];
    let placeholder = if rest.contains("://") {
        "<url>"
    } else if is_path(rest) {
        "<path>"
    } else {
        push_inner(out, word);
        return;
    };
    push_inner(out, key);
    out.push_str(&value[..lead]);
    out.push_str(placeholder);
    out.push_str(tail);
}

/// Rule 3's test for a path.
fn is_path(s: &str) -> bool {
    let b = s.as_bytes();
    let rooted = s.starts_with('/') || s.starts_with("~/") || s.starts_with("./") || s.starts_with("../");
    let unc = s.starts_with("\\\\");
    let drive = b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && matches!(b[2], b'\\' | b'/');
    if rooted || unc || drive {
        // A separator alone ("a / b") is not a path.
        return s
            .trim_start_matches(['~', '.', '/', '\\'])
            .chars()
            .any(char::is_alphanumeric);
    }
    let seps = s.matches(['/', '\\']).count();
    let Some(last) = s.rfind(['/', '\\']) else {
        return false;
    };
    has_letter(s) && (seps >= 2 || s[last..].contains('.'))
}

/// Whether `s` holds a letter outside the placeholders (so a word and its
/// signature answer alike).
fn has_letter(s: &str) -> bool {
    let mut rest = std::borrow::Cow::Borrowed(s);
    for p in PLACEHOLDERS {
        if rest.contains(p) {
            rest = rest.replace(p, " ").into();
        }
    }
    rest.chars().any(char::is_alphabetic)
}

/// Rule 4: uuids, hex and numbers inside a word.
fn push_inner(out: &mut String, word: &str) {
    let b = word.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let boundary = i == 0 || !joins(b[i - 1]);
        if boundary && is_uuid_at(b, i) {
            out.push_str("<uuid>");
            i += 36;
            continue;
        }
        if boundary && b[i].is_ascii_alphanumeric() {
            let end = (i..b.len()).find(|&j| !b[j].is_ascii_alphanumeric()).unwrap_or(b.len());
            if is_hex_word(&word[i..end]) {
                out.push_str("<hex>");
                i = end;
                continue;
            }
        }
        if b[i].is_ascii_digit() && !after_letter(b, i) {
            out.push_str("<num>");
            i = number_end(b, i);
            continue;
        }
        let c = word[i..].chars().next().unwrap_or_default();
        out.push(c);
        i += c.len_utf8();
    }
}

/// Whether a uuid (8-4-4-4-12 hex digits) starts at `i` and the word does
/// not go on after it.
fn is_uuid_at(b: &[u8], i: usize) -> bool {
    let Some(s) = b.get(i..i + 36) else {
        return false;
    };
    let shape = s.iter().enumerate().all(|(k, c)| match k {
        8 | 13 | 18 | 23 => *c == b'-',
        _ => c.is_ascii_hexdigit(),
    });
    shape && b.get(i + 36).is_none_or(|c| !(c.is_ascii_alphanumeric() || *c == b'<'))
}

/// `0x` and hex digits, or 6+ hex digits with a decimal digit and a letter.
fn is_hex_word(w: &str) -> bool {
    if let Some(rest) = w.strip_prefix("0x").or_else(|| w.strip_prefix("0X")) {
        return !rest.is_empty() && rest.bytes().all(|c| c.is_ascii_hexdigit());
    }
    w.len() >= 6
        && w.bytes().all(|c| c.is_ascii_hexdigit())
        && w.bytes().any(|c| c.is_ascii_digit())
        && w.bytes().any(|c| c.is_ascii_alphabetic())
}

/// Whether the digit at `i` continues an identifier: it follows a letter
/// (or `_`), unless that letter is a lone `v` starting the word.
fn after_letter(b: &[u8], i: usize) -> bool {
    if i == 0 || !(b[i - 1].is_ascii_alphabetic() || b[i - 1] == b'_' || b[i - 1].is_ascii_digit()) {
        return false;
    }
    let lone_v = matches!(b[i - 1], b'v' | b'V') && (i == 1 || !joins(b[i - 2]));
    !lone_v
}

/// Whether a character before a word makes it part of a longer one: a
/// letter or digit, or the end of a placeholder (which replaced some).
fn joins(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'>'
}

/// The end of the number starting at `i`: digits, then any `.digits`.
fn number_end(b: &[u8], mut i: usize) -> usize {
    loop {
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
            i += 1;
        } else {
            return i;
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Each message with the signature it must have.
    #[test]
    fn each_kind_of_value_becomes_its_placeholder() {
        let cases = [
            (
                "update 17 failed after 3 retries",
                "update <num> failed after <num> retries",
            ),
            ("download took 350ms at 2.5 MB/s", "download took <num>ms at <num> MB/s"),
            ("update to 0.6.58 failed", "update to <num> failed"),
            ("update to v0.6.58 failed", "update to v<num> failed"),
            ("connect to 10.0.0.12:8080 refused", "connect to <num>:<num> refused"),
            (
                "device win-6f1c2a9e-0b7d-4c1e-9a51-3d2f8e4b7c10 unknown",
                "device win-<uuid> unknown",
            ),
            ("agent 6F1C2A9E-0B7D-4C1E-9A51-3D2F8E4B7C10 gone", "agent <uuid> gone"),
            ("exit code 0x80070005", "exit code <hex>"),
            ("digest 9f86d081884c7d65 mismatch", "digest <hex> mismatch"),
            (
                "cannot open /var/lib/rmm/agent.db: denied",
                "cannot open <path>: denied",
            ),
            (r"cannot open C:\ProgramData\rmm\agent.db", "cannot open <path>"),
            (r"share \\nas01\builds unreachable", "share <path> unreachable"),
            ("wrote downloads/gururmm-agent.exe.", "wrote <path>."),
            ("config path=/etc/rmm.toml bad", "config path=<path> bad"),
            ("GET https://rmm.example/api/x?id=4 failed", "GET <url> failed"),
            (r#"service "Print Spooler 2" stopped"#, r#"service "<str>" stopped"#),
            ("key 'abc def' missing", "key '<str>' missing"),
            ("  many   spaces\n and\tlines ", "many spaces and lines"),
        ];
        for (message, signature) in cases {
            assert_eq!(signature_of(message), signature, "{message}");
        }
    }

    /// What must stay as it is: identifiers with digits, words with slashes
    /// that are not paths, apostrophes, short hex-looking words.
    #[test]
    fn identifiers_and_plain_words_are_kept() {
        let kept = [
            "sha256 mismatch on x86_64",
            "error E1001 from win10 host pc42",
            "read/write error over TCP/IP",
            "can't open the agent's cache",
            "cafe closed, a / b",
            "no digits here",
        ];
        for message in kept {
            assert_eq!(signature_of(message), message);
        }
    }

    #[test]
    fn messages_that_differ_only_in_values_collapse() {
        let same = [
            ("disk C: 91% full (12034 MB free)", "disk C: 7% full (1 MB free)"),
            (
                "update 1842 to 0.6.58 failed: digest 3a7bd3e2360a3d29eea436fcfb7e44c735d117c4 mismatch",
                "update 9 to 0.6.60 failed: digest 0c1f0b5e8e55e0c3ba2b4c9e0c1a2b3c4d5e6f70 mismatch",
            ),
            (
                "heartbeat from 6f1c2a9e-0b7d-4c1e-9a51-3d2f8e4b7c10 late by 4s",
                "heartbeat from 00000000-0000-0000-0000-000000000001 late by 120s",
            ),
            (
                "cannot write /tmp/rmm/a.log: no space",
                "cannot write /var/tmp/other.log: no space",
            ),
            (r#"service "Spooler" failed"#, r#"service "Windows Update" failed"#),
        ];
        for (a, b) in same {
            assert_eq!(signature_of(a), signature_of(b), "{a} / {b}");
        }
    }

    #[test]
    fn messages_that_differ_in_words_stay_apart() {
        let apart = [
            ("disk C: 91% full", "disk C: 91% empty"),
            ("error E1001", "error E2002"),
            ("sha256 mismatch", "sha1 mismatch"),
            ("update 5 failed", "update 5 succeeded"),
            ("service \"x\" stopped", "service \"x\" started"),
            ("retry 1", "retry"),
        ];
        for (a, b) in apart {
            assert_ne!(signature_of(a), signature_of(b), "{a} / {b}");
        }
    }

    #[test]
    fn a_long_message_is_cut_at_a_character_boundary() {
        let message = "é".repeat(MAX_SIGNATURE_BYTES);
        let signature = signature_of(&message);
        assert!(signature.len() <= MAX_SIGNATURE_BYTES);
        assert!(signature.len() > MAX_SIGNATURE_BYTES - 2);
        assert!(signature.chars().all(|c| c == 'é'));
    }

    #[test]
    fn an_unclosed_quote_is_left_alone() {
        assert_eq!(signature_of("name \"abc 12"), "name \"abc <num>");
    }

    proptest! {
        /// A signature is its own signature, and it never grows past the cap.
        #[test]
        fn normalising_a_signature_again_changes_nothing(message in "\\PC{0,200}") {
            let once = signature_of(&message);
            prop_assert!(once.len() <= MAX_SIGNATURE_BYTES);
            prop_assert_eq!(signature_of(&once), once);
        }

        /// The same over the characters the rules look at, where the
        /// rules meet each other.
        #[test]
        fn normalising_dense_input_again_changes_nothing(message in "[a-fvx0-9A:/\\\\.'\"` <>=_(~-]{0,40}") {
            let once = signature_of(&message);
            prop_assert_eq!(signature_of(&once), once);
        }
    }
}
