"""Named errors of the vector layer (FAISS indexes and their files).

Wrong-dimension vectors raise :class:`video_inst.errors.ModelSpaceMismatchError`; a writer
that waits too long for the index lock raises :class:`video_inst.errors.TransientError`.
The classes here cover what is left::

    try:
        VectorIndex(512, "IVF0,Nonsense")
    except VectorIndexError as err:
        print(err.code, err.message)
"""

from __future__ import annotations

from video_inst.errors import VideoInstError


class VectorIndexError(VideoInstError):
    """An index cannot be built or used as asked (bad factory string, untrained, duplicate ids)."""

    code = "vector_index"


class InvalidVectorsError(VectorIndexError):
    """Vectors that cannot be stored: wrong shape, NaN / inf, lengths that do not match their ids."""

    code = "invalid_vectors"


class CorruptIndexError(VectorIndexError):
    """An index file that cannot be read back; the store rebuilds it from SQL."""

    code = "corrupt_index"


class IndexUnavailableError(VectorIndexError):
    """An index is damaged or behind SQL and being rebuilt, and too large to search exactly meanwhile."""

    code = "index_unavailable"
