import os
import tempfile
import warnings

import pytest
import torch

os.environ.setdefault("IN_TEST", "1")
os.environ.setdefault("TTPT_CACHE", tempfile.mkdtemp(prefix="ttpt-cache-")) # file digests of the tests' fixtures, not the user's cache
warnings.filterwarnings("ignore", message=".*No pretrained weights loaded.*")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def clip():
    "The shipped miniature CLIP, loaded once per session (a test module that needs another model defines its own `clip`)."
    from ttpt.core.models import load_clip
    return load_clip()


@pytest.fixture(scope="session")
def random_clips():
    "Random-init real-size open_clip models (no download), loaded once per session."
    from ttpt.core.models import load_clip
    return {name: load_clip(name, pretrained=None) for name in ("ViT-B-16", "RN50")}
