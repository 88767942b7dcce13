"""(b) Import cost: what importing operators and sensors adds on top of ``import airflow.sdk``,
each in a fresh interpreter, ours side by side with the HTTP provider's.

Bytecode: PYTHONDONTWRITEBYTECODE is often set here, which would make every run recompile
Airflow. The children run with it unset and PYTHONPYCACHEPREFIX=benchmarks/.cache/pycache,
after one untimed warm-up run per scenario, so every timed run loads warm bytecode.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from _common import HERE, ROOT, load_average, machine, median, table

SCENARIOS = {
    "nothing (noise floor)": [],
    "ours: PlugzPinStatusOperator, PlugzPinBranchOperator, PlugzPinStatusSensor": [
        "from airflow_provider_plugz.operators.plugz import PlugzPinBranchOperator, PlugzPinStatusOperator",
        "from airflow_provider_plugz.sensors.plugz import PlugzPinStatusSensor",
    ],
    "ours: the above + PlugzPinAuditOperator": [
        "from airflow_provider_plugz.operators.plugz import PlugzPinBranchOperator, PlugzPinStatusOperator",
        "from airflow_provider_plugz.sensors.plugz import PlugzPinStatusSensor",
        "from airflow_provider_plugz.operators.audit import PlugzPinAuditOperator",
    ],
    "providers-http: HttpOperator, HttpSensor": [
        "from airflow.providers.http.operators.http import HttpOperator",
        "from airflow.providers.http.sensors.http import HttpSensor",
    ],
}

HEAVY = [
    "httpx",
    "requests",
    "urllib3",
    "tenacity",
    "aiohttp",
    "airflow_provider_plugz.hooks.plugz",
    "airflow_provider_plugz.triggers.plugz",
    "airflow_provider_plugz.testing.sandbox",
    "airflow_provider_plugz._protocol",
    "airflow.providers.http.hooks.http",
]

CHILD = """
import json, sys, time
t0 = time.perf_counter()
import airflow.sdk
t1 = time.perf_counter()
before = set(sys.modules)
{imports}
t2 = time.perf_counter()
heavy = {{m: ("already, by airflow.sdk" if m in before else "LOADED" if m in sys.modules else "not loaded")
         for m in {heavy!r}}}
added = len(set(sys.modules) - before)
print(json.dumps({{"sdk": t1 - t0, "added": t2 - t1, "modules": added, "heavy": heavy}}))
"""


def run(imports: list[str], env: dict[str, str]) -> dict[str, object]:
    code = CHILD.format(imports="\n".join(imports) or "pass", heavy=HEAVY)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, cwd=ROOT
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=9, help="timed runs per scenario (default %(default)s)")
    args = parser.parse_args()

    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(HERE / ".cache" / "pycache")
    for imports in SCENARIOS.values():  # warm the bytecode cache
        run(imports, env)

    load_before = load_average()
    results: dict[str, list[dict[str, object]]] = {name: [] for name in SCENARIOS}
    for _ in range(args.runs):  # interleaved: one run of each scenario per pass
        for name, imports in SCENARIOS.items():
            results[name].append(run(imports, env))

    rows = []
    for name, runs in results.items():
        added = [float(r["added"]) * 1000 for r in runs]  # type: ignore[arg-type]
        sdk = [float(r["sdk"]) * 1000 for r in runs]  # type: ignore[arg-type]
        rows.append(
            [
                name,
                f"{median(added):.1f}",
                f"{min(added):.1f}-{max(added):.1f}",
                runs[0]["modules"],
                f"{median(sdk):.0f}",
            ]
        )
    print(f"# (b) import cost, median of {args.runs} fresh interpreters, warm bytecode; {machine()}")
    print(table(["imports", "adds (ms, median)", "range", "modules added", "import airflow.sdk (ms)"], rows))
    print()
    heavy_rows = [[m] + [str(results[name][0]["heavy"][m]) for name in list(SCENARIOS)[1:]] for m in HEAVY]  # type: ignore[index]
    print(table(["module", *list(SCENARIOS)[1:]], heavy_rows))
    print(f"load average before/after: {load_before} / {load_average()}")


if __name__ == "__main__":
    main()
