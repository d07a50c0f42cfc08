"""Feedback for the ttpt labs: each check runs a student's function on several small inputs, smallest first, compares
it with ttpt's own implementation, and when they differ says which typical mistake explains the difference, on the
smallest input that shows it.

A check prints nothing when the answer is right and a few lines starting with ✗ when it is wrong, so that an
otter-grader test case (a doctest expecting no output) passes or fails with those lines as its feedback. Two checks
per exercise: `runs` (the function runs and returns something of the right kind and shape) and `check` (its values
are ttpt's). A check also tells when the answer calls ttpt's own solution instead of computing it, and checks an
answer that calls another exercise's function with ttpt's version of that function when the student's is wrong,
so that one mistake is reported once, where it is made. `Grader` is the in-notebook grader: it finds its notebook
whatever it was renamed to and shows each check's feedback without doctest's report around it."""
import contextlib
import copy
import functools
import io
import glob
import html
import inspect
import json
import math
import os
import sys
import types
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from ttpt.methods.metatpt.augment import affine_matrices
from ttpt.data.benchmark import SOURCE_CLASSES
from ttpt.methods.self_tpt.cpt import CPTLoss, supervised_contrastive_loss
from ttpt.methods.ctpt import CTPT, text_dispersion
from ttpt.methods.episodic import Episodic
from ttpt.methods.tlla.landscape import filter_normalised_direction
from ttpt.methods.metatpt.method import diversity
from ttpt.core.models import load_clip
from ttpt.core.prompts import PromptLearner, encode_token_ids
from ttpt.harness.reports import expected_calibration_error, reliability_table
from ttpt.core.selection import average_log_probs, entropy, marginal_entropy, n_confident, select_confident_views, vote_shares
from ttpt.methods.self_tpt.method import GradientMatching, context_gradients
from ttpt.core.steps import SharpnessAwareStep, plain_step
from ttpt.methods.tlla.stss import STSS
from ttpt.methods.tda import CacheEntry, ClassCache, affinity, cache_logits
from ttpt.methods.tpt import PromptTuner
from ttpt.methods.zero import Zero
from ttpt.core.zeroshot import class_text_features, clip_logits


class Wrong(Exception):
    "A diagnosis of a wrong answer, in words a student can act on: the mistake, then the smallest input that shows it."
    def __init__(self, message:str, # the mistake or the property that failed, in the lab's terms
                 shown:str="", # the smallest input that shows it, and what the answer gave there
                ):
        super().__init__(message)
        self.message, self.shown = message, shown

    def __str__(self): return self.message + (f"\n  {self.shown}" if self.shown else "")


class NotRunning(Wrong):
    "The function crashed, returned nothing, or returned the wrong kind or shape of thing."


class LibraryCalled(NotRunning):
    "The answer called ttpt's own implementation of the exercise instead of computing it."


def _short(value) -> str:
    "A value as a student reads it: a few rounded numbers, or a shape."
    if isinstance(value, torch.Tensor):
        v = value.detach()
        if v.dtype == torch.bool or not v.is_floating_point(): return str(v.tolist()) if v.numel() <= 12 else f"a {tuple(v.shape)} tensor"
        if v.numel() == 1: return f"{v.item() + 0.0:.4g}" # + 0.0: no "-0"
        if v.numel() <= 12: return str([[round(x, 4) for x in row] for row in v.tolist()] if v.dim() == 2 else (v.double().round(decimals=4).tolist()))
        return f"a {tuple(v.shape)} tensor"
    if isinstance(value, (list, tuple)) and len(value) <= 6: return repr(value)
    if callable(value): return getattr(value, "__doc__", None) or getattr(value, "__name__", "a function")
    if isinstance(value, float): return f"{value:g}"
    return repr(value) if len(repr(value)) < 60 else type(value).__name__


def _forbidden_codes(functions) -> dict:
    "code object -> the name a student knows it by, of each library function (or method) that solves an exercise."
    return {inspect.unwrap(f).__code__: "labcheck's reference answer" if f.__module__ == __name__ else f"ttpt's own `{f.__qualname__}`" for f in functions}


def _stand_in(reference):
    "ttpt's answer to another exercise, put in place of a student's wrong one (see `_standing_in`): its calls are allowed."
    def stand_in(*args, **kwargs): return reference(*args, **kwargs)
    return stand_in


def _call(name, fn, args, forbidden=(), allow_none=False):
    """Call the student's `fn(*args)`; a crash or a missing return value becomes `NotRunning`, and a call into one of the
    `forbidden` library functions (other than through a stand-in for another exercise) becomes `LibraryCalled`."""
    codes, allowed, hits = _forbidden_codes(forbidden), {_stand_in(None).__code__}, []
    def watch(frame, event, arg):
        if event == "call" and frame.f_code in codes:
            outer = frame.f_back
            while outer is not None and outer.f_code not in allowed: outer = outer.f_back
            if outer is None: hits.append(codes[frame.f_code])
    previous = sys.getprofile()
    sys.setprofile(watch)
    try: out = fn(*args)
    except Wrong: raise
    except Exception as e: raise NotRunning(f"{name} raised {type(e).__name__}: {e}") from e
    finally: sys.setprofile(previous)
    if hits: raise LibraryCalled(f"{name} calls {hits[0]}, which solves this exercise: write the computation yourself")
    if (out is None and not allow_none) or out is Ellipsis:
        raise NotRunning(f"{name} returns nothing yet: write its body (replace the `...`) and return the result")
    return out


def _tensor(name, value):
    "The student's result as a float64 tensor (from a tensor, a number, a list or a numpy array), or a `NotRunning` diagnosis."
    if isinstance(value, torch.Tensor): return value.detach().double()
    try: return torch.as_tensor(value, dtype=torch.float64)
    except Exception as e: raise NotRunning(f"{name} returned a {type(value).__name__}, not a tensor or number") from e


def _close(a, b, tol=1e-4):
    return a.shape == b.shape and torch.allclose(a.double(), b.double(), rtol=tol, atol=tol, equal_nan=True)


def _shown(label, got, want, what="") -> str:
    return f"smallest input that shows it: {label}\n  {what}yours: {_short(got)}   expected: {_short(want)}"


def _copies(args):
    "Fresh arguments: `args()` if it makes them (inputs with a graph), else copies of the tensors that carry no graph."
    if callable(args): return args()
    return tuple(a.detach().clone() if isinstance(a, torch.Tensor) and not a.requires_grad else a for a in args)


def compare(name:str, # the student's function's name (in messages)
            fn, # the student's function
            cases:list, # (label, args) pairs, smallest first: the inputs it is called on (args: a tuple, or a function making it)
            reference, # ttpt's answer, a function with the student's signature
            mistakes:dict, # message -> a typical wrong answer, a function with the student's signature
            forbidden=(), # library functions that solve the exercise
            properties=(), # (message, predicate(args, got) -> bool) checked where no typical mistake explains a difference
            compare_as=None, # (args, value) -> what to compare, e.g. the scores of returned indices
            validate=None, # (args, got) -> raises `Wrong` if `got` is not a valid answer at all
            what="", # what the values shown are, when `compare_as` changes them
           ):
    """Run `fn` on every case, smallest first; at the first case it gets wrong raise `Wrong` naming the typical mistake
    that explains its answers on every case (else one that explains this case), or the property that fails."""
    view = compare_as or (lambda args, value: value)
    def value_of(f, args): return _tensor(name, view(args, f(*_copies(args))))
    def made(mistake, args, got): # whether `mistake` gives `got` on `args`
        try: return _close(got, value_of(mistake, args))
        except Exception: return False
    answers = [] # (label, args, got, want) of every case
    for label, args in cases:
        want = value_of(reference, args)
        try:
            raw = _call(name, fn, _copies(args), forbidden)
            if validate is not None: validate(args, raw, label)
            answers.append((label, args, _tensor(name, view(args, raw)), want))
        except LibraryCalled: raise
        except NotRunning:
            if all(_close(got, want) for _, _, got, want in answers): raise
            break # it crashes on a larger input, but a smaller one already shows the mistake: name that
    wrong = [(label, args, got, want) for label, args, got, want in answers if not _close(got, want)]
    if not wrong: return
    label, args, got, want = wrong[0]
    here = [m for m, mistake in mistakes.items() if not torch.isnan(got).any() and made(mistake, args, got)]
    everywhere = [m for m in here if all(made(mistakes[m], a, g) for _, a, g, _ in answers)]
    if everywhere or here: raise Wrong((everywhere or here)[0], _shown(label, got, want, what)) # a typical mistake keeps the "runs" point
    if got.shape != want.shape:
        raise NotRunning(f"{name} returned shape {tuple(got.shape)}, expected {tuple(want.shape)}", _shown(label, got, want))
    if torch.isnan(got).any(): raise Wrong(f"{name} returns nan here: a 0·log 0 or 0/0 somewhere (log_softmax, or clamp before the log)", _shown(label, got, want))
    for message, holds in properties:
        if not holds(args, got): raise Wrong(message, _shown(label, got, want))
    raise Wrong(f"{name} differs from ttpt's answer", _shown(label, got, want, what))


EXERCISES = {} # exercise name -> function(student_fn) that raises `Wrong` or returns None
REFERENCES = {} # exercise name -> ttpt's answer, with the student's signature
SOLVED_BY = {} # exercise name -> the library functions that solve it (a student version must not import them)
FORBIDDEN = {} # exercise name -> those and the library helpers that do most of it: an answer must not call any


def exercise(reference, *solved_by, helpers=()):
    """Register an exercise's check under its function's name, with ttpt's answer, the library functions that solve it
    and the `helpers` (methods of classes a lab needs for its experiments) that would do most of it."""
    def register(f):
        EXERCISES[f.__name__], REFERENCES[f.__name__] = f, reference
        SOLVED_BY[f.__name__] = (reference, *solved_by)
        FORBIDDEN[f.__name__] = (reference, *solved_by, *helpers)
        return f
    return register


def _nested_names(code) -> set:
    "Every global name a function's code (and the code nested in it: comprehensions, lambdas) refers to."
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType): names |= _nested_names(const)
    return names


def _passes(name, fn) -> bool:
    "Whether the student's `fn` passes the `name` exercise's check (silently)."
    try: EXERCISES[name](fn)
    except Wrong: return False
    return True


def _standing_in(name, fn):
    """`fn` with ttpt's version of every other exercise's function it calls whose student version fails its own check, and
    the names replaced: so that a wrong earlier answer is reported once, at its own exercise (root cause first)."""
    if not isinstance(fn, types.FunctionType) or hasattr(fn, "__wrapped__"): return fn, []
    replaced = {}
    for other in sorted(_nested_names(fn.__code__) & set(EXERCISES) - {name}):
        theirs = fn.__globals__.get(other)
        if callable(theirs) and not _passes(other, theirs): replaced[other] = _stand_in(REFERENCES[other])
    if not replaced: return fn, []
    stand_in = types.FunctionType(fn.__code__, {**fn.__globals__, **replaced}, fn.__name__, fn.__defaults__, fn.__closure__)
    return stand_in, sorted(replaced)


def _feedback(name, fn, only_running):
    if name not in EXERCISES: raise KeyError(f"no exercise {name!r}; known: {sorted(EXERCISES)}")
    fn, replaced = _standing_in(name, fn)
    note = "".join(f"\n  (checked with ttpt's `{r}` in place of yours, which fails its own check: fix that one first)" for r in replaced)
    try: EXERCISES[name](fn)
    except NotRunning as e: print(f"✗ {e}{note}")
    except Wrong as e:
        if not only_running: print(f"✗ {e}{note}")


def runs(name:str, # the exercise
         fn, # the student's function
        ):
    "Print ✗ lines if `fn` crashes, returns nothing, returns the wrong shape or calls ttpt's solution; nothing otherwise."
    _feedback(name, fn, only_running=True)


def check(name:str, # the exercise
          fn, # the student's function
         ):
    "Print ✗ lines naming the mistake if `fn` does not match ttpt on the exercise's inputs; nothing otherwise."
    _feedback(name, fn, only_running=False)


def yours(name:str, # the exercise
          fn, # the student's function
         ):
    "The student's function for a later cell of the lab if it runs (a wrong answer shows in the lab's own experiment), else ttpt's, saying so."
    with contextlib.redirect_stdout(io.StringIO()) as said: runs(name, fn)
    if not said.getvalue(): return fn
    print(f"ⓘ your {name} does not run yet, so this cell uses ttpt's own")
    return REFERENCES[name]



def _generator(seed=0): return torch.Generator().manual_seed(seed)


def _randn(*shape, seed, scale=1.0): return torch.randn(*shape, generator=_generator(seed)) * scale


@functools.cache
def _clip(): return load_clip()


CLASSES = SOURCE_CLASSES[:5] # the classes of the checks' small prompt learners
LN2 = math.log(2)


# ---------------------------------------------------------------- lab 1: CLIP zero-shot and prompts

def _clip_logits_reference(image_feats, text_feats, logit_scale):
    return clip_logits(SimpleNamespace(logit_scale=logit_scale), F.normalize(image_feats, dim=-1), F.normalize(text_feats, dim=-1))


@exercise(_clip_logits_reference, clip_logits)
def clip_logits_from_features(fn):
    n, cos = F.normalize, lambda a, b: F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T
    cases = [("image_feats = [[3., 1.]], text_feats = [[1., 0.], [0., 2.]], logit_scale = 10", (torch.tensor([[3.0, 1.0]]), torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor(10.0))),
             ("3 images and 4 classes, D = 8, features of different lengths, logit_scale = 50", (_randn(3, 8, seed=1, scale=3) * torch.tensor([[1.0], [0.3], [2.0]]), _randn(4, 8, seed=2, scale=2), torch.tensor(50.0)))]
    compare("clip_logits_from_features", fn, cases, _clip_logits_reference, {
        "you did not normalise the features: CLIP compares directions, so divide each row by its norm first": lambda i, t, s: s * i @ t.T,
        "you normalised the image features but not the text features": lambda i, t, s: s * n(i, dim=-1) @ t.T,
        "you normalised the text features but not the image features": lambda i, t, s: s * i @ n(t, dim=-1).T,
        "you forgot CLIP's temperature: multiply the cosine similarities by logit_scale": lambda i, t, s: cos(i, t),
        "you used exp(logit_scale): logit_scale here is the scale itself (CLIP's exp is already taken)": lambda i, t, s: s.exp() * cos(i, t),
        "you divided by logit_scale: multiply the cosine similarities by it": lambda i, t, s: cos(i, t) / s,
        "you normalised along the wrong dimension: each feature vector is a row (dim=-1)": lambda i, t, s: s * n(i, dim=0) @ n(t, dim=0).T,
        "you returned probabilities (a softmax), not logits": lambda i, t, s: (s * cos(i, t)).softmax(-1),
        "your logits are transposed: rows are images, columns are classes, (B, K)": lambda i, t, s: s * cos(t, i),
    }, forbidden=FORBIDDEN["clip_logits_from_features"])


def _prompt_features(clip, prompts, normalize=True):
    with torch.no_grad(): return encode_token_ids(clip.model, clip.tokenizer(prompts), normalize=normalize)


@exercise(class_text_features)
def ensemble_text_features(fn):
    clip = _clip()
    cases = [(f"classnames = {list(CLASSES[:3])}, templates = ('a photo of a {{}}.', 'a {{}} shape.')", (clip, CLASSES[:3], ("a photo of a {}.", "a {} shape."))),
             (f"classnames = {list(CLASSES[:4])}, 3 templates", (clip, CLASSES[:4], ("a photo of a {}.", "a drawing of a {}.", "a {} shape.")))]
    def unit(clip, c, t): return _prompt_features(clip, [x.format(k) for k in c for x in t]).view(len(c), len(t), -1)
    compare("ensemble_text_features", fn, cases, class_text_features, {
        "the mean of unit vectors is not a unit vector: normalise the class features again after averaging": lambda clip, c, t: unit(clip, c, t).mean(1),
        "you summed the templates' features: average them, then normalise": lambda clip, c, t: unit(clip, c, t).sum(1),
        "you averaged the raw (unnormalised) text features: normalise each prompt's feature before averaging": lambda clip, c, t: F.normalize(_prompt_features(clip, [x.format(k) for k in c for x in t], normalize=False).view(len(c), len(t), -1).mean(1), dim=-1),
        "you averaged over the classes instead of the templates": lambda clip, c, t: F.normalize(unit(clip, c, t).mean(0), dim=-1),
        "your prompts were built template-major but reshaped class-major: the features of different classes got mixed": lambda clip, c, t: F.normalize(_prompt_features(clip, [x.format(k) for x in t for k in c]).view(len(c), len(t), -1).mean(1), dim=-1),
        "you kept only the first template: average the features of every template": lambda clip, c, t: unit(clip, c, t)[:, 0],
        "you encoded the bare class names: write each name into every template (template.format(name))": lambda clip, c, t: _prompt_features(clip, list(c)),
        "you normalised over the classes (dim=0) after averaging: each class feature (row) must have norm 1": lambda clip, c, t: F.normalize(unit(clip, c, t).mean(1), dim=0),
    }, forbidden=FORBIDDEN["ensemble_text_features"])


# ---------------------------------------------------------------- lab 2: views, confident selection, marginal entropy

def _view_logits(seed=2, views=12, classes=5): return _randn(views, classes, seed=seed, scale=3)


def _entropy_of(p, log): return -(p * log(p)).sum(-1)


@exercise(entropy, marginal_entropy, average_log_probs)
def entropy_of_logits(fn):
    cases = [("logits = [[1., 0.]]", (torch.tensor([[1.0, 0.0]]),)),
             ("logits = [[2., 0.], [0., 0.]] (the second view uniform: H = log 2 = 0.693 nats)", (torch.tensor([[2.0, 0.0], [0.0, 0.0]]),)),
             ("logits = [[2., 0., 0.], [0., 1., 3.]]", (torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 3.0]]),)),
             ("12 views, 5 classes, random", (_view_logits(),)),
             ("logits = [[0., -120.]] (a confident view: p = [1, 1e-52])", (torch.tensor([[0.0, -120.0]]),))]
    compare("entropy_of_logits", fn, cases, entropy, {
        "your entropy uses log base 2: ttpt measures entropy in nats (natural log)": lambda l: entropy(l) / LN2,
        "your entropy uses log base 10: ttpt measures entropy in nats (natural log)": lambda l: entropy(l) / math.log(10),
        "your entropy is negative: H = −Σ p log p has a minus sign": lambda l: -entropy(l),
        "you took the softmax over the views (dim=0): each view's distribution is over the classes (dim=-1)": lambda l: _entropy_of(l.softmax(0), torch.log),
        "your p does not sum to 1: exp(logits) needs dividing by its sum (a softmax)": lambda l: -(l.exp() * l).sum(-1),
        "you summed over every view: return one entropy per view, shape (N,)": lambda l: entropy(l).sum(),
        "you averaged over every view: return one entropy per view, shape (N,)": lambda l: entropy(l).mean(),
        "you averaged over the classes instead of summing: H = −Σ_c p_c log p_c": lambda l: entropy(l) / l.shape[-1],
        "you returned Σ p·logits instead of Σ p·log p: use log_softmax, not the raw logits": lambda l: -(l.softmax(-1) * l).sum(-1),
        "you returned the terms −p_c log p_c of every class: sum them over the classes (dim=-1)": lambda l: -(l.softmax(-1) * l.log_softmax(-1)),
    }, forbidden=FORBIDDEN["entropy_of_logits"])


def _valid_indices(args, got, label):
    "keep_confident must return distinct integer indices of views."
    scores = args[0]
    if isinstance(got, torch.Tensor) and got.dtype == torch.bool:
        raise NotRunning("you returned a mask over the views: return the INDICES of the kept views, most confident first (argsort)", f"smallest input that shows it: {label}")
    t = _tensor("keep_confident", got)
    if t.dim() != 1 or not _close(t, t.round()):
        raise Wrong("you returned the scores of the kept views: return their indices (argsort)" if t.dim() == 1 else f"keep_confident returned shape {tuple(t.shape)}: return a 1-D tensor of view indices",
                    _shown(label, t, select_confident_views(*args)))
    if len(t) and (t.min() < 0 or t.max() >= len(scores)): raise NotRunning(f"keep_confident returned {_short(t)}: these are not indices of the {len(scores)} views", f"smallest input that shows it: {label}")
    if len(set(t.long().tolist())) != len(t): raise Wrong("you returned a view more than once: each kept view appears once", _shown(label, t, select_confident_views(*args)))


@exercise(select_confident_views, n_confident)
def keep_confident(fn):
    cases = [("scores = [0.3, 0.1, 0.5, 0.2, 0.4, 0.6, 0.0], keep = 0.3 (ρN = 2.1)", (torch.tensor([0.3, 0.1, 0.5, 0.2, 0.4, 0.6, 0.0]), 0.3)),
             ("scores = [0.3, 0.1, 0.5, 0.2, 0.4, 0.6, 0.0], keep = 0.5 (ρN = 3.5)", (torch.tensor([0.3, 0.1, 0.5, 0.2, 0.4, 0.6, 0.0]), 0.5)),
             ("scores = [0.5, 0.2, 0.2, 0.9, 0.2, 0.1], keep = 0.5 (ties)", (torch.tensor([0.5, 0.2, 0.2, 0.9, 0.2, 0.1]), 0.5)),
             ("20 random scores, keep = 0.38 (ρN = 7.6)", (torch.rand(20, generator=_generator(3)), 0.38)),
             ("64 random scores, keep = 0.1 (ρN = 6.4)", (torch.rand(64, generator=_generator(4)), 0.1))]
    def picked(args, value): # the scores of the picked views, in the order returned: right under any tie-break
        t = _tensor("keep_confident", value)
        return args[0].double()[t.long()] if t.dim() == 1 and _close(t, t.round()) else t
    order = lambda s: s.argsort()
    compare("keep_confident", fn, cases, select_confident_views, {
        "you kept the highest-entropy views: the confident views are those with the LOWEST entropy": lambda s, k: s.argsort(descending=True)[:int(len(s) * k)],
        "you kept ⌈ρN⌉ views: TPT keeps ⌊ρN⌋, rounded DOWN": lambda s, k: order(s)[:math.ceil(len(s) * k)],
        "you kept round(ρN) views: TPT keeps ⌊ρN⌋, rounded DOWN": lambda s, k: order(s)[:round(len(s) * k)],
        "you kept one view too many: ⌊ρN⌋ views, not ⌊ρN⌋ + 1": lambda s, k: order(s)[:int(len(s) * k) + 1],
        "you kept one view too few: ⌊ρN⌋ views, not ⌊ρN⌋ − 1": lambda s, k: order(s)[:int(len(s) * k) - 1],
        "you kept the views AFTER the cut: the confident views are the first ⌊ρN⌋ of the ascending order": lambda s, k: order(s)[int(len(s) * k):],
        "you kept the fraction 1 − ρ: keep the fraction ρ": lambda s, k: order(s)[:int(len(s) * (1 - k))],
        "you returned the confident views in their original order: return them most confident first": lambda s, k: order(s)[:int(len(s) * k)].sort().values,
    }, forbidden=FORBIDDEN["keep_confident"], compare_as=picked, validate=_valid_indices, what="the scores of the views kept, ")


@exercise(marginal_entropy, average_log_probs, entropy)
def marginal_entropy_of(fn):
    cases = [("logits = [[2., 0.], [0., 1.]] (2 views, 2 classes)", (torch.tensor([[2.0, 0.0], [0.0, 1.0]]),)),
             ("logits = [[2., 0., 0.], [0., 1., 3.]]", (torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 3.0]]),)),
             ("6 views, 5 classes, random", (_view_logits(4, views=6),)),
             ("logits = [[0., -120.], [0., -130.]] (both views sure of class 0)", (torch.tensor([[0.0, -120.0], [0.0, -130.0]]),))]
    p_mean = lambda l: l.softmax(-1).mean(0)
    compare("marginal_entropy_of", fn, cases, marginal_entropy, {
        "the mean of logits is not the mean of probabilities: average the softmax outputs, p̃ = 1/S Σ softmax(logits_i)": lambda l: entropy(l.mean(0)),
        "the average of the views' entropies is not the entropy of their average prediction: average the probabilities first": lambda l: entropy(l).mean(),
        "your marginal entropy uses log base 2: measure it in nats": lambda l: marginal_entropy(l) / LN2,
        "you averaged the log-probabilities (a geometric mean): average the probabilities themselves": lambda l: entropy(l.log_softmax(-1).mean(0)),
        "you averaged the log-probabilities (a geometric mean, which does not even sum to 1): average the probabilities themselves": lambda l: (lambda m: -(m.exp() * m).sum())(l.log_softmax(-1).mean(0)),
        "you summed the views' probabilities: AVERAGE them, so that p̃ sums to 1": lambda l: _entropy_of(l.softmax(-1).sum(0), torch.log),
        "you took the softmax over the views (dim=0): each view's prediction is a softmax over the classes (dim=-1)": lambda l: _entropy_of(l.softmax(0).mean(0), torch.log),
        "you averaged over the classes (dim=-1): p̃ averages the views (dim=0)": lambda l: _entropy_of(l.softmax(-1).mean(-1), torch.log),
        "you returned one term per class: the marginal entropy is their sum, a single number": lambda l: -(p_mean(l) * p_mean(l).log()),
        "your marginal entropy is negative: H = −Σ p̃ log p̃": lambda l: -marginal_entropy(l),
    }, forbidden=FORBIDDEN["marginal_entropy_of"])


# ---------------------------------------------------------------- lab 3: one TPT step, the per-image reset, Zero's vote

def _tpt_step_reference(learner, optimizer, image_feats, selected, logit_scale):
    logits = logit_scale * image_feats @ learner().T
    return plain_step(optimizer, lambda: marginal_entropy(logits[selected]))


def _step_inputs(seed=5):
    feats = F.normalize(_randn(16, _clip().model.text_projection.shape[1], seed=seed), dim=-1)
    return feats, torch.tensor([3, 7, 1, 12]), _clip().logit_scale


OPTIMIZERS = {"plain SGD (lr 0.05), where the loss's scale shows": lambda p: torch.optim.SGD(p, lr=0.05),
              "AdamW (lr 0.005), TPT's optimiser": lambda p: torch.optim.AdamW(p, lr=5e-3)}


def _step_trace(fn, optimizer_of, steps=2, forbidden=()):
    "The context's moves and the returned losses of `steps` calls of a tpt_step-like `fn`, a stale gradient planted first."
    learner = PromptLearner(_clip(), CLASSES)
    optimizer = optimizer_of(learner.parameters())
    feats, selected, scale = _step_inputs()
    learner.ctx.grad = torch.ones_like(learner.ctx) # a stale gradient from an earlier step
    moves, losses = [], []
    for _ in range(steps):
        before = learner.ctx.detach().clone()
        loss = _call("tpt_step", fn, (learner, optimizer, feats, selected, scale), forbidden, allow_none=True)
        moves.append(learner.ctx.detach() - before)
        losses.append(float("nan") if loss is None else float(_tensor("tpt_step", loss).reshape(-1)[0]) if _tensor("tpt_step", loss).numel() == 1 else float("inf"))
    return moves, losses


def _move_close(got, want): return (got - want).abs().max() <= 1e-3 * want.abs().max() + 1e-8


STEP_MISTAKES = {
    "gradients accumulated: call optimizer.zero_grad() before loss.backward()":
        lambda l, o, f, s, c: (lambda loss: (loss.backward(), o.step(), loss)[-1])(marginal_entropy((c * f @ l().T)[s])),
    "you used every view: TPT's loss is the marginal entropy of the SELECTED confident views only":
        lambda l, o, f, s, c: plain_step(o, lambda: marginal_entropy(c * f @ l().T)),
    "the context moved uphill: you maximised the entropy (check the loss's sign)":
        lambda l, o, f, s, c: -plain_step(o, lambda: -marginal_entropy((c * f @ l().T)[s])),
    "you minimised the mean of the views' entropies: TPT minimises the entropy of their averaged prediction":
        lambda l, o, f, s, c: plain_step(o, lambda: entropy((c * f @ l().T)[s]).mean()),
    "your loss is in bits (log base 2): the marginal entropy is in nats, and its scale sets the step of plain SGD":
        lambda l, o, f, s, c: plain_step(o, lambda: marginal_entropy((c * f @ l().T)[s]) / LN2),
    "you left out CLIP's logit_scale: the views' logits are s·f·w, not f·w":
        lambda l, o, f, s, c: plain_step(o, lambda: marginal_entropy((f @ l().T)[s])),
    "you took the marginal entropy of probabilities: marginal_entropy takes the LOGITS":
        lambda l, o, f, s, c: plain_step(o, lambda: marginal_entropy((c * f @ l().T)[s].softmax(-1))),
    "you stepped before backward: optimizer.step() uses the gradient of THIS loss only after loss.backward()":
        lambda l, o, f, s, c: (lambda loss: (o.zero_grad(), o.step(), loss.backward(), loss)[-1])(marginal_entropy((c * f @ l().T)[s])),
}


@exercise(_tpt_step_reference, plain_step, helpers=(PromptTuner.adapt, SharpnessAwareStep.__call__))
def tpt_step(fn):
    forbidden = FORBIDDEN["tpt_step"]
    for optimizer_name, optimizer_of in OPTIMIZERS.items():
        label = f"{optimizer_name}, a stale gradient in learner.ctx.grad, 4 selected views of 16, {len(CLASSES)} classes"
        got_moves, got_losses = _step_trace(fn, optimizer_of, forbidden=forbidden)
        if all(m.abs().max() == 0 for m in got_moves) and all(math.isnan(l) for l in got_losses):
            raise NotRunning("tpt_step returns nothing and changes nothing yet: write its body (replace the `...`) and return the loss")
        want_moves, want_losses = _step_trace(_tpt_step_reference, optimizer_of)
        for step, (got, want) in enumerate(zip(got_moves, want_moves), 1):
            if _move_close(got, want): continue
            shown = f"smallest input that shows it: step {step} with {label}\n  your step moved the context by {got.norm():.4g}, TPT's by {want.norm():.4g} (they differ by {(got - want).norm():.3g})"
            if got.abs().max() == 0: raise Wrong("the context did not move: call loss.backward() and then optimizer.step() (zero_grad() comes before backward, not between backward and step)", shown)
            for message, mistake in STEP_MISTAKES.items():
                moves, _ = _step_trace(mistake, optimizer_of)
                if _move_close(got, moves[step - 1]) and all(_move_close(a, b) for a, b in zip(got_moves[:step], moves)): raise Wrong(message, shown)
            ratio = float((got * want).sum() / (want * want).sum())
            if _move_close(got, ratio * want): raise Wrong(f"your loss is {ratio:.3g} times TPT's: scaling the loss scales plain SGD's step (AdamW hides it); the loss is H(p̃) in nats", shown)
            raise Wrong("your step does not move the context as TPT's does: loss = marginal_entropy of the selected views' logits s·f·w, then zero_grad, backward, step", shown)
        for step, (got, want) in enumerate(zip(got_losses, want_losses), 1):
            shown = f"smallest input that shows it: step {step} with {label}\n  yours: {got:.5g}   expected: {want:.5g}"
            if math.isnan(got): raise Wrong("tpt_step returns nothing: return the loss, H(p̃) of the selected views before the step", shown)
            if math.isinf(got): raise Wrong("tpt_step returned more than one number: return the loss, a scalar", shown)
            if abs(got - want) <= 1e-4 * max(1.0, abs(want)): continue
            if step < len(want_losses) and abs(got - want_losses[step]) <= 1e-4: raise Wrong("you returned the loss AFTER the step: return the loss the step was taken on", shown)
            if abs(got - want / LN2) <= 1e-4: raise Wrong("the loss you return is in bits (log base 2): return H(p̃) in nats", shown)
            raise Wrong("the loss tpt_step returns is not H(p̃) of the selected views before the step", shown)


def _reset_reference(learner, optimizer, initial):
    learner.load_state_dict(initial["learner"])
    optimizer.load_state_dict(initial["optimizer"])


def _image_step(learner, optimizer, image):
    "One TPT step on a different image's (random) views."
    feats, selected, scale = _step_inputs(seed=20 + image)
    plain_step(optimizer, lambda: marginal_entropy((scale * feats @ learner().T)[selected]))


@exercise(_reset_reference, helpers=(Episodic.reset,))
def reset_episode(fn):
    learner = PromptLearner(_clip(), CLASSES)
    optimizer = torch.optim.AdamW(learner.parameters(), lr=5e-3)
    initial = {"learner": copy.deepcopy(learner.state_dict()), "optimizer": copy.deepcopy(optimizer.state_dict())}
    start = learner.ctx.detach().clone() # a copy saved before any step: the truth the reset is checked against
    fresh = PromptLearner(_clip(), CLASSES) # what the first step from the start does
    fresh_optimizer = torch.optim.AdamW(fresh.parameters(), lr=5e-3)
    _image_step(fresh, fresh_optimizer, 0)
    first_move = fresh.ctx.detach() - start
    for image in range(4): # several images: each must start where the first did
        label = f"smallest input that shows it: after image {image + 1} of 4 (one AdamW step each), {len(CLASSES)} classes"
        if image > 0: # the step from the reset state must be the first step's
            before = learner.ctx.detach().clone()
            _image_step(learner, optimizer, 0)
            move = learner.ctx.detach() - before
            if not _move_close(move, first_move):
                raise Wrong("the next image's step is not a first step: AdamW's running moments and step count carried over (restore the optimizer's state too)", f"{label}\n  its step moved the context by {move.norm():.4g}, a first step by {first_move.norm():.4g}")
        else: _image_step(learner, optimizer, 0)
        moved, steps = learner.ctx.detach().clone(), dict(optimizer.state)
        _call("reset_episode", fn, (learner, optimizer, initial), forbidden=FORBIDDEN["reset_episode"], allow_none=True)
        ctx = learner.ctx
        if _close(ctx.detach(), moved) and len(optimizer.state) == len(steps) and image == 0:
            raise NotRunning("reset_episode changed nothing yet: write its body (replace the `...`)")
        if not isinstance(ctx, torch.nn.Parameter) or ctx is not optimizer.param_groups[0]["params"][0]:
            raise Wrong("you replaced the context Parameter: the optimizer still holds the old one; copy the values into it (load_state_dict)", label)
        if ctx.data_ptr() == learner.ctx_init.data_ptr():
            raise Wrong("your reset depends on `ctx_init`, which moves when the context moves: it now shares the context's memory; copy the values (load_state_dict, or ctx.data.copy_(...))", label)
        if ctx.data_ptr() == initial["learner"]["ctx"].data_ptr():
            raise Wrong("your reset makes the context share memory with the saved state: the next step moves `initial` too; copy the values (load_state_dict, or ctx.data.copy_(...))", label)
        if _close(ctx.detach(), torch.zeros_like(ctx)): raise Wrong("you set the context to zeros: reset it to its initial value (the phrase's embeddings)", label)
        if not _close(ctx.detach(), start, tol=1e-6):
            drift = (ctx.detach() - start).norm().item()
            raise Wrong("the context was not reset to its start before the next image: restore the learner's initial state", f"{label}\n  the context is {drift:.4g} away from its value before the first step")
        if any(len(s) for s in optimizer.state.values()) or len(optimizer.state) > len(initial["optimizer"]["state"]):
            raise Wrong("you reset the context but not the optimizer: AdamW's running moments (and step count) would carry over to the next image", label)


def _zero_vote_reference(logits, keep):
    zero = Zero(n_views=len(logits), keep=keep)
    return zero.aggregate(None, logits, select_confident_views(entropy(logits), keep))


def _votes(logits, keep):
    "Each class's votes among the ⌊ρN⌋ lowest-entropy views, (K,)."
    return torch.bincount(logits[select_confident_views(entropy(logits), keep)].argmax(-1), minlength=logits.shape[1]).double()


@exercise(_zero_vote_reference, Zero.aggregate, vote_shares)
def zero_vote(fn):
    tie = torch.tensor([[4.0, 0.0, 0.0], [0.0, 4.0, 0.0], [3.0, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 3.0, 0.0], [0.2, 0.0, 0.0], [0.0, 0.0, 0.3]])
    cases = [("7 views of 3 classes, keep = 0.3 (ρN = 2.1), the last class gets no vote", (tie[[0, 1, 3, 5, 6, 2, 4]], 0.3)),
             ("the same 7 views, keep = 0.5 (ρN = 3.5), the first two classes tie", (tie[[0, 1, 3, 5, 6, 2, 4]], 0.5)),
             ("20 random views of 4 classes, keep = 0.38 (ρN = 7.6)", (_view_logits(6, views=20, classes=4), 0.38))]
    by_entropy = lambda l: entropy(l).argsort()
    def shares(l, voters): return torch.bincount(voters.argmax(-1), minlength=l.shape[1]).double() / len(voters)
    compare("zero_vote", fn, cases, _zero_vote_reference, {
        "you averaged the confident views' probabilities: Zero counts their argmax votes": lambda l, k: l[select_confident_views(entropy(l), k)].softmax(-1).mean(0),
        "every view voted: only the ⌊ρN⌋ most confident (lowest-entropy) views vote": lambda l, k: shares(l, l),
        "the highest-entropy views voted: the confident views have the LOWEST entropy": lambda l, k: shares(l, l[by_entropy(l).flip(0)[:int(len(l) * k)]]),
        "you returned vote counts: divide by the number of votes so the shares sum to 1": lambda l, k: _votes(l, k),
        "you divided by all N views: divide by the number of votes, ⌊ρN⌋, so the shares sum to 1": lambda l, k: _votes(l, k) / len(l),
        "a class with no votes is missing: count with torch.bincount(..., minlength=K) so every class gets a share": lambda l, k: (lambda v: v[:int(v.nonzero().max()) + 1])(_votes(l, k) / int(len(l) * k)),
        "⌈ρN⌉ views voted: Zero keeps ⌊ρN⌋, rounded DOWN": lambda l, k: shares(l, l[by_entropy(l)[:math.ceil(len(l) * k)]]),
        "round(ρN) views voted: Zero keeps ⌊ρN⌋, rounded DOWN": lambda l, k: shares(l, l[by_entropy(l)[:round(len(l) * k)]]),
        "you returned 1 for the winning class(es): return every class's share of the votes, (K,)": lambda l, k: (lambda v: (v == v.max()).double())(_votes(l, k)),
        "you returned 1 for the winning class only: return every class's share of the votes, (K,)": lambda l, k: F.one_hot(_votes(l, k).argmax(), l.shape[1]).double(),
    }, forbidden=FORBIDDEN["zero_vote"])


# ---------------------------------------------------------------- lab 4: calibration, C-TPT's dispersion

def _ece_reference(confidence, correct, n_bins):
    return expected_calibration_error(torch.as_tensor(confidence).numpy(), torch.as_tensor(correct).numpy(), n_bins)


def _bins(confidence, n_bins, rule="ceil"):
    if rule == "floor": return (confidence * n_bins).floor().long().clamp(0, n_bins - 1)
    raw = torch.ceil(confidence * n_bins).long() - 1
    return raw if rule == "unclamped" else raw.clamp(0, n_bins - 1)


def _ece_variant(confidence, correct, n_bins, rule="ceil", weighted=True, absolute=True, reduce="sum", square=False):
    bins, total, gaps = _bins(confidence, n_bins, rule), len(confidence), []
    for b in range(n_bins):
        inside = bins == b
        if not inside.any(): continue
        gap = correct[inside].mean() - confidence[inside].mean()
        gap = gap.abs() if absolute else gap
        gaps.append(((inside.sum() / total) if weighted else 1.0) * (gap ** 2 if square else gap))
    gaps = torch.stack([torch.as_tensor(g, dtype=torch.float64) for g in gaps])
    return {"sum": gaps.sum(), "mean": gaps.mean(), "max": gaps.max()}[reduce].abs()


@exercise(_ece_reference, expected_calibration_error, helpers=(reliability_table,))
def calibration_error(fn):
    g = _generator(7)
    confidence = torch.rand(200, generator=g).double() * 0.7 + 0.3
    correct = (torch.rand(200, generator=g).double() < confidence ** 2).double() # overconfident
    cases = [("confidence = [0.95, 0.9, 0.35], correct = [1, 0, 1], 10 bins", (torch.tensor([0.95, 0.9, 0.35], dtype=torch.float64), torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64), 10)),
             ("confidence = [0.75, 0.7, 0.3, 0.0], correct = [1, 0, 0, 1], 4 bins (0.75 sits on a bin's upper edge, 0.0 in the first bin)", (torch.tensor([0.75, 0.7, 0.3, 0.0], dtype=torch.float64), torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=torch.float64), 4)),
             ("200 random overconfident predictions, 10 bins", (confidence, correct, 10)),
             ("the same 200 predictions, 4 bins", (confidence, correct, 4))]
    compare("calibration_error", fn, cases, _ece_reference, {
        "you averaged the bins' gaps equally: weight each bin by its share of the samples, |B_b|/n": lambda c, y, b: _ece_variant(c, y, b, weighted=False, reduce="mean"),
        "the signed gaps cancel (the same as comparing the overall accuracy with the overall confidence): ECE averages |accuracy − confidence| in each bin": lambda c, y, b: _ece_variant(c, y, b, absolute=False),
        "you divided by the number of bins: the weights |B_b|/n already sum to 1": lambda c, y, b: _ece_variant(c, y, b) / b,
        "you returned a percentage: return ECE as a fraction": lambda c, y, b: _ece_variant(c, y, b) * 100,
        "you returned the largest gap (the MCE): ECE is the weighted AVERAGE of the gaps": lambda c, y, b: _ece_variant(c, y, b, weighted=False, reduce="max"),
        "you squared the gaps: ECE weights |accuracy − confidence|, not its square": lambda c, y, b: _ece_variant(c, y, b, square=True),
        "a confidence on a bin's upper edge went to the next bin: c falls in bin ceil(c·B) − 1, so (0.5, 0.75] is one bin of 4": lambda c, y, b: _ece_variant(c, y, b, rule="floor"),
        "a confidence of exactly 0 fell outside every bin: clamp the bin index to 0..B−1": lambda c, y, b: _ece_variant(c, y, b, rule="unclamped"),
    }, forbidden=FORBIDDEN["calibration_error"])


def _class_features(seed=8, classes=6, dim=16): return F.normalize(_randn(classes, dim, seed=seed), dim=-1)


@exercise(text_dispersion)
def dispersion(fn):
    cases = [("text_feats = [[1., 0.], [0., 1.], [0.6, 0.8]]", (torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]),)),
             ("6 random unit class features, D = 16", (_class_features(),)),
             ("4 class features close together, D = 8", (F.normalize(_randn(4, 8, seed=18) * 0.2 + 1.0, dim=-1),))]
    centred = lambda w: w - w.mean(0, keepdim=True)
    compare("dispersion", fn, cases, text_dispersion, {
        "you averaged squared distances: ATFD is the mean L2 distance (take the square root of each)": lambda w: centred(w).pow(2).sum(-1).mean(),
        "you took the square root of the mean squared distance: ATFD is the mean of the distances themselves": lambda w: centred(w).pow(2).sum(-1).mean().sqrt(),
        "you measured the distance to the origin: measure it to the centroid w̄ = mean of the class features": lambda w: w.norm(dim=-1).mean(),
        "you took the centroid over the feature dimension (dim=1): the centroid is the mean over the classes (dim=0)": lambda w: (w - w.mean(1, keepdim=True)).norm(dim=-1).mean(),
        "you took each norm over the classes (dim=0): each class's distance is the norm of its row (dim=-1)": lambda w: centred(w).norm(dim=0).mean(),
        "you summed the distances: average them over the K classes": lambda w: centred(w).norm(dim=-1).sum(),
        "you returned one distance per class: ATFD is their mean, a single number": lambda w: centred(w).norm(dim=-1),
        "you averaged the distances between PAIRS of classes: ATFD measures each class's distance to the centroid": lambda w: torch.cdist(w, w).sum() / (len(w) * (len(w) - 1)),
        "you normalised the centroid: w̄ is the plain mean of the class features": lambda w: (w - F.normalize(w.mean(0, keepdim=True), dim=-1)).norm(dim=-1).mean(),
    }, forbidden=FORBIDDEN["dispersion"])


def _ctpt_reference(logits, text_feats, weight): return CTPT(dispersion_weight=weight).objective(logits, text_feats)


@exercise(_ctpt_reference, CTPT.objective, text_dispersion)
def ctpt_objective(fn):
    cases = [("logits = [[2., 0., 0.], [0., 1., 3.]], text_feats = [[1., 0.], [0., 1.], [0.6, 0.8]], weight = 20", (torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 3.0]]), torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]), 20.0)),
             ("6 views of 6 classes, D = 16, weight = 0.5", (_view_logits(9, views=6, classes=6), _class_features(), 0.5))]
    h, d = (lambda l: marginal_entropy(l)), text_dispersion
    compare("ctpt_objective", fn, cases, _ctpt_reference, {
        "you penalised the dispersion: C-TPT rewards spread-out class features, so SUBTRACT λ·ATFD": lambda l, w, k: h(l) + k * d(w),
        "you forgot the weight λ on the dispersion term": lambda l, w, k: h(l) - d(w),
        "you weighted the entropy instead of the dispersion: H(p̃) − λ·ATFD": lambda l, w, k: k * h(l) - d(w),
        "you divided the dispersion by λ: multiply it, H(p̃) − λ·ATFD": lambda l, w, k: h(l) - d(w) / k,
        "the weight multiplies both terms: only the dispersion is weighted, H(p̃) − λ·ATFD": lambda l, w, k: k * (h(l) - d(w)),
        "the entropy term is the mean of the views' entropies: C-TPT keeps TPT's marginal entropy H(p̃)": lambda l, w, k: entropy(l).mean() - k * d(w),
        "you returned λ·ATFD − H(p̃): the objective to minimise is H(p̃) − λ·ATFD": lambda l, w, k: k * d(w) - h(l),
    }, forbidden=FORBIDDEN["ctpt_objective"])


# ---------------------------------------------------------------- lab 5: Self-TPT

def _supcon_variant(z, temperature, drop_self=True, self_positive=False, average=True, interleave=True, inside_log=False):
    K, V, D = z.shape
    flat = z.reshape(K * V, D)
    labels = torch.arange(K).repeat_interleave(V) if interleave else torch.arange(K).repeat(V)
    eye = torch.eye(K * V, dtype=torch.bool)
    positives = (labels[:, None] == labels[None, :]) & (~eye | self_positive)
    logits = flat @ flat.T / temperature
    if drop_self: logits = logits.masked_fill(eye, float("-inf"))
    log_prob = logits.log_softmax(1)
    if inside_log: return -(log_prob.exp().masked_fill(~positives, 0).sum(1) / positives.sum(1)).log().mean()
    summed = log_prob.masked_fill(~positives, 0).sum(1)
    return -(summed / positives.sum(1) if average else summed).mean()


@exercise(supervised_contrastive_loss, CPTLoss.of, CPTLoss.__call__)
def supcon(fn):
    cases = [("K = 2 classes, V = 2 views, D = 3, temperature 0.5", (F.normalize(_randn(2, 2, 3, seed=19), dim=-1), 0.5)),
             ("K = 3 classes, V = 4 views, D = 8, temperature 0.07", (F.normalize(_randn(3, 4, 8, seed=10), dim=-1), 0.07))]
    compare("supcon", fn, cases, supervised_contrastive_loss, {
        "you kept each view's similarity to itself in the denominator: mask the diagonal out (A(i) excludes i)": lambda z, t: _supcon_variant(z, t, drop_self=False),
        "you forgot the temperature τ: divide the similarities by it": lambda z, t: _supcon_variant(z, 1.0),
        "you multiplied by the temperature: DIVIDE the similarities by τ": lambda z, t: _supcon_variant(z, 1 / t),
        "you summed the log-probabilities of the positives: average them over |P(i)|": lambda z, t: _supcon_variant(z, t, average=False),
        "a view is not its own positive: P(i) holds the OTHER views of its class": lambda z, t: _supcon_variant(z, t, drop_self=False, self_positive=True),
        "your labels put the views of one class apart: after reshape(K·V, D) a class's V views are consecutive rows, so labels = arange(K).repeat_interleave(V)": lambda z, t: _supcon_variant(z, t, interleave=False),
        "you averaged the positives' probabilities inside the log: SupCon averages their LOG-probabilities": lambda z, t: _supcon_variant(z, t, inside_log=True),
        "your loss is negative: it is −1/|P(i)| Σ log p, a positive number": lambda z, t: -_supcon_variant(z, t),
    }, forbidden=FORBIDDEN["supcon"])


def _gm_reference(g_ce, g_cpt): return GradientMatching(decay=0.0)(g_ce, g_cpt)


@exercise(_gm_reference, GradientMatching.__call__)
def gradient_matching(fn):
    cases = [("g_ce = [[1., 0.], [0., 1.]], g_cpt = [[1., 1.], [0., 2.]]", (torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[1.0, 1.0], [0.0, 2.0]]))),
             ("two random (4, 8) gradients", (_randn(4, 8, seed=11), _randn(4, 8, seed=111)))]
    cos = lambda a, b: F.cosine_similarity(a.flatten(), b.flatten(), dim=0)
    compare("gradient_matching", fn, cases, _gm_reference, {
        "you return the cosine: the loss to MINIMISE is 1 − cos(g_CE, g_CPT)": lambda a, b: cos(a, b),
        "you return 1 + cos: the loss to minimise is 1 − cos(g_CE, g_CPT)": lambda a, b: 1 + cos(a, b),
        "you compared the gradients row by row: flatten each into one vector before the cosine": lambda a, b: 1 - F.cosine_similarity(a, b, dim=-1).mean(),
        "you compared the gradients column by column: flatten each into one vector before the cosine": lambda a, b: 1 - F.cosine_similarity(a, b, dim=0).mean(),
        "you used the distance ‖g_CE − g_CPT‖: gradient matching compares directions only (cosine)": lambda a, b: (a - b).norm(),
        "you used the dot product: divide by both gradients' norms (a cosine)": lambda a, b: 1 - (a * b).sum(),
        "you squared 1 − cos: the loss is 1 − cos itself": lambda a, b: (1 - cos(a, b)) ** 2,
    }, forbidden=FORBIDDEN["gradient_matching"])
    g_ce, g_cpt = _randn(4, 8, seed=11).requires_grad_(True), _randn(4, 8, seed=111).requires_grad_(True)
    got = _call("gradient_matching", fn, (g_ce, g_cpt), FORBIDDEN["gradient_matching"])
    shown = "smallest input that shows it: two random (4, 8) gradients that require grad, then loss.backward()"
    if not isinstance(got, torch.Tensor) or not got.requires_grad: raise Wrong("no gradient reaches g_CPT: keep the loss a tensor with its graph (no .item(), no detach of g_CPT)", shown)
    got.backward()
    if g_ce.grad is not None and g_ce.grad.abs().sum() > 0: raise Wrong("the gradient flows into g_CE: it is GM's fixed target, so detach it (only g_CPT is pulled towards it)", shown)
    if g_cpt.grad is None or g_cpt.grad.abs().sum() == 0: raise Wrong("no gradient reaches g_CPT: do not detach it, the loss must move the CPT gradient", shown)


def _shared_losses(seed=12):
    "A context and two losses that share a graph (like CE and CPT through the text encoder)."
    context = torch.nn.Parameter(_randn(4, 8, seed=seed))
    hidden = torch.tanh(context @ _randn(8, 8, seed=seed + 1)) # shared by both losses
    return context, hidden.pow(2).mean() + hidden[:, 0].sum(), (hidden - 0.5).abs().mean() + hidden[0].sum()


def _gradient_cosine_reference(ce, cpt, context):
    g_ce, g_cpt = context_gradients(ce, cpt, context, create_graph=False)
    return F.cosine_similarity(g_ce.flatten(), g_cpt.flatten(), dim=0)


def _gradient_pair(ce, cpt, context):
    g_ce, = torch.autograd.grad(ce, context, retain_graph=True)
    g_cpt, = torch.autograd.grad(cpt, context, retain_graph=True)
    return g_ce, g_cpt


@exercise(_gradient_cosine_reference, context_gradients)
def gradient_cosine(fn):
    def case(seed):
        def fresh():
            context, ce, cpt = _shared_losses(seed)
            return ce, cpt, context
        return fresh
    cases = [("two losses of a (4, 8) context through a shared tanh layer (seed 12)", case(12)), ("the same with seed 30", case(30))]
    cos = lambda a, b: F.cosine_similarity(a.flatten(), b.flatten(), dim=0)
    def with_pair(f): return lambda ce, cpt, ctx: f(*_gradient_pair(ce, cpt, ctx))
    for label, args in cases:
        try: _call("gradient_cosine", fn, args(), FORBIDDEN["gradient_cosine"])
        except NotRunning as e:
            if "second time" in str(e): raise NotRunning("the first autograd.grad freed the graph both losses share: pass retain_graph=True to it", f"smallest input that shows it: {label}") from e
            raise
    compare("gradient_cosine", fn, cases, _gradient_cosine_reference, {
        "you compared the gradients row by row: flatten each into one vector before the cosine": with_pair(lambda a, b: F.cosine_similarity(a, b, dim=-1).mean()),
        "you returned 1 − cos: return the cosine itself": with_pair(lambda a, b: 1 - cos(a, b)),
        "you returned the dot product: divide by both gradients' norms": with_pair(lambda a, b: (a * b).sum()),
        "you returned the angle (acos): return the cosine itself": with_pair(lambda a, b: cos(a, b).acos()),
        "you compared a gradient with itself: context.grad after two backward() calls is ONE tensor holding their sum; use torch.autograd.grad (or clone the first)": lambda ce, cpt, ctx: torch.tensor(1.0),
        "you took the gradient of ce + cpt: compute each loss's gradient on its own": with_pair(lambda a, b: cos(a + b, b)),
    }, forbidden=FORBIDDEN["gradient_cosine"])


# ---------------------------------------------------------------- lab 6: TLLA

def _bowl(p): return (p[0] - 1) ** 2 + 4 * (p[1] + 0.5) ** 2 + (p[0] * p[1]) ** 2 # a curved loss with unequal gradient parts


def _sam_reference(loss_fn, p, rho):
    param = torch.nn.Parameter(p.clone())
    SharpnessAwareStep(rho)(torch.optim.SGD([param], lr=1.0), lambda: loss_fn(param)) # p ← p − g_SAM
    return p - param.detach()


def _grad_at(loss_fn, q):
    q = q.detach().clone().requires_grad_(True)
    return torch.autograd.grad(loss_fn(q), q)[0]


@exercise(_sam_reference, SharpnessAwareStep.__call__)
def sam_gradient(fn):
    cases = [("the bowl (p₀ − 1)² + 4(p₁ + 0.5)² + (p₀p₁)² at p = [0.3, 0.4], rho = 0.2", (_bowl, torch.tensor([0.3, 0.4]), 0.2)),
             ("the same bowl at p = [-1.0, 0.7], rho = 0.5", (_bowl, torch.tensor([-1.0, 0.7]), 0.5))]
    g = _grad_at
    compare("sam_gradient", fn, cases, _sam_reference, {
        "you returned the plain gradient ∇ℓ(p): SAM's gradient is taken at the perturbed point p + ε": lambda f, p, r: g(f, p),
        "ε is not normalised: SAM's perturbation is ρ·g/‖g‖, of length exactly ρ": lambda f, p, r: g(f, p + r * g(f, p)),
        "you divided by ‖g‖²: SAM's perturbation is ρ·g/‖g‖, of length exactly ρ": lambda f, p, r: g(f, p + r * g(f, p) / g(f, p).norm() ** 2),
        "you perturbed downhill (p − ε): SAM looks at the worst nearby point, p + ρ·g/‖g‖": lambda f, p, r: g(f, p - r * g(f, p) / g(f, p).norm()),
        "you returned the perturbed point, not the gradient there": lambda f, p, r: p + r * g(f, p) / g(f, p).norm(),
        "you used the sign of the gradient: SAM's perturbation is ρ·g/‖g‖, along the gradient": lambda f, p, r: g(f, p + r * g(f, p).sign()),
        "you returned the normalised gradient at p + ε: return the gradient itself": lambda f, p, r: (lambda h: h / h.norm())(g(f, p + r * g(f, p) / g(f, p).norm())),
        "you moved p by ρ in every coordinate: the perturbation is ρ·g/‖g‖, along the gradient": lambda f, p, r: g(f, p + r),
    }, forbidden=FORBIDDEN["sam_gradient"])


def _filter_reference(direction, context):
    return direction / direction.norm(dim=-1, keepdim=True) * context.norm(dim=-1, keepdim=True)


@exercise(_filter_reference, filter_normalised_direction)
def filter_normalise(fn):
    rows = torch.tensor([[0.5], [1.0], [2.0], [4.0]])
    cases = [("direction = [[3., 4.], [1., 0.]], context = [[0., 2.], [1., 1.]]", (torch.tensor([[3.0, 4.0], [1.0, 0.0]]), torch.tensor([[0.0, 2.0], [1.0, 1.0]]))),
             ("a random (3, 3) direction and context (square: broadcasting slips show)", (_randn(3, 3, seed=21), _randn(3, 3, seed=22) * torch.tensor([[0.5], [1.0], [3.0]]))),
             ("a random (4, 8) direction and a context with rows of norms ≈ 1, 2, 4, 8", (_randn(4, 8, seed=3), _randn(4, 8, seed=15) * rows))]
    n = lambda x, **k: x.norm(**k)
    compare("filter_normalise", fn, cases, _filter_reference, {
        "you scaled the whole direction at once: filter normalisation scales EACH context vector (row) to its own norm": lambda d, c: d / n(d) * n(c),
        "your rows have unit norm: scale each row to the norm of the matching context vector, ‖p_m‖": lambda d, c: d / n(d, dim=-1, keepdim=True),
        "you normalised the columns (dim=0): each context vector is a row (dim=-1)": lambda d, c: d / n(d, dim=0, keepdim=True) * n(c, dim=0, keepdim=True),
        "you multiplied by the context itself: scale each row by the context vector's NORM, ‖p_m‖": lambda d, c: d / n(d, dim=-1, keepdim=True) * c,
        "you forgot keepdim=True: a (M,) norm divides the COLUMNS of a (M, W) tensor; use norm(dim=-1, keepdim=True)": lambda d, c: d / n(d, dim=-1) * n(c, dim=-1),
        "you scaled by the squared norm: the rows get length ‖p_m‖, so multiply by ‖p_m‖, not ‖p_m‖²": lambda d, c: d / n(d, dim=-1, keepdim=True) * n(c, dim=-1, keepdim=True) ** 2,
        "you returned the context's direction: filter-normalise the random DIRECTION, row by row": lambda d, c: c / n(c, dim=-1, keepdim=True) * n(d, dim=-1, keepdim=True),
    }, forbidden=FORBIDDEN["filter_normalise"])


def _stss_reference(feats, text_feats, perturbed_feats, logit_scale, weight):
    stss = STSS(n_views=len(feats), keep=0.5)
    stss.clip, stss.text_feats, stss.perturbed_feats, stss.sharpness_weight = SimpleNamespace(logit_scale=logit_scale), text_feats, perturbed_feats, weight
    return stss.score(feats, stss.logits(feats, text_feats))


@exercise(_stss_reference, helpers=(STSS.score,))
def flat_view_score(fn):
    def case(seed, n, k, r, d, scale, weight):
        g = _generator(seed)
        feats, text = F.normalize(torch.randn(n, d, generator=g), dim=-1), F.normalize(torch.randn(k, d, generator=g), dim=-1)
        return feats, text, F.normalize(text + 0.3 * torch.randn(r, k, d, generator=g), dim=-1), torch.tensor(scale), weight
    cases = [("2 views, 2 classes, R = 2 directions, D = 4, scale 10, weight 1", case(31, 2, 2, 2, 4, 10.0, 1.0)),
             ("10 views, 5 classes, R = 3 directions, D = 8, scale 10, weight 0.5", case(14, 10, 5, 3, 8, 10.0, 0.5))]
    def parts(f, t, p, s, w): return entropy(s * f @ t.T), entropy(s * torch.einsum("nd,rkd->rnk", f, p))
    compare("flat_view_score", fn, cases, _stss_reference, {
        "you averaged the entropy rise over the directions: STSS takes the WORST direction (max over j)": lambda *a: (lambda h, m: h + a[4] * (m - h).mean(0))(*parts(*a)),
        "you summed the entropy rise over the directions: STSS takes the WORST direction (max over j)": lambda *a: (lambda h, m: h + a[4] * (m - h).sum(0))(*parts(*a)),
        "you took the smallest rise (min over j): STSS takes the WORST direction (max over j)": lambda *a: (lambda h, m: h + a[4] * (m - h).amin(0))(*parts(*a)),
        "you scored by the sharpness alone: the score is the entropy PLUS λ times the sharpness": lambda *a: (lambda h, m: a[4] * (m - h).amax(0))(*parts(*a)),
        "you took the largest perturbed entropy instead of its rise: subtract the unperturbed entropy (H_j − H)": lambda *a: (lambda h, m: h + a[4] * m.amax(0))(*parts(*a)),
        "you scored by entropy alone: add λ·max_j (H_j − H)": lambda *a: parts(*a)[0],
        "you weighted the entropy instead of the sharpness: H + λ·max_j (H_j − H)": lambda *a: (lambda h, m: a[4] * h + (m - h).amax(0))(*parts(*a)),
        "you took the max over the views (dim=1): the max is over the R directions (dim=0), one score per view": lambda *a: (lambda h, m: h + a[4] * (m - h).amax(1))(*parts(*a)),
    }, forbidden=FORBIDDEN["flat_view_score"])


# ---------------------------------------------------------------- lab 7: MetaTPT

def _affine_variant(theta, sign=1.0, shear=True, exp=True, swap_t=False, degrees=False, swap_rows=False):
    log_scale, angle, tx, ty, k = theta.unbind(1)
    angle = torch.deg2rad(angle) if degrees else angle
    s, c, n = (log_scale.exp() if exp else log_scale), angle.cos(), sign * angle.sin()
    k = k if shear else torch.zeros_like(k)
    row1, row2 = torch.stack([s * c, s * (k - n), ty if swap_t else tx], 1), torch.stack([s * n, s * c, tx if swap_t else ty], 1)
    return torch.stack([row2, row1] if swap_rows else [row1, row2], 1)


@exercise(affine_matrices)
def affine_matrix(fn):
    cases = [("one view turned by φ = 0.5 (theta = [[0, 0.5, 0, 0, 0]])", (torch.tensor([[0.0, 0.5, 0.0, 0.0, 0.0]]),)),
             ("one view, theta = [[-0.3, 0.5, 0.2, -0.1, 0.2]]", (torch.tensor([[-0.3, 0.5, 0.2, -0.1, 0.2]]),)),
             ("three views, theta = [[0, 0, 0, 0, 0], [-0.3, 0.5, 0.2, -0.1, 0.2], [0.2, -1, -0.3, 0.4, -0.1]]", (torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0], [-0.3, 0.5, 0.2, -0.1, 0.2], [0.2, -1.0, -0.3, 0.4, -0.1]]),))]
    compare("affine_matrix", fn, cases, affine_matrices, {
        "you used log s as the scale: the parameter is the scale's logarithm, use s = exp(θ₀)": lambda t: _affine_variant(t, exp=False),
        "the rotation turns the wrong way: the first row is (s cos φ, s(k − sin φ), t_x), the second (s sin φ, s cos φ, t_y)": lambda t: _affine_variant(t, sign=-1.0),
        "you left out the shear k: the first row's middle entry is s(k − sin φ)": lambda t: _affine_variant(t, shear=False),
        "the translations are swapped: t_x belongs in the first row, t_y in the second": lambda t: _affine_variant(t, swap_t=True),
        "you read φ as degrees: the angle is in radians, use cos φ and sin φ directly": lambda t: _affine_variant(t, degrees=True),
        "your rows are swapped: the first row is (s cos φ, s(k − sin φ), t_x)": lambda t: _affine_variant(t, swap_rows=True),
        "your matrices are transposed: each is 2×3, rows (s cos φ, s(k − sin φ), t_x) and (s sin φ, s cos φ, t_y)": lambda t: affine_matrices(t).transpose(1, 2),
    }, forbidden=FORBIDDEN["affine_matrix"])


@exercise(diversity)
def view_diversity(fn):
    cases = [("feats = [[1., 0.], [0.6, 0.8], [0., 1.]] (3 views)", (torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]),)),
             ("6 random unit views, D = 8, all on one side", (F.normalize(_randn(6, 8, seed=16) + 1.0, dim=-1),))]
    sim = lambda f: f @ f.T
    V = lambda f: len(f)
    compare("view_diversity", fn, cases, diversity, {
        "you counted each view's similarity to itself (always 1): average over the V(V − 1) pairs of DIFFERENT views": lambda f: sim(f).mean(),
        "you left out the self-pairs but still divided by V²: divide by V(V − 1)": lambda f: (sim(f).sum() - V(f)) / V(f) ** 2,
        "you counted each pair once but divided by V(V − 1): the V(V − 1) ORDERED pairs count each pair twice": lambda f: sim(f).triu(1).sum() / (V(f) * (V(f) - 1)),
        "you averaged the distances 1 − cos: the diversity term is the mean cosine similarity": lambda f: 1 - diversity(f),
        "you returned each view's mean similarity: the diversity term is one number, the mean over all pairs": lambda f: (sim(f).sum(1) - 1) / (V(f) - 1),
        "you averaged the Euclidean distances between views: the diversity term is the mean cosine similarity": lambda f: torch.cdist(f, f).sum() / (V(f) * (V(f) - 1)),
        "you summed the similarities: average them over the V(V − 1) pairs": lambda f: sim(f).sum() - V(f),
    }, forbidden=FORBIDDEN["view_diversity"])


def _meta_reference(logits, label, keep):
    return -average_log_probs(logits[select_confident_views(entropy(logits), keep)])[label]


@exercise(_meta_reference)
def meta_objective(fn):
    cases = [("logits = [[2., 0.], [0., 1.], [3., 0.], [0.5, 0.]], label = 1, keep = 0.5", (torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.5, 0.0]]), 1, 0.5)),
             ("10 random views of 5 classes, label = 2, keep = 0.3", (_view_logits(17, views=10, classes=5), 2, 0.3)),
             ("10 random views of 5 classes, label = 0, keep = 0.45 (ρN = 4.5)", (_view_logits(27, views=10, classes=5), 0, 0.45))]
    kept = lambda l, k: l[select_confident_views(entropy(l), k)]
    compare("meta_objective", fn, cases, _meta_reference, {
        "you used every view: the meta objective scores the confident views' average prediction, as TPT predicts": lambda l, y, k: -average_log_probs(l)[y],
        "the average of per-view cross-entropies is not the cross-entropy of the averaged prediction: average the probabilities first": lambda l, y, k: F.cross_entropy(kept(l, k), torch.full((len(kept(l, k)),), y)),
        "the mean of logits is not the mean of probabilities: average softmax outputs, not logits": lambda l, y, k: F.cross_entropy(kept(l, k).mean(0, keepdim=True), torch.tensor([y])),
        "you returned log p̃_y: the loss is its NEGATIVE, −log p̃_y": lambda l, y, k: average_log_probs(kept(l, k))[y],
        "you returned −p̃_y: the loss is −LOG p̃_y": lambda l, y, k: -average_log_probs(kept(l, k))[y].exp(),
        "you kept the highest-entropy views: the confident views have the LOWEST entropy": lambda l, y, k: -average_log_probs(l[entropy(l).argsort(descending=True)[:int(len(l) * k)]])[y],
        "you returned the whole −log p̃: index it with the label, −log p̃_y": lambda l, y, k: -average_log_probs(kept(l, k)),
        "you used the first ⌊ρN⌋ views: select the lowest-entropy views (select_confident_views(entropy(logits), keep))": lambda l, y, k: -average_log_probs(l[:int(len(l) * k)])[y],
    }, forbidden=FORBIDDEN["meta_objective"])


# ---------------------------------------------------------------- lab 8: TDA's positive cache and its logits

def _cache_reference(cache, label, feature, entropy, capacity):
    "ttpt's ClassCache.offer on the student's cache, a dict label -> [(feature, entropy), ...] most confident first."
    classes = ClassCache(capacity)
    classes.queues = {int(c): [CacheEntry(f, float(h)) for f, h in queue] for c, queue in cache.items()}
    classes.offer(label, CacheEntry(feature, float(entropy)))
    return {c: [(e.feature, e.entropy) for e in queue] for c, queue in classes.queues.items()}


def _cache_rule(rule):
    "A typical wrong update (the student's signature): which entry a full class replaces, and whether it keeps its list sorted."
    def update(cache, label, feature, entropy, capacity):
        queue, new = cache.setdefault(label, []), (feature, entropy)
        room = capacity + 1 if rule == "capacity + 1" else math.inf if rule == "no capacity" else capacity
        if len(queue) < room: queue.append(new)
        elif rule == "replace the best" and entropy < queue[-1][1]: queue[0] = new
        elif rule == "always replace": queue[-1] = new
        elif rule == "keep the least confident" and entropy > queue[0][1]: queue[0] = new
        elif rule == "compare with the best" and entropy < queue[0][1]: queue[-1] = new
        elif rule in ("unsorted", "descending", "capacity + 1") and entropy < queue[-1][1]: queue[-1] = new
        elif rule == "first in, first out": queue.pop(0); queue.append(new)
        if rule != "unsorted": queue.sort(key=lambda pair: pair[1], reverse=rule == "descending")
        return cache
    return update


def _over_stream(name, step, checked=False):
    "A function of (offers, capacity) that offers each (label, feature, entropy) in turn through `step`; the final cache."
    def run(offers, capacity):
        cache = {}
        for label, feature, entropy in offers:
            cache = step(cache, label, feature.clone(), entropy, capacity)
            if checked and (cache is None or cache is Ellipsis):
                raise NotRunning(f"{name} returns nothing yet: write its body (replace the `...`) and return the cache")
        return cache
    return run


def _cache_rows(args, cache):
    "The cache as rows [class, entropy, which offer], classes in label order, each class's entries in the order kept."
    offers = args[0]
    if not isinstance(cache, dict): raise NotRunning(f"update_positive_cache returned a {type(cache).__name__}: return the cache, a dict label -> list of (feature, entropy)")
    def offer_of(feature):
        f = torch.as_tensor(feature).detach().double().reshape(-1)
        return next((i for i, (_, g, _) in enumerate(offers) if g.numel() == f.numel() and _close(g.double().reshape(-1), f, 1e-6)), -1)
    try: return torch.tensor([[float(c), float(h), float(offer_of(f))] for c in sorted(cache, key=int) for f, h in cache[c]], dtype=torch.float64).reshape(-1, 3)
    except Exception as e: raise NotRunning("update_positive_cache: each class's entries must be (feature, entropy) pairs") from e


def _offers(entropies, labels=None, dim=4, seed=20):
    "A stream of (label, feature, entropy) offers: the given entropies (class 0 unless `labels`), random features."
    features = _randn(len(entropies), dim, seed=seed)
    return [(int(c), f, float(h)) for c, f, h in zip(labels or [0] * len(entropies), features, entropies)]


def _random_offers(seed, n=40, classes=4, dim=6):
    "A seeded stream of `n` offers; entropies are distinct, so each names its sample."
    g = _generator(seed)
    return list(zip(torch.randint(classes, (n,), generator=g).tolist(), torch.randn(n, dim, generator=g), torch.rand(n, generator=g).tolist()))


@exercise(_cache_reference, ClassCache.offer)
def update_positive_cache(fn):
    cases = [("capacity 1; class 0 is offered entropies 0.5, then 0.2", (_offers([0.5, 0.2]), 1)),
             ("capacity 1; class 0 is offered entropies 0.2, then 0.5", (_offers([0.2, 0.5]), 1)),
             ("capacity 2; class 0 is offered entropies 0.5, 0.2, 0.3", (_offers([0.5, 0.2, 0.3]), 2)),
             ("capacity 2; class 0 is offered entropies 0.2, 0.5, 0.3, 0.1", (_offers([0.2, 0.5, 0.3, 0.1]), 2)),
             ("capacity 2; classes 1, 0, 1, 1, 0, 0, 1 are offered entropies 0.6, 0.4, 0.3, 0.7, 0.9, 0.1, 0.2", (_offers([0.6, 0.4, 0.3, 0.7, 0.9, 0.1, 0.2], [1, 0, 1, 1, 0, 0, 1]), 2)),
             ("40 random offers to 4 classes, capacity 3", (_random_offers(20), 3)),
             ("40 random offers to 4 classes, capacity 2", (_random_offers(21), 2))]
    name = "update_positive_cache"
    mistakes = {
        "a full class never takes a new sample: when the class is full, a more confident sample (lower entropy) must replace its highest-entropy entry": "never replace",
        "you replaced the most confident entry (the lowest entropy): replace the class's HIGHEST-entropy entry, the last of its sorted list": "replace the best",
        "you replaced an entry even when the new sample is less confident: replace only if its entropy is lower than the highest in the class": "always replace",
        "you kept the least confident samples: a LOWER entropy is more confident, and it is those the cache keeps": "keep the least confident",
        "you compared the new entropy with the class's lowest: compare it with the highest, the entry it would replace": "compare with the best",
        "your class's list is not sorted: keep each class's entries sorted by entropy, most confident (lowest) first": "unsorted",
        "your class's list is sorted least confident first: sort by entropy ascending, the lowest (most confident) first": "descending",
        "you dropped the first entry and always added the new one (first in, first out): TDA drops the highest-entropy entry, and only for a more confident sample": "first in, first out",
        "the class holds more than `capacity` entries: when it is full, replace instead of appending": "no capacity",
        "the class holds capacity + 1 entries: append only while len(queue) < capacity": "capacity + 1",
    }
    compare(name, _over_stream(name, fn, checked=True), cases, _over_stream(name, _cache_reference),
            {message: _over_stream(name, _cache_rule(rule)) for message, rule in mistakes.items()},
            forbidden=FORBIDDEN[name], compare_as=_cache_rows, what="the cache as [class, entropy, offer # from 0] rows, ")


def _cache_logits_reference(query, keys, labels, n_classes, alpha, beta):
    return cache_logits(F.normalize(query, dim=-1), F.normalize(keys, dim=-1), F.one_hot(labels, n_classes).float(), alpha, beta)


@exercise(_cache_logits_reference, cache_logits, affinity)
def positive_cache_logits(fn):
    g = _generator(23)
    keys, labels = 3 * torch.randn(7, 8, generator=g), torch.tensor([0, 2, 2, 4, 1, 0, 3])
    cases = [("query = [1., 1.], keys = [[2., 0.], [0., 3.], [1., -1.]], labels = [1, 0, 1], 2 classes, alpha = 2, beta = 3",
              (torch.tensor([1.0, 1.0]), torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, -1.0]]), torch.tensor([1, 0, 1]), 2, 2.0, 3.0)),
             ("a batch of 3 random queries, 7 keys of 5 classes, D = 8, alpha = 1.7, beta = 5.5", (2 * torch.randn(3, 8, generator=g), keys, labels, 5, 1.7, 5.5)),
             ("one random query (D,), the same keys", (2 * torch.randn(8, generator=g), keys, labels, 5, 1.7, 5.5))]
    def votes(q, k, y, n, a, b, norm_q=True, norm_k=True, affinity_of=None):
        x = (F.normalize(q, dim=-1) if norm_q else q) @ (F.normalize(k, dim=-1) if norm_k else k).T
        return (affinity_of or (lambda x: a * torch.exp(-b * (1 - x))))(x) @ F.one_hot(y, n).float()
    cosine = lambda q, k: F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).T
    compare("positive_cache_logits", fn, cases, _cache_logits_reference, {
        "you did not normalise the features: the affinity is a function of the COSINE, so normalise the query and the keys first": lambda q, k, y, n, a, b: votes(q, k, y, n, a, b, False, False),
        "you normalised the keys but not the query": lambda q, k, y, n, a, b: votes(q, k, y, n, a, b, norm_q=False),
        "you normalised the query but not the keys": lambda q, k, y, n, a, b: votes(q, k, y, n, a, b, norm_k=False),
        "wrong sign in the affinity: it is exp(−β(1 − x)), which is 1 for an identical key and shrinks as the cosine x falls": lambda q, k, y, n, a, b: votes(q, k, y, n, a, b, affinity_of=lambda x: a * torch.exp(b * (1 - x))),
        "wrong sign in the affinity: it is exp(−β(1 − x)), not exp(−β(1 + x))": lambda q, k, y, n, a, b: votes(q, k, y, n, a, b, affinity_of=lambda x: a * torch.exp(-b * (1 + x))),
        "you forgot α: scale the cache's votes by alpha": lambda q, k, y, n, a, b: votes(q, k, y, n, a, b, affinity_of=lambda x: torch.exp(-b * (1 - x))),
        "α belongs outside the exponential, as the votes' weight: α·exp(−β(1 − x))": lambda q, k, y, n, a, b: votes(q, k, y, n, a, b, affinity_of=lambda x: torch.exp(-a * b * (1 - x))),
        "α and β are swapped: α weighs the votes, β sharpens the affinity": lambda q, k, y, n, a, b: _cache_logits_reference(q, k, y, n, b, a),
        "you forgot β: the affinity is exp(−β(1 − x))": lambda q, k, y, n, a, b: votes(q, k, y, n, a, b, affinity_of=lambda x: a * torch.exp(-(1 - x))),
        "you forgot the exponential: the affinity is exp(−β(1 − x))": lambda q, k, y, n, a, b: votes(q, k, y, n, a, b, affinity_of=lambda x: a * (-b * (1 - x))),
        "each key must vote for its class: multiply the affinities (…, M) by the one-hot labels (M, K)": lambda q, k, y, n, a, b: a * torch.exp(-b * (1 - cosine(q, k))),
        "you returned probabilities (a softmax): return the cache's logits": lambda q, k, y, n, a, b: _cache_logits_reference(q, k, y, n, a, b).softmax(-1),
    }, forbidden=FORBIDDEN["positive_cache_logits"])


# ---------------------------------------------------------------- the in-notebook grader

def find_notebook(assignment:str, # the lab's name, as otter assign wrote it into the notebook's metadata
                  folder:str=".", # where the student's notebook is
                 ) -> str:
    "The student's notebook of `assignment`, whatever it was renamed to (e.g. by a download: '03_tpt_step (1).ipynb')."
    session = os.environ.get("JPY_SESSION_NAME", "") # the notebook's path, set by Jupyter Server for the kernel it starts
    if session.endswith(".ipynb") and os.path.isfile(session): return session
    found = []
    for path in glob.glob(os.path.join(folder, "*.ipynb")):
        try:
            with open(path, encoding="utf-8") as f: meta = json.load(f).get("metadata", {}).get("otter", {})
        except (OSError, ValueError): continue
        if meta.get("assignment_name") == assignment: found.append(path)
    if not found: raise FileNotFoundError(f"labcheck: error: no notebook of lab {assignment} in {os.path.abspath(folder)}: open the lab from the folder you were given, beside labcheck.py")
    return max(found, key=os.path.getmtime) # several copies: the one saved last


class Feedback:
    "One question's result as a student reads it: the points, then each failed check's ✗ lines, without doctest's report."
    def __init__(self, result):
        self.result = result

    @staticmethod
    def lines(message:str) -> list:
        "The ✗ lines (and the lines that follow them) in an otter test case's failure message."
        text = message.split("Got:\n", 1)[1] if "Got:\n" in message else message
        text = text.split("\n****", 1)[0]
        out = [l[4:] if l.startswith("    ") else l for l in text.splitlines() if l.strip()]
        wanted = [l for l in out if l.startswith("✗") or l.startswith("  ")]
        if wanted and wanted[0].startswith("✗"): return wanted
        return [f"✗ the check raised an error: {out[-1].strip()}" if out else "✗ the check failed"]

    def text(self) -> str:
        r = self.result
        head = f"{'✅' if r.passed_all else '❌'} {r.name}: {r.score:g} / {r.possible:g} points"
        seen, lines = set(), [head]
        for tcr in r.test_case_results:
            if tcr.passed: continue
            for line in self.lines(tcr.message or ""):
                if line not in seen: seen.add(line); lines.append(line)
        return "\n".join(lines)

    def __repr__(self): return self.text()

    def _repr_html_(self):
        colour = "green" if self.result.passed_all else "#b00"
        return f"<pre style='color: {colour}; white-space: pre-wrap'>{html.escape(self.text())}</pre>"


try:
    import otter

    class Grader(otter.Notebook):
        "otter's in-notebook grader that finds its notebook whatever it was renamed to, and shows feedback without doctest's report."
        def __init__(self, assignment:str # the lab's name
                    ):
            super().__init__(None if type(self)._grading_mode else find_notebook(assignment))

        def check(self, question:str, global_env=None):
            "Run the question's checks; the points and the ✗ lines of each failed check."
            if global_env is None: global_env = inspect.currentframe().f_back.f_globals
            result = super().check(question, global_env)
            return Feedback(result) if result is not None and hasattr(result, "test_case_results") else result
except ImportError: # the labs extra is not installed: the checks still work, the in-notebook grader does not
    pass
