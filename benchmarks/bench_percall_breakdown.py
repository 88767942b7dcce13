"""(a') Where the per-call time of PlugzHook.get_pin_status() goes, step by step, in the real code.

Nothing is re-implemented: the hook's own functions are wrapped with timers, where the hook looks
them up (module globals, class attributes, the endpoint declaration), for the instrumented rounds
only, and restored after each. Per ``get_pin_status()`` call, each step's time is given *with* what
it calls (inclusive) and *without* the steps nested in it (self), in the order the hook runs them;
what no step covers (the hook's own glue: config lookup, the retry loop, the watchdog, urllib3's
body stream) is the remainder.

The rounds interleave three contenders, so drift hits them alike: a bare warm ``session.get`` on
the hook's own ``requests.Session`` (the floor), ``get_pin_status()`` as shipped, and
``get_pin_status()`` instrumented. The timers' own cost is measured too (a wrapped no-op), and the
instrumented total carries it once per wrapped call, which the table counts.

The steps are found by name (see ``STEPS``); a name that is missing, because the hook was
refactored, is reported as such rather than silently dropped.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from _common import CLIENT_TOKEN, SandboxProcess, load_average, machine, median, table

if TYPE_CHECKING:
    from collections.abc import Callable


@dataclass(frozen=True)
class Step:
    """One of the hook's steps: ``label`` and where its function lives (``owner.attribute``).

    ``owner`` is a dotted path: a module, a class in it (``pkg.mod:Class``) or an object in it
    (``pkg.mod:NAME``). A module-level function is patched in every module of ours that imported
    it by name, since that is where callers look it up.
    """

    label: str
    owner: str
    attribute: str
    depth: int = 0


#: In the order ``get_pin_status()`` runs them (sync path, requests); ``depth`` nests a step in
#: the one above it.
STEPS = (
    Step("retry policy start()", "airflow_provider_plugz.retry:RetryPolicy", "start"),
    Step("build_request()", "airflow_provider_plugz._protocol", "build_request"),
    Step("transport: PlugzHook._send()", "airflow_provider_plugz.hooks.plugz:PlugzHook", "_send"),
    Step("requests Session.request() (send, status, headers)", "requests:Session", "request", 1),
    Step("urllib3 HTTPResponse.read() (raw body)", "urllib3.response:HTTPResponse", "read", 1),
    Step("BodyReader.feed() (body, decoding)", "airflow_provider_plugz._protocol:BodyReader", "feed", 1),
    Step("requests Response.close() (back to the pool)", "requests:Response", "close", 1),
    Step("read_answer() (check + parse)", "airflow_provider_plugz._protocol", "read_answer"),
    Step("check_response()", "airflow_provider_plugz._protocol", "check_response", 1),
    Step("PIN_STATUS.parse (JSON -> PinStatus)", "airflow_provider_plugz.endpoints:PIN_STATUS", "parse", 1),
)


@dataclass
class StepClock:
    """Inclusive and self time per label, in ns, from timers that know which one they run inside."""

    inclusive: dict[str, int] = field(default_factory=dict)
    own: dict[str, int] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    _stack: list[list[int]] = field(default_factory=list)

    def reset(self) -> None:
        self.inclusive.clear()
        self.own.clear()
        self.calls.clear()

    def wrap(self, label: str, func: Callable[..., Any]) -> Callable[..., Any]:
        stack, inclusive, own, calls, clock = (
            self._stack,
            self.inclusive,
            self.own,
            self.calls,
            time.perf_counter_ns,
        )

        @functools.wraps(func)
        def timed(*args: Any, **kwargs: Any) -> Any:
            children = [0]
            stack.append(children)
            start = clock()
            try:
                return func(*args, **kwargs)
            finally:
                elapsed = clock() - start
                stack.pop()
                inclusive[label] = inclusive.get(label, 0) + elapsed
                own[label] = own.get(label, 0) + elapsed - children[0]
                calls[label] = calls.get(label, 0) + 1
                if stack:
                    stack[-1][0] += elapsed

        return timed


def _resolve(owner: str) -> Any:
    import importlib

    module_name, _, name = owner.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, name) if name else module


class Instrumented:
    """Installs the timers of ``steps`` on enter, restores every original on exit."""

    def __init__(self, clock: StepClock, steps: tuple[Step, ...]) -> None:
        self.clock = clock
        self.patches: list[tuple[Any, str, Any]] = []  # (object, attribute, timed)
        self.missing: list[Step] = []
        for step in steps:
            try:
                owner = _resolve(step.owner)
                original = getattr(owner, step.attribute)
            except (ImportError, AttributeError):
                self.missing.append(step)
                continue
            timed = clock.wrap(step.label, original)
            if isinstance(owner, type(sys)):  # a module function: patch every module that imported it
                for name, module in list(sys.modules.items()):
                    if name.startswith("airflow_provider_plugz") and module is not None:
                        for attribute, value in list(vars(module).items()):
                            if value is original:
                                self.patches.append((module, attribute, timed))
            else:  # a class (its method) or an object (a field, e.g. the endpoint's parse)
                self.patches.append((owner, step.attribute, timed))
        self._saved: list[tuple[Any, str, bool, Any]] = []

    def __enter__(self) -> Instrumented:
        for target, attribute, timed in self.patches:
            own = vars(target)
            self._saved.append((target, attribute, attribute in own, own.get(attribute)))
            _set(target, attribute, timed)
        return self

    def __exit__(self, *exc: object) -> None:
        while self._saved:
            target, attribute, had, original = self._saved.pop()
            if had:
                _set(target, attribute, original)
            else:  # it was inherited
                delattr(target, attribute)


def _set(target: Any, attribute: str, value: Any) -> None:
    if isinstance(target, (type, type(sys))):
        setattr(target, attribute, value)
    else:  # an object, perhaps a frozen dataclass (the endpoint declaration)
        object.__setattr__(target, attribute, value)


def timed_batches(contenders: dict[str, Callable[[], int]], rounds: int) -> dict[str, list[float]]:
    """Per contender, the us per call of each round; contenders take turns, rotating each round."""
    per_call: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for round_ in range(rounds):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            start = time.perf_counter()
            calls = contenders[name]()
            per_call[name].append((time.perf_counter() - start) / calls * 1e6)
    return per_call


def timer_cost_us(clock: StepClock, number: int = 200_000) -> float:
    """What one wrapped call costs over a bare one (a no-op function), in us."""

    def noop() -> None:
        return None

    timed = clock.wrap("noop", noop)
    bare_start = time.perf_counter()
    for _ in range(number):
        noop()
    bare = time.perf_counter() - bare_start
    timed_start = time.perf_counter()
    for _ in range(number):
        timed()
    cost = (time.perf_counter() - timed_start - bare) / number * 1e6
    clock.reset()
    return cost


FLOOR = "session.get on the hook's Session (floor)"
SHIPPED = "get_pin_status(), as shipped"
INSTRUMENTED = "get_pin_status(), instrumented"


@dataclass
class Measurement:
    per_call: dict[str, list[float]]  # contender -> us per call, one per round
    steps: list[dict[tuple[str, str], float]]  # per instrumented round: (label, "in"/"own") -> us
    wrapped_calls: list[float]  # per instrumented round: wrapped calls per get_pin_status()
    timer_cost: float  # us per wrapped call
    missing: list[Step]

    def step_us(self, label: str, kind: str) -> float | None:
        values = [r[label, kind] for r in self.steps if (label, kind) in r]
        return median(values) if values else None


def measure(calls: int, rounds: int) -> Measurement:
    with SandboxProcess() as sandbox:
        [(instance_id, token)] = sandbox.call("add_instances", prefix="breakdown", count=1)
        os.environ["AIRFLOW_CONN_PLUGZ_BENCH"] = sandbox.plugz_conn_json(instance_id, token)

        from airflow_provider_plugz.hooks.plugz import PlugzHook

        hook = PlugzHook("plugz_bench")
        assert hook.get_pin_status().has_code is False  # reads the connection once, opens the session
        session, url = hook.session, sandbox.pin_url(instance_id, token)
        clock = StepClock()
        instrumented = Instrumented(clock, STEPS)
        result = Measurement({}, [], [], 0.0, instrumented.missing)

        def floor() -> int:
            for _ in range(calls):
                session.get(url, headers={"Client-Token": CLIENT_TOKEN})
            return calls

        def shipped() -> int:
            for _ in range(calls):
                hook.get_pin_status()
            return calls

        def with_timers() -> int:
            clock.reset()
            with instrumented:
                for _ in range(calls):
                    hook.get_pin_status()
            result.steps.append(
                {(label, "in"): ns / calls / 1e3 for label, ns in clock.inclusive.items()}
                | {(label, "own"): ns / calls / 1e3 for label, ns in clock.own.items()}
            )
            result.wrapped_calls.append(sum(clock.calls.values()) / calls)
            return calls

        contenders = {FLOOR: floor, SHIPPED: shipped, INSTRUMENTED: with_timers}
        for fn in contenders.values():  # warm: connection open, code paths hot
            fn()
        result.steps.clear()
        result.wrapped_calls.clear()
        result.per_call = timed_batches(contenders, rounds)
        result.timer_cost = timer_cost_us(clock)
    return result


def report(m: Measurement) -> list[list[str]]:
    """The table's rows: the steps in the hook's order, the remainder, the totals."""
    floor_us, shipped_us, instrumented_us = (median(m.per_call[k]) for k in (FLOOR, SHIPPED, INSTRUMENTED))
    rows = []
    top_level = 0.0
    for step in STEPS:
        name = "  " * step.depth + ("- " if step.depth else "") + step.label
        inclusive, own = m.step_us(step.label, "in"), m.step_us(step.label, "own")
        if step in m.missing:
            rows.append([name, "not found", "", f"`{step.owner}.{step.attribute}` is gone: update STEPS"])
        elif inclusive is None or own is None:
            rows.append([name, "never called", "", ""])
        else:
            top_level += inclusive if step.depth == 0 else 0.0
            rows.append([name, f"{inclusive:.1f}", f"{own:.1f}", ""])
    wrapped = median(m.wrapped_calls)
    return [
        *rows,
        ["rest: the hook's glue, outside every step", f"{instrumented_us - top_level:.1f}", "", ""],
        [f"**{INSTRUMENTED}**", f"{instrumented_us:.1f}", "", f"{wrapped:.0f} wrapped calls"],
        [SHIPPED, f"{shipped_us:.1f}", "", f"{shipped_us - floor_us:+.1f} vs the floor"],
        [FLOOR, f"{floor_us:.1f}", "", ""],
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=300, help="calls per batch (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=9, help="batches per contender (default %(default)s)")
    args = parser.parse_args()

    load_before = load_average()
    m = measure(args.calls, args.rounds)
    print(f"# (a') where PlugzHook.get_pin_status()'s time goes; {machine()}")
    print(f"{args.rounds} rounds x {args.calls} calls per contender, interleaved; medians")
    print(table(["step", "us per call, with nested steps", "us, self", "note"], report(m)))
    wrapped = median(m.wrapped_calls)
    overhead = median(m.per_call[INSTRUMENTED]) - median(m.per_call[SHIPPED])
    print(
        f"timer cost: {m.timer_cost:.2f} us per wrapped call x {wrapped:.0f} wrapped calls = "
        f"~{m.timer_cost * wrapped:.1f} us of the instrumented total (measured: {overhead:+.1f} us "
        "over as shipped)"
    )
    if m.missing:
        print(
            "steps not found (renamed in the hook?): "
            + ", ".join(f"{s.owner}.{s.attribute}" for s in m.missing)
        )
    print(f"load average before/after: {load_before} / {load_average()}")


if __name__ == "__main__":
    main()
