"""`fs put` of a file that grows during the upload, or of a /proc file (size 0, content nonetheless), against the
sandbox: a snapshot or a chunked upload, and the CLI says which (issue 17, item 16)."""

from __future__ import annotations

import os
import threading

from support.cli import run_cli


def test_a_file_growing_during_the_upload_is_sent_as_a_snapshot(one_machine, tmp_path):
    env, mid, client = one_machine
    path = tmp_path / "growing.log"
    block = os.urandom(1 << 20)
    path.write_bytes(block * 8)
    stop = threading.Event()

    def grow() -> None:
        with open(path, "ab") as fh:
            while not stop.is_set():
                fh.write(block)
                fh.flush()
                stop.wait(0.01)  # ~100 MB/s at most: growing, without filling the disk

    writer = threading.Thread(target=grow, daemon=True)
    writer.start()
    try:
        result = run_cli("fs", "put", mid, str(path), "/tmp/growing.log", env=env, timeout=120)
    finally:
        stop.set()
        writer.join()
    assert result.returncode == 0, result.stderr
    assert "LocalProtocolError" not in result.stderr
    assert "grew during the upload: sent a snapshot" in result.stderr, result.stderr
    sent = client.fs(mid).read("/tmp/growing.log")
    local = path.read_bytes()
    assert len(block) * 8 <= len(sent) < len(local)
    assert local.startswith(sent)


def test_a_proc_file_is_sent_chunked(one_machine):
    env, mid, client = one_machine
    result = run_cli("fs", "put", mid, "/proc/self/status", "/tmp/status", env=env)
    assert result.returncode == 0, result.stderr
    assert "sent chunked" in result.stderr
    sent = client.fs(mid).read("/tmp/status")
    assert sent.startswith(b"Name:") and b"Pid:" in sent


def test_a_plain_file_says_nothing_more(one_machine, tmp_path):
    env, mid, client = one_machine
    path = tmp_path / "plain.txt"
    path.write_bytes(b"hello\n" * 1000)
    result = run_cli("fs", "put", mid, str(path), "/tmp/plain.txt", env=env)
    assert result.returncode == 0 and "Note" not in result.stderr, result.stderr
    assert client.fs(mid).read("/tmp/plain.txt") == path.read_bytes()
