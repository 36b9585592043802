//! Every error code the server answers with, on either face: the `code` of a
//! WebSocket `error` frame and of the admin API's `{error: {code, message}}`.
//! One enum, so a code means one thing wherever it appears (`bad_json`,
//! `internal`), and each code says where it is used and, over HTTP, with
//! which status. A test holds this to the tables of docs/api.md.

use serde::{Deserialize, Serialize};

/// Declares the enum and [`ErrorCode::ALL`] from one list, so the list of
/// every code cannot miss one.
macro_rules! error_codes {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$doc:meta])* $variant:ident,)* }) => {
        $(#[$meta])*
        pub enum $name {
            $($(#[$doc])* $variant,)*
        }

        impl $name {
            /// Every code, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];
        }
    };
}

error_codes! {
    /// Why the server refused a WebSocket frame or an HTTP request.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum ErrorCode {
        /// The frame, or the request body, is not JSON.
        BadJson,
        /// A frame without a known `type`.
        UnknownType,
        /// A frame of a known `type` with missing or invalid fields (a bad
        /// version, an empty hostname).
        InvalidMessage,
        /// Something other than `hello` came first.
        HelloRequired,
        /// A second `hello` on one connection.
        AlreadyHello,
        /// The `site_key` admits nobody; the server closes the connection.
        UnknownSiteKey,
        /// Binary frames carry nothing in this protocol.
        BinaryFrame,
        /// The frame was over [`MAX_FRAME_BYTES`](super::MAX_FRAME_BYTES); the
        /// server closes the connection.
        FrameTooLarge,
        /// `update_result` names an update this agent was never sent.
        UnknownUpdate,
        /// The server could not do what was asked; the cause is in its log.
        Internal,
        /// A `hello` for a device id whose row belongs to another client than
        /// the site key's; the row is left alone and the server closes the
        /// connection.
        IdentityConflict,
        /// A `hello` that would enrol a new row past its site key's
        /// enrolments per minute; the server closes the connection.
        EnrolmentRateLimited,
        /// The request body could not be read (over 2 MiB, say).
        BadBody,
        /// JSON of the wrong shape: a missing, unknown or invalid field.
        InvalidBody,
        /// A path segment that does not parse (an id, a version).
        InvalidPath,
        /// A query parameter that is unknown or does not parse (a version,
        /// a time).
        InvalidQuery,
        /// A client or site name that is empty, too long or holds a `/`.
        InvalidName,
        /// No admin token, or the wrong one.
        Unauthorized,
        /// No such row, build or route.
        NotFound,
        /// The route exists, not for this method.
        MethodNotAllowed,
        /// The promote health gate refused (U9).
        HealthGate,
        /// The version is already stable.
        AlreadyPromoted,
        /// The version is already blocked.
        AlreadyRolledBack,
        /// The version is blocked (U10).
        VersionBlocked,
        /// A manual update to the version the agent runs.
        AlreadyOnVersion,
        /// No build of the agent's channel for its platform.
        NoBuild,
        /// A client of that name exists.
        ClientExists,
        /// The client has a site of that name.
        SiteExists,
        /// `/ws` while the server holds `max_connections` agent sessions.
        ServerBusy,
        /// A download whose file is no longer the one the last scan saw
        /// (rewritten, replaced, a symlink): refused until the next scan.
        BuildChanged,
    }
}

impl ErrorCode {
    /// Whether WebSocket `error` frames carry this code.
    pub fn on_websocket(self) -> bool {
        use ErrorCode::*;
        match self {
            BadJson | UnknownType | InvalidMessage | HelloRequired | AlreadyHello | UnknownSiteKey | BinaryFrame
            | FrameTooLarge | UnknownUpdate | Internal | IdentityConflict | EnrolmentRateLimited => true,
            BadBody | InvalidBody | InvalidPath | InvalidQuery | InvalidName | Unauthorized | NotFound
            | MethodNotAllowed | HealthGate | AlreadyPromoted | AlreadyRolledBack | VersionBlocked
            | AlreadyOnVersion | NoBuild | ClientExists | SiteExists | ServerBusy | BuildChanged => false,
        }
    }

    /// The HTTP status the API answers this code with; `None` for codes only
    /// WebSocket frames carry.
    pub fn http_status(self) -> Option<u16> {
        use ErrorCode::*;
        match self {
            BadJson | BadBody | InvalidBody | InvalidPath | InvalidQuery | InvalidName => Some(400),
            Unauthorized => Some(401),
            NotFound => Some(404),
            MethodNotAllowed => Some(405),
            HealthGate | AlreadyPromoted | AlreadyRolledBack | VersionBlocked | AlreadyOnVersion | NoBuild
            | ClientExists | SiteExists | BuildChanged => Some(409),
            Internal => Some(500),
            ServerBusy => Some(503),
            UnknownType | InvalidMessage | HelloRequired | AlreadyHello | UnknownSiteKey | BinaryFrame
            | FrameTooLarge | UnknownUpdate | IdentityConflict | EnrolmentRateLimited => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    const API_MD: &str = include_str!("../../docs/api.md");

    /// The rows of the Markdown table whose header line is `header`, as
    /// trimmed cells with backticks removed.
    fn table(header: &str) -> Vec<Vec<String>> {
        let mut lines = API_MD.lines().skip_while(|l| l.trim() != header);
        assert!(lines.next().is_some(), "docs/api.md has no table `{header}`");
        lines
            .skip(1)
            .take_while(|l| l.starts_with('|'))
            .map(|l| {
                l.trim_matches('|')
                    .split('|')
                    .map(|c| c.trim().trim_matches('`').to_owned())
                    .collect()
            })
            .collect()
    }

    fn wire(code: ErrorCode) -> String {
        serde_json::to_value(code).unwrap().as_str().unwrap().to_owned()
    }

    #[test]
    fn all_holds_every_code_once() {
        let names: BTreeSet<String> = ErrorCode::ALL.iter().map(|&c| wire(c)).collect();
        assert_eq!(names.len(), ErrorCode::ALL.len());
        for &c in ErrorCode::ALL {
            assert!(c.on_websocket() || c.http_status().is_some(), "{c:?} is used nowhere");
            let back: ErrorCode = serde_json::from_value(serde_json::Value::String(wire(c))).unwrap();
            assert_eq!(back, c);
        }
    }

    /// docs/api.md lists exactly the codes WebSocket frames carry.
    #[test]
    fn the_websocket_codes_are_the_documented_ones() {
        let documented: Vec<String> = table("| code | when |").into_iter().map(|r| r[0].clone()).collect();
        let mut expected: Vec<String> = ErrorCode::ALL
            .iter()
            .filter(|c| c.on_websocket())
            .map(|&c| wire(c))
            .collect();
        let mut sorted = documented.clone();
        sorted.sort();
        expected.sort();
        assert_eq!(sorted, expected, "docs/api.md's WebSocket error codes: {documented:?}");
    }

    /// docs/api.md lists exactly the codes the API answers, each with its status.
    #[test]
    fn the_http_codes_and_statuses_are_the_documented_ones() {
        let documented: BTreeSet<(u16, String)> = table("| status | code | when |")
            .into_iter()
            .map(|r| (r[0].parse().expect("a status"), r[1].clone()))
            .collect();
        let expected: BTreeSet<(u16, String)> = ErrorCode::ALL
            .iter()
            .filter_map(|&c| c.http_status().map(|s| (s, wire(c))))
            .collect();
        assert_eq!(documented, expected, "docs/api.md's HTTP error codes");
    }
}
