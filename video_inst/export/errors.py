"""The named error of the exporters: bad export input (unknown format, a hit without timing facts).

Example::

    raise ExportError("unknown export format 'avi'; valid formats: csv, edl, fcp7, fcpxml, otio")
"""

from __future__ import annotations

from video_inst.errors import InvalidQueryError


class ExportError(InvalidQueryError):
    """An export request that cannot be written: the message names the format or the hit at fault."""

    code = "invalid_export"
