"""The ``ophys-xr`` command line: ``info``, ``convert``, ``verify`` and ``demo``.

Every failure is one line on stderr (``error: ...``) and a non-zero exit code: 2 for an
error of the input, the output or an option (an :class:`~ophys_xr.OphysXrError` or an
``OSError``), 1 for a store that ``verify`` finds damaged or an unexpected error, 130 for
Ctrl-C.  ``ophys-xr --debug COMMAND`` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import json
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from ophys_xr.exceptions import OphysXrError, OutputExistsError

__all__ = ["app", "main"]

class _App(typer.Typer):
    """The Typer app; called without arguments (the ``ophys-xr`` console script) it runs
    :func:`main`, so that a usage error too is one line."""

    def __call__(self, *args: object, **kwargs: object) -> object:
        if args or kwargs:
            return super().__call__(*args, **kwargs)
        main()
        return None


app = _App(
    help="Allen Visual Behavior Ophys sessions as one labeled, lazy xarray.Dataset.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class Format(StrEnum):
    """Output formats of ``convert``."""

    zarr = "zarr"
    netcdf = "netcdf"


#: Whether ``--debug`` was given: failures raise, with their traceback.
_DEBUG = {"on": False}


@app.callback()
def _options(
    debug: Annotated[bool, typer.Option(
        "--debug", help="On failure, show the traceback instead of one line.")] = False,
) -> None:
    _DEBUG["on"] = debug


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _fail(err: BaseException, code: int = 2) -> None:
    typer.echo(f"error: {_one_line(str(err)) or type(err).__name__}", err=True)
    raise typer.Exit(code=code)


@contextmanager
def _reporting() -> Iterator[None]:
    """Turn every failure of a command into one line on stderr and a non-zero exit."""
    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except KeyboardInterrupt:
        if _DEBUG["on"]:
            raise
        typer.echo("error: interrupted", err=True)
        raise typer.Exit(code=130) from None
    except (OphysXrError, OSError) as err:
        if _DEBUG["on"]:
            raise
        _fail(err)
    except Exception as err:  # an unexpected error: still one line, the details on --debug
        if _DEBUG["on"]:
            raise
        _fail(RuntimeError(f"unexpected {type(err).__name__}: {_one_line(str(err))} (run "
                           "`ophys-xr --debug ...` for the traceback and report it)"), code=1)


def summary(ds: object) -> str:
    """A few lines that describe a session, from metadata only.

    ``ds`` is a session Dataset, or what
    :func:`ophys_xr.backends.nwb_metadata.read_nwb_summary` reads from an NWB file (the
    same figures without opening the Dataset).
    """
    facts = ds if isinstance(ds, dict) else _facts(ds)
    a, sizes = facts, facts["sizes"]
    imaging = a.get("session_kind", "behavior_ophys") == "behavior_ophys"
    duration = facts["duration_s"]
    missing = facts["missing"]
    lines = [
        f"session_kind          {a.get('session_kind')}",
        f"ophys_experiment_id   {a.get('ophys_experiment_id')}",
        f"ophys_session_id      {a.get('ophys_session_id')}",
        f"behavior_session_id   {a.get('behavior_session_id')}",
        f"ophys_container_id    {a.get('ophys_container_id')}",
        f"mouse_id              {a.get('mouse_id')}",
        f"cre_line              {a.get('cre_line')}",
        f"session_type          {a.get('session_type')}",
    ]
    if imaging:
        lines += [
            f"targeted_structure    {a.get('targeted_structure')} at {a.get('imaging_depth')} µm",
        ]
    lines += [
        f"date_of_acquisition   {a.get('date_of_acquisition')}",
        f"equipment             {a.get('equipment_name')}",
    ]
    if imaging:
        lines += [
            f"cells                 {sizes['cell_specimen_id']} ({facts['n_valid_cells']} valid)",
            (
                f"duration              {duration / 60:.1f} min ({sizes['time']} frames at "
                f"{a.get('ophys_frame_rate')} Hz)"
            ),
        ]
    else:
        frames = sizes["stimulus_frame"]
        lines.append(
            f"duration              {duration / 60:.1f} min ({frames} stimulus frames, no imaging)"
        )
    lines += [
        f"trials                {sizes['trials_id']}",
        f"presentations         {sizes['stimulus_presentations_id']}",
        f"eye tracking frames   {sizes.get('eye_frame', 0)}",
        f"licks / rewards       {sizes['lick']} / {sizes['reward']}",
        f"file layout           {a.get('nwb_layout')}",
        f"missing               {', '.join(missing) if missing else 'nothing'}",
    ]
    return "\n".join(lines)


def _facts(ds: object) -> dict[str, Any]:
    """What :func:`summary` prints of a session Dataset: its attributes, ``sizes``,
    ``n_valid_cells``, ``duration_s`` and ``missing``."""
    import xarray as xr

    assert isinstance(ds, xr.Dataset)
    facts: dict[str, Any] = dict(ds.attrs)
    imaging = facts.get("session_kind", "behavior_ophys") == "behavior_ophys"
    time = ds["time" if imaging else "stimulus_timestamps"].values
    facts["duration_s"] = float(time[-1] - time[0]) if time.size else 0.0
    facts["missing"] = facts.get("ophys_xr_missing", "").split()
    facts["sizes"] = dict(ds.sizes)
    if imaging:
        facts["n_valid_cells"] = int(ds["valid_roi"].values.sum())
    return facts


@app.command()
def info(
    path: Annotated[str, typer.Argument(
        help="NWB file (a path, or an https:// or s3:// URL), Zarr store or netCDF file.")],
    include_invalid_rois: Annotated[
        bool, typer.Option(help="Count ROIs that valid_roi marks invalid too.")
    ] = False,
) -> None:
    """Print the session summary (ids, cre line, cells, duration, what is missing).

    Reads metadata only, never the traces; an NWB file is read with h5py alone (no
    xarray, no dask), a store is opened as a Dataset.
    """
    from ophys_xr.formats import as_source, format_of

    with _reporting():
        source = as_source(path)
        if format_of(source).name == "nwb":
            from ophys_xr.backends.nwb_metadata import read_nwb_summary

            facts = read_nwb_summary(source, exclude_invalid_rois=not include_invalid_rois)
            typer.echo(summary(facts))
            return
        from ophys_xr.io import open_session

        with open_session(source, exclude_invalid_rois=not include_invalid_rois) as ds:
            typer.echo(summary(ds))


@app.command()
def convert(
    path: Annotated[Path, typer.Argument(help="Input NWB file (or Zarr store / netCDF file).")],
    out: Annotated[Path, typer.Argument(help="Output store or file.")],
    format: Annotated[
        Format, typer.Option("--format", "-f", help="Output format.")
    ] = Format.zarr,
    overwrite: Annotated[bool, typer.Option(help="Replace OUT if it exists.")] = False,
    include_invalid_rois: Annotated[
        bool, typer.Option(help="Keep ROIs that valid_roi marks invalid.")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Convert a session to Zarr (default) or netCDF.

    Writes to a temporary name next to OUT and renames it at the end: an interrupted
    conversion never leaves an OUT that looks complete.
    """
    from ophys_xr.io import open_session, to_netcdf, to_zarr

    if out.exists() and not overwrite:
        _fail(OutputExistsError(f"{str(out)!r} exists; pass --overwrite to replace it"))
    with _reporting(), open_session(path, exclude_invalid_rois=not include_invalid_rois) as ds:
        if format is Format.zarr:
            to_zarr(ds, out, overwrite=overwrite, progress=progress)
        else:
            to_netcdf(ds, out, overwrite=overwrite, progress=progress)
    typer.echo(f"wrote {out}")


@app.command()
def verify(
    path: Annotated[Path, typer.Argument(help="Zarr store or netCDF file.")],
) -> None:
    """Check a Zarr store or netCDF file fully: one line per problem, exit code 1 if any.

    A store written by ophys_xr is checked against its manifest (every file, its size and
    its content digest); any other store or file by reading every array.
    """
    from ophys_xr.backends.store import verify_store

    with _reporting():
        problems, checked = verify_store(path)
    for problem in problems:
        typer.echo(f"damaged: {_one_line(problem)}", err=True)
    if problems:
        raise typer.Exit(code=1)
    typer.echo(f"ok: {path} ({checked})")


@app.command()
def demo(
    out: Annotated[
        Path | None, typer.Option(help="Where to write the example NWB file (default: a temp dir).")
    ] = None,
    cells: Annotated[int, typer.Option(help="Number of cells.")] = 20,
    minutes: Annotated[float, typer.Option(help="Session length in minutes.")] = 5.0,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Write an example session, open it, and print the Dataset and a few numbers."""
    with _reporting():
        _demo(out, cells, minutes, seed)


def _demo(out: Path | None, cells: int, minutes: float, seed: int) -> None:
    from ophys_xr.io import open_session
    from ophys_xr.testing import write_session_nwb

    with tempfile.TemporaryDirectory() as tmp:
        path = out if out is not None else Path(tmp) / "example_session.nwb"
        typer.echo(f"writing an example session ({cells} cells, {minutes:g} min) to {path}")
        write_session_nwb(path, n_cells=cells, minutes=minutes, seed=seed, overwrite=True)
        with open_session(path) as ds:
            typer.echo(ds)
            typer.echo("")
            typer.echo(summary(ds))
            mean_dff = ds.dff.mean("time").compute()
            typer.echo("\nmean ΔF/F of the first cells:")
            for csid, value in zip(mean_dff.cell_specimen_id.values[:5], mean_dff.values[:5],
                                   strict=False):
                typer.echo(f"  {csid}: {value:.4f}")
            perf = ds.ophys.performance()
            keys = ("trial_count", "hit_trial_count", "mean_dprime", "engaged_trial_count")
            typer.echo("\nperformance: " + json.dumps({k: perf[k].item() for k in keys}))
            if "likely_blink" in ds:
                typer.echo(f"likely blinks: {int(ds.likely_blink.sum())} of "
                           f"{ds.sizes['eye_frame']} eye frames")
            response = ds.ophys.stimulus_response(data="dff", event="images")
            per_image = response.mean_response.mean("cell_specimen_id").groupby(
                "image_name").mean().to_series()
            n_flashes = response.sizes["stimulus_presentations_id"]
            typer.echo(f"\nmean ΔF/F response (0 to 0.5 s) to {n_flashes} image flashes, "
                       "by image:")
            for image, value in per_image.items():
                typer.echo(f"  {image}: {value:+.4f}")


def main() -> None:
    """Run the command line; a usage error too is one line and a non-zero exit code."""
    # click's exceptions, from click itself or from the copy that recent typer vendors
    click_error: Any = next(
        c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
    click = importlib.import_module(click_error.__module__)
    no_args: Any = getattr(click, "NoArgsIsHelpError", ())
    try:
        code = app(sys.argv[1:], standalone_mode=False)
    except no_args as err:  # no command: the help, exit 2
        typer.echo(err.ctx.get_help() if err.ctx else str(err), err=True)
        sys.exit(2)
    except click_error as err:
        typer.echo(f"error: {_one_line(err.format_message())} (see `ophys-xr --help`)",
                   err=True)
        sys.exit(err.exit_code)
    except typer.Abort:
        typer.echo("error: interrupted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
