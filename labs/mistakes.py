"""Typical wrong answers to every lab exercise, each with the feedback it must get (a part of `labcheck`'s message).

The tests run each one through `labcheck.check` (mutation tests), and `course.py measure` grades a submission made
of the first wrong answer of every exercise. A wrong answer is the whole answer cell, as a student would write it."""

WRONG_ANSWERS = {
    "01_clip_zero_shot": {
        "clip_logits_from_features": [
            ("def clip_logits_from_features(image_feats, text_feats, logit_scale):\n"
             "    return logit_scale * image_feats @ text_feats.T", "you did not normalise the features"),
            ("def clip_logits_from_features(image_feats, text_feats, logit_scale):\n"
             "    return F.normalize(image_feats, dim=-1) @ F.normalize(text_feats, dim=-1).T", "you forgot CLIP's temperature"),
            ("def clip_logits_from_features(image_feats, text_feats, logit_scale):\n"
             "    return logit_scale * F.normalize(image_feats, dim=0) @ F.normalize(text_feats, dim=0).T", "wrong dimension"),
        ],
        "ensemble_text_features": [
            ("@torch.no_grad()\ndef ensemble_text_features(clip, classnames, templates):\n"
             "    prompts = [t.format(c) for c in classnames for t in templates]\n"
             "    feats = encode_token_ids(clip.model, clip.tokenizer(prompts))\n"
             "    return feats.view(len(classnames), len(templates), -1).mean(dim=1)", "normalise the class features again after averaging"),
            ("@torch.no_grad()\ndef ensemble_text_features(clip, classnames, templates):\n"
             "    prompts = [t.format(c) for t in templates for c in classnames]\n"
             "    feats = encode_token_ids(clip.model, clip.tokenizer(prompts))\n"
             "    return F.normalize(feats.view(len(classnames), len(templates), -1).mean(dim=1), dim=-1)", "classes got mixed"),
            ("@torch.no_grad()\ndef ensemble_text_features(clip, classnames, templates):\n"
             "    prompts = [templates[0].format(c) for c in classnames]\n"
             "    return encode_token_ids(clip.model, clip.tokenizer(prompts))", "you kept only the first template"),
        ],
    },
    "02_views_selection": {
        "entropy_of_logits": [
            ("def entropy_of_logits(logits):\n    p = logits.softmax(dim=-1)\n    return -(p * p.log2()).sum(dim=-1)",
             "your entropy uses log base 2"),
            ("def entropy_of_logits(logits):\n    logp = logits.log_softmax(dim=0)\n    return -(logp.exp() * logp).sum(dim=-1)",
             "you took the softmax over the views"),
            ("def entropy_of_logits(logits):\n    p = logits.softmax(dim=-1)\n    return (p * p.log()).sum(dim=-1)",
             "your entropy is negative"),
            ("def entropy_of_logits(logits):\n    logp = logits.log_softmax(dim=-1)\n    return -(logp.exp() * logp).sum()",
             "return one entropy per view"),
        ],
        "keep_confident": [
            ("def keep_confident(scores, keep):\n    return scores.argsort(descending=True)[:int(len(scores) * keep)]",
             "you kept the highest-entropy views"),
            ("import math\ndef keep_confident(scores, keep):\n    return scores.argsort()[:math.ceil(len(scores) * keep)]",
             "rounded down"),
            ("def keep_confident(scores, keep):\n    return scores.sort().values[:int(len(scores) * keep)]",
             "return their indices"),
        ],
        "marginal_entropy_of": [
            ("def marginal_entropy_of(logits):\n    p = logits.mean(dim=0).softmax(dim=-1)\n    return -(p * p.log()).sum()",
             "the mean of logits is not the mean of probabilities"),
            ("def marginal_entropy_of(logits):\n    logp = logits.log_softmax(dim=-1)\n    return -(logp.exp() * logp).sum(dim=-1).mean()",
             "the average of the views' entropies is not the entropy of their average prediction"),
            ("def marginal_entropy_of(logits):\n    p = logits.softmax(dim=-1).mean(dim=0)\n    return -(p * p.log2()).sum()",
             "log base 2"),
        ],
    },
    "03_tpt_step": {
        "tpt_step": [
            ("def tpt_step(learner, optimizer, image_feats, selected, logit_scale):\n"
             "    loss = marginal_entropy((logit_scale * image_feats @ learner().T)[selected])\n"
             "    loss.backward()\n    optimizer.step()\n    return loss", "call optimizer.zero_grad() before loss.backward()"),
            ("def tpt_step(learner, optimizer, image_feats, selected, logit_scale):\n"
             "    loss = marginal_entropy(logit_scale * image_feats @ learner().T)\n"
             "    optimizer.zero_grad()\n    loss.backward()\n    optimizer.step()\n    return loss", "you used every view"),
            ("def tpt_step(learner, optimizer, image_feats, selected, logit_scale):\n"
             "    loss = marginal_entropy((logit_scale * image_feats @ learner().T)[selected])\n"
             "    optimizer.zero_grad()\n    loss.backward()\n    return loss", "the context did not move"),
            ("def tpt_step(learner, optimizer, image_feats, selected, logit_scale):\n"
             "    loss = -marginal_entropy((logit_scale * image_feats @ learner().T)[selected])\n"
             "    optimizer.zero_grad()\n    loss.backward()\n    optimizer.step()\n    return loss", "you maximised the entropy"),
        ],
        "reset_episode": [
            ("def reset_episode(learner, optimizer, initial):\n    optimizer.load_state_dict(initial['optimizer'])",
             "the context was not reset before the next image"),
            ("def reset_episode(learner, optimizer, initial):\n    learner.load_state_dict(initial['learner'])",
             "you reset the context but not the optimizer"),
            ("def reset_episode(learner, optimizer, initial):\n    with torch.no_grad(): learner.ctx.zero_()\n"
             "    optimizer.load_state_dict(initial['optimizer'])", "you set the context to zeros"),
        ],
        "zero_vote": [
            ("def zero_vote(logits, keep):\n    kept = logits[select_confident_views(entropy(logits), keep)]\n"
             "    return kept.softmax(dim=-1).mean(dim=0)", "Zero counts their argmax votes"),
            ("def zero_vote(logits, keep):\n    votes = torch.bincount(logits.argmax(dim=-1), minlength=logits.shape[1]).float()\n"
             "    return votes / votes.sum()", "every view voted"),
            ("def zero_vote(logits, keep):\n    kept = logits[select_confident_views(entropy(logits), keep)]\n"
             "    return torch.bincount(kept.argmax(dim=-1), minlength=logits.shape[1]).float()", "divide by the number of votes"),
        ],
    },
    "04_calibration": {
        "calibration_error": [
            ("def calibration_error(confidence, correct, n_bins):\n"
             "    bins = (torch.ceil(confidence * n_bins).long() - 1).clamp(0, n_bins - 1)\n"
             "    gaps = [(correct[bins == b].mean() - confidence[bins == b].mean()).abs() for b in range(n_bins) if (bins == b).any()]\n"
             "    return float(sum(gaps) / len(gaps))", "weight each bin by its share of the samples"),
            ("def calibration_error(confidence, correct, n_bins):\n"
             "    bins = (torch.ceil(confidence * n_bins).long() - 1).clamp(0, n_bins - 1)\n"
             "    ece = 0.0\n    for b in range(n_bins):\n        inside = bins == b\n"
             "        if inside.any(): ece += inside.double().mean() * (correct[inside].mean() - confidence[inside].mean()).abs()\n"
             "    return float(ece) / n_bins", "the weights |B_b|/n already sum to 1"),
            ("def calibration_error(confidence, correct, n_bins):\n"
             "    bins = (torch.ceil(confidence * n_bins).long() - 1).clamp(0, n_bins - 1)\n"
             "    ece = 0.0\n    for b in range(n_bins):\n        inside = bins == b\n"
             "        if inside.any(): ece += inside.double().mean() * (correct[inside].mean() - confidence[inside].mean())\n"
             "    return abs(float(ece))", "the signed gaps cancel"),
        ],
        "dispersion": [
            ("def dispersion(text_feats):\n    return text_feats.norm(dim=-1).mean()", "measure it to the centroid"),
            ("def dispersion(text_feats):\n    return (text_feats - text_feats.mean(dim=0)).pow(2).sum(dim=-1).mean()", "you averaged squared distances"),
            ("def dispersion(text_feats):\n    return (text_feats - text_feats.mean(dim=0)).norm(dim=-1).sum()", "average them over the K classes"),
        ],
        "ctpt_objective": [
            ("def ctpt_objective(logits, text_feats, weight):\n    return marginal_entropy(logits) + weight * text_dispersion(text_feats)",
             "you penalised the dispersion"),
            ("def ctpt_objective(logits, text_feats, weight):\n    return marginal_entropy(logits) - text_dispersion(text_feats)",
             "you forgot the weight"),
            ("def ctpt_objective(logits, text_feats, weight):\n"
             "    p = logits.softmax(-1)\n    return -(p * p.log()).sum(-1).mean() - weight * text_dispersion(text_feats)",
             "C-TPT keeps TPT's marginal entropy"),
        ],
    },
    "05_self_tpt": {
        "supcon": [
            ("def supcon(features, temperature):\n    K, V, D = features.shape\n    z = features.reshape(K * V, D)\n"
             "    labels = torch.arange(K).repeat_interleave(V)\n    self_mask = torch.eye(K * V, dtype=torch.bool)\n"
             "    log_prob = (z @ z.T / temperature).log_softmax(dim=1)\n"
             "    positives = (labels[:, None] == labels[None, :]) & ~self_mask\n"
             "    return -(log_prob.masked_fill(~positives, 0).sum(1) / positives.sum(1)).mean()", "mask the diagonal out"),
            ("def supcon(features, temperature):\n    K, V, D = features.shape\n    z = features.reshape(K * V, D)\n"
             "    labels = torch.arange(K).repeat_interleave(V)\n    self_mask = torch.eye(K * V, dtype=torch.bool)\n"
             "    log_prob = (z @ z.T).masked_fill(self_mask, float('-inf')).log_softmax(dim=1)\n"
             "    positives = (labels[:, None] == labels[None, :]) & ~self_mask\n"
             "    return -(log_prob.masked_fill(~positives, 0).sum(1) / positives.sum(1)).mean()", "you forgot the temperature"),
            ("def supcon(features, temperature):\n    K, V, D = features.shape\n    z = features.reshape(K * V, D)\n"
             "    labels = torch.arange(K).repeat_interleave(V)\n    self_mask = torch.eye(K * V, dtype=torch.bool)\n"
             "    log_prob = (z @ z.T / temperature).masked_fill(self_mask, float('-inf')).log_softmax(dim=1)\n"
             "    positives = (labels[:, None] == labels[None, :]) & ~self_mask\n"
             "    return -log_prob.masked_fill(~positives, 0).sum(1).mean()", "average them over |P(i)|"),
        ],
        "gradient_matching": [
            ("def gradient_matching(g_ce, g_cpt):\n    return F.cosine_similarity(g_ce.detach().flatten(), g_cpt.flatten(), dim=0)",
             "the loss to MINIMISE is 1 − cos"),
            ("def gradient_matching(g_ce, g_cpt):\n    return 1 - F.cosine_similarity(g_ce.flatten(), g_cpt.flatten(), dim=0)",
             "detach it"),
            ("def gradient_matching(g_ce, g_cpt):\n    return 1 - F.cosine_similarity(g_ce.detach(), g_cpt, dim=-1).mean()",
             "flatten each into one vector"),
        ],
        "gradient_cosine": [
            ("def gradient_cosine(ce, cpt, context):\n    g_ce, = torch.autograd.grad(ce, context)\n"
             "    g_cpt, = torch.autograd.grad(cpt, context)\n    return F.cosine_similarity(g_ce.flatten(), g_cpt.flatten(), dim=0)",
             "pass retain_graph=True"),
            ("def gradient_cosine(ce, cpt, context):\n    g_ce, = torch.autograd.grad(ce, context, retain_graph=True)\n"
             "    g_cpt, = torch.autograd.grad(cpt, context)\n    return F.cosine_similarity(g_ce, g_cpt, dim=-1).mean()",
             "flatten each into one vector"),
            ("def gradient_cosine(ce, cpt, context):\n    g_ce, = torch.autograd.grad(ce, context, retain_graph=True)\n"
             "    g_cpt, = torch.autograd.grad(cpt, context)\n    return (g_ce * g_cpt).sum()",
             "divide by both gradients' norms"),
        ],
    },
    "06_tlla": {
        "sam_gradient": [
            ("def sam_gradient(loss_fn, p, rho):\n    q = p.clone().requires_grad_(True)\n"
             "    g, = torch.autograd.grad(loss_fn(q), q)\n    q = (p + rho * g).requires_grad_(True)\n"
             "    return torch.autograd.grad(loss_fn(q), q)[0]", "ε is not normalised"),
            ("def sam_gradient(loss_fn, p, rho):\n    q = p.clone().requires_grad_(True)\n"
             "    g, = torch.autograd.grad(loss_fn(q), q)\n    q = (p - rho * g / g.norm()).requires_grad_(True)\n"
             "    return torch.autograd.grad(loss_fn(q), q)[0]", "you perturbed downhill"),
            ("def sam_gradient(loss_fn, p, rho):\n    q = p.clone().requires_grad_(True)\n"
             "    return torch.autograd.grad(loss_fn(q), q)[0]", "you returned the plain gradient"),
        ],
        "filter_normalise": [
            ("def filter_normalise(direction, context):\n    return direction / direction.norm() * context.norm()",
             "EACH context vector (row) to its own norm"),
            ("def filter_normalise(direction, context):\n    return direction / direction.norm(dim=-1, keepdim=True)",
             "your rows have unit norm"),
        ],
        "flat_view_score": [
            ("def flat_view_score(feats, text_feats, perturbed_feats, logit_scale, weight):\n"
             "    flat = entropy(logit_scale * feats @ text_feats.T)\n"
             "    moved = entropy(logit_scale * torch.einsum('nd,rkd->rnk', feats, perturbed_feats))\n"
             "    return flat + weight * (moved - flat).mean(dim=0)", "STSS takes the WORST direction"),
            ("def flat_view_score(feats, text_feats, perturbed_feats, logit_scale, weight):\n"
             "    flat = entropy(logit_scale * feats @ text_feats.T)\n"
             "    moved = entropy(logit_scale * torch.einsum('nd,rkd->rnk', feats, perturbed_feats))\n"
             "    return weight * (moved - flat).amax(dim=0)", "the score is the entropy PLUS"),
            ("def flat_view_score(feats, text_feats, perturbed_feats, logit_scale, weight):\n"
             "    flat = entropy(logit_scale * feats @ text_feats.T)\n"
             "    moved = entropy(logit_scale * torch.einsum('nd,rkd->rnk', feats, perturbed_feats))\n"
             "    return flat + weight * moved.amax(dim=0)", "subtract the unperturbed entropy"),
        ],
    },
    "07_metatpt": {
        "affine_matrix": [
            ("def affine_matrix(theta):\n    log_scale, angle, tx, ty, shear = theta.unbind(dim=1)\n"
             "    s, cos, sin = log_scale, angle.cos(), angle.sin()\n"
             "    return torch.stack([torch.stack([s * cos, s * (shear - sin), tx], 1), torch.stack([s * sin, s * cos, ty], 1)], 1)",
             "use s = exp"),
            ("def affine_matrix(theta):\n    log_scale, angle, tx, ty, shear = theta.unbind(dim=1)\n"
             "    s, cos, sin = log_scale.exp(), angle.cos(), angle.sin()\n"
             "    return torch.stack([torch.stack([s * cos, -s * sin, tx], 1), torch.stack([s * sin, s * cos, ty], 1)], 1)",
             "you left out the shear"),
            ("def affine_matrix(theta):\n    log_scale, angle, tx, ty, shear = theta.unbind(dim=1)\n"
             "    s, cos, sin = log_scale.exp(), angle.cos(), angle.sin()\n"
             "    return torch.stack([torch.stack([s * cos, s * (shear + sin), tx], 1), torch.stack([-s * sin, s * cos, ty], 1)], 1)",
             "the rotation turns the wrong way"),
        ],
        "view_diversity": [
            ("def view_diversity(feats):\n    return (feats @ feats.T).mean()", "you counted each view's similarity to itself"),
            ("def view_diversity(feats):\n    s = feats @ feats.T\n    return (s.sum() - s.diagonal().sum()) / len(feats) ** 2",
             "divide by V(V − 1)"),
        ],
        "meta_objective": [
            ("def meta_objective(logits, label, keep):\n    kept = logits[select_confident_views(entropy(logits), keep)]\n"
             "    return F.cross_entropy(kept, torch.full((len(kept),), label))",
             "the average of per-view cross-entropies is not the cross-entropy of the averaged prediction"),
            ("def meta_objective(logits, label, keep):\n    return -average_log_probs(logits)[label]", "you used every view"),
            ("def meta_objective(logits, label, keep):\n    kept = logits[select_confident_views(entropy(logits), keep)]\n"
             "    return average_log_probs(kept)[label]", "the loss is its NEGATIVE"),
        ],
    },
}

WRONG_ANSWERS["08_tda"] = {
    "update_positive_cache": [
        ("def update_positive_cache(cache, label, feature, entropy, capacity):\n    queue = cache.setdefault(label, [])\n"
         "    if len(queue) < capacity: queue.append((feature, entropy))\n    elif entropy < queue[-1][1]: queue[0] = (feature, entropy)\n"
         "    queue.sort(key=lambda item: item[1])\n    return cache", "you replaced the most confident entry"),
        ("def update_positive_cache(cache, label, feature, entropy, capacity):\n    queue = cache.setdefault(label, [])\n"
         "    if len(queue) < capacity: queue.append((feature, entropy))\n    queue.sort(key=lambda item: item[1])\n    return cache",
         "a full class never takes a new sample"),
        ("def update_positive_cache(cache, label, feature, entropy, capacity):\n    queue = cache.setdefault(label, [])\n"
         "    if len(queue) < capacity: queue.append((feature, entropy))\n    else: queue[-1] = (feature, entropy)\n"
         "    queue.sort(key=lambda item: item[1])\n    return cache", "even when the new sample is less confident"),
        ("def update_positive_cache(cache, label, feature, entropy, capacity):\n    queue = cache.setdefault(label, [])\n"
         "    if len(queue) < capacity: queue.append((feature, entropy))\n    elif entropy < queue[-1][1]: queue[-1] = (feature, entropy)\n"
         "    return cache", "not the highest-entropy one"),
    ],
    "positive_cache_logits": [
        ("def positive_cache_logits(query, keys, labels, n_classes, alpha, beta):\n"
         "    return alpha * torch.exp(-beta * (1 - query @ keys.T)) @ F.one_hot(labels, n_classes).float()", "you did not normalise the features"),
        ("def positive_cache_logits(query, keys, labels, n_classes, alpha, beta):\n"
         "    cosine = F.normalize(query, dim=-1) @ F.normalize(keys, dim=-1).T\n"
         "    return alpha * torch.exp(beta * (1 - cosine)) @ F.one_hot(labels, n_classes).float()", "wrong sign in the affinity"),
        ("def positive_cache_logits(query, keys, labels, n_classes, alpha, beta):\n"
         "    cosine = F.normalize(query, dim=-1) @ F.normalize(keys, dim=-1).T\n"
         "    return torch.exp(-beta * (1 - cosine)) @ F.one_hot(labels, n_classes).float()", "you forgot α"),
        ("def positive_cache_logits(query, keys, labels, n_classes, alpha, beta):\n"
         "    cosine = F.normalize(query, dim=-1) @ F.normalize(keys, dim=-1).T\n"
         "    return alpha * torch.exp(-beta * (1 - cosine))", "multiply the affinities"),
    ],
}
