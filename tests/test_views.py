"Unit tests for ttpt.core.views: TPT's test-time views."
import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from ttpt.core.models import load_clip
from ttpt.core.views import AUGMIX_OPS, ViewMaker, augmix_view, crop_flip_view, image_rng


def _image(width=96, height=64, seed=0):
    "A random RGB test image."
    return Image.fromarray((np.random.default_rng(seed).random((height, width, 3)) * 255).astype(np.uint8))


@pytest.fixture(scope="module")
def clip():
    return load_clip(pretrained=None)


def test_views_are_deterministic_and_order_independent(clip):
    maker = ViewMaker.from_clip(clip, n_views=16, seed=3)
    first = maker(_image(), 5)
    maker(_image(seed=1), 4)  # another image in between must not matter
    assert torch.equal(maker(_image(), 5), first)
    assert not torch.equal(maker(_image(), 6)[1:], first[1:])
    assert not torch.equal(ViewMaker.from_clip(clip, n_views=16, seed=4)(_image(), 5)[1:], first[1:])


def test_augmix_views_are_deterministic(clip):
    maker = ViewMaker.from_clip(clip, n_views=6, augmix=True, seed=1)
    assert torch.equal(maker(_image(), 2), maker(_image(), 2))


def test_view_zero_is_the_models_eval_preprocess(clip):
    image = _image(150, 90)
    views = ViewMaker.from_clip(clip, n_views=4)(image, 0)
    assert views.shape == (4, 3, clip.image_size, clip.image_size) and views.dtype == torch.float32
    torch.testing.assert_close(views[0], clip.preprocess(image), rtol=0, atol=1e-6)
    wide = ViewMaker(n_views=2, resolution=224, mean=clip.mean, std=clip.std)(image, 0)
    reference = open_clip.image_transform(224, is_train=False, mean=clip.mean, std=clip.std)(image)
    torch.testing.assert_close(wide[0], reference, rtol=0, atol=1e-6)


def test_greyscale_input_is_converted(clip):
    image = _image().convert("L")
    views = ViewMaker.from_clip(clip, n_views=3)(image, 0)
    torch.testing.assert_close(views[0], clip.preprocess(image), rtol=0, atol=1e-6)


def test_augmix_shape_dtype_and_range():
    mean, std = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
    crop = crop_flip_view(_image(), image_rng(0, 0), 32)
    low = (0 - np.array(mean)) / np.array(std)
    high = (1 - np.array(mean)) / np.array(std)
    for seed in range(20):
        mixed = augmix_view(crop, image_rng(seed, 0), mean, std)
        assert mixed.shape == (3, 32, 32) and mixed.dtype == np.float32
        assert (mixed.min((1, 2)) >= low - 1e-5).all() and (mixed.max((1, 2)) <= high + 1e-5).all()
    for op in AUGMIX_OPS:
        assert op(crop, 1, image_rng(0, 1)).size == crop.size
    views = ViewMaker(n_views=5, resolution=32, augmix=True)(_image(), 0)
    assert views.shape == (5, 3, 32, 32)


def test_single_view_is_the_original(clip):
    one = ViewMaker.from_clip(clip, n_views=1, augmix=True)(_image(), 0)
    assert one.shape == (1, 3, clip.image_size, clip.image_size)
    torch.testing.assert_close(one[0], clip.preprocess(_image()), rtol=0, atol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    ({"n_views": 0}, "n_views (the original view plus n_views − 1 random ones) must be ≥ 1"),
    ({"n_views": 2.5}, "n_views (the original view plus n_views − 1 random ones) must be an integer"),
    ({"scale": (0.5, 0.1)}, "scale must be (low, high)"),
    ({"scale": (0.0, 1.0)}, "scale must be (low, high)"),
    ({"scale": (0.5, 1.5)}, "scale must be (low, high)"),
    ({"ratio": (2.0, 1.0)}, "ratio must be (low, high)"),
    ({"resolution": 0}, "resolution must be ≥ 1"),
    ({"std": (1, 0, 1)}, "std > 0"),
    ({"seed": -1}, "seed must be ≥ 0"),
])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=None) as error:
        ViewMaker(**kwargs)
    assert message in str(error.value)


def test_bad_inputs_are_refused():
    maker = ViewMaker(n_views=2, resolution=32)
    with pytest.raises(ValueError, match="needs a PIL image, got ndarray"):
        maker(np.zeros((32, 32, 3), np.uint8), 0)
    with pytest.raises(ValueError, match="index must be ≥ 0"):
        maker(_image(), -1)
