"""The SSE decoder: events must come out exactly when their blank line arrives."""

from __future__ import annotations

from workbench.providers.sse import SSEDecoder


def test_events_split_across_reads_and_crlf() -> None:
    d = SSEDecoder()
    assert d.feed("data: {\"a\"") == []
    assert d.feed(": 1}\r") == []
    events = d.feed("\n\r\nevent: ping\ndata: x\n\n")
    assert [(e.event, e.data) for e in events] == [("message", '{"a": 1}'), ("ping", "x")]
    assert not d.has_partial


def test_multiline_data_comments_id_retry() -> None:
    d = SSEDecoder()
    events = d.feed(": keep-alive\nid: 7\nretry: 1500\ndata: line1\ndata:line2\n\n")
    assert len(events) == 1
    e = events[0]
    assert (e.data, e.id, e.retry) == ("line1\nline2", "7", 1500)


def test_flush_dispatches_unterminated_event_and_reports_partial() -> None:
    d = SSEDecoder()
    assert d.feed("data: [DONE]") == []
    assert d.has_partial
    events = d.flush()
    assert [e.data for e in events] == ["[DONE]"]


def test_blank_lines_alone_make_no_events() -> None:
    assert SSEDecoder().feed("\n\n\r\n") == []
