"""The block path of `valyent logs` (issue 16): a history read a network read at a time, never split into lines
when every line is a JSON object, must print exactly what the line-by-line path prints.

Checked against the line path it replaced: `iter_log_blocks` against `iter_log_lines` over a real loopback server
(any chunking, lines that are not objects, a JSON-array answer), the block decoder against the line decoder, and
`LogFormatter.lines` against `LogFormatter.line` for every kind of timestamp and message.
"""

from __future__ import annotations

import json

import pytest
from support.faultserver import Reply, Stream, client_for
from hypothesis import given, settings
from hypothesis import strategies as st

from valyent_cli.api import entry_time
from valyent_cli.api.logs import line_batches, line_blocks
from valyent_cli.cli.logmerge import _block_entries, _decode
from valyent_cli.cli.output import LogFormatter

OBJECT = b'{"timestamp":1700000000123,"message":"x"}'
# every kind of line a log body may hold: objects (with leading spaces, CR-LF, unicode escapes), blank lines,
# Ravel's `null` mark, an array line, text, a broken object
LINE_KINDS = [OBJECT, b'  {"message":"lead"}', b'{"message":"crlf"}\r', b'{"message":"b\\u00e9 \\u2603"}', b"",
              b"   ", b"null", b'[{"message":"in an array"},3]', b'"text"', b"{broken", b"42"]


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:])]


@pytest.fixture
def client(fault_server):
    with client_for(fault_server) as c:
        yield c


@pytest.mark.parametrize("size", [1, 7, 64, 4096])
@pytest.mark.parametrize("trailing_newline", [True, False])
def test_blocks_hold_the_lines_the_line_path_gives(fault_server, client, size, trailing_newline):
    body = b"\n".join([*LINE_KINDS, OBJECT, OBJECT]) + (b"\n" if trailing_newline else b"")
    fault_server.queue(Stream([body[i : i + size] for i in range(0, len(body), size)]))
    fault_server.queue(Stream([body[i : i + size] for i in range(0, len(body), size)]))
    lines = list(client.machines.iter_log_lines("f", "m"))
    blocks = list(client.machines.iter_log_blocks("f", "m"))
    assert all(block.endswith(b"\n") for block in blocks)
    assert b"".join(blocks) == b"".join(line + b"\n" for line in lines)
    assert len(lines) == 8  # the objects (the array's object re-encoded), nothing else


def test_an_all_object_read_is_passed_on_as_it_came(fault_server, client):
    body = b"".join(b'{"message":"m%d"}\n' % i for i in range(500))
    fault_server.queue(Stream([body]))
    assert b"".join(client.machines.iter_log_blocks("f", "m")) == body


def test_blocks_of_a_json_array_answer(fault_server, client):
    fault_server.queue(Reply(json=[{"message": "é"}, 3, {"message": "b", "timestamp": 2}]))
    fault_server.queue(Reply(json=[{"message": "é"}, 3, {"message": "b", "timestamp": 2}]))
    lines = list(client.machines.iter_log_lines("f", "m"))
    assert b"".join(client.machines.iter_log_blocks("f", "m")) == b"".join(line + b"\n" for line in lines)


@settings(max_examples=300, deadline=None)
@given(kinds=st.lists(st.sampled_from(range(len(LINE_KINDS))), max_size=25),
       cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=20), trailing_newline=st.booleans())
def test_line_blocks_split_as_line_batches(kinds, cuts, trailing_newline):
    data = b"\n".join(LINE_KINDS[k] for k in kinds) + (b"\n" if trailing_newline and kinds else b"")
    chunks = chunked(data, cuts)
    blocks = list(line_blocks(chunks))
    assert all(block.endswith(b"\n") for block in blocks)
    assert b"".join(blocks) == b"".join(line + b"\n" for batch in line_batches(chunks) for line in batch)


@settings(max_examples=300, deadline=None)
@given(kinds=st.lists(st.sampled_from(range(len(LINE_KINDS))), min_size=1, max_size=25))
def test_a_block_decodes_as_its_lines(kinds):
    lines = [LINE_KINDS[k] for k in kinds]
    block = b"\n".join(lines) + b"\n"
    assert _block_entries(block) == [entry for _, entry in _decode(lines)]


def test_a_line_holding_two_objects_is_skipped_as_before():
    lines = [OBJECT, b'{"message":"a"},{"message":"b"}', OBJECT]
    assert _block_entries(b"\n".join(lines) + b"\n") == [entry for _, entry in _decode(lines)]
    assert len(_block_entries(b"\n".join(lines) + b"\n")) == 2


TIMESTAMPS = st.one_of(
    st.integers(min_value=-10, max_value=10**19),  # seconds, ms, µs, ns, and the edges between them
    st.sampled_from([99_999_999_999, 100_000_000_000, 100_000_000_001, 10**14, 10**14 + 1, 1_700_000_000_999]),
    st.floats(min_value=0, max_value=2e12, allow_nan=False), st.none(), st.booleans(), st.just("1700000000"),
    st.just("soon"),
)
MESSAGES = st.one_of(st.text(max_size=20), st.just("ends\n"), st.just("crlf\r\n"), st.none(), st.integers(),
                     st.just("\x1b[31mred\x1b[0m \x1b]0;title\x07"))


@settings(max_examples=400, deadline=None)
@given(entries=st.lists(st.fixed_dictionaries({"timestamp": TIMESTAMPS, "message": MESSAGES}), max_size=20),
       terminal=st.booleans(), color=st.booleans(), repeat=st.booleans())
def test_lines_print_what_line_prints(entries, terminal, color, repeat):
    if repeat:  # bursts: the same millisecond many times in a row
        entries = [e for e in entries for _ in range(3)]
    batch = LogFormatter(terminal=terminal, color=color)
    one = LogFormatter(terminal=terminal, color=color)
    assert batch.lines(entries) == [one.line(e, entry_time(e)) for e in entries]


def test_lines_of_the_common_case():
    entries = [{"timestamp": 1_700_000_000_123, "message": "a"}, {"timestamp": 1_700_000_000_123, "message": "b"},
               {"timestamp": 1_700_000_001_000, "message": json.dumps("q")}]
    assert LogFormatter(terminal=False).lines(entries) == [
        "2023-11-14T22:13:20.123Z a\n", "2023-11-14T22:13:20.123Z b\n", '2023-11-14T22:13:21.000Z "q"\n']
