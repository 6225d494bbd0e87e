"""Learning, split as rsl_rl splits it: algorithms that take batches (``sac``, ``distill``), storage
(``replay``), the runner that owns the loop (``off_policy_runner``) against the ``vec_env`` protocol,
checkpoint files (``checkpoint``) and Ray groups over any function (``distributed``)."""
