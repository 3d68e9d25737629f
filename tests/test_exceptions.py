"""ophys_xr.exceptions: one base class, every exception exported at the top level."""

from __future__ import annotations

import ophys_xr
from ophys_xr import (
    InvalidSessionFileError,
    MissingDataError,
    NotAnOphysSessionError,
    NotNwbFileError,
    OphysXrError,
    OptionError,
    SchemaError,
    SessionFileNotFoundError,
)


def test_all_errors_share_a_base() -> None:
    for cls in (SessionFileNotFoundError, InvalidSessionFileError, NotNwbFileError,
                NotAnOphysSessionError, SchemaError, MissingDataError, OptionError):
        assert issubclass(cls, OphysXrError)


def test_every_exception_derives_from_the_base() -> None:
    from ophys_xr import exceptions

    defined = {name for name, obj in vars(exceptions).items()
               if isinstance(obj, type) and issubclass(obj, BaseException)
               and obj.__module__ == exceptions.__name__}
    assert sorted(defined) == sorted(exceptions.__all__)
    for name in exceptions.__all__:
        assert issubclass(getattr(exceptions, name), OphysXrError), name


def test_every_exception_is_exported_at_top_level() -> None:
    from ophys_xr import exceptions

    missing = [name for name in exceptions.__all__ if name not in ophys_xr.__all__]
    assert missing == [], f"export {missing} from ophys_xr (ophys_xr/__init__.py)"
    for name in exceptions.__all__:
        assert getattr(ophys_xr, name) is getattr(exceptions, name), name


def test_download_error() -> None:
    """Defined with the other exceptions; still importable from ``ophys_xr.datasets``."""
    from ophys_xr import datasets, exceptions

    assert datasets.DownloadError is exceptions.DownloadError
    assert "DownloadError" in datasets.__all__
    assert issubclass(exceptions.DownloadError, OphysXrError)
    assert issubclass(exceptions.DownloadError, OSError)
