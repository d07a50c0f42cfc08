"MTA: no backward and no change to anything; deterministic; the mode equals a plain loop over the paper's equations; clear errors."
import math

import pytest
import torch

from ttpt.data.benchmark import get_dataset
from ttpt.registry import make_method, METHODS
from ttpt.harness.setup import Setup
from ttpt.methods.mta import MTA, mta_mode


@pytest.fixture(scope="module")
def hard():
    return get_dataset("hard", n=4)


def test_mta_calls_no_backward_and_changes_nothing(clip, hard, monkeypatch):
    mta = MTA(n_views=16)
    mta.prepare(clip, hard.classes)
    frozen = [p.detach().clone() for p in clip.model.parameters()]
    text = mta.text_feats.clone()
    monkeypatch.setattr(torch.Tensor, "backward", lambda *a, **k: pytest.fail("MTA called backward"))
    for i in range(len(hard)):
        p = mta.predict(*hard[i])
        assert not p.requires_grad and abs(p.sum().item() - 1) < 1e-5, p
    assert all(torch.equal(a, b) for a, b in zip(frozen, clip.model.parameters()))
    assert torch.equal(text, mta.text_feats)


def test_mta_is_deterministic_and_its_views_follow_the_seed(clip, hard):
    def run(seed):
        mta = MTA(n_views=16, seed=seed)
        mta.prepare(clip, hard.classes)
        return torch.stack([mta.predict(*hard[i]) for i in range(len(hard))])
    first = run(0)
    assert torch.equal(first, run(0))
    assert not torch.equal(first, run(1))


def reference_mode(z, p, lam_y, lam_q, iterations, neighbours, tol=1e-6):
    "MTA's mode written as plain loops over views, one equation per line, from the paper's definitions."
    n = len(z)
    k = max(1, int(neighbours * (n - 1)))
    h = []
    for a in range(n):
        d2 = sorted(float(((z[a] - z[b]) ** 2).sum()) for b in range(n) if b != a)[:k]
        h.append(math.sqrt(sum(d2) / k / 2))
    kappa = lambda m: [math.exp(-float(((z[a] - m) ** 2).sum()) / (2 * h[a] ** 2)) for a in range(n)]
    affinity = [[float(p[a] @ p[b]) for b in range(n)] for a in range(n)]
    y, m = [1 / n] * n, z[0].double()
    for _ in range(iterations):
        dens = kappa(m)
        for _ in range(iterations):
            s = [(dens[a] + lam_q * sum(affinity[a][b] * y[b] for b in range(n))) / lam_y for a in range(n)]
            top = max(s)
            e = [math.exp(v - top) for v in s]
            new = [v / sum(e) for v in e]
            moved, y = math.sqrt(sum((u - v) ** 2 for u, v in zip(new, y))), new
            if moved < tol: break
        for _ in range(iterations):
            w = [y[a] * d for a, d in enumerate(kappa(m))]
            new = sum(w[a] * z[a].double() for a in range(n)) / sum(w)
            new = new / new.norm()
            moved, m = float((new - m).norm()), new
            if moved < tol: break
    return m, torch.tensor(y)


@pytest.mark.parametrize("lam_y,lam_q", [(0.2, 4.0), (1.0, 0.0), (0.05, 10.0)])
def test_mode_equals_plain_loops(lam_y, lam_q):
    g = torch.Generator().manual_seed(3)
    z = torch.nn.functional.normalize(torch.randn(12, 6, generator=g, dtype=torch.float64), dim=-1)
    p = torch.randn(12, 4, generator=g, dtype=torch.float64).softmax(-1)
    mode, y = mta_mode(z, p, lam_y, lam_q, iterations=5, neighbours=0.3)
    ref_mode, ref_y = reference_mode(z, p, lam_y, lam_q, 5, 0.3)
    assert torch.allclose(mode, ref_mode, atol=1e-9), (mode, ref_mode)
    assert torch.allclose(y, ref_y.to(y), atol=1e-9), (y, ref_y)


@pytest.mark.parametrize("settings,message", [(dict(inlier_temperature=0.0), "inlier_temperature"), (dict(agreement_weight=-1.0), "agreement_weight"),
                                              (dict(iterations=0), "iterations"), (dict(neighbours=0.0), "neighbours"),
                                              (dict(neighbours=1.5), "neighbours"), (dict(n_views=1), "n_views"), (dict(n_views=8.5), "n_views")])
def test_bad_settings_are_clear_errors(settings, message):
    with pytest.raises(ValueError, match=message):
        MTA(**settings)


def test_mta_is_a_registered_method_outside_the_default(clip):
    assert "mta" in METHODS
    method = make_method("mta", Setup(clip, seed=2, settings={"n_views": 16}))
    assert isinstance(method, MTA) and method.n_views == 16 and method.seed == 2


def test_mta_runs_from_the_command_line(tmp_path):
    "`ttpt eval --method mta` evaluates from a clean start and writes its results file."
    import subprocess, sys
    from pathlib import Path
    from ttpt.harness.results import read_results, results_path
    ttpt = Path(sys.executable).parent / "ttpt"
    done = subprocess.run([str(ttpt), "eval", "--method", "mta", "--dataset", "hard", "--images", "3", "--views", "16",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert len(read_results(results_path(tmp_path, "mta", "hard"))) == 3
