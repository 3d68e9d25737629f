"""``raise_if_dask_computes``, as in xarray's own test suite (xarray/tests/__init__.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import dask


class CountingScheduler:
    """A dask scheduler that counts computes and raises past ``max_computes``."""

    def __init__(self, max_computes: int = 0) -> None:
        self.total_computes = 0
        self.max_computes = max_computes

    def __call__(self, dsk: Any, keys: Any, **kwargs: Any) -> Any:
        self.total_computes += 1
        if self.total_computes > self.max_computes:
            msg = f"Too many computes. Total: {self.total_computes} > max: {self.max_computes}."
            raise RuntimeError(msg)
        return dask.get(dsk, keys, **kwargs)


@contextlib.contextmanager
def raise_if_dask_computes(max_computes: int = 0) -> Iterator[CountingScheduler]:
    scheduler = CountingScheduler(max_computes)
    with dask.config.set(scheduler=scheduler):
        yield scheduler
