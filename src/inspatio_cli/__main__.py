"""``python -m inspatio_cli`` and the ``inspatio`` script: run the command-line interface."""

import sys


def run() -> None:
    """Load the CLI and run it. Ctrl-C outside :func:`cli.main`'s own handlers (while the CLI loads, the
    first second or two, or in the instants before they are installed and after they are restored) ends
    with exit 130 and one line, not a traceback; once the command is done, a late SIGINT or SIGTERM is
    ignored while the process exits (its outputs are complete)."""
    try:
        from .cli import main

        main(restore_handlers=False)
    except KeyboardInterrupt:
        print("error: interrupted by SIGINT", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    run()
