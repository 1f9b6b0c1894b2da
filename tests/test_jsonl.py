"""Append-only JSONL: a kill at any byte loses at most the row in flight, and resuming appends cleanly."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from mccom_core.jsonl import JsonlWriter, read_jsonl, repair

# Rows as the runners write them: flat objects of strings (any unicode, newlines included),
# numbers and booleans.
_values = st.one_of(st.text(max_size=20), st.integers(-10**6, 10**6), st.booleans(),
                    st.floats(allow_nan=False, allow_infinity=False))
_rows = st.lists(st.dictionaries(st.text(min_size=1, max_size=8), _values, max_size=4), max_size=6)


def test_missing_file_reads_as_no_rows(tmp_path):
    assert read_jsonl(tmp_path / "absent.jsonl") == []
    assert repair(tmp_path / "absent.jsonl") is False


def test_lines_that_are_not_objects_are_skipped(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n\n[1, 2]\n"text"\n{"b": \n{"c": 3}\n', encoding="utf-8")
    assert read_jsonl(path) == [{"a": 1}, {"c": 3}]


def test_writer_appends_one_line_per_row_and_keeps_unicode(tmp_path):
    path = tmp_path / "sub" / "rows.jsonl"
    with JsonlWriter(path) as writer:
        writer.write({"prediction": "x = 'ü'\n"})
    with JsonlWriter(path) as writer:
        assert writer.repaired is False
        writer.write({"n": 2})
    assert path.read_text(encoding="utf-8") == '{"prediction": "x = \'ü\'\\n"}\n{"n": 2}\n'


@settings(max_examples=150, deadline=None)
@given(rows=_rows, more=_rows, cut=st.floats(0, 1))
def test_a_kill_at_any_byte_loses_only_the_row_in_flight(tmp_path_factory, rows, more, cut):
    path = tmp_path_factory.mktemp("jsonl") / "rows.jsonl"
    with JsonlWriter(path) as writer:
        for row in rows:
            writer.write(row)
    data = path.read_bytes()
    at = int(cut * len(data))
    path.write_bytes(data[:at])  # the kill: the file ends anywhere, even inside a UTF-8 character
    whole_lines = data[:at].count(b"\n")
    assert read_jsonl(path)[:whole_lines] == rows[:whole_lines]
    assert len(read_jsonl(path)) in (whole_lines, whole_lines + 1)  # + 1: cut just before a newline

    with JsonlWriter(path) as writer:  # the resumed run
        assert writer.repaired == (at > 0 and not data[:at].endswith(b"\n"))
        for row in more:
            writer.write(row)
    assert read_jsonl(path) == rows[:whole_lines] + more
    assert all(json.loads(line) is not None for line in path.read_text(encoding="utf-8").split("\n")[:-1])


def test_unicode_line_separators_inside_a_row_do_not_split_it(tmp_path):
    """``str.splitlines`` also splits at U+0085, U+2028 and U+2029, which json.dumps(ensure_ascii=False)
    leaves raw inside strings; the reader splits at newlines only (two readers it replaced used
    splitlines and silently dropped such rows)."""
    path = tmp_path / "rows.jsonl"
    rows = [{"text": "a\x85b\u2028c\u2029d"}, {"n": 1}]
    with JsonlWriter(path) as writer:
        for row in rows:
            writer.write(row)
    assert len(path.read_text(encoding="utf-8").splitlines()) > 2  # the trap is really there
    assert read_jsonl(path) == rows
