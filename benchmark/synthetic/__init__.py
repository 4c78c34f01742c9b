"""The embedded default's data, made here: the CT phantom, the natural-image corpus and their cached datasets."""
