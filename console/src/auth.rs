//! Operator authentication: who may act through the console.
//!
//! Operators present a bearer token (`Authorization: Bearer <token>`). Tokens
//! come from a token file (one per line, `user:token` or a bare `token`
//! acting as user `operator`) or one environment variable; there is **no
//! default token**. A console without tokens must be started read-only, and
//! then every mutating endpoint answers 403. Tokens are compared in constant
//! time and never logged (the `Debug` output shows only user names).

use crate::error::ApiError;
use crate::AppState;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use subtle::ConstantTimeEq;

/// Shortest accepted token: anything shorter is guessable.
pub const MIN_TOKEN_LEN: usize = 16;

/// A token configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token was configured and the console is not read-only.
    #[error("no operator token configured: use --token-file or NIGHTSHIFT_CONSOLE_TOKEN, or start with --read-only")]
    NoToken,
    /// A token is too short or contains whitespace.
    #[error("line {line}: an operator token must be at least {MIN_TOKEN_LEN} characters without spaces")]
    WeakToken {
        /// 1-based line of the token file (1 for the environment variable).
        line: usize,
    },
    /// A user name is empty or has characters outside `[A-Za-z0-9_.@-]`.
    #[error("line {line}: invalid user name (use A-Z a-z 0-9 _ . @ -)")]
    InvalidUser {
        /// 1-based line of the token file.
        line: usize,
    },
}

struct Token {
    user: String,
    secret: Vec<u8>,
}

/// Who may act: read-only, or operators with these tokens.
pub struct AuthConfig {
    tokens: Vec<Token>,
    read_only: bool,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let users: Vec<&str> = self.tokens.iter().map(|t| t.user.as_str()).collect();
        f.debug_struct("AuthConfig").field("read_only", &self.read_only).field("users", &users).finish()
    }
}

impl AuthConfig {
    /// A console on which nobody can act (every action answers 403).
    pub fn read_only() -> Self {
        AuthConfig { tokens: Vec::new(), read_only: true }
    }

    /// Operators with these `(user, token)` pairs; at least one is needed.
    pub fn operators<I, U, T>(pairs: I) -> Result<Self, AuthError>
    where
        I: IntoIterator<Item = (U, T)>,
        U: Into<String>,
        T: Into<String>,
    {
        let mut tokens = Vec::new();
        for (i, (user, token)) in pairs.into_iter().enumerate() {
            tokens.push(checked(i + 1, user.into(), token.into())?);
        }
        if tokens.is_empty() {
            return Err(AuthError::NoToken);
        }
        Ok(AuthConfig { tokens, read_only: false })
    }

    /// Reads a token file: one token per line, `user:token` or `token`
    /// (user `operator`); blank lines and `#` comments are ignored.
    pub fn from_token_file(text: &str) -> Result<Self, AuthError> {
        let mut tokens = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, token) = match line.split_once(':') {
                Some((user, token)) => (user.trim().to_owned(), token.trim().to_owned()),
                None => ("operator".to_owned(), line.to_owned()),
            };
            tokens.push(checked(i + 1, user, token)?);
        }
        if tokens.is_empty() {
            return Err(AuthError::NoToken);
        }
        Ok(AuthConfig { tokens, read_only: false })
    }

    /// Whether every action is refused.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The user a presented token belongs to. Every configured token is
    /// compared, each in constant time, so timing does not tell which one
    /// nearly matched.
    fn user_of(&self, presented: &[u8]) -> Option<&str> {
        let mut found = None;
        for token in &self.tokens {
            if bool::from(token.secret.as_slice().ct_eq(presented)) {
                found = Some(token.user.as_str());
            }
        }
        found
    }
}

fn checked(line: usize, user: String, token: String) -> Result<Token, AuthError> {
    if token.len() < MIN_TOKEN_LEN || token.chars().any(char::is_whitespace) {
        return Err(AuthError::WeakToken { line });
    }
    let user_ok = !user.is_empty()
        && user.len() <= 64
        && user.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'@' | b'-'));
    if !user_ok {
        return Err(AuthError::InvalidUser { line });
    }
    Ok(Token { user, secret: token.into_bytes() })
}

/// An authenticated operator; extracting it is what makes an endpoint
/// mutating: 403 on a read-only console, 401 without a valid token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    /// The operator's user name, recorded in commands and events.
    pub user: String,
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if state.auth.is_read_only() {
            return Err(ApiError::Forbidden("this console is read-only".to_owned()));
        }
        let presented = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or(ApiError::Unauthorized)?;
        match state.auth.user_of(presented.as_bytes()) {
            Some(user) => Ok(Operator { user: user.to_owned() }),
            None => {
                tracing::warn!("rejected an action with an invalid operator token");
                Err(ApiError::Unauthorized)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_lines_name_users_and_skip_comments() {
        let auth = AuthConfig::from_token_file("# ops\nalice:0123456789abcdef0\n\nfedcba98765432100\n").unwrap();
        assert_eq!(auth.user_of(b"0123456789abcdef0"), Some("alice"));
        assert_eq!(auth.user_of(b"fedcba98765432100"), Some("operator"));
        assert_eq!(auth.user_of(b"0123456789abcdef"), None);
        assert_eq!(auth.user_of(b""), None);
        assert!(!auth.is_read_only());
    }

    #[test]
    fn weak_or_missing_tokens_are_refused() {
        assert_eq!(AuthConfig::from_token_file("# nothing\n").unwrap_err(), AuthError::NoToken);
        assert_eq!(AuthConfig::from_token_file("bob:short").unwrap_err(), AuthError::WeakToken { line: 1 });
        assert_eq!(
            AuthConfig::from_token_file("\nb o b:0123456789abcdef0").unwrap_err(),
            AuthError::InvalidUser { line: 2 }
        );
        assert!(AuthConfig::operators(Vec::<(String, String)>::new()).is_err());
    }

    #[test]
    fn debug_output_never_shows_tokens() {
        let auth = AuthConfig::operators([("alice", "0123456789abcdef-secret")]).unwrap();
        let text = format!("{auth:?}");
        assert!(text.contains("alice") && !text.contains("secret"), "{text}");
    }
}
