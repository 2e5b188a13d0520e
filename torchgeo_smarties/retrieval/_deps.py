"""Lazy import of faiss with an error that names the fix."""

from typing import Any

from ..errors import MissingDependencyError

__all__ = ('import_faiss',)


def import_faiss() -> Any:
    """The ``faiss`` module.

    Raises:
        MissingDependencyError: if faiss is not installed.
    """
    try:
        import faiss
    except ImportError as err:
        raise MissingDependencyError(
            f'vector search needs faiss ({err}); install it with: pip install "torchgeo-smarties[retrieval]" '
            '(or pip install faiss-cpu)'
        ) from None
    return faiss
