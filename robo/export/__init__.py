"""ONNX export (:mod:`robo.export.onnx_export`, needs torch) and the policy card
(:mod:`robo.export.card`, standard library only, for every consumer)."""
