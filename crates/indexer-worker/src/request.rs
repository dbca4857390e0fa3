//! Validation of `POST /task` bodies: pure, so every refusal is unit-tested. (That no alias
//! points at `target_index` needs the cluster: `api.rs` checks it.)
//!
//! A body with `"kind": "sql"` is a SQL task, parsed strictly (unknown keys refused by name);
//! any other body is a reindex, parsed exactly as before the SQL tasks existed.

use refresh_core::media::MediaType;
use refresh_core::names::{check_new_index, filtered_index_name, media_of_index};
use refresh_core::worker_api::{SqlJob, SqlTaskRequest, TaskKind, MAX_SQL_PARALLELISM};

use crate::sql_task::SqlSpec;
use crate::tasks::TaskSpec;

pub use refresh_core::worker_api::TaskRequest;

/// A validated `POST /task` body of either kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    Reindex(TaskSpec),
    Sql(SqlSpec),
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RequestError {
    #[error("request body is not a valid task: {0}")]
    Malformed(String),
    #[error("model_name {0:?} is not a media type: expected \"image\" or \"audio\"")]
    UnknownModel(String),
    #[error("table_name {0:?} is not a temp table: expected \"temp_import_image\" or \"temp_import_audio\"")]
    UnknownTable(String),
    #[error("table_name {table:?} does not belong to model_name {model:?}: expected {expected:?}")]
    TableModelMismatch {
        table: String,
        model: String,
        expected: &'static str,
    },
    #[error("start_id {start_id} is greater than end_id {end_id}")]
    EmptyRange { start_id: i64, end_id: i64 },
    #[error("target_index is not valid: {reason}")]
    BadIndexName { index: String, reason: String },
    #[error("target_index {index:?} is not an index of model {model:?}: it must start with \"{model}-\"")]
    IndexModelMismatch { index: String, model: String },
    /// A worker writes unfiltered documents: only into a new `<media>-<suffix>` index, never
    /// `<media>-<suffix>-filtered` or an alias name (`refresh_core::names::check_new_index`).
    #[error("{0}")]
    NotANewIndex(String),
    #[error("kind {0} is not a task kind: expected \"reindex\" (the default) or \"sql\"")]
    UnknownKind(String),
    /// A SQL task body of the wrong shape: the message names the field.
    #[error("request body is not a valid SQL task: {0}")]
    MalformedSql(String),
    #[error("media_type {0:?} is not a media type: expected \"image\" or \"audio\"")]
    UnknownMediaType(String),
    #[error("parallelism {0} is out of range: 1..={MAX_SQL_PARALLELISM} index builds at once")]
    ParallelismOutOfRange(u32),
    #[error("parallelism applies to the reapply job only, not to {0}")]
    ParallelismNotApplicable(SqlJob),
    /// Dual write goes only into the target's own filtered index.
    #[error(
        "filtered_index {given:?} is not the filtered index of target_index: expected {expected:?}"
    )]
    NotTheTargetsFilteredIndex { given: String, expected: String },
}

/// Parses and validates a `POST /task` body of either kind; `default_parallelism` is the
/// worker's when a `reapply` job does not say.
pub fn parse_request(body: &[u8], default_parallelism: u32) -> Result<Spec, RequestError> {
    // The first JSON value decides, even with trailing garbage: that refusal then comes from
    // the parser of the kind the body meant.
    let kind = serde_json::Deserializer::from_slice(body)
        .into_iter::<serde_json::Value>()
        .next()
        .and_then(Result::ok)
        .and_then(|v| v.get("kind").cloned());
    let kind = match kind {
        None => TaskKind::Reindex,
        Some(value) => serde_json::from_value::<TaskKind>(value.clone())
            .map_err(|_| RequestError::UnknownKind(shorten(&value.to_string())))?,
    };
    match kind {
        TaskKind::Reindex => parse_task_request(body).map(Spec::Reindex),
        TaskKind::Sql => parse_sql_request(body, default_parallelism).map(Spec::Sql),
    }
}

/// A SQL task body: `{"kind": "sql", "job", "media_type", "parallelism"?}`, nothing else.
pub fn parse_sql_request(body: &[u8], default_parallelism: u32) -> Result<SqlSpec, RequestError> {
    let mut json = serde_json::Deserializer::from_slice(body);
    let request: SqlTaskRequest = serde_path_to_error::deserialize(&mut json)
        .map_err(|e| RequestError::MalformedSql(with_path(e)))?;
    json.end()
        .map_err(|e| RequestError::MalformedSql(e.to_string()))?;
    let media: MediaType = request
        .media_type
        .parse()
        .map_err(|_| RequestError::UnknownMediaType(shorten(&request.media_type)))?;
    let parallelism = match (request.job, request.parallelism) {
        (SqlJob::Reapply, None) => default_parallelism.clamp(1, MAX_SQL_PARALLELISM),
        (SqlJob::Reapply, Some(n)) if (1..=MAX_SQL_PARALLELISM).contains(&n) => n,
        (SqlJob::Reapply, Some(n)) => return Err(RequestError::ParallelismOutOfRange(n)),
        (_, None) => 1,
        (job, Some(_)) => return Err(RequestError::ParallelismNotApplicable(job)),
    };
    Ok(SqlSpec {
        job: request.job,
        media,
        parallelism,
    })
}

/// `<path>: <serde's message>`: the path names the field a wrong type or value was found in
/// (serde_json's own message gives only a line and column).
fn with_path(e: serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = e.path().to_string();
    let detail = e.into_inner().to_string();
    if path == "." || path.is_empty() {
        detail
    } else {
        format!("{path}: {detail}")
    }
}

/// Values echoed in a refusal, at bounded length.
fn shorten(text: &str) -> String {
    const MAX_CHARS: usize = 80;
    if text.chars().count() <= MAX_CHARS {
        text.to_string()
    } else {
        let head: String = text.chars().take(MAX_CHARS).collect();
        format!("{head}…")
    }
}

/// Parses and validates a `POST /task` body.
pub fn parse_task_request(body: &[u8]) -> Result<TaskSpec, RequestError> {
    // The path names the field a wrong type or an out-of-range number was found in
    // (serde_json's own message gives only a line and column).
    let mut json = serde_json::Deserializer::from_slice(body);
    let request: TaskRequest = serde_path_to_error::deserialize(&mut json)
        .map_err(|e| RequestError::Malformed(with_path(e)))?;
    json.end()
        .map_err(|e| RequestError::Malformed(e.to_string()))?;
    validate(request)
}

pub fn validate(request: TaskRequest) -> Result<TaskSpec, RequestError> {
    let media: MediaType = request
        .model_name
        .parse()
        .map_err(|_| RequestError::UnknownModel(request.model_name.clone()))?;
    let table_media = MediaType::from_temp_table(&request.table_name)
        .ok_or_else(|| RequestError::UnknownTable(request.table_name.clone()))?;
    if table_media != media {
        return Err(RequestError::TableModelMismatch {
            table: request.table_name,
            model: request.model_name,
            expected: media.temp_table(),
        });
    }
    if request.start_id > request.end_id {
        return Err(RequestError::EmptyRange {
            start_id: request.start_id,
            end_id: request.end_id,
        });
    }
    validate_index_name(&request.target_index).map_err(|reason| RequestError::BadIndexName {
        index: request.target_index.clone(),
        reason,
    })?;
    if media_of_index(&request.target_index) != Some(media) {
        return Err(RequestError::IndexModelMismatch {
            index: request.target_index,
            model: request.model_name,
        });
    }
    let suffix = check_new_index(media, &request.target_index, "target_index")
        .map_err(|e| RequestError::NotANewIndex(e.message))?;
    let expected_filtered = filtered_index_name(media, suffix);
    if let Some(given) = &request.filtered_index {
        if *given != expected_filtered {
            return Err(RequestError::NotTheTargetsFilteredIndex {
                given: given.clone(),
                expected: expected_filtered,
            });
        }
    }
    Ok(TaskSpec {
        media,
        target_index: request.target_index,
        filtered_index: request.filtered_index,
        start_id: request.start_id,
        end_id: request.end_id,
    })
}

/// Index names Elasticsearch accepts *and* that cannot address several indices (no
/// wildcards, commas, `_all`): the project-wide rule of `refresh_core::es`. A refused name
/// would make every bulk item fail, so it is refused up front.
pub fn validate_index_name(name: &str) -> Result<(), String> {
    refresh_core::names::validate_index_name(name).map_err(|e| e.message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn body(model: &str, table: &str, index: &str, start: i64, end: i64) -> Vec<u8> {
        serde_json::json!({"model_name": model, "table_name": table, "target_index": index, "start_id": start, "end_id": end})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn accepts_a_valid_request_and_ignores_extra_fields() {
        let spec =
            parse_task_request(&body("audio", "temp_import_audio", "audio-init", 1, 1)).unwrap();
        assert_eq!(
            spec,
            TaskSpec {
                media: MediaType::Audio,
                target_index: "audio-init".into(),
                filtered_index: None,
                start_id: 1,
                end_id: 1
            }
        );
        let extra = br#"{"model_name":"image","table_name":"temp_import_image","target_index":"image-20240101000000","start_id":0,"end_id":9,"x":1}"#;
        assert!(parse_task_request(extra).is_ok());
    }

    #[test]
    fn sql_tasks_are_parsed_strictly_and_reindex_bodies_as_before() {
        let sql = |v: serde_json::Value| parse_request(v.to_string().as_bytes(), 4);
        assert_eq!(
            sql(serde_json::json!({"kind": "sql", "job": "reapply", "media_type": "image"})),
            Ok(Spec::Sql(SqlSpec {
                job: SqlJob::Reapply,
                media: MediaType::Image,
                parallelism: 4
            }))
        );
        assert_eq!(
            sql(
                serde_json::json!({"kind": "sql", "job": "reapply", "media_type": "audio", "parallelism": 16})
            ),
            Ok(Spec::Sql(SqlSpec {
                job: SqlJob::Reapply,
                media: MediaType::Audio,
                parallelism: 16
            }))
        );
        assert_eq!(
            sql(
                serde_json::json!({"kind": "sql", "job": "validate_foreign_keys", "media_type": "image"})
            ),
            Ok(Spec::Sql(SqlSpec {
                job: SqlJob::ValidateForeignKeys,
                media: MediaType::Image,
                parallelism: 1
            }))
        );
        // The worker's default is bounded like a request's.
        assert!(matches!(
            parse_request(
                br#"{"kind":"sql","job":"reapply","media_type":"image"}"#,
                99
            ),
            Ok(Spec::Sql(SqlSpec {
                parallelism: 16,
                ..
            }))
        ));
        // A reindex body, with or without its kind, is the reindex it always was.
        let reindex = body("image", "temp_import_image", "image-x", 1, 2);
        let expected = Spec::Reindex(parse_task_request(&reindex).unwrap());
        assert_eq!(parse_request(&reindex, 4), Ok(expected.clone()));
        let mut with_kind: serde_json::Value = serde_json::from_slice(&reindex).unwrap();
        with_kind["kind"] = serde_json::json!("reindex");
        assert_eq!(sql(with_kind), Ok(expected));

        // (body, the field the refusal must name)
        let cases = [
            (
                serde_json::json!({"kind": "sql", "job": "reapply", "media_type": "image", "extra": 1}),
                "extra",
            ),
            (
                serde_json::json!({"kind": "sql", "job": "reapply"}),
                "media_type",
            ),
            (
                serde_json::json!({"kind": "sql", "media_type": "image"}),
                "job",
            ),
            (
                serde_json::json!({"kind": "sql", "job": "vacuum", "media_type": "image"}),
                "job",
            ),
            (
                serde_json::json!({"kind": "sql", "job": 1, "media_type": "image"}),
                "job",
            ),
            (
                serde_json::json!({"kind": "sql", "job": "reapply", "media_type": "video"}),
                "media_type",
            ),
            (
                serde_json::json!({"kind": "sql", "job": "reapply", "media_type": null}),
                "media_type",
            ),
            (
                serde_json::json!({"kind": "sql", "job": "reapply", "media_type": "image", "parallelism": 0}),
                "parallelism",
            ),
            (
                serde_json::json!({"kind": "sql", "job": "reapply", "media_type": "image", "parallelism": 17}),
                "parallelism",
            ),
            (
                serde_json::json!({"kind": "sql", "job": "reapply", "media_type": "image", "parallelism": -1}),
                "parallelism",
            ),
            (
                serde_json::json!({"kind": "sql", "job": "reapply", "media_type": "image", "parallelism": "4"}),
                "parallelism",
            ),
            (
                serde_json::json!({"kind": "sql", "job": "reapply", "media_type": "image", "parallelism": 2.5}),
                "parallelism",
            ),
            (
                serde_json::json!({"kind": "sql", "job": "finish_copy", "media_type": "image", "parallelism": 2}),
                "parallelism",
            ),
            (
                serde_json::json!({"kind": "sql", "job": "reapply", "media_type": "image", "model_name": "image"}),
                "model_name",
            ),
            (
                serde_json::json!({"kind": "SQL", "job": "reapply", "media_type": "image"}),
                "kind",
            ),
            (
                serde_json::json!({"kind": 1, "job": "reapply", "media_type": "image"}),
                "kind",
            ),
            (
                serde_json::json!({"kind": null, "job": "reapply", "media_type": "image"}),
                "kind",
            ),
        ];
        for (body, field) in cases {
            let err = sql(body.clone()).expect_err(&body.to_string());
            assert!(err.to_string().contains(field), "{body}: {err}");
        }
        let trailing = br#"{"kind":"sql","job":"reapply","media_type":"image"} x"#;
        assert!(matches!(
            parse_request(trailing, 4),
            Err(RequestError::MalformedSql(m)) if m.contains("trailing")
        ));
    }

    #[test]
    fn refuses_each_bad_input_by_name() {
        assert!(matches!(
            parse_task_request(b"{not json"),
            Err(RequestError::Malformed(_))
        ));
        assert!(
            matches!(parse_task_request(br#"{"model_name":"image"}"#), Err(RequestError::Malformed(m)) if m.contains("table_name"))
        );
        assert!(matches!(
            parse_task_request(br#"{"model_name":"image","table_name":"temp_import_image","target_index":"image-x","start_id":"1","end_id":2}"#),
            Err(RequestError::Malformed(m)) if m.contains("start_id")
        ));
        assert_eq!(
            parse_task_request(&body("video", "temp_import_image", "image-x", 1, 2)),
            Err(RequestError::UnknownModel("video".into()))
        );
        assert_eq!(
            parse_task_request(&body("image", "image", "image-x", 1, 2)),
            Err(RequestError::UnknownTable("image".into()))
        );
        assert!(matches!(
            parse_task_request(&body("image", "temp_import_audio", "image-x", 1, 2)),
            Err(RequestError::TableModelMismatch { .. })
        ));
        assert_eq!(
            parse_task_request(&body("image", "temp_import_image", "image-x", 5, 4)),
            Err(RequestError::EmptyRange {
                start_id: 5,
                end_id: 4
            })
        );
        assert!(matches!(
            parse_task_request(&body("image", "temp_import_image", "Image-X", 1, 2)),
            Err(RequestError::BadIndexName { .. })
        ));
        assert!(matches!(
            parse_task_request(&body("image", "temp_import_image", "audio-x", 1, 2)),
            Err(RequestError::IndexModelMismatch { .. })
        ));
    }

    #[test]
    fn only_a_new_unfiltered_index_of_the_model_is_a_target() {
        for bad in [
            // the aliases
            "image",
            "image-filtered",
            // a filtered index: unfiltered documents must never land there
            "image-init-filtered",
            "image-20260302000405-filtered",
            // not `<media>-<suffix>` with a valid suffix
            "image-",
            "image--x",
            "image-_x",
            "image-a.b",
            "image-a+b",
        ] {
            let result = parse_task_request(&body("image", "temp_import_image", bad, 1, 2));
            let message = match result {
                Err(
                    RequestError::NotANewIndex(m)
                    | RequestError::BadIndexName { reason: m, .. }
                    | RequestError::IndexModelMismatch { index: m, .. },
                ) => m,
                other => panic!("{bad:?} must be refused, got {other:?}"),
            };
            assert!(!message.is_empty(), "{bad:?}");
        }
        let err = parse_task_request(&body(
            "image",
            "temp_import_image",
            "image-init-filtered",
            1,
            2,
        ))
        .unwrap_err();
        assert!(
            matches!(&err, RequestError::NotANewIndex(m) if m.starts_with("target_index: ") && m.contains("filtered")),
            "{err:?}"
        );
        assert!(matches!(
            parse_task_request(&body("image", "temp_import_image", "image", 1, 2)),
            Err(RequestError::IndexModelMismatch { .. })
        ));
    }

    #[test]
    fn index_name_rules() {
        for bad in [
            "", ".", "..", "-a", "_a", "+a", "A", "a b", "a,b", "a#b", "a:b", "a/b", "a*", "a?",
            "a\"", "a<", "a>", "a|", "a\\b", "_all", ".hidden",
        ] {
            assert!(validate_index_name(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(validate_index_name(&"a".repeat(256)).is_err());
        assert!(validate_index_name(&"a".repeat(255)).is_ok());
        for good in ["image-init", "audio-20240101000000", "image-a.b_c+d"] {
            assert!(
                validate_index_name(good).is_ok(),
                "{good:?} must be accepted"
            );
        }
    }

    proptest! {
        #[test]
        fn valid_suffixes_are_accepted(suffix in "[a-z0-9][a-z0-9_-]{0,40}", start in 0i64..1_000_000, len in 0i64..1_000_000) {
            prop_assume!(!suffix.ends_with("filtered"));
            let index = format!("image-{suffix}");
            let spec = parse_task_request(&body("image", "temp_import_image", &index, start, start + len)).unwrap();
            prop_assert_eq!(spec.target_index, index);
        }

        #[test]
        fn any_refused_index_name_is_never_started(name in "\\PC{0,20}") {
            let result = parse_task_request(&body("image", "temp_import_image", &name, 1, 2));
            if validate_index_name(&name).is_err() {
                let refused = matches!(result, Err(RequestError::BadIndexName { .. }));
                prop_assert!(refused);
            }
        }

        #[test]
        fn only_derived_new_index_names_are_started(name in prop_oneof!["\\PC{0,30}", "image-[a-z0-9_.+-]{0,30}"]) {
            let result = parse_task_request(&body("image", "temp_import_image", &name, 1, 2));
            let derived = name
                .strip_prefix("image-")
                .is_some_and(|suffix| refresh_core::names::validate_index_suffix(MediaType::Image, suffix).is_ok());
            prop_assert_eq!(result.is_ok(), derived, "{:?}: {:?}", name, result);
        }
    }
}
