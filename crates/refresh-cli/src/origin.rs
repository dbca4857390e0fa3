//! Who started an execution. Step Functions does not record the caller, so this reads what
//! each starter leaves: the CLI names its executions `cli-…`; the weekly schedule rules
//! start them under a UUID name with a fixed input; the console's default name is a UUID.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

/// Every execution this CLI starts is named with this prefix.
pub const CLI_PREFIX: &str = "cli-";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Cli,
    Schedule,
    /// A UUID name: the console's default (also what a bare StartExecution gets).
    Console,
    /// Named by another caller (a script, a test harness, an SDK call).
    Api,
}

impl Origin {
    pub fn label(self) -> &'static str {
        match self {
            Origin::Cli => "cli",
            Origin::Schedule => "schedule",
            Origin::Console => "console",
            Origin::Api => "api",
        }
    }
}

/// The name the CLI gives an execution: recognisable, sortable, unique to the millisecond
/// per media and environment (Step Functions refuses a reused name with another input).
pub fn cli_execution_name(media: &str, environment: &str, now: DateTime<Utc>) -> String {
    format!(
        "{CLI_PREFIX}{media}-{environment}-{}",
        now.format("%Y%m%dT%H%M%S%3fZ")
    )
}

/// The schedules' input is exactly `{media_type, environment, wait_if_busy: true}`
/// (infra/template.yaml, the Weekly* rules); an operator's run never sends only that.
fn is_schedule_input(input: &Value) -> bool {
    let Some(fields) = input.as_object() else {
        return false;
    };
    fields.len() == 3
        && fields.get("media_type").is_some_and(Value::is_string)
        && fields.get("environment").is_some_and(Value::is_string)
        && fields.get("wait_if_busy") == Some(&Value::Bool(true))
}

fn is_uuid(name: &str) -> bool {
    let groups: Vec<&str> = name.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The rules start executions under a generated (UUID) name, as the console does by
/// default; the schedules' fixed input tells the two apart. A chosen name with the
/// schedules' input is someone imitating a schedule (the e2e suite does).
pub fn origin(name: &str, input: Option<&Value>) -> Origin {
    if name.starts_with(CLI_PREFIX) {
        Origin::Cli
    } else if !is_uuid(name) {
        Origin::Api
    } else if input.is_some_and(is_schedule_input) {
        Origin::Schedule
    } else {
        Origin::Console
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    #[test]
    fn cli_names_are_valid_execution_names_and_recognised() {
        let now = Utc
            .with_ymd_and_hms(2026, 3, 2, 0, 4, 5)
            .single()
            .expect("valid time")
            + chrono::Duration::milliseconds(7);
        let name = cli_execution_name("image", "staging", now);
        assert_eq!(name, "cli-image-staging-20260302T000405007Z");
        assert!(name.len() <= 80);
        assert!(name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_eq!(origin(&name, None), Origin::Cli);
    }

    /// The rule inputs in the template are what a scheduled run carries.
    #[test]
    fn every_schedule_input_in_the_template_reads_as_schedule() {
        let path = format!("{}/../../infra/template.yaml", env!("CARGO_MANIFEST_DIR"));
        let template = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let inputs: Vec<Value> = template
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Input: "))
            .map(|raw| {
                let raw = raw.trim().trim_matches('\'');
                serde_json::from_str(raw).unwrap_or_else(|e| panic!("{raw}: {e}"))
            })
            .collect();
        assert!(inputs.len() >= 4, "schedule inputs found: {inputs:?}");
        for input in &inputs {
            assert_eq!(
                origin("3f1c2d4e-aaaa-bbbb-cccc-0123456789ab", Some(input)),
                Origin::Schedule,
                "{input}"
            );
        }
    }

    #[test]
    fn console_and_other_callers() {
        let operator = json!({"media_type": "image", "environment": "staging"});
        assert_eq!(
            origin("3f1c2d4e-aaaa-bbbb-cccc-0123456789ab", Some(&operator)),
            Origin::Console
        );
        assert_eq!(
            origin("image-staging-1772409845", Some(&operator)),
            Origin::Api
        );
        let busy_with_suffix = json!({"media_type": "image", "environment": "staging",
            "wait_if_busy": true, "index_suffix": "x"});
        assert_eq!(
            origin(
                "3f1c2d4e-aaaa-bbbb-cccc-0123456789ab",
                Some(&busy_with_suffix)
            ),
            Origin::Console
        );
        assert_eq!(origin("not-a-uuid-at-all-x", None), Origin::Api);
        let schedule =
            json!({"media_type": "audio", "environment": "staging", "wait_if_busy": true});
        assert_eq!(origin("e2e-queued-1", Some(&schedule)), Origin::Api);
    }
}
