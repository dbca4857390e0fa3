//! The promotion pre-flight: everything the alias swap needs, checked just before the table
//! is promoted (the point of no return). A failure here is an ordinary pre-promotion failure;
//! one after it would leave the new table behind the old indices.

use super::alias::{indices_of_alias, resolve_name, NameTarget};
use super::index::index_health;
use super::SearchClient;
use crate::error::{ErrorKind, StepError, StepResult};
use elasticsearch::http::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Elasticsearch's default `cluster.routing.allocation.disk.watermark.high`.
const DEFAULT_HIGH_WATERMARK: &str = "90%";

/// What the pre-flight found (the step's output, and the report's record of the check).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreflightReport {
    /// The new indices with their health status.
    pub indices: BTreeMap<String, String>,
    /// Each media alias and the index it points at now (none on a first refresh).
    pub aliases: BTreeMap<String, Option<String>>,
    /// Each data node's disk use against the high watermark.
    pub disks: Vec<NodeDisk>,
    /// The watermark as the cluster states it (`90%`, `0.9` or a free-space size).
    pub high_watermark: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeDisk {
    pub node: String,
    pub used_pct: f64,
    pub available_bytes: u64,
}

/// The high watermark: a share of the disk used, or a free space to keep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Watermark {
    UsedPct(f64),
    FreeBytes(u64),
}

impl Watermark {
    /// Reads `90%`, `0.9` or a byte size (`500mb`, `10gb`, `1024b`) as Elasticsearch does.
    pub fn parse(text: &str) -> Option<Watermark> {
        let text = text.trim().to_ascii_lowercase();
        if let Some(pct) = text.strip_suffix('%') {
            return pct.trim().parse::<f64>().ok().map(Watermark::UsedPct);
        }
        if let Ok(ratio) = text.parse::<f64>() {
            return (0.0..=1.0)
                .contains(&ratio)
                .then_some(Watermark::UsedPct(ratio * 100.0));
        }
        let units: [(&str, u64); 6] = [
            ("pb", 1 << 50),
            ("tb", 1 << 40),
            ("gb", 1 << 30),
            ("mb", 1 << 20),
            ("kb", 1 << 10),
            ("b", 1),
        ];
        units.iter().find_map(|(unit, factor)| {
            let number = text.strip_suffix(unit)?.trim().parse::<f64>().ok()?;
            (number >= 0.0).then_some(Watermark::FreeBytes((number * *factor as f64) as u64))
        })
    }

    /// Whether a disk this full is at or past the watermark.
    pub fn reached(self, disk: &NodeDisk) -> bool {
        match self {
            Watermark::UsedPct(limit) => disk.used_pct >= limit,
            Watermark::FreeBytes(keep) => disk.available_bytes <= keep,
        }
    }
}

/// Checks, without changing anything, that `aliases` (a media's main and filtered alias) can be moved onto
/// `new_index` and `new_filtered_index`: both exist, unaliased and green; no index block on
/// them or on the indices the aliases point at now, and no cluster block; every data node's
/// disk below the high watermark; each alias on at most one index. Every problem found is
/// named in one `PromotionNotReady` error.
pub async fn promotion_preflight(
    client: &SearchClient,
    aliases: [&str; 2],
    new_index: &str,
    new_filtered_index: &str,
) -> StepResult<PreflightReport> {
    let mut problems = Vec::new();
    let mut indices = BTreeMap::new();
    for index in [new_index, new_filtered_index] {
        match resolve_name(client, index).await? {
            NameTarget::Index { aliases } if aliases.is_empty() => {
                let health = index_health(client, index, None).await?;
                if !health.healthy {
                    problems.push(format!("index {index} is {}", health.status));
                }
                indices.insert(index.to_string(), health.status);
            }
            NameTarget::Index { aliases } => problems.push(format!(
                "index {index} is already behind alias {}",
                aliases.join(", ")
            )),
            NameTarget::Alias { .. } => problems.push(format!("{index} is an alias, not an index")),
            NameTarget::Missing => problems.push(format!("index {index} does not exist")),
        }
    }

    let mut alias_targets = BTreeMap::new();
    let mut blocked_candidates: Vec<String> = indices.keys().cloned().collect();
    for alias in aliases {
        let current = indices_of_alias(client, alias).await?;
        if current.len() > 1 {
            problems.push(format!(
                "alias {alias} points at {} indices ({})",
                current.len(),
                current.join(", ")
            ));
        }
        blocked_candidates.extend(current.iter().cloned());
        alias_targets.insert(alias.to_string(), current.first().cloned());
    }

    problems.extend(index_blocks(client, &blocked_candidates).await?);
    let settings = cluster_settings(client).await?;
    problems.extend(cluster_blocks(&settings));
    let high_watermark = setting(&settings, "cluster.routing.allocation.disk.watermark.high")
        .unwrap_or_else(|| DEFAULT_HIGH_WATERMARK.to_string());
    let thresholds_on = setting(
        &settings,
        "cluster.routing.allocation.disk.threshold_enabled",
    )
    .is_none_or(|on| on != "false");
    let disks = node_disks(client).await?;
    if thresholds_on {
        let watermark = Watermark::parse(&high_watermark).ok_or_else(|| {
            StepError::invalid_state(format!(
                "cannot read the cluster's high disk watermark {high_watermark:?}"
            ))
        })?;
        for disk in disks.iter().filter(|disk| watermark.reached(disk)) {
            problems.push(format!(
                "node {} disk is {:.1}% used ({} bytes free), at or past the high watermark {high_watermark}",
                disk.node, disk.used_pct, disk.available_bytes
            ));
        }
    }

    if !problems.is_empty() {
        return Err(StepError::new(
            ErrorKind::PromotionNotReady,
            format!(
                "the aliases could not be moved, so nothing is promoted: {}",
                problems.join("; ")
            ),
        ));
    }
    Ok(PreflightReport {
        indices,
        aliases: alias_targets,
        disks,
        high_watermark,
    })
}

/// Every `index.blocks.*` set on `indices` (a flood-stage watermark sets
/// `read_only_allow_delete`, which also refuses alias changes).
async fn index_blocks(client: &SearchClient, indices: &[String]) -> StepResult<Vec<String>> {
    if indices.is_empty() {
        return Ok(Vec::new());
    }
    let body = client
        .call(
            "read index blocks",
            Method::Get,
            &format!("/{}/_settings/index.blocks.*", indices.join(",")),
            &[("flat_settings", "true".to_string())],
            None,
        )
        .await?
        .into_success("read the index blocks")?;
    Ok(blocks_in_settings(&body))
}

fn blocks_in_settings(body: &Value) -> Vec<String> {
    let mut blocks = Vec::new();
    if let Value::Object(per_index) = body {
        for (index, entry) in per_index {
            if let Some(Value::Object(settings)) = entry.get("settings") {
                for (name, value) in settings {
                    if name.starts_with("index.blocks.") && is_true(value) {
                        blocks.push(format!("index {index} has {name}"));
                    }
                }
            }
        }
    }
    blocks.sort();
    blocks
}

async fn cluster_settings(client: &SearchClient) -> StepResult<Value> {
    client
        .call(
            "read cluster settings",
            Method::Get,
            "/_cluster/settings",
            &[
                ("flat_settings", "true".to_string()),
                ("include_defaults", "true".to_string()),
            ],
            None,
        )
        .await?
        .into_success("read the cluster settings")
}

/// A setting as it applies: transient over persistent over the default.
fn setting(settings: &Value, name: &str) -> Option<String> {
    ["transient", "persistent", "defaults"]
        .iter()
        .find_map(|level| match settings.get(level)?.get(name)? {
            Value::String(text) => Some(text.clone()),
            other => Some(other.to_string()),
        })
}

fn cluster_blocks(settings: &Value) -> Vec<String> {
    [
        "cluster.blocks.read_only",
        "cluster.blocks.read_only_allow_delete",
    ]
    .into_iter()
    .filter(|name| setting(settings, name).is_some_and(|value| value == "true"))
    .map(|name| format!("the cluster has {name}"))
    .collect()
}

fn is_true(value: &Value) -> bool {
    matches!(value, Value::Bool(true)) || value.as_str() == Some("true")
}

async fn node_disks(client: &SearchClient) -> StepResult<Vec<NodeDisk>> {
    let body = client
        .call(
            "read node disks",
            Method::Get,
            "/_nodes/stats/fs",
            &[],
            None,
        )
        .await?
        .into_success("read the nodes' disk use")?;
    Ok(disks_in_stats(&body))
}

fn disks_in_stats(body: &Value) -> Vec<NodeDisk> {
    let mut disks = Vec::new();
    if let Some(Value::Object(nodes)) = body.get("nodes") {
        for (id, node) in nodes {
            let roles = node.get("roles").and_then(Value::as_array);
            // Nodes without data roles hold no shards; 7.x lists "data", 8.x also "data_hot" etc.
            let holds_data = roles.is_none_or(|roles| {
                roles
                    .iter()
                    .filter_map(Value::as_str)
                    .any(|role| role.starts_with("data"))
            });
            let total = &node["fs"]["total"];
            let (Some(total_bytes), Some(available)) = (
                total["total_in_bytes"].as_u64(),
                total["available_in_bytes"].as_u64(),
            ) else {
                continue;
            };
            if !holds_data || total_bytes == 0 {
                continue;
            }
            let name = node["name"].as_str().unwrap_or(id).to_string();
            let used_pct = 100.0 * (1.0 - available as f64 / total_bytes as f64);
            disks.push(NodeDisk {
                node: name,
                used_pct: (used_pct * 10.0).round() / 10.0,
                available_bytes: available,
            });
        }
    }
    disks.sort_by(|a, b| a.node.cmp(&b.node));
    disks
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn watermarks_read_as_elasticsearch_writes_them() {
        assert_eq!(Watermark::parse("90%"), Some(Watermark::UsedPct(90.0)));
        assert_eq!(Watermark::parse(" 85.5% "), Some(Watermark::UsedPct(85.5)));
        assert_eq!(Watermark::parse("0.9"), Some(Watermark::UsedPct(90.0)));
        assert_eq!(
            Watermark::parse("500mb"),
            Some(Watermark::FreeBytes(500 << 20))
        );
        assert_eq!(
            Watermark::parse("10GB"),
            Some(Watermark::FreeBytes(10 << 30))
        );
        assert_eq!(Watermark::parse("1024b"), Some(Watermark::FreeBytes(1024)));
        assert_eq!(Watermark::parse("lots"), None);
        assert_eq!(Watermark::parse("1.5"), None);
    }

    #[test]
    fn a_disk_at_or_past_the_watermark_is_reached() {
        let disk = NodeDisk {
            node: "n".into(),
            used_pct: 90.0,
            available_bytes: 100,
        };
        assert!(Watermark::UsedPct(90.0).reached(&disk));
        assert!(!Watermark::UsedPct(90.1).reached(&disk));
        assert!(Watermark::FreeBytes(100).reached(&disk));
        assert!(!Watermark::FreeBytes(99).reached(&disk));
    }

    #[test]
    fn settings_resolve_transient_over_persistent_over_default() {
        let settings = json!({
            "persistent": {"cluster.blocks.read_only": "true", "a": "p"},
            "transient": {"a": "t"},
            "defaults": {"a": "d", "b": "d"}
        });
        assert_eq!(setting(&settings, "a").as_deref(), Some("t"));
        assert_eq!(setting(&settings, "b").as_deref(), Some("d"));
        assert_eq!(setting(&settings, "c"), None);
        assert_eq!(
            cluster_blocks(&settings),
            vec!["the cluster has cluster.blocks.read_only".to_string()]
        );
        assert!(
            cluster_blocks(&json!({"persistent": {"cluster.blocks.read_only": "false"}}))
                .is_empty()
        );
    }

    #[test]
    fn only_set_index_blocks_are_reported() {
        let body = json!({
            "image-b": {"settings": {"index.blocks.read_only_allow_delete": "true", "index.blocks.write": "false"}},
            "image-a": {"settings": {"index.blocks.write": true}},
            "image-c": {"settings": {}}
        });
        assert_eq!(
            blocks_in_settings(&body),
            vec![
                "index image-a has index.blocks.write".to_string(),
                "index image-b has index.blocks.read_only_allow_delete".to_string()
            ]
        );
    }

    #[test]
    fn disks_of_data_nodes_only() {
        let body = json!({"nodes": {
            "x1": {"name": "data-1", "roles": ["data", "master"],
                   "fs": {"total": {"total_in_bytes": 1000, "available_in_bytes": 250}}},
            "x2": {"name": "voter", "roles": ["master"],
                   "fs": {"total": {"total_in_bytes": 1000, "available_in_bytes": 1}}},
            "x3": {"name": "hot-1", "roles": ["data_hot"],
                   "fs": {"total": {"total_in_bytes": 1000, "available_in_bytes": 900}}}
        }});
        let disks = disks_in_stats(&body);
        assert_eq!(disks.len(), 2);
        assert_eq!(disks[0].node, "data-1");
        assert_eq!(disks[0].used_pct, 75.0);
        assert_eq!(disks[1].node, "hot-1");
        assert_eq!(disks[1].available_bytes, 900);
    }
}
