"""`valyent completion SHELL`: print the shell completion script, for `eval`/`source` or packaging."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

HELP = """Print the completion script for bash, zsh or fish.

Commands, options and fixed choices are built into the script; fleet names, machine ids (with their state and
image), gateway names and profiles come from the API through the active profile, cached for a few seconds.
Packages install the same scripts from the repository's completions/ directory.

Examples:

  eval "$(valyent completion bash)"            # in ~/.bashrc

  valyent completion zsh > "${fpath[1]}/_valyent"

  valyent completion fish > ~/.config/fish/completions/valyent.fish
"""

app = typer.Typer(
    name="completion",
    help=HELP,
    invoke_without_command=True,
    no_args_is_help=True,
    subcommand_metavar="",
)


class Shell(str, Enum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


@app.callback()
def completion(shell: Annotated[Shell, typer.Argument(metavar="SHELL", help="bash, zsh or fish.", show_default=False)]) -> None:
    # The help is HELP, on the Typer app: Typer shows it for the group this callback makes.
    from valyent_cli.cli.completion_scripts import completion_script

    from valyent_cli.cli.output import Output

    Output().raw_stdout(completion_script(shell.value))
