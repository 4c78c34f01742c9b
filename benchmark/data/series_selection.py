"""Which series of a DICOM export tree a labelled patient, study or series stands for.

A labels.csv keyed by ``PatientID`` or ``StudyInstanceUID`` names a person or a visit, which an
export holds as many series: thin and thick reconstructions, soft-tissue and bone kernels,
localizers, dose reports. One series per key is read, picked by a rule that is written down, so
that two labs with the same export read the same slices:

1. only ``axial-ct`` series of the index (``benchmark.data.readers.dicom_index``) are candidates;
2. SliceThickness (else the slice spacing) at most ``max_thickness_mm`` (default 5 mm);
3. optionally, SeriesDescription and ConvolutionKernel matching a regular expression;
4. of those, the most slices; ties go to a soft-tissue kernel (``SOFT_TISSUE_KERNELS``) over an
   unknown one over a sharp bone or lung one (``SHARP_KERNELS``), then to the lowest
   SeriesInstanceUID, so the pick never depends on file order.

The rule is configured by an optional ``selection.json`` in the data folder (a task is given
only its folder, and the file then travels with the data and its fingerprint)::

    {"description": "abdomen|portal", "kernel": "B3[01]f|STANDARD", "max_thickness_mm": 3}

A ``SeriesInstanceUID`` key names its series directly; it must still be ``axial-ct``. Every
choice and every skipped series is logged with its reason and kept in the ``Selection``,
which a task hands to ``ctbench tasks validate`` (as notes) and to its results (provenance).
"""
from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from benchmark.core.errors import DataError

log = logging.getLogger(__name__)

SELECTION_FILE = "selection.json"
KEY_COLUMNS = {"SeriesInstanceUID": "series", "PatientID": "patient", "StudyInstanceUID": "study"}
DEFAULT_MAX_THICKNESS_MM = 5.0
#: Kernel names (first value of ConvolutionKernel, case-insensitive, whole match) that reconstruct
#: soft tissue: GE STANDARD/SOFT, Siemens B/Br/Bv/I/Qr 10-49 ("B30f", "Br40"), Canon FC01-FC29,
#: Philips A/B/C.
SOFT_TISSUE_KERNELS = (r"STANDARD", r"SOFT\w*", r"B[0-4]\d[a-z]?", r"Br[0-4]\d", r"Bv[0-4]\d", r"I[0-4]\d[a-z]?",
                       r"Qr[0-4]\d", r"FC[0-2]\d", r"[ABC]")
#: Sharp kernels for bone and lung, which lose a tie: GE BONE/BONEPLUS/LUNG/EDGE/DETAIL, Siemens
#: B/Br/Bl/I 50-99 ("B70f", "B60f", "Bl57"), Canon FC30-FC99, Philips D/E/L/Y*.
SHARP_KERNELS = (r"BONE\w*", r"LUNG\w*", r"EDGE", r"DETAIL", r"SHARP\w*", r"B[5-9]\d[a-z]?", r"Br[5-9]\d",
                 r"Bl\d\d", r"I[5-9]\d[a-z]?", r"FC[3-9]\d", r"[DEL]", r"Y[A-Z]")
_RULE_KEYS = {"description", "kernel", "max_thickness_mm"}


@dataclass(frozen=True)
class Rule:
    """How one series is picked per key; see the module docstring."""

    description: str | None = None  # regex searched in SeriesDescription (case-insensitive)
    kernel: str | None = None  # regex searched in ConvolutionKernel (case-insensitive)
    max_thickness_mm: float = DEFAULT_MAX_THICKNESS_MM

    def as_dict(self) -> dict:
        return {"description": self.description, "kernel": self.kernel, "max_thickness_mm": self.max_thickness_mm}


@dataclass
class Selection:
    """The chosen series per labelled key, every other series with why it was skipped, and the
    problems (a key no usable series stands for) that make the folder unusable as it is."""

    key_column: str
    rule: Rule
    chosen: list[dict] = field(default_factory=list)  # {"key", "label", "row", "why"}
    skipped: list[dict] = field(default_factory=list)  # {"series", "patient", "description", "reason"}
    problems: list[str] = field(default_factory=list)
    index_notes: list[str] = field(default_factory=list)  # what the index left out on purpose

    def notes(self) -> list[str]:
        """One line per choice and per skipped series, for ``ctbench tasks validate``."""
        lines = [f"chose series {c['row']['series']} for {self.key_column} {c['key']} ({_shown(c['row'])}): "
                 f"{c['why']}" for c in self.chosen]
        return lines + [f"skipped series {s['series']} (patient {s['patient']}, {s['description'] or 'no description'})"
                        f": {s['reason']}" for s in self.skipped]

    def record(self) -> dict:
        """What a result keeps of the choice: the rule, the chosen series, the skipped ones."""
        return {"key_column": self.key_column, "rule": self.rule.as_dict(),
                "chosen": [{"key": c["key"], "label": c["label"], "series": c["row"]["series"],
                            "description": c["row"]["description"], "kernel": c["row"]["kernel"],
                            "thickness_mm": c["row"]["thickness_mm"], "slices": c["row"]["slices"], "why": c["why"]}
                           for c in self.chosen],
                "skipped": [dict(s) for s in self.skipped]}


def read_rule(root: Path) -> Rule:
    """The rule of ``root/selection.json``, or the default one when there is no such file."""
    path = Path(root) / SELECTION_FILE
    if not path.is_file():
        return Rule()
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"is not valid JSON ({exc})", path) from None
    if not isinstance(config, dict) or set(config) - _RULE_KEYS:
        unknown = sorted(set(config) - _RULE_KEYS) if isinstance(config, dict) else config
        raise DataError(f"must be an object with the keys {sorted(_RULE_KEYS)} (each optional); "
                        f"found {unknown!r}", path)
    for key in ("description", "kernel"):
        value = config.get(key)
        if value is not None:
            if not isinstance(value, str):
                raise DataError(f"{key} must be a regular expression (a string), not {value!r}", path)
            try:
                re.compile(value)
            except re.error as exc:
                raise DataError(f"{key} {value!r} is not a regular expression ({exc})", path) from None
    thickness = config.get("max_thickness_mm", DEFAULT_MAX_THICKNESS_MM)
    if isinstance(thickness, bool) or not isinstance(thickness, (int, float)) or not 0 < thickness < math.inf:
        raise DataError(f"max_thickness_mm must be a positive number of mm, not {thickness!r}", path)
    return Rule(config.get("description"), config.get("kernel"), float(thickness))


def kernel_rank(kernel: str | None) -> int:
    """0 for a soft-tissue kernel, 1 for an unknown one, 2 for a sharp (bone, lung) one."""
    first = (kernel or "").split("\\")[0].strip()
    if any(re.fullmatch(p, first, re.I) for p in SOFT_TISSUE_KERNELS):
        return 0
    return 2 if any(re.fullmatch(p, first, re.I) for p in SHARP_KERNELS) else 1


def select_series(index: dict, labels: dict[str, str], key_column: str, rule: Rule, labels_path: Path) -> Selection:
    """One series per labelled key (``labels``: key -> label), chosen by ``rule``."""
    field_name = KEY_COLUMNS[key_column]
    selection = Selection(key_column, rule)
    by_key: dict[str, list[dict]] = {}
    for row in index["series"]:
        by_key.setdefault(str(row[field_name]), []).append(row)
    for key in sorted(labels):
        candidates = by_key.get(key, [])
        if not candidates:
            selection.problems.append(f"{labels_path}: {key_column} {key} is held by no series of the tree")
        elif key_column == "SeriesInstanceUID":
            _take_named(selection, candidates[0], key, labels[key], labels_path)
        else:
            _pick(selection, candidates, key, labels[key], labels_path)
    chosen = {c["row"]["series"] for c in selection.chosen}
    for row in index["series"]:
        if str(row[field_name]) not in labels and row["series"] not in chosen:
            _skip(selection, row, f"{key_column} {row[field_name]} is not in labels.csv")
    return selection


def _take_named(selection: Selection, row: dict, key: str, label: str, labels_path: Path) -> None:
    if row["class"] != "axial-ct":
        selection.problems.append(f"{labels_path}: SeriesInstanceUID {key} is {row['class']} ({row['why']}); "
                                  "only axial-ct series are read")
        return
    _choose(selection, key, label, row, "named in labels.csv")


def _pick(selection: Selection, candidates: list[dict], key: str, label: str, labels_path: Path) -> None:
    """The best candidate by the rule; the others are skipped with their reason."""
    eligible = []
    for row in candidates:
        reason = _unfit(row, selection.rule)
        if reason is None:
            eligible.append(row)
        else:
            _skip(selection, row, reason)
    if not eligible:
        reasons = "; ".join(f"{s['series']}: {s['reason']}" for s in selection.skipped
                            if s["series"] in {r["series"] for r in candidates})
        selection.problems.append(f"{labels_path}: no series of {selection.key_column} {key} fits the selection "
                                  f"rule {selection.rule.as_dict()} ({reasons})")
        return
    ranked = sorted(eligible, key=_rank)
    best = ranked[0]
    why = (f"the most slices at most {selection.rule.max_thickness_mm:g} mm thick"
           + (f" of {len(eligible)} fitting series" if len(eligible) > 1 else ", the only fitting series"))
    _choose(selection, key, label, best, why)
    for row in ranked[1:]:
        _skip(selection, row, _lost(row, best))


def _unfit(row: dict, rule: Rule) -> str | None:
    """Why a series cannot be chosen under ``rule`` (None when it can)."""
    if row["class"] != "axial-ct":
        return f"{row['class']}: {row['why']}"
    thickness = row["thickness_mm"] if row["thickness_mm"] is not None else row["spacing_mm"]
    if thickness is not None and thickness > rule.max_thickness_mm + 1e-6:
        return f"{thickness:g} mm thick, over the maximum of {rule.max_thickness_mm:g} mm"
    if rule.description and not re.search(rule.description, row["description"] or "", re.I):
        return f"SeriesDescription {row['description']!r} does not match {rule.description!r}"
    if rule.kernel and not re.search(rule.kernel, row["kernel"] or "", re.I):
        return f"ConvolutionKernel {row['kernel']!r} does not match {rule.kernel!r}"
    return None


def _rank(row: dict) -> tuple:
    return -row["slices"], kernel_rank(row["kernel"]), row["series"]


def _lost(row: dict, best: dict) -> str:
    """Why ``row`` lost to ``best``, in the terms of the first criterion that separated them."""
    if row["slices"] != best["slices"]:
        return f"{row['slices']} slices, fewer than the {best['slices']} of the chosen series {best['series']}"
    if kernel_rank(row["kernel"]) != kernel_rank(best["kernel"]):
        kinds = ("soft-tissue", "unknown", "sharp (bone or lung)")
        return (f"kernel {row['kernel']} is {kinds[kernel_rank(row['kernel'])]}; the chosen series {best['series']} "
                f"has the {kinds[kernel_rank(best['kernel'])]} kernel {best['kernel']}")
    return f"as many slices and as soft a kernel as {best['series']}, which comes first by SeriesInstanceUID"


def _choose(selection: Selection, key: str, label: str, row: dict, why: str) -> None:
    selection.chosen.append({"key": key, "label": label, "row": row, "why": why})
    log.info("%s %s: chose series %s (%s): %s", selection.key_column, key, row["series"], _shown(row), why)


def _skip(selection: Selection, row: dict, reason: str) -> None:
    selection.skipped.append({"series": row["series"], "patient": row["patient"],
                              "description": row["description"], "reason": reason})
    log.info("skipped series %s (patient %s): %s", row["series"], row["patient"], reason)


def _shown(row: dict) -> str:
    thickness = f"{row['thickness_mm']:g} mm" if row["thickness_mm"] is not None else "thickness unknown"
    return (f"{row['description'] or 'no description'}; kernel {row['kernel'] or 'unknown'}; {thickness}; "
            f"{row['slices']} slices")
