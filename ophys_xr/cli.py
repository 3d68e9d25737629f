"""The ``ophys-xr`` command line: ``info``, ``convert`` and ``demo``."""

from __future__ import annotations

import json
import sys
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ophys_xr.exceptions import OphysXrError, OutputExistsError

__all__ = ["app", "main"]

app = typer.Typer(
    help="Allen Visual Behavior Ophys sessions as one labeled, lazy xarray.Dataset.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class Format(StrEnum):
    """Output formats of ``convert``."""

    zarr = "zarr"
    netcdf = "netcdf"


def _fail(err: BaseException) -> None:
    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(code=2)


def summary(ds: object) -> str:
    """A few lines that describe a session Dataset, from metadata only."""
    import xarray as xr

    assert isinstance(ds, xr.Dataset)
    a = ds.attrs
    imaging = a.get("session_kind", "behavior_ophys") == "behavior_ophys"
    clock = "time" if imaging else "stimulus_timestamps"
    time = ds[clock].values
    duration = float(time[-1] - time[0]) if time.size else 0.0
    missing = a.get("ophys_xr_missing", "").split()
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
        valid = int(ds["valid_roi"].values.sum())
        lines += [
            f"targeted_structure    {a.get('targeted_structure')} at {a.get('imaging_depth')} µm",
        ]
    lines += [
        f"date_of_acquisition   {a.get('date_of_acquisition')}",
        f"equipment             {a.get('equipment_name')}",
    ]
    if imaging:
        lines += [
            f"cells                 {ds.sizes['cell_specimen_id']} ({valid} valid)",
            (
                f"duration              {duration / 60:.1f} min ({ds.sizes['time']} frames at "
                f"{a.get('ophys_frame_rate')} Hz)"
            ),
        ]
    else:
        frames = ds.sizes["stimulus_frame"]
        lines.append(
            f"duration              {duration / 60:.1f} min ({frames} stimulus frames, no imaging)"
        )
    lines += [
        f"trials                {ds.sizes['trials_id']}",
        f"presentations         {ds.sizes['stimulus_presentations_id']}",
        f"eye tracking frames   {ds.sizes.get('eye_frame', 0)}",
        f"licks / rewards       {ds.sizes['lick']} / {ds.sizes['reward']}",
        f"file layout           {a.get('nwb_layout')}",
        f"missing               {', '.join(missing) if missing else 'nothing'}",
    ]
    return "\n".join(lines)


@app.command()
def info(
    path: Annotated[str, typer.Argument(
        help="NWB file (a path, or an https:// or s3:// URL), Zarr store or netCDF file.")],
    include_invalid_rois: Annotated[
        bool, typer.Option(help="Count ROIs that valid_roi marks invalid too.")
    ] = False,
) -> None:
    """Print the session summary (ids, cre line, cells, duration, what is missing).

    Reads metadata only, never the traces.
    """
    from ophys_xr.io import open_session

    try:
        with open_session(path, exclude_invalid_rois=not include_invalid_rois) as ds:
            typer.echo(summary(ds))
    except (OphysXrError, OSError) as err:
        _fail(err)


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
    try:
        with open_session(path, exclude_invalid_rois=not include_invalid_rois) as ds:
            if format is Format.zarr:
                to_zarr(ds, out, overwrite=overwrite, progress=progress)
            else:
                to_netcdf(ds, out, overwrite=overwrite, progress=progress)
    except (OphysXrError, OSError) as err:
        _fail(err)
    typer.echo(f"wrote {out}")


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


def main() -> None:  # pragma: no cover - console entry point
    """Run the command line."""
    app(sys.argv[1:])
