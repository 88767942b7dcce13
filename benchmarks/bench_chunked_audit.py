"""(c') A fleet of 10,000 numbers, the sandbox adding 50 ms to every answer: one
PlugzPinAuditOperator task, against the same fleet in chunks (``audit_chunks``) of 1,000 and of
500, each chunk a task of its own merged by ``PlugzAuditMergeOperator``.

Every task is a fresh interpreter, as a mapped task instance on a worker is: it pays what a real
task pays, Airflow's secrets masker learning its connections' passwords included (quadratic in
the connections one process reads: the reason to chunk). The chunk tasks run ``--slots`` at a
time (default 2, the cores here), as an executor with that many slots would run them; the merge
runs in this process, on the chunks' reports. Reported per layout: the fleet's wall time (first
task start to merge end), the CPU of all tasks, the masker's part of it, CPU per number, and the
longest task.

The one-task layout of 10,000 takes over half an hour here (the masker): ``--one-task-max``
(default 10,000) skips it above that many numbers; ``--instances 2000`` gives a quick look.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _common import HERE, ROOT, MaskerClock, SandboxProcess, load_average, machine, table


class FakeTaskInstance:
    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def child(args: argparse.Namespace) -> None:
    """One task: its connections into the environment (as a secrets backend would hold them),
    then a cold audit of them; its report and timings as JSON on the last line."""
    import airflow.sdk  # noqa: F401 - loaded before the clock starts, as in a worker

    from airflow_provider_plugz.operators.audit import PlugzPinAuditOperator

    spec = json.loads(Path(args.child).read_text(encoding="utf-8"))
    os.environ.update(spec["env"])  # in-process: 10,000 of them would not fit in an exec's environment
    masker = MaskerClock()
    operator = PlugzPinAuditOperator(
        task_id="audit", plugz_conn_ids=spec["conn_ids"], max_concurrency=args.max_concurrency
    )
    cpu, start = time.process_time(), time.perf_counter()
    report = operator.execute({"ti": FakeTaskInstance()})  # type: ignore[arg-type]
    timings = {
        "wall": time.perf_counter() - start,
        "cpu": time.process_time() - cpu,
        "masker": masker.seconds,
    }
    print("RESULT " + json.dumps({"timings": timings, "report": report}), flush=True)


def run_task(
    conn_ids: list[str], conns: dict[str, str], max_concurrency: int, workdir: Path
) -> dict[str, Any]:
    """One task in a fresh interpreter; its wall time is measured here, start-up included."""
    spec = workdir / f"task-{conn_ids[0]}.json"
    env = {f"AIRFLOW_CONN_{c.upper()}": conns[c] for c in conn_ids}
    spec.write_text(json.dumps({"conn_ids": conn_ids, "env": env}), encoding="utf-8")
    command = [
        sys.executable,
        str(HERE / "bench_chunked_audit.py"),
        "--child",
        str(spec),
        "--max-concurrency",
        str(max_concurrency),
    ]
    start = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=True)
    elapsed = time.perf_counter() - start
    [line] = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    result: dict[str, Any] = json.loads(line[len("RESULT ") :])
    result["timings"]["process_wall"] = elapsed
    return result


def run_layout(
    conn_ids: list[str], conns: dict[str, str], chunk_size: int, args: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    """The fleet in chunks of ``chunk_size`` (one chunk: one task, no merge), ``--slots`` at a time."""
    from airflow_provider_plugz.operators.audit import PlugzAuditMergeOperator, audit_chunks

    class QuietMerge(PlugzAuditMergeOperator):
        """The merge step, its summary table (which would bury the results) left unlogged."""

        @property
        def log(self) -> Any:
            quiet = logging.getLogger("bench_chunked_audit.merge")
            quiet.setLevel(logging.WARNING)
            return quiet

    chunks = audit_chunks(conn_ids, chunk_size, max_map_length=1024)
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.slots) as pool:
        results = list(pool.map(lambda c: run_task(c, conns, args.max_concurrency, workdir), chunks))
    merge_start = time.perf_counter()
    reports = [r["report"] for r in results]
    if len(chunks) > 1:
        merge = QuietMerge(task_id="merge", reports=reports, chunks=chunks)
        merged = merge.execute({"ti": FakeTaskInstance()})  # type: ignore[arg-type]
    else:
        [merged] = reports
    end = time.perf_counter()
    assert merged["total"] == len(conn_ids), merged["total"]
    assert merged["errors"] == 0, merged["errors"]
    timings = [r["timings"] for r in results]
    return {
        "tasks": len(chunks),
        "wall": end - start,
        "merge": end - merge_start,
        "cpu": sum(t["cpu"] for t in timings),
        "masker": sum(t["masker"] for t in timings),
        "longest": max(t["process_wall"] for t in timings),
        "xcom_bytes": len(json.dumps(merged)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--max-concurrency", type=int, default=50)
    parser.add_argument("--chunk-sizes", default="1000,500", help="comma-separated (default: %(default)s)")
    parser.add_argument("--slots", type=int, default=2, help="chunk tasks at a time (default: %(default)s)")
    parser.add_argument(
        "--one-task-max", type=int, default=10_000, help="skip the one-task layout above this"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    layouts = [int(size) for size in args.chunk_sizes.split(",") if size]
    if args.instances <= args.one_task_max:
        layouts.insert(0, args.instances)

    with SandboxProcess(latency=args.latency) as sandbox, tempfile.TemporaryDirectory() as tmp:
        pairs = sandbox.call("add_instances", prefix="chunk", count=args.instances)
        conns = {f"chunk_{n}": sandbox.plugz_conn_json(i, t) for n, (i, t) in enumerate(pairs)}
        conn_ids = list(conns)
        load_before = load_average()
        rows = []
        for size in layouts:
            result = run_layout(conn_ids, conns, size, args, Path(tmp))
            one_task_ideal = args.instances * args.latency / args.max_concurrency
            rows.append(
                [
                    "one task" if result["tasks"] == 1 else f"chunks of {size}",
                    result["tasks"],
                    f"{result['wall']:.1f}",
                    f"{result['cpu']:.1f}",
                    f"{result['masker']:.1f}",
                    f"{result['cpu'] / args.instances * 1000:.2f}",
                    f"{result['longest']:.1f}",
                    f"{result['merge']:.2f}",
                    f"{result['xcom_bytes'] / 1e6:.2f}",
                ]
            )
            print(f"  done: {rows[-1][0]} in {result['wall']:.1f} s", file=sys.stderr, flush=True)

    print(
        f"# (c') {args.instances} numbers, {args.latency * 1000:.0f} ms latency, max_concurrency="
        f"{args.max_concurrency} per task, {args.slots} task(s) at a time; one task's ideal "
        f"{one_task_ideal:.1f} s; {machine()}"
    )
    print(
        table(
            [
                "layout",
                "tasks",
                "fleet wall (s)",
                "CPU, all tasks (s)",
                "of which masker (s)",
                "CPU per number (ms)",
                "longest task (s)",
                "merge (s)",
                "report (MB)",
            ],
            rows,
        )
    )
    print(f"load average before/after: {load_before} / {load_average()}")


if __name__ == "__main__":
    main()
