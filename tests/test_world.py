"Fast unit tests of the procedural world: determinism, domains and input checks."
import hashlib
import numpy as np
import pytest
from ttpt.world import DOMAINS, PATTERNS, SEEN_PAIRS, UNSEEN_PAIRS, Scene, caption, render, rng_for, sample


def _digest(seed, domain, n=6):
    h = hashlib.sha256()
    for i in range(n):
        img, text, _ = sample(seed, i, domain)
        h.update(img.tobytes()); h.update(text.encode())
    return h.hexdigest()


@pytest.mark.parametrize("domain", DOMAINS)
def test_same_seed_gives_identical_bytes(domain):
    assert _digest(0, domain) == _digest(0, domain)


@pytest.mark.parametrize("domain", DOMAINS)
def test_different_seeds_differ(domain):
    assert _digest(0, domain) != _digest(1, domain)


@pytest.mark.parametrize("domain", DOMAINS)
def test_images_are_64px_rgb(domain):
    img, text, scene = sample(3, 2, domain)
    assert (img.size, img.mode, scene.domain) == ((64, 64), "RGB", domain)
    assert isinstance(text, str) and text


def test_sketch_has_no_colour():
    img, text, scene = sample(0, 1, "sketch")
    a = np.asarray(img).astype(int)
    assert scene.colour == -1 and (a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all()


def test_unseen_pairs_are_held_out():
    assert len(SEEN_PAIRS) == 36 and len(UNSEEN_PAIRS) == 12 and not set(SEEN_PAIRS) & set(UNSEEN_PAIRS)


def test_caption_mask_matches_words():
    rng = np.random.default_rng(0)
    for _ in range(50):
        text, mask = caption(Scene(0, 3, 1, 0, 1, "photo"), rng)
        assert ("red" in text) == bool(mask[0]) and ("star" in text) == bool(mask[1])


def test_caption_states_its_pattern_once():
    rng = np.random.default_rng(0)
    for i in range(400):
        scene = Scene(int(rng.integers(6)), int(rng.integers(8)), 1 + i % 3, 1, 1 + i % 3, "photo")
        text, mask = caption(scene, rng)
        assert text.split().count(PATTERNS[scene.pattern]) == int(mask[2]), (text, mask)  # once when stated, else never


def test_unknown_domain_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown domain 'oil'.*photo"):
        sample(0, 0, "oil")
    with pytest.raises(ValueError, match="unknown domain"):
        render(Scene(0, 0, 0, 0, 1, "oil"), rng_for(0, 0, 0))


@pytest.mark.parametrize("seed", [1.0, "0", None, True])
def test_non_integer_seed_is_a_clear_error(seed):
    with pytest.raises(ValueError, match="seed must be an integer"):
        sample(seed, 0)


def test_numpy_integers_are_accepted():
    assert sample(np.int64(0), np.int32(4))[0].tobytes() == sample(0, 4)[0].tobytes()
