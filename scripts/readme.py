"""`make readme`: run the README's examples on a throw-away queue and write their real output
into README.md, so that the examples cannot drift from the code.

    .venv/bin/python scripts/readme.py            # rewrite the generated blocks of README.md
    .venv/bin/python scripts/readme.py --check    # exit 1, naming each stale block

README.md holds one block per scene of readme_scenes.SCENES, between markers:

    <!-- example: NAME (generated: edit scripts/readme_scenes.py, run make readme) -->
    ```console
    $ queuectl ...
    what it printed
    ```
    <!-- /example -->

The scenes run in order on one queue, each command through `sh -c` with the real `queuectl`
on PATH (this interpreter's), stdout and stderr merged in the order they were written. What
differs from run to run is then replaced by fixed text (see normalise): clock times,
durations, pids, engine ids and generated job ids, and the temp paths (shown as the default
queue home, ~/.local/share/queuectl, and a project directory, ~/project).
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path

from readme_scenes import SCENES, Step

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
STEP_TIMEOUT = 120.0

BLOCK = re.compile(
    r"(?P<open><!-- example: (?P<name>[\w-]+)[^\n]*-->\n)(?P<body>.*?)(?P<close><!-- /example -->)",
    re.S,
)
OPEN_MARK = "<!-- example: {name} (generated: edit scripts/readme_scenes.py, run make readme) -->\n"


class ReadmeError(Exception):
    """A scene could not be run as written, or the README's markers do not match the scenes."""


# --- running the scenes -----------------------------------------------------------------------


class Session:
    """The throw-away queue, a project directory to run commands in, and `queuectl` on PATH."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.work = root / "project"
        self.bin = root / "bin"
        self.work.mkdir()
        self.bin.mkdir()
        wrapper = self.bin / "queuectl"
        wrapper.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m queuectl "$@"\n')
        wrapper.chmod(0o755)
        self.env = {
            "PATH": f"{self.bin}{os.pathsep}/usr/local/bin:/usr/bin:/bin",
            "HOME": str(root),
            "QUEUECTL_HOME": str(self.home),
            "PYTHONUNBUFFERED": "1",  # stdout and stderr reach the pipe in the order written
            "PYTHONDONTWRITEBYTECODE": "1",
            "LC_ALL": "C.UTF-8",
            "TZ": "UTC",
            "COLUMNS": "100",
        }
        if "PYTHONPATH" in os.environ:
            self.env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        self.ids: dict[str, str] = {}  # generated job id -> its stand-in, in order of appearance

    def run(self, step: Step) -> str:
        result = subprocess.run(
            ["/bin/sh", "-c", step.line],
            cwd=self.work,
            env=self.env,
            input=step.input,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=STEP_TIMEOUT,
            check=False,
        )
        if step.code is not None and result.returncode != step.code:
            raise ReadmeError(
                f"`{step.line}` exited {result.returncode}, expected {step.code}:\n{result.stdout}"
            )
        return result.stdout

    def stop_engine(self) -> None:
        """A scene that failed may leave a detached engine running: stop it, silently."""
        subprocess.run(
            ["/bin/sh", "-c", "queuectl worker stop --now"],
            cwd=self.work,
            env=self.env,
            capture_output=True,
            timeout=STEP_TIMEOUT,
            check=False,
        )


@contextmanager
def session() -> Iterator[Session]:
    root = Path(tempfile.mkdtemp(prefix="queuectl-readme-", dir="/tmp"))
    try:
        yield (made := Session(root))
    finally:
        if "made" in locals():
            made.stop_engine()
        shutil.rmtree(root, ignore_errors=True)


def render_scenes(names: Sequence[str] | None = None) -> dict[str, str]:
    """Every scene's block body (a ```console fence), run in order on one fresh queue."""
    bodies: dict[str, str] = {}
    with session() as s:
        for name, steps in SCENES.items():
            lines: list[str] = []
            for step in steps:
                output = normalise(s.run(step), s)
                if step.shown:
                    lines.append(f"$ {step.line}")
                    lines.extend(line.rstrip() for line in output.splitlines())
            if names is None or name in names:
                bodies[name] = "```console\n" + "\n".join(lines) + "\n```\n"
    return bodies


# --- what varies from run to run --------------------------------------------------------------

#: a job id queuectl generated: 12 of its base32 characters, at least one a digit
GENERATED_ID = re.compile(r"\b(?=[a-z]*\d)[0-9abcdefghjkmnpqrstvwxyz]{12}\b")
ENGINE_ID = re.compile(r"\b[\w.-]+:\d+:[0-9a-f]{6}\b")
ISO_TIME = re.compile(r"\b(\d{4}-\d\d-\d\d)T\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")
LOCAL_TIME = re.compile(r"\b(\d{4}-\d\d-\d\d) \d\d:\d\d:\d\d\b")
#: a time of today, as listings show it (not one that follows a date: see LOCAL_TIME)
CLOCK = re.compile(r"(?<![\d-][ T])\b\d\d:\d\d:\d\d\b")
PID = re.compile(r"(?<![\w-])(pid |\"pid\": |process group )\d+")
#: how long something took, in a sentence ("completed in 12ms", "failed after 3.1s", "up 2m05s")
DURATION = re.compile(r"\b(completed in|after|up|mean|p95) (\d+ms|\d+\.\ds|\d+m\d\ds)\b")
JSON_SECONDS = re.compile(r'("(?:uptime|elapsed|duration)": )\d+(\.\d+)?(e-?\d+)?')


def _due(cell: str) -> str:
    """A job due a moment ago (its `enqueue` ran a second or more before the listing, on a
    slow machine) is shown as one due now."""
    return "now" if cell.endswith(" ago") else cell


#: table columns whose values vary: (header with the column as group `col`, the value for each
#: row's cell or a function of it, the width or None to keep the column as wide as it is: as
#: wide as its header, unless a value was wider)
COLUMNS: tuple[tuple[re.Pattern[str], str | Callable[[str], str], int | None], ...] = (
    # `status`: the running jobs; the PID column is as wide as the widest pid
    (re.compile(r"^ *ID +ATTEMPT +(?P<col>ELAPSED +)PID "), "1.5s", None),
    (re.compile(r"^ *ID +ATTEMPT +ELAPSED +(?P<col>PID +)COMMAND"), "4242", 7),
    # `show`: the attempts
    (re.compile(r"^ *RUN +STARTED +(?P<col>DURATION +)EXIT"), "5ms", None),
    # `list`
    (re.compile(r"^ *ID +.*(?P<col>NEXT RUN +)"), _due, None),
)


def duration_stand_in(shown: str) -> str:
    """One fixed duration of each of render.duration's spellings (12ms, 3.1s, 2m05s)."""
    if shown.endswith("ms"):
        return "5ms"
    return "1m30s" if "m" in shown else "1.5s"


def recent(day: str) -> bool:
    """Whether a date is within two days of today: then it is the run's, not an example's."""
    return abs((date.fromisoformat(day) - date.today()).days) <= 2


def fix_column(
    text: str, header: re.Pattern[str], value: str | Callable[[str], str], width: int | None
) -> str:
    """Every row under `header` gets `value` (or value(its cell)) in the header's column,
    `width` wide."""
    lines = text.split("\n")
    for index, line in enumerate(lines):
        found = header.match(line)
        if found is None:
            continue
        start, end = found.span("col")
        wide = end - start if width is None else width
        name = found.group("col").rstrip()
        lines[index] = line[:start] + name.ljust(wide) + line[end:]
        for row in range(index + 1, len(lines)):
            if not lines[row].strip():
                break
            cell = lines[row][start:end].strip()
            new = value if isinstance(value, str) else value(cell)
            lines[row] = lines[row][:start] + new.ljust(wide) + lines[row][end:]
    return "\n".join(lines)


def normalise(text: str, s: Session) -> str:
    for path, shown in (
        (s.home, "~/.local/share/queuectl"),
        (s.work, "~/project"),
        (s.root, "~"),
    ):
        text = text.replace(str(path), shown)
    for header, value, width in COLUMNS:
        text = fix_column(text, header, value, width)

    def stand_in(match: re.Match[str]) -> str:
        return s.ids.setdefault(match.group(), f"j{len(s.ids) + 1:011d}")

    def iso(match: re.Match[str]) -> str:
        if not recent(match.group(1)):
            return match.group()
        return "2026-01-01T12:00:00" + (".000" if match.group(2) else "") + match.group(3)

    text = GENERATED_ID.sub(stand_in, text)
    text = ENGINE_ID.sub("host:4242:1f2e3d", text)
    text = ISO_TIME.sub(iso, text)
    text = LOCAL_TIME.sub(
        lambda m: "2026-01-01 12:00:00" if recent(m.group(1)) else m.group(), text
    )
    text = CLOCK.sub("12:00:00", text)
    text = PID.sub(lambda m: m.group(1) + "4242", text)
    text = DURATION.sub(lambda m: f"{m.group(1)} {duration_stand_in(m.group(2))}", text)
    return JSON_SECONDS.sub(lambda m: m.group(1) + "0.005", text)


# --- README.md --------------------------------------------------------------------------------


def blocks(text: str) -> dict[str, re.Match[str]]:
    found: dict[str, re.Match[str]] = {}
    for match in BLOCK.finditer(text):
        if match.group("name") in found:
            raise ReadmeError(f"README.md has two blocks named {match.group('name')!r}")
        found[match.group("name")] = match
    missing = set(SCENES) - set(found)
    unknown = set(found) - set(SCENES)
    if missing or unknown:
        raise ReadmeError(
            f"README.md's example blocks and scripts/readme_scenes.py disagree: "
            f"no block for {sorted(missing)}; no scene for {sorted(unknown)}"
        )
    return found


def rewrite(text: str, bodies: dict[str, str]) -> str:
    def body(match: re.Match[str]) -> str:
        name = match.group("name")
        return (
            OPEN_MARK.format(name=name)
            + bodies.get(name, match.group("body"))
            + "<!-- /example -->"
        )

    return BLOCK.sub(body, text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a block is stale")
    parser.add_argument("--readme", type=Path, default=README, help="the file (README.md)")
    args = parser.parse_args(argv)
    text = args.readme.read_text()
    try:
        found = blocks(text)
        new = rewrite(text, render_scenes())
    except (ReadmeError, subprocess.TimeoutExpired) as exc:
        sys.stderr.write(f"readme: {exc}\n")
        return 2
    if new == text:
        print(f"readme: {len(found)} example blocks are up to date")
        return 0
    if args.check:
        stale = [
            name for name, match in blocks(new).items() if match.group() != found[name].group()
        ]
        sys.stdout.writelines(
            difflib.unified_diff(
                text.splitlines(keepends=True),
                new.splitlines(keepends=True),
                "README.md",
                "generated",
            )
        )
        sys.stderr.write(
            f"readme: stale example blocks: {', '.join(stale)}; run `make readme` to regenerate\n"
        )
        return 1
    args.readme.write_text(new)
    print(f"readme: rewrote {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
