"""What a newcomer's disk pays for the demo community: the data folder's size once seeded.

Runs `cairn demo --json --keep DIR` (the whole story on a fresh anvil chain: accounts, a
dataset, reviews, a LoRA fine-tune of SmolLM2-135M by two provider workers, the economy), then
walks DIR. A file with several names (hard links: one copy per machine) counts once in
`demo_data_bytes`, as the disk holds it, and once per name in `demo_apparent_bytes`, the baseline:
what the same folder would take if every place kept its own copy. The base model's weights (the
float32 Hugging Face folder the node converts its GGUF to) are the unit a reader can picture:
`demo_data_over_base_model` is how many copies of them the folder costs. Also per top-level
folder, and the seeding's wall time.

Prints a table on stderr; the last line of stdout is one JSON object of the figures.

    python bench/demo_disk.py [--quick]   # one seeding either way (a couple of minutes)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

CAIRN = str(Path(sys.executable).with_name("cairn"))


def sizes(folder: Path) -> tuple[int, int, dict[str, int]]:
    """Bytes on disk (each file once, however many names it has), bytes counting every name,
    and bytes on disk by top-level folder (a file in several counts where first met)."""
    seen: set[tuple[int, int]] = set()
    unique = apparent = 0
    by_top: dict[str, int] = defaultdict(int)
    for path in sorted(folder.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        stat = path.stat()
        apparent += stat.st_size
        key = (stat.st_dev, stat.st_ino)
        if key in seen:
            continue
        seen.add(key)
        unique += stat.st_size
        by_top[path.relative_to(folder).parts[0]] += stat.st_size
    return unique, apparent, dict(by_top)


def base_model_bytes(folder: Path) -> int:
    """The node's converted base model weights (the largest safetensors file under models/)."""
    weights = [p.stat().st_size for p in (folder / "models").rglob("*.safetensors")]
    if not weights:
        raise SystemExit(f"no base model weights under {folder / 'models'}")
    return max(weights)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the same single seeding")
    parser.parse_args()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")},
        "OMP_NUM_THREADS": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    with tempfile.TemporaryDirectory(prefix="cairn-demo-disk-") as tmp:
        data_dir = Path(tmp) / "node"
        print("seeding the demo community (cairn demo --keep) ...", file=sys.stderr)
        started = time.monotonic()
        run = subprocess.run(
            [CAIRN, "demo", "--json", "--keep", str(data_dir)],
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
            stdin=subprocess.DEVNULL,
        )
        seconds = time.monotonic() - started
        if run.returncode != 0:
            raise SystemExit(f"cairn demo failed ({run.returncode}):\n{run.stderr[-3000:]}")
        unique, apparent, by_top = sizes(data_dir)
        base = base_model_bytes(data_dir)

    mb = 1e6
    print(f"\n{'folder':<12} {'MB on disk':>12}", file=sys.stderr)
    for name, size in sorted(by_top.items(), key=lambda kv: -kv[1]):
        print(f"{name:<12} {size / mb:>12.1f}", file=sys.stderr)
    print(
        f"\ndata folder: {unique / mb:.1f} MB on disk, {apparent / mb:.1f} MB counting every name"
        f" ({apparent / unique:.2f}x); base model weights {base / mb:.1f} MB "
        f"({unique / base:.2f} copies); seeded in {seconds:.0f} s",
        file=sys.stderr,
    )
    figures = {
        "demo_data_bytes": unique,
        "demo_apparent_bytes": apparent,
        "demo_links_saving": round(apparent / unique, 3),
        "base_model_bytes": base,
        "demo_data_over_base_model": round(unique / base, 3),
        "demo_seed_seconds": round(seconds, 1),
        **{f"demo_bytes_{name}": size for name, size in sorted(by_top.items())},
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
