"""The control channel's protocol, shared by the engine's server and the CLI's client.

Newline-delimited JSON objects (after pueue). The client opens with
`{"op": "hello", "version": N}` and the server answers `{"ok": true, "version": N, "pid": P}`
or an error when the versions differ. Then the client sends one request and reads replies until
one carries `"end": true` (a single reply for most ops; `follow` streams many). Every reply has
`ok`; a failed one has `error`, one line fit to show the user.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

PROTOCOL_VERSION = 1
MAX_LINE = 64 * 1024  # longest request the server reads; a longer one is refused
OPS = ("status", "stop", "wake", "pause", "resume", "scale", "cancel", "follow", "kill")

Reply = dict[str, Any]
Send = Callable[[Reply], Awaitable[None]]
Handler = Callable[[Reply, Send], Awaitable[None]]


def encode(message: Reply) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"
