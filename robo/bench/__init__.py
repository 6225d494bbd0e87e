"""Benchmarks behind ``robo bench <name>``.

Each module here (other than ``common``, and ``_private`` parts of one) is one benchmark with ``HELP``,
``add_arguments(parser)`` and ``run(args) -> dict``. A benchmark measures its baseline in the same run,
prints ratios against it, and returns a JSON-able dict that ``robo bench`` writes to ``--json``.
"""
