"""Several scenes in one input: list files, globs, folders of scenes and STAC item collections.

:func:`open_sources` only expands and validates; each :class:`SceneInput` is then embedded like a single input
(``embed_raster(scene.input, out / f'{scene.name}_embeddings.tif', ...)``).

.. versionadded:: 0.2
"""

import glob
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import SceneListError, SmartiesError
from .source import RASTER_SUFFIXES, RasterSource, is_remote, is_stac, open_source

__all__ = ('LIST_SUFFIXES', 'SceneInput', 'expand_scenes', 'open_sources')

#: Suffixes of list files (one path or URL per line; lines starting with ``#`` are comments).
LIST_SUFFIXES = ('.txt', '.lst', '.list')
_GLOB = re.compile(r'[*?\[]')


@dataclass(frozen=True)
class SceneInput:
    """One scene of a multi-scene input.

    Attributes:
        name: a file-name-safe label, unique within the expansion (for output names).
        input: what :func:`~torchgeo_smarties.inference.open_source` / ``embed_raster`` take (path, URL, STAC item
            or ``collection.json#<item id>``).
        source: the opened source (metadata only), when validated.
    """

    name: str
    input: str
    source: RasterSource | None = None


def _stem(s: str) -> str:
    base, _, frag = s.partition('#')
    stem = frag or Path(base.split('?', 1)[0].rstrip('/')).stem or 'scene'
    return re.sub(r'[^A-Za-z0-9._-]+', '_', stem)


def _is_per_band_folder(folder: Path) -> bool:
    """A folder is one scene when it holds only single-band rasters (B02.tif, B03.tif, ...) and no subfolders."""
    import rasterio

    entries = list(folder.iterdir())
    if any(e.is_dir() for e in entries) or any(e.suffix.lower() in ('.json', '.geojson') for e in entries):
        return False
    rasters = [e for e in entries if e.suffix.lower() in RASTER_SUFFIXES and e.is_file()]
    if not rasters:
        return False
    for r in rasters:
        try:
            with rasterio.open(r) as ds:
                if ds.count != 1:
                    return False
        except Exception:
            return False
    return True


def _read_list(path: Path) -> list[str]:
    out = []
    for raw in path.read_text(encoding='utf-8').splitlines():
        line = raw.strip()
        if not line or line.startswith('#'):
            continue
        out.append(line if is_remote(line) or os.path.isabs(line) else str(path.parent / line))
    return out


def _collection_members(href: str) -> list[str] | None:
    """``href#<id>`` per item when *href* is a STAC item collection; None for anything else."""
    from .stac import read_stac

    doc = read_stac(href)
    if doc.get('type') != 'FeatureCollection':
        return None
    ids = [f.get('id') if isinstance(f, dict) else None for f in doc.get('features') or []]
    if not all(isinstance(x, str) and x for x in ids):
        raise SceneListError(f'the STAC item collection {href!r} has items without an id')
    return [f'{href}#{x}' for x in ids]


def expand_scenes(spec: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[str]:
    """The scene inputs *spec* names, in order (see :func:`open_sources`); nothing is opened but list files/JSON.

    Raises:
        SceneListError: if *spec* expands to no scene.
    """
    if not isinstance(spec, (str, os.PathLike)):
        out: list[str] = []
        for s in spec:
            out.extend(expand_scenes(s))
        if not out:
            raise SceneListError('the list of scenes is empty; give at least one path, URL or STAC item')
        return out
    s = os.fspath(spec)
    if is_stac(s) and '#' not in s:
        members = _collection_members(s)
        if members is not None:
            if not members:
                raise SceneListError(f'the STAC item collection {s!r} has no items')
            return members
        return [s]
    if is_remote(s) or is_stac(s):
        return [s]
    if _GLOB.search(s) and not Path(s).exists():
        hits = sorted(glob.glob(s))
        if not hits:
            raise SceneListError(f'the pattern {s!r} matches no file; check the path (quote it so the shell does '
                                 'not expand it)')
        return hits
    p = Path(s)
    if not p.exists():
        raise SceneListError(f'{s!r} does not exist; give a raster, a folder of scenes, a list file (one path or URL '
                             f'per line, {"/".join(LIST_SUFFIXES)}), a glob or a STAC item collection')
    if p.is_file() and p.suffix.lower() in LIST_SUFFIXES:
        lines = _read_list(p)
        if not lines:
            raise SceneListError(f'the list file {s!r} names no scene (one path or URL per line, # for comments)')
        return lines
    if p.is_dir() and not _is_per_band_folder(p):
        scenes = sorted(str(e) for e in p.iterdir()
                        if e.is_dir() or (e.is_file() and e.suffix.lower() in (*RASTER_SUFFIXES, '.json')))
        if not scenes:
            raise SceneListError(f'the folder {s!r} holds no scene (rasters {", ".join(RASTER_SUFFIXES)}, STAC '
                                 '.json items or per-band subfolders)')
        return scenes
    return [s]


def open_sources(spec: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], *, validate: bool = True,
                 require_crs: bool = False) -> list[SceneInput]:
    """Expand a multi-scene input into scene inputs, each validated like a single input.

    Args:
        spec: one of

            * a list file (``.txt``/``.lst``/``.list``): one path or URL per line, lines starting with ``#``
              are comments, relative paths are relative to the list file;
            * a glob (``'scenes/*.tif'``);
            * a folder of scenes: its rasters, STAC ``.json`` items and subfolders, sorted by name (a folder holding
              only single-band rasters is one per-band scene instead);
            * a STAC item collection (``.json`` ``FeatureCollection``, local or URL): one scene per item
              (``collection.json#<item id>``);
            * a single raster, URL or STAC item: one scene;
            * a sequence of any of these.
        validate: open every scene (metadata only) so that a bad scene fails before the first tile of any.
        require_crs: refuse scenes without a CRS.

    Returns:
        The scenes in order, with unique names (``_2``, ``_3``, ... appended to repeated stems).

    Raises:
        SceneListError: for an empty expansion, a scene listed twice, or a scene that fails to open (the message
            names the scene and the reason).
    """
    inputs = expand_scenes(spec)
    seen: dict[str, int] = {}
    for i, s in enumerate(inputs):
        base, hash_, frag = s.partition('#')
        key = s if is_remote(s) else f'{Path(base).resolve()}{hash_}{frag}'
        if key in seen:
            raise SceneListError(f'scene {s!r} is listed twice (entries {seen[key] + 1} and {i + 1}); drop one')
        seen[key] = i
    out: list[SceneInput] = []
    names: dict[str, int] = {}
    for i, s in enumerate(inputs):
        stem = _stem(s)
        n = names.get(stem, 0) + 1
        names[stem] = n
        name = stem if n == 1 else f'{stem}_{n}'
        src = None
        if validate:
            try:
                src = open_source(s, require_crs=require_crs)
            except SmartiesError as err:
                raise SceneListError(f'scene {i + 1} of {len(inputs)} ({s}): {err}') from err
            src.close()
        out.append(SceneInput(name, s, src))
    return out
