//! Loading DAG files from disk: the one place in `core` that does I/O.
//!
//! Paths may be files or folders. A folder contributes its `*.toml` files
//! (not recursively, so its `calendars/` subfolder is left alone). A DAG's
//! calendars are looked up in `calendars/` next to the DAG file, and every
//! calendar file there is validated too. Nothing here panics on bad input:
//! unreadable files and folders become diagnostics like any other problem.
//!
//! This is the one walk over DAG folders: each valid DAG comes back with
//! the file it was read from and that file's text ([`LoadedDag`]), so
//! `apply` publishes exactly the text that was validated, without reading
//! the folders a second time.

use super::calendar_file::{self, CalendarSet};
use super::diagnostic::{Diagnostic, Severity, SourceText};
use super::model::DagSpec;
use super::parse;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// A valid DAG with the file it came from.
#[derive(Debug, Clone)]
pub struct LoadedDag {
    /// The validated spec.
    pub spec: DagSpec,
    /// The file it was read from.
    pub path: PathBuf,
    /// The file's text, exactly as validated (what `apply` publishes).
    pub source: String,
}

/// What [`load_dags`] found.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// The valid DAGs, in the order their files were read.
    pub dags: Vec<LoadedDag>,
    /// Every error and warning, file by file.
    pub diagnostics: Vec<Diagnostic>,
    /// How many DAG files were read.
    pub files_checked: usize,
    /// How many calendar files were read.
    pub calendars_checked: usize,
}

impl LoadReport {
    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// Number of errors (warnings not counted).
    pub fn error_count(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }

    /// The valid DAGs' specs, in the order their files were read.
    pub fn specs(&self) -> impl Iterator<Item = &DagSpec> {
        self.dags.iter().map(|d| &d.spec)
    }
}

/// Loads and validates the DAG files at `paths` (files or folders).
pub fn load_dags(paths: &[PathBuf]) -> LoadReport {
    let mut report = LoadReport::default();
    let mut dag_files: Vec<PathBuf> = Vec::new();
    let mut calendar_files: Vec<PathBuf> = Vec::new();
    for path in paths {
        collect(
            path,
            &mut dag_files,
            &mut calendar_files,
            &mut report.diagnostics,
        );
    }
    dedup_keep_order(&mut dag_files);

    // Calendars, per folder holding DAG files (and any given directly).
    let mut sets: BTreeMap<PathBuf, CalendarSet> = BTreeMap::new();
    for file in &dag_files {
        let dir = calendars_dir(file);
        if sets.contains_key(&dir) {
            continue;
        }
        let mut files = Vec::new();
        if dir.is_dir() {
            list_toml(&dir, &mut files, &mut report.diagnostics);
        }
        calendar_files.extend(files.iter().cloned());
        sets.insert(dir, CalendarSet::new());
    }
    dedup_keep_order(&mut calendar_files);
    for file in &calendar_files {
        report.calendars_checked += 1;
        let Some(text) = read(file, &mut report.diagnostics) else {
            continue;
        };
        let name = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let set = sets
            .entry(file.parent().map(Path::to_path_buf).unwrap_or_default())
            .or_default();
        match calendar_file::parse(file, &text) {
            Ok(calendar) => set.insert(calendar),
            Err(diagnostics) => {
                set.insert_invalid(name);
                report.diagnostics.extend(diagnostics);
            }
        }
    }

    let empty = CalendarSet::new();
    let mut names: BTreeMap<String, PathBuf> = BTreeMap::new();
    for file in &dag_files {
        report.files_checked += 1;
        let Some(text) = read(file, &mut report.diagnostics) else {
            continue;
        };
        let calendars = sets.get(&calendars_dir(file)).unwrap_or(&empty);
        let (parsed, diagnostics) = parse::parse(file, &text, calendars);
        report.diagnostics.extend(diagnostics);
        let Some(parsed) = parsed else { continue };
        let name = parsed.spec.name.as_str().to_owned();
        if let Some(first) = names.get(&name) {
            let source = SourceText::new(file, &text);
            report.diagnostics.push(source.diagnostic(
                parsed.name_span.unwrap_or(0..0),
                Severity::Error,
                format!("dag name `{name}` is already used by {}", first.display()),
            ));
            continue;
        }
        names.insert(name, file.clone());
        report.dags.push(LoadedDag {
            spec: parsed.spec,
            path: file.clone(),
            source: text,
        });
    }
    report
}

/// Sorts `path` into DAG files and calendar files (a file inside a folder
/// named `calendars` is a calendar).
fn collect(
    path: &Path,
    dags: &mut Vec<PathBuf>,
    calendars: &mut Vec<PathBuf>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    match fs::metadata(path) {
        Err(e) => diagnostics.push(Diagnostic::for_file(
            path,
            Severity::Error,
            format!("cannot read: {e}"),
        )),
        Ok(meta) if meta.is_dir() => {
            let before = dags.len();
            list_toml(path, dags, diagnostics);
            if dags.len() == before {
                diagnostics.push(Diagnostic::for_file(
                    path,
                    Severity::Error,
                    "no dag files (*.toml) in this folder",
                ));
            }
        }
        Ok(_) if is_in_calendars_dir(path) => calendars.push(path.to_path_buf()),
        Ok(_) => dags.push(path.to_path_buf()),
    }
}

/// The `*.toml` files directly inside `dir`, sorted by name.
fn list_toml(dir: &Path, out: &mut Vec<PathBuf>, diagnostics: &mut Vec<Diagnostic>) {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            diagnostics.push(Diagnostic::for_file(
                dir,
                Severity::Error,
                format!("cannot read folder: {e}"),
            ));
            return;
        }
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "toml"))
        .collect();
    found.sort();
    out.extend(found);
}

fn read(file: &Path, diagnostics: &mut Vec<Diagnostic>) -> Option<String> {
    match fs::read(file) {
        Err(e) => {
            diagnostics.push(Diagnostic::for_file(
                file,
                Severity::Error,
                format!("cannot read: {e}"),
            ));
            None
        }
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Some(text),
            Err(e) => {
                diagnostics.push(Diagnostic::for_file(
                    file,
                    Severity::Error,
                    format!("not valid utf-8 (at byte {})", e.utf8_error().valid_up_to()),
                ));
                None
            }
        },
    }
}

fn calendars_dir(dag_file: &Path) -> PathBuf {
    dag_file.parent().unwrap_or(Path::new("")).join("calendars")
}

fn is_in_calendars_dir(file: &Path) -> bool {
    file.parent()
        .and_then(Path::file_name)
        .is_some_and(|n| n == "calendars")
}

fn dedup_keep_order(paths: &mut Vec<PathBuf>) {
    let mut seen = std::collections::BTreeSet::new();
    paths.retain(|p| seen.insert(p.clone()));
}
