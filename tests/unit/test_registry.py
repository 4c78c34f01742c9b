from importlib import metadata

import pytest

from benchmark.catalog.registries import checkpoint_registry, task_registry
from benchmark.core.errors import RegistryError
from benchmark.core.registry import Registry
from benchmark.core.specs import CheckpointSpec


def spec(name):
    return CheckpointSpec(name=name, arch="resnet18", pretraining_domain="none")


def test_duplicate_name_names_both_sources():
    registry = Registry("checkpoint", lambda c: c.name)
    registry.add(spec("x"), "source-one")
    with pytest.raises(RegistryError) as err:
        registry.add(spec("x"), "source-two")
    assert "source-one" in str(err.value) and "source-two" in str(err.value)


def test_unknown_name_lists_known_ones():
    registry = Registry("task", lambda c: c.name)
    registry.add(spec("alpha"), "here")
    with pytest.raises(RegistryError, match="alpha"):
        registry.get("beta")


def test_builtins_are_registered_with_their_source():
    assert "phantom-body-region" in task_registry()
    assert "random" in checkpoint_registry()
    assert "tasks.phantom_region" in task_registry().entry("phantom-body-region").source


class FakeEntryPoint:
    def __init__(self, name, value, loaded):
        self.name, self.value, self._loaded, self.dist = name, value, loaded, None

    def load(self):
        return self._loaded


def test_entry_points_load_objects_lists_and_factories(monkeypatch):
    points = [FakeEntryPoint("one", "pkg:one", spec("one")),
              FakeEntryPoint("many", "pkg:many", [spec("two"), spec("three")]),
              FakeEntryPoint("factory", "pkg:make", lambda: spec("four"))]
    monkeypatch.setattr(metadata, "entry_points", lambda group: points if group == "g" else [])
    registry = Registry("checkpoint", lambda c: c.name)
    registry.load_entry_points("g")
    assert registry.names() == ["four", "one", "three", "two"]
    assert "pkg:many" in registry.entry("two").source


def test_entry_point_clashing_with_builtin_is_an_error(monkeypatch):
    monkeypatch.setattr(metadata, "entry_points", lambda group: [FakeEntryPoint("r", "evil:random", spec("random"))])
    registry = Registry("checkpoint", lambda c: c.name)
    registry.add(spec("random"), "built-in package baselines")
    with pytest.raises(RegistryError, match="built-in package baselines.*evil:random"):
        registry.load_entry_points("g")
