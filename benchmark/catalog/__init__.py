"""What can be evaluated: the task and checkpoint registries (built-ins, entry points,
include paths), submitted checkpoints, and resolving a checkpoint to a hashed weight file.
"""
