#!/usr/bin/env python3
"""Capacity model of a production refresh (issue 10 §4), from the figures measured here.

    python3 benches/capacity.py                 # prints the projection, writes the two files below
    python3 benches/capacity.py --es-ceiling 90000 --workers 8 --doc - --out -   # what-if, print only

Reads (a missing file is named, with the command that makes it):
  benches/results/copy_scale-1000000.json, copy_scale-10000000.json   benches/run --scale
      (cargo bench -p refresh-core --bench copy_scale): the copy with the tag filter, its
      primary key, step 8's index builds one at a time and 4 at once, the promotion
  benches/results/latest.json, else benches/results/worker.json        benches/run
      (the indexer worker's docs/s against this machine's Elasticsearch)
  benches/results/index_builds.json (optional, shown for reference)
  statemachine/history_events.py with infra/template.yaml's defaults: the worst-case history
      of each state machine, and the settings the model uses (workers, poll interval, poll
      limits, the filtered reindex's throttle, the functions' memory)
Writes benches/results/scale.json and docs/CAPACITY.md (generated: do not edit by hand).

The model, stage by stage, for a refresh of N catalog rows (every row counted as a document):
  copy           N / one session's rows/s at 10 M (linear; "as fitted": grown with the time
                 exponent fitted between 1 M and 10 M), ÷ --db-speed, ÷ the speedup of the
                 template's CopySessions key lanes: 1 + (sessions - 1) × --copy-session-gain
  primary key    the finish_copy job, the same way, plus a worker's start and poll slack
  reindex        N / min(workers × one worker's docs/s, the Elasticsearch ingest ceiling),
                 plus a worker's start and poll slack (the ranges run at once)
  filtered index with `filtered_index: reindex`: N / min(ReindexThrottleRps, the ceiling), plus
                 poll slack (the filtered `_reindex`)
  dual write     the input's default (`filtered_index: dual_write`), so the reference case: no `_reindex`;
                 the reindex at min(workers × one worker's docs/s × the dual-write ratio
                 (measured by the worker bench: dual-write docs/s ÷ plain, else assumed, see
                 --dual-write-ratio), the ceiling / 2 (both writes share it, every document
                 kept)); the verification gate (count queries, at most one _delete_by_query)
                 counted as 0
  index builds   the reapply job at its parallelism (4), as the copy, plus start and slack
  promotion      promote_table + validate_foreign_keys as measured (flat), plus the validation
                 job's worker start and slack
Poll slack: a polled job is seen done on average half a poll interval late (PollSeconds / 2).
Standard library only (Python 3.11).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Dual-write docs/s ÷ plain docs/s of one worker when the results hold no measurement: every
# document written twice at the rate that bound the single write (the ingest, as here).
ASSUMED_DUAL_WRITE_RATIO = 0.5
# What each copy session beyond the first adds, as a share of one session's rate, on production
# databases (separate servers with cores to spare): not measurable on this 2-core machine.
ASSUMED_COPY_SESSION_GAIN = 0.8
RESULTS = ROOT / "benches" / "results"
SIZES = {"100M": 100_000_000, "700M": 700_000_000, "1000M": 1_000_000_000}
REFERENCE_SIZE = "700M"
COMMAND = "python3 benches/capacity.py"

AS_DEPLOYED = "as deployed"
REINDEX_MODE = "filtered index by `_reindex`"
THROTTLE = "`_reindex` throttled at the ceiling"
ONE_SESSION = "one copy session"
SESSIONS_AS_HERE = "copy sessions as measured here"
FITTED = "database stages as fitted"
SCENARIOS = {
    AS_DEPLOYED: "the template's and the input's defaults: dual write (`filtered_index: dual_write`: the workers "
                 "write both indices in one pass, at the slower of their docs/s × the dual-write ratio and half "
                 "the ceiling), the copy over `CopySessions` key lanes",
    REINDEX_MODE: "`filtered_index: reindex`: the filtered index built by `_reindex` after the reindex, at "
                  "`ReindexThrottleRps`",
    THROTTLE: "`filtered_index: reindex` with `ReindexThrottleRps` raised to the ingest ceiling",
    ONE_SESSION: "`CopySessions` 1: the copy in one session, as before the key lanes",
    SESSIONS_AS_HERE: "the copy's sessions only as much faster than one as they were on this 2-core machine "
                      "(the 10 M-row run), not the assumed gain",
    FITTED: "the copy, primary key, index builds and promotion grow from 10 M rows as N^k with k fitted "
            "between 1 M and 10 M (pessimistic)",
}


def fail(message: str) -> None:
    sys.exit(f"benches/capacity.py: ERROR: {message}")


def load(path: Path, what: str, made_by: str) -> dict:
    if not path.is_file():
        fail(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} is missing ({what}).\n"
             f"  make it with: {made_by}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        fail(f"{path} is not valid JSON ({e})")
        raise


def history_module():
    path = ROOT / "statemachine" / "history_events.py"
    spec = importlib.util.spec_from_file_location("history_events", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["history_events"] = module
    spec.loader.exec_module(module)
    return module


def loop_states(h, definition: dict) -> dict[str, int]:
    """States one iteration of each loop enters (state transitions), by the state that counts
    it: the cycle `history_events.loop_iteration_events` measures in events."""
    out: dict[str, int] = {}

    def scope(states: dict) -> None:
        for name, state in states.items():
            counts = state["Type"] == "Pass" and h._math_add_targets(state.get("Parameters", {}), "$")
            if not counts and not h.is_progress_call(state):
                continue
            parent, frontier, last = {name: None}, [name], None
            while frontier and last is None:
                following = []
                for node in frontier:
                    for m in h.successors(states[node]):
                        if m == name:
                            last = node
                            break
                        if m in states and m not in parent:
                            parent[m] = node
                            following.append(m)
                    if last is not None:
                        break
                frontier = following
            cycle = 0
            while last is not None:
                cycle += 1
                last = parent[last]
            if cycle:
                out[name] = cycle
        for state in states.values():
            processor = state.get("ItemProcessor") or state.get("Iterator")
            if processor:
                scope(processor["States"])

    scope(definition["States"])
    return out


def count_states(definition: dict, kind: str | None = None, lambda_only: bool = False) -> int:
    """States of a definition (Map item processors included), optionally only Lambda Tasks."""
    n = 0

    def scope(states: dict) -> None:
        nonlocal n
        for state in states.values():
            is_lambda = state["Type"] == "Task" and not str(state.get("Resource", "")).startswith("arn:aws:states:::")
            if (not lambda_only or is_lambda) and (kind is None or state["Type"] == kind):
                n += 1
            processor = state.get("ItemProcessor") or state.get("Iterator")
            if processor:
                scope(processor["States"])

    scope(definition["States"])
    return n


# ------------------------------------------------------------------ measured figures


def fit(rows_1: float, t_1: float, rows_10: float, t_10: float) -> dict:
    """How a stage's time grows from 1 M to 10 M rows: the exponent k of t ∝ N^k, and a word."""
    k = math.log(t_10 / t_1) / math.log(rows_10 / rows_1) if t_1 > 0 and t_10 > 0 else 1.0
    if k < 0.5:
        scaling = "flat"
    elif k < 0.93:
        scaling = "better than linear here (fixed costs weigh at 1 M): projected linear"
    elif k <= 1.07:
        scaling = "linear"
    else:
        scaling = "worse than linear"
    return {"exponent": round(k, 3), "scaling": scaling}


def measured(args) -> dict:
    c1 = load(args.copy_1m, "the 1 M-row copy_scale run", "BENCH_ROWS=1000000 benches/run --scale")
    c10 = load(args.copy_10m, "the 10 M-row copy_scale run", "benches/run --scale")
    if args.worker:
        worker_path = args.worker
    else:
        worker_path = RESULTS / "latest.json"
        if not worker_path.is_file():
            worker_path = RESULTS / "worker.json"
    w = load(worker_path, "the indexer worker's docs/s (benches/results/latest.json or worker.json)",
             "benches/run (or cargo bench -p indexer-worker --bench worker)")
    if "worker_docs_per_s" in w:  # a benches/run result
        worker = {"docs_per_s": w["worker_docs_per_s"], "ceiling_docs_per_s": w["ceiling_docs_per_s"],
                  "cpu_us_per_doc": w.get("worker_cpu_us_per_doc"), "rows": w.get("rows"),
                  "docs": w.get("docs"), "at": w.get("at"),
                  "dual_write_vs_worker": w.get("worker_dual_write_vs_worker"),
                  "dual_write_cpu_vs_worker": w.get("worker_dual_write_cpu_vs_worker")}
    elif isinstance(w.get("worker", {}).get("docs_per_second"), dict):  # the worker bench's own output
        median = lambda part, field: ((part or {}).get(field) or {}).get("median")
        vs = (w.get("worker_dual_write") or {}).get("vs_worker")
        worker = {"docs_per_s": median(w["worker"], "docs_per_second"),
                  "ceiling_docs_per_s": median(w["ceiling"], "docs_per_second"),
                  "cpu_us_per_doc": median(w["worker"], "client_cpu_us_per_doc"), "rows": w.get("rows"),
                  "docs": w.get("docs"), "at": w.get("at"),
                  "dual_write_vs_worker": median(vs, "docs_per_second"),
                  "dual_write_cpu_vs_worker": median(vs, "client_cpu_us_per_doc")}
    else:  # the single-run shape of worker.json
        worker = {"docs_per_s": w["worker"]["docs_per_second"],
                  "ceiling_docs_per_s": w["es_ceiling"]["docs_per_second"],
                  "cpu_us_per_doc": w["worker"].get("client_cpu_us_per_doc"), "rows": w.get("rows"),
                  "docs": w["worker"].get("indexed"), "at": w.get("at"),
                  "dual_write_vs_worker": None, "dual_write_cpu_vs_worker": None}
    worker_path = worker_path.resolve()
    worker["file"] = str(worker_path.relative_to(ROOT) if worker_path.is_relative_to(ROOT) else worker_path)
    index_ref = None
    ref_path = RESULTS / "index_builds.json"
    if ref_path.is_file():
        index_ref = json.loads(ref_path.read_text())

    def stage(get) -> dict:
        return {"1M": get(c1), "10M": get(c10)}

    r1, r10 = c1["copy_rows"], c10["copy_rows"]
    times = {
        "copy": stage(lambda c: c["copy"]["seconds"]),
        "primary_key": stage(lambda c: c["primary_key"]["seconds"]),
        "index_builds": stage(lambda c: c["index_builds"]["parallel_s"]),
        "index_builds_sequential": stage(lambda c: c["index_builds"]["sequential_s"]),
        "promotion": stage(lambda c: c["promotion"]["promote_table_s"] + c["promotion"]["validate_foreign_keys_s"]),
    }
    fits = {name: fit(r1, t["1M"], r10, t["10M"]) for name, t in times.items()}
    return {"c1": c1, "c10": c10, "rows_1m": r1, "rows_10m": r10, "times": times, "fits": fits,
            "worker": worker, "index_builds_reference": index_ref}


# ------------------------------------------------------------------ the model


# How each database stage's time grows past 10 M rows: the copy and the promotion's row count do
# the same work per row (linear); an index build sorts (N log N). "As fitted" instead grows each
# from its 10 M-row time with the exponent fitted between 1 M and 10 M (never below linear).
GROWTH = {"copy": "linear", "primary_key": "n log n", "index_builds": "n log n",
          "index_builds_sequential": "n log n", "promotion": "linear"}


def project(m: dict, name: str, rows: float, db_speed: float, fitted: bool = False) -> float:
    """Seconds of a database stage at `rows`, from its 10 M-row time (÷ `db_speed`): a flat
    stage keeps its time; the others grow by GROWTH, or as fitted."""
    t10, r10 = m["times"][name]["10M"], m["rows_10m"]
    k = m["fits"][name]["exponent"]
    if k < 0.5:
        return max(m["times"][name]["1M"], t10) / db_speed
    if fitted:
        return t10 * (rows / r10) ** max(k, 1.0) / db_speed
    if GROWTH[name] == "n log n":
        return t10 * rows * math.log(rows) / (r10 * math.log(r10)) / db_speed
    return t10 * rows / r10 / db_speed


def stages_at(m: dict, p: dict, rows: float, ceiling: float, scenario: str = AS_DEPLOYED) -> dict:
    """Seconds of each stage of one refresh of `rows` catalog rows, and what binds it."""
    start = p["worker_start_s"]
    slack = p["poll_seconds"] / 2
    dual = scenario not in (REINDEX_MODE, THROTTLE)
    copy_speedup = {ONE_SESSION: 1.0,
                    SESSIONS_AS_HERE: p["copy_speedup_measured"]["10M"] or 1.0}.get(scenario, p["copy_speedup"])
    # Dual write: each worker at the dual-write ratio of its docs/s (source documents), and the
    # ceiling shared by both writes (every document kept in the filtered index: conservative).
    workers_rate = p["workers"] * p["worker_docs_per_s"] * (p["dual_write_ratio"] if dual else 1.0)
    ceiling_rate = ceiling / 2 if dual else ceiling
    aggregate = min(workers_rate, ceiling_rate)
    throttle = ceiling if scenario == THROTTLE else p["throttle"]
    fitted = scenario == FITTED
    docs = rows
    reindex_range = docs / aggregate
    db = p["db_speed"]
    s = {
        "copy": project(m, "copy", rows, db, fitted) / copy_speedup,
        "primary_key": project(m, "primary_key", rows, db, fitted) + start + slack,
        "reindex": reindex_range + start + slack,
        # Dual write: no `_reindex`; its verification gate is negligible (p["verify_gate_s"]).
        "filtered_index": p["verify_gate_s"] if dual else docs / min(throttle, ceiling) + slack,
        "index_builds": project(m, "index_builds", rows, db, fitted) + start + slack,
        "promotion": project(m, "promotion", rows, db, fitted) + start + slack,
    }
    binds = {
        "reindex": "workers" if workers_rate < ceiling_rate else "ceiling",
        "filtered_index": "none (dual write)" if dual else ("throttle" if throttle < ceiling else "ceiling"),
    }
    jobs = {  # how long each worker instance runs (start to terminate), seconds
        "reindex": [reindex_range + start + slack] * p["workers"],
        "primary_key": [s["primary_key"]],
        "index_builds": [s["index_builds"]],
        # The validation job; promote_table itself is a Lambda step.
        "promotion": [start + slack + m["c10"]["promotion"]["validate_foreign_keys_s"] / db],
    }
    return {"seconds": s, "total_s": sum(s.values()), "binds": binds, "worker_jobs_s": jobs,
            "reindex_range_s": reindex_range}


def lever(stage: str, binds: dict, p: dict) -> str:
    if stage == "copy":
        return (f"CopySessions ({p['copy_sessions']}, `COPY_SESSIONS`, at most 16): key lanes copied at once, "
                "as far as the API database's and the catalog's cores and the catalog's reads keep up")
    if stage == "primary_key":
        return "the API database's maintenance_work_mem and speed (one index build)"
    if stage == "reindex":
        if binds["reindex"] == "workers":
            return f"WorkersProduction ({p['workers']}): {p['workers']} workers stay below the Elasticsearch ceiling"
        return "the Elasticsearch cluster's ingest ceiling (data nodes); more workers do not help past it"
    if stage == "filtered_index":
        if binds["filtered_index"] == "throttle":
            return (f"ReindexThrottleRps ({fmt_int(p['throttle'])}), below the ceiling; or dual write "
                    "(`filtered_index: dual_write`: the workers write the filtered index in the reindex pass; "
                    "see *Dual write* below)")
        return "the Elasticsearch ingest ceiling"
    if stage == "index_builds":
        return "SQL_PARALLELISM (builds at once, 4) with the API database's cores and maintenance_work_mem"
    return ("grows with the table only through `promote_table`'s `SELECT count(*)` inside the swap "
            "transaction (the API's queries on the table wait for it); the rest is catalog renames")


def costs(m: dict, p: dict, st: dict, defs: dict) -> dict:
    s = st["seconds"]
    worker_s = sum(max(60.0, t) for job in st["worker_jobs_s"].values() for t in job)
    children = len(st["worker_jobs_s"]["reindex"]) + 3  # ranges + finish_copy, reapply, validate
    poll = p["poll_seconds"]
    # Polls of each worker-range child (its job's time ÷ the poll interval, at least one) and of
    # the filtered reindex; instance and health checks until the worker answers.
    child_polls = sum(math.ceil(t / poll) for job in st["worker_jobs_s"].values() for t in job)
    filtered_polls = math.ceil(s["filtered_index"] / poll) if s["filtered_index"] else 0
    checks = children * 2 * math.ceil(p["worker_start_s"] / p["check_seconds"])
    copy_calls = max(1, math.ceil(s["copy"] / p["copy_call_seconds"]))
    lambda_s = (s["copy"] + (child_polls + filtered_polls + checks) * p["poll_lambda_seconds"]
                + (defs["refresh_lambda_tasks"] + children * defs["range_lambda_tasks"]) * p["step_lambda_seconds"])
    gb_s = lambda_s * p["function_memory_mb"] / 1024
    requests = (copy_calls + child_polls + filtered_polls + checks + defs["refresh_lambda_tasks"]
                + children * defs["range_lambda_tasks"])
    transitions = (defs["refresh_states"] + children * defs["range_states"]
                   + copy_calls * defs["copy_loop_states"] + child_polls * defs["range_poll_states"]
                   + filtered_polls * defs["filtered_poll_states"] + checks * defs["range_check_states"])
    usd = {
        "workers": worker_s / 3600 * p["instance_usd_per_hour"],
        "lambda": gb_s * p["lambda_usd_per_gb_s"] + requests / 1e6 * p["lambda_usd_per_million_requests"],
        "step_functions": transitions / 1000 * p["usd_per_1000_transitions"],
    }
    total = sum(usd.values())
    return {
        "worker_instance_hours": round(worker_s / 3600, 2),
        "lambda_gb_s": round(gb_s),
        "lambda_requests": requests,
        "state_transitions": transitions,
        "usd": {k: round(v, 2) for k, v in usd.items()},
        "usd_per_refresh": round(total, 2),
        "usd_per_month": round(total * p["refreshes_per_month"], 2),
        "copy_calls": copy_calls,
        "polls": child_polls + filtered_polls,
    }


def limits(p: dict, st: dict) -> dict:
    poll = p["poll_seconds"]
    longest_job = max(t for job in st["worker_jobs_s"].values() for t in job)
    return {
        "longest_worker_job_polls": math.ceil(longest_job / poll),
        "filtered_polls": math.ceil(st["seconds"]["filtered_index"] / poll),
        "reindex_max_polls": p["reindex_max_polls"],
        "polls_fit": max(longest_job, st["seconds"]["filtered_index"]) <= p["reindex_max_polls"] * poll,
        "execution_timeout_h": p["execution_timeout_s"] / 3600,
        "fits_execution_timeout": st["total_s"] <= p["execution_timeout_s"],
    }


# ------------------------------------------------------------------ output


def mean_load(c: dict):
    loads = [x[1] for x in c.get("machine", {}).get("load_1min_at_each_phase", [])]
    return round(sum(loads) / len(loads), 1) if loads else "not recorded"


def h(seconds: float) -> float:
    return seconds / 3600


def fmt_h(seconds: float) -> str:
    hours = h(seconds)
    return f"{hours:.2f}" if hours < 10 else f"{hours:.1f}"


def fmt_int(x: float) -> str:
    return f"{x:,.0f}".replace(",", " ")


STAGE_NAMES = {
    "copy": "copy with the tag filter (Lambda calls)",
    "primary_key": "primary key (finish_copy job)",
    "reindex": "reindex (workers)",
    "filtered_index": "filtered index (dual write: its verification gate; `filtered_index: reindex`: `_reindex`)",
    "index_builds": "index builds of step 8 (reapply job)",
    "promotion": "promotion (swap + foreign-key validation job)",
}


def render(m: dict, p: dict, model: dict, history: dict) -> str:
    c1, c10 = m["c1"], m["c10"]
    w = m["worker"]
    ref = model["reference"]
    out: list[str] = []
    add = out.append
    add("# Capacity of a production refresh\n")
    add(f"<!-- generated by `{COMMAND}` (also run by `benches/run --scale`) from benches/results/: "
        "do not edit by hand -->\n")
    add(f"Generated by `{COMMAND}` from the figures measured on this machine (2 cores, PostgreSQL 15 and "
        "Elasticsearch 7.9.2 on loopback) and the template's defaults. Rerun it after `benches/run --scale` "
        "(or with other parameters, e.g. `--es-ceiling 90000 --workers 8`); every number below comes from it. "
        "The same figures are in `benches/results/scale.json`.\n")

    add("## Verdict\n")
    t700 = ref["by_size"][REFERENCE_SIZE]
    met = h(t700["total_s"]) <= p["target_hours"]
    add(f"- Reference case ({fmt_int(p['workers'])} workers, Elasticsearch ingest ceiling "
        f"{fmt_int(p['es_ceiling'])} docs/s, the template's and the input's defaults: the filtered index written "
        f"in the reindex pass (dual write), the copy over {p['copy_sessions']} key lanes at once): a "
        f"{REFERENCE_SIZE}-row image refresh is projected at **{fmt_h(t700['total_s'])} h**, against the "
        f"{p['target_hours']:g} h target (the replaced system: {p['replaced_hours']:g} h): "
        f"**{'met' if met else 'not met'}**. Its longest stage is the {STAGE_NAMES[t700['dominant']]} "
        f"({fmt_h(t700['seconds'][t700['dominant']])} h); the setting that moves it: {t700['lever']}.")
    need = model["copy_needed"]
    if need["rows_per_s"]:
        gain = need["session_gain_needed"]
        here = " and ".join(f"{v}× one session's rate at {k} rows" for k, v in p["copy_speedup_measured"].items() if v)
        add(f"- That rests on the copy's sessions adding up: each session beyond the first is taken to add "
            f"{p['copy_session_gain']:g} of one session's rate (`--copy-session-gain`, **assumed** for production "
            "databases with cores to spare"
            + (f"; on this machine, where {p['copy_sessions_measured']} sessions keep "
               f"{2 * p['copy_sessions_measured']} backends busy on 2 shared cores, they copied at {here}" if here else "")
            + f"), so {p['copy_sessions']} sessions copy at {p['copy_speedup']:.2f}× one session. The target holds while the "
            f"copy runs at {fmt_int(need['rows_per_s'])} rows/s or more: {need['times_measured']:.2f}× one session "
            "measured here"
            + (f", a gain of at least {gain:.2f} a session." if gain is not None and gain <= 1
               else f", more than {p['copy_sessions']} sessions can give (raise `CopySessions`)." if gain is not None
               else "."))
    else:
        add(f"- The stages after the copy alone take {fmt_h(need['other_s'])} h at {REFERENCE_SIZE}: no copy rate "
            f"meets {p['target_hours']:g} h.")
    for name, sc in model["scenarios"].items():
        if name in (AS_DEPLOYED, FITTED):
            continue
        t = sc[REFERENCE_SIZE]["total_s"]
        add(f"- With {name} ({SCENARIOS[name]}): {fmt_h(t)} h at {REFERENCE_SIZE} "
            f"({'meets' if h(t) <= p['target_hours'] else 'misses'} the target).")
    t = model["scenarios"][FITTED][REFERENCE_SIZE]["total_s"]
    add(f"- Pessimistic reading: if the database stages kept growing as they did between 1 M and 10 M rows "
        f"(the row *database stages as fitted* below), {fmt_h(t)} h at {REFERENCE_SIZE}.")
    add(f"- One refresh at {REFERENCE_SIZE} costs about ${model['costs'][REFERENCE_SIZE]['usd_per_refresh']:.2f} "
        f"(${model['costs'][REFERENCE_SIZE]['usd_per_month']:.2f} a month at {p['refreshes_per_month']:.2f} refreshes), "
        f"against ${model['replaced_usd_per_month']:.2f} a month for the replaced design's "
        f"{p['replaced_servers']} always-on servers.\n")

    add("## Measured here\n")
    add(f"Generated catalog image rows (`testkit::insert_narrow_image_rows`): "
        f"{c10['catalog']['bytes_per_row_on_disk']:.0f} bytes a row on disk "
        f"({c10['catalog']['avg_row_bytes']:.0f} bytes of row data), catalog table "
        f"{c1['catalog']['table_gb']:.2f} GB at 1 M rows and {c10['catalog']['table_gb']:.2f} GB at 10 M "
        f"(`pg_table_size`; with its primary key {c10['catalog']['total_gb']:.2f} GB); one row in "
        f"{round(c10['rows'] / max(1, c10['catalog']['deleted_rows']))} deleted. The copied table with its 14 indexes: "
        f"{c10['index_builds']['temp_total_gb']:.2f} GB at 10 M (`pg_total_relation_size`). Catalog and API "
        "databases share one local PostgreSQL cluster (loopback `postgres_fdw`); settings: "
        + ", ".join(f"`{k}` {v}" for k, v in c10["server"].items()) + ".\n")
    add("| stage | 1 M rows | 10 M rows | scaling (time ∝ N^k) |")
    add("|---|---|---|---|")
    t, f = m["times"], m["fits"]
    add(f"| copy with the tag filter | {t['copy']['1M']:.1f} s, {fmt_int(c1['copy_rows_per_s'])} rows/s | "
        f"{t['copy']['10M']:.1f} s, {fmt_int(c10['copy_rows_per_s'])} rows/s | {f['copy']['scaling']} (k = {f['copy']['exponent']}) |")
    add(f"| copy batches: median of the first / middle / last tenth (last ÷ first) | "
        + " | ".join(
            f"{c['copy']['first_tenth']['median_batch_s']} / {c['copy']['middle_tenth']['median_batch_s']} / "
            f"{c['copy']['last_tenth']['median_batch_s']} s ({c['copy_batch_last_over_first']})" for c in (c1, c10))
        + " | target last ÷ first ≤ 1.3: " + ("met" if all(
            (c["copy_batch_last_over_first"] or 99) <= 1.3 for c in (c1, c10)) else "**not met**") + " |")
    def sessions_cell(c: dict) -> str:
        over = c.get("copy_over_sessions")
        if not over:
            return "not measured (an older run: `benches/run --scale` measures it)"
        return (f"{over['seconds']:.1f} s, {fmt_int(over['rows_per_s'])} rows/s: "
                f"{over['speedup_over_one_session']}× one session")
    add(f"| copy over {p['copy_sessions_measured'] or p['copy_sessions']} sessions (one key lane each) | "
        f"{sessions_cell(c1)} | {sessions_cell(c10)} | bounded here by the 2 cores both databases share |")
    add(f"| primary key (finish_copy job) | {t['primary_key']['1M']:.1f} s | {t['primary_key']['10M']:.1f} s | "
        f"{f['primary_key']['scaling']} (k = {f['primary_key']['exponent']}) |")
    def per_s(name: str, size: str) -> str:
        rows = m["rows_1m"] if size == "1M" else m["rows_10m"]
        return f"{t[name][size]:.1f} s, {fmt_int(rows / t[name][size])} rows/s"

    add(f"| index builds of step 8, one at a time | {per_s('index_builds_sequential', '1M')} | "
        f"{per_s('index_builds_sequential', '10M')} | {f['index_builds_sequential']['scaling']} "
        f"(k = {f['index_builds_sequential']['exponent']}) |")
    add(f"| index builds of step 8, {c10['index_builds']['parallelism']} at once | {per_s('index_builds', '1M')} | "
        f"{per_s('index_builds', '10M')} | {f['index_builds']['scaling']} (k = {f['index_builds']['exponent']}) |")
    add(f"| promotion (promote_table + validate_foreign_keys) | {t['promotion']['1M']:.2f} s | "
        f"{t['promotion']['10M']:.2f} s | {f['promotion']['scaling']} |")
    add(f"| reindex, one worker | {fmt_int(w['docs_per_s'])} docs/s at {fmt_int(w['rows'] or 0)} rows "
        f"(`{w['file']}`) | not measured | flat assumed (keyset pages, bounded memory) |")
    add(f"| reindex, one worker, dual write | {p['dual_write_ratio']:.2f} of the plain worker's docs/s: "
        f"{p['dual_write_ratio_source']} | not measured | as the plain reindex |")
    add("| filtered index (`_reindex`) | not measured | not measured | throttle-bound by design (`ReindexThrottleRps`) |\n")
    runs = c10["index_builds"]["runs_each"]
    para = (f"Index builds: {c1['index_builds']['runs_each']} run(s) of each mode at 1 M, {runs} at 10 M, "
            f"alternating (order {c10['index_builds']['order']}); the figure is the median. Speedup of "
            f"{c10['index_builds']['parallelism']} builds at once: {c1['index_builds']['speedup']}× at 1 M, "
            f"{c10['index_builds']['speedup']}× at 10 M (2 cores bound it; PostgreSQL already lends a large "
            "build parallel workers).")
    ib = m["index_builds_reference"]
    if ib:
        para += (f" For reference, `benches/results/index_builds.json` ({fmt_int(ib['rows'])} of testkit's wider "
                 f"rows, {ib['table_mb']} MB): {ib['index_builds_sequential_s']} s one at a time, "
                 f"{ib['index_builds_parallel_s']} s {ib['parallelism']} at once.")
    para += (f" The worker's rate here is bounded by this machine's Elasticsearch (ceiling "
             f"{fmt_int(w['ceiling_docs_per_s'])} docs/s on the same 2 cores); its client CPU per document "
             f"({w['cpu_us_per_doc']:.1f} µs) would allow far more. Promotion grows with the table: "
             "`promote_table` counts the new table's rows (`SELECT count(*)`) inside its transaction, after the "
             "renames, so the API's queries on the table wait for that count.")
    loads = [c["machine"].get("load_average_at_start") for c in (c1, c10)]
    para += (f" Load average at the start of the runs (1, 5, 15 min): {loads[0]} (1 M), {loads[1]} (10 M): "
             "this 2-core machine was shared with other work, which slows every figure here.\n")
    add(para)

    add("## Model\n")
    add("Assumptions, each a parameter of the script:\n")
    add("- Every catalog row becomes a document (the deleted and removed rows skipped here make it fewer: conservative).")
    add(f"- Database stages (copy, primary key, index builds, promotion) run at the speed measured here "
        f"÷ `--db-speed` ({p['db_speed']:g}): the production databases are taken to be as fast per session "
        "as this machine's PostgreSQL. Here catalog and API DB are one cluster on loopback, in production "
        "they are two servers (the FDW fetches 10 000 rows a round trip).")
    measured_speedup = ", ".join(f"{v}× at {k}" for k, v in p["copy_speedup_measured"].items() if v)
    add(f"- The copy: one Lambda call after another, each a transaction of batches per key lane; "
        f"`CopySessions` (`--copy-sessions`, {p['copy_sessions']}) lanes are copied at once, one API-database "
        f"session and one FDW connection to the catalog each. Each session beyond the first adds "
        f"`--copy-session-gain` ({p['copy_session_gain']:g}) of one session's rate: "
        f"{p['copy_speedup']:.2f}× one session. **Assumed**, not measured: in production the two databases are "
        "separate servers and a session keeps one backend busy on each; on this machine both share 2 cores and one "
        "session already keeps a backend busy on each side, so the speedup measured here"
        + (f" ({measured_speedup}, {p['copy_sessions_measured']} sessions)" if measured_speedup else "")
        + " bounds nothing about production. The lanes split the UUID key space evenly; v4 identifiers fill them "
        "evenly, so no lane is left to finish alone.")
    r1 = c1["copy"].get("catalog_reads") or {}
    r10 = c10["copy"].get("catalog_reads") or {}
    add(f"- Growth past 10 M rows: the copy and the promotion linear (the same work per row: the copy's "
        f"batch times are flat across the 10 M-row key range, last ÷ first {c10['copy_batch_last_over_first']}; "
        "`promote_table` counts the rows), the primary key and the index builds N log N (sorts), from the "
        "10 M-row times. Between 1 M and 10 M rows the times grew faster than that (the exponents k above): "
        f"the catalog's heap block accesses per row read rose from {r1.get('heap_blocks_per_row')} to "
        f"{r10.get('heap_blocks_per_row')} as the table outgrew PostgreSQL's buffers (from the page cache "
        "both times), sorts that fitted `maintenance_work_mem` at 1 M spill to disk at 10 M, and other work "
        f"shared the machine (1-minute load average at the phases, mean: {mean_load(c1)} at 1 M, "
        f"{mean_load(c10)} at 10 M). The row *database stages as fitted* below extrapolates the fitted "
        "exponents instead.")
    add(f"- Reindex: the ranges run at once on `--workers` ({p['workers']}) workers; their rate is "
        f"min(workers × one worker's docs/s ({fmt_int(p['worker_docs_per_s'])}, `--worker-docs-per-s`, "
        f"measured here), the Elasticsearch ingest ceiling (`--es-ceiling`, {fmt_int(p['es_ceiling'])} docs/s)).")
    add(f"- Filtered index with `filtered_index: reindex`: `_reindex` at min(`ReindexThrottleRps` ({fmt_int(p['throttle'])} docs/s, "
        "`--throttle`), the ceiling); every document kept (conservative).")
    add(f"- Each worker job (the reindex ranges, finish_copy, reapply, validate_foreign_keys) adds a worker's "
        f"start (`--worker-start-minutes`, {p['worker_start_s'] / 60:g}: launch, boot, download, health; "
        f"not measured here) and half a poll interval (`PollSeconds` {p['poll_seconds']} / 2): the machine "
        "sees a job done at its next poll. Short Lambda steps, creating and finishing the indices, the "
        "guards and the alias swap take seconds to minutes and are left out.")
    add("- Not modelled: restoring replicas after the reindex (`Finish new index`: recovery copies every "
        "shard once; `indices.recovery.max_bytes_per_sec` and the data nodes set it), other load on the "
        "cluster serving the live site, and retries.\n")

    add(f"## Projection (reference case: ceiling {fmt_int(p['es_ceiling'])} docs/s, {p['workers']} workers)\n")
    add("Hours per stage; the longest in bold.\n")
    add("| stage | " + " | ".join(f"{k} rows" for k in SIZES) + " |")
    add("|---|" + "---|" * len(SIZES))
    for stage in STAGE_NAMES:
        cells = []
        for size in SIZES:
            sec = ref["by_size"][size]["seconds"][stage]
            cell = fmt_h(sec)
            cells.append(f"**{cell}**" if ref["by_size"][size]["dominant"] == stage else cell)
        add(f"| {STAGE_NAMES[stage]} | " + " | ".join(cells) + " |")
    add("| **total** | " + " | ".join(f"**{fmt_h(ref['by_size'][s]['total_s'])}**" for s in SIZES) + " |")
    add("| dominating stage | " + " | ".join(STAGE_NAMES[ref["by_size"][s]["dominant"]] for s in SIZES) + " |\n")
    add("The setting that moves the dominating stage:\n")
    seen = set()
    for size in SIZES:
        d = ref["by_size"][size]["dominant"]
        if d in seen:
            continue
        seen.add(d)
        sizes = [s for s in SIZES if ref["by_size"][s]["dominant"] == d]
        add(f"- {', '.join(sizes)}: {STAGE_NAMES[d]} — {ref['by_size'][size]['lever']}.")
    add("")
    add("Levers of the other stages:\n")
    for st in STAGE_NAMES:
        if st not in seen:
            add(f"- {STAGE_NAMES[st]}: {lever(st, ref['by_size'][REFERENCE_SIZE]['binds'], p)}.")
    add("")

    dw = model["dual_write"]
    rx = dw["reindex_by_size"]
    add("## Dual write: the filtered index in the reindex pass\n")
    add("The reference case writes the filtered index in the reindex pass (`filtered_index: dual_write`, the "
        "input's default): each worker writes every document of its range to the new index and, unless it has a "
        "sensitive term, to `<index>-filtered` in the same pass. The reindex is slower for it: each worker at "
        f"{dw['ratio']:.2f} of its plain docs/s, {dw['ratio_source']}, and the two writes share the ingest ceiling "
        f"(at most {fmt_int(p['es_ceiling'] / 2)} source documents/s with every document kept: conservative); the "
        "slower of the two binds. The verification gate that follows (`verify_filtered_index`: both indices "
        "refreshed, a few `_count` queries, at most one `_delete_by_query` of ≤ 10 000 documents) takes seconds: "
        "negligible, counted as 0. With `filtered_index: reindex` the filtered index is built by `_reindex` after "
        f"the reindex, at `ReindexThrottleRps` ({fmt_int(p['throttle'])} docs/s):\n")
    add("| | " + " | ".join(f"{k} rows" for k in SIZES) + " |")
    add("|---|" + "---|" * len(SIZES))
    add("| reindex, filtered `_reindex` after it (hours) | " + " | ".join(
        f"{fmt_h(rx[s]['seconds']['reindex'])} + {fmt_h(rx[s]['seconds']['filtered_index'])}" for s in SIZES) + " |")
    add("| reindex with dual write (hours; what binds) | " + " | ".join(
        f"{fmt_h(ref['by_size'][s]['seconds']['reindex'])} ({ref['by_size'][s]['binds']['reindex']})"
        for s in SIZES) + " |")
    add("| **total, `filtered_index: reindex`** | " + " | ".join(f"**{fmt_h(rx[s]['total_s'])}**" for s in SIZES) + " |")
    add("| **total, `filtered_index: dual_write`** | " + " | ".join(
        f"**{fmt_h(ref['by_size'][s]['total_s'])}**" for s in SIZES) + " |")
    add("| saved by dual write | " + " | ".join(
        f"{fmt_h(rx[s]['total_s'] - ref['by_size'][s]['total_s'])} h "
        f"({100 * (1 - ref['by_size'][s]['total_s'] / rx[s]['total_s']):.0f} %)" for s in SIZES) + " |")
    add("| one refresh $, reindex / dual write | " + " | ".join(
        f"{dw['reindex_costs'][s]['usd_per_refresh']:.2f} / {model['costs'][s]['usd_per_refresh']:.2f}"
        for s in SIZES) + " |\n")
    cpu = w.get("dual_write_cpu_vs_worker")
    add(f"A dual-write ratio measured here comes from one worker beside this machine's Elasticsearch, which nearly "
        f"binds the plain worker already ({w['docs_per_s'] / w['ceiling_docs_per_s']:.2f} of the ceiling): it holds "
        "Elasticsearch's second write as much as the worker's own extra work"
        + (f" (its client CPU per source document: {cpu:.2f}× the plain worker's)" if cpu else "")
        + ". Where the cluster binds the reindex, as in the reference case, the ceiling's share is what counts.\n")

    add("## How the projection moves with the Elasticsearch ceiling\n")
    add("Total hours (as deployed); in brackets the reindex's hours and what binds it (workers or ceiling).\n")
    add("| ingest ceiling (docs/s) | " + " | ".join(f"{k} rows" for k in SIZES) + " |")
    add("|---|" + "---|" * len(SIZES))
    for ceiling, by_size in model["ceilings"].items():
        add(f"| {fmt_int(float(ceiling))} | " + " | ".join(
            f"{fmt_h(by_size[s]['total_s'])} ({fmt_h(by_size[s]['seconds']['reindex'])}, {by_size[s]['binds']['reindex']})"
            for s in SIZES) + " |")
    add("")
    add(f"Past {fmt_int(p['workers'] * p['worker_docs_per_s'])} docs/s ({p['workers']} workers × "
        f"{fmt_int(p['worker_docs_per_s'])}) the workers bind, not the cluster: add workers "
        "(`WorkersProduction`) with the ceiling. With dual write both writes share the ceiling, so the "
        "reindex moves with it as long as the cluster binds.\n")

    cio = model["catalog_io"]
    if cio["by_iops"]:
        add("## If the catalog's pages are not in memory\n")
        add(f"The copy reads the catalog in identifier order; rows lie in the heap in the order they were "
            f"ingested and v4 identifiers are random, so every row read is a page read: "
            f"{cio['heap_blocks_per_row']} heap block accesses per row here (`pg_statio_user_tables` over the "
            "10 M-row copy). Here the whole table sits in the page cache, which is what the rates above "
            "measure. A production catalog is far larger than its server's memory: then each row costs a "
            "random read, and the catalog's read IOPS, not the CPU, sets the copy's rate "
            f"(share found in memory: `--catalog-cache-hit` {p['catalog_cache_hit']:g}). Copy hours, and the "
            "total in brackets, by the catalog's random-read IOPS (`--catalog-iops`; not measured here), each the "
            "longer of the read-bound time and the rate measured here:\n")
        add("| catalog random reads/s | " + " | ".join(f"{k} rows" for k in SIZES) + " |")
        add("|---|" + "---|" * len(SIZES))
        for iops, by_size in cio["by_iops"].items():
            add(f"| {fmt_int(float(iops))} | " + " | ".join(
                f"{fmt_h(by_size[s]['copy_s'])} ({fmt_h(by_size[s]['total_s'])})" for s in SIZES) + " |")
        add("")
        add("The key lanes (`CopySessions`) keep that many reads in flight at once, which a catalog on network "
            "storage needs to reach its IOPS at all, but they share the IOPS: the table assumes the catalog reaches "
            "them. What would cut the reads: reading the catalog in heap order (a keyset over `ctid` ranges: "
            "PostgreSQL 14+ scans a TID range sequentially, and the cursor stays resumable) instead of identifier "
            "order: not built.\n")

    add(f"## Settings against the {p['target_hours']:g} h target\n")
    add("Total hours in the reference case, by what is changed:\n")
    add("| change | " + " | ".join(f"{k} rows" for k in SIZES) + " |")
    add("|---|" + "---|" * len(SIZES))
    for name, by_size in model["scenarios"].items():
        add(f"| {name}: {SCENARIOS[name]} | " + " | ".join(fmt_h(by_size[s]["total_s"]) for s in SIZES) + " |")
    add("")

    add("## Limits the projection must fit\n")
    add("| | " + " | ".join(f"{k} rows" for k in SIZES) + " |")
    add("|---|" + "---|" * len(SIZES))
    lim = {s: ref["by_size"][s]["limits"] for s in SIZES}
    add(f"| polls of the longest worker job (limit `ReindexMaxPolls` {p['reindex_max_polls']} × "
        f"{p['poll_seconds']} s) | " + " | ".join(str(lim[s]["longest_worker_job_polls"]) for s in SIZES) + " |")
    lim_rx = {s: model["dual_write"]["reindex_by_size"][s]["limits"] for s in SIZES}
    add("| polls of the filtered reindex with `filtered_index: reindex` (same limit) | "
        + " | ".join(str(lim_rx[s]["filtered_polls"]) for s in SIZES) + " |")
    add(f"| within the execution timeout ({p['execution_timeout_s'] / 3600:g} h) | "
        + " | ".join("yes" if lim[s]["fits_execution_timeout"] else "**no**" for s in SIZES) + " |")
    add(f"| copy calls (each ≤ {p['copy_call_seconds']} s of a {p['step_timeout_s']} s Lambda) | "
        + " | ".join(fmt_int(model["costs"][s]["copy_calls"]) for s in SIZES) + " |\n")
    add("Worst-case execution history with the template's defaults (`statemachine/history_events.py`; every "
        f"bounded loop at its limit), against Step Functions' {fmt_int(history['quota'])}-event quota: "
        + ", ".join(f"{k} {fmt_int(v)}" for k, v in history["worst_case_history_events"].items())
        + ". A refresh at these sizes polls far less than the limits allow, so its history stays below these.\n")

    add("## Cost of one refresh\n")
    add(f"Workers at `--instance-usd-per-hour` ${p['instance_usd_per_hour']} (m5.xlarge on demand, Linux, us-east-1; "
        f"the template's default m6i.xlarge is priced the same there), billed per second with a 60 s minimum; Lambda at "
        f"${p['lambda_usd_per_gb_s']} per GB-second and ${p['lambda_usd_per_million_requests']} per million "
        f"requests ({p['function_memory_mb']} MB functions: the copy's calls for their whole time, each poll "
        f"{p['poll_lambda_seconds']:g} s, each other step {p['step_lambda_seconds']:g} s); Step Functions at "
        f"${p['usd_per_1000_transitions']} per 1 000 state transitions (every state of each execution once, "
        "plus each loop's states per iteration). Unit prices are parameters of the script.\n")
    add("| | " + " | ".join(f"{k} rows" for k in SIZES) + " |")
    add("|---|" + "---|" * len(SIZES))
    cs = model["costs"]
    add("| worker instance hours | " + " | ".join(f"{cs[s]['worker_instance_hours']:.1f}" for s in SIZES) + " |")
    add("| Lambda GB-seconds | " + " | ".join(fmt_int(cs[s]["lambda_gb_s"]) for s in SIZES) + " |")
    add("| state transitions | " + " | ".join(fmt_int(cs[s]["state_transitions"]) for s in SIZES) + " |")
    add("| workers $ | " + " | ".join(f"{cs[s]['usd']['workers']:.2f}" for s in SIZES) + " |")
    add("| Lambda $ | " + " | ".join(f"{cs[s]['usd']['lambda']:.2f}" for s in SIZES) + " |")
    add("| Step Functions $ | " + " | ".join(f"{cs[s]['usd']['step_functions']:.2f}" for s in SIZES) + " |")
    add("| **one refresh $** | " + " | ".join(f"**{cs[s]['usd_per_refresh']:.2f}**" for s in SIZES) + " |")
    add(f"| a month at {p['refreshes_per_month']:.2f} refreshes (`--refreshes-per-month`: the weekly image refresh) $ | " + " | ".join(
        f"{cs[s]['usd_per_month']:.2f}" for s in SIZES) + " |")
    add(f"| the replaced design: {p['replaced_servers']} always-on m5.xlarge, a month $ | " + " | ".join(
        f"{model['replaced_usd_per_month']:.2f}" for _ in SIZES) + " |\n")
    add("The workers run only while a refresh needs them, which is why they are launched per refresh; "
        "the databases and the Elasticsearch cluster are the same in both designs and not counted.\n")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    history = history_module()
    defaults = history.template_defaults()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--copy-1m", type=Path, default=RESULTS / "copy_scale-1000000.json")
    ap.add_argument("--copy-10m", type=Path, default=RESULTS / "copy_scale-10000000.json")
    ap.add_argument("--worker", type=Path, default=None,
                    help="worker result (default: benches/results/latest.json, else worker.json)")
    ap.add_argument("--es-ceiling", type=float, default=60_000, help="Elasticsearch ingest ceiling, docs/s")
    ap.add_argument("--ceilings", default="30000,60000,120000", help="ceilings for the sensitivity table")
    ap.add_argument("--workers", type=int, default=int(defaults["WorkersProduction"]))
    ap.add_argument("--worker-docs-per-s", type=float, default=None,
                    help="one worker's docs/s (default: the measured figure)")
    ap.add_argument("--dual-write-ratio", type=float, default=None,
                    help="one worker's dual-write docs/s ÷ its plain docs/s (default: measured by the worker "
                         f"bench when the worker result has it, else {ASSUMED_DUAL_WRITE_RATIO})")
    ap.add_argument("--throttle", type=float, default=float(defaults["ReindexThrottleRps"]),
                    help="the filtered _reindex's throttle, docs/s")
    ap.add_argument("--db-speed", type=float, default=1.0,
                    help="production database speed per session ÷ this machine's")
    ap.add_argument("--copy-sessions", type=int, default=int(defaults["CopySessions"]),
                    help="the copy's sessions (key lanes), CopySessions")
    ap.add_argument("--copy-session-gain", type=float, default=ASSUMED_COPY_SESSION_GAIN,
                    help="share of one session's rate each further copy session adds on the production databases")
    ap.add_argument("--catalog-iops", default="3000,12000,40000",
                    help="catalog random-read IOPS for the table of a copy whose catalog pages are not cached")
    ap.add_argument("--catalog-cache-hit", type=float, default=0.0,
                    help="share of the copy's catalog page reads found in memory, for that table")
    ap.add_argument("--worker-start-minutes", type=float, default=3.0)
    ap.add_argument("--instance-usd-per-hour", type=float, default=0.192, help="m5.xlarge on demand, us-east-1")
    ap.add_argument("--lambda-usd-per-gb-s", type=float, default=0.0000166667)
    ap.add_argument("--lambda-usd-per-million-requests", type=float, default=0.20)
    ap.add_argument("--usd-per-1000-transitions", type=float, default=0.025)
    ap.add_argument("--poll-lambda-seconds", type=float, default=1.0)
    ap.add_argument("--step-lambda-seconds", type=float, default=2.0)
    ap.add_argument("--refreshes-per-month", type=float, default=52 / 12, help="weekly image refresh")
    ap.add_argument("--replaced-servers", type=int, default=2)
    ap.add_argument("--hours-per-month", type=float, default=730)
    ap.add_argument("--target-hours", type=float, default=12)
    ap.add_argument("--replaced-hours", type=float, default=67)
    ap.add_argument("--out", default=str(RESULTS / "scale.json"), help="'-' to skip")
    ap.add_argument("--doc", default=str(ROOT / "docs" / "CAPACITY.md"), help="'-' to skip")
    args = ap.parse_args(argv)
    if args.dual_write_ratio is not None and not 0 < args.dual_write_ratio <= 1:
        ap.error("--dual-write-ratio must be in (0, 1]")
    if not 1 <= args.copy_sessions <= 16:
        ap.error("--copy-sessions must be 1 to 16 (COPY_SESSIONS)")
    if not 0 <= args.copy_session_gain <= 1:
        ap.error("--copy-session-gain must be in [0, 1]")

    m = measured(args)
    measured_ratio = m["worker"]["dual_write_vs_worker"]
    if args.dual_write_ratio is not None:
        dual_ratio, ratio_source = args.dual_write_ratio, "set by `--dual-write-ratio`"
    elif measured_ratio:
        dual_ratio = measured_ratio
        ratio_source = f"measured by the worker bench (`{m['worker']['file']}`, median of the rounds' ratios)"
    else:
        dual_ratio = ASSUMED_DUAL_WRITE_RATIO
        ratio_source = (f"**assumed, not measured** (`{m['worker']['file']}` has no dual-write figure; "
                        "every document written twice at the rate that bound one write; `benches/run` measures "
                        "it, `--dual-write-ratio` sets it)")
    refresh_def = history.substituted(history.MACHINE_FILES["data-refresh"], defaults)
    range_def = history.substituted(history.MACHINE_FILES["worker-range"], defaults)
    refresh_loops, range_loops = loop_states(history, refresh_def), loop_states(history, range_def)
    defs = {
        "refresh_states": count_states(refresh_def),
        "range_states": count_states(range_def),
        "refresh_lambda_tasks": count_states(refresh_def, lambda_only=True),
        "range_lambda_tasks": count_states(range_def, lambda_only=True),
        "copy_loop_states": refresh_loops["Copy data"],
        "filtered_poll_states": refresh_loops["Count filtered reindex poll"],
        "range_poll_states": range_loops["Count reindex poll"],
        "range_check_states": range_loops["Count worker health check"],
    }
    p = {
        "es_ceiling": args.es_ceiling,
        "workers": args.workers,
        "worker_docs_per_s": args.worker_docs_per_s or m["worker"]["docs_per_s"],
        "throttle": args.throttle,
        "dual_write_ratio": dual_ratio,
        "dual_write_ratio_source": ratio_source,
        "verify_gate_s": 0.0,
        "db_speed": args.db_speed,
        "copy_sessions": args.copy_sessions,
        "copy_session_gain": args.copy_session_gain,
        "copy_speedup": 1 + (args.copy_sessions - 1) * args.copy_session_gain,
        "copy_speedup_measured": {"1M": m["c1"].get("copy_sessions_speedup"),
                                  "10M": m["c10"].get("copy_sessions_speedup")},
        "copy_sessions_measured": m["c10"].get("copy_sessions") or m["c1"].get("copy_sessions"),
        "worker_start_s": args.worker_start_minutes * 60,
        "poll_seconds": int(defaults["PollSeconds"]),
        "check_seconds": int(defaults["CheckSeconds"]),
        "reindex_max_polls": int(defaults["ReindexMaxPolls"]),
        "step_timeout_s": int(defaults["StepTimeoutSeconds"]),
        "copy_call_seconds": history.PROGRESS_CALL_SECONDS,
        "execution_timeout_s": refresh_def["TimeoutSeconds"],
        "function_memory_mb": int(defaults["FunctionMemoryMB"]),
        "instance_usd_per_hour": args.instance_usd_per_hour,
        "lambda_usd_per_gb_s": args.lambda_usd_per_gb_s,
        "lambda_usd_per_million_requests": args.lambda_usd_per_million_requests,
        "usd_per_1000_transitions": args.usd_per_1000_transitions,
        "poll_lambda_seconds": args.poll_lambda_seconds,
        "step_lambda_seconds": args.step_lambda_seconds,
        "refreshes_per_month": args.refreshes_per_month,
        "replaced_servers": args.replaced_servers,
        "hours_per_month": args.hours_per_month,
        "target_hours": args.target_hours,
        "replaced_hours": args.replaced_hours,
        "catalog_iops": [float(x) for x in args.catalog_iops.split(",") if x.strip()],
        "catalog_cache_hit": args.catalog_cache_hit,
    }
    worst = history.deployed_worst_cases(defaults)
    hist = {"worst_case_history_events": worst, "quota": history.HISTORY_QUOTA, "limit": history.HISTORY_LIMIT}

    def by_size(ceiling: float, scenario: str = AS_DEPLOYED) -> dict:
        out = {}
        for size, rows in SIZES.items():
            st = stages_at(m, p, rows, ceiling, scenario)
            dominant = max(st["seconds"], key=st["seconds"].get)
            st["dominant"] = dominant
            st["lever"] = lever(dominant, st["binds"], p)
            st["limits"] = limits(p, st)
            out[size] = st
        return out

    scenarios = {name: by_size(p["es_ceiling"], name) for name in SCENARIOS}
    reference = {"by_size": scenarios[AS_DEPLOYED]}
    ceilings = {str(int(c)): by_size(float(c)) for c in args.ceilings.split(",") if c.strip()}
    cost = {size: costs(m, p, reference["by_size"][size], defs) for size in SIZES}
    replaced = p["replaced_servers"] * p["instance_usd_per_hour"] * p["hours_per_month"]
    reindex_cost = {size: costs(m, p, scenarios[REINDEX_MODE][size], defs) for size in SIZES}
    # The copy rate the reference size needs to meet the target, and the session gain that gives it.
    ref700 = reference["by_size"][REFERENCE_SIZE]
    other = ref700["total_s"] - ref700["seconds"]["copy"]
    allowed = p["target_hours"] * 3600 - other
    needed = SIZES[REFERENCE_SIZE] / allowed if allowed > 0 else None
    one_session = m["c10"]["copy_rows_per_s"] / p["db_speed"]
    times = needed / one_session if needed else None
    gain_needed = ((times - 1) / (p["copy_sessions"] - 1) if times and p["copy_sessions"] > 1 else None)
    copy_needed = {"other_s": other, "rows_per_s": needed, "times_measured": times,
                   "session_gain_needed": gain_needed}
    model = {"reference": reference, "ceilings": ceilings, "scenarios": scenarios, "costs": cost,
             "replaced_usd_per_month": round(replaced, 2), "copy_needed": copy_needed,
             "dual_write": {"ratio": dual_ratio, "ratio_source": ratio_source,
                            "reindex_by_size": scenarios[REINDEX_MODE], "reindex_costs": reindex_cost}}

    reads = m["c10"]["copy"].get("catalog_reads")
    io_bound = {}
    if reads:
        per_row = reads["heap_blocks_per_row"] * (1 - p["catalog_cache_hit"])
        for iops in p["catalog_iops"]:
            row = {}
            for size, rows in SIZES.items():
                st = reference["by_size"][size]
                copy_io = rows * per_row / iops
                row[size] = {"copy_s": max(copy_io, st["seconds"]["copy"]),
                             "total_s": st["total_s"] - st["seconds"]["copy"] + max(copy_io, st["seconds"]["copy"])}
            io_bound[str(int(iops))] = row
    model["catalog_io"] = {"heap_blocks_per_row": reads and reads["heap_blocks_per_row"], "by_iops": io_bound}

    c10 = m["c10"]
    projected = {s: round(h(reference["by_size"][s]["total_s"]), 2) for s in SIZES}
    projected_reindex = {s: round(h(scenarios[REINDEX_MODE][s]["total_s"]), 2) for s in SIZES}
    result = {
        "copy_rows": c10["copy_rows"],
        "copy_rows_per_s": c10["copy_rows_per_s"],
        "copy_batch_last_over_first": c10["copy_batch_last_over_first"],
        "index_builds_sequential_s": c10["index_builds_sequential_s"],
        "index_builds_parallel_s": c10["index_builds_parallel_s"],
        "worst_case_history_events": worst,
        # The reference case: the defaults (dual write, the copy over CopySessions key lanes).
        "projected_hours": projected,
        "projected_hours_reindex": projected_reindex,
        "projected_hours_dual_write": projected,
        "dual_write_saving_hours": {
            s: round(h(scenarios[REINDEX_MODE][s]["total_s"] - reference["by_size"][s]["total_s"]), 2) for s in SIZES},
        "copy_sessions": {
            "sessions": p["copy_sessions"],
            "session_gain": p["copy_session_gain"],
            "session_gain_source": "--copy-session-gain" if args.copy_session_gain != ASSUMED_COPY_SESSION_GAIN else "assumed",
            "speedup_modelled": round(p["copy_speedup"], 2),
            "speedup_measured_here": p["copy_speedup_measured"],
            "sessions_measured_here": p["copy_sessions_measured"],
            "copy_hours_one_session": {s: round(h(scenarios[ONE_SESSION][s]["seconds"]["copy"]), 3) for s in SIZES},
            "copy_hours": {s: round(h(reference["by_size"][s]["seconds"]["copy"]), 3) for s in SIZES},
            "session_gain_needed_for_target": copy_needed["session_gain_needed"] and round(copy_needed["session_gain_needed"], 3),
        },
        "dual_write": {
            "worker_ratio": dual_ratio,
            "worker_ratio_source": ("--dual-write-ratio" if args.dual_write_ratio is not None
                                    else "measured" if measured_ratio else "assumed"),
            "worker_cpu_ratio": m["worker"]["dual_write_cpu_vs_worker"],
            "verification_gate_s": p["verify_gate_s"],
            "reindex_hours": {s: round(h(reference["by_size"][s]["seconds"]["reindex"]), 3) for s in SIZES},
            "reindex_binds": {s: reference["by_size"][s]["binds"]["reindex"] for s in SIZES},
            "filtered_reindex_hours_removed": {
                s: round(h(scenarios[REINDEX_MODE][s]["seconds"]["filtered_index"]), 3) for s in SIZES},
            "cost_per_refresh_usd": {s: cost[s]["usd_per_refresh"] for s in SIZES},
            "cost_per_refresh_usd_reindex": {s: reindex_cost[s]["usd_per_refresh"] for s in SIZES},
        },
        "target": {"size": REFERENCE_SIZE, "hours": p["target_hours"],
                   "met": projected[REFERENCE_SIZE] <= p["target_hours"]},
        "dominant_stage": {s: reference["by_size"][s]["dominant"] for s in SIZES},
        "stage_hours": {s: {k: round(h(v), 3) for k, v in reference["by_size"][s]["seconds"].items()} for s in SIZES},
        "projected_hours_by_ceiling": {c: {s: round(h(v[s]["total_s"]), 2) for s in SIZES} for c, v in ceilings.items()},
        "projected_hours_by_scenario": {n: {s: round(h(v[s]["total_s"]), 2) for s in SIZES} for n, v in scenarios.items()},
        "copy_hours_if_catalog_pages_uncached": {
            iops: {s: round(h(v[s]["copy_s"]), 2) for s in SIZES} for iops, v in io_bound.items()},
        "copy_rows_per_s_needed_for_target": copy_needed["rows_per_s"] and round(copy_needed["rows_per_s"]),
        "cost_per_refresh_usd": {s: cost[s]["usd_per_refresh"] for s in SIZES},
        "costs": cost,
        "replaced_usd_per_month": model["replaced_usd_per_month"],
        "measured": {
            "rows": {"1M": m["rows_1m"], "10M": m["rows_10m"]},
            "seconds": m["times"],
            "scaling": m["fits"],
            "copy_rows_per_s": {"1M": m["c1"]["copy_rows_per_s"], "10M": c10["copy_rows_per_s"]},
            "copy_batch_last_over_first": {"1M": m["c1"]["copy_batch_last_over_first"],
                                           "10M": c10["copy_batch_last_over_first"]},
            "worker": m["worker"],
            "bytes_per_row": c10["catalog"]["bytes_per_row_on_disk"],
        },
        "parameters": p,
        "history": hist,
        "generated_by": COMMAND,
    }
    text = render(m, p, model, hist)
    # The summary on stdout.
    print(f"projection ({p['workers']} workers, ceiling {fmt_int(p['es_ceiling'])} docs/s):")
    for size in SIZES:
        st = reference["by_size"][size]
        parts = ", ".join(f"{k} {h(v):.2f}" for k, v in st["seconds"].items())
        print(f"  {size:>5}: {h(st['total_s']):6.2f} h  ({parts}); dominant: {st['dominant']}; "
              f"${cost[size]['usd_per_refresh']:.2f} per refresh")
    print(f"  target {p['target_hours']:g} h at {REFERENCE_SIZE}: {'met' if result['target']['met'] else 'not met'}")
    print(f"  as deployed: dual write (worker ratio {dual_ratio:.2f}, {result['dual_write']['worker_ratio_source']}), "
          f"copy over {p['copy_sessions']} sessions (gain {p['copy_session_gain']:g}, speedup {p['copy_speedup']:.2f}); "
          f"filtered index by _reindex instead: {projected_reindex} h")
    for name, v in result["projected_hours_by_scenario"].items():
        print(f"  {name}: {v}")
    for c, v in result["projected_hours_by_ceiling"].items():
        print(f"  ceiling {c}: {v}")
    if args.out != "-":
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(f"written: {args.out}")
    if args.doc != "-":
        Path(args.doc).write_text(text + "\n")
        print(f"written: {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
