"MetaTPT: its pieces (diversity, AffineAugment, with_gradient), gradients reach the augmentations (finite differences), the reset restores every piece, determinism, and the meta-learned start round-trips through safetensors."
import pytest
import torch

from ttpt.methods.metatpt.augment import affine_views, random_affine
from ttpt.data.benchmark import few_shot_source, get_dataset
from ttpt.harness.identity import modules_identity
from ttpt.harness.setup import source_artifact
import torch.nn.functional as F

from ttpt.methods.metatpt.method import AffineAugment, MetaTPT, diversity, encode_images, meta_train, with_gradient
from ttpt.core.models import MINICLIP, load_clip
from ttpt.core.selection import average_log_probs
from ttpt.core.zeroshot import clip_logits


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


def test_diversity_is_the_mean_pairwise_cosine():
    feats = F.normalize(torch.randn(5, 8, generator=torch.Generator().manual_seed(0)), dim=-1)
    pairs = [float(feats[i] @ feats[j]) for i in range(5) for j in range(5) if i != j]
    torch.testing.assert_close(diversity(feats).item(), sum(pairs) / len(pairs), atol=1e-6, rtol=0)
    torch.testing.assert_close(diversity(feats[:1].expand(3, 8)).item(), 1.0, atol=1e-6, rtol=0)


def test_affine_augment_warps_with_its_parameters_and_passes_their_gradient():
    image = torch.rand(3, 10, 10, generator=torch.Generator().manual_seed(0))
    start = random_affine(4, seed=2)
    augment = AffineAugment(start)
    start += 1.0 # the module holds its own copy
    views = augment(image)
    torch.testing.assert_close(views, affine_views(image, augment.theta.detach()), atol=0, rtol=0)
    assert views.shape == (4, 3, 10, 10), views.shape
    views.mean().backward()
    assert augment.theta.grad is not None and augment.theta.grad.abs().sum() > 0, augment.theta.grad


def test_with_gradient_carries_a_value_and_a_gradient():
    theta = torch.nn.Parameter(torch.randn(3, 5))
    g = torch.randn(3, 5)
    carrier = with_gradient(1.25, theta, g)
    carrier.backward()
    torch.testing.assert_close(carrier.item(), 1.25, atol=1e-6, rtol=0)
    torch.testing.assert_close(theta.grad, g, atol=0, rtol=0)


def test_encode_images_keeps_the_graph_to_the_images_only(clip):
    images = torch.rand(2, 3, 64, 64, requires_grad=True)
    feats = encode_images(clip, images)
    torch.testing.assert_close(feats.norm(dim=-1), torch.ones(2), atol=1e-5, rtol=0)
    feats.sum().backward()
    assert images.grad is not None, "the graph reaches the images"
    assert [n for n, p in clip.model.named_parameters() if p.grad is not None] == []


def test_reset_restores_every_learnable_piece(clip, hard):
    method = MetaTPT(n_views=9, keep=0.3, inner_steps=2)
    method.prepare(clip, hard.classes)
    snapshot = {k: {n: t.clone() for n, t in v.state_dict().items() if isinstance(t, torch.Tensor)} for k, v in method.episode_state().items()
                if isinstance(v, torch.nn.Module)}
    method.episode(hard[0][0], 0)
    assert not torch.equal(method.augment.theta, snapshot["augment"]["theta"]), "the inner loop must move θ"
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
    torch.testing.assert_close(runs[0], runs[1], atol=0, rtol=0)
    assert not torch.equal(runs[0], runs[2]), runs


def test_meta_learned_start_round_trips_through_safetensors(clip, tmp_path):
    source = few_shot_source(shots=1)
    train = lambda: {"augment_init": meta_train(clip, source, MetaTPT(n_views=9, keep=0.3, inner_steps=1), epochs=1, batch_size=18, progress=False)[0]}
    code = modules_identity("ttpt.methods.metatpt.method") # the modules the meta-training runs
    first = source_artifact(clip, tmp_path, "metatpt", {"test": 1}, train, code)["augment_init"]
    files = list(tmp_path.glob("metatpt-*.safetensors"))
    assert len(files) == 1
    read = source_artifact(clip, tmp_path, "metatpt", {"test": 1}, lambda: pytest.fail("retrained instead of read"), code)["augment_init"]
    assert torch.equal(first, read) and read.shape == (8, 5)


def test_after_step_meta_loss_is_the_cross_entropy_under_the_stepped_prompt(clip, hard):
    "'after-step': TPT's step on the episode's views moves the context, and the loss is −log p̃_y under the moved prompt, differentiable in θ with the step held fixed."
    x = clip.preprocess(hard[0][0])
    losses = {}
    for objective in ("initial", "after-step"):
        method = MetaTPT(n_views=9, keep=0.3, inner_steps=1, meta_objective=objective)
        method.prepare(clip, hard.classes)
        losses[objective] = method.meta_loss(x, 2)
    assert not torch.equal(method.learner.ctx, method.learner.ctx_init), "the outer step must move the context"
    with torch.no_grad():
        feats = torch.cat([encode_images(clip, x[None]), encode_images(clip, method.augment(x))]) # (V + 1, D)
        selected = method.select(method.score(feats, clip_logits(clip, feats, method.initial_text)))
        expected = -average_log_probs(clip_logits(clip, feats, method.learner())[selected])[2]
    torch.testing.assert_close(losses["after-step"].item(), expected.item(), atol=1e-5, rtol=0)
    assert losses["after-step"].item() != pytest.approx(losses["initial"].item(), abs=1e-7), losses
    g, = torch.autograd.grad(losses["after-step"], method.augment.theta)
    assert g.abs().sum() > 0, "the gradient reaches the views' parameters"


@pytest.mark.parametrize("kwargs, message", [
    ({"inner_objective": "dream"}, "inner_objective must be one of"), ({"loop": "triple"}, "loop must be one of"),
    ({"inner_steps": -1}, "inner_steps must be ≥ 0"), ({"meta_objective": "later"}, "meta_objective must be one of"), ({"n_views": 9, "augment_init": torch.zeros(4, 5)}, r"augment_init must have shape \(8, 5\)")])
def test_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MetaTPT(**kwargs)
