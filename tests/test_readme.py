"""The README's example outputs are the real output of today's code.

scripts/readme.py runs every example (scripts/readme_scenes.py) on a throw-away queue; in
--check mode it exits 1 naming each block of README.md that differs from what the code prints
now. The slow test runs it once on a copy of the README with one block spoiled, which shows
both that every other block is current and that a stale one is caught. The fast tests pin the
normalisation that makes a run's output comparable with the last one.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import readme  # noqa: E402  (scripts/ is not a package)
from readme_scenes import SCENES  # noqa: E402


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_readme_blocks_are_current_and_a_stale_one_is_caught(tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text()
    spoiled_name = "enqueue"
    found = readme.blocks(text)
    body = found[spoiled_name].group("body")
    assert body.startswith("```console\n$ queuectl ")
    copy = tmp_path / "README.md"
    copy.write_text(text.replace(body, body.replace("$ queuectl", "$ queuectl-old", 1), 1))

    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "readme.py"), "--check", "--readme", str(copy)],
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert result.returncode == 1, result.stderr
    stale = re.search(r"stale example blocks: (.*); run", result.stderr)
    assert stale is not None, result.stderr
    others = set(stale.group(1).split(", ")) - {spoiled_name}
    assert not others, (
        f"README.md's examples {sorted(others)} no longer match the code's output: run "
        f"`make readme` and review the diff\n{result.stdout}"
    )
    assert spoiled_name in stale.group(1)
    assert "-$ queuectl-old" in result.stdout  # the diff shows the spoiled line going
    assert copy.read_text().count("queuectl-old") == 1, "--check must not write the file"


def test_every_scene_has_one_block_in_the_readme() -> None:
    assert set(readme.blocks((ROOT / "README.md").read_text())) == set(SCENES)


def test_blocks_refuses_missing_and_unknown_markers() -> None:
    text = "".join(f"<!-- example: {name} -->\n<!-- /example -->\n" for name in SCENES)
    assert set(readme.blocks(text)) == set(SCENES)
    first = next(iter(SCENES))
    with pytest.raises(readme.ReadmeError, match=first):
        readme.blocks(text.replace(f"<!-- example: {first} -->\n<!-- /example -->\n", ""))
    with pytest.raises(readme.ReadmeError, match="surplus"):
        readme.blocks(text + "<!-- example: surplus -->\n<!-- /example -->\n")


def test_rewrite_replaces_only_the_bodies() -> None:
    text = "intro\n<!-- example: a -->\nold\n<!-- /example -->\noutro\n"
    new = readme.rewrite(text, {"a": "```console\n$ queuectl status\n```\n"})
    assert new.startswith("intro\n<!-- example: a (generated") and new.endswith("outro\n")
    assert "old" not in new and "$ queuectl status" in new
    assert readme.rewrite(new, {"a": "```console\n$ queuectl status\n```\n"}) == new


def fake_session(tmp_path: Path) -> SimpleNamespace:
    return SimpleNamespace(root=tmp_path, home=tmp_path / "home", work=tmp_path / "project", ids={})


def test_normalise_fixes_what_varies_and_keeps_what_does_not(tmp_path: Path) -> None:
    from datetime import date

    today = date.today().isoformat()
    s = fake_session(tmp_path)
    raw = (
        f"09:14:45 engine vm:8128:6cf15d started: 4 workers, queue {s.home}/queue.db\n"
        "09:14:45 b failed after 13ms: exit code 3; retry 1/1 at 09:14:47\n"
        f'"pid": 13294, "started_at": "{today}T09:17:41.135+00:00", "uptime": 2.0577,\n'
        '"run_at": "2030-01-01T00:00:00.000+00:00"\n'
        "run at      2030-01-01 00:00:00\n"
        "use seconds, like 90, 30s, 1h30m, 2d or 250ms; next run in 1h59m\n"
        f"cwd {s.work}; job ta21d0tnsh5h\n"
    )
    assert readme.normalise(raw, s).splitlines() == [
        "12:00:00 engine host:4242:1f2e3d started: 4 workers, queue "
        "~/.local/share/queuectl/queue.db",
        "12:00:00 b failed after 5ms: exit code 3; retry 1/1 at 12:00:00",
        '"pid": 4242, "started_at": "2026-01-01T12:00:00.000+00:00", "uptime": 0.005,',
        '"run_at": "2030-01-01T00:00:00.000+00:00"',  # a time the example gave stays
        "run at      2030-01-01 00:00:00",
        "use seconds, like 90, 30s, 1h30m, 2d or 250ms; next run in 1h59m",
        "cwd ~/project; job j00000000001",
    ]


def test_normalise_keeps_tables_aligned(tmp_path: Path) -> None:
    s = fake_session(tmp_path)
    for pid, elapsed in (("987", "12ms"), ("4194303", "1.2s")):
        width = max(3, len(pid))
        raw = (
            "running\n"
            f" ID      ATTEMPT  ELAPSED  {'PID'.ljust(width)}  COMMAND\n"
            f" render  1        {elapsed.ljust(7)}  {pid.ljust(width)}  sleep 3\n"
        )
        assert readme.normalise(raw, s).splitlines() == [
            "running",
            " ID      ATTEMPT  ELAPSED  PID    COMMAND",
            " render  1        1.5s     4242   sleep 3",
        ]


def test_the_recorded_demo_is_linked_and_tells_the_truth() -> None:
    """docs/demo.cast (scripts/record_demo.py) is an asciicast v2 recording of the whole tour,
    in which the DLQ job runs again after its cause is fixed and then completes."""
    import json

    cast = ROOT / "docs" / "demo.cast"
    assert "(docs/demo.cast)" in (ROOT / "README.md").read_text()
    lines = cast.read_text().splitlines()
    header = json.loads(lines[0])
    assert header["version"] == 2 and header["width"] >= 80
    events = [json.loads(line) for line in lines[1:]]
    assert all(kind == "o" for _time, kind, _text in events)
    times = [time for time, _kind, _text in events]
    assert times == sorted(times)
    text = "".join(out for _time, _kind, out in events).replace("\r\n", "\n")
    retry = text.index("$ queuectl dlq retry flaky")
    assert "flaky completed" in text[retry:]
    assert "demo took" in text and "Traceback" not in text


def test_normalise_shows_a_job_due_a_moment_ago_as_due_now(tmp_path: Path) -> None:
    s = fake_session(tmp_path)
    raw = (
        "ID     STATE    NEXT RUN  COMMAND\n"
        "b      pending  1.2s ago  true\n"
        "a      pending  now       true\n"
        "c      pending  in 1h59m  true\n"
    )
    assert readme.normalise(raw, s).splitlines() == [
        "ID     STATE    NEXT RUN  COMMAND",
        "b      pending  now       true",
        "a      pending  now       true",
        "c      pending  in 1h59m  true",
    ]
