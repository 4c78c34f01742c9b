"""``ctbench pretrain``: self-supervised pretraining of a backbone on a folder of slices or images."""
from __future__ import annotations

import argparse


def cmd_pretrain(args: argparse.Namespace) -> int:
    from benchmark.pretrain import pretrain

    options = {k: v for k, v in {"arch": args.arch, "epochs": args.epochs, "batch_size": args.batch_size,
                                 "image_size": args.image_size, "seed": args.seed, "name": args.name,
                                 "pretraining_domain": args.pretraining_domain}.items() if v is not None}
    spec = pretrain(args.corpus, args.out, method=args.method, **options)
    print(spec.weights)
    return 0
