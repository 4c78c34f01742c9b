"""The natural-image side of the embedded default, cut from photographs that installed
packages ship (scikit-image, scikit-learn, matplotlib): the ImageNet stand-in."""
from benchmark.synthetic.natural.corpus import NATURAL_VERSION, NaturalConfig, generate_natural, natural_key
from benchmark.synthetic.natural.photos import Photo, find_photos

__all__ = ["NATURAL_VERSION", "NaturalConfig", "Photo", "find_photos", "generate_natural", "natural_key"]
