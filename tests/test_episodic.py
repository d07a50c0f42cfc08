"""TPT, C-TPT, TPT+CoOp and Zero on the episodic base give exactly the predictions of the implementations they replaced,
written out here as literal references (views encoded once, selection before the first step, AdamW, reset per image)."""
import pytest
import torch

from ttpt.data.benchmark import get_dataset
from ttpt.methods.ctpt import CTPT, text_dispersion
from ttpt.core.prompts import PromptLearner
from ttpt.core.selection import entropy, marginal_entropy, select_confident_views
from ttpt.methods.tpt import TPT
from ttpt.core.views import ViewMaker
from ttpt.methods.zero import Zero
from ttpt.core.zeroshot import class_text_features, clip_logits, image_features


@pytest.fixture(scope="module")
def hard():
    return get_dataset("hard", n=4)


def reference_tpt(clip, classnames, image, index, objective=None, init="a photo of a", n_views=16, keep=0.25, steps=2, lr=5e-3):
    "The pre-refactor TPT.adapt, literally: a fresh learner and optimizer per image."
    objective = objective or (lambda logits, text: marginal_entropy(logits))
    learner = PromptLearner(clip, classnames, init=init)
    optimizer = torch.optim.AdamW(learner.parameters(), lr=lr)
    feats = image_features(clip, ViewMaker.from_clip(clip, n_views=n_views)(image, index))
    for step in range(steps):
        text = learner()
        logits = clip_logits(clip, feats, text).float()
        if step == 0: selected = select_confident_views(entropy(logits.detach()), keep)
        loss = objective(logits[selected], text)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad(): return clip_logits(clip, feats[:1], learner()).float().softmax(-1)[0]


def reference_zero(clip, classnames, image, index, n_views=16, keep=0.3):
    "The pre-refactor Zero.predict, literally."
    with torch.no_grad():
        logits = clip_logits(clip, image_features(clip, ViewMaker.from_clip(clip, n_views=n_views)(image, index)), class_text_features(clip, classnames))
    votes = torch.bincount(logits[select_confident_views(entropy(logits), keep)].argmax(-1), minlength=logits.shape[1]).float()
    return votes / votes.sum()


CONTEXT = torch.randn(4, 128, generator=torch.Generator().manual_seed(3)) * 0.02  # a stand-in for a CoOp context


@pytest.mark.parametrize("name", ["tpt", "c-tpt", "tpt+coop", "zero"])
def test_same_predictions_as_the_replaced_implementations(clip, hard, name):
    method, reference = {
        "tpt": (TPT(n_views=16, keep=0.25, steps=2), lambda im, i: reference_tpt(clip, hard.classes, im, i)),
        "c-tpt": (CTPT(n_views=16, keep=0.25, steps=2, dispersion_weight=50.0),
                  lambda im, i: reference_tpt(clip, hard.classes, im, i, lambda l, t: marginal_entropy(l) - 50.0 * text_dispersion(t))),
        "tpt+coop": (TPT(n_views=16, keep=0.25, steps=2, context=CONTEXT, name="tpt+coop"),
                     lambda im, i: reference_tpt(clip, hard.classes, im, i, init=CONTEXT)),
        "zero": (Zero(n_views=16), lambda im, i: reference_zero(clip, hard.classes, im, i)),
    }[name]
    method.prepare(clip, hard.classes)
    for index in range(len(hard)):
        image, _ = hard[index]
        assert torch.equal(method.predict(image, index), reference(image, index)), f"{name} differs on image {index}"


def test_reset_restores_every_declared_piece(clip, hard):
    tpt = TPT(n_views=16, keep=0.25, steps=3)
    tpt.prepare(clip, hard.classes)
    tpt.episode(hard[0][0], 0)
    assert set(tpt.episode_state()) == {"learner", "optimizer"}, tpt.episode_state()
    assert not torch.equal(tpt.learner.ctx, tpt.learner.ctx_init), "the steps must move the context"
    assert tpt.optimizer.state_dict()["state"], "AdamW has moments after a step"
    tpt.reset()
    torch.testing.assert_close(tpt.learner.ctx.detach(), tpt.learner.ctx_init, atol=0, rtol=0)
    assert tpt.optimizer.state_dict()["state"] == {}, tpt.optimizer.state_dict()["state"]
