"""Named errors: every failure a user can cause has a class and a message that names the problem.

``permanent`` tells the worker layer whether retrying can help (a corrupt file: no;
a database that is briefly unreachable: yes).
"""

from __future__ import annotations


class VideoInstError(Exception):
    """Base of every error video_inst raises on purpose."""

    code = "error"
    permanent = True

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class MediaError(VideoInstError):
    code = "media_error"


class MissingFileError(MediaError):
    code = "missing_file"


class EmptyFileError(MediaError):
    code = "empty_file"


class NotAVideoError(MediaError):
    code = "not_a_video"


class NoVideoStreamError(MediaError):
    code = "no_video_stream"


class UnsupportedCodecError(MediaError):
    code = "unsupported_codec"


class CorruptVideoError(MediaError):
    code = "corrupt_video"


class NotAnImageError(VideoInstError):
    code = "not_an_image"


class ImageTooLargeError(NotAnImageError):
    """A query image with more pixels than the decompression-bomb limit (media/images.py)."""

    code = "image_too_large"


class OutsideMediaRootsError(VideoInstError):
    code = "outside_media_roots"


class WeightsMissingError(VideoInstError):
    """Model weights could not be resolved offline; the message says which file goes where."""

    code = "weights_missing"


class NotFoundError(VideoInstError):
    code = "not_found"


class InvalidQueryError(VideoInstError):
    code = "invalid_query"


class ModelSpaceMismatchError(VideoInstError):
    code = "model_space_mismatch"


class TransientError(VideoInstError):
    code = "transient"
    permanent = False


class CatalogUnwritableError(VideoInstError):
    """The catalog refuses writes: raised before any analysis work, never as a bare driver error."""

    code = "catalog_unwritable"


class CatalogReadOnlyError(CatalogUnwritableError):
    """A read-only catalog (file or folder mode, immutable file, read-only PostgreSQL)."""

    code = "catalog_read_only"


class CatalogFullError(CatalogUnwritableError):
    """The disk under the catalog (or PostgreSQL's) is full; freeing space and retrying helps."""

    code = "catalog_full"
    permanent = False
