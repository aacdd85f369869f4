#!/usr/bin/python3
"""End to end: `gitvirt serve`'s loop around its git source, on a simulated node.

usage: serve_loop_test.py GITVIRT_BINARY

  lock      while serve runs, a second serve, `plan` and `apply` on its state file exit 1 naming
            serve's pid; once it stopped, `plan` runs
  SIGHUP    with `source.interval: 1h` a new commit is not fetched by itself; SIGHUP fetches it
            at once
Checked from outside: exit codes and stderr, /api/v1/status.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

from e2e_lib import Repo, Serve, run, wait_for

GITVIRT = ""


def vm(name):
    return f"""apiVersion: gitvirt.dev/v1
kind: VirtualMachine
metadata: {{name: {name}}}
spec:
  node: hv1
  vcpus: 1
  memory: 512MiB
  disks: [{{name: root, size: 1GiB}}]
"""


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

    def start(self, interval):
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
        self.serve = Serve(GITVIRT, self.config)

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


if __name__ == "__main__":
    GITVIRT = sys.argv[1]
    unittest.main(argv=[sys.argv[0], "-v"])
