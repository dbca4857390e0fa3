#!/usr/bin/env python3
"""The replaced indexer worker's method, re-implemented for the benchmark only.

The worker bench (crates/indexer-worker/benches/worker) runs this as a child process over the
same rows and into an index it created with the production mapping, and measures its CPU and
peak memory from outside. As the replaced worker did it:
- one query over the whole id range, `SELECT *` plus the deleted / mature membership, read
  through a psycopg2 named (server-side) cursor 100 000 rows at a time (`itersize`);
- each batch turned into documents in Python, then pushed with elasticsearch-py 7.x
  `helpers.parallel_bulk(chunk_size=400)` (4 threads); fetch, convert and push one after
  another;
- failed items counted (the replaced worker logged and skipped them).
The documents carry the same fields as the Rust worker's (refresh_core::document, DESIGN §4).

Prints one JSON line: {"rows", "docs", "failed", "seconds"} (seconds after the imports).
"""
import argparse
import json
import math
import re
import sys
import time

import psycopg2
from elasticsearch import Elasticsearch, helpers

ITERSIZE = 100_000
CHUNK_SIZE = 400

CURATED = {"stocksnap", "rawpixel"}
CULTURAL = {"thorvaldsensmuseum", "svgsilh", "smithsonian", "rijksmuseum", "museumsvictoria",
            "met", "mccordsmuseum", "digitaltmuseum", "clevelandmuseum", "brooklynmuseum"}
SOCIAL = {"flickr", "behance", "thingiverse", "sketchfab", "deviantart"}
NUMERIC = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,3})?$")
F32_MIN_POSITIVE = 1.1754944e-38
F32_MAX = 3.4028235e38


def rank_feature(value):
    return value if math.isfinite(value) and value >= F32_MIN_POSITIVE else None


def popularity(raw):
    if raw is None or math.isnan(raw):
        return None
    return rank_feature(min(max(raw * 100.0, 0.0), 100.0))


def authority(meta, provider):
    explicit = None
    value = meta.get("authority_boost")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        explicit = float(value)
    elif isinstance(value, str):
        try:
            explicit = float(value.strip())
        except ValueError:
            pass
    if explicit is not None and not math.isnan(explicit):
        return rank_feature(min(max(explicit, 0.0), 100.0))
    if provider in CULTURAL:
        return 90.0
    if provider in CURATED:
        return 85.0
    if provider in SOCIAL:
        return 75.0
    return None


def accuracy(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        a = float(value)
    elif isinstance(value, str) and NUMERIC.match(value):
        a = float(value)
    else:
        return None
    return a if abs(a) <= F32_MAX else None


def tags(value):
    if not isinstance(value, list):
        return []
    return [{"name": t["name"], "accuracy": accuracy(t.get("accuracy"))}
            for t in value if isinstance(t, dict) and isinstance(t.get("name"), str)]


def dimensions(width, height):
    if width and height and width > 0 and height > 0:
        return width, height
    return None


def url_extension(url):
    if not url:
        return None
    path = re.split(r"[?#]", url, maxsplit=1)[0]
    if "://" in path:
        after = path.split("://", 1)[1]
        if "/" not in after:
            return None
        path = after[after.index("/"):]
    name = path.rsplit("/", 1)[-1]
    if "." not in name:
        return None
    ext = name.rsplit(".", 1)[1]
    return ext.lower() or None


def mature_flag(value):
    if isinstance(value, bool):
        return value
    return isinstance(value, str) and value.strip().lower() == "true"


def to_document(row):
    if row["removed_from_source"] or row["deleted"]:
        return None
    meta = row["meta_data"] if isinstance(row["meta_data"], dict) else {}
    pop = popularity(row["standardized_popularity"])
    auth = authority(meta, row["provider"])
    p, a = pop or 1.0, auth or 1.0
    description = meta.get("description")
    if description is not None and not isinstance(description, str):
        description = json.dumps(description)
    doc = {
        "id": row["id"],
        "created_on": row["created_on"],
        "identifier": row["identifier"],
        "license": row["license"].lower(),
        "provider": row["provider"],
        "source": row["source"],
        "category": row["category"],
        "title": row["title"],
        "creator": row["creator"],
        "description": description[:2000] if description is not None else None,
        "mature": row["mature_listed"] or mature_flag(meta.get("mature")),
        "tags": tags(row["tags"]),
        "url": row["url"],
        "standardized_popularity": pop,
        "authority_boost": auth,
        "max_boost": max(p, a),
        "min_boost": min(p, a),
        "extension": url_extension(row["url"]),
        "aspect_ratio": None,
        "size": None,
    }
    dims = dimensions(row["width"], row["height"])
    if dims:
        w, h = dims
        doc["aspect_ratio"] = "tall" if h > w else "wide" if h < w else "square"
        pixels = w * h
        doc["size"] = "small" if pixels < 640 * 480 else "medium" if pixels < 1600 * 900 else "large"
    return doc


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-url", required=True)
    parser.add_argument("--es-url", required=True)
    parser.add_argument("--index", required=True)
    parser.add_argument("--table", default="temp_import_image")
    parser.add_argument("--start-id", type=int, required=True)
    parser.add_argument("--end-id", type=int, required=True)
    args = parser.parse_args()

    started = time.monotonic()
    es = Elasticsearch([args.es_url], timeout=300)
    conn = psycopg2.connect(args.pg_url)
    media = args.table.removeprefix("temp_import_")
    cursor = conn.cursor(name="baseline")  # named: rows stay on the server until fetched
    cursor.itersize = ITERSIZE
    # The table name is the bench's own constant, never outside input.
    cursor.execute(
        f"SELECT t.*, "
        f"EXISTS (SELECT 1 FROM api_deleted{media} d WHERE d.identifier = t.identifier) AS deleted, "
        f"EXISTS (SELECT 1 FROM api_mature{media} m WHERE m.identifier = t.identifier) AS mature_listed "
        f"FROM {args.table} t WHERE t.id BETWEEN %s AND %s",
        (args.start_id, args.end_id),
    )
    rows = docs = failed = 0
    columns = None
    while True:
        batch = cursor.fetchmany(ITERSIZE)
        if not batch:
            break
        if columns is None:
            columns = [c.name for c in cursor.description]
        rows += len(batch)
        actions = []
        for values in batch:
            doc = to_document(dict(zip(columns, values)))
            if doc is not None:
                actions.append({"_index": args.index, "_id": doc["id"], "_source": doc})
        for ok, _info in helpers.parallel_bulk(es, actions, chunk_size=CHUNK_SIZE,
                                               raise_on_error=False):
            if ok:
                docs += 1
            else:
                failed += 1
    cursor.close()
    conn.close()
    seconds = time.monotonic() - started
    print(json.dumps({"rows": rows, "docs": docs, "failed": failed, "seconds": seconds}))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
