//! Alias promotion and deletion of the indices it replaced.

use super::reindex::cancel_reindex_into;
use super::SearchClient;
use crate::error::{ErrorKind, StepError, StepResult};
use crate::media::MediaType;
use crate::names::validate_index_name;
use elasticsearch::http::{Method, StatusCode};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// The indices `alias` points at, sorted; empty when the alias does not exist.
pub async fn indices_of_alias(client: &SearchClient, alias: &str) -> StepResult<Vec<String>> {
    validate_index_name(alias)?;
    let response = client
        .call(
            "read alias",
            Method::Get,
            &format!("/_alias/{alias}"),
            &[],
            None,
        )
        .await?;
    if response.status == StatusCode::NOT_FOUND {
        return Ok(Vec::new());
    }
    let body = response.into_success(&format!("read alias {alias}"))?;
    let mut indices: Vec<String> = match body {
        Value::Object(map) => map.into_iter().map(|(index, _)| index).collect(),
        _ => Vec::new(),
    };
    indices.sort();
    Ok(indices)
}

/// What a name is to the cluster ([`resolve_name`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameTarget {
    /// Neither an index nor an alias.
    Missing,
    /// An index, with every alias pointing at it (sorted; empty when none does).
    Index { aliases: Vec<String> },
    /// An alias, with the indices it points at (sorted).
    Alias { indices: Vec<String> },
}

/// Whether `name` is an index (and which aliases point at it), an alias, or nothing: one
/// `GET /{name}/_alias`, which answers per concrete index, so an alias shows up as the
/// indices behind it and never under its own name.
pub async fn resolve_name(client: &SearchClient, name: &str) -> StepResult<NameTarget> {
    validate_index_name(name)?;
    let response = client
        .call(
            "read index aliases",
            Method::Get,
            &format!("/{name}/_alias"),
            &[],
            None,
        )
        .await?;
    if response.status == StatusCode::NOT_FOUND {
        return Ok(NameTarget::Missing);
    }
    let body = response.into_success(&format!("read aliases of {name}"))?;
    Ok(name_target(name, &body))
}

/// [`resolve_name`]'s reading of a `GET /{name}/_alias` answer (`{index: {aliases: {…}}}`).
fn name_target(name: &str, body: &Value) -> NameTarget {
    let Some(indices) = body.as_object() else {
        return NameTarget::Missing;
    };
    match indices.get(name) {
        Some(entry) => {
            let mut aliases: Vec<String> = entry["aliases"]
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            aliases.sort();
            NameTarget::Index { aliases }
        }
        None if indices.is_empty() => NameTarget::Missing,
        None => {
            let mut indices: Vec<String> = indices.keys().cloned().collect();
            indices.sort();
            NameTarget::Alias { indices }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AliasPromotion {
    pub alias: String,
    pub index: String,
    /// The indices the alias pointed at before (to delete once everything is promoted).
    pub previous_indices: Vec<String>,
}

/// Points `alias` at `index` alone, in one `_aliases` call (remove from the old index and add
/// to the new one happen atomically: searches never see no index or two).
///
/// Refused, with nothing changed, when the alias points at more than one index: that state
/// needs an operator. Promoting an alias that already points at `index` alone changes nothing.
pub async fn promote_alias(
    client: &SearchClient,
    alias: &str,
    index: &str,
) -> StepResult<AliasPromotion> {
    let mut promoted = promote_aliases(client, &[(alias, index)]).await?;
    // One move in, one promotion out.
    promoted
        .promotions
        .pop()
        .ok_or_else(|| StepError::new(ErrorKind::Internal, "alias promotion returned nothing"))
}

/// What [`promote_aliases`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AliasesPromotion {
    pub promotions: Vec<AliasPromotion>,
    /// Every index an alias pointed at before, over all the moves (to delete afterwards).
    pub previous_indices: Vec<String>,
}

/// Points each alias at its index in **one** `_aliases` call, so searches through either
/// alias switch together: the site never serves the new main index beside the old filtered
/// one. Checked before anything changes: a name that is not a valid index name, an alias
/// moved twice, an alias on an index of its own name, or an alias on more than one index
/// (needs an operator). Moves already done are left out; when all are, nothing is sent.
pub async fn promote_aliases(
    client: &SearchClient,
    moves: &[(&str, &str)],
) -> StepResult<AliasesPromotion> {
    let mut seen = BTreeSet::new();
    for (alias, index) in moves {
        validate_index_name(alias)?;
        validate_index_name(index)?;
        if alias == index {
            return Err(StepError::invalid_input(format!(
                "alias and index are both named {alias}"
            )));
        }
        if !seen.insert(*alias) {
            return Err(StepError::invalid_input(format!(
                "alias {alias} is asked to move twice"
            )));
        }
    }
    let mut actions = Vec::new();
    let mut promotions = Vec::new();
    for (alias, index) in moves {
        let current = indices_of_alias(client, alias).await?;
        if current.len() > 1 {
            return Err(StepError::invalid_state(format!(
                "alias {alias} points at {} indices ({}); refusing to promote {index}: an operator must fix the alias first",
                current.len(),
                current.join(", ")
            )));
        }
        if current.first().map(String::as_str) == Some(*index) {
            tracing::info!(alias, index, "alias already points at the index");
            promotions.push(AliasPromotion {
                alias: alias.to_string(),
                index: index.to_string(),
                previous_indices: Vec::new(),
            });
            continue;
        }
        actions.extend(promotion_actions(alias, index, &current));
        promotions.push(AliasPromotion {
            alias: alias.to_string(),
            index: index.to_string(),
            previous_indices: current,
        });
    }
    if !actions.is_empty() {
        let described = moves
            .iter()
            .map(|(alias, index)| format!("{alias} at {index}"))
            .collect::<Vec<_>>()
            .join(" and ");
        client
            .call(
                "update aliases",
                Method::Post,
                "/_aliases",
                &[],
                Some(&json!({ "actions": actions })),
            )
            .await?
            .into_success(&format!("point alias {described}"))?;
        tracing::info!(moves = %described, "aliases promoted");
    }
    let previous_indices = promotions
        .iter()
        .flat_map(|p| p.previous_indices.iter().cloned())
        .collect();
    Ok(AliasesPromotion {
        promotions,
        previous_indices,
    })
}

fn promotion_actions(alias: &str, index: &str, current: &[String]) -> Vec<Value> {
    let mut actions: Vec<Value> = current
        .iter()
        .map(|old| json!({ "remove": { "index": old, "alias": alias } }))
        .collect();
    actions.push(json!({ "add": { "index": index, "alias": alias } }));
    actions
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeletedIndices {
    pub deleted: Vec<String>,
    /// Asked for but already gone (a retried step).
    pub missing: Vec<String>,
}

/// Deletes `indices`. Refused, with nothing deleted, when any of them is an alias or has an
/// alias pointing at it.
pub async fn delete_indices(
    client: &SearchClient,
    indices: &[String],
) -> StepResult<DeletedIndices> {
    let unique: BTreeSet<&str> = indices.iter().map(String::as_str).collect();
    for name in &unique {
        validate_index_name(name)?;
    }
    let mut existing = Vec::new();
    let mut missing = Vec::new();
    for name in &unique {
        match resolve_name(client, name).await? {
            NameTarget::Missing => missing.push(name.to_string()),
            NameTarget::Alias { .. } => {
                return Err(StepError::invalid_state(format!(
                    "{name} is an alias, not an index: refusing to delete"
                )));
            }
            NameTarget::Index { aliases } if !aliases.is_empty() => {
                return Err(StepError::invalid_state(format!(
                    "index {name} is still behind alias {}: refusing to delete it (nothing was deleted)",
                    aliases.join(", ")
                )));
            }
            NameTarget::Index { .. } => existing.push(name.to_string()),
        }
    }
    let mut deleted = Vec::new();
    for name in existing {
        let response = client
            .call(
                "delete index",
                Method::Delete,
                &format!("/{name}"),
                &[],
                None,
            )
            .await?;
        if response.status == StatusCode::NOT_FOUND {
            missing.push(name);
            continue;
        }
        response.into_success(&format!("delete index {name}"))?;
        tracing::info!(index = name, "index deleted");
        deleted.push(name);
    }
    missing.sort();
    Ok(DeletedIndices { deleted, missing })
}

/// What [`delete_unaliased`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RemovedIndices {
    pub deleted: Vec<String>,
    /// Candidates an alias points at.
    pub kept: Vec<String>,
    pub cancelled_tasks: Vec<String>,
}

/// Deletes those of `candidates` that neither alias of `media` points at, after cancelling
/// any reindex still writing into them (it would re-create a deleted index).
pub async fn delete_unaliased(
    search: &SearchClient,
    media: MediaType,
    candidates: &[String],
) -> StepResult<RemovedIndices> {
    let mut aliased: BTreeSet<String> = indices_of_alias(search, media.alias())
        .await?
        .into_iter()
        .collect();
    aliased.extend(indices_of_alias(search, media.filtered_alias()).await?);
    let (kept, to_delete): (Vec<String>, Vec<String>) = candidates
        .iter()
        .cloned()
        .partition(|name| aliased.contains(name));
    let cancelled_tasks = cancel_reindex_into(search, &to_delete).await?;
    // delete_indices refuses, deleting nothing, if another alias points at any of them.
    let deleted = delete_indices(search, &to_delete).await?.deleted;
    Ok(RemovedIndices {
        deleted,
        kept,
        cancelled_tasks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alias_answer_tells_index_alias_and_aliased_index_apart() {
        assert_eq!(
            name_target("image-new", &json!({"image-new": {"aliases": {}}})),
            NameTarget::Index { aliases: vec![] }
        );
        assert_eq!(
            name_target(
                "image-live",
                &json!({"image-live": {"aliases": {"image": {}, "zz": {"is_write_index": true}}}})
            ),
            NameTarget::Index {
                aliases: vec!["image".into(), "zz".into()]
            }
        );
        assert_eq!(
            name_target(
                "image",
                &json!({"image-b": {"aliases": {"image": {}}}, "image-a": {"aliases": {"image": {}}}})
            ),
            NameTarget::Alias {
                indices: vec!["image-a".into(), "image-b".into()]
            }
        );
        assert_eq!(name_target("image-x", &json!({})), NameTarget::Missing);
        assert_eq!(name_target("image-x", &Value::Null), NameTarget::Missing);
    }

    #[test]
    fn promotion_removes_every_old_index_and_adds_the_new_one() {
        assert_eq!(
            promotion_actions("image", "image-2", &["image-1".into()]),
            vec![
                json!({"remove": {"index": "image-1", "alias": "image"}}),
                json!({"add": {"index": "image-2", "alias": "image"}})
            ]
        );
        assert_eq!(
            promotion_actions("image", "image-2", &[]),
            vec![json!({"add": {"index": "image-2", "alias": "image"}})]
        );
    }
}
