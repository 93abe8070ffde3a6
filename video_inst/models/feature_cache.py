"""A small LRU of query images' feature maps, so a second box on the same image skips the network.

Why: on the search page an editor drops one image and then drags box after box on it, and a
panel may resend the same frame grab; the backbone's forward pass over the query image is
most of a crop query's time on a CPU (docs/API.md), while pooling another box from the
stored map costs under a millisecond. The key is a digest of the exact network input (the
resized pixels), so a hit gives bit-identical features to running the network again.

Example::

    cache = FeatureMapCache(capacity=16)
    key = cache.key(resized)
    fmap = cache.get(key)
    if fmap is None:
        fmap = cache.put(key, backbone.features(x))
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import numpy as np
import torch


class FeatureMapCache:
    """Thread-safe LRU of ``capacity`` feature maps (0 disables it), kept on the device that made them."""

    def __init__(self, capacity: int = 16) -> None:
        if capacity < 0:
            raise ValueError(f"feature map cache capacity must be >= 0, got {capacity}")
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[bytes, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(pixels: np.ndarray) -> bytes:
        """Digest of an image array's shape and bytes (the network input, not the upload)."""
        digest = hashlib.blake2b(digest_size=16)
        digest.update(repr((pixels.shape, pixels.dtype.str)).encode())
        digest.update(np.ascontiguousarray(pixels).data)
        return digest.digest()

    def get(self, key: bytes) -> torch.Tensor | None:
        if not self.capacity:
            return None
        with self._lock:
            fmap = self._items.get(key)
            if fmap is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return fmap

    def put(self, key: bytes, fmap: torch.Tensor) -> torch.Tensor:
        """Store ``fmap`` (detached) and return it."""
        if not self.capacity:
            return fmap
        with self._lock:
            self._items[key] = fmap.detach()
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return fmap

    def __len__(self) -> int:
        return len(self._items)
