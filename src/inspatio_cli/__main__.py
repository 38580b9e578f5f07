"""``python -m inspatio_cli`` and the ``inspatio`` script: run the command-line interface."""

import sys


def run() -> None:
    """Load the CLI and run it. Ctrl-C while it loads (the first second or two, before :func:`cli.main`
    installs its signal handlers) ends with exit 130 and one line, not a traceback from the imports."""
    try:
        from .cli import main
    except KeyboardInterrupt:
        print("error: interrupted by SIGINT", file=sys.stderr)
        sys.exit(130)
    main()


if __name__ == "__main__":
    run()
