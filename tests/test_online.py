"Online methods (TDA, DPE): a fixed stream order gives the same predictions on two fresh streams; TDA never back-propagates; DPE's residuals are reset before each image while its prototypes persist; bad settings are refused in one line."
import numpy as np
import pytest
import torch

from ttpt.data.benchmark import get_dataset
from ttpt.methods.dpe import DPE
from ttpt.harness.evaluate import stream_order
from ttpt.methods.tda import TDA, CacheEntry, ClassCache, predict_stream

N_VIEWS = 10 # keeps ⌊0.1·10⌋ = 1 confident view: small and fast


@pytest.fixture(scope="module")
def hard():
    return get_dataset("hard", n=12)


def _stream(method, clip, dataset, order):
    "Prepare a fresh stream and predict it in `order`: the probabilities, (n, K), in stream order."
    method.prepare(clip, dataset.classes)
    return torch.stack([method.predict(dataset[i][0], i) for i in stream_order(dataset, order)])


@pytest.mark.parametrize("make", [lambda: TDA(n_views=N_VIEWS), lambda: DPE(n_views=N_VIEWS)], ids=["tda", "dpe"])
def test_a_fixed_order_is_deterministic(make, clip, hard):
    method = make()
    first = _stream(method, clip, hard, 1)
    assert torch.equal(first, _stream(method, clip, hard, 1)) # the same object, prepared again: a new stream
    assert torch.equal(first, _stream(make(), clip, hard, 1)) # a new object
    rows = predict_stream(make(), hard, clip, order=1)
    assert rows["index"].tolist() == stream_order(hard, 1)
    assert np.array_equal(rows["prediction"].to_numpy(), first.argmax(-1).numpy())


def test_the_stream_state_depends_on_the_order(clip, hard):
    "Online: the same images in another order leave another cache (the images' predictions may differ too)."
    def cached(order):
        tda = TDA(n_views=N_VIEWS)
        _stream(tda, clip, hard, order)
        return [(label, e.entropy) for label, e in tda.positive.entries()]
    assert cached(0) == cached(0)
    assert len(cached(0)) == len(cached("sorted")) > 0


def test_tda_never_back_propagates(clip, hard, monkeypatch):
    tda = TDA(n_views=N_VIEWS)
    tda.prepare(clip, hard.classes)
    frozen = [p.detach().clone() for p in clip.model.parameters()]
    text = tda.text_feats.clone()
    monkeypatch.setattr(torch.Tensor, "backward", lambda *a, **k: pytest.fail("TDA called backward"))
    monkeypatch.setattr(torch.autograd, "grad", lambda *a, **k: pytest.fail("TDA called torch.autograd.grad"))
    for i in range(len(hard)):
        p = tda.predict(*hard[i])
        assert not p.requires_grad and abs(p.sum().item() - 1) < 1e-5, p
    assert len(tda.positive) > 0 and all(not e.feature.requires_grad for _, e in tda.positive.entries())
    assert all(torch.equal(a, b) for a, b in zip(frozen, clip.model.parameters()))
    assert torch.equal(text, tda.text_feats)


def test_dpe_resets_its_residuals_and_keeps_its_prototypes(clip, hard):
    class Recording(DPE):
        "DPE that records its residuals and optimizer state when each image's step starts."
        def adapt(self, feats, logits, text, selected):
            self.at_start.append((self.residuals.textual.detach().clone(), self.residuals.visual.detach().clone(), len(self.optimizer.state)))
            return super().adapt(feats, logits, text, selected)

    dpe = Recording(n_views=N_VIEWS, evolve_threshold=1.0) # every prediction evolves the textual prototypes
    dpe.prepare(clip, hard.classes)
    initial, dpe.at_start = dpe.textual.clone(), []
    for i in range(4):
        before = (dpe.textual.clone(), len(dpe.visual), dpe.evolved)
        dpe.predict(*hard[i])
        assert dpe.residuals.textual.abs().max() > 0, "the step did not move the textual residual"
        assert dpe.evolved == before[2] + 1 and len(dpe.visual) == before[1] + 1 # the image joined a queue and evolved t
        assert not torch.equal(dpe.textual, before[0])
    for textual, visual, optimizer_state in dpe.at_start:
        assert textual.abs().max() == 0 and visual.abs().max() == 0 and optimizer_state == 0
    assert not torch.allclose(dpe.textual, initial)
    assert set(dpe.episode_state()) == {"residuals", "optimizer"}
    dpe.prepare(clip, hard.classes) # a new stream
    assert (len(dpe.visual), dpe.evolved) == (0, 0) and torch.equal(dpe.textual, initial)


def test_class_cache_keeps_the_most_confident():
    cache, feature = ClassCache(2), torch.ones(4)
    for h in (0.9, 0.5, 0.7, 0.95, 0.1):
        cache.offer(3, CacheEntry(feature, h))
    assert [e.entropy for _, e in cache.entries()] == [0.1, 0.5]


@pytest.mark.parametrize("make,message", [
    (lambda: TDA(pos_capacity=0), "pos_capacity"), (lambda: TDA(neg_capacity=1.5), "neg_capacity"),
    (lambda: TDA(pos_alpha=-0.1), "pos_alpha"), (lambda: TDA(neg_beta=-1), "neg_beta"),
    (lambda: TDA(neg_entropy_band=(0.5, 0.2)), "neg_entropy_band"), (lambda: TDA(neg_mask_band=(0.0, 1.5)), "neg_mask_band"),
    (lambda: TDA(neg_entropy_band=(0.1,)), "neg_entropy_band"), (lambda: TDA(n_views=4), "keep"),
    (lambda: DPE(capacity=0), "capacity"), (lambda: DPE(steps=0), "steps"), (lambda: DPE(lr=0), "lr"),
    (lambda: DPE(alpha=-1), "alpha"), (lambda: DPE(align_temperature=0), "align_temperature"),
    (lambda: DPE(evolve_threshold=1.5), "evolve_threshold"),
])
def test_bad_settings_are_refused_in_one_line(make, message):
    with pytest.raises(ValueError, match=message) as error: make()
    assert "\n" not in str(error.value), str(error.value)


def test_stream_orders(hard):
    assert stream_order(hard, 2) == np.random.default_rng(2).permutation(len(hard)).tolist()
    labels = [hard.label(i) for i in stream_order(hard, "sorted")]
    assert labels == sorted(labels) and sorted(stream_order(hard, "sorted")) == list(range(len(hard)))
    with pytest.raises(ValueError, match="order"): stream_order(hard, -1)
