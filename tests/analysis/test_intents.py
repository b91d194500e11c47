"""The intent reader: labels of any spelling the user chose, echoes not read, and a warning when
nothing could be read at all."""

from __future__ import annotations

import pandas as pd

from workbench.analysis.intents import grade_route, read_label, unread_note
from workbench.experiments.latency import format_summary, latency_summary, routing_notes
from workbench.types import Record

BANK = ["card_lost", "card-fees", "account", "account_access", "2fa_reset", "other"]
PROMPT = ('Label the intent of this message as card_lost, card-fees, account, account_access, 2fa_reset '
          'or other: "I think I left my card at the restaurant, my account shows nothing yet"')


def test_labels_with_underscores_hyphens_and_digits_are_read() -> None:
    assert read_label("card_lost", BANK) == "card_lost"
    assert read_label("Intent: **card-fees**.", BANK) == "card-fees"
    assert read_label("2FA_reset", BANK) == "2fa_reset"
    # separators are interchangeable, and a label inside a longer one is not read on its own
    assert read_label("card lost", BANK) == "card_lost"
    assert read_label("account access", BANK) == "account_access"
    assert read_label("account_access", BANK) == "account_access"
    assert read_label("account", BANK) == "account"
    # a token that merely contains a label is not that label; a hedge is no label
    assert read_label("subaccount", BANK) is None
    assert read_label("card_lost or account", BANK) is None
    assert grade_route("card_lost", {"expected": "card_lost"}, BANK) == ("card_lost", True)


def test_an_echoed_message_does_not_score() -> None:
    """A model that repeats the message would be read as answering `account` (a word of the
    message): the echo is cut before reading; an answer beside the echo is still read."""
    echo = "I think I left my card at the restaurant, my account shows nothing yet"
    assert read_label(echo, BANK) == "account"  # without the prompt: the accident
    assert read_label(echo, BANK, PROMPT) is None
    assert grade_route(echo.upper(), {"expected": "account"}, BANK, PROMPT) == (None, False)
    assert read_label(f'Message: "{echo}"\nIntent: card_lost', BANK, PROMPT) == "card_lost"
    assert read_label(PROMPT, BANK, PROMPT) is None
    # a short answer that happens to be a word of the prompt is an answer, not an echo
    assert read_label("account", BANK, PROMPT) == "account"


def _rec(contender: str, label: str | None, correct: bool) -> Record:
    return Record(run_id="r", experiment="latency", contender=contender, model="m", request_id=f"{contender}{label}",
                  t_start_unix=0.0, e2e_s=0.1, ttft_s=0.05, tpot_s=0.01,
                  extra={"phase": "warm", "route_label": label, "route_correct": correct, "expected": "card_lost"})


def test_no_answer_read_as_a_label_is_a_visible_warning() -> None:
    recs = [_rec("echoer", None, False) for _ in range(3)] + [_rec("router", "card_lost", True),
                                                            _rec("router", None, False)]
    notes = routing_notes(recs, BANK)
    assert len(notes) == 1 and notes[0].startswith("echoer: none of its 3 graded answers")
    assert unread_note("router", 2, 1, BANK) is None
    table = format_summary(latency_summary(pd.DataFrame([r.to_dict() for r in recs])))
    cells = dict(zip(table["contender"], table["routing accuracy % [95% CI]"], strict=True))
    assert "no label read in 3" in cells["echoer"] and "no label read in 1" in cells["router"]
