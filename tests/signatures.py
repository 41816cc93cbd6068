"""Check a signature from what the API published, as anyone would: with the README's
`check_signature.py`, which imports eth_account and never cairn.

`published_signer` runs the README's script in this interpreter (the check and node tiers start
no process); `published_signer_alone` runs it in a fresh interpreter and checks that it never
imported cairn (tests marked `process`)."""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parents[1] / "README.md"
NO_CAIRN = (
    '\nassert not [m for m in sys.modules if m.split(".")[0] == "cairn"], "it imported cairn"\n'
)


def readme_checker() -> str:
    """The README's ```python block that checks a published signature."""
    blocks = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.S | re.M)
    [found] = [b for b in blocks if b.startswith("# check_signature.py")]
    return str(found)


def published_signer(published: dict[str, Any]) -> str:
    """The address the README's script recovers from `published` (JSON as the API answers it:
    `typed_data` or `signed`, and `signature`), run here with `published` on its stdin."""
    out, stdin = io.StringIO(), sys.stdin
    sys.stdin = io.StringIO(json.dumps(published))
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(readme_checker(), "check_signature.py", "exec"), {"__name__": "__main__"})
    finally:
        sys.stdin = stdin
    return out.getvalue().strip()


def published_signer_alone(published: dict[str, Any]) -> str:
    """`published_signer` in a fresh interpreter (`python -I`), which must never import cairn."""
    done = subprocess.run(
        [sys.executable, "-I", "-c", readme_checker() + NO_CAIRN],
        input=json.dumps(published),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()
