//! Test support for the data refresh workspace.
//!
//! - [`TestDatabases::create`] makes a fresh pair of databases (API + catalog) in the cluster
//!   at `TEST_PG_URL`, from the versioned SQL files in `localstack/schema/`, and drops them
//!   again ([`TestDatabases::drop_all`], or best effort on `Drop`).
//! - [`insert_image_rows`] / [`insert_audio_rows`] fill a media table (catalog, API or temp
//!   table: only the columns the table has are written) with deterministic, realistic rows
//!   in one statement, covering the edge cases the pipeline must survive.
//! - [`mark_deleted`] / [`mark_mature`] put some of those rows into the deleted / mature tables.
//! - [`es_count`] refreshes an Elasticsearch index and counts its documents.
//!
//! A missing environment variable panics with a message naming it: an integration test must
//! fail, never silently pass, when its services are not configured.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub use tokio_postgres::Client;
use tokio_postgres::NoTls;

/// Env var holding a superuser URL of the PostgreSQL cluster tests may create databases in.
pub const TEST_PG_URL: &str = "TEST_PG_URL";
/// Env var holding the Elasticsearch URL for tests.
pub const ES_URL: &str = "ES_URL";

fn required_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v,
        _ => panic!(
            "environment variable {name} is not set: integration tests need it \
             (e.g. {name}=postgres://postgres@127.0.0.1:55439/postgres for TEST_PG_URL, \
             http://127.0.0.1:19209 for ES_URL)"
        ),
    }
}

/// Refreshes `index`, then counts its documents: those `query` matches, or all of them.
/// Panics with Elasticsearch's answer when it gives no count.
pub async fn es_count(
    http: &reqwest::Client,
    es_url: &str,
    index: &str,
    query: Option<&serde_json::Value>,
) -> u64 {
    let refreshed = http
        .post(format!("{es_url}/{index}/_refresh"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("refreshing {index}: {e}"));
    assert!(
        refreshed.status().is_success(),
        "refreshing {index} answered {}",
        refreshed.status()
    );
    let query = query
        .cloned()
        .unwrap_or_else(|| serde_json::json!({"match_all": {}}));
    let answer: serde_json::Value = http
        .post(format!("{es_url}/{index}/_count"))
        .json(&serde_json::json!({ "query": query }))
        .send()
        .await
        .unwrap_or_else(|e| panic!("counting {index}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("reading the count of {index}: {e}"));
    answer["count"]
        .as_u64()
        .unwrap_or_else(|| panic!("no count from {index}/_count: {answer}"))
}

/// Superuser URL of the test PostgreSQL cluster (`TEST_PG_URL`); panics naming it when unset.
pub fn test_pg_url() -> String {
    required_env(TEST_PG_URL)
}

/// Elasticsearch URL (`ES_URL`); panics naming it when unset.
pub fn es_url() -> String {
    required_env(ES_URL).trim_end_matches('/').to_string()
}

/// A name unique across processes and calls: `<prefix>_<pid>_<nanos>_<counter>`, lower case,
/// valid as a PostgreSQL identifier and an Elasticsearch index name.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}_{}_{}_{}",
        prefix.to_lowercase(),
        std::process::id(),
        nanos,
        n
    )
}

/// The workspace root (the folder holding `localstack/`), found from this crate's manifest dir.
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .find(|p| p.join("localstack").join("schema").is_dir())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| panic!("no localstack/schema above {}", here.display()))
}

/// Which schema folder: `localstack/schema/api` or `localstack/schema/catalog`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Api,
    Catalog,
}

impl Side {
    pub fn dir_name(self) -> &'static str {
        match self {
            Side::Api => "api",
            Side::Catalog => "catalog",
        }
    }
}

/// The schema SQL files of one side, in lexical (= version) order.
pub fn schema_files(side: Side) -> Vec<PathBuf> {
    let dir = workspace_root()
        .join("localstack")
        .join("schema")
        .join(side.dir_name());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read schema folder {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .sql files in {}", dir.display());
    files
}

/// Connects and drives the connection on the current tokio runtime.
pub async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test cluster: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Connection parameters of one database, split out (e.g. for a `postgres_fdw` server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTarget {
    pub host: String,
    pub port: u16,
    pub dbname: String,
    pub user: String,
    pub password: Option<String>,
}

/// `url` with its database name replaced by `dbname`.
pub fn url_with_database(url: &str, dbname: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = base[after_scheme..].find('/').map(|i| i + after_scheme);
    let authority = match path_start {
        Some(i) => &base[..i],
        None => base,
    };
    match query {
        Some(q) => format!("{authority}/{dbname}?{q}"),
        None => format!("{authority}/{dbname}"),
    }
}

/// A fresh API + catalog database pair with the project's schemas applied.
pub struct TestDatabases {
    pub api_db: String,
    pub catalog_db: String,
    pub api_url: String,
    pub catalog_url: String,
    pub api: Client,
    pub catalog: Client,
    admin_url: String,
    dropped: bool,
}

impl TestDatabases {
    /// Creates `t_api_…` and `t_catalog_…` from `localstack/schema/{api,catalog}/*.sql`.
    pub async fn create() -> TestDatabases {
        let admin_url = test_pg_url();
        let admin = connect(&admin_url).await;
        let api_db = unique_name("t_api");
        let catalog_db = unique_name("t_catalog");
        for db in [&api_db, &catalog_db] {
            admin
                .batch_execute(&format!("CREATE DATABASE \"{db}\""))
                .await
                .unwrap_or_else(|e| panic!("CREATE DATABASE {db} failed: {e}"));
        }
        let api_url = url_with_database(&admin_url, &api_db);
        let catalog_url = url_with_database(&admin_url, &catalog_db);
        let dbs = TestDatabases {
            api: connect(&api_url).await,
            catalog: connect(&catalog_url).await,
            api_db,
            catalog_db,
            api_url,
            catalog_url,
            admin_url,
            dropped: false,
        };
        let mut failure = apply_schema(&dbs.api, Side::Api).await.err();
        if failure.is_none() {
            failure = apply_schema(&dbs.catalog, Side::Catalog).await.err();
        }
        if let Some(e) = failure {
            dbs.drop_all().await;
            panic!("{e}");
        }
        dbs
    }

    /// Connection parameters of the catalog database, as the API DB's FDW server needs them.
    pub fn catalog_target(&self) -> PgTarget {
        let config: tokio_postgres::Config = self
            .catalog_url
            .parse()
            .expect("TEST_PG_URL is a valid PostgreSQL URL");
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".to_string(),
        };
        PgTarget {
            host,
            port: config.get_ports().first().copied().unwrap_or(5432),
            dbname: self.catalog_db.clone(),
            user: config.get_user().unwrap_or("postgres").to_string(),
            password: config
                .get_password()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
        }
    }

    /// A new connection to the API database (e.g. for a second session in a test).
    pub async fn connect_api(&self) -> Client {
        connect(&self.api_url).await
    }

    /// A new connection to the catalog database.
    pub async fn connect_catalog(&self) -> Client {
        connect(&self.catalog_url).await
    }

    /// Drops both databases (terminating their sessions). Call at the end of every test.
    pub async fn drop_all(mut self) {
        drop_databases(&self.admin_url, &[&self.api_db, &self.catalog_db]).await;
        self.dropped = true;
    }
}

impl Drop for TestDatabases {
    /// Best effort when a test panicked before `drop_all`: drop on a separate thread with its
    /// own runtime (we may be inside, or outside, a tokio runtime here).
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let admin_url = self.admin_url.clone();
        let names = [self.api_db.clone(), self.catalog_db.clone()];
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(async {
                    drop_databases(&admin_url, &[&names[0], &names[1]]).await;
                });
            }
        })
        .join();
    }
}

async fn drop_databases(admin_url: &str, names: &[&str]) {
    let Ok((admin, connection)) = tokio_postgres::connect(admin_url, NoTls).await else {
        return;
    };
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    for name in names {
        let _ = admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .await;
    }
    drop(admin);
    let _ = driver.await;
}

/// Applies every schema file of `side`, in order. Returns a message naming the failing file.
pub async fn apply_schema(client: &Client, side: Side) -> Result<(), String> {
    for file in schema_files(side) {
        let sql = std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        client
            .batch_execute(&sql)
            .await
            .map_err(|e| format!("schema file {} failed: {e:?}", file.display()))?;
    }
    Ok(())
}

pub mod reliability;
mod rows;
pub use rows::{
    identifier_sql, insert_audio_rows, insert_image_rows, insert_narrow_image_rows, mark_deleted,
    mark_mature, table_columns, TAG_CASES,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_database_is_replaced() {
        assert_eq!(
            url_with_database("postgres://u:p@127.0.0.1:5432/postgres", "x"),
            "postgres://u:p@127.0.0.1:5432/x"
        );
        assert_eq!(
            url_with_database("postgres://u@h:1/db?sslmode=disable", "y"),
            "postgres://u@h:1/y?sslmode=disable"
        );
        assert_eq!(
            url_with_database("postgres://u@h:1", "z"),
            "postgres://u@h:1/z"
        );
    }

    #[test]
    fn unique_names_differ() {
        let a = unique_name("T");
        let b = unique_name("T");
        assert_ne!(a, b);
        assert!(a.starts_with("t_"));
    }

    #[test]
    fn schema_files_are_found_in_order() {
        for side in [Side::Api, Side::Catalog] {
            let files = schema_files(side);
            let names: Vec<_> = files
                .iter()
                .map(|f| f.file_name().unwrap().to_owned())
                .collect();
            let mut sorted = names.clone();
            sorted.sort();
            assert_eq!(names, sorted);
            assert!(names[0].to_string_lossy().starts_with("V001__"));
        }
    }
}
