#!/usr/bin/python3
"""End to end: `plan`, `diff` and `apply` reading a git repository (`--repo URL --ref REF
--path DIR`) instead of a working copy, against a simulated node.

usage: git_ref_test.py GITVIRT_BINARY

The repository has a tag, a branch and main at three different commits, each declaring one more
VM under `vms/`, and an invalid manifest outside `vms/` that only `--path vms` keeps out. Checked
from outside: exit codes, `plan -o json` and `plan --out FILE` (the commit recorded), what `apply
FILE` made (`get vms -o json`: the revision that applied each VM), the messages on stderr.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from e2e_lib import Repo, run, vm_manifest

GITVIRT = ""


def vm(name):
    return vm_manifest(name, network=False, node="hv1")


class GitRefEndToEnd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="gve2eref-")
        cls.repo = Repo(os.path.join(cls.dir, "repo"))
        os.makedirs(os.path.join(cls.repo.path, "vms"))
        os.makedirs(os.path.join(cls.repo.path, "other"))
        cls.repo.write("vms/web-01.yaml", vm("web-01"))
        cls.repo.write("other/broken.yaml", vm("broken").replace("memory: 512MiB", "memory: lots"))
        cls.tagged = cls.repo.commit("web-01")
        cls.repo.git("tag", "-a", "v1", "-m", "release 1")  # annotated: peeled to its commit
        cls.repo.write("vms/db-01.yaml", vm("db-01"))
        cls.main = cls.repo.commit("db-01")
        cls.repo.git("checkout", "-q", "-b", "feature")
        cls.repo.write("vms/cache-01.yaml", vm("cache-01"))
        cls.feature = cls.repo.commit("cache-01")
        cls.repo.git("checkout", "-q", "main")
        cls.url = "file://" + cls.repo.path
        cls.config = os.path.join(cls.dir, "gitvirt.yaml")
        with open(cls.config, "w") as f:
            f.write(f"""apiVersion: gitvirt.dev/v1
kind: ControllerConfig
source: {{repo: {cls.url}, ref: main, subPath: vms}}
nodes:
  - name: hv1
    uri: sim:{cls.dir}/state/hv1.xml
    pools: [{{name: default, path: {cls.dir}/pool}}]
state: {cls.dir}/state/gitvirt.db
""")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True) if not os.environ.get("KEEP") else print(cls.dir)

    def gv(self, *args):
        return run(GITVIRT, "--config", self.config, *args, check=False, stdin=subprocess.DEVNULL, timeout=120)

    def plan(self, ref, path="vms"):
        out = self.gv("plan", "-o", "json", "--repo", self.url, "--ref", ref, "--path", path)
        self.assertEqual(out.returncode, 0, f"plan --ref {ref}\n{out.stdout}\n{out.stderr}")
        return json.loads(out.stdout)

    @staticmethod
    def creates(plan):
        return sorted(a["target"]["name"] for a in plan["actions"] if a["type"] == "create")

    def test_1_each_kind_of_ref_plans_its_own_commit(self):
        for ref, commit, vms in [("v1", self.tagged, ["web-01"]),
                                 ("main", self.main, ["db-01", "web-01"]),
                                 ("feature", self.feature, ["cache-01", "db-01", "web-01"]),
                                 (self.main, self.main, ["db-01", "web-01"]),            # full SHA
                                 (self.feature[:12], self.feature, ["cache-01", "db-01", "web-01"])]:
            with self.subTest(ref=ref):
                plan = self.plan(ref)
                self.assertEqual(plan["revision"], commit)
                self.assertEqual(plan["source"], f"git:{self.url}@{ref}:vms")
                self.assertEqual(self.creates(plan), vms)

    def test_2_path_keeps_the_rest_of_the_repository_out(self):
        out = self.gv("plan", "--repo", self.url, "--ref", "v1", "--path", ".")
        self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
        self.assertIn("other/broken.yaml", out.stderr)
        self.assertIn("nothing was planned", out.stderr)
        # The invalid file is in every commit; under --path vms it is never read.
        self.assertEqual(self.creates(self.plan("v1", path="vms")), ["web-01"])

    def test_3_a_saved_plan_records_the_commit_and_apply_applies_it(self):
        saved = os.path.join(self.dir, "v1.plan.json")
        out = self.gv("plan", "--repo", self.url, "--ref", "v1", "--path", "vms", "--out", saved)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        with open(saved) as f:
            plan = json.load(f)
        self.assertEqual(plan["revision"], self.tagged)
        self.assertEqual(plan["source"], f"git:{self.url}@v1:vms")
        out = self.gv("apply", saved)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        out = self.gv("get", "vms", "-o", "json", "--repo", self.url, "--ref", "v1", "--path", "vms")
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        vms = {r["name"]: r for r in json.loads(out.stdout)["items"]}
        self.assertEqual(set(vms), {"web-01"})
        self.assertEqual(vms["web-01"]["revision"], self.tagged, "the VM records the commit that applied it")
        self.assertEqual(vms["web-01"]["sync"], "Synced")
        # The same plan again: the VM it would create exists now.
        out = self.gv("apply", saved)
        self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
        self.assertIn("the plan is stale", out.stderr)

    def test_4_a_plan_of_a_branch_that_moved_is_stale(self):
        branch = os.path.join(self.dir, "feature.plan.json")
        out = self.gv("plan", "--repo", self.url, "--ref", "feature", "--path", "vms", "--out", branch)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.repo.git("checkout", "-q", "feature")
        self.repo.write("vms/cache-02.yaml", vm("cache-02"))
        moved = self.repo.commit("cache-02")
        self.repo.git("checkout", "-q", "main")
        out = self.gv("apply", branch)
        self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
        self.assertIn(f"the source changed: revision {self.feature} then, {moved} now", out.stderr)

    def test_5_diff_reads_the_ref(self):
        out = self.gv("diff", "--repo", self.url, "--ref", self.main, "--path", "vms")
        self.assertEqual(out.returncode, 1, out.stdout + out.stderr)  # kubectl's: 1 = differences
        self.assertIn("desired/db-01", out.stdout)
        self.assertNotIn("cache-01", out.stdout)

    def test_6_a_bad_ref_is_an_error_that_names_it(self):
        for ref in ["no-such-branch", "0123456789abcdef0123456789abcdef01234567"]:
            for command in ["plan", "apply"]:
                with self.subTest(ref=ref, command=command):
                    out = self.gv(command, "--auto-approve" if command == "apply" else "--no-color",
                                  "--repo", self.url, "--ref", ref, "--path", "vms")
                    self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
                    self.assertIn(f"ref '{ref}' not found in {self.url}", out.stderr)
        out = self.gv("diff", "--repo", self.url, "--ref", "no-such-branch")
        self.assertEqual(out.returncode, 2, out.stdout + out.stderr)  # diff: >1 = error
        self.assertIn("ref 'no-such-branch' not found", out.stderr)
        out = self.gv("plan", "--repo", self.url + "-missing", "--ref", "main")
        self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
        self.assertIn("does not exist", out.stderr)


if __name__ == "__main__":
    GITVIRT = sys.argv[1]
    unittest.main(argv=[sys.argv[0], "-v"])
