"""The triggerer's event loop is not held when a Plugz trigger starts (real ``airflow triggerer``).

Every trigger of a triggerer shares one asyncio loop: a step of one trigger that runs long without
awaiting stalls all of them. Airflow's watchdog says so in the triggerer's log ("Triggerer's async
thread was blocked for 0.37 seconds"), but it cannot tell whose code it was. So in this module the
deployment's triggerer runs in asyncio's debug mode (``PYTHONASYNCIODEBUG=1``): asyncio then logs every loop
step that took over 0.1 s - the watchdog's own threshold of 0.2 s is its 0.1 s sleep plus such
a step - with the task it belongs to, ``Executing <Task ... name='...'> took 0.31 seconds``, and
Airflow names the task of each trigger after it (``dag_id/run_id/task_id/map_index/try (ID n)``).

**The rule.** A slow step is ours when its task is a trigger of a Plugz DAG: from the start of
``run()``, our code runs inside that task (Airflow's ``run_trigger`` preamble around it is
constant and short). Then the test fails, whether the watchdog also warned or not; each
finding lists the watchdog's warnings of that triggerer, for context. Slow steps of Airflow's
own tasks (its main loop ``TriggerRunner.arun``, which also imports a trigger's class by
classpath and builds it) and of unnamed callbacks are not attributed to us; the control below
shows them without any Plugz code. The watchdog's warning alone cannot be the rule: a new
triggerer running no trigger at all logged "blocked for 0.25 seconds" here (a run of short
steps of Airflow's, none over 0.1 s). Load alone is unlikely to fail it: since the fix, no
step of a Plugz trigger's task reached 0.1 s in any run here (the first import of our hook
module, 0.14-0.39 s in one step, now runs in a worker thread; Airflow's async connection lookup,
which runs in our task too, masks two secrets here). With that import back on the loop, the
test fails in both positions. The triggerers here run at a higher CPU priority than the rest of
the suite (``_favoured``): with both suites at once on 2 cores, a step in Airflow's connection
lookup in our task once took 0.131 s of wall clock while the triggerer waited for a core.

**The positions.** "After each start": a new triggerer process takes over a deferred Plugz
trigger as it starts, and an idle new triggerer gets its first Plugz trigger from a new run.
**The control**: Airflow's own ``DateTimeTrigger`` (``DateTimeSensorAsync``) in the same two
positions of the same deployment, so what Airflow's machinery costs on the loop is seen alone.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import TYPE_CHECKING
from urllib.parse import quote

import pytest

from tests.deployment.conftest import DAG_RUN_TIMEOUT
from tests.deployment.stack import DeploymentError

if TYPE_CHECKING:
    from tests.deployment.conftest import Deployment
    from tests.deployment.stack import Service

pytestmark = pytest.mark.deployment

if int(version("apache-airflow").split(".")[0]) < 3:
    pytest.skip("the deployment test runs Airflow 3's api-server and dag-processor", allow_module_level=True)

PLUGZ_DAG_ID = "plugz_onboarding"
PLUGZ_TASK_ID = "wait_for_pin"
CONTROL_DAG_ID = "airflow_own_trigger"
CONTROL_TASK_ID = "wait"
# Long enough to be taken over by a new triggerer; the run is then marked failed, not waited for.
CONTROL_WAIT_SECONDS = 120
DEPLOYMENT_DAGS = (PLUGZ_DAG_ID,)
DEPLOYMENT_EXTRA_DAGS = {
    CONTROL_DAG_ID: f'''"""The control: Airflow's own deferrable sensor (DateTimeTrigger), no Plugz code."""
from __future__ import annotations

import pendulum
from airflow.providers.standard.sensors.date_time import DateTimeSensorAsync
from airflow.sdk import DAG

with DAG(
    "{CONTROL_DAG_ID}", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False
):
    DateTimeSensorAsync(
        task_id="{CONTROL_TASK_ID}",
        target_time=(
            "{{{{ (macros.datetime.utcnow()"
            " + macros.timedelta(seconds={CONTROL_WAIT_SECONDS})).isoformat() }}}}"
        ),
    )
''',
}
DEPLOYMENT_ENV = {"triggerer": {"PYTHONASYNCIODEBUG": "1"}}

# Seconds between two PIN checks of the onboarding sensor.
POLL_INTERVAL = 2
# asyncio (debug mode): one loop step over 0.1 s, with the task (and its name) or callback it ran.
_SLOW_STEP = re.compile(r"Executing <(?P<what>[^\n]*?)> took (?P<seconds>\d+(?:\.\d+)?) seconds")
_TASK_NAME = re.compile(r"^\w+ \w+ name='(?P<name>[^'\n]*)'")
# Airflow's watchdog (airflow/jobs/triggerer_job_runner.py, block_watchdog).
_BLOCKED = re.compile(
    r"^(?P<at>\S+) .*?async thread was blocked for (?P<seconds>\d+(?:\.\d+)?) seconds", re.M
)
_TRIGGER_STARTING = re.compile(r"\(ID \d+\) starting")
_TRIGGERER_STARTED = "Starting the triggerer"


@dataclass(frozen=True)
class SlowStep:
    """One loop step asyncio reported as slow: its task's name (None for a bare callback)."""

    task: str | None
    seconds: float
    line: str


def slow_steps(log: str) -> list[SlowStep]:
    """Every slow step in a triggerer's log (asyncio debug mode's "Executing <...> took N seconds")."""
    steps = []
    for line in log.splitlines():
        found = _SLOW_STEP.search(line)
        if found is None:
            continue
        name = _TASK_NAME.match(found["what"])
        steps.append(SlowStep(name["name"] if name else None, float(found["seconds"]), line[:300]))
    return steps


def watchdog_warnings(log: str) -> list[str]:
    """Airflow's "async thread was blocked for N seconds" warnings, as ``time: N s``."""
    return [f"{m['at']}: {m['seconds']} s" for m in _BLOCKED.finditer(log)]


def is_plugz_task(step: SlowStep) -> bool:
    """The attribution rule: the step belongs to the task Airflow runs a Plugz DAG's trigger in."""
    return step.task is not None and step.task.startswith(f"{PLUGZ_DAG_ID}/")


@dataclass
class TriggerStart:
    """One new triggerer process and the first trigger it ran (what it logged until then)."""

    position: str
    dag_id: str
    triggerer: Service
    job: int
    trigger_log: str = ""
    log: str = field(default="", repr=False)


# --------------------------------------------------------------------------- driving the deployment


def _deferred_on(
    deployment: Deployment, dag_id: str, task_id: str, run_id: str, *, not_on: int | None
) -> int | None:
    """The triggerer job running the run's deferred task, once one other than ``not_on`` took it."""
    ti = deployment.task_instance(dag_id, run_id, task_id)
    if ti is None:
        return None
    if ti["state"] in ("success", "failed", "skipped", "upstream_failed"):
        raise DeploymentError(f"{dag_id}.{task_id} ended {ti['state']} while it should be deferred")
    triggerer = (ti.get("trigger") or {}).get("triggerer_id")
    if ti["state"] != "deferred" or triggerer is None or triggerer == not_on:
        return None
    return int(triggerer)


def _trigger_log(deployment: Deployment, dag_id: str, task_id: str, run_id: str, job: int) -> str:
    pattern = f"dag_id={dag_id}/*/task_id={task_id}/attempt=*.log.trigger.{job}.log"
    return "".join(
        path.read_text(encoding="utf-8", errors="replace")
        for path in deployment.logs.glob(pattern)
        if path.parent.parent.name == f"run_id={run_id}"
    )


def _ran(
    deployment: Deployment, dag_id: str, task_id: str, run_id: str, job: int, *, after: str | None
) -> str | None:
    """The trigger's log in ``job`` once it started (and logged ``after``, its first check's line)."""
    text = _trigger_log(deployment, dag_id, task_id, run_id, job)
    if not _TRIGGER_STARTING.search(text):
        return None
    if after is not None and after not in text:
        return None
    return text


def _start_in_new_triggerer(
    deployment: Deployment,
    position: str,
    dag_id: str,
    task_id: str,
    run_id: str,
    *,
    not_on: int | None,
    after: str | None,
) -> TriggerStart:
    """Wait until a triggerer other than job ``not_on`` ran the run's trigger; what it logged."""
    job = deployment.wait(
        f"{dag_id}'s trigger deferred to a new triggerer ({position})",
        lambda: _deferred_on(deployment, dag_id, task_id, run_id, not_on=not_on),
        timeout=DAG_RUN_TIMEOUT,
        last_seen=lambda: deployment.describe(dag_id, run_id),
    )
    trigger_log = deployment.wait(
        f"{dag_id}'s trigger to run in triggerer job {job} ({position})",
        lambda: _ran(deployment, dag_id, task_id, run_id, job, after=after),
        timeout=DAG_RUN_TIMEOUT,
    )
    triggerer = deployment.services["triggerer"]
    return TriggerStart(position, dag_id, triggerer, job, trigger_log, triggerer.log())


def _favoured(triggerer: Service) -> Service:
    """The new triggerer's process group gets the CPU before the suite's other processes (nice
    -10, where the test may raise a priority; its children inherit it): asyncio times loop steps
    by the wall clock, and the test is about how long a step of our code holds the loop, not how
    long a busy machine kept the triggerer waiting for a core. The control is favoured alike."""
    with contextlib.suppress(PermissionError):
        os.setpriority(os.PRIO_PGRP, triggerer.pid, -10)
    return triggerer


def _started(triggerer: Service) -> bool | None:
    return True if _TRIGGERER_STARTED in triggerer.log() else None


def _fail_run(deployment: Deployment, dag_id: str, run_id: str) -> None:
    deployment.api.call(
        "PATCH", f"api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}", {"state": "failed"}
    )


@pytest.fixture(scope="module")
def starts(deployment: Deployment) -> dict[tuple[str, str], TriggerStart]:
    """Plugz's trigger, then Airflow's own, each first in a new idle triggerer and taken over at start."""
    found: dict[tuple[str, str], TriggerStart] = {}
    try:
        for dag_id, task_id, conf, after in (
            (
                PLUGZ_DAG_ID,
                PLUGZ_TASK_ID,
                {"poll_interval": POLL_INTERVAL},
                "PIN set: False; waiting for True.",
            ),
            (CONTROL_DAG_ID, CONTROL_TASK_ID, {}, None),
        ):
            deployment.set_pin(False)
            idle = _favoured(deployment.restart("triggerer"))  # no trigger is deferred now
            deployment.wait(
                "the new triggerer to start",
                functools.partial(_started, idle),
                timeout=DAG_RUN_TIMEOUT,
            )
            run_id = deployment.trigger(dag_id, conf)
            first = found[dag_id, "new-run"] = _start_in_new_triggerer(
                deployment,
                "first trigger of a new triggerer",
                dag_id,
                task_id,
                run_id,
                not_on=None,
                after=after,
            )
            _favoured(deployment.restart("triggerer"))
            found[dag_id, "taken-over"] = _start_in_new_triggerer(
                deployment,
                "taken over by a triggerer as it starts",
                dag_id,
                task_id,
                run_id,
                not_on=first.job,
                after=after,
            )
            _fail_run(deployment, dag_id, run_id)  # no need to wait for the PIN or the moment
    except DeploymentError as exc:
        pytest.fail(str(exc), pytrace=False)
    # The last triggerer's log as it is now (later lines of the watchdog included).
    for start in found.values():
        start.log = start.triggerer.log()
    return found


# --------------------------------------------------------------------------- the tests


def _report(start: TriggerStart) -> str:
    steps = slow_steps(start.log)
    return (
        f"{start.dag_id}, {start.position} (triggerer job {start.job}, {start.triggerer.log_path.name}): "
        f"watchdog warnings {watchdog_warnings(start.log)}; slow loop steps: "
        + ("; ".join(f"{s.task or 'a callback'}: {s.seconds} s" for s in steps) or "none")
    )


@pytest.mark.parametrize(
    "position",
    [
        pytest.param("new-run", id="first-trigger-of-a-new-triggerer"),
        pytest.param("taken-over", id="taken-over-at-triggerer-start"),
    ],
)
def test_a_plugz_trigger_start_holds_the_loop_in_no_step(
    starts: dict[tuple[str, str], TriggerStart], position: str
) -> None:
    start = starts[PLUGZ_DAG_ID, position]
    ours = [step for step in slow_steps(start.log) if is_plugz_task(step)]
    assert not ours, (
        "a Plugz trigger held the triggerer's event loop: "
        + "; ".join(f"{s.seconds} s in {s.line}" for s in ours)
        + f" -- {_report(start)}; the control: "
        + " | ".join(_report(s) for (dag, _), s in starts.items() if dag == CONTROL_DAG_ID)
    )


@pytest.mark.parametrize(
    "position",
    [
        pytest.param("new-run", id="first-trigger-of-a-new-triggerer"),
        pytest.param("taken-over", id="taken-over-at-triggerer-start"),
    ],
)
def test_the_control_ran_airflow_own_trigger_in_the_same_position(
    starts: dict[tuple[str, str], TriggerStart], position: str
) -> None:
    """The comparison is real: Airflow's trigger started in a new triggerer in debug mode too."""
    start = starts[CONTROL_DAG_ID, position]
    assert _TRIGGER_STARTING.search(start.trigger_log), start.trigger_log
    assert not [s for s in slow_steps(start.log) if is_plugz_task(s)], _report(start)


def test_the_triggerer_runs_in_asyncio_debug_mode(deployment: Deployment) -> None:
    """Without debug mode asyncio reports no slow step, and the rule above could never fail."""
    import psutil

    leader = psutil.Process(deployment.services["triggerer"].pid)
    processes = [leader, *leader.children(recursive=True)]
    assert len(processes) >= 2, processes  # the triggerer and the trigger runner it forked
    assert {p.environ().get("PYTHONASYNCIODEBUG") for p in processes} == {"1"}


@pytest.mark.parametrize(
    ("line", "task", "ours"),
    [
        pytest.param(
            "18:15:07Z [warning  ] Executing <Task pending name='plugz_onboarding/manual__"
            "2026-12-07T18:15:25+00:00/wait_for_pin/-1/1 (ID 1)' coro=<TriggerRunner.run_trigger() "
            "running at /v/airflow/jobs/triggerer_job_runner.py:1628> wait_for=<Future pending "
            "cb=[Task.task_wakeup()] created at /p/base_events.py:427> created at /p/tasks.py:384> "
            "took 0.312 seconds "
            "[asyncio] loc=triggerer_job_runner.py:1046",
            "plugz_onboarding/manual__2026-12-07T18:15:25+00:00/wait_for_pin/-1/1 (ID 1)",
            True,
            id="a-plugz-trigger-task",
        ),
        pytest.param(
            "18:15:07Z [warning  ] Executing <Task pending name='Task-1' coro=<TriggerRunner."
            "arun() running at /v/airflow/jobs/triggerer_job_runner.py:1251> wait_for=<Future pending "
            "cb=[Task.task_wakeup()] created at /p/base_events.py:427> cb=[_run_until_complete_cb() at "
            "/p/base_events.py:180] created at /p/runners.py:100> took 0.125 seconds [asyncio]",
            "Task-1",
            False,
            id="airflow-main-loop",
        ),
        pytest.param(
            "18:15:07Z [warning  ] Executing <Task finished name='airflow_own_trigger/manual__x/wait/"
            "-1/1 (ID 2)' coro=<TriggerRunner.run_trigger() done> result=None> took 0.2 seconds [asyncio]",
            "airflow_own_trigger/manual__x/wait/-1/1 (ID 2)",
            False,
            id="another-dag-trigger",
        ),
        pytest.param(
            "18:15:07Z [warning  ] Executing <Handle _SelectorSocketTransport._read_ready() created "
            "at /p/selector_events.py:300> took 0.150 seconds [asyncio]",
            None,
            False,
            id="a-bare-callback",
        ),
    ],
)
def test_the_attribution_rule_reads_asyncio_debug_lines(line: str, task: str | None, ours: bool) -> None:
    (step,) = slow_steps(f"noise\n{line}\nTriggerer's async thread was blocked for 0.31 seconds\n")
    assert (step.task, is_plugz_task(step)) == (task, ours)
