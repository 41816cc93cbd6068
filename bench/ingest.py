"""Contribution ingest throughput: signed uploads through the whole pipeline, into the index, anchored.

Synthetic instruction records in uploads of 1,000, with about 5 % exact and 5 % near duplicates
and some personal data, go through signature check, validation, dedup (exact and MinHash LSH),
PII redaction, the SQLite index and one anchoring transaction on the in-process chain. The
floor, measured in the same run, is JSON parsing plus sha2-256 of the same lines. Prints records
per second, the ratio to the floor, and near-duplicate recall and precision on the planted pairs;
the last line is one JSON object of the figures.

    python bench/ingest.py [--quick]        # --quick: 10,000 records; default 100,000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from cairn.core.data_policy import DatasetSpec
from cairn.data.contributions import StoredVerdict
from cairn.data.signing import records_root, sign_contribution
from cairn.node import open_node

UPLOAD = 1_000


def vocabulary(rng: random.Random, size: int = 20_000) -> list[str]:
    """Pronounceable fake words, so synthetic texts share few shingles by chance."""
    consonants, vowels = "bcdfghjklmnprstvwz", "aeiou"
    words: set[str] = set()
    while len(words) < size:
        n = rng.randint(2, 4)
        words.add("".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(n)))
    return sorted(words)


def synthesize(n: int, seed: int = 7) -> tuple[list[str], dict[int, int]]:
    """`n` JSONL lines; returns the lines and {index of a planted near-duplicate: index of its original}."""
    rng = random.Random(seed)
    words = vocabulary(rng)
    originals: list[dict[str, str]] = []
    lines: list[str] = []
    near: dict[int, int] = {}
    source: list[int] = []  # line index of each original
    for i in range(n):
        roll = rng.random()
        if roll < 0.05 and originals:  # an exact copy of an earlier record
            lines.append(lines[rng.choice(source)])
            continue
        if roll < 0.10 and originals:  # a near copy: one word of ~45 replaced
            k = rng.randrange(len(originals))
            record = dict(originals[k])
            tokens = record["response"].split()
            tokens[rng.randrange(len(tokens))] = rng.choice(words)
            record["response"] = " ".join(tokens)
            near[i] = source[k]
            lines.append(json.dumps(record))
            continue
        prompt = " ".join(rng.choice(words) for _ in range(rng.randint(10, 16)))
        response = " ".join(rng.choice(words) for _ in range(rng.randint(30, 45)))
        if roll < 0.11:
            response += f" Write to {rng.choice(words)}.{rng.choice(words)}@example.org or call +44 20 7946 {rng.randint(1000, 9999)}."
        record = {"prompt": prompt.capitalize() + "?", "response": response.capitalize() + "."}
        originals.append(record)
        source.append(i)
        lines.append(json.dumps(record))
    return lines, near


def floor_rate(lines: list[str]) -> float:
    """Records per second of JSON parsing plus sha2-256: the least any ingest must do."""
    started = time.perf_counter()
    for line in lines:
        json.loads(line)
        hashlib.sha256(line.encode()).digest()
    return len(lines) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 records instead of 100,000")
    parser.add_argument("--records", type=int, default=None)
    args = parser.parse_args()
    total = args.records or (10_000 if args.quick else 100_000)

    lines, planted = synthesize(total)
    floor = max(floor_rate(lines) for _ in range(3))
    with tempfile.TemporaryDirectory() as tmp:
        node = open_node(Path(tmp) / "node", chain="memory", dev=True, port=1)
        try:
            owner = node.signers.get(node.keystore.find_by_label("alice").address)
            contributor = node.signers.get(node.keystore.find_by_label("bob").address)
            spec = DatasetSpec.model_validate(
                {
                    "task": {"type": "instruction"},
                    "review": {"review_share": 0.0},
                    "validation": {"max_records_per_upload": UPLOAD},
                    "anchoring": {"every_records": 10 * total, "every_seconds": 10**6},
                }
            )
            dataset = node.data.datasets.create(
                owner, name="Bench", licence="CC0-1.0", spec=spec
            ).asset_id
            uploads = []
            for n, start in enumerate(range(0, total, UPLOAD)):  # the contributors' side, not timed
                chunk = lines[start : start + UPLOAD]
                typed = node.data.contributions.typed_data(dataset, records_root(chunk), n)
                uploads.append((n, sign_contribution(contributor, typed), chunk))

            verdicts: list[StoredVerdict] = []
            started = time.perf_counter()
            for nonce, signature, chunk in uploads:
                result = node.data.contributions.contribute(
                    dataset,
                    contributor=contributor.address,
                    nonce=nonce,
                    signature=signature,
                    lines=chunk,
                )
                verdicts.extend(result.verdicts)
            ingest_seconds = time.perf_counter() - started
            anchor_started = time.perf_counter()
            batch = node.data.anchoring.anchor(dataset)
            anchor_seconds = time.perf_counter() - anchor_started
            seconds = time.perf_counter() - started
        finally:
            node.close()

    assert batch is not None
    flagged = {i for i, v in enumerate(verdicts) if v.code == "near_duplicate"}
    planted_set = set(planted)
    true_hits = len(flagged & planted_set)
    recall = true_hits / len(planted_set) if planted_set else 1.0
    precision = true_hits / len(flagged) if flagged else 1.0
    codes: dict[str, int] = {}
    for v in verdicts:
        codes[v.code] = codes.get(v.code, 0) + 1
    rate = total / seconds
    figures = {
        "records": total,
        "upload_size": UPLOAD,
        "records_per_second": round(rate, 1),
        "ingest_records_per_second": round(total / ingest_seconds, 1),
        "anchor_seconds": round(anchor_seconds, 3),
        "anchored_records": batch.count,
        "floor_records_per_second": round(floor, 1),
        "ratio_to_floor": round(rate / floor, 4),
        "near_dup_planted": len(planted_set),
        "near_dup_recall": round(recall, 4),
        "near_dup_precision": round(precision, 4),
        "verdicts": codes,
        "pii_records": sum(1 for v in verdicts if v.pii),
    }
    for key, value in figures.items():
        print(f"{key:>28}: {value}", file=sys.stderr)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
