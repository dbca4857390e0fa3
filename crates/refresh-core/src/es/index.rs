//! Index creation from the versioned settings / mappings, finishing and health.

use super::SearchClient;
use crate::error::{ErrorKind, StepError, StepResult};
use crate::media::MediaType;
use crate::names::validate_index_name;
use elasticsearch::http::{Method, StatusCode};
use serde::Serialize;
use serde_json::{json, Value};
use std::time::Duration;

/// Settings and mappings per media type (DESIGN §5). Bump `mappings._meta.mapping_version`
/// with every change so that an index tells which version built it.
const IMAGE_BODY: &str = include_str!("../../es/image.json");
const AUDIO_BODY: &str = include_str!("../../es/audio.json");

/// Elasticsearch's default upper bound of shards per index.
pub const MAX_SHARDS: u32 = 1024;

/// How long `finish_index` waits for the index to become green before reporting its health.
pub const FINISH_HEALTH_WAIT: Duration = Duration::from_secs(30);

/// The create-index body for `media` while loading: the versioned settings and mappings with
/// `number_of_shards`, no replicas and refresh off.
pub fn index_body(media: MediaType, shards: u32) -> StepResult<Value> {
    if shards == 0 || shards > MAX_SHARDS {
        return Err(StepError::invalid_input(format!(
            "number of shards must be between 1 and {MAX_SHARDS}, got {shards}"
        )));
    }
    let raw = match media {
        MediaType::Image => IMAGE_BODY,
        MediaType::Audio => AUDIO_BODY,
    };
    let mut body: Value = serde_json::from_str(raw).map_err(|e| {
        StepError::new(
            ErrorKind::Internal,
            format!("the bundled {media} index settings are not valid JSON: {e}"),
        )
    })?;
    let index = &mut body["settings"]["index"];
    index["number_of_shards"] = json!(shards);
    index["number_of_replicas"] = json!(0);
    index["refresh_interval"] = json!("-1");
    Ok(body)
}

/// The `_meta` of the bundled mappings: `{media_type, mapping_version}`.
pub fn mapping_meta(media: MediaType) -> StepResult<Value> {
    Ok(index_body(media, 1)?["mappings"]["_meta"].clone())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreatedIndex {
    pub index: String,
    /// False when the index already existed with the same mappings (a retried step).
    pub created: bool,
}

/// Creates `name` for `media` with `shards` primaries, no replicas and refresh off.
///
/// A retry after a lost response finds the index already there: that is success when its
/// mappings carry the same `_meta` (media type and mapping version), an error otherwise.
pub async fn create_index(
    client: &SearchClient,
    media: MediaType,
    name: &str,
    shards: u32,
) -> StepResult<CreatedIndex> {
    validate_index_name(name)?;
    let body = index_body(media, shards)?;
    let expected_meta = body["mappings"]["_meta"].clone();
    create_with_body(client, name, &body, &expected_meta).await
}

/// Creates `dest` with the analysis settings, shard count and mappings of `source` (an index
/// or an alias on exactly one index), with no replicas and refresh off.
pub async fn create_index_like(
    client: &SearchClient,
    source: &str,
    dest: &str,
) -> StepResult<CreatedIndex> {
    validate_index_name(source)?;
    validate_index_name(dest)?;
    let settings = single_index_entry(
        client
            .call(
                "read index settings",
                Method::Get,
                &format!("/{source}/_settings"),
                &[],
                None,
            )
            .await?
            .into_success(&format!("read settings of {source}"))?,
        source,
    )?;
    let mappings = single_index_entry(
        client
            .call(
                "read index mappings",
                Method::Get,
                &format!("/{source}/_mapping"),
                &[],
                None,
            )
            .await?
            .into_success(&format!("read mappings of {source}"))?,
        source,
    )?;
    let source_index = &settings["settings"]["index"];
    let mut index_settings = json!({
        "number_of_shards": source_index["number_of_shards"],
        "number_of_replicas": 0,
        "refresh_interval": "-1",
    });
    for key in ["analysis", "similarity"] {
        if let Some(value) = source_index.get(key) {
            index_settings[key] = value.clone();
        }
    }
    let mappings = mappings["mappings"].clone();
    let expected_meta = mappings["_meta"].clone();
    let body = json!({ "settings": { "index": index_settings }, "mappings": mappings });
    create_with_body(client, dest, &body, &expected_meta).await
}

/// The one `{index: entry}` of a per-index response; an alias on several indices is refused.
fn single_index_entry(body: Value, requested: &str) -> StepResult<Value> {
    match body {
        Value::Object(map) if map.len() == 1 => {
            Ok(map.into_iter().next().map(|(_, v)| v).unwrap_or_default())
        }
        Value::Object(map) => Err(StepError::invalid_state(format!(
            "{requested} resolves to {} indices ({}): expected exactly one",
            map.len(),
            map.keys().cloned().collect::<Vec<_>>().join(", ")
        ))),
        _ => Err(StepError::new(
            ErrorKind::Internal,
            format!("unexpected Elasticsearch answer for {requested}"),
        )),
    }
}

async fn create_with_body(
    client: &SearchClient,
    name: &str,
    body: &Value,
    expected_meta: &Value,
) -> StepResult<CreatedIndex> {
    let response = client
        .call(
            "create index",
            Method::Put,
            &format!("/{name}"),
            &[],
            Some(body),
        )
        .await?;
    if response.status.is_success() {
        tracing::info!(index = name, "index created");
        return Ok(CreatedIndex {
            index: name.to_string(),
            created: true,
        });
    }
    if response.body["error"]["type"] == "resource_already_exists_exception" {
        let existing = client
            .call(
                "read index mappings",
                Method::Get,
                &format!("/{name}/_mapping"),
                &[],
                None,
            )
            .await?
            .into_success(&format!("read mappings of {name}"))?;
        let existing_meta = &existing[name]["mappings"]["_meta"];
        if !expected_meta.is_null() && existing_meta == expected_meta {
            tracing::info!(index = name, "index already exists with the same mappings");
            return Ok(CreatedIndex {
                index: name.to_string(),
                created: false,
            });
        }
        return Err(StepError::invalid_state(format!(
            "index {name} already exists with other mappings (_meta {existing_meta}, expected {expected_meta})"
        )));
    }
    Err(super::status_error(
        &format!("create index {name}"),
        response.status,
        &response.body,
    ))
}

/// Health of one index (`GET _cluster/health/<index>`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndexHealth {
    pub index: String,
    /// `green`, `yellow` or `red`.
    pub status: String,
    /// Green: every primary and replica shard is allocated.
    pub healthy: bool,
    pub active_primary_shards: u64,
    pub active_shards: u64,
    pub relocating_shards: u64,
    pub initializing_shards: u64,
    pub unassigned_shards: u64,
    /// The wait for green ended before the index got there.
    pub timed_out: bool,
}

/// The index's health; with `wait_for_green`, waits up to that long for green first.
/// A missing index is an `InvalidState` error (the health API would wait for it to appear).
pub async fn index_health(
    client: &SearchClient,
    name: &str,
    wait_for_green: Option<Duration>,
) -> StepResult<IndexHealth> {
    validate_index_name(name)?;
    ensure_exists(client, name).await?;
    let mut query = vec![("level", "cluster".to_string())];
    if let Some(wait) = wait_for_green {
        query.push(("wait_for_status", "green".to_string()));
        query.push(("timeout", format!("{}ms", wait.as_millis().max(1))));
    }
    let response = client
        .call(
            "index health",
            Method::Get,
            &format!("/_cluster/health/{name}"),
            &query,
            None,
        )
        .await?;
    // 408 is the health API's "timed out waiting", with the current health in the body.
    if !(response.status.is_success() || response.status == StatusCode::REQUEST_TIMEOUT) {
        return Err(super::status_error(
            &format!("health of {name}"),
            response.status,
            &response.body,
        ));
    }
    let body = response.body;
    let count = |key: &str| body[key].as_u64().unwrap_or(0);
    let status = body["status"].as_str().unwrap_or("red").to_string();
    Ok(IndexHealth {
        index: name.to_string(),
        healthy: status == "green",
        status,
        active_primary_shards: count("active_primary_shards"),
        active_shards: count("active_shards"),
        relocating_shards: count("relocating_shards"),
        initializing_shards: count("initializing_shards"),
        unassigned_shards: count("unassigned_shards"),
        timed_out: body["timed_out"].as_bool().unwrap_or(false),
    })
}

async fn ensure_exists(client: &SearchClient, name: &str) -> StepResult<()> {
    if index_exists(client, name).await? {
        Ok(())
    } else {
        Err(StepError::invalid_state(format!(
            "index {name} does not exist"
        )))
    }
}

/// Whether `index` exists (an alias counts). A bulk request into a missing index would create
/// it with dynamic mappings, so callers check first. 429 / 5xx and transport failures are
/// `TransientSearch` errors; any status but 2xx and 404 is an error for the operator.
pub async fn index_exists(client: &SearchClient, index: &str) -> StepResult<bool> {
    validate_index_name(index)?;
    let response = client
        .call(
            "index exists",
            Method::Head,
            &format!("/{index}"),
            &[],
            None,
        )
        .await?;
    match response.status {
        s if s.is_success() => Ok(true),
        StatusCode::NOT_FOUND => Ok(false),
        s => Err(super::status_error(
            &format!("check index {index}"),
            s,
            &response.body,
        )),
    }
}

/// Makes a loaded index ready to serve: refresh, restore the serving `number_of_replicas` and
/// `refresh_interval`, then wait (bounded) for green and report the health.
pub async fn finish_index(
    client: &SearchClient,
    name: &str,
    serving_replicas: u32,
    serving_refresh_interval: &str,
) -> StepResult<IndexHealth> {
    validate_index_name(name)?;
    ensure_exists(client, name).await?;
    client
        .call(
            "refresh index",
            Method::Post,
            &format!("/{name}/_refresh"),
            &[],
            None,
        )
        .await?
        .into_success(&format!("refresh {name}"))?;
    let settings = json!({
        "index": {
            "number_of_replicas": serving_replicas,
            "refresh_interval": serving_refresh_interval,
        }
    });
    client
        .call(
            "update index settings",
            Method::Put,
            &format!("/{name}/_settings"),
            &[],
            Some(&settings),
        )
        .await?
        .into_success(&format!("restore serving settings of {name}"))?;
    tracing::info!(
        index = name,
        serving_replicas,
        serving_refresh_interval,
        "serving settings restored"
    );
    index_health(client, name, Some(FINISH_HEALTH_WAIT)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_bodies_follow_the_design() {
        for media in MediaType::ALL {
            let body = index_body(media, 7).unwrap();
            let index = &body["settings"]["index"];
            assert_eq!(index["number_of_shards"], 7);
            assert_eq!(index["number_of_replicas"], 0);
            assert_eq!(index["refresh_interval"], "-1");
            let analyzer = &body["settings"]["analysis"]["analyzer"]["custom_english"];
            assert_eq!(analyzer["tokenizer"], "standard");
            // Lower-case first, so that "Animals" meets the overrides as "animals".
            assert_eq!(
                analyzer["filter"],
                json!([
                    "lowercase",
                    "stem_overrides",
                    "english_possessive_stemmer",
                    "english_stop",
                    "english_stemmer"
                ])
            );
            let exact = &body["settings"]["analysis"]["analyzer"]["exact"];
            assert_eq!(exact["tokenizer"], "standard");
            assert_eq!(exact["filter"], json!(["lowercase"]));
            let mappings = &body["mappings"];
            assert_eq!(mappings["dynamic"], false);
            assert_eq!(mappings["_meta"]["media_type"], media.as_str());
            let props = &mappings["properties"];
            for field in [
                "standardized_popularity",
                "authority_boost",
                "max_boost",
                "min_boost",
                "authority_penalty",
            ] {
                assert_eq!(props[field]["type"], "rank_feature", "{field}");
            }
            assert_eq!(props["authority_penalty"]["positive_score_impact"], false);
            for field in [
                "identifier",
                "extension",
                "license",
                "provider",
                "source",
                "filetype",
                "category",
            ] {
                assert_eq!(props[field]["type"], "keyword", "{field}");
            }
            for field in ["title", "description"] {
                assert_eq!(props[field]["analyzer"], "custom_english");
                assert_eq!(props[field]["similarity"], "boolean");
                assert_eq!(props[field]["fields"]["raw"]["type"], "text");
                assert_eq!(props[field]["fields"]["exact"]["analyzer"], "exact");
                assert_eq!(props[field]["fields"]["exact"]["similarity"], "boolean");
            }
            assert_eq!(
                props["tags"]["properties"]["name"]["fields"]["exact"]["analyzer"],
                "exact"
            );
            assert_eq!(props["title"]["fields"]["keyword"]["ignore_above"], 256);
            assert_eq!(
                props["tags"]["properties"]["name"]["fields"]["raw"]["type"],
                "text"
            );
            assert_eq!(props["tags"]["properties"]["accuracy"]["type"], "float");
            assert_eq!(props["id"]["type"], "long");
            assert_eq!(props["created_on"]["type"], "date");
            assert_eq!(props["mature"]["type"], "boolean");
        }
        let image = index_body(MediaType::Image, 1).unwrap();
        assert_eq!(
            image["mappings"]["properties"]["aspect_ratio"]["type"],
            "keyword"
        );
        assert!(image["mappings"]["properties"].get("length").is_none());
        let audio = index_body(MediaType::Audio, 1).unwrap();
        assert_eq!(audio["mappings"]["properties"]["length"]["type"], "keyword");
        assert!(audio["mappings"]["properties"].get("size").is_none());
    }

    #[test]
    fn shipped_shard_defaults() {
        let raw: Value = serde_json::from_str(IMAGE_BODY).unwrap();
        assert_eq!(raw["settings"]["index"]["number_of_shards"], 18);
        let raw: Value = serde_json::from_str(AUDIO_BODY).unwrap();
        assert_eq!(raw["settings"]["index"]["number_of_shards"], 1);
    }

    #[test]
    fn shard_count_is_validated() {
        assert_eq!(
            index_body(MediaType::Image, 0).unwrap_err().kind,
            ErrorKind::InvalidInput
        );
        assert_eq!(
            index_body(MediaType::Image, MAX_SHARDS + 1)
                .unwrap_err()
                .kind,
            ErrorKind::InvalidInput
        );
        assert!(index_body(MediaType::Image, MAX_SHARDS).is_ok());
    }

    /// Every mapping parameter of every field, walking `properties` and `fields`.
    fn field_mappings<'a>(properties: &'a Value, out: &mut Vec<(String, &'a Value)>) {
        for (name, field) in properties.as_object().into_iter().flatten() {
            out.push((name.clone(), field));
            for nested in ["properties", "fields"] {
                if let Some(inner) = field.get(nested) {
                    field_mappings(inner, out);
                }
            }
        }
    }

    /// A guard for docs/OPERATIONS.md "Elasticsearch versions": the bundled bodies use only
    /// what 7.9 and 8.x both accept. Each list is what the bodies use today; something new
    /// must be checked against 8.x before it is added here.
    #[test]
    fn bundled_bodies_use_nothing_elasticsearch_8_removed() {
        for media in MediaType::ALL {
            let body = index_body(media, 1).unwrap();
            let top: Vec<&String> = body.as_object().unwrap().keys().collect();
            assert_eq!(top, ["mappings", "settings"], "{media}");
            let settings = body["settings"].as_object().unwrap();
            for key in settings.keys() {
                assert!(
                    ["index", "analysis"].contains(&key.as_str()),
                    "{media}: {key}"
                );
            }
            // Nothing like `index.mapper.dynamic` or `soft_deletes.enabled: false` (both
            // rejected by 8.x).
            for key in body["settings"]["index"].as_object().unwrap().keys() {
                assert!(
                    ["number_of_shards", "number_of_replicas", "refresh_interval"]
                        .contains(&key.as_str()),
                    "{media}: index.{key}"
                );
            }
            // Token filter types both versions ship (no `standard` filter, no camel-case
            // `nGram` / `edgeNGram`, no `delimited_payload_filter`).
            for (name, filter) in body["settings"]["analysis"]["filter"].as_object().unwrap() {
                let ty = filter["type"].as_str().unwrap();
                assert!(
                    ["stemmer_override", "stemmer", "stop"].contains(&ty),
                    "{name}: {ty}"
                );
            }
            for (name, analyzer) in body["settings"]["analysis"]["analyzer"]
                .as_object()
                .unwrap()
            {
                assert_eq!(analyzer["type"], "custom", "{name}");
                assert_eq!(analyzer["tokenizer"], "standard", "{name}");
            }
            // Typeless: the mapping root holds no type name, `_all` or `include_type_name`.
            let mappings = body["mappings"].as_object().unwrap();
            for key in mappings.keys() {
                assert!(
                    ["dynamic", "_meta", "properties"].contains(&key.as_str()),
                    "{media}: mappings.{key}"
                );
            }
            let mut fields = Vec::new();
            field_mappings(&body["mappings"]["properties"], &mut fields);
            assert!(fields.len() > 20, "{media}: {}", fields.len());
            for (name, field) in fields {
                for key in field.as_object().unwrap().keys() {
                    // Not `boost` (refused for new indices in 8.x), `include_in_all`, `norms`
                    // as an object, `index: "not_analyzed"`…
                    assert!(
                        [
                            "type",
                            "analyzer",
                            "similarity",
                            "fields",
                            "properties",
                            "ignore_above",
                            "index",
                            "doc_values",
                            "positive_score_impact"
                        ]
                        .contains(&key.as_str()),
                        "{media}: {name}.{key}"
                    );
                }
                if let Some(index) = field.get("index") {
                    assert_eq!(index, &json!(false), "{media}: {name}");
                }
                if let Some(ty) = field.get("type") {
                    let ty = ty.as_str().unwrap();
                    assert!(
                        [
                            "long",
                            "date",
                            "boolean",
                            "keyword",
                            "text",
                            "float",
                            "rank_feature"
                        ]
                        .contains(&ty),
                        "{media}: {name}: {ty}"
                    );
                }
            }
        }
    }

    #[test]
    fn several_indices_behind_a_name_are_refused() {
        let err = single_index_entry(json!({"a": {}, "b": {}}), "x").unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidState);
        assert_eq!(
            single_index_entry(json!({"a": {"k": 1}}), "x").unwrap(),
            json!({"k": 1})
        );
    }
}
