"""Logs: NDJSON decoding, JSON-array answers, timestamps, and the live follower against streams that fail."""

from __future__ import annotations

import json
import time

import pytest
from support.faultserver import Reply, Stream, client_for, ndjson
from support.util import Chunks
from hypothesis import given, settings
from hypothesis import strategies as st

from valyent_cli.api import StreamError, entry_time, errors
from valyent_cli.api.logs import LogFollower, decode_ndjson, iter_lines

BASE_MS = 1_700_000_000_000


def entry(i: int, *, ms: bool = True, message: str | None = None) -> dict:
    ts = BASE_MS + i * 7 if ms else 1_700_000_000 + i // 3  # seconds: several entries share a second
    return {"timestamp": ts, "instance_id": "i-1", "source": "stdout", "level": "info",
            "message": message if message is not None else f"seq={i:05d}"}


def entries(a: int, b: int, **kw) -> list[dict]:
    return [entry(i, **kw) for i in range(a, b)]


def seqs(got: list[dict]) -> list[int]:
    return [int(e["message"].split("=")[1]) for e in got]


def split(data: bytes, size: int) -> list[bytes]:
    """Chunks of `size` bytes: lines end up split across chunks."""
    return [data[i : i + size] for i in range(0, len(data), size)]


# -- the decoder --------------------------------------------------------------------------------------------------
def test_lines_split_across_chunks_blank_lines_and_a_last_line_without_newline():
    chunks = [b'{"message": "a"}\n{"mess', b'age": "b"}', b"\n\n", b"   \n", b'{"message": "c"}\r\n', b"", b'{"message": "d"}']
    assert [e["message"] for e in decode_ndjson(chunks)] == ["a", "b", "c", "d"]


def test_lines_that_are_not_objects_are_skipped():
    chunks = [b'[1, 2]\n"text"\n{"message": "ok"}\n{broken\n42\nnull\n']
    assert list(decode_ndjson(chunks)) == [{"message": "ok"}]


def test_iter_lines_keeps_bytes_intact():
    data = "é ünïcode ✓\n".encode() * 3
    assert list(iter_lines(split(data, 1))) == ["é ünïcode ✓".encode()] * 3


@settings(max_examples=200, deadline=None)
@given(
    messages=st.lists(st.text(max_size=30), max_size=20),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=30),
    trailing_newline=st.booleans(),
    blank_lines=st.booleans(),
)
def test_any_chunking_decodes_the_same(messages, cuts, trailing_newline, blank_lines):
    lines = [json.dumps({"message": m}).encode() for m in messages]
    sep = b"\n\n" if blank_lines else b"\n"
    data = sep.join(lines) + (b"\n" if trailing_newline and lines else b"")
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    chunks = [data[a:b] for a, b in zip(points, points[1:])]
    assert [e["message"] for e in decode_ndjson(chunks)] == messages


@pytest.mark.parametrize(
    "value, seconds",
    [(1_700_000_000, 1_700_000_000.0), (1_700_000_000_123, 1_700_000_000.123), (1_700_000_000.5, 1_700_000_000.5),
     # microseconds and nanoseconds (issue 28 item 6), each just above its limit too
     (1_700_000_000_123_456, 1_700_000_000.123456), (1_700_000_000_123_456_789, 1_700_000_000.123456789),
     (10**14 + 1, 10**8 + 1e-6), (10**17 + 1, 10**8 + 1e-9), ("1700000000123456", 1_700_000_000.123456),
     ("1700000000", 1_700_000_000.0), (None, None), ("yesterday", None), (True, None), ([1], None)],
)
def test_entry_time_normalises_seconds_milliseconds_microseconds_and_nanoseconds(value, seconds):
    got = entry_time({"timestamp": value} if value is not None else {})
    assert got == pytest.approx(seconds) if seconds is not None else got is None


# -- the log so far, over HTTP ------------------------------------------------------------------------------------
@pytest.fixture
def client(fault_server):
    with client_for(fault_server) as c:
        yield c


def test_ndjson_answer_split_across_chunks(fault_server, client):
    history = entries(0, 50)
    fault_server.queue(Stream(split(ndjson(*history), 37)))
    assert client.machines.logs("f", "m") == history


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8", None])
def test_json_array_answer_accepted_by_content_type(fault_server, client, content_type):
    history = entries(0, 5)
    headers = {"Content-Type": content_type} if content_type else {}
    fault_server.queue(Reply(body=json.dumps(history), headers=headers))
    assert client.machines.logs("f", "m") == history


def test_ndjson_mislabelled_as_json_is_still_read(fault_server, client):
    fault_server.queue(Reply(body=ndjson(*entries(0, 3)), headers={"Content-Type": "application/json"}))
    assert seqs(client.machines.logs("f", "m")) == [0, 1, 2]


def test_a_broken_json_array_is_a_response_error(fault_server, client):
    fault_server.queue(Reply(body=b'[{"message": "a"}, {"mess', headers={"Content-Type": "application/json"}))
    with pytest.raises(errors.ResponseError):
        client.machines.logs("f", "m")


def test_empty_logs(fault_server, client):
    fault_server.queue(Reply(body=b"", headers={"Content-Type": "application/x-ndjson"}), Reply(json=[]))
    assert client.machines.logs("f", "m") == []
    assert client.machines.logs("f", "m") == []


def test_iter_logs_streams(fault_server, client):
    fault_server.queue(Stream([ndjson(*entries(0, 3))], end="stall"))
    got = []
    for e in client.machines.iter_logs("f", "m"):  # entries arrive before the answer ends
        got.append(e)
        if len(got) == 3:
            break
    assert seqs(got) == [0, 1, 2]


# -- the live follower --------------------------------------------------------------------------------------------
def serve_connections(server, *connections, machine_state="running"):
    """Answer the n-th follow connection with connections[n] (the last one repeats)."""
    served = []

    def handler(request):
        if request.path.endswith("/logs"):
            assert request.param("follow") == "true"
            action = connections[min(len(served), len(connections) - 1)]
            served.append(request)
            return action
        return Reply(json={"id": "m", "fleet": "f", "state": machine_state})

    server.handler = handler
    return served


def follow(client, n: int, **kwargs) -> list[dict]:
    kwargs.setdefault("until_destroyed", False)
    kwargs.setdefault("idle_timeout", 1.0)  # a follower that misses entries then fails fast instead of hanging
    kwargs.setdefault("max_failures", 2)
    kwargs.setdefault("backoff_base", 0.001)
    kwargs.setdefault("backoff_max", 0.01)
    got = []
    for e in client.machines.follow_logs("f", "m", **kwargs):
        got.append(e)
        if len(got) >= n:
            break
    return got


def cut_line(data: bytes) -> bytes:
    """The first half of a line: what a stream broken mid-line delivers last."""
    return data[: len(data) // 2]


def test_stream_cut_mid_line_then_replayed(fault_server, client):
    reasons = []
    served = serve_connections(
        fault_server,
        Stream(split(ndjson(*entries(0, 10)), 41) + [cut_line(ndjson(entry(10)))], end="cut"),
        Stream(split(ndjson(*entries(0, 17)), 53) + [cut_line(ndjson(entry(17)))], end="cut"),
        Stream(split(ndjson(*entries(0, 25)), 64), end="stall"),
    )
    got = follow(client, 25, on_reconnect=lambda n, why: reasons.append(why))
    assert seqs(got) == list(range(25))
    assert len(served) == 3
    assert all("broke" in r for r in reasons) and len(reasons) == 2


def test_stream_closed_cleanly_then_replayed(fault_server, client):
    served = serve_connections(
        fault_server,
        Stream([ndjson(*entries(0, 5))], end="close"),
        Stream([ndjson(*entries(0, 5))], end="close"),  # nothing new: a failure, not the end
        Stream([ndjson(*entries(0, 9)) + cut_line(ndjson(entry(9)))], end="close"),  # a clean close mid-line
        Stream([ndjson(*entries(0, 12))], end="stall"),
    )
    assert seqs(follow(client, 12)) == list(range(12))
    assert len(served) == 4


def test_stalled_stream_is_reopened_after_idle_timeout(fault_server, client):
    served = serve_connections(
        fault_server,
        Stream([ndjson(*entries(0, 4))], end="stall"),
        Stream([ndjson(*entries(0, 8))], end="stall"),
    )
    reasons = []
    started = time.monotonic()
    got = follow(client, 8, idle_timeout=0.3, on_reconnect=lambda n, why: reasons.append(why))
    assert seqs(got) == list(range(8))
    assert len(served) == 2
    assert 0.25 < time.monotonic() - started < 3
    assert reasons == ["the stream stalled"]


def test_stream_reset_then_replayed(fault_server, client):
    serve_connections(
        fault_server,
        Stream([ndjson(*entries(0, 3))], end="reset"),
        Reply(503),
        Stream([ndjson(*entries(0, 6))], end="reset"),
        Stream([ndjson(*entries(0, 9))], end="stall"),
    )
    assert seqs(follow(client, 9)) == list(range(9))


def test_gives_up_after_repeated_failures_with_nothing_new(fault_server, client):
    served = serve_connections(fault_server, Stream([ndjson(*entries(0, 3))], end="cut"))
    got = []
    with pytest.raises(StreamError) as info:
        for e in client.machines.follow_logs("f", "m", max_failures=3, until_destroyed=False,
                                             backoff_base=0.001, backoff_max=0.01):
            got.append(e)
    assert seqs(got) == [0, 1, 2]
    assert len(served) == 5  # the first connection, then 4 that brought nothing new
    assert "4 times in a row" in str(info.value)
    assert isinstance(info.value, errors.TransportError)


def test_progress_resets_the_failure_count(fault_server, client):
    # Every connection breaks, but each brings one new entry: the follower never gives up.
    connections = [Stream([ndjson(*entries(0, k))], end="cut") for k in range(1, 12)]
    serve_connections(fault_server, *connections)
    assert seqs(follow(client, 11, max_failures=1)) == list(range(11))


def test_an_api_error_is_not_retried_as_a_stream_failure(fault_server, client):
    serve_connections(fault_server, Stream([ndjson(*entries(0, 2))], end="cut"),
                      Reply(404, json={"Code": "NOT_FOUND", "detail": "machine not found"}))
    got = []
    with pytest.raises(errors.NotFound):
        for e in client.machines.follow_logs("f", "m", until_destroyed=False, backoff_base=0.001):
            got.append(e)
    assert seqs(got) == [0, 1]


def test_ends_when_the_machine_is_destroyed(fault_server, client):
    served = serve_connections(fault_server, Stream([ndjson(*entries(0, 3))], end="close"), machine_state="destroyed")
    got = list(client.machines.follow_logs("f", "m", backoff_base=0.001))
    assert seqs(got) == [0, 1, 2] and len(served) == 1
    assert fault_server.count("GET", "/v1/fleets/f/machines/m") == 1


def test_trimmed_history_falls_back_to_time_order(fault_server, client):
    serve_connections(
        fault_server,
        Stream([ndjson(*entries(0, 10))], end="cut"),
        # The server now keeps only the last 4 lines, and 3 new ones came meanwhile: fewer lines than we have
        # shown, so counting alone would skip the new ones.
        Stream([ndjson(*entries(6, 13))], end="cut"),
        Stream([ndjson(*entries(9, 20))], end="stall"),
    )
    assert seqs(follow(client, 20)) == list(range(20))


def test_rewritten_history_falls_back_to_time_order(fault_server, client):
    serve_connections(
        fault_server,
        Stream([ndjson(*entries(0, 10))], end="cut"),
        # Trimmed by two lines but longer than what we have shown: position 10 holds another line.
        Stream([ndjson(*entries(2, 15))], end="cut"),
        Stream([ndjson(*entries(5, 18))], end="stall"),
    )
    assert seqs(follow(client, 18)) == list(range(18))


def test_identical_lines_in_the_same_second_are_each_shown_once(fault_server, client):
    def e(ts, i, msg):
        return {"timestamp": ts, "message": msg, "n": i}  # "n" is not part of the fingerprint: lines look equal

    first = [e(99, 0, "seq=00000"), e(100, 1, "tick"), e(100, 2, "tick")]
    trimmed = [e(100, 1, "tick"), e(100, 2, "tick"), e(100, 3, "tick"), e(101, 4, "tock")]
    serve_connections(
        fault_server,
        Stream([ndjson(*first)], end="cut"),
        Stream([ndjson(*first, e(100, 3, "tick"))], end="cut"),  # same history, one more identical line
        Stream([ndjson(*trimmed)], end="stall"),  # the first line trimmed
    )
    got = follow(client, 5)
    assert [x["n"] for x in got] == [0, 1, 2, 3, 4]


def test_seconds_timestamps_many_per_second(fault_server, client):
    history = entries(0, 30, ms=False)
    serve_connections(
        fault_server,
        Stream([ndjson(*history[:11])], end="cut"),
        Stream([ndjson(*history[4:20])], end="cut"),  # trimmed, and several lines share each second
        Stream([ndjson(*history)], end="stall"),
    )
    assert seqs(follow(client, 30)) == list(range(30))


def test_follower_without_http():
    """The follower's rules on their own, with streams given as lists of chunks."""
    from contextlib import contextmanager

    streams = iter([[ndjson(*entries(0, 4))], [ndjson(*entries(0, 4))], [ndjson(*entries(0, 7))]])

    @contextmanager
    def open_stream(idle_timeout):
        yield Chunks(next(streams))

    follower = LogFollower(open_stream, backoff_base=0.0)
    got = []
    for e in follower:
        got.append(e)
        if len(got) == 7:
            break
    assert seqs(got) == list(range(7)) and follower.reconnects == 2


def _replays(*connections: list[bytes]):
    """A follower over ``connections`` (each a list of NDJSON chunks), ending after the last one."""
    from contextlib import contextmanager

    opened = []

    @contextmanager
    def open_stream(idle_timeout):
        opened.append(1)
        yield Chunks(connections[len(opened) - 1])

    return LogFollower(open_stream, is_finished=lambda: len(opened) == len(connections), backoff_base=0.0)


def test_a_replay_overlapping_by_exactly_one_entry_keeps_the_entries_after_it():
    """Issue 28 item 5: seconds timestamps, all in one second: the replay after the reconnection begins with the
    one entry already shown; what follows it is new, though time alone cannot say so."""
    def e(message: str) -> dict:
        return {"timestamp": 1_700_000_000, "source": "stdout", "message": message}

    got = list(_replays([ndjson(e("a")), b"null\n"], [ndjson(e("a"), e("b"), e("c")), b"null\n", ndjson(e("d"))]))
    assert [x["message"] for x in got] == ["a", "b", "c", "d"]


def test_entries_without_timestamps_after_the_window_slid_are_placed_by_the_end_of_replay_mark():
    """Issue 28 item 7: no timestamps, and the node's window slid while away (its first entries are gone): the
    `null` mark ends the replay, whose overlap with what was shown is matched as a sequence; counting positions
    would skip the new entries."""
    def e(i: int) -> dict:
        return {"source": "stdout", "message": f"seq={i:05d}"}

    got = list(_replays([ndjson(*map(e, range(5))), b"null\n"],
                        [ndjson(*map(e, range(3, 7))), b"null\n", ndjson(e(7))]))
    assert seqs(got) == list(range(8))


def test_iter_log_lines_passes_ndjson_lines_through_untouched(fault_server, client):
    raw = b'{"message":"a",  "timestamp":1}\n\n{"message": "b\\u00e9"}\n[1]\n{"message":"c"}'
    fault_server.queue(Stream(split(raw, 5)))
    assert list(client.machines.iter_log_lines("f", "m")) == [
        b'{"message":"a",  "timestamp":1}', b'{"message": "b\\u00e9"}', b'{"message":"c"}'
    ]


def test_iter_log_lines_re_encodes_a_json_array(fault_server, client):
    fault_server.queue(Reply(json=[{"message": "é"}, 3, {"message": "b", "timestamp": 2}]))
    lines = list(client.machines.iter_log_lines("f", "m"))
    assert lines == ['{"message":"é"}'.encode(), b'{"message":"b","timestamp":2}']


def test_a_quiet_machine_is_followed_for_as_long_as_it_takes(fault_server, client):
    """Streams that replay the history and then stall (idle timeout) or close, with nothing new, many times in a
    row: not failures when each stayed open a while. The follower waits, then shows what finally comes."""
    quiet = Stream([ndjson(*entries(0, 3))], end="stall")
    closed = Stream([ndjson(*entries(0, 3))], chunk_delay=0.15, end="close")  # a proxy closing an idle stream
    served = serve_connections(fault_server, quiet, closed, quiet, closed, quiet, closed,
                               Stream([ndjson(*entries(0, 5))], end="stall"))
    got = follow(client, 5, idle_timeout=0.15, max_failures=1, healthy_after=0.1)
    assert seqs(got) == list(range(5))
    assert len(served) == 7


def test_short_connections_with_nothing_new_are_failures(fault_server, client):
    served = serve_connections(fault_server, Stream([ndjson(*entries(0, 3))], end="stall"))
    with pytest.raises(StreamError):
        follow(client, 10, idle_timeout=0.1, max_failures=2, healthy_after=5.0)
    assert len(served) == 4


def test_a_very_long_line_over_many_chunks():
    message = "x" * 2_000_000
    data = json.dumps({"message": message}).encode() + b"\n" + ndjson(entry(1))
    assert [e["message"] for e in decode_ndjson(split(data, 1000))] == [message, "seq=00001"]
