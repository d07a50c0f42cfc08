"Lab 8 (TDA's positive cache): its solutions pass their graded checks, every typical wrong answer gets its own feedback, the student version holds no solution and scores 0 blank, and the filled-in solutions score full marks. Needs the `labs` extra (otter-grader); skipped without it."
import contextlib
import io
import sys
from pathlib import Path

import nbformat
import pytest
import torch

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword:DeprecationWarning", "ignore:The inplace keyword")
pytest.importorskip("otter", reason="the labs need otter-grader: pip install -e '.[labs]'")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent/"labs"))
import course  # noqa: E402
import labcheck  # noqa: E402
from mistakes import WRONG_ANSWERS  # noqa: E402

LAB = "08_tda"
IMPORTS = "import torch\nimport torch.nn.functional as F\n" # what the lab's import cells give an answer cell


def define(question, source):
    "The function an answer cell's `source` defines."
    namespace = {}
    exec(IMPORTS + source, namespace)
    return namespace[question]


def feedback(check, question, fn):
    "What a graded check prints for `fn` (empty when it passes)."
    with contextlib.redirect_stdout(io.StringIO()) as out: check(question, fn)
    return out.getvalue().strip()


QUESTIONS = list(course.solutions(LAB))
MUTANTS = [(q, i) for q in WRONG_ANSWERS[LAB] for i in range(len(WRONG_ANSWERS[LAB][q]))]


def test_the_lab_has_its_two_exercises():
    assert QUESTIONS == ["update_positive_cache", "positive_cache_logits"], QUESTIONS
    assert all(len(WRONG_ANSWERS[LAB][q]) >= 2 for q in QUESTIONS)


@pytest.mark.parametrize("question", QUESTIONS)
def test_solution_passes_its_checks(question):
    fn = define(question, course.solutions(LAB)[question])
    for check in (labcheck.runs, labcheck.check):
        assert feedback(check, question, fn) == "", f"the solution of {question} fails {check.__name__}"


@pytest.mark.parametrize("question,i", MUTANTS, ids=[f"{q}-{i}" for q, i in MUTANTS])
def test_wrong_answer_gets_its_feedback(question, i):
    source, expected = WRONG_ANSWERS[LAB][question][i]
    said = feedback(labcheck.check, question, define(question, source))
    assert said.startswith("✗") and expected in said, f"{question} wrong answer {i} should say {expected!r}, said {said!r}"


@pytest.mark.parametrize("source,expected", [
    ("def update_positive_cache(cache, label, feature, entropy, capacity):\n    cache.setdefault(label, []).append((feature, entropy))\n"
     "    cache[label].sort(key=lambda p: p[1])\n    return cache", "holds more than `capacity`"),
    ("def update_positive_cache(cache, label, feature, entropy, capacity):\n    q = cache.setdefault(label, [])\n"
     "    if len(q) < capacity: q.append((feature, entropy))\n    elif entropy > q[0][1]: q[0] = (feature, entropy)\n"
     "    q.sort(key=lambda p: p[1])\n    return cache", "you kept the least confident samples"),
    ("def update_positive_cache(cache, label, feature, entropy, capacity):\n    q = cache.setdefault(label, [])\n"
     "    if len(q) == capacity: q.pop(0)\n    q.append((feature, entropy))\n    q.sort(key=lambda p: p[1])\n    return cache", ""),
    ("def update_positive_cache(cache, label, feature, entropy, capacity):\n    q = cache.setdefault(label, [])\n"
     "    if len(q) < capacity: q.append((feature, entropy))\n    elif entropy < q[-1][1]: q[-1] = (feature, entropy)\n"
     "    q.sort(key=lambda p: -p[1])\n    return cache", ""),
    ("def update_positive_cache(cache, label, feature, entropy, capacity):\n    pass", "returns nothing yet"),
    ("def positive_cache_logits(query, keys, labels, n_classes, alpha, beta):\n"
     "    cosine = F.normalize(query, dim=-1) @ F.normalize(keys, dim=-1).T\n"
     "    return torch.exp(-alpha * beta * (1 - cosine)) @ F.one_hot(labels, n_classes).float()", "α belongs outside the exponential"),
    ("def positive_cache_logits(query, keys, labels, n_classes, alpha, beta):\n"
     "    cosine = F.normalize(query, dim=-1) @ F.normalize(keys, dim=-1).T\n"
     "    return beta * torch.exp(-alpha * (1 - cosine)) @ F.one_hot(labels, n_classes).float()", "α and β are swapped"),
    ("def positive_cache_logits(query, keys, labels, n_classes, alpha, beta):\n"
     "    cosine = query @ F.normalize(keys, dim=-1).T\n"
     "    return alpha * torch.exp(-beta * (1 - cosine)) @ F.one_hot(labels, n_classes).float()", "normalised the keys but not the query"),
])
def test_more_mistakes_are_named(source, expected):
    "Other typical mistakes: each is caught, and the ones with a diagnosis get it (an empty `expected`: caught, with a generic message)."
    question = source.split("(")[0].removeprefix("def ")
    said = feedback(labcheck.check, question, define(question, source))
    assert said.startswith("✗") and expected in said, said


def test_the_checks_separate_the_cache_mistakes():
    "On the checks' streams every typical cache rule leaves a cache different from the right one (so none can pass)."
    for seed, capacity in ((20, 3), (21, 2), (22, 1)):
        right = labcheck._cache_under("right", labcheck._offers(seed), capacity)
        assert labcheck._same_cache(right, labcheck._cache_under("right", labcheck._offers(seed), capacity))
    for rule in labcheck._CACHE_MISTAKES:
        assert any(not labcheck._same_cache(labcheck._cache_under(rule, labcheck._offers(s), c), labcheck._cache_under("right", labcheck._offers(s), c))
                   for s, c in ((20, 3), (21, 2), (22, 1))), rule


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    return course.generate(LAB, tmp_path_factory.mktemp("labs")/LAB)


def test_student_version_holds_no_solution(generated):
    student = nbformat.read(generated/"student"/f"{LAB}.ipynb", 4)
    text = "\n".join(c.source for c in student.cells if c.cell_type == "code")
    assert course.answer_cells(student).keys() == course.solutions(LAB).keys()
    for question, solution in course.solutions(LAB, hidden_only=True).items():
        leaked = [l.strip() for l in solution.splitlines() if l.strip() and l.strip() in text]
        assert not leaked, f"the student version shows the solution of {question}: {leaked}"


def test_blank_and_filled_in_submissions_are_autograded(generated, tmp_path):
    student, zip_ = generated/"student"/f"{LAB}.ipynb", course.autograder_zip(generated)
    points, top = course.total(course.grade(student, zip_, debug=True))
    assert top > 0 and points == 0, f"a blank submission scored {points} / {top}"
    correct = course.grade(course.fill(student, course.solutions(LAB), tmp_path/"correct.ipynb"), zip_)
    assert course.total(correct)[0] == top, correct["scores"]
