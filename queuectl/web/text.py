"""A job's output made fit for a page: decoded as UTF-8 (bytes that are not, replaced), ANSI
escape sequences and other control characters removed. HTML escaping is the templates' (Jinja2
autoescape): nothing here produces markup.

Live output arrives in chunks that may split a UTF-8 character or an escape sequence in two;
`Cleaner` keeps the unfinished tail of each stream for its next chunk.
"""

from __future__ import annotations

import codecs
import re

from queuectl.models import Chunk, Stream

#: CSI (ESC [ ... final), OSC (ESC ] ... BEL or ESC \), other two-byte escapes, and C0/C1
#: control characters except tab and newline
ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
    r"|\x1b[@-Z\\-_]"
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]"
)
#: an escape sequence that may go on in the next chunk
_UNFINISHED = re.compile(r"\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*)?$")


def strip_ansi(text: str) -> str:
    return ANSI.sub("", text.replace("\r\n", "\n"))


def clean(data: bytes) -> str:
    return strip_ansi(data.decode("utf-8", "replace"))


class Cleaner:
    """Cleans a stream of chunks, holding back what may be the start of a character or of an
    escape sequence until the next chunk of the same stream."""

    def __init__(self) -> None:
        self._decoders = {
            "stdout": codecs.getincrementaldecoder("utf-8")("replace"),
            "stderr": codecs.getincrementaldecoder("utf-8")("replace"),
        }
        self._held: dict[str, str] = {"stdout": "", "stderr": ""}

    def feed(self, stream: Stream, data: bytes) -> str:
        text = self._held[stream] + self._decoders[stream].decode(data)
        unfinished = _UNFINISHED.search(text)
        if unfinished is not None and len(text) - unfinished.start() < 256:
            self._held[stream] = text[unfinished.start() :]
            text = text[: unfinished.start()]
        else:
            self._held[stream] = ""
        return strip_ansi(text)


def cleaned(chunks: tuple[Chunk, ...]) -> list[tuple[Stream, str]]:
    """Stored output, its chunks of one stream joined: (stream, text) in the order written."""
    joined: list[tuple[Stream, bytes]] = []
    for stream, data in chunks:
        if not data:
            continue
        if joined and joined[-1][0] == stream:
            joined[-1] = (stream, joined[-1][1] + data)
        else:
            joined.append((stream, data))
    return [(stream, clean(data)) for stream, data in joined]
