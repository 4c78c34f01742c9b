"""Name -> object registries filled from built-in packages and installed entry points.

Like timm's model registry, but every entry remembers where it came from, so that a
clash between two plugins names both sources instead of letting one win silently.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from importlib import metadata
from typing import Callable, Generic, Iterable, Iterator, TypeVar

from benchmark.core.errors import RegistryError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    source: str


class Registry(Generic[T]):
    def __init__(self, kind: str, name_of: Callable[[T], str]):
        self.kind = kind
        self._name_of = name_of
        self._entries: dict[str, Entry[T]] = {}

    def add(self, obj: T, source: str) -> T:
        name = self._name_of(obj)
        if name in self._entries:
            first = self._entries[name].source
            raise RegistryError(f"duplicate {self.kind} name {name!r}: defined by {first} and by {source}")
        self._entries[name] = Entry(name, obj, source)
        return obj

    def copy(self) -> "Registry[T]":
        clone: Registry[T] = Registry(self.kind, self._name_of)
        clone._entries = dict(self._entries)
        return clone

    def add_many(self, objs: Iterable[T], source: str) -> None:
        for obj in objs:
            self.add(obj, source)

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise RegistryError(f"unknown {self.kind} {name!r} (known: {known})") from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def load_entry_points(self, group: str) -> None:
        """Each entry point resolves to an object, a list of them, or a callable returning either."""
        for ep in sorted(metadata.entry_points(group=group), key=lambda e: (e.name, e.value)):
            source = f"entry point {ep.name!r} = {ep.value} (distribution {_dist_name(ep)})"
            try:
                loaded = ep.load()
            except Exception as exc:  # a broken plugin must not take the whole CLI down silently
                raise RegistryError(f"cannot load {source}: {type(exc).__name__}: {exc}") from exc
            if inspect.isfunction(loaded):
                loaded = loaded()
            self.add_many(loaded if isinstance(loaded, (list, tuple)) else [loaded], source)


def _dist_name(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.name if dist is not None else "unknown"
