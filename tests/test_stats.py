"""robo.stats: the exact paired test that every evaluation and bench uses."""

from __future__ import annotations

import pytest

from robo.stats import main, mcnemar_exact_p, paired, unpaired_bound_p


def test_the_paired_test_is_exact_mcnemar():
    # round 5's splits (robo/policies/resip_peg_2mm/eval.json, computed then by scipy's binomtest)
    assert mcnemar_exact_p(59, 42) == pytest.approx(0.1109, abs=1e-4)
    assert mcnemar_exact_p(111, 90) == pytest.approx(0.1582, abs=1e-4)
    assert mcnemar_exact_p(3, 10) == mcnemar_exact_p(10, 3) == pytest.approx(2 * 378 / 8192)
    assert mcnemar_exact_p(0, 0) == mcnemar_exact_p(4, 4) == 1.0


def test_paired_counts_only_the_discordant_episodes():
    only_a, only_b, p = paired([1, 1, 0, 0, 1], [1, 0, 1, 0, 0])
    assert (only_a, only_b) == (2, 1)
    assert p == mcnemar_exact_p(2, 1)
    with pytest.raises(ValueError, match="differ in length: 2 against 3"):
        paired([1, 0], [1, 0, 1])


def test_the_unpaired_bound_is_the_worst_overlap():
    # 100 of 100 against 34: every overlap is forced, so the bound is the paired p itself
    assert unpaired_bound_p(100, 34, 100) == mcnemar_exact_p(66, 0)
    # 3 and 1 of 10 could overlap in 0 or 1 episodes: (3, 1) is the less telling split
    assert unpaired_bound_p(3, 1, 10) == max(mcnemar_exact_p(3, 1), mcnemar_exact_p(2, 0))
    assert unpaired_bound_p(91, 92, 100) == 1.0
    with pytest.raises(ValueError, match=r"must lie in \[0, 100\]"):
        unpaired_bound_p(101, 0, 100)


def test_the_command_gives_the_paired_p_or_the_unpaired_bound(capsys):
    main(["--discordant", "9", "3"])
    out = capsys.readouterr().out.strip()
    assert out == f"only A 9, only B 3: exact McNemar p {mcnemar_exact_p(9, 3):.2g}"
    main(["191", "159", "200"])
    assert capsys.readouterr().out.strip().endswith(f"p at most {unpaired_bound_p(191, 159, 200):.2g}")
    for bad, message in ((["--discordant", "9"], "expected ONLY_A ONLY_B, got 1"),
                         (["9", "3"], "expected WON_A WON_B EPISODES, got 2"),
                         (["--discordant", "-1", "3"], "must be >= 0"),
                         (["101", "3", "100"], r"must lie in [0, 100]")):
        with pytest.raises(SystemExit) as ended:
            main(bad)
        assert ended.value.code == 2 and message in capsys.readouterr().err
