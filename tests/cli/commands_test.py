#!/usr/bin/python3
"""The command table from outside: help everywhere, structured output, diff's exit codes.

    /usr/bin/python3 tests/cli/commands_test.py BUILD/gitvirt

Against a simulated node (sim:FILE, libvirt's test driver with its state in a file), so it
needs no daemon.

  help       every command and subcommand, found by walking `--help` from the top and checked
             against the list below (a new command must be added to it), answers `--help`
             with exit 0 and a usage line
  -o         version, jobs, jobs ID, describe vm, snapshot list and backup list print JSON and
             YAML that parse and carry the same document
  global     --config and -v are taken after the command too (kubectl's habit)
  exit codes diff: 0 no differences, 1 differences, 2 errors, usage errors included (kubectl);
             plan --detailed-exitcode: 0 none, 2 changes, 1 error (terraform); other usage
             errors: 1
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import yaml

GITVIRT = ""

# Every command line that names a command; `gitvirt --help` and the subcommands' help list
# exactly these.
COMMANDS = {
    "validate", "plan", "apply", "diff", "get", "describe", "jobs", "jobs cancel", "serve", "version",
    "snapshot", "snapshot create", "snapshot list", "snapshot delete", "snapshot run", "snapshot restore",
    "backup", "backup run", "backup list", "backup verify", "backup delete", "backup restore",
    "power", "power start", "power stop", "power shutdown", "power reboot",
    "import",
}

VM = """apiVersion: gitvirt.dev/v1
kind: VirtualMachine
metadata: {name: web-01, labels: {tier: web}}
spec:
  node: hv1
  vcpus: 1
  memory: 512MiB
  disks: [{name: root, size: 1GiB}]
"""


def subcommands(help_text: str) -> list:
    """The names listed under "Subcommands:" in CLI11's help."""
    names, inside = [], False
    for line in help_text.splitlines():
        if line.strip() == "Subcommands:":
            inside = True
        elif inside and line.startswith("  ") and line.strip():
            names.append(line.split()[0])
        elif inside and line.strip():
            inside = False
    return names


class Commands(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="gvcli-")
        cls.manifests = os.path.join(cls.dir, "manifests")
        os.makedirs(cls.manifests)
        os.makedirs(os.path.join(cls.dir, "state"))
        cls.write_vm(VM)
        cls.config = os.path.join(cls.dir, "gitvirt.yaml")
        with open(cls.config, "w") as f:
            f.write(f"""apiVersion: gitvirt.dev/v1
kind: ControllerConfig
source: {{path: manifests}}
nodes:
  - name: hv1
    uri: sim:state/hv1.xml
    pools: [{{name: default, path: {cls.dir}/pool}}]
state: state/gitvirt.db
""")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True) if not os.environ.get("KEEP") else print(cls.dir)

    @classmethod
    def write_vm(cls, text):
        with open(os.path.join(cls.manifests, "vm.yaml"), "w") as f:
            f.write(text)

    def gv(self, *args, config=True):
        argv = [GITVIRT] + (["--config", self.config] if config else []) + list(args)
        return subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300,
                              cwd=self.dir)

    def ok(self, *args):
        out = self.gv(*args)
        self.assertEqual(out.returncode, 0, f"gitvirt {' '.join(args)}\n{out.stdout}\n{out.stderr}")
        return out.stdout

    def structured(self, *args):
        """The command's -o json and -o yaml documents, checked to be the same."""
        as_json = json.loads(self.ok(*args, "-o", "json"))
        as_yaml = yaml.safe_load(self.ok(*args, "-o", "yaml"))
        self.assertEqual(as_json, as_yaml, f"gitvirt {' '.join(args)}: JSON and YAML differ")
        return as_json

    # ---- help ------------------------------------------------------------------------------

    def test_0_help_of_every_command(self):
        found, queue = set(), [()]
        while queue:
            path = queue.pop()
            out = self.gv(*path, "--help", config=False)
            what = " ".join(("gitvirt",) + path)
            self.assertEqual(out.returncode, 0, f"{what} --help\n{out.stderr}")
            self.assertEqual(out.stderr, "")
            self.assertRegex(out.stdout, re.compile(rf"^Usage: \S*gitvirt{''.join(' ' + p for p in path)} ",
                                                    re.M), what)
            for name in subcommands(out.stdout):
                found.add(" ".join(path + (name,)))
                queue.append(path + (name,))
        self.assertEqual(found, COMMANDS, "commands in --help vs the list in this test")

    def test_0_version(self):
        text = self.ok("version")
        doc = self.structured("version")
        self.assertEqual(doc["name"], "gitvirt")
        self.assertRegex(doc["version"], r"^\d+\.\d+\.\d+$")
        self.assertEqual(text, f"gitvirt {doc['version']}\n")

    def test_0_global_options_anywhere(self):
        # As kubectl: --config and -v after the command, and after a subcommand's own arguments.
        out = subprocess.run([GITVIRT, "plan", "-f", self.manifests, "--config", self.config, "-v"],
                             capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300, cwd=self.dir)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("web-01", out.stdout)
        out = subprocess.run([GITVIRT, "snapshot", "list", "--config", self.config],
                             capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300, cwd=self.dir)
        self.assertEqual(out.returncode, 0, out.stderr)
        # Before the command, as always; a missing file after the command is still refused.
        out = subprocess.run([GITVIRT, "apply", "--auto-approve", "--config", os.path.join(self.dir, "nope.yaml")],
                             capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300, cwd=self.dir)
        self.assertEqual(out.returncode, 1)
        self.assertIn("nope.yaml", out.stderr)

    # ---- exit codes ------------------------------------------------------------------------

    def test_1_diff_and_plan_exit_codes(self):
        before = self.gv("diff")
        self.assertEqual(before.returncode, 1, "differences: " + before.stderr)
        self.assertIn("+++ desired/web-01", before.stdout)
        self.assertEqual(self.gv("plan", "--detailed-exitcode").returncode, 2)
        self.assertEqual(self.gv("plan").returncode, 0)

        self.ok("apply", "--auto-approve")
        none = self.gv("diff")
        self.assertEqual((none.returncode, none.stdout), (0, ""), none.stderr)
        self.assertEqual(self.gv("plan", "--detailed-exitcode").returncode, 0)

        self.write_vm(VM.replace("vcpus: 1", "vcpus: one"))
        try:
            broken = self.gv("diff")
            self.assertEqual(broken.returncode, 2, "broken manifests are an error, not a difference")
            self.assertIn("manifests/vm.yaml:6:10: error: spec.vcpus", broken.stderr)
            self.assertEqual(self.gv("plan", "--detailed-exitcode").returncode, 1)
        finally:
            self.write_vm(VM)

        for usage in (["diff", "--no-such-flag"], ["diff", "extra-argument"], ["diff", "--repo"]):
            out = self.gv(*usage)
            self.assertEqual(out.returncode, 2, f"gitvirt {' '.join(usage)}: {out.stderr}")
        missing = self.gv("--config", os.path.join(self.dir, "missing.yaml"), "diff", config=False)
        self.assertEqual(missing.returncode, 2, missing.stderr)
        for usage in (["validate", "--no-such-flag"], ["plan", "--no-such-flag"], ["no-such-command"], []):
            self.assertEqual(self.gv(*usage).returncode, 1, " ".join(usage))

    # ---- structured output -----------------------------------------------------------------

    def test_1b_import_refuses_what_gitvirt_owns(self):
        self.ok("apply", "--auto-approve")
        owned = self.gv("import", "web-01", "--out", os.path.join(self.dir, "imported"))
        self.assertEqual(owned.returncode, 1, owned.stderr)
        self.assertIn("is gitvirt's already", owned.stderr)
        self.assertIn("Nothing was written", owned.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "imported")))
        nothing = self.gv("import")
        self.assertEqual(nothing.returncode, 1)
        self.assertIn("or pass --all", nothing.stderr)

    def test_2_jobs(self):
        jobs = self.structured("jobs")
        self.assertEqual(jobs["kind"], "jobs")
        applies = [j for j in jobs["items"] if j["kind"] == "apply"]
        self.assertEqual(len(applies), 1, jobs)
        job_id = applies[0]["id"]
        self.assertIn(job_id, self.ok("jobs"))
        self.assertEqual(applies[0]["status"], "succeeded")

        job = self.structured("jobs", job_id)
        self.assertEqual(job["id"], job_id)
        steps = [s["id"] for s in job["steps"]]
        self.assertEqual(steps, ["create/web-01", "start/web-01"])
        self.assertTrue(job["events"], "the job's events")
        self.assertEqual(self.gv("jobs", "no-such-job", "-o", "json").returncode, 1)

    def test_3_describe(self):
        doc = self.structured("describe", "vm", "web-01")
        self.assertEqual((doc["kind"], doc["name"]), ("VirtualMachine", "web-01"))
        self.assertTrue(doc["inManifests"])
        self.assertEqual(doc["onNode"]["node"], "hv1")
        self.assertTrue(doc["onNode"]["managed"])
        self.assertEqual(doc["status"]["sync"], "Synced")
        self.assertEqual(doc["status"]["drift"], [])
        self.assertEqual(doc["status"]["desired"]["vcpus"], 1)
        self.assertEqual(doc["lastJob"]["id"], doc["onNode"]["owner"]["job"])
        self.assertEqual(doc["snapshots"], [])
        text = self.ok("describe", "vm", "web-01")
        self.assertIn("Managed:     yes (gitvirt)", text)
        self.assertIn(f"Last job {doc['lastJob']['id']}: succeeded", text)

    def test_4_snapshot_and_backup_lists(self):
        self.ok("snapshot", "create", "web-01", "cli-test")
        snaps = self.structured("snapshot", "list")
        self.assertEqual([(s["vm"], s["name"]) for s in snaps], [("web-01", "cli-test")])
        self.assertEqual(self.structured("describe", "vm", "web-01")["snapshots"][0]["name"], "cli-test")

        target = os.path.join(self.dir, "backups")
        self.ok("backup", "run", "web-01", "--target", target)
        backups = self.structured("backup", "list")
        self.assertEqual([b["vm"] for b in backups], ["web-01"])
        self.assertTrue(backups[0]["location"].startswith(target), backups)


if __name__ == "__main__":
    GITVIRT = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
