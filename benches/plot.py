#!/usr/bin/env python3
"""The plots of a benchmark result (benches/run runs it with the bench venv's matplotlib).

  plot.py RESULT.json OUT_DIR
writes OUT_DIR/docs_per_s.png (documents per second over time for the worker, the worker with
dual write (its main index), two workers, the baseline and the ceiling, from Elasticsearch's
indexing counter sampled every 0.5 s in the last round) and, when the end-to-end part ran,
OUT_DIR/e2e_stages.png (seconds per stage at 100 000 rows and at 1 000 000 rows in each
filtered-index mode).
"""
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from report import e2e_runs  # noqa: E402  (benches/report.py, beside this file)

LABELS = {"worker": "worker (1 process)", "worker_dual_write": "worker, dual write (main index)",
          "workers_2": "worker (2 processes)",
          "baseline": "baseline (replaced Python worker)", "ceiling": "Elasticsearch ceiling (NDJSON)"}


def rates(points, window=2.0):
    """docs/s over sliding `window`-second steps of the cumulative counter."""
    out, j = [], 0
    for i, (t, n) in enumerate(points):
        while j < i and t - points[j][0] > window:
            j += 1
        if i > j:
            t0, n0 = points[j]
            out.append((t, (n - n0) / (t - t0)))
    return out


def docs_per_s(r, out):
    series = r["parts"]["worker"]["series"]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for key, label in LABELS.items():
        points = series.get(key)
        if points:
            xs, ys = zip(*rates(points)) if len(points) > 1 else ((), ())
            ax.plot(xs, ys, label=label)
    ax.set_xlabel("seconds since the run started")
    ax.set_ylabel("documents indexed per second")
    ax.set_title(f"{r['docs']:,} documents, {r['mode']} run {r['at'][:16]} UTC (2 s windows)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "docs_per_s.png", dpi=100)
    plt.close(fig)


def stages(r, out):
    e2e = r["parts"]["e2e"]
    runs = e2e_runs(e2e)
    sizes = [k for k, _ in runs]
    if not sizes:
        return
    labels = {k: label.replace("`", "") for k, label in runs}
    names = []
    for k in sizes:
        names += [s for s in e2e[k].get("stages", {}) if s not in names]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(names) + 1.5))
    height = 0.8 / len(sizes)
    for i, k in enumerate(sizes):
        values = [e2e[k].get("stages", {}).get(s, 0) or 0 for s in names]
        ax.barh([y + i * height for y in range(len(names))], values, height, label=labels[k])
    ax.set_yticks([y + height * (len(sizes) - 1) / 2 for y in range(len(names))], names)
    ax.invert_yaxis()
    ax.set_xlabel("seconds")
    ax.set_title("local refresh through LocalStack: seconds per stage")
    ax.grid(axis="x", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "e2e_stages.png", dpi=100)
    plt.close(fig)


def main():
    r = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    docs_per_s(r, out)
    stages(r, out)


if __name__ == "__main__":
    main()
