"""Import on first use: ``import ophys_xr`` costs what Python's import of its own small
modules costs, and the heavy libraries (xarray, dask, h5py, pandas, distributed, matplotlib)
load with the first function that needs them.

Two pieces, both plain :mod:`importlib`:

- :func:`attach` gives a package a PEP 562 ``__getattr__`` that imports the submodule
  holding a public name when the name is first asked for (``ophys_xr.open_session``);
- :func:`when_imported` runs a callback once a module is imported, now if it already is:
  the ``ds.ophys`` accessor is registered the moment xarray is imported, by whoever
  imports it, so ``ds.ophys`` works on any Dataset once ``import ophys_xr`` ran.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

__all__ = ["attach", "when_imported"]


def attach(package: str, names: Mapping[str, str]
           ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: ``names`` maps each public name to
    the submodule (relative to ``package``) that defines it; a name equal to its module's
    name is the submodule itself."""

    def __getattr__(name: str) -> Any:
        try:
            module_name = names[name]
        except KeyError:
            msg = f"module {package!r} has no attribute {name!r}"
            raise AttributeError(msg) from None
        module = importlib.import_module(f"{package}.{module_name}")
        value = module if name == module_name else getattr(module, name)
        setattr(sys.modules[package], name, value)  # later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted(set(names) | set(vars(sys.modules[package])))

    return __getattr__, __dir__


_lock = threading.Lock()


class _Loader(importlib.abc.Loader):
    """Runs the real loader, then the callbacks waiting for the module."""

    def __init__(self, loader: importlib.abc.Loader, finder: _Finder) -> None:
        self.loader = loader
        self.finder = finder

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        self.finder.done(module)


class _Finder(importlib.abc.MetaPathFinder):
    """Waits on ``sys.meta_path`` for one module and calls back each time it is executed.

    It stays there: a module dropped from ``sys.modules`` and imported again (sphinx does
    that after a failed import) is a new module, and the callbacks run for it too.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.callbacks: list[Callable[[ModuleType], None]] = []
        self.searching = False

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.name or self.searching:
            return None
        self.searching = True  # find the real spec with the other finders
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self.searching = False
        if spec is None or spec.loader is None:
            return None
        spec.loader = _Loader(spec.loader, self)
        return spec

    def done(self, module: ModuleType) -> None:
        # a caller that executes the module itself (sphinx's autodoc) may not have put it in
        # sys.modules yet: the callbacks, importing it, must find this one, not a second copy
        sys.modules.setdefault(self.name, module)
        with _lock:
            callbacks = list(self.callbacks)
        for callback in callbacks:
            callback(module)


def when_imported(name: str, callback: Callable[[ModuleType], None]) -> None:
    """Call ``callback(module)`` when the module ``name`` is imported (now, if it is), and
    again whenever it is imported anew; ``callback`` must be idempotent."""
    with _lock:
        module = sys.modules.get(name)
        finder = next((f for f in sys.meta_path
                       if isinstance(f, _Finder) and f.name == name), None)
        if finder is None:
            finder = _Finder(name)
            sys.meta_path.insert(0, finder)
        finder.callbacks.append(callback)
    if module is not None:
        callback(module)
