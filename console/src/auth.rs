//! Who may use the console: tokens, roles, and the [`Operator`] extractor
//! that guards every action.
//!
//! Every page and API call except `/healthz` and the login form needs a
//! token (`Authorization: Bearer <token>`, or the session cookie the login
//! form sets — see [`crate::session`]). A token has a role: **viewer**
//! (read) or **operator** (read and act). There is **no default token**:
//! tokens come from configuration, or from the bootstrap token the CLI
//! generates on first start ([`crate::bootstrap`]). Only SHA-256 digests of
//! tokens are kept in memory, compared in constant time, and never logged
//! (the `Debug` output shows only user names and roles).

use crate::error::ApiError;
use crate::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Shortest accepted token: anything shorter is guessable (32 characters
/// is 128 bits as hex, what `nightshift` generates).
pub const MIN_TOKEN_LEN: usize = 32;

/// A token configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token at all was configured.
    #[error("no token configured: use --operator-token-file, --viewer-token-file, --token-file or NIGHTSHIFT_OPERATOR_TOKEN")]
    NoToken,
    /// A token is too short or contains whitespace.
    #[error("token {line}: a token must be at least {MIN_TOKEN_LEN} characters without spaces")]
    WeakToken {
        /// 1-based line of the token file, or position in a token list.
        line: usize,
    },
    /// A user name is empty or has characters outside `[A-Za-z0-9_.@-]`.
    #[error("line {line}: invalid user name (use A-Z a-z 0-9 _ . @ -)")]
    InvalidUser {
        /// 1-based line of the token file.
        line: usize,
    },
}

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Read every page and endpoint.
    Viewer,
    /// Read, and act (commands, alert acknowledgements, notifications).
    Operator,
}

impl Role {
    /// `viewer` or `operator`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
        }
    }
}

struct Token {
    user: String,
    role: Role,
    digest: [u8; 32],
}

/// SHA-256 of a token: what is stored and compared, never the token itself.
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The configured tokens, and whether actions are refused outright.
pub struct AuthConfig {
    tokens: Vec<Token>,
    read_only: bool,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let users: Vec<String> = self
            .tokens
            .iter()
            .map(|t| format!("{}({})", t.user, t.role.as_str()))
            .collect();
        f.debug_struct("AuthConfig")
            .field("read_only", &self.read_only)
            .field("users", &users)
            .finish()
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl AuthConfig {
    /// No token yet: nobody can get in until one is added.
    pub fn new() -> Self {
        AuthConfig {
            tokens: Vec::new(),
            read_only: false,
        }
    }

    /// Adds a token for `user` with `role`; `position` names it in errors.
    pub fn add(
        &mut self,
        position: usize,
        user: &str,
        role: Role,
        token: &str,
    ) -> Result<(), AuthError> {
        let user = checked_user(position, user)?;
        if token.len() < MIN_TOKEN_LEN || token.chars().any(char::is_whitespace) {
            return Err(AuthError::WeakToken { line: position });
        }
        self.tokens.push(Token {
            user,
            role,
            digest: token_digest(token),
        });
        Ok(())
    }

    /// Adds a token known only by its SHA-256 digest (the bootstrap token).
    pub fn add_digest(&mut self, user: &str, role: Role, digest: [u8; 32]) {
        self.tokens.push(Token {
            user: user.to_owned(),
            role,
            digest,
        });
    }

    /// Adds comma-separated tokens (the `--operator-token` /
    /// `--viewer-token` form), each acting as user `role.as_str()`.
    pub fn add_list(&mut self, role: Role, list: &str) -> Result<(), AuthError> {
        for (i, token) in list
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .enumerate()
        {
            self.add(i + 1, role.as_str(), role, token)?;
        }
        Ok(())
    }

    /// Operators with these `(user, token)` pairs; at least one is needed.
    pub fn operators<I, U, T>(pairs: I) -> Result<Self, AuthError>
    where
        I: IntoIterator<Item = (U, T)>,
        U: Into<String>,
        T: Into<String>,
    {
        let mut auth = AuthConfig::new();
        for (i, (user, token)) in pairs.into_iter().enumerate() {
            auth.add(i + 1, &user.into(), Role::Operator, &token.into())?;
        }
        if auth.tokens.is_empty() {
            return Err(AuthError::NoToken);
        }
        Ok(auth)
    }

    /// Reads a token file into this configuration: one token per line,
    /// `user:token` or `token` (user `operator`), operators unless the line
    /// starts with `viewer:` (`viewer:user:token`); blank lines and `#`
    /// comments are ignored.
    pub fn add_token_file(&mut self, text: &str) -> Result<(), AuthError> {
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (role, rest) = match line.strip_prefix("viewer:") {
                Some(rest) => (Role::Viewer, rest),
                None => (
                    Role::Operator,
                    line.strip_prefix("operator:")
                        .filter(|r| r.contains(':'))
                        .unwrap_or(line),
                ),
            };
            let (user, token) = match rest.split_once(':') {
                Some((user, token)) => (user.trim(), token.trim()),
                None => (role.as_str(), rest),
            };
            self.add(i + 1, user, role, token)?;
        }
        Ok(())
    }

    /// A configuration read from a token file alone (see
    /// [`AuthConfig::add_token_file`]); at least one token is needed.
    pub fn from_token_file(text: &str) -> Result<Self, AuthError> {
        let mut auth = AuthConfig::new();
        auth.add_token_file(text)?;
        if auth.tokens.is_empty() {
            return Err(AuthError::NoToken);
        }
        Ok(auth)
    }

    /// Refuse every action with 403 (reads still need a token).
    pub fn set_read_only(&mut self, read_only: bool) {
        self.read_only = read_only;
    }

    /// Whether every action is refused.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Whether any token can act (an operator token exists).
    pub fn has_operator(&self) -> bool {
        self.tokens.iter().any(|t| t.role == Role::Operator)
    }

    /// Whether no token at all is configured.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The user and role a presented token belongs to. Every configured
    /// digest is compared, each in constant time, so timing does not tell
    /// which one nearly matched.
    pub fn identify(&self, presented: &str) -> Option<(String, Role)> {
        let digest = token_digest(presented);
        let mut found = None;
        for token in &self.tokens {
            if bool::from(token.digest.as_slice().ct_eq(digest.as_slice())) {
                found = Some((token.user.clone(), token.role));
            }
        }
        found
    }
}

fn checked_user(line: usize, user: &str) -> Result<String, AuthError> {
    let ok = !user.is_empty()
        && user.len() <= 64
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'@' | b'-'));
    if !ok {
        return Err(AuthError::InvalidUser { line });
    }
    Ok(user.to_owned())
}

/// Who is calling, as established by [`crate::session::gate`] and stored in
/// the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// User name, recorded in commands and events.
    pub user: String,
    /// What the user may do.
    pub role: Role,
    /// The session's CSRF token when authenticated by cookie; `None` for a
    /// bearer token (not sent automatically by browsers, so exempt).
    pub csrf: Option<String>,
}

/// An authenticated operator; extracting it is what makes an endpoint
/// mutating: 401 without a valid token, 403 for a viewer or on a read-only
/// console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    /// The operator's user name, recorded in commands and events.
    pub user: String,
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let principal = parts
            .extensions
            .get::<Principal>()
            .ok_or(ApiError::Unauthorized)?;
        if state.auth.is_read_only() {
            return Err(ApiError::Forbidden("this console is read-only".to_owned()));
        }
        if principal.role != Role::Operator {
            tracing::warn!(user = %principal.user, "a viewer tried to act");
            return Err(ApiError::Forbidden(
                "the operator role is required".to_owned(),
            ));
        }
        Ok(Operator {
            user: principal.user.clone(),
        })
    }
}

/// Whether the caller may act, for pages to disable buttons a viewer (or
/// anyone on a read-only console) cannot use. Never an authorisation check
/// by itself: actions check [`Operator`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CanAct(pub bool);

impl FromRequestParts<AppState> for CanAct {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let operator = parts
            .extensions
            .get::<Principal>()
            .is_some_and(|p| p.role == Role::Operator);
        Ok(CanAct(operator && !state.auth.is_read_only()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_lines_name_users_roles_and_skip_comments() {
        let auth = AuthConfig::from_token_file(
            "# ops\nalice:0123456789abcdef0123456789abcdef0\n\nfedcba9876543210fedcba9876543210a\nviewer:bob:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n",
        )
        .unwrap();
        assert_eq!(
            auth.identify("0123456789abcdef0123456789abcdef0"),
            Some(("alice".into(), Role::Operator))
        );
        assert_eq!(
            auth.identify("fedcba9876543210fedcba9876543210a"),
            Some(("operator".into(), Role::Operator))
        );
        assert_eq!(
            auth.identify("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"),
            Some(("bob".into(), Role::Viewer))
        );
        assert_eq!(auth.identify("0123456789abcdef0123456789abcdef"), None);
        assert_eq!(auth.identify(""), None);
    }

    #[test]
    fn comma_separated_lists_and_digests() {
        let mut auth = AuthConfig::new();
        auth.add_list(
            Role::Viewer,
            "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv1, vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv2",
        )
        .unwrap();
        assert!(!auth.has_operator());
        auth.add_digest(
            "operator",
            Role::Operator,
            token_digest("boot-token-0123456789"),
        );
        assert_eq!(
            auth.identify("vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv2"),
            Some(("viewer".into(), Role::Viewer))
        );
        assert_eq!(
            auth.identify("boot-token-0123456789"),
            Some(("operator".into(), Role::Operator))
        );
        assert_eq!(
            auth.add_list(
                Role::Operator,
                "ok-ok-ok-ok-ok-ok-ok-ok-ok-ok-ok-ok-ok,short"
            ),
            Err(AuthError::WeakToken { line: 2 })
        );
    }

    #[test]
    fn weak_or_missing_tokens_are_refused() {
        assert_eq!(
            AuthConfig::from_token_file("# nothing\n").unwrap_err(),
            AuthError::NoToken
        );
        assert_eq!(
            AuthConfig::from_token_file("bob:short").unwrap_err(),
            AuthError::WeakToken { line: 1 }
        );
        assert_eq!(
            AuthConfig::from_token_file("\nb o b:0123456789abcdef0123456789abcdef0").unwrap_err(),
            AuthError::InvalidUser { line: 2 }
        );
        assert!(AuthConfig::operators(Vec::<(String, String)>::new()).is_err());
    }

    #[test]
    fn tokens_shorter_than_32_characters_are_refused() {
        let mut auth = AuthConfig::new();
        let short = "a".repeat(MIN_TOKEN_LEN - 1);
        assert_eq!(
            auth.add(1, "alice", Role::Operator, &short),
            Err(AuthError::WeakToken { line: 1 })
        );
        assert!(auth
            .add(1, "alice", Role::Operator, &"a".repeat(MIN_TOKEN_LEN))
            .is_ok());
    }

    #[test]
    fn debug_output_never_shows_tokens() {
        let auth = AuthConfig::operators([("alice", "0123456789abcdef0123456789-secret")]).unwrap();
        let text = format!("{auth:?}");
        assert!(text.contains("alice") && !text.contains("secret"), "{text}");
    }
}
