//! The sensitive-terms list: one term a line, from a file path or an http(s) URL.

use crate::error::{ErrorKind, StepError, StepResult};
use std::time::Duration;

const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Terms of a list: each line trimmed; blank lines and `#` comments skipped.
pub fn parse_sensitive_terms(text: &str) -> Vec<String> {
    text.trim_start_matches('\u{feff}')
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// Loads the list from `location`: `http://` / `https://` URL, `file://` URL or a plain path.
/// An unreachable server, 429 or 5xx is transient; a missing file, any other status or an
/// empty list is a configuration error (a filtered index that filters nothing would serve
/// what it must not). Messages show the location without credentials or query string.
pub async fn load_sensitive_terms(location: &str) -> StepResult<Vec<String>> {
    let shown = describe_location(location);
    let text = if location.starts_with("http://") || location.starts_with("https://") {
        fetch(location, &shown).await?
    } else if location.starts_with("s3://") {
        return Err(StepError::new(
            ErrorKind::Configuration,
            format!("sensitive terms location {shown}: s3:// is not supported yet; use a file path or an http(s) URL"),
        ));
    } else {
        let path = location.strip_prefix("file://").unwrap_or(location);
        tokio::fs::read_to_string(path).await.map_err(|e| {
            StepError::new(
                ErrorKind::Configuration,
                format!("cannot read the sensitive terms file {shown}: {e}"),
            )
        })?
    };
    let terms = parse_sensitive_terms(&text);
    if terms.is_empty() {
        return Err(StepError::new(
            ErrorKind::Configuration,
            format!("the sensitive terms list at {shown} is empty"),
        ));
    }
    Ok(terms)
}

async fn fetch(url: &str, shown: &str) -> StepResult<String> {
    let client = reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .build()
        .map_err(|e| {
            StepError::new(
                ErrorKind::Internal,
                format!("cannot build an HTTP client: {}", e.without_url()),
            )
        })?;
    let transient = |what: String| {
        StepError::new(
            ErrorKind::TransientSearch,
            format!("fetching sensitive terms from {shown}: {what}"),
        )
    };
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| transient(e.without_url().to_string()))?;
    let status = response.status();
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        return Err(transient(format!(
            "the server answered {}",
            status.as_u16()
        )));
    }
    if !status.is_success() {
        return Err(StepError::new(
            ErrorKind::Configuration,
            format!(
                "fetching sensitive terms from {shown}: the server answered {}",
                status.as_u16()
            ),
        ));
    }
    response
        .text()
        .await
        .map_err(|e| transient(e.without_url().to_string()))
}

/// A location fit for messages: URLs lose user info, query and fragment.
fn describe_location(location: &str) -> String {
    match url::Url::parse(location) {
        Ok(mut url) if url.scheme() != "file" && url.has_host() => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_query(None);
            url.set_fragment(None);
            url.to_string()
        }
        _ => location.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_trimmed_and_comments_skipped() {
        let text = "\u{feff}# header\nfoo\n  bar  \n\n\t\n#baz\nqux # not a comment\r\nlast";
        assert_eq!(
            parse_sensitive_terms(text),
            vec!["foo", "bar", "qux # not a comment", "last"]
        );
        assert!(parse_sensitive_terms("").is_empty());
        assert!(parse_sensitive_terms("# only\n\n").is_empty());
    }

    #[test]
    fn locations_are_shown_without_secrets() {
        assert_eq!(
            describe_location("https://user:pw@terms.example/list.txt?token=abc#x"),
            "https://terms.example/list.txt"
        );
        assert_eq!(describe_location("/etc/terms.txt"), "/etc/terms.txt");
    }

    #[tokio::test]
    async fn files_load_and_problems_are_configuration_errors() {
        let dir = std::env::temp_dir().join(format!("terms-{}", uuid::Uuid::new_v4()));
        tokio::fs::create_dir_all(&dir).await.unwrap();
        let list = dir.join("list.txt");
        tokio::fs::write(&list, "# terms\nalpha\n beta \n")
            .await
            .unwrap();
        let path = list.to_str().unwrap();
        assert_eq!(
            load_sensitive_terms(path).await.unwrap(),
            vec!["alpha", "beta"]
        );
        assert_eq!(
            load_sensitive_terms(&format!("file://{path}"))
                .await
                .unwrap(),
            vec!["alpha", "beta"]
        );

        let empty = dir.join("empty.txt");
        tokio::fs::write(&empty, "# nothing\n\n").await.unwrap();
        let err = load_sensitive_terms(empty.to_str().unwrap())
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Configuration);
        assert!(err.message.contains("is empty"));

        let err = load_sensitive_terms(dir.join("missing.txt").to_str().unwrap())
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Configuration);
        assert!(err.message.contains("missing.txt"));

        let err = load_sensitive_terms("s3://bucket/terms.txt")
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Configuration);
        tokio::fs::remove_dir_all(&dir).await.unwrap();
    }

    /// A one-shot loopback HTTP server answering `status` with `body`.
    async fn serve_once(status: &'static str, body: &'static str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await.unwrap();
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            socket.write_all(response.as_bytes()).await.unwrap();
        });
        format!("http://{addr}/terms.txt")
    }

    #[tokio::test]
    async fn http_lists_load_and_failures_are_classified() {
        let url = serve_once("200 OK", "# list\nfoo\r\n bar\n").await;
        assert_eq!(
            load_sensitive_terms(&url).await.unwrap(),
            vec!["foo", "bar"]
        );

        let url = serve_once("404 Not Found", "nope").await;
        let err = load_sensitive_terms(&format!("{url}?token=s3cret"))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Configuration);
        assert!(
            err.message.contains("404") && !err.message.contains("s3cret"),
            "{}",
            err.message
        );

        let url = serve_once("503 Service Unavailable", "busy").await;
        assert_eq!(
            load_sensitive_terms(&url).await.unwrap_err().kind,
            ErrorKind::TransientSearch
        );

        // Nothing listens on the discard port.
        let err = load_sensitive_terms("http://user:pw@127.0.0.1:9/terms.txt")
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::TransientSearch);
        assert!(!err.message.contains("pw@"), "{}", err.message);
    }
}
