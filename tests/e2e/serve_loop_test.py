#!/usr/bin/python3
"""End to end: `gitvirt serve`'s loop around its git source, on a simulated node.

usage: serve_loop_test.py GITVIRT_BINARY

  lock      while serve runs, a second serve, `plan` and `apply` on its state file exit 1 naming
            serve's pid; once it stopped, `plan` runs
  SIGHUP    with `source.interval: 1h` a new commit is not fetched by itself; SIGHUP fetches it
            at once
  invalid   an invalid commit is loaded once: serve keeps fetching (gitvirt_source_fetches_total
            grows) but does not load it again (gitvirt_source_loads_total, the sync history in
            the state file) until a newer commit arrives
  backoff   an apply that keeps failing (GITVIRT_FAULTS=define:1+, test builds) is retried after
            about 10 s, then 20 s (job timestamps from /api/v1/jobs, generous bounds); a new
            commit is tried at once, without waiting for the backoff
Checked from outside: exit codes and stderr, /api/v1/status, /api/v1/jobs, /metrics, sqlite3.
"""
import datetime
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

from e2e_lib import Repo, Serve, run, vm_manifest, wait_for

GITVIRT = ""


def vm(name):
    return vm_manifest(name, network=False, node="hv1")


def metric(serve, name):
    code, body = serve.get("/metrics")
    assert code == 200, body
    m = re.search(rf"^{name} (\S+)$", body, re.M)
    assert m, f"{name} not in /metrics"
    return float(m.group(1))


def parse_time(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class ServeLoopEndToEnd(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="gve2eloop-")
        self.repo = Repo(os.path.join(self.dir, "repo"))
        self.repo.write("vm-a.yaml", vm("vm-a"))
        self.first = self.repo.commit("vm-a")
        self.state = os.path.join(self.dir, "state", "gitvirt.db")
        self.serve = None

    def tearDown(self):
        if self.serve:
            self.serve.stop()
        shutil.rmtree(self.dir, ignore_errors=True) if not os.environ.get("KEEP") else print(self.dir)

    def start(self, interval, env=None):
        self.config = os.path.join(self.dir, "gitvirt.yaml")
        with open(self.config, "w") as f:
            f.write(f"""apiVersion: gitvirt.dev/v1
kind: ControllerConfig
source: {{repo: {self.repo.path}, ref: main, interval: {interval}}}
nodes:
  - name: hv1
    uri: sim:{self.dir}/state/hv1.xml
    pools: [{{name: default, path: {self.dir}/pool}}]
sync: {{auto: true}}
state: {self.state}
api: {{listen: "127.0.0.1:0"}}
""")
        self.serve = Serve(GITVIRT, self.config, env=None if env is None else {**os.environ, **env})

    def explain(self):
        return "status: " + json.dumps(self.serve.status())[:1500]

    def wait_revision(self, revision, seconds):
        wait_for(f"revision {revision[:12]} in force", lambda: self.serve.status().get("revision") == revision,
                 seconds, self.explain)

    def test_lock_refuses_a_second_serve_plan_and_apply(self):
        self.start("1h")
        self.wait_revision(self.first, 20)
        holder = f"state file {self.state} is locked by process {self.serve.proc.pid}"
        # All three wait the lock's 5 s before giving up: run them side by side.
        argv = {"serve": ["serve", "--listen", "127.0.0.1:0"], "plan": ["plan"], "apply": ["apply", "--auto-approve"]}
        procs = {name: subprocess.Popen([GITVIRT, "--config", self.config, *args], stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for name, args in argv.items()}
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=60)
            with self.subTest(command=name):
                self.assertEqual(proc.returncode, 1, out + err)
                self.assertIn(holder, err)
                self.assertNotIn("Dashboard", out)
        self.assertIsNone(self.serve.proc.poll(), "the first serve keeps running")
        self.serve.stop()
        self.serve = None
        out = run(GITVIRT, "--config", self.config, "plan", check=False, stdin=subprocess.DEVNULL, timeout=60)
        self.assertEqual(out.returncode, 0, "the lock is released with serve: " + out.stdout + out.stderr)

    def test_sighup_fetches_at_once(self):
        self.start("1h")
        self.wait_revision(self.first, 20)
        self.repo.write("vm-b.yaml", vm("vm-b"))
        second = self.repo.commit("vm-b")
        # A pass runs at least every 5 s; with a 1h interval none of them fetches.
        time.sleep(6)
        self.assertEqual(self.serve.status()["revision"], self.first, "fetched before SIGHUP")
        self.assertEqual(self.serve.status()["fetchedRevision"], self.first)
        hup = time.time()
        self.serve.proc.send_signal(signal.SIGHUP)
        self.wait_revision(second, 5)
        took = time.time() - hup
        names = lambda: {r["name"]: r["sync"] for r in json.loads(
            self.serve.get("/api/v1/resources?kind=VirtualMachine")[1])["items"]}
        wait_for("vm-b Synced", lambda: names().get("vm-b") == "Synced", 10, self.explain)
        self.assertIsNone(self.serve.proc.poll(), "SIGHUP does not stop serve")
        print(f"new commit in /api/v1/status {took:.2f}s after SIGHUP")

    def test_an_invalid_commit_is_not_loaded_again_until_a_new_one(self):
        self.start("1s")
        self.wait_revision(self.first, 20)
        self.repo.write("broken.yaml", vm("vm-c").replace("memory: 512MiB", "memory: 512 megs"))
        bad = self.repo.commit("broken")
        wait_for("the invalid commit reported", lambda: (lambda s: s.get("fetchedRevision") == bad and
                 s.get("lastSyncResult") == "invalid")(self.serve.status()), 10, self.explain)
        fetches, loads = metric(self.serve, "gitvirt_source_fetches_total"), metric(self.serve, "gitvirt_source_loads_total")
        time.sleep(4)
        self.assertGreaterEqual(metric(self.serve, "gitvirt_source_fetches_total"), fetches + 2, "serve keeps fetching")
        self.assertEqual(metric(self.serve, "gitvirt_source_loads_total"), loads, "the invalid commit was loaded again")
        status = self.serve.status()
        self.assertEqual(status["revision"], self.first)
        self.assertTrue(status["newestRefused"])
        with sqlite3.connect(f"file:{self.state}?mode=ro", uri=True) as db:
            rows = db.execute("SELECT result FROM sync_history WHERE revision = ?", (bad,)).fetchall()
        self.assertEqual(rows, [("invalid",)], "one sync record for the invalid commit")
        # A newer commit, still invalid: loaded (once).
        self.repo.write("broken.yaml", vm("vm-c").replace("memory: 512MiB", "memory: 1 lot"))
        worse = self.repo.commit("still broken")
        wait_for("the second invalid commit", lambda: self.serve.status().get("fetchedRevision") == worse, 10,
                 self.explain)
        time.sleep(2)
        self.assertEqual(metric(self.serve, "gitvirt_source_loads_total"), loads + 1)
        self.repo.remove("broken.yaml")
        fixed = self.repo.commit("fixed")
        self.wait_revision(fixed, 10)
        self.assertEqual(metric(self.serve, "gitvirt_source_loads_total"), loads + 2)
        self.assertFalse(self.serve.status()["newestRefused"])

    def sync_jobs(self):
        code, body = self.serve.get("/api/v1/jobs?kind=sync&limit=100")
        self.assertEqual(code, 200, body)
        return sorted(json.loads(body)["items"], key=lambda j: j["createdAt"] + j["id"])

    def test_a_failing_apply_backs_off_and_a_new_commit_retries_at_once(self):
        self.start("1s", env={"GITVIRT_FAULTS": "define:1+"})  # every define fails
        failed = lambda n: (lambda jobs: jobs if len(jobs) >= n and all(j["finished"] for j in jobs) else None)(
            self.sync_jobs())
        # 10 s, then 20 s of backoff (controller.cc), each after the previous job finished.
        jobs = wait_for("three failed sync jobs", lambda: failed(3), 60, self.explain)
        self.assertEqual(len(jobs), 3, "no retry before its backoff is up")
        for j in jobs:
            self.assertEqual(j["status"], "rolled-back", j)  # the default strategy, FULL
            self.assertEqual(j["revision"], self.first)
            self.assertIn("injected fault: define", j["error"])
        gaps = [parse_time(b["startedAt"]) - parse_time(a["finishedAt"]) for a, b in zip(jobs, jobs[1:])]
        print(f"retry gaps: {gaps} s")
        # Timestamps have one-second resolution; a pass may start up to a second late on a busy host.
        self.assertTrue(9 <= gaps[0] <= 16, gaps)
        self.assertTrue(19 <= gaps[1] <= 27, gaps)
        # Passes go on during the backoff (1 s interval); the failure stays reported.
        time.sleep(3)
        self.assertEqual(len(self.sync_jobs()), 3)
        self.assertEqual(self.serve.status()["lastSyncResult"], "failed")
        # Backing off for 40 s now. A new commit is fetched within its interval and tried at once.
        self.repo.write("vm-b.yaml", vm("vm-b"))
        second = self.repo.commit("vm-b")
        committed = time.time()
        jobs = wait_for("a job for the new commit", lambda: (lambda js: js if js[-1]["revision"] == second else None)(
            self.sync_jobs()), 10, self.explain)
        took = time.time() - committed
        self.assertEqual(len(jobs), 4)
        print(f"new commit tried {took:.1f}s after it was made, during a 40 s backoff")


if __name__ == "__main__":
    GITVIRT = sys.argv[1]
    unittest.main(argv=[sys.argv[0], "-v"])
