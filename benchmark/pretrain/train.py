"""The training loop: seeded, resumable after every epoch, and byte-reproducible on CPU.

Reproducibility: the backbone and heads are initialised after ``torch.manual_seed(seed)``;
every random draw of the loop (the epoch's shuffle and all augmentation parameters) comes
from one CPU ``torch.Generator`` seeded with ``seed``; there is no DataLoader and no worker.
The loop runs on ``PRETRAIN_THREADS`` CPU threads whatever the machine has, so the same corpus,
recipe and torch build give the same weight bytes on 1, 2 or 16 cores.

Resume: after each epoch, ``OUT.state.pt`` is written atomically with the method's state
(backbone, heads, momentum copies), the optimizer, the completed epoch count, the
generator's and torch's RNG states and the losses so far: tensors, ints and strings only,
read back with ``torch.load(weights_only=True)``. It carries a hash of the recipe (total
epochs included, since the learning-rate schedule spans them) and of the corpus; a state
from another recipe or corpus is refused. The learning rate is a pure function of the
global step, so an interrupted run that resumes ends with the same bytes as one that did
not stop. The state file is removed once the weights and the sidecar are written.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from benchmark.core.atomic import atomic_open
from benchmark.core.errors import CheckpointError, ConfigError, CTBenchError, JobError
from benchmark.core.hashing import canonical_hash, file_sha256
from benchmark.core.specs import CheckpointSpec
from benchmark.evaluation.accel import cpu_threads, pick_device, seed_everything
from benchmark.models.backbones import create_backbone
from benchmark.pretrain.augment import SimCLRAugment
from benchmark.pretrain.corpus import find_corpus_files, fingerprint, load_corpus
from benchmark.pretrain.methods import build_method
from benchmark.pretrain.output import check_name, default_name, read_sidecar, sidecar_path, state_path, write_outputs
from benchmark.pretrain.recipe import DEMO_RECIPES, Recipe

STATE_VERSION = 1
# A CPU run's sums depend on how many threads split them (test_resnet at 32 px: another sha256 with 1
# thread than with 2), and torch defaults to the machine's cores. Pinned, a demo reference has the
# same bytes on every machine; 2 is what the 2-core machines measuring the README used by default.
PRETRAIN_THREADS = 2
EpochCallback = Callable[[int, float], None]


def lr_at(step: int, total_steps: int, warmup_steps: int, base_lr: float) -> float:
    """Linear warm-up, then a cosine decay to zero; a function of the global step only."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def resolve_device(device: str) -> torch.device:
    """The evaluation's ``pick_device``, with the pretraining API's own wording: it has no ``--device`` flag."""
    try:
        return pick_device(device)
    except CTBenchError:
        raise ConfigError("device 'cuda' was asked for, but torch sees no CUDA device") from None


def pretrain(corpus: Path, out: Path, *, method: Optional[str] = None, arch: Optional[str] = None,
             epochs: Optional[int] = None, batch_size: Optional[int] = None, image_size: Optional[int] = None,
             seed: Optional[int] = None, lr: Optional[float] = None, recipe: Optional[Recipe] = None,
             name: Optional[str] = None, pretraining_domain: Optional[str] = None, demo: bool = False,
             device: str = "cpu", resume: bool = True, progress: bool = True,
             on_epoch_end: Optional[EpochCallback] = None) -> CheckpointSpec:
    """Pretrain a timm backbone on an unlabeled corpus folder and write ``out`` (.safetensors)
    plus its sidecar ``out.with_suffix('.json')``; returns the CheckpointSpec.

    The recipe is ``recipe`` (default: ``DEMO_RECIPES`` of the corpus's domain) with the
    given arguments overriding its fields. ``corpus`` holds CT DICOM files
    (-> ``pretraining_domain`` "ct") or images (-> "natural"). ``on_epoch_end(epoch, mean_loss)`` runs after each epoch's state is
    saved; an exception from it (KeyboardInterrupt included) leaves a resumable state.
    ``device`` "cpu" (default, reproducible), "cuda" or "auto".
    """
    out = Path(out)
    if out.suffix != ".safetensors":
        raise ConfigError("the output file must end in .safetensors", out)
    recipe = (recipe or default_recipe(Path(corpus))).with_(
        method=method, arch=arch, epochs=epochs, batch_size=batch_size, image_size=image_size, seed=seed, lr=lr)
    name = check_name(name or default_name(out))
    dev = resolve_device(device)

    with cpu_threads(PRETRAIN_THREADS if dev.type == "cpu" else None):  # the same bytes on 1, 2 or 16 cores
        data = load_corpus(Path(corpus), recipe.image_size, progress=progress)
        mean, std = data.channel_stats()
        batch = min(recipe.batch_size, len(data))
        steps_per_epoch = len(data) // batch
        total_steps = steps_per_epoch * recipe.epochs
        warmup_steps = min(round(recipe.warmup_epochs * steps_per_epoch), total_steps // 2)
        run_key = canonical_hash({"state_version": STATE_VERSION, "recipe": recipe.to_dict(), "corpus": data.fingerprint,
                                  "preprocessing": data.preprocessing.model_dump(mode="json"), "mean": mean, "std": std,
                                  "batch": batch})

        seed_everything(recipe.seed)
        backbone = create_backbone(recipe.arch, 3)
        model = build_method(backbone, recipe)
        if dev.type == "cpu":
            model = model.to(memory_format=torch.channels_last)  # faster convolutions on CPU, same values
        model = model.to(dev)
        optimizer = _optimizer([p for p in model.parameters() if p.requires_grad], recipe)
        gen = torch.Generator().manual_seed(recipe.seed)
        losses: list[float] = []
        start_epoch = _restore(state_path(out), run_key, resume, model, optimizer, gen, losses, dev)

        augment = SimCLRAugment(recipe, mean, std)
        started = time.perf_counter()
        for epoch in range(start_epoch, recipe.epochs):
            model.train()
            order = torch.randperm(len(data), generator=gen)
            epoch_losses = []
            bar = tqdm(range(steps_per_epoch), desc=f"{recipe.method} epoch {epoch + 1}/{recipe.epochs}", unit="step",
                       disable=not progress, leave=False)
            for i in bar:
                step = epoch * steps_per_epoch + i
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(step, total_steps, warmup_steps, recipe.lr)
                images = data.images[order[i * batch:(i + 1) * batch]].float()
                x0, x1 = augment(images, gen), augment(images, gen)
                x0, x1 = (v.to(dev).contiguous(memory_format=torch.channels_last) for v in (x0, x1))
                loss = model.training_loss(x0, x1, step, total_steps)
                if not torch.isfinite(loss):
                    raise JobError(f"{recipe.method} loss became {loss.item()} at epoch {epoch + 1}, step {i + 1}; "
                                   "lower the learning rate")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                epoch_losses.append(loss.item())
                bar.set_postfix(loss=f"{loss.item():.4f}")
            losses.append(float(np.mean(epoch_losses)))
            _save_state(state_path(out), run_key, epoch + 1, model, optimizer, gen, losses)
            if progress:
                tqdm.write(f"{recipe.method} epoch {epoch + 1}/{recipe.epochs}: loss {losses[-1]:.4f} "
                           f"({time.perf_counter() - started:.0f} s)")
            if on_epoch_end is not None:
                on_epoch_end(epoch, losses[-1])

        training = {"batch_size": batch, "steps_per_epoch": steps_per_epoch, "warmup_steps": warmup_steps,
                    "schedule": "linear warm-up then cosine to 0, per step", "seed": recipe.seed,
                    "augment_generator": "torch.Generator (CPU)", "device": dev.type,
                    "threads": torch.get_num_threads()}
        spec = write_outputs(out, model.backbone.cpu(), recipe=recipe, corpus=data, name=name,
                             pretraining_domain=pretraining_domain or data.domain, demo=demo, mean=mean, std=std,
                             losses=[round(v, 6) for v in losses], training=training)
        state_path(out).unlink(missing_ok=True)
        return spec


def default_recipe(corpus: Path) -> Recipe:
    """The demo recipe of the corpus's domain (CT DICOM or natural images)."""
    kind, _ = find_corpus_files(Path(corpus))
    return DEMO_RECIPES["ct" if kind == "dicom" else "natural"]


def is_pretrained(corpus: Path, out: Path, recipe: Optional[Recipe] = None) -> bool:
    """Whether ``out`` and its sidecar already hold this recipe's result on this corpus (same
    files, same bytes) and the weights still match their sha256: the "pretrain once, then
    cache" check for the demo baselines. Hashes the corpus files; decodes nothing."""
    out = Path(out)
    if not (out.is_file() and sidecar_path(out).is_file()):
        return False
    try:
        spec, payload = read_sidecar(sidecar_path(out))
    except CheckpointError:
        return False
    _, files = find_corpus_files(Path(corpus))
    recipe = recipe or default_recipe(Path(corpus))
    return (payload.get("recipe") == recipe.to_dict() and spec.sha256 == file_sha256(out)
            and payload.get("corpus", {}).get("fingerprint") == fingerprint(Path(corpus), files))


def _optimizer(params, recipe: Recipe) -> torch.optim.Optimizer:
    if recipe.optimizer == "lars":  # the study's SimCLR optimiser, as lightly implements it
        from lightly.utils.lars import LARS

        return LARS(params, lr=recipe.lr, momentum=0.9, weight_decay=recipe.weight_decay)
    return torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)


def _save_state(path: Path, run_key: str, epochs_done: int, model, optimizer, gen, losses) -> None:
    state = {"state_version": STATE_VERSION, "run_key": run_key, "epochs_done": epochs_done,
             "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
             "optimizer": optimizer.state_dict(), "generator": gen.get_state(),
             "torch_rng": torch.get_rng_state(), "losses": torch.tensor(losses, dtype=torch.float64)}
    with atomic_open(path, "wb") as handle:
        torch.save(state, handle)


def _restore(path: Path, run_key: str, resume: bool, model, optimizer, gen, losses, dev) -> int:
    """Load a matching training state; returns the first epoch still to run (0 if none)."""
    if not path.exists():
        return 0
    if not resume:
        path.unlink()
        return 0
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        matches = state["state_version"] == STATE_VERSION and state["run_key"] == run_key
    except Exception as exc:  # a truncated or foreign file: say which, do not guess
        raise CheckpointError(f"unreadable training state ({type(exc).__name__}); delete it or pass resume=False",
                              path) from None
    if not matches:
        raise ConfigError("training state is from another recipe or corpus; delete it or pass resume=False "
                          "(--no-resume) to start over", path)
    model.load_state_dict(state["model"], strict=True)
    optimizer.load_state_dict(state["optimizer"])
    gen.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    losses.extend(float(v) for v in state["losses"])
    return int(state["epochs_done"])
