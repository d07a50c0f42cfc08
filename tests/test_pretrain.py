"Pretraining with worker processes is the single-process run, bit for bit; the stream is a pure function of (seed, step)."
import pytest
import torch

from ttpt.data.pretrain import PretrainStream, make_batch, pretrain, stream_loader


def test_first_steps_identical_with_and_without_workers():
    single, single_log = pretrain(seed=1, steps=3, batch_size=8, warmup=1, workers=0, log_every=0)
    workers, workers_log = pretrain(seed=1, steps=3, batch_size=8, warmup=1, workers=2, log_every=0)
    assert single_log["loss"] == workers_log["loss"]
    for (name, a), (_, b) in zip(single.state_dict().items(), workers.state_dict().items()):
        assert torch.equal(a, b), name


def test_stream_is_a_function_of_seed_and_step():
    loaded = list(stream_loader(PretrainStream(3, 4, 6, start=2), workers=1))
    assert len(loaded) == 2
    direct = make_batch(3, 3, 6)
    assert loaded[1]["texts"] == direct["texts"] and torch.equal(loaded[1]["images"], direct["images"])


def test_bad_domain_mix_is_refused():
    with pytest.raises(ValueError, match="domain_mix"):
        pretrain(steps=1, batch_size=4, domain_mix={"oil painting": 1.0}, workers=0)


def test_model_card_shows_targets_leverage_and_the_old_model_beside_the_new(tmp_path):
    import pandas as pd
    from ttpt.studies.miniclip import model_card, pretraining_targets, targets_by_seed
    from ttpt.data.pretrain import save_pretrained
    model, log = pretrain(seed=0, steps=2, batch_size=4, warmup=1, workers=0, log_every=0)
    weights = save_pretrained(model, log, tmp_path / "tiny.safetensors")
    rows = [("source", "photo", 95.0, 93.0, 2.0), ("domain", "sketch", 90.0, 80.0, 9.0), ("base2new", "new", 70.0, 65.0, 5.0)]
    table = pd.DataFrame([dict(suite=s, dataset=d, domain="photo", classes=8, n=100, chance=12.5, accuracy=a, confidence=c,
                               ece=e, accuracy_ensemble=a) for s, d, a, c, e in rows])
    old = table.assign(accuracy=table.accuracy - 10, confidence=table.confidence - 20, ece=table.ece + 10)
    sets = ["photo", "sketch", "cartoon", "corrupted", "hard", "base", "new"]
    leverage = pd.DataFrame({"n": [1000] + [500] * 6, "a photo of a {}.": [80., 50., 60., 60., 60., 85., 80.],
                             "zebra zebra zebra {}.": [70.] * 7, "ece": [3.] * 7, "own word gain": [0., 2., 2., 2., 0., 0., 0.],
                             "gain low": [0., 1., 1., 1., -1., 0., 0.], "gain high": [0., 3., 3., 3., 1., 0., 0.]}, index=pd.Index(sets, name="set"))
    coop = pd.DataFrame({"trained on": ["photo", "base", "base"], "set": ["photo", "base", "new"], "zero-shot": [80., 85., 80.],
                         "CoOp": [85., 90., 78.], "gain": [5., 5., -2.], "low": [3., 3., -4.], "high": [7., 7., 0.]})
    cosines = pd.Series({"sketch": 0.5, "cartoon": 0.6, "corrupted": 0.8, "hard": 0.7})
    per_seed = {3: pretraining_targets(leverage, coop, 19.0), 5: pretraining_targets(leverage.assign(**{"zebra zebra zebra {}.": 79.}), coop, 19.0)}
    card = model_card(log, table, leverage, cosines, coop, weights, previous=old, previous_leverage=leverage - 1, code_commit="abc1234",
                      by_seed=targets_by_seed(per_seed))
    assert "| old accuracy | old confidence | old ece | new accuracy |" in card
    assert "| photo | photo | 8 | 100 | 12.5 | 85.0 | 73.0 | 12.0 | 95.0 | 93.0 | 2.0 |" in card
    assert "| hard accuracy / photo accuracy | ≤ 0.9 | 0.75 | yes |" in card
    assert "| sketch accuracy / photo accuracy | ≤ 0.9 | 0.62 | yes |" in card
    assert "| CoOp (16 shots) on photo minus zero-shot (points) | ≥ 3 | 5.00 | yes |" in card
    assert "| photo: 'a photo of a {}.' minus 'zebra zebra zebra {}.' (points) | ≥ 5 | 10.00 | yes |" in card
    assert "| sketch | 50.0 | 70.0 | +2.0 [+1.0, +3.0] | 49.0 | 69.0 |" in card  # new beside old
    assert "| photo | photo | 80.0 | 85.0 | +5.0 [+3.0, +7.0] |" in card
    assert "sketch 0.500, cartoon 0.600" in card
    assert f"--steps {log['steps']} --stop_after {log['stop_after']} --threads {log['threads']}" in card
    assert "trained by the code of commit abc1234" in card
    assert "| target | seed 3 | seed 5 | seeds reached |" in card
    assert "| photo: 'a photo of a {}.' minus 'zebra zebra zebra {}.' (points) | 10.00 | 1.00 | 1 |" in card  # reached on seed 3 only


def test_stop_after_is_the_full_runs_checkpoint_bit_for_bit(tmp_path):
    from safetensors.torch import load_file
    pretrain(seed=2, steps=4, batch_size=4, warmup=1, workers=0, log_every=0, checkpoint_every=2, checkpoint_dir=tmp_path)
    stopped, log = pretrain(seed=2, steps=4, stop_after=2, batch_size=4, warmup=1, workers=0, log_every=0)
    checkpoint = load_file(tmp_path / "step2.safetensors")
    assert log["stop_after"] == 2 and len(log["loss"]) == 2
    for name, weight in stopped.state_dict().items():
        assert torch.equal(weight.half(), checkpoint[name]), name


def test_stop_after_beyond_the_schedule_is_refused():
    with pytest.raises(ValueError, match="stop_after must be at most steps"):
        pretrain(steps=2, stop_after=3, batch_size=4, workers=0)
