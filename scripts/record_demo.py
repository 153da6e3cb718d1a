"""`make demo-cast`: record `make demo` (scripts/demo.py) as an asciinema cast, docs/demo.cast.

Non-interactive: asciinema runs the tour in a pseudo-terminal of a fixed size (so tables and
colours come out as on a terminal) and writes the asciicast v2 file; nothing is typed. The
recording is then checked: a cast that lacks the tour's last line (the demo failed, or
asciinema could not start it) is refused, and the previous cast is kept.

    .venv/bin/python scripts/record_demo.py                 # writes docs/demo.cast
    .venv/bin/python scripts/record_demo.py --out x.cast
    asciinema play docs/demo.cast                           # watch it
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "docs" / "demo.cast"
COLS, ROWS = 110, 32
TITLE = "queuectl: a tour (make demo)"
#: the demo's last line; a recording without it is not a whole tour
LAST_LINE = "demo took"
TIMEOUT = 300.0


def asciinema() -> str:
    """The asciinema of this venv (the `record` extra), else one on PATH."""
    here = Path(sys.executable).parent / "asciinema"
    found = str(here) if here.exists() else shutil.which("asciinema")
    if found is None:
        raise SystemExit(
            "record_demo: asciinema is not installed; `make demo-cast` installs it "
            "(pip install -e '.[record]')"
        )
    return found


def record(out: Path) -> None:
    command = shlex.join([sys.executable, str(ROOT / "scripts" / "demo.py")])
    with tempfile.TemporaryDirectory(prefix="queuectl-cast-") as scratch:
        cast = Path(scratch) / "demo.cast"
        env = {**os.environ, "TERM": "xterm-256color", "SHELL": "/bin/sh"}
        env.pop("QUEUECTL_HOME", None)
        result = subprocess.run(
            [
                asciinema(),
                "rec",
                "--quiet",
                "--overwrite",
                "--cols",
                str(COLS),
                "--rows",
                str(ROWS),
                "--idle-time-limit",
                "2",
                "--title",
                TITLE,
                "--command",
                command,
                str(cast),
            ],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        if result.returncode != 0 or not cast.exists():
            raise SystemExit(
                f"record_demo: asciinema exited {result.returncode}: {result.stderr.strip()}"
            )
        check(cast)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cast, out)


def check(cast: Path) -> None:
    """An asciicast v2 file: a JSON header line, then [time, "o", text] events, holding the
    whole tour."""
    lines = cast.read_text().splitlines()
    header = json.loads(lines[0])
    if header.get("version") != 2 or header.get("width") != COLS:
        raise SystemExit(f"record_demo: unexpected cast header {header}")
    text = "".join(json.loads(line)[2] for line in lines[1:] if line)
    if LAST_LINE not in text or "Traceback" in text:
        raise SystemExit(f"record_demo: the recording is not a whole tour:\n{text[-2000:]}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="record scripts/demo.py as an asciinema cast")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    record(args.out)
    size = args.out.stat().st_size
    print(f"record_demo: wrote {args.out} ({size / 1024:.0f} KiB); play: asciinema play {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
