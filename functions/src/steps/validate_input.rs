//! Step 0: validates the execution input and resolves `P` (names, suffix, workers, template).
//! Its input is `{"input": <the execution input as given>, "context": {execution_id,
//! start_time}}`, built by the state machine ("Add execution context") without looking
//! inside the execution input: whatever it is (an array, a string, an object carrying
//! `start_time`), it reaches this step and is refused here as `InvalidInput`.

use crate::Context;
use chrono::{DateTime, Utc};
use refresh_core::error::{StepError, StepResult};
use refresh_core::input::{parse_refresh_input, RefreshInput, RefreshParams};
use refresh_core::machines::{state_machine_of_execution, Machine};
use serde_json::{Map, Value};
use std::sync::Arc;

/// The keys the state machine adds (under `context`); an execution input may not set them.
pub const CONTEXT_KEYS: [&str; 2] = ["execution_id", "start_time"];

#[derive(Debug, Clone, PartialEq)]
pub struct ValidateRequest {
    pub input: RefreshInput,
    pub execution_id: String,
    /// `$$.Execution.StartTime`: names the index when the input gives no suffix.
    pub start_time: DateTime<Utc>,
}

/// Reads `{input, context}`: the context from the state machine, then the execution input,
/// strictly (a key of the context in it is refused, never overwritten).
pub fn parse(payload: Value) -> StepResult<ValidateRequest> {
    let Value::Object(mut request) = payload else {
        return Err(StepError::invalid_input(
            "validate_input takes {\"input\", \"context\"} (the state machine builds it)",
        ));
    };
    if let Some(extra) = request
        .keys()
        .find(|k| !matches!(k.as_str(), "input" | "context"))
    {
        return Err(StepError::invalid_input(format!(
            "{extra}: unexpected beside \"input\" and \"context\" (the state machine builds this request)"
        )));
    }
    let context = match request.remove("context") {
        Some(Value::Object(context)) => context,
        _ => {
            return Err(StepError::invalid_input(
                "context: missing or not an object (the state machine adds it)",
            ))
        }
    };
    let (execution_id, start_time) = parse_context(context)?;
    let input = request.remove("input").unwrap_or(Value::Null);
    if let Some(key) = input
        .as_object()
        .and_then(|fields| CONTEXT_KEYS.into_iter().find(|k| fields.contains_key(*k)))
    {
        return Err(StepError::invalid_input(format!(
            "{key}: not an execution input field: the state machine sets it"
        )));
    }
    let input = parse_refresh_input(&input)?;
    Ok(ValidateRequest {
        input,
        execution_id,
        start_time,
    })
}

fn parse_context(mut context: Map<String, Value>) -> StepResult<(String, DateTime<Utc>)> {
    if let Some(extra) = context.keys().find(|k| !CONTEXT_KEYS.contains(&k.as_str())) {
        return Err(StepError::invalid_input(format!(
            "context.{extra}: unexpected (the context holds only execution_id and start_time)"
        )));
    }
    let execution_id = match context.remove("execution_id") {
        Some(Value::String(id)) if !id.is_empty() => id,
        _ => {
            return Err(StepError::invalid_input(
                "context.execution_id: missing or not a string (the state machine adds it)",
            ))
        }
    };
    let start_time = match context.remove("start_time") {
        Some(Value::String(raw)) => DateTime::parse_from_rfc3339(&raw)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                StepError::invalid_input(format!(
                    "context.start_time: {raw:?} is not an RFC 3339 time: {e}"
                ))
            })?,
        _ => {
            return Err(StepError::invalid_input(
                "context.start_time: missing or not a string (the state machine adds it)",
            ))
        }
    };
    Ok((execution_id, start_time))
}

pub async fn handle(ctx: Arc<Context>, request: ValidateRequest) -> StepResult<RefreshParams> {
    let requested_filtered_index = request.input.filtered_index;
    let mut params = request
        .input
        .validate(&ctx.config.defaults, request.start_time)?;
    if on_filtered_index_machine(&request.execution_id) {
        params = params.for_filtered_index_machine(requested_filtered_index)?;
    }
    tracing::info!(execution = %request.execution_id, params = ?params, "input valid");
    Ok(params)
}

fn on_filtered_index_machine(execution_id: &str) -> bool {
    state_machine_of_execution(execution_id)
        .and_then(|arn| Machine::of_arn(&arn).ok())
        .is_some_and(|machine| machine == Machine::FilteredIndex)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use refresh_core::error::ErrorKind;
    use serde_json::json;

    fn context() -> Value {
        json!({
            "execution_id": "arn:aws:states:us-east-1:000000000000:execution:sm:run-1",
            "start_time": "2026-03-02T00:04:05.123Z"
        })
    }

    fn request(input: Value) -> Value {
        json!({"input": input, "context": context()})
    }

    #[test]
    fn context_and_input_are_read_apart() {
        let request = parse(request(json!({
            "media_type": "audio", "environment": "staging", "index_suffix": "init"
        })))
        .unwrap();
        assert_eq!(request.input.index_suffix.as_deref(), Some("init"));
        assert_eq!(
            request.start_time,
            Utc.with_ymd_and_hms(2026, 3, 2, 0, 4, 5).unwrap()
                + chrono::Duration::milliseconds(123)
        );
        assert!(request.execution_id.ends_with(":run-1"));
    }

    #[test]
    fn only_the_filtered_index_machine_is_told_apart() {
        let execution = |machine: &str| {
            format!("arn:aws:states:us-east-1:000000000000:execution:data-refresh{machine}:run-1")
        };
        assert!(on_filtered_index_machine(&execution("-filtered-index")));
        assert!(!on_filtered_index_machine(&execution("-data-refresh")));
        assert!(!on_filtered_index_machine("not an arn"));
    }

    #[test]
    fn unknown_input_fields_are_still_refused() {
        let err = parse(request(json!({
            "media_type": "audio", "environment": "staging", "sufix": "x"
        })))
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidInput);
        assert!(err.message.contains("sufix"), "{}", err.message);
    }

    /// Merged into the input, these used to overwrite (or be overwritten by) the context.
    #[test]
    fn context_keys_in_the_execution_input_are_refused_by_name() {
        for key in CONTEXT_KEYS {
            for value in [
                json!("2020-01-01T00:00:00Z"),
                json!("arn:aws:states:us-east-1:000000000000:execution:sm:other"),
                json!(null),
            ] {
                let mut input = json!({"media_type": "image", "environment": "staging"});
                input[key] = value.clone();
                let err = parse(request(input)).unwrap_err();
                assert_eq!(err.kind, ErrorKind::InvalidInput, "{key}={value}");
                assert!(
                    err.message.starts_with(&format!("{key}: ")),
                    "{key}={value}: {}",
                    err.message
                );
            }
        }
    }

    #[test]
    fn an_execution_input_that_is_not_an_object_is_invalid_input() {
        for (input, kind) in [
            (json!(["image", "staging"]), "an array"),
            (json!("image"), "a string"),
            (json!(42), "a number"),
            (json!(true), "a boolean"),
            (json!(null), "null"),
        ] {
            let err = parse(request(input.clone())).unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidInput, "{input}");
            assert_eq!(
                err.message,
                format!("execution input must be a JSON object, got {kind}"),
                "{input}"
            );
        }
        // Absent (a definition that forgot to pass it) reads as null: refused the same way.
        let err = parse(json!({"context": context()})).unwrap_err();
        assert!(err.message.contains("JSON object"), "{}", err.message);
    }

    #[test]
    fn missing_or_bad_context_is_named() {
        let input = json!({"media_type": "image", "environment": "staging"});
        let cases = [
            (json!({"execution_id": "arn:x"}), "context.start_time"),
            (
                json!({"execution_id": "arn:x", "start_time": "yesterday"}),
                "context.start_time",
            ),
            (
                json!({"start_time": "2026-03-02T00:04:05Z"}),
                "context.execution_id",
            ),
            (
                json!({"execution_id": "", "start_time": "2026-03-02T00:04:05Z"}),
                "context.execution_id",
            ),
            (
                json!({"execution_id": "arn:x", "start_time": "2026-03-02T00:04:05Z", "x": 1}),
                "context.x",
            ),
            (json!("arn:x"), "context"),
        ];
        for (context, field) in cases {
            let err = parse(json!({"input": input, "context": context})).unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidInput, "{context}");
            assert!(err.message.starts_with(field), "{context}: {}", err.message);
        }
        let err = parse(json!({"input": input})).unwrap_err();
        assert!(err.message.starts_with("context"), "{}", err.message);
        // The old merged shape (input fields at the top) is refused, not half-read.
        let err = parse(json!({"media_type": "image", "environment": "staging",
            "execution_id": "arn:x", "start_time": "2026-03-02T00:04:05Z"}))
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidInput);
        let err = parse(json!([1])).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidInput);
    }
}
