"""``ctbench data demo|inspect|preview``: make and look at datasets."""
from __future__ import annotations

import argparse
import json

from benchmark.core.errors import ConfigError


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
