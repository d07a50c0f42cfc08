"Equivalence of ttpt's prompted text encoder with open_clip's `encode_text` on real-size architectures."
import pytest
import torch

from ttpt.prompts import CLASS_POSITIONS, PromptLearner, encode_token_ids, reference_sentence

CLASSES = ["goldfish", "great white shark", "tabby cat", "traffic light", "a"]


@pytest.mark.parametrize("name", ["ViT-B-16", "RN50"])
@pytest.mark.parametrize("position", CLASS_POSITIONS)
def test_prompt_learner_matches_encode_text(random_clips, name, position):
    clip = random_clips[name]
    learner = PromptLearner(clip, CLASSES, class_position=position)
    sentences = [reference_sentence(c, class_position=position) for c in CLASSES]
    with torch.no_grad():
        reference = clip.model.encode_text(clip.tokenizer(sentences), normalize=True)
        ours = learner()
    assert ours.shape == reference.shape
    assert (ours - reference).abs().max().item() < 1e-5


@pytest.mark.parametrize("name", ["ViT-B-16", "RN50"])
def test_truncated_encoding_is_exact(random_clips, name):
    clip = random_clips[name]
    ids = clip.tokenizer([f"a photo of a {c}." for c in CLASSES])
    with torch.no_grad():
        full = encode_token_ids(clip.model, ids, truncate=False)
        cut = encode_token_ids(clip.model, ids, truncate=True)
        reference = clip.model.encode_text(ids, normalize=True)
    assert (full - reference).abs().max().item() < 1e-5
    assert (cut - reference).abs().max().item() < 1e-5


@pytest.mark.parametrize("name", ["ViT-B-16", "RN50"])
def test_gradients_reach_context_only(random_clips, name):
    clip = random_clips[name]
    learner = PromptLearner(clip, CLASSES[:3], class_specific=True)
    learner().sum().backward()
    assert learner.ctx.grad is not None and learner.ctx.grad.abs().sum() > 0
    assert all(p.grad is None for p in clip.model.parameters())
    assert [n for n, _ in learner.named_parameters()] == ["ctx"]


def test_trained_context_tensor_init(random_clips):
    clip = random_clips["RN50"]
    first = PromptLearner(clip, CLASSES, init=None, n_ctx=4, seed=3)
    again = PromptLearner(clip, CLASSES, init=first.ctx.detach())
    with torch.no_grad():
        assert torch.allclose(first(), again(), atol=1e-6)
