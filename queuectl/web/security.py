"""The dashboard's defences, as one aiohttp middleware applied to every request.

- Host allow-list (against DNS rebinding): the Host header must name the bound address or a
  loopback name, with the bound port; anything else is 403 on every page.
- A token, required whenever the dashboard listens beyond loopback (or when one is given):
  `Authorization: Bearer TOKEN`, or the HttpOnly, SameSite=Strict cookie set by the login
  form. Without it: 401 (the login form, for a page).
- Every state change is a POST (the routes take no other method for them) carrying the CSRF
  token of the page it came from, whose Origin (when sent) is this origin and whose
  Sec-Fetch-Site (when sent) is same-origin: 403 otherwise, before anything is done. A bearer
  request needs no CSRF token: no browser adds that header by itself.
- Headers on every answer: a Content-Security-Policy without inline script or style, no
  framing, no MIME sniffing, no referrer beyond this origin.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Middleware

COOKIE = "queuectl_session"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
#: paths served to a client without the token (the login form itself)
OPEN_PATHS = frozenset({"/login"})
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    return host in ("", "0.0.0.0", "::")


def _ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@dataclass(slots=True)
class Guard:
    """What the middleware checks against: the bound address and the token (None: no token,
    allowed on loopback only)."""

    host: str
    port: int
    token: str | None
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    names: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        names = set(LOOPBACK_NAMES)
        if is_wildcard(self.host):  # every address of this machine: its names, any address
            names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
        else:
            names.add(self.host.lower())
        self.names = frozenset(names)

    # --- Host --------------------------------------------------------------------------------

    def host_allowed(self, header: str | None) -> bool:
        if not header:
            return False
        name, port = split_host(header)
        if port is None:
            port = 80
        if port != self.port:
            return False
        name = name.lower()
        return name in self.names or (is_wildcard(self.host) and _ip_literal(name))

    # --- the token ---------------------------------------------------------------------------

    def session_value(self) -> str:
        """The cookie's value: derived from the token, so the token itself is never stored in
        the browser, and changes with it."""
        assert self.token is not None
        return hmac.new(self.secret, b"session:" + self.token.encode(), hashlib.sha256).hexdigest()

    def bearer(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        return (
            self.token is not None
            and scheme.lower() == "bearer"
            and hmac.compare_digest(value.strip().encode(), self.token.encode())
        )

    def authenticated(self, request: web.Request) -> bool:
        if self.token is None:
            return True
        if self.bearer(request):
            return True
        cookie = request.cookies.get(COOKIE, "")
        return bool(cookie) and hmac.compare_digest(cookie.encode(), self.session_value().encode())

    def check_token(self, given: str) -> bool:
        return self.token is not None and hmac.compare_digest(given.encode(), self.token.encode())

    # --- CSRF --------------------------------------------------------------------------------

    def csrf_token(self, request: web.Request) -> str:
        """Bound to the session (the cookie) when there is one."""
        session = request.cookies.get(COOKIE, "") if self.token is not None else ""
        return hmac.new(self.secret, b"csrf:" + session.encode(), hashlib.sha256).hexdigest()

    def same_origin(self, request: web.Request) -> bool:
        site = request.headers.get("Sec-Fetch-Site")
        if site is not None and site not in ("same-origin", "none"):
            return False
        origin = request.headers.get("Origin")
        if origin is None:
            return True
        return origin == f"{request.scheme}://{request.headers.get('Host', '')}"

    async def csrf_ok(self, request: web.Request) -> bool:
        expected = self.csrf_token(request).encode()
        given = request.headers.get(CSRF_HEADER)
        if given is None:
            form = await request.post()  # cached by aiohttp for the handler
            value = form.get(CSRF_FIELD)
            given = value if isinstance(value, str) else ""
        return hmac.compare_digest(given.encode(), expected)


def split_host(header: str) -> tuple[str, int | None]:
    """'example:8421' -> ('example', 8421); '[::1]:80' -> ('::1', 80)."""
    if header.startswith("["):
        name, _, rest = header[1:].partition("]")
        port_text = rest.removeprefix(":") if rest.startswith(":") else ""
    else:
        name, _, port_text = header.rpartition(":") if ":" in header else (header, "", "")
    if not port_text:
        return name, None
    return name, int(port_text) if port_text.isdigit() else -1


def refuse(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=f"{message}\n", headers=HEADERS)


def wants_html(request: web.Request) -> bool:
    path = request.path
    return not (path.startswith(("/api/", "/static/")) or path in ("/metrics", "/events"))


async def add_headers(_request: web.Request, response: web.StreamResponse) -> None:
    """On every answer, streamed ones too (an on_response_prepare signal)."""
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)


def middleware(guard: Guard, login_page: Handler) -> Middleware:
    @web.middleware
    async def secure(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not guard.host_allowed(request.headers.get("Host")):
            return refuse(403, "forbidden: unknown Host (the dashboard answers only to its own)")
        if request.path not in OPEN_PATHS and not guard.authenticated(request):
            if request.method == "GET" and wants_html(request):
                response = await login_page(request)
                response.set_status(401)
                return response
            return web.Response(
                status=401,
                text="unauthorized: give the token (Authorization: Bearer TOKEN)\n",
                headers={**HEADERS, "WWW-Authenticate": "Bearer"},
            )
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            if not guard.same_origin(request):
                return refuse(403, "forbidden: cross-site request")
            if not guard.bearer(request) and not await guard.csrf_ok(request):
                return refuse(403, "forbidden: missing or wrong CSRF token; reload the page")
        return await handler(request)

    return secure
