//! One refresh through the deployed LocalStack stack, started and followed by the binary.
//!
//! It starts a real execution (and promotes its index), so it is `#[ignore]`d: run it where
//! the stack is yours, serially with the other end-to-end tests, after `localstack/deploy`:
//!
//! ```text
//! . .local/env; . .local/stack.env
//! cargo test -p refresh-cli --test e2e_localstack -- --ignored
//! ```

use serde_json::Value;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_refresh");

fn refresh(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("the refresh binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
#[ignore = "starts an execution on the deployed LocalStack stack"]
fn start_follow_then_status_list_and_history() {
    for var in ["AWS_ENDPOINT_URL", "DATA_REFRESH_STATE_MACHINE_ARN"] {
        assert!(
            std::env::var(var).is_ok_and(|v| !v.is_empty()),
            "{var} is not set: source .local/env and .local/stack.env"
        );
    }
    let suffix = format!("clie2e{}", std::process::id());

    let started = refresh(&[
        "--interval",
        "1",
        "start",
        "--media",
        "image",
        "--environment",
        "staging",
        "--suffix",
        &suffix,
        "--wait-if-busy",
        "--follow",
        "--timeout",
        "1200",
    ]);
    let stdout = text(&started.stdout);
    assert_eq!(
        started.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&started.stderr)
    );
    // Not a terminal: plain lines, then the summary with the report.
    for expected in [
        "started arn:",
        "range 0 attempt 1: worker i-",
        "reindex succeeded in",
        "filtered index:",
        "record counts (before → after)",
        "drop guard: passed",
        "· SUCCEEDED",
    ] {
        assert!(
            stdout.contains(expected),
            "{expected:?} missing from:\n{stdout}"
        );
    }
    let arn = stdout
        .lines()
        .find_map(|l| l.strip_prefix("[image] started "))
        .expect("the started line names the execution")
        .trim()
        .to_string();
    let name = arn.rsplit(':').next().unwrap_or_default().to_string();
    assert!(name.starts_with("cli-image-staging-"), "{name}");

    let status = refresh(&["--json", "status", &name]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status.stderr));
    let lines: Vec<Value> = text(&status.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
    let last = lines.last().expect("status lines");
    assert_eq!(last["event"], "status");
    assert_eq!(last["run"]["status"], "SUCCEEDED");
    assert_eq!(
        last["run"]["report"]["new_index"],
        format!("image-{suffix}")
    );
    assert!(lines.iter().any(|l| l["event"] == "range_progress"));

    let list = refresh(&["list", "--media", "image", "--limit", "5"]);
    let listed = text(&list.stdout);
    assert_eq!(list.status.code(), Some(0), "{}", text(&list.stderr));
    assert!(
        listed
            .lines()
            .any(|l| l.contains(&name) && l.contains(" cli ")),
        "{listed}"
    );

    let history = refresh(&["history", "image", "--limit", "3"]);
    assert_eq!(history.status.code(), Some(0), "{}", text(&history.stderr));
    assert!(text(&history.stdout).contains("SUCCEEDED"));

    // An execution that does not exist is a usage error naming it.
    let missing = refresh(&["status", "no-such-execution-name"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("no-such-execution-name"));
}
