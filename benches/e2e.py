#!/usr/bin/env python3
"""End to end: the whole local image refresh through LocalStack at 100 000 and 1 000 000
catalog rows, with each stage's seconds from the execution history (read by the `refresh`
CLI: `start --follow --json` ends with the run's stages and times). The 1 000 000-row
refresh runs once per filtered-index mode (`refresh start --filtered-index dual_write`,
then `reindex`: the workers write the filtered index, or a `_reindex` builds it after),
both on the same catalog load; the 100 000-row one in the input's default mode.

  benches/e2e.py --out FILE [--rows 100000,1000000] [--modes dual_write,reindex]
                 [--mode-rows 1000000]

  --modes      the modes of the --mode-rows refreshes, in the order they run (default
               dual_write,reindex; one mode alone to measure only it)
  --mode-rows  the sizes measured once per mode (default 1000000); other sizes of --rows run
               once, without --filtered-index (the input's default, dual_write)

Writes {"<rows>": {...}, "<rows>_<mode>": {...}, ...}, each {"catalog_rows", "filtered_index"
(the mode passed, null for the default), "seconds", "status", "execution", "stages": {stage:
seconds}}, e.g. "100000", "1000000_dual_write", "1000000_reindex"; or {"skipped": "<why>"}
when LocalStack or the deployed stack is not there (nothing is touched then). Needs
localstack/up and localstack/deploy; standard library, `psql` and the CLI.

It replaces the catalog's image rows: the bundled sample (sample-data/load) copied with
fresh identifiers up to N rows. At the end the sample goes back into the catalog and live
(a last refresh with the guards overridden), as the e2e tests expect to find it.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import urllib.request
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCAL = Path(os.environ.get("DATA_REFRESH_LOCAL", ROOT / ".local"))


def read_env(path):
    """`export K=V` lines of .local/env / .local/stack.env, for keys not already set."""
    for line in path.read_text().splitlines():
        if line.startswith("export ") and "=" in line:
            key, value = line[len("export "):].split("=", 1)
            if " " not in key:
                os.environ.setdefault(key, value.split()[0] if value else value)


def why_skip():
    for name in ("env", "stack.env"):
        if (LOCAL / name).is_file():
            read_env(LOCAL / name)
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        return "AWS_ENDPOINT_URL is not set: start the stack with localstack/up"
    try:
        # No proxy: the stack is on loopback.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        opener.open(f"{endpoint}/_localstack/health", timeout=3).close()
    except OSError as e:
        return f"LocalStack is not reachable at {endpoint} ({e}): localstack/up, then localstack/deploy"
    if not (LOCAL / "stack.env").is_file():
        return f"no deployed stack ({LOCAL / 'stack.env'} is missing): localstack/deploy"
    return None


def refresh_binary():
    candidates = [os.environ.get("REFRESH_BIN")]
    for target in (os.environ.get("CARGO_TARGET_DIR"), Path.home() / ".cache/data-refresh/target", ROOT / "target"):
        if target:
            candidates.append(str(Path(target) / "debug" / "refresh"))
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return c
    subprocess.run(["cargo", "build", "-q", "-p", "refresh-cli"], cwd=ROOT, check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
    return str(target / "debug" / "refresh")


def psql(sql):
    return subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", os.environ["CATALOG_DB_URL"],
                           "-c", sql], check=True, capture_output=True, text=True).stdout.strip()


def load_catalog(rows):
    """The sample, then copies of it (fresh identifier, url and foreign_identifier) up to `rows`."""
    subprocess.run([str(ROOT / "sample-data/load")], check=True, stdout=subprocess.DEVNULL)
    base = int(psql("SELECT count(*) FROM image"))
    if rows > base:
        columns = psql("SELECT string_agg(quote_ident(column_name), ', ' ORDER BY ordinal_position) "
                       "FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'image' "
                       "AND column_name NOT IN ('identifier', 'url', 'foreign_identifier')")
        copies = math.ceil((rows - base) / base)
        psql(f"INSERT INTO image (url, foreign_identifier, {columns}) "
             f"SELECT url || '#copy-' || n, foreign_identifier || '-copy-' || n, {columns} "
             f"FROM image CROSS JOIN generate_series(1, {copies}) AS n LIMIT {rows - base}")
    psql("ANALYZE image")
    return int(psql("SELECT count(*) FROM image"))


MODES = ("dual_write", "reindex")


def start(refresh, follow_json, row_limit=None, filtered_index=None):
    cmd = [refresh, "--interval", "5", "start", "--media", "image", "--environment", "staging",
           "--override-drop", "--override-search-guard", "--follow", "--timeout", "10800"]
    if row_limit:
        cmd += ["--row-limit", str(row_limit)]  # staging copies 100 000 rows unless told
    if filtered_index:
        cmd += ["--filtered-index", filtered_index]
    if follow_json:
        cmd.append("--json")
    return subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE if follow_json else None, text=True)


def seconds(a, b):
    if not a or not b:
        return None
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()


def measure(refresh, catalog_rows, mode=None):
    """One refresh of the catalog as loaded (`mode`: --filtered-index, None for the default)."""
    print(f"e2e: {catalog_rows} catalog image rows, refreshing "
          f"({'--filtered-index ' + mode if mode else 'default filtered-index mode'})…", file=sys.stderr, flush=True)
    done = start(refresh, follow_json=True, row_limit=catalog_rows, filtered_index=mode)
    status = None
    for line in done.stdout.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "status":
            status = event
    if status is None:
        return {"catalog_rows": catalog_rows, "filtered_index": mode,
                "error": f"refresh printed no status (exit {done.returncode})"}
    run = status["run"]
    return {
        "catalog_rows": catalog_rows,
        "filtered_index": mode,
        "execution": run.get("arn"),
        "status": run.get("status"),
        "seconds": seconds(run.get("started"), run.get("stopped")) if run.get("status") == "SUCCEEDED" else None,
        "stages": {s["stage"]: seconds(s.get("started"), s.get("finished")) for s in run.get("stages", [])
                   if s.get("started")},
    }


def row_list(text):
    try:
        rows = [int(r) for r in text.split(",") if r.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"row counts separated by commas, not {text!r}")
    if any(r <= 0 for r in rows):
        raise argparse.ArgumentTypeError(f"row counts must be positive: {text!r}")
    return rows


def mode_list(text):
    modes = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if not modes or unknown or len(set(modes)) != len(modes):
        raise argparse.ArgumentTypeError(
            f"one or more of {', '.join(MODES)}, separated by commas, each once (not {text!r})")
    return modes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--rows", type=row_list, default="100000,1000000")
    parser.add_argument("--modes", type=mode_list, default="dual_write,reindex",
                        help="filtered-index modes of the --mode-rows refreshes, in the order they run")
    parser.add_argument("--mode-rows", type=row_list, default="1000000",
                        help="sizes measured once per mode (the others run once in the default mode)")
    args = parser.parse_args()
    skip = why_skip()
    if skip:
        print(f"e2e: skipped: {skip}", file=sys.stderr)
        Path(args.out).write_text(json.dumps({"skipped": skip}) + "\n")
        return
    refresh = refresh_binary()
    result = {}
    try:
        for rows in args.rows:
            # One catalog load per size: a refresh only reads the catalog, so the modes share it.
            catalog_rows = load_catalog(rows)
            runs = [(f"{rows}_{mode}", mode) for mode in args.modes] if rows in args.mode_rows else [(str(rows), None)]
            for key, mode in runs:
                result[key] = measure(refresh, catalog_rows, mode)
                print(f"e2e: {key}: {result[key]}", file=sys.stderr, flush=True)
    finally:
        print("e2e: putting the sample back (catalog and live index)…", file=sys.stderr, flush=True)
        load_catalog(0)
        start(refresh, follow_json=False)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
