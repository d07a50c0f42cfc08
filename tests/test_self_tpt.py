"Self-TPT: CPT's loss by hand, gradient matching against finite differences, stage 2 reads no image, determinism, batched = per-image."
import math

import PIL.Image
import pytest
import torch
import torch.nn.functional as F

from ttpt.data.benchmark import few_shot_source, get_dataset
from ttpt.methods.self_tpt.cpt import CPTLoss, TextViews, supervised_contrastive_loss
from ttpt.harness.evaluate import evaluate
from ttpt.core.models import load_clip
from ttpt.methods.self_tpt.method import GradientMatching, SelfTPT, SelfTPTViews, SourceLoss, adapt_to_classnames, cpt_floor, frozen_head, train_source_stage
from ttpt.core.source import SourceBatch
from ttpt.core.zeroshot import clip_logits, encode_dataset


@pytest.fixture(scope="module")
def stage1(clip):
    source = few_shot_source(shots=1)
    return train_source_stage(clip, source, epochs=2, features=encode_dataset(clip, source), progress=False)[0]


def test_cpt_loss_by_hand():
    e1, e2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    features = torch.stack([torch.stack([e1, e1]), torch.stack([e2, e2]), torch.stack([-e1, -e1])])
    # anchors of classes 0 and 2: −log e/(e + 2 + 2/e) = 0.6963567; class 1: −log e/(e + 4) = 0.9048324
    assert supervised_contrastive_loss(features, temperature=1.0).item() == pytest.approx((4 * 0.6963567 + 2 * 0.9048324) / 6, abs=1e-6)


def test_gradient_matching_passes_gradcheck(tmp_path):
    "L_GM(v) = 1 − cos(sg(g_CE), EMA(∇L_CPT(v))) differentiated through the CPT gradient, against finite differences (float64)."
    import json
    import open_clip
    from ttpt.methods.self_tpt.method import second_order
    config = {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": [1, 1, 1, 1], "width": 8},
              "text_cfg": {"context_length": 20, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1}}
    (tmp_path / "ttpt-tiny-test.json").write_text(json.dumps(config))
    open_clip.add_model_config(tmp_path)
    torch.manual_seed(0)
    tiny = load_clip("ttpt-tiny-test", pretrained=None)
    tiny.model.double()
    views = TextViews(tiny, ["red star", "blue ring"], context="a photo")
    earlier, target = torch.randn(2, *views.ctx.shape, dtype=torch.float64)

    def matching(context):
        for learner in views.learners: learner.ctx = context
        g_cpt, = torch.autograd.grad(supervised_contrastive_loss(views(), 0.5), context, create_graph=True)
        gm = GradientMatching(decay=0.5)
        gm.average = earlier
        return gm(target, g_cpt)

    context = torch.nn.Parameter(views.ctx.detach().double().clone())
    with second_order():
        assert torch.autograd.gradcheck(matching, (context,), eps=1e-6, atol=1e-5, rtol=1e-3)


def test_no_gradient_flows_into_the_classification_target():
    "The CE gradient is GM's fixed target: a vanishing CE gradient (a calibrated source) cannot blow the step up."
    g_ce, g_cpt = torch.randn(4, 3, requires_grad=True), torch.randn(4, 3, requires_grad=True)
    GradientMatching()(g_ce, g_cpt).backward()
    assert g_ce.grad is None and g_cpt.grad.abs().sum() > 0


def test_stage_two_reads_no_image(clip, stage1, monkeypatch):
    "Stage 2 (prepare) works with every path to an image blocked: no encoder call, no file opened, no dataset item read."
    def blocked(*args, **kwargs): raise AssertionError("stage 2 touched an image")
    data = get_dataset("shapes", n=6)
    reads = []
    original = type(data).__getitem__
    monkeypatch.setattr(type(data), "__getitem__", lambda self, i: reads.append(i) or original(self, i))
    method = SelfTPT(**stage1, steps=3)
    with monkeypatch.context() as m:
        m.setattr(clip.model, "encode_image", blocked)
        m.setattr(clip.model.visual, "forward", blocked)
        m.setattr(clip.image_tower, "forward", blocked)
        m.setattr(PIL.Image, "open", blocked)
        method.prepare(clip, data.classes)
    assert reads == [] and len(method.stage2_losses) == 3
    assert method.text_feats.shape == (len(data.classes), 128)


def test_stages_are_deterministic(clip, stage1):
    source = few_shot_source(shots=1)
    again = train_source_stage(clip, source, epochs=2, features=encode_dataset(clip, source), progress=False)[0]
    assert torch.equal(again["context"], stage1["context"]) and torch.equal(again["head"], stage1["head"])
    classes = get_dataset("colours", n=1).classes
    a, _ = adapt_to_classnames(clip, classes, stage1["context"], stage1["head"], steps=4)
    b, _ = adapt_to_classnames(clip, classes, stage1["context"], stage1["head"], steps=4)
    assert torch.equal(a.ctx, b.ctx)


def test_batched_equals_per_image(clip, stage1):
    data = get_dataset("cartoon", n=20)
    one = evaluate(SelfTPT(**stage1, steps=2), data, clip, batch_size=1, progress=False)
    batched = evaluate(SelfTPT(**stage1, steps=2), data, clip, batch_size=8, progress=False)
    assert one["prediction"].tolist() == batched["prediction"].tolist()
    assert (one["confidence"] - batched["confidence"]).abs().max() < 1e-5


def test_views_variant_averages_views(clip, stage1):
    data = get_dataset("hard", n=2)
    method = SelfTPTViews(n_views=8, base=SelfTPT(**stage1, steps=2))
    method.prepare(clip, data.classes)
    probs = method.predict(data[0][0], 0)
    assert probs.shape == (36,) and abs(probs.sum().item() - 1) < 1e-5


def test_cpt_floor_is_log_of_the_positives():
    "With V views per class each anchor has V − 1 positives, whose mean log-probability is at most log 1/(V − 1)."
    e1, e2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    far = torch.stack([e1.expand(4, 2), e2.expand(4, 2), -e1.expand(4, 2)]) # (3 classes, 4 identical views, 2)
    assert supervised_contrastive_loss(far, temperature=0.01).item() == pytest.approx(math.log(3), abs=1e-6)
    assert supervised_contrastive_loss(far, temperature=1.0).item() > math.log(3)


def test_stage_two_floor_optimisers_and_early_stop(clip, stage1):
    classes = get_dataset("colours", n=1).classes
    views, losses = adapt_to_classnames(clip, classes, stage1["context"], stage1["head"], steps=3, flat_gap=100.0)
    assert losses == [] and torch.equal(views.ctx.detach(), stage1["context"]), "at (or near) its floor stage 2 takes no step"
    assert cpt_floor(views) == pytest.approx(math.log(3)) and cpt_floor(TextViews(clip, classes, hand_crafted=None)) == pytest.approx(math.log(2))
    start = TextViews(clip, classes, context=stage1["context"])
    CPTLoss(start, frozen_head(stage1["head"])).backward()
    moved, losses = adapt_to_classnames(clip, classes, stage1["context"], stage1["head"], steps=1, lr=0.5, optimizer="sgd")
    torch.testing.assert_close(moved.ctx.detach(), stage1["context"] - 0.5 * start.ctx.grad, atol=1e-6, rtol=0) # plain SGD: v − lr·g
    assert len(losses) == 1 and losses[0] - cpt_floor(moved) > 0


def test_clear_errors(stage1):
    with pytest.raises(ValueError, match="steps must be ≥ 0"):
        SelfTPT(**stage1, steps=-1)
    with pytest.raises(ValueError, match="flat_gap must be ≥ 0"):
        SelfTPT(**stage1, flat_gap=-0.1)
    with pytest.raises(ValueError, match="decay must be in"):
        GradientMatching(decay=1.5)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        SelfTPT(**stage1, optimizer="lion")
    with pytest.raises(ValueError, match="needs a base SelfTPT"):
        SelfTPTViews()


@pytest.mark.parametrize("gm_weight", [0.0, 1.0])
def test_source_loss_is_ce_plus_weighted_cpt_and_gm(clip, gm_weight):
    "SourceLoss on one batch against its terms written out: CE of the classifying view, SupCon of every view, GM = 1 − cos on the first call."
    source = few_shot_source(shots=1)
    feats, labels = encode_dataset(clip, source)
    views = TextViews(clip, source.classes)
    loss = SourceLoss(clip, views, cpt_weight=0.5, gm_weight=gm_weight)
    total, logs = loss(SourceBatch(feats[:8], labels[:8], torch.arange(8)))
    with torch.no_grad():
        z = views()
        ce = F.cross_entropy(clip_logits(clip, feats[:8], z[:, 0]), labels[:8]).item()
        cpt = supervised_contrastive_loss(z).item()
    assert logs["ce"] == pytest.approx(ce, abs=1e-6), (logs, ce)
    assert logs["cpt"] == pytest.approx(cpt, abs=1e-6), (logs, cpt)
    gm = 1 - logs["grad_cosine"] if gm_weight else 0.0 # the first call's moving average is the CPT gradient itself
    assert logs["gm"] == pytest.approx(gm, abs=1e-5), logs
    assert total.item() == pytest.approx(ce + 0.5 * cpt + gm_weight * gm, abs=1e-5), (total.item(), logs)
