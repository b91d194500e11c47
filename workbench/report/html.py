"""The report's page: its parts (`Part`), shown in a notebook or written as one standalone HTML file.

Both ways are made of the same parts, so a notebook run on its own (papermill, JupyterLab,
nbval) leaves the report `workbench run` does. The page goes through nbconvert with
`templates/report.html.j2` (the lab template without anything fetched at view time); the answer
cards through `templates/cards.html.j2`. A plot whose text boxes overlap is named under it in
the page (`plot_overlap_note`), where `check.check_report` finds it.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CARDS_TEMPLATE", "OVERLAP_CLASS", "REPORT_TEMPLATE", "TEMPLATES", "Card", "Part", "export_html",
           "figure_parts", "notebook_html", "plot_overlap_note", "render_cards", "show_parts", "write_report"]

TEMPLATES = Path(__file__).resolve().parent / "templates"
#: The page's template: the lab template without its CDN scripts.
REPORT_TEMPLATE = TEMPLATES / "report.html.j2"
#: The answer cards, one per scenario, with their style.
CARDS_TEMPLATE = TEMPLATES / "cards.html.j2"
#: The class of the note under a plot whose text boxes overlap.
OVERLAP_CLASS = "wb-plot-overlap"


@dataclass(frozen=True)
class Part:
    """One piece of the report, in order: `markdown`, `html` or `text` (a str), `table` (a
    DataFrame, shown without its index unless `index`), or `image` (a PNG file's path)."""

    kind: str
    content: Any
    index: bool = False


@dataclass(frozen=True)
class Card:
    """One scenario's answer as the first screen shows it; plain text (the template escapes it).
    `tone` is `decisive`, `tied` or `none` (the card's colour); `gives_up` or `detail` empty: no such line."""

    scenario: str
    kind: str
    head: str
    tone: str
    sure: str
    gives_up: str
    decided_by: str
    description: str
    weights: str
    #: a line the scenario's kind adds (e.g. the batch scenario's document-length constraint); "": none
    detail: str = ""


def render_cards(cards: Sequence[Card]) -> str:
    """The cards as HTML, through `templates/cards.html.j2` (autoescaped)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    return env.get_template(CARDS_TEMPLATE.name).render(cards=cards)


def plot_overlap_note(image: str, overlaps: Sequence[tuple[str, str]]) -> Part | None:
    """The note under a plot naming its overlapping text boxes (`plots.overlapping_texts`);
    None when none overlap."""
    if not overlaps:
        return None
    import html

    pairs = "; ".join(f"{a!r} over {b!r}" for a, b in overlaps)
    return Part("html", f'<div class="{OVERLAP_CLASS}">{html.escape(image)}: text overlaps: '
                        f"{html.escape(pairs)}</div>")


def figure_parts(run_dir: Path, name: str, draw: Callable[[Path], Any]) -> list[Part]:
    """A plot as the report shows it: `draw(path)` makes the figure and saves it as `run_dir /
    name`; the part shows the PNG, followed by the overlap note when its text boxes overlap."""
    import matplotlib.pyplot as plt

    from workbench.analysis.plots import overlapping_texts

    fig = draw(run_dir / name)
    overlaps = overlapping_texts(fig)
    plt.close(fig)  # kept as the PNG, shown from it
    note = plot_overlap_note(name, overlaps)
    return [Part("image", run_dir / name)] + ([note] if note is not None else [])


def _styled(part: Part) -> Any:
    table = part.content
    return table.style if part.index else table.style.hide(axis="index")


def show_parts(parts: Sequence[Part]) -> None:
    """Display the parts in the notebook running this."""
    from IPython.display import HTML, Image, Markdown, display

    for part in parts:
        if part.kind == "markdown":
            display(Markdown(part.content))  # type: ignore[no-untyped-call]
        elif part.kind == "html":
            display(HTML(part.content))  # type: ignore[no-untyped-call]
        elif part.kind == "table":
            display(_styled(part))  # type: ignore[no-untyped-call]
        elif part.kind == "image":
            display(Image(filename=str(part.content)))  # type: ignore[no-untyped-call]
        else:
            print(part.content)


def write_report(parts: Sequence[Part], out_html: str | Path) -> Path:
    """The parts as a standalone HTML page: the notebook the report would be exported from,
    made of the parts' outputs, through the report template (plots embedded, no code)."""
    import nbformat

    v4 = nbformat.v4
    nb = v4.new_notebook()  # type: ignore[no-untyped-call]
    for part in parts:
        if part.kind == "markdown":
            nb.cells.append(v4.new_markdown_cell(part.content))  # type: ignore[no-untyped-call]
            continue
        if part.kind == "text":
            out = v4.new_output("stream", name="stdout", text=str(part.content) + "\n")  # type: ignore[no-untyped-call]
        else:
            data = ({"text/html": part.content} if part.kind == "html" else
                    {"text/html": _styled(part).to_html()} if part.kind == "table" else
                    {"image/png": base64.b64encode(Path(part.content).read_bytes()).decode("ascii")})
            out = v4.new_output("display_data", data=data)  # type: ignore[no-untyped-call]
        cell = v4.new_code_cell("", outputs=[out])  # type: ignore[no-untyped-call]
        nb.cells.append(cell)
    return notebook_html(nb, out_html)


def export_html(notebook: str | Path, out_html: str | Path) -> Path:
    """Executed notebook → standalone HTML without input cells: plots embedded, and nothing
    fetched at view time (`templates/report.html.j2` drops the lab template's CDN scripts)."""
    import nbformat

    return notebook_html(nbformat.read(str(notebook), as_version=4), out_html)  # type: ignore[no-untyped-call]


def notebook_html(nb: Any, out_html: str | Path) -> Path:
    """A notebook (nbformat node) as the report page: outputs only, the report template."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", template_file=str(REPORT_TEMPLATE))  # type: ignore[no-untyped-call]
    exporter.exclude_input = True
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(nb)
    out = Path(out_html)
    out.write_text(body, encoding="utf-8")
    return out
