"""Where a queue's local files live: its home directory (control socket, engine lock and log,
and the SQLite database unless --db names another).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from queuectl.errors import QueuectlError

DB_NAME = "queue.db"
SOCKET_NAME = "engine.sock"
LOCK_NAME = "engine.lock"
LOG_NAME = "engine.log"


def resolve_home(option: str | None) -> Path:
    """--home, else $QUEUECTL_HOME, else $XDG_DATA_HOME/queuectl, else ~/.local/share/queuectl."""
    if option:
        return Path(option).expanduser().absolute()
    if os.environ.get("QUEUECTL_HOME"):
        return Path(os.environ["QUEUECTL_HOME"]).expanduser().absolute()
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data).expanduser().absolute() / "queuectl"


def ensure_home(home: Path) -> Path:
    """Create the home 0700; refuse one that other users could write to or that is not a dir."""
    try:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = home.lstat()
    except FileExistsError:  # something that is no directory (mkdir's exist_ok is for those)
        raise QueuectlError(
            f"queue home {str(home)!r} is not a directory; pick another --home"
        ) from None
    except OSError as exc:
        raise QueuectlError(f"cannot create queue home {str(home)!r}: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise QueuectlError(f"queue home {str(home)!r} is not a directory; pick another --home")
    if info.st_uid != os.getuid():  # its owner could swap queue.db or engine.log for a symlink
        raise QueuectlError(
            f"queue home {str(home)!r} belongs to another user (uid "
            f"{info.st_uid}); use a directory of your own"
        )
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(home, 0o700)
    return home
