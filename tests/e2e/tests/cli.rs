//! The operator CLI `refresh` against the deployed stack: one audio refresh started and
//! followed by the binary (as `scripts/local-refresh` does for both media types), then
//! `status --json`, `list`, `history` and a refused `finish` on it.

use anyhow::{bail, Context, Result};
use e2e::{exclusive, load_sample_data, repo_root, Stack};
use refresh_cli::stages::{Machine, Stage};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

/// The `refresh` binary of this build. `cargo test --workspace` builds it (for refresh-cli's
/// own tests) in the profile directory this test runs from, as `localstack/deploy` does
/// with `cargo build --workspace --bins`: `<target>/debug/refresh` beside `deps/`.
fn binary() -> Result<PathBuf> {
    let beside_this_test = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("refresh")));
    let from_target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|dir| {
            if dir.is_absolute() {
                dir
            } else {
                repo_root().join(dir)
            }
        })
        .unwrap_or_else(|| repo_root().join("target"))
        .join("debug/refresh");
    for path in beside_this_test.into_iter().chain([from_target_dir]) {
        if path.is_file() {
            return Ok(path);
        }
    }
    bail!("no refresh binary beside this test or in $CARGO_TARGET_DIR/debug: run `cargo build -p refresh-cli` (localstack/deploy builds it)")
}

fn refresh(binary: &PathBuf, args: &[&str]) -> Result<Output> {
    Command::new(binary)
        .args(args)
        .output()
        .with_context(|| format!("running {} {}", binary.display(), args.join(" ")))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn refresh_cli_starts_follows_and_reports_one_audio_refresh() -> Result<()> {
    let _guard = exclusive().await;
    let _stack = Stack::connect().await;
    load_sample_data()?;
    let binary = binary()?;
    let suffix = format!("clie2e{}", std::process::id());

    let started = refresh(
        &binary,
        &[
            "--interval",
            "1",
            "start",
            "--media",
            "audio",
            "--environment",
            "staging",
            "--suffix",
            &suffix,
            "--wait-if-busy",
            // The guards compare with whatever audio index an earlier test left live (a
            // multiplied catalog, say): this test is about the CLI, not about them.
            "--override-drop",
            "--override-search-guard",
            "--follow",
            "--timeout",
            "900",
        ],
    )?;
    let stdout = text(&started.stdout);
    let context = format!("stdout:\n{stdout}\nstderr:\n{}", text(&started.stderr));
    assert_eq!(started.status.code(), Some(0), "{context}");

    // Not a terminal: plain lines as the run goes, then the summary with the report.
    for expected in [
        "[audio] started arn:",
        "range 0: runs in execution audio-",
        "range 0 attempt 1: worker i-",
        "range 0 done on attempt ",
        // Dual write (the default): the gate's answer, not a _reindex's progress.
        "filtered index verified: ",
        "record counts (before → after)",
        "drop guard: ",
        "search guard: ",
        "pre-flight: passed",
        "· SUCCEEDED",
    ] {
        assert!(
            stdout.contains(expected),
            "{expected:?} missing from {context}"
        );
    }
    // A worker's progress, read from the range's own execution.
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("range 0 attempt ") && l.contains(" rows (")),
        "no progress line of range 0 in {context}"
    );
    // The closing summary: every stage of a refresh succeeded, each range on its line.
    let summary = stdout
        .split("\nstages\n")
        .nth(1)
        .context("no stages block in the output")?;
    for stage in Machine::Refresh.stages() {
        if *stage == Stage::FailureCleanup {
            continue;
        }
        assert!(
            summary.lines().any(|l| {
                let line = l.trim_start();
                line.starts_with(stage.label()) && line.contains(" succeeded ")
            }),
            "stage {:?} is not shown as succeeded in {context}",
            stage.label()
        );
    }
    assert!(
        summary
            .lines()
            .any(|l| l.trim_start().starts_with("range 0 ") && l.contains(" done ")),
        "no done line for range 0 in {context}"
    );

    let arn = stdout
        .lines()
        .find_map(|l| l.strip_prefix("[audio] started "))
        .context("the started line names the execution")?
        .trim()
        .to_string();
    let name = arn.rsplit(':').next().unwrap_or_default().to_string();
    assert!(name.starts_with("cli-audio-staging-"), "{name}");

    let status = refresh(&binary, &["--json", "status", &name])?;
    assert_eq!(status.status.code(), Some(0), "{}", text(&status.stderr));
    let lines: Vec<Value> = text(&status.stdout)
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("status --json prints one JSON object a line")?;
    let last = lines.last().context("status printed nothing")?;
    assert_eq!(last["event"], "status");
    let run = &last["run"];
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    assert_eq!(
        run["report"]["new_index"],
        format!("audio-{suffix}"),
        "{run}"
    );
    assert!(run["report"]["guards"]["record_drop"].is_object(), "{run}");
    let ranges = run["ranges"].as_object().context("no ranges in the run")?;
    assert!(!ranges.is_empty());
    for range in ranges.values() {
        assert_eq!(range["phase"], "done", "{range}");
        assert!(
            range["execution"]
                .as_str()
                .is_some_and(|e| e.contains(":execution:") && e.contains("-range-")),
            "each range names its worker-range execution: {range}"
        );
    }
    assert!(lines.iter().any(|l| l["event"] == "range_progress"));

    let list = refresh(&binary, &["list", "--media", "audio", "--limit", "5"])?;
    let listed = text(&list.stdout);
    assert_eq!(list.status.code(), Some(0), "{}", text(&list.stderr));
    assert!(
        listed
            .lines()
            .any(|l| l.contains(&name) && l.contains(" cli ")),
        "{listed}"
    );

    let history = refresh(&binary, &["history", "audio", "--limit", "3"])?;
    let trend = text(&history.stdout);
    assert_eq!(history.status.code(), Some(0), "{}", text(&history.stderr));
    assert!(trend.contains("SUCCEEDED"), "{trend}");

    // A run that succeeded has nothing to finish: refused, nothing invoked.
    let finish = refresh(&binary, &["finish", &name])?;
    assert_eq!(finish.status.code(), Some(3), "{}", text(&finish.stderr));
    assert!(
        text(&finish.stderr).contains("AliasesNotPromoted"),
        "{}",
        text(&finish.stderr)
    );

    // An execution that does not exist is a usage error naming it.
    let missing = refresh(&binary, &["status", "no-such-execution-name"])?;
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("no-such-execution-name"));
    Ok(())
}
