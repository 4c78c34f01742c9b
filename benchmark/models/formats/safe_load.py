"""Read a checkpoint file without running code from it.

Only two readers exist: safetensors, and ``torch.load(weights_only=True)``. Real training
checkpoints (Lightning ``.ckpt``) also pickle their hyperparameters and optimizer/scheduler
state; some of those objects are of types the weights-only unpickler does not know
(omegaconf containers, Lightning's ``AttributeDict``, ``argparse.Namespace``, paths).

Those types are *not* allowed as themselves: an omegaconf ``DictConfig`` pickle carries type
references (``object_type``, ``key_type``, ``element_type``) and a ``defaultdict`` carries a
callable ``default_factory``, so trusting them would mean trusting whatever classes the file
names. Instead, when a static scan of the pickle (``get_unsafe_globals_in_checkpoint``, which
executes nothing) finds only names from a fixed list of training-metadata libraries, each of
those names is mapped to an inert placeholder class of ours (``torch.serialization.safe_globals``
with ``(placeholder, "module.Name")`` pairs). The placeholder stores what the pickle hands it
and does nothing else, so no class or function named in the file is ever called. Any other
global (``os.system``, ``builtins.eval``, ``subprocess.Popen``...) means the file is not a
plain checkpoint, and it is refused with a one-line message naming the globals.
"""
from __future__ import annotations

import json
import pickle
import pickletools
import re
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from benchmark.core.errors import CheckpointError

#: Modules whose classes only ever appear in training metadata (configs, loggers, schedulers).
METADATA_PREFIXES = ("omegaconf.", "lightning.", "lightning_fabric.", "pytorch_lightning.", "solo.", "typing.",
                     "pathlib.")
#: Single names seen in real Lightning/solo-learn metadata. Every one becomes an inert placeholder.
METADATA_NAMES = frozenset({
    "argparse.Namespace", "collections.defaultdict", "functools.partial", "builtins.getattr",
    "builtins.int", "builtins.float", "builtins.str", "builtins.bool", "builtins.bytes", "builtins.list",
    "builtins.dict", "builtins.tuple", "builtins.set", "builtins.frozenset", "builtins.object", "builtins.type",
})


def is_metadata_global(name: str) -> bool:
    return name in METADATA_NAMES or name.startswith(METADATA_PREFIXES)


def _placeholder(name: str) -> type:
    """A stand-in for the class or function ``name``: calling or instantiating it only yields a record.

    Its ``__new__`` returns an ``OrderedDict`` (one of the few containers the weights-only
    unpickler fills and builds), marked with the name it replaced; none of the original's code
    exists here, so none of it can run.
    """

    def __new__(cls, *args, **kwargs):
        return OrderedDict(__inert__=name)

    return type("Inert_" + re.sub(r"\W", "_", name), (), {"__new__": __new__, "qualified_name": name})


def is_safetensors(path: Path) -> bool:
    if path.suffix == ".safetensors":
        return True
    try:
        with open(path, "rb") as handle:
            head = handle.read(9)
    except OSError:
        return False
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 100_000_000


#: leading bytes of files people mistake for checkpoints, and what to call them
MAGIC = ((b"\x89PNG\r\n\x1a\n", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
         (b"\x93NUMPY", "a NumPy .npy array (np.save)"),
         (b"\x89HDF\r\n\x1a\n", "an HDF5 file (Keras .h5 weights?): convert it to a PyTorch state dict first"),
         (b"\x1f\x8b", "gzip-compressed: decompress it first"), (b"BZh", "bzip2-compressed: decompress it first"),
         (b"\xfd7zXZ\x00", "xz-compressed: decompress it first"), (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"))
ZIP_MAGIC = b"PK\x03\x04"
ACCEPTED = "ctbench reads torch.save state dicts and .safetensors files"


def read_object(path: Path) -> tuple[object, list[str]]:
    """The file's top-level object and notes on how it was read; CheckpointError for anything unsafe."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError("is a folder, not a checkpoint file", path)
    if not path.is_file():
        raise CheckpointError("checkpoint file does not exist", path)
    try:
        foreign = _foreign_format(path)
        if foreign:
            raise CheckpointError(f"not a checkpoint: the file is {foreign}; {ACCEPTED}", path)
        if is_safetensors(path):
            return _read_safetensors(path), []
        return _torch_load(path)
    except OSError as exc:  # permissions, a file removed meanwhile, an I/O error
        raise CheckpointError(f"cannot read the file ({type(exc).__name__}: {exc.strerror or exc})", path) from None


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor, memory-mapped by safetensors (no read() of the file, no copy of its bytes here)."""
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError, KeyError) as exc:
        raise CheckpointError(f"not a readable safetensors file: {_safetensors_problem(path, exc)}", path) from None


def _safetensors_problem(path: Path, exc: BaseException) -> str:
    """Why safetensors refused the file, with truncation told apart: the header says how long the file must be."""
    text = _as_text(path)
    if text:
        return f"the file is {text}"
    size = path.stat().st_size
    if size < 8:
        return f"truncated: {size} bytes, less than the 8-byte header length; copy or download it again"
    try:
        with open(path, "rb") as handle:
            length = int.from_bytes(handle.read(8), "little")
            if length > size - 8:  # safetensors caps headers at 100 MB: above that, the bytes are not a length
                return (f"truncated: its header alone is {length:,} bytes, the file has {size:,}; copy or download "
                        f"it again" if length < 100_000_000 else f"corrupt or not safetensors ({_one_line(exc)})")
            header = json.loads(handle.read(length))
        needed = 8 + length + max(int(entry["data_offsets"][1]) for key, entry in header.items()
                                  if key != "__metadata__")
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError):
        needed = 0
    if needed > size:
        return f"truncated: its header describes {needed:,} bytes, the file has {size:,}; copy or download it again"
    return f"corrupt or not safetensors ({_one_line(exc)})"


def _foreign_format(path: Path) -> str | None:
    """What the file is, when its first bytes say it is something other than a checkpoint; None otherwise."""
    with open(path, "rb") as handle:
        head = handle.read(16)
    if not head:
        return "empty (0 bytes)"
    if head[8:9] == b"{":  # a safetensors header: its 8 length bytes may happen to spell a magic number
        return None
    kind = next((what for magic, what in MAGIC if head.startswith(magic)), None)
    if kind or not head.startswith(ZIP_MAGIC) or not zipfile.is_zipfile(path):
        return kind
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return None  # torch.load reports it
    if any(name.endswith("data.pkl") for name in names):
        return None
    if names and all(name.endswith(".npy") for name in names):
        return "a NumPy .npz archive (np.savez)"
    return f"a zip archive that torch.save did not write (no data.pkl; it holds {', '.join(names[:3]) or 'nothing'})"


def _torch_load(path: Path) -> tuple[object, list[str]]:
    is_zip = zipfile.is_zipfile(path)
    if not is_zip and _starts_with(path, ZIP_MAGIC):
        raise CheckpointError("not a readable PyTorch checkpoint: truncated (a zip archive, as torch.save writes, "
                              "whose end, the central directory, is missing); copy or download it again", path)
    try:
        return _load(path, is_zip), []
    except pickle.UnpicklingError as exc:
        first_error = exc
    names = _unsafe_globals(path, is_zip, first_error)
    bad = [name for name in names if not is_metadata_global(name)]
    if not names:
        text = _as_text(path)
        if text:
            raise CheckpointError(f"not a checkpoint: the file is {text}; {ACCEPTED}", path)
        raise CheckpointError(f"refused: not a file torch.save wrote, or a pickle that is not plain weights "
                              f"({_unpickler_reason(first_error)}); {ACCEPTED}", path)
    if bad:
        shown = ", ".join(bad[:6]) + (f" and {len(bad) - 6} more" if len(bad) > 6 else "")
        raise CheckpointError(
            f"refused: the pickle references {shown}, which could run code; "
            "ctbench loads only tensors (torch.load weights_only=True or safetensors): re-save the weights as a "
            "plain state dict or a .safetensors file", path)
    try:
        with torch.serialization.safe_globals([(_placeholder(name), name) for name in names]):
            obj = _load(path, is_zip)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"refused: the file holds objects that are not plain weights "
                              f"({_unpickler_reason(exc)})", path) from None
    return obj, [f"training metadata read as inert placeholders, never executed: {', '.join(sorted(names))}"]


def _load(path: Path, is_zip: bool) -> object:
    """torch.load with weights_only=True, memory-mapped when the file is a zip (torch.save's format since 1.6)."""
    try:
        with warnings.catch_warnings():  # the pickle protocol note is noise: an unsupported opcode is refused anyway
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except pickle.UnpicklingError:
        raise
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError, TypeError,
            zipfile.BadZipFile, AttributeError) as exc:
        text = _as_text(path)
        if text:
            raise CheckpointError(f"not a checkpoint: the file is {text}; {ACCEPTED}", path) from None
        raise CheckpointError(f"not a readable PyTorch checkpoint, truncated or corrupt? "
                              f"({type(exc).__name__}: {_one_line(exc)})", path) from None


def _starts_with(path: Path, magic: bytes) -> bool:
    with open(path, "rb") as handle:
        return handle.read(len(magic)) == magic


def _as_text(path: Path) -> str | None:
    """What the file is when it is text (UTF-8, no NUL bytes), quoting its first line; None for binary files.

    Asked only after a loader failed: a protocol-0 pickle is ASCII too, and those are judged by their
    globals first. A Git LFS pointer (a clone without ``git lfs pull``) gets its own name.
    """
    with open(path, "rb") as handle:
        head = handle.read(512)
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not just a character cut at the 512th byte
            return None
        text = head[:exc.start].decode("utf-8")
    if "\x00" in text or sum(ch.isprintable() or ch in "\t\r\n" for ch in text) < 0.95 * len(text):
        return None
    if text.startswith("version https://git-lfs"):
        return "a Git LFS pointer, not the weights: fetch them with git lfs pull"
    first = (text.strip().splitlines() or [""])[0]
    return f"text (starts with {first[:40] + ('...' if len(first) > 40 else '')!r})"


def _unpickler_reason(exc: BaseException) -> str:
    """The weights-only unpickler's own reason, without torch's paragraph about weights_only=False."""
    text = str(exc)
    match = re.search(r"WeightsUnpickler error:(.*?)(?:Check the documentation|$)", text, re.S)
    reason = _one_line(match.group(1) if match else text)
    opcode = re.search(r"Unsupported operand (\d+)", reason)
    code = chr(int(opcode.group(1))) if opcode and int(opcode.group(1)) < 256 else ""
    if code in pickletools.code2op:
        reason += f": pickle opcode {pickletools.code2op[code].name}, which torch.save does not write"
    return reason


def _unsafe_globals(path: Path, is_zip: bool, error: Exception) -> list[str]:
    """Globals the pickle names, found by reading its opcodes; nothing in it is executed."""
    if is_zip:
        try:
            return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
        except Exception:  # noqa: BLE001 - a scan failure just means "refuse"
            return []
    names: set[str] = set()
    strings: list[str] = []
    try:
        with open(path, "rb") as handle:
            for opcode, arg, _ in pickletools.genops(handle):
                if opcode.name == "GLOBAL":
                    names.add(str(arg).replace(" ", "."))
                elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                    names.add(f"{strings[-2]}.{strings[-1]}")
                elif isinstance(arg, str):
                    strings.append(arg)
                if opcode.name == "STOP":
                    break
    except Exception:  # noqa: BLE001 - a malformed stream is refused below with what was found
        pass
    found = sorted(names) or sorted(set(re.findall(r"GLOBAL ([\w.]+)", str(error))))
    try:
        from torch._weights_only_unpickler import _get_allowed_globals

        allowed = _get_allowed_globals()
    except ImportError:  # private API moved: fall back to listing every name
        allowed = {}
    return [name for name in found if name not in allowed and not name.startswith("torch.")] or found


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] + ("..." if len(text) > 300 else "")
