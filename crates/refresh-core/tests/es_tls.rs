//! TLS with a custom CA and the three `es_auth` shapes, end to end: a refresh secret is parsed,
//! a `SearchClient` is built from it exactly as the Lambdas and the worker build theirs, and
//! talks to a local HTTPS server whose certificate is signed by a CA made in the test. The
//! server records the `Authorization` header it receives and, like Elasticsearch 8 with
//! security on, answers 401 to anything but the expected credentials.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use elasticsearch::http::Method;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use refresh_core::error::ErrorKind;
use refresh_core::es::bulk::BulkOptions;
use refresh_core::es::SearchClient;
use refresh_core::settings::Secrets;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

/// A certificate authority made for one test.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A server certificate for `names` (DNS names or IP addresses) and its key.
    fn issue(&self, names: &[&str]) -> (rustls::pki_types::CertificateDer<'static>, Vec<u8>) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "es-test");
        for name in names {
            params.subject_alt_names.push(match name.parse() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName((*name).try_into().unwrap()),
            });
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.der().clone(), key.serialize_der())
    }
}

/// What the server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    request_line: String,
    authorization: Option<String>,
    content_type: Option<String>,
}

/// A local HTTPS server on 127.0.0.1 that accepts `expected_auth` only.
struct TlsServer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl TlsServer {
    async fn start(ca: &Ca, names: &[&str], expected_auth: String) -> TlsServer {
        let (cert, key) = ca.issue(names);
        // The same crypto provider reqwest uses (ring), so no process default is needed.
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.into()),
        )
        .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorded = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let recorded = recorded.clone();
                let expected_auth = expected_auth.clone();
                tokio::spawn(async move {
                    // A client that refuses the certificate ends the handshake here.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Some((head, _body)) = read_request(&mut tls).await else {
                        return;
                    };
                    let header = |name: &str| {
                        head.lines().find_map(|line| {
                            let (key, value) = line.split_once(':')?;
                            key.eq_ignore_ascii_case(name)
                                .then(|| value.trim().to_string())
                        })
                    };
                    let seen = Seen {
                        request_line: head.lines().next().unwrap_or_default().to_string(),
                        authorization: header("authorization"),
                        content_type: header("content-type"),
                    };
                    let authorized = seen.authorization.as_deref() == Some(expected_auth.as_str());
                    let is_bulk = seen.request_line.contains("/_bulk");
                    recorded.lock().unwrap().push(seen);
                    let (status, body) = match (authorized, is_bulk) {
                        (true, false) => (
                            "200 OK",
                            json!({"cluster_name": "tls-test", "status": "green"}),
                        ),
                        (true, true) => ("200 OK", json!({"took": 1, "errors": false})),
                        // What Elasticsearch 8 answers to unknown credentials.
                        (false, _) => (
                            "401 Unauthorized",
                            json!({"error": {"type": "security_exception",
                                "reason": "unable to authenticate with provided credentials and anonymous access is not allowed for this request"},
                                "status": 401}),
                        ),
                    };
                    let body = body.to_string();
                    let response = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(response.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        TlsServer { addr, seen }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Reads one request's head (as text) and body.
async fn read_request<S: AsyncReadExt + Unpin>(stream: &mut S) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (key, value) = l.split_once(':')?;
            key.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some((head, buf[head_end..].to_vec()))
}

/// A refresh secret for `es_url` with the given Elasticsearch fields.
fn secret(es_url: &str, es_fields: Value) -> Secrets {
    let mut value = json!({
        "api_db_url": "postgres://u:p@127.0.0.1:1/api",
        "catalog_db_url": "postgres://u:p@127.0.0.1:1/catalog",
        "es_url": es_url,
        "worker_token": "tok",
        "catalog_fdw": {"host": "h", "port": 5432, "dbname": "d", "user": "u", "password": "p"}
    });
    for (key, field) in es_fields.as_object().unwrap() {
        value[key] = field.clone();
    }
    Secrets::from_json(&value.to_string()).unwrap()
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

async fn health(client: &SearchClient) -> refresh_core::error::StepResult<Value> {
    client
        .call("cluster health", Method::Get, "/_cluster/health", &[], None)
        .await?
        .into_success("cluster health")
}

const KEY_ID: &str = "VuaCfGcBCdbkQm-e5aOx";
const KEY: &str = "ui2lp2axTNmsyakw9tvNnw";

#[tokio::test]
async fn an_encoded_api_key_is_sent_over_tls_to_a_server_signed_by_the_custom_ca() {
    let ca = Ca::new("refresh test CA");
    let encoded = b64(&format!("{KEY_ID}:{KEY}"));
    let server = TlsServer::start(&ca, &["127.0.0.1"], format!("ApiKey {encoded}")).await;
    // A bundle: an unrelated CA first, the right one second.
    let bundle = format!("{}{}", Ca::new("other CA").pem(), ca.pem());
    let secrets = secret(
        &server.url(),
        json!({"es_auth": {"api_key": encoded}, "es_ca_cert": bundle}),
    );
    let client = SearchClient::from_secrets(&secrets).unwrap();
    let body = health(&client).await.unwrap();
    assert_eq!(body["status"], "green");
    let seen = server.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].request_line, "GET /_cluster/health HTTP/1.1");
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some(format!("ApiKey {encoded}").as_str())
    );
}

#[tokio::test]
async fn an_api_key_id_and_key_become_the_same_header_and_reach_bulk_requests_too() {
    let ca = Ca::new("refresh test CA");
    let server = TlsServer::start(
        &ca,
        &["127.0.0.1"],
        format!("ApiKey {}", b64(&format!("{KEY_ID}:{KEY}"))),
    )
    .await;
    let secrets = secret(
        &server.url(),
        json!({"es_auth": {"api_key_id": KEY_ID, "api_key": KEY}, "es_ca_cert": ca.pem()}),
    );
    let client = SearchClient::from_secrets(&secrets).unwrap();
    health(&client).await.unwrap();
    // The worker's bulk path goes through the same client.
    let response = client
        .bulk_ndjson(
            "image-tls",
            b"{\"index\":{\"_id\":\"1\"}}\n{\"id\":1}\n".to_vec(),
            &BulkOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(response.status.as_u16(), 200);
    let seen = server.requests();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[1].request_line, "POST /image-tls/_bulk HTTP/1.1");
    assert_eq!(
        seen[1].content_type.as_deref(),
        Some("application/x-ndjson")
    );
    for request in &seen {
        assert_eq!(
            request.authorization,
            Some(format!("ApiKey {}", b64(&format!("{KEY_ID}:{KEY}"))))
        );
    }
}

#[tokio::test]
async fn basic_auth_from_es_auth_and_from_the_url() {
    let ca = Ca::new("refresh test CA");
    let expected = format!("Basic {}", b64("refresh:pa55 w:rd"));
    let server = TlsServer::start(&ca, &["127.0.0.1"], expected.clone()).await;
    let secrets = secret(
        &server.url(),
        json!({"es_auth": {"username": "refresh", "password": "pa55 w:rd"}, "es_ca_cert": ca.pem()}),
    );
    health(&SearchClient::from_secrets(&secrets).unwrap())
        .await
        .unwrap();
    // Credentials in es_url keep working as basic auth, with the CA too.
    let url = format!(
        "https://refresh:pa55%20w%3Ard@127.0.0.1:{}",
        server.addr.port()
    );
    let secrets = secret(&url, json!({"es_ca_cert": ca.pem()}));
    health(&SearchClient::from_secrets(&secrets).unwrap())
        .await
        .unwrap();
    let seen = server.requests();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen
        .iter()
        .all(|s| s.authorization.as_deref() == Some(&*expected)));
}

/// The client error must say what to fix and carry no credential.
fn assert_certificate_refused(err: &refresh_core::error::StepError, secrets: &[&str]) {
    assert_eq!(err.kind, ErrorKind::Configuration, "{}", err.message);
    assert!(
        err.message.starts_with("cluster health (127.0.0.1:"),
        "{}",
        err.message
    );
    assert!(
        err.message.contains("TLS certificate was refused") && err.message.contains("es_ca_cert"),
        "{}",
        err.message
    );
    for secret in secrets {
        assert!(!err.message.contains(secret), "{}", err.message);
    }
}

#[tokio::test]
async fn a_server_signed_by_an_unknown_ca_is_refused_before_any_credential_is_sent() {
    let ca = Ca::new("refresh test CA");
    let encoded = b64(&format!("{KEY_ID}:{KEY}"));
    let server = TlsServer::start(&ca, &["127.0.0.1"], format!("ApiKey {encoded}")).await;
    let leaks = [encoded.as_str(), KEY_ID, KEY];

    // Without es_ca_cert only the public roots are trusted.
    let secrets = secret(&server.url(), json!({"es_auth": {"api_key": encoded}}));
    let err = health(&SearchClient::from_secrets(&secrets).unwrap())
        .await
        .unwrap_err();
    assert_certificate_refused(&err, &leaks);
    assert!(err.message.contains("UnknownIssuer"), "{}", err.message);

    // With the wrong CA.
    let secrets = secret(
        &server.url(),
        json!({"es_auth": {"api_key_id": KEY_ID, "api_key": KEY},
               "es_ca_cert": Ca::new("wrong CA").pem()}),
    );
    let err = health(&SearchClient::from_secrets(&secrets).unwrap())
        .await
        .unwrap_err();
    assert_certificate_refused(&err, &leaks);

    // The handshake failed, so no request (and no Authorization header) reached the server.
    assert!(server.requests().is_empty(), "{:?}", server.requests());
}

#[tokio::test]
async fn the_host_name_is_verified_even_with_the_right_ca() {
    let ca = Ca::new("refresh test CA");
    let server = TlsServer::start(&ca, &["es.other.example"], "Basic x".into()).await;
    let secrets = secret(&server.url(), json!({"es_ca_cert": ca.pem()}));
    let err = health(&SearchClient::from_secrets(&secrets).unwrap())
        .await
        .unwrap_err();
    assert_certificate_refused(&err, &[]);
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn a_wrong_key_is_a_configuration_error_without_the_key() {
    let ca = Ca::new("refresh test CA");
    let server = TlsServer::start(&ca, &["127.0.0.1"], "ApiKey the-right-one".into()).await;
    let wrong = b64("wrong-id:wrong-secret");
    let secrets = secret(
        &server.url(),
        json!({"es_auth": {"api_key": wrong}, "es_ca_cert": ca.pem()}),
    );
    let err = health(&SearchClient::from_secrets(&secrets).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Configuration, "{}", err.message);
    assert!(
        err.message
            .starts_with("cluster health: Elasticsearch answered 401: security_exception"),
        "{}",
        err.message
    );
    for secret in [wrong.as_str(), "wrong-id", "wrong-secret"] {
        assert!(!err.message.contains(secret), "{}", err.message);
    }
    assert_eq!(server.requests().len(), 1);
}
