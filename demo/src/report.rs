//! `settlement-report`: the demo's job run as a **program handler** — a
//! shell script shipped in the repo (`demo/scripts/settlement-report.sh`)
//! rather than Rust code, so `nightshift dev` shows both kinds of handler
//! side by side. The script is embedded in the binary and installed next to
//! the reports it writes, so it works from any working directory.

use nightshift_executor::program::ProgramJob;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The handler name of the report job.
pub const SETTLEMENT_REPORT: &str = "settlement-report";

/// The script's text.
pub const SCRIPT: &str = include_str!("../scripts/settlement-report.sh");

/// Installs the script under `dir/bin` and returns the program handler that
/// writes reports to `dir/reports` from the demo database at `database_url`
/// (handed over in the environment, so a password never shows in `ps`).
pub fn settlement_report(dir: &Path, database_url: &str) -> std::io::Result<ProgramJob> {
    let script = install(&dir.join("bin"))?;
    Ok(ProgramJob::new(script)
        .arg(dir.join("reports"))
        .env("DEMO_DATABASE_URL", database_url))
}

/// Writes the script (atomically: several demo executors may start at once,
/// and one of them may be running the previous copy).
fn install(bin: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(bin)?;
    let path = bin.join("settlement-report.sh");
    let tmp = bin.join(format!(".settlement-report.sh.{}", std::process::id()));
    std::fs::write(&tmp, SCRIPT)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}
