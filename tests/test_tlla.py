"TLLA: SAPT at ρ = 0 is CoOp; STSS builds no graph, changes nothing, computes its perturbed prompts once per dataset; determinism."
import pytest
import torch

from ttpt.data.benchmark import few_shot_source, get_dataset
from ttpt.methods.coop import train_coop
from ttpt.core.prompts import PromptLearner
from ttpt.methods.tlla.sapt import train_sapt
from ttpt.methods.tlla.stss import STSS, unit_directions
from ttpt.core.zeroshot import encode_dataset


@pytest.fixture(scope="module")
def hard():
    return get_dataset("hard", n=5)


def test_sapt_at_zero_radius_is_coop(clip):
    source = few_shot_source(shots=1)
    features = encode_dataset(clip, source)
    coop, _ = train_coop(clip, source, epochs=3, features=features, progress=False)
    sapt, _ = train_sapt(clip, source, rho=0.0, epochs=3, features=features, progress=False)
    assert torch.equal(coop, sapt)
    assert not torch.equal(coop, train_sapt(clip, source, rho=0.3, epochs=3, features=features, progress=False)[0])


def test_stss_builds_no_graph_and_changes_nothing(clip, hard, monkeypatch):
    stss = STSS(n_views=16, keep=0.25, directions=4)
    stss.prepare(clip, hard.classes)
    frozen = [p.detach().clone() for p in clip.model.parameters()]
    before = [t.clone() for t in (stss.text_feats, stss.perturbed_feats)]
    monkeypatch.setattr(torch.Tensor, "backward", lambda *a, **k: pytest.fail("STSS called backward"))
    with torch.inference_mode():
        for i in range(len(hard)):
            probs = stss.predict(hard[i][0], i)
            assert not probs.requires_grad and probs.is_inference()
    assert all(torch.equal(a, b) for a, b in zip(before, (stss.text_feats, stss.perturbed_feats)))
    assert all(torch.equal(a, p) for a, p in zip(frozen, clip.model.parameters()))


def test_perturbed_features_are_computed_once_per_dataset(clip, hard, monkeypatch):
    calls = []
    forward = PromptLearner.forward
    monkeypatch.setattr(PromptLearner, "forward", lambda self: calls.append(1) or forward(self))
    stss = STSS(n_views=16, keep=0.25, directions=6)
    stss.prepare(clip, hard.classes)
    assert len(calls) == 7  # the prompt and its 6 perturbations
    for i in range(len(hard)): stss.predict(hard[i][0], i)
    assert len(calls) == 7  # no text encoder pass per image


def test_deterministic_under_a_seed(clip, hard):
    predictions = []
    for seed in (0, 0, 1):
        stss = STSS(n_views=16, keep=0.25, directions=4, seed=seed)
        stss.prepare(clip, hard.classes)
        predictions.append(torch.stack([stss.episode(hard[i][0], i).view_scores for i in range(len(hard))]))
    torch.testing.assert_close(predictions[0], predictions[1], atol=0, rtol=0)
    assert not torch.equal(predictions[0], predictions[2]), predictions
    torch.testing.assert_close(unit_directions((4, 8), 3, seed=5), unit_directions((4, 8), 3, seed=5), atol=0, rtol=0)


@pytest.mark.parametrize("kwargs, message", [
    ({"directions": 0}, "directions must be ≥ 1"), ({"radius": -0.1}, "radius must be ≥ 0"),
    ({"vote": "mode"}, "vote must be"), ({"n_views": 4, "keep": 0.1}, "keeps none")])
def test_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        STSS(**kwargs)
