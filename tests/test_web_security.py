"""The dashboard's defences (issue 12), on a real `queuectl web`: CSRF and origin checks on
every POST, the Host allow-list, hostile commands and output escaped, a CSP without inline
script, and a token required off loopback (bearer header or the login form's cookie)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from helpers import (
    Backend,
    assert_one_line_error,
    failure,
    finish,
    in_store,
    queue_snapshot,
    run_cli,
    seed,
    spec,
)
from web.server import serving

from queuectl.store import Store

HOSTILE = "<script>alert(1)</script>"


@pytest.fixture
def sqlite(home: Path) -> Backend:
    return Backend("sqlite", home)


def test_a_post_without_or_with_a_wrong_csrf_token_is_refused_and_changes_nothing(
    sqlite: Backend,
) -> None:
    seed(sqlite, dead=["d1"], pending=["p1"])
    before = queue_snapshot(sqlite)
    with serving(sqlite) as web:
        good = web.get("/dlq").csrf()
        attempts = [
            ("/dlq/retry", {"all": "1"}),
            ("/dlq/retry", {"all": "1", "csrf": "0" * 64}),
            ("/jobs/p1/cancel", {}),
            ("/jobs/p1/delete", {"csrf": good[:-1] + ("0" if good[-1] != "0" else "1")}),
            ("/pause", {"csrf": ""}),
            ("/enqueue", {"command": "touch /tmp/pwned"}),
        ]
        for path, form in attempts:
            reply = web.post(path, form=form)
            assert reply.status == 403, (path, reply.status, reply.body)
            assert "CSRF" in reply.body
        # a GET never changes anything: the actions take POST only
        assert web.get("/jobs/p1/cancel").status in (404, 405)
        # the right token, from another site: refused too
        for headers in (
            {"Origin": "http://evil.example"},
            {"Origin": "null"},
            {"Sec-Fetch-Site": "cross-site"},
            {"Sec-Fetch-Site": "same-site"},
        ):
            reply = web.post("/jobs/p1/cancel", form={"csrf": good}, headers=headers)
            assert reply.status == 403, (headers, reply.body)
        assert queue_snapshot(sqlite) == before
        # and the same request from the page itself is done
        same = {"Origin": web.url, "Sec-Fetch-Site": "same-origin"}
        assert web.post("/jobs/p1/cancel", form={"csrf": good}, headers=same).status == 303
        assert queue_snapshot(sqlite) != before


def test_a_foreign_host_is_refused_on_every_page(sqlite: Backend) -> None:
    seed(sqlite, pending=["p1"])
    with serving(sqlite) as web:
        for host in ("evil.example", f"evil.example:{web.port}", "127.0.0.1:1", "localhost.evil"):
            for path in ("/", "/api/status", "/metrics", "/static/app.css", "/events"):
                reply = web.get(path, headers={"Host": host})
                assert reply.status == 403, (host, path, reply.status)
        for host in (f"localhost:{web.port}", f"127.0.0.1:{web.port}", f"[::1]:{web.port}"):
            assert web.get("/api/status", headers={"Host": host}).status == 200, host


def test_hostile_commands_and_output_are_escaped_under_a_csp_without_inline_script(
    sqlite: Backend,
) -> None:
    out = f"{HOSTILE}\n\x1b[31mred\x1b[0m \x1b]0;title\x07done\n".encode()

    async def hostile(store: Store) -> None:  # as an engine would: claim, then fail with it
        await store.enqueue([spec(HOSTILE, id="h1", max_retries=0, label=HOSTILE)])
        [job] = await store.claim("test-engine", 1, 30.0)
        assert await finish(store, job, failure(error=HOSTILE, stdout=out, stderr=out))

    in_store(sqlite, hostile)
    with serving(sqlite) as web:
        for path in ("/", "/jobs", "/jobs/h1", "/dlq", "/jobs?q=%3Cscript%3E"):
            reply = web.get(path)
            assert reply.status == 200, path
            assert HOSTILE not in reply.body, path
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in reply.body, path
            csp = reply.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp
            assert "<script>" not in reply.body.replace('<script src="/static/', "")
        detail = web.get("/jobs/h1").body
        assert "\x1b" not in detail and "red done" in detail.replace("\n", " ").replace("title", "")


def test_off_loopback_a_token_is_required(sqlite: Backend) -> None:
    seed(sqlite, pending=["p1"])
    with serving(sqlite, bind="0.0.0.0:0") as web:
        token = web.token()
        assert web.get("/api/status").status == 401
        assert web.get("/metrics").status == 401
        page = web.get("/")
        assert page.status == 401 and 'name="token"' in page.body  # the login form
        bearer = {"Authorization": f"Bearer {token}"}
        assert web.get("/api/status", headers={"Authorization": "Bearer wrong"}).status == 401
        assert web.get("/api/status", headers=bearer).status == 200

        login = web.get("/login")
        wrong = web.post("/login", form={"csrf": login.csrf(), "token": "not-it"})
        assert wrong.status == 401 and "set-cookie" not in {k.lower() for k in wrong.headers}
        right = web.post("/login", form={"csrf": login.csrf(), "token": token})
        assert right.status == 303
        cookie = right.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and token not in cookie
        session = {"Cookie": cookie.split(";")[0]}
        assert web.get("/", headers=session).status == 200
        # a POST with the cookie still needs the page's CSRF token
        csrf = web.get("/jobs", headers=session).csrf()
        assert web.post("/pause", form={}, headers=session).status == 403
        assert web.post("/pause", form={"csrf": csrf}, headers=session).status == 303


def test_bad_bind_and_a_port_in_use_are_one_line_errors(sqlite: Backend) -> None:
    result = run_cli(sqlite.home, "web", "--bind", "nowhere")
    assert "HOST:PORT" in assert_one_line_error(result, 2)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(sqlite.home, "web", "--bind", f"127.0.0.1:{port}")
        assert "in use" in assert_one_line_error(result, 1)
