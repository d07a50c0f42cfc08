"""Generate, fill in and autograde the ttpt labs with otter-grader, offline.

    python labs/course.py generate [LAB ...]   # student and autograder versions under labs/dist/<lab>/
    python labs/course.py grade SUBMISSION.ipynb --lab LAB   # autograde one submission locally (no Docker)
    python labs/course.py run [LAB ...]        # execute the master notebooks in place, outputs kept (to commit them)
    python labs/course.py measure [LAB ...]    # the points of a blank, a wrong and a correct submission

The tests (tests/test_labs.py) use the same functions."""
import argparse
import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import otter.assign
from nbclient import NotebookClient

from mistakes import WRONG_ANSWERS

LABS_DIR = Path(__file__).resolve().parent
LABS = sorted(p.stem for p in LABS_DIR.glob("[0-9][0-9]_*.ipynb")) # the master (solution) notebooks, in course order
CHECK_CALL = re.compile(r'grader\.check\("([^"]+)"\)')
SOLUTION_MARKERS = re.compile(r"^\s*# (BEGIN|END) SOLUTION\s*$")


def master(lab:str) -> Path:
    "The master notebook of `lab` (a name from `LABS`)."
    if lab not in LABS: raise ValueError(f"unknown lab {lab!r}; the labs are {LABS}")
    return LABS_DIR/f"{lab}.ipynb"


@contextlib.contextmanager
def _quiet_in(folder):
    "Run otter in `folder`, its printing kept out of the caller's output; the working folder and PATH (otter prepends its conda's) are restored after."
    cwd, path = os.getcwd(), os.environ.get("PATH", "")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            os.chdir(folder)
            yield
    finally:
        os.chdir(cwd)
        os.environ["PATH"] = path


def generate(lab:str, # the lab
             out:str|Path|None=None, # output folder (default labs/dist/<lab>)
             run_tests:bool=False, # let otter execute the solution against its tests while generating
            ) -> Path:
    "`otter assign` the lab: `out/student/<lab>.ipynb` to hand out, `out/autograder/` with the autograder zip."
    out = Path(out or LABS_DIR/"dist"/lab).resolve()
    with _quiet_in(LABS_DIR): otter.assign.main(str(master(lab)), str(out), no_run_tests=not run_tests)
    for version in ("student", "autograder"): _use_labcheck_grader(out/version/f"{lab}.ipynb", lab)
    return out


INIT_CELL = '# Initialize Otter: the grader finds this notebook whatever it is renamed to\nimport labcheck\ngrader = labcheck.Grader("{lab}")'


def _use_labcheck_grader(notebook:Path, lab:str):
    "Make the notebook's init cell start `labcheck.Grader`, otter's grader that finds a renamed notebook and shows clean feedback."
    nb = nbformat.read(notebook, 4)
    init = next(c for c in nb.cells if c.cell_type == "code" and "otter.Notebook(" in c.source)
    init.source = INIT_CELL.format(lab=lab)
    nbformat.write(nb, notebook)


def autograder_zip(out:str|Path) -> Path:
    "The autograder zip that `generate` wrote into `out`."
    zips = sorted((Path(out)/"autograder").glob("*-autograder_*.zip"))
    if not zips: raise FileNotFoundError(f"no autograder zip under {out}/autograder: run generate first")
    return zips[-1]


GRADE_TIMEOUT = 600 # seconds one `otter run` may take: its notebook execution has no timeout of its own, and can stall


def _otter_run(submission:Path, autograder:Path, folder:str, debug:bool, timeout:int) -> subprocess.CompletedProcess:
    "`otter run` in its own process group, which is killed (with the kernel it started) after `timeout` seconds."
    command = [sys.executable, "-m", "otter", "run", "-a", str(autograder), "-o", folder, "--no-logo", *(["--debug"] if debug else []), str(submission)]
    process = subprocess.Popen(command, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                               env={**os.environ, "TTPT_NO_WIDGETS": "1"}) # explorers draw their static figure: no browser here
    try: out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def grade(submission:str|Path, # a student's notebook
          autograder:str|Path, # the lab's autograder zip
          debug:bool=False, # stop at the first error in the submission instead of grading what ran
          timeout:int=GRADE_TIMEOUT, # seconds one try may take
          tries:int=2, # tries before a stalled grading is an error
         ) -> dict:
    "Autograde one submission locally with `otter run` in a fresh process: {question: (score, max score)} and the feedback text."
    submission, autograder = Path(submission).resolve(), Path(autograder).resolve()
    with tempfile.TemporaryDirectory() as folder:
        for attempt in range(1, tries + 1):
            try:
                done = _otter_run(submission, autograder, folder, debug, timeout)
                break
            except subprocess.TimeoutExpired:
                if attempt == tries: raise TimeoutError(f"grading {submission.name} took over {timeout} s, {tries} times") from None
        if done.returncode != 0: raise RuntimeError(f"otter could not grade {submission.name}: {done.stderr.strip()[-2000:]}")
        results = json.loads((Path(folder)/"results.json").read_text())
    scores = {t["name"]: (t["score"], t["max_score"]) for t in results["tests"] if t["name"] != "Public Tests"}
    feedback = "\n".join(t.get("output", "") for t in results["tests"])
    return {"scores": scores, "feedback": feedback}


def total(result:dict) -> tuple:
    "(points, out of) of a `grade` result."
    return sum(s for s, _ in result["scores"].values()), sum(m for _, m in result["scores"].values())


def answer_cells(nb) -> dict:
    "question name -> index of its answer cell (the last answer cell before the question's `grader.check`)."
    cells, last, found = nb.cells, None, {}
    for i, cell in enumerate(cells):
        if "otter_answer_cell" in cell.metadata.get("tags", []): last = i
        match = CHECK_CALL.search(cell.source) if cell.cell_type == "code" else None
        if match: found[match.group(1)] = last
    return found


def solutions(lab:str, # the lab
              hidden_only:bool=False, # only the lines between the solution markers (what the student version hides)
             ) -> dict:
    "question name -> its solution cell's source (solution markers removed), from the master notebook."
    nb, found, question, in_solution = nbformat.read(master(lab), 4), {}, None, False
    for cell in nb.cells:
        text = cell.source.strip()
        if cell.cell_type == "raw" and text.startswith("# BEGIN QUESTION"):
            question = re.search(r"name:\s*(\S+)", text).group(1)
        elif cell.cell_type == "raw" and text in ("# BEGIN SOLUTION", "# END SOLUTION"): in_solution = text == "# BEGIN SOLUTION"
        elif in_solution and cell.cell_type == "code":
            lines, hidden, inside = cell.source.splitlines(), [], False
            for line in lines:
                marker = SOLUTION_MARKERS.match(line)
                if marker: inside = marker.group(1) == "BEGIN"
                elif inside: hidden.append(line)
            found[question] = "\n".join(hidden if hidden_only else [l for l in lines if not SOLUTION_MARKERS.match(l)])
    return found


def fill(student:str|Path, # the generated student notebook
         answers:dict, # question name -> the source to put in its answer cell
         out:str|Path, # where to write the filled-in notebook
        ) -> Path:
    "A submission: the student notebook with some answer cells written."
    nb = nbformat.read(student, 4)
    cells = answer_cells(nb)
    unknown = set(answers) - set(cells)
    if unknown: raise KeyError(f"no answer cell for {sorted(unknown)}; questions: {sorted(cells)}")
    for question, source in answers.items(): nb.cells[cells[question]].source = source
    nbformat.write(nb, out)
    return Path(out)


def execute(notebook:str|Path, # a notebook to run top to bottom, in its own folder
            timeout:int=900, # seconds per cell
           ) -> float:
    "Execute a notebook in place (outputs kept) and return the seconds it took."
    nb, start = nbformat.read(notebook, 4), time.perf_counter()
    os.environ["TTPT_NO_WIDGETS"] = "1" # the kernel inherits it: explorers draw their static figure (nbclient can block on widgets)
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(Path(notebook).parent)}}).execute()
    seconds = time.perf_counter() - start
    nbformat.write(nb, notebook)
    return seconds


def measure(lab:str, # the lab
            wrong:dict, # question name -> a typical wrong answer's source
           ) -> dict:
    "Seconds to autograde the correct submission, and the points of a blank, a wrong and a correct submission."
    with tempfile.TemporaryDirectory() as folder:
        out = generate(lab, Path(folder)/lab)
        student, zip_ = out/"student"/f"{lab}.ipynb", autograder_zip(out)
        start = time.perf_counter()
        correct = total(grade(out/"autograder"/f"{lab}.ipynb", zip_))
        seconds = time.perf_counter() - start
        blank = total(grade(student, zip_))
        wrong = total(grade(fill(student, wrong, Path(folder)/"wrong.ipynb"), zip_))
    return {"lab": lab, "seconds": round(seconds), "blank": blank, "wrong": wrong, "correct": correct}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="student and autograder versions under labs/dist/<lab>/")
    g.add_argument("labs", nargs="*", default=LABS)
    r = sub.add_parser("grade", help="autograde one submission locally")
    r.add_argument("submission")
    r.add_argument("--lab", required=True, choices=LABS)
    x = sub.add_parser("run", help="execute the master notebooks in place, outputs kept, and print their run times")
    x.add_argument("labs", nargs="*", default=LABS)
    m = sub.add_parser("measure", help="the points of a blank, a wrong and a correct submission")
    m.add_argument("labs", nargs="*", default=LABS)
    args = parser.parse_args(argv)
    if args.command == "generate":
        for lab in args.labs: print(f"{lab}: {generate(lab)}")
    elif args.command == "run":
        for lab in args.labs: print(f"{lab}: {execute(master(lab)):.0f} s", flush=True)
    elif args.command == "grade":
        out = LABS_DIR/"dist"/args.lab
        result = grade(args.submission, autograder_zip(out) if out.exists() else autograder_zip(generate(args.lab)))
        for question, (score, top) in result["scores"].items(): print(f"{question}: {score:g} / {top:g}")
        print("total: {:g} / {:g}".format(*total(result)))
    else:
        print("| lab | seconds to autograde the correct one | blank | wrong | correct |\n|---|---|---|---|---|")
        for lab in args.labs:
            row = measure(lab, {q: answers[0][0] for q, answers in WRONG_ANSWERS[lab].items()})
            print(f"| {lab} | {row['seconds']} | {row['blank'][0]:g} / {row['blank'][1]:g} | {row['wrong'][0]:g} / {row['wrong'][1]:g} | {row['correct'][0]:g} / {row['correct'][1]:g} |", flush=True)


if __name__ == "__main__": main()
