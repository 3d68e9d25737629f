"""Shared fixtures: the AllenSDK 2.16.2 fixture file and its reference dumps."""

from __future__ import annotations

import hashlib
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import xarray as xr

DATA = Path(__file__).parent / "data"
TINY = DATA / "tiny.nwb"
REF = DATA / "ref_tiny"

sys.path.insert(0, str(DATA))

xr.set_options(warn_for_unclosed_files=True)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private copy of tiny.nwb; its checksum must not change while tests read it."""
    dst = tmp_path_factory.mktemp("fixture") / "tiny.nwb"
    shutil.copyfile(TINY, dst)
    before = sha256(dst)
    yield dst
    assert sha256(dst) == before, "an ophys_xr test modified the input NWB file"


@pytest.fixture(scope="session")
def ref():
    from load_reference import load

    def _load(config: str, name: str):
        return load(REF / config, name)

    return _load
