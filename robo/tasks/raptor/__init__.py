"""RAPTOR: a quadrotor foundation policy distilled from many SAC teachers by meta-imitation.

``teachers`` trains the teacher fleet (batched SAC, optionally spread by Ray: ``robo.rl.distributed``),
``pipeline`` runs fleet -> teachers -> student -> evaluation -> export, ``evaluation`` measures any
controller on the RAPTOR episodes (recovery from random states, figure-eights).
"""
