"""Starting a job's shell: glibc's posix_spawn through ctypes.

Why: starting processes is most of what an engine running short jobs does. subprocess.Popen
spends about as long in Python (pipes, its error pipe, the environment list) as the kernel
spends creating the child, and holds the GIL throughout (on 3.11), so aiosqlite's thread
waits too; os.posix_spawn cannot change the child's directory. A ctypes call releases the GIL
for its whole duration, and glibc's posix_spawn (a CLONE_VFORK clone, with
posix_spawn_file_actions_addchdir_np since 2.29) does everything Popen's child does here:
stdin from /dev/null, two pipes, the job's directory, a new session, SIGPIPE and SIGXFSZ back
to their defaults, an empty signal mask. (Starting from a pool of threads was measured too:
no faster on a quiet machine, and a third more CPU, from handing the GIL around.)

Every other descriptor is left to close-on-exec, which Python sets on all it creates (PEP 446);
SQLite and asyncpg open theirs the same way.

`available()` is False without glibc 2.29+ (musl, macOS): child.py then uses Popen.
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Mapping

_SETSIGDEF = 0x04  # POSIX_SPAWN_SETSIGDEF
_SETSIGMASK = 0x08  # POSIX_SPAWN_SETSIGMASK
_SETSID = 0x80  # POSIX_SPAWN_SETSID (glibc 2.26)
_SHELL = b"/bin/sh"


class _Opaque(ctypes.Structure):
    """glibc's posix_spawn_file_actions_t (80 bytes on 64-bit), posix_spawnattr_t (336) and
    sigset_t (128) all fit; larger than needed is harmless, smaller would not be."""

    _fields_ = [("_space", ctypes.c_byte * 512)]


def _load() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.posix_spawn_file_actions_addchdir_np  # noqa: B018 (glibc 2.29+)
        libc.posix_spawnattr_setflags  # noqa: B018
    except (OSError, AttributeError):
        return None
    pointer = ctypes.POINTER(_Opaque)
    strings = ctypes.POINTER(ctypes.c_char_p)
    libc.posix_spawn.argtypes = [
        ctypes.POINTER(ctypes.c_int), ctypes.c_char_p, pointer, pointer, strings, strings,
    ]  # fmt: skip
    libc.posix_spawn_file_actions_adddup2.argtypes = [pointer, ctypes.c_int, ctypes.c_int]
    libc.posix_spawn_file_actions_addchdir_np.argtypes = [pointer, ctypes.c_char_p]
    libc.posix_spawnattr_setflags.argtypes = [pointer, ctypes.c_short]
    return libc


_LIBC = _load()


def available() -> bool:
    return _LIBC is not None


def environment_block(env: Mapping[str, str] | Mapping[bytes, bytes]) -> list[bytes]:
    """`KEY=VALUE` entries, refused as Popen refuses them (a NUL would cut a C string short)."""
    encoded = [(os.fsencode(key), os.fsencode(value)) for key, value in env.items()]
    for key, _ in encoded:
        if b"=" in key or not key:
            raise ValueError(f"illegal environment variable name {key!r}")
    block = [key + b"=" + value for key, value in encoded]
    if b"\0" in b"".join(block):  # one scan in C instead of two tests an entry
        raise ValueError("embedded null byte in the environment")
    return block


def spawn_shell(
    command: str, cwd: str, env: list[bytes], stdin: int, stdout: int, stderr: int
) -> int:
    """Start `/bin/sh -c command` in `cwd` as a session leader and return its pid; OSError
    (errno from the child's chdir or exec) when it cannot start. Blocks until the child has
    exec'd (a fraction of a millisecond), without the GIL."""
    assert _LIBC is not None, "spawn_shell() needs available()"
    script, directory = os.fsencode(command), os.fsencode(cwd)
    if b"\0" in script or b"\0" in directory:
        raise ValueError("embedded null byte in the command or directory")
    libc = _LIBC
    actions, attributes, defaults, mask = _Opaque(), _Opaque(), _Opaque(), _Opaque()
    libc.posix_spawn_file_actions_init(ctypes.byref(actions))
    libc.posix_spawnattr_init(ctypes.byref(attributes))
    try:
        for source, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
            libc.posix_spawn_file_actions_adddup2(ctypes.byref(actions), source, target)
        libc.posix_spawn_file_actions_addchdir_np(ctypes.byref(actions), directory)
        libc.sigemptyset(ctypes.byref(defaults))
        for number in (signal.SIGPIPE, signal.SIGXFSZ):  # Python ignores both; the job must not
            libc.sigaddset(ctypes.byref(defaults), int(number))
        libc.posix_spawnattr_setsigdefault(ctypes.byref(attributes), ctypes.byref(defaults))
        libc.sigemptyset(ctypes.byref(mask))
        libc.posix_spawnattr_setsigmask(ctypes.byref(attributes), ctypes.byref(mask))
        libc.posix_spawnattr_setflags(ctypes.byref(attributes), _SETSID | _SETSIGDEF | _SETSIGMASK)
        argv = (ctypes.c_char_p * 4)(_SHELL, b"-c", script, None)
        envp = (ctypes.c_char_p * (len(env) + 1))(*env, None)
        pid = ctypes.c_int()
        error = libc.posix_spawn(
            ctypes.byref(pid), _SHELL, ctypes.byref(actions), ctypes.byref(attributes), argv, envp
        )
    finally:
        libc.posix_spawn_file_actions_destroy(ctypes.byref(actions))
        libc.posix_spawnattr_destroy(ctypes.byref(attributes))
    if error:
        raise OSError(error, os.strerror(error))
    return pid.value
