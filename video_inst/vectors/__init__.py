"""FAISS indexes derived from the catalog's ``vectors`` table: codec, one index, the store of all.

``IndexStore`` is the front door (lazy: importing this package does not load FAISS)::

    from video_inst.vectors import get_index_store
    hits = get_index_store().search(space_id, "region", query, k=20)[0]
"""

from __future__ import annotations

from typing import Any

__all__ = ["IndexStore", "VectorIndex", "choose_factory", "estimate_bytes", "get_index_store"]


def __getattr__(name: str) -> Any:
    if name in ("IndexStore", "get_index_store"):
        from video_inst.vectors import store

        return getattr(store, name)
    if name in ("VectorIndex", "choose_factory", "estimate_bytes"):
        from video_inst.vectors import index

        return getattr(index, name)
    raise AttributeError(name)
