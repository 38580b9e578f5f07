"""Run the ``inspatio`` command line in-process, as the tests of every command do."""

from __future__ import annotations

import pytest

from inspatio_cli.cli import main


def run(capsys: pytest.CaptureFixture, *args: object) -> tuple[int, str, str]:
    """``inspatio *args`` (paths and numbers are turned into strings); returns (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err
