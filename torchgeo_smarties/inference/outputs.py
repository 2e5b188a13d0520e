"""Output safety for the inference commands: path checks, an exclusive lock per output, atomic writes, disk full.

Every output of a run (embedding raster, preview, probabilities, GeoParquet/CSV) is

1. *checked* before the first tile (:func:`check_outputs`): a file name (not a folder) in an existing, writable
   folder; not the input (compared by inode, so hard and symbolic links are caught); not an existing device, FIFO
   or socket; all outputs distinct;
2. *locked* for the whole run (:class:`OutputLock`): ``OUTPUT.lock`` next to each output is held with
   :mod:`filelock` (``flock``, released by the kernel if the process dies); a second run on the same output fails
   at once with :class:`~torchgeo_smarties.errors.OutputLockedError` naming the lock file and the holder's PID;
3. *written atomically*: into a temporary file in the same folder, moved into place with :func:`os.replace` only
   when complete (:func:`atomic_target`), so a failed or interrupted run never leaves a truncated output.

.. versionadded:: 0.2
"""

import contextlib
import errno
import hashlib
import json
import os
import shutil
import stat
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import DiskFullError, OutputError, OutputLockedError

__all__ = ('OutputLock', 'atomic_target', 'check_outputs', 'disk_full_error', 'file_fingerprint', 'input_files',
           'is_disk_full', 'lock_path')

_SAMPLE = 64 * 1024  # bytes hashed at the start, middle and end of an input file
_WINDOWS = 8  # further evenly spaced windows of _SAMPLE // 16 bytes


def lock_path(output: Path) -> Path:
    """The lock file of *output*: ``OUTPUT.lock`` in the same folder."""
    return output.with_name(output.name + '.lock')


def input_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The files an input consists of: *paths* plus, for each, the files GDAL reads with it (VRT sources, sidecars)."""
    files: list[Path] = []
    for p in paths:
        files.append(Path(p))
        try:
            import rasterio

            with rasterio.open(p) as ds:
                files.extend(Path(f) for f in (ds.files or ()) if '://' not in str(f) and not str(f).startswith('/vsi'))
        except Exception:  # the input is validated (with a typed error) by its reader; this only widens the check
            pass
    seen: set[str] = set()
    out = []
    for f in files:
        key = str(f.absolute())
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_outputs(outputs: Sequence[tuple[str, Path]], inputs: Sequence[Path] = ()) -> None:
    """Refuse unusable outputs before anything is computed or written.

    Args:
        outputs: ``(kind, path)`` pairs, e.g. ``('output', Path('emb.tif'))``, ``('preview', ...)``.
        inputs: the files the run reads (see :func:`input_files`).

    Raises:
        OutputError: if an output is a folder, its folder is missing or not writable, it exists and is not a regular
            file (device, FIFO, socket), it is one of the inputs (same inode: hard and symbolic links included), or
            two outputs are the same file.
    """
    seen: list[tuple[str, Path]] = []
    for kind, path in outputs:
        name = str(path)
        if path.is_dir():
            raise OutputError(f'{kind} {name!r} is a folder; give a file name such as {str(path / "out.tif")!r}')
        parent = path.absolute().parent
        if not parent.is_dir():
            raise OutputError(f'{kind} folder {str(parent)!r} does not exist; create it first')
        if not os.access(parent, os.W_OK | os.X_OK):
            raise OutputError(f'{kind} folder {str(parent)!r} is not writable; choose another location')
        if os.path.lexists(path):
            try:
                st = os.stat(path)
            except OSError:
                st = None  # a dangling symbolic link: replaced by the new file
            if st is not None and not stat.S_ISREG(st.st_mode):
                raise OutputError(
                    f'{kind} {name!r} exists and is not a regular file (a device, FIFO or socket); it is never '
                    'replaced: choose a file name'
                )
            if st is not None and not os.access(path, os.W_OK):
                raise OutputError(f'{kind} {name!r} exists and is not writable; choose another name or location')
        for f in inputs:
            if _same_file(path, f) or path.absolute() == f.absolute():
                raise OutputError(
                    f'{kind} {name!r} is the input file {str(f)!r} (same file or a link to it); writing it would '
                    'destroy the input: choose another output name'
                )
        for k2, p2 in seen:
            if path.absolute() == p2.absolute() or _same_file(path, p2):
                raise OutputError(f'{kind} {name!r} is also the {k2}; give them different names')
        seen.append((kind, path))


class OutputLock:
    """Exclusive locks on one run's outputs, held from before the first tile until the last output is in place.

    ``OUTPUT.lock`` (a :class:`filelock.FileLock`, i.e. ``flock``) is taken for every output in a fixed order,
    without waiting; the holder writes its PID and command into the file. Released (and the lock files removed) by
    :meth:`release` or on leaving the ``with`` block; if the process is killed the kernel releases the lock, and the
    stale file is reused by the next run.

    Raises:
        OutputLockedError: on :meth:`acquire`, if another run (process or thread) holds one of the locks.
    """

    def __init__(self, outputs: Iterable[Path]) -> None:
        self.paths = sorted({lock_path(Path(o).absolute()) for o in outputs}, key=str)
        self._held: list[Any] = []

    def acquire(self) -> 'OutputLock':
        """Take every lock or none."""
        from filelock import FileLock, Timeout

        try:
            for p in self.paths:
                for _attempt in range(3):
                    lock = FileLock(p, timeout=0, thread_local=False)
                    try:
                        lock.acquire()
                    except Timeout:
                        raise OutputLockedError(
                            f'another run is writing {str(p)[:-len(".lock")]!r} (lock {str(p)!r} held{_holder(p)}); '
                            'wait for it to finish, or choose another output. If no such run exists, the lock is '
                            f'stale: remove {str(p)!r}'
                        ) from None
                    if _is_current(lock, p):
                        break
                    lock.release()  # we locked a file its holder had just removed: retry on the new one
                else:
                    raise OutputLockedError(f'cannot take the lock {str(p)!r}: other runs keep replacing it')
                self._held.append(lock)
                with contextlib.suppress(OSError):
                    p.write_text(json.dumps({'pid': os.getpid()}))
        except BaseException:
            self.release()
            raise
        return self

    def release(self) -> None:
        """Remove the lock files and release the locks (idempotent)."""
        for lock in reversed(self._held):
            with contextlib.suppress(OSError):
                Path(lock.lock_file).unlink()  # still held: a waiting run retries on a fresh file
            lock.release()
        self._held.clear()

    def __enter__(self) -> 'OutputLock':
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _is_current(lock: Any, p: Path) -> bool:
    """Whether *lock*'s open file is still the file at *p* (a releasing holder removes it; see :meth:`release`)."""
    fd = getattr(getattr(lock, '_context', None), 'lock_file_fd', None)
    if fd is None:
        return True  # cannot tell with this filelock version
    try:
        return bool(os.fstat(fd).st_ino == os.stat(p).st_ino)
    except OSError:
        return False


def _holder(p: Path) -> str:
    try:
        pid = json.loads(p.read_text()).get('pid')
    except (OSError, ValueError, AttributeError):
        return ''
    return f' by process {pid}' if pid is not None else ''


@contextlib.contextmanager
def atomic_target(final: Path) -> Iterator[Path]:
    """A temporary path next to *final*, moved onto *final* if the block succeeds and removed if it fails."""
    tmp = final.with_name(f'.{final.name}.{os.getpid()}.tmp')
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def is_disk_full(err: BaseException) -> bool:
    """Whether *err* (OSError, or a GDAL/rasterio I/O error) reports a full disk or exceeded quota."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(err).lower()
    return 'no space left' in text or 'disk quota' in text


def disk_full_error(output: Path, needed: int) -> DiskFullError:
    """The typed error for a full disk while writing *output* (*needed*: bytes the run writes in total)."""
    try:
        free = shutil.disk_usage(output.absolute().parent).free
    except OSError:
        free = -1
    have = f'{_size(free)} free' if free >= 0 else 'free space unknown'
    return DiskFullError(
        f'no space left on the device of {str(output)!r} ({have}; the run needs about {_size(needed)}): free '
        'space or choose another -o, then rerun the same command with --resume to continue'
    )


def _size(n: int) -> str:
    for unit in ('B', 'KiB', 'MiB', 'GiB'):
        if abs(n) < 1024:
            return f'{n:.0f} {unit}' if unit == 'B' else f'{n:.1f} {unit}'
        n /= 1024  # type: ignore[assignment]
    return f'{n:.1f} TiB'


def file_fingerprint(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Content fingerprint of input files: size, ``mtime_ns`` and a SHA-1 of sampled blocks.

    The hash covers the first, middle and last 64 KiB and 8 evenly spaced 4 KiB windows, so it costs a few reads
    whatever the file size, yet a change in place (same size, even the same mtime) is caught unless it touches
    none of the sampled bytes. Paths that are not local files (URLs, GDAL ``/vsi`` paths) are recorded by name.
    """
    out: list[dict[str, Any]] = []
    for p in paths:
        if not p.is_file():  # a remote or virtual input (URL, /vsi path): only its name can be compared
            out.append({'file': str(p)})
            continue
        st = os.stat(p)
        size = st.st_size
        h = hashlib.sha1()
        win = _SAMPLE // 16
        blocks = [(0, _SAMPLE), (max(0, size // 2 - _SAMPLE // 2), _SAMPLE), (max(0, size - _SAMPLE), _SAMPLE)]
        blocks += [(size * (k + 1) // (_WINDOWS + 1), win) for k in range(_WINDOWS)]
        with open(p, 'rb') as f:
            for off, n in blocks:
                f.seek(off)
                h.update(f.read(n))
        out.append({'file': str(p.absolute()), 'size': size, 'mtime_ns': st.st_mtime_ns, 'sha1': h.hexdigest()})
    return out
