"""Typical wrong answers to every lab exercise, each with the feedback it must get (a part of `labcheck`'s first line),
and correct answers written in other ways, which must get full marks.

The tests run each one through `labcheck` (a mutation battery): every wrong answer scores below full marks with
feedback naming its mistake, every correct variant (another library function, another dtype, a loop, numpy) passes.
`course.py measure` grades a submission made of the first wrong answer of every exercise. An answer is the whole
answer cell, as a student would write it; it sees the lab's imports and the lab's other answers.

Each wrong answer names the class of mistake it stands for (scaling, ordering, off-by-one, aliasing, a reduction over
the wrong axis, the wrong base of log, a library call...): the classes each exercise's checks separate."""


def _answer(signature, body):
    "An answer cell: `def signature:` and an indented body."
    return f"def {signature}:\n" + "\n".join("    " + line for line in body.strip("\n").splitlines())


LOGITS = "clip_logits_from_features(image_feats, text_feats, logit_scale)"
ENSEMBLE = "ensemble_text_features(clip, classnames, templates)"
ENT, KEEP, MARG = "entropy_of_logits(logits)", "keep_confident(scores, keep)", "marginal_entropy_of(logits)"
STEP = "tpt_step(learner, optimizer, image_feats, selected, logit_scale)"
RESET, VOTE = "reset_episode(learner, optimizer, initial)", "zero_vote(logits, keep)"
ECE, DISP, CTPT = "calibration_error(confidence, correct, n_bins)", "dispersion(text_feats)", "ctpt_objective(logits, text_feats, weight)"
SUPCON, GM, GCOS = "supcon(features, temperature)", "gradient_matching(g_ce, g_cpt)", "gradient_cosine(ce, cpt, context)"
SAM, FILT, STSS = "sam_gradient(loss_fn, p, rho)", "filter_normalise(direction, context)", "flat_view_score(feats, text_feats, perturbed_feats, logit_scale, weight)"
AFF, DIV, META = "affine_matrix(theta)", "view_diversity(feats)", "meta_objective(logits, label, keep)"
CACHE, CLOG = "update_positive_cache(cache, label, feature, entropy, capacity)", "positive_cache_logits(query, keys, labels, n_classes, alpha, beta)"

_BINS = "bins = (torch.ceil(confidence * n_bins).long() - 1).clamp(0, n_bins - 1)\n"
_SUPCON_HEAD = ("K, V, D = features.shape\nz = features.reshape(K * V, D)\nlabels = torch.arange(K).repeat_interleave(V)\n"
                "self_mask = torch.eye(K * V, dtype=torch.bool)\npositives = (labels[:, None] == labels[None, :]) & ~self_mask\n")
_SCORE_HEAD = "flat = entropy(logit_scale * feats @ text_feats.T)\nmoved = entropy(logit_scale * torch.einsum('nd,rkd->rnk', feats, perturbed_feats))\n"
_AFF_HEAD = "log_scale, angle, tx, ty, shear = theta.unbind(dim=1)\n"
_QUEUE = "queue = cache.setdefault(label, [])\n"
_COSINE = "cosine = F.normalize(query, dim=-1) @ F.normalize(keys, dim=-1).T\n"
_STACK = "return torch.stack([torch.stack([{a}, {b}, {c}], 1), torch.stack([{d}, {e}, {f}], 1)], 1)"

# (answer cell, a part of the feedback it must get, the class of mistake)
WRONG_ANSWERS = {
    "01_clip_zero_shot": {
        "clip_logits_from_features": [
            (_answer(LOGITS, "return logit_scale * image_feats @ text_feats.T"), "you did not normalise the features", "missing step"),
            (_answer(LOGITS, "return F.normalize(image_feats, dim=-1) @ F.normalize(text_feats, dim=-1).T"), "you forgot CLIP's temperature", "scaling"),
            (_answer(LOGITS, "return logit_scale * F.normalize(image_feats, dim=0) @ F.normalize(text_feats, dim=0).T"), "wrong dimension", "wrong axis"),
            (_answer(LOGITS, "return logit_scale * F.normalize(image_feats, dim=-1) @ text_feats.T"), "but not the text features", "missing step"),
            (_answer(LOGITS, "return logit_scale.exp() * F.normalize(image_feats, dim=-1) @ F.normalize(text_feats, dim=-1).T"), "you used exp(logit_scale)", "scaling"),
            (_answer(LOGITS, "return (logit_scale * F.normalize(image_feats, dim=-1) @ F.normalize(text_feats, dim=-1).T).softmax(-1)"), "you returned probabilities", "wrong output"),
            (_answer(LOGITS, "return logit_scale * F.normalize(text_feats, dim=-1) @ F.normalize(image_feats, dim=-1).T"), "your logits are transposed", "ordering"),
            ("from types import SimpleNamespace\nfrom ttpt.core.zeroshot import clip_logits\n" + _answer(LOGITS, "return clip_logits(SimpleNamespace(logit_scale=logit_scale), F.normalize(image_feats, dim=-1), F.normalize(text_feats, dim=-1))"),
             "calls ttpt's own `clip_logits`", "library call"),
        ],
        "ensemble_text_features": [
            ("@torch.no_grad()\n" + _answer(ENSEMBLE, "prompts = [t.format(c) for c in classnames for t in templates]\n"
             "feats = encode_token_ids(clip.model, clip.tokenizer(prompts))\nreturn feats.view(len(classnames), len(templates), -1).mean(dim=1)"),
             "normalise the class features again after averaging", "missing step"),
            ("@torch.no_grad()\n" + _answer(ENSEMBLE, "prompts = [t.format(c) for t in templates for c in classnames]\n"
             "feats = encode_token_ids(clip.model, clip.tokenizer(prompts))\nreturn F.normalize(feats.view(len(classnames), len(templates), -1).mean(dim=1), dim=-1)"),
             "classes got mixed", "ordering"),
            ("@torch.no_grad()\n" + _answer(ENSEMBLE, "prompts = [templates[0].format(c) for c in classnames]\nreturn encode_token_ids(clip.model, clip.tokenizer(prompts))"),
             "you kept only the first template", "missing step"),
            ("@torch.no_grad()\n" + _answer(ENSEMBLE, "prompts = [t.format(c) for c in classnames for t in templates]\n"
             "feats = encode_token_ids(clip.model, clip.tokenizer(prompts))\nreturn F.normalize(feats.view(len(classnames), len(templates), -1).mean(dim=0), dim=-1)"),
             "averaged over the classes", "wrong axis"),
            ("@torch.no_grad()\n" + _answer(ENSEMBLE, "prompts = [t.format(c) for c in classnames for t in templates]\n"
             "feats = encode_token_ids(clip.model, clip.tokenizer(prompts), normalize=False)\nreturn F.normalize(feats.view(len(classnames), len(templates), -1).mean(dim=1), dim=-1)"),
             "you averaged the raw (unnormalised) text features", "missing step"),
            ("@torch.no_grad()\n" + _answer(ENSEMBLE, "prompts = [t.format(c) for c in classnames for t in templates]\n"
             "feats = encode_token_ids(clip.model, clip.tokenizer(prompts))\nreturn feats.view(len(classnames), len(templates), -1).sum(dim=1)"),
             "you summed the templates' features", "scaling"),
            ("@torch.no_grad()\n" + _answer(ENSEMBLE, "return encode_token_ids(clip.model, clip.tokenizer(list(classnames)))"), "you encoded the bare class names", "missing step"),
            ("from ttpt.core.zeroshot import class_text_features\n" + _answer(ENSEMBLE, "return class_text_features(clip, classnames, templates)"),
             "calls ttpt's own `class_text_features`", "library call"),
        ],
    },
    "02_views_selection": {
        "entropy_of_logits": [
            (_answer(ENT, "p = logits.softmax(dim=-1)\nreturn -(p * p.log2()).sum(dim=-1)"), "your entropy uses log base 2", "wrong base of log"),
            (_answer(ENT, "logp = logits.log_softmax(dim=0)\nreturn -(logp.exp() * logp).sum(dim=-1)"), "you took the softmax over the views", "wrong axis"),
            (_answer(ENT, "p = logits.softmax(dim=-1)\nreturn (p * p.log()).sum(dim=-1)"), "your entropy is negative", "sign"),
            (_answer(ENT, "logp = logits.log_softmax(dim=-1)\nreturn -(logp.exp() * logp).sum()"), "return one entropy per view", "reduction over the wrong axis"),
            (_answer(ENT, "logp = logits.log_softmax(dim=-1)\nreturn -(logp.exp() * logp).mean(dim=-1)"), "you averaged over the classes instead of summing", "scaling"),
            (_answer(ENT, "p = logits.exp()\nreturn -(p * logits).sum(dim=-1)"), "your p does not sum to 1", "missing step"),
            (_answer(ENT, "p = logits.softmax(dim=-1)\nreturn -(p * p.log()).sum(dim=-1)"), "returns nan", "numerical stability"),
            (_answer(ENT, "p = logits.softmax(dim=-1)\nreturn -(p * logits).sum(dim=-1)"), "use log_softmax, not the raw logits", "missing step"),
            ("import ttpt.core.selection\n" + _answer(ENT, "return ttpt.core.selection.entropy(logits)"), "calls ttpt's own `entropy`", "library call"),
        ],
        "keep_confident": [
            (_answer(KEEP, "return scores.argsort(descending=True)[:int(len(scores) * keep)]"), "you kept the highest-entropy views", "ordering"),
            ("import math\n" + _answer(KEEP, "return scores.argsort()[:math.ceil(len(scores) * keep)]"), "rounded DOWN", "off-by-one"),
            (_answer(KEEP, "return scores.argsort()[:round(len(scores) * keep)]"), "you kept round(ρN) views", "off-by-one"),
            (_answer(KEEP, "return scores.sort().values[:int(len(scores) * keep)]"), "return their indices", "wrong output"),
            (_answer(KEEP, "return scores.argsort()[:int(len(scores) * keep)].sort().values"), "in their original order", "ordering"),
            (_answer(KEEP, "return scores.argsort()[:int(len(scores) * keep) + 1]"), "one view too many", "off-by-one"),
            (_answer(KEEP, "return scores.argsort()[int(len(scores) * keep):]"), "AFTER the cut", "off-by-one"),
            (_answer(KEEP, "return scores <= scores.sort().values[int(len(scores) * keep) - 1]"), "you returned a mask", "wrong output"),
            ("from ttpt.core.selection import select_confident_views as pick\n" + _answer(KEEP, "return pick(scores, keep)"), "calls ttpt's own `select_confident_views`", "library call"),
        ],
        "marginal_entropy_of": [
            (_answer(MARG, "p = logits.mean(dim=0).softmax(dim=-1)\nreturn -(p * p.log()).sum()"), "the mean of logits is not the mean of probabilities", "ordering"),
            (_answer(MARG, "logp = logits.log_softmax(dim=-1)\nreturn -(logp.exp() * logp).sum(dim=-1).mean()"), "the average of the views' entropies", "ordering"),
            (_answer(MARG, "p = logits.softmax(dim=-1).mean(dim=0)\nreturn -(p * p.clamp_min(1e-12).log2()).sum()"), "log base 2", "wrong base of log"),
            (_answer(MARG, "p = logits.softmax(dim=-1).sum(dim=0)\nreturn -(p * p.clamp_min(1e-12).log()).sum()"), "you summed the views' probabilities", "scaling"),
            (_answer(MARG, "p = logits.softmax(dim=0).mean(dim=0)\nreturn -(p * p.clamp_min(1e-12).log()).sum()"), "you took the softmax over the views", "wrong axis"),
            (_answer(MARG, "p = logits.softmax(dim=-1).mean(dim=0)\nreturn -(p * p.clamp_min(1e-12).log())"), "you returned one term per class", "reduction over the wrong axis"),
            (_answer(MARG, "p = logits.softmax(dim=-1).mean(dim=0)\nreturn -(p * p.log()).sum()"), "returns nan", "numerical stability"),
            (_answer(MARG, "logp = logits.log_softmax(dim=-1).mean(dim=0)\nreturn -(logp.exp() * logp).sum()"), "geometric mean", "ordering"),
            ("from ttpt.core.selection import marginal_entropy\n" + _answer(MARG, "return marginal_entropy(logits)"), "calls ttpt's own `marginal_entropy`", "library call"),
        ],
    },
    "03_tpt_step": {
        "tpt_step": [
            (_answer(STEP, "loss = marginal_entropy((logit_scale * image_feats @ learner().T)[selected])\nloss.backward()\noptimizer.step()\nreturn loss"),
             "call optimizer.zero_grad() before loss.backward()", "missing step"),
            (_answer(STEP, "loss = marginal_entropy(logit_scale * image_feats @ learner().T)\noptimizer.zero_grad()\nloss.backward()\noptimizer.step()\nreturn loss"),
             "you used every view", "wrong input"),
            (_answer(STEP, "loss = marginal_entropy((logit_scale * image_feats @ learner().T)[selected])\noptimizer.zero_grad()\nloss.backward()\nreturn loss"),
             "the context did not move", "missing step"),
            (_answer(STEP, "loss = -marginal_entropy((logit_scale * image_feats @ learner().T)[selected])\noptimizer.zero_grad()\nloss.backward()\noptimizer.step()\nreturn loss"),
             "you maximised the entropy", "sign"),
            (_answer(STEP, "loss = marginal_entropy((logit_scale * image_feats @ learner().T)[selected]) / math.log(2)\noptimizer.zero_grad()\nloss.backward()\noptimizer.step()\nreturn loss").replace("def ", "import math\ndef ", 1),
             "your loss is in bits", "wrong base of log"),
            (_answer(STEP, "loss = 10 * marginal_entropy((logit_scale * image_feats @ learner().T)[selected])\noptimizer.zero_grad()\nloss.backward()\noptimizer.step()\nreturn loss"),
             "your loss is 10 times TPT's", "scaling"),
            (_answer(STEP, "loss = marginal_entropy((image_feats @ learner().T)[selected])\noptimizer.zero_grad()\nloss.backward()\noptimizer.step()\nreturn loss"),
             "you left out CLIP's logit_scale", "scaling"),
            (_answer(STEP, "loss = entropy((logit_scale * image_feats @ learner().T)[selected]).mean()\noptimizer.zero_grad()\nloss.backward()\noptimizer.step()\nreturn loss"),
             "you minimised the mean of the views' entropies", "ordering"),
            (_answer(STEP, "loss = marginal_entropy((logit_scale * image_feats @ learner().T)[selected])\noptimizer.zero_grad()\nloss.backward()\noptimizer.step()"),
             "tpt_step returns nothing: return the loss", "wrong output"),
            (_answer(STEP, "loss = marginal_entropy((logit_scale * image_feats @ learner().T)[selected])\noptimizer.zero_grad()\nloss.backward()\noptimizer.step()\n"
                     "with torch.no_grad(): return marginal_entropy((logit_scale * image_feats @ learner().T)[selected])"),
             "you returned the loss AFTER the step", "ordering"),
            ("from ttpt.core.steps import plain_step\n" + _answer(STEP, "return plain_step(optimizer, lambda: marginal_entropy((logit_scale * image_feats @ learner().T)[selected]))"),
             "calls ttpt's own `plain_step`", "library call"),
        ],
        "reset_episode": [
            (_answer(RESET, "optimizer.load_state_dict(initial['optimizer'])"), "the context was not reset", "missing step"),
            (_answer(RESET, "learner.load_state_dict(initial['learner'])"), "you reset the context but not the optimizer", "missing step"),
            (_answer(RESET, "with torch.no_grad(): learner.ctx.zero_()\noptimizer.load_state_dict(initial['optimizer'])"), "you set the context to zeros", "wrong value"),
            (_answer(RESET, "learner.ctx.data = learner.ctx_init\noptimizer.load_state_dict(initial['optimizer'])"), "your reset depends on `ctx_init`", "aliasing"),
            (_answer(RESET, "learner.ctx.data = initial['learner']['ctx']\noptimizer.load_state_dict(initial['optimizer'])"), "share memory with the saved state", "aliasing"),
            (_answer(RESET, "learner.ctx = torch.nn.Parameter(initial['learner']['ctx'].clone())\noptimizer.load_state_dict(initial['optimizer'])"), "you replaced the context Parameter", "aliasing"),
            (_answer(RESET, "learner.load_state_dict(initial['learner'])\noptimizer = torch.optim.AdamW(learner.parameters(), lr=5e-3)"), "you reset the context but not the optimizer", "missing step"),
            (_answer(RESET, "learner.load_state_dict(initial['learner'])\noptimizer.zero_grad()"), "you reset the context but not the optimizer", "missing step"),
            ("import labcheck\n" + _answer(RESET, "labcheck.REFERENCES['reset_episode'](learner, optimizer, initial)"), "calls labcheck's reference answer", "library call"),
        ],
        "zero_vote": [
            (_answer(VOTE, "kept = logits[select_confident_views(entropy(logits), keep)]\nreturn kept.softmax(dim=-1).mean(dim=0)"), "Zero counts their argmax votes", "wrong aggregation"),
            (_answer(VOTE, "votes = torch.bincount(logits.argmax(dim=-1), minlength=logits.shape[1]).float()\nreturn votes / votes.sum()"), "every view voted", "wrong input"),
            (_answer(VOTE, "kept = logits[select_confident_views(entropy(logits), keep)]\nreturn torch.bincount(kept.argmax(dim=-1), minlength=logits.shape[1]).float()"), "divide by the number of votes", "scaling"),
            (_answer(VOTE, "kept = logits[select_confident_views(entropy(logits), keep)]\nvotes = torch.bincount(kept.argmax(dim=-1)).float()\nreturn votes / votes.sum()"), "minlength", "classes with no votes"),
            ("import math\n" + _answer(VOTE, "kept = logits[entropy(logits).argsort()[:math.ceil(len(logits) * keep)]]\nvotes = torch.bincount(kept.argmax(dim=-1), minlength=logits.shape[1]).float()\nreturn votes / votes.sum()"),
             "⌈ρN⌉ views voted", "off-by-one"),
            (_answer(VOTE, "kept = logits[entropy(logits).argsort()[:round(len(logits) * keep)]]\nvotes = torch.bincount(kept.argmax(dim=-1), minlength=logits.shape[1]).float()\nreturn votes / votes.sum()"),
             "round(ρN) views voted", "off-by-one"),
            (_answer(VOTE, "kept = logits[entropy(logits).argsort(descending=True)[:int(len(logits) * keep)]]\nvotes = torch.bincount(kept.argmax(dim=-1), minlength=logits.shape[1]).float()\nreturn votes / votes.sum()"),
             "the highest-entropy views voted", "ordering"),
            (_answer(VOTE, "kept = logits[select_confident_views(entropy(logits), keep)]\nreturn torch.bincount(kept.argmax(dim=-1), minlength=logits.shape[1]).float() / len(logits)"),
             "you divided by all N views", "scaling"),
            (_answer(VOTE, "kept = logits[select_confident_views(entropy(logits), keep)]\nvotes = torch.bincount(kept.argmax(dim=-1), minlength=logits.shape[1])\nreturn (votes == votes.max()).float()"),
             "you returned 1 for the winning class(es)", "ties"),
            ("from ttpt.core.selection import vote_shares\n" + _answer(VOTE, "return vote_shares(logits[select_confident_views(entropy(logits), keep)])"), "calls ttpt's own `vote_shares`", "library call"),
        ],
    },
    "04_calibration": {
        "calibration_error": [
            (_answer(ECE, _BINS + "gaps = [(correct[bins == b].mean() - confidence[bins == b].mean()).abs() for b in range(n_bins) if (bins == b).any()]\nreturn float(sum(gaps) / len(gaps))"),
             "weight each bin by its share of the samples", "scaling"),
            (_answer(ECE, _BINS + "ece = 0.0\nfor b in range(n_bins):\n    inside = bins == b\n"
                     "    if inside.any(): ece += inside.double().mean() * (correct[inside].mean() - confidence[inside].mean()).abs()\nreturn float(ece) / n_bins"),
             "the weights |B_b|/n already sum to 1", "scaling"),
            (_answer(ECE, _BINS + "ece = 0.0\nfor b in range(n_bins):\n    inside = bins == b\n"
                     "    if inside.any(): ece += inside.double().mean() * (correct[inside].mean() - confidence[inside].mean())\nreturn abs(float(ece))"),
             "the signed gaps cancel", "sign"),
            (_answer(ECE, "bins = (confidence * n_bins).floor().long().clamp(0, n_bins - 1)\nece = 0.0\nfor b in range(n_bins):\n    inside = bins == b\n"
                     "    if inside.any(): ece += inside.double().mean() * (correct[inside].mean() - confidence[inside].mean()).abs()\nreturn float(ece)"),
             "a confidence on a bin's upper edge went to the next bin", "off-by-one"),
            (_answer(ECE, "bins = torch.ceil(confidence * n_bins).long() - 1\nece = 0.0\nfor b in range(n_bins):\n    inside = bins == b\n"
                     "    if inside.any(): ece += inside.double().mean() * (correct[inside].mean() - confidence[inside].mean()).abs()\nreturn float(ece)"),
             "a confidence of exactly 0 fell outside every bin", "off-by-one"),
            (_answer(ECE, _BINS + "ece = 0.0\nfor b in range(n_bins):\n    inside = bins == b\n"
                     "    if inside.any(): ece += inside.double().mean() * (correct[inside].mean() - confidence[inside].mean()).abs()\nreturn 100 * float(ece)"),
             "you returned a percentage", "scaling"),
            (_answer(ECE, _BINS + "return max(float((correct[bins == b].mean() - confidence[bins == b].mean()).abs()) for b in range(n_bins) if (bins == b).any())"),
             "the MCE", "wrong aggregation"),
            ("from ttpt.harness.reports import expected_calibration_error\n" + _answer(ECE, "return expected_calibration_error(confidence.numpy(), correct.numpy(), n_bins)"),
             "calls ttpt's own `expected_calibration_error`", "library call"),
            (_answer(ECE, "table = reliability_table(confidence.numpy(), correct.numpy(), n_bins)\nfilled = table[table['count'] > 0]\n"
                     "return float((filled['count'] / len(confidence) * (filled['accuracy'] - filled['confidence']).abs()).sum())"),
             "calls ttpt's own `reliability_table`", "library call"),
        ],
        "dispersion": [
            (_answer(DISP, "return text_feats.norm(dim=-1).mean()"), "measure it to the centroid", "missing step"),
            (_answer(DISP, "return (text_feats - text_feats.mean(dim=0)).pow(2).sum(dim=-1).mean()"), "you averaged squared distances", "scaling"),
            (_answer(DISP, "return (text_feats - text_feats.mean(dim=0)).norm(dim=-1).sum()"), "average them over the K classes", "scaling"),
            (_answer(DISP, "return (text_feats - text_feats.mean(dim=1, keepdim=True)).norm(dim=-1).mean()"), "the centroid over the feature dimension", "wrong axis"),
            (_answer(DISP, "return (text_feats - text_feats.mean(dim=0)).norm(dim=-1)"), "you returned one distance per class", "reduction over the wrong axis"),
            (_answer(DISP, "return (text_feats - text_feats.mean(dim=0)).norm(dim=0).mean()"), "you took each norm over the classes", "wrong axis"),
            (_answer(DISP, "return torch.cdist(text_feats, text_feats).sum() / (len(text_feats) * (len(text_feats) - 1))"), "PAIRS of classes", "wrong quantity"),
            ("from ttpt.methods.ctpt import text_dispersion\n" + _answer(DISP, "return text_dispersion(text_feats)"), "calls ttpt's own `text_dispersion`", "library call"),
        ],
        "ctpt_objective": [
            (_answer(CTPT, "return marginal_entropy(logits) + weight * dispersion(text_feats)"), "you penalised the dispersion", "sign"),
            (_answer(CTPT, "return marginal_entropy(logits) - dispersion(text_feats)"), "you forgot the weight", "scaling"),
            (_answer(CTPT, "p = logits.softmax(-1)\nreturn -(p * p.log()).sum(-1).mean() - weight * dispersion(text_feats)"), "C-TPT keeps TPT's marginal entropy", "ordering"),
            (_answer(CTPT, "return weight * marginal_entropy(logits) - dispersion(text_feats)"), "you weighted the entropy instead", "scaling"),
            (_answer(CTPT, "return weight * (marginal_entropy(logits) - dispersion(text_feats))"), "the weight multiplies both terms", "scaling"),
            (_answer(CTPT, "return marginal_entropy(logits) - dispersion(text_feats) / weight"), "you divided the dispersion by λ", "scaling"),
            ("from ttpt.methods.ctpt import CTPT\n" + _answer(CTPT, "return CTPT(dispersion_weight=weight).objective(logits, text_feats)"), "calls ttpt's own `CTPT.objective`", "library call"),
        ],
    },
    "05_self_tpt": {
        "supcon": [
            (_answer(SUPCON, _SUPCON_HEAD + "log_prob = (z @ z.T / temperature).log_softmax(dim=1)\nreturn -(log_prob.masked_fill(~positives, 0).sum(1) / positives.sum(1)).mean()"),
             "mask the diagonal out", "missing step"),
            (_answer(SUPCON, _SUPCON_HEAD + "log_prob = (z @ z.T).masked_fill(self_mask, float('-inf')).log_softmax(dim=1)\nreturn -(log_prob.masked_fill(~positives, 0).sum(1) / positives.sum(1)).mean()"),
             "you forgot the temperature", "scaling"),
            (_answer(SUPCON, _SUPCON_HEAD + "log_prob = (z @ z.T / temperature).masked_fill(self_mask, float('-inf')).log_softmax(dim=1)\nreturn -log_prob.masked_fill(~positives, 0).sum(1).mean()"),
             "average them over |P(i)|", "scaling"),
            (_answer(SUPCON, _SUPCON_HEAD + "log_prob = (z @ z.T * temperature).masked_fill(self_mask, float('-inf')).log_softmax(dim=1)\nreturn -(log_prob.masked_fill(~positives, 0).sum(1) / positives.sum(1)).mean()"),
             "you multiplied by the temperature", "scaling"),
            (_answer(SUPCON, _SUPCON_HEAD.replace("repeat_interleave(V)", "repeat(V)") + "log_prob = (z @ z.T / temperature).masked_fill(self_mask, float('-inf')).log_softmax(dim=1)\n"
                     "return -(log_prob.masked_fill(~positives, 0).sum(1) / positives.sum(1)).mean()"),
             "repeat_interleave", "ordering"),
            (_answer(SUPCON, _SUPCON_HEAD + "prob = (z @ z.T / temperature).masked_fill(self_mask, float('-inf')).softmax(dim=1)\nreturn -(prob.masked_fill(~positives, 0).sum(1) / positives.sum(1)).log().mean()"),
             "inside the log", "ordering"),
            (_answer(SUPCON, _SUPCON_HEAD + "log_prob = (z @ z.T / temperature).masked_fill(self_mask, float('-inf')).log_softmax(dim=1)\nreturn (log_prob.masked_fill(~positives, 0).sum(1) / positives.sum(1)).mean()"),
             "your loss is negative", "sign"),
            ("from ttpt.methods.self_tpt.cpt import supervised_contrastive_loss\n" + _answer(SUPCON, "return supervised_contrastive_loss(features, temperature)"), "calls ttpt's own `supervised_contrastive_loss`", "library call"),
        ],
        "gradient_matching": [
            (_answer(GM, "return F.cosine_similarity(g_ce.detach().flatten(), g_cpt.flatten(), dim=0)"), "the loss to MINIMISE is 1 − cos", "sign"),
            (_answer(GM, "return 1 - F.cosine_similarity(g_ce.flatten(), g_cpt.flatten(), dim=0)"), "detach it", "gradient flow"),
            (_answer(GM, "return 1 - F.cosine_similarity(g_ce.detach(), g_cpt, dim=-1).mean()"), "flatten each into one vector", "reduction over the wrong axis"),
            (_answer(GM, "return 1 - F.cosine_similarity(g_ce.detach(), g_cpt, dim=0).mean()"), "column by column", "reduction over the wrong axis"),
            (_answer(GM, "return (g_ce.detach() - g_cpt).norm()"), "you used the distance", "wrong quantity"),
            (_answer(GM, "return 1 - (g_ce.detach() * g_cpt).sum()"), "divide by both gradients' norms", "scaling"),
            (_answer(GM, "return float(1 - F.cosine_similarity(g_ce.flatten(), g_cpt.flatten(), dim=0))"), "no gradient reaches g_CPT", "gradient flow"),
            ("from ttpt.methods.self_tpt.method import GradientMatching\n" + _answer(GM, "return GradientMatching(decay=0.0)(g_ce, g_cpt)"), "calls ttpt's own `GradientMatching.__call__`", "library call"),
        ],
        "gradient_cosine": [
            (_answer(GCOS, "g_ce, = torch.autograd.grad(ce, context)\ng_cpt, = torch.autograd.grad(cpt, context)\nreturn F.cosine_similarity(g_ce.flatten(), g_cpt.flatten(), dim=0)"),
             "pass retain_graph=True", "missing step"),
            (_answer(GCOS, "g_ce, = torch.autograd.grad(ce, context, retain_graph=True)\ng_cpt, = torch.autograd.grad(cpt, context)\nreturn F.cosine_similarity(g_ce, g_cpt, dim=-1).mean()"),
             "flatten each into one vector", "reduction over the wrong axis"),
            (_answer(GCOS, "g_ce, = torch.autograd.grad(ce, context, retain_graph=True)\ng_cpt, = torch.autograd.grad(cpt, context)\nreturn (g_ce * g_cpt).sum()"),
             "divide by both gradients' norms", "scaling"),
            (_answer(GCOS, "g_ce, = torch.autograd.grad(ce, context, retain_graph=True)\ng_cpt, = torch.autograd.grad(cpt, context)\nreturn 1 - F.cosine_similarity(g_ce.flatten(), g_cpt.flatten(), dim=0)"),
             "you returned 1 − cos", "sign"),
            (_answer(GCOS, "ce.backward(retain_graph=True)\ng_ce = context.grad\ncpt.backward()\ng_cpt = context.grad\nreturn F.cosine_similarity(g_ce.flatten(), g_cpt.flatten(), dim=0)"),
             "context.grad after two backward() calls is ONE tensor", "aliasing"),
            (_answer(GCOS, "g_ce, = torch.autograd.grad(ce, context, retain_graph=True)\ng_cpt, = torch.autograd.grad(cpt, context)\nreturn F.cosine_similarity(g_ce.flatten(), g_cpt.flatten(), dim=0).acos()"),
             "you returned the angle", "wrong quantity"),
            ("from ttpt.methods.self_tpt.method import context_gradients\n" + _answer(GCOS, "g_ce, g_cpt = context_gradients(ce, cpt, context, create_graph=False)\nreturn F.cosine_similarity(g_ce.flatten(), g_cpt.flatten(), dim=0)"),
             "calls ttpt's own `context_gradients`", "library call"),
        ],
    },
    "06_tlla": {
        "sam_gradient": [
            (_answer(SAM, "q = p.clone().requires_grad_(True)\ng, = torch.autograd.grad(loss_fn(q), q)\nq = (p + rho * g).requires_grad_(True)\nreturn torch.autograd.grad(loss_fn(q), q)[0]"),
             "ε is not normalised", "scaling"),
            (_answer(SAM, "q = p.clone().requires_grad_(True)\ng, = torch.autograd.grad(loss_fn(q), q)\nq = (p - rho * g / g.norm()).requires_grad_(True)\nreturn torch.autograd.grad(loss_fn(q), q)[0]"),
             "you perturbed downhill", "sign"),
            (_answer(SAM, "q = p.clone().requires_grad_(True)\nreturn torch.autograd.grad(loss_fn(q), q)[0]"), "you returned the plain gradient", "missing step"),
            (_answer(SAM, "q = p.clone().requires_grad_(True)\ng, = torch.autograd.grad(loss_fn(q), q)\nreturn p + rho * g / g.norm()"), "you returned the perturbed point", "wrong output"),
            (_answer(SAM, "q = p.clone().requires_grad_(True)\ng, = torch.autograd.grad(loss_fn(q), q)\nq = (p + rho * g / g.norm() ** 2).requires_grad_(True)\nreturn torch.autograd.grad(loss_fn(q), q)[0]"),
             "you divided by ‖g‖²", "scaling"),
            (_answer(SAM, "q = p.clone().requires_grad_(True)\ng, = torch.autograd.grad(loss_fn(q), q)\nq = (p + rho * g.sign()).requires_grad_(True)\nreturn torch.autograd.grad(loss_fn(q), q)[0]"),
             "you used the sign of the gradient", "wrong quantity"),
            ("from ttpt.core.steps import SharpnessAwareStep\n" + _answer(SAM, "q = torch.nn.Parameter(p.clone())\nSharpnessAwareStep(rho)(torch.optim.SGD([q], lr=1.0), lambda: loss_fn(q))\nreturn p - q.detach()"),
             "calls ttpt's own `SharpnessAwareStep.__call__`", "library call"),
        ],
        "filter_normalise": [
            (_answer(FILT, "return direction / direction.norm() * context.norm()"), "EACH context vector (row) to its own norm", "reduction over the wrong axis"),
            (_answer(FILT, "return direction / direction.norm(dim=-1, keepdim=True)"), "your rows have unit norm", "missing step"),
            (_answer(FILT, "return direction / direction.norm(dim=0, keepdim=True) * context.norm(dim=0, keepdim=True)"), "you normalised the columns", "wrong axis"),
            (_answer(FILT, "return direction / direction.norm(dim=-1) * context.norm(dim=-1)"), "keepdim=True", "broadcasting"),
            (_answer(FILT, "return direction / direction.norm(dim=-1, keepdim=True) * context"), "you multiplied by the context itself", "wrong quantity"),
            (_answer(FILT, "return direction / direction.norm(dim=-1, keepdim=True) * context.norm(dim=-1, keepdim=True) ** 2"), "squared norm", "scaling"),
            ("from ttpt.methods.tlla.landscape import filter_normalised_direction\n" + _answer(FILT, "return filter_normalised_direction(context, seed=0)"),
             "calls ttpt's own `filter_normalised_direction`", "library call"),
        ],
        "flat_view_score": [
            (_answer(STSS, _SCORE_HEAD + "return flat + weight * (moved - flat).mean(dim=0)"), "STSS takes the WORST direction", "wrong aggregation"),
            (_answer(STSS, _SCORE_HEAD + "return weight * (moved - flat).amax(dim=0)"), "the score is the entropy PLUS", "missing step"),
            (_answer(STSS, _SCORE_HEAD + "return flat + weight * moved.amax(dim=0)"), "subtract the unperturbed entropy", "missing step"),
            (_answer(STSS, _SCORE_HEAD + "return flat + weight * (moved - flat).amin(dim=0)"), "you took the smallest rise", "ordering"),
            (_answer(STSS, _SCORE_HEAD + "return weight * flat + (moved - flat).amax(dim=0)"), "you weighted the entropy instead", "scaling"),
            (_answer(STSS, _SCORE_HEAD + "return flat + weight * (moved - flat).amax(dim=1)"), "max over the views", "wrong axis"),
            (_answer(STSS, _SCORE_HEAD + "return flat + weight * (moved - flat).sum(dim=0)"), "you summed the entropy rise", "wrong aggregation"),
            ("from types import SimpleNamespace\n" + _answer(STSS, "s = STSS(n_views=len(feats), keep=0.5)\ns.clip, s.text_feats, s.perturbed_feats, s.sharpness_weight = SimpleNamespace(logit_scale=logit_scale), text_feats, perturbed_feats, weight\n"
                                                            "return s.score(feats, logit_scale * feats @ text_feats.T)"), "calls ttpt's own `STSS.score`", "library call"),
        ],
    },
    "07_metatpt": {
        "affine_matrix": [
            (_answer(AFF, _AFF_HEAD + "s, cos, sin = log_scale, angle.cos(), angle.sin()\n" + _STACK.format(a="s * cos", b="s * (shear - sin)", c="tx", d="s * sin", e="s * cos", f="ty")),
             "use s = exp", "scaling"),
            (_answer(AFF, _AFF_HEAD + "s, cos, sin = log_scale.exp(), angle.cos(), angle.sin()\n" + _STACK.format(a="s * cos", b="-s * sin", c="tx", d="s * sin", e="s * cos", f="ty")),
             "you left out the shear", "missing step"),
            (_answer(AFF, _AFF_HEAD + "s, cos, sin = log_scale.exp(), angle.cos(), angle.sin()\n" + _STACK.format(a="s * cos", b="s * (shear + sin)", c="tx", d="-s * sin", e="s * cos", f="ty")),
             "the rotation turns the wrong way", "sign"),
            (_answer(AFF, _AFF_HEAD + "s, cos, sin = log_scale.exp(), angle.cos(), angle.sin()\n" + _STACK.format(a="s * cos", b="s * (shear - sin)", c="ty", d="s * sin", e="s * cos", f="tx")),
             "the translations are swapped", "ordering"),
            (_answer(AFF, _AFF_HEAD + "s, cos, sin = log_scale.exp(), torch.deg2rad(angle).cos(), torch.deg2rad(angle).sin()\n" + _STACK.format(a="s * cos", b="s * (shear - sin)", c="tx", d="s * sin", e="s * cos", f="ty")),
             "you read φ as degrees", "units"),
            (_answer(AFF, _AFF_HEAD + "s, cos, sin = log_scale.exp(), angle.cos(), angle.sin()\n" + _STACK.format(a="s * sin", b="s * cos", c="ty", d="s * cos", e="s * (shear - sin)", f="tx")),
             "your rows are swapped", "ordering"),
            (_answer(AFF, _AFF_HEAD + "s, cos, sin = log_scale.exp(), angle.cos(), angle.sin()\n" + _STACK.format(a="s * cos", b="s * (shear - sin)", c="tx", d="s * sin", e="s * cos", f="ty") + ".transpose(1, 2)"),
             "your matrices are transposed", "ordering"),
            ("from ttpt.methods.metatpt.augment import affine_matrices\n" + _answer(AFF, "return affine_matrices(theta)"), "calls ttpt's own `affine_matrices`", "library call"),
        ],
        "view_diversity": [
            (_answer(DIV, "return (feats @ feats.T).mean()"), "you counted each view's similarity to itself", "off-by-one"),
            (_answer(DIV, "s = feats @ feats.T\nreturn (s.sum() - s.diagonal().sum()) / len(feats) ** 2"), "divide by V(V − 1)", "scaling"),
            (_answer(DIV, "s = feats @ feats.T\nV = len(feats)\nreturn s.triu(diagonal=1).sum() / (V * (V - 1))"), "you counted each pair once", "scaling"),
            (_answer(DIV, "s = feats @ feats.T\nV = len(feats)\nreturn 1 - (s.sum() - s.diagonal().sum()) / (V * (V - 1))"), "you averaged the distances 1 − cos", "wrong quantity"),
            (_answer(DIV, "s = feats @ feats.T\nV = len(feats)\nreturn (s.sum(dim=1) - 1) / (V - 1)"), "you returned each view's mean similarity", "reduction over the wrong axis"),
            (_answer(DIV, "V = len(feats)\nreturn torch.cdist(feats, feats).sum() / (V * (V - 1))"), "Euclidean distances", "wrong quantity"),
            ("from ttpt.methods.metatpt.method import diversity\n" + _answer(DIV, "return diversity(feats)"), "calls ttpt's own `diversity`", "library call"),
        ],
        "meta_objective": [
            (_answer(META, "kept = logits[select_confident_views(entropy(logits), keep)]\nreturn F.cross_entropy(kept, torch.full((len(kept),), label))"),
             "the average of per-view cross-entropies is not the cross-entropy of the averaged prediction", "ordering"),
            (_answer(META, "return -average_log_probs(logits)[label]"), "you used every view", "wrong input"),
            (_answer(META, "kept = logits[select_confident_views(entropy(logits), keep)]\nreturn average_log_probs(kept)[label]"), "the loss is its NEGATIVE", "sign"),
            (_answer(META, "kept = logits[select_confident_views(entropy(logits), keep)]\nreturn F.cross_entropy(kept.mean(0, keepdim=True), torch.tensor([label]))"),
             "the mean of logits is not the mean of probabilities", "ordering"),
            (_answer(META, "kept = logits[select_confident_views(entropy(logits), keep)]\nreturn -average_log_probs(kept).exp()[label]"), "the loss is −LOG p̃_y", "missing step"),
            (_answer(META, "kept = logits[entropy(logits).argsort(descending=True)[:int(len(logits) * keep)]]\nreturn -average_log_probs(kept)[label]"), "you kept the highest-entropy views", "ordering"),
            (_answer(META, "return -average_log_probs(logits[:int(len(logits) * keep)])[label]"), "you used the first ⌊ρN⌋ views", "wrong input"),
            ("import labcheck\n" + _answer(META, "return labcheck.REFERENCES['meta_objective'](logits, label, keep)"), "calls labcheck's reference answer", "library call"),
        ],
    },
    "08_tda": {
        "update_positive_cache": [
            (_answer(CACHE, _QUEUE + "if len(queue) < capacity: queue.append((feature, entropy))\nelif entropy < queue[-1][1]: queue[0] = (feature, entropy)\n"
                            "queue.sort(key=lambda item: item[1])\nreturn cache"), "you replaced the most confident entry", "wrong entry"),
            (_answer(CACHE, _QUEUE + "if len(queue) < capacity: queue.append((feature, entropy))\nqueue.sort(key=lambda item: item[1])\nreturn cache"),
             "a full class never takes a new sample", "missing step"),
            (_answer(CACHE, _QUEUE + "if len(queue) < capacity: queue.append((feature, entropy))\nelse: queue[-1] = (feature, entropy)\n"
                            "queue.sort(key=lambda item: item[1])\nreturn cache"), "even when the new sample is less confident", "missing step"),
            (_answer(CACHE, _QUEUE + "if len(queue) < capacity: queue.append((feature, entropy))\nelif entropy > queue[0][1]: queue[0] = (feature, entropy)\n"
                            "queue.sort(key=lambda item: item[1])\nreturn cache"), "you kept the least confident samples", "sign"),
            (_answer(CACHE, _QUEUE + "if len(queue) < capacity: queue.append((feature, entropy))\nelif entropy < queue[0][1]: queue[-1] = (feature, entropy)\n"
                            "queue.sort(key=lambda item: item[1])\nreturn cache"), "compared the new entropy with the class's lowest", "wrong entry"),
            (_answer(CACHE, _QUEUE + "if len(queue) < capacity: queue.append((feature, entropy))\nelif entropy < queue[-1][1]: queue[-1] = (feature, entropy)\nreturn cache"),
             "your class's list is not sorted", "ordering"),
            (_answer(CACHE, _QUEUE + "if len(queue) < capacity: queue.append((feature, entropy))\nelif entropy < queue[-1][1]: queue[-1] = (feature, entropy)\n"
                            "queue.sort(key=lambda item: -item[1])\nreturn cache"), "sorted least confident first", "ordering"),
            (_answer(CACHE, _QUEUE + "if len(queue) == capacity: queue.pop(0)\nqueue.append((feature, entropy))\nqueue.sort(key=lambda item: item[1])\nreturn cache"),
             "first in, first out", "wrong entry"),
            (_answer(CACHE, "cache.setdefault(label, []).append((feature, entropy))\ncache[label].sort(key=lambda item: item[1])\nreturn cache"),
             "holds more than `capacity` entries", "capacity"),
            (_answer(CACHE, _QUEUE + "if len(queue) <= capacity: queue.append((feature, entropy))\nelif entropy < queue[-1][1]: queue[-1] = (feature, entropy)\n"
                            "queue.sort(key=lambda item: item[1])\nreturn cache"), "the class holds capacity + 1 entries", "off-by-one"),
            ("from ttpt.methods.tda import CacheEntry, ClassCache\n" + _answer(CACHE, "classes = ClassCache(capacity)\nclasses.queues = {c: [CacheEntry(f, h) for f, h in q] for c, q in cache.items()}\n"
                            "classes.offer(label, CacheEntry(feature, entropy))\nreturn {c: [(e.feature, e.entropy) for e in q] for c, q in classes.queues.items()}"),
             "calls ttpt's own `ClassCache.offer`", "library call"),
        ],
        "positive_cache_logits": [
            (_answer(CLOG, "return alpha * torch.exp(-beta * (1 - query @ keys.T)) @ F.one_hot(labels, n_classes).float()"), "you did not normalise the features", "missing step"),
            (_answer(CLOG, "cosine = query @ F.normalize(keys, dim=-1).T\nreturn alpha * torch.exp(-beta * (1 - cosine)) @ F.one_hot(labels, n_classes).float()"),
             "you normalised the keys but not the query", "missing step"),
            (_answer(CLOG, _COSINE + "return alpha * torch.exp(beta * (1 - cosine)) @ F.one_hot(labels, n_classes).float()"), "wrong sign in the affinity", "sign"),
            (_answer(CLOG, _COSINE + "return alpha * torch.exp(-beta * (1 + cosine)) @ F.one_hot(labels, n_classes).float()"), "not exp(−β(1 + x))", "sign"),
            (_answer(CLOG, _COSINE + "return torch.exp(-beta * (1 - cosine)) @ F.one_hot(labels, n_classes).float()"), "you forgot α", "scaling"),
            (_answer(CLOG, _COSINE + "return torch.exp(-alpha * beta * (1 - cosine)) @ F.one_hot(labels, n_classes).float()"), "α belongs outside the exponential", "scaling"),
            (_answer(CLOG, _COSINE + "return beta * torch.exp(-alpha * (1 - cosine)) @ F.one_hot(labels, n_classes).float()"), "α and β are swapped", "ordering"),
            (_answer(CLOG, _COSINE + "return alpha * torch.exp(-(1 - cosine)) @ F.one_hot(labels, n_classes).float()"), "you forgot β", "scaling"),
            (_answer(CLOG, _COSINE + "return alpha * (-beta * (1 - cosine)) @ F.one_hot(labels, n_classes).float()"), "you forgot the exponential", "missing step"),
            (_answer(CLOG, _COSINE + "return alpha * torch.exp(-beta * (1 - cosine))"), "multiply the affinities", "missing step"),
            (_answer(CLOG, _COSINE + "return (alpha * torch.exp(-beta * (1 - cosine)) @ F.one_hot(labels, n_classes).float()).softmax(-1)"), "you returned probabilities", "wrong output"),
            ("from ttpt.methods.tda import cache_logits\n" + _answer(CLOG, "return cache_logits(F.normalize(query, dim=-1), F.normalize(keys, dim=-1), F.one_hot(labels, n_classes).float(), alpha, beta)"),
             "calls ttpt's own `cache_logits`", "library call"),
            ("from ttpt.methods.tda import affinity\n" + _answer(CLOG, "return alpha * affinity(F.normalize(query, dim=-1), F.normalize(keys, dim=-1), beta) @ F.one_hot(labels, n_classes).float()"),
             "calls ttpt's own `affinity`", "library call"),
        ],
    },
}

# correct answers written differently: another library function, another dtype, a loop, numpy
CORRECT_ANSWERS = {
    "01_clip_zero_shot": {
        "clip_logits_from_features": [
            _answer(LOGITS, "return logit_scale * F.cosine_similarity(image_feats[:, None], text_feats[None], dim=-1)"),
            _answer(LOGITS, "i = image_feats.double() / image_feats.double().norm(dim=1, keepdim=True)\nt = text_feats.double() / text_feats.double().norm(dim=1, keepdim=True)\nreturn float(logit_scale) * i @ t.T"),
            "import numpy as np\n" + _answer(LOGITS, "i, t = image_feats.numpy(), text_feats.numpy()\ni = i / np.linalg.norm(i, axis=1, keepdims=True)\nt = t / np.linalg.norm(t, axis=1, keepdims=True)\nreturn float(logit_scale) * i @ t.T"),
            _answer(LOGITS, "return torch.stack([torch.stack([logit_scale * (a @ b) / (a.norm() * b.norm()) for b in text_feats]) for a in image_feats])"),
        ],
        "ensemble_text_features": [
            "@torch.no_grad()\n" + _answer(ENSEMBLE, "rows = []\nfor c in classnames:\n    f = encode_token_ids(clip.model, clip.tokenizer([t.format(c) for t in templates]))\n    m = f.mean(0)\n    rows.append(m / m.norm())\nreturn torch.stack(rows)"),
            "@torch.no_grad()\n" + _answer(ENSEMBLE, "prompts = [t.format(c) for c in classnames for t in templates]\nf = encode_token_ids(clip.model, clip.tokenizer(prompts), normalize=False)\n"
                                                      "f = F.normalize(f, dim=-1).double()\nreturn F.normalize(f.reshape(len(classnames), len(templates), -1).sum(1), dim=-1)"),
        ],
    },
    "02_views_selection": {
        "entropy_of_logits": [
            _answer(ENT, "return torch.special.entr(logits.softmax(dim=-1)).sum(dim=-1)"),
            _answer(ENT, "return torch.distributions.Categorical(logits=logits).entropy()"),
            _answer(ENT, "logp = logits.double().log_softmax(dim=-1)\nreturn -(logp.exp() * logp).sum(dim=-1)"),
            _answer(ENT, "out = []\nfor row in logits:\n    logp = row - row.logsumexp(0)\n    out.append(-(logp.exp() * logp).sum())\nreturn torch.stack(out)"),
            "import numpy as np\n" + _answer(ENT, "x = logits.numpy()\nlogp = x - x.max(1, keepdims=True)\nlogp = logp - np.log(np.exp(logp).sum(1, keepdims=True))\nreturn -(np.exp(logp) * logp).sum(1)"),
        ],
        "keep_confident": [
            _answer(KEEP, "return torch.sort(scores).indices[:int(len(scores) * keep)]"),
            _answer(KEEP, "return sorted(range(len(scores)), key=lambda i: float(scores[i]))[:int(len(scores) * keep)]"),
            "import math\nimport numpy as np\n" + _answer(KEEP, "return np.argsort(scores.numpy(), kind='stable')[:math.floor(keep * len(scores))]"),
            _answer(KEEP, "return torch.topk(scores, int(len(scores) * keep), largest=False).indices"),
        ],
        "marginal_entropy_of": [
            _answer(MARG, "return entropy_of_logits(logits.softmax(dim=-1).mean(dim=0).clamp_min(1e-30).log()[None])[0]"),
            _answer(MARG, "p = logits.double().softmax(dim=-1).mean(dim=0)\nreturn torch.special.entr(p).sum()"),
            _answer(MARG, "logp = logits.log_softmax(-1).logsumexp(0) - torch.log(torch.tensor(float(len(logits))))\nreturn -(logp.exp() * logp).sum()"),
            "import numpy as np\n" + _answer(MARG, "x = logits.double().softmax(-1).numpy().mean(0)\nreturn float(-(x * np.log(np.clip(x, 1e-300, None))).sum())"),
        ],
    },
    "03_tpt_step": {
        "tpt_step": [
            _answer(STEP, "optimizer.zero_grad()\nlogits = logit_scale * image_feats @ learner().T\nloss = marginal_entropy(logits[selected])\nloss.backward()\noptimizer.step()\nreturn loss.item()"),
            _answer(STEP, "for p in learner.parameters(): p.grad = None\nlogits = (image_feats @ learner().t()) * logit_scale\n"
                          "p_avg = logits[selected].softmax(-1).mean(0)\nloss = -(p_avg * p_avg.log()).sum()\nloss.backward()\noptimizer.step()\nreturn loss"),
        ],
        "reset_episode": [
            _answer(RESET, "with torch.no_grad(): learner.ctx.copy_(initial['learner']['ctx'])\noptimizer.load_state_dict(initial['optimizer'])"),
            _answer(RESET, "learner.load_state_dict(copy.deepcopy(initial['learner']))\noptimizer.state.clear()"),
        ],
        "zero_vote": [
            _answer(VOTE, "kept = logits[select_confident_views(entropy(logits), keep)]\nreturn F.one_hot(kept.argmax(-1), logits.shape[1]).double().mean(0)".replace("F.one_hot", "torch.nn.functional.one_hot")),
            _answer(VOTE, "kept = select_confident_views(entropy(logits), keep)\nshares = torch.zeros(logits.shape[1])\nfor i in kept: shares[logits[i].argmax()] += 1 / len(kept)\nreturn shares"),
            "import numpy as np\n" + _answer(VOTE, "kept = logits[select_confident_views(entropy(logits), keep)].numpy()\nreturn np.bincount(kept.argmax(1), minlength=logits.shape[1]) / len(kept)"),
        ],
    },
    "04_calibration": {
        "calibration_error": [
            _answer(ECE, _BINS + "count = torch.bincount(bins, minlength=n_bins).double()\nacc = torch.bincount(bins, correct.double(), minlength=n_bins)\n"
                         "conf = torch.bincount(bins, confidence.double(), minlength=n_bins)\nreturn float(((acc - conf).abs()).sum() / len(confidence))"),
            "import numpy as np\n" + _answer(ECE, "c, y = confidence.numpy(), correct.numpy()\nb = np.clip(np.ceil(c * n_bins).astype(int) - 1, 0, n_bins - 1)\n"
                                            "return sum(np.mean(b == k) * abs(y[b == k].mean() - c[b == k].mean()) for k in range(n_bins) if (b == k).any())"),
            _answer(ECE, "confidence, correct = confidence.float(), correct.float()\n" + _BINS + "return sum((bins == b).float().mean() * (correct[bins == b].mean() - confidence[bins == b].mean()).abs() for b in bins.unique())"),
        ],
        "dispersion": [
            _answer(DISP, "return torch.linalg.vector_norm(text_feats - text_feats.mean(0), dim=1).mean()"),
            "import numpy as np\n" + _answer(DISP, "w = text_feats.double().numpy()\nreturn np.linalg.norm(w - w.mean(0), axis=1).mean()"),
            _answer(DISP, "c = sum(text_feats) / len(text_feats)\nreturn sum(((w - c) ** 2).sum().sqrt() for w in text_feats) / len(text_feats)"),
        ],
        "ctpt_objective": [
            _answer(CTPT, "p = logits.softmax(-1).mean(0)\nreturn torch.special.entr(p).sum() - weight * dispersion(text_feats)"),
            _answer(CTPT, "centroid = text_feats.mean(0)\nreturn marginal_entropy(logits.double()) - weight * (text_feats - centroid).norm(dim=1).mean()"),
        ],
    },
    "05_self_tpt": {
        "supcon": [
            _answer(SUPCON, _SUPCON_HEAD + "sim = (z @ z.T / temperature).double()\nsim = sim.masked_fill(self_mask, -1e9)\nlog_prob = sim - sim.logsumexp(1, keepdim=True)\n"
                            "return -((log_prob * positives).sum(1) / positives.sum(1)).mean()"),
            _answer(SUPCON, "K, V, D = features.shape\nz = features.reshape(K * V, D)\nlosses = []\nfor i in range(K * V):\n"
                            "    others = [a for a in range(K * V) if a != i]\n    denom = torch.logsumexp(z[others] @ z[i] / temperature, 0)\n"
                            "    pos = [a for a in others if a // V == i // V]\n    losses.append(-torch.stack([z[a] @ z[i] / temperature - denom for a in pos]).mean())\nreturn torch.stack(losses).mean()"),
        ],
        "gradient_matching": [
            _answer(GM, "a, b = g_ce.detach().reshape(-1), g_cpt.reshape(-1)\nreturn 1 - (a @ b) / (a.norm() * b.norm())"),
            _answer(GM, "a, b = g_ce.detach().double().flatten(), g_cpt.double().flatten()\nreturn 1 - torch.nn.functional.cosine_similarity(a, b, dim=0)"),
        ],
        "gradient_cosine": [
            _answer(GCOS, "g_ce, = torch.autograd.grad(ce, context, retain_graph=True)\ng_cpt, = torch.autograd.grad(cpt, context, retain_graph=True)\na, b = g_ce.flatten(), g_cpt.flatten()\nreturn float(a @ b / (a.norm() * b.norm()))"),
            _answer(GCOS, "ce.backward(retain_graph=True)\ng_ce = context.grad.clone()\ncontext.grad = None\ncpt.backward()\ng_cpt = context.grad.clone()\ncontext.grad = None\n"
                          "return F.cosine_similarity(g_ce.flatten(), g_cpt.flatten(), dim=0)"),
        ],
    },
    "06_tlla": {
        "sam_gradient": [
            _answer(SAM, "p = p.detach().double().requires_grad_(True)\ng, = torch.autograd.grad(loss_fn(p), p)\nq = (p.detach() + rho * g / torch.linalg.vector_norm(g)).requires_grad_(True)\nreturn torch.autograd.grad(loss_fn(q), q)[0]"),
            _answer(SAM, "q = p.clone().requires_grad_(True)\nloss_fn(q).backward()\ng = q.grad\nr = (p + rho * g / g.norm()).requires_grad_(True)\nloss_fn(r).backward()\nreturn r.grad"),
        ],
        "filter_normalise": [
            _answer(FILT, "return torch.stack([d * (c.norm() / d.norm()) for d, c in zip(direction, context)])"),
            "import numpy as np\n" + _answer(FILT, "d, c = direction.double().numpy(), context.double().numpy()\nreturn d / np.linalg.norm(d, axis=1, keepdims=True) * np.linalg.norm(c, axis=1, keepdims=True)"),
        ],
        "flat_view_score": [
            _answer(STSS, "flat = entropy(logit_scale * feats @ text_feats.T)\nrises = torch.stack([entropy(logit_scale * feats @ w.T) - flat for w in perturbed_feats])\nreturn flat + weight * rises.max(dim=0).values"),
            _answer(STSS, "p = (logit_scale * feats.double() @ text_feats.double().T).softmax(-1)\nflat = torch.special.entr(p).sum(-1)\n"
                          "moved = torch.special.entr((logit_scale * torch.einsum('nd,rkd->rnk', feats.double(), perturbed_feats.double())).softmax(-1)).sum(-1)\nreturn flat + weight * (moved - flat).amax(0)"),
        ],
    },
    "07_metatpt": {
        "affine_matrix": [
            _answer(AFF, "out = []\nfor log_s, phi, tx, ty, k in theta.tolist():\n    s = torch.tensor(log_s).exp()\n    c, n = torch.tensor(phi).cos(), torch.tensor(phi).sin()\n"
                         "    out.append(torch.tensor([[s * c, s * (k - n), tx], [s * n, s * c, ty]]))\nreturn torch.stack(out)"),
            "import numpy as np\n" + _answer(AFF, "t = theta.double().numpy()\ns, c, n = np.exp(t[:, 0]), np.cos(t[:, 1]), np.sin(t[:, 1])\n"
                                           "return np.stack([np.stack([s * c, s * (t[:, 4] - n), t[:, 2]], 1), np.stack([s * n, s * c, t[:, 3]], 1)], 1)"),
        ],
        "view_diversity": [
            _answer(DIV, "V = len(feats)\nmask = ~torch.eye(V, dtype=torch.bool)\nreturn (feats @ feats.T)[mask].mean()"),
            _answer(DIV, "V = len(feats)\nreturn sum(float(feats[i] @ feats[j]) for i in range(V) for j in range(V) if i != j) / (V * (V - 1))"),
        ],
        "meta_objective": [
            _answer(META, "kept = logits[select_confident_views(entropy(logits), keep)]\np = kept.softmax(-1).mean(0)\nreturn -p[label].log()"),
            _answer(META, "kept = logits[entropy(logits).argsort()[:int(len(logits) * keep)]].double()\nreturn F.nll_loss(average_log_probs(kept)[None], torch.tensor([label]))"),
        ],
    },
    "08_tda": {
        "update_positive_cache": [
            "import bisect\n" + _answer(CACHE, _QUEUE + "if len(queue) == capacity:\n    if entropy >= queue[-1][1]: return cache\n    queue.pop()\n"
                                     "at = bisect.bisect_right([h for _, h in queue], entropy)\nqueue.insert(at, (feature, entropy))\nreturn cache"),
            _answer(CACHE, "queue = list(cache.get(label, []))\nif len(queue) < capacity:\n    queue.append((feature.double(), torch.tensor(entropy)))\n"
                           "else:\n    worst = max(range(len(queue)), key=lambda i: float(queue[i][1]))\n"
                           "    if entropy < float(queue[worst][1]): queue[worst] = (feature.double(), torch.tensor(entropy))\n"
                           "new = dict(cache)\nnew[label] = sorted(queue, key=lambda item: float(item[1]))\nreturn new"),
        ],
        "positive_cache_logits": [
            _answer(CLOG, "cosine = F.cosine_similarity(query.unsqueeze(-2), keys, dim=-1)\nvotes = torch.zeros(*cosine.shape[:-1], n_classes)\n"
                          "return votes.index_add(-1, labels, alpha * (-beta * (1 - cosine)).exp())"),
            "import numpy as np\n" + _answer(CLOG, "q, k = query.double().numpy(), keys.double().numpy()\nq = q / np.linalg.norm(q, axis=-1, keepdims=True)\n"
                                             "k = k / np.linalg.norm(k, axis=-1, keepdims=True)\nreturn alpha * np.exp(-beta * (1 - q @ k.T)) @ np.eye(n_classes)[labels.numpy()]"),
        ],
    },
}
