"""The course labs (labs/): every solution passes its graded checks; every typical wrong answer in labs/mistakes.py
loses points with feedback whose first line names its mistake, and every correct variant gets full marks (a
mutation battery); a mistake in an earlier answer is reported once, where it is made; the generated student
versions hold no solution and import nothing that solves an exercise, run top to bottom and score 0 blank; the
in-notebook grader finds a renamed notebook and hides doctest's report; a filled-in submission is autograded offline.
Needs the `labs` extra (otter-grader); skipped without it. tests/test_labs_browser.py walks a student's path in a browser."""
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
from mistakes import CORRECT_ANSWERS, WRONG_ANSWERS  # noqa: E402


def _is_import(node): return isinstance(node, (ast.Import, ast.ImportFrom))


def lab_namespace(lab, except_question=None):
    "What a student's answer cell sees: the lab's imports and the lab's other answers (the solutions)."
    namespace = {}
    for cell in nbformat.read(course.master(lab), 4).cells:
        if cell.cell_type == "code" and cell.source.strip() and all(map(_is_import, ast.parse(cell.source).body)):
            exec(cell.source, namespace)
    for question, solution in course.solutions(lab).items():
        if question != except_question: exec(solution, namespace)
    return namespace


def define(lab, question, source, namespace=None):
    "The function that an answer cell's `source` defines for `question`."
    namespace = lab_namespace(lab, question) if namespace is None else namespace
    exec(source, namespace)
    return namespace[question]


def feedback(check, question, fn):
    "What a graded check prints for `fn` (empty when it passes)."
    with contextlib.redirect_stdout(io.StringIO()) as out: check(question, fn)
    return out.getvalue().strip()


QUESTIONS = [(lab, q) for lab in course.LABS for q in course.solutions(lab)]
MUTANTS = [(lab, q, i) for lab in course.LABS for q in WRONG_ANSWERS.get(lab, {}) for i in range(len(WRONG_ANSWERS[lab][q]))]
VARIANTS = [(lab, q, i) for lab in course.LABS for q in CORRECT_ANSWERS.get(lab, {}) for i in range(len(CORRECT_ANSWERS[lab][q]))]


def test_labs_found():
    assert len(course.LABS) >= 3, course.LABS
    assert all(q in labcheck.EXERCISES for _, q in QUESTIONS), [q for _, q in QUESTIONS if q not in labcheck.EXERCISES]


@pytest.mark.parametrize("lab,question", QUESTIONS, ids=[f"{l}-{q}" for l, q in QUESTIONS])
def test_solution_passes_its_checks(lab, question):
    fn = define(lab, question, course.solutions(lab)[question])
    for check in (labcheck.runs, labcheck.check):
        assert feedback(check, question, fn) == "", f"{lab}: the solution of {question} fails {check.__name__}: {feedback(check, question, fn)}"


@pytest.mark.parametrize("lab,question", QUESTIONS, ids=[f"{l}-{q}" for l, q in QUESTIONS])
def test_every_exercise_has_five_caught_mistakes_and_two_correct_variants(lab, question):
    wrong = WRONG_ANSWERS.get(lab, {}).get(question, [])
    assert len(wrong) >= 5, f"{lab}: {question} needs at least five typical wrong answers in labs/mistakes.py, has {len(wrong)}"
    assert len({kind for _, _, kind in wrong}) >= 3, f"{lab}: {question}'s wrong answers should cover at least three classes of mistake"
    assert len(CORRECT_ANSWERS.get(lab, {}).get(question, [])) >= 2, f"{lab}: {question} needs at least two correct variants in labs/mistakes.py"


@pytest.mark.parametrize("lab,question,i", MUTANTS, ids=[f"{l}-{q}-{i}" for l, q, i in MUTANTS])
def test_wrong_answer_loses_points_and_gets_its_feedback(lab, question, i):
    "A typical wrong answer fails the 2-point check (so scores below full marks), and the first line names its mistake."
    source, expected, kind = WRONG_ANSWERS[lab][question][i]
    said = feedback(labcheck.check, question, define(lab, question, source))
    first = said.splitlines()[0] if said else ""
    assert first.startswith("✗") and expected in first, f"{lab}: {question} wrong answer {i} ({kind}) should say {expected!r} first, said {said!r}"
    assert "assertion" not in said.lower() and "Traceback" not in said, said


@pytest.mark.parametrize("lab,question,i", VARIANTS, ids=[f"{l}-{q}-{i}" for l, q, i in VARIANTS])
def test_correct_variant_gets_full_marks(lab, question, i):
    fn = define(lab, question, CORRECT_ANSWERS[lab][question][i])
    for check in (labcheck.runs, labcheck.check):
        said = feedback(check, question, fn)
        assert said == "", f"{lab}: correct variant {i} of {question} fails {check.__name__}: {said}"


def test_guide_lists_the_classes_of_mistakes_each_exercise_separates():
    "labs/TEACHERS.md's table of mistake classes is the one mistakes.py holds."
    guide = (LABS_DIR/"TEACHERS.md").read_text()
    for lab, questions in WRONG_ANSWERS.items():
        for question, answers in questions.items():
            row = f"| `{question}` | {int(lab[:2])} | " + ", ".join(dict.fromkeys(kind for _, _, kind in answers)) + " |"
            assert row in guide, f"TEACHERS.md should have the row {row}"


def test_blank_answer_says_it_is_not_written():
    fn = define("02_views_selection", "entropy_of_logits", "def entropy_of_logits(logits):\n    ...")
    said = feedback(labcheck.runs, "entropy_of_logits", fn)
    assert "returns nothing yet" in said, said


def test_feedback_shows_the_smallest_input_that_shows_the_mistake():
    "Rounding ρN up is invisible where ρN is whole: the feedback names the first input where it shows (ρN = 2.1)."
    source = WRONG_ANSWERS["02_views_selection"]["keep_confident"][1][0]
    said = feedback(labcheck.check, "keep_confident", define("02_views_selection", "keep_confident", source)).splitlines()
    assert len(said) >= 3 and said[1].strip().startswith("smallest input that shows it:") and "ρN = 2.1" in said[1], said


def test_root_cause_is_reported_where_it_is_made():
    "A marginal entropy built on a wrong entropy_of_logits is checked with ttpt's entropy in its place: no knock-on failure."
    lab, namespace = "02_views_selection", lab_namespace("02_views_selection", "marginal_entropy_of")
    exec(WRONG_ANSWERS[lab]["entropy_of_logits"][0][0], namespace) # log base 2
    right = define(lab, "marginal_entropy_of", CORRECT_ANSWERS[lab]["marginal_entropy_of"][0], namespace) # calls entropy_of_logits
    assert feedback(labcheck.check, "marginal_entropy_of", right) == ""
    wrong = define(lab, "marginal_entropy_of", "def marginal_entropy_of(logits):\n    return entropy_of_logits(logits.mean(0)[None])[0]", namespace)
    said = feedback(labcheck.check, "marginal_entropy_of", wrong)
    assert said.startswith("✗ the mean of logits is not the mean of probabilities") and "ttpt's `entropy_of_logits` in place of yours" in said, said


def test_grader_finds_a_renamed_notebook_and_shows_clean_feedback(tmp_path):
    "The in-notebook grader of a notebook renamed by a download ('02_views_selection (1).ipynb'), run in a kernel."
    from nbclient import NotebookClient
    lab = "02_views_selection"
    out = course.generate(lab, tmp_path/"dist")
    folder = tmp_path/"hand-in"
    folder.mkdir()
    (folder/"labcheck.py").write_text((out/"student"/"labcheck.py").read_text())
    student = nbformat.read(out/"student"/f"{lab}.ipynb", 4)
    init = next(c for c in student.cells if "labcheck.Grader" in c.source)
    wrong = WRONG_ANSWERS[lab]["entropy_of_logits"][0][0]
    nb = nbformat.v4.new_notebook(metadata=student.metadata)
    nb.cells = [init, nbformat.v4.new_code_cell("import torch\n" + wrong), nbformat.v4.new_code_cell('grader.check("entropy_of_logits")')]
    renamed = folder/f"{lab} (1).ipynb"
    nbformat.write(nb, renamed)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    shown = nb.cells[2].outputs[0]["data"]["text/plain"]
    assert shown.splitlines()[0] == "❌ entropy_of_logits: 1 / 3 points", shown
    assert shown.splitlines()[1].startswith("✗ your entropy uses log base 2") and "smallest input that shows it" in shown, shown
    assert "Trying:" not in shown and "Expected nothing" not in shown and "*****" not in shown, shown


def test_student_versions_import_nothing_that_solves_an_exercise(generated):
    "No import in a student notebook binds a library function (or the class of a method) that solves one of its exercises."
    for lab in course.LABS:
        student = nbformat.read(generated[lab]/"student"/f"{lab}.ipynb", 4)
        namespace = {}
        for cell in student.cells:
            if cell.cell_type != "code" or "otter_answer_cell" in cell.metadata.get("tags", []): continue
            for node in ast.parse(cell.source).body:
                if _is_import(node): exec(ast.unparse(node), namespace)
        solving = [f for q in course.solutions(lab) for f in labcheck.SOLVED_BY[q]]
        imported = {name: value for name, value in namespace.items() if not name.startswith("__")}
        bad = [name for name, value in imported.items() for f in solving
               if value is f or (isinstance(value, type) and f.__qualname__.split(".")[0] == value.__name__ and f.__module__ == value.__module__)]
        assert not bad, f"{lab}: the student version imports {bad}, which solve its exercises"


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
