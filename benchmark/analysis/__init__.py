"""Feature-space analysis (``ctbench analyze``): what finetuning keeps of a pretrained backbone,
how alike checkpoints are, how redundant their filters are, and which test cases each got right.

cka: the similarity measure. activations: where a backbone's stages are (ResNet layers, timm
feature levels, groups of transformer blocks) and what each computes on a set of slices.
reuse, similarity, agreement: the four measurements. plots: the SVGs. report: ``analyze``.
"""
from __future__ import annotations

from benchmark.analysis.report import analysis_folder, analyze

__all__ = ["analysis_folder", "analyze"]
