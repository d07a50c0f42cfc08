"""TPT beyond what 28_tpt checks: other seeds give other views, one shared tuning loop for TPT (per image and in batched
episodes), C-TPT and MetaTPT, resumable evaluation, and clear errors (random-init miniature CLIP: no weights needed)."""
import pandas as pd
import pytest
import torch

import ttpt.methods.metatpt.method
import ttpt.methods.tpt
from ttpt.data.benchmark import get_dataset
from ttpt.methods.ctpt import CTPT
from ttpt.harness.results import read_results, results_path
from ttpt.harness.evaluate import evaluate
from ttpt.methods.metatpt.method import MetaTPT
from ttpt.core.models import MINICLIP, load_clip
from ttpt.methods.tpt import TPT
from ttpt.methods.zero import Zero


@pytest.fixture(scope="module")
def clip():
    return load_clip(MINICLIP, pretrained=None)


@pytest.fixture(scope="module")
def hard():
    return get_dataset("hard", n=6)


def small_tpt(**kw):
    return TPT(n_views=16, keep=0.25, steps=2, **kw)


def test_other_seed_other_views(clip, hard):
    image, _ = hard[0]
    results = []
    for seed in (0, 1):
        tpt = small_tpt(seed=seed)
        tpt.prepare(clip, hard.classes)
        results.append(tpt.episode(image, 0))
    assert not torch.equal(results[0].view_scores, results[1].view_scores), results[0].view_scores


@pytest.fixture
def loop_calls(monkeypatch):
    "Records every call of the shared tuning loop, wherever a method calls it from."
    calls, loop = [], ttpt.methods.tpt.tuning_loop
    def counted(*args, **kw):
        losses = loop(*args, **kw)
        calls.append(len(losses))
        return losses
    for module in (ttpt.methods.tpt, ttpt.methods.metatpt.method): monkeypatch.setattr(module, "tuning_loop", counted)
    return calls


@pytest.mark.parametrize("make, steps", [(small_tpt, 2), (lambda: CTPT(n_views=16, keep=0.25, steps=2), 2),
                                         (lambda: MetaTPT(n_views=9, keep=0.3, inner_steps=1), 1),
                                         (lambda: MetaTPT(n_views=9, keep=0.3, inner_steps=1, loop="joint"), 2)])
def test_every_prompt_tuner_runs_the_one_loop(clip, hard, loop_calls, make, steps):
    method = make()
    method.prepare(clip, hard.classes)
    episode = method.episode(hard[0][0], 0)
    assert loop_calls == [steps], loop_calls
    assert len(episode.losses) == steps, episode.losses


def test_batched_episodes_run_the_one_loop_and_equal_one_by_one(clip, hard, loop_calls):
    tpt = small_tpt()
    tpt.prepare(clip, hard.classes)
    images, indices = [hard[i][0] for i in range(3)], [0, 1, 2]
    together = tpt.predict_episodes(images, indices)
    assert loop_calls == [2], loop_calls # one loop for the three episodes
    one_by_one = torch.stack([tpt.predict(image, i) for image, i in zip(images, indices)])
    assert loop_calls == [2, 2, 2, 2], loop_calls
    assert torch.equal(together.argmax(-1), one_by_one.argmax(-1)), (together, one_by_one)
    torch.testing.assert_close(together, one_by_one, atol=1e-5, rtol=0)


def test_metatpt_runs_one_image_at_a_time():
    assert TPT.capabilities.episodes_at_once
    assert not MetaTPT.capabilities.episodes_at_once, "MetaTPT fits its views per image"


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
    assert len(partial) == 3, partial
    resumed = evaluate(make(), hard, clip, out=tmp_path / "resumed", progress=False)
    columns = ["index", "label", "prediction", "confidence"]
    pd.testing.assert_frame_equal(full[columns], resumed[columns])
    on_disk = [read_results(results_path(tmp_path / d, full["method"][0], hard.name))[columns] for d in ("full", "resumed")]
    pd.testing.assert_frame_equal(*on_disk)


def test_clear_errors():
    with pytest.raises(ValueError, match="keeps none"):
        TPT(n_views=4, keep=0.1)
    with pytest.raises(ValueError, match="n_views must be ≥ 1, got 0"):
        TPT(n_views=0)


def test_more_views_kept_than_made_is_refused():
    with pytest.raises(ValueError, match="fraction"):
        TPT(n_views=64, keep=1.5)
    with pytest.raises(ValueError, match="fraction"):
        Zero(n_views=64, keep=0)
