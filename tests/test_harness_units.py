"Direct tests of small shared pieces: the pretraining schedule and optimiser, class checks, weight and run identities, seeding."
import math
import random
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from fastcore import test as fc  # fastcore's checks show both values when they fail (imported by module: pytest would collect test_*)

from ttpt.data.benchmark import check_classes, get_dataset
from ttpt.harness.evaluate import seed_everything
from ttpt.harness.identity import run_fingerprint
from ttpt.core.models import MINICLIP, load_clip, weights_digest
from ttpt.data.pretrain import lr_at, make_optimizer
from ttpt.harness.protocol import Capabilities, Kind, Method


def test_lr_at_warms_up_then_decays_to_zero():
    lrs = [lr_at(step, steps=10, lr=1.0, warmup=2) for step in range(10)]
    fc.test_close(lrs[:2], [0.5, 1.0], eps=1e-12) # linear warm-up reaches the peak at the last warm-up step
    fc.test_close(lrs[2], 1.0, eps=1e-12) # the cosine starts at the peak
    fc.test_close(lrs[6], 0.5 * (1 + math.cos(math.pi * 4 / 8)), eps=1e-12)
    assert all(a > b for a, b in zip(lrs[2:], lrs[3:])), lrs # decreasing after the warm-up
    fc.test_close(lr_at(10, steps=10, lr=1.0, warmup=2), 0.0, eps=1e-12) # zero at the end


def test_make_optimizer_decays_matrices_only_and_boosts_the_logit_scale():
    model = load_clip(MINICLIP, pretrained=None).model
    optimiser = make_optimizer(model, lr=1e-3, weight_decay=0.1, logit_scale_lr_mult=10.0)
    decay, no_decay, scale = optimiser.param_groups
    fc.test_eq((decay["weight_decay"], no_decay["weight_decay"], scale["weight_decay"]), (0.1, 0.0, 0.0))
    fc.test_eq((decay["lr_mult"], scale["lr_mult"]), (1.0, 10.0))
    fc.test_eq([p.ndim >= 2 for p in decay["params"]], [True] * len(decay["params"]))
    assert len(scale["params"]) == 1 and scale["params"][0] is model.logit_scale, scale["params"]
    names = {id(p): n for n, p in model.named_parameters()}
    fc.test_eq(sum(map(len, (decay["params"], no_decay["params"], scale["params"]))), len(names)) # every parameter, once
    fc.test_eq([names[id(p)] for p in no_decay["params"] if p.ndim >= 2 and "ln" not in names[id(p)] and "bn" not in names[id(p)]], [])


def test_check_classes():
    fc.test_eq(check_classes(("red star", "star")), ["red star", "star"])
    with pytest.raises(ValueError, match=r"duplicates: \['star'\]"): check_classes(["star", "star"])
    with pytest.raises(ValueError, match="unknown class names"): check_classes(["purple unicorn"])


def test_weights_digest_changes_with_any_weight():
    model = torch.nn.Linear(3, 2)
    before = weights_digest(model)
    fc.test_eq(weights_digest(model), before) # a function of the weights only
    with torch.no_grad(): model.bias[1] += 1e-6
    fc.test_ne(weights_digest(model), before)
    with torch.no_grad(): model.bias[1] -= 1e-6
    model.half()
    fc.test_ne(weights_digest(model), before) # the dtype is part of the identity


def test_seed_everything_depends_on_seed_and_index():
    def draws(seed, index):
        seed_everything(seed, index)
        return random.random(), float(np.random.rand()), float(torch.rand(1))
    fc.test_eq(draws(0, 3), draws(0, 3))
    fc.test_ne(draws(0, 3), draws(0, 4))
    fc.test_ne(draws(0, 3), draws(1, 3))


def test_seed_everything_seeds_torch_as_manual_seed_does():
    "Without an accelerator only the CPU generator is seeded, to the state torch.manual_seed gives it."
    seed_everything(0, 7)
    ours = torch.random.get_rng_state()
    torch.manual_seed(int(np.random.SeedSequence([0, 7]).generate_state(1)[0]))
    fc.test_eq(ours, torch.random.get_rng_state())


def test_world_labels_without_rendering():
    ds = get_dataset("cartoon", n=40)
    fc.test_eq([ds.label(i) for i in range(40)], [ds[i][1] for i in range(40)])
    with pytest.raises(IndexError, match="out of range"): ds.label(40)
    with pytest.raises(ValueError, match="index"): ds.label(-1)


@dataclass
class Fixed(Method):
    "A method whose only setting is its probabilities."
    capabilities = Capabilities(Kind.IMAGE)
    probabilities:tuple = (0.5, 0.5)
    name:str = "fixed"


class TwoImages:
    "Two images in two classes; what a fingerprint reads."
    name, classes = "two", ["a", "b"]
    def __len__(self): return 2


def test_run_fingerprint_records_what_makes_a_run():
    fingerprint = run_fingerprint(Fixed(), TwoImages(), None, seed=5)
    fc.test_eq({k: fingerprint[k] for k in ("format", "method", "method_config", "model", "device", "seed")},
            {"format": 3, "method": "fixed", "method_config": {"probabilities": [0.5, 0.5]}, "model": None, "device": "cpu", "seed": 5})
    assert "tests.test_harness_units" in fingerprint["code"] or "test_harness_units" in fingerprint["code"], fingerprint["code"]
    fc.test_ne(run_fingerprint(Fixed((0.4, 0.6)), TwoImages(), None, seed=5), fingerprint)
    fc.test_ne(run_fingerprint(Fixed(), TwoImages(), None, seed=6), fingerprint)
    fc.test_eq(run_fingerprint(Fixed(), TwoImages(), None, seed=5, shard=(0, 2))["shard"], [0, 2])


def test_a_declared_capability_must_be_implemented():
    "A method that declares episodes at once but implements no `predict_episodes` is refused when it is defined."
    with pytest.raises(TypeError, match="does not implement predict_episodes"):
        class Promised(Fixed): capabilities = Capabilities(Kind.IMAGE, episodes_at_once=True)
    class Kept(Fixed):
        capabilities = Capabilities(Kind.IMAGE, episodes_at_once=True)
        def predict_episodes(self, images, indices): return None
    fc.test_eq([Fixed.capabilities.episodes_at_once, Kept.capabilities.episodes_at_once], [False, True])
