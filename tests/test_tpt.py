"TPT's determinism, episodic reset, and resumable evaluation (random-init miniature CLIP: no weights needed)."
import pandas as pd
import pytest
import torch

from ttpt.benchmark import get_dataset
from ttpt.results import read_results, results_path
from ttpt.evaluate import evaluate
from ttpt.models import MINICLIP, load_clip
from ttpt.peers import CTPT, Zero
from ttpt.tpt import TPT


@pytest.fixture(scope="module")
def clip():
    return load_clip(MINICLIP, pretrained=None)


@pytest.fixture(scope="module")
def hard():
    return get_dataset("hard", n=6)


def small_tpt(**kw):
    return TPT(n_views=16, keep=0.25, steps=2, **kw)


def test_same_seed_same_selection_loss_and_context(clip, hard):
    image, _ = hard[0]
    runs = []
    for _ in range(2):
        tpt = small_tpt(seed=7)
        tpt.prepare(clip, hard.classes)
        result = tpt.adapt(image, 0)
        runs.append((result, tpt.learner.ctx.detach().clone()))
    (a, ctx_a), (b, ctx_b) = runs
    assert torch.equal(a.selected, b.selected)
    assert a.losses == b.losses
    assert torch.equal(ctx_a, ctx_b)
    assert not torch.equal(ctx_a, tpt.learner.ctx_init), "the step must move the context"


def test_other_seed_other_views(clip, hard):
    image, _ = hard[0]
    results = []
    for seed in (0, 1):
        tpt = small_tpt(seed=seed)
        tpt.prepare(clip, hard.classes)
        results.append(tpt.adapt(image, 0))
    assert not torch.equal(results[0].view_scores, results[1].view_scores)


def test_context_and_optimizer_restored_per_image(clip, hard):
    tpt = small_tpt()
    tpt.prepare(clip, hard.classes)
    tpt.adapt(hard[0][0], 0)
    assert tpt.optimizer.state_dict()["state"], "AdamW has moments after a step"
    tpt.reset()
    assert torch.equal(tpt.learner.ctx.detach(), tpt.learner.ctx_init)
    assert tpt.optimizer.state_dict()["state"] == {}
    after_other = tpt.adapt(hard[1][0], 1)
    fresh = small_tpt()
    fresh.prepare(clip, hard.classes)
    alone = fresh.adapt(hard[1][0], 1)
    assert after_other.losses == alone.losses
    assert torch.equal(after_other.probs, alone.probs)


def interrupt_after(method, k):
    "`method`, except that its (k+1)-th predict raises, like a killed run (same settings, so the same results file)."
    predict, calls = method.predict, []
    def interrupted(image, index):
        if len(calls) == k: raise KeyboardInterrupt
        calls.append(index)
        return predict(image, index)
    method.predict = interrupted
    return method


@pytest.mark.parametrize("make", [small_tpt, lambda: CTPT(n_views=16, keep=0.25), lambda: Zero(n_views=16)])
def test_interrupted_and_resumed_equals_uninterrupted(clip, hard, tmp_path, make):
    full = evaluate(make(), hard, clip, out=tmp_path / "full", progress=False)
    with pytest.raises(KeyboardInterrupt):
        evaluate(interrupt_after(make(), 3), hard, clip, out=tmp_path / "resumed", progress=False)
    partial = read_results(results_path(tmp_path / "resumed", full["method"][0], hard.name))
    assert len(partial) == 3
    resumed = evaluate(make(), hard, clip, out=tmp_path / "resumed", progress=False)
    columns = ["index", "label", "prediction", "confidence"]
    pd.testing.assert_frame_equal(full[columns], resumed[columns])
    on_disk = [read_results(results_path(tmp_path / d, full["method"][0], hard.name))[columns] for d in ("full", "resumed")]
    pd.testing.assert_frame_equal(*on_disk)


def test_clear_errors():
    with pytest.raises(ValueError, match="keeps none"):
        TPT(n_views=4, keep=0.1)
    with pytest.raises(ValueError, match="of 0 views"):
        TPT(n_views=0)


def test_more_views_kept_than_made_is_refused():
    with pytest.raises(ValueError, match="fraction"):
        TPT(n_views=64, keep=1.5)
    with pytest.raises(ValueError, match="fraction"):
        Zero(n_views=64, keep=0)
