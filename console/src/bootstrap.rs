//! The first-start operator token: when no token is configured, the console
//! generates one, stores only its SHA-256 digest in a state file, and hands
//! the token back once so the caller can print it. Later starts read the
//! digest; the token itself is never stored or printed again.

use crate::auth::token_digest;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// File, inside the state directory, holding the digest.
pub const BOOTSTRAP_FILE: &str = "console-operator-token.sha256";

/// Why the bootstrap token could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// Reading or writing the state file failed.
    #[error("bootstrap token file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The state file does not hold a 64-digit hex digest.
    #[error("bootstrap token file {0} is damaged: delete it to generate a new token")]
    Damaged(PathBuf),
}

/// The bootstrap operator token's digest, and the token itself when it was
/// generated just now (print it once).
#[derive(Debug)]
pub struct Bootstrap {
    /// SHA-256 of the token.
    pub digest: [u8; 32],
    /// The new token, only on the start that created it.
    pub new_token: Option<String>,
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Reads the digest in `dir`, or creates the directory, a new token and
/// the file (mode 0600, never overwriting one another process just wrote).
pub fn operator_token(dir: &Path) -> Result<Bootstrap, BootstrapError> {
    let path = dir.join(BOOTSTRAP_FILE);
    let io = |source| BootstrapError::Io {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            return unhex(&text)
                .map(|digest| Bootstrap {
                    digest,
                    new_token: None,
                })
                .ok_or(BootstrapError::Damaged(path.clone()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    std::fs::create_dir_all(dir).map_err(io)?;
    let token = format!("nso_{}", hex(&rand::random::<[u8; 24]>()));
    let digest = token_digest(&token);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).map_err(io)?;
    file.write_all(format!("{}\n", hex(&digest)).as_bytes())
        .map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(Bootstrap {
        digest,
        new_token: Some(token),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_generated_once_and_only_its_digest_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let first = operator_token(dir.path()).unwrap();
        let token = first.new_token.clone().unwrap();
        assert!(token.len() >= crate::auth::MIN_TOKEN_LEN);
        let stored = std::fs::read_to_string(dir.path().join(BOOTSTRAP_FILE)).unwrap();
        assert!(!stored.contains(&token), "the token itself was stored");
        let again = operator_token(dir.path()).unwrap();
        assert_eq!(again.new_token, None);
        assert_eq!(again.digest, token_digest(&token));
        std::fs::write(dir.path().join(BOOTSTRAP_FILE), "zz").unwrap();
        assert!(matches!(
            operator_token(dir.path()),
            Err(BootstrapError::Damaged(_))
        ));
    }
}
