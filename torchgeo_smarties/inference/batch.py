"""Many scenes, one job: ``smarties embed`` over a list file, a folder of scenes, a glob or a STAC ItemCollection.

Scenes are independent, so the job is split statically: rank *r* of *world* processes embeds scenes
``r, r + world, …`` (ranks come from ``torchrun`` / SLURM variables, or are given). Each scene is one
:func:`~torchgeo_smarties.inference.embed_job` run of the same parameter objects (validated, and the weights loaded,
once) — resumable per tile with ``resume=True`` — and the job keeps
a status file per rank (``job-rank<r>.json``: scene → done / failed with the error). A failing scene is reported,
recorded and skipped; the others complete; the job's result lists it and ``smarties embed`` exits 1. A rerun with
``resume=True`` skips scenes whose output is complete and finishes the rest. When all ranks are done, rank 0 writes
the catalogue (:func:`~torchgeo_smarties.inference.catalogue.write_catalogue`) over every complete output.

Why not Ray Data or Dask: the unit of work is a whole scene (seconds to minutes of model time, its own tiles and
resume state), so a static split needs no scheduler; ranks synchronise only once at the end, through files.

.. versionadded:: 0.2
"""

import dataclasses
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Unpack

from ..errors import InputError
from .job import EmbedKeywords, RasterOptions
from .scenes import expand_scenes, open_sources

if TYPE_CHECKING:
    import torch

    from ..models import SMARTIESViT

__all__ = ('BatchResult', 'SceneOutcome', 'embed_many', 'is_batch_input', 'rank_device')


@dataclass(frozen=True)
class SceneOutcome:
    """What happened to one scene of a batch job."""

    input: str
    output: str
    status: Literal['done', 'skipped', 'failed']
    error: str | None = None
    seconds: float = 0.0


@dataclass
class BatchResult:
    """The outcome of :func:`embed_many` on this rank."""

    outcomes: list[SceneOutcome]
    rank: int = 0
    world_size: int = 1
    catalogue: Any = None

    @property
    def failed(self) -> list[SceneOutcome]:
        """The scenes that failed."""
        return [o for o in self.outcomes if o.status == 'failed']


def is_batch_input(inputs: Sequence[str]) -> bool:
    """Whether *inputs* name several scenes rather than one raster.

    Several scenes: several inputs, a list file, a glob, a STAC item collection or a folder of scenes (see
    :func:`~torchgeo_smarties.inference.scenes.expand_scenes`).
    """
    if len(inputs) != 1:
        return True
    return expand_scenes(inputs[0]) != [inputs[0]]


def _env_rank() -> tuple[int, int]:
    for r, w in (('RANK', 'WORLD_SIZE'), ('SLURM_PROCID', 'SLURM_NTASKS')):
        if r in os.environ and w in os.environ:
            return int(os.environ[r]), int(os.environ[w])
    return 0, 1


def rank_device(device: 'str | torch.device') -> 'str | torch.device':
    """*device*, with a bare ``'cuda'`` meaning this process's local GPU when a launcher started several processes.

    ``torchrun`` sets ``LOCAL_RANK`` and SLURM sets ``SLURM_LOCALID`` in each process, so ``--device cuda`` puts
    rank *r* of a node on ``cuda:<local rank>`` instead of every rank on ``cuda:0``. Any other device, and ``cuda``
    outside such a launch, is returned unchanged.
    """
    if device == 'cuda':
        for var in ('LOCAL_RANK', 'SLURM_LOCALID'):
            if os.environ.get(var, '').isdigit():
                return f'cuda:{os.environ[var]}'
    return device


def _status_path(out_dir: Path, rank: int) -> Path:
    return out_dir / f'job-rank{rank}.json'


def _write_status(path: Path, job: dict[str, Any], outcomes: list[SceneOutcome], finished: bool) -> None:
    tmp = path.with_name(path.name + '.tmp')
    tmp.write_text(json.dumps({**job, 'finished': finished, 'scenes': [o.__dict__ for o in outcomes]}, indent=1))
    os.replace(tmp, path)


def embed_many(
    inputs: Sequence[str],
    output_dir: str | os.PathLike[str],
    *,
    rank: int | None = None,
    world_size: int | None = None,
    resume: bool = False,
    catalogue: bool = True,
    wait_timeout: float = 24 * 3600.0,
    model: 'SMARTIESViT | None' = None,
    device: 'str | torch.device' = 'cpu',
    progress: bool = True,
    log: Callable[[str], None] = print,
    **options: Unpack[EmbedKeywords],
) -> BatchResult:
    """Embed every scene of *inputs* into *output_dir* (one ``<scene name>_embeddings.tif`` each), then catalogue.

    The options are validated and the encoder is loaded once, before any scene runs; each scene is then an
    :func:`~torchgeo_smarties.inference.embed_job` run of the same parameter objects.

    Args:
        inputs: paths/URLs, list files, globs, STAC item collections or folders of scenes
            (:func:`~torchgeo_smarties.inference.scenes.open_sources`; scenes are not opened up front, so one bad
            scene fails alone).
        output_dir: the folder for the outputs, the job status files and the catalogue (created if missing).
        rank: this process's rank (default: ``RANK`` / ``SLURM_PROCID``, else 0).
        world_size: the number of processes (default: ``WORLD_SIZE`` / ``SLURM_NTASKS``, else 1).
        resume: skip scenes already complete and resume interrupted ones tile by tile.
        catalogue: write ``catalogue.json`` + ``patches.parquet`` when the job is done (rank 0, after all ranks).
        wait_timeout: how long rank 0 waits for the other ranks before writing the catalogue.
        model: an encoder (default: loaded from the ``weights`` option).
        device: this rank's torch device; a bare ``'cuda'`` is this process's local GPU under ``torchrun`` / SLURM
            (:func:`rank_device`).
        progress: show a progress bar per scene.
        log: where messages go.
        **options: the keywords of :func:`~torchgeo_smarties.inference.embed_raster`
            (:class:`~torchgeo_smarties.inference.job.EmbedKeywords`: weights, bands, tiling, …), the same for every
            scene.

    Returns:
        A :class:`BatchResult`; scenes that failed are in ``failed`` with their error.

    Raises:
        InputError: for bad options (:class:`~torchgeo_smarties.errors.OptionError`, weights that do not load) or
            an input that names no scene, before any scene runs.
    """
    from .embed import embed_job

    for bad in ('output', 'input', 'preview'):
        if bad in options:
            raise InputError(f'{bad}= is per scene and set by the batch job; drop it (outputs go to output_dir)')
    opts = RasterOptions.from_keywords(options, EmbedKeywords, caller='embed_many', model=model,
                                       device=rank_device(device))
    env_rank, env_world = _env_rank()
    rank = env_rank if rank is None else rank
    world = env_world if world_size is None else world_size
    if world < 1 or not 0 <= rank < world:
        raise InputError(f'rank {rank} of world size {world} is invalid; need 0 <= rank < world_size')
    out_dir = Path(output_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f'output {str(out_dir)!r} exists and is not a folder; a batch job writes into a folder')
    expanded = open_sources(list(inputs), validate=False)
    scenes = [sc.input for sc in expanded]
    mine = expanded[rank::world]
    if mine:  # load the weights once for all scenes of this rank: bad weights fail here, before anything is written
        enc, wdesc = opts.encoder.load()
        opts = dataclasses.replace(opts, encoder=dataclasses.replace(opts.encoder, model=enc, weights=wdesc))
    out_dir.mkdir(parents=True, exist_ok=True)
    log(f'batch: {len(scenes)} scenes, rank {rank}/{world} takes {len(mine)}')
    status = _status_path(out_dir, rank)
    job = {'scenes_total': len(scenes), 'world_size': world, 'assigned': scenes[rank::world]}
    outcomes: list[SceneOutcome] = []
    for k, sc in enumerate(mine, 1):
        scene = sc.input
        out = out_dir / f'{sc.name}_embeddings.tif'
        if resume and out.is_file() and not out.with_name(out.name + '.partial').exists():
            outcomes.append(SceneOutcome(scene, str(out), 'skipped'))
            log(f'[{k}/{len(mine)}] {scene}: already complete, skipped')
            _write_status(status, job, outcomes, False)
            continue
        t0 = time.perf_counter()
        try:
            with opts.open(scene) as job_:
                embed_job(job_, out, opts.encoder, opts.tiling, opts.dense, resume=resume, progress=progress,
                          log=log)
        except Exception as err:  # one scene's failure (typed or not) is recorded and reported; the job goes on
            outcomes.append(SceneOutcome(scene, str(out), 'failed', f'{type(err).__name__}: {err}',
                                         time.perf_counter() - t0))
            log(f'[{k}/{len(mine)}] {scene}: FAILED ({type(err).__name__}: {err}); skipped, the others go on')
        else:
            outcomes.append(SceneOutcome(scene, str(out), 'done', None, time.perf_counter() - t0))
            log(f'[{k}/{len(mine)}] {scene}: done')
        _write_status(status, job, outcomes, False)
    _write_status(status, job, outcomes, True)
    result = BatchResult(outcomes, rank, world)
    if catalogue and rank == 0:
        _wait_for_ranks(out_dir, scenes, world, wait_timeout)
        from .catalogue import write_catalogue

        done = sorted({o.output for r in range(world) for o in _read_status(out_dir, r)
                       if o.status in ('done', 'skipped')})
        result.catalogue = write_catalogue([Path(d) for d in done], out_dir)
        log(f'catalogue: {result.catalogue.stac} ({result.catalogue.items} items), {result.catalogue.index} '
            f'({result.catalogue.patches} patches)')
    if result.failed:
        log(f'batch: {len(result.failed)} of {len(mine)} scenes failed: '
            + '; '.join(f'{o.input} ({o.error})' for o in result.failed)
            + ' — fix them and rerun the same command with --resume')
    return result


def _read_status(out_dir: Path, rank: int) -> list[SceneOutcome]:
    doc = json.loads(_status_path(out_dir, rank).read_text())
    return [SceneOutcome(**s) for s in doc['scenes']]


def _wait_for_ranks(out_dir: Path, scenes: list[str], world: int, timeout: float) -> None:
    """Wait until every rank's status file says finished for the scenes of *this* job (stale files do not count)."""
    deadline = time.monotonic() + timeout
    for r in range(world):
        path = _status_path(out_dir, r)
        while True:
            try:
                doc = json.loads(path.read_text())
                if doc.get('finished') and doc.get('assigned') == scenes[r::world] and doc.get('world_size') == world:
                    break
            except (OSError, json.JSONDecodeError):
                pass
            if time.monotonic() > deadline:
                raise InputError(f'rank {r} did not finish within {timeout:.0f} s ({str(path)!r}); the catalogue '
                                 'was not written — rerun with --resume once all ranks are done')
            time.sleep(0.5)
