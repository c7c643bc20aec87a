"""`dlclassics site`: the README, docs/, the notebooks executed and the lab, as one static site
that makes no request outside its folder."""

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import click
import nbformat
import pytest
from conftest import assert_one_line_error, invoke_cli, write_data_home

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# Tags whose address the browser fetches by itself, and the attribute naming it.
ASSETS = {"script": "src", "img": "src", "iframe": "src", "source": "src", "audio": "src",
          "video": "src", "embed": "src", "link": "href", "object": "data"}  # fmt: skip


class Page(HTMLParser):
    """A page's addresses: `assets`, those the browser loads by itself; `links`, the rest."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.assets: list[str] = []
        self.links: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is not None and ASSETS.get(tag) == name:
                self.assets.append(value)
            elif value is not None and name in ("href", "src"):
                self.links.append(value)


def _outside(address: str) -> bool:
    return bool(urlsplit(address).netloc) or address.startswith("//")


def _target(site: Path, page: Path, address: str) -> Path | None:
    """The file of the site a relative address of `page` names; None for one outside, a data:
    URL or a fragment of the page itself."""
    parts = urlsplit(address)
    if _outside(address) or parts.scheme or not parts.path:
        return None
    # An absolute path (404.html's, which any folder may serve) starts at the site's root.
    base = site if parts.path.startswith("/") else page.parent
    target = (base / unquote(parts.path).lstrip("/")).resolve()
    return target / "index.html" if target.is_dir() else target


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path, object]:
    """The site built with --strict in quick mode, on data this module writes: the site, the
    folder it was built in, and the invocation."""
    tmp = tmp_path_factory.mktemp("site")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DLCLASSICS_QUICK", "1")
        env.setenv("DLCLASSICS_DATA", str(write_data_home(tmp / "data")))
        result = invoke_cli("site", "--out", str(tmp / "site"), "--strict")
    return tmp / "site", tmp, result


@pytest.fixture(scope="module")
def site(built) -> Path:
    site, _, result = built
    assert result.returncode == 0, result.stderr[-3000:]
    return site


@pytest.mark.slow
def test_the_build_says_what_it_wrote_and_leaves_nothing_else(built, site):
    _, tmp, result = built
    assert result.stdout.startswith(f"site written to {site}: ")
    assert f"{len(NOTEBOOKS)} notebooks" in result.stdout
    assert sorted(p.name for p in tmp.iterdir()) == ["data", "site"]  # no build folder left


@pytest.mark.slow
def test_the_home_page_is_the_readme_with_every_page_in_its_nav(site):
    home = (site / "index.html").read_text()
    assert "Four classic deep-learning notebooks" in home
    links = {urlsplit(link).path for link in Page(home).links}
    docs = {f"docs/{p.stem}/" for p in DOCS}
    notebooks = {f"notebooks/{p.stem}/" for p in NOTEBOOKS}
    assert docs | notebooks | {"CONTRIBUTING/", "lab/index.html"} <= links
    # The README's links into docs/, as a reader on GitHub follows them.
    assert "docs/reproduce/" in links and "docs/xor/#hand-set-weights-xor-solve" in Page(home).links


@pytest.mark.slow
def test_every_docs_page_is_there_with_its_images(site):
    for doc in DOCS:
        page = site / "docs" / doc.stem / "index.html"
        text = page.read_text()
        title = next(line for line in doc.read_text().splitlines() if line.startswith("# "))
        assert html_text(title[2:]) in text, doc.name
        for image in re.findall(r"\]\(([\w.-]+\.png)\)", doc.read_text()):
            assert (site / "docs" / image).is_file(), image


def html_text(markdown: str) -> str:
    """A heading's words as the page writes them (`code` becomes <code>code</code>)."""
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", markdown).replace("&", "&amp;")


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_notebook_page_shows_its_executed_outputs(site, notebook):
    page = (site / "notebooks" / notebook.stem / "index.html").read_text()
    assert "jp-OutputArea-output" in page
    assert "<table>" in page, "its results table"
    assert re.search(r'<img[^>]+src="data:image/png;base64,', page), "a plot"
    assert "Traceback" not in page
    # The widgets' saved state, drawn without a widget manager.
    source = "\n".join(c.source for c in nbformat.read(notebook, as_version=4).cells)
    if "ipywidgets" in source:
        assert re.search(r"<input[^>]*disabled", page)
        assert "widget-state+json" not in page and "widget-view+json" not in page


@pytest.mark.slow
def test_the_notebooks_stay_stored_without_outputs(site):
    for notebook in NOTEBOOKS:
        cells = nbformat.read(notebook, as_version=4).cells
        assert not [c for c in cells if c.cell_type == "code" and c.outputs], notebook.name


@pytest.mark.slow
def test_the_lab_holds_the_models_the_notebooks_trained(site):
    assert (site / "lab" / "index.html").is_file()
    models = json.loads((site / "lab" / "models.json").read_text())["models"]
    assert {m["kind"] for m in models} == {"xor", "mnist", "lm"}
    assert {m["run"] for m in models} >= {"notebook-xor-train", "notebook-mnist-cnn"}
    for model in models:
        assert (site / "lab" / model["path"] / "weights.safetensors").is_file()


@pytest.mark.slow
def test_no_page_loads_anything_from_outside_and_every_link_inside_resolves(site):
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= len(DOCS) + len(NOTEBOOKS) + 2
    for page in pages:
        text = page.read_text()
        parsed = Page(text)
        assert [a for a in parsed.assets if _outside(a)] == [], page
        assert not re.search(r"""(import\(|url\()\s*["']?(https?:)?//""", text), page
        broken = [
            link
            for link in parsed.assets + parsed.links
            if (target := _target(site, page, link)) is not None and not target.exists()
        ]
        assert broken == [], page
    for sheet in site.rglob("*.css"):
        assert not re.search(r"""(@import|url\()\s*["']?(https?:)?//""", sheet.read_text()), sheet


def test_an_out_that_is_a_file_is_one_line(tmp_path):
    out = tmp_path / "site"
    out.write_text("not a folder")
    result = invoke_cli("site", "--out", str(out))
    assert_one_line_error(result)
    assert "is not a folder" in result.stderr
    assert out.read_text() == "not a folder"


def test_a_folder_that_is_no_site_is_refused_untouched(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    result = invoke_cli("site", "--out", str(tmp_path))
    assert_one_line_error(result)
    assert "not a site built before" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def _source(root: Path, notebook_code: str | None, doc: str) -> Path:
    """A tiny checkout: the README, CONTRIBUTING, LICENSE, one docs page, and a notebook of
    one cell where `notebook_code` is given."""
    root.mkdir()
    for name in ("README.md", "CONTRIBUTING.md", "LICENSE"):
        (root / name).write_text(f"# {name}\n")
    (root / "docs").mkdir()
    (root / "docs" / "page.md").write_text(doc)
    (root / "notebooks").mkdir()
    if notebook_code is not None:
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(notebook_code)])
        nb.metadata["kernelspec"] = {"name": "python3", "language": "python"}
        nbformat.write(nb, root / "notebooks" / "fails.ipynb")
    return root


@pytest.mark.slow
def test_strict_fails_on_a_notebook_that_raises_and_leaves_nothing(tmp_path):
    from dlclassics.site.build import build

    root = _source(tmp_path / "repo", "raise ValueError('no data here')", "# Page\n")
    with pytest.raises(click.ClickException, match=r"fails\.ipynb raised ValueError: no data here"):
        build(tmp_path / "out" / "site", strict=True, root=root)
    assert list((tmp_path / "out").iterdir()) == []


def test_strict_fails_on_a_broken_link(tmp_path, capsys):
    from dlclassics.site.build import build

    root = _source(tmp_path / "repo", None, "# Page\n\n[gone](missing.md), [no such](#heading)\n")
    with pytest.raises(click.ClickException, match="2 warnings in strict mode"):
        build(tmp_path / "out" / "site", strict=True, root=root)
    assert "missing.md" in capsys.readouterr().err
    assert list((tmp_path / "out").iterdir()) == []


def test_a_folder_that_is_no_checkout_is_refused(tmp_path):
    from dlclassics.core.errors import InputError
    from dlclassics.site.build import build

    with pytest.raises(InputError, match="not a checkout of the repository"):
        build(tmp_path / "site", root=tmp_path)


def test_widgets_are_drawn_in_their_saved_state_without_a_widget_manager():
    from dlclassics.site.build import WIDGET_STATE, WIDGET_VIEW, static_widgets

    def model(name: str, **state: object) -> dict:
        return {"model_name": name, "model_module": "@jupyter-widgets/controls", "state": state}

    stream = {"output_type": "stream", "name": "stdout", "text": "cake 0.5 <EOS>\n"}
    state = {
        "box": model("VBoxModel", children=["IPY_MODEL_seed", "IPY_MODEL_t", "IPY_MODEL_out"]),
        "seed": model("TextModel", description="seed words", value='a "man"'),
        "t": model("FloatSliderModel", description="temperature", value=1.5, min=0, max=3),
        "out": model("OutputModel", outputs=[stream]),
    }
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("panel")])
    nb.metadata["widgets"] = {WIDGET_STATE: {"state": state, "version_major": 2}}
    view = {WIDGET_VIEW: {"model_id": "box"}, "text/plain": "VBox(...)"}
    gone = {WIDGET_VIEW: {"model_id": "missing"}, "text/plain": "Text(...)"}
    nb.cells[0].outputs = [nbformat.v4.new_output("display_data", data=d) for d in (view, gone)]
    static_widgets(nb)
    drawn, fallback = (o["data"] for o in nb.cells[0].outputs)
    assert "widgets" not in nb.metadata
    assert fallback == {"text/plain": "Text(...)"}
    html = drawn["text/html"]
    assert html.startswith('<div style="display:flex;') and "flex-direction:column" in html
    assert '<label>seed words <input value="a &quot;man&quot;" disabled></label>' in html
    assert 'type="range" min="0" max="3" value="1.5" disabled> 1.5</label>' in html
    assert "<pre>cake 0.5 &lt;EOS&gt;\n</pre>" in html
