"""Promises about the versions of the packages ophys_xr needs, and about the optional ones.

- Every declared lower bound works: the releases known not to (yanked ones, ones that crash,
  lose coordinate attributes or warn on import) are outside the declared ranges; CI runs the
  suite once with every lower bound installed (``uv pip install --resolution lowest-direct``,
  job "minimum" of ``.ci/run``), and then the installed versions are the declared bounds.
- The installed versions satisfy the declared ones (a stale environment is named, with the
  command that updates it).
- ``environment.yml`` declares the same lower bounds as ``pyproject.toml``.
- flox and dask.distributed are optional: they are not core requirements but extras
  (``ophys_xr[flox]``, ``ophys_xr[distributed]``), and the ``test`` extra keeps them.
- Without any optional package (flox, distributed, matplotlib, pynwb, hdmf, netCDF4, aiohttp,
  requests, pynapple, s3fs) the core imports, opens a session, computes, computes event-locked
  responses and groups them, writes and reopens a Zarr store and maps a function over sessions.
- A feature used without its optional package raises ``MissingDependencyError`` naming the
  extra to install.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

import ophys_xr

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

#: CI's job "minimum" sets this; its environment holds the declared lower bounds.
JOB = os.environ.get("OPHYS_XR_CI_JOB", "")

#: Releases that do not work with ophys_xr, and why; the declared ranges must exclude each.
KNOWN_BAD = [
    ("zarr", "3.0.0", "yanked: zarr.load() deletes data"),
    ("zarr", "3.0.7", "yanked: zarr.load() deletes data"),
    ("zarr", "3.1.0", "warns 'vlen-utf8 is not part of the Zarr format 3 specification' per write"),
    ("xarray", "2025.1.0", "sessions fail to build: conflicting cell_specimen_id indexes"),
    ("xarray", "2025.3.1", "stimulus_response raises"),
    ("typer", "0.12.0", "`ophys-xr --help` crashes with click 8.5"),
    ("typer", "0.25.1", "warns on import with click 8.5 (get_binary_stream)"),
    ("pandas", "2.2.0", "warns on import when pyarrow is absent"),
    ("scipy", "1.11.0", "yanked"),
    ("h5py", "3.10.0", "no File.visititems_links"),
    ("matplotlib", "3.10.6", "warns on import with pyparsing 3.3"),
    ("pynwb", "3.0.0", "warns reading the files ophys_xr writes"),
    ("netCDF4", "1.6.1", "no wheel for Python 3.11: needs HDF5 headers to build"),
    ("pynapple", "0.11.2", "shifts the times it is given by up to 5e-10 s"),
]

#: Optional packages: the core must work without every one of them.
OPTIONAL = ("flox", "distributed", "matplotlib", "pynwb", "hdmf", "netCDF4", "aiohttp",
            "requests", "pynapple", "s3fs")


def _requirements(*groups: str) -> list[Requirement]:
    """The requirements of the core (``"core"``) and of the named extras."""
    lines: list[str] = []
    for group in groups:
        lines += (PYPROJECT["dependencies"] if group == "core"
                  else PYPROJECT["optional-dependencies"][group])
    return [Requirement(line) for line in lines]


def _specifiers(name: str) -> list[SpecifierSet]:
    groups = ["core", *PYPROJECT["optional-dependencies"]]
    return [req.specifier for req in _requirements(*groups)
            if _normal(req.name) == _normal(name)]


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lower_bound(req: Requirement) -> Version:
    (bound,) = [Version(spec.version) for spec in req.specifier if spec.operator == ">="]
    return bound


@pytest.mark.parametrize(("name", "version", "why"), KNOWN_BAD,
                         ids=[f"{name}-{version}" for name, version, _ in KNOWN_BAD])
def test_releases_that_do_not_work_are_excluded(name, version, why) -> None:
    specifiers = _specifiers(name)
    assert specifiers, f"{name} is declared nowhere in pyproject.toml"
    for spec in specifiers:
        assert Version(version) not in spec, f"{name} {spec} admits {version}, which {why}"


def test_installed_versions_are_the_declared_ones() -> None:
    stale = []
    for req in _requirements("core", "test"):
        installed = Version(metadata.version(req.name))
        if installed not in req.specifier:
            stale.append(f"{req.name} {installed} (declared {req.specifier})")
    assert not stale, f"update the environment: pip install -e \".[test]\"; stale: {stale}"


@pytest.mark.skipif(JOB != "minimum", reason="only CI's job 'minimum' installs the lower bounds")
def test_the_minimum_job_tests_the_declared_lower_bounds() -> None:
    off = []
    for req in _requirements("core", "test"):
        bound = _lower_bound(req)
        installed = Version(metadata.version(req.name))
        if installed.release[: len(bound.release)] != bound.release:
            off.append(f"{req.name} {installed} (declared >={bound})")
    assert not off, f"the job 'minimum' did not install the declared lower bounds: {off}"


def _conda_name(req: Requirement) -> str:
    if _normal(req.name) == "dask" and "distributed" in req.extras:
        return "distributed"
    return _normal(req.name)


def test_environment_yml_declares_the_same_lower_bounds() -> None:
    text = (ROOT / "environment.yml").read_text()
    pinned = re.findall(r"^ {2}- ([A-Za-z0-9_.-]+)>=(\S+)\s*$", text, re.MULTILINE)
    conda = {_normal(name): Version(bound) for name, bound in pinned}
    declared = {_conda_name(req): _lower_bound(req) for req in _requirements("core", "test")}
    differ = {name: (bound, conda.get(name)) for name, bound in declared.items()
              if conda.get(name) != bound}
    assert not differ, f"environment.yml differs from pyproject.toml (pyproject, conda): {differ}"


def test_flox_and_distributed_are_optional_extras() -> None:
    core = {_normal(req.name): req for req in _requirements("core")}
    assert "flox" not in core
    assert "distributed" not in core
    assert "distributed" not in core["dask"].extras
    extras = PYPROJECT["optional-dependencies"]
    assert [Requirement(r).name for r in extras["flox"]] == ["flox"]
    assert [Requirement(r).extras for r in extras["distributed"]] == [{"distributed"}]
    test = {_normal(req.name): req for req in _requirements("test")}
    assert "flox" in test
    assert "distributed" in test["dask"].extras


_WITHOUT_OPTIONAL = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None  # import raises ImportError, find_spec returns None
import ophys_xr

path, out = sys.argv[1], sys.argv[2]
ds = ophys_xr.open_session(path)
assert ds.dff.mean("time").compute().sizes["cell_specimen_id"] == ds.sizes["cell_specimen_id"]
resp = ds.ophys.stimulus_response(data="dff", event="images", window=(-0.5, 0.75))
by_image = resp.mean_response.groupby("image_name").mean().compute()
assert by_image.sizes["image_name"] > 0
ds.ophys.to_zarr(out)
ophys_xr.open_session(out).close()
result = ophys_xr.map_sessions(lambda d: d.dff.mean("time"), [path])
assert len(result.results) == 1 and result.errors.empty, result.errors
ds.close()
loaded = sorted(name for name in {blocked!r} if sys.modules.get(name) is not None)
assert not loaded, loaded
print("ok")
"""


def test_core_works_without_any_optional_package(tiny_path, tmp_path) -> None:
    script = textwrap.dedent(_WITHOUT_OPTIONAL).format(blocked=OPTIONAL)
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", script, str(tiny_path), str(tmp_path / "s.zarr")],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")


def test_to_pynapple_without_pynapple_names_the_extra(tiny_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pynapple", None)
    with ophys_xr.open_session(tiny_path) as ds, pytest.raises(
        ophys_xr.MissingDependencyError, match=r"ophys_xr\[pynapple\]"
    ):
        ds.ophys.to_pynapple()


def test_plotting_without_matplotlib_names_the_extra(tiny_path, monkeypatch) -> None:
    for name in ("matplotlib", "matplotlib.pyplot"):
        monkeypatch.setitem(sys.modules, name, None)
    with ophys_xr.open_session(tiny_path) as ds, pytest.raises(
        ophys_xr.MissingDependencyError, match=r"ophys_xr\[plot\]"
    ):
        ds.ophys.plot_dff_heatmap(time=(20, 30))
