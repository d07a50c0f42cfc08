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
