#!/usr/bin/env python3
"""Benchmarks of the valyent CLI, as ratios against a baseline measured in the same run.

    python benchmarks/run.py                # every case (about 3-4 minutes on 2 cores)
    python benchmarks/run.py --quick        # a smoke run: fewer runs, smaller data
    python benchmarks/run.py --only logs    # one case (startup, fleets, machines, logs, follow, sandbox)
    python benchmarks/run.py --markdown     # also print the table as Markdown (for benchmarks/README.md)

It starts a sandbox (`python -m valyent_cli local serve`) on a free loopback port with a temporary data dir,
prepares the data through the API, runs each case at least 5 times alternating with its baseline (after one
untimed warm-up run of each), and prints medians, ratios, targets and peak memory. The sandbox and every machine
are stopped at the end. Exit status: 0 when it ran, whatever the numbers say (misses are reported, not fatal);
1 when the sandbox could not start, 2 when a case could not run (its row says why). The Node SDK baseline is
installed from benchmarks/node's lock file (`npm ci`) when it is missing; without node it is a skipped row.

Peak memory is each child's own ru_maxrss, read with os.wait4 by benchmarks/_measure.py, a tiny process that
spawns the command and times it (so neither its start-up nor this harness's memory is counted).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
NODE_DIR = HERE / "node"
PY = sys.executable
CASES = ("startup", "fleets", "machines", "logs", "serve", "follow", "sandbox", "gateway", "create", "sandbox8",
         "run")


# -- running one child -------------------------------------------------------------------------------------------
@dataclass
class Run:
    seconds: float
    maxrss_kb: int
    returncode: int
    cpu: float = 0.0  # user + system seconds of the child (and its waited-for children)
    out_bytes: int = 0
    stderr: str = ""


MEASURE = HERE / "_measure.py"


def run_once(argv: list[str], env: dict[str, str], *, stdout: str = "devnull", cwd: str | None = None) -> Run:
    """Run argv once, through _measure.py: wall time from spawn to exit, and the child's own peak RSS.

    stdout: "devnull" (`> /dev/null`) or "pipe" (a pipe drained by a thread, as `| cat > /dev/null`).
    """
    out = subprocess.PIPE if stdout == "pipe" else subprocess.DEVNULL
    errf = tempfile.TemporaryFile()
    fd, result_path = tempfile.mkstemp(prefix="valyent-bench-", suffix=".txt")
    os.close(fd)
    count = [0]
    proc = subprocess.Popen([PY, "-S", "-E", str(MEASURE), result_path, "--", *argv], stdout=out, stderr=errf,
                            stdin=subprocess.DEVNULL, env=env, cwd=cwd)
    drain = None
    if out is subprocess.PIPE:
        def _drain() -> None:
            read = proc.stdout.read1  # type: ignore[union-attr]
            while chunk := read(1 << 16):
                count[0] += len(chunk)

        drain = threading.Thread(target=_drain, daemon=True)
        drain.start()
    proc.wait()
    if drain is not None:
        drain.join()
        proc.stdout.close()  # type: ignore[union-attr]
    errf.seek(0)
    err = errf.read().decode(errors="replace")
    errf.close()
    try:
        seconds, rss, code, cpu = Path(result_path).read_text().split()
    except (OSError, ValueError):
        raise BenchError(f"{' '.join(argv)}: the measuring wrapper failed ({proc.returncode}): {err[-800:]}") from None
    finally:
        os.unlink(result_path)
    return Run(float(seconds), int(rss), int(code), float(cpu), count[0], err)


def alternate(a: list[str], b: list[str] | None, env: dict[str, str], runs: int, *, stdout: str = "devnull",
              b_stdout: str | None = None, warmup: bool = True, b_env: dict[str, str] | None = None
              ) -> tuple[list[Run], list[Run]]:
    """Run a and b alternately (a b, b a, a b, ...) `runs` times each, after one untimed run of each.

    b runs with b_env when given (a baseline gets no PYTHONPATH pointing at this checkout), else with env."""
    b_stdout = b_stdout or stdout
    b_env = b_env or env
    if warmup:
        check(run_once(a, env, stdout=stdout), a)
        if b is not None:
            check(run_once(b, b_env, stdout=b_stdout), b)
    ra: list[Run] = []
    rb: list[Run] = []
    for i in range(runs):
        order = [(a, ra, stdout, env), (b, rb, b_stdout, b_env)]
        if i % 2:
            order.reverse()
        for argv, into, mode, e in order:
            if argv is None:
                continue
            into.append(check(run_once(argv, e, stdout=mode), argv))
    return ra, rb


class BenchError(Exception):
    pass


def check(run: Run, argv: list[str]) -> Run:
    if run.returncode != 0:
        raise BenchError(f"{' '.join(argv)} exited {run.returncode}: {run.stderr.strip()[-800:]}")
    return run


def median(runs: list[Run]) -> float:
    return statistics.median(r.seconds for r in runs)


def median_cpu(runs: list[Run]) -> float:
    return statistics.median(r.cpu for r in runs)


def peak_mb(runs: list[Run]) -> float:
    return max(r.maxrss_kb for r in runs) / 1024


# -- the results table -------------------------------------------------------------------------------------------
@dataclass
class Row:
    case: str
    value: str
    baseline: str
    ratio: float | None
    target: str
    ok: bool | None  # None: not applicable / skipped
    memory: str = ""
    note: str = ""
    cpu: str = ""  # "valyent / baseline (ratio)" of the CPU medians


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(f"  {row.case}: {row.value} vs {row.baseline} -> {fmt_ratio(row.ratio)} "
              f"(target {row.target}) {verdict(row.ok) if row.target != '-' else 'info'}  cpu {row.cpu or '-'}  {row.memory} {row.note}".rstrip(),
              flush=True)


def fmt_ratio(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}"


def verdict(ok: bool | None) -> str:
    return {True: "pass", False: "MISS", None: "skip"}[ok]


def ms(s: float) -> str:
    return f"{s * 1000:.0f} ms" if s < 10 else f"{s:.1f} s"


def ratio_row(case: str, a: list[Run], b: list[Run], limit: float | None, *, note: str = "") -> Row:
    """Wall-time medians decide the row (limit None: shown, no target); CPU medians are shown beside them."""
    ma, mb = median(a), median(b)
    r = ma / mb
    ca, cb = median_cpu(a), median_cpu(b)
    cpu = f"{ms(ca)} / {ms(cb)} ({ca / cb:.2f})" if cb > 0 else f"{ms(ca)} / {ms(cb)}"
    return Row(case, ms(ma), ms(mb), r, "-" if limit is None else f"<= {limit}", None if limit is None else r <= limit,
               f"{peak_mb(a):.0f} / {peak_mb(b):.0f} MB", note, cpu)


def print_table(results: Results, *, markdown: bool) -> None:
    header = ["case", "valyent (median)", "baseline (median)", "ratio", "target", "result",
              "CPU valyent / baseline (ratio)", "peak RSS valyent / baseline"]
    body = [[r.case, r.value, r.baseline, fmt_ratio(r.ratio), r.target, verdict(r.ok) if r.target != "-" else "info",
             r.cpu or "-", r.memory or "-"] for r in results.rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    print()
    for row in [header, ["-" * w for w in widths], *body]:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())
    for note in [r for r in results.rows if r.note]:
        print(f"  * {note.case}: {note.note}")
    for note in results.notes:
        print(f"  * {note}")
    missed = [r.case for r in results.rows if r.ok is False]
    print("\nMissed:", ", ".join(missed) if missed else "none")
    if markdown:
        print()
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join("---" for _ in header) + "|")
        for row in body:
            print("| " + " | ".join(str(x) for x in row) + " |")


def machine_info() -> str:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"nproc {os.cpu_count()}, CPU {model}, Python {platform.python_version()} ({venv_state()}), "
            f"{platform.system()} {platform.release()}, load average {load}")


def venv_state() -> str:
    """Whether this interpreter is a clean venv (no system site-packages), as the README installs valyent: every
    baseline runs with this same interpreter, so both sides pay the same start-up."""
    if sys.prefix == sys.base_prefix:
        return "not a venv: baselines and valyent share this interpreter, but an install would use a venv"
    try:
        cfg = (Path(sys.prefix) / "pyvenv.cfg").read_text()
    except OSError:
        cfg = ""
    system = any(line.split("=", 1)[0].strip() == "include-system-site-packages"
                 and line.split("=", 1)[1].strip().lower() == "true" for line in cfg.splitlines() if "=" in line)
    return f"venv {sys.prefix}" + (", WITH system site-packages" if system else ", no system site-packages")


# -- the sandbox -------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sandbox:
    def __init__(self, root: Path, code: Path = REPO, name: str = "data") -> None:
        """A sandbox server run from the valyent_cli under `code` (this checkout, or an exported older commit)."""
        self.root = root
        self.code = code
        self.name = name
        self.data = root / name
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.token = ""

    def start(self) -> None:
        self.log = open(self.root / f"server-{self.name}.log", "wb")
        self.proc = subprocess.Popen(
            [PY, "-m", "valyent_cli", "local", "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--data-dir", str(self.data)],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            env=self.server_env(), cwd=str(self.root),
        )
        import httpx

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"the sandbox exited {self.proc.returncode}: {self.log_tail()}")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200 and (self.data / "token").exists():
                    self.token = (self.data / "token").read_text().strip()
                    if self.token:
                        return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise BenchError(f"the sandbox did not answer on {self.base}/healthz within 30 s: {self.log_tail()}")

    def server_env(self) -> dict[str, str]:
        # The process driver, whatever engine is installed: the cases run this interpreter inside machines (log
        # machines) and measure the sandbox itself, not podman's start-up. (A sandbox older than the drivers
        # ignores the variable: it has only that one.)
        return {**clean_env(self.root, self.code), "VALYENT_LOCAL_DRIVER": "process"}

    def log_tail(self) -> str:
        try:
            return (self.root / f"server-{self.name}.log").read_text(errors="replace")[-1500:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
        # Safety net: any machine process that outlived the server (they run in their own sessions, from
        # <data>/machines/<id>/root) is ours; end each by its pid.
        for pid in processes_under(self.data):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    @property
    def api(self) -> str:
        return f"{self.base}/v1"

    def env(self, root: Path, fleet: str | None = None, *, code: Path | None = REPO) -> dict[str, str]:
        """The environment of a command against this sandbox; code: the checkout on PYTHONPATH (None for a
        baseline, which needs none)."""
        env = clean_env(root, code)
        env.update(VALYENT_API_URL=self.api, VALYENT_API_TOKEN=self.token,
                   VALYENT_INITD_URL=f"{self.base}/initd/{{machine_id}}")
        if fleet:
            env["VALYENT_FLEET"] = fleet
        return env

    def client(self):
        import httpx

        return httpx.Client(base_url=self.api, headers={"Authorization": f"Bearer {self.token}"}, timeout=120)


def processes_under(directory: Path) -> list[int]:
    """Pids of live processes whose working directory is inside `directory`."""
    found = []
    prefix = str(directory.resolve())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd == prefix or cwd.startswith(prefix + "/"):
            found.append(int(entry.name))
    return found


def clean_env(root: Path, code: Path | None = None) -> dict[str, str]:
    """code: put this checkout first on PYTHONPATH, so that the installed `valyent` script runs this checkout's
    valyent_cli even when the package was installed (editable) from another one."""
    # PYTHONDONTWRITEBYTECODE would make every run compile valyent_cli from source (~30 ms here), which an
    # installed package never does: bytecode is written at install time.
    drop = ("NO_COLOR", "PYTHONPROFILEIMPORTTIME", "PYTHONDONTWRITEBYTECODE", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALYENT_") and k not in drop}
    if code is not None:
        env["PYTHONPATH"] = str(code)
    env["VALYENT_CONFIG_DIR"] = str(root / "config")
    env["NODE_ENV"] = "production"
    return env


def valyent_argv() -> list[str]:
    """The installed console script beside this interpreter (not a pyenv shim, which adds ~50 ms of bash)."""
    script = Path(PY).parent / "valyent"
    if script.exists():
        return [str(script)]
    return [PY, "-m", "valyent_cli"]


def compile_package(root: Path, code: Path = REPO) -> None:
    """Bytecode for the valyent_cli that the children will import, as `pip install` writes it."""
    env = clean_env(root, code)
    where = subprocess.run([PY, "-c", "import valyent_cli, os; print(os.path.dirname(valyent_cli.__file__))"],
                           env=env, capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run([PY, "-m", "compileall", "-q", where], env=env, stdout=subprocess.DEVNULL, check=False)


# -- data --------------------------------------------------------------------------------------------------------
def create_fleet(sb: Sandbox, name: str) -> str:
    with sb.client() as c:
        r = c.post("/fleets", json={"name": name})
        r.raise_for_status()
        return r.json()["id"]


MACHINE = {"region": "gra-1", "config": {"image": "bench:latest", "guest": {"cpu_kind": "shared", "memory_mb": 256, "cpus": 1}}}


def create_machines(sb: Sandbox, fleet: str, n: int, *, skip_start: bool, threads: int = 8) -> tuple[list[str], list[float], int]:
    """n machines through the API from `threads` clients; (ids, latencies, errors)."""
    import httpx

    local = threading.local()
    clients: list[httpx.Client] = []
    lock = threading.Lock()

    def client() -> httpx.Client:
        if not hasattr(local, "c"):
            local.c = sb.client()
            with lock:
                clients.append(local.c)
        return local.c

    def one(_: int) -> tuple[str | None, float]:
        t = time.perf_counter()
        try:
            r = client().post(f"/fleets/{fleet}/machines", json={**MACHINE, "skip_start": skip_start})
            ok = r.status_code in (200, 201)
            return (r.json()["id"] if ok else None), time.perf_counter() - t
        except httpx.HTTPError:
            return None, time.perf_counter() - t

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(one, range(n)))
    for c in clients:
        c.close()
    ids = [i for i, _ in results if i]
    return ids, [t for _, t in results], n - len(ids)


def log_machine(sb: Sandbox, fleet: str, lines: int) -> str:
    """A machine that prints `lines` lines at once, then idles; returns when the sandbox holds all of them."""
    code = ("import sys, time; sys.stdout.write(''.join(f'line {i} ' + 'x' * 60 + '\\n' for i in range(%d))); "
            "sys.stdout.flush(); time.sleep(100000)" % lines)
    payload = {"region": "gra-1", "config": {**MACHINE["config"], "workload": {"init": {"cmd": [PY, "-c", code]}}}}
    with sb.client() as c:
        r = c.post(f"/fleets/{fleet}/machines", json=payload)
        r.raise_for_status()
        mid = r.json()["id"]
        wait_for_lines(sb, fleet, mid, lines, timeout=300)
    return mid


def wait_for_lines(sb: Sandbox, fleet: str, mid: str, n: int, timeout: float) -> None:
    """Follow the live log (history first) and count entries until there are n: one stream, no re-fetching."""
    deadline = time.monotonic() + timeout
    count = 0
    with sb.client() as c:
        while time.monotonic() < deadline:
            try:
                with c.stream("GET", f"/fleets/{fleet}/machines/{mid}/logs", params={"follow": "true"},
                              headers={"Accept": "application/x-ndjson"}, timeout=30) as r:
                    count = 0
                    for chunk in r.iter_bytes():
                        count += chunk.count(b"\n")
                        if count >= n:
                            return
            except Exception:  # noqa: BLE001 - a stalled stream: reopen it
                pass
            time.sleep(0.5)
    raise BenchError(f"machine {mid} logged {count} of {n} lines within {timeout:.0f} s")


# -- the cases ---------------------------------------------------------------------------------------------------
# The baselines are what a competent engineer would write to do the same work, with nothing that slows them:
# curl; a stdlib script (urllib, json); the same with httpx, the HTTP library the CLI uses. Each prints what the
# CLI prints (`--json` to a pipe: compact JSON of the parsed answer; logs: the NDJSON body as it comes).
URLLIB_JSON = """\
import json, sys, urllib.request
url, token = sys.argv[1], sys.argv[2]
req = urllib.request.Request(url, headers={"Authorization": "Bearer " + token, "Accept": "application/json"})
with urllib.request.urlopen(req, timeout=60) as r:
    body = json.loads(r.read())
sys.stdout.write(json.dumps(body, ensure_ascii=False, separators=(",", ":")) + "\\n")
"""

HTTPX_JSON = """\
import json, sys, httpx
url, token = sys.argv[1], sys.argv[2]
r = httpx.get(url, headers={"Authorization": "Bearer " + token, "Accept": "application/json"}, timeout=60)
r.raise_for_status()
sys.stdout.write(json.dumps(r.json(), ensure_ascii=False, separators=(",", ":")) + "\\n")
"""

URLLIB_STREAM = """\
import sys, urllib.request
url, token = sys.argv[1], sys.argv[2]
req = urllib.request.Request(url, headers={"Authorization": "Bearer " + token, "Accept": "application/x-ndjson"})
with urllib.request.urlopen(req, timeout=60) as r:
    while chunk := r.read1(1 << 16):
        sys.stdout.buffer.write(chunk)
"""


# The floors: what any CLI built on typer and httpx pays before it does anything, added to the urllib scripts. The
# two libraries are imported as lean as the CLI imports them (api/_http.py: without httpx's own command-line tool,
# which loads click, rich and pygments, and without trio); a plain `import typer, httpx` costs ~30 ms more. Each
# floor ends as the CLI does (valyent_cli/entry.py): stdout flushed, then os._exit, without the interpreter's
# finalization, which any program can skip (~20 ms once typer and httpx are loaded). When a floor alone is above a
# target's ratio, that target is out of reach with these libraries, and the row "valyent vs floor" is the CLI's
# own cost.
TYPER_HTTPX = """\
import sys
for _name in ("httpx._main", "trio"):
    sys.modules[_name] = None
import typer, httpcore, httpx
for _name in ("httpx._main", "trio"):
    del sys.modules[_name]
"""
FAST_EXIT = """\
import os
sys.stdout.flush()
os._exit(0)
"""
# The floors of the JSON cases print as the CLI can: the body decoded (the CLI checks it), then written as it came
# rather than encoded again (the CLI does so for `machines list --json` when the answer is compact on one line).
URLLIB_CHECKED = """\
import json, sys, urllib.request
url, token = sys.argv[1], sys.argv[2]
req = urllib.request.Request(url, headers={"Authorization": "Bearer " + token, "Accept": "application/json"})
with urllib.request.urlopen(req, timeout=60) as r:
    body = r.read()
json.loads(body)
sys.stdout.buffer.write(body.rstrip() + b"\\n")
"""
FLOOR_JSON = TYPER_HTTPX + URLLIB_CHECKED + FAST_EXIT
FLOOR_STREAM = TYPER_HTTPX + URLLIB_STREAM + FAST_EXIT

# The same floors with the GET made through httpx, as a CLI on httpx makes it: one Client, no CA bundle for an
# http:// URL (nothing to verify; the CLI skips it too), the body read by httpx. What typer and httpx cost
# together, with nothing of the CLI's own.
HTTPX_GET_JSON = """\
url, token = sys.argv[1], sys.argv[2]
import json
with httpx.Client(timeout=60, verify=not url.startswith("http://")) as client:
    r = client.get(url, headers={"Authorization": "Bearer " + token, "Accept": "application/json"})
    r.raise_for_status()
    r.json()
sys.stdout.buffer.write(r.content.rstrip() + b"\\n")
"""
HTTPX_GET_STREAM = """\
url, token = sys.argv[1], sys.argv[2]
with httpx.Client(timeout=60, verify=not url.startswith("http://")) as client:
    headers = {"Authorization": "Bearer " + token, "Accept": "application/x-ndjson"}
    with client.stream("GET", url, headers=headers) as r:
        r.raise_for_status()
        for chunk in r.iter_bytes():
            sys.stdout.buffer.write(chunk)
"""
FLOOR_HTTPX_JSON = TYPER_HTTPX + HTTPX_GET_JSON + FAST_EXIT
FLOOR_HTTPX_STREAM = TYPER_HTTPX + HTTPX_GET_STREAM + FAST_EXIT
HTTPX_FLOOR_NAME = "floor, the GET through httpx (typer, httpx)"

# What any Python formatter of the log pays: the body read as the urllib stream reads it, each NDJSON line decoded
# with json.loads and printed as `TIME message` with the stdlib (the time string made once per distinct
# millisecond, as the CLI does), a read's lines written at once, ended by the fast exit. Standard library only.
URLLIB_FORMAT = """\
import json, sys, time, urllib.request
url, token = sys.argv[1], sys.argv[2]
req = urllib.request.Request(url, headers={"Authorization": "Bearer " + token, "Accept": "application/x-ndjson"})
out, loads, last, stamp, rest = sys.stdout.buffer, json.loads, None, "", b""
with urllib.request.urlopen(req, timeout=60) as r:
    while chunk := r.read1(1 << 16):
        *lines, rest = (rest + chunk).split(b"\\n")
        text = []
        for line in lines:
            entry = loads(line)
            ms = entry["timestamp"]
            if ms != last:
                last, stamp = ms, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"
            text.append(f"{stamp} {entry['message']}\\n")
        out.write("".join(text).encode())
""" + FAST_EXIT


def curl(url: str, token: str, accept: str = "application/json") -> list[str]:
    exe = shutil.which("curl")
    if exe is None:
        raise BenchError("no curl on this machine")
    return [exe, "-sSf", "-H", f"Authorization: Bearer {token}", "-H", f"Accept: {accept}", url]


def floor_rows(ctx: Ctx, case: str, cmd: list[str], floor: list[str], baseline: list[str], baseline_name: str,
               target: float, env: dict[str, str], base_env: dict[str, str], runs: int, *, stdout: str = "devnull",
               floor_name: str = "floor (urllib + typer, httpx)") -> None:
    """Two rows: the floor against the target's baseline (above the target's ratio: out of reach with what the
    floor holds), and the CLI against the floor (its own cost)."""
    f, b = alternate(floor, baseline, env, runs, stdout=stdout, b_env=base_env)
    ctx.results.add(ratio_row(f"{case}: {floor_name}  vs  {baseline_name}", f, b, None,
                              note=f"the target is <= {target} of the {baseline_name}; "
                                   f"{'out of reach: the floor alone is above it' if median(f) / median(b) > target else 'the floor is within it'}"))
    a, f2 = alternate(cmd, floor, env, runs, stdout=stdout, b_env=base_env)
    ctx.results.add(ratio_row(f"{case}  vs  {floor_name}", a, f2, None))


def clean_venv(root: Path) -> Path | None:
    """A fresh venv (no system site-packages) with this checkout installed the README's way (`pip install .`, not
    editable: an editable install adds a finder that every interpreter start of the venv imports, and that the
    fast exit then skips tearing down while a baseline pays for it). None when it cannot be made here."""
    venv = root / "clean-venv"
    py = venv / "bin" / "python"
    try:
        subprocess.run([PY, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
        subprocess.run([str(py), "-m", "pip", "install", "-q", str(REPO)], check=True, capture_output=True,
                       timeout=900, cwd=str(root))
    except (subprocess.SubprocessError, OSError) as exc:
        print(f"  (no clean venv: {exc}; start-up measured with {PY})", flush=True)
        return None
    return venv


def case_startup(ctx: Ctx) -> None:
    venv = clean_venv(ctx.root)
    if venv is not None:  # valyent and its baseline, both from the clean venv (no PYTHONPATH to this checkout)
        py, valyent = str(venv / "bin" / "python"), [str(venv / "bin" / "valyent")]
        env = base_env = clean_env(ctx.root)
        where = f"clean venv, pip install . ({venv})"
    else:
        py, valyent = PY, ctx.valyent
        env, base_env = clean_env(ctx.root, REPO), clean_env(ctx.root)
        where = f"this interpreter ({venv_state()})"
    runs = ctx.runs * 2 + 1  # cheap, and the most sensitive to a busy machine: more runs
    a, b = alternate(valyent + ["--version"], [py, "-c", "pass"], env, runs, b_env=base_env)
    ctx.results.add(ratio_row("valyent --version  vs  python -c pass", a, b, 1.3, note=where))
    # The floor: the console script pip writes for any package starts with `import re, sys` (to tidy argv[0])
    # before it imports the package's entry point.
    f, b = alternate([py, "-c", "import re, sys"], [py, "-c", "pass"], env, runs, b_env=base_env)
    ctx.results.add(ratio_row("floor: python -c 'import re, sys' (pip's console script)  vs  python -c pass", f, b,
                              None, note="above 1.3: out of reach for any console script pip installs"
                              if median(f) / median(b) > 1.3 else "within 1.3"))
    a, b = alternate(valyent + ["--help"], [py, "-c", "import typer"], env, runs, b_env=base_env)
    ctx.results.add(ratio_row("valyent --help  vs  python -c 'import typer'", a, b, 1.6, note=where))


def _install_node_sdk(node: str | None) -> str | None:
    """Install the official SDK from benchmarks/node's lock file when it is not there yet; return why not, if not."""
    if node is None:
        return "no node on this machine"
    if (NODE_DIR / "node_modules" / "valyent.ts").exists():
        return None
    npm = shutil.which("npm")
    if npm is None:
        return "no npm to install the Node SDK with"
    print("installing the Node SDK baseline (npm ci in benchmarks/node)...", flush=True)
    try:
        done = subprocess.run([npm, "ci", "--silent", "--no-audit", "--no-fund"], cwd=NODE_DIR,
                              capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return "npm ci timed out"
    if done.returncode != 0 or not (NODE_DIR / "node_modules" / "valyent.ts").exists():
        return f"npm ci failed: {(done.stderr or done.stdout).strip()[-200:]}"
    return None


def case_fleets(ctx: Ctx) -> None:
    env = ctx.sb.env(ctx.root)
    base_env = ctx.sb.env(ctx.root, code=None)
    url, token = f"{ctx.sb.api}/fleets", ctx.sb.token
    cmd = ctx.valyent + ["fleets", "list", "--json"]
    runs = ctx.runs * 2 + 1
    a, b = alternate(cmd, [PY, "-c", URLLIB_JSON, url, token], env, runs, b_env=base_env)
    ctx.results.add(ratio_row("fleets list --json  vs  urllib+json script", a, b, 2.2))
    floor_rows(ctx, "fleets list --json", cmd, [PY, "-c", FLOOR_JSON, url, token],
               [PY, "-c", URLLIB_JSON, url, token], "urllib+json script", 2.2, env, base_env, runs)
    a, b = alternate(cmd, [PY, "-c", HTTPX_JSON, url, token], env, runs, b_env=base_env)
    ctx.results.add(ratio_row("fleets list --json  vs  httpx+json script", a, b, None))
    a, b = alternate(cmd, curl(url, token), env, runs, b_env=base_env)
    ctx.results.add(ratio_row("fleets list --json  vs  curl", a, b, None))
    node = shutil.which("node")
    why_not = _install_node_sdk(node)
    if why_not is not None:
        ctx.results.add(Row("fleets list --json  vs  Node SDK", "-", "-", None, "<= 1.0", None,
                            note=f"skipped: {why_not}"))
        return
    a, b = alternate(cmd, [node, str(NODE_DIR / "fleets.mjs")], env, runs, b_env=base_env)
    ctx.results.add(ratio_row("fleets list --json  vs  Node SDK (valyent.ts)", a, b, 1.0))


def case_machines(ctx: Ctx) -> None:
    n = ctx.big_fleet
    fleet = create_fleet(ctx.sb, "bench-list")
    t = time.perf_counter()
    ids, _, errors = create_machines(ctx.sb, fleet, n, skip_start=True)
    if errors:
        raise BenchError(f"{errors} of {n} machine creations failed")
    ctx.results.notes.append(f"machines: {n} machines created (skip_start) in {time.perf_counter() - t:.1f} s")
    ctx.list_fleet = fleet
    env = ctx.sb.env(ctx.root, fleet)
    base_env = ctx.sb.env(ctx.root, fleet, code=None)
    url = f"{ctx.sb.api}/fleets/{fleet}/machines"
    cmd = ctx.valyent + ["machines", "list", "--json"]
    # The baseline does what the CLI does: it checks the body with json.loads and writes it as it came (the
    # urllib+json script, which encodes it again, flatters the CLI: shown below, without a target).
    js, bl = alternate(cmd, [PY, "-c", URLLIB_CHECKED, url, ctx.sb.token], env, ctx.runs, b_env=base_env)
    ctx.results.add(ratio_row(f"machines list --json ({n})  vs  urllib pass-through (json.loads, body as it came)",
                              js, bl, 1.3))
    js, bl = alternate(cmd, [PY, "-c", URLLIB_JSON, url, ctx.sb.token], env, ctx.runs, b_env=base_env)
    ctx.results.add(ratio_row(f"machines list --json ({n})  vs  urllib+json script (re-encodes)", js, bl, None))
    floor_rows(ctx, f"machines list --json ({n})", cmd, [PY, "-c", FLOOR_JSON, url, ctx.sb.token],
               [PY, "-c", URLLIB_CHECKED, url, ctx.sb.token], "urllib pass-through", 1.3, env, base_env, ctx.runs)
    floor_rows(ctx, f"machines list --json ({n})", cmd, [PY, "-c", FLOOR_HTTPX_JSON, url, ctx.sb.token],
               [PY, "-c", URLLIB_CHECKED, url, ctx.sb.token], "urllib pass-through", 1.3, env, base_env, ctx.runs,
               floor_name=HTTPX_FLOOR_NAME)
    js, bl = alternate(cmd, [PY, "-c", HTTPX_JSON, url, ctx.sb.token], env, ctx.runs, b_env=base_env)
    ctx.results.add(ratio_row(f"machines list --json ({n})  vs  httpx+json script", js, bl, None))
    js, bl = alternate(cmd, curl(url, ctx.sb.token), env, ctx.runs, b_env=base_env)
    ctx.results.add(ratio_row(f"machines list --json ({n})  vs  curl", js, bl, None))
    table, js2 = alternate(ctx.valyent + ["machines", "list"], cmd, env, ctx.runs, stdout="pipe", warmup=False)
    lines = table[0].out_bytes
    ctx.results.add(ratio_row(f"machines list, table to a pipe ({n})  vs  its --json run", table, js2, 2.5,
                              note=f"table output {lines / 1024:.0f} KiB"))


def case_logs(ctx: Ctx) -> None:
    fleet = create_fleet(ctx.sb, "bench-logs")
    big, small = ctx.log_lines, ctx.log_lines // 4
    t = time.perf_counter()
    mid_big = log_machine(ctx.sb, fleet, big)
    mid_small = log_machine(ctx.sb, fleet, small)
    ctx.results.notes.append(f"logs: {big} + {small} log lines produced and stored in {time.perf_counter() - t:.1f} s")
    ctx.log_fleet, ctx.log_machine = fleet, mid_big
    env = ctx.sb.env(ctx.root, fleet)
    base_env = ctx.sb.env(ctx.root, fleet, code=None)
    url = f"{ctx.sb.api}/fleets/{fleet}/machines/{mid_big}/logs"
    stream = [PY, "-c", URLLIB_STREAM, url, ctx.sb.token]
    js, bl = alternate(ctx.valyent + ["logs", mid_big, "--json"], stream, env, ctx.runs, b_env=base_env)
    ctx.results.add(ratio_row(f"logs M --json > /dev/null ({big} lines)  vs  urllib stream", js, bl, 1.15))
    floor_rows(ctx, f"logs M --json > /dev/null ({big} lines)", ctx.valyent + ["logs", mid_big, "--json"],
               [PY, "-c", FLOOR_STREAM, url, ctx.sb.token], stream, "urllib stream", 1.15, env, base_env, ctx.runs)
    floor_rows(ctx, f"logs M --json > /dev/null ({big} lines)", ctx.valyent + ["logs", mid_big, "--json"],
               [PY, "-c", FLOOR_HTTPX_STREAM, url, ctx.sb.token], stream, "urllib stream", 1.15, env, base_env,
               ctx.runs, floor_name=HTTPX_FLOOR_NAME)
    plain, bl2 = alternate(ctx.valyent + ["logs", mid_big], stream, env, ctx.runs, stdout="pipe", warmup=False,
                           b_env=base_env)
    ctx.results.add(ratio_row(f"logs M, plain lines to a pipe ({big} lines)  vs  urllib stream", plain, bl2, 1.5))
    formatter = [PY, "-c", URLLIB_FORMAT, url, ctx.sb.token]
    floor_rows(ctx, f"logs M, plain lines to a pipe ({big} lines)", ctx.valyent + ["logs", mid_big], formatter,
               stream, "urllib stream", 1.5, env, base_env, ctx.runs, stdout="pipe",
               floor_name="json.loads + strftime formatter")
    plain2, cu = alternate(ctx.valyent + ["logs", mid_big], curl(url, ctx.sb.token, "application/x-ndjson"), env,
                           ctx.runs, stdout="pipe", warmup=False, b_env=base_env)
    ctx.results.add(ratio_row(f"logs M, plain lines to a pipe ({big} lines)  vs  curl", plain2, cu, None))
    small_runs, _ = alternate(ctx.valyent + ["logs", mid_small], None, env, max(3, ctx.runs // 2), stdout="pipe")
    peak_big = max(peak_mb(js), peak_mb(plain))
    peak_small = peak_mb(small_runs)
    flat = peak_big <= peak_small * 1.15 + 2
    ctx.results.add(Row(f"logs peak RSS, {small} vs {big} lines", f"{peak_big:.0f} MB", f"{peak_small:.0f} MB",
                        peak_big / peak_small, "< 80 MB, flat", peak_big < 80 and flat,
                        f"{peak_big:.0f} / {peak_small:.0f} MB", note="valyent column: the big log; baseline column: the small one"))


def export_commit(rev: str, into: Path) -> Path:
    """valyent_cli as it was at `rev` (git archive), for a reference sandbox; returns the directory to import from."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "valyent_cli"], capture_output=True)
    if archive.returncode != 0:
        raise BenchError(f"git archive {rev}: {archive.stderr.decode(errors='replace').strip()}")
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    compile_package(into.parent, into)
    return into


def case_serve(ctx: Ctx) -> None:
    """The sandbox's own time to serve a big list and a big log, measured with curl (its client cost is ~nil).

    With --reference REV, a second sandbox runs the valyent_cli of that commit on a copy of the same database,
    and the two are measured in pairs: the ratio is this checkout's time over the reference's."""
    if ctx.list_fleet is None or ctx.log_machine is None:
        raise BenchError("needs the machines and logs cases (their data)")
    token = ctx.sb.token
    targets = [(f"list of {ctx.big_fleet} machines", f"/fleets/{ctx.list_fleet}/machines", "application/json"),
               (f"{ctx.log_lines} log lines (NDJSON)", f"/fleets/{ctx.log_fleet}/machines/{ctx.log_machine}/logs",
                "application/x-ndjson")]
    env = ctx.sb.env(ctx.root, code=None)
    ref = None
    if ctx.reference:
        code = export_commit(ctx.reference, ctx.root / "reference-code" / "src")
        ref = Sandbox(ctx.root, code, name="reference-data")
        ref.data.mkdir(parents=True)
        import sqlite3

        src = sqlite3.connect(str(ctx.sb.data / "state.db"))
        dst = sqlite3.connect(str(ref.data / "state.db"))
        src.backup(dst)
        src.close()
        dst.close()
        (ref.data / "token").write_text(token)
        os.chmod(ref.data / "token", 0o600)
        ref.start()
        time.sleep(1.0)
    try:
        for what, path, accept in targets:
            ours = curl(f"{ctx.sb.api}{path}", token, accept)
            if ref is None:
                a, _ = alternate(ours, None, env, ctx.runs)
                ctx.results.add(Row(f"sandbox serves {what} (curl)", ms(median(a)), "-", None, "-", None,
                                    note="give --reference REV for the ratio against another commit's server"))
                continue
            theirs = curl(f"{ref.api}{path}", ref.token, accept)
            a, b = alternate(ours, theirs, env, ctx.runs)
            ctx.results.add(ratio_row(f"sandbox serves {what} (curl)  vs  the server of {ctx.reference}", a, b, 0.5))
    finally:
        if ref is not None:
            ref.stop()


TICKER = "import time\nwhile True:\n    print(f'tick {time.time():.6f}', flush=True)\n    time.sleep(0.2)\n"


def case_follow(ctx: Ctx) -> None:
    fleet = create_fleet(ctx.sb, "bench-follow")
    payload = {"region": "gra-1", "config": {**MACHINE["config"], "workload": {"init": {"cmd": [PY, "-u", "-c", TICKER]}}}}
    with ctx.sb.client() as c:
        r = c.post(f"/fleets/{fleet}/machines", json=payload)
        r.raise_for_status()
        mid = r.json()["id"]
    time.sleep(1.0)  # some history, which the follower prints first and we do not count
    env = ctx.sb.env(ctx.root, fleet)
    want = ctx.follow_lines
    proc = subprocess.Popen(ctx.valyent + ["logs", mid, "-f"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=env, bufsize=0)
    lat: list[float] = []
    started = time.time()
    try:
        for raw in iter(proc.stdout.readline, b""):  # type: ignore[union-attr]
            now = time.time()
            parts = raw.split()
            if len(parts) < 3 or parts[-2] != b"tick":
                continue
            ts = float(parts[-1])
            if ts < started + 0.5:  # history and the follower's own start-up
                continue
            lat.append(now - ts)
            if len(lat) >= want:
                break
            if time.time() - started > 60:
                break
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        with ctx.sb.client() as c:
            c.delete(f"/fleets/{fleet}/machines/{mid}", params={"force": "true"})
    if len(lat) < want:
        err = proc.stderr.read().decode(errors="replace")[-800:]  # type: ignore[union-attr]
        raise BenchError(f"logs -f printed {len(lat)} of {want} live lines: {err}")
    med = statistics.median(lat)
    p95 = sorted(lat)[int(0.95 * (len(lat) - 1))]
    ctx.results.add(Row(f"logs -f latency, machine write -> follower stdout ({len(lat)} lines)", ms(med), "-", None,
                        "< 100 ms", med < 0.100, note=f"p95 {ms(p95)}, max {ms(max(lat))}"))


def case_sandbox(ctx: Ctx) -> None:
    fleet = create_fleet(ctx.sb, "bench-concurrency")
    clients, per = 8, ctx.sandbox_per_client
    t = time.perf_counter()
    ids, lat, errors = create_machines(ctx.sb, fleet, clients * per, skip_start=False, threads=clients)
    create_wall = time.perf_counter() - t

    import httpx

    def delete(mid: str) -> tuple[bool, float]:
        t0 = time.perf_counter()
        try:
            with ctx.sb.client() as c:
                r = c.delete(f"/fleets/{fleet}/machines/{mid}", params={"force": "true"})
            return r.status_code in (200, 202, 204), time.perf_counter() - t0
        except httpx.HTTPError:
            return False, time.perf_counter() - t0

    t = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        dels = list(pool.map(delete, ids))
    delete_wall = time.perf_counter() - t
    del_errors = sum(1 for ok, _ in dels if not ok)
    dlat = [d for _, d in dels]

    def pct(xs: list[float], p: float) -> float:
        return sorted(xs)[int(p * (len(xs) - 1))]

    total = clients * per
    ctx.results.add(Row(f"sandbox: {clients} clients x {per} creates (started, idle)", f"p50 {ms(statistics.median(lat))}",
                        f"p95 {ms(pct(lat, 0.95))}", None, "0 errors", errors == 0,
                        note=f"{errors} errors; {total} machines in {create_wall:.1f} s ({total / create_wall:.0f}/s)"))
    ctx.results.add(Row(f"sandbox: force-delete those {len(ids)}, {clients} at a time", f"p50 {ms(statistics.median(dlat)) if dlat else '-'}",
                        f"p95 {ms(pct(dlat, 0.95)) if dlat else '-'}", None, "0 errors", del_errors == 0,
                        note=f"{del_errors} errors; {delete_wall:.1f} s"))


@dataclass
class Ctx:
    root: Path
    sb: Sandbox | None
    results: Results
    valyent: list[str]
    runs: int
    big_fleet: int
    log_lines: int
    follow_lines: int
    sandbox_per_client: int
    reference: str | None = None
    list_fleet: str | None = None
    log_fleet: str | None = None
    log_machine: str | None = None


def case_gateway(ctx: Ctx) -> None:
    import gateway  # benchmarks/gateway.py: the sandbox as a server (issue 26)

    gateway.case_gateway_process(ctx)
    gateway.case_gateway_podman(ctx)  # and `machines run` vs `podman run`, create latency on podman


def case_create(ctx: Ctx) -> None:
    import gateway

    gateway.case_create(ctx)


def case_sandbox8(ctx: Ctx) -> None:
    import gateway

    gateway.case_sandbox8(ctx)


def case_run(ctx: Ctx) -> None:
    import gateway

    gateway.case_run(ctx)  # `machines run` vs `podman run` alone (gateway runs it too), with its floor rows


RUNNERS = {"startup": case_startup, "fleets": case_fleets, "machines": case_machines, "logs": case_logs,
           "serve": case_serve,
           "follow": case_follow, "sandbox": case_sandbox, "gateway": case_gateway, "create": case_create,
           "sandbox8": case_sandbox8, "run": case_run}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 3 runs, smaller data")
    parser.add_argument("--only", action="append", choices=CASES, help="run only this case (repeatable)")
    parser.add_argument("--runs", type=int, help="runs of each command and of its baseline (default 7, quick 3)")
    parser.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    parser.add_argument("--reference", metavar="REV",
                        help="serve case: also run the sandbox of this git commit on a copy of the data, and give "
                             "the ratio of this checkout's serving time to it (target <= 0.5)")
    args = parser.parse_args()
    cases = args.only or list(CASES)
    if "serve" in cases:  # it measures the data of these two
        cases = list(dict.fromkeys([*[c for c in cases if c != "serve"], "machines", "logs", "serve"]))
    runs = args.runs or (3 if args.quick else 7)
    print(machine_info(), flush=True)
    root = Path(tempfile.mkdtemp(prefix="valyent-bench-"))
    results = Results()
    compile_package(root)
    sb = None
    try:
        ctx = Ctx(root=root, sb=None, results=results, valyent=valyent_argv(), runs=runs,
                  big_fleet=500 if args.quick else 5000, log_lines=20_000 if args.quick else 200_000,
                  follow_lines=10 if args.quick else 25, sandbox_per_client=10 if args.quick else 50,
                  reference=args.reference)
        print(f"valyent: {' '.join(ctx.valyent)}; {runs} runs of each, alternating with the baseline", flush=True)
        # Start-up first, before the sandbox exists: its own start-up would compete for the CPU.
        for case in sorted(cases, key=lambda c: (c != "startup", c == "serve")):
            if case != "startup" and sb is None:
                sb = ctx.sb = Sandbox(root)
                sb.start()
                print(f"sandbox on {sb.api} (data in {sb.data})", flush=True)
                time.sleep(1.0)
            print(f"[{case}]", flush=True)
            try:
                RUNNERS[case](ctx)
            except BenchError as exc:
                results.add(Row(case, "-", "-", None, "-", None, note=f"could not run: {exc}"))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        if sb is not None:
            sb.stop()
        shutil.rmtree(root, ignore_errors=True)
    print_table(results, markdown=args.markdown)
    print(f"\n{machine_info()}")
    # Misses are reported, not fatal; a case that could not run at all is.
    return 2 if any(r.note.startswith("could not run") for r in results.rows) else 0


if __name__ == "__main__":
    sys.exit(main())
