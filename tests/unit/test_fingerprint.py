"""The dataset fingerprint: file contents, not paths or mtimes; each file hashed once per location."""
import json
import os
import shutil

import pytest

from benchmark.core.specs import TaskSpec
from benchmark.data.fingerprint import (
    dataset_fingerprint,
    hash_cache_file,
    legacy_fingerprint,
    task_fingerprint,
)
from benchmark.data.task import Task


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "data"
    (root / "Training Batch 1").mkdir(parents=True)
    (root / "Training Batch 1" / "volume-0.nii").write_bytes(bytes(range(256)) * 64)
    (root / "Training Batch 1" / "segmentation-0.nii").write_bytes(b"\x00\x01" * 500)
    (root / "notes.txt").write_text("liver\n")
    return root


def copy_elsewhere(root, dest):
    """``cp -r`` as a user does it: new mtimes, another path."""
    copy = shutil.copytree(root, dest, copy_function=shutil.copy)
    for path in copy.rglob("*"):
        os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    return copy


def test_a_copy_elsewhere_with_new_mtimes_is_the_same_dataset(dataset, tmp_path):
    copy = copy_elsewhere(dataset, tmp_path / "elsewhere" / "LITS17")
    assert legacy_fingerprint(copy) != legacy_fingerprint(dataset)  # what the old formula got wrong
    cache = tmp_path / "file-hashes"
    first = dataset_fingerprint(dataset, cache)
    assert dataset_fingerprint(copy, cache) == first == dataset_fingerprint(copy) == dataset_fingerprint(dataset)
    assert len(first) == 64 and int(first, 16) >= 0
    # one cache file per location, each recording every file by path, size and mtime
    entries = json.loads(hash_cache_file(cache, copy).read_text())["files"]
    assert sorted(entries) == ["Training Batch 1/segmentation-0.nii", "Training Batch 1/volume-0.nii", "notes.txt"]
    assert entries["notes.txt"]["mtime_ns"] == 1_000_000_000 and entries["notes.txt"]["size"] == 6
    assert len(list(cache.glob("*.json"))) == 2


def test_one_changed_byte_of_the_same_size_is_another_dataset(dataset):
    before = dataset_fingerprint(dataset)
    volume = dataset / "Training Batch 1" / "volume-0.nii"
    data = bytearray(volume.read_bytes())
    data[1000] ^= 1
    volume.write_bytes(bytes(data))
    assert dataset_fingerprint(dataset) != before


def test_a_renamed_file_is_another_dataset(dataset):
    before = dataset_fingerprint(dataset)
    (dataset / "notes.txt").rename(dataset / "notes2.txt")
    assert dataset_fingerprint(dataset) != before


def test_a_cache_hit_reads_no_file(dataset, tmp_path):
    """Rewrite a file with other bytes of the same size and put its mtime back: the cached
    fingerprint is unchanged (the file was not read), while an uncached one sees the edit. A
    changed mtime makes the cache read the file again."""
    cache = tmp_path / "file-hashes"
    before = dataset_fingerprint(dataset, cache)
    volume = dataset / "Training Batch 1" / "volume-0.nii"
    stat = volume.stat()
    volume.write_bytes(bytes(reversed(volume.read_bytes())))
    os.utime(volume, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert dataset_fingerprint(dataset, cache) == before
    assert dataset_fingerprint(dataset) != before
    os.utime(volume, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert dataset_fingerprint(dataset, cache) == dataset_fingerprint(dataset) != before


def test_an_unreadable_cache_is_rebuilt(dataset, tmp_path):
    cache = tmp_path / "file-hashes"
    before = dataset_fingerprint(dataset, cache)
    hash_cache_file(cache, dataset).write_text("{not json")
    assert dataset_fingerprint(dataset, cache) == before
    assert json.loads(hash_cache_file(cache, dataset).read_text())["version"] == 1


def test_task_fingerprint_passes_the_cache_where_a_plugin_takes_it(dataset, tmp_path):
    spec = TaskSpec(name="t", version="1", domain="ct", kind="classification", class_names=["a", "b"],
                    metrics=["auc"], main_metric="auc")

    class Default(Task):
        pass

    class OldPlugin(Task):  # written for the older signature: fingerprint(self, root)
        def fingerprint(self, root):
            return "ab" * 32

    Default.spec = OldPlugin.spec = spec
    cache = tmp_path / "file-hashes"
    assert task_fingerprint(Default(), dataset, cache) == dataset_fingerprint(dataset)
    assert hash_cache_file(cache, dataset).is_file()
    assert task_fingerprint(OldPlugin(), dataset, cache) == "ab" * 32
