"""A loopback bucket laid out like the Visual Behavior Ophys release (tests, notebooks, benchmarks).

:func:`build_release` writes, under a folder, what the release's S3 bucket holds
(``visual-behavior-ophys/manifests/*_manifest_v<version>.json``,
``visual-behavior-ophys/project_metadata/*.csv``,
``visual-behavior-ophys/behavior_ophys_experiments/*.nwb``,
``visual-behavior-ophys/behavior_sessions/*.nwb``) for two versions of a small simulated
release: mice with a container imaged in familiar (``OPHYS_1_images_A``, the passive
``OPHYS_2_images_A_passive``) and novel (``OPHYS_4_images_B``) sessions whose cells share
``cell_specimen_id``s, a two-plane mesoscope session, and a behavior-only training session.
The metadata tables have the AllenSDK's columns, computed from the simulated sessions as the
AllenSDK's metadata writer computes them.  Version ``1.0.0`` lacks the novel sessions and
holds an older file of the first experiment (fewer cells); ``1.0.1`` is the latest.

:func:`serve_bucket` serves the folder on 127.0.0.1 as S3 does over HTTPS: objects by
key with Range support (the server of ``_http``), ``?versionId=`` selecting a stored version
of an object, and ``?list-type=2&prefix=`` listing keys (ListObjectsV2 XML).  Fault modes:
``server.ranges = False`` (no range requests), ``server.hidden`` (keys answered 404),
``server.swap`` (key -> local file served in its place), ``server.latency`` (seconds added to
every request), and the faults of ``_http.serve``.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import functools
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
import pandas as pd
import xarray as xr
from _http import _Handler, serve

from ophys_xr.testing import simulate_multiplane_session, simulate_session, write_nwb

PROJECT = "visual-behavior-ophys"
#: The host the manifests name (as in the real release); clients rewrite it to base_url.
S3_URL = "https://visual-behavior-ophys-data.s3-us-west-2.amazonaws.com"
MANIFEST = "visual-behavior-ophys_project_manifest_v{}.json"
VERSIONS = ("1.0.0", "1.0.1")
_IMAGES_B = ("im000", "im106", "im075", "im073", "im045", "im054", "im031", "im035")
_OLD = ".versions"

BEHAVIOR_SESSION_COLUMNS = (
    "behavior_session_id", "ophys_session_id", "ophys_container_id", "mouse_id", "indicator",
    "full_genotype", "driver_line", "cre_line", "reporter_line", "sex", "age_in_days",
    "project_code", "session_type", "session_number", "image_set", "behavior_type",
    "experience_level", "prior_exposures_to_session_type", "prior_exposures_to_image_set",
    "prior_exposures_to_omissions", "date_of_acquisition", "equipment_name",
    "imaging_plane_group_count", "num_depths_per_area", "num_targeted_structures",
    "ophys_experiment_id", "file_id",
)
OPHYS_SESSION_COLUMNS = (
    "ophys_session_id", "behavior_session_id", "ophys_container_id", "mouse_id", "indicator",
    "full_genotype", "driver_line", "cre_line", "reporter_line", "sex", "age_in_days",
    "project_code", "session_type", "session_number", "image_set", "behavior_type",
    "experience_level", "prior_exposures_to_session_type", "prior_exposures_to_image_set",
    "prior_exposures_to_omissions", "date_of_acquisition", "equipment_name",
    "num_targeted_structures", "imaging_plane_group_count", "ophys_experiment_id",
    "num_depths_per_area",
)
OPHYS_EXPERIMENT_COLUMNS = (
    "ophys_experiment_id", "behavior_session_id", "ophys_session_id", "ophys_container_id",
    "mouse_id", "indicator", "full_genotype", "driver_line", "cre_line", "reporter_line", "sex",
    "age_in_days", "imaging_depth", "targeted_structure", "targeted_imaging_depth",
    "imaging_plane_group", "project_code", "session_type", "session_number", "image_set",
    "behavior_type", "passive", "experience_level", "prior_exposures_to_session_type",
    "prior_exposures_to_image_set", "prior_exposures_to_omissions", "date_of_acquisition",
    "equipment_name", "file_id",
)
OPHYS_CELLS_COLUMNS = ("cell_roi_id", "cell_specimen_id", "ophys_experiment_id")


@dataclass
class Release:
    """What :func:`build_release` wrote."""

    root: Path
    #: version -> ophys_experiment_id -> the Dataset written (lazy; its attrs are the row's)
    experiments: dict[str, dict[int, xr.Dataset]] = field(default_factory=dict)
    #: behavior_session_id of the behavior-only sessions
    behavior_only: list[int] = field(default_factory=list)
    #: ophys_container_id -> its cell_specimen_ids
    containers: dict[int, list[int]] = field(default_factory=dict)
    #: version -> object key -> (version_id, blake2b)
    objects: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)

    def manifest_name(self, version: str = VERSIONS[-1]) -> str:
        return MANIFEST.format(version)

    def key(self, ophys_experiment_id: int) -> str:
        folder = f"{PROJECT}/behavior_ophys_experiments"
        return f"{folder}/behavior_ophys_experiment_{ophys_experiment_id}.nwb"


def blake2b(path: Path) -> str:
    """The AllenSDK's file hash (``file_hash_from_path``)."""
    digest = hashlib.blake2b()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _version_id(key: str, tag: str) -> str:
    """An S3-like version id; holds '+' and '/' so that clients must URL-encode it."""
    raw = base64.b64encode(hashlib.sha256(f"{key}@{tag}".encode()).digest()).decode()
    return f"{raw[:24]}+{tag}/{raw[24:32]}"


def _stored(root: Path, key: str, version_id: str) -> Path:
    """Where a version of an object is kept (a sibling tree of the bucket's objects)."""
    name = hashlib.sha1(version_id.encode()).hexdigest()
    return root / _OLD / hashlib.sha1(key.encode()).hexdigest() / name


# ---- the simulated release ---------------------------------------------------------------


def _set_cells(ds: xr.Dataset, ids: Sequence[int], seed: int) -> xr.Dataset:
    """Give the valid ROIs the container's cell_specimen_ids (the others new ones)."""
    valid = ds["valid_roi"].values
    rng = np.random.default_rng(seed)
    new = 1_200_000_000 + rng.choice(1_000_000, len(valid), replace=False)
    new[np.flatnonzero(valid)] = np.asarray(ids, dtype=np.int64)[: int(valid.sum())]
    return ds.assign_coords(cell_specimen_id=new.astype(np.int64))


def _session(kind: str, *, seed: int, n_cells: int, minutes: float, attrs: dict[str, Any],
             cells: Sequence[int] | None = None) -> xr.Dataset:
    kwargs: dict[str, Any] = {"n_cells": n_cells, "minutes": minutes, "seed": seed}
    if kind == "passive":
        kwargs["passive"] = True
    if kind == "novel":
        kwargs["image_names"] = _IMAGES_B
    if kind == "training":
        kwargs["behavior_only"] = True
    ds = simulate_session(**kwargs)
    if cells is not None:
        ds = _set_cells(ds, cells, seed)
    ds.attrs.update(attrs)
    return ds


def _mouse_attrs(ds: xr.Dataset) -> dict[str, Any]:
    keys = ("sex", "reporter_line", "cre_line", "driver_line", "mouse_id", "full_genotype",
            "indicator")
    return {k: ds.attrs[k] for k in keys if k in ds.attrs}


def _sessions(*, mice: int, n_cells: int, minutes: float, multiplane: bool
              ) -> list[dict[str, Any]]:
    """The simulated behavior sessions: each a dict with its planes (Datasets) and kind."""
    out: list[dict[str, Any]] = []
    start = datetime(2019, 9, 20, 9, 59, 38, 837000, tzinfo=UTC)
    ids = iter(range(1, 10_000))
    for m in range(mice):
        base = simulate_session(minutes=0.3, seed=100 + m, behavior_only=True,
                                templates=False, eye_tracking=False)
        mouse = {**_mouse_attrs(base), "mouse_id": str(457_841 + m)}
        container = 1_018_028_000 + 10 * m
        pool = [1_086_600_000 + 100 * m + i for i in range(n_cells + 3)]
        subsets = (pool[:n_cells], pool[1:n_cells + 1], pool[3:n_cells + 3])
        plan = (("training", "TRAINING_5_images_A_handoff_ready", None),
                ("active", "OPHYS_1_images_A", subsets[0]),
                ("passive", "OPHYS_2_images_A_passive", subsets[1]),
                ("novel", "OPHYS_4_images_B", subsets[2]))
        for day, (kind, session_type, cells) in enumerate(plan):
            n = next(ids)
            attrs = {**mouse, "session_type": session_type,
                     "date_of_acquisition": (start + timedelta(days=7 * m + day)).isoformat(
                         timespec="microseconds"),
                     "behavior_session_id": 951_520_000 + n,
                     "age_in_days": 120 + day}
            if kind != "training":
                attrs |= {"ophys_session_id": 951_410_000 + n,
                          "ophys_experiment_id": 951_980_000 + n,
                          "ophys_container_id": container}
            ds = _session(kind, seed=10 * m + day, n_cells=n_cells, minutes=minutes,
                          attrs=attrs, cells=cells)
            out.append({"kind": kind, "planes": [ds], "mouse": m})
    if multiplane:
        n = next(ids)
        planes = simulate_multiplane_session(n_planes=2, n_cells=n_cells, minutes=minutes,
                                             seed=999)
        when = (start + timedelta(days=7 * mice)).isoformat(timespec="microseconds")
        for group, ds in enumerate(planes):
            ds.attrs.update({"behavior_session_id": 951_520_000 + n,
                             "ophys_session_id": 951_410_000 + n,
                             "ophys_experiment_id": 951_990_000 + 2 * n + group,
                             "ophys_container_id": 1_018_029_000 + group,
                             "date_of_acquisition": when, "mouse_id": "500000"})
        out.append({"kind": "active", "planes": planes, "mouse": mice})
    return out


def _row(ds: xr.Dataset) -> dict[str, Any]:
    """The table columns that come from one session's attributes."""
    a = ds.attrs
    session_type = a["session_type"]
    number = re.match(r"OPHYS_(\d+)", session_type)
    image_set = re.search(r"images_([A-Z])", session_type)
    return {
        "behavior_session_id": a["behavior_session_id"],
        "ophys_session_id": a.get("ophys_session_id"),
        "ophys_container_id": a.get("ophys_container_id"),
        "ophys_experiment_id": a.get("ophys_experiment_id"),
        "mouse_id": a["mouse_id"], "indicator": a.get("indicator", "GCaMP6f"),
        "full_genotype": a["full_genotype"], "driver_line": repr(list(a["driver_line"])),
        "cre_line": a["cre_line"], "reporter_line": a["reporter_line"], "sex": a["sex"],
        "age_in_days": a["age_in_days"], "project_code": a["project_code"],
        "session_type": session_type,
        "session_number": int(number.group(1)) if number else None,
        "image_set": f"images_{image_set.group(1)}" if image_set else "gratings",
        "behavior_type": "passive_viewing" if "passive" in session_type else "active_behavior",
        "passive": "passive" in session_type,
        "date_of_acquisition": str(pd.Timestamp(a["date_of_acquisition"])),
        "equipment_name": a["equipment_name"],
        "imaging_depth": a.get("imaging_depth"),
        "targeted_structure": a.get("targeted_structure"),
        "targeted_imaging_depth": a.get("targeted_imaging_depth"),
        "imaging_plane_group": a.get("imaging_plane_group"),
        "imaging_plane_group_count": a.get("imaging_plane_group_count"),
    }


def _exposures(rows: pd.DataFrame) -> pd.DataFrame:
    """Prior exposures and experience level as the AllenSDK computes them, per mouse."""
    rows = rows.sort_values("date_of_acquisition").copy()
    rows["prior_exposures_to_session_type"] = rows.groupby(
        ["mouse_id", "session_type"]).cumcount()
    rows["prior_exposures_to_image_set"] = rows.groupby(["mouse_id", "image_set"]).cumcount()
    has_omissions = rows["session_type"].str.startswith("OPHYS").astype(int)
    rows["prior_exposures_to_omissions"] = (
        has_omissions.groupby(rows["mouse_id"]).cumsum() - has_omissions)
    level = np.full(len(rows), "None", dtype=object)
    number = rows["session_number"]
    level[rows["session_type"].str.startswith("TRAINING").to_numpy()] = "Training"
    level[number.isin([0, 1, 2, 3]).to_numpy()] = "Familiar"
    novel = number.isin([4, 5, 6]).to_numpy()
    first = (rows["prior_exposures_to_image_set"] == 0).to_numpy()
    level[novel & first] = "Novel 1"
    level[novel & ~first] = "Novel >1"
    rows["experience_level"] = level
    return rows


def _tables(sessions: list[dict[str, Any]], file_ids: dict[tuple[str, int], int]
            ) -> dict[str, pd.DataFrame]:
    """The four metadata tables of these sessions, with the AllenSDK's columns."""
    behavior = []
    for s in sessions:
        planes = s["planes"]
        row = _row(planes[0])
        if s["kind"] != "training":
            row["ophys_experiment_id"] = [p.attrs["ophys_experiment_id"] for p in planes]
            row["ophys_container_id"] = [p.attrs["ophys_container_id"] for p in planes]
            structures = {p.attrs["targeted_structure"] for p in planes}
            row |= {"num_targeted_structures": len(structures),
                    "num_depths_per_area": len(planes) // len(structures),
                    "file_id": -999}
        else:
            row["file_id"] = file_ids["behavior", row["behavior_session_id"]]
        behavior.append(row)
    sessions_df = _exposures(pd.DataFrame(behavior))
    exposure_columns = ["behavior_session_id", "experience_level",
                        "prior_exposures_to_session_type", "prior_exposures_to_image_set",
                        "prior_exposures_to_omissions"]
    experiments = pd.DataFrame([
        {**_row(p), "file_id": file_ids["experiment", p.attrs["ophys_experiment_id"]]}
        for s in sessions if s["kind"] != "training" for p in s["planes"]])
    experiments = experiments.merge(sessions_df[exposure_columns], on="behavior_session_id")
    experiments["image_set"] = experiments["image_set"].str[-1]
    cells = pd.DataFrame([
        {"cell_roi_id": int(roi), "cell_specimen_id": int(csid),
         "ophys_experiment_id": p.attrs["ophys_experiment_id"]}
        for s in sessions if s["kind"] != "training" for p in s["planes"]
        for roi, csid, valid in zip(p["cell_roi_id"].values, p["cell_specimen_id"].values,
                                    p["valid_roi"].values, strict=True) if valid])
    ophys = sessions_df[sessions_df["ophys_session_id"].notna()]
    return {
        "behavior_session_table": sessions_df[list(BEHAVIOR_SESSION_COLUMNS)],
        "ophys_session_table": ophys[list(OPHYS_SESSION_COLUMNS)],
        "ophys_experiment_table": experiments[list(OPHYS_EXPERIMENT_COLUMNS)],
        "ophys_cells_table": cells[list(OPHYS_CELLS_COLUMNS)],
    }


def build_release(root: str | os.PathLike[str], *, mice: int = 1, n_cells: int = 4,
                  minutes: float = 0.5, multiplane: bool = True) -> Release:
    """Write the simulated release (two versions) under ``root``; see the module docstring."""
    root = Path(root)
    release = Release(root=root)
    sessions = _sessions(mice=mice, n_cells=n_cells, minutes=minutes, multiplane=multiplane)
    # the first experiment was re-released: version 1.0.0 holds an older file of it
    first = sessions[1]["planes"][0]
    old_first = _session("active", seed=4242, n_cells=max(1, n_cells - 1), minutes=minutes,
                         attrs=dict(first.attrs))
    file_ids: dict[tuple[str, int], int] = {}
    for s in sessions:  # experiments first, then behavior sessions (the AllenSDK's order)
        for p in s["planes"] if s["kind"] != "training" else []:
            file_ids["experiment", p.attrs["ophys_experiment_id"]] = len(file_ids)
    for s in sessions:
        if s["kind"] == "training":
            file_ids["behavior", s["planes"][0].attrs["behavior_session_id"]] = len(file_ids)
    for version in VERSIONS:
        latest = version == VERSIONS[-1]
        chosen = [s for s in sessions if latest or s["kind"] != "novel"]
        if not latest:
            chosen = [{**s, "planes": [old_first]} if s is sessions[1] else s for s in chosen]
        objects: dict[str, tuple[str, str]] = {}
        data_files: dict[str, dict[str, str]] = {}
        for s in chosen:
            for p in s["planes"]:
                if s["kind"] == "training":
                    bid = p.attrs["behavior_session_id"]
                    key = f"{PROJECT}/behavior_sessions/behavior_session_{bid}.nwb"
                    file_id = file_ids["behavior", bid]
                    if latest:
                        release.behavior_only.append(bid)
                else:
                    key = release.key(p.attrs["ophys_experiment_id"])
                    file_id = file_ids["experiment", p.attrs["ophys_experiment_id"]]
                    release.experiments.setdefault(version, {})[
                        p.attrs["ophys_experiment_id"]] = p
                tag = "v0" if p is old_first else "v1"
                objects[key] = _put(root, key, tag, lambda path, p=p: write_nwb(p, path))
                data_files[str(file_id)] = _entry(key, objects[key])
        metadata_files = {}
        for name, df in _tables(chosen, file_ids).items():
            key = f"{PROJECT}/project_metadata/{name}.csv"
            objects[key] = _put(root, key, version,
                                lambda path, df=df: df.to_csv(path, index=False))
            metadata_files[name] = _entry(key, objects[key])
        manifest = {
            "project_name": PROJECT, "manifest_version": version,
            "data_pipeline": [{"name": "AllenSDK", "version": "2.16.2", "comment": ""}],
            "metadata_file_id_column_name": "file_id",
            "metadata_files": metadata_files, "data_files": data_files,
        }
        key = f"{PROJECT}/manifests/{MANIFEST.format(version)}"
        _put(root, key, version, lambda path, m=manifest: path.write_text(json.dumps(m, indent=2)))
        release.objects[version] = objects
    for s in sessions:
        if s["kind"] != "training":
            for p in s["planes"]:
                csids = [int(c) for c, v in zip(p["cell_specimen_id"].values,
                                                p["valid_roi"].values, strict=True) if v]
                release.containers.setdefault(p.attrs["ophys_container_id"], []).extend(csids)
    return release


@functools.cache
def shared_release() -> Release:
    """One default release per test process (in a temporary folder removed at exit)."""
    root = Path(tempfile.mkdtemp(prefix="ophys_xr_bucket_"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return build_release(root / "bucket")


def _entry(key: str, stored: tuple[str, str]) -> dict[str, str]:
    return {"url": f"{S3_URL}/{key}", "version_id": stored[0], "file_hash": stored[1]}


def _put(root: Path, key: str, tag: str, write: Any) -> tuple[str, str]:
    """Store a version of an object (once per tag); the latest is also at its key."""
    version_id = _version_id(key, tag)
    stored = _stored(root, key, version_id)
    if not stored.exists():
        stored.parent.mkdir(parents=True, exist_ok=True)
        write(stored)
    current = root / key
    current.parent.mkdir(parents=True, exist_ok=True)
    current.unlink(missing_ok=True)
    os.link(stored, current)
    return version_id, blake2b(stored)


# ---- the server ------------------------------------------------------------------------


class _BucketHandler(_Handler):
    """``_http``'s handler (Range, byte counts) with S3's version ids, listing and faults."""

    def _key(self) -> tuple[str, dict[str, list[str]]]:
        parts = urllib.parse.urlsplit(self.path)
        return urllib.parse.unquote(parts.path).lstrip("/"), urllib.parse.parse_qs(parts.query)

    def translate_path(self, path: str) -> str:
        key, query = self._key()
        root = Path(self.directory)
        if key in self.server.hidden:
            return str(root / "__hidden__")
        if key in self.server.swap:
            return str(self.server.swap[key])
        if "versionId" in query:
            return str(_stored(root, key, query["versionId"][0]))
        return str(root / key) if not key.startswith(_OLD) else str(root / "__hidden__")

    def _begin(self) -> None:
        if self.server.latency:
            time.sleep(self.server.latency)

    def do_GET(self) -> None:
        self._begin()
        key, query = self._key()
        if key == "" and query.get("list-type") == ["2"]:
            self._list(query.get("prefix", [""])[0])
            return
        super().do_GET()

    def do_HEAD(self) -> None:
        self._begin()
        super().do_HEAD()

    def _list(self, prefix: str) -> None:
        root = Path(self.directory)
        keys = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                      if p.is_file() and not p.relative_to(root).as_posix().startswith(_OLD))
        contents = "".join(f"<Contents><Key>{escape(k)}</Key></Contents>"
                           for k in keys if k.startswith(prefix))
        body = ('<?xml version="1.0" encoding="UTF-8"?>'
                '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                f"<Prefix>{escape(prefix)}</Prefix>{contents}"
                "<IsTruncated>false</IsTruncated></ListBucketResult>").encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextlib.contextmanager
def serve_bucket(root: str | os.PathLike[str], *, latency: float = 0.0) -> Iterator[Any]:
    """Serve a folder written by :func:`build_release` on 127.0.0.1 like the S3 bucket.

    The server of ``_http.serve`` (``url``, ``bytes_sent``, ``requests`` and its fault
    modes, ``ranges = False`` among them) with this module's handler, plus ``latency``
    (seconds added to each request), ``hidden`` and ``swap`` (see the module docstring).
    """
    with serve(root) as server:
        server.latency = latency
        server.hidden = set()
        server.swap = {}
        server.RequestHandlerClass = functools.partial(_BucketHandler, directory=str(root))
        yield server
