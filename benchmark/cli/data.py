"""``ctbench data demo|inspect|preview``: make and look at datasets."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmark.core.errors import ConfigError


def add_parser(sub) -> None:
    data = sub.add_parser("data", help="the embedded datasets")
    data.set_defaults(handler=cmd_data)
    actions = data.add_subparsers(dest="action", required=True)
    demo = actions.add_parser("demo", help="write the CT phantom (DICOM series, LiTS NIfTI, unlabeled corpus)")
    demo.add_argument("--out", required=True, type=Path)
    demo.add_argument("--seed", type=int, default=0)
    inspect = actions.add_parser("inspect", help="JSON summary of a DICOM file, a DICOM series folder or a NIfTI file")
    inspect.add_argument("path", type=Path)
    preview = actions.add_parser("preview", help="PNG contact sheet of sample slices per body region")
    preview.add_argument("root", type=Path)
    preview.add_argument("--out", required=True, type=Path)
    preview.add_argument("--per-region", type=int, default=3)


def cmd_data(args: argparse.Namespace) -> int:
    if args.action == "inspect":
        from benchmark.data.inspect import inspect_path

        print(json.dumps(inspect_path(args.path), indent=2))
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
