"""The watchdog's failsafe and re-entry rule (robo/runtime/watchdog.py), pure Python, fed as a 100 Hz
control loop would feed it."""

import math

import numpy as np
import pytest

from robo.runtime import VehicleState
from robo.runtime.watchdog import DESCEND, HOLD, MOTORS_OFF, OK, WAITING, Watchdog, WatchdogConfig

DT = 0.01


def state(tilt_deg: float = 0.0, rate: float = 0.0, z: float = 1.0) -> VehicleState:
    half = math.radians(tilt_deg) / 2
    return VehicleState(np.array([0.0, 0.0, z]), np.array([math.cos(half), math.sin(half), 0.0, 0.0]),
                        np.zeros(3), np.array([rate, 0.0, 0.0]))


def fly(wd: Watchdog, t0: float, seconds: float, s: VehicleState | None = None, odometry: bool = True):
    """Odometry (unless ``odometry`` is False: a stall) and a check every period; the verdicts."""
    out = []
    for k in range(round(seconds / DT)):
        t = t0 + k * DT
        if odometry:
            wd.odometry(t, s or state())
        out.append(wd.check(t, 0.0))
    return out


def test_waiting_until_the_first_odometry_then_ok():
    wd = Watchdog()
    assert wd.check(0.0, 0.0).mode == WAITING
    assert [v.mode for v in fly(wd, 0.0, 0.1)] == [OK] * 10


def test_the_loop_arms_only_once_fresh_odometry_and_setpoints_flow():
    # A launch starts every node at once: the policy may see odometry long before any setpoint, and on
    # a starved machine its own loop may stall meanwhile. Unarmed, none of that is a fault.
    wd = Watchdog(WatchdogConfig(state_timeout=0.1, hold_timeout=1.0, descent_timeout=0.5))
    for k in range(300):  # 3 s of odometry, no setpoint: longer than hold_timeout
        wd.odometry(k * DT, state())
        v = wd.check(k * DT, math.inf)
        assert v.mode == WAITING and "setpoints to flow" in v.reason, v
    assert wd.check(3.5, math.inf).mode == WAITING  # a 0.5 s stall, unarmed: no descent
    bad = state()
    bad.position[0] = math.nan
    wd.odometry(3.51, bad)
    assert "fresh, finite odometry" in wd.check(3.51, 0.0).reason  # a setpoint, but no usable state
    wd.odometry(3.52, state())
    v = wd.check(3.52, 0.0)
    assert v.mode == OK and not v.reset_policy
    # Armed: a stale setpoint now holds, and stale odometry descends.
    wd.odometry(3.53, state())
    assert wd.check(3.53, 0.6).mode == HOLD
    assert wd.check(3.8, 0.0).mode == DESCEND


def test_a_stall_descends_level_then_reenters_after_fresh_messages_with_a_policy_reset():
    wd = Watchdog(WatchdogConfig(state_timeout=0.1, reentry_messages=5))
    fly(wd, 0.0, 1.0)
    stalled = fly(wd, 1.0, 0.3, odometry=False)
    first = next(i for i, v in enumerate(stalled) if v.mode != OK)
    assert stalled[first].descent and "stale odometry" in stalled[first].reason
    assert all(v.mode == DESCEND and v.descent for v in stalled[first:])
    back = fly(wd, 1.3, 0.1)
    # The recurrent state is stale: four fresh messages are not enough, the fifth is.
    assert [v.mode for v in back[:4]] == [DESCEND] * 4 and "re-entry 4/5" in back[3].reason
    assert back[4].mode == OK and back[4].reset_policy
    assert not any(v.reset_policy for v in back[5:])


def test_alternating_stalls_never_fly_the_stale_policy_and_end_in_motors_off():
    # The reported failure: short bursts of odometry between stalls kept the policy flying (and the
    # vehicle lost) until a 10 s timeout. Bursts shorter than the re-entry rule keep it descending,
    # and the descent is bounded by descent_timeout after the last odometry that could re-enter.
    wd = Watchdog(WatchdogConfig(state_timeout=0.1, reentry_messages=5, descent_timeout=1.0))
    fly(wd, 0.0, 0.5)
    t, modes = 0.5, []
    for _ in range(10):
        modes += [v.mode for v in fly(wd, t, 0.2, odometry=False)]
        modes += [v.mode for v in fly(wd, t + 0.2, 0.03)]
        t += 0.23
    first_fault = modes.index(DESCEND)
    assert OK not in modes[first_fault:]
    # No re-entry happened, so the descent ended one descent_timeout after the fault began at most.
    assert modes[-1] == MOTORS_OFF and modes.index(MOTORS_OFF) * DT <= 0.1 + 1.0 + 0.23 + DT


def test_a_tilted_vehicle_gets_motors_at_zero_not_the_descent_throttle():
    wd = Watchdog()
    fly(wd, 0.0, 0.2, state(tilt_deg=70.0))
    v = fly(wd, 0.2, 0.2, odometry=False)[-1]
    assert v.mode == DESCEND and not v.descent and "tilt 70 deg (dead-reckoned) or unknown" in v.reason


def test_a_level_but_spinning_vehicle_descends_until_its_dead_reckoned_tilt_passes_the_bound():
    # 3 rad/s roll from level: 60 deg after 0.35 s. Cutting at once (the old "not calm" rule) dropped
    # a vehicle still recovering from an earlier fault; thrust that still points up slows the fall.
    wd = Watchdog(WatchdogConfig(max_tilt_deg=60.0))
    fly(wd, 0.0, 0.2, state(rate=3.0))
    verdicts = fly(wd, 0.2, 0.5, odometry=False)
    lifting = [round(0.2 + k * DT, 2) for k, v in enumerate(verdicts) if v.descent]
    assert all(v.mode == DESCEND for v in verdicts[10:])
    assert lifting and lifting[0] <= 0.3 and 0.5 <= lifting[-1] <= 0.2 - DT + math.radians(60) / 3.0 + DT


def test_non_finite_odometry_is_a_fault_at_once_and_motors_off_after_the_descent_timeout():
    wd = Watchdog(WatchdogConfig(descent_timeout=0.3))
    fly(wd, 0.0, 0.2)
    bad = VehicleState(np.array([np.nan, 0.0, 1.0]), np.array([1.0, 0, 0, 0]), np.zeros(3), np.zeros(3))
    verdicts = fly(wd, 0.2, 0.5, bad)
    assert verdicts[0].mode == DESCEND and "non-finite odometry" in verdicts[0].reason
    assert verdicts[-1].mode == MOTORS_OFF
    assert [v.mode for v in fly(wd, 0.7, 0.5)] == [MOTORS_OFF] * 50  # latched
    wd.reset()
    assert wd.check(2.0, 0.0).mode == WAITING


def test_a_stall_of_the_control_loop_itself_needs_a_reentry():
    wd = Watchdog(WatchdogConfig(state_timeout=0.1, reentry_messages=3))
    fly(wd, 0.0, 0.5)
    # The loop ran nothing for 0.3 s, then the newest odometry is fresh at once (it was queued).
    wd.odometry(0.8, state())
    v = wd.check(0.8, 0.0)
    assert v.mode == DESCEND and "control loop stalled" in v.reason
    assert [v.mode for v in fly(wd, 0.81, 0.03)] == [DESCEND, DESCEND, OK]


def test_a_stale_setpoint_holds_then_recovers_and_a_long_hold_ends_in_motors_off():
    wd = Watchdog(WatchdogConfig(setpoint_timeout=0.5, hold_timeout=1.0))
    fly(wd, 0.0, 0.1)
    wd.odometry(0.1, state())
    v = wd.check(0.1, 0.6)
    assert v.mode == HOLD and "stale setpoint" in v.reason and not v.reset_policy
    wd.odometry(0.11, state())
    assert wd.check(0.11, 0.0).mode == OK
    wd.odometry(0.12, state())
    assert wd.check(0.12, 0.0, filter_fault="infeasible").reason == "safety filter fault: infeasible"
    for k in range(110):
        wd.odometry(0.13 + k * DT, state())
        v = wd.check(0.13 + k * DT, math.inf)
    assert v.mode == MOTORS_OFF and "never received" in v.reason


def test_bad_configuration_is_refused_naming_the_key():
    with pytest.raises(ValueError, match="state_timeout"):
        WatchdogConfig(state_timeout=-1)
    with pytest.raises(ValueError, match="max_tilt_deg"):
        WatchdogConfig(max_tilt_deg=95.0)
