"""The public surface for task plugins: import from here, and a plugin survives ctbench's refactors.

Everything a task plugin needs (the spec models, the Task and Case types, the readers for real
on-disk formats, the study's training recipes and the error a reader raises) is re-exported
here under stable names, as ``timm.models`` and ``monai.transforms`` are the surfaces their
users import from. Modules behind it may move; these names stay, and a test pins the list.
"""
from benchmark.core.errors import ConfigError, CTBenchError, DataError
from benchmark.core.specs import Preprocessing, TaskSpec, TrainingRecipe, Window
from benchmark.data.readers.dicom import iter_dicom_files, read_ct_slice, read_header
from benchmark.data.readers.image import IMAGE_SUFFIXES, read_rgb
from benchmark.data.readers.nifti import Volume, read_labelled_pair, read_volume, require_foreground
from benchmark.data.readers.table import read_index
from benchmark.data.readers.volume import axial_image
from benchmark.data.task import Case, Task
from benchmark.evaluation.recipes import study_recipe

__all__ = [
    "Case", "ConfigError", "CTBenchError", "DataError", "IMAGE_SUFFIXES", "Preprocessing", "Task", "TaskSpec",
    "TrainingRecipe", "Volume", "Window", "axial_image", "iter_dicom_files", "read_ct_slice", "read_header",
    "read_index", "read_labelled_pair", "read_rgb", "read_volume", "require_foreground", "study_recipe",
]
