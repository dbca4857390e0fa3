//! Stage notifications: the JSON messages the state machines publish to the stack's topic
//! (`docs/OPERATIONS.md` "Notifications") and the short chat line each becomes, plus the chat
//! webhook's address as its secret holds it.
//!
//! Formatting is pure: [`chat_text`] takes an SNS subject and message and never fails. A
//! message it does not know (another publisher, a newer definition) is shown by its subject
//! and the start of its text, so nothing published to the topic is dropped.

use crate::error::{ErrorKind, StepError, StepResult};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// Longest cause shown (a Lambda's cause can be kilobytes): the console has the rest.
const CAUSE_CHARS: usize = 280;
/// Longest text posted: a chat message read on a phone.
const TEXT_CHARS: usize = 1200;
/// Per-source changes named in a success notice.
const LARGEST_CHANGES: usize = 3;

/// Who a notice is about: every notice but a refusal carries these.
#[derive(Debug, Clone, Deserialize)]
pub struct Run {
    pub media_type: String,
    pub environment: String,
    #[serde(default)]
    pub execution: Option<String>,
}

impl Run {
    /// `image refresh promoted (staging)`: the media first, the environment last.
    fn what(&self, what: &str) -> String {
        format!("{} {what} ({})", self.media_type, self.environment)
    }
}

/// `{Error, Cause}` as a Step Functions Catch leaves it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Failure {
    #[serde(rename = "Error", default)]
    pub error: Option<String>,
    #[serde(rename = "Cause", default)]
    pub cause: Option<String>,
}

/// One range of the reindex as *Summarise reindex* lists them (three parallel arrays).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PerRange {
    #[serde(default)]
    pub ranges: Vec<u64>,
    #[serde(default)]
    pub attempts: Vec<u64>,
    #[serde(default)]
    pub indexed: Vec<u64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SourceChange {
    #[serde(default)]
    pub delta: i64,
}

/// The messages of `statemachine/src/{data-refresh,filtered-index}.json`, by `event`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "event")]
pub enum Notification {
    #[serde(rename = "refresh.refused")]
    RefreshRefused {
        #[serde(default)]
        error: Failure,
        #[serde(default)]
        input: Value,
    },
    #[serde(rename = "refresh.started")]
    RefreshStarted {
        #[serde(flatten)]
        run: Run,
        new_index: String,
        documents_live: u64,
        #[serde(default)]
        params: Value,
    },
    #[serde(rename = "refresh.copy_done")]
    CopyDone {
        #[serde(flatten)]
        run: Run,
        rows_copied: u64,
        rows_scanned: u64,
        /// RFC 3339 text as Step Functions gives it; read leniently (only for a duration).
        #[serde(default)]
        started_at: Option<String>,
        #[serde(default)]
        at: Option<String>,
    },
    #[serde(rename = "refresh.reindex_done")]
    ReindexDone {
        #[serde(flatten)]
        run: Run,
        index: String,
        #[serde(default)]
        per_range: PerRange,
    },
    #[serde(rename = "refresh.filtered_index_done")]
    FilteredIndexDone {
        #[serde(flatten)]
        run: Run,
        index: String,
        documents: u64,
    },
    #[serde(rename = "refresh.promoted")]
    Promoted {
        #[serde(flatten)]
        run: Run,
        index: String,
        documents: u64,
        #[serde(default)]
        previous_indices: Vec<String>,
    },
    #[serde(rename = "refresh.succeeded")]
    Succeeded {
        #[serde(flatten)]
        run: Run,
        total_before: u64,
        total_after: u64,
        delta: i64,
        sources: u64,
        #[serde(default)]
        by_source: BTreeMap<String, SourceChange>,
        /// *Delete old indices*' output, or its `{Error, Cause}` (the run went on).
        #[serde(default)]
        old_indices: Value,
    },
    #[serde(rename = "refresh.failed")]
    RefreshFailed {
        #[serde(flatten)]
        run: Run,
        #[serde(default)]
        failed_state: Option<String>,
        #[serde(default)]
        error: Failure,
        #[serde(default)]
        cleanup: Value,
    },
    #[serde(rename = "filtered_index.started")]
    FilteredRebuildStarted {
        #[serde(flatten)]
        run: Run,
        new_filtered_index: String,
        #[serde(default)]
        source_index: Option<String>,
    },
    #[serde(rename = "filtered_index.rebuilt")]
    FilteredRebuilt {
        #[serde(flatten)]
        run: Run,
        index: String,
        documents: u64,
        #[serde(default)]
        previous_indices: Vec<String>,
    },
    #[serde(rename = "filtered_index.failed")]
    FilteredRebuildFailed {
        #[serde(flatten)]
        run: Run,
        #[serde(default)]
        failed_state: Option<String>,
        #[serde(default)]
        error: Failure,
        #[serde(default)]
        cleanup: Value,
    },
}

/// The chat line for an SNS notification: a known message in a few words with an emoji,
/// failures leading with the state and the error; anything else as its subject and the start
/// of its text. Escaped for Slack (`&`, `<`, `>`), so a cause cannot mention or link.
pub fn chat_text(subject: Option<&str>, message: &str) -> String {
    let text = match serde_json::from_str::<Notification>(message) {
        Ok(notification) => notification.chat_text(),
        Err(_) => unknown(subject, message),
    };
    slack_escape(&truncate(&text, TEXT_CHARS))
}

impl Notification {
    pub fn chat_text(&self) -> String {
        match self {
            Notification::RefreshRefused { error, input } => {
                let field = |key: &str| input.get(key).and_then(Value::as_str);
                let what = match (field("media_type"), field("environment")) {
                    (Some(media), Some(environment)) => {
                        format!("{media} refresh refused ({environment})")
                    }
                    _ => "data refresh refused".to_string(),
                };
                let mut text = format!(
                    ":no_entry: {what}: {}",
                    error.error.as_deref().unwrap_or("no error name")
                );
                push_cause(&mut text, error);
                text
            }
            Notification::RefreshStarted {
                run,
                new_index,
                documents_live,
                params,
            } => {
                let flags: Vec<&str> = [
                    ("skip_copy", "skip copy"),
                    ("override_record_drop", "drop guard overridden"),
                    ("override_search_guard", "search guard overridden"),
                    ("allow_concurrent", "concurrent allowed"),
                ]
                .into_iter()
                .filter(|(key, _)| params.get(key).and_then(Value::as_bool) == Some(true))
                .map(|(_, label)| label)
                .collect();
                let mut text = format!(
                    ":arrow_forward: {} — new index {new_index}, {} docs live now",
                    run.what("refresh started"),
                    count(*documents_live)
                );
                for flag in flags {
                    text.push_str(" · ");
                    text.push_str(flag);
                }
                text
            }
            Notification::CopyDone {
                run,
                rows_copied,
                rows_scanned,
                started_at,
                at,
            } => {
                let mut text = format!(
                    ":inbox_tray: {} copy done ({}) — {} rows copied of {} scanned",
                    run.media_type,
                    run.environment,
                    count(*rows_copied),
                    count(*rows_scanned)
                );
                let time = |t: &Option<String>| {
                    t.as_deref()
                        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                        .map(|t| t.with_timezone(&Utc))
                };
                if let (Some(start), Some(end)) = (time(started_at), time(at)) {
                    text.push_str(&format!(", {} into the run", duration(end - start)));
                }
                text
            }
            Notification::ReindexDone {
                run,
                index,
                per_range,
            } => {
                let documents: u64 = per_range.indexed.iter().sum();
                let ranges = per_range.ranges.len();
                let mut text = format!(
                    ":mag: {} reindex done ({}) — {index}, {} docs in {ranges} range{}",
                    run.media_type,
                    run.environment,
                    count(documents),
                    if ranges == 1 { "" } else { "s" }
                );
                let retried: Vec<String> = per_range
                    .ranges
                    .iter()
                    .zip(&per_range.attempts)
                    .filter(|(_, attempts)| **attempts > 1)
                    .map(|(range, attempts)| format!("range {range} took {attempts} attempts"))
                    .collect();
                if !retried.is_empty() {
                    text.push_str(&format!(" ({})", retried.join(", ")));
                }
                text
            }
            Notification::FilteredIndexDone {
                run,
                index,
                documents,
            } => format!(
                ":broom: {} filtered index done ({}) — {index}, {} docs",
                run.media_type,
                run.environment,
                count(*documents)
            ),
            Notification::Promoted {
                run,
                index,
                documents,
                previous_indices,
            } => format!(
                ":white_check_mark: {} — {index} → live, {} docs{}",
                run.what("refresh promoted"),
                count(*documents),
                replaces(previous_indices)
            ),
            Notification::Succeeded {
                run,
                total_before,
                total_after,
                delta,
                sources,
                by_source,
                old_indices,
            } => {
                let mut text = format!(
                    ":bar_chart: {} — {} → {} docs ({}), {} sources",
                    run.what("refresh succeeded"),
                    count(*total_before),
                    count(*total_after),
                    signed(*delta),
                    count(*sources)
                );
                let mut changes: Vec<(&String, i64)> = by_source
                    .iter()
                    .map(|(source, change)| (source, change.delta))
                    .filter(|(_, delta)| *delta != 0)
                    .collect();
                changes.sort_by(|a, b| {
                    b.1.unsigned_abs()
                        .cmp(&a.1.unsigned_abs())
                        .then(a.0.cmp(b.0))
                });
                if !changes.is_empty() {
                    let named: Vec<String> = changes
                        .iter()
                        .take(LARGEST_CHANGES)
                        .map(|(source, delta)| format!("{source} {}", signed(*delta)))
                        .collect();
                    text.push_str(&format!("\nlargest changes: {}", named.join(", ")));
                }
                if let Some(error) = old_indices.get("Error").and_then(Value::as_str) {
                    text.push_str(&format!(
                        "\n:warning: old indices not deleted ({error}): delete them by hand"
                    ));
                }
                text
            }
            Notification::RefreshFailed {
                run,
                failed_state,
                error,
                cleanup,
            } => failed(&run.what("refresh"), failed_state, error, cleanup),
            Notification::FilteredRebuildStarted {
                run,
                new_filtered_index,
                source_index,
            } => {
                let mut text = format!(
                    ":arrow_forward: {} — new index {new_filtered_index}",
                    run.what("filtered index rebuild started")
                );
                if let Some(source) = source_index {
                    text.push_str(&format!(" from {source}"));
                }
                text
            }
            Notification::FilteredRebuilt {
                run,
                index,
                documents,
                previous_indices,
            } => format!(
                ":white_check_mark: {} filtered index rebuilt ({}) — {index} → live, {} docs{}",
                run.media_type,
                run.environment,
                count(*documents),
                replaces(previous_indices)
            ),
            Notification::FilteredRebuildFailed {
                run,
                failed_state,
                error,
                cleanup,
            } => failed(
                &run.what("filtered index rebuild"),
                failed_state,
                error,
                cleanup,
            ),
        }
    }
}

/// A failure: the state and the error first (what an operator acts on), then the cause,
/// then what the cleanup did.
fn failed(what: &str, state: &Option<String>, error: &Failure, cleanup: &Value) -> String {
    let mut text = format!(
        ":x: *{}* failed: {} — {what}",
        state.as_deref().unwrap_or("a state"),
        error.error.as_deref().unwrap_or("no error name")
    );
    push_cause(&mut text, error);
    text.push('\n');
    text.push_str(&cleanup_summary(cleanup));
    text
}

fn push_cause(text: &mut String, error: &Failure) {
    if let Some(cause) = error.cause.as_deref().map(readable_cause) {
        if !cause.is_empty() {
            text.push_str("\n> ");
            text.push_str(&cause);
        }
    }
}

/// A Lambda's cause is its error payload as JSON (`{"errorMessage", "errorType"}`): keep the
/// message, on one line, cut to [`CAUSE_CHARS`].
pub fn readable_cause(cause: &str) -> String {
    let message = serde_json::from_str::<Value>(cause)
        .ok()
        .and_then(|v| {
            v.get("errorMessage")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| cause.to_string());
    truncate(&one_line(&message), CAUSE_CHARS)
}

/// What the data refresh cleanup (`CleanupOutput`), the filtered-index one (`{deleted,
/// missing}`) or a failed cleanup (`{Error, Cause}`) says, in one line.
fn cleanup_summary(cleanup: &Value) -> String {
    if let Some(error) = cleanup.get("Error").and_then(Value::as_str) {
        let cause = cleanup
            .get("Cause")
            .and_then(Value::as_str)
            .map(readable_cause)
            .unwrap_or_default();
        return format!(":warning: cleanup failed: {error}: {cause}");
    }
    let list = |key: &str| -> Vec<&str> {
        cleanup
            .get(key)
            .and_then(Value::as_array)
            .map(|items| items.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    };
    let mut parts = Vec::new();
    let stopped = list("stopped_range_executions").len();
    if stopped > 0 {
        parts.push(format!("stopped {stopped} range run{}", plural(stopped)));
    }
    let terminated = list("terminated_instances");
    if !terminated.is_empty() {
        parts.push(format!("terminated {}", terminated.join(", ")));
    }
    if cleanup.get("dropped_temp_table").and_then(Value::as_bool) == Some(true) {
        parts.push("dropped the temp table".to_string());
    }
    let deleted: Vec<&str> = list("deleted_indices")
        .into_iter()
        .chain(list("deleted"))
        .collect();
    if !deleted.is_empty() {
        parts.push(format!("deleted {}", deleted.join(", ")));
    }
    let kept = list("kept_indices");
    if !kept.is_empty() {
        parts.push(format!("kept {} (aliased)", kept.join(", ")));
    }
    if let Some(skipped) = cleanup.get("skipped").and_then(Value::as_str) {
        parts.push(format!("skipped: {}", one_line(skipped)));
    }
    if parts.is_empty() {
        "cleanup: nothing was left to remove".to_string()
    } else {
        format!("cleanup: {}", parts.join("; "))
    }
}

fn unknown(subject: Option<&str>, message: &str) -> String {
    let subject = subject.map(one_line).filter(|s| !s.is_empty());
    let body = truncate(&one_line(message), CAUSE_CHARS);
    match subject {
        Some(subject) if body.is_empty() => format!(":bell: {subject}"),
        Some(subject) => format!(":bell: {subject}\n> {body}"),
        None => format!(":bell: {body}"),
    }
}

fn replaces(previous: &[String]) -> String {
    if previous.is_empty() {
        String::new()
    } else {
        format!(" (replaces {})", previous.join(", "))
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// `3012` → `3 012`: thousands apart, readable at a glance.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(digit);
    }
    out
}

fn signed(n: i64) -> String {
    let magnitude = count(n.unsigned_abs());
    match n.signum() {
        1 => format!("+{magnitude}"),
        -1 => format!("-{magnitude}"),
        _ => "±0".to_string(),
    }
}

fn duration(span: chrono::Duration) -> String {
    let seconds = span.num_seconds().max(0);
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// Slack reads `<…>` as links and mentions and `&` as an entity: escape all three, then give
/// back the quote marks this module puts at line starts (dynamic text is made one line and
/// never starts a line, so no `>` of a cause can become one).
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace("\n&gt; ", "\n> ")
}

/// The chat webhook's URL, from its Secrets Manager secret: the URL as text, or JSON
/// `{"url": "…"}`; empty (or `{"url": ""}`) turns forwarding off without a redeploy.
/// The URL is the credential (whoever has it can post): `Debug` shows only its host, and no
/// error here quotes it.
pub enum ChatWebhook {
    Off,
    Post { url: SecretString, host: String },
}

impl fmt::Debug for ChatWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChatWebhook::Off => f.write_str("ChatWebhook::Off"),
            ChatWebhook::Post { host, .. } => write!(f, "ChatWebhook::Post({host}, url redacted)"),
        }
    }
}

impl ChatWebhook {
    /// Parses the secret's value: `https://`, or `http://` to a loopback address (a local
    /// listener); no user or password in the URL.
    pub fn from_secret_value(value: &str) -> StepResult<ChatWebhook> {
        let refused = |why: &str| {
            StepError::new(
                ErrorKind::Configuration,
                format!("chat webhook secret: {why}"),
            )
        };
        let value = value.trim();
        let text = if value.starts_with('{') {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Shape {
                url: String,
            }
            serde_json::from_str::<Shape>(value)
                .map_err(|_| refused("JSON must be exactly {\"url\": \"https://…\"}"))?
                .url
        } else {
            value.to_string()
        };
        let text = text.trim();
        if text.is_empty() {
            return Ok(ChatWebhook::Off);
        }
        let url = url::Url::parse(text).map_err(|e| refused(&format!("not a URL ({e})")))?;
        let host = url
            .host_str()
            .ok_or_else(|| refused("the URL has no host"))?
            .to_string();
        if !url.username().is_empty() || url.password().is_some() {
            return Err(refused("the URL must not carry a user or password"));
        }
        let loopback = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(name)) => name == "localhost",
            None => false,
        };
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            other => {
                return Err(refused(&format!(
                    "scheme {other:?}: only https (or http to a loopback listener)"
                )))
            }
        }
        Ok(ChatWebhook::Post {
            url: SecretString::from(url.to_string()),
            host,
        })
    }

    /// The URL to post to (`None`: forwarding is off). Only the HTTP client sees it.
    pub fn url(&self) -> Option<&str> {
        match self {
            ChatWebhook::Off => None,
            ChatWebhook::Post { url, .. } => Some(url.expose_secret()),
        }
    }

    /// The host, safe to log.
    pub fn host(&self) -> Option<&str> {
        match self {
            ChatWebhook::Off => None,
            ChatWebhook::Post { host, .. } => Some(host),
        }
    }
}

/// The JSON body of a Slack-compatible incoming webhook post.
pub fn chat_payload(text: &str) -> Value {
    serde_json::json!({ "text": text })
}

#[cfg(test)]
mod tests;
