//! Shared fixtures: a temp table in a fresh database, a test index, the real worker binary
//! as a child process, and a TCP proxy that can cut Elasticsearch off.
#![allow(dead_code)]

use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use testkit::{Client, TestDatabases};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

pub const TOKEN: &str = "test-token-0123456789";

/// A fresh API database with `temp_import_<media>` filled by testkit's generator, as the
/// copy step leaves it (LIKE the live table, primary key on id).
pub struct Fixture {
    pub dbs: TestDatabases,
    pub es_url: String,
    pub index: String,
    pub media: &'static str,
    pub http: reqwest::Client,
}

impl Fixture {
    pub async fn new(media: &'static str, rows: i64, seed: i64) -> Fixture {
        let es_url = testkit::es_url();
        let dbs = TestDatabases::create().await;
        let temp = format!("temp_import_{media}");
        dbs.api
            .batch_execute(&format!(
                "CREATE TABLE {temp} (LIKE {media} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
            ))
            .await
            .unwrap();
        let inserted = match media {
            "image" => testkit::insert_image_rows(&dbs.api, &temp, rows, seed).await,
            _ => testkit::insert_audio_rows(&dbs.api, &temp, rows, seed).await,
        };
        assert_eq!(inserted, rows as u64);
        dbs.api
            .batch_execute(&format!("ALTER TABLE {temp} ADD PRIMARY KEY (id)"))
            .await
            .unwrap();
        // Every 7th row deleted by moderation, every 5th flagged mature.
        testkit::mark_deleted(&dbs.api, &format!("api_deleted{media}"), rows, seed, 7).await;
        testkit::mark_mature(&dbs.api, &format!("api_mature{media}"), rows, seed, 5).await;
        let index = format!("{media}-{}", testkit::unique_name("wt"));
        let fixture = Fixture {
            dbs,
            es_url,
            index,
            media,
            http: reqwest::Client::new(),
        };
        fixture.create_index().await;
        fixture
    }

    pub fn temp_table(&self) -> String {
        format!("temp_import_{}", self.media)
    }

    pub fn api(&self) -> &Client {
        &self.dbs.api
    }

    /// The production settings and mappings, one shard.
    async fn create_index(&self) {
        let media: refresh_core::media::MediaType = self.media.parse().unwrap();
        let client = refresh_core::es::SearchClient::new(&self.es_url).unwrap();
        refresh_core::es::create_index(&client, media, &self.index, 1)
            .await
            .unwrap();
    }

    pub async fn delete_index(&self) {
        let _ = self
            .http
            .delete(format!("{}/{}", self.es_url, self.index))
            .send()
            .await;
    }

    pub async fn id_bounds(&self) -> (i64, i64) {
        let row = self
            .api()
            .query_one(
                &format!(
                    "SELECT min(id)::bigint, max(id)::bigint FROM {}",
                    self.temp_table()
                ),
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    }

    /// Ids the brief says must be indexed: not removed from source, not deleted.
    pub async fn eligible_ids(&self, start: i64, end: i64) -> Vec<i64> {
        let media = self.media;
        self.api()
            .query(
                &format!(
                    "SELECT t.id::bigint FROM {} t WHERE t.id BETWEEN $1::bigint AND $2::bigint AND NOT t.removed_from_source \
                     AND NOT EXISTS (SELECT 1 FROM api_deleted{media} d WHERE d.identifier = t.identifier) ORDER BY 1",
                    self.temp_table()
                ),
                &[&start, &end],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    pub async fn refresh(&self) {
        let r = self
            .http
            .post(format!("{}/{}/_refresh", self.es_url, self.index))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }

    pub async fn doc_count(&self) -> u64 {
        testkit::es_count(&self.http, &self.es_url, &self.index, None).await
    }

    /// Every `_id` in the index, sorted (sliced scroll is overkill at test sizes).
    pub async fn all_ids(&self) -> Vec<i64> {
        self.refresh().await;
        let mut ids = Vec::new();
        let mut after: Option<Value> = None;
        loop {
            let mut query = json!({"size": 5000, "_source": false, "sort": [{"id": "asc"}], "query": {"match_all": {}}});
            if let Some(a) = &after {
                query["search_after"] = a.clone();
            }
            let v: Value = self
                .http
                .post(format!("{}/{}/_search", self.es_url, self.index))
                .json(&query)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let hits = v["hits"]["hits"].as_array().unwrap().clone();
            if hits.is_empty() {
                break;
            }
            for h in &hits {
                ids.push(h["_id"].as_str().unwrap().parse().unwrap());
            }
            after = Some(hits.last().unwrap()["sort"].clone());
        }
        ids
    }

    pub async fn get_docs(&self, ids: &[i64]) -> Vec<Value> {
        let v: Value = self
            .http
            .post(format!("{}/{}/_mget", self.es_url, self.index))
            .json(&json!({"ids": ids.iter().map(|i| i.to_string()).collect::<Vec<_>>()}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["docs"].as_array().unwrap().clone()
    }

    pub async fn cleanup(self) {
        self.delete_index().await;
        self.dbs.drop_all().await;
    }
}

/// The real worker binary as a child process on a free loopback port.
pub struct Worker {
    pub child: Child,
    pub base: String,
    pub http: reqwest::Client,
    pub logs: Arc<tokio::sync::Mutex<Vec<String>>>,
    log_pump: JoinHandle<()>,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Worker {
    pub async fn start(db_url: &str, es_url: &str, extra: &[&str]) -> Worker {
        let port = free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_indexer-worker"))
            .arg("--bind")
            .arg(format!("127.0.0.1:{port}"))
            .args(extra)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("API_DB_URL", db_url)
            .env("ES_URL", es_url)
            .env("WORKER_TOKEN", TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn indexer-worker");
        let stdout = child.stdout.take().unwrap();
        let logs = Arc::new(tokio::sync::Mutex::new(Vec::new()));
        let sink = logs.clone();
        let log_pump = tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().await.push(line);
            }
        });
        let worker = Worker {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            logs,
            log_pump,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = worker
                .http
                .get(format!("{}/healthcheck", worker.base))
                .send()
                .await
            {
                if r.status() == 200 {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "worker did not answer /healthcheck within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        worker
    }

    pub fn authed(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        rb.bearer_auth(TOKEN)
    }

    pub async fn post_task(&self, body: &Value) -> (u16, Value) {
        let r = self
            .authed(self.http.post(format!("{}/task", self.base)))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn start_range(&self, fixture: &Fixture, start: i64, end: i64) -> String {
        let (status, body) = self
            .post_task(
                &json!({"model_name": fixture.media, "table_name": fixture.temp_table(),
                "target_index": fixture.index, "start_id": start, "end_id": end}),
            )
            .await;
        assert_eq!(status, 202, "POST /task: {body}");
        body["task_id"].as_str().unwrap().to_string()
    }

    /// `GET /task`: every task the worker knows.
    pub async fn tasks(&self) -> Value {
        let r = self
            .authed(self.http.get(format!("{}/task", self.base)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    pub async fn status(&self, task_id: &str) -> Value {
        let r = self
            .authed(self.http.get(format!("{}/task/{task_id}", self.base)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    /// Polls until the task is no longer active.
    pub async fn wait(&self, task_id: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let s = self.status(task_id).await;
            if s["active"] == false {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "task still active after {limit:?}: {s}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("worker running");
        let ok = tokio::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .await
            .unwrap();
        assert!(ok.success());
    }

    /// Waits for the process to exit by itself; returns its exit code.
    pub async fn exited(&mut self, limit: Duration) -> Option<i32> {
        let status = tokio::time::timeout(limit, self.child.wait())
            .await
            .expect("worker did not exit in time")
            .unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.log_pump).await;
        status.code()
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// A TCP proxy in front of Elasticsearch that can be cut (listener closed, every open
/// connection dropped: the worker then sees exactly what a stopped node gives it) and
/// brought back on the same port.
pub struct CutProxy {
    pub port: u16,
    upstream: String,
    /// Bytes forwarded worker → Elasticsearch so far.
    pub forwarded: Arc<AtomicU64>,
    accept: Option<JoinHandle<()>>,
    conns: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
}

impl CutProxy {
    pub async fn start(upstream_url: &str) -> CutProxy {
        let upstream = upstream_url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let mut proxy = CutProxy {
            port: free_port(),
            upstream,
            forwarded: Arc::default(),
            accept: None,
            conns: Arc::default(),
        };
        proxy.open().await;
        proxy
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub async fn open(&mut self) {
        // The aborted accept task may hold the port for a moment.
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(e) if tries < 100 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("bind proxy port {}: {e}", self.port),
            }
        };
        let (upstream, forwarded, conns) = (
            self.upstream.clone(),
            self.forwarded.clone(),
            self.conns.clone(),
        );
        self.accept = Some(tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (upstream, forwarded) = (upstream.clone(), forwarded.clone());
                let handle = tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let up = async {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = match cr.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            forwarded.fetch_add(n as u64, Ordering::Relaxed);
                            if sw.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = sw.shutdown().await;
                    };
                    let down = async {
                        let _ = tokio::io::copy(&mut sr, &mut cw).await;
                        let _ = cw.shutdown().await;
                    };
                    tokio::join!(up, down);
                });
                conns.lock().unwrap().push(handle);
            }
        }));
    }

    /// Closes the port and drops every connection mid-stream.
    pub fn cut(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
        }
        for handle in self.conns.lock().unwrap().drain(..) {
            handle.abort();
        }
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.cut();
    }
}
