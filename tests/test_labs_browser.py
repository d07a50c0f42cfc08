"""A student's path through a lab in a real browser: JupyterLab serves a generated student version of lab 2, headless
Chromium opens it, runs the setup cells, types a wrong answer into Exercise 2.1, runs its check and reads the feedback
shown in the page, then runs on to the explorer and checks that it draws its figure. Skipped, with the reason, where
Chromium, its driver, selenium or JupyterLab is missing (CI installs Debian's `chromium chromium-driver`).

Set TTPT_LABS_SCREENSHOT=labs/images/student_path.png to refresh the screenshot the teacher's guide shows."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("otter", reason="the labs need otter-grader: pip install -e '.[labs]'")
pytest.importorskip("selenium", reason="the browser test needs selenium")
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
DRIVER = shutil.which("chromedriver") or next((p for p in ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver") if os.path.exists(p)), None)
pytestmark = [pytest.mark.skipif(CHROMIUM is None or DRIVER is None, reason="no Chromium or chromedriver here (apt-get install chromium chromium-driver)"),
              pytest.mark.skipif(shutil.which("jupyter-lab") is None and not (Path(sys.executable).parent/"jupyter-lab").exists(), reason="no JupyterLab here (the labs extra installs it)")]

from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

LABS_DIR = Path(__file__).resolve().parent.parent/"labs"
sys.path.insert(0, str(LABS_DIR))
import course  # noqa: E402

LAB, QUESTION = "02_views_selection", "entropy_of_logits"
WRONG = "def entropy_of_logits(logits): return -(logits.softmax(-1) * logits.softmax(-1).log2()).sum(-1)" # one line: the editor auto-indents
SETTINGS = {"@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"}, # every cell in the page
            "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False}}


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyterlab(tmp_path):
    "JupyterLab serving a generated student version of the lab from its own folder, on 127.0.0.1 only; (url, folder)."
    out = course.generate(LAB, tmp_path/"dist")
    folder = out/"student"
    for name, value in SETTINGS.items():
        (tmp_path/"settings"/name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path/"settings"/name).write_text(json.dumps(value))
    port, token = _free_port(), "ttpt-labs-test"
    env = {**os.environ, "IN_TEST": "1", "JUPYTERLAB_SETTINGS_DIR": str(tmp_path/"settings"), "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path/"workspaces")}
    env.pop("TTPT_NO_WIDGETS", None) # the explorer's sliders, as a student gets them
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
               f"--ServerApp.token={token}", f"--ServerApp.root_dir={folder}", "--ServerApp.open_browser=False"]
    server = subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path/"jupyterlab.log", "w"), start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    pytest.fail(f"JupyterLab did not start: {(tmp_path/'jupyterlab.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield f"{url}/lab/tree/{LAB}.ipynb?token={token}", folder
    finally:
        os.killpg(server.pid, 15)
        try: server.wait(10)
        except subprocess.TimeoutExpired: os.killpg(server.pid, 9)


@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,760", "--disable-gpu"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=options)
    driver.set_page_load_timeout(60)
    try: yield driver
    finally: driver.quit()


def _cells(driver): return driver.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")


def _run_cells(driver, n):
    "Press Shift+Enter `n` times where the focus is: run the selected cell and select the next, as a student does."
    for _ in range(n):
        ActionChains(driver).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()
        time.sleep(0.1)


def _prompt(driver, i): return _cells(driver)[i].find_element(By.CSS_SELECTOR, ".jp-InputPrompt").text.strip()


def _output_text(cell): return "\n".join(o.text for o in cell.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output"))


def _save_screenshot(driver, path:Path):
    "A PNG of the page, small enough for the docs (≤ 100 KB): in 64 colours."
    from PIL import Image
    raw = path.with_suffix(".raw.png")
    driver.save_screenshot(str(raw))
    image = Image.open(raw).convert("RGB")
    image = image.quantize(64)
    image.save(path, optimize=True)
    raw.unlink()
    return path


def _waiter(driver, tmp_path, seconds=60):
    "wait(step, condition): a bounded wait that, on timeout, fails naming the step, with a screenshot in tmp_path."
    from selenium.common.exceptions import TimeoutException
    def wait(step, condition):
        try: return WebDriverWait(driver, seconds, poll_frequency=0.5).until(condition)
        except TimeoutException:
            driver.save_screenshot(str(tmp_path/"failure.png"))
            prompts = [p.text for p in driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-InputPrompt")]
            pytest.fail(f"timed out after {seconds} s waiting for {step}; screenshot {tmp_path/'failure.png'}; the cells' prompts: {prompts}")
    return wait


def test_a_student_runs_a_lab_in_the_browser(jupyterlab, browser, tmp_path):
    url, folder = jupyterlab
    student = nbformat.read(folder/f"{LAB}.ipynb", 4)
    answer = course.answer_cells(student)[QUESTION]
    check = next(i for i, c in enumerate(student.cells) if i > answer and f'grader.check("{QUESTION}")' in c.source)
    explorer = next(i for i, c in enumerate(student.cells) if "widgets.interact(" in c.source)
    wait = _waiter(browser, tmp_path)
    start = time.time()
    browser.get(url)
    wait("the notebook's cells", lambda d: len(_cells(d)) == len(student.cells))
    wait("the kernel", lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-Notebook-ExecutionIndicator[data-status='idle']"))
    cells = _cells(browser)
    def first_cell_ran(d): # a kernel still starting drops a keypress: press Ctrl+Enter on the grader's cell until it has run
        if re.fullmatch(r"\[\d+\]:", _prompt(d, 0)): return True
        _cells(d)[0].find_element(By.CSS_SELECTOR, ".jp-InputPrompt").click()
        ActionChains(d).key_down(Keys.CONTROL).send_keys(Keys.ENTER).key_up(Keys.CONTROL).perform()
        time.sleep(2)
        return re.fullmatch(r"\[\d+\]:", _prompt(d, 0))
    wait("the grader's cell to run", first_cell_ran)
    _cells(browser)[1].click()
    _run_cells(browser, answer - 1) # the cells above the answer: the imports, the setup; the selection moves down
    code_above = [i for i in range(answer) if student.cells[i].cell_type == "code"]
    wait("the cells above the answer to run", lambda d: all(re.fullmatch(r"\[\d+\]:", _prompt(d, i)) for i in code_above))
    wait("the answer cell to be selected", lambda d: "jp-mod-selected" in _cells(d)[answer].get_attribute("class"))
    editor = _cells(browser)[answer].find_element(By.CSS_SELECTOR, ".cm-content")
    editor.click()
    editor.send_keys(Keys.CONTROL, "a")
    editor.send_keys(Keys.DELETE)
    editor.send_keys(WRONG)
    typed = _cells(browser)[answer].find_element(By.CSS_SELECTOR, ".cm-content").text
    assert typed.strip() == WRONG, f"the editor holds {typed!r}"
    _run_cells(browser, 1 + check - answer) # the answer, then the cells down to its check
    wait("the check's feedback", lambda d: f"{QUESTION}:" in _output_text(_cells(d)[check]))
    shown = _output_text(_cells(browser)[check])
    lines = shown.splitlines()
    assert lines[0] == f"❌ {QUESTION}: 1 / 3 points", shown
    assert lines[1].startswith("✗ your entropy uses log base 2") and "smallest input that shows it" in shown, shown
    assert "Trying:" not in shown and "Expected nothing" not in shown, shown
    browser.execute_script("arguments[0].scrollIntoView({block: 'start'})", _cells(browser)[answer - 1])
    picture = _save_screenshot(browser, tmp_path/"student_path.png")
    _cells(browser)[check + 1].find_element(By.CSS_SELECTOR, ".jp-InputPrompt, .jp-Cell-inputArea").click()
    _run_cells(browser, explorer - check) # on to the explorer, through the other (blank) exercises
    wait("the explorer's figure", lambda d: _cells(d)[explorer].find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output img"))
    sliders = _cells(browser)[explorer].find_elements(By.CSS_SELECTOR, ".widget-slider, .jupyter-widget-slider, .widget-hslider")
    assert len(sliders) >= 2, "the explorer shows no sliders: " + _output_text(_cells(browser)[explorer])[:500]
    figure = _cells(browser)[explorer].find_element(By.CSS_SELECTOR, ".jp-OutputArea-output img")
    assert figure.size["width"] > 300 and figure.size["height"] > 100, figure.size
    errors = [c for c in _cells(browser)[:explorer + 1] if c.find_elements(By.CSS_SELECTOR, "[data-mime-type='application/vnd.jupyter.stderr']") and "Traceback" in _output_text(c)]
    assert not errors, "a cell failed: " + _output_text(errors[0])[-1500:]
    assert picture.stat().st_size <= 100_000, picture.stat().st_size
    if os.environ.get("TTPT_LABS_SCREENSHOT"): shutil.copy(picture, os.environ["TTPT_LABS_SCREENSHOT"])
    assert time.time() - start < 120, f"the student's path took {time.time() - start:.0f} s"
