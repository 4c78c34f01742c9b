"""Atomic file writes: a temp file in the same folder, fsync, then rename.

A reader (or a resumed run) therefore sees either the old file or the whole new one,
never a half-written result after a crash or a full disk.

A writer holds an exclusive ``flock`` on its temp file until the rename. A writer that
dies mid-write (SIGKILL, out of memory, a lost node) leaves its temp file behind, but not
its lock, which the kernel drops: that is how ``sweep_stale_temps`` tells an orphan from a
live writer's file, without trusting pids or clocks, even across the nodes of a cluster.
Temp *folders* (``temp_folder``: a slice cache or a generated dataset being filled) work the
same way, with a lock file beside each, and ``sweep_stale_temp_folders`` removes a dead writer's.

Files are created with mode 0o666 and folders 0o777, so the kernel applies the process umask
(and any default ACL) as it does for a plain ``open()``: 0644 under umask 022, 0664 under 002,
so a group sharing a workdir can read what another member's run wrote.
"""
from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterable, Iterator

import numpy as np

from benchmark.core.errors import EXIT_JOB_FAILED, CTBenchError

try:
    import fcntl
except ImportError:  # no flock (Windows): temp files are not locked, and never swept
    fcntl = None

TEMP_SUFFIX = ".tmp"
TEMP_FOLDER_SUFFIX = ".tmpdir"  # ``.<name>.<random>.tmpdir``, with its lock ``.<name>.<random>.tmpdir.lock`` beside it
LOCK_SUFFIX = ".lock"
# A full disk, a full quota, a file size limit: the environment, not the job, and not a partial file.
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class DiskFullError(CTBenchError, OSError):
    """A write that found no room. The run stops: every later job would fail the same way, and
    recording them as failed would hold them back after the user frees space. Still an OSError
    (with the cause's errno) for code that handles failed writes as such."""
    exit_code = EXIT_JOB_FAILED

    def __init__(self, cause: OSError, path: Path):
        super().__init__(disk_full_message(cause), path)
        self.errno, self.strerror, self.filename = cause.errno, cause.strerror, str(path)

    def __str__(self) -> str:  # OSError's own would be "[Errno 28] ...: 'path'"
        return str(self.args[0])

    def __reduce__(self):  # OSError's would call __init__ with (errno, strerror, filename)
        return _disk_full_error, (self.errno, self.strerror, self.filename)


def _disk_full_error(code: int, strerror: str, path: str) -> DiskFullError:
    """Unpickles a DiskFullError sent back by a worker process."""
    return DiskFullError(OSError(code, strerror), Path(path))


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, DiskFullError) or (isinstance(exc, OSError) and exc.errno in DISK_FULL)


def disk_full_message(exc: OSError) -> str:
    return (f"cannot write: {exc.strerror or exc} (a full disk or quota); free some space and run the same "
            "command again to resume (finished jobs are stored)")


@contextmanager
def atomic_open(path: Path, mode: str = "w") -> Iterator[IO]:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _locked_temp(path)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
            os.replace(tmp, path)  # before the close, which drops the lock that keeps a sweep away
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.errno in DISK_FULL:
            raise DiskFullError(exc, path) from exc
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _locked_temp(path: Path, suffix: str = TEMP_SUFFIX) -> tuple[int, str]:
    """A new temp file beside ``path``, already under this process's lock.

    A sweep can take a temp file's lock in the instant between its creation and the
    writer's lock; the writer then finds its file gone or taken, and makes another.
    """
    while True:
        fd, tmp = _new_file(path.parent, f".{path.name}.", suffix)
        locked = _lock(fd)
        if locked is None or (locked and _is_linked(fd, tmp)):
            return fd, tmp
        os.close(fd)


def _new_file(folder: Path, prefix: str, suffix: str) -> tuple[int, str]:
    """``tempfile.mkstemp`` but created 0o666: its 0o600 would survive the rename, while this way the
    kernel applies the umask at creation (thread-safe, unlike reading it with the process-global os.umask)."""
    while True:
        name = os.path.join(folder, f"{prefix}{secrets.token_hex(4)}{suffix}")
        try:
            return os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666), name
        except FileExistsError:
            continue


def _lock(fd: int) -> bool | None:
    """True when this process now holds ``fd``'s lock, False when another does, None where the
    file system has no locks (the write then goes ahead unlocked, and a sweep leaves it alone)."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return None
    return True


def _is_linked(fd: int, name: str | Path) -> bool:
    """Whether ``name`` still names the open file ``fd`` (a sweep may have removed it)."""
    try:
        on_disk = os.stat(name, follow_symlinks=False)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (opened.st_dev, opened.st_ino)


def sweep_stale_temps(roots: Iterable[Path]) -> list[Path]:
    """Remove the temp files that writers killed mid-write left under ``roots``; returns them.

    Only files whose lock is free are removed: a live writer's temp file (this process's,
    another run's, another node's) is never touched.
    """
    if fcntl is None:
        return []
    removed = []
    for root in roots:
        if Path(root).is_dir():
            removed += [tmp for tmp in sorted(Path(root).rglob(f".*{TEMP_SUFFIX}")) if _remove_if_orphaned(tmp)]
    return removed


def _remove_if_orphaned(tmp: Path) -> bool:
    return _remove_if_unlocked(tmp, tmp.unlink)


def _remove_if_unlocked(lock: Path, remove) -> bool:
    """Run ``remove`` while holding ``lock``'s flock, if it is free and ``lock`` is still that file."""
    try:
        fd = os.open(lock, os.O_RDWR | os.O_NOFOLLOW)
    except OSError:  # gone already, a folder, a link, or not ours to open
        return False
    try:
        if not (_lock(fd) and _is_linked(fd, lock)):
            return False
        remove()
        return True
    except OSError:  # gone meanwhile, or not ours to delete: left for a later sweep
        return False
    finally:
        os.close(fd)  # drops the lock: a writer that lost this race makes a new temp file


@contextmanager
def temp_folder(target: Path) -> Iterator[Path]:
    """A new empty folder beside ``target`` to fill, then to publish with ``publish_folder``
    inside the block; whatever is left of it when the block ends is removed.

    Its lock is a file beside it (``<folder>.lock``), made first and removed last and flock'ed
    all along, so a sweep can remove a dead writer's folder at any point of its life and never
    a live one's. Beside, not inside: a published folder holds only what was written into it.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, lock = _locked_temp(target, TEMP_FOLDER_SUFFIX + LOCK_SUFFIX)
    folder = Path(lock[: -len(LOCK_SUFFIX)])
    try:
        folder.mkdir()  # mode 0o777 less the umask
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():  # else the lock stays, for a later sweep to retry
            Path(lock).unlink(missing_ok=True)
        os.close(fd)


def publish_folder(folder: Path, target: Path) -> None:
    """Rename a filled ``temp_folder`` onto ``target``. An existing ``target`` is first moved into
    a temp folder of its own, so a crash leaves the old or the new one, and a sweepable temp."""
    target = Path(target)
    if not target.exists():
        os.replace(folder, target)
        return
    with temp_folder(target) as trash:
        os.replace(target, trash / "old")
        os.replace(folder, target)


def sweep_stale_temp_folders(parents: Iterable[Path]) -> list[Path]:
    """Remove the ``temp_folder``s that dead writers left directly in ``parents``; returns them.

    Not recursive: a temp folder lives beside what it becomes, so only those parents are
    listed, and only names of that pattern whose lock is free are touched.
    """
    if fcntl is None:
        return []
    removed = []
    for parent in parents:
        if Path(parent).is_dir():
            for lock in sorted(Path(parent).glob(f".*{TEMP_FOLDER_SUFFIX}{LOCK_SUFFIX}")):
                folder = lock.with_name(lock.name[: -len(LOCK_SUFFIX)])
                if _remove_if_unlocked(lock, lambda lock=lock, folder=folder: _remove_folder(folder, lock)):
                    removed.append(folder)
    return removed


def _remove_folder(folder: Path, lock: Path) -> None:
    """The folder, then its lock: a failure (a file not ours to delete) keeps the lock for the next sweep."""
    if folder.is_symlink() or folder.is_file():
        folder.unlink()
    elif folder.exists():
        shutil.rmtree(folder)
    lock.unlink()


def canonical_json(payload: object) -> str:
    """Sorted keys and a trailing newline, so equal payloads are equal bytes."""
    return json.dumps(payload, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_json(path: Path, payload: object) -> None:
    text = canonical_json(payload)
    with atomic_open(path, "w") as handle:
        handle.write(text)


def write_npz(path: Path, compress: bool = False, **arrays: np.ndarray) -> None:
    """``compress``: deflate each array (``np.load`` reads either form the same way)."""
    with atomic_open(path, "wb") as handle:
        (np.savez_compressed if compress else np.savez)(handle, **arrays)


def read_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}
