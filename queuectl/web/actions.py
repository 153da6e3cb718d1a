"""The dashboard's actions: POST only (the security middleware has checked the CSRF token and
the origin before any of these runs). Each calls the service function that the CLI's command
of the same name calls, then redirects back (303) with a one-line note of what was done; a
refusal (bad input, a job in the wrong state) is shown as the CLI would say it, and changes
nothing.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from aiohttp import web
from multidict import MultiDictProxy

from queuectl import service
from queuectl.errors import BadInput, QueuectlError
from queuectl.models import JobSpec
from queuectl.service import dashboard, manage
from queuectl.specs import Shorthand, shorthand_spec
from queuectl.web.app import context
from queuectl.web.pages import FLASH, error_page, render

routes = web.RouteTableDef()

Form = MultiDictProxy[str | bytes | bytearray | web.FileField]


def _text(form: Form, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _back(form: Form, default: str) -> str:
    """Where to go after the action: a path of this site, never another."""
    target = _text(form, "next")
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default


def redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def done(form: Form, default: str, note: str) -> web.Response:
    response = redirect(_back(form, default))
    response.set_cookie(FLASH, quote(note), path="/", httponly=True, samesite="Strict", max_age=60)
    return response


async def _act(
    request: web.Request, default: str, action: Callable[[Form], Awaitable[str]]
) -> web.StreamResponse:
    form = await request.post()
    try:
        note = await action(form)
    except QueuectlError as exc:
        return error_page(request, exc)
    return done(form, default, note)


# --- one job ----------------------------------------------------------------------------------


@routes.post("/jobs/{id}/{action}")
async def job_action(request: web.Request) -> web.StreamResponse:
    queue = context(request).queue
    job_id = request.match_info["id"]
    action = request.match_info["action"]
    page = f"/jobs/{quote(job_id, safe='')}"

    async def run(_form: Form) -> str:
        if action == "retry":
            retried = await service.retry_dead(queue, [job_id])
            if not retried:
                raise BadInput(f"job {job_id!r} is not dead; only dead jobs can be retried")
            return f"retried {job_id}"
        if action == "restart":
            await manage.restart(queue, [job_id])
            return f"restarted {job_id}"
        if action == "cancel":
            await manage.cancel(queue, [job_id])
            return f"canceled {job_id}"
        if action == "delete":
            await manage.delete(queue, [job_id])
            return f"deleted {job_id}"
        raise BadInput(f"unknown action {action!r}; use retry, restart, cancel or delete")

    form = await request.post()
    try:
        note = await run(form)
    except QueuectlError as exc:
        return error_page(request, exc)
    return done(form, "/jobs" if action == "delete" else page, note)


@routes.post("/jobs")
async def bulk(request: web.Request) -> web.StreamResponse:
    """The jobs table's selection: retry (dead), restart, cancel or delete, all or none."""
    queue = context(request).queue

    async def run(form: Form) -> str:
        ids = [value for value in form.getall("id", []) if isinstance(value, str) and value]
        action = _text(form, "action")
        if not ids:
            raise BadInput("no job selected; tick the jobs to change first")
        if action == "retry":
            count = len(await service.retry_dead(queue, ids))
        elif action == "restart":
            count = await manage.restart(queue, ids)
        elif action == "cancel":
            count = await manage.cancel(queue, ids)
        elif action == "delete":
            count = await manage.delete(queue, ids)
        else:
            raise BadInput(f"unknown action {action!r}; use retry, restart, cancel or delete")
        return f"{action}: {manage.plural(count)}"

    return await _act(request, "/jobs", run)


# --- the DLQ ----------------------------------------------------------------------------------


@routes.post("/dlq/retry")
async def dlq_retry(request: web.Request) -> web.StreamResponse:
    """One job (`id`), one group (`group`: its error kind and message) or every dead job."""
    state = context(request)

    async def run(form: Form) -> str:
        if _text(form, "all"):
            ids = None
        elif _text(form, "id"):
            ids = [_text(form, "id")]
        elif "group" in form:
            group = form.get("group")
            ids = await dashboard.group_ids(state.reads, group if isinstance(group, str) else "")
        else:
            raise BadInput("say what to retry: a job, a group, or all")
        retried = await service.retry_dead(state.queue, ids)
        return f"retried {manage.plural(len(retried))}"

    return await _act(request, "/dlq", run)


# --- the queue --------------------------------------------------------------------------------


@routes.post("/pause")
async def pause(request: web.Request) -> web.StreamResponse:
    queue = context(request).queue

    async def run(_form: Form) -> str:
        await service.pause(queue)
        return "paused: no job starts until it is resumed"

    return await _act(request, "/", run)


@routes.post("/resume")
async def resume(request: web.Request) -> web.StreamResponse:
    queue = context(request).queue

    async def run(_form: Form) -> str:
        await service.resume(queue)
        return "resumed"

    return await _act(request, "/", run)


def spec_of(form: Form) -> JobSpec:
    """The form's job, by enqueue's own parser (specs.shorthand_spec), with its messages."""
    command = _text(form, "command")
    if not command:
        raise BadInput("the command is empty; give the shell command to run")
    cwd = _text(form, "cwd") or os.getcwd()
    if not os.path.isabs(cwd) or not os.path.isdir(cwd):
        raise BadInput(f"--cwd {cwd!r} is not an existing directory; give an absolute path")

    def number(name: str) -> int | None:
        text = _text(form, name)
        if not text:
            return None
        try:
            return int(text)
        except ValueError:
            raise BadInput(f"{name.replace('_', '-')} {text!r} is not a whole number") from None

    options = Shorthand(
        job_id=_text(form, "id") or None,
        max_retries=number("max_retries"),
        priority=number("priority"),
        timeout=_text(form, "timeout") or None,
        delay=_text(form, "delay") or None,
        run_at=_text(form, "run_at") or None,
        label=_text(form, "label") or None,
    )
    return shorthand_spec(command, cwd, options)


@routes.post("/enqueue")
async def enqueue(request: web.Request) -> web.StreamResponse:
    queue = context(request).queue
    form = await request.post()
    try:
        new_id = (await service.enqueue(queue, spec_of(form))).id
    except QueuectlError as exc:
        values = {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf"}
        return render(
            request, "enqueue.html", status=400, cwd=os.getcwd(), values=values, error=str(exc)
        )
    return done(form, f"/jobs/{quote(new_id, safe='')}", f"enqueued {new_id}")


@routes.post("/login")
async def login(request: web.Request) -> web.StreamResponse:
    guard = context(request).guard
    form = await request.post()
    if not guard.check_token(_text(form, "token")):
        return render(request, "login.html", status=401, failed=True)
    response = redirect(_back(form, "/"))
    response.set_cookie(
        "queuectl_session", guard.session_value(), path="/", httponly=True, samesite="Strict"
    )
    return response


@routes.post("/logout")
async def logout(request: web.Request) -> web.StreamResponse:
    response = redirect("/login")
    response.del_cookie("queuectl_session", path="/")
    return response
