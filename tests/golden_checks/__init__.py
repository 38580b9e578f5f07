"""Per-component golden checks. ``tests/test_golden.py`` imports ``golden_checks.<component>`` for each
golden file (the file's ``component`` metadata) and calls its ``check(case)``; a component without a
module here is reported as skipped, never as passed."""
