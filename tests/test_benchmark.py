"Fast unit tests of the miniature benchmark: dataset protocol, determinism and input checks."
import hashlib
import pytest
from PIL import Image
from ttpt.data.benchmark import (BENCHMARKS, SUITES, NEW_CLASSES, BASE_CLASSES, SOURCE_CLASSES, WorldDataset,
                            few_shot_source, get_dataset)
from ttpt.data.world import UNSEEN_PAIRS, COLOURS, SHAPES


def _digest(ds):
    h = hashlib.sha256()
    for i in range(len(ds)):
        img, label = ds[i]
        h.update(img.tobytes()); h.update(label.to_bytes(2, "little"))
    return h.hexdigest()


@pytest.mark.parametrize("name", list(BENCHMARKS))
def test_dataset_protocol(name):
    ds = get_dataset(name, n=10)
    assert len(ds) == 10 and ds.name == name
    assert isinstance(ds.classes, list) and all(isinstance(c, str) for c in ds.classes)
    img, label = ds[3]
    assert isinstance(img, Image.Image) and img.mode == "RGB" and img.size == (64, 64)
    assert isinstance(label, int) and 0 <= label < len(ds.classes)


@pytest.mark.parametrize("name", ["photo", "sketch", "hard", "counts", "new"])
def test_same_seed_gives_identical_test_sets(name):
    assert _digest(get_dataset(name, n=12, seed=0)) == _digest(get_dataset(name, n=12, seed=0))


@pytest.mark.parametrize("name", ["photo", "cartoon", "colours"])
def test_different_seeds_differ(name):
    assert _digest(get_dataset(name, n=12, seed=0)) != _digest(get_dataset(name, n=12, seed=1))


def test_sets_differ_from_each_other_and_from_few_shot():
    assert _digest(get_dataset("photo", n=12)) != _digest(get_dataset("cartoon", n=12))
    assert _digest(few_shot_source(shots=1)) != _digest(get_dataset("photo", n=36))


def test_few_shot_is_balanced():
    fs = few_shot_source(shots=3, name="base")
    labels = [fs[i][1] for i in range(len(fs))]
    assert len(fs) == 3 * len(BASE_CLASSES) and all(labels.count(k) == 3 for k in range(len(BASE_CLASSES)))


def test_suites_and_splits():
    assert set(sum(SUITES.values(), [])) == set(BENCHMARKS)
    unseen = {f"{COLOURS[c]} {SHAPES[s]}" for c, s in UNSEEN_PAIRS}
    assert unseen <= set(NEW_CLASSES) and not unseen & set(SOURCE_CLASSES) and not set(BASE_CLASSES) & set(NEW_CLASSES)


def test_clear_errors():
    with pytest.raises(ValueError, match="unknown benchmark set 'imagenet'"):
        get_dataset("imagenet")
    with pytest.raises(ValueError, match="n must be an integer"):
        get_dataset("photo", n=10.0)
    with pytest.raises(ValueError, match="seed must be an integer"):
        get_dataset("photo", n=10, seed="1")
    with pytest.raises(ValueError, match="duplicates"):
        WorldDataset(["red star", "blue star", "red star"])
    with pytest.raises(ValueError, match="unknown class names"):
        WorldDataset(["red dragon"])
    with pytest.raises(ValueError, match="unknown domain"):
        WorldDataset(["red star"], domain="oil")
    with pytest.raises(IndexError):
        get_dataset("photo", n=5)[5]
