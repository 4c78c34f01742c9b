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

from ..errors import CheckpointError

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


def read_object(path: Path) -> tuple[object, list[str]]:
    """The file's top-level object and notes on how it was read; CheckpointError for anything unsafe."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("checkpoint file does not exist", path)
    if is_safetensors(path):
        try:
            return load_file(str(path)), []  # memory-mapped by safetensors; not copied here
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"not a readable safetensors file ({_one_line(exc)})", path) from None
    return _torch_load(path)


def _torch_load(path: Path) -> tuple[object, list[str]]:
    is_zip = zipfile.is_zipfile(path)
    try:
        return _load(path, is_zip), []
    except pickle.UnpicklingError as exc:
        first_error = exc
    names = _unsafe_globals(path, is_zip, first_error)
    bad = [name for name in names if not is_metadata_global(name)]
    if bad or not names:
        shown = ", ".join(bad[:6]) + (f" and {len(bad) - 6} more" if len(bad) > 6 else "")
        raise CheckpointError(
            f"refused: the pickle references {shown or 'objects that are not plain weights'}, which could run code; "
            "ctbench loads only tensors (torch.load weights_only=True or safetensors): re-save the weights as a "
            "plain state dict or a .safetensors file", path)
    try:
        with torch.serialization.safe_globals([(_placeholder(name), name) for name in names]):
            obj = _load(path, is_zip)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"refused: the file holds objects that are not plain weights ({_one_line(exc)})",
                              path) from None
    return obj, [f"training metadata read as inert placeholders, never executed: {', '.join(sorted(names))}"]


def _load(path: Path, is_zip: bool) -> object:
    try:
        with warnings.catch_warnings():  # the pickle protocol note is noise: an unsupported opcode is refused anyway
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except pickle.UnpicklingError:
        raise
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError, TypeError,
            zipfile.BadZipFile, AttributeError) as exc:
        raise CheckpointError(f"not a readable PyTorch checkpoint, truncated or corrupt? "
                              f"({type(exc).__name__}: {_one_line(exc)})", path) from None


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
