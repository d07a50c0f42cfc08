"MetaTPT: gradients reach the augmentations (finite differences), the reset restores every piece, determinism, and the meta-learned start round-trips through safetensors."
import pytest
import torch

from ttpt.augment import affine_views, random_affine
from ttpt.benchmark import few_shot_source, get_dataset
from ttpt.setup import source_artifact
from ttpt.metatpt import MetaTPT, meta_train
from ttpt.models import MINICLIP, load_clip


@pytest.fixture(scope="module")
def clip():
    return load_clip(MINICLIP, pretrained=None)


@pytest.fixture(scope="module")
def hard():
    return get_dataset("hard", n=3)


def test_augmentation_gradients_match_finite_differences():
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 12, dtype=torch.float64), torch.linspace(-1, 1, 12, dtype=torch.float64), indexing="ij")
    image = torch.stack([torch.sin(2 * xx + yy), torch.cos(3 * yy), xx * yy])
    theta = torch.tensor([[-0.4, 0.3, 0.1, -0.1, 0.15], [-0.2, -0.2, -0.15, 0.05, -0.1]], dtype=torch.float64, requires_grad=True)
    weights = torch.randn(2, 3, 12, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert torch.autograd.gradcheck(lambda t: (affine_views(image, t) * weights).sum(), (theta,), eps=1e-6, atol=1e-4)


def test_reset_restores_every_learnable_piece(clip, hard):
    method = MetaTPT(n_views=9, keep=0.3, inner_steps=2)
    method.prepare(clip, hard.classes)
    snapshot = {k: {n: t.clone() for n, t in v.state_dict().items() if isinstance(t, torch.Tensor)} for k, v in method.episode_state().items()
                if isinstance(v, torch.nn.Module)}
    method.adapt(hard[0][0], 0)
    assert not torch.equal(method.augment.theta, snapshot["augment"]["theta"])
    assert method.optimizer.state_dict()["state"] and method.augment_optimizer.state_dict()["state"]
    method.reset()
    assert torch.equal(method.augment.theta, snapshot["augment"]["theta"])
    assert torch.equal(method.learner.ctx, snapshot["learner"]["ctx"])
    assert method.optimizer.state_dict()["state"] == {} and method.augment_optimizer.state_dict()["state"] == {}


@pytest.mark.parametrize("loop", ["dual", "joint"])
def test_deterministic_under_a_seed(clip, hard, loop):
    runs = []
    for seed in (0, 0, 1):
        method = MetaTPT(n_views=9, keep=0.3, inner_steps=2, loop=loop, seed=seed)
        method.prepare(clip, hard.classes)
        runs.append(torch.stack([method.predict(hard[i][0], i) for i in range(len(hard))]))
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


def test_meta_learned_start_round_trips_through_safetensors(clip, tmp_path):
    source = few_shot_source(shots=1)
    train = lambda: {"augment_init": meta_train(clip, source, MetaTPT(n_views=9, keep=0.3, inner_steps=1), epochs=1, batch_size=18, progress=False)[0]}
    first = source_artifact(clip, tmp_path, "metatpt", {"test": 1}, train)["augment_init"]
    files = list(tmp_path.glob("metatpt-*.safetensors"))
    assert len(files) == 1
    read = source_artifact(clip, tmp_path, "metatpt", {"test": 1}, lambda: pytest.fail("retrained instead of read"))["augment_init"]
    assert torch.equal(first, read) and read.shape == (8, 5)


@pytest.mark.parametrize("kwargs, message", [
    ({"inner_objective": "dream"}, "inner_objective must be one of"), ({"loop": "triple"}, "loop must be one of"),
    ({"inner_steps": -1}, "inner_steps must be ≥ 0"), ({"n_views": 9, "augment_init": torch.zeros(4, 5)}, r"augment_init must have shape \(8, 5\)")])
def test_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MetaTPT(**kwargs)
