"""Inter-process locks on the workdir, so workers on one machine or many share it safely.

They are ``flock`` locks (py-filelock): the kernel drops them when their process dies,
so a killed worker never leaves a job or a cache locked. On a cluster the workdir must be
on storage with working POSIX locks (NFSv4, Lustre mounted with ``-o flock``, GPFS).
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional

from filelock import FileLock, Timeout


def lock_for(path: Path) -> FileLock:
    """The lock beside ``path``; it is kept on release, since unlinking a lock file races a waiter."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(path.parent / f".{path.name}.lock", preserve_lock_file=True)


@contextmanager
def exclusive(path: Path, what: str, log: Optional[Callable[[str], None]] = None) -> Iterator[None]:
    """Hold ``path``'s lock, waiting (and saying so) while another process builds the same thing."""
    lock = lock_for(path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if log is not None:
            log(f"waiting for another process to finish {what}")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def try_acquire(path: Path, wait: bool = False) -> Optional[FileLock]:
    """``path``'s lock if it is free now (with ``wait``: once it is), else None."""
    lock = lock_for(path)
    try:
        lock.acquire(timeout=-1 if wait else 0)
    except Timeout:
        return None
    return lock


def is_held(path: Path) -> bool:
    """Whether some process holds ``path``'s lock (a probe: it takes the lock for an instant)."""
    lock = try_acquire(path)
    if lock is None:
        return True
    lock.release()
    return False
