"""Backbones and checkpoint files: timm model creation, and one adapter per checkpoint format."""
