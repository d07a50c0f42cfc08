"""The shared platform: batched = per-image predictions, cached = uncached view features, settings in the fingerprint,
and the layering (the data module imports no model code; nothing but the CLI imports the CLI)."""
import ast
import io
from pathlib import Path

import pandas as pd
import pytest
import torch

from ttpt.data.benchmark import few_shot_source, get_dataset
from ttpt.methods.coop import CoOp, train_coop
from ttpt.harness.identity import run_fingerprint
from ttpt.harness.evaluate import evaluate
from ttpt.harness.reports import print_comparison
from ttpt.harness.features import ViewCache
from ttpt.core.models import load_clip
from ttpt.methods.ctpt import CTPT
from ttpt.methods.zero import Zero
from ttpt.methods.tpt import TPT
from ttpt.methods.classifiers import ZeroShot
from ttpt.core.zeroshot import ENSEMBLE_TEMPLATES

COLUMNS = ["index", "label", "prediction", "confidence"]


@pytest.fixture(scope="module")
def context(clip):
    return train_coop(clip, few_shot_source(shots=1), epochs=2, progress=False)[0]


@pytest.mark.parametrize("name", ["zeroshot", "ensemble", "coop"])
def test_batched_equals_per_image(clip, context, name):
    make = {"zeroshot": ZeroShot, "ensemble": lambda: ZeroShot(ENSEMBLE_TEMPLATES, name="ensemble"), "coop": lambda: CoOp(context)}[name]
    data = get_dataset("cartoon", n=40)
    one = evaluate(make(), data, clip, batch_size=1, progress=False)
    batched = evaluate(make(), data, clip, batch_size=16, progress=False)
    assert one["prediction"].tolist() == batched["prediction"].tolist()
    torch.testing.assert_close(torch.tensor(one["confidence"].values), torch.tensor(batched["confidence"].values), rtol=0, atol=1e-5)  # batched convolutions round differently


@pytest.mark.parametrize("name", ["tpt", "c-tpt", "tpt+coop", "zero"])
def test_cached_equals_uncached(clip, context, name, tmp_path):
    make = {"tpt": lambda: TPT(n_views=16, keep=0.25), "c-tpt": lambda: CTPT(n_views=16, keep=0.25),
            "tpt+coop": lambda: TPT(n_views=16, keep=0.25, context=context, name="tpt+coop"), "zero": lambda: Zero(n_views=16)}[name]
    data = get_dataset("hard", n=5)
    fresh = evaluate(make(), data, clip, progress=False)
    cache = ViewCache(tmp_path)
    filling = evaluate(make(), data, clip, view_cache=cache, progress=False)  # computes and stores
    reading = evaluate(make(), data, clip, view_cache=ViewCache(tmp_path), progress=False)  # reads back, as a later run would
    pd.testing.assert_frame_equal(fresh[COLUMNS], filling[COLUMNS])
    pd.testing.assert_frame_equal(fresh[COLUMNS], reading[COLUMNS])
    assert (fresh["views_read"].iloc[0], filling["views_read"].iloc[0], reading["views_read"].iloc[0]) == (0, 0, 1)  # who paid for the views
    printed = io.StringIO()
    print_comparison(pd.concat([filling, reading.assign(method="reader")]), baseline=filling["method"].iloc[0], file=printed)
    assert "read from the shared cache" in printed.getvalue(), printed.getvalue()


def test_every_setting_is_in_the_fingerprint():
    "Two Zero runs with different templates of the same count must not share results (the config once held only the count)."
    a, b = Zero(templates=("a photo of a {}.", "a drawing of a {}.")), Zero(templates=("a photo of a {}.", "a sketch of a {}."))
    assert a.config() != b.config()
    assert TPT(context=torch.zeros(4, 8)).config() != TPT(context=torch.ones(4, 8)).config()
    assert set(CTPT().config()) >= {"n_views", "keep", "augmix", "seed", "steps", "lr", "context", "update", "dispersion_weight"}


def test_zero_templates_get_their_own_results_file(clip, tmp_path):
    data = get_dataset("sketch", n=2)
    evaluate(Zero(n_views=8, keep=0.5, templates=("a photo of a {}.", "a drawing of a {}.")), data, clip, out=tmp_path, progress=False)
    with pytest.raises(ValueError, match="method_config.templates"):
        evaluate(Zero(n_views=8, keep=0.5, templates=("a photo of a {}.", "a sketch of a {}.")), data, clip, out=tmp_path, progress=False)


LIB = Path(__file__).parents[1] / "ttpt"
LAYERS = ("core", "data", "harness", "methods", "studies", "top") # each imports only from its own layer and those before it


def library_modules(within:str="") -> list:
    "Sorted dotted names ('ttpt.core.models', ...) of the library's modules under `within` (e.g. 'harness'; '': all); packages' `__init__` and `_modidx` left out."
    return sorted("ttpt." + ".".join(p.relative_to(LIB).with_suffix("").parts) for p in (LIB/within).rglob("[!_]*.py"))


def _imports(module):
    "The absolute names of the modules `module` (e.g. 'ttpt.data.benchmark') imports; relative imports resolved."
    package = module.split(".")[:-1]
    tree = ast.parse((LIB.parent / f"{module.replace('.', '/')}.py").read_text())
    found = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            found.add(".".join(base + [node.module or ""]).strip("."))
    return found


def _layer(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 2 else "top"


def test_layering():
    "core ← data ← harness ← methods ← studies ← the top (registry, compare, cli): no module imports from a later layer."
    modules = library_modules()
    assert {_layer(m) for m in modules} == set(LAYERS)
    upward = [f"{m} -> {i}" for m in modules for i in _imports(m) if i.startswith("ttpt.") and LAYERS.index(_layer(i)) > LAYERS.index(_layer(m))]
    assert upward == [], f"imports from a later layer: {upward}"
    model_code = {"ttpt.core.models", "ttpt.core.zeroshot", "ttpt.core.prompts", "ttpt.harness.evaluate", "open_clip", "torch"}
    assert _imports("ttpt.data.benchmark") & model_code == set(), "the benchmark must not import model code"


@pytest.mark.parametrize("name", ["tpt", "c-tpt", "tpt+coop"])
def test_batched_episodes_equal_sequential(clip, context, name):
    "B episodes in one pass give the predictions of B sequential episodes (float32)."
    make = {"tpt": lambda: TPT(n_views=16, keep=0.25, steps=2), "c-tpt": lambda: CTPT(n_views=16, keep=0.25, steps=2),
            "tpt+coop": lambda: TPT(n_views=16, keep=0.25, steps=2, context=context, name="tpt+coop")}[name]
    data = get_dataset("hard", n=10)
    one = evaluate(make(), data, clip, progress=False)
    together = evaluate(make(), data, clip, episodes=4, progress=False)
    assert one["prediction"].tolist() == together["prediction"].tolist()
    assert (one["confidence"] - together["confidence"]).abs().max() < 1e-5


def test_worker_processes_give_the_in_process_results(clip, tmp_path):
    "Views made in DataLoader worker processes (with prefetch) give the predictions of views made in process."
    data = get_dataset("hard", n=6)
    in_process = evaluate(TPT(n_views=16, keep=0.25), data, clip, progress=False)
    in_workers = evaluate(TPT(n_views=16, keep=0.25), data, clip, workers=2, episodes=3, out=tmp_path, progress=False)
    pd.testing.assert_frame_equal(in_process[["index", "label", "prediction"]], in_workers[["index", "label", "prediction"]])
    zero = [evaluate(Zero(n_views=16), data, clip, workers=w, progress=False)[COLUMNS] for w in (0, 2)]
    pd.testing.assert_frame_equal(*zero)


def test_episodes_need_a_method_that_has_them(clip):
    with pytest.raises(ValueError, match="cannot run several episodes at once"):
        evaluate(Zero(n_views=16), get_dataset("hard", n=2), clip, episodes=2, progress=False)


def test_the_methods_code_is_in_the_fingerprint():
    "A results file records the source digest of the method's module and of every ttpt module it uses."
    code = run_fingerprint(TPT(n_views=16), get_dataset("photo", n=2), None)["code"]
    assert {"ttpt.methods.tpt", "ttpt.methods.episodic", "ttpt.core.selection", "ttpt.core.views", "ttpt.core.prompts"} <= set(code), sorted(code)
    assert not {"ttpt.cli", "ttpt.registry", "ttpt.harness.setup", "ttpt.harness.reports"} & set(code), sorted(code) # only what the method runs
