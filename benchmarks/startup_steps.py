#!/usr/bin/env python3
"""Where the time of `valyent fleets list --json` goes, step by step (benchmarks/README.md, the missed targets).

    VALYENT_API_URL=http://127.0.0.1:PORT/v1 VALYENT_API_TOKEN=... python benchmarks/startup_steps.py [RUNS]

Runs each step as `valyent_cli.main.main()` does it, in a fresh interpreter per run (RUNS, default 9), timed with
`perf_counter`, against the sandbox (or API) of the environment; prints the median of each step as a Markdown
table. The same GET with urllib is timed beside the client's, for comparison. Bytecode as installed: run
`python -m compileall valyent_cli` first.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

STEPS = r'''
import os, sys, time
marks = []
start = time.perf_counter()
def mark(what): marks.append((what, time.perf_counter()))
import typer; mark("import typer")
import valyent_cli.api._http; mark("import httpx (+ httpcore, h11, anyio, idna, urllib.request, email), lean")
import valyent_cli.main as vm; mark("import valyent_cli.main (+ cli.complete, cli.fastparams, cli.exits)")
args = ["fleets", "list", "--json"]
vm.fastparams.install(); vm.helpstyle.install(); mark("fastparams / helpstyle install")
app = vm._one_command(args); mark("_one_command: import commands.fleets, the group with `list` only")
command = typer.main.get_command(app); mark("typer builds the root and `fleets list` (get_command)")
ctx = command.make_context("valyent", list(args)); mark("typer parses the line (make_context)")
import valyent_cli.cli.context, valyent_cli.cli.output, valyent_cli.config, valyent_cli.cli.signals, valyent_cli.cli.errors
mark("import cli.context, cli.output, config, cli.signals, cli.errors")
import valyent_cli.api.client, valyent_cli.api.fleets; mark("import api.client, _transport, _deadline, errors, fleets")
from valyent_cli.cli.context import AppContext
app_ = AppContext(profile=None, endpoint=None, namespace=None, allow_http=None, debug=False, no_color=False)
settings = app_.settings; mark("settings (environment, config file, project file)")
client = app_.connect(); mark("the client: httpx.Client, the deadline hooks")
fleets = client.fleets.list(); mark("GET /fleets through the client, answer checked")
import json, urllib.request
request = urllib.request.Request(client.url("fleets"), headers={"Authorization": "Bearer " + (settings.token or "")})
with urllib.request.urlopen(request) as answer:
    json.loads(answer.read())
mark("(the same GET with urllib, for comparison)")
sys.stdout = open(os.devnull, "w")
app_.output(json=True).data(fleets); mark("print the JSON")
previous = start
for what, at in marks:
    sys.stderr.write(f"{what}\t{(at - previous) * 1000:.3f}\n")
    previous = at
'''


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 9
    if not os.environ.get("VALYENT_API_URL"):
        print("set VALYENT_API_URL and VALYENT_API_TOKEN (a sandbox: valyent local serve)", file=sys.stderr)
        return 2
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                                     os.environ.get("PYTHONPATH")])))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    times: dict[str, list[float]] = {}
    for _ in range(runs):
        done = subprocess.run([sys.executable, "-c", STEPS], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stderr[-2000:], file=sys.stderr)
            return 1
        for line in done.stderr.splitlines():
            what, ms = line.rsplit("\t", 1)
            times.setdefault(what, []).append(float(ms))
    print(f"| step of `valyent fleets list --json` (median of {runs}) | ms |\n|---|---|")
    for what, values in times.items():
        print(f"| {what} | {statistics.median(values):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
