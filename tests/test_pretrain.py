"Pretraining with worker processes is the single-process run, bit for bit; the stream is a pure function of (seed, step)."
import pytest
import torch

from ttpt.pretrain import PretrainStream, make_batch, pretrain, stream_loader


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


def test_model_card_shows_targets_and_the_old_model_beside_the_new(tmp_path):
    import pandas as pd
    from ttpt.pretrain import model_card, save_pretrained
    model, log = pretrain(seed=0, steps=2, batch_size=4, warmup=1, workers=0, log_every=0)
    weights = save_pretrained(model, log, tmp_path / "tiny.safetensors")
    rows = [("source", "photo", 95.0, 93.0, 2.0), ("domain", "sketch", 90.0, 80.0, 9.0), ("base2new", "new", 70.0, 65.0, 5.0)]
    table = pd.DataFrame([dict(suite=s, dataset=d, domain="photo", classes=8, n=100, chance=12.5, accuracy=a, confidence=c,
                               ece=e, accuracy_ensemble=a) for s, d, a, c, e in rows])
    old = table.assign(accuracy=table.accuracy - 10, confidence=table.confidence - 20, ece=table.ece + 10)
    card = model_card(log, table, weights, previous=old)
    assert "| old accuracy | old confidence | old ece | new accuracy |" in card
    assert "| photo | photo | 8 | 100 | 12.5 | 85.0 | 73.0 | 12.0 | 95.0 | 93.0 | 2.0 |" in card
    assert "| sketch accuracy / photo accuracy | ≤ 0.85 | 0.95 | **no** |" in card  # a missed target says so
    assert f"--steps {log['steps']} --threads {log['threads']}" in card
