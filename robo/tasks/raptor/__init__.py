"""RAPTOR: a quadrotor foundation policy distilled from many SAC teachers by meta-imitation.

``teachers`` trains the teacher fleet (batched SAC, optionally spread by Ray: ``robo.rl.distributed``),
``pipeline`` runs fleet -> teachers -> student -> evaluation -> export, ``evaluation`` measures any
controller on the RAPTOR episodes (recovery from random states, figure-eights), ``commands`` is what
``robo train`` / ``robo eval`` call.
"""

from robo.registry import Stage, Task
from robo.tasks.raptor import commands

PIPELINE_DESCRIPTION = """\
The whole RAPTOR pipeline in one run folder, each stage resumable with --resume:
  1. sample the fleet (fleet.size quadrotors, fleet.seed)      -> RUN/fleet.json
  2. train teachers (SAC, batched groups; see raptor-teachers) -> RUN/teachers/
  3. distil the student (on-policy DAgger, BPTT)               -> RUN/student/student_best.pt
  4. evaluate it (held-out quadrotors, presets, figure-eights)  -> RUN/eval/metrics.json, plots
  5. export it to ONNX with its policy card                     -> RUN/policy.onnx, RUN/policy.json

examples:
  robo train raptor --config configs/raptor_quick.yaml            # about 13 min on a 2-core CPU
  robo train raptor --config configs/raptor.yaml --set teachers.device=cuda
  robo train raptor --config configs/raptor_quick.yaml --out runs/raptor/a --resume
  robo train raptor --config configs/raptor.yaml --ray-address head:6379 --out /shared/runs/raptor/a

--ray-address trains the teacher groups (stage 1) as Ray tasks, as in raptor-teachers: the run
folder must then be on storage every node of the cluster sees.
"""

TEACHERS_DESCRIPTION = """\
Train RAPTOR teachers: one SAC agent per quadrotor of a fleet file, each seeing the 26-value
privileged observation of its own vehicle (--set env.observation=teacher_force adds the episode's
constant external force, which a memoryless teacher otherwise cannot compensate). Teachers are
trained --set group_size=K at a time as one batched program (stacked networks over K stacked
environments), each stops once the mean length of its last training episodes reaches the
acceptance threshold (train.acceptance.*), and teachers that miss it within train.steps are rejected
and listed with their numbers. Every teacher's actor and learning curve are kept under
RUN/teachers/<name>/.

examples:
  python -c "import sim.quadrotor as q; q.save_fleet(q.sample_fleet(1000, 0), 'fleet.json')"
  robo train raptor-teachers --fleet fleet.json --teachers 32 --config configs/raptor_teachers_quick.yaml
  robo train raptor-teachers --fleet fleet.json --teachers 1000 --device cuda --set group_size=1000
  robo train raptor-teachers --fleet fleet.json --out runs/raptor-teachers/a --resume
  robo train raptor-teachers --fleet fleet.json --teachers 64 --ray-address          # a local Ray
  robo train raptor-teachers --fleet fleet.json --teachers 1000 --ray-address head:6379 \\
      --out /shared/runs/raptor-teachers/a                    # a Ray cluster, shared run folder

Without --ray-address the groups run one after another on this machine. With it, each group is a
Ray task (threads CPUs, one GPU with --device cuda) and the groups run side by side: on a new local
Ray (no address), or on the cluster at ADDR (HOST:PORT of its head node, ray://HOST:PORT, or auto).
Every task writes into the run folder, so on a cluster it must be on storage every node sees, at the
same path (NFS or similar), and every node needs robo installed. Needs pip install 'robo[ray]'.
"""

STUDENT_DESCRIPTION = """\
Distil the teachers of a teacher run (the accepted ones; with teachers=all every teacher's judged best
snapshot, as the authors distil theirs) into RAPTOR's student, Linear(22->16)+ReLU -> GRU(16) ->
Linear(16->4). Each epoch flies every teacher's quadrotor for episodes_per_teacher episodes (the
teachers fly the first teacher_epochs epochs, the student afterwards), labels every state with the
teacher's deterministic action and fits the student by MSE with backpropagation through whole
episodes. The best epoch on held-out quadrotors is kept as student_best.pt. Several teacher runs
(--teachers A B) are joined into one teacher set, their teachers named RUN/qNNN.

examples:
  robo train raptor-student --teachers runs/raptor-teachers/a --config configs/raptor_quick.yaml
  robo train raptor-student --teachers runs/raptor-teachers/a --set epochs=200 --out runs/student/a
  robo train raptor-student --teachers runs/small/teachers runs/small_varied/teachers \
      --config configs/raptor_small.yaml --set episodes_per_teacher=8
"""

EVAL_DESCRIPTION = """\
Evaluate a quadrotor policy (a torch checkpoint .pt, or an exported .onnx with its card) the RAPTOR
way: recovery from the paper's initial-state distribution on N held-out sampled quadrotors and on
every preset (success = full 500-step episode and final position error below 0.1 m), figure-eight
RMSE at 10 s and 5.5 s periods on every preset, and a linear probe from the recurrent state to
thrust-to-weight (R^2). Writes metrics.json, success_mass_twr.png and figure8_tracks.png.

examples:
  robo eval raptor --policy runs/raptor/a/student/student_best.pt
  robo eval raptor --policy runs/raptor/a/policy.onnx --set vehicles=100
  robo eval raptor --baseline                     # the geometric controller, same measurements
  robo eval raptor --teachers runs/raptor/a/teachers   # each teacher, deterministic, on its own vehicle
  robo eval raptor --teachers runs/raptor/a/teachers --compare runs/raptor/a/student/student_best.pt

--teachers measures what the student will imitate: every teacher of a run (accepted or not) flies
recovery episodes on its own quadrotor with its deterministic action (acceptance during training
looks at stochastic episodes), and the figure-eights; with --compare, the student (or the released
policy) flies the same figure-eights on each teacher's vehicle beside it. Writes teachers_eval.json
into the run.
"""

_COMMANDS = "robo.tasks.raptor.commands"

TASKS = [
    Task("raptor", "the whole RAPTOR pipeline: fleet, teachers, student, evaluation, ONNX export",
         train=Stage(f"{_COMMANDS}:train_pipeline", "robo.tasks.raptor.pipeline:RaptorConfig",
                     PIPELINE_DESCRIPTION, commands.ray_address_argument, out="runs/raptor"),
         evaluate=Stage(f"{_COMMANDS}:evaluate_policy", "robo.tasks.raptor.evaluation:EvalConfig",
                        EVAL_DESCRIPTION, commands.eval_arguments, resumable=False,
                        summary="a quadrotor policy's held-out success, figure-eight RMSE and GRU probe "
                                "(--compare: several side by side)")),
    Task("raptor-teachers", "one SAC teacher per sampled quadrotor, many trained as one batched program",
         train=Stage(f"{_COMMANDS}:train_teachers", f"{_COMMANDS}:teachers_config",
                     TEACHERS_DESCRIPTION, commands.teacher_arguments, out="runs/raptor-teachers")),
    Task("raptor-student", "distil a teacher run into the 2k-parameter recurrent student (on-policy DAgger)",
         train=Stage(f"{_COMMANDS}:train_student", f"{_COMMANDS}:student_config",
                     STUDENT_DESCRIPTION, commands.student_arguments, out="runs/raptor-student")),
]
