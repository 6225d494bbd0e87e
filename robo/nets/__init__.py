"""Network modules. Policies that get exported live in :mod:`robo.nets.policy`."""
