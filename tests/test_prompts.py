"Equivalence of ttpt's prompted text encoder with open_clip's `encode_text` on real-size architectures."
import pytest
import torch

from ttpt.core.prompts import CLASS_POSITIONS, PromptLearner, encode_text_embeddings, encode_token_ids, reference_sentence

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


@pytest.mark.parametrize("position, class_specific, shared", [("end", False, 5), ("middle", False, 3), ("front", False, 1), ("end", True, 1)])
def test_shared_prefix_is_what_every_prompt_shares(random_clips, position, class_specific, shared):
    learner = PromptLearner(random_clips["ViT-B-16"], CLASSES, class_position=position, class_specific=class_specific)
    assert learner.shared_prefix == shared # [SOS] and the context words ("a photo of a") before the first class name


@pytest.mark.parametrize("name", ["ViT-B-16", "RN50"])
def test_shared_prefix_pass_has_the_plain_pass_gradients(random_clips, name):
    clip = random_clips[name]
    learner = PromptLearner(clip, CLASSES)
    weights = torch.randn(learner().shape[-1], generator=torch.Generator().manual_seed(0))
    shared, = torch.autograd.grad((learner() @ weights).sum(), learner.ctx)
    plain, = torch.autograd.grad((encode_text_embeddings(clip.model, learner.prompt_embeddings(), learner.eot) @ weights).sum(), learner.ctx)
    assert (shared - plain).abs().max().item() < 1e-4 * plain.abs().max().item()


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


# Six of OpenAI's curated ImageNet names end in ")", which CLIP's tokenizer merges with the prompt's period; the
# invented ones end in quotes, other punctuation or digits.
MERGING_NAMES = ["Mexican hairless dog (xoloitzcuintli)", "cherimoya (custard apple)", "impala (antelope)",
                 "kite (bird of prey)", "military hat (bearskin or shako)", "ram (adult male sheep)"]
INVENTED_NAMES = ["Jones'", 'the "Hulk"', "what?!", "sheep...", "e.g.", "(untitled)", "R2-D2", "item 9", "7-Eleven"]


@pytest.mark.filterwarnings("ignore:repeated class names") # OpenAI's names repeat "missile" and "sunglasses"
@pytest.mark.parametrize("position", CLASS_POSITIONS)
def test_token_ids_are_the_reference_sentence_for_every_imagenet_name(random_clips, position):
    "The phrase-initialised learner's prompt is, token for token, the reference sentence, for all 1000 names."
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES
    clip = random_clips["ViT-B-16"]
    learner = PromptLearner(clip, IMAGENET_CLASSNAMES, class_position=position)
    reference = clip.tokenizer([reference_sentence(c, class_position=position) for c in IMAGENET_CLASSNAMES])
    L = learner.token_ids.shape[1]
    assert (reference[:, L:] == 0).all(), "the learner's prompts are truncated after the longest EOT"
    mismatched = [c for c, ours, ref in zip(IMAGENET_CLASSNAMES, learner.token_ids.cpu(), reference[:, :L]) if not torch.equal(ours, ref)]
    assert not mismatched, f"{len(mismatched)} prompts differ from their reference sentence, e.g. {mismatched[:3]}"


@pytest.mark.parametrize("position", CLASS_POSITIONS)
def test_features_equal_encode_text_for_names_ending_in_punctuation(random_clips, position):
    clip = random_clips["ViT-B-16"]
    names = MERGING_NAMES + INVENTED_NAMES
    learner = PromptLearner(clip, names, class_position=position)
    with torch.no_grad():
        reference = clip.model.encode_text(clip.tokenizer([reference_sentence(c, class_position=position) for c in names]), normalize=True)
        ours = learner()
    assert (ours - reference).abs().max().item() < 1e-5


def test_repeated_names_have_identical_features(random_clips):
    clip = random_clips["ViT-B-16"]
    with pytest.warns(UserWarning, match="repeated class names"):
        learner = PromptLearner(clip, ["crane", "kite (bird of prey)", "crane", "kite (bird of prey)"])
    with torch.no_grad(): features = learner()
    assert torch.equal(features[0], features[2]) and torch.equal(features[1], features[3])
    assert not torch.equal(features[0], features[1])


def test_tpt_runs_on_the_1000_imagenet_names(tmp_path):
    "TPT over OpenAI's 1000 names (repeated ones included) on a tiny random-init CLIP with ViT-B-16's 77-token context."
    import json
    import open_clip
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES
    from PIL import Image
    from ttpt.core.models import load_clip
    from ttpt.methods.tpt import TPT
    config = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 16},
              "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    (tmp_path/"ttpt-test-tiny77.json").write_text(json.dumps(config))
    open_clip.add_model_config(tmp_path)
    clip = load_clip("ttpt-test-tiny77", pretrained=None)
    tpt = TPT(n_views=4, keep=0.5)
    with pytest.warns(UserWarning, match="missile"): tpt.prepare(clip, IMAGENET_CLASSNAMES)
    for index, colour in enumerate([(200, 30, 30), (20, 120, 220)]):
        probabilities = tpt.predict(Image.new("RGB", (48, 40), colour), index)
        assert probabilities.shape == (1000,)
        assert torch.isfinite(probabilities).all() and abs(probabilities.sum().item() - 1) < 1e-4
