"""Build an offline preview of the docs site from the notebooks, without Quarto.

The notebooks go through nbdev's own processing first: the step `nbdev-docs` runs before Quarto (frontmatter from
the title and summary, `show_doc` for every exported symbol, directives, links to the symbols' docs), which writes
the processed notebooks to `_proc/`. nbconvert then turns each into one HTML page, with MathJax served from Debian's
`libjs-mathjax`, the site's page names (`output-file`), Quarto's heading ids, and a navigation bar; the home page
(`index`) ends with every page in reading order, its title and its summary.

    python tools/preview_docs.py                  # writes _docs_preview/
    xdg-open _docs_preview/index.html             # or: python -m http.server, then open /_docs_preview/
"""
import argparse
import os
import re
import sys
from pathlib import Path

import nbformat
import yaml
from bs4 import BeautifulSoup
from fastcore.basics import defaults
from nbconvert import HTMLExporter
from nbconvert.filters.markdown_mistune import markdown2html_mistune
from nbdev.config import get_config
from nbdev.serve import proc_nbs

MATHJAX = Path("/usr/share/javascript/mathjax")  # Debian's libjs-mathjax (MathJax 2)
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"  # needs a widget manager from a CDN: the text fallback shows

TEMPLATE = r"""{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{% block extra_css %}<style type="text/css">{{ resources.preview_css }}</style>{% endblock extra_css %}
{%- block body_header -%}
<body class="jp-Notebook" data-jp-theme-light="true" data-jp-theme-name="JupyterLab Light">
<nav class="preview-sidebar">
<a class="preview-site" href="index.html">{{ resources.site_title }}</a>
<ol>
{%- for p in resources.pages %}
<li{% if p.href == resources.page.href %} class="current"{% endif %}><a href="{{ p.href }}">{{ p.title_html }}</a></li>
{%- endfor %}
</ol>
</nav>
<main>
<header class="preview-title">
<h1 class="title">{{ resources.page.title_html }}</h1>
<div class="description">{{ resources.page.description_html }}</div>
</header>
{%- endblock body_header -%}
{% block body_footer %}
{%- if resources.page.href == 'index.html' %}
<section class="preview-contents">
<h2>Pages</h2>
<dl>
{%- for p in resources.pages %}
<dt><a href="{{ p.href }}">{{ p.title_html }}</a></dt>
<dd>{{ p.description_html }}</dd>
{%- endfor %}
</dl>
</section>
{%- endif %}
<nav class="preview-pager">
{%- if resources.previous %}<a class="previous" href="{{ resources.previous.href }}">&larr; {{ resources.previous.title_html }}</a>{% endif %}
{%- if resources.next %}<a class="next" href="{{ resources.next.href }}">{{ resources.next.title_html }} &rarr;</a>{% endif %}
</nav>
</main>
</body>
{% endblock body_footer %}
"""

CSS = """
body { margin: 0; }
.preview-sidebar { position: fixed; top: 0; bottom: 0; left: 0; width: 17rem; overflow-y: auto; padding: 1rem;
  box-sizing: border-box; background: #f7f7f9; border-right: 1px solid #ddd; font-size: 0.85rem; }
.preview-sidebar ol { padding-left: 1.2rem; }
.preview-sidebar li { margin: 0.2rem 0; }
.preview-sidebar li.current > a { font-weight: bold; }
.preview-site { font-size: 1.2rem; font-weight: bold; }
main { margin-left: 17rem; padding: 1rem 2rem; max-width: 62rem; }
.preview-title .description { font-size: 1.1rem; color: #555; margin-bottom: 1.5rem; }
.preview-pager { display: flex; justify-content: space-between; margin: 2rem 0; padding-top: 1rem;
  border-top: 1px solid #ddd; }
.preview-pager .next { margin-left: auto; }
main .jp-RenderedHTMLCommon a, main .jp-RenderedHTMLCommon a code { color: #1f5fbf; }
.preview-contents dd { margin: 0 0 0.8rem 1.5rem; color: #444; }
/* as nbs/styles.css on the site: long code lines wrap inside their cell, wide outputs scroll */
.jp-InputArea-editor pre, .highlight pre, .jp-OutputArea-output pre { white-space: pre-wrap; overflow-wrap: anywhere; }
.jp-OutputArea-output { overflow-x: auto; }
"""


def inline_markdown(text):
    "Render a one-line markdown text (a title, a summary) as inline HTML."
    html = markdown2html_mistune(text or "").strip()
    return re.sub(r"^<p>(.*)</p>$", r"\1", html, flags=re.S)


def pandoc_id(text):
    "The id pandoc (and so Quarto) gives a heading: the anchor nbdev's links to a symbol point at."
    words = "".join(c for c in text.lower() if c.isalnum() or c in "_-." or c.isspace()).split()
    ident = "-".join(words)
    while ident and not ident[0].isalpha(): ident = ident[1:]
    return ident or "section"


def pandoc_links(markdown):
    "Pandoc link attributes, `[text](url){key=\"value\" ...}`, as HTML links (nbconvert's markdown ignores them)."
    def link(m):
        attrs = " ".join(re.findall(r'[\w-]+="[^"]*"', m[3]))
        return f'<a href="{m[2]}" {attrs}>{m[1]}</a>'
    return re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)\{([^}]*)\}", link, markdown)


def cell_options(cell):
    "Quarto's `#| key: value` options at the top of a code cell, and the source without them."
    lines, options = cell.source.splitlines(), {}
    while lines and lines[0].startswith("#|"):
        key, _, value = lines.pop(0)[2:].partition(":")
        options[key.strip()] = value.strip()
    return options, "\n".join(lines)


def prepare(nb):
    "Do to a processed notebook what Quarto does to it: read the frontmatter, apply the cells' options."
    front = yaml.safe_load(nb.cells[0].source.strip().strip("-")) if nb.cells and nb.cells[0].cell_type == "raw" else {}
    cells = []
    for cell in nb.cells[1 if front else 0:]:
        if cell.cell_type == "markdown": cell.source = pandoc_links(cell.source)
        if cell.cell_type != "code":
            cells.append(cell)
            continue
        options, cell.source = cell_options(cell)
        cell.metadata.pop("execution", None)  # nbdev's timing of its show_doc cells, not valid nbformat
        if options.get("include") == "false": continue
        if options.get("echo") == "false": cell.metadata.setdefault("transient", {})["remove_source"] = True
        if options.get("output") == "false": cell.outputs = []
        for out in cell.outputs:
            out.get("data", {}).pop(WIDGET_VIEW, None)
            if "text/markdown" in out.get("data", {}): out.data["text/markdown"] = pandoc_links(out.data["text/markdown"])
        cells.append(cell)
    nb.cells = cells
    nb.metadata.pop("widgets", None)
    return front or {}


class Site:
    "Where nbdev's links point on the published site, and where they point in the preview."
    def __init__(self, cfg, dest, pages):
        self.root = f"{cfg.doc_host}{cfg.doc_baseurl.rstrip('/')}/"  # doc links: f"{root}tpt.html#tpt"
        self.source = f"{cfg.git_url}/blob/{cfg.branch}/"  # source links: f"{source}ttpt/methods/tpt.py#L35"
        self.repo, self.dest = Path(cfg.config_path), Path(dest)
        self.notebooks = {p["notebook"]: p["href"] for p in pages}

    def href(self, url):
        "The preview's link for a link on a page."
        path, hash_, fragment = url.partition("#")
        if path.startswith(self.root) and "/" not in path[len(self.root):]: path = path[len(self.root):]
        elif not self.source.startswith("http") and path.startswith(self.source):  # no repository URL: the local file
            path = os.path.relpath(self.repo / path[len(self.source):], self.dest)
        path = self.notebooks.get(path, path)
        return path + hash_ + fragment


def finish(html, site):
    "Quarto's heading ids, and links that work in the preview."
    soup = BeautifulSoup(html, "html.parser")
    seen = set()
    for heading in soup.find_all(re.compile(r"^h[1-6]$")):
        for anchor in heading.find_all("a", class_="anchor-link"): anchor.decompose()
        if "title" in (heading.get("class") or []): continue
        base = pandoc_id(heading.get_text())
        ident, n = base, 0
        while ident in seen: n, ident = n + 1, f"{base}-{n + 1}"
        seen.add(ident)
        heading["id"] = ident
    for a in soup.find_all("a", href=True): a["href"] = site.href(a["href"])
    return str(soup)


def page_list(cache):
    "The processed notebooks in reading order (the home page first, then by name), with their frontmatter."
    notebooks = sorted((p for p in cache.glob("*.ipynb") if not p.name.startswith(("_", "."))),
                       key=lambda p: (p.stem != "index", p.name))
    pages = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        front = prepare(nb)
        title = front.get("title", path.stem)
        pages.append(dict(nb=nb, notebook=path.name, href=front.get("output-file", path.stem + ".html"), title=title,
                          title_html=inline_markdown(title),
                          description_html=inline_markdown(front.get("description", ""))))
    return pages


def build(dest="_docs_preview", mathjax=MATHJAX, n_workers=defaults.cpus):
    "Process the notebooks with nbdev and write the preview's pages to `dest`; return their paths."
    dest, mathjax = Path(dest).resolve(), Path(mathjax).absolute()
    if not (mathjax / "MathJax.js").exists():
        raise SystemExit(f"MathJax not found in {mathjax}: install Debian's libjs-mathjax (apt-get install libjs-mathjax)")
    cfg = get_config()
    os.chdir(cfg.config_path)  # nbdev's processing reads its settings from the working directory
    cache = proc_nbs(n_workers=n_workers)
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("*.html"): old.unlink()  # a renamed or removed notebook leaves no stale page
    link = dest / "mathjax"
    if link.is_symlink() or link.exists(): link.unlink()
    link.symlink_to(mathjax, target_is_directory=True)

    pages = page_list(cache)
    site = Site(cfg, dest, pages)
    exporter = HTMLExporter(template_name="lab", exclude_input_prompt=True, exclude_output_prompt=True,
                            mathjax_url="mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe")
    exporter.raw_template = TEMPLATE
    written = []
    for i, page in enumerate(pages):
        out = dest / page["href"]
        resources = dict(metadata=dict(name=page["title"]), site_title=cfg.title, preview_css=CSS, pages=pages, page=page,
                         previous=pages[i - 1] if i else None, next=pages[i + 1] if i + 1 < len(pages) else None)
        html, _ = exporter.from_notebook_node(page["nb"], resources=resources)
        out.write_text(finish(html, site), encoding="utf-8")
        written.append(out)
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", default="_docs_preview", help="folder the pages are written to (default: %(default)s)")
    parser.add_argument("--mathjax", default=str(MATHJAX), help="MathJax 2 folder (default: %(default)s, Debian's libjs-mathjax)")
    parser.add_argument("--workers", type=int, default=defaults.cpus, help="nbdev's processing workers (default: %(default)s)")
    args = parser.parse_args(argv)
    pages = build(args.dest, args.mathjax, args.workers)
    print(f"{len(pages)} pages in {pages[0].parent}: open {pages[0].parent / 'index.html'}")


if __name__ == "__main__": main()
