//! Where console tokens come from, shared by `nightshift console` and
//! `nightshift dev`: a file (`--operator-token-file`, `--viewer-token-file`),
//! the environment (`NIGHTSHIFT_OPERATOR_TOKEN`, `NIGHTSHIFT_VIEWER_TOKEN`),
//! or the bare value flags, which still work but warn: a command line is
//! visible to every user of the machine in `ps`.

use crate::cli::conn::bad_input;
use anyhow::Context as _;
use std::path::Path;

/// Environment variable of operator tokens (comma-separated).
pub const OPERATOR_TOKEN_ENV: &str = "NIGHTSHIFT_OPERATOR_TOKEN";
/// Environment variable of viewer tokens (comma-separated).
pub const VIEWER_TOKEN_ENV: &str = "NIGHTSHIFT_VIEWER_TOKEN";

/// A secret given as a flag value; its `Debug` never shows it.
#[derive(Clone)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

/// The tokens of one role, comma-separated: from `file` (tokens separated
/// by commas or lines; blank lines and `#` comments skipped), else from the
/// bare flag `--{flag}` (with a deprecation warning on stderr), else from
/// the environment variable `env` (through `var`, for tests).
pub fn load(
    flag: &str,
    value: Option<&Secret>,
    file: Option<&Path>,
    env: &str,
    var: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Option<String>> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading --{flag}-file {}", path.display()))?;
        let tokens: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .flat_map(|l| l.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect();
        if tokens.is_empty() {
            return bad_input(format!("--{flag}-file {}: no token in it", path.display()));
        }
        return Ok(Some(tokens.join(",")));
    }
    if let Some(Secret(value)) = value {
        eprintln!(
            "warning: --{flag} on the command line is deprecated (any user can read it in `ps`): \
             use --{flag}-file FILE or the {env} environment variable"
        );
        return Ok(Some(value.clone()));
    }
    Ok(var(env).filter(|v| !v.trim().is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_wins_then_the_flag_then_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens");
        std::fs::write(&file, "# ops\nfile-token-a, file-token-b\n\nfile-token-c\n").unwrap();
        let env = |name: &str| (name == OPERATOR_TOKEN_ENV).then(|| "env-token".to_owned());
        let flag = Secret("flag-token".into());
        let got = |value: Option<&Secret>, file: Option<&Path>| {
            load("operator-token", value, file, OPERATOR_TOKEN_ENV, env).unwrap()
        };
        assert_eq!(
            got(Some(&flag), Some(&file)).as_deref(),
            Some("file-token-a,file-token-b,file-token-c")
        );
        assert_eq!(got(Some(&flag), None).as_deref(), Some("flag-token"));
        assert_eq!(got(None, None).as_deref(), Some("env-token"));
        assert_eq!(
            load("viewer-token", None, None, VIEWER_TOKEN_ENV, env).unwrap(),
            None
        );
        std::fs::write(&file, "# nothing\n").unwrap();
        assert!(load("operator-token", None, Some(&file), OPERATOR_TOKEN_ENV, env).is_err());
        assert_eq!(format!("{flag:?}"), "Secret(***)");
    }

    #[derive(clap::Parser)]
    struct Dev {
        #[command(flatten)]
        args: crate::cli::dev::Args,
    }

    #[derive(clap::Parser)]
    struct Console {
        #[command(flatten)]
        args: crate::cli::console::Args,
    }

    #[test]
    fn dev_and_console_name_the_operator_token_alike() {
        use clap::Parser as _;
        for flag in ["--operator-token", "--token"] {
            let dev = Dev::try_parse_from(["dev", flag, "t"]).unwrap();
            assert_eq!(dev.args.operator_token.unwrap().0, "t", "{flag}");
        }
        let dev = Dev::try_parse_from(["dev", "--operator-token-file", "f"]).unwrap();
        assert_eq!(dev.args.operator_token_file.unwrap(), Path::new("f"));
        assert!(
            Dev::try_parse_from(["dev", "--token", "t", "--operator-token-file", "f"]).is_err()
        );
        let console = Console::try_parse_from([
            "console",
            "--operator-token-file",
            "o",
            "--viewer-token-file",
            "v",
            "--database",
            "sqlite://x.db",
        ])
        .unwrap();
        assert_eq!(console.args.operator_token_file.unwrap(), Path::new("o"));
        assert_eq!(console.args.viewer_token_file.unwrap(), Path::new("v"));
        assert!(Console::try_parse_from([
            "console",
            "--token",
            "t",
            "--database",
            "sqlite://x.db"
        ])
        .is_err());
    }
}
