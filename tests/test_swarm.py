"""sim.swarm: seeded scenarios, the step's limits, and collision / deadlock / arrival counting."""

import pytest
import torch

from sim.swarm import (
    SCENARIOS,
    Scenario,
    SwarmConfig,
    agent_layout,
    at_goal,
    edge_layout,
    make_scenario,
    nominal_accelerations,
    observe,
    reset,
    step,
)

CONFIG = SwarmConfig()


def _two_agents(p0, p1, goals=None, obstacles=((), ())) -> Scenario:
    p = torch.tensor([[p0, p1]], dtype=torch.float64)
    g = p.clone() if goals is None else torch.tensor([goals], dtype=torch.float64)
    centres, radii = obstacles
    return Scenario(p, g, torch.tensor([centres], dtype=torch.float64).reshape(1, len(radii), 2),
                    torch.tensor([radii], dtype=torch.float64).reshape(1, len(radii)))


def _run_nominal(state, steps):
    for _ in range(steps):
        u = nominal_accelerations(state.p, state.v, state.goal, max_speed=CONFIG.max_speed,
                                  max_accel=CONFIG.max_accel)
        state = step(state, u, CONFIG)
    return state


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenarios_are_seeded_and_an_episode_does_not_depend_on_the_batch(name):
    a = make_scenario(name, 8, 3, seed=5)
    b = make_scenario(name, 8, 1, seed=5)
    c = make_scenario(name, 8, 3, seed=6)
    for x, y in zip((a.starts, a.goals, a.obstacle_p), (b.starts, b.goals, b.obstacle_p), strict=True):
        assert torch.equal(x[:1], y)
    assert not torch.equal(a.starts, c.starts)
    assert not torch.equal(a.starts[0], a.starts[1])  # each environment its own episode
    reset(a, CONFIG)  # no scenario starts overlapping
    if name == "corridor":
        assert a.obstacle_p.shape[1] > 0


def test_rollouts_are_deterministic_and_respect_the_limits():
    scenario = make_scenario("crossing", 6, 2, seed=0)
    s1, s2 = _run_nominal(reset(scenario, CONFIG), 60), _run_nominal(reset(scenario, CONFIG), 60)
    assert torch.equal(s1.p, s2.p) and torch.equal(s1.collisions, s2.collisions)
    assert float(s1.v.norm(dim=-1).max()) <= CONFIG.max_speed + 1e-12
    big = step(reset(scenario, CONFIG), torch.full_like(scenario.starts, 100.0), CONFIG)
    assert torch.allclose(big.v, torch.full_like(big.v, CONFIG.max_accel * CONFIG.dt))


def test_a_head_on_pass_through_counts_one_collision_per_contact():
    # Without a filter the two agents drive through each other: one contact, however many steps it lasts.
    state = reset(_two_agents((-1.0, 0.0), (1.0, 0.0), goals=((1.0, 0.0), (-1.0, 0.0))), CONFIG)
    state = _run_nominal(state, 200)
    assert int(state.collisions[0]) == 1
    assert float(state.min_distance[0]) < 0.1
    assert int(state.arrived_step[0]) > 0 and bool(at_goal(state, CONFIG).all())


def test_touching_an_obstacle_is_a_collision_and_passing_beside_it_is_not():
    hit = reset(_two_agents((-1.0, 0.0), (-1.0, 3.0), goals=((1.0, 0.0), (-1.0, 3.0)),
                            obstacles=(((0.0, 0.0),), (0.3,))), CONFIG)
    miss = reset(_two_agents((-1.0, 0.6), (-1.0, 3.0), goals=((1.0, 0.6), (-1.0, 3.0)),
                             obstacles=(((0.0, 0.0),), (0.3,))), CONFIG)
    assert int(_run_nominal(hit, 100).collisions[0]) == 1
    assert int(_run_nominal(miss, 100).collisions[0]) == 0


def test_deadlock_is_standing_still_away_from_the_goal_for_the_set_time():
    # Agent 0 stands still 2 m from its goal; agent 1 stands still on its goal.
    state = reset(_two_agents((0.0, 0.0), (3.0, 0.0), goals=((2.0, 0.0), (3.0, 0.0))), CONFIG)
    zero = torch.zeros_like(state.p)
    for _ in range(CONFIG.deadlock_steps - 1):
        state = step(state, zero, CONFIG)
    assert not bool(state.deadlocked.any())
    state = step(state, zero, CONFIG)
    assert state.deadlocked[0].tolist() == [True, False]
    assert int(state.arrived_step[0]) == -1


def test_agents_that_start_overlapping_are_refused():
    with pytest.raises(ValueError, match="agents 0 and 1 of environment 0 start overlapping"):
        reset(_two_agents((0.0, 0.0), (0.3, 0.0)), CONFIG)
    with pytest.raises(ValueError, match="agent 0 of environment 0 starts overlapping obstacle 0"):
        reset(_two_agents((0.0, 0.0), (3.0, 0.0), obstacles=(((0.1, 0.0),), (0.2,))), CONFIG)
    with pytest.raises(ValueError, match="unknown 'ring'"):
        make_scenario("ring", 4, 1, seed=0)


def test_observations_are_relative_masked_and_nearest_first():
    scenario = make_scenario("obstacles", 6, 2, seed=1, obstacles=3)
    state = _run_nominal(reset(scenario, CONFIG), 30)
    nodes, edges, mask = observe(state, CONFIG, neighbours=4)
    assert nodes.shape == (2, 6, agent_layout(2).size) and edges.shape == (2, 6, 4, edge_layout(2).size)
    offsets = edges[..., edge_layout(2).slice("offset")]
    dist = offsets.norm(dim=-1)
    assert bool((dist[mask] <= CONFIG.sensing_radius).all()) and bool((edges[~mask] == 0).all())
    assert bool((dist[..., :-1] <= dist[..., 1:] + 1e-12)[mask[..., 1:]].all())  # nearest first
    shift = torch.tensor([5.0, -3.0], dtype=torch.float64)
    moved = type(state)(**{**state.__dict__, "p": state.p + shift, "goal": state.goal + shift,
                           "obstacle_p": state.obstacle_p + shift})
    n2, e2, m2 = observe(moved, CONFIG, neighbours=4)
    assert torch.allclose(n2, nodes) and torch.allclose(e2, edges) and torch.equal(m2, mask)


def test_three_dimensional_swarms_step():
    config = SwarmConfig(dim=3)
    scenario = make_scenario("swap", 4, 2, seed=0, dim=3)
    assert scenario.starts.shape == (2, 4, 3)
    state = reset(scenario, config)
    state = step(state, torch.ones_like(state.p), config)
    assert state.p.shape == (2, 4, 3)
    with pytest.raises(ValueError, match="scenario is 3-D but the config says dim 2"):
        reset(scenario, CONFIG)


def test_tilt_turns_the_goal_error_clockwise_and_zero_tilt_is_the_plain_pd():
    p, v = torch.zeros(1, 1, 2, dtype=torch.float64), torch.zeros(1, 1, 2, dtype=torch.float64)
    goal = torch.tensor([[[0.2, 0.0]]], dtype=torch.float64)
    plain = nominal_accelerations(p, v, goal, max_speed=1.0, max_accel=2.0)
    assert torch.equal(nominal_accelerations(p, v, goal, max_speed=1.0, max_accel=2.0, tilt=0.0), plain)
    turned = nominal_accelerations(p, v, goal, max_speed=1.0, max_accel=2.0, tilt=0.4)
    assert float(turned[0, 0, 1]) < 0 < float(turned[0, 0, 0])  # heading +x, veering to its right (-y)
    assert torch.allclose(turned.norm(dim=-1), plain.norm(dim=-1))
    goal3 = torch.tensor([[[0.2, 0.0, 0.1]]], dtype=torch.float64)
    z = nominal_accelerations(torch.zeros_like(goal3), torch.zeros_like(goal3), goal3, max_speed=1.0,
                              max_accel=2.0, tilt=0.4)[0, 0, 2]
    assert float(z) == pytest.approx(0.1 * 0.5 * 2.0)  # the height is not turned
    with pytest.raises(ValueError, match="tilt"):
        nominal_accelerations(p, v, goal, max_speed=1.0, max_accel=2.0, tilt=2.0)


def test_tilted_nominal_converges_to_the_goal():
    state = reset(_two_agents([0.0, 0.0], [5.0, 5.0], goals=[[3.0, 1.0], [5.0, 5.0]]), CONFIG)
    for _ in range(400):
        u = nominal_accelerations(state.p, state.v, state.goal, max_speed=CONFIG.max_speed,
                                  max_accel=CONFIG.max_accel, tilt=0.4)
        state = step(state, u, CONFIG)
    assert bool(at_goal(state, CONFIG).all())
