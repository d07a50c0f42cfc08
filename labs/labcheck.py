"""Feedback for the ttpt labs: each check runs a student's function on small inputs, compares it with ttpt's own
implementation, and when they differ says which typical mistake explains the difference.

A check prints nothing when the answer is right and one line starting with ✗ when it is wrong, so that an otter-grader
test case (a doctest expecting no output) passes or fails with that line as its feedback. Two checks per exercise:
`runs` (the function runs and returns something of the right shape) and `check` (its values are ttpt's)."""
import copy
import functools
import math
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from ttpt.augment import affine_matrices
from ttpt.benchmark import SOURCE_CLASSES
from ttpt.cpt import supervised_contrastive_loss
from ttpt.ctpt import CTPT, text_dispersion
from ttpt.reports import expected_calibration_error
from ttpt.landscape import filter_normalised_direction
from ttpt.metatpt import diversity
from ttpt.models import load_clip
from ttpt.prompts import PromptLearner, encode_token_ids
from ttpt.selection import average_log_probs, entropy, marginal_entropy, select_confident_views
from ttpt.self_tpt import GradientMatching, context_gradients
from ttpt.steps import SharpnessAwareStep, plain_step
from ttpt.stss import STSS
from ttpt.zero import Zero
from ttpt.zeroshot import class_text_features, clip_logits


class Wrong(Exception):
    "A diagnosis of a wrong answer, in words a student can act on."


class NotRunning(Wrong):
    "The function crashed, returned nothing, or returned the wrong kind or shape of thing."


def _run(name, fn, *args):
    "Call the student's `fn`; a crash or a missing return value becomes a `NotRunning` diagnosis."
    try: out = fn(*args)
    except Wrong: raise
    except Exception as e: raise NotRunning(f"{name} raised {type(e).__name__}: {e}") from e
    if out is None or out is Ellipsis: raise NotRunning(f"{name} returns nothing yet: write its body (replace the `...`) and return the result")
    return out


def _tensor(name, value):
    "The student's result as a float tensor, or a `NotRunning` diagnosis."
    if isinstance(value, torch.Tensor): return value.detach().double()
    try: return torch.as_tensor(value, dtype=torch.float64)
    except Exception as e: raise NotRunning(f"{name} returned a {type(value).__name__}, not a tensor or number") from e


def _close(a, b, tol=1e-4): return a.shape == b.shape and torch.allclose(a.double(), b.double(), rtol=tol, atol=tol)


def _show(t): return f"{t.flatten()[:4].tolist()}" + (" …" if t.numel() > 4 else "") if t.numel() > 1 else f"{t.item():.5g}"


def diagnose(name:str, # what the student's function is called (in messages)
             got, # what it returned (tensor or number)
             want:torch.Tensor, # ttpt's answer
             mistakes:dict, # message -> what that typical mistake returns
            ):
    "Raise `Wrong` with the first typical mistake that `got` reproduces, or with both values if none does."
    got, want = _tensor(name, got), want.detach().double()
    if _close(got, want): return
    for message, value in mistakes.items():
        if _close(got, value.detach().double()): raise (Wrong if got.shape == want.shape else NotRunning)(message)
    if got.shape != want.shape: raise NotRunning(f"{name} returned shape {tuple(got.shape)}, expected {tuple(want.shape)}")
    raise Wrong(f"{name} differs from ttpt's answer on the test input: got {_show(got)}, expected {_show(want)}")


EXERCISES = {} # exercise name -> function(student_fn) that raises `Wrong` or returns None


def exercise(f):
    "Register an exercise's check under its function's name."
    EXERCISES[f.__name__] = f
    return f


def _feedback(name, fn, only_running):
    if name not in EXERCISES: raise KeyError(f"no exercise {name!r}; known: {sorted(EXERCISES)}")
    try: EXERCISES[name](fn)
    except NotRunning as e: print(f"✗ {e}")
    except Wrong as e:
        if not only_running: print(f"✗ {e}")


def runs(name:str, # the exercise
         fn, # the student's function
        ):
    "Print a ✗ line if `fn` crashes, returns nothing, or returns the wrong shape; nothing otherwise."
    _feedback(name, fn, only_running=True)


def check(name:str, # the exercise
          fn, # the student's function
         ):
    "Print a ✗ line naming the mistake if `fn` does not match ttpt on the exercise's inputs; nothing otherwise."
    _feedback(name, fn, only_running=False)


def _generator(seed=0): return torch.Generator().manual_seed(seed)


@functools.cache
def _clip(): return load_clip()


CLASSES = SOURCE_CLASSES[:5] # the classes of the checks' small prompt learners


# ---------------------------------------------------------------- lab 1: CLIP zero-shot and prompts

@exercise
def clip_logits_from_features(fn):
    g = _generator(1)
    image, text, scale = torch.randn(3, 8, generator=g) * 3, torch.randn(4, 8, generator=g) * 2, torch.tensor(50.0)
    got = _run("clip_logits_from_features", fn, image, text, scale)
    scaled = SimpleNamespace(logit_scale=scale)
    want = clip_logits(scaled, F.normalize(image, dim=-1), F.normalize(text, dim=-1))
    diagnose("clip_logits_from_features", got, want, {
        "you did not normalise the features: CLIP compares directions, so divide each row by its norm first": scale * image @ text.T,
        "you normalised the image features but not the text features": scale * F.normalize(image, dim=-1) @ text.T,
        "you normalised the text features but not the image features": scale * image @ F.normalize(text, dim=-1).T,
        "you forgot CLIP's temperature: multiply the cosine similarities by logit_scale": want / scale,
        "you normalised along the wrong dimension: each feature vector is a row (dim=-1)": scale * F.normalize(image, dim=0) @ F.normalize(text, dim=0).T,
        "you returned probabilities (a softmax), not logits": want.softmax(-1),
        "your logits are transposed: rows are images, columns are classes, (B, K)": want.T,
    })


@exercise
def ensemble_text_features(fn):
    clip, classes, templates = _clip(), CLASSES[:4], ("a photo of a {}.", "a drawing of a {}.", "a {} shape.")
    got = _run("ensemble_text_features", fn, clip, classes, templates)
    want = class_text_features(clip, classes, templates)
    with torch.no_grad():
        prompts = [t.format(c) for c in classes for t in templates]
        ids = clip.tokenizer(prompts)
        unit = encode_token_ids(clip.model, ids).view(len(classes), len(templates), -1)
        raw = encode_token_ids(clip.model, ids, normalize=False).view(len(classes), len(templates), -1)
        swapped = encode_token_ids(clip.model, clip.tokenizer([t.format(c) for t in templates for c in classes])).view(len(classes), len(templates), -1)
    diagnose("ensemble_text_features", got, want, {
        "the mean of unit vectors is not a unit vector: normalise the class features again after averaging": unit.mean(1),
        "you averaged the raw (unnormalised) text features: normalise each prompt's feature before averaging": F.normalize(raw.mean(1), dim=-1),
        "you averaged over the classes instead of the templates": F.normalize(unit.mean(0), dim=-1),
        "your prompts were built template-major but reshaped class-major: the features of different classes got mixed": F.normalize(swapped.mean(1), dim=-1),
        "you kept only the first template: average the features of every template": unit[:, 0],
    })


# ---------------------------------------------------------------- lab 2: views, confident selection, marginal entropy

def _view_logits(seed=2, views=12, classes=5):
    return torch.randn(views, classes, generator=_generator(seed)) * 3


@exercise
def entropy_of_logits(fn):
    logits = _view_logits()
    got = _run("entropy_of_logits", fn, logits)
    want = entropy(logits)
    p = logits.softmax(-1)
    diagnose("entropy_of_logits", got, want, {
        "your entropy uses log base 2: ttpt measures entropy in nats (natural log)": want / math.log(2),
        "your entropy is negative: H = −Σ p log p has a minus sign": -want,
        "you took the softmax over the views (dim=0): each view's distribution is over the classes (dim=-1)": -(logits.softmax(0) * logits.log_softmax(0)).sum(-1),
        "you used the logits as if they were probabilities: apply a softmax first": -(logits * logits.log()).nan_to_num().sum(-1),
        "you summed over every view: return one entropy per view, shape (N,)": want.sum(),
        "you averaged over the classes instead of summing: H = −Σ_c p_c log p_c": want / logits.shape[-1],
        "you returned Σ p·logits instead of Σ p·log p: use log_softmax, not the raw logits": -(p * logits).sum(-1),
    })


@exercise
def keep_confident(fn):
    scores = torch.rand(20, generator=_generator(3))
    for keep in (0.1, 0.25, 0.33):
        got = _run("keep_confident", fn, scores, keep)
        if isinstance(got, torch.Tensor) and got.is_floating_point() and not _close(got.double(), got.round().double()):
            raise Wrong("you returned the scores of the kept views: return their indices (argsort)")
        want = select_confident_views(scores, keep)
        order = scores.argsort()
        n = len(want)
        diagnose(f"keep_confident(scores, keep={keep})", got, want.double(), {
            "you kept the highest-entropy views: the confident views are those with the LOWEST entropy": order.flip(0)[:n].double(),
            f"you kept the wrong number of views: ρN = {keep}·{len(scores)} is rounded down (⌊ρN⌋ = {n})": order[:max(1, math.ceil(keep * len(scores)))].double(),
            f"you kept round(ρN) views: TPT keeps ⌊ρN⌋ = {n}": order[:max(1, round(keep * len(scores)))].double(),
            "you returned the sorted scores of the kept views: return their indices (argsort)": scores.sort().values[:n].double(),
            "you returned the confident views in their original order: return them most confident first": order[:n].sort().values.double(),
        })


@exercise
def marginal_entropy_of(fn):
    logits = _view_logits(4, views=6)
    got = _run("marginal_entropy_of", fn, logits)
    want = marginal_entropy(logits)
    mean_logits = logits.mean(0)
    diagnose("marginal_entropy_of", got, want, {
        "the mean of logits is not the mean of probabilities: average the softmax outputs, p̃ = 1/S Σ softmax(logits_i)": entropy(mean_logits),
        "the average of the views' entropies is not the entropy of their average prediction: average the probabilities first": entropy(logits).mean(),
        "your marginal entropy uses log base 2: measure it in nats": want / math.log(2),
        "you averaged the log-probabilities (a geometric mean): average the probabilities themselves": entropy(logits.log_softmax(-1).mean(0)),
        "you returned one entropy per class or view: the marginal entropy is a single number": torch.stack([want] * logits.shape[-1]),
    })


# ---------------------------------------------------------------- lab 3: one TPT step, the per-image reset, Zero's vote

def _learner():
    "A fresh prompt learner on the check classes and its AdamW (TPT's settings)."
    learner = PromptLearner(_clip(), CLASSES)
    return learner, torch.optim.AdamW(learner.parameters(), lr=5e-3)


def _step_inputs():
    feats = F.normalize(torch.randn(16, _clip().model.text_projection.shape[1], generator=_generator(5)), dim=-1)
    return feats, torch.tensor([3, 7, 1, 12]), _clip().logit_scale


def _context_after(loss_of, zero_grad=True, step=True):
    "The context after one AdamW step on `loss_of(logits)`, a stale gradient planted first (as a student's would see)."
    learner, optimizer = _learner()
    feats, selected, scale = _step_inputs()
    learner.ctx.grad = torch.ones_like(learner.ctx)
    logits = scale * feats @ learner().T
    loss = loss_of(logits, selected)
    if zero_grad: optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if step: optimizer.step()
    return learner.ctx.detach().clone()


@exercise
def tpt_step(fn):
    learner, optimizer = _learner()
    feats, selected, scale = _step_inputs()
    learner.ctx.grad = torch.ones_like(learner.ctx) # a stale gradient from an earlier step
    _run("tpt_step", fn, learner, optimizer, feats, selected, scale)
    got = learner.ctx.detach().clone()
    reference, ref_optimizer = _learner()
    plain_step(ref_optimizer, lambda: marginal_entropy((scale * feats @ reference().T)[selected]))
    want = reference.ctx.detach()
    if _close(got, learner.ctx_init): raise Wrong("the context did not move: call optimizer.step() after loss.backward()")
    diagnose("the context after tpt_step", got, want, {
        "gradients accumulated: call optimizer.zero_grad() before loss.backward()": _context_after(lambda l, s: marginal_entropy(l[s]), zero_grad=False),
        "you used every view: TPT's loss is the marginal entropy of the SELECTED confident views only": _context_after(lambda l, s: marginal_entropy(l)),
        "the context moved uphill: you maximised the entropy (check the loss's sign)": _context_after(lambda l, s: -marginal_entropy(l[s])),
        "you minimised the mean of the views' entropies: TPT minimises the entropy of their averaged prediction": _context_after(lambda l, s: entropy(l[s]).mean()),
    })


@exercise
def reset_episode(fn):
    learner, optimizer = _learner()
    initial = {"learner": copy.deepcopy(learner.state_dict()), "optimizer": copy.deepcopy(optimizer.state_dict())}
    feats, selected, scale = _step_inputs()
    for image in range(2): # two images: the second must start where the first did
        plain_step(optimizer, lambda: marginal_entropy((scale * feats @ learner().T)[selected]))
        before, steps = learner.ctx.detach().clone(), len(optimizer.state)
        try: fn(learner, optimizer, initial)
        except Exception as e: raise NotRunning(f"reset_episode raised {type(e).__name__}: {e}") from e
        if _close(learner.ctx.detach(), before) and len(optimizer.state) == steps:
            raise NotRunning("reset_episode changed nothing yet: write its body (replace the `...`)")
        if not isinstance(learner.ctx, torch.nn.Parameter) or learner.ctx is not optimizer.param_groups[0]["params"][0]:
            raise Wrong("you replaced the context Parameter: the optimizer still holds the old one; copy the values into it (load_state_dict)")
        ctx = learner.ctx.detach()
        if _close(ctx, torch.zeros_like(ctx)): raise Wrong("you set the context to zeros: reset it to its initial value (the phrase's embeddings)")
        if not _close(ctx, learner.ctx_init): raise Wrong("the context was not reset before the next image: restore the learner's initial state")
        if optimizer.state: raise Wrong("you reset the context but not the optimizer: AdamW's running moments (and step count) would carry over to the next image")


@exercise
def zero_vote(fn):
    logits = _view_logits(6, views=20, classes=4)
    zero = Zero(n_views=20, keep=0.3)
    zero.clip, zero.text_feats = SimpleNamespace(logit_scale=torch.tensor(1.0)), torch.eye(4)
    zero.view_features = lambda image, index: logits # logits = features · I
    want = zero.predict(None, 0)
    got = _run("zero_vote", fn, logits, 0.3)
    kept = logits[select_confident_views(entropy(logits), 0.3)]
    diagnose("zero_vote", got, want, {
        "you averaged the confident views' probabilities: Zero counts their argmax votes": kept.softmax(-1).mean(0),
        "every view voted: only the ⌊ρN⌋ most confident (lowest-entropy) views vote": torch.bincount(logits.argmax(-1), minlength=4).double() / len(logits),
        "the highest-entropy views voted: the confident views have the LOWEST entropy": torch.bincount(logits[entropy(logits).argsort(descending=True)[:len(kept)]].argmax(-1), minlength=4).double() / len(kept),
        "you returned vote counts: divide by the number of votes so the shares sum to 1": torch.bincount(kept.argmax(-1), minlength=4).double(),
    })


# ---------------------------------------------------------------- lab 4: calibration, C-TPT's dispersion

@exercise
def calibration_error(fn):
    g = _generator(7)
    confidence = torch.rand(200, generator=g).double() * 0.7 + 0.3
    correct = (torch.rand(200, generator=g).double() < confidence ** 2).double() # overconfident
    got = _run("calibration_error", fn, confidence, correct, 10)
    want = torch.tensor(expected_calibration_error(confidence.numpy(), correct.numpy(), 10))
    bins = (torch.ceil(confidence * 10).long() - 1).clamp(0, 9)
    count = torch.bincount(bins, minlength=10).double()
    filled = count > 0
    gap = (torch.bincount(bins, correct, minlength=10)[filled] - torch.bincount(bins, confidence, minlength=10)[filled]) / count[filled]
    diagnose("calibration_error", got, want, {
        "you averaged the bins' gaps equally: weight each bin by its share of the samples, |B_b|/n": gap.abs().mean(),
        "the signed gaps cancel (the same as comparing the overall accuracy with the overall confidence): ECE averages |accuracy − confidence| in each bin": (correct.mean() - confidence.mean()).abs(),
        "you divided by the number of bins: the weights |B_b|/n already sum to 1": want / 10,
        "you returned a percentage: return ECE as a fraction": want * 100,
    })


def _class_features(seed=8, classes=6, dim=16):
    return F.normalize(torch.randn(classes, dim, generator=_generator(seed)), dim=-1)


@exercise
def dispersion(fn):
    w = _class_features()
    got = _run("dispersion", fn, w)
    want = text_dispersion(w)
    centred = w - w.mean(0, keepdim=True)
    diagnose("dispersion", got, want, {
        "you averaged squared distances: ATFD is the mean L2 distance (take the square root of each)": centred.pow(2).sum(-1).mean(),
        "you measured the distance to the origin: measure it to the centroid w̄ = mean of the class features": w.norm(dim=-1).mean(),
        "you took the centroid over the feature dimension (dim=1): the centroid is the mean over the classes (dim=0)": (w - w.mean(1, keepdim=True)).norm(dim=-1).mean(),
        "you summed the distances: average them over the K classes": centred.norm(dim=-1).sum(),
        "you returned one distance per class: ATFD is their mean, a single number": centred.norm(dim=-1),
    })


@exercise
def ctpt_objective(fn):
    logits, w, weight = _view_logits(9, views=6, classes=6), _class_features(), 20.0
    got = _run("ctpt_objective", fn, logits, w, weight)
    want = CTPT(dispersion_weight=weight).objective(logits, w)
    h, d = marginal_entropy(logits), text_dispersion(w)
    diagnose("ctpt_objective", got, want, {
        "you penalised the dispersion: C-TPT rewards spread-out class features, so SUBTRACT λ·ATFD": h + weight * d,
        "you forgot the weight λ on the dispersion term": h - d,
        "you weighted the entropy instead of the dispersion: H(p̃) − λ·ATFD": weight * h - d,
        "the entropy term is the mean of the views' entropies: C-TPT keeps TPT's marginal entropy H(p̃)": entropy(logits).mean() - weight * d,
    })


# ---------------------------------------------------------------- lab 5: Self-TPT

@exercise
def supcon(fn):
    z = F.normalize(torch.randn(3, 4, 8, generator=_generator(10)), dim=-1) # K = 3 classes, V = 4 views
    got = _run("supcon", fn, z, 0.07)
    want = supervised_contrastive_loss(z, 0.07)
    flat = z.reshape(12, 8)
    labels = torch.arange(3).repeat_interleave(4)
    eye = torch.eye(12, dtype=torch.bool)
    positives = (labels[:, None] == labels[None, :]) & ~eye
    def variant(temperature=0.07, drop_self=True, positives=positives, average=True):
        logits = flat @ flat.T / temperature
        if drop_self: logits = logits.masked_fill(eye, float("-inf"))
        log_prob = logits.log_softmax(1).masked_fill(~positives, 0).sum(1)
        return -(log_prob / positives.sum(1) if average else log_prob).mean()
    diagnose("supcon", got, want, {
        "you kept each view's similarity to itself in the denominator: mask the diagonal out (A(i) excludes i)": variant(drop_self=False),
        "you forgot the temperature τ: divide the similarities by it": variant(temperature=1.0),
        "you summed the log-probabilities of the positives: average them over |P(i)|": variant(average=False),
        "a view is not its own positive: P(i) holds the OTHER views of its class": variant(drop_self=False, positives=positives | eye),
    })


def _gradients(seed=11):
    g = _generator(seed)
    return torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)


@exercise
def gradient_matching(fn):
    g_ce, g_cpt = _gradients()
    g_ce.requires_grad_(True); g_cpt.requires_grad_(True)
    got = _run("gradient_matching", fn, g_ce, g_cpt)
    want = GradientMatching(decay=0.0)(g_ce, g_cpt)
    cos = F.cosine_similarity(g_ce.flatten(), g_cpt.flatten(), dim=0)
    diagnose("gradient_matching", got, want, {
        "you return the cosine: the loss to MINIMISE is 1 − cos(g_CE, g_CPT)": cos,
        "you compared the gradients row by row: flatten each into one vector before the cosine": 1 - F.cosine_similarity(g_ce, g_cpt, dim=-1).mean(),
        "you compared the gradients column by column: flatten each into one vector before the cosine": 1 - F.cosine_similarity(g_ce, g_cpt, dim=0).mean(),
        "you used the distance ‖g_CE − g_CPT‖: gradient matching compares directions only (cosine)": (g_ce - g_cpt).norm(),
    })
    if isinstance(got, torch.Tensor) and got.requires_grad:
        got.backward()
        if g_ce.grad is not None and g_ce.grad.abs().sum() > 0:
            raise Wrong("the gradient flows into g_CE: it is GM's fixed target, so detach it (only g_CPT is pulled towards it)")
        if g_cpt.grad is None: raise Wrong("no gradient reaches g_CPT: do not detach it, the loss must move the CPT gradient")


def _shared_losses():
    "A context and two losses that share a graph (like CE and CPT through the text encoder)."
    context = torch.nn.Parameter(torch.randn(4, 8, generator=_generator(12)))
    hidden = torch.tanh(context @ torch.randn(8, 8, generator=_generator(13))) # shared by both losses
    return context, hidden.pow(2).mean() + hidden[:, 0].sum(), (hidden - 0.5).abs().mean() + hidden[0].sum()


@exercise
def gradient_cosine(fn):
    context, ce, cpt = _shared_losses()
    try: got = _run("gradient_cosine", fn, ce, cpt, context)
    except NotRunning as e:
        if "second time" in str(e): raise NotRunning("the first autograd.grad freed the graph both losses share: pass retain_graph=True to it") from e
        raise
    context, ce, cpt = _shared_losses()
    g_ce, g_cpt = context_gradients(ce, cpt, context, create_graph=False)
    want = F.cosine_similarity(g_ce.flatten(), g_cpt.flatten(), dim=0)
    diagnose("gradient_cosine", got, want, {
        "you compared the gradients row by row: flatten each into one vector before the cosine": F.cosine_similarity(g_ce, g_cpt, dim=-1).mean(),
        "you returned 1 − cos: return the cosine itself": 1 - want,
        "you returned the dot product: divide by both gradients' norms": (g_ce * g_cpt).sum(),
    })


# ---------------------------------------------------------------- lab 6: TLLA

def _bowl(p): return (p[0] - 1) ** 2 + 4 * (p[1] + 0.5) ** 2 + (p[0] * p[1]) ** 2 # a curved loss with unequal gradient parts


@exercise
def sam_gradient(fn):
    p, rho = torch.tensor([0.3, 0.4]), 0.2
    got = _run("sam_gradient", fn, _bowl, p.clone(), rho)
    param = torch.nn.Parameter(p.clone())
    SharpnessAwareStep(rho)(torch.optim.SGD([param], lr=1.0), lambda: _bowl(param)) # p ← p − g_SAM
    want = p - param.detach()
    def grad_at(q):
        q = q.clone().requires_grad_(True)
        return torch.autograd.grad(_bowl(q), q)[0]
    g = grad_at(p)
    diagnose("sam_gradient", got, want, {
        "you returned the plain gradient ∇ℓ(p): SAM's gradient is taken at the perturbed point p + ε": g,
        "ε is not normalised: SAM's perturbation is ρ·g/‖g‖, of length exactly ρ": grad_at(p + rho * g),
        "you perturbed downhill (p − ε): SAM looks at the worst nearby point, p + ρ·g/‖g‖": grad_at(p - rho * g / g.norm()),
        "you returned the perturbed point, not the gradient there": p + rho * g / g.norm(),
    })


@exercise
def flat_view_score(fn):
    g = _generator(14)
    feats, text = F.normalize(torch.randn(10, 8, generator=g), dim=-1), F.normalize(torch.randn(5, 8, generator=g), dim=-1)
    perturbed = F.normalize(text + 0.3 * torch.randn(3, 5, 8, generator=g), dim=-1) # R = 3 directions
    scale, weight = torch.tensor(10.0), 1.0
    got = _run("flat_view_score", fn, feats, text, perturbed, scale, weight)
    stss = STSS(n_views=10, keep=0.5)
    stss.clip, stss.text_feats, stss.perturbed_feats, stss.sharpness_weight = SimpleNamespace(logit_scale=scale), text, perturbed, weight
    want = stss.score(feats, stss.logits(feats, text))
    flat = entropy(scale * feats @ text.T)
    moved = entropy(scale * torch.einsum("nd,rkd->rnk", feats, perturbed))
    diagnose("flat_view_score", got, want, {
        "you averaged the entropy rise over the directions: STSS takes the WORST direction (max over j)": flat + weight * (moved - flat).mean(0),
        "you scored by the sharpness alone: the score is the entropy PLUS λ times the sharpness": (moved - flat).amax(0),
        "you took the largest perturbed entropy instead of its rise: subtract the unperturbed entropy (H_j − H)": flat + weight * moved.amax(0),
        "you scored by entropy alone: add λ·max_j (H_j − H)": flat,
    })


@exercise
def filter_normalise(fn):
    context, seed = torch.randn(4, 8, generator=_generator(15)) * torch.tensor([[0.5], [1.0], [2.0], [4.0]]), 3
    d = torch.randn(context.shape, generator=torch.Generator().manual_seed(seed))
    got = _run("filter_normalise", fn, d.clone(), context)
    want = filter_normalised_direction(context, seed)
    diagnose("filter_normalise", got, want, {
        "you scaled the whole direction at once: filter normalisation scales EACH context vector (row) to its own norm": d / d.norm() * context.norm(),
        "your rows have unit norm: scale each row to the norm of the matching context vector, ‖p_m‖": d / d.norm(dim=-1, keepdim=True),
        "you normalised the columns (dim=0): each context vector is a row (dim=-1)": d / d.norm(dim=0, keepdim=True) * context.norm(dim=0, keepdim=True),
    })


# ---------------------------------------------------------------- lab 7: MetaTPT

@exercise
def affine_matrix(fn):
    theta = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0], [-0.3, 0.5, 0.2, -0.1, 0.2], [0.2, -1.0, -0.3, 0.4, -0.1]])
    got = _run("affine_matrix", fn, theta)
    want = affine_matrices(theta)
    s, c, n, tx, ty, k = theta[:, 0].exp(), theta[:, 1].cos(), theta[:, 1].sin(), theta[:, 2], theta[:, 3], theta[:, 4]
    def build(r1, r2): return torch.stack([torch.stack(r1, 1), torch.stack(r2, 1)], 1)
    diagnose("affine_matrix", got, want, {
        "you used log s as the scale: the parameter is the scale's logarithm, use s = exp(θ₀)": build([theta[:, 0] * c, theta[:, 0] * (k - n), tx], [theta[:, 0] * n, theta[:, 0] * c, ty]),
        "the rotation turns the wrong way: the first row is (s cos φ, s(k − sin φ), t_x), the second (s sin φ, s cos φ, t_y)": build([s * c, s * (k + n), tx], [-s * n, s * c, ty]),
        "you left out the shear k: the first row's middle entry is s(k − sin φ)": build([s * c, -s * n, tx], [s * n, s * c, ty]),
        "the translations are swapped: t_x belongs in the first row, t_y in the second": build([s * c, s * (k - n), ty], [s * n, s * c, tx]),
    })


@exercise
def view_diversity(fn):
    feats = F.normalize(torch.randn(6, 8, generator=_generator(16)) + 1.0, dim=-1)
    got = _run("view_diversity", fn, feats)
    want = diversity(feats)
    sim = feats @ feats.T
    V = len(feats)
    diagnose("view_diversity", got, want, {
        "you counted each view's similarity to itself (always 1): average over the V(V − 1) pairs of DIFFERENT views": sim.mean(),
        "you left out the self-pairs but still divided by V²: divide by V(V − 1)": (sim.sum() - sim.diagonal().sum()) / V ** 2,
        "you averaged the distances 1 − cos: the diversity term is the mean cosine similarity": 1 - want,
    })


@exercise
def meta_objective(fn):
    logits, label, keep = _view_logits(17, views=10, classes=5), 2, 0.3
    got = _run("meta_objective", fn, logits, label, keep)
    kept = logits[select_confident_views(entropy(logits), keep)]
    want = -average_log_probs(kept)[label]
    diagnose("meta_objective", got, want, {
        "you used every view: the meta objective scores the confident views' average prediction, as TPT predicts": -average_log_probs(logits)[label],
        "the average of per-view cross-entropies is not the cross-entropy of the averaged prediction: average the probabilities first": F.cross_entropy(kept, torch.full((len(kept),), label)),
        "the mean of logits is not the mean of probabilities: average softmax outputs, not logits": F.cross_entropy(kept.mean(0, keepdim=True), torch.tensor([label])),
        "you returned log p̃_y: the loss is its NEGATIVE, −log p̃_y": -want,
    })


# ---------------------------------------------------------------- lab 8: TDA's positive cache and its logits

from ttpt.tda import CacheEntry, ClassCache, cache_logits  # noqa: E402  (lab 8's own imports, kept with its section)


def _offers(seed, n=40, classes=4, dim=6):
    "A seeded stream of (label, feature, entropy) offers; entropies are distinct, so each names its sample."
    g = _generator(seed)
    return list(zip(torch.randint(classes, (n,), generator=g).tolist(), torch.randn(n, dim, generator=g), torch.rand(n, generator=g).tolist()))


def _cache_under(rule, offers, capacity):
    "{label: [(entropy, feature), ...]} after `offers` under ttpt's rule ('right') or a typical mistake's."
    if rule == "right":
        cache = ClassCache(capacity)
        for label, feature, h in offers: cache.offer(label, CacheEntry(feature, h))
        return {label: [(e.entropy, e.feature) for e in queue] for label, queue in cache.queues.items()}
    cache = {}
    for label, feature, h in offers:
        queue = cache.setdefault(label, [])
        if len(queue) < capacity or rule == "no capacity": queue.append((h, feature))
        elif rule == "replace the best" and h < queue[-1][0]: queue[0] = (h, feature)
        elif rule == "always replace": queue[-1] = (h, feature)
        elif rule == "keep the least confident" and h > queue[0][0]: queue[0] = (h, feature)
        elif rule == "replace the last added" and h < queue[-1][0]: queue[-1] = (h, feature)
        elif rule == "first in, first out": queue.pop(0); queue.append((h, feature))
        if rule != "replace the last added": queue.sort(key=lambda item: item[0])
    return cache


_CACHE_MISTAKES = {
    "never replace": "a full class never takes a new sample: when the class is full, a more confident sample (lower entropy) must replace its highest-entropy entry",
    "replace the best": "you replaced the most confident entry (the lowest entropy): replace the class's HIGHEST-entropy entry",
    "always replace": "you replaced an entry even when the new sample is less confident: replace only if its entropy is lower than the highest in the class",
    "keep the least confident": "you kept the least confident samples: a LOWER entropy is more confident, and it is those the cache keeps",
    "replace the last added": "you replaced the last entry added, not the highest-entropy one: keep each class's entries sorted by entropy, most confident first",
    "first in, first out": "you dropped the oldest entry: TDA's queue drops the highest-entropy entry, not the oldest",
    "no capacity": "the class holds more than `capacity` entries: when it is full, replace instead of appending",
}


def _as_cache(name, got):
    "The student's cache as {label: [(entropy, feature), ...]}, or a `NotRunning` diagnosis."
    if not isinstance(got, dict): raise NotRunning(f"{name} returned a {type(got).__name__}: return the cache, a dict label -> list of (feature, entropy)")
    try: return {int(label): [(float(h), torch.as_tensor(f)) for f, h in queue] for label, queue in got.items()}
    except Exception as e: raise NotRunning(f"{name}: each class's entries must be (feature, entropy) pairs") from e


def _same_cache(a, b):
    return a.keys() == b.keys() and all(len(a[c]) == len(b[c]) and all(abs(h - k) < 1e-9 and torch.equal(f, g) for (h, f), (k, g) in zip(a[c], b[c])) for c in a)


@exercise
def update_positive_cache(fn):
    for seed, capacity in ((20, 3), (21, 2), (22, 1)):
        offers, got = _offers(seed), {}
        for label, feature, h in offers: got = _run("update_positive_cache", fn, got, label, feature, h, capacity)
        got = _as_cache("update_positive_cache", got)
        if _same_cache(got, _cache_under("right", offers, capacity)): continue
        for rule, message in _CACHE_MISTAKES.items():
            if _same_cache(got, _cache_under(rule, offers, capacity)): raise Wrong(message)
        right = _cache_under("right", offers, capacity)
        if {c: sorted(h for h, _ in q) for c, q in got.items()} == {c: [h for h, _ in q] for c, q in right.items()}:
            raise Wrong("the right entries, in the wrong order: keep each class's entries sorted by entropy, most confident first")
        raise Wrong(f"with capacity {capacity}, your cache holds {sum(map(len, got.values()))} entries over classes {sorted(got)}; "
                    f"ttpt's holds {sum(map(len, right.values()))} over {sorted(right)}")


@exercise
def positive_cache_logits(fn):
    g = _generator(23)
    keys, labels, alpha, beta = 3 * torch.randn(7, 8, generator=g), torch.tensor([0, 2, 2, 4, 1, 0, 3]), 1.7, 5.5
    one_hot = F.one_hot(labels, 5).float()
    for query in (2 * torch.randn(3, 8, generator=g), 2 * torch.randn(8, generator=g)):
        got = _run("positive_cache_logits", fn, query, keys, labels, 5, alpha, beta)
        q, k = F.normalize(query, dim=-1), F.normalize(keys, dim=-1)
        want = cache_logits(q, k, one_hot, alpha, beta)
        cosine = q @ k.T
        diagnose("positive_cache_logits", got, want, {
            "you did not normalise the features: the affinity is a function of the COSINE, so normalise the query and the keys first": cache_logits(query, keys, one_hot, alpha, beta),
            "you normalised the keys but not the query": cache_logits(query, k, one_hot, alpha, beta),
            "you normalised the query but not the keys": cache_logits(q, keys, one_hot, alpha, beta),
            "wrong sign in the affinity: it is exp(−β(1 − x)), which is 1 for an identical key and shrinks as the cosine x falls": alpha * torch.exp(beta * (1 - cosine)) @ one_hot,
            "wrong sign in the affinity: it is exp(−β(1 − x)), not exp(−β(1 + x))": alpha * torch.exp(-beta * (1 + cosine)) @ one_hot,
            "you forgot α: scale the cache's votes by alpha": want / alpha,
            "α belongs outside the exponential, as the votes' weight: α·exp(−β(1 − x))": torch.exp(-alpha * beta * (1 - cosine)) @ one_hot,
            "α and β are swapped: α weighs the votes, β sharpens the affinity": cache_logits(q, k, one_hot, beta, alpha),
            "you forgot β: the affinity is exp(−β(1 − x))": alpha * torch.exp(-(1 - cosine)) @ one_hot,
            "you forgot the exponential: the affinity is exp(−β(1 − x))": alpha * (-beta * (1 - cosine)) @ one_hot,
            "each key must vote for its class: multiply the affinities (…, M) by the one-hot labels (M, K)": alpha * torch.exp(-beta * (1 - cosine)),
            "you returned probabilities (a softmax): return the cache's logits": want.softmax(-1),
        })
