"The paper-versus-here table: verdicts, pairing, and one-line errors for bad input."
import math

import numpy as np
import pandas as pd
import pytest

from ttpt.harness.papers import ANALOGUES, PAPERS, paper_versus_here, verdict


def rows(method, dataset, correct):
    return pd.DataFrame({"method": method, "dataset": dataset, "index": range(len(correct)), "correct": correct, "skipped": False})


@pytest.fixture
def results():
    base = np.r_[np.ones(50, bool), np.zeros(50, bool)]
    better = np.r_[np.ones(90, bool), np.zeros(10, bool)]
    return pd.concat([rows("zeroshot", "hard", base), rows("zeroshot", "photo", base), rows("tpt", "hard", better), rows("tpt", "photo", base)])


def test_verdicts():
    cases = {(1.0, 0.2, 2.0): "appears", (1.0, -2.0, -0.2): "opposite sign", (1.0, -1.0, 1.0): "not distinguishable", (math.nan, 0.2, 1.0): "no paper number"}
    for args, start in cases.items():
        assert verdict(*args).startswith(start), f"verdict{args} = {verdict(*args)!r}, expected it to start with {start!r}"


def test_table(results):
    table = paper_versus_here(results, "tpt").set_index("here")
    assert list(table.index) == ["hard", "photo", "average"], f"rows: {list(table.index)}"
    gain = PAPERS["tpt"]["sets"]["ImageNet-A"] - PAPERS["zeroshot"]["sets"]["ImageNet-A"]
    assert math.isclose(table.loc["hard", "paper diff"], gain), f"paper diff {table.loc['hard', 'paper diff']} vs {gain}"
    assert math.isclose(table.loc["hard", "diff"], 40.0), f"diff here {table.loc['hard', 'diff']}"
    assert table.loc["hard", "verdict"].startswith("appears"), table.loc["hard", "verdict"]
    assert table.loc["photo", "verdict"] == "not distinguishable from 0", table.loc["photo", "verdict"]
    assert table.loc["average", "n"] == 200, f"average n {table.loc['average', 'n']}"
    assert ANALOGUES["corrupted"] is None, f"corrupted -> {ANALOGUES['corrupted']}"


def test_skipped_images_take_no_part(results):
    results = results.copy()
    results.loc[(results["method"] == "tpt") & (results["dataset"] == "hard") & (results["index"] == 0), "skipped"] = True
    n = paper_versus_here(results, "tpt").set_index("here").loc["hard", "n"]
    assert n == 99, f"n on hard with one skipped image: {n}"


@pytest.mark.parametrize("change, kwargs, message", [
    (lambda r: r, dict(method="tpt", paper="nope"), "no paper numbers for 'nope'"),
    (lambda r: r, dict(method="absent", paper="tpt"), "is not in the results"),
    (lambda r: r[r["method"] != "zeroshot"], dict(method="tpt"), "no rows of the baseline"),
    (lambda r: r.iloc[1:], dict(method="tpt"), "different images"),
])
def test_bad_input(results, change, kwargs, message):
    with pytest.raises(ValueError, match=message) as error:
        paper_versus_here(change(results), **kwargs)
    assert "\n" not in str(error.value), f"the error should be one line: {error.value!r}"
