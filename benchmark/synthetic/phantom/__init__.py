"""Procedural CT phantom written in real formats (DICOM series, LiTS-style NIfTI).

It is the embedded default data of ctbench: the benchmark must run offline,
so it makes its own patients, head to pelvis, with Hounsfield-accurate tissues
and FBP-like noise, and the tasks read them through the same readers as real
data.
"""
from benchmark.synthetic.phantom.config import BODY_PART, GENERATOR_VERSION, REGIONS, PhantomConfig, dataset_key
from benchmark.synthetic.phantom.generate import generate_dataset
from benchmark.synthetic.phantom.render import RenderedSlice, render_slice

__all__ = ["BODY_PART", "GENERATOR_VERSION", "REGIONS", "PhantomConfig", "RenderedSlice",
           "dataset_key", "generate_dataset", "render_slice"]
