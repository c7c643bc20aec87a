"""`dlclassics site --out SITE`: the project's static site, from a checkout of the repository.

The site keeps the repository's layout, so every relative link that works on GitHub works in it
unchanged (MkDocs serves a folder's README.md as its index and resolves links by file):

    SITE/index.html                 README.md
    SITE/CONTRIBUTING/, SITE/docs/<page>/, SITE/docs/*.png
    SITE/notebooks/<stem>/          each notebook of notebooks/, executed by this build
    SITE/lab/                       `dlclassics export` of the runs those notebooks wrote

Everything is made in a folder beside SITE, `.SITE.<random>.build/`: `pages/` (MkDocs' docs_dir:
the copied pages and the executed notebooks), `work/` (the notebooks' working directory, where
they write runs/notebook-<name>/) and `site/`, renamed to SITE at the end; the folder is then
removed. The MkDocs configuration is the dict `mkdocs_config` builds: the nav depends on the
pages and notebooks found, and nothing else in it is worth a file of its own.
"""

import html
import io
import logging
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import nbformat
from mkdocs.commands.build import build as mkdocs_build
from mkdocs.config import load_config
from mkdocs.exceptions import MkDocsException
from mkdocs.plugins import BasePlugin
from mkdocs.structure.nav import Link, Navigation
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from pymdownx.slugs import slugify

import dlclassics
from dlclassics.core.errors import InputError, first_line
from dlclassics.core.rundir import CONFIG
from dlclassics.lab.export import MODELS_JSON, export, holds, replace_folder

# The checkout the package runs from (an editable install): src/dlclassics/ -> the repository.
REPOSITORY = Path(dlclassics.__file__).resolve().parents[2]
PAGES = ("README.md", "CONTRIBUTING.md", "LICENSE")  # LICENSE: the README links to it
DOCS, NOTEBOOKS, LAB = "docs", "notebooks", "lab"
# The docs pages in reading order: the experiments, then the tools; others follow by name.
ORDER = ("xor", "mnist", "lm", "reproduce", "lab", "scale", "distributed", "performance")
LIST_ITEM = re.compile(r"\s*([-*+]|\d+\.) ")
CELL_TIMEOUT = 3600  # seconds; a full `lm study` cell takes about 16 minutes on two cores
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
# nbconvert's page loads MathJax and Mermaid from a CDN: the notebooks use neither, and the site
# works offline, so a notebook page keeps no script that names an outside address.
CDN_SCRIPT = re.compile(r"<script\b(?:(?!</script>).)*?https?://(?:(?!</script>).)*</script>", re.S)


def check_out(out: Path) -> None:
    """That `out` may receive the site: new, empty, or a site built before."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise InputError(f"--out {out} exists and is not a folder")
    previous = (out / "index.html").is_file() and (out / LAB / MODELS_JSON).is_file()
    if out.is_dir() and any(out.iterdir()) and not previous:
        raise InputError(f"--out {out} is a non-empty folder that is not a site built before")


def check_source(root: Path) -> None:
    """That `root` holds what the site is built from."""
    missing = [p for p in (*PAGES, DOCS, NOTEBOOKS) if not (root / p).exists()]
    if missing:
        raise InputError(
            f"{root} is not a checkout of the repository (no {', '.join(missing)}): the site is "
            "built from one, with the package installed from it (pip install -e '.[site]')"
        )


def split_lists(text: str) -> str:
    """`text` (markdown) with a blank line before each list item that directly follows a
    paragraph's line: GitHub (CommonMark) starts a list there, where Python-Markdown, MkDocs'
    parser, would read the item as more of the paragraph."""
    lines: list[str] = []
    fenced, block = False, ""  # block: the first line of the paragraph being read
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced, block = not fenced, line
        elif not fenced and not line.strip():
            block = ""
        elif not fenced and block and LIST_ITEM.match(line) and not LIST_ITEM.match(block):
            lines.append("")
            block = line
        elif not fenced and not block:
            block = line
        lines.append(line)
    return "\n".join(lines) + "\n"


def copy_pages(root: Path, pages: Path) -> list[str]:
    """The README, CONTRIBUTING, LICENSE and docs/ copied into `pages` (the markdown through
    `split_lists`); the docs pages, in the nav's order."""
    for name in PAGES:
        shutil.copyfile(root / name, pages / name)
    shutil.copytree(root / DOCS, pages / DOCS)
    for page in [*pages.glob("*.md"), *(pages / DOCS).glob("*.md")]:
        page.write_text(split_lists(page.read_text(encoding="utf-8")), encoding="utf-8")
    order = {stem: i for i, stem in enumerate(ORDER)}
    docs = sorted((pages / DOCS).glob("*.md"), key=lambda p: (order.get(p.stem, len(ORDER)), p))
    return [p.relative_to(pages).as_posix() for p in docs]


def execute(notebook: Path, work: Path, strict: bool) -> nbformat.NotebookNode:
    """`notebook` run top to bottom in `work`, as a user's Jupyter would run it; its error, in
    strict mode, fails the build, and otherwise stays on its page."""
    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        allow_errors=not strict,
        resources={"metadata": {"path": str(work)}},
        # The kernel's own warnings (its TCP transport to this process, on 127.0.0.1) are no
        # news to whoever builds the site; its errors still show.
        extra_arguments=["--log-level=ERROR"],
    )
    try:
        client.execute()
    except CellExecutionError as e:
        raise click.ClickException(f"{notebook.name} raised {e.ename}: {e.evalue}") from None
    except (CellTimeoutError, DeadKernelError) as e:
        raise click.ClickException(f"{notebook.name}: {first_line(e)}") from None
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    for error in errors:
        click.echo(f"note: {notebook.name} raised {error.ename}: shown on its page", err=True)
    return nb


def static_widgets(nb: nbformat.NotebookNode) -> None:
    """Each widget drawn as plain HTML in the state the run left it in, and the widgets' state
    dropped: the page then needs no widget manager, which only a CDN serves (and whose callbacks
    would need a kernel anyway)."""
    models = nb.metadata.pop("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(WIDGET_VIEW)
            if view is not None:
                plain = {"text/plain": output["data"].get("text/plain", "")}
                drawn = widget_html(models, view["model_id"])
                output["data"] = {"text/html": drawn, **plain} if drawn else plain


def widget_html(models: dict[str, Any], model_id: str) -> str:
    """The widget `model_id` of `models` (a notebook's widget state) as static HTML: boxes,
    inputs and sliders (disabled, at their values), buttons, HTML and Output widgets."""
    model = models.get(model_id)
    if model is None:
        return ""
    name, state = model["model_name"], model["state"]
    if "children" in state:
        direction = "row" if name.startswith("HBox") else "column"
        children = (widget_html(models, c.removeprefix("IPY_MODEL_")) for c in state["children"])
        style = f"display:flex;flex-wrap:wrap;flex-direction:{direction};gap:0.5em"
        return f'<div style="{style}">{"".join(children)}</div>'
    if name == "OutputModel":
        return "".join(_output_html(o) for o in state.get("outputs", []))
    if name in ("HTMLModel", "HTMLMathModel"):
        return str(state.get("value", ""))
    label = html.escape(str(state.get("description", "")))
    if name == "ButtonModel":
        return f"<button disabled>{label}</button>"
    value = html.escape(str(state.get("value", "")))
    if "Slider" in name and not isinstance(state.get("value"), list):
        bounds = " ".join(f'{k}="{state[k]}"' for k in ("min", "max", "step") if k in state)
        return (
            f'<label>{label} <input type="range" {bounds} value="{value}" disabled> {value}</label>'
        )
    return f'<label>{label} <input value="{value}" disabled></label>'


def _output_html(output: dict[str, Any]) -> str:
    if output.get("output_type") == "stream":
        return f"<pre>{html.escape(output.get('text', ''))}</pre>"
    data = output.get("data", {})
    if "text/html" in data:
        return data["text/html"]
    if "image/png" in data:
        return f'<img alt="" src="data:image/png;base64,{data["image/png"]}">'
    return f"<pre>{html.escape(data.get('text/plain', ''))}</pre>"


class SitePlugin(BasePlugin):
    """What the site adds to MkDocs: the lab in the nav (written after MkDocs, so not one of its
    pages), and notebook pages without CDN scripts."""

    def on_nav(self, nav: Navigation, **kwargs: Any) -> Navigation:
        nav.items.append(Link("Lab", f"{LAB}/index.html"))
        return nav

    def on_post_page(self, output: str, page: Any, **kwargs: Any) -> str:
        return CDN_SCRIPT.sub("", output) if page.file.src_uri.endswith(".ipynb") else output


def mkdocs_config(pages: Path, site: Path, docs: list[str], notebooks: list[str]) -> dict:
    """MkDocs' configuration: Material without web fonts (nothing is fetched from outside), the
    notebooks rendered by mkdocs-jupyter as executed here, and GitHub's heading anchors, which
    the pages' links use."""
    return {
        "site_name": "dlclassics",
        "docs_dir": str(pages),
        "site_dir": str(site),
        "nav": [
            {"Home": "README.md"},
            {"Docs": docs},
            {"Notebooks": notebooks},
            {"Contributing": "CONTRIBUTING.md"},
        ],
        "theme": {"name": "material", "font": False, "features": ["navigation.sections"]},
        "plugins": ["search", {"mkdocs-jupyter": {"execute": False, "cache": False}}],
        "markdown_extensions": [
            {"toc": {"permalink": True, "slugify": slugify(case="lower")}},
            "pymdownx.superfences",  # fenced code inside list items
            "mdx_truly_sane_lists",  # lists nested by 2 spaces, as GitHub reads them
        ],
        # Strict mode fails on warnings: a link to a missing page or heading is one.
        "validation": {"anchors": "warn", "unrecognized_links": "warn"},
    }


@contextmanager
def warnings_shown() -> Iterator[None]:
    """MkDocs' warnings on stderr while it builds; its progress messages stay quiet."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("warning: %(message)s"))
    logger = logging.getLogger("mkdocs")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def render(config: dict, strict: bool) -> None:
    """The site of `config`, by MkDocs."""
    with warnings_shown():
        try:
            mkdocs_config = load_config(io.StringIO("{}"), strict=strict, **config)
            mkdocs_config.plugins["dlclassics"] = SitePlugin()
            mkdocs_build(mkdocs_config)
        except MkDocsException as e:
            raise click.ClickException(f"mkdocs: {first_line(e)}") from None


def build(out: Path, strict: bool = False, root: Path = REPOSITORY) -> str:
    """Build the site of the checkout at `root` into `out`; what it holds, in words."""
    out = Path(out)
    check_out(out)
    check_source(root)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".build", dir=out.parent))
    except OSError as e:
        raise InputError(f"cannot write into {out.parent}: {(e.strerror or '').lower()}") from None
    try:
        pages, work, site = folder / "pages", folder / "work", folder / "site"
        for path in (pages / NOTEBOOKS, work):
            path.mkdir(parents=True)
        docs = copy_pages(root, pages)
        notebooks = []
        for notebook in sorted((root / NOTEBOOKS).glob("*.ipynb")):
            click.echo(f"executing {NOTEBOOKS}/{notebook.name}", err=True)
            nb = execute(notebook, work, strict)
            static_widgets(nb)
            nbformat.write(nb, pages / NOTEBOOKS / notebook.name)
            notebooks.append(f"{NOTEBOOKS}/{notebook.name}")
        render(mkdocs_config(pages, site, docs, notebooks), strict)
        runs = sorted(p for p in (work / "runs").glob("notebook-*") if (p / CONFIG).is_file())
        index = export(runs, site / LAB)
        replace_folder(site, out, check_out)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return f"{len(docs) + 2} pages, {len(notebooks)} notebooks, {holds(index)} in the lab"
