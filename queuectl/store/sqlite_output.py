"""The encoding of an attempt's ordered output in the `attempts.output` BLOB (schema v3).

One version byte, then one record per chunk: a stream tag (1 stdout, 2 stderr), the length as
an unsigned LEB128 varint, and the bytes. Adjacent chunks of one stream are joined first, so
the overhead is two or three bytes per switch between the streams, not per read of a pipe.

The per-stream bytes are not also kept in the `stdout` and `stderr` columns (that would store
every byte twice): those columns stay empty for attempts recorded with an output, and the
store derives both streams from the chunks. Attempts recorded before v3 have no output (NULL)
and keep their bytes in the two columns; they read back as stdout, then stderr. Truncation is
not encoded here: it stays in the `stdout_truncated`/`stderr_truncated` columns, and the marker
that tells it is printed by `logs`, never stored inside the data.
"""

from __future__ import annotations

from collections.abc import Iterable

from queuectl.errors import StorageError
from queuectl.models import Chunk, Stream

VERSION = 1
_TAGS: dict[Stream, int] = {"stdout": 1, "stderr": 2}
_STREAMS: dict[int, Stream] = {tag: stream for stream, tag in _TAGS.items()}


def encode(chunks: Iterable[Chunk]) -> bytes:
    blob = bytearray([VERSION])
    for stream, data in _joined(chunks):
        blob.append(_TAGS[stream])
        length = len(data)
        while length >= 0x80:
            blob.append(length & 0x7F | 0x80)
            length >>= 7
        blob.append(length)
        blob += data
    return bytes(blob)


def decode(blob: bytes) -> tuple[Chunk, ...]:
    """The chunks of `encode` (none for an empty blob: output dropped by retention); raises
    StorageError for a blob that is not one."""
    if not blob:
        return ()
    if blob[0] != VERSION:
        raise StorageError(
            f"an attempt's stored output has encoding {blob[0]}, which this queuectl does not "
            f"know (it writes {VERSION}); upgrade queuectl"
        )
    view = memoryview(blob)
    chunks: list[Chunk] = []
    at, end = 1, len(blob)
    while at < end:
        stream = _STREAMS.get(blob[at])
        length, shift, at = 0, 0, at + 1
        while at < end and blob[at] & 0x80:
            length |= (blob[at] & 0x7F) << shift
            shift, at = shift + 7, at + 1
        if stream is None or at >= end:
            raise _corrupt()
        length |= blob[at] << shift
        at += 1
        if at + length > end:
            raise _corrupt()
        chunks.append(Chunk(stream, bytes(view[at : at + length])))
        at += length
    return tuple(chunks)


def _corrupt() -> StorageError:
    return StorageError("an attempt's stored output is corrupt; the database file is damaged")


def _joined(chunks: Iterable[Chunk]) -> list[tuple[Stream, bytes | bytearray]]:
    runs: list[tuple[Stream, bytes | bytearray]] = []
    for stream, data in chunks:
        if not data:
            continue
        if runs and runs[-1][0] == stream:
            last = runs[-1][1]
            joined = last if isinstance(last, bytearray) else bytearray(last)
            joined += data
            runs[-1] = (stream, joined)
        else:
            runs.append((stream, data))
    return runs
