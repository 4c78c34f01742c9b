"""``ctbench data demo|inspect|index|preview``: make and look at datasets."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmark.cli.options import add_workdir
from benchmark.cli.output import info, print_table
from benchmark.core.errors import EXIT_BAD_INPUT, ConfigError, DataError
from benchmark.core.workdir import Workdir

INDEX_COLUMNS = ("patient", "study", "series", "description", "kernel", "thickness_mm", "slices", "shape",
                 "orientation", "class", "why")


def add_parser(sub) -> None:
    data = sub.add_parser("data", help="the embedded datasets")
    data.set_defaults(handler=cmd_data)
    actions = data.add_subparsers(dest="action", required=True)
    demo = actions.add_parser("demo", help="write the CT phantom (DICOM series, LiTS NIfTI, unlabeled corpus)")
    demo.add_argument("--out", required=True, type=Path)
    demo.add_argument("--seed", type=int, default=0)
    inspect = actions.add_parser("inspect", help="JSON summary of a DICOM file, a DICOM series folder or a NIfTI file")
    inspect.add_argument("path", type=Path)
    index = actions.add_parser("index", help="one row per DICOM series of an export tree (or DICOMDIR): "
                               "axial CT, localizer, derived, non-image, other modality")
    index.add_argument("root", type=Path, metavar="DIR")
    index.add_argument("--json", action="store_true", help="the index as JSON on stdout")
    add_workdir(index)
    preview = actions.add_parser("preview", help="PNG contact sheet of sample slices per body region")
    preview.add_argument("root", type=Path)
    preview.add_argument("--out", required=True, type=Path)
    preview.add_argument("--per-region", type=int, default=3)


def cmd_data(args: argparse.Namespace) -> int:
    if args.action == "inspect":
        from benchmark.data.inspect import inspect_path

        print(json.dumps(inspect_path(args.path), indent=2))
    elif args.action == "index":
        return _index(args)
    elif args.action == "preview":
        from benchmark.data.preview import contact_sheet

        print(contact_sheet(args.root, args.out, per_region=args.per_region))
    else:
        from dataclasses import replace

        from benchmark.synthetic.embedded import PHANTOM
        from benchmark.synthetic.phantom import generate_dataset

        if args.out.exists() and any(args.out.iterdir()):
            raise ConfigError("exists and is not empty; choose a new folder", args.out)
        print(generate_dataset(args.out, replace(PHANTOM, seed=args.seed)))
    return 0


def _index(args: argparse.Namespace) -> int:
    """The table (or JSON) on stdout; unreadable files, one line each, on stderr. Exit 2 only
    when nothing could be indexed: a few broken files in a large export are named, not fatal."""
    from benchmark.data.readers.dicom_index import index_tree, public_row

    cache = Workdir.resolve(args.workdir).root / "cache" / "dicom-index"
    index = index_tree(args.root, cache)
    rows = [public_row(row) for row in index["series"]]
    if args.json:
        print(json.dumps({**index, "series": rows}, indent=2))
    else:
        print_table(INDEX_COLUMNS, [[_cell(row[c]) for c in INDEX_COLUMNS] for row in rows])
    for line in index["notes"]:
        info(f"note: {line}")
    for line in index["problems"]:
        info(line)
    if not rows:
        if not index["problems"]:
            raise DataError("holds no DICOM files (*.dcm, or files with the DICM preamble)", args.root)
        info(f"no series indexed in {args.root}: {len(index['problems'])} file(s) could not be read")
        return EXIT_BAD_INPUT
    info(f"{len(rows)} series in {args.root} (from {index['source']})"
         + (f"; {len(index['problems'])} file(s) could not be read, named above" if index["problems"] else ""))
    return 0


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return "x".join(str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)
