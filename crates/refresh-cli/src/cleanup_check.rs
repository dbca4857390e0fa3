//! What the cleanup rule did for an execution, read from the cleanup function's log.
//!
//! An aborted execution never runs its own cleanup: the `FailedRunCleanupRule` invokes the
//! cleanup function with the status change event, and only that function's log says whether
//! the temp table and the unpromoted indices are gone. It logs one JSON object a line
//! (`refresh_core::telemetry`): `"cleanup done"` with `execution` and the output (Rust
//! debug text), or `"nothing to clean up"` with `execution` and `reason`.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum CleanupSeen {
    /// The cleanup finished for this execution; what it removed.
    Done(String),
    /// The cleanup decided there was nothing to do for this execution, and why.
    Skipped(String),
    /// A cleanup invocation failed since the stop (the rule retries it).
    Failed(String),
}

fn json_part(line: &str) -> Option<Value> {
    let start = line.find('{')?;
    serde_json::from_str(line[start..].trim_end()).ok()
}

/// The most telling cleanup line about `execution_arn` among `lines` (oldest first): its
/// result when there is one, else the last failure.
pub fn cleanup_seen(lines: &[String], execution_arn: &str) -> Option<CleanupSeen> {
    let mut failure = None;
    for line in lines {
        let Some(entry) = json_part(line) else {
            continue;
        };
        let message = entry["message"].as_str().unwrap_or_default();
        let ours = entry["execution"].as_str() == Some(execution_arn);
        match message {
            "cleanup done" if ours => {
                return Some(CleanupSeen::Done(describe_output(
                    entry["output"].as_str().unwrap_or_default(),
                )))
            }
            "nothing to clean up" if ours => {
                return Some(CleanupSeen::Skipped(
                    entry["reason"]
                        .as_str()
                        .unwrap_or("no reason given")
                        .to_string(),
                ))
            }
            "cleanup part failed" | "step failed" => {
                failure = Some(CleanupSeen::Failed(format!(
                    "{}: {}",
                    entry["error_type"].as_str().unwrap_or("error"),
                    crate::interpret::one_line(entry["error"].as_str().unwrap_or_default(), 300)
                )));
            }
            _ => {}
        }
    }
    failure
}

/// The items of `name: [..]` in Rust debug text.
fn debug_list(text: &str, name: &str) -> Vec<String> {
    let Some(start) = text.find(&format!("{name}: [")) else {
        return Vec::new();
    };
    let rest = &text[start + name.len() + 3..];
    let Some(end) = rest.find(']') else {
        return Vec::new();
    };
    rest[..end]
        .split(',')
        .map(|s| s.trim().trim_matches('"').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn debug_bool(text: &str, name: &str) -> Option<bool> {
    let rest = &text[text.find(&format!("{name}: "))? + name.len() + 2..];
    if rest.starts_with("true") {
        Some(true)
    } else if rest.starts_with("false") {
        Some(false)
    } else {
        None
    }
}

/// `CleanupOutput { … }` as a sentence about the temp table and the indices.
pub fn describe_output(debug: &str) -> String {
    let mut parts = Vec::new();
    let terminated = debug_list(debug, "terminated_instances");
    if !terminated.is_empty() {
        parts.push(format!("terminated {}", terminated.join(", ")));
    }
    match debug_bool(debug, "dropped_temp_table") {
        Some(true) => parts.push("dropped the temp table".to_string()),
        Some(false) => parts.push("no temp table was left".to_string()),
        None => {}
    }
    let deleted = debug_list(debug, "deleted_indices");
    if deleted.is_empty() {
        parts.push("no unpromoted index was left".to_string());
    } else {
        parts.push(format!("deleted {}", deleted.join(", ")));
    }
    let kept = debug_list(debug, "kept_indices");
    if !kept.is_empty() {
        parts.push(format!(
            "kept {} (an alias points at them)",
            kept.join(", ")
        ));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:states:us-east-1:0:execution:st-data-refresh:cli-image-x";

    fn line(json: serde_json::Value) -> String {
        format!("2026-03-02T00:10:00Z {json}")
    }

    #[test]
    fn the_result_for_this_execution_is_found() {
        let lines = vec![
            "START RequestId: 1 Version: $LATEST".to_string(),
            line(
                serde_json::json!({"message": "cleanup done", "execution": "arn:other",
                "output": "CleanupOutput { deleted_indices: [\"x\"] }"}),
            ),
            line(
                serde_json::json!({"level": "INFO", "message": "cleanup done", "execution": ARN,
                "output": "CleanupOutput { terminated_instances: [\"i-1\"], dropped_temp_table: true, dropped_fdw_server: true, deleted_indices: [\"image-x\", \"image-x-filtered\"], cancelled_tasks: [], kept_indices: [], skipped: None }"}),
            ),
        ];
        assert_eq!(
            cleanup_seen(&lines, ARN),
            Some(CleanupSeen::Done(
                "terminated i-1; dropped the temp table; deleted image-x, image-x-filtered".into()
            ))
        );
    }

    #[test]
    fn a_skip_and_a_failure_are_told_apart() {
        let skipped = vec![line(serde_json::json!({"message": "nothing to clean up",
            "execution": ARN, "reason": "the run was refused before it created anything"}))];
        assert_eq!(
            cleanup_seen(&skipped, ARN),
            Some(CleanupSeen::Skipped(
                "the run was refused before it created anything".into()
            ))
        );
        let failed = vec![line(serde_json::json!({"message": "step failed",
            "error_type": "TransientDatabaseError", "error": "connection refused"}))];
        assert_eq!(
            cleanup_seen(&failed, ARN),
            Some(CleanupSeen::Failed(
                "TransientDatabaseError: connection refused".into()
            ))
        );
        assert_eq!(cleanup_seen(&["not json".to_string()], ARN), None);
    }

    /// Two lines as LocalStack recorded them for an operator stop (one JSON object a line).
    #[test]
    fn a_recorded_cleanup_after_a_stop_is_read() {
        let arn = "arn:aws:states:us-east-1:000000000000:execution:data-refresh-data-refresh:e2e-operator-stop-28419-1796166997476";
        let lines = vec![
            r#"{"timestamp":"2026-12-01T23:16:46.222026Z","level":"INFO","message":"terminated indexer workers","execution":"arn:aws:states:us-east-1:000000000000:execution:data-refresh-data-refresh:e2e-operator-stop-28419-1796166997476","instances":"[\"i-7ddb19d5345bb0680\", \"i-00062db52d4e3f0c1\"]","spans":[{"requestId":"44234747-0579-4d99-a4bc-ab274ca8a168","name":"Lambda runtime invoke"}]}"#.to_string(),
            r#"{"timestamp":"2026-12-01T23:16:48.498980Z","level":"INFO","message":"cleanup done","execution":"arn:aws:states:us-east-1:000000000000:execution:data-refresh-data-refresh:e2e-operator-stop-28419-1796166997476","output":"CleanupOutput { terminated_instances: [], dropped_temp_table: true, dropped_fdw_server: true, deleted_indices: [\"image-20261201231637\"], cancelled_tasks: [], kept_indices: [], skipped: None }","spans":[{"requestId":"44234747-0579-4d99-a4bc-ab274ca8a168","name":"Lambda runtime invoke"}]}"#.to_string(),
        ];
        assert_eq!(
            cleanup_seen(&lines, arn),
            Some(CleanupSeen::Done(
                "dropped the temp table; deleted image-20261201231637".into()
            ))
        );
        assert_eq!(cleanup_seen(&lines[..1], arn), None, "not done yet");
    }

    #[test]
    fn nothing_left_is_said_as_such() {
        assert_eq!(
            describe_output("CleanupOutput { terminated_instances: [], dropped_temp_table: false, deleted_indices: [], kept_indices: [\"image-x\"], skipped: None }"),
            "no temp table was left; no unpromoted index was left; kept image-x (an alias points at them)"
        );
    }
}
