"""The offline docs preview (`tools/preview_docs.py`), opened in headless Chromium: every page renders, every equation
typesets (MathJax runs in the browser), every figure loads, every exported symbol's documentation appears, and
every internal link resolves. Needs Debian's chromium, chromium-driver and libjs-mathjax; skipped without them."""
import importlib
import inspect
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urldefrag, urljoin, urlparse

import pytest
from fastcore.nbio import read_nb
from nbdev.config import get_config, nbpath2html

from test_platform import library_modules

CONFIG = get_config()
ROOT = Path(CONFIG.config_path)
NOTEBOOKS = sorted((p for p in Path(CONFIG.nbs_path).glob("*.ipynb") if not p.name.startswith("_")),
                   key=lambda p: (p.stem != "index", p.name))  # the site's reading order
PAGES = {nb.name: nbpath2html(nb).name for nb in NOTEBOOKS}  # nbdev's page name for each notebook
MATHJAX = Path("/usr/share/javascript/mathjax/MathJax.js")
MISSING = [name for name, there in [("chromium", shutil.which("chromium")), ("chromedriver", shutil.which("chromedriver")),
                                    ("libjs-mathjax", MATHJAX.exists())] if not there]
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"not installed: {', '.join(MISSING)} "
                                "(Debian: apt-get install chromium chromium-driver libjs-mathjax)")

WAIT_FOR_MATHJAX = """
const done = arguments[arguments.length - 1], start = Date.now();
(function wait() {
  if (window.MathJax && MathJax.isReady) MathJax.Hub.Queue(() => done("typeset"));  // ready: the first typeset is over
  else if (Date.now() - start > 30000) done(window.MathJax ? "MathJax did not start in 30 s" : "MathJax did not load");
  else setTimeout(wait, 50);
})();
"""

READ_PAGE = """
const maths = "script, style, .MathJax, .MathJax_CHTML, .mjx-chtml, .MathJax_Preview", hidden = `pre, code, nav, ${maths}`;
const walker = document.createTreeWalker(document.querySelector("main"), NodeFilter.SHOW_TEXT);
const prose = [], plain = [];  // the text outside code and maths; the text outside maths
for (let n = walker.nextNode(); n; n = walker.nextNode()) {
  if (!n.parentElement.closest(hidden)) prose.push(n.nodeValue);
  if (!n.parentElement.closest(maths)) plain.push(n.nodeValue);
}
return {
  title: (document.querySelector("h1.title") || {}).innerText,
  text: document.querySelector("main").innerText,
  prose: prose.join(""),
  plain: plain.join(""),
  maths: document.querySelectorAll(".mjx-chtml, .MathJax_CHTML").length,
  errors: [...document.querySelectorAll(".mjx-merror, .MathJax_Error")].map(e => e.innerText),
  images: [...document.images].map(i => ({src: i.src.slice(0, 60), ok: i.complete && i.naturalWidth > 0})),
  ids: [...document.querySelectorAll("[id]")].map(e => e.id),
  links: [...document.querySelectorAll("a[href]")].map(a => a.getAttribute("href")),
  contents: [...document.querySelectorAll(".preview-contents dt a")].map(a => a.getAttribute("href")),
  outputs: [...document.querySelectorAll(".jp-OutputArea-output, .cell-output")].map(e => e.innerText).join("\\n"),
  cut: [...document.querySelectorAll("main pre")].filter(p => p.scrollWidth > p.clientWidth + 1)  // code wider than its cell
         .map(p => p.innerText.split("\\n").reduce((a, b) => (b.length > a.length ? b : a), "").slice(0, 80)),
};
"""


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "SEVERE"})
    driver = webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver")), options=options)
    driver.set_script_timeout(60)
    return driver


@pytest.fixture(scope="module")
def preview(tmp_path_factory):
    "Build the preview into a scratch folder and read every page after MathJax ran: {page name: what the page shows}."
    pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[dev]')")
    dest = tmp_path_factory.mktemp("docs_preview")
    built = subprocess.run([sys.executable, "tools/preview_docs.py", "--dest", str(dest)], cwd=ROOT, capture_output=True, text=True)
    assert built.returncode == 0, f"tools/preview_docs.py failed:\n{built.stdout}\n{built.stderr}"
    driver = _browser()
    pages = {}
    try:
        for page in PAGES.values():
            driver.get((dest / page).as_uri())
            mathjax = driver.execute_async_script(WAIT_FOR_MATHJAX)
            pages[page] = dict(driver.execute_script(READ_PAGE), mathjax=mathjax, url=driver.current_url,
                               console=[e["message"] for e in driver.get_log("browser")])
    finally:
        driver.quit()
    return pages


def _markdown(notebook):
    return "\n".join(c.source for c in read_nb(notebook).cells if c.cell_type == "markdown")


def _has_maths(notebook):
    "Whether a notebook's prose holds an equation (`$...$` outside code spans)."
    return bool(re.search(r"\$[^$\s][^$]*\$", re.sub(r"`[^`]*`", "", _markdown(notebook))))


def _figures(notebook):
    "How many figures the notebook's shown cells hold (nbdev drops `hide` cells; Quarto, `include`/`output: false`)."
    hidden = re.compile(r"^#\|\s*(hide\b|include:\s*false|output:\s*false)", re.M)
    return sum(any(k.startswith("image/") for k in out.get("data", {})) for c in read_nb(notebook).cells
               if c.cell_type == "code" and not hidden.search(c.source) for out in c.outputs)


def _title(notebook):
    return read_nb(notebook).cells[0].source.splitlines()[0].removeprefix("# ").strip()


def _flat(text):
    "Text without markdown emphasis and code marks, whitespace collapsed."
    return " ".join(re.sub(r"[`*]", "", text).split())


def test_index_lists_every_page_in_reading_order(preview):
    listed = preview["index.html"]["contents"]
    expected = list(PAGES.values())
    assert listed == expected, f"the index lists {listed}, the notebooks give {expected}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_page_renders(preview, notebook):
    page = preview[PAGES[notebook.name]]
    assert page["title"] == _title(notebook), f"{PAGES[notebook.name]}: title {page['title']!r}, notebook {_title(notebook)!r}"
    assert len(page["text"]) > 500, f"{PAGES[notebook.name]} shows only {len(page['text'])} characters:\n{page['text']}"
    assert not page["console"], f"{PAGES[notebook.name]}: browser errors {page['console']}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_code_fits_and_no_warning(preview, notebook):
    "Long code lines wrap inside their cell (none runs past its right edge), and no page shows a library warning."
    page = preview[PAGES[notebook.name]]
    assert not page["cut"], f"{PAGES[notebook.name]}: code wider than its cell, e.g. {page['cut'][:3]}"
    warned = re.findall(r"^.*(?:WARNING:\S+:|\w+Warning: |No pretrained weights loaded).*$", page["outputs"], re.M)
    assert not warned, f"{PAGES[notebook.name]} shows warnings: {warned[:3]}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_equations_typeset(preview, notebook):
    page = preview[PAGES[notebook.name]]
    assert page["mathjax"] == "typeset", f"{PAGES[notebook.name]}: {page['mathjax']}"
    assert not page["errors"], f"{PAGES[notebook.name]}: MathJax errors {page['errors']}"
    raw = re.findall(r"\$\$|\\\(|\\\)|\\\[|\\\]|\$[^$\s][^$]*\$", page["prose"])
    assert not raw, f"{PAGES[notebook.name]}: maths left as TeX in the text: {raw[:5]}"
    if _has_maths(notebook): assert page["maths"] > 0, f"{PAGES[notebook.name]}: the notebook has maths, the page shows none"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_figures_load(preview, notebook):
    page = preview[PAGES[notebook.name]]
    assert len(page["images"]) >= _figures(notebook), \
        f"{PAGES[notebook.name]} shows {len(page['images'])} images, the notebook has {_figures(notebook)} figures"
    broken = [i["src"] for i in page["images"] if not i["ok"]]
    assert not broken, f"{PAGES[notebook.name]}: {len(broken)} of {len(page['images'])} images did not load: {broken}"


def _exported():
    "(qualified name, page, anchor) of every function and class a module exports, from nbdev's index `ttpt/_modidx.py`."
    from ttpt._modidx import d
    for module, syms in d["syms"].items():
        exported = set(getattr(importlib.import_module(module), "__all__", []))
        for qualname, (doc, _) in syms.items():
            name = qualname.removeprefix(module + ".")
            if name in exported:
                page, _, anchor = doc.partition("#")
                yield qualname, page, anchor


EXPORTED = list(_exported())


def test_every_exported_symbol_is_indexed():
    "The symbols checked below are all there are: every function and class in a module's `__all__` is in nbdev's index."
    indexed = {q for q, _, _ in EXPORTED}
    modules = library_modules()
    exported = {f"{m}.{n}" for m in modules for n, o in vars(importlib.import_module(m)).items()
                if n in getattr(importlib.import_module(m), "__all__", []) and (inspect.isfunction(o) or inspect.isclass(o))}
    assert exported <= indexed, f"exported but not in ttpt/_modidx.py (run nbdev-export): {sorted(exported - indexed)}"
    assert indexed, "no exported symbols found in ttpt/_modidx.py"


@pytest.mark.parametrize("qualname,page_name,anchor", EXPORTED, ids=[q for q, _, _ in EXPORTED])
def test_exported_symbol_documented(preview, qualname, page_name, anchor):
    page = preview.get(page_name)
    assert page, f"{qualname}: its page {page_name} is not in the preview ({sorted(preview)})"
    assert anchor in page["ids"], f"{qualname}: no heading #{anchor} on {page_name} (show_doc missing?)"
    module, _, name = qualname.rpartition(".")
    summary = inspect.getdoc(getattr(importlib.import_module(module), name)).split("\n\n")[0]
    words = _flat(re.sub(r"\$[^$]*\$", " ", summary))  # its maths is typeset on the page: compare the words around it
    assert words in _flat(page["plain"]), f"{qualname}: its docstring {summary!r} does not appear on {page_name}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_internal_links_resolve(preview, notebook):
    page = preview[PAGES[notebook.name]]
    broken = []
    for href in page["links"]:
        if urlparse(href).scheme in ("http", "https", "mailto"): continue
        target, fragment = urldefrag(urljoin(page["url"], href))
        path = Path(unquote(urlparse(target).path))
        if not path.exists(): broken.append(f"{href} (no file {path})")
        elif fragment and path.name in preview and fragment not in preview[path.name]["ids"]:
            broken.append(f"{href} (no #{fragment} on {path.name})")
    assert not broken, f"{PAGES[notebook.name]}: {len(broken)} broken links: {broken[:10]}"
