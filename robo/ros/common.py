"""What every robo node shares: control-path QoS, declared-and-validated parameters, QoS-mismatch
reporting, diagnostics, and a ``main`` that spins one SingleThreadedExecutor and exits cleanly."""

from __future__ import annotations

import difflib
import math
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
from rclpy.exceptions import ParameterUninitializedException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSDurabilityPolicy, QoSProfile, ReliabilityPolicy

# The control path (odometry, setpoints, motor commands, filter status): the sensor-data profile with
# depth 1. Best effort + volatile on both ends; a reliable subscriber would match nothing, which each
# node reports through its incompatible-QoS callbacks instead of receiving silently nothing.
CONTROL_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT,
                         durability=QoSDurabilityPolicy.VOLATILE)
DIAGNOSTICS_QOS = QoSProfile(depth=10)  # /diagnostics is reliable by convention (diagnostic_aggregator)

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR


@dataclass(frozen=True)
class Param:
    """One node parameter: its default (which fixes its type), meaning, range and extra check."""

    name: str
    default: Any
    description: str
    lo: float | None = None
    hi: float | None = None
    read_only: bool = False
    check: Callable[[Any], str] | None = None  # returns "" or the reason the value is refused

    def descriptor(self) -> ParameterDescriptor:
        d = ParameterDescriptor(name=self.name, description=self.description, read_only=self.read_only)
        if self.lo is not None and self.hi is not None:
            if isinstance(self.default, bool):
                pass
            elif isinstance(self.default, int):
                d.integer_range = [IntegerRange(from_value=int(self.lo), to_value=int(self.hi), step=0)]
            elif isinstance(self.default, float):
                d.floating_point_range = [FloatingPointRange(from_value=float(self.lo),
                                                             to_value=float(self.hi), step=0.0)]
            d.additional_constraints = f"in [{self.lo}, {self.hi}]"
        return d

    def validate(self, value: Any) -> str:
        if value is None:
            return ""  # an array declared without a value (empty default)
        if isinstance(value, float) and not math.isfinite(value):
            return f"{self.name}: must be finite, got {value}"
        if _is_array(value) and any(isinstance(v, float) and not math.isfinite(v) for v in value):
            return f"{self.name}: every value must be finite"
        if self.lo is not None and isinstance(value, (int, float)) and not isinstance(value, bool) \
                and not self.lo <= value <= self.hi:
            return f"{self.name}: {value} is outside [{self.lo}, {self.hi}]"
        reason = self.check(value) if self.check else ""
        return f"{self.name}: {reason}" if reason else ""


def _is_array(value: Any) -> bool:
    # rclpy hands double arrays over as array.array, string arrays as lists.
    return hasattr(value, "__len__") and not isinstance(value, (str, bytes))


def declare(node: Node, params: Sequence[Param], apply: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Declare ``params`` with descriptors; every later change is validated first, then ``apply``-ed.

    The callback is registered before declaring, so values from a params file or ``-p`` are checked too:
    a bad one makes ``declare_parameter`` raise, and the node exits with that reason.
    """
    by_name = {p.name: p for p in params}

    def on_set(changes: list[rclpy.parameter.Parameter]) -> SetParametersResult:
        for change in changes:
            spec = by_name.get(change.name)
            if spec is None:
                continue  # use_sim_time and the like
            reason = spec.validate(change.value)
            if reason:
                node.get_logger().warning(f"parameter refused: {reason}")
                return SetParametersResult(successful=False, reason=reason)
        if declared[0]:
            apply({c.name: c.value for c in changes if c.name in by_name})
        return SetParametersResult(successful=True)

    declared = [False]
    node.add_on_set_parameters_callback(on_set)
    for p in params:
        # An empty list says nothing about the element type: declare it as a double array.
        default = Parameter.Type.DOUBLE_ARRAY if isinstance(p.default, list) and not p.default else p.default
        node.declare_parameter(p.name, default, p.descriptor())
    declared[0] = True
    values = {}
    for p in params:
        try:
            values[p.name] = node.get_parameter(p.name).value
        except ParameterUninitializedException:
            values[p.name] = list(p.default)  # an empty array nobody set
    return values


def undeclared_parameters(nodes: Sequence[Node]) -> list[str]:
    """One line for every parameter given to these nodes (params file, ``-p``, launch) that none of them
    declares, naming the closest declared one: rclpy ignores such a value without a word, so a misspelt
    name would leave its parameter at the default unseen. All nodes of a process count together,
    because launch hands one parameter dict to every node of a composed process."""
    declared = sorted({name for node in nodes for name in node._parameters})
    given = {name for node in nodes for name in getattr(node, "_parameter_overrides", {})}
    lines = []
    for name in sorted(given - set(declared)):
        if name.startswith("qos_overrides."):  # rclpy's own QoS override parameters
            continue
        close = difflib.get_close_matches(name, declared, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        lines.append(f"parameter {name!r} is set but no node here has it, so it is ignored{hint}")
    return lines


def one_of(*choices: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        return "" if value in choices else f"{value!r} is not one of {', '.join(choices)}"
    return check


def vector(n: int, *, multiple: bool = False) -> Callable[[Any], str]:
    """A list of exactly ``n`` numbers (or, with ``multiple``, any multiple of ``n``, empty included)."""
    def check(value: Any) -> str:
        ok = len(value) % n == 0 if multiple else len(value) == n
        return "" if ok else f"expected {'a multiple of ' if multiple else ''}{n} numbers, got {len(value)}"
    return check


class QosWatch:
    """Counts incompatible-QoS events on a node's publishers and subscriptions and says which topic."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.problems: dict[str, str] = {}

    def _report(self, topic: str, side: str) -> Callable[[Any], None]:
        def cb(status: Any) -> None:
            policy = getattr(status, "last_policy_kind", "?")
            name = getattr(policy, "name", str(policy))
            msg = (f"QoS mismatch on {topic} ({side}): {name}; this end uses best effort, volatile, "
                   "depth 1 (sensor data) - a peer with another profile receives nothing")
            self.problems[topic] = msg
            self.node.get_logger().error(msg)
        return cb

    def sub(self, topic: str) -> SubscriptionEventCallbacks:
        return SubscriptionEventCallbacks(incompatible_qos=self._report(topic, "subscription"))

    def pub(self, topic: str) -> PublisherEventCallbacks:
        return PublisherEventCallbacks(incompatible_qos=self._report(topic, "publisher"))


def diagnostic(node: Node, level: int, message: str, values: dict[str, Any]) -> DiagnosticArray:
    status = DiagnosticStatus(level=level, name=node.get_fully_qualified_name(), message=message,
                              hardware_id="robo",
                              values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
    return DiagnosticArray(header=_header(node), status=[status])


def _header(node: Node) -> Any:
    from std_msgs.msg import Header

    return Header(stamp=node.get_clock().now().to_msg())


def set_realtime_priority(priority: int, *, children: bool = True) -> None:
    """Every thread of this process (rclpy's and the DDS layer's included) to SCHED_FIFO at ``priority``,
    as flight stacks run their control loop: a busy machine then delays it by what runs above it, not by
    every process beside it. Threads started later inherit it; processes it starts do too unless
    ``children`` is false. Needs CAP_SYS_NICE (root)."""
    param = os.sched_param(priority)
    policy = os.SCHED_FIFO if children else os.SCHED_FIFO | os.SCHED_RESET_ON_FORK
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setscheduler(int(tid), policy, param)
        except PermissionError:
            raise ValueError(f"realtime_priority {priority}: not permitted here (needs root or "
                             "CAP_SYS_NICE); set it to 0 for the normal scheduler") from None
        except ProcessLookupError:  # a thread that ended meanwhile
            pass


def main_for(factories: Callable[[], Node] | Sequence[Callable[[], Node]],
             args: list[str] | None = None) -> int:
    """Init, build the node(s) (a bad parameter or model ends here: one line, exit 1), spin them all in
    one SingleThreadedExecutor, shut down. Ctrl-C, at any point, ends it silently with status 0."""
    factories = [factories] if callable(factories) else list(factories)
    try:
        rclpy.init(args=args if args is not None else sys.argv)
        nodes = []
        try:
            for factory in factories:
                nodes.append(factory())
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # a node could not start: say why in one line, exit non-zero
            # ...unless a signal shut the context down under it (rclpy's handler turns Ctrl-C during
            # start-up into an RCLError "initialization failed"): that is an interrupt, not a failure.
            interrupted = not rclpy.ok()
            if not interrupted:
                print(f"{factory.__name__}: error: {exc}", file=sys.stderr)
            for node in nodes:
                node.destroy_node()
            rclpy.try_shutdown()
            return 0 if interrupted else 1
    except KeyboardInterrupt:  # Ctrl-C while starting (ros2 launch forwards it): no traceback
        rclpy.try_shutdown()
        return 0
    for line in undeclared_parameters(nodes):
        nodes[0].get_logger().warning(line)
    executor = SingleThreadedExecutor()
    for node in nodes:
        executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        # SIGTERM shuts the context down while spin builds its next wait set; only a failure while the
        # context is still valid is a real error.
        if rclpy.ok():
            raise
    finally:
        # A second signal (ros2 launch forwards SIGINT, a terminal sends its own) must not interrupt
        # the clean-up half way.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        executor.shutdown()
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
