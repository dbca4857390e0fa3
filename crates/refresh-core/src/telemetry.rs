//! Logging set-up shared by the Lambda functions and the indexer worker: JSON, one object a
//! line on stdout (as CloudWatch, the instance's log agent and the local executor collect
//! them), level from `RUST_LOG` (default `info`), no ANSI colours, the event's fields at the
//! top level of the object (`{"timestamp", "level", "message", …fields}`).

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber as the global default (and routes `log` records to it).
/// Safe to call more than once: a second call (tests, or a binary that already initialised)
/// keeps the first subscriber.
pub fn init_json_logs() {
    let _ = json_subscriber(std::io::stdout).try_init();
}

/// The subscriber [`init_json_logs`] installs, writing to `writer` (tests capture it).
pub fn json_subscriber<W>(writer: W) -> impl tracing::Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_target(false)
        .with_current_span(false)
        .flatten_event(true)
        .with_writer(writer)
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Capture {
        type Writer = Capture;
        fn make_writer(&'w self) -> Capture {
            self.clone()
        }
    }

    #[test]
    fn one_flat_json_object_a_line_without_colours() {
        let capture = Capture::default();
        tracing::subscriber::with_default(json_subscriber(capture.clone()), || {
            tracing::warn!(task_id = "t1", docs = 3, "bulk retry");
            tracing::info!("second line");
        });
        let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        assert!(!text.contains('\u{1b}'), "no ANSI escapes: {text}");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["message"], "bulk retry");
        assert_eq!(lines[0]["level"], "WARN");
        assert_eq!(lines[0]["task_id"], "t1");
        assert_eq!(lines[0]["docs"], 3);
        assert!(lines[0].get("fields").is_none() && lines[0].get("target").is_none());
        assert!(lines[0]["timestamp"].is_string());
    }

    #[test]
    fn initialising_twice_is_harmless() {
        init_json_logs();
        init_json_logs();
    }
}
