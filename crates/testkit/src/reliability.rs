//! What a fault or bad-input test tried and what it measured, for `RELIABILITY.md`.
//!
//! Each [`Trial`] is written as one JSON file under `.local/reliability/` of the checkout
//! (or `$RELIABILITY_RECORDS`); `scripts/reliability` renders the table from them and
//! `scripts/reliability --check` (a stage of `scripts/test`) fails when a row the tests
//! recorded is not in `RELIABILITY.md` word for word. A test records what it measured
//! before it asserts on it, so a regression shows in the record as well as in the test.

use serde_json::json;
use std::path::PathBuf;

/// The kinds of the matrix, in the order the table lists them.
pub const KINDS: [&str; 10] = [
    "worker",
    "elasticsearch",
    "postgresql",
    "lambda",
    "execution",
    "operator",
    "promotion",
    "execution input",
    "worker request",
    "CLI arguments",
];

#[derive(Debug, Clone)]
pub struct Trial {
    /// One of [`KINDS`].
    pub kind: &'static str,
    /// What was done, in a few words.
    pub fault: String,
    /// What the run (or the request) did about it.
    pub outcome: String,
    /// What was lost or left behind, measured: "nothing" when nothing.
    pub lost: String,
    /// The test that tried it (`file::function`).
    pub test: String,
}

/// What a run that survived a fault lost: the documents it should have and has.
pub fn lost_documents(expected: u64, indexed: u64) -> String {
    if expected == indexed {
        "nothing".to_string()
    } else if indexed < expected {
        format!("{} of {expected} documents", expected - indexed)
    } else {
        format!("{} documents too many of {expected}", indexed - expected)
    }
}

/// What a run that failed (or was refused) changed or left, from the checks every such
/// test makes: each named problem that was observed.
pub fn lost_on_failure(problems: &[(&str, bool)]) -> String {
    let seen: Vec<&str> = problems
        .iter()
        .filter(|(_, observed)| *observed)
        .map(|(what, _)| *what)
        .collect();
    if seen.is_empty() {
        "nothing".to_string()
    } else {
        seen.join("; ")
    }
}

fn records_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("RELIABILITY_RECORDS") {
        return Some(PathBuf::from(dir));
    }
    // Tests run in their package's folder: the checkout is the nearest with a Cargo.lock.
    let mut dir = std::env::current_dir().ok()?;
    while !dir.join("Cargo.lock").exists() {
        dir = dir.parent()?.to_path_buf();
    }
    Some(dir.join(".local").join("reliability"))
}

impl Trial {
    /// Writes the record. A record that cannot be written fails the test: a table that
    /// silently misses a row would claim less than was tried.
    pub fn record(&self) {
        assert!(
            KINDS.contains(&self.kind),
            "reliability kind {:?} is not one of {KINDS:?}",
            self.kind
        );
        let dir = records_dir().expect("no checkout above the test's folder");
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let name = format!("{}-{}", self.test, self.fault);
        let slug: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(150)
            .collect();
        // "a/b" and "a*b" share a slug: the hash of the whole name keeps them apart.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(&name, &mut hasher);
        let hash = std::hash::Hasher::finish(&hasher);
        let path = dir.join(format!("{slug}-{hash:016x}.json"));
        let record = json!({
            "kind": self.kind,
            "fault": self.fault,
            "outcome": self.outcome,
            "lost": self.lost,
            "test": self.test,
        });
        std::fs::write(&path, format!("{record:#}\n"))
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losses_are_named() {
        assert_eq!(lost_documents(10, 10), "nothing");
        assert_eq!(lost_documents(10, 7), "3 of 10 documents");
        assert_eq!(lost_documents(10, 12), "2 documents too many of 10");
        assert_eq!(lost_on_failure(&[("a", false), ("b", false)]), "nothing");
        assert_eq!(
            lost_on_failure(&[
                ("live table changed", true),
                ("b", false),
                ("instances left", true)
            ]),
            "live table changed; instances left"
        );
    }
}
