"""``ctbench pretrain``: self-supervised pretraining of a backbone on a folder of slices or images."""
from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.cli.options import PRETRAINING_DOMAINS, PRETRAINING_METHODS, STUDY_RECIPE_NAMES


def add_parser(sub) -> None:
    pretrain = sub.add_parser("pretrain", help="self-supervised pretraining on a folder of DICOM slices or images")
    pretrain.add_argument("--corpus", required=True, type=Path)
    pretrain.add_argument("--recipe", choices=STUDY_RECIPE_NAMES, help="start from the study's recipe (ResNet-50, "
                          "LARS lr 4.8, batch 4096, 100 epochs); the flags below override its fields")
    pretrain.add_argument("--method", choices=PRETRAINING_METHODS)
    pretrain.add_argument("--arch")
    pretrain.add_argument("--epochs", type=int)
    pretrain.add_argument("--batch-size", type=int)
    pretrain.add_argument("--image-size", type=int)
    pretrain.add_argument("--seed", type=int)
    pretrain.add_argument("--name")
    pretrain.add_argument("--pretraining-domain", choices=PRETRAINING_DOMAINS)
    pretrain.add_argument("--out", required=True, type=Path, help="the .safetensors backbone to write")
    pretrain.set_defaults(handler=cmd_pretrain)


def cmd_pretrain(args: argparse.Namespace) -> int:
    from benchmark.pretrain import pretrain
    from benchmark.pretrain.recipe import STUDY_RECIPES

    recipe = STUDY_RECIPES[args.recipe] if args.recipe else None
    given = {"recipe": recipe, "method": args.method, "arch": args.arch, "epochs": args.epochs,
             "batch_size": args.batch_size, "image_size": args.image_size, "seed": args.seed, "name": args.name,
             "pretraining_domain": args.pretraining_domain}
    options = {k: v for k, v in given.items() if v is not None}
    spec = pretrain(args.corpus, args.out, **options)
    print(spec.weights)
    return 0
