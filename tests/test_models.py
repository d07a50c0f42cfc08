"Model loading: shipped weights offline, checkpoints, and clear errors for bad input."
import time

import pytest
import torch

from ttpt.core.models import MINICLIP, hub_reachable, load_clip, write_state_dict
from ttpt.core.prompts import PromptLearner
from ttpt.core.zeroshot import class_text_features


def test_shipped_model_loads_offline_quickly():
    start = time.perf_counter()
    clip = load_clip()
    seconds = time.perf_counter() - start
    assert clip.name == MINICLIP and clip.pretrained.endswith("ttpt-miniclip.safetensors")
    assert clip.image_size == 64
    assert all(not p.requires_grad for p in clip.model.parameters())
    print(f"shipped miniature CLIP loaded in {seconds:.2f}s")


def test_checkpoint_round_trip(tmp_path):
    clip = load_clip(MINICLIP, pretrained=None)
    write_state_dict(clip.model, tmp_path / "m.safetensors")
    again = load_clip(MINICLIP, checkpoint=tmp_path / "m.safetensors")
    for (name, a), (_, b) in zip(clip.model.state_dict().items(), again.model.state_dict().items()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("kwargs,message", [
    (dict(name="ViT-B-61", pretrained=None), "Did you mean"),
    (dict(name="RN50", pretrained="nonsense"), "known tags"),
    (dict(name=MINICLIP, checkpoint="missing.safetensors"), "not found"),
])
def test_bad_model_requests(kwargs, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        load_clip(**kwargs)


def test_not_a_checkpoint(tmp_path):
    junk = tmp_path / "weights.safetensors"
    junk.write_bytes(b"definitely not a checkpoint")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_clip(MINICLIP, checkpoint=junk)


@pytest.mark.skipif(hub_reachable(), reason="only meaningful without internet")
def test_unavailable_weights_fail_fast():
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match="Could not obtain"):
        load_clip("RN50", pretrained="openai")
    assert time.perf_counter() - start < 30, "an offline machine must get the error at once, not after retries"


def test_bad_class_lists():
    clip = load_clip(MINICLIP, pretrained=None)
    with pytest.raises(ValueError, match="non-empty"):
        class_text_features(clip, [])
    with pytest.warns(UserWarning, match="repeated class names"):
        PromptLearner(clip, ["red circle", "red circle"])
    with pytest.raises(ValueError, match="context length"):
        PromptLearner(clip, ["very " * 25 + "long class name"])
