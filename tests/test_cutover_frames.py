"""The cutover as a notebook shows it: the flag history's timeline and guards, the dual-read
comparisons, as frames and HTML tables (etl/cutover/frames.py)."""

from __future__ import annotations

from etl.cutover.flags import FlagHistory, FlagState, HistoryEntry
from etl.cutover.status import CutoverStatus, TableConsistency


def entry(i, at, action, frm, to, guards=(), reason=None):
    evidence = {"message": None, "guards": [{"name": n, "ok": ok, "summary": f"{n} says {ok}"} for n, ok in guards]}
    return HistoryEntry(i, at, "me@here", action, frm, to, {}, reason, evidence)


HISTORY = FlagHistory((
    entry(1, "2026-12-07T10:00:00.000Z", "set", "off", "dual-write", [("sequence", True), ("parity", True)]),
    entry(2, "2026-12-07T10:01:00.500Z", "refused", "dual-write", "shadow", [("sequence", True), ("bench", False)]),
    entry(3, "2026-12-07T10:02:00.000Z", "forced", "dual-write", "shadow", [("bench", False)], reason="we know"),
    entry(4, "2026-12-07T10:03:00.000Z", "rollback", "shadow", "off", reason="breach"),
))


def test_the_timeline_has_the_stage_after_each_entry_a_refusal_leaving_the_flags_where_they_were():
    f = HISTORY.frame()
    assert f["stage"].to_list() == ["dual-write", "dual-write", "shadow", "off"]
    assert f["stage_index"].to_list() == [1, 1, 2, 0]
    assert f["entered"].to_list() == [True, False, True, True]
    assert f["guards"].to_list() == [2, 2, 1, 0] and f["guards_failed"].to_list() == [0, 1, 1, 0]
    assert str(f["at"][1]) == "2026-12-07 10:01:00.500000"


def test_every_guard_of_every_guarded_move_is_a_row():
    g = HISTORY.guards_frame()
    assert g.select("id", "guard", "ok").rows() == [(1, "sequence", True), (1, "parity", True), (2, "sequence", True),
                                                   (2, "bench", False), (3, "bench", False)]
    assert g["summary"][3] == "bench says False" and g["move"][3] == "#2 dual-write -> shadow"


def test_the_history_renders_as_the_timeline_and_the_guards_tables():
    html = HISTORY._repr_html_()
    assert "the flags now at stage off" in html
    assert "<td>forced</td><td>dual-write</td><td>shadow</td><td>0/1</td><td>we know</td>" in html
    assert "the guards of each forward move" in html
    assert "<td>bench</td><td>FAIL</td><td>bench says False</td>" in html
    empty = FlagHistory(())
    assert empty.frame().is_empty() and empty.guards_frame().is_empty()
    assert "no flag changes recorded" in empty._repr_html_()


def test_the_dual_read_comparisons_per_table_and_stage():
    state = FlagState({"dataSource": "mysql", "writeMode": "mysql-only", "migrationMode": False}, "complete",
                      "2026-12-07T10:00:00.000Z", {"dataSource": "me@here"})
    status = CutoverStatus(state, (TableConsistency("tickets", "shadow", 2, 400, 2, 1),
                                   TableConsistency("tickets", "live", 1, 0, 0, 0)), (), None)
    f = status.frame()
    assert f.select("table", "stage", "compared", "mismatched").rows() == [("tickets", "shadow", 400, 2),
                                                                           ("tickets", "live", 0, 0)]
    assert f["rate"].to_list() == [0.005, None]
    html = status._repr_html_()
    assert html.startswith("<p><b>stage: complete: dual-read")
    assert "<td>tickets</td><td>shadow</td><td>2</td><td>400</td><td>2</td><td>0.500%</td>" in html
    assert "<td>dataSource</td><td>mysql</td><td>me@here</td>" in state._repr_html_()
