"""ClipEmbedder and CLIP weight resolution.

No real CLIP weights exist on this machine, so every embedding test uses RANDOM weights: a tiny
open_clip architecture (registered from a JSON config, the same code paths as ViT-B-32 with
small widths) built by ``ClipEmbedder.random_init``. They check shapes, normalisation, batching,
preprocessing and the loading routes, not retrieval quality.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_CLIP as TINY  # registered by the tiny_model fixture
from conftest import TINY_CLIP_CONFIG as TINY_CONFIG
from PIL import Image

from video_inst.config import Settings
from video_inst.errors import InvalidQueryError, NotAnImageError, WeightsMissingError
from video_inst.models.clip import (
    PHOTO_TEMPLATES,
    ClipEmbedder,
    crop_windows,
    resolve_clip_weights,
)

B32_REPO = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"


@pytest.fixture(scope="module")
def photos(shared_media: Path) -> list[np.ndarray]:
    """Real photos of different sizes from the shared test media."""
    names = ["bird.bmp", "cat.bmp", "chelsea.png", "coffee.png", "balloon.jpg"]
    return [np.asarray(Image.open(shared_media / "images" / n).convert("RGB")) for n in names]


@pytest.fixture
def empty_hf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face home, so no cached weights can be found."""
    home = tmp_path / "hf"
    home.mkdir()
    monkeypatch.setenv("HF_HOME", str(home))
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    return home


# --- embeddings (random weights) ------------------------------------------------------------


def test_image_vectors_are_unit_float32(clip: ClipEmbedder, photos: list[np.ndarray]) -> None:
    vectors = clip.embed_images(photos)
    assert vectors.shape == (len(photos), clip.dim) == (len(photos), 32)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # different photos give different vectors even with random weights
    assert np.abs(vectors[0] - vectors[1]).max() > 1e-3


def test_batching_matches_one_by_one(clip: ClipEmbedder, photos: list[np.ndarray]) -> None:
    frames = photos + [photos[0][::2, ::2].copy(), photos[1]]
    batched = clip.embed_images(frames, batch_size=3)
    single = np.concatenate([clip.embed_images([f]) for f in frames])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_preprocessing_matches_open_clip_transform(clip: ClipEmbedder, photos: list[np.ndarray]) -> None:
    """The tensor pipeline equals open_clip's PIL eval transform to within one grey level."""
    from open_clip.transform import image_transform

    reference = image_transform(224, is_train=False)
    for photo in photos:
        ours = clip.preprocess_images([photo])[0]
        theirs = reference(Image.fromarray(photo))
        one_level = 1.0 / 255 / min(clip.preprocess.std) + 1e-4
        assert (ours - theirs).abs().max().item() <= one_level
        assert (ours - theirs).abs().mean().item() < 0.01 * one_level + 1e-3


def test_text_vectors_share_the_image_space(clip: ClipEmbedder) -> None:
    texts = ["a red car", "a cockatoo on a perch", ""]
    vectors = clip.embed_texts(texts)
    assert vectors.shape == (3, clip.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(clip.embed_texts(texts[:1]), vectors[:1], atol=1e-5)
    templated = clip.embed_texts(["car", "bird"], templates=PHOTO_TEMPLATES)
    assert templated.shape == (2, clip.dim)
    np.testing.assert_allclose(np.linalg.norm(templated, axis=1), 1.0, atol=1e-5)
    assert np.abs(templated[0] - clip.embed_texts(["car"])[0]).max() > 1e-4  # templates change the vector


def test_empty_inputs_and_bad_inputs(clip: ClipEmbedder, photos: list[np.ndarray]) -> None:
    assert clip.embed_images([]).shape == (0, clip.dim)
    assert clip.embed_texts([]).shape == (0, clip.dim)
    assert clip.embed_crops(photos[0], []).shape == (0, clip.dim)
    with pytest.raises(NotAnImageError, match="RGB uint8"):
        clip.embed_images([photos[0].astype(np.float32)])
    with pytest.raises(NotAnImageError, match="shape"):
        clip.embed_images([photos[0][:, :, 0]])
    with pytest.raises(InvalidQueryError, match="list of texts"):
        clip.embed_texts("a red car")


def test_crops_embed_the_boxed_region(clip: ClipEmbedder, photos: list[np.ndarray]) -> None:
    photo = photos[2]
    h, w = photo.shape[:2]
    boxes = [[10, 20, 120, 200], [w - 50, h - 40, w, h], [0, 0, w, h]]
    vectors = clip.embed_crops(photo, boxes, margin=0.0, square=False)
    assert vectors.shape == (3, clip.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # without margin or squaring, a crop's vector is the vector of the cropped pixels
    np.testing.assert_allclose(vectors[0], clip.embed_images([photo[20:200, 10:120]])[0], atol=1e-5)
    np.testing.assert_allclose(vectors[2], clip.embed_images([photo])[0], atol=1e-5)
    with pytest.raises(InvalidQueryError, match="not a valid"):
        clip.embed_crops(photo, [[50, 50, 40, 80]])
    with pytest.raises(InvalidQueryError, match="outside"):
        clip.embed_crops(photo, [[w + 5, 0, w + 50, 40]])


def test_crop_windows_add_context_and_stay_in_frame() -> None:
    shape = (100, 200, 3)
    ((x1, y1, x2, y2),) = crop_windows(shape, [[90, 40, 110, 60]], margin=0.1, square=True)
    assert (x1, y1, x2, y2) == (88, 38, 112, 62)  # 20x20 box, 10% context on each side
    ((x1, y1, x2, y2),) = crop_windows(shape, [[0, 10, 10, 90]], margin=0.1, square=True)
    assert (x1, y1) == (0, 2) and x2 - x1 == y2 - y1 == 96  # tall box: squared, shifted into the frame
    ((x1, y1, x2, y2),) = crop_windows(shape, [[0, 0, 200, 100]], margin=0.5, square=True)
    assert (x1, y1, x2, y2) == (0, 0, 200, 100)  # never larger than the frame


def test_random_space_never_looks_real(clip: ClipEmbedder) -> None:
    assert clip.space_name == f"clip:{TINY}:random:s0"
    again = ClipEmbedder.random_init(TINY, seed=0)
    np.testing.assert_allclose(again.embed_texts(["x"]), clip.embed_texts(["x"]), atol=1e-6)  # seeded


# --- weights resolution ---------------------------------------------------------------------


def test_missing_weights_message_says_what_to_put_where(empty_hf: Path, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "vi", clip_weights=None, allow_download=False)
    with pytest.raises(WeightsMissingError) as err:
        ClipEmbedder.load(settings, device="cpu")
    message = err.value.message
    for expected in (
        B32_REPO,
        "open_clip_model.safetensors",
        "VIDEO_INST_CLIP_WEIGHTS",
        str(empty_hf / "hub" / "models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K"),
        "VIDEO_INST_ALLOW_DOWNLOAD",
    ):
        assert expected in message


def test_offline_flag_blocks_download(
    empty_hf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings = Settings(home=tmp_path / "vi", clip_weights=None, allow_download=True)
    with pytest.raises(WeightsMissingError, match="HF_HUB_OFFLINE"):
        resolve_clip_weights(settings)


def test_unknown_model_or_tag_is_named(empty_hf: Path, tmp_path: Path) -> None:
    with pytest.raises(WeightsMissingError, match="Unknown CLIP model 'ViT-Q-99'"):
        resolve_clip_weights(Settings(home=tmp_path, clip_model="ViT-Q-99", clip_weights=None))
    with pytest.raises(WeightsMissingError, match="laion2b_s34b_b79k"):  # the known tags are listed
        resolve_clip_weights(Settings(home=tmp_path, clip_pretrained="no_such_tag", clip_weights=None))


def test_explicit_path_that_is_missing_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "open_clip_model.safetensors"
    with pytest.raises(WeightsMissingError, match=str(missing)):
        resolve_clip_weights(Settings(home=tmp_path, clip_weights=missing))
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    with pytest.raises(WeightsMissingError, match="holds none of"):
        resolve_clip_weights(Settings(home=tmp_path, clip_weights=empty_dir))


def test_hugging_face_cache_is_found(empty_hf: Path, tmp_path: Path) -> None:
    """A file laid out as huggingface_hub caches it is found without any network."""
    repo = empty_hf / "hub" / ("models--" + B32_REPO.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "open_clip_model.safetensors").write_bytes(b"not really weights")
    settings = Settings(home=tmp_path / "vi", clip_weights=None)
    found = resolve_clip_weights(settings)
    assert found.source == "hf_cache"
    assert found.checkpoint == snapshot / "open_clip_model.safetensors"
    assert found.preprocess["interpolation"] == "bicubic"
    # a broken file there is a named error, not a crash deep in torch
    with pytest.raises(WeightsMissingError, match="not a usable checkpoint"):
        ClipEmbedder.load(settings, device="cpu")


def test_checkpoint_from_settings_path_loads(
    clip: ClipEmbedder, photos: list[np.ndarray], tmp_path: Path
) -> None:
    checkpoint = tmp_path / "tiny.pt"
    torch.save(clip.model.state_dict(), checkpoint)
    settings = Settings(
        home=tmp_path, clip_model=TINY, clip_pretrained="my-finetune", clip_weights=checkpoint
    )
    loaded = ClipEmbedder.load(settings, device="cpu")
    assert loaded.space_name == f"clip:{TINY}:my-finetune"
    np.testing.assert_allclose(loaded.embed_images(photos[:2]), clip.embed_images(photos[:2]), atol=1e-5)
    np.testing.assert_allclose(loaded.embed_texts(["a dog"]), clip.embed_texts(["a dog"]), atol=1e-5)


def test_hugging_face_folder_from_settings_loads(
    clip: ClipEmbedder, photos: list[np.ndarray], tmp_path: Path
) -> None:
    from safetensors.torch import save_file

    folder = tmp_path / "hf_dir"
    folder.mkdir()
    state = {k: v.contiguous() for k, v in clip.model.state_dict().items()}
    save_file(state, folder / "open_clip_model.safetensors")
    (folder / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": TINY_CONFIG, "preprocess_cfg": {"resize_mode": "squash"}})
    )
    settings = Settings(home=tmp_path, clip_model=TINY, clip_pretrained="hfdir", clip_weights=folder)
    loaded = ClipEmbedder.load(settings, device="cpu")
    assert loaded.preprocess.resize_mode == "squash"  # the folder's preprocess config is honoured
    np.testing.assert_allclose(loaded.embed_texts(["a dog"]), clip.embed_texts(["a dog"]), atol=1e-5)
    square = photos[0][:200, :200].copy()  # squash == shortest-side resize on a square image
    np.testing.assert_allclose(loaded.embed_images([square]), clip.embed_images([square]), atol=1e-5)


def test_checkpoint_of_another_architecture_is_refused(clip: ClipEmbedder, tmp_path: Path) -> None:
    checkpoint = tmp_path / "tiny.pt"
    torch.save(clip.model.state_dict(), checkpoint)
    settings = Settings(home=tmp_path, clip_model="ViT-S-32", clip_pretrained="x", clip_weights=checkpoint)
    with pytest.raises(WeightsMissingError, match="not a usable checkpoint for CLIP model 'ViT-S-32'"):
        ClipEmbedder.load(settings, device="cpu")
