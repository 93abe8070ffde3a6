"""What the API may tell a client: messages and notes without the server's filesystem paths.

Library messages are written for the operator at the console (``video-inst`` names the file
and folder to fix). Over HTTP the same text would show the server's layout, so before a
message leaves: the data directory becomes ``$VIDEO_INST_HOME``, a media root
``<media root>``, the server account's home folder ``~``, and a note or error about missing
model weights (which names cache folders) becomes a neutral sentence while the full text
goes to the server log.

Example::

    redact("index file /home/svc/.video_inst/index/1-region.faiss is missing", settings)
    # 'index file $VIDEO_INST_HOME/index/1-region.faiss is missing'
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from video_inst.config import Settings

log = logging.getLogger(__name__)

WEIGHTS_NOTE = (
    "no CLIP weights on this server: answered from labels (VIDEO_INST_CLIP_WEIGHTS names them; "
    "the server log says which file is missing)"
)
WEIGHTS_ERROR = (
    "model weights this request needs are not installed on this server; the server log names "
    "the missing file and where it goes"
)


def _prefixes(settings: Settings) -> list[tuple[str, str]]:
    named = [(settings.home, "$VIDEO_INST_HOME")]
    named += [(root, "<media root>") for root in settings.media_roots]
    named.append((Path.home(), "~"))
    pairs: list[tuple[str, str]] = []
    for path, label in named:
        for form in {str(path), str(path.expanduser().resolve())}:
            if form not in ("", "/", "."):
                pairs.append((form.rstrip("/"), label))
    return sorted(pairs, key=lambda p: len(p[0]), reverse=True)  # the data dir before ~ it lies in


def redact(text: str, settings: Settings) -> str:
    """``text`` with the data directory, media roots and home folder replaced by neutral names.

    Only whole leading path parts match: ``/root`` is not replaced inside ``/tmp/x/root``.
    """
    for prefix, label in _prefixes(settings):
        pattern = r"(?<![\w.~/-])" + re.escape(prefix) + r"(?=/|[^\w.-]|$)"
        text = re.sub(pattern, label.replace("\\", "\\\\"), text)
    return text


def public_note(note: str, settings: Settings) -> str:
    """A search note as clients see it; the weights-missing one is logged and replaced."""
    if note.startswith("no CLIP weights"):
        log.info("search note: %s", note)
        return WEIGHTS_NOTE
    return redact(note, settings)


def public_message(code: str, message: str, settings: Settings) -> str:
    """A library error's message as clients see it (weights errors name cache folders: logged)."""
    if code == "weights_missing":
        log.warning("weights missing: %s", message)
        return WEIGHTS_ERROR
    return redact(message, settings)
