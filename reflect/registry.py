"""A named registry of plug-ins (neuron models, surrogates, learners, backends): one place that keeps
them in order and turns an unknown name into an error that lists the choices."""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Plug-ins of one kind by name, in registration order (or the order ``before=`` asks for).

    Args:
        kind: what an entry is, for error messages (``"neuron model"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T, before: str | None = None) -> T:
        """Register ``entry`` as ``name`` (again registering the same entry is a no-op; another entry of
        the same name is an error), last or just ahead of ``before``; returns it."""
        if name in self._entries:
            if self._entries[name] is entry:
                return entry
            raise ValueError(f"a {self.kind} named {name!r} is already registered")
        items = list(self._entries.items())
        if before is not None:
            self.get(before)  # an unknown name is an error
        position = len(items) if before is None else self.names().index(before)
        items.insert(position, (name, entry))
        self._entries = dict(items)
        return entry

    def get(self, name: str) -> T:
        """The entry registered as ``name``; ``ValueError`` naming the registered ones otherwise."""
        try:
            return self._entries[name]
        except KeyError:
            choices = ", ".join(self._entries)
            raise ValueError(f"unknown {self.kind} {name!r}: choose one of {choices}") from None

    def names(self) -> tuple[str, ...]:
        """The registered names, in order."""
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries
