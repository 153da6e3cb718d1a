"""`queuectl web` on a big queue: the time each page takes with 1,000,000 jobs in the database
against an empty one (issue 12: under 100 ms a page).

The big queue is filled as scripts/bench_list.py fills it (its `fill`: a mix of states, ages,
labels and errors over 30 days, straight into the SQLite file). A real `queuectl web` serves
each queue; every page is fetched REPEAT times over loopback (after one warm-up) and the
median and the slowest are reported, with the ratio of the big queue's median to the empty's.

    .venv/bin/python scripts/bench_web.py
    .venv/bin/python scripts/bench_web.py --jobs 100000 --keep /tmp/big-web   # reuse the queue
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from bench_list import fill

from queuectl.store import open_store

BUDGET = 0.100  # seconds a page may take
PAGES = [
    ("overview", "/"),
    ("jobs", "/jobs"),
    ("jobs, dead, text", "/jobs?state=dead&q=photo-05"),
    ("jobs, deep page", "/jobs?after={cursor}"),
    ("job detail", "/jobs/{job}"),
    ("dlq", "/dlq"),
    ("/metrics", "/metrics"),
    ("/api/status", "/api/status"),
    ("/api/jobs", "/api/jobs?limit=50"),
]


async def _create(home: Path) -> None:
    store = await open_store(home)
    await store.close()


def serve(home: Path) -> tuple[subprocess.Popen[bytes], int]:
    argv = [sys.executable, "-m", "queuectl", "--home", str(home), "web", "--bind", "127.0.0.1:0"]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    match = re.search(r":(\d+)/", line)
    if not match:
        process.kill()
        raise SystemExit(f"queuectl web did not start: {line!r}")
    return process, int(match.group(1))


def fetch(port: int, path: str) -> tuple[int, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        start = time.perf_counter()
        conn.request("GET", path, headers={"Host": f"127.0.0.1:{port}"})
        response = conn.getresponse()
        response.read()
        return response.status, time.perf_counter() - start
    finally:
        conn.close()


def measure(home: Path, repeat: int, job: str, cursor: str) -> dict[str, tuple[float, float]]:
    process, port = serve(home)
    try:
        times = {}
        for name, template in PAGES:
            path = template.format(job=quote(job), cursor=quote(cursor))
            fetch(port, path)  # warm-up: templates compiled, pages of the file cached
            runs = []
            for _ in range(repeat):
                status, took = fetch(port, path)
                if status not in (200, 404):
                    raise SystemExit(f"{path}: HTTP {status}")
                runs.append(took)
            times[name] = (statistics.median(runs), max(runs))
        return times
    finally:
        process.terminate()
        process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--keep", type=Path, help="the big queue's home, reused if it exists")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="qweb"))
    try:
        empty = scratch / "empty"
        asyncio.run(_create(empty))
        big = args.keep or scratch / "big"
        if not (big / "queue.db").exists():
            start = time.perf_counter()
            fill(big, args.jobs)
            print(f"filled {args.jobs:,} jobs in {time.perf_counter() - start:.1f}s", flush=True)
        middle = f"job-{args.jobs // 2:07d}"
        cursor = f"{time.time() - 15 * 86400!r}~{middle}"  # half-way down the listing
        small = measure(empty, args.repeat, "none", cursor)
        large = measure(big, args.repeat, middle, cursor)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print(f"\nserver time per page, median (slowest) of {args.repeat}, over loopback")
    print(f"{'page':<20}{'empty':>18}{f'{args.jobs:,} jobs':>22}{'ratio':>8}")
    over = []
    for name, _ in PAGES:
        (e_med, e_max), (l_med, l_max) = small[name], large[name]
        flag = "" if l_med <= BUDGET else "  over budget"
        if flag:
            over.append(name)
        print(
            f"{name:<20}{e_med * 1000:>9.1f} ({e_max * 1000:5.1f}) ms"
            f"{l_med * 1000:>13.1f} ({l_max * 1000:5.1f}) ms{l_med / e_med:>7.1f}x{flag}"
        )
    print(f"\nbudget {BUDGET * 1000:.0f} ms a page: " + ("met" if not over else f"over: {over}"))


if __name__ == "__main__":
    main()
