//! An optional system-wide CPU profile of one bench phase: with `BENCH_PROFILE_DIR` set
//! (`benches/profile` sets it), `perf record -a` runs while the phase does and writes
//! `<dir>/<phase>.data` (`BENCH_PROFILE_HZ` samples a second per CPU, 499 without it), so
//! every process sharing the cores (worker, Elasticsearch, PostgreSQL, the bench's own
//! client) is in it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Profile(Option<Child>);

impl Profile {
    pub fn disabled() -> Profile {
        Profile(None)
    }

    pub async fn start(phase: &str) -> Profile {
        let Some(dir) = std::env::var_os("BENCH_PROFILE_DIR") else {
            return Profile(None);
        };
        let out = PathBuf::from(dir).join(format!("{phase}.data"));
        let hz = std::env::var("BENCH_PROFILE_HZ").unwrap_or_else(|_| "499".to_string());
        let child = Command::new("perf")
            .args(["record", "-a", "-g", "-q", "-F", &hz, "-o"])
            .arg(&out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("BENCH_PROFILE_DIR is set but `perf record` does not start");
        // perf opens its per-CPU buffers before it samples anything.
        tokio::time::sleep(Duration::from_millis(500)).await;
        Profile(Some(child))
    }

    /// Stops the recording and waits for perf to write its file (SIGTERM: a background
    /// perf ignores SIGINT).
    pub fn stop(self) {
        let Some(mut child) = self.0 else { return };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let status = child.wait().expect("waiting for perf record");
        println!("profile written (perf record exited with {status})");
    }
}
