"""The Visual Behavior Ophys release as users meet it: manifests, metadata tables, opening by id.

:class:`ProjectCache` has the names of the AllenSDK's ``VisualBehaviorOphysProjectCache``
(``from_s3_cache``, ``from_local_cache``, ``list_manifest_file_names``, ``load_manifest``,
``get_ophys_experiment_table``, ...) and reads the release as the AllenSDK 2.16 does: the
versions of the release are JSON manifests (``visual-behavior-ophys/manifests/``) that name
every file with its URL, S3 version id and blake2b hash; the four metadata tables are CSV
files (``visual-behavior-ophys/project_metadata/``) post-processed as the AllenSDK's
``BehaviorProjectCloudApi`` does; the cache folder on disk has the AllenSDK's layout
(``<cache_dir>/<manifest>.json``, ``<cache_dir>/visual-behavior-ophys-<version>/...``), so an
existing AllenSDK cache folder opens with :meth:`ProjectCache.from_local_cache` as it is.

Unlike the AllenSDK, an experiment is not downloaded whole before it is used:
:meth:`ProjectCache.open_experiment` opens the released file lazily by URL (HTTP range
requests; only what is used is transferred), or downloads it once through the checked
download cache (:func:`ophys_xr.datasets.fetch`) with ``download=True``.  Nothing here needs
boto3: the bucket is read over plain HTTPS (S3's ``ListObjectsV2`` for the manifest names).
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from ophys_xr import datasets
from ophys_xr._atomic import write_atomically
from ophys_xr.exceptions import (
    DownloadError,
    OptionError,
    OutputExistsError,
    SchemaError,
    SessionFileNotFoundError,
)

__all__ = [
    "BUCKET_URL",
    "METADATA_TABLES",
    "PROJECT_NAME",
    "Manifest",
    "OutdatedManifestWarning",
    "ProjectCache",
    "ReleaseFile",
    "default_cache_dir",
]

#: The release's S3 bucket over HTTPS (AWS Open Data, anonymous access).
BUCKET_URL = "https://visual-behavior-ophys-data.s3-us-west-2.amazonaws.com"
#: Prefix of every object of the release in the bucket.
PROJECT_NAME = "visual-behavior-ophys"
#: The metadata tables of a manifest, with the column each is indexed by.
METADATA_TABLES: Mapping[str, str] = {
    "behavior_session_table": "behavior_session_id",
    "ophys_session_table": "ophys_session_id",
    "ophys_experiment_table": "ophys_experiment_id",
    "ophys_cells_table": "cell_roi_id",
}
#: Columns holding Python lists written as strings (AllenSDK ``COL_EVAL_LIST``).
_LIST_COLUMNS = ("ophys_experiment_id", "ophys_container_id", "driver_line")
#: Columns typed as pandas ``Int64`` (AllenSDK ``VBO_INTEGER_COLUMNS``).
_INTEGER_COLUMNS = (
    "session_number", "age_in_days", "prior_exposures_to_image_set",
    "prior_exposures_to_session_type", "prior_exposures_to_omissions", "ophys_session_id",
    "imaging_plane_group_count", "imaging_plane_group", "targeted_areas",
    "num_depths_per_area", "num_targeted_structures", "cell_specimen_id",
)
#: Leading columns of the session and experiment tables (AllenSDK
#: ``VBO_METADATA_COLUMN_ORDER``); the other columns follow in the file's order.
_COLUMN_ORDER = (
    "behavior_session_id", "ophys_session_id", "ophys_container_id", "mouse_id", "indicator",
    "full_genotype", "driver_line", "cre_line", "reporter_line", "sex", "age_in_days",
    "imaging_depth", "targeted_structure", "targeted_imaging_depth",
    "imaging_plane_group_count", "imaging_plane_group", "project_code", "session_type",
    "session_number", "image_set", "behavior_type", "passive", "experience_level",
    "prior_exposures_to_session_type", "prior_exposures_to_image_set",
    "prior_exposures_to_omissions", "date_of_acquisition", "equipment_name",
    "num_depths_per_area", "ophys_experiment_id", "num_targeted_structures", "published_at",
    "isi_experiment_id",
)
#: ``file_id`` of a row without a file of its own (a behavior session with imaging).
DUMMY_FILE_ID = -999
_MANIFEST_NAME = re.compile(r".*_manifest_v(.+)\.json")
_LAST_USED = "_manifest_last_used.txt"
_TIMEOUT = 60.0

Mode = Literal["s3", "local", "static"]


class OutdatedManifestWarning(UserWarning):
    """A manifest older than the latest version of the release was loaded."""


def default_cache_dir() -> Path:
    """The project cache folder of :meth:`BehaviorOphysSession.from_lims`.

    ``<ophys_xr.datasets.cache_dir()>/visual-behavior-ophys-cache``.
    """
    return datasets.cache_dir() / f"{PROJECT_NAME}-cache"


@dataclass(frozen=True)
class ReleaseFile:
    """One file of a release version, as its manifest names it."""

    url: str
    version_id: str
    file_hash: str

    @property
    def key(self) -> str:
        """The object's path in the bucket (``visual-behavior-ophys/...``)."""
        return urllib.parse.unquote(urllib.parse.urlsplit(self.url).path).lstrip("/")


@dataclass(frozen=True)
class Manifest:
    """A version of the release: a parsed ``*_manifest_v<version>.json``.

    The JSON format is the AllenSDK's (``allensdk.api.cloud_cache``): ``project_name``,
    ``manifest_version``, ``metadata_file_id_column_name``, ``data_pipeline``,
    ``metadata_files`` (table name -> ``url``, ``version_id``, ``file_hash``) and
    ``data_files`` (``file_id`` -> the same).
    """

    name: str
    project_name: str
    version: str
    file_id_column: str
    data_pipeline: tuple[Mapping[str, Any], ...]
    metadata_files: Mapping[str, ReleaseFile]
    data_files: Mapping[str, ReleaseFile]

    @classmethod
    def from_json(cls, name: str, text: str | bytes, source: str) -> Manifest:
        """Parse a manifest; ``source`` (its path or URL) is named in errors.

        Raises
        ------
        SchemaError
            Not JSON, or a key or file entry of the format is missing.
        """
        try:
            data = json.loads(text)
        except ValueError as err:
            msg = f"{source!r} is not a JSON manifest ({err}); delete it and load it again"
            raise SchemaError(msg) from err
        keys = ("project_name", "manifest_version", "metadata_file_id_column_name",
                "metadata_files", "data_files")
        missing = [k for k in keys if not isinstance(data, dict) or k not in data]
        if missing:
            msg = (f"{source!r} is not a release manifest: it lacks {missing}; check the "
                   "bucket URL or delete the file and load it again")
            raise SchemaError(msg)

        def files(entries: Any, what: str) -> dict[str, ReleaseFile]:
            out = {}
            for key, entry in dict(entries).items():
                try:
                    out[str(key)] = ReleaseFile(str(entry["url"]), str(entry["version_id"]),
                                                str(entry["file_hash"]))
                except (KeyError, TypeError) as err:
                    msg = (f"{source!r}: the {what} entry {key!r} lacks url, version_id or "
                           "file_hash; the manifest is damaged, delete it and load it again")
                    raise SchemaError(msg) from err
            return out

        return cls(
            name=name,
            project_name=str(data["project_name"]),
            version=str(data["manifest_version"]),
            file_id_column=str(data["metadata_file_id_column_name"]),
            data_pipeline=tuple(data.get("data_pipeline", ())),
            metadata_files=files(data["metadata_files"], "metadata_files"),
            data_files=files(data["data_files"], "data_files"),
        )


def _version_key(name: str) -> tuple[Any, ...]:
    """Sort key of a manifest name by its semantic version (pre-releases first)."""
    match = _MANIFEST_NAME.fullmatch(name)
    version = match.group(1) if match else ""
    core, _, pre = version.partition("-")
    numbers = tuple(int(p) if p.isdigit() else -1 for p in core.split("."))
    return (numbers, pre == "", pre)


def _http_get(url: str, what: str) -> bytes:
    """The body of ``url``; a failure is a :class:`DownloadError` naming ``what``."""
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT) as response:
            body: bytes = response.read()
            return body
    except urllib.error.HTTPError as err:
        msg = (f"cannot read the {what} at {url!r}: HTTP {err.code} {err.reason}; check "
               "base_url (the bucket or a mirror of it)")
        raise DownloadError(msg) from err
    except (urllib.error.URLError, OSError) as err:
        msg = f"cannot read the {what} at {url!r}: {err}; check base_url and your network"
        raise DownloadError(msg) from err


class ProjectCache:
    """The Visual Behavior Ophys release: its versions, metadata tables and files by id.

    Make one with :meth:`from_s3_cache` (the bucket, or a mirror of it, over HTTPS; files
    are streamed or downloaded into ``cache_dir``) or :meth:`from_local_cache` (a folder
    that the AllenSDK or this class filled; nothing is downloaded).  The latest manifest,
    or the one last used in ``cache_dir``, is loaded on creation.

    Examples
    --------
    >>> cache = ophys_xr.ProjectCache.from_s3_cache("~/vbo")              # doctest: +SKIP
    >>> experiments = cache.get_ophys_experiment_table()                  # doctest: +SKIP
    >>> ids = experiments.query("cre_line == 'Vip-IRES-Cre'").index       # doctest: +SKIP
    >>> ds = cache.open_experiment(ids[0])       # lazy, streamed by URL  # doctest: +SKIP
    """

    def __init__(self, cache_dir: str | os.PathLike[str], *, base_url: str | None,
                 mode: Mode) -> None:
        self._dir = Path(cache_dir).expanduser().resolve()
        self._base_url = base_url.rstrip("/") if base_url is not None else None
        self._mode: Mode = mode
        self._manifest: Manifest | None = None
        self._tables: dict[str, pd.DataFrame] = {}
        if mode == "s3":
            self._dir.mkdir(parents=True, exist_ok=True)
        elif not self._dir.is_dir():
            msg = (f"No cache folder {str(self._dir)!r}; give the folder that an AllenSDK or "
                   "ophys_xr project cache filled, or use ProjectCache.from_s3_cache")
            raise SessionFileNotFoundError(msg)
        self._manifest_names = self._list_manifests()

    # ---- construction --------------------------------------------------------------

    @classmethod
    def from_s3_cache(cls, cache_dir: str | os.PathLike[str], *,
                      base_url: str = BUCKET_URL) -> ProjectCache:
        """The release in its bucket (or a mirror), with ``cache_dir`` for what is downloaded.

        Parameters
        ----------
        cache_dir
            Where manifests, metadata tables and downloaded files go (created if absent),
            laid out as the AllenSDK lays out its cache folder.
        base_url
            The bucket's URL (default the public release on AWS); a mirror must serve the
            same object paths, S3's ``?list-type=2&prefix=...`` listing and, for streaming,
            HTTP range requests.  The URLs in the manifests are taken relative to it.

        Returns
        -------
        ProjectCache
            With the manifest last used in ``cache_dir`` loaded, or else the latest.

        Raises
        ------
        DownloadError
            The bucket cannot be read (its URL and the HTTP status are named).
        """
        if not isinstance(base_url, str) or "://" not in base_url:
            msg = f"base_url must be an http(s) URL of the bucket, got {base_url!r}"
            raise OptionError(msg)
        cache = cls(cache_dir, base_url=base_url, mode="s3")
        cache._load_last_manifest()
        return cache

    @classmethod
    def from_local_cache(cls, cache_dir: str | os.PathLike[str], *,
                         use_static_cache: bool = False) -> ProjectCache:
        """A cache folder already on disk (AllenSDK's or ours); nothing is downloaded.

        Parameters
        ----------
        cache_dir
            A folder filled by ``VisualBehaviorOphysProjectCache.from_s3_cache`` or
            :meth:`from_s3_cache`: the manifests at its top, the files under
            ``visual-behavior-ophys-<version>/``.
        use_static_cache
            ``cache_dir`` holds the bucket's own layout (``visual-behavior-ophys/manifests``
            ...; e.g. the bucket mounted as a file system); only the latest manifest is
            available then (as in the AllenSDK).

        Returns
        -------
        ProjectCache

        Raises
        ------
        SessionFileNotFoundError
            The folder, or every manifest in it, is missing.
        """
        cache = cls(cache_dir, base_url=None, mode="static" if use_static_cache else "local")
        cache._load_last_manifest()
        return cache

    def __repr__(self) -> str:
        where = self._base_url if self._mode == "s3" else f"{self._mode} folder"
        return (f"<ProjectCache {self.current_manifest()} from {where}, "
                f"cache_dir={str(self._dir)!r}>")

    # ---- manifests -----------------------------------------------------------------

    def _list_manifests(self) -> list[str]:
        if self._mode == "s3":
            names = self._list_bucket(f"{PROJECT_NAME}/manifests/")
        else:
            folder = self._dir / PROJECT_NAME / "manifests" if self._mode == "static" \
                else self._dir
            names = [p.name for p in folder.glob("*.json") if _MANIFEST_NAME.fullmatch(p.name)]
        names = sorted(n for n in names if _MANIFEST_NAME.fullmatch(n))
        if not names:
            where = self._base_url if self._mode == "s3" else str(self._dir)
            msg = (f"No release manifest (*_manifest_v*.json) at {where!r}; check the "
                   "folder or the bucket URL")
            raise SessionFileNotFoundError(msg)
        if self._mode == "static":  # the AllenSDK's StaticLocalCache: the latest only
            names = [max(names, key=_version_key)]
        return names

    def _list_bucket(self, prefix: str) -> list[str]:
        """Names of the objects under ``prefix`` (S3 ListObjectsV2, every page)."""
        names: list[str] = []
        token: str | None = None
        while True:
            query = {"list-type": "2", "prefix": prefix}
            if token is not None:
                query["continuation-token"] = token
            url = f"{self._base_url}/?{urllib.parse.urlencode(query)}"
            body = _http_get(url, "list of manifests")
            try:
                root = ET.fromstring(body)
            except ET.ParseError as err:
                msg = (f"the list of manifests at {url!r} is not an S3 listing ({err}); "
                       "base_url must be the bucket (or a mirror answering ?list-type=2)")
                raise DownloadError(msg) from err
            ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
            names += [k.text.rsplit("/", 1)[-1] for k in root.iter(f"{ns}Key") if k.text]
            truncated = root.findtext(f"{ns}IsTruncated", "false").lower() == "true"
            token = root.findtext(f"{ns}NextContinuationToken")
            if not truncated or not token:
                return names

    def list_manifest_file_names(self) -> list[str]:
        """The manifests (versions) of the release, sorted by name."""
        return list(self._manifest_names)

    def latest_manifest_file(self) -> str:
        """The manifest of the latest version (by the semantic version in its name)."""
        return max(self._manifest_names, key=_version_key)

    def current_manifest(self) -> str | None:
        """The name of the loaded manifest."""
        return self._manifest.name if self._manifest is not None else None

    @property
    def manifest(self) -> Manifest:
        """The loaded manifest (version, files, hashes)."""
        if self._manifest is None:  # pragma: no cover - the constructors load one
            msg = "no manifest loaded; call load_manifest(name) or load_latest_manifest()"
            raise OptionError(msg)
        return self._manifest

    def _load_last_manifest(self) -> None:
        """The manifest last used in the cache folder if any (AllenSDK), else the latest."""
        recorded = self._dir / _LAST_USED
        last = recorded.read_text().strip() if self._mode == "s3" and recorded.is_file() \
            else None
        self.load_manifest(last if last in self._manifest_names else self.latest_manifest_file())

    def load_manifest(self, manifest_name: str) -> None:
        """Use a version of the release.

        Parameters
        ----------
        manifest_name
            One of :meth:`list_manifest_file_names`.

        Warns
        -----
        OutdatedManifestWarning
            A newer version exists.

        Raises
        ------
        OptionError
            Not a manifest of the release.
        SchemaError
            The manifest is not in the release's format.
        """
        if manifest_name not in self._manifest_names:
            msg = (f"{manifest_name!r} is not a manifest of {PROJECT_NAME}; choose one of "
                   f"{self._manifest_names}")
            raise OptionError(msg)
        latest = self.latest_manifest_file()
        if manifest_name != latest:
            msg = (f"{manifest_name} is not the latest version of the release ({latest}); "
                   "cache.load_latest_manifest() loads it")
            warnings.warn(msg, OutdatedManifestWarning, stacklevel=2)
        if self._mode == "static":
            path = self._dir / PROJECT_NAME / "manifests" / manifest_name
        else:
            path = self._dir / manifest_name
        if self._mode == "s3" and not path.is_file():
            url = f"{self._base_url}/{PROJECT_NAME}/manifests/{manifest_name}"
            body = _http_get(url, "manifest")
            manifest = Manifest.from_json(manifest_name, body, url)
            # another process may have written it meanwhile: the same bytes
            with contextlib.suppress(OutputExistsError):
                write_atomically(path, lambda tmp: tmp.write_bytes(body), overwrite=False)
        else:
            manifest = Manifest.from_json(manifest_name, path.read_bytes(), str(path))
        missing = [t for t in METADATA_TABLES if t not in manifest.metadata_files]
        if missing:
            msg = (f"manifest {manifest_name!r} names no {missing}; it is not a Visual "
                   "Behavior Ophys manifest")
            raise SchemaError(msg)
        self._manifest = manifest
        self._tables = {}
        if self._mode == "s3":
            last = self._dir / _LAST_USED
            write_atomically(last, lambda tmp: tmp.write_text(manifest_name), overwrite=True)

    def load_latest_manifest(self) -> None:
        """Use the latest version of the release."""
        self.load_manifest(self.latest_manifest_file())

    # ---- files -----------------------------------------------------------------------

    def _local_path(self, file: ReleaseFile) -> Path:
        """Where the AllenSDK keeps ``file``: ``<cache_dir>/<project>-<version>/<path>``."""
        folder = PROJECT_NAME if self._mode == "static" \
            else f"{self.manifest.project_name}-{self.manifest.version}"
        relative = file.key.split("/", 1)[-1]  # without the project prefix
        return self._dir / folder / relative

    def _url(self, file: ReleaseFile) -> str:
        """The file's URL at ``base_url``, of the manifest's version of it."""
        url = f"{self._base_url}/{urllib.parse.quote(file.key)}"
        if file.version_id:
            url += f"?versionId={urllib.parse.quote(file.version_id, safe='')}"
        return url

    def _source(self, file: ReleaseFile, *, download: bool) -> str | Path:
        """A URL to stream ``file`` from, or its local path (downloaded when asked)."""
        if self._mode != "s3":
            path = self._local_path(file)
            if not path.is_file():
                msg = (f"No such file {str(path)!r}: this cache folder was opened with "
                       "from_local_cache, which downloads nothing; use "
                       "ProjectCache.from_s3_cache(cache_dir) to fetch it")
                raise SessionFileNotFoundError(msg)
            return path
        if not download:
            return self._url(file)
        return datasets.fetch(self._url(file), self._local_path(file),
                              known_hash=f"blake2b:{file.file_hash}", progress=False)

    def _data_file(self, file_id: Any, row: str) -> ReleaseFile:
        files = self.manifest.data_files
        key = str(int(file_id)) if not pd.isna(file_id) else "<NA>"
        if key not in files:
            msg = (f"{row} has file_id {key}, which manifest {self.manifest.name!r} does "
                   "not list; the release is inconsistent: report it, or load another "
                   "manifest")
            raise SchemaError(msg)
        return files[key]

    # ---- metadata tables -------------------------------------------------------------

    def _table(self, name: str) -> pd.DataFrame:
        if name not in self._tables:
            file = self.manifest.metadata_files[name]
            self._tables[name] = _read_table(self._source(file, download=True), name)
        return self._tables[name]

    def get_ophys_experiment_table(self) -> pd.DataFrame:
        """One row per imaging plane (experiment), indexed by ``ophys_experiment_id``.

        The AllenSDK's columns and dtypes: ids and counts as pandas ``Int64`` where the
        AllenSDK types them so, ``date_of_acquisition`` as UTC datetimes, ``driver_line``
        as lists, ``file_id`` naming the NWB file in the manifest.
        """
        return self._table("ophys_experiment_table").copy()

    def get_ophys_session_table(self) -> pd.DataFrame:
        """One row per ophys session, indexed by ``ophys_session_id``.

        ``ophys_experiment_id`` and ``ophys_container_id`` are lists (the planes of the
        session).
        """
        return self._table("ophys_session_table").copy()

    def get_behavior_session_table(self) -> pd.DataFrame:
        """One row per behavior session (training included), indexed by ``behavior_session_id``.

        Sessions with imaging list their ``ophys_experiment_id`` and have ``file_id``
        -999 (their behavior is in the experiments' files).
        """
        return self._table("behavior_session_table").copy()

    def get_ophys_cells_table(self) -> pd.DataFrame:
        """One row per ROI of every experiment, indexed by ``cell_roi_id``.

        Columns ``cell_specimen_id`` (``Int64``, the identity of a cell across sessions)
        and ``ophys_experiment_id``.
        """
        return self._table("ophys_cells_table").copy()

    # ---- by id -----------------------------------------------------------------------

    def _row(self, table: str, key: Any) -> pd.Series:
        df = self._table(table)
        index = METADATA_TABLES[table]
        # positions by numpy, not df.loc: pandas builds an index's lookup engine lazily and,
        # in 2.2, not thread-safely (map_sessions opens experiments from threads at once)
        found = (np.zeros(0, dtype=np.int64)
                 if isinstance(key, bool) or not isinstance(key, int | np.integer)
                 else np.flatnonzero(np.asarray(df.index, dtype=object) == int(key)))
        if found.size == 0:
            msg = (f"{index} {key!r} is not in the {table} of {PROJECT_NAME} "
                   f"{self.manifest.version}; pick one from cache.get_{table}().index")
            raise OptionError(msg)
        row: pd.Series = df.iloc[int(found[0])]
        return row

    def experiment_source(self, ophys_experiment_id: int, *, download: bool = False
                          ) -> str | Path:
        """Where the NWB file of an experiment is read from.

        Parameters
        ----------
        ophys_experiment_id
            A row of :meth:`get_ophys_experiment_table`.
        download
            Download the file whole into the cache (checked against the manifest's
            blake2b hash) and return its path, instead of its URL.

        Returns
        -------
        str or pathlib.Path
            The file's URL (with the manifest's ``versionId``), or its local path.
        """
        row = self._row("ophys_experiment_table", ophys_experiment_id)
        file_id = row[self.manifest.file_id_column]
        file = self._data_file(file_id, f"experiment {ophys_experiment_id}")
        return self._source(file, download=download)

    def behavior_session_source(self, behavior_session_id: int, *, download: bool = False
                                ) -> str | Path:
        """Where a behavior session is read from (see :meth:`open_behavior_session`)."""
        row = self._row("behavior_session_table", behavior_session_id)
        file_id = row[self.manifest.file_id_column]
        if pd.isna(file_id) or int(file_id) == DUMMY_FILE_ID:
            experiments = row["ophys_experiment_id"]
            if not isinstance(experiments, list) or not experiments:
                msg = (f"behavior session {behavior_session_id} has neither a file nor "
                       "experiments in the behavior_session_table; the release is "
                       "inconsistent")
                raise SchemaError(msg)
            return self.experiment_source(int(experiments[0]), download=download)
        file = self._data_file(file_id, f"behavior session {behavior_session_id}")
        return self._source(file, download=download)

    def open_experiment(self, ophys_experiment_id: int, *, download: bool = False,
                        **open_kwargs: Any) -> xr.Dataset:
        """Open an experiment (one imaging plane) by its id, lazily.

        Parameters
        ----------
        ophys_experiment_id
            A row of :meth:`get_ophys_experiment_table`.
        download
            False (default): stream the released file by URL (HTTP range requests, only
            what is used is transferred).  True: download it whole into the cache first,
            checked against the manifest's hash (once; later calls reuse it).
        **open_kwargs
            Options of :func:`ophys_xr.open_session` (``exclude_invalid_rois``,
            ``eye_tracking_z_threshold``, ``chunks``, ...).

        Returns
        -------
        xarray.Dataset

        Raises
        ------
        OptionError
            The id is not in the experiment table.
        DownloadError
            ``download=True`` and the file is missing on the server or its hash differs.
        OphysXrError
            The file cannot be opened (see :func:`ophys_xr.open_session`).
        """
        from ophys_xr.io import open_session

        return open_session(self.experiment_source(ophys_experiment_id, download=download),
                            **open_kwargs)

    def open_experiments(self, ophys_experiment_ids: Iterable[int], *, download: bool = False,
                         parallel: bool = True, **open_kwargs: Any) -> xr.DataTree:
        """Open many experiments lazily: a ``DataTree`` with one node per experiment.

        Parameters
        ----------
        ophys_experiment_ids
            Rows of :meth:`get_ophys_experiment_table` (e.g. ``table.index``).
        download, **open_kwargs
            As in :meth:`open_experiment`.
        parallel
            Open them in a thread pool.

        Returns
        -------
        xarray.DataTree
            Children named by ``ophys_experiment_id`` (as :func:`ophys_xr.open_sessions`);
            closing the tree closes every session.
        """
        ids = [int(i) for i in ophys_experiment_ids]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            msg = f"ophys_experiment_ids {repeated} are given more than once; pass each once"
            raise OptionError(msg)
        self._table("ophys_experiment_table")  # once, before the threads

        def one(i: int) -> xr.Dataset:
            return self.open_experiment(i, download=download, **open_kwargs)

        opened: list[xr.Dataset] = []
        try:
            if parallel and len(ids) > 1:
                with ThreadPoolExecutor(max_workers=min(8, len(ids))) as pool:
                    futures = [pool.submit(one, i) for i in ids]
                    for future in futures:  # keep what opened, to close it on failure
                        if future.exception() is None:
                            opened.append(future.result())
                    for future in futures:
                        future.result()
            else:
                for i in ids:
                    opened.append(one(i))
        except BaseException:
            for ds in opened:
                ds.close()
            raise
        from ophys_xr.sessions import _tree

        return _tree({str(i): ds for i, ds in zip(ids, opened, strict=True)}, opened)

    def open_behavior_session(self, behavior_session_id: int, *, download: bool = False,
                              **open_kwargs: Any) -> xr.Dataset:
        """Open a behavior session by its id, lazily.

        A behavior-only session (training) is its ``behavior_session_*.nwb`` file; a
        session with imaging is read, as the AllenSDK reads it, from the file of its first
        experiment, which holds the session's behavior (and that plane's imaging).

        Parameters
        ----------
        behavior_session_id
            A row of :meth:`get_behavior_session_table`.
        download, **open_kwargs
            As in :meth:`open_experiment`.

        Returns
        -------
        xarray.Dataset
        """
        from ophys_xr.io import open_session

        return open_session(self.behavior_session_source(behavior_session_id,
                                                         download=download), **open_kwargs)

    # ---- containers and cells ----------------------------------------------------------

    def get_container_experiments(self, ophys_container_id: int) -> pd.DataFrame:
        """The experiments of a container (one plane imaged over sessions), by date.

        Parameters
        ----------
        ophys_container_id
            A value of the experiment table's ``ophys_container_id``.

        Returns
        -------
        pandas.DataFrame
            Rows of :meth:`get_ophys_experiment_table`, sorted by ``date_of_acquisition``.
        """
        table = self._table("ophys_experiment_table")
        rows = table[table["ophys_container_id"] == ophys_container_id]
        if rows.empty:
            msg = (f"ophys_container_id {ophys_container_id!r} has no experiment in "
                   f"{PROJECT_NAME} {self.manifest.version}; pick one from "
                   "cache.get_ophys_experiment_table().ophys_container_id")
            raise OptionError(msg)
        return rows.sort_values("date_of_acquisition").copy()

    def experiments_with_cell(self, cell_specimen_id: int) -> list[int]:
        """The experiments in which a cell was imaged (from the cells table, no file read).

        Parameters
        ----------
        cell_specimen_id
            A cell's identity across sessions.

        Returns
        -------
        list of int
            ``ophys_experiment_id`` values, sorted.
        """
        cells = self._table("ophys_cells_table")
        found = cells.loc[cells["cell_specimen_id"] == cell_specimen_id, "ophys_experiment_id"]
        if found.empty:
            msg = (f"cell_specimen_id {cell_specimen_id!r} is in no experiment of "
                   f"{PROJECT_NAME} {self.manifest.version}; pick one from "
                   "cache.get_ophys_cells_table().cell_specimen_id")
            raise OptionError(msg)
        return sorted(int(i) for i in found.unique())


def _read_table(path: str | Path, name: str) -> pd.DataFrame:
    """A metadata CSV as ``BehaviorProjectCloudApi`` returns it (AllenSDK 2.16).

    ``mouse_id`` read as text; the list columns parsed from their text; every string column
    of dtype ``object`` (also under pandas 3, as under the AllenSDK's pandas 1.5);
    ``date_of_acquisition`` as UTC datetimes; the integer columns as ``Int64``; the leading
    columns in the AllenSDK's order; the table's index set.
    """
    cells = name == "ophys_cells_table"
    try:
        df = pd.read_csv(path, dtype=None if cells else {"mouse_id": object})
    except (ValueError, pd.errors.ParserError) as err:
        msg = f"{str(path)!r} is not a readable {name} CSV ({err}); delete it and reload"
        raise SchemaError(msg) from err
    index = METADATA_TABLES[name]
    if index not in df.columns:
        msg = (f"{str(path)!r} has no {index!r} column; it is not the release's {name}: "
               "delete it and reload")
        raise SchemaError(msg)
    for column in df.columns:
        if pd.api.types.is_string_dtype(df[column]) and df[column].dtype != object:
            df[column] = df[column].astype(object)
    for column in _LIST_COLUMNS:
        if column in df.columns:
            try:
                df[column] = df[column].map(_literal)
            except (ValueError, SyntaxError) as err:
                msg = (f"{str(path)!r}: column {column!r} holds a value that is not a Python "
                       f"literal ({err}); the file is damaged: delete it and reload")
                raise SchemaError(msg) from err
    if cells:
        df["cell_specimen_id"] = pd.array(df["cell_specimen_id"], dtype="Int64")
        return df.set_index(index)
    df["date_of_acquisition"] = pd.to_datetime(df["date_of_acquisition"], format="ISO8601",
                                               utc=True)
    for column in _INTEGER_COLUMNS:
        if column in df.columns:
            df[column] = df[column].astype("Int64")
    order = [c for c in _COLUMN_ORDER if c in df.columns]
    df = df[order + [c for c in df.columns if c not in order]]
    return df.set_index(index)


def _literal(value: Any) -> Any:
    """``"[1, 2]"`` -> ``[1, 2]`` (AllenSDK ``literal_col_eval``); non-strings unchanged."""
    return ast.literal_eval(value) if isinstance(value, str) else value
