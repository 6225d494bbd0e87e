"""Physics and tasks only: batched torch dynamics, MuJoCo models, references, scenarios.

This package never imports ``robo``.
"""
