//! `refresh finish`: after a run ended `AliasesNotPromoted` (its table is promoted, its
//! aliases are not), the payload that moves the aliases, read from the run's cause.
//!
//! The state machine ends such a run with a cause that closes on `… with the payload
//! {json}` (`statemachine/src/data-refresh.json`, "Aliases not promoted"); the JSON is what
//! the promote_aliases function takes. Nothing else of the cause is relied on.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

/// The words just before the payload in the cause.
pub const PAYLOAD_MARKER: &str = "with the payload ";

/// The promote_aliases function's input (`functions/src/steps/promote_aliases.rs`): the
/// run's names only, nothing secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinishPayload {
    pub media_type: String,
    pub environment: String,
    pub index: String,
    pub filtered_index: String,
}

impl FinishPayload {
    pub fn to_value(&self) -> Value {
        serde_json::json!({
            "media_type": self.media_type,
            "environment": self.environment,
            "index": self.index,
            "filtered_index": self.filtered_index,
        })
    }
}

#[derive(Debug, Error, PartialEq)]
pub enum PayloadError {
    #[error("the cause has no \"{PAYLOAD_MARKER}{{…}}\" to finish with")]
    Missing,
    #[error("the payload in the cause is not the promote_aliases input: {0}")]
    Malformed(String),
}

/// The payload at the end of an `AliasesNotPromoted` cause. The last marker counts: the
/// error quoted earlier in the cause is Elasticsearch's text and could say anything.
pub fn payload_from_cause(cause: &str) -> Result<FinishPayload, PayloadError> {
    let start = cause.rfind(PAYLOAD_MARKER).ok_or(PayloadError::Missing)? + PAYLOAD_MARKER.len();
    let rest = &cause[start..];
    // The payload is one JSON object; a full stop or blank after it is not part of it.
    let mut values = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
    let value = match values.next() {
        Some(Ok(value)) => value,
        Some(Err(e)) => return Err(PayloadError::Malformed(e.to_string())),
        None => return Err(PayloadError::Missing),
    };
    let payload: FinishPayload =
        serde_json::from_value(value).map_err(|e| PayloadError::Malformed(e.to_string()))?;
    let names = [
        &payload.media_type,
        &payload.environment,
        &payload.index,
        &payload.filtered_index,
    ];
    if names.iter().any(|n| n.is_empty()) {
        return Err(PayloadError::Malformed("a name is empty".into()));
    }
    Ok(payload)
}

/// The indices the aliases pointed at before, from the function's answer
/// (`AliasesPromotion`: `{promotions, previous_indices}`).
pub fn previous_indices(answer: &Value) -> Vec<String> {
    answer["previous_indices"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// `<alias> → <index>` for each move the function reports.
pub fn promotions(answer: &Value) -> Vec<String> {
    answer["promotions"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|p| {
                    Some(format!(
                        "{} → {}",
                        p["alias"].as_str()?,
                        p["index"].as_str()?
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cause a LocalStack run ended with when Elasticsearch refused the alias move on
    /// every attempt (the cluster was read-only).
    const RECORDED_CAUSE: &str = r#"The audio table is promoted but its aliases are not: the last attempt failed with ConfigurationError: {"errorType":"ConfigurationError","errorMessage":"point alias audio at audio-x and audio-filtered at audio-x-filtered: Elasticsearch answered 403: cluster_block_exception: ..."}. The new indices audio-x and audio-x-filtered are kept. To finish, invoke the function of the stack output PromoteAliasesFunctionName with the payload {"media_type":"audio","environment":"staging","index":"audio-x","filtered_index":"audio-x-filtered"}"#;

    #[test]
    fn the_payload_is_read_from_a_recorded_cause() {
        let payload = payload_from_cause(RECORDED_CAUSE).expect("a payload");
        assert_eq!(
            payload,
            FinishPayload {
                media_type: "audio".into(),
                environment: "staging".into(),
                index: "audio-x".into(),
                filtered_index: "audio-x-filtered".into(),
            }
        );
        assert_eq!(
            payload.to_value(),
            serde_json::json!({"media_type": "audio", "environment": "staging",
                               "index": "audio-x", "filtered_index": "audio-x-filtered"})
        );
    }

    #[test]
    fn the_last_marker_counts_and_a_full_stop_after_it_does_not() {
        let cause = format!(
            "failed with X: {{\"errorMessage\":\"with the payload {{\\\"media_type\\\":\\\"image\\\"}}\"}}. {}.",
            &RECORDED_CAUSE[RECORDED_CAUSE.rfind("with the payload").unwrap_or(0)..]
        );
        assert_eq!(
            payload_from_cause(&cause).map(|p| p.index),
            Ok("audio-x".to_string())
        );
    }

    #[test]
    fn a_cause_without_a_good_payload_is_refused() {
        assert_eq!(
            payload_from_cause("WorkerTaskFailed: the worker died"),
            Err(PayloadError::Missing)
        );
        for bad in [
            "… with the payload {\"media_type\":\"audio\"",
            "… with the payload {\"media_type\":\"audio\",\"environment\":\"staging\"}",
            "… with the payload {\"media_type\":\"audio\",\"environment\":\"staging\",\"index\":\"a\",\"filtered_index\":\"b\",\"extra\":1}",
            "… with the payload {\"media_type\":\"\",\"environment\":\"staging\",\"index\":\"a\",\"filtered_index\":\"b\"}",
            "… with the payload [1]",
        ] {
            assert!(
                matches!(payload_from_cause(bad), Err(PayloadError::Malformed(_))),
                "{bad}"
            );
        }
        assert_eq!(
            payload_from_cause("… with the payload "),
            Err(PayloadError::Missing)
        );
    }

    #[test]
    fn the_answer_lists_moves_and_previous_indices() {
        let answer = serde_json::json!({
            "promotions": [
                {"alias": "audio", "index": "audio-x", "previous_indices": ["audio-old"]},
                {"alias": "audio-filtered", "index": "audio-x-filtered",
                 "previous_indices": ["audio-old-filtered"]}
            ],
            "previous_indices": ["audio-old", "audio-old-filtered"]
        });
        assert_eq!(
            promotions(&answer),
            ["audio → audio-x", "audio-filtered → audio-x-filtered"]
        );
        assert_eq!(
            previous_indices(&answer),
            ["audio-old", "audio-old-filtered"]
        );
        assert!(previous_indices(&serde_json::json!({})).is_empty());
    }
}
