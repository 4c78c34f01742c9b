"""A dataset's identity: what its files hold, never where they are or when they were written.

The fingerprint is a sha256 over each file's relative path, size and content sha256. A copy
of the data (``cp -r`` to another disk, another node, new mtimes) is therefore the same
dataset, and it keys the same slice cache and the same split manifests; one changed byte is
another dataset.

Reading every byte of a 100 GB dataset on every run would cost minutes, so each file's hash
is kept in a cache under the workdir (``cache/file-hashes/<sha of the resolved root>.json``),
keyed by relative path, size and mtime_ns, like rsync's quick check: an unchanged dataset
costs one ``stat`` per file, and a copy is read once at its new place.

Before it, ctbench identified a dataset by paths, sizes and mtimes (``legacy_fingerprint``);
the slice caches and split folders that formula named are migrated, not mixed (see
``benchmark.data.slices`` and ``benchmark.execution.job_runner.prepare_task``).
"""
from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

from tqdm.auto import tqdm

from benchmark.core.atomic import write_json
from benchmark.core.hashing import file_sha256
from benchmark.core.locks import exclusive

log = logging.getLogger(__name__)

HASH_CACHE_VERSION = 1
SCHEME = "ctbench-dataset-v2"  # folded into the digest: it can never equal a legacy one
ANNOUNCE_BYTES = 1 << 30  # hashing more than this says so, with a progress bar
HASH_THREADS = min(8, 2 * (os.cpu_count() or 1))  # reads overlap: on 2 cores, 4 threads read a cold disk 1.5x faster than 2


def dataset_files(root: Path) -> list[Path]:
    """Every file under ``root`` in a stable order: the same listing the legacy fingerprint used."""
    return sorted(p for p in Path(root).rglob("*") if p.is_file())


def dataset_fingerprint(root: Path, hash_cache: Optional[Path] = None) -> str:
    """Hex sha256 over (relative path, size, content sha256) of every file under ``root``.

    ``hash_cache``: a folder that keeps each file's hash by path, size and mtime; without one
    every byte is read.
    """
    root = Path(root)
    stats = {path.relative_to(root).as_posix(): path.stat() for path in dataset_files(root)}
    hashes = file_hashes(root, stats, hash_cache)
    digest = hashlib.sha256(f"{SCHEME}\n".encode())
    for rel, stat in stats.items():
        digest.update(f"{rel}\0{stat.st_size}\0{hashes[rel]}\n".encode())
    return digest.hexdigest()


def legacy_fingerprint(root: Path) -> str:
    """The formula ctbench used before contents were hashed (paths, sizes, mtimes): kept only to
    recognise the caches and split folders it named, when the files are still those it saw."""
    root = Path(root)
    digest = hashlib.sha256()
    for path in dataset_files(root):
        stat = path.stat()
        digest.update(f"{path.relative_to(root).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def task_fingerprint(task, root: Path, hash_cache: Path) -> str:
    """``task.fingerprint`` with the hash cache where it takes one: a plugin written for the older
    signature ``fingerprint(self, root)`` still works."""
    if "hash_cache" in inspect.signature(task.fingerprint).parameters:
        return task.fingerprint(root, hash_cache=hash_cache)
    return task.fingerprint(root)


def hash_cache_file(hash_cache: Path, root: Path) -> Path:
    """One cache file per dataset location (a copy elsewhere has its own, filled once)."""
    return Path(hash_cache) / f"{hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:32]}.json"


def file_hashes(root: Path, stats: dict[str, os.stat_result], hash_cache: Optional[Path]) -> dict[str, str]:
    """Content sha256 per relative path: from the cache where path, size and mtime_ns match, else read.

    Reading happens under the cache file's lock, so workers that meet a new copy together (``--jobs``,
    a job array) read it once: the others wait, then find it cached.
    """
    if hash_cache is None:
        return _hash_files(root, {rel: stat.st_size for rel, stat in stats.items()})
    cache_file = hash_cache_file(hash_cache, root)
    hashes = _cached(cache_file, stats)
    if len(hashes) == len(stats):
        return hashes
    with exclusive(cache_file, f"hashing the dataset at {root}"):
        hashes = _cached(cache_file, stats)
        todo = {rel: stat.st_size for rel, stat in stats.items() if rel not in hashes}
        if todo:
            hashes.update(_hash_files(root, todo))
            files = {rel: {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": hashes[rel]}
                     for rel, stat in stats.items()}
            write_json(cache_file, {"version": HASH_CACHE_VERSION, "root": str(Path(root).resolve()), "files": files})
    return hashes


def _cached(cache_file: Path, stats: dict[str, os.stat_result]) -> dict[str, str]:
    """The cached hashes of the files whose size and mtime are still those recorded."""
    return {rel: entry["sha256"] for rel, entry in _read_cache(cache_file).items()
            if rel in stats and (entry["size"], entry["mtime_ns"]) == (stats[rel].st_size, stats[rel].st_mtime_ns)}


def _read_cache(cache_file: Path) -> dict[str, dict]:
    """The cached entries, or none: an unreadable or older cache is only a reason to read the files again."""
    try:
        payload = json.loads(cache_file.read_text())
        return payload["files"] if payload.get("version") == HASH_CACHE_VERSION else {}
    except (OSError, ValueError, KeyError, AttributeError):
        return {}


def _hash_files(root: Path, sizes: dict[str, int]) -> dict[str, str]:
    """Read in a thread pool: hashlib releases the GIL, and parallel reads hide network-storage latency."""
    total = sum(sizes.values())
    announce = total >= ANNOUNCE_BYTES
    if announce:
        log.info("hashing %d file(s), %.1f GB, under %s to identify the dataset (once per location: "
                 "later runs read the hash cache)", len(sizes), total / 1e9, root)
    bar = tqdm(total=total, unit="B", unit_scale=True, desc="hashing dataset", leave=False) if announce \
        else tqdm(disable=True)
    with ThreadPoolExecutor(HASH_THREADS) as pool, bar:
        def one(rel: str) -> tuple[str, str]:
            sha = file_sha256(root / rel)
            bar.update(sizes[rel])
            return rel, sha

        return dict(pool.map(one, sizes))



def legacy_split_folder(split_folder: Path, root: Path) -> Optional[Path]:
    """The split folder that ctbench named by the legacy fingerprint of the files at ``root`` today
    (``<fp[:16]>-m<version>``, the same version), where one exists and ``split_folder`` does not."""
    if (split_folder / "split.json").is_file():
        return None
    legacy = split_folder.with_name(legacy_fingerprint(root)[:16] + split_folder.name[16:])
    return legacy if legacy != split_folder and (legacy / "split.json").is_file() else None


def report_split_migration(task_name: str, split: dict, legacy_folder: Path, new_folder: Path) -> None:
    """One line: where the manifests now are, that the old ones stay, and whether the patients agree."""
    old = json.loads((legacy_folder / "split.json").read_text())
    same = all(old.get(key) == split[key] for key in ("test_patients", "pool_strata"))
    log.warning("split manifests of %s: written anew under %s, as datasets are now identified by their contents; "
                "%s (named by the old mtime-based fingerprint) stays for the results that point to it. %s",
                task_name, new_folder, legacy_folder.name,
                "Same test and pool patients." if same else
                "The patients DIFFER: results from the two folders are not comparable.")
