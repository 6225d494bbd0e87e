"""What every simulator node shares: stepping on a steady-clock timer, the simulated clock, lockstep.

With ``publish_clock`` the simulator is the graph's clock: every step publishes the simulated time on
``/clock`` (rosgraph_msgs/Clock, starting at 0) and stamps its state messages with it, for nodes run with
``use_sim_time``. The steps are paced by this process's steady clock (never by ROS time, which would
wait for the /clock it publishes itself), ``real_time_factor`` simulated seconds per wall second.

With ``lockstep`` (needs ``publish_clock``) it steps only when the command answering the state it
published last has arrived (matched by the state stamp every policy command carries), as SITL
simulators do: a slow machine runs slower, never differently. Until the first answer the plant is held
and time stands still (the current state is published again every few ticks, for nodes that start
later). A missing answer for ``lockstep_timeout`` wall seconds is a fault: reported (log and
``/diagnostics``), after which it steps on every tick until commands answer its state again.
"""

from __future__ import annotations

from typing import Any

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rosgraph_msgs.msg import Clock as ClockMsg

from robo.ros.common import DIAGNOSTICS_QOS, ERROR, Param, diagnostic
from robo.ros.convert import answered_stamp

CLOCK_PARAMS = [
    Param("publish_clock", False, "publish the simulated time on /clock and stamp the state with it "
          "(for nodes with use_sim_time)", read_only=True),
    Param("real_time_factor", 1.0, "simulated seconds per wall-clock second (other than 1 only with "
          "publish_clock)", 0.01, 10.0, read_only=True),
    Param("lockstep", False, "step only when the command answering the last state has arrived (needs "
          "publish_clock)", read_only=True),
    Param("lockstep_timeout", 1.0, "wall s without the answer before a lockstep fault (then free-running "
          "until answers return)", 0.01, 600.0),
]
REPUBLISH_TICKS = 10  # while waiting for an answer, the state goes out again every this many ticks

# Reliable, depth 1: matches rclpy's and rclcpp's best-effort /clock subscriptions and reliable ones
# (ros2 topic echo, rosbag) alike; only the newest time matters.
CLOCK_QOS = QoSProfile(depth=1)


class SteppedSim(Node):
    """Subclasses declare their parameters (with :data:`CLOCK_PARAMS`), call :meth:`start_clock` last in
    their ``__init__``, implement ``advance()`` (one physics step, the plant's own command timeout
    included) and ``publish_state(stamp)``, gate their command callback with :meth:`accept_command` and
    set ``started`` once a command was accepted."""

    def start_clock(self, v: dict[str, Any], dt: float) -> None:
        """``v``: the values of :data:`CLOCK_PARAMS`; ``dt``: simulated s per step."""
        if v["real_time_factor"] != 1.0 and not v["publish_clock"]:
            # Without /clock the state carries wall time, which would then disagree with the physics.
            raise ValueError(f"real_time_factor: {v['real_time_factor']:g} needs publish_clock: true "
                             "(and use_sim_time on the other nodes)")
        if v["lockstep"] and not v["publish_clock"]:
            # Lockstep stops time while it waits, which only nodes on the simulated clock follow.
            raise ValueError("lockstep: true needs publish_clock: true (and use_sim_time on the other nodes)")
        self.dt = dt
        self.lockstep_timeout = v["lockstep_timeout"]
        self.started = False
        self.lockstep = v["lockstep"]
        self.locked = True          # lockstep: waiting for answers (False after a timeout, until one comes)
        self.answered = False       # lockstep: the current state has its command
        self.waiting_ticks = 0
        self.waiting_since = 0.0    # steady-clock s
        self.lockstep_faults = 0
        self.steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.clock_pub = self.create_publisher(ClockMsg, "/clock", CLOCK_QOS) if v["publish_clock"] else None
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", DIAGNOSTICS_QOS)
        self.steps = 0  # simulated time = steps * dt; it runs while the plant is held, too, so the
        # other nodes' sim-time timers (trajectory, watchdog) tick before the first command
        # (not in lockstep, which waits for the answer to the first state)
        self.create_timer(self.dt / v["real_time_factor"], self._tick, clock=self.steady)
        self.clock_text = (f"publishing /clock at {v['real_time_factor']:g}x real time" if v["publish_clock"]
                           else "real time") + (", in lockstep with the commands" if self.lockstep else "")

    def _apply_clock(self, changes: dict[str, Any]) -> None:
        self.lockstep_timeout = changes.get("lockstep_timeout", self.lockstep_timeout)

    def advance(self) -> None:
        raise NotImplementedError

    def publish_state(self, stamp: Time) -> None:
        raise NotImplementedError

    def accept_command(self, msg: Any) -> bool:
        """Whether a (valid) command may drive the plant now."""
        if self.lockstep:
            # Only the answer to the current state drives the step; a command for an older one, or a
            # timer's command computed without a new state, would make the run depend on timing.
            # The first answer only: one to a state published again may differ (the policy's state moved on).
            if answered_stamp(msg) == self._stamp_pair() and not self.answered:
                self.answered, self.locked = True, True
            elif self.locked:
                return False
        return True

    def _stamp_pair(self) -> tuple[int, int]:
        ns = round(self.steps * self.dt * 1e9)
        return ns // 1_000_000_000, ns % 1_000_000_000

    def _tick(self) -> None:
        if self.steps == 0:
            self._step()  # the first state (time dt): lockstep waits for its answer
        elif not self.lockstep or self.answered or not self.locked:
            self.waiting_ticks = 0
            self._step()
        elif self.started and self._wall() - self.waiting_since > self.lockstep_timeout:
            self._lockstep_fault()
            self._step()
        else:
            self.waiting_ticks += 1
            if self.waiting_ticks % REPUBLISH_TICKS == 0 or not self.started:
                self._publish()  # in case it was lost, or its reader started after it was sent

    def _wall(self) -> float:
        return self.steady.now().nanoseconds * 1e-9

    def _lockstep_fault(self) -> None:
        self.locked = False
        self.lockstep_faults += 1
        message = (f"lockstep: no command answered the state at t = {self.steps * self.dt:.3f} s "
                   f"within {self.lockstep_timeout:g} s; stepping without it until commands answer again")
        self.get_logger().error(message)
        self.diag_pub.publish(diagnostic(self, ERROR, message, {"lockstep_faults": self.lockstep_faults}))

    def _step(self) -> None:
        if self.started:
            self.advance()
        self.steps += 1
        self.answered = False
        self.waiting_since = self._wall()
        self._publish()

    def _publish(self) -> None:
        if self.clock_pub is not None:
            sec, nanosec = self._stamp_pair()
            stamp = Time(sec=sec, nanosec=nanosec)
            # /clock first: a node that gets this state has (most likely) already seen its time.
            self.clock_pub.publish(ClockMsg(clock=stamp))
        else:
            stamp = self.get_clock().now().to_msg()
        self.publish_state(stamp)
