"""The report page's pieces: cards through their template (escaped), and a plot whose text
boxes overlap named under it, where the browser check finds it."""

from __future__ import annotations

import matplotlib

from workbench.analysis import plots
from workbench.report.html import OVERLAP_CLASS, Card, plot_overlap_note, render_cards


def test_cards_are_rendered_escaped_with_an_optional_give_up_line() -> None:
    card = Card(scenario="routing", kind="realtime", head="<b>a</b>", tone="decisive", sure="Sure.", gives_up="",
                decided_by="x & y", description="d.", weights="latency 100%")
    text = render_cards([card, Card(**{**card.__dict__, "gives_up": "cost"})])
    assert text.count('class="wb-card wb-decisive"') == 2
    assert "&lt;b&gt;a&lt;/b&gt;" in text and "x &amp; y" in text
    assert text.count("You give up") == 1


def test_an_overlap_note_names_the_plot_and_the_texts() -> None:
    assert plot_overlap_note("p.png", []) is None
    note = plot_overlap_note("p.png", [("a", "b")])
    assert note is not None and OVERLAP_CLASS in note.content and "p.png" in note.content


def test_ticks_outside_the_view_are_not_counted_as_overlapping() -> None:
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(6, 2))
    a.plot([1, 119], [0, 1])
    b.plot([1, 119], [0, 1])
    a.set_xlim(5, 115)  # ticks 0 and 120 are kept by the axis but not drawn
    b.set_xlim(5, 115)
    fig.tight_layout()
    assert plots.overlapping_texts(fig) == []
    plt.close(fig)
