"""The watchdog's decision, as a pure function of ages and flags (the ROS policy node feeds it).

Modes, in order of escalation:
  ok          fly the policy on the latest state and setpoint;
  hold        the state is good but the setpoint is stale or the safety filter faulted: fly the
              policy to the position held when the fault began, at zero velocity (brake and hover);
  open_loop   the state is stale or not finite, so no closed loop is possible: every motor at the
              configured safe throttle (level hover thrust) for a short time;
  motors_off  a fault lasted longer than its timeout: every motor at 0. Latched until reset().
"""

from __future__ import annotations

import math
from dataclasses import dataclass

OK, HOLD, OPEN_LOOP, MOTORS_OFF = "ok", "hold", "open_loop", "motors_off"


@dataclass
class WatchdogConfig:
    state_timeout: float = 0.1       # s without fresh odometry -> open_loop (10 periods at 100 Hz)
    setpoint_timeout: float = 0.5    # s without a fresh setpoint -> hold
    open_loop_timeout: float = 0.5   # s of open_loop -> motors_off
    hold_timeout: float = 10.0       # s of hold -> motors_off

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"watchdog.{name}: must be a positive number of seconds, got {value}")


@dataclass(frozen=True)
class Verdict:
    mode: str
    reason: str  # "" when ok


class Watchdog:
    def __init__(self, cfg: WatchdogConfig | None = None) -> None:
        self.cfg = cfg or WatchdogConfig()
        self.reset()

    def reset(self) -> None:
        self.mode = OK
        self.reason = ""
        self._since: float | None = None      # when the current fault began (any mode)
        self._open_since: float | None = None  # when the current open-loop stretch began

    def check(self, now: float, state_age: float, state_finite: bool, setpoint_age: float,
              filter_fault: str = "") -> Verdict:
        """Ages in seconds (inf when nothing has arrived); ``filter_fault``: the filter's reason or ""."""
        cfg = self.cfg
        if self.mode == MOTORS_OFF:
            return Verdict(MOTORS_OFF, self.reason)
        if not state_finite:
            mode, reason = OPEN_LOOP, "non-finite odometry"
        elif not state_age <= cfg.state_timeout:
            mode, reason = OPEN_LOOP, f"stale odometry ({_age(state_age)} > {cfg.state_timeout:g} s)"
        elif not setpoint_age <= cfg.setpoint_timeout:
            mode, reason = HOLD, f"stale setpoint ({_age(setpoint_age)} > {cfg.setpoint_timeout:g} s)"
        elif filter_fault:
            mode, reason = HOLD, f"safety filter fault: {filter_fault}"
        else:
            mode, reason = OK, ""
        if mode == OK:
            self.mode, self.reason, self._since, self._open_since = OK, "", None, None
            return Verdict(OK, "")
        if self._since is None:
            self._since = now
        if mode == OPEN_LOOP:
            self._open_since = now if self._open_since is None else self._open_since
        else:
            self._open_since = None
        # Open loop (no feedback) runs on the short timeout from its own start; any fault, hold
        # included, on the long one from when the fault began.
        for since, limit in ((self._open_since, cfg.open_loop_timeout), (self._since, cfg.hold_timeout)):
            if since is not None and now - since >= limit:
                self.mode, self.reason = MOTORS_OFF, f"{reason}; motors off after {now - since:.2f} s"
                return Verdict(MOTORS_OFF, self.reason)
        self.mode, self.reason = mode, reason
        return Verdict(mode, reason)


def _age(age: float) -> str:
    return "never received" if math.isinf(age) else f"{age:.3f} s"
