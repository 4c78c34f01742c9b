"""ctbench: does CT-domain pretraining beat ImageNet pretraining, and where does the boundary cost?"""
from importlib import metadata

try:
    __version__ = metadata.version("ctbench")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
