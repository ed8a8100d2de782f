//! Who may retry and drop: nobody on a read-only dashboard; with actions allowed, a browser
//! session signed in with the token (its forms carry the session's anti-forgery token and
//! must come from the dashboard's own origin), or a request with `Authorization: Bearer TOKEN`.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::{header, HeaderMap};
use uuid::Uuid;

use super::CliError;

/// The shortest token `allow_actions` takes: a guessable one would give anyone who reaches
/// the port the retry and drop buttons.
const MIN_TOKEN_LEN: usize = 16;

/// The most signed-in sessions kept at once.
const MAX_SESSIONS: usize = 1024;

/// The session cookie's name.
pub(super) const COOKIE: &str = "events_dashboard_session";

/// How the dashboard is served: read-only (the default) or with actions for holders of a
/// token, and under which path prefix.
#[derive(Clone, Debug, Default)]
pub struct DashboardOptions {
    token: Option<String>,
    base: String,
}

impl DashboardOptions {
    /// Pages only: retry and drop are refused.
    pub fn read_only() -> Self {
        Self::default()
    }

    /// Retry and drop for whoever signs in with `token` (at least 16 characters), or sends it
    /// as `Authorization: Bearer TOKEN`.
    pub fn allow_actions(token: impl Into<String>) -> Result<Self, CliError> {
        let token = token.into();
        if token.chars().count() < MIN_TOKEN_LEN {
            return Err(CliError::Usage(format!(
                "the dashboard token must be at least {MIN_TOKEN_LEN} characters; set EVENTS_DASHBOARD_TOKEN to a long random string (e.g. `openssl rand -hex 32`)"
            )));
        }
        Ok(Self {
            token: Some(token),
            base: String::new(),
        })
    }

    /// The path the router is nested under (`/events` for `Router::nest("/events", ..)`), so
    /// that its links and forms point there.
    pub fn under(mut self, base: impl Into<String>) -> Self {
        self.base = base.into().trim_end_matches('/').to_owned();
        self
    }

    /// Whether retry and drop are allowed to holders of the token.
    pub fn allows_actions(&self) -> bool {
        self.token.is_some()
    }
}

/// The token and the signed-in sessions (session id -> anti-forgery token). The lock is
/// never held across an `.await`.
pub(super) struct Auth {
    token: Option<String>,
    pub(super) base: String,
    sessions: Mutex<HashMap<String, String>>,
}

/// What a request may do, for the pages to show the right controls.
pub(super) enum Access {
    /// Read-only dashboard.
    ReadOnly,
    /// Actions allowed, but this browser has not signed in.
    SignIn,
    /// Signed in: forms carry this anti-forgery token.
    Act { csrf: String },
}

impl Auth {
    pub(super) fn new(options: DashboardOptions) -> Self {
        Self {
            token: options.token,
            base: options.base,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn allows_actions(&self) -> bool {
        self.token.is_some()
    }

    /// What the browser sending `headers` may do.
    pub(super) fn access(&self, headers: &HeaderMap) -> Access {
        if self.token.is_none() {
            return Access::ReadOnly;
        }
        match session(headers).and_then(|id| self.lock().get(&id).cloned()) {
            Some(csrf) => Access::Act { csrf },
            None => Access::SignIn,
        }
    }

    /// Signs in with `token`: the new session's id for the cookie, or `None` for a wrong one.
    pub(super) fn sign_in(&self, token: &str) -> Option<String> {
        let expected = self.token.as_deref()?;
        if !same(expected.as_bytes(), token.as_bytes()) {
            return None;
        }
        let id = Uuid::new_v4().simple().to_string();
        let mut sessions = self.lock();
        if sessions.len() >= MAX_SESSIONS {
            // Bounded memory: the oldest sign-ins are not known, so everyone signs in again.
            tracing::warn!("dashboard: {MAX_SESSIONS} sessions; all signed out");
            sessions.clear();
        }
        sessions.insert(id.clone(), Uuid::new_v4().simple().to_string());
        Some(id)
    }

    /// Whether a retry or drop with these headers (and `csrf`, the form's field) may run;
    /// otherwise why not, in one line.
    pub(super) fn check_action(
        &self,
        headers: &HeaderMap,
        csrf: Option<&str>,
    ) -> Result<(), String> {
        let Some(token) = self.token.as_deref() else {
            return Err("this dashboard is read-only: start `serve --allow-actions` with EVENTS_DASHBOARD_TOKEN set to retry or drop".into());
        };
        if let Some(bearer) =
            header_text(headers, header::AUTHORIZATION).and_then(|v| v.strip_prefix("Bearer "))
        {
            return if same(token.as_bytes(), bearer.trim().as_bytes()) {
                Ok(())
            } else {
                Err("wrong token in the Authorization header".into())
            };
        }
        if !same_origin(headers) {
            return Err(
                "refused: the form was not sent from this dashboard (cross-site request)".into(),
            );
        }
        let expected = session(headers).and_then(|id| self.lock().get(&id).cloned());
        match (expected, csrf) {
            (None, _) => Err("sign in with the dashboard token first".into()),
            (Some(expected), Some(given)) if same(expected.as_bytes(), given.as_bytes()) => Ok(()),
            (Some(_), _) => Err("refused: the form's anti-forgery token does not match this session; reload the page".into()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The session id in the request's cookie.
fn session(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// A form post from the dashboard's own pages: the browser's `Sec-Fetch-Site`, else `Origin`,
/// names the same site as `Host`. A request with neither (not a browser) passes here; the
/// session and anti-forgery token still have to match.
fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = header_text(headers, header::HeaderName::from_static("sec-fetch-site")) {
        return site == "same-origin" || site == "none";
    }
    match (
        header_text(headers, header::ORIGIN),
        header_text(headers, header::HOST),
    ) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority == host),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

/// Compares in time independent of where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, value.parse().unwrap());
        }
        h
    }

    #[test]
    fn a_short_token_is_refused() {
        assert!(DashboardOptions::allow_actions("short").is_err());
        assert!(DashboardOptions::allow_actions("0123456789abcdef").is_ok());
    }

    #[test]
    fn actions_need_the_session_and_its_form_token_from_the_same_origin() {
        let auth = Auth::new(DashboardOptions::allow_actions("0123456789abcdef").unwrap());
        assert!(auth.sign_in("wrong-token-0123456").is_none());
        let id = auth.sign_in("0123456789abcdef").unwrap();
        let cookie = format!("{COOKIE}={id}");
        let Access::Act { csrf } = auth.access(&headers(&[("cookie", &cookie)])) else {
            panic!("signed in");
        };
        let ok = headers(&[("cookie", &cookie), ("sec-fetch-site", "same-origin")]);
        assert!(auth.check_action(&ok, Some(&csrf)).is_ok());
        assert!(auth.check_action(&ok, Some("other")).is_err());
        assert!(auth.check_action(&ok, None).is_err());
        let cross = headers(&[("cookie", &cookie), ("sec-fetch-site", "cross-site")]);
        assert!(auth.check_action(&cross, Some(&csrf)).is_err());
        let foreign = headers(&[
            ("cookie", &cookie),
            ("origin", "http://evil.example"),
            ("host", "127.0.0.1:8080"),
        ]);
        assert!(auth.check_action(&foreign, Some(&csrf)).is_err());
        let bearer = headers(&[("authorization", "Bearer 0123456789abcdef")]);
        assert!(auth.check_action(&bearer, None).is_ok());
        let wrong = headers(&[("authorization", "Bearer 0123456789abcdeX")]);
        assert!(auth.check_action(&wrong, None).is_err());
    }

    #[test]
    fn read_only_refuses_everyone() {
        let auth = Auth::new(DashboardOptions::read_only());
        let bearer = headers(&[("authorization", "Bearer anything-at-all-long")]);
        assert!(auth.check_action(&bearer, None).is_err());
        assert!(auth.sign_in("anything").is_none());
    }
}
