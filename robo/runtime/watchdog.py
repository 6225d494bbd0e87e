"""The watchdog's decision: which command a control loop may send, from what arrived and when.

Pure logic (no ROS): the policy node reports every odometry message (:meth:`Watchdog.odometry`) and
asks once per control period (:meth:`Watchdog.check`). Modes, in order of escalation:

  waiting     not armed: nothing has been commanded yet, so nothing is sent. The loop arms once fresh,
              finite odometry and a fresh setpoint are both there, as PX4 wants an offboard setpoint
              stream before it arms: a loop started before its setpoint source (every node of a launch
              at once on a starved machine) stays silent through start-up instead of flying without a
              goal, and no start-up stall can turn into a descent;
  ok          fly the policy on the latest state and setpoint;
  hold        the state is good but the setpoint is stale or the safety filter faulted: fly the
              policy to the position held when the fault began, at zero velocity (closed loop);
  descend     no usable state (stale, not finite, or this loop itself stalled): no closed loop is
              possible. Every motor at the descent throttle (below hover: it can only sink) while the
              tilt dead-reckoned from the last good odometry (its tilt plus its roll/pitch rate times the
              time since) stays within ``max_tilt_deg``, then every motor at 0, for at most
              ``descent_timeout`` from the fault's start. Equal motors exert no torque, so the body rate
              persists; thrust is cut before it could point down, so the descent never loses height
              faster than motors off. (Measured: from 5 deg and 3 rad/s, 1 s of this loses 3.0 m, motors
              off 4.4 m; cutting whenever the rate exceeded 3 rad/s dropped a recovering vehicle.)
  motors_off  a fault outlasted its timeout: every motor at 0. Latched until :meth:`reset`.

Re-entry after a state fault: the policy's recurrent state is stale (it saw none of the stall), so
the policy flies again only after ``reentry_messages`` consecutive fresh, finite odometry messages,
and the verdict that ends the fault says ``reset_policy``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from robo.runtime.quadrotor import VehicleState

OK, HOLD, DESCEND, MOTORS_OFF = "ok", "hold", "descend", "motors_off"
WAITING = "waiting"  # not armed yet: no fresh state and setpoint so far, nothing to command


@dataclass
class WatchdogConfig:
    state_timeout: float = 0.1       # s without fresh odometry (or a control-loop gap) -> descend
    setpoint_timeout: float = 0.5    # s without a fresh setpoint -> hold
    descent_timeout: float = 1.0     # s of descend (from the fault's start, re-entry aside) -> motors_off
    hold_timeout: float = 10.0       # s of hold -> motors_off
    reentry_messages: int = 5        # fresh consecutive odometry messages before the policy flies again
    max_tilt_deg: float = 60.0       # dead-reckoned tilt up to which the descent throttle lifts

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"watchdog.{f.name}: must be a positive number, got {value}")
        if self.max_tilt_deg >= 90:
            raise ValueError(f"watchdog.max_tilt_deg: must be below 90, got {self.max_tilt_deg}")


@dataclass(frozen=True)
class Verdict:
    mode: str
    reason: str                 # "" when ok
    descent: bool = False       # descend at the descent throttle (else, outside ok/hold, every motor at 0)
    reset_policy: bool = False  # the fault is over: zero the policy's recurrent state before flying


def tilt_and_rate(state: VehicleState) -> tuple[float, float]:
    """Angle between body z and world z (deg) and the fastest it can grow: the roll/pitch rate (deg/s)."""
    x, y = float(state.quaternion[1]), float(state.quaternion[2])
    cos_tilt = 1.0 - 2.0 * (x * x + y * y)  # R[2, 2]
    tilt = math.degrees(math.acos(max(-1.0, min(1.0, cos_tilt))))
    return tilt, math.degrees(float(np.linalg.norm(state.angular_velocity[:2])))


class Watchdog:
    def __init__(self, cfg: WatchdogConfig | None = None) -> None:
        self.cfg = cfg or WatchdogConfig()
        self.reset()

    def reset(self) -> None:
        self.mode = WAITING
        self.reason = ""
        self._last_odometry = -math.inf   # arrival of the newest odometry message
        self._tilt = math.inf             # last good attitude: tilt (deg), its bound rate (deg/s), time
        self._tilt_rate = 0.0
        self._attitude_at = -math.inf
        self._finite = True               # the newest message was finite
        self._fresh = 0                   # consecutive fresh finite messages
        self._last_check: float | None = None
        self._state_fault = ""            # why the policy may not fly (cleared by re-entry)
        self._fault_since = math.inf      # when that fault began
        self._hold_since: float | None = None

    # ----- inputs ---------------------------------------------------------------------------------
    def odometry(self, now: float, state: Any) -> None:
        """Report one odometry message (or a hand's complete state), as it arrives (``now``: its arrival
        time, s); ``state`` has ``finite()``."""
        cfg = self.cfg
        self._finite = state.finite()
        if not self._finite:
            self._fresh = 0
            self._fault(now, "non-finite odometry")
        else:
            fresh = now - self._last_odometry <= cfg.state_timeout
            self._fresh = self._fresh + 1 if fresh else 1
            # A plant without attitude (a hand) has no tilt that could make its safe command unsafe.
            self._tilt, self._tilt_rate = tilt_and_rate(state) if isinstance(state, VehicleState) else (0, 0)
            self._attitude_at = now
        self._last_odometry = now

    # ----- decision -------------------------------------------------------------------------------
    def check(self, now: float, setpoint_age: float, filter_fault: str = "") -> Verdict:
        """Once per control period. ``setpoint_age`` in s (inf: none yet); ``filter_fault``: its reason."""
        cfg = self.cfg
        gap = math.inf if self._last_check is None else now - self._last_check
        self._last_check = now
        if self.mode == MOTORS_OFF:
            return Verdict(MOTORS_OFF, self.reason)
        state_age = now - self._last_odometry
        if self.mode == WAITING:
            waiting_for = self._waiting_for(state_age, setpoint_age)
            if waiting_for:
                return self._set(Verdict(WAITING, f"waiting for {waiting_for}"))
            # Arming: whatever happened before (a NaN message, a start-up stall) commanded nothing.
            self._state_fault, self._fault_since = "", math.inf
            return self._flying(now, setpoint_age, filter_fault, reset=False)
        if not math.isinf(gap) and gap > cfg.state_timeout and not self._state_fault:
            # This loop did not run for longer than the state timeout: whatever the policy saw last
            # is old, so the stall is a state fault like stale odometry, and needs a re-entry.
            self._fault(now, f"control loop stalled for {gap:.3f} s")
        if state_age > cfg.state_timeout and not self._state_fault:
            self._fault(now, f"stale odometry ({state_age:.3f} s > {cfg.state_timeout:g} s)")
        if self._state_fault:
            if self._finite and state_age <= cfg.state_timeout and self._fresh >= cfg.reentry_messages:
                self._state_fault = ""
                return self._flying(now, setpoint_age, filter_fault, reset=True)
            return self._descend(now)
        return self._flying(now, setpoint_age, filter_fault, reset=False)

    def _waiting_for(self, state_age: float, setpoint_age: float) -> str:
        """What the loop still lacks to arm ("" when nothing)."""
        if self._last_odometry == -math.inf:
            return "the first odometry message"
        if not self._finite or state_age > self.cfg.state_timeout:
            return "fresh, finite odometry"
        if not setpoint_age <= self.cfg.setpoint_timeout:
            return "setpoints to flow (the loop arms when they do)"
        return ""

    def _fault(self, now: float, reason: str) -> None:
        if not self._state_fault:
            self._fault_since = now
        self._state_fault = reason
        self._fresh = 0

    def _descend(self, now: float) -> Verdict:
        cfg = self.cfg
        reason = self._state_fault
        if self._fresh:
            reason += f"; re-entry {self._fresh}/{cfg.reentry_messages} fresh odometry"
        # Bounded from the fault's start: odometry bursts too short to re-enter do not extend it.
        if now - self._fault_since >= cfg.descent_timeout:
            return self._set(Verdict(MOTORS_OFF, f"{reason}; motors off after {now - self._fault_since:.2f} "
                                     "s of descent"))
        tilt = self._tilt + self._tilt_rate * (now - self._attitude_at)
        if not tilt <= cfg.max_tilt_deg:
            return self._set(Verdict(DESCEND, f"{reason}; tilt {tilt:.0f} deg (dead-reckoned) or unknown: "
                                     "motors at 0"))
        return self._set(Verdict(DESCEND, f"{reason}; descent, tilt {tilt:.0f} deg (dead-reckoned)",
                                 descent=True))

    def _flying(self, now: float, setpoint_age: float, filter_fault: str, reset: bool) -> Verdict:
        cfg = self.cfg
        if not setpoint_age <= cfg.setpoint_timeout:
            age = "never received" if math.isinf(setpoint_age) else f"{setpoint_age:.3f} s"
            reason = f"stale setpoint ({age} > {cfg.setpoint_timeout:g} s)"
        elif filter_fault:
            reason = f"safety filter fault: {filter_fault}"
        else:
            self._hold_since = None
            return self._set(Verdict(OK, "", reset_policy=reset))
        if self._hold_since is None:
            self._hold_since = now
        if now - self._hold_since >= cfg.hold_timeout:
            held = now - self._hold_since
            return self._set(Verdict(MOTORS_OFF, f"{reason}; motors off after {held:.2f} s"))
        return self._set(Verdict(HOLD, reason, reset_policy=reset))

    def _set(self, verdict: Verdict) -> Verdict:
        self.mode, self.reason = verdict.mode, verdict.reason
        return verdict
