"""The course labs (labs/): every solution passes its graded checks, every typical wrong answer gets its own feedback
(mutation tests), the generated student versions hold no solution, run top to bottom and score 0 blank, and a
filled-in submission is autograded offline. Needs the `labs` extra (otter-grader); skipped without it."""
import ast
import contextlib
import io
import sys
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword:DeprecationWarning", "ignore:The inplace keyword")
pytest.importorskip("otter", reason="the labs need otter-grader: pip install -e '.[labs]'")
LABS_DIR = Path(__file__).resolve().parent.parent/"labs"
sys.path.insert(0, str(LABS_DIR))
import course  # noqa: E402
import labcheck  # noqa: E402
from mistakes import WRONG_ANSWERS  # noqa: E402


def _is_import(node): return isinstance(node, (ast.Import, ast.ImportFrom))


def lab_namespace(lab):
    "A namespace holding what the lab's import cells import, as a student's answer cell sees it."
    namespace = {}
    for cell in nbformat.read(course.master(lab), 4).cells:
        if cell.cell_type == "code" and cell.source.strip() and all(map(_is_import, ast.parse(cell.source).body)):
            exec(cell.source, namespace)
    return namespace


def define(lab, question, source):
    "The function that an answer cell's `source` defines for `question`."
    namespace = lab_namespace(lab)
    exec(source, namespace)
    return namespace[question]


def feedback(check, question, fn):
    "What a graded check prints for `fn` (empty when it passes)."
    with contextlib.redirect_stdout(io.StringIO()) as out: check(question, fn)
    return out.getvalue().strip()


QUESTIONS = [(lab, q) for lab in course.LABS for q in course.solutions(lab)]
MUTANTS = [(lab, q, i) for lab in course.LABS for q in WRONG_ANSWERS.get(lab, {}) for i in range(len(WRONG_ANSWERS[lab][q]))]


def test_labs_found():
    assert len(course.LABS) >= 3, course.LABS
    assert all(q in labcheck.EXERCISES for _, q in QUESTIONS), [q for _, q in QUESTIONS if q not in labcheck.EXERCISES]


@pytest.mark.parametrize("lab,question", QUESTIONS, ids=[f"{l}-{q}" for l, q in QUESTIONS])
def test_solution_passes_its_checks(lab, question):
    fn = define(lab, question, course.solutions(lab)[question])
    for check in (labcheck.runs, labcheck.check):
        assert feedback(check, question, fn) == "", f"{lab}: the solution of {question} fails {check.__name__}"


@pytest.mark.parametrize("lab,question", QUESTIONS, ids=[f"{l}-{q}" for l, q in QUESTIONS])
def test_every_exercise_has_two_caught_mistakes(lab, question):
    assert len(WRONG_ANSWERS.get(lab, {}).get(question, [])) >= 2, f"{lab}: {question} needs at least two typical wrong answers in labs/mistakes.py"


@pytest.mark.parametrize("lab,question,i", MUTANTS, ids=[f"{l}-{q}-{i}" for l, q, i in MUTANTS])
def test_wrong_answer_gets_its_feedback(lab, question, i):
    source, expected = WRONG_ANSWERS[lab][question][i]
    said = feedback(labcheck.check, question, define(lab, question, source))
    assert said.startswith("✗") and expected in said, f"{lab}: {question} wrong answer {i} should say {expected!r}, said {said!r}"
    assert "assertion" not in said.lower(), said


def test_blank_answer_says_it_is_not_written():
    fn = define("02_views_selection", "entropy_of_logits", "def entropy_of_logits(logits):\n    ...")
    said = feedback(labcheck.runs, "entropy_of_logits", fn)
    assert "returns nothing yet" in said, said


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    "Every lab's student and autograder versions, generated offline into a temporary folder."
    root = tmp_path_factory.mktemp("labs")
    return {lab: course.generate(lab, root/lab) for lab in course.LABS}


@pytest.mark.parametrize("lab", course.LABS)
def test_student_version_holds_no_solution(lab, generated):
    student = nbformat.read(generated[lab]/"student"/f"{lab}.ipynb", 4)
    text = "\n".join(c.source for c in student.cells if c.cell_type == "code") # prose may name the functions an answer calls
    assert course.answer_cells(student).keys() == course.solutions(lab).keys(), (lab, course.answer_cells(student))
    for question, solution in course.solutions(lab, hidden_only=True).items():
        body = [l.strip() for l in solution.splitlines() if l.strip()]
        leaked = [l for l in body if l in text]
        assert not leaked, f"{lab}: the student version shows the solution of {question}: {leaked}"
    assert "BEGIN SOLUTION" not in text and "labcheck.check(" not in text, f"{lab}: solution markers or test cells left in the student version"


@pytest.mark.parametrize("lab", course.LABS)
def test_blank_submission_runs_and_scores_zero(lab, generated):
    "The student version as handed out: runs top to bottom (debug: any error fails) and scores 0."
    out = generated[lab]
    result = course.grade(out/"student"/f"{lab}.ipynb", course.autograder_zip(out), debug=True)
    points, top = course.total(result)
    assert top > 0 and points == 0, f"{lab}: a blank submission scored {points} / {top}: {result['scores']}"


def test_a_stalled_grading_is_killed_and_reported(generated):
    "Otter's notebook execution has no timeout: a grading that takes too long is killed, tried again, then reported in one line."
    lab = "02_views_selection"
    out = generated[lab]
    with pytest.raises(TimeoutError, match="took over 1 s, 2 times"):
        course.grade(out/"student"/f"{lab}.ipynb", course.autograder_zip(out), timeout=1)


def test_filled_in_and_wrong_submissions_are_autograded(generated, tmp_path):
    lab = "02_views_selection"
    out = generated[lab]
    student, zip_ = out/"student"/f"{lab}.ipynb", course.autograder_zip(out)
    correct = course.grade(course.fill(student, course.solutions(lab), tmp_path/"correct.ipynb"), zip_)
    points, top = course.total(correct)
    assert points == top > 0, f"the solutions scored {points} / {top}: {correct['scores']}"
    wrong = course.grade(course.fill(student, {"entropy_of_logits": WRONG_ANSWERS[lab]["entropy_of_logits"][0][0]}, tmp_path/"wrong.ipynb"), zip_)
    assert 0 < course.total(wrong)[0] < top, wrong["scores"]
    assert "your entropy uses log base 2" in wrong["feedback"], wrong["feedback"][:2000]
