"""``video-inst fit-whitening``: fit a PCA-whitening of the DASR space and fill its derived space.

Registered on the ``video-inst`` group by ``video_inst.cli.app``. The work is
``video_inst.spaces.whitened.fit_whitened_space``; see docs/VECTORS.md for when it helps.

Example::

    video-inst fit-whitening --sample 50000 --dim 256 --seed 0
"""

from __future__ import annotations

import sys

import click

from video_inst.cli.output import Counter, emit, fail, video_ids
from video_inst.errors import VideoInstError
from video_inst.spaces.whitening import WhiteningError


@click.command("fit-whitening")
@click.option("--sample", default=50_000, show_default=True, type=int, help="Stored vectors to fit on.")
@click.option("--dim", type=int, help="Output dimension (default: the DASR space's).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the random sample.")
@click.option(
    "--shrinkage",
    default="auto",
    show_default=True,
    help="Eigenvalue shrinkage towards their mean: 0 (plain whitening) to 1 (PCA only), auto = Ledoit-Wolf.",
)
@click.option("--space", "base_name", help="Base DASR space name (default: the configured one).")
@click.option("--video", multiple=True, help="Sample only these videos (id or path); repeatable.")
@click.option("--refit", is_flag=True, help="Fit anew even if an earlier run left a space to resume.")
@click.option("--json", "as_json", is_flag=True)
def fit_whitening_command(
    sample: int,
    dim: int | None,
    seed: int,
    shrinkage: str,
    base_name: str | None,
    refit: bool,
    video: tuple[str, ...],
    as_json: bool,
) -> None:
    """Fit PCA-whitening on stored DASR vectors; write the whitened copy of every vector (resumable)."""
    from video_inst.spaces.whitened import fit_whitened_space

    bar = Counter("whiten", sys.stderr.isatty() and not as_json, unit="video", leave=True)
    try:
        shrink = _shrinkage(shrinkage)
        sample_videos = video_ids(video)
        report = fit_whitened_space(
            sample_videos=sample_videos,
            base_name=base_name,
            sample=sample,
            dim=dim,
            seed=seed,
            shrinkage=shrink,
            refit=refit,
            progress=bar.update,
        )
    except VideoInstError as exc:
        fail(exc)
    finally:
        bar.close()
    data = {
        "base": report.base,
        "space": report.space,
        "space_id": report.space_id,
        "dim": report.dim,
        "resumed": report.resumed,
        "sample": report.sample,
        "sample_videos": report.sample_videos,
        "shrinkage": report.shrinkage,
        "vectors": report.vectors,
        "done": report.done,
        "skipped": report.skipped,
        "vanished": report.vanished,
    }
    if as_json:
        emit(data)
        return
    verb = "resumed" if report.resumed else "fitted on"
    click.echo(
        f"{report.space}: {verb} {report.sample} vectors from {report.sample_videos} videos "
        f"(shrinkage {report.shrinkage:.3g}); "
        f"{len(report.done)} videos whitened ({report.vectors} vectors), {len(report.skipped)} already done"
    )


def _shrinkage(value: str) -> float | None:
    """``auto`` (Ledoit-Wolf, None) or a number in [0, 1]."""
    if value.strip().lower() == "auto":
        return None
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0.0 <= number <= 1.0:
        raise WhiteningError(f"--shrinkage must be 'auto' or a number from 0 to 1, got {value!r}")
    return number
