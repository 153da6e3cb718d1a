"""The command line: parse, call the store (or the engine), render.

`main` is the one place where errors become exit codes: a QueuectlError or a usage error is one
line on stderr (exit 2 for bad input, 1 for an operational failure), never a traceback.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import asyncclick as click

from queuectl import __version__, render
from queuectl.errors import BadInput, QueuectlError
from queuectl.models import JobSpec, JobState, parse_duration, parse_job_json, parse_time
from queuectl.settings import (
    CONFIG_KEYS,
    LOCK_NAME,
    LOG_NAME,
    SOCKET_NAME,
    config_key,
    parse_config_value,
    resolve_home,
)
from queuectl.store import Store, open_store

F = TypeVar("F", bound=Callable[..., Any])


def _remember_home(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.meta["queuectl.home"] = value


def home_option(func: F) -> F:
    """--home is accepted on the group and on every command."""
    return click.option(
        "--home",
        metavar="DIR",
        expose_value=False,
        callback=_remember_home,
        is_eager=True,
        help="Queue directory (default: $QUEUECTL_HOME, else $XDG_DATA_HOME/queuectl).",
    )(func)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON only.")(func)


def _home() -> Path:
    return resolve_home(click.get_current_context().meta.get("queuectl.home"))


def _path(name: str) -> Path:
    return _home() / name


@asynccontextmanager
async def queue_store(durable: bool = True) -> AsyncIterator[Store]:
    store = await open_store(_home(), durable=durable)
    try:
        yield store
    finally:
        await store.close()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="queuectl")
@home_option
async def cli() -> None:
    """queuectl: a durable background job queue for shell commands."""


# --- enqueue ----------------------------------------------------------------------------------


@cli.command(context_settings={"ignore_unknown_options": False})
@click.argument("args", nargs=-1)
@click.option("--file", "path", metavar="PATH", help="JSON lines file of jobs ('-' for stdin).")
@click.option("--id", "job_id", help="Job id (default: generated).")
@click.option("--max-retries", type=int, help="Retries after the first attempt.")
@click.option("--priority", type=int, help="Higher runs first (default 0).")
@click.option("--timeout", metavar="DURATION", help="Kill the job after this long (30s, 5m).")
@click.option("--run-at", metavar="ISO", help="Do not start before this time (with timezone).")
@click.option("--delay", metavar="DURATION", help="Do not start before now + DURATION.")
@home_option
async def enqueue(
    args: tuple[str, ...],
    path: str | None,
    job_id: str | None,
    max_retries: int | None,
    priority: int | None,
    timeout: str | None,
    run_at: str | None,
    delay: str | None,
) -> None:
    """Add a job: a JSON object, `-- COMMAND...`, or --file of JSON lines.

    \b
      queuectl enqueue '{"id":"job1","command":"sleep 2","max_retries":3}'
      queuectl enqueue --priority 5 --delay 10m -- ./backup.sh /data
      queuectl enqueue --file jobs.jsonl
    """
    shorthand = {
        "--id": job_id,
        "--max-retries": max_retries,
        "--priority": priority,
        "--timeout": timeout,
        "--run-at": run_at,
        "--delay": delay,
    }
    given = [name for name, value in shorthand.items() if value is not None]
    cwd = os.getcwd()
    if path is not None:
        if args or given:
            raise BadInput("--file takes no command and no job options; put them in the file")
        await _enqueue_file(path, cwd)
        return
    if not args:
        raise BadInput("nothing to enqueue; give a JSON job, `-- COMMAND...` or --file PATH")
    if len(args) == 1 and args[0].lstrip().startswith("{") and not given:
        spec = parse_job_json(args[0], cwd)
    else:
        spec = _shorthand_spec(
            " ".join(args), cwd, job_id, max_retries, priority, timeout, run_at, delay
        )
    async with queue_store() as store:
        [new_id] = await store.enqueue([spec], time.time())
    click.echo(new_id)
    await _wake_engine()


async def _wake_engine() -> None:
    from queuectl.control import try_wake

    await try_wake(_path(SOCKET_NAME))


def _shorthand_spec(
    command: str,
    cwd: str,
    job_id: str | None,
    max_retries: int | None,
    priority: int | None,
    timeout: str | None,
    run_at: str | None,
    delay: str | None,
) -> JobSpec:
    from queuectl.models import spec_from_dict

    if run_at is not None and delay is not None:
        raise BadInput("give --run-at or --delay, not both")
    data: dict[str, Any] = {
        "command": command,
        "id": job_id,
        "max_retries": max_retries,
        "priority": priority or 0,
    }
    if timeout is not None:
        data["timeout"] = parse_duration(timeout)
    spec = spec_from_dict(data, cwd)
    when = (
        parse_time(run_at) if run_at else (time.time() + parse_duration(delay) if delay else None)
    )
    return JobSpec(**{**_fields(spec), "run_at": when})


def _fields(spec: JobSpec) -> dict[str, Any]:
    return {name: getattr(spec, name) for name in JobSpec.__slots__}


async def _enqueue_file(path: str, cwd: str) -> None:
    lines = _read_lines(path)
    specs: list[JobSpec] = []
    line_of: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            spec = parse_job_json(line, cwd)
        except BadInput as exc:
            raise BadInput(f"{path} line {number}: {exc}") from None
        if spec.id is not None:
            if spec.id in line_of:
                raise BadInput(
                    f"{path} line {number}: job id {spec.id!r} already appears on "
                    f"line {line_of[spec.id]}"
                )
            line_of[spec.id] = number
        specs.append(spec)
    if not specs:
        raise BadInput(f"{path} holds no jobs; write one JSON object per line")
    from queuectl.store.sqlite import DuplicateJobId

    async with queue_store() as store:
        try:
            with _progress(len(specs)) as advance:
                await store.enqueue(specs, time.time(), progress=advance)
        except DuplicateJobId as exc:
            raise BadInput(f"{path} line {line_of.get(exc.job_id, '?')}: {exc}") from None
    click.echo(f"enqueued {len(specs)} jobs")
    await _wake_engine()


def _read_lines(path: str) -> list[str]:
    """Lines end at \\n only: JSON strings may hold U+2028 and other characters that
    str.splitlines() would also split on."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as handle:
                data = handle.read()
        return [line.removesuffix("\r") for line in data.decode("utf-8").split("\n")]
    except OSError as exc:
        raise BadInput(f"cannot read {path!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise BadInput(f"{path!r} is not UTF-8 text; write one JSON object per line") from None


class _progress:
    """A rich progress bar on a terminal; nothing when output goes to a file or pipe."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.bar: Any = None

    def __enter__(self) -> Callable[[int], None] | None:
        if not sys.stdout.isatty() or self.total < 10_000:
            return None
        from rich.progress import Progress

        self.bar = Progress(transient=True)
        self.bar.start()
        task = self.bar.add_task("enqueueing", total=self.total)
        return lambda n: self.bar.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


# --- inspecting -------------------------------------------------------------------------------


@cli.command()
@json_option
@home_option
async def status(as_json: bool) -> None:
    """Jobs per state, and the running engine with its jobs."""
    async with queue_store() as store:
        counts = await store.counts()
    engine = await _engine_status()
    if as_json:
        render.print_json({"counts": {s.value: n for s, n in counts.items()}, "engine": engine})
    else:
        render.status(counts, engine)


async def _engine_status() -> dict[str, Any]:
    """The live engine's own report, or what the lock file tells when it does not answer."""
    from queuectl.control import ControlError, NoEngine, call
    from queuectl.lock import holder

    try:
        return {"running": True, **await call(_path(SOCKET_NAME), "status", timeout=3.0)}
    except NoEngine:
        pid = holder(_path(LOCK_NAME))
        return {
            "running": pid is not None,
            "pid": pid,
            **({"error": "not answering on the control socket"} if pid else {}),
        }
    except ControlError as exc:
        return {"running": True, "pid": None, "error": str(exc)}


@cli.command(name="list")
@click.option("--state", help="Only jobs in this state.")
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=50, show_default=True)
@json_option
@home_option
async def list_(state: str | None, limit: int, as_json: bool) -> None:
    """Jobs, newest first."""
    wanted = JobState.parse(state) if state else None
    async with queue_store() as store:
        jobs = await store.list_jobs(wanted, limit)
    if as_json:
        render.print_json([render.job_dict(job) for job in jobs])
    else:
        render.jobs_table(jobs)


@cli.command()
@click.argument("job_id")
@json_option
@home_option
async def show(job_id: str, as_json: bool) -> None:
    """Every field of a job, and its attempts."""
    async with queue_store() as store:
        job = await store.get(job_id)
        attempts = await store.attempts(job_id)
    if as_json:
        render.print_json(
            {**render.job_dict(job), "history": [render.attempt_dict(a) for a in attempts]}
        )
    else:
        render.job_detail(job, attempts)


# --- the dead letter queue --------------------------------------------------------------------


@cli.group()
@home_option
async def dlq() -> None:
    """The dead letter queue: jobs whose retries are spent."""


@dlq.command(name="list")
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=50, show_default=True)
@json_option
@home_option
async def dlq_list(limit: int, as_json: bool) -> None:
    """Dead jobs, newest first."""
    async with queue_store() as store:
        jobs = await store.list_jobs(JobState.DEAD, limit)
    if as_json:
        render.print_json([render.job_dict(job) for job in jobs])
    else:
        render.jobs_table(jobs, title="dead letter queue")


@dlq.command(name="retry")
@click.argument("job_ids", nargs=-1)
@click.option("--all", "retry_all", is_flag=True, help="Retry every dead job.")
@home_option
async def dlq_retry(job_ids: tuple[str, ...], retry_all: bool) -> None:
    """Send dead jobs back to pending, with attempts reset and history kept."""
    if retry_all == bool(job_ids):
        raise BadInput("give the ids of dead jobs to retry, or --all (not both)")
    async with queue_store() as store:
        retried = await store.retry_dead(None if retry_all else job_ids, time.time())
    click.echo(f"retried {len(retried)} job{'s' if len(retried) != 1 else ''}")
    await _wake_engine()


# --- configuration ----------------------------------------------------------------------------


@cli.group()
@home_option
async def config() -> None:
    """Settings stored in the queue, seen by every process that uses it."""


@config.command(name="set", context_settings={"ignore_unknown_options": True})
@click.argument("key")
@click.argument("value")
@home_option
async def config_set(key: str, value: str) -> None:
    """Set KEY to VALUE (checked by type and range)."""
    parsed = parse_config_value(key, value)
    async with queue_store() as store:
        await store.set_config(key, parsed)
    click.echo(f"{key} = {render.format_value(parsed)}")


@config.command(name="get")
@click.argument("key")
@json_option
@home_option
async def config_get(key: str, as_json: bool) -> None:
    """Print the value of KEY."""
    config_key(key)
    async with queue_store() as store:
        value = (await store.config())[key]
    if as_json:
        render.print_json({key: value})
    else:
        click.echo(render.format_value(value))


@config.command(name="list")
@json_option
@home_option
async def config_list(as_json: bool) -> None:
    """Every key with its value and meaning."""
    async with queue_store() as store:
        values = await store.config()
    if as_json:
        render.print_json(values)
    else:
        render.config_table(values, {name: key.help for name, key in CONFIG_KEYS.items()})


# --- the engine -------------------------------------------------------------------------------


@cli.group()
@home_option
async def worker() -> None:
    """Run the engine that executes jobs."""


@worker.command(name="start")
@click.option(
    "-c",
    "--concurrency",
    "--count",
    "concurrency",
    type=click.IntRange(1, 1024),
    help="Jobs run at once (default: config key concurrency).",
)
@click.option(
    "--until-empty",
    is_flag=True,
    help="Exit when nothing is running, runnable, or waiting for a retry.",
)
@click.option("-q", "--quiet", is_flag=True, help="Print only failures.")
@click.option(
    "--loop",
    type=click.Choice(["asyncio", "uvloop"]),
    default="asyncio",
    show_default=True,
    help="Event loop implementation.",
)
@click.option(
    "-d",
    "--detach",
    is_flag=True,
    help="Run in the background (log in the queue's engine.log); print its pid.",
)
@home_option
async def worker_start(
    concurrency: int | None, until_empty: bool, quiet: bool, loop: str, detach: bool
) -> Callable[[], int] | None:
    """Start the engine (Ctrl-C: finish running jobs; twice: kill them)."""
    from queuectl.worker import WorkerOptions, run_worker

    options = WorkerOptions(_home(), concurrency, until_empty, quiet, loop)
    if detach:
        from queuectl.daemon import start_detached

        pid = await start_detached(options, _path(LOG_NAME), _path(SOCKET_NAME))
        click.echo(f"engine started in the background (pid {pid}); log: {_path(LOG_NAME)}")
        return None
    # The engine needs its own event loop (uvloop or asyncio), so it runs after the CLI's
    # loop has closed: main() calls what this returns.
    return lambda: run_worker(options)


@worker.command(name="stop")
@click.option(
    "--timeout",
    metavar="DURATION",
    help="Kill jobs still running after this long; they go back to pending.",
)
@click.option("--now", is_flag=True, help="Kill running jobs at once; they go back to pending.")
@home_option
async def worker_stop(timeout: str | None, now: bool) -> None:
    """Stop the engine: running jobs finish first unless --timeout or --now."""
    from queuectl.lock import alive, holder

    after = parse_duration(timeout) if timeout is not None else None
    reply = await _engine_call("stop", kill_after=after, now=now)
    pid = reply.get("pid") or holder(_path(LOCK_NAME))
    running = reply["running"]
    if running and not now:
        limit = f"; killing them after {render.duration(after)}" if after is not None else ""
        click.echo(
            f"stopping engine (pid {pid}): waiting for {running} running "
            f"job{'s' if running != 1 else ''} to finish{limit}"
        )
    # The lock goes before the process has finished exiting: wait for both.
    while holder(_path(LOCK_NAME)) is not None or (pid and alive(pid)):
        await asyncio.sleep(0.05)
    click.echo(f"engine (pid {pid}) stopped")


@worker.command(name="scale")
@click.argument("concurrency", type=click.IntRange(1, 1024))
@home_option
async def worker_scale(concurrency: int) -> None:
    """Change the running engine's concurrency without a restart."""
    await _engine_call("scale", concurrency=concurrency)
    click.echo(f"concurrency = {concurrency}")


@cli.command()
@home_option
async def pause() -> None:
    """The engine stops starting jobs; running jobs go on."""
    await _engine_call("pause")
    click.echo("engine paused: no new jobs start until `queuectl resume`")


@cli.command()
@home_option
async def resume() -> None:
    """The engine starts jobs again."""
    await _engine_call("resume")
    click.echo("engine resumed")


async def _engine_call(op: str, **args: Any) -> dict[str, Any]:
    from queuectl.control import ControlClient

    client = await ControlClient.connect(_path(SOCKET_NAME))
    reply = await client.request(op, **args)
    return {"pid": client.engine_pid, **reply}


@cli.command()
@click.argument("job_id")
@home_option
async def cancel(job_id: str) -> None:
    """Cancel a job: a waiting one at once, a running one by killing its process group."""
    from queuectl.control import ControlError

    async with queue_store() as store:
        job = await store.cancel(job_id, time.time())
        if job.state is JobState.PROCESSING:
            try:
                await _engine_call("cancel", id=job_id)
            except ControlError as exc:
                raise QueuectlError(
                    f"job {job_id!r} is running but its engine cannot be asked to cancel it: {exc}"
                ) from None
            config = await store.config()
            deadline = time.monotonic() + config["kill-grace"] + 10
            while job.state is JobState.PROCESSING and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                job = await store.get(job_id)
    if job.state is not JobState.CANCELED:
        raise BadInput(
            f"job {job_id!r} is {job.state.value}; only pending, failed or running "
            "jobs can be canceled"
        )
    click.echo(f"canceled {job_id}")


@cli.command()
@click.argument("job_id")
@click.option("--attempt", type=click.IntRange(1), help="Which run (default: the latest).")
@click.option(
    "-f", "--follow", is_flag=True, help="Stream a running job's output live until it ends."
)
@home_option
async def logs(job_id: str, attempt: int | None, follow: bool) -> None:
    """Print a job's captured stdout and stderr."""
    if follow and attempt is not None:
        raise BadInput("--follow shows the running attempt; drop --attempt")
    async with queue_store() as store:
        if follow and await _follow(store, job_id):
            return
        attempts = await store.attempts(job_id)
    if not attempts:
        raise BadInput(f"job {job_id!r} has not run yet; see `queuectl show {job_id}`")
    if attempt is None:
        chosen = attempts[-1]
    else:
        found = [a for a in attempts if a.run == attempt]
        if not found:
            raise BadInput(
                f"job {job_id!r} has no attempt {attempt}; it has run "
                f"{len(attempts)} time{'s' if len(attempts) != 1 else ''}"
            )
        chosen = found[0]
    for data, truncated, stream in (
        (chosen.stdout, chosen.stdout_truncated, sys.stdout),
        (chosen.stderr, chosen.stderr_truncated, sys.stderr),
    ):
        if truncated:
            _write(stream, b"[... earlier output truncated ...]\n")
        _write(stream, data)


async def _follow(store: Store, job_id: str) -> bool:
    """Stream the job's output while it runs; False when it is not running (anymore)."""
    from queuectl.control import ControlClient, ControlError

    job = await store.get(job_id)
    while job.state is JobState.PENDING and job.runs == 0:  # wait for its first run
        await asyncio.sleep(0.1)
        job = await store.get(job_id)
    if job.state is not JobState.PROCESSING:
        return False
    try:
        client = await ControlClient.connect(_path(SOCKET_NAME))
        async for reply in client.stream("follow", id=job_id):
            if "stream" in reply:
                _write(
                    sys.stdout if reply["stream"] == "stdout" else sys.stderr,
                    reply["data"].encode("utf-8", "surrogateescape"),
                )
            elif reply.get("overflowed"):
                raise QueuectlError(
                    "fell too far behind the job's output; run `queuectl "
                    f"logs {job_id}` for the stored tail"
                )
    except ControlError:
        return False  # it ended between our look and the engine's: show what was stored
    return True


def _write(stream: Any, data: bytes) -> None:
    stream.flush()
    stream.buffer.write(data)
    stream.flush()


# --- entry point ------------------------------------------------------------------------------


def fail(message: str, code: int) -> None:
    sys.stderr.write(f"queuectl: error: {message}\n")
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        code = asyncio.run(cli.main(args, prog_name="queuectl", standalone_mode=False))
        if callable(code):  # a command that must run outside the CLI's event loop
            code = code()
    except QueuectlError as exc:
        fail(str(exc), exc.exit_code)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else "see `queuectl --help`")
        sys.exit(2)
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "queuectl"
        fail(f"{exc.format_message().rstrip('.')}; see `{where} --help`", 2)
    except click.ClickException as exc:
        fail(exc.format_message(), exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except (click.Abort, KeyboardInterrupt):
        fail("interrupted", 130)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(1)
    if isinstance(code, int) and code:
        sys.exit(code)
