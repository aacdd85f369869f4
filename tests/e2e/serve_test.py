#!/usr/bin/python3
"""End to end: `gitvirt serve` reconciling a real git repository onto a private libvirtd.

usage: serve_test.py GITVIRT_BINARY HARNESS_SCRIPT

The node is libvirt's test driver served by a private daemon (test+unix://), so "by hand"
changes can come from another process (virsh), as they would on a real host. Everything is
checked from outside gitvirt: virsh for the host, HTTP for the status API.
"""
import json
import os
import shutil
import sys
import tempfile
import time
import unittest

from e2e_lib import Libvirtd, Repo, Serve, run, vm_manifest

GITVIRT = ""
HARNESS = ""
INTERVAL = 5  # seconds, source.interval: long enough that "within two intervals" means something
SLACK = 2     # seconds on top: one pass (fetch, observe, plan) takes well under one here


class ServeEndToEnd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="gve2e-")
        cls.libvirtd = Libvirtd(HARNESS, os.path.join(cls.dir, "lv"))
        cls.uri = cls.libvirtd.env["TEST_URI"]
        cls.repo = Repo(os.path.join(cls.dir, "repo"))
        cls.repo.write("vm-a.yaml", vm_manifest("vm-a"))
        cls.repo.commit("vm-a")
        cls.config = os.path.join(cls.dir, "gitvirt.yaml")
        with open(cls.config, "w") as f:
            f.write(f"""apiVersion: gitvirt.dev/v1
kind: ControllerConfig
source: {{repo: {cls.repo.path}, ref: main, interval: {INTERVAL}s}}
nodes:
  - name: hv1
    uri: "{cls.uri}"
    pools: [{{name: default, path: {cls.dir}/pool}}]
sync: {{auto: true, prune: true, selfHeal: true}}
state: {cls.dir}/gitvirt.db
api: {{listen: "127.0.0.1:0"}}
""")
        cls.serve = Serve(GITVIRT, cls.config)

    @classmethod
    def tearDownClass(cls):
        cls.serve.stop()
        cls.libvirtd.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def domains(self):
        out = run("virsh", "-c", self.uri, "list", "--all", "--name").stdout
        return {line.strip() for line in out.splitlines() if line.strip()}

    def domstate(self, name):
        return run("virsh", "-c", self.uri, "domstate", name, check=False).stdout.strip()

    def wait_for(self, what, predicate, seconds):
        deadline = time.time() + seconds
        while time.time() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.2)
        self.fail(f"timed out after {seconds}s waiting for {what}; status: "
                  f"{json.dumps(self.serve.status())[:1500]}")

    def test_1_new_commit_is_applied_within_two_intervals(self):
        first = self.repo.git("rev-parse", "HEAD")
        self.wait_for("the first commit synced", lambda: self.serve.status().get("revision") == first
                      and "vm-a" in self.domains(), 30)
        self.repo.write("vm-b.yaml", vm_manifest("vm-b"))
        second = self.repo.commit("add vm-b")
        committed = time.time()
        self.wait_for("the status to show the new commit",
                      lambda: self.serve.status().get("revision") == second, 2 * INTERVAL + 10)
        seen = time.time() - committed
        self.assertLessEqual(seen, 2 * INTERVAL + SLACK, "the new commit took longer than two intervals")
        self.wait_for("vm-b to exist", lambda: "vm-b" in self.domains(), 20)
        self.wait_for("vm-b running", lambda: self.domstate("vm-b") == "running", 10)
        print(f"new commit in /api/v1/status {seen:.1f}s after the commit, vm-b running after "
              f"{time.time() - committed:.1f}s (interval {INTERVAL}s)")

    def test_2_an_invalid_commit_changes_nothing(self):
        good = self.repo.git("rev-parse", "HEAD")
        before = self.domains()
        self.repo.write("broken.yaml", vm_manifest("vm-c").replace("memory: 512MiB", "memory: 512 megs"))
        bad = self.repo.commit("broken memory")
        status = self.wait_for("the invalid commit to be reported", lambda: (lambda s: s if
                               s.get("fetchedRevision") == bad and s.get("diagnostics") else None)(
                               self.serve.status()), 2 * INTERVAL + 10)
        self.assertEqual(status["revision"], good, "the last good commit stays in force")
        self.assertEqual(status["lastSyncResult"], "invalid")
        diagnostic = status["diagnostics"][0]
        self.assertEqual(diagnostic["file"], "broken.yaml")
        self.assertEqual(diagnostic["line"], 8)
        self.assertIn("broken.yaml:8", status["lastError"])
        time.sleep(2 * INTERVAL)
        self.assertEqual(self.domains(), before, "nothing may change for an invalid commit")
        self.repo.remove("broken.yaml")
        fixed = self.repo.commit("fix")
        self.wait_for("the fixed commit", lambda: self.serve.status().get("revision") == fixed, 2 * INTERVAL + 10)

    def test_3_self_heal_starts_a_vm_stopped_by_hand(self):
        self.wait_for("vm-a running", lambda: self.domstate("vm-a") == "running", 20)
        run("virsh", "-c", self.uri, "destroy", "vm-a")
        self.assertEqual(self.domstate("vm-a"), "shut off")
        self.wait_for("vm-a started again", lambda: self.domstate("vm-a") == "running", 2 * INTERVAL + 15)

    def test_4_the_api_is_read_only(self):
        for path in ["/", "/healthz", "/api/v1/status", "/api/v1/resources", "/api/v1/jobs",
                     "/api/v1/resources/VirtualMachine/vm-a", "/api/v1/nodes", "/nope"]:
            for method in ["POST", "PUT", "DELETE", "PATCH"]:
                code, _ = self.serve.get(path, method=method)
                self.assertEqual(code, 405, f"{method} {path}")
        code, body = self.serve.get("/api/v1/resources?kind=VirtualMachine")
        self.assertEqual(code, 200)
        names = [r["name"] for r in json.loads(body)["items"]]
        self.assertIn("vm-a", names)

    def test_5_tokens_when_enabled(self):
        tokens = os.path.join(self.dir, "tokens")
        with open(tokens, "w") as f:
            f.write("# the e2e token\ns3cr3t-token\n")
        config = self.config + ".tokens.yaml"
        with open(self.config) as src, open(config, "w") as dst:
            dst.write(src.read().replace('api: {listen: "127.0.0.1:0"}',
                                         f'api: {{listen: "127.0.0.1:0", tokensFile: {tokens}}}'))
        self.serve.stop()  # one serve per state file
        serve = Serve(GITVIRT, config)
        try:
            self.assertEqual(serve.get("/api/v1/status")[0], 401)
            self.assertEqual(serve.get("/api/v1/status", token="wrong")[0], 401)
            self.assertEqual(serve.get("/api/v1/status", token="s3cr3t-token")[0], 200)
            self.assertEqual(serve.get("/healthz")[0], 200)
        finally:
            serve.stop()
            type(self).serve = Serve(GITVIRT, self.config)


if __name__ == "__main__":
    GITVIRT, HARNESS = sys.argv[1], sys.argv[2]
    unittest.main(argv=[sys.argv[0], "-v"])
