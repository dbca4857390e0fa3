//! Helpers the PostgreSQL benchmarks share (`index_builds`, `copy_scale`): settings from the
//! environment, the temp table's indexes, medians. Benchmarks may unwrap: a failure is a
//! failed run, reported by the panic.
// Each benchmark compiles this module on its own and uses part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use testkit::Client;

pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Drops every index of `temp_import_image` but the primary key, so the next `reapply` run
/// builds the same 13; then a checkpoint, so no run starts with the last one's dirty pages.
pub async fn reset_temp_indexes(api: &Client) {
    let rows = api
        .query(
            "SELECT c.relname::text, con.conname IS NOT NULL
               FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
               LEFT JOIN pg_constraint con ON con.conindid = x.indexrelid AND con.conrelid = x.indrelid
              WHERE x.indrelid = 'temp_import_image'::regclass AND NOT x.indisprimary",
            &[],
        )
        .await
        .unwrap();
    for row in rows {
        let name: String = row.get(0);
        let sql = if row.get::<_, bool>(1) {
            format!("ALTER TABLE temp_import_image DROP CONSTRAINT \"{name}\"")
        } else {
            format!("DROP INDEX \"{name}\"")
        };
        api.batch_execute(&sql).await.unwrap();
    }
    let _ = api.batch_execute("CHECKPOINT").await;
}

/// Index name → (definition tail, valid) of `temp_import_image`.
pub async fn temp_indexes(api: &Client) -> BTreeMap<String, (String, bool)> {
    api.query(
        "SELECT c.relname::text, regexp_replace(pg_get_indexdef(c.oid), '^.* USING ', ''), x.indisvalid
           FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
          WHERE x.indrelid = 'temp_import_image'::regclass",
        &[],
    )
    .await
    .unwrap()
    .into_iter()
    .map(|r| (r.get(0), (r.get(1), r.get(2))))
    .collect()
}

pub async fn setting(api: &Client, name: &str) -> String {
    api.query_one("SELECT current_setting($1)", &[&name])
        .await
        .unwrap()
        .get(0)
}

/// The middle value (the mean of the two middle ones for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// Rounded to `digits` decimals, for the JSON results.
pub fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}
