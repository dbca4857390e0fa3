//! Execution histories and descriptions as plain data.
//!
//! Everything the CLI shows is derived from these two shapes, read either from the Step
//! Functions SDK (`aws.rs` converts) or from recorded JSON (`GetExecutionHistory` and
//! `DescribeExecution` as the AWS CLI or boto3 print them), so the rendering is tested on
//! recorded runs without any AWS call.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use thiserror::Error;

/// One history event: its `*EventDetails` object kept as JSON, under the AWS names.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEvent {
    pub id: i64,
    pub previous_id: i64,
    pub timestamp: DateTime<Utc>,
    /// `type`, e.g. `TaskStateEntered`, `LambdaFunctionFailed`, `ExecutionAborted`.
    pub kind: String,
    /// The event's details object (`stateEnteredEventDetails`, …); `Null` when it has none.
    pub details: Value,
}

impl HistoryEvent {
    /// A string field of the details (`name`, `error`, `cause`, `input`, `output`).
    pub fn detail(&self, field: &str) -> Option<&str> {
        self.details.get(field).and_then(Value::as_str)
    }

    /// The state's name for `*StateEntered` / `*StateExited` events.
    pub fn state_name(&self) -> Option<&str> {
        if self.kind.ends_with("StateEntered") || self.kind.ends_with("StateExited") {
            self.detail("name")
        } else {
            None
        }
    }

    /// `input` (entered) or `output` (exited, succeeded) parsed as JSON, when present.
    pub fn data(&self) -> Option<Value> {
        let raw = self.detail("output").or_else(|| self.detail("input"))?;
        serde_json::from_str(raw).ok()
    }
}

/// What `DescribeExecution` says about an execution.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExecutionInfo {
    pub arn: String,
    pub state_machine_arn: String,
    pub name: String,
    /// `RUNNING`, `SUCCEEDED`, `FAILED`, `TIMED_OUT`, `ABORTED` (or `PENDING_REDRIVE`).
    pub status: String,
    pub start: Option<DateTime<Utc>>,
    pub stop: Option<DateTime<Utc>>,
    pub input: Option<String>,
    pub output: Option<String>,
    pub error: Option<String>,
    pub cause: Option<String>,
}

impl ExecutionInfo {
    pub fn input_json(&self) -> Option<Value> {
        self.input
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
    }

    pub fn is_running(&self) -> bool {
        self.status == "RUNNING"
    }
}

#[derive(Debug, Error, PartialEq)]
pub enum RecordError {
    #[error("{0}")]
    Shape(String),
}

fn shape(message: impl Into<String>) -> RecordError {
    RecordError::Shape(message.into())
}

/// A timestamp as recorded: RFC 3339 text (AWS CLI), `YYYY-MM-DD hh:mm:ss…+00:00` (boto3
/// through `str`), or seconds since the epoch (AWS CLI with numeric timestamps).
pub fn parse_time(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::Number(n) => {
            let secs = n.as_f64()?;
            DateTime::from_timestamp_millis((secs * 1000.0).round() as i64)
        }
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .or_else(|_| DateTime::parse_from_rfc3339(&s.replacen(' ', "T", 1)))
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        _ => None,
    }
}

/// Reads one recorded event: `{timestamp, type, id, previousEventId, <x>EventDetails}`.
pub fn event_from_json(value: &Value) -> Result<HistoryEvent, RecordError> {
    let object = value
        .as_object()
        .ok_or_else(|| shape("history event is not an object"))?;
    let id = object
        .get("id")
        .and_then(Value::as_i64)
        .ok_or_else(|| shape("history event without an id"))?;
    let kind = object
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| shape(format!("history event {id} without a type")))?
        .to_string();
    let timestamp = object
        .get("timestamp")
        .and_then(parse_time)
        .ok_or_else(|| shape(format!("history event {id} without a readable timestamp")))?;
    let details = object
        .iter()
        .find(|(k, _)| k.ends_with("EventDetails"))
        .map(|(_, v)| v.clone())
        .unwrap_or(Value::Null);
    Ok(HistoryEvent {
        id,
        previous_id: object
            .get("previousEventId")
            .and_then(Value::as_i64)
            .unwrap_or(0),
        timestamp,
        kind,
        details,
    })
}

/// Reads `GetExecutionHistory` output (`{"events": [...]}`) or a bare array of events,
/// in id order whatever order they were recorded in.
pub fn events_from_json(value: &Value) -> Result<Vec<HistoryEvent>, RecordError> {
    let list = match value {
        Value::Array(list) => list,
        Value::Object(o) => o
            .get("events")
            .and_then(Value::as_array)
            .ok_or_else(|| shape("no \"events\" array"))?,
        _ => return Err(shape("history is neither an object nor an array")),
    };
    let mut events = list
        .iter()
        .map(event_from_json)
        .collect::<Result<Vec<_>, _>>()?;
    events.sort_by_key(|e| e.id);
    Ok(events)
}

fn string_field(object: &Map<String, Value>, key: &str) -> Option<String> {
    object.get(key).and_then(Value::as_str).map(str::to_string)
}

/// Reads `DescribeExecution` output.
pub fn execution_from_json(value: &Value) -> Result<ExecutionInfo, RecordError> {
    let object = value
        .as_object()
        .ok_or_else(|| shape("execution description is not an object"))?;
    let arn = string_field(object, "executionArn")
        .ok_or_else(|| shape("execution description without executionArn"))?;
    Ok(ExecutionInfo {
        state_machine_arn: string_field(object, "stateMachineArn").unwrap_or_default(),
        name: string_field(object, "name")
            .unwrap_or_else(|| arn.rsplit(':').next().unwrap_or_default().to_string()),
        status: string_field(object, "status").unwrap_or_else(|| "UNKNOWN".into()),
        start: object.get("startDate").and_then(parse_time),
        stop: object.get("stopDate").and_then(parse_time),
        input: string_field(object, "input"),
        output: string_field(object, "output"),
        error: string_field(object, "error"),
        cause: string_field(object, "cause"),
        arn,
    })
}

/// A recorded run: `{"describe": <DescribeExecution>, "history": <GetExecutionHistory>}`
/// (the test fixtures' shape; a refresh adds its range executions, see [`recorded_ranges`]).
pub fn recorded_run(value: &Value) -> Result<(ExecutionInfo, Vec<HistoryEvent>), RecordError> {
    let describe = value
        .get("describe")
        .ok_or_else(|| shape("recorded run without \"describe\""))?;
    let history = value
        .get("history")
        .ok_or_else(|| shape("recorded run without \"history\""))?;
    Ok((execution_from_json(describe)?, events_from_json(history)?))
}

/// The range executions recorded with a run (`"children": [{"describe", "history"}, …]`;
/// none in runs older than the worker-range machine).
pub fn recorded_ranges(
    value: &Value,
) -> Result<Vec<(ExecutionInfo, Vec<HistoryEvent>)>, RecordError> {
    let Some(children) = value.get("children") else {
        return Ok(Vec::new());
    };
    children
        .as_array()
        .ok_or_else(|| shape("\"children\" is not an array"))?
        .iter()
        .map(recorded_run)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timestamps_in_every_recorded_form() {
        let expected = DateTime::parse_from_rfc3339("2026-03-02T00:04:05.250Z")
            .map(|t| t.with_timezone(&Utc))
            .ok();
        for raw in [
            json!("2026-03-02T00:04:05.250000+00:00"),
            json!("2026-03-02 00:04:05.250000+00:00"),
            json!("2026-03-02T00:04:05.25Z"),
            json!(1_772_409_845.25),
        ] {
            assert_eq!(parse_time(&raw), expected, "{raw}");
        }
        assert_eq!(parse_time(&json!("yesterday")), None);
        assert_eq!(parse_time(&json!(null)), None);
    }

    #[test]
    fn events_are_read_with_their_details_and_sorted() {
        let events = events_from_json(&json!({"events": [
            {"timestamp": "2026-03-02T00:00:01Z", "type": "PassStateEntered", "id": 2,
             "previousEventId": 1,
             "stateEnteredEventDetails": {"name": "Prepare input", "input": "{\"a\":1}"}},
            {"timestamp": "2026-03-02T00:00:00Z", "type": "ExecutionStarted", "id": 1,
             "previousEventId": 0, "executionStartedEventDetails": {"input": "{}"}}
        ]}))
        .unwrap();
        assert_eq!(events[0].kind, "ExecutionStarted");
        assert_eq!(events[1].state_name(), Some("Prepare input"));
        assert_eq!(events[1].data(), Some(json!({"a": 1})));
        assert_eq!(events[1].previous_id, 1);
    }

    #[test]
    fn malformed_records_name_the_problem() {
        let err = events_from_json(&json!({"events": [{"type": "X", "id": 3}]})).unwrap_err();
        assert!(err.to_string().contains("event 3"), "{err}");
        assert!(events_from_json(&json!("x")).is_err());
        assert!(execution_from_json(&json!({"name": "x"})).is_err());
    }

    #[test]
    fn description_without_name_takes_it_from_the_arn() {
        let info = execution_from_json(&json!({
            "executionArn": "arn:aws:states:r:0:execution:m:run-7", "status": "RUNNING",
            "startDate": "2026-03-02T00:00:00Z"
        }))
        .unwrap();
        assert_eq!(info.name, "run-7");
        assert!(info.is_running());
        assert!(info.stop.is_none());
    }
}
