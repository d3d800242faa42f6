//! Rebuilds the store when a migration file is added or changed:
//! `sqlx::migrate!` embeds the files at compile time but cannot see new ones.

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
