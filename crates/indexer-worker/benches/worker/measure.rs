//! How runs are measured and summarised: a process's CPU and peak memory (from /proc while
//! it lives, from `wait4` for a child that exits by itself), the median of a figure with its
//! spread, the machine, and the indexing rate over time as Elasticsearch counts it.

use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

fn clock_ticks_per_second() -> f64 {
    static HZ: OnceLock<f64> = OnceLock::new();
    *HZ.get_or_init(|| {
        // SAFETY: sysconf only reads a configuration value.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if hz > 0 {
            hz as f64
        } else {
            100.0
        }
    })
}

/// utime + stime of a running process, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / clock_ticks_per_second()
}

/// Peak resident set (`VmHWM`) of a running process, in MB.
pub fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    kb as f64 / 1024.0
}

/// What a child that ran to its end used, read by its parent (`wait4`): the kernel's own
/// account, so it covers every thread and the last moments before exit.
pub struct ChildUsage {
    pub exit_ok: bool,
    pub cpu_seconds: f64,
    pub peak_rss_mb: f64,
}

/// Waits for `pid` (a child of this process, not waited for by anything else) to exit.
pub fn wait_with_usage(pid: u32) -> ChildUsage {
    let mut status = 0;
    // SAFETY: rusage is plain old data; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let got = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(got, pid as libc::pid_t, "wait4 failed");
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    ChildUsage {
        exit_ok: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        cpu_seconds: seconds(usage.ru_utime) + seconds(usage.ru_stime),
        // ru_maxrss is in KB on Linux.
        peak_rss_mb: usage.ru_maxrss as f64 / 1024.0,
    }
}

/// `{median, min, max, runs}` of one figure over the rounds.
pub fn summary(values: &[f64]) -> Value {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = sorted.len();
    let median = if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    json!({"median": median, "min": sorted.first(), "max": sorted.last(), "runs": values})
}

/// Cores, memory and the load average now (the start of the run).
pub fn machine() -> Value {
    let mem_kb: Option<u64> = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    });
    let load: Vec<f64> = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .filter_map(|v| v.parse().ok())
        .collect();
    json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "memory_mb": mem_kb.map(|kb| kb / 1024),
        "load_average_at_start": load,
    })
}

/// Polls the index's `indexing.index_total` (counted as documents arrive, refresh or not)
/// every half second, so every method's rate over time is seen from the same place.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    handle: tokio::task::JoinHandle<Vec<[f64; 2]>>,
}

impl Sampler {
    pub fn start(http: &reqwest::Client, es: &str, index: &str) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let (http, stop_flag) = (http.clone(), stop.clone());
        let url =
            format!("{es}/{index}/_stats/indexing?filter_path=_all.primaries.indexing.index_total");
        let handle = tokio::spawn(async move {
            let started = Instant::now();
            let mut points = Vec::new();
            loop {
                let total =
                    match http.get(&url).send().await {
                        Ok(r) => r.json::<Value>().await.ok().and_then(|v| {
                            v["_all"]["primaries"]["indexing"]["index_total"].as_u64()
                        }),
                        Err(_) => None,
                    };
                if let Some(total) = total {
                    points.push([started.elapsed().as_secs_f64(), total as f64]);
                }
                if stop_flag.load(Ordering::Relaxed) {
                    break points;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        Sampler { stop, handle }
    }

    /// `[[seconds since start, documents indexed], …]`, the last point taken after the run.
    pub async fn finish(self) -> Value {
        self.stop.store(true, Ordering::Relaxed);
        json!(self.handle.await.unwrap())
    }
}
