#!/usr/bin/env python3
"""Runs `cargo test --all-targets`'s test binaries side by side, in lanes.

    scripts/test-lanes.py [--lanes N] [--also 'LABEL=COMMAND' ...] [-- ARGS FOR EVERY BINARY]

(N: RIVETR_TEST_LANES, else 3.)

`cargo test` runs its binaries one after another. Most of Rivetr's integration tests wait:
for a container to start, a build, a health check, a reconnect. Run one at a time, the 30
binaries took 23 minutes on a 2-CPU machine. Here cargo builds them (`--no-run`), then LANES
workers take the binaries, longest first (by the durations in `LONGEST`), each binary as cargo
would run it: from the repository root, with the test threads it would have. The integration
tests are one binary with a module per file of tests/ (tests/integration.rs); each module is
a job of its own, that binary run with exactly the module's tests. Every test already names
what it creates so that another process can share the engines
(`tests/common/platform.rs::unique_name`, containers named after their installation), which
is what running binaries side by side asks of them.

A binary's output is printed whole when it ends, under cargo's own "Running" line, with its
duration, so the log reads as `cargo test`'s does. Every binary runs even when one fails;
the exit status is 1 if any failed, and the failed ones are named at the end.

`--also LABEL=COMMAND` runs a shell command as one more job in the lanes (the test command
runs schemathesis and the packages' test so), in its place in `LONGEST` like any job; one
not there starts after all that are.
"""

import argparse
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Seconds each job took in the lanes of a full run of the test command on a 2-CPU machine
# (2026-12-05, ci35: 3 lanes, 1,102 s), for the order in which they start: longest first.
# The packages' job was not here then and started last, after every other job: it ran alone
# for its last 5 minutes while two lanes had nothing left. Its release build (and the one
# tests/regression.rs makes, issue_11_the_package_build_uses_cargo_target_dir) is done by
# the time the lanes start: the test command builds it first.
LONGEST = {
    "schemathesis": 401,
    "tests/dashboard_e2e.rs": 384,
    "packages": 341,
    "tests/regression.rs": 265,
    "tests/api_backups.rs": 190,
    "tests/previews.rs": 173,
    "tests/database_links.rs": 148,
    "tests/runtime.rs": 140,
    "tests/engine.rs": 95,
    "tests/databases.rs": 64,
    "tests/swarm.rs": 64,
    "tests/faults.rs": 61,
    "tests/api_databases.rs": 59,
    "tests/notification_events.rs": 43,
    "tests/smuggling.rs": 30,
    "tests/notifications.rs": 28,
    "tests/cli.rs": 27,
    "tests/api_apps.rs": 21,
    "tests/private_repos.rs": 20,
    "tests/webhook_deploys.rs": 14,
    "tests/metrics.rs": 14,
    "tests/acme.rs": 13,
    "tests/proxy.rs": 12,
}


class Job:
    def __init__(self, label, argv, shell=False):
        self.label = label
        self.argv = argv
        self.shell = shell
        self.seconds = None
        self.status = None


def build_test_binaries():
    """Builds every test target and returns a Job per test binary, in cargo's order."""
    cmd = [
        "cargo", "test", "--all-targets", "--locked", "--no-run",
        "--message-format=json-render-diagnostics",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        sys.exit(f"test-lanes: {' '.join(cmd)} failed ({proc.returncode})")
    jobs = []
    for line in proc.stdout.splitlines():
        message = json.loads(line)
        if message.get("reason") != "compiler-artifact":
            continue
        if not message["profile"]["test"] or not message.get("executable"):
            continue
        source = Path(message["target"]["src_path"]).relative_to(ROOT)
        kind = message["target"]["kind"][0]
        if kind == "test":
            jobs.extend(module_jobs(message["executable"]))
        else:
            jobs.append(Job(f"unittests {source}", [message["executable"]]))
    return jobs


def module_jobs(binary):
    """A Job per module of the integration test binary (tests/integration.rs: one module per
    file of tests/), each running exactly that module's tests, in a process of its own as when
    every file was a binary: a module's tests may share state only with each other."""
    listed = subprocess.run(
        [binary, "--list", "--format", "terse"], cwd=ROOT, stdout=subprocess.PIPE, text=True,
        env=dict(os.environ, CARGO_MANIFEST_DIR=str(ROOT)), check=True,
    ).stdout
    modules = {}
    for line in listed.splitlines():
        name, _, kind = line.rpartition(": ")
        if kind == "test":
            modules.setdefault(name.split("::")[0], []).append(name)
    return [Job(f"tests/{module}.rs", [binary, "--exact", *names])
            for module, names in modules.items()]


def run(job, extra_args, out_lock):
    # What cargo sets for a test binary that one of ours reads; not for a shell job, whose
    # cargo builds would see it (see tests/regression.rs, the package build).
    env = dict(os.environ) if job.shell else dict(os.environ, CARGO_MANIFEST_DIR=str(ROOT))
    with tempfile.TemporaryFile(mode="w+") as out:
        with out_lock:
            print(f"test-lanes: started {job.label}", flush=True)
        started = time.monotonic()
        argv = job.argv if job.shell else job.argv + extra_args
        job.status = subprocess.call(
            argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, shell=job.shell,
        )
        job.seconds = time.monotonic() - started
        out.seek(0)
        with out_lock:
            verdict = "ok" if job.status == 0 else f"FAILED (exit {job.status})"
            print(f"\n     Running {job.label} ({job.argv[0] if not job.shell else 'sh -c'}): "
                  f"{verdict} in {job.seconds:.1f} s", flush=True)
            sys.stdout.write(out.read())
            sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lanes", type=int, default=int(os.environ.get("RIVETR_TEST_LANES", 3)))
    parser.add_argument("--also", action="append", default=[], metavar="LABEL=COMMAND")
    parser.add_argument("args", nargs="*", help="passed to every test binary (after --)")
    options = parser.parse_args()

    jobs = build_test_binaries()
    for also in options.also:
        label, _, command = also.partition("=")
        jobs.append(Job(label, command, shell=True))
    # Longest first: the last lane to finish then holds a short job, not regression.rs.
    jobs.sort(key=lambda job: LONGEST.get(job.label, 0), reverse=True)

    todo = queue.Queue()
    for job in jobs:
        todo.put(job)
    out_lock = threading.Lock()

    def lane():
        while True:
            try:
                job = todo.get_nowait()
            except queue.Empty:
                return
            run(job, options.args, out_lock)

    started = time.monotonic()
    lanes = [threading.Thread(target=lane) for _ in range(max(1, options.lanes))]
    for thread in lanes:
        thread.start()
    for thread in lanes:
        thread.join()
    wall = time.monotonic() - started

    total = sum(job.seconds for job in jobs)
    print(f"\ntest-lanes: {len(jobs)} jobs in {options.lanes} lanes: {wall:.0f} s "
          f"(one after another they took {total:.0f} s); slowest:")
    for job in sorted(jobs, key=lambda j: j.seconds, reverse=True)[:8]:
        print(f"  {job.seconds:7.1f} s  {job.label}")
    failed = [job.label for job in jobs if job.status != 0]
    if failed:
        print(f"test-lanes: FAILED: {', '.join(failed)}")
        return 1
    print("test-lanes: every test binary passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
