"""The one device resolver: what ``VIDEO_INST_DEVICE`` (``auto``, ``cpu``, ``cuda:1``) means here."""

from __future__ import annotations


def resolve_device(setting: str | None) -> str:
    """``auto`` (or None) means CUDA where present; anything else (``cpu``, ``cuda:1``) is kept."""
    if setting is not None and str(setting) != "auto":
        return str(setting)
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
