"Fast unit tests of the procedural world: determinism, domains and input checks."
import hashlib
import numpy as np
import pytest
from ttpt.data.world import DOMAINS, PATTERN_WORDS, SEEN_PAIRS, UNSEEN_PAIRS, Scene, caption, render, rng_for, sample


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
        text, mask, _ = caption(Scene(0, 3, 1, 0, 1, "photo"), rng)
        assert ("red" in text) == bool(mask[0]) and ("star" in text) == bool(mask[1]), (text, mask)
        assert any(w in text for w in PATTERN_WORDS[1]) == bool(mask[2]), (text, mask)


def test_caption_states_its_pattern_once():
    rng = np.random.default_rng(0)
    for i in range(400):
        scene = Scene(int(rng.integers(6)), int(rng.integers(8)), 1 + i % 3, 1, 1 + i % 3, "photo")
        text, _, _ = caption(scene, rng)
        words = text.rstrip(".").split()
        said = [w for w in words if w in PATTERN_WORDS[scene.pattern]]
        assert len(said) <= 1, text


@pytest.mark.parametrize("domain", DOMAINS)
def test_caption_style_describes_its_domain(domain):
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(200):
        text, _, describes = caption(Scene(-1 if domain == "sketch" else 2, 0, 0, 0, 1, domain), rng)
        assert describes[DOMAINS.index(domain)], (domain, text)  # a caption is always true of its own image
        seen.add(tuple(describes))
    assert tuple([True] * len(DOMAINS)) in seen and len(seen) >= 2, seen  # neutral and styled captions both occur


def test_style_words_decide_positives():
    import torch
    from ttpt.data.pretrain import positive_pairs
    attrs = torch.tensor([[0, 3, 0, 0, 1], [-1, 3, 0, 0, 1]])  # a red star photo and a star sketch
    masks = torch.tensor([[False, True, False, False, True]] * 2)  # both captions say only "a star"
    domains = torch.tensor([DOMAINS.index("photo"), DOMAINS.index("sketch")])
    describes = torch.tensor([[d in ("photo", "hard") for d in DOMAINS], [d == "sketch" for d in DOMAINS]])  # "a photo of", "a sketch of"
    assert positive_pairs(attrs, masks, domains, describes).tolist() == [[1, 0], [0, 1]]
    neutral = torch.ones(2, len(DOMAINS), dtype=torch.bool)  # "an image of a star" describes both
    assert positive_pairs(attrs, masks, domains, neutral).tolist() == [[1, 1], [1, 1]]


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
