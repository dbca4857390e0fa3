#!/usr/bin/env python3
"""Regenerates the bundled sample rows (deterministic: same output every run).

The rows exercise what a refresh must handle: removed rows, deleted and mature
identifiers, every kind of filtered tag, sensitive terms, popularity and authority
edge cases, URLs with and without extensions, audio sets and alternate files.
Usage: python3 sample-data/generate.py   (writes the *.csv files beside this script)
"""
import csv
import json
import random
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
NAMESPACE = uuid.UUID("6f0b8f5e-0b7c-4a53-9d0e-7e4f2b1c9a10")
IMAGE_ROWS = 3000
AUDIO_ROWS = 1000

IMAGE_PROVIDERS = ["flickr", "stocksnap", "rawpixel", "met", "smithsonian", "rijksmuseum",
                   "wikimedia", "behance", "nappy", "brooklynmuseum", "deviantart", "geographorg"]
AUDIO_PROVIDERS = ["jamendo", "freesound", "wikimedia_audio", "ccmixter"]
LICENSES = ["BY", "by-sa", "CC0", "pdm", "by-nc", "by-nd"]
WORDS = ["sunset", "mountain", "river", "portrait", "city", "forest", "animals", "running",
         "ocean", "bridge", "garden", "market", "winter", "train", "museum", "dance"]
# A few titles carry a word from sensitive-terms.txt so the filtered index has work to do.
SENSITIVE = ["explicitterm", "offensiveterm"]
TAG_KINDS = [
    lambda r: {"name": r.choice(WORDS), "accuracy": round(r.uniform(0.91, 0.99), 4), "provider": "clarifai"},
    lambda r: {"name": r.choice(WORDS), "accuracy": round(r.uniform(0.5, 0.89), 4), "provider": "clarifai"},
    lambda r: {"name": r.choice(WORDS), "provider": "rekognition", "accuracy": 0.99},
    lambda r: {"name": r.choice(WORDS)},
    lambda r: {"name": "uploaded:by=flickrmobile"},
    lambda r: {"name": "No Person"},
    lambda r: {"name": "cc0 photo"},
    lambda r: {"name": "flickriosapp:filter=flamingo"},
    lambda r: {"accuracy": 0.95},
    lambda r: {"name": 42},
    lambda r: {"name": r.choice(SENSITIVE)},
]
START = datetime(2024, 1, 1, tzinfo=timezone.utc)


def ident(kind, n):
    return str(uuid.uuid5(NAMESPACE, f"{kind}-{n}"))


def common(r, kind, n, providers):
    provider = providers[n % len(providers)]
    source = provider if n % 7 else f"{provider}_sub{n % 3}"
    created = START + timedelta(minutes=n * 37)
    popularity = r.choice([None, 0.0, r.random(), r.uniform(1.0, 5.0), 1e-40])
    meta = {}
    if n % 5 == 0:
        meta["description"] = " ".join(r.choice(WORDS) for _ in range(r.choice([3, 40, 600])))
    if n % 17 == 0:
        meta["mature"] = True
    if n % 23 == 0:
        meta["authority_boost"] = r.choice([150, 42.5, -3])
    title_words = [r.choice(WORDS) for _ in range(3)]
    if n % 29 == 0:
        title_words.append(r.choice(SENSITIVE))
    tags = [TAG_KINDS[r.randrange(len(TAG_KINDS))](r) for _ in range(r.randrange(0, 6))]
    return {
        "identifier": ident(kind, n),
        "created_on": created.isoformat(),
        "updated_on": (created + timedelta(days=3)).isoformat(),
        "ingestion_type": r.choice(["provider_api", "commoncrawl"]),
        "provider": provider,
        "source": source,
        "foreign_identifier": f"{kind}-{n}",
        "foreign_landing_url": f"https://{provider}.example.org/{kind}/{n}",
        "license": r.choice(LICENSES),
        "license_version": r.choice(["1.0", "2.0", "4.0"]),
        "creator": f"Creator {n % 97}",
        "creator_url": f"https://{provider}.example.org/creator/{n % 97}",
        "title": " ".join(title_words).title(),
        "meta_data": json.dumps(meta),
        "tags": json.dumps(tags),
        "watermarked": "f",
        "last_synced_with_source": (created + timedelta(days=10)).isoformat(),
        "removed_from_source": "t" if n % 41 == 0 else "f",
        "standardized_popularity": "" if popularity is None else repr(popularity),
    }


def image_row(r, n):
    row = common(r, "image", n, IMAGE_PROVIDERS)
    ext = r.choice([".jpg", ".png", ".jpeg", "", ".gif?size=large"])
    width, height = r.choice([(320, 240), (1024, 768), (4000, 3000), (900, 1600), (800, 800), (None, None)])
    row.update({
        "url": f"https://{row['provider']}.example.org/media/{n}/file{ext}",
        "thumbnail": f"https://{row['provider']}.example.org/thumb/{n}.jpg",
        "width": "" if width is None else width,
        "height": "" if height is None else height,
        "filesize": r.randrange(10_000, 9_000_000),
        "filetype": r.choice(["jpg", "png", ""]),
        "category": r.choice(["photograph", "digitized_artwork", "illustration", ""]),
    })
    return row


def audio_row(r, n):
    row = common(r, "audio", n, AUDIO_PROVIDERS)
    filetype = r.choice(["mp3", "ogg", "wav", "flac"])
    alt = [] if n % 3 else [{"url": f"https://{row['provider']}.example.org/a/{n}.ogg",
                               "filesize": 1234, "bit_rate": 128000, "sample_rate": 44100,
                               "filetype": "ogg"}]
    audio_set = None if n % 4 else {"foreign_identifier": f"set-{n // 40}", "title": f"Album {n // 40}",
                                    "foreign_landing_url": f"https://{row['provider']}.example.org/set/{n // 40}",
                                    "creator": row["creator"], "url": None, "filesize": None,
                                    "filetype": filetype}
    row.update({
        "url": f"https://{row['provider']}.example.org/audio/{n}.{filetype}",
        "thumbnail": "",
        "filetype": filetype,
        "duration": r.choice([12_000, 95_000, 300_000, 1_200_000, ""]),
        "bit_rate": r.choice([128000, 320000, ""]),
        "sample_rate": r.choice([44100, 48000, ""]),
        "category": r.choice(["music", "sound_effect", "podcast", ""]),
        "genres": "{" + ",".join(r.sample(["rock", "jazz", "ambient", "folk"], 2)) + "}",
        "audio_set": "" if audio_set is None else json.dumps(audio_set),
        "audio_set_position": "" if audio_set is None else n % 40,
        "audio_set_foreign_identifier": "" if audio_set is None else audio_set["foreign_identifier"],
        "alt_files": json.dumps(alt) if alt else "",
        "filesize": r.randrange(100_000, 20_000_000),
    })
    return row


def write(name, rows):
    with open(HERE / name, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def main():
    r = random.Random(20261128)
    write("catalog_image.csv", [image_row(r, n) for n in range(IMAGE_ROWS)])
    write("catalog_audio.csv", [audio_row(r, n) for n in range(AUDIO_ROWS)])
    # Moderation state on the API side: deleted rows must not come back, mature ones are flagged.
    write("api_deletedimage.csv", [{"identifier": ident("image", n)} for n in range(3, IMAGE_ROWS, 50)])
    write("api_deletedaudio.csv", [{"identifier": ident("audio", n)} for n in range(3, AUDIO_ROWS, 50)])
    write("api_matureimage.csv", [{"identifier": ident("image", n)} for n in range(7, IMAGE_ROWS, 60)])
    write("api_matureaudio.csv", [{"identifier": ident("audio", n)} for n in range(7, AUDIO_ROWS, 60)])


if __name__ == "__main__":
    main()
