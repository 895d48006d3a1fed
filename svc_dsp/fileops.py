"""Atomic file and folder writes: nothing is ever left half-written under its final name.

Temporary files are named ``.<name>.<pid>-<host>.<8 hex>.partial`` beside their target
(``<host>``: 6 hex digits of this machine's name; ``<name>`` shortened so the whole name fits the
file system's name limit). :func:`remove_stale_partials` removes only files of exactly that form
whose writing process is gone: same machine and no process with that id, or (another machine's
file on shared storage, or the older form without a process id) unchanged for a day.
"""
from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import socket
import time
from pathlib import Path

#: ``.<name>.<pid>-<host>.<8 hex>.partial``: a temp file of ours, from process ``pid`` on ``host``.
PARTIAL_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>[0-9]+)-(?P<host>[0-9a-f]{6})\.[0-9a-f]{8}\.partial$",
                        re.DOTALL)
#: ``.<name>.<8 hex>.partial``: the form older versions wrote (no process id in it).
OLD_PARTIAL_RE = re.compile(r"^\..+\.[0-9a-f]{8}\.partial$", re.DOTALL)
#: Partials whose process cannot be checked (older form, another machine) count as stale once
#: unchanged this long.
UNCHECKED_PARTIAL_STALE_S = 86400.0
NAME_MAX = 255
#: This machine's tag in temp names.
HOST_TAG = hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:6]


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB pieces."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _name_max(directory: str) -> int:
    try:
        return min(NAME_MAX, int(os.pathconf(directory, "PC_NAME_MAX")))
    except (OSError, ValueError, AttributeError):
        return NAME_MAX


def temp_name(final: str | os.PathLike[str]) -> str:
    """A fresh temp file name (no folder) for writing ``final``: ``.<name>.<pid>.<hex>.partial``,
    ``<name>`` shortened (whole characters) so the name fits NAME_MAX bytes."""
    final = os.fspath(final)
    name = os.path.basename(final)
    limit = _name_max(os.path.dirname(os.path.abspath(final)) or ".")
    tail = f".{os.getpid()}-{HOST_TAG}.{secrets.token_hex(4)}.partial"
    room = limit - 1 - len(tail.encode())
    while len(os.fsencode(name)) > room:
        name = name[:-1]
    return f".{name}{tail}"


def open_temp_beside(final: str | os.PathLike[str]) -> tuple[int, str]:
    """Create (O_EXCL) a temp file beside ``final``; returns ``(fd, path)``."""
    directory = os.path.dirname(os.path.abspath(os.fspath(final)))
    while True:
        tmp = os.path.join(directory, temp_name(final))
        try:  # O_EXCL: never clobber; mode 0o666 lets the umask decide permissions
            return os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666), tmp
        except FileExistsError:
            continue


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # another user's process, or we cannot tell: keep its file
    return True


def stale_partials(folder: str | os.PathLike[str]) -> list[Path]:
    """Our temp files in ``folder`` (not recursive) left by a process that no longer runs (for
    another machine's files and the old form without a process id: unchanged for
    :data:`UNCHECKED_PARTIAL_STALE_S`)."""
    out: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return out
    now = time.time()
    for e in entries:
        if not e.is_file(follow_symlinks=False):
            continue
        m = PARTIAL_RE.match(e.name)
        if m is not None and m["host"] == HOST_TAG:
            if not _alive(int(m["pid"])):
                out.append(Path(e.path))
        elif m is not None or OLD_PARTIAL_RE.match(e.name):
            try:
                if now - e.stat(follow_symlinks=False).st_mtime > UNCHECKED_PARTIAL_STALE_S:
                    out.append(Path(e.path))
            except OSError:
                pass
    return sorted(out)


def temps_of(final: str | os.PathLike[str]) -> list[Path]:
    """The temp files (any process, any machine) that are writing ``final`` now or were left by
    writers of it: ``.<name>.<pid>-<host>.<hex>.partial`` beside it, ``<name>`` being the final
    name or the shortened form :func:`temp_name` gives it."""
    final = Path(final)
    out: list[Path] = []
    try:
        entries = list(os.scandir(final.parent))
    except OSError:
        return out
    for e in entries:
        m = PARTIAL_RE.match(e.name)
        if m is not None and (m["name"] == final.name or (final.name.startswith(m["name"])
                                                          and len(os.fsencode(e.name)) >= NAME_MAX - 8)):
            out.append(Path(e.path))
    return sorted(out)


def remove_stale_partials(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove :func:`stale_partials` of ``folder``; returns the paths removed."""
    removed = []
    for p in stale_partials(folder):
        try:
            p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed


def write_atomic(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` (str as UTF-8) to a temp file beside ``path``, then rename it into place."""
    path = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = open_temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def replace_dir(tmp: Path, final: Path) -> Path:
    """Move the completed folder ``tmp`` to ``final``, replacing any folder already there;
    the old one is set aside first and deleted only after the new one is in place."""
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(final)
    return final
