//! Step 0: validates the execution input and resolves `P` (names, suffix, workers, template).
//! Its input is the execution input merged with `{execution_id, start_time}` by the state
//! machine ("Add execution context").

use crate::Context;
use chrono::{DateTime, Utc};
use refresh_core::error::{StepError, StepResult};
use refresh_core::input::{parse_refresh_input, RefreshInput, RefreshParams};
use serde_json::Value;
use std::sync::Arc;

/// The keys the state machine adds to the execution input.
pub const CONTEXT_KEYS: [&str; 2] = ["execution_id", "start_time"];

#[derive(Debug, Clone, PartialEq)]
pub struct ValidateRequest {
    pub input: RefreshInput,
    pub execution_id: String,
    /// `$$.Execution.StartTime`: names the index when the input gives no suffix.
    pub start_time: DateTime<Utc>,
}

/// Splits the context keys off and parses the rest strictly as the execution input.
pub fn parse(payload: Value) -> StepResult<ValidateRequest> {
    let Value::Object(mut fields) = payload else {
        return Err(StepError::invalid_input(
            "execution input must be a JSON object",
        ));
    };
    let execution_id = match fields.remove("execution_id") {
        Some(Value::String(id)) if !id.is_empty() => id,
        _ => {
            return Err(StepError::invalid_input(
                "execution_id: missing or not a string (the state machine adds it)",
            ))
        }
    };
    let start_time = match fields.remove("start_time") {
        Some(Value::String(raw)) => DateTime::parse_from_rfc3339(&raw)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                StepError::invalid_input(format!(
                    "start_time: {raw:?} is not an RFC 3339 time: {e}"
                ))
            })?,
        _ => {
            return Err(StepError::invalid_input(
                "start_time: missing or not a string (the state machine adds it)",
            ))
        }
    };
    let input = parse_refresh_input(&Value::Object(fields))?;
    Ok(ValidateRequest {
        input,
        execution_id,
        start_time,
    })
}

pub async fn handle(ctx: Arc<Context>, request: ValidateRequest) -> StepResult<RefreshParams> {
    let params = request
        .input
        .validate(&ctx.config.defaults, request.start_time)?;
    tracing::info!(execution = %request.execution_id, params = ?params, "input valid");
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use refresh_core::error::ErrorKind;
    use serde_json::json;

    #[test]
    fn context_is_split_off_and_the_input_parsed() {
        let request = parse(json!({
            "media_type": "audio", "environment": "staging", "index_suffix": "init",
            "execution_id": "arn:aws:states:us-east-1:000000000000:execution:sm:run-1",
            "start_time": "2026-03-02T00:04:05.123Z"
        }))
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
    fn unknown_input_fields_are_still_refused() {
        let err = parse(json!({
            "media_type": "audio", "environment": "staging", "sufix": "x",
            "execution_id": "arn:x", "start_time": "2026-03-02T00:04:05Z"
        }))
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidInput);
        assert!(err.message.contains("sufix"), "{}", err.message);
    }

    #[test]
    fn missing_or_bad_context_is_named() {
        let err = parse(json!({"media_type": "image", "environment": "staging",
            "execution_id": "arn:x"}))
        .unwrap_err();
        assert!(err.message.contains("start_time"), "{}", err.message);
        let err = parse(json!({"media_type": "image", "environment": "staging",
            "execution_id": "arn:x", "start_time": "yesterday"}))
        .unwrap_err();
        assert!(err.message.contains("start_time"), "{}", err.message);
        let err = parse(json!({"media_type": "image", "environment": "staging",
            "start_time": "2026-03-02T00:04:05Z"}))
        .unwrap_err();
        assert!(err.message.contains("execution_id"), "{}", err.message);
    }
}
