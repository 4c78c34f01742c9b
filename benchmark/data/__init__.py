"""Task data: readers for real on-disk formats, transforms, the slice cache, patient-grouped
split manifests and the Task base class that plugins subclass.
"""
