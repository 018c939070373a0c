"""A CLI process to watch while it runs: its stdout and stderr read line by line in threads, so a test can wait
for a line, send a signal, then check everything it printed."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading

from support.helpers import REPO, assert_no_token, wait_until


class Proc:
    def __init__(self, args: list[str], env: dict, cwd: str | None = None) -> None:
        self.args = args
        self.env = env
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "valyent_cli", *args], env={**env, "PYTHONPATH": str(REPO)}, cwd=cwd,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True),
                         threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True)]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream, into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))

    def wait_for(self, predicate, timeout: float = 20, what: str = "a condition"):
        def check():
            assert self.proc.poll() is None or predicate(), (
                f"exited {self.proc.returncode} before {what}: {self.err[-5:]}")
            return predicate()

        return wait_until(check, timeout, interval=0.02, message=f"{what}; stderr so far: {self.err[-5:]}")

    def finish(self, timeout: float = 20) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        for reader in self._readers:
            reader.join(5)
        assert_no_token(self.args, self.env, "\n".join(self.out), "\n".join(self.err))
        return code

    def interrupt(self, timeout: float = 20) -> int:
        """Ctrl-C: SIGINT to the process, as a terminal sends it; its exit status."""
        self.proc.send_signal(signal.SIGINT)
        return self.finish(timeout)

    @property
    def stderr(self) -> str:
        return "\n".join(self.err)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
