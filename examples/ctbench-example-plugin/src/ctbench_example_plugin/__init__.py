"""An out-of-tree ctbench task plugin: see tasks.py, and docs/adding-a-task.md in ctbench."""
