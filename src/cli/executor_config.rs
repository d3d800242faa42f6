//! `nightshift executor --config FILE`: the executor's TOML configuration,
//! and the checks on what it serves (built-in handlers, programs, per-handler
//! capacities) shared with the command-line flags.
//!
//! ```toml
//! id = "batch-1"
//! capacity = 8
//! lease_ttl = "10s"
//! drain_grace = "30s"
//! handlers = []                  # built-ins: noop, sleep
//! program_grace = "10s"          # SIGTERM → SIGKILL
//! [labels]
//! zone = "a"
//! [handler_capacity]
//! settlement-report = 2
//! [programs.settlement-report]
//! path = "/opt/batch/settlement-report.sh"   # relative: to this file's folder
//! args = ["--out", "/var/lib/reports"]
//! env = { REPORT_LANG = "en" }               # extra environment, optional
//! grace = "30s"                              # overrides program_grace
//! ```
//!
//! Flags win over the file for single values; lists (labels, programs,
//! handler capacities) are merged, and a program named in both is an error.

use anyhow::{bail, Context as _};
use nightshift_core::duration::parse_duration;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The file's contents. Unknown keys are errors (a typo must not be ignored).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub id: Option<String>,
    pub capacity: Option<u32>,
    pub lease_ttl: Option<String>,
    pub drain_grace: Option<String>,
    pub handlers: Option<Vec<String>>,
    pub program_grace: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub handler_capacity: BTreeMap<String, u32>,
    #[serde(default)]
    pub programs: BTreeMap<String, FileProgram>,
    /// The file's folder, for relative program paths (not read from the file).
    #[serde(skip)]
    pub dir: PathBuf,
}

/// One `[programs.NAME]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileProgram {
    pub path: PathBuf,
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra environment variables (operator settings, never from a DAG).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub grace: Option<String>,
}

impl FileConfig {
    /// Reads and parses `path`; errors name the file and the line.
    pub fn read(path: &Path) -> anyhow::Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading executor config {}", path.display()))?;
        let mut config: FileConfig =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        config.dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(config)
    }

    /// A duration setting, with the key named in the error.
    pub fn duration(key: &str, text: Option<&str>) -> anyhow::Result<Option<Duration>> {
        text.map(|t| parse_duration(t).map_err(|e| anyhow::anyhow!("{key}: {e}")))
            .transpose()
    }
}

/// A program handler ready to serve: absolute path, fixed args, grace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramSpec {
    pub name: String,
    pub path: PathBuf,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub grace: Duration,
}

/// Merges the programs of the flags (`NAME=PATH`, `NAME=ARG`) and of the
/// file, and checks each: a valid handler name, no duplicates, an
/// executable file. Paths are made absolute so a later `chdir` cannot
/// change what runs.
pub fn programs(
    flags: &[(String, String)],
    flag_args: &[(String, String)],
    file: &FileConfig,
    default_grace: Duration,
) -> anyhow::Result<Vec<ProgramSpec>> {
    let mut specs: BTreeMap<String, ProgramSpec> = BTreeMap::new();
    for (name, path) in flags {
        let spec = ProgramSpec {
            name: name.clone(),
            path: PathBuf::from(path),
            args: Vec::new(),
            env: BTreeMap::new(),
            grace: default_grace,
        };
        if specs.insert(name.clone(), spec).is_some() {
            bail!("program `{name}` is given twice");
        }
    }
    for (name, program) in &file.programs {
        if specs.contains_key(name) {
            bail!("program `{name}` is given both by --program and in the config file");
        }
        let grace =
            FileConfig::duration(&format!("programs.{name}.grace"), program.grace.as_deref())?
                .unwrap_or(default_grace);
        let spec = ProgramSpec {
            name: name.clone(),
            path: file.dir.join(&program.path),
            args: program.args.clone(),
            env: program.env.clone(),
            grace,
        };
        specs.insert(name.clone(), spec);
    }
    for (name, arg) in flag_args {
        match specs.get_mut(name) {
            Some(spec) => spec.args.push(arg.clone()),
            None => bail!("--program-arg for `{name}`, which no --program names"),
        }
    }
    for spec in specs.values_mut() {
        nightshift_core::keyspace::validate_segment("handler name", &spec.name)?;
        spec.path = executable(&spec.path)
            .with_context(|| format!("program `{}` ({})", spec.name, spec.path.display()))?;
    }
    Ok(specs.into_values().collect())
}

/// The canonical path of an executable regular file.
fn executable(path: &Path) -> anyhow::Result<PathBuf> {
    let path = path.canonicalize().context("cannot resolve the path")?;
    let meta = std::fs::metadata(&path)?;
    if !meta.is_file() {
        bail!("not a file");
    }
    if meta.permissions().mode() & 0o111 == 0 {
        bail!("not executable (chmod +x)");
    }
    Ok(path)
}

/// `NAME=VALUE` flag values.
pub fn pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() && !v.is_empty() => {
            Ok((k.trim().to_owned(), v.to_owned()))
        }
        _ => Err(format!("expected NAME=VALUE, got `{text}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exe(dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn merges_flags_and_file_and_resolves_paths_against_the_file() {
        let dir = tempfile::tempdir().unwrap();
        exe(dir.path(), "report.sh");
        let flag_prog = exe(dir.path(), "extract.sh");
        let file = dir.path().join("executor.toml");
        std::fs::write(
            &file,
            r#"
capacity = 4
[labels]
zone = "a"
[programs.report]
path = "report.sh"
args = ["--quiet"]
env = { REPORT_LANG = "en" }
grace = "3s"
"#,
        )
        .unwrap();
        let config = FileConfig::read(&file).unwrap();
        assert_eq!(config.capacity, Some(4));
        assert_eq!(config.labels.get("zone").map(String::as_str), Some("a"));
        let specs = programs(
            &[("extract".into(), flag_prog.display().to_string())],
            &[
                ("extract".into(), "--all".into()),
                ("extract".into(), "x y".into()),
            ],
            &config,
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].name, "extract");
        assert_eq!(specs[0].args, vec!["--all", "x y"]);
        assert_eq!(specs[0].grace, Duration::from_secs(10));
        assert_eq!(specs[1].args, vec!["--quiet"]);
        assert_eq!(
            specs[1].env.get("REPORT_LANG").map(String::as_str),
            Some("en")
        );
        assert_eq!(specs[1].grace, Duration::from_secs(3));
        assert!(specs[1].path.is_absolute() && specs[1].path.ends_with("report.sh"));
    }

    #[test]
    fn the_shipped_example_parses() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/systemd/executor.toml.example");
        let config = FileConfig::read(&path).unwrap();
        assert_eq!(config.programs.len(), 2);
        assert_eq!(config.handler_capacity.get("partner-upload"), Some(&2));
        assert!(
            FileConfig::duration("program_grace", config.program_grace.as_deref())
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn refuses_what_could_surprise_an_operator() {
        let dir = tempfile::tempdir().unwrap();
        let ok = exe(dir.path(), "ok.sh").display().to_string();
        let plain = dir.path().join("plain.sh");
        std::fs::write(&plain, "#!/bin/sh\n").unwrap();
        let none = FileConfig::default();
        let err = |flags: &[(&str, &str)], args: &[(&str, &str)]| {
            let own = |v: &[(&str, &str)]| -> Vec<(String, String)> {
                v.iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect()
            };
            format!(
                "{:#}",
                programs(&own(flags), &own(args), &none, Duration::ZERO).unwrap_err()
            )
        };
        assert!(err(&[("a", &ok), ("a", &ok)], &[]).contains("given twice"));
        assert!(err(&[("a", &ok)], &[("b", "x")]).contains("no --program names"));
        assert!(err(&[("a/b", &ok)], &[]).contains("handler name"));
        assert!(err(&[("a", plain.to_str().unwrap())], &[]).contains("not executable"));
        assert!(err(&[("a", "/no/such/program")], &[]).contains("cannot resolve"));
        let typo = dir.path().join("typo.toml");
        std::fs::write(&typo, "capacty = 3\n").unwrap();
        let e = FileConfig::read(&typo).unwrap_err().to_string();
        assert!(e.contains("capacty") && e.contains("line 1"), "{e}");
        assert_eq!(pair("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(pair("=x").is_err() && pair("a=").is_err() && pair("a").is_err());
    }
}
