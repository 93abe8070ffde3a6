"""Settings in one place: environment variables (prefix ``VIDEO_INST_``) and an optional file.

The CLI, the API and the Celery workers all import :func:`get_settings`, so one
``VIDEO_INST_HOME`` or ``VIDEO_INST_DATABASE_URL`` steers every process alike.

Example::

    VIDEO_INST_HOME=/srv/vi VIDEO_INST_SHOT_DETECTOR=adaptive video-inst ingest a.mp4

A settings file (TOML) is read from ``VIDEO_INST_CONFIG`` or ``$VIDEO_INST_HOME/config.toml``;
environment variables win over the file.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


def _default_home() -> Path:
    return Path(os.environ.get("VIDEO_INST_HOME") or Path.home() / ".video_inst")


def _config_file() -> Path:
    explicit = os.environ.get("VIDEO_INST_CONFIG")
    return Path(explicit) if explicit else _default_home() / "config.toml"


class Settings(BaseSettings):
    """Every tunable of video_inst. Field docs are the reference for operators."""

    model_config = SettingsConfigDict(env_prefix="VIDEO_INST_", extra="ignore")

    # --- where things live -------------------------------------------------
    home: Path = Field(default_factory=_default_home, description="Data directory of the embedded default.")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite under home.")
    broker_url: str | None = Field(None, description="Celery broker; default SQLAlchemy transport on SQLite.")
    result_backend: str | None = None
    media_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list, description="Folders tasks and the API may read (os.pathsep-separated in env)."
    )

    # --- shot plan -----------------------------------------------------------
    shot_detector: Literal["content", "adaptive", "threshold", "hash", "histogram"] = "adaptive"
    shot_threshold: float | None = Field(None, description="Detector threshold; None = detector default.")
    shot_min_len_s: float = Field(0.4, description="Shortest shot; closer cuts are merged.")
    shot_downscale_width: int = Field(256, description="Width of frames fed to the detector.")
    keyframe_first_offset_s: float = Field(0.2, description="First keyframe this long after a cut.")
    keyframe_interval_s: float = Field(1.0, description="Then one keyframe every N seconds.")
    thumbnail_max_side: int = Field(
        256, ge=16, description="Longer side of the keyframe JPEGs, px (the page shows hits >= 230 px wide)."
    )
    thumbnail_quality: int = Field(
        75,
        ge=1,
        le=95,
        description="JPEG quality of the thumbnails (256 px q75: 0.53x the bytes of 320 px q85).",
    )
    region_vectors: Literal["all", "best", "mean"] = Field(
        "mean",
        description="Region vectors a track stores and indexes: 'all' (one per keyframe it is seen "
        "at), 'best' (its best keyframe's only) or 'mean' (one: the mean of its views, its track "
        "vector, under its best keyframe's box). Measured by scripts/eval_region_density.py "
        "(docs/VECTORS.md, 'Disk per hour'): crop search keeps mAP 1.0 with a wider margin, half the rows.",
    )
    decode_threads: int = 0  # 0 = let FFmpeg choose

    # --- analysis ------------------------------------------------------------
    device: str = Field("auto", description="'auto', 'cpu', 'cuda' or 'cuda:N'.")
    backbone: Literal["efficientnet_lite0", "resnet50"] = "efficientnet_lite0"
    resnet50_weights: Path | None = Field(None, description="Path to torchvision resnet50 .pth.")
    dasr_input_size: int = Field(
        576,  # = DasrParams.input_size (tests/test_dasr_unit.py checks they agree)
        ge=32,
        description="Longer side of the DASR network input; a change is a new model space.",
    )
    dasr_pooling: Literal["avg", "gem"] = Field("avg", description="Region pooling; a new model space too.")
    dasr_tiles: int = Field(
        0,
        ge=0,
        le=4,
        description="A second DASR pass over an N x N grid of tiles for small objects (0 = off; "
        "about N*N + 1 times the CPU per keyframe); a new model space too (docs/DASR.md).",
    )
    dasr_tile_mode: Literal["excite", "forward"] = Field(
        "excite",
        description="How the tiles find regions: 'excite' (full DASR per tile) or 'forward' (peaks and "
        "boxes of each tile's forward activation map, no backward pass); 'forward' is a new model space.",
    )
    dasr_tile_size: int = Field(
        0, ge=0, description="Longer side of a tile's network input, px (0: dasr_input_size); a new space."
    )
    dasr_tile_peaks: int = Field(0, ge=0, description="Peaks per tile (0: as the whole frame, 8).")
    dasr_tile_dedupe: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="> 0: a tile's box is not stored when it overlaps a kept tile box or a whole-frame "
        "region with at least this IoU (fewer stored vectors).",
    )
    clip_model: str = "ViT-B-32"
    clip_pretrained: str = "laion2b_s34b_b79k"
    clip_weights: Path | None = Field(None, description="Path to an open_clip checkpoint or HF model dir.")
    allow_download: bool = Field(False, description="Download weights where a network exists.")
    analysis_batch: int = 8
    analysis_workers: int = Field(
        1,
        ge=1,
        description="Keyframe batches analysed at once, each in its own thread with cpu_budget // N torch "
        "threads. 1 (default): measured no faster on a quiet or moderately loaded machine "
        "(docs/INGEST.md); more helps only where torch's threads spin-wait on an oversubscribed one.",
    )

    # --- index / search ------------------------------------------------------
    exact_index_max: int = Field(200_000, description="Above this many vectors use an approximate index.")
    approx_index: Literal["compact", "hnsw", "ivfpq"] = Field(
        "compact",
        description="Index past exact_index_max: 'compact' = OPQ + IVF + PQ64 codes in RAM (72 B a vector) "
        "re-ranked by an on-disk PCA copy (docs/VECTORS.md 'Compact indexes'); 'hnsw' = HNSW32 over full "
        "floats, only while it fits index_ram_max; 'ivfpq' = IVF-PQ re-ranked from SQL.",
    )
    index_ram_max: int = Field(
        4 * 2**30,
        ge=0,
        description="Bytes one index may take in RAM: HNSW (full floats) is never chosen past it.",
    )
    dasr_whitening: str = Field(
        "off",
        description=(
            "Crop and track search through a whitened DASR space (`video-inst fit-whitening`): "
            "'off' = never (default: no gain measured, docs/VECTORS.md), 'auto' = the newest one of "
            "the configured DASR space that covers every video, or the name of one whitened space "
            "(used once it covers every video)."
        ),
    )
    default_top_k: int = 20
    search_threads: int = Field(
        1,
        description="Torch threads of `video-inst serve` (0 = torch's default): on a small shared CPU one "
        "query's forward pass runs 2-3x faster on one thread than on two (docs/API.md), and concurrent "
        "requests then share the cores instead of fighting over them.",
    )
    search_oversample: int | None = Field(
        None,
        ge=1,
        description="Candidates an approximate index re-ranks exactly per wanted hit (None: the index's "
        "own, 4; 10 for PQ codes under 64 bytes). Each costs a stored-vector read; scripts/eval_rerank.py "
        "(real vectors) and scripts/bench_api.py --oversample-sweep measure recall against time.",
    )
    search_precision: Literal["float32", "bfloat16", "auto"] = Field(
        "float32",
        description="Precision of a crop query's forward pass (stored vectors stay as ingest made them). "
        "bfloat16 ran it 1.8x faster on this machine's AVX512-BF16 CPU with query vectors at cosine "
        "0.998 (median) of the float32 ones, 93% of the same top-20 regions: less change than re-saving "
        "the query as JPEG q95 (90%); scripts/eval_query_precision.py, docs/API.md. auto: bfloat16 where "
        "the device runs it natively (CUDA, or a CPU with AVX512-BF16 / AMX), else float32.",
    )
    search_feature_cache: int = Field(
        16,
        ge=0,
        description="Feature maps of recent query images kept by a searcher (0 = off): another box "
        "on the same image is pooled from the kept map instead of running the backbone again "
        "(~1.3 MB each at 576 px; docs/API.md).",
    )
    search_query_sides: tuple[int, ...] = Field(
        (64, 128),
        description="Extra scales of a crop query (issue 11): the query is also embedded with the "
        "box's longer side at each of these network-input pixel sizes, and a region keeps its best "
        "score over the scales; small objects in the footage then meet a query of their own scale "
        "(scripts/eval_hard.py, docs/DASR.md: tuning mAP 0.486 -> 0.571). Empty: one scale.",
    )
    max_top_k: int = 1000
    weak_score_dasr: float | None = Field(
        0.45,
        description="Crop / track hits scoring under this are marked weak (hidden with hide_weak) and "
        "not counted by the appearance report: chosen with weak_relative_dasr on the hard protocol's "
        "TUNING split by the F1 of kept shots (scripts/eval_trust.py, docs/DASR.md). None: never.",
    )
    weak_relative_dasr: float | None = Field(
        0.525,
        description="Crop / track hits scoring under this fraction of the query's best track score are "
        "weak too (the threshold is the higher of the two; chosen with weak_score_dasr, "
        "scripts/eval_trust.py, docs/DASR.md). None: the absolute threshold alone.",
    )
    weak_score_labels: float | None = Field(
        0.667,
        description="The same for label text search (sums of label weight x probability; measured on "
        "only 5 label hits on distractor shots, docs/DASR.md).",
    )
    feedback_alpha: float = Field(1.0, description="Rocchio weight of the query itself (relevance feedback).")
    feedback_beta: float = Field(0.75, description="Rocchio weight of the mean of hits marked right.")
    feedback_gamma: float = Field(0.15, description="Rocchio weight of the mean of hits marked wrong.")

    # --- exports (docs/EXPORT.md) ---------------------------------------------
    project_rate: str | None = Field(
        None,
        description="The editor's project rate (25, 29.97, 29.97 NDF, 30000/1001, ...): EDL / FCP7 events "
        "and the FCPXML sequence are written at it, sources at other rates conformed. None: the rate most "
        "hits share, mapped to one the format can declare (12.5 -> 25, 20 -> 60). `?project_rate=` on "
        "POST /export and `--project-rate` on `video-inst export` override it.",
    )

    # --- API -----------------------------------------------------------------
    api_token: str | None = Field(None, description="Bearer token for endpoints that change state.")
    server_url: str | None = Field(
        None,
        description="A running `video-inst serve` (e.g. http://127.0.0.1:8000) that `video-inst search` "
        "asks instead of loading the models itself (`--server` overrides it).",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated in env."
    )
    max_upload_mb: int = 2048

    # --- workers (Celery; docs/WORKERS.md) -----------------------------------
    queue_prefix: str = Field("", description="Prefix of the queue names, e.g. 'site1-' -> 'site1-ingest'.")
    chunk_keyframes: int = Field(48, description="Keyframes per chunk of whole shots a worker analyses.")
    task_soft_time_limit_s: int = Field(3600, description="A task is asked to stop (job failed) after this.")
    task_time_limit_s: int = Field(3900, description="A task's process is killed after this.")
    task_max_retries: int = Field(5, description="Retries of a transient error before the job fails.")
    retry_backoff_s: float = Field(2.0, description="First retry delay; doubles each time.")
    retry_backoff_max_s: float = Field(300.0, description="Longest retry delay.")
    broker_visibility_timeout_s: int | None = Field(
        None, description="Redis: unacknowledged tasks are redelivered after this; default hard limit + 300."
    )
    staging_dir: Path | None = Field(
        None, description="Chunk results between tasks; default home/staging; shared storage across machines."
    )
    callback_timeout_s: float = Field(10.0, description="Timeout of one job callback POST.")
    callback_attempts: int = Field(5, description="Attempts of a job callback POST (exponential backoff).")
    job_stale_after_s: int = Field(
        86400, description="ingest-archive re-enqueues a file whose queued/running job is older than this."
    )
    chunk_delay_s: float = Field(0.0, description="Testing only: sleep this long in every chunk task.")

    @field_validator("media_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [Path(p) for p in value.split(os.pathsep) if p]
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [o.strip() for o in value.split(",") if o.strip()]
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _config_file()
        if path.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    # --- derived -------------------------------------------------------------
    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'catalog.sqlite3'}"

    @property
    def resolved_broker_url(self) -> str:
        return self.broker_url or f"sqla+sqlite:///{self.home / 'broker.sqlite3'}"

    @property
    def is_embedded(self) -> bool:
        return self.database_url is None

    @property
    def index_dir(self) -> Path:
        return self.home / "index"

    @property
    def thumbnail_dir(self) -> Path:
        return self.home / "thumbnails"

    @property
    def staging_root(self) -> Path:
        """Where jobs stage chunk results: ``staging_dir``, else ``home/staging``."""
        return self.staging_dir or self.home / "staging"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    def ensure_dirs(self) -> None:
        for path in (self.home, self.index_dir, self.thumbnail_dir):
            path.mkdir(parents=True, exist_ok=True)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests call ``get_settings.cache_clear()`` after changing env."""
    return Settings()
