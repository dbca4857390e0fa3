//! Each error path of the binary: its exit code and its one-line message. Nothing here
//! reaches a real AWS endpoint: AWS calls go to a closed loopback port.

use std::ffi::OsString;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_refresh");

/// A loopback port nothing listens on (port 1 needs root to bind; nobody does here).
const CLOSED_ENDPOINT: &str = "http://127.0.0.1:1";

/// Dummy credentials, checked never to appear in any output.
const KEY_ID: &str = "AKIDCLITESTKEYID";
const SECRET: &str = "cli-test-secret-value";

fn refresh(args: &[&str]) -> Output {
    refresh_os(args.iter().map(OsString::from).collect())
}

fn refresh_os(args: Vec<OsString>) -> Output {
    Command::new(BIN)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_ENDPOINT_URL", CLOSED_ENDPOINT)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_MAX_ATTEMPTS", "1")
        .env(
            "DATA_REFRESH_STATE_MACHINE_ARN",
            "arn:aws:states:us-east-1:000000000000:stateMachine:data-refresh-data-refresh",
        )
        .output()
        .expect("the refresh binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr)
        .trim_end()
        .to_string()
}

fn assert_one_line_naming(output: &Output, code: i32, named: &str) {
    let text = stderr(output);
    assert_eq!(output.status.code(), Some(code), "stderr: {text}");
    assert_eq!(text.lines().count(), 1, "one line: {text}");
    assert!(text.contains(named), "{named} named in: {text}");
}

#[test]
fn bad_arguments_exit_2_naming_them() {
    for (args, named) in [
        (vec!["start", "--media", "video"], "--media"),
        (
            vec!["start", "--media", "image", "--row-limit", "-5"],
            "--row-limit",
        ),
        (
            vec![
                "start",
                "--media",
                "image",
                "--wait-if-busy",
                "--allow-concurrent",
            ],
            "--allow-concurrent",
        ),
        (vec!["status", "--bogus"], "--bogus"),
        (vec!["history"], "MEDIA"),
        (vec!["stop"], "EXECUTION"),
        (vec!["list", "--limit", "zero"], "--limit"),
    ] {
        assert_one_line_naming(&refresh(&args), 2, named);
    }
}

#[test]
fn invalid_input_is_refused_with_3_before_any_aws_call() {
    // Were AWS called, the closed endpoint would make this exit 5.
    for (args, named) in [
        (
            vec!["start", "--media", "image", "--suffix", "Bad"],
            "--suffix",
        ),
        (
            vec!["start", "--media", "all", "--row-limit", "0"],
            "--row-limit",
        ),
        (
            vec!["start", "--media", "audio", "--max-drop-pct", "250"],
            "--max-drop-pct",
        ),
        (
            vec!["start", "--media", "image", "--environment", "prod"],
            "--environment",
        ),
    ] {
        assert_one_line_naming(&refresh(&args), 3, named);
    }
}

#[test]
fn a_valid_dry_run_needs_no_aws() {
    let output = refresh(&[
        "start",
        "--media",
        "all",
        "--suffix",
        "init",
        "--override-search-guard",
        "--dry-run",
    ]);
    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("index image-init"), "{text}");
    assert!(text.contains("index audio-init"), "{text}");
    assert!(text.contains("\"override_search_guard\":true"), "{text}");
    // Warned about, on stderr: the guard will not stop promotion.
    assert!(stderr(&output).contains("--override-search-guard"));
}

/// `refresh start` with one malformed argument.
fn start_with(flag: &str, value: OsString) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["start", "--media", "image"].map(OsString::from).to_vec();
    if flag == "--media" {
        args.truncate(1);
    }
    args.push(flag.into());
    args.push(value);
    args
}

#[test]
fn malformed_arguments_are_refused_naming_them_before_any_aws_call() {
    use std::os::unix::ffi::OsStringExt;
    let long_suffix = "a".repeat(300);
    let text_cases: Vec<(&str, &str)> = vec![
        ("--media", ""),
        ("--media", "IMAGE"),
        ("--media", "video"),
        ("--media", "image;audio"),
        ("--media", "image,"),
        ("--environment", ""),
        ("--environment", "Staging"),
        ("--environment", "prod"),
        ("--environment", "staging "),
        ("--suffix", ""),
        ("--suffix", "Init"),
        ("--suffix", "a/b"),
        ("--suffix", "a*b"),
        ("--suffix", "a,b"),
        ("--suffix", "a b"),
        ("--suffix", "_x"),
        ("--suffix", "+x"),
        ("--suffix", "filtered"),
        ("--suffix", "../x"),
        ("--suffix", "x'; DROP TABLE image;--"),
        ("--suffix", &long_suffix),
        ("--row-limit", "-5"),
        ("--row-limit", "0"),
        ("--row-limit", "1.5"),
        ("--row-limit", "ten"),
        ("--row-limit", "99999999999999999999999"),
        ("--max-drop-pct", "-1"),
        ("--max-drop-pct", "250"),
        ("--max-drop-pct", "NaN"),
        ("--max-drop-pct", "inf"),
        ("--max-drop-pct", "half"),
        ("--filtered-index", ""),
        ("--filtered-index", "both"),
        ("--filtered-index", "DUAL_WRITE"),
        ("--filtered-index", "dual-write"),
    ];
    let mut cases: Vec<(String, Vec<OsString>, &str)> = text_cases
        .into_iter()
        .map(|(flag, value)| {
            let shown = format!("start {flag} {value:?}");
            (shown, start_with(flag, value.into()), flag)
        })
        .collect();
    cases.push((
        "start --suffix <non-UTF-8 bytes>".to_string(),
        start_with("--suffix", OsString::from_vec(b"ab\xff\xfe".to_vec())),
        "--suffix",
    ));
    cases.push((
        "start --media image --timeout 60 (needs --follow)".to_string(),
        ["start", "--media", "image", "--timeout", "60"]
            .map(OsString::from)
            .to_vec(),
        "--follow",
    ));
    cases.push((
        "start --media image --bogus".to_string(),
        ["start", "--media", "image", "--bogus"]
            .map(OsString::from)
            .to_vec(),
        "--bogus",
    ));
    cases.push((
        "start --media (no value)".to_string(),
        ["start", "--media"].map(OsString::from).to_vec(),
        "--media",
    ));
    let mut accepted = Vec::new();
    for (shown, args, flag) in cases {
        let output = refresh_os(args);
        let text = stderr(&output);
        let code = output.status.code();
        // 2: clap refused it; 3: refresh_core::input refused it. Both before any AWS call
        // (one would have hit the closed endpoint and exited 5).
        let refused = matches!(code, Some(2 | 3)) && text.lines().count() == 1;
        let named = text.contains(flag);
        testkit::reliability::Trial {
            kind: "CLI arguments",
            fault: shown.clone(),
            outcome: match code {
                Some(code) if refused && named => format!("exit {code}, one line naming {flag}"),
                _ => format!("exit {code:?}: {text}"),
            },
            lost: if matches!(code, Some(2 | 3)) {
                "nothing".to_string()
            } else {
                "not refused before its AWS calls".to_string()
            },
            test: "exit_codes::malformed_arguments_are_refused_naming_them_before_any_aws_call"
                .to_string(),
        }
        .record();
        if !(refused && named) {
            accepted.push(format!("{shown}: exit {code:?}: {text}"));
        }
    }
    assert!(
        accepted.is_empty(),
        "not refused as expected: {accepted:#?}"
    );
}

#[test]
fn unreachable_aws_exits_5() {
    for args in [
        vec!["status", "some-run"],
        vec!["list"],
        vec!["stop", "some-run"],
        vec!["history", "image"],
        vec!["start", "--media", "image"],
        vec!["finish", "some-run"],
    ] {
        let output = refresh(&args);
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(5), "{args:?}: {text}");
        assert_eq!(text.lines().count(), 1, "{args:?}: one line: {text}");
        assert!(text.contains("cannot reach AWS"), "{args:?}: {text}");
        assert!(
            !text.contains(KEY_ID) && !text.contains(SECRET),
            "{args:?}: no credential in: {text}"
        );
    }
}

#[test]
fn help_and_version_succeed() {
    assert_eq!(refresh(&["--help"]).status.code(), Some(0));
    assert_eq!(refresh(&["--version"]).status.code(), Some(0));
    // No subcommand: the help, as a usage error.
    assert_eq!(refresh(&[]).status.code(), Some(2));
}
