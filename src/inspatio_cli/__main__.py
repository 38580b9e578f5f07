"""``python -m inspatio_cli`` and the ``inspatio`` script: run the command-line interface."""

import sys


def run() -> None:
    """Load the CLI and run it. Ctrl-C outside :func:`cli.main`'s own handlers (while the CLI loads, the
    first second or two, or in the instants before they are installed and after they are restored) ends
    with exit 130 and one line, not a traceback."""
    try:
        from .cli import main

        main()
    except KeyboardInterrupt:
        print("error: interrupted by SIGINT", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    run()
