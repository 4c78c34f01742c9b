"""Reading an untrusted zip file into memory: what a submission bundle (``benchmark.results.bundle``)
and each npz inside it are read with.

Nothing is extracted to disk. Everything decidable from the central directory is checked before a
byte is decompressed: names (by the caller's rule), regular files only (a symlink's mode is in
``external_attr``), no duplicates, no encryption, per-member and total sizes and the compression
ratio (zip bombs). A member is then read to at most its declared size (zipfile stops there and
checks the CRC). An npz's arrays are checked the same way, and each array's header (no pickled
objects, a shape that matches its bytes) before numpy allocates what the header claims.
"""
from __future__ import annotations

import io
import json
import math
import re
import stat
import zipfile
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

from benchmark.core.errors import DataError
from benchmark.results.schema import shown

ARRAY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}\.npy$")

# Limits: generous for real bundles (a segmentation task's masks compress ~100:1 inside their npz,
# which is already deflated, so the zip's own members compress little), fatal to zip bombs.
MAX_FILE_BYTES = 8 << 30
MAX_MEMBERS = 20_000
MAX_MEMBER_BYTES = 1 << 30
MAX_TOTAL_BYTES = 4 << 30
MAX_RATIO = 100  # uncompressed / compressed, for members over RATIO_FLOOR
RATIO_FLOOR = 1 << 20
MAX_ARRAY_BYTES = 2 << 30
MAX_ARRAYS_BYTES = 4 << 30  # all arrays of one npz, decompressed


def read_members(path: Path, valid_name: Callable[[str], bool], rule: str) -> tuple[dict[str, bytes], list[str]]:
    """Every member's bytes by name, or the problems (``<member>: <problem>``) that stopped the read;
    ``rule`` says in words which names ``valid_name`` accepts. An unreadable file is a DataError."""
    check_file(path)
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            problems = layout_problems(infos, valid_name, rule)
            return ({}, problems) if problems else _read_all(archive, infos)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
        raise DataError(f"is not a readable zip file ({exc})", path) from None


def check_file(path: Path) -> None:
    if path.is_symlink() or not path.is_file():
        raise DataError("is not a regular file (a bundle is one zip file)", path)
    if path.stat().st_size > MAX_FILE_BYTES:
        raise DataError(f"is larger than a bundle may be ({MAX_FILE_BYTES >> 30} GiB)", path)


def layout_problems(infos: list[zipfile.ZipInfo], valid_name: Callable[[str], bool], rule: str) -> list[str]:
    """Everything decidable from the central directory, before a byte is decompressed."""
    if len(infos) > MAX_MEMBERS:
        return [f"the zip holds {len(infos)} members, more than {MAX_MEMBERS}"]

    def name(info: zipfile.ZipInfo) -> str:  # an odd name is shown quoted and escaped, on one line
        return info.filename if valid_name(info.filename) else shown(info.filename)

    problems = [f"{name(i)}: {p}" for i in infos for p in _member_problems(i, valid_name, rule)]
    names = [i.filename for i in infos]
    problems += [f"{name(i)}: appears more than once" for i in {n: i for n, i in zip(names, infos)}.values()
                 if names.count(i.filename) > 1]
    total = sum(i.file_size for i in infos)
    if total > MAX_TOTAL_BYTES:
        problems.append(f"the members unpack to {total} bytes, more than {MAX_TOTAL_BYTES}")
    return problems


def _member_problems(info: zipfile.ZipInfo, valid_name: Callable[[str], bool], rule: str) -> list[str]:
    file_type = stat.S_IFMT(info.external_attr >> 16)  # 0 where the writer (Windows, writestr) records no type
    checks = [
        (not valid_name(info.filename), f"not a name a bundle holds ({rule})"),
        (info.is_dir() or file_type not in (0, stat.S_IFREG), "not a regular file (a symlink, folder or device)"),
        (info.flag_bits & 0x1, "encrypted"),
        (info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED), "compressed by an unsupported method"),
        (info.file_size > MAX_MEMBER_BYTES, f"unpacks to {info.file_size} bytes, more than {MAX_MEMBER_BYTES}"),
        (info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1),
         f"compressed more than {MAX_RATIO}:1 (a zip bomb)"),
    ]
    return [problem for failed, problem in checks if failed]


def _read_all(archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo]) -> tuple[dict[str, bytes], list[str]]:
    """Into memory, never more than each member's declared size (zipfile stops there) and CRC-checked."""
    members, problems = {}, []
    for info in infos:
        try:
            with archive.open(info) as handle:
                data = handle.read(info.file_size + 1)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
            problems.append(f"{info.filename}: cannot be read ({exc})")
            continue
        if len(data) != info.file_size:
            problems.append(f"{info.filename}: holds {len(data)} bytes, not the {info.file_size} its header says")
        members[info.filename] = data
    return members, problems


def strict_json(data: bytes):
    """UTF-8 JSON without NaN or Infinity; ValueError naming the problem."""
    def refuse(name):
        raise ValueError(f"{name} is not JSON")
    try:
        return json.loads(data.decode("utf-8"), parse_constant=refuse)
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text ({exc.reason})") from None
    except RecursionError:
        raise ValueError("not valid JSON (nested too deeply)") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc})") from None


def npz_problems(data: bytes, required: tuple[str, ...], one_of: tuple[str, ...]) -> list[str]:
    """An npz's own members, from its central directory: names, sizes, the arrays a result needs."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        return [f"not an npz file ({exc})"]
    names = [i.filename for i in infos]
    problems = [f"holds {shown(n)}, not an array" for n in names if not ARRAY_PATTERN.match(n)]
    problems += [f"holds {n} more than once" for n in sorted(set(names)) if names.count(n) > 1]
    problems += [f"{i.filename} unpacks to {i.file_size} bytes, more than {MAX_ARRAY_BYTES}"
                 for i in infos if i.file_size > MAX_ARRAY_BYTES]
    if sum(i.file_size for i in infos) > MAX_ARRAYS_BYTES:
        problems.append(f"its arrays unpack to more than {MAX_ARRAYS_BYTES} bytes")
    problems += [f"holds no {n}" for n in required if f"{n}.npy" not in names]
    if one_of and not any(f"{n}.npy" in names for n in one_of):
        problems.append(f"holds no {' or '.join(one_of)}")
    return problems


def load_npz_bytes(data: bytes, required: tuple[str, ...] = (), one_of: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """The arrays, each header checked (no pickles, a size that matches its bytes) before numpy reads it."""
    problems = npz_problems(data, required, one_of)
    if problems:
        raise ValueError(problems[0])
    arrays = {}
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            try:
                with archive.open(info) as handle:
                    raw = handle.read(info.file_size + 1)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
                raise ValueError(f"{info.filename}: cannot be read ({exc})") from None
            arrays[info.filename[:-4]] = _array(info.filename, raw)
    return arrays


def _array(name: str, raw: bytes) -> np.ndarray:
    handle = io.BytesIO(raw)
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    try:
        reader = readers.get(np.lib.format.read_magic(handle))
        if reader is None:
            raise ValueError("an npy format version other than 1.0 or 2.0")
        shape, _, dtype = reader(handle)
    except (ValueError, SyntaxError, TypeError) as exc:
        raise ValueError(f"{name}: not an npy array ({exc})") from None
    if dtype.hasobject:
        raise ValueError(f"{name}: holds Python objects, which a bundle may not")
    expected = handle.tell() + math.prod(shape) * dtype.itemsize
    if expected != len(raw) or any(d < 0 for d in shape):
        raise ValueError(f"{name}: its header says {shape} {dtype}, which is not its {len(raw)} bytes")
    return np.load(io.BytesIO(raw), allow_pickle=False)
