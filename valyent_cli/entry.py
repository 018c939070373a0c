"""The `valyent` program's entry point: answers what needs no command tree before loading one.

`valyent --version` and a completion script's request for values are answered here, before typer is imported
(a completion has a budget of a few hundred milliseconds; scripts call `--version` in loops). Everything else goes
to :func:`valyent_cli.main.main`.
"""

import os
import sys


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args in (["--version"], ["-V"]):
        from valyent_cli import __version__

        sys.stdout.write(f"valyent {__version__}\n")
        sys.stdout.flush()
        sys.exit(0)
    if os.environ.get("_VALYENT_COMPLETE_VALUES"):
        from valyent_cli.cli import complete

        complete.serve_if_asked()
    from valyent_cli.main import main as run

    run(argv)


if __name__ == "__main__":  # pragma: no cover
    main()
