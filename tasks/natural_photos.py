"""``natural-photo-patches``: which photograph a crop comes from, the cross-domain
(natural image) task of the embedded default, in torchvision's ImageFolder layout.

Crops of one spatial block of a photo share a group (``<group>__<k>.png``), and
groups play the part of patients in the split, so test crops never overlap training
crops. In a plain ImageFolder every file is its own group.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from benchmark.core.errors import DataError
from benchmark.core.specs import Preprocessing, TaskSpec, Window
from benchmark.data.readers.image import IMAGE_SUFFIXES, read_rgb
from benchmark.data.task import Case, Task
from benchmark.evaluation.recipes import STUDY_AUGMENTATION, study_recipe
from benchmark.synthetic.embedded import natural_dataset
from benchmark.synthetic.natural.photos import TASK_CLASSES


class NaturalPhotoPatches(Task):
    spec = TaskSpec(
        name="natural-photo-patches",
        version="1",
        description="Source photograph of a crop (12 classes): the natural-image side of the domain boundary.",
        domain="natural",
        kind="classification",
        class_names=list(TASK_CLASSES),
        metrics=["accuracy", "balanced_accuracy", "auc"],
        main_metric="accuracy",
        default_scales=[1.0, 0.5, 0.1],  # 1 % of ~13 groups per class is below the 2-group floor
        license="Apache-2.0 (ctbench's patch generator); the photographs are those shipped with scikit-image "
                "(public domain or CC0; motorcycle: Middlebury 2014 stereo data, cite Scharstein et al. 2014), "
                "scikit-learn (china.jpg, flower.jpg: CC BY 2.0) and matplotlib (grace_hopper.jpg: public domain)",
        reference="https://scikit-image.org/docs/stable/api/skimage.data.html",
        citation="van der Walt S., Schönberger J. L., Nunez-Iglesias J., Boulogne F., Warner J. D., Yager N., "
                 "Gouillart E., Yu T., and the scikit-image contributors. scikit-image: image processing in Python. "
                 "PeerJ 2:e453, 2014.",
        preprocessing=Preprocessing(windows=[Window(center=127.5, width=255)], channels=3, size=64),
        data_layout="DIR/<class>/<group>__<k>.png (torchvision ImageFolder; class folders named as the classes)",
        embedded=True,
        training=study_recipe("chestxray8", class_weights=None, augmentation=STUDY_AUGMENTATION["imagenet"]),
        # the study's recipe for its other 2-D classification task, with its ImageNet augmentations
    )

    def units(self, root: Path) -> list[Path]:
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("._"))
        if not files:
            raise DataError("holds no images", root)
        return files

    def read(self, root: Path, unit: Path) -> Iterator[Case]:
        class_name = unit.parent.name
        if class_name not in self.spec.class_names:
            raise DataError(f"folder {class_name!r} is not a class of {self.spec.name}", unit)
        group = unit.stem.split("__")[0]
        yield Case(unit.relative_to(root).as_posix(), f"{class_name}/{group}", read_rgb(unit),
                   self.spec.class_names.index(class_name))

    def prepare_embedded(self, data_dir: Path) -> Path:
        return natural_dataset(data_dir) / "images"


TASK = NaturalPhotoPatches()
