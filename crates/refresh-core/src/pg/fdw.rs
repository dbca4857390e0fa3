//! The catalog as the API database sees it: a `postgres_fdw` server per media type, its user
//! mapping and foreign tables, created at the start of every copy call and dropped at its
//! end, so the catalog password never outlives a call.

use crate::error::{StepError, StepResult};
use crate::media::MediaType;
use crate::pg::error::{pg_error_withheld, PgResultExt};
use crate::pg::sql::{quote_ident, quote_literal};
use crate::settings::CatalogFdw;
use secrecy::ExposeSecret;
use tokio_postgres::{Client, GenericClient};

/// The catalog schema the media tables live in.
const REMOTE_SCHEMA: &str = "public";
/// The catalog view audio refreshes copy into `audioset`.
pub const AUDIOSET_VIEW: &str = "audioset_view";

/// `upstream_<media>`: the FDW server, and the local schema holding its foreign tables.
pub fn fdw_server_name(media: MediaType) -> &'static str {
    match media {
        MediaType::Image => "upstream_image",
        MediaType::Audio => "upstream_audio",
    }
}

/// Drops the FDW server (with its user mapping and foreign tables) and its schema; no-op
/// when absent. Also used by the cleanup step.
pub async fn drop_fdw(api: &Client, media: MediaType) -> StepResult<()> {
    let name = quote_ident(fdw_server_name(media));
    api.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS {name} CASCADE; DROP SERVER IF EXISTS {name} CASCADE;"
    ))
    .await
    .context("dropping the catalog FDW server")
}

/// Creates the FDW server, its user mapping and the media's foreign tables (dropping any left
/// from an earlier call first).
pub async fn create_fdw(api: &Client, media: MediaType, fdw: &CatalogFdw) -> StepResult<()> {
    let name = quote_ident(fdw_server_name(media));
    let mut remote_tables = vec![quote_ident(media.table())];
    if media == MediaType::Audio {
        remote_tables.push(quote_ident(AUDIOSET_VIEW));
    }
    api.batch_execute(&format!(
        "CREATE EXTENSION IF NOT EXISTS postgres_fdw; \
         DROP SCHEMA IF EXISTS {name} CASCADE; DROP SERVER IF EXISTS {name} CASCADE; \
         CREATE SERVER {name} FOREIGN DATA WRAPPER postgres_fdw \
           OPTIONS (host {}, port {}, dbname {}, fetch_size '10000');",
        quote_literal(&fdw.host),
        quote_literal(&fdw.port.to_string()),
        quote_literal(&fdw.dbname),
    ))
    .await
    .context("creating the catalog FDW server")?;
    // DDL takes no bound parameters: the password is a quoted literal. The statement is never
    // logged, and a failure reports only its SQLSTATE (a message could quote the statement).
    let mapping = format!(
        "CREATE USER MAPPING FOR CURRENT_USER SERVER {name} OPTIONS (user {}, password {})",
        quote_literal(&fdw.user),
        quote_literal(fdw.password.expose_secret()),
    );
    api.batch_execute(&mapping)
        .await
        .map_err(|e| pg_error_withheld("creating the catalog FDW user mapping", e))?;
    api.batch_execute(&format!(
        "CREATE SCHEMA {name}; \
         IMPORT FOREIGN SCHEMA {} LIMIT TO ({}) FROM SERVER {name} INTO {name};",
        quote_ident(REMOTE_SCHEMA),
        remote_tables.join(", "),
    ))
    .await
    .context("importing the catalog tables over FDW")
}

/// Columns of `schema.table`, in table order.
async fn columns_of(
    api: &impl GenericClient,
    schema_sql: &str,
    table: &str,
) -> StepResult<Vec<String>> {
    let rows = api
        .query(
            &format!(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = {schema_sql} AND table_name = $1 ORDER BY ordinal_position"
            ),
            &[&table],
        )
        .await
        .context("reading table columns")?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Columns the local `table` and the imported foreign table share, minus `id`, in the local
/// table's order. Catalog-only columns (`ingestion_type`, …) are left out.
pub async fn shared_columns(
    api: &impl GenericClient,
    media: MediaType,
    local_table: &str,
    remote_table: &str,
) -> StepResult<Vec<String>> {
    let local = columns_of(api, "current_schema()", local_table).await?;
    let remote = api
        .query(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = $1 AND table_name = $2",
            &[&fdw_server_name(media), &remote_table],
        )
        .await
        .context("reading the catalog table's columns")?;
    let remote: Vec<String> = remote.iter().map(|r| r.get(0)).collect();
    if remote.is_empty() {
        return Err(StepError::invalid_state(format!(
            "the catalog has no table {remote_table:?} to copy from"
        )));
    }
    Ok(local
        .into_iter()
        .filter(|c| c != "id" && remote.contains(c))
        .collect())
}
