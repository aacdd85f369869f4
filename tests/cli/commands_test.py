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
HELP = {}  # command path -> its --help text (test_0_help_of_every_command fills it)

# Every command line that names a command; `gitvirt --help` and the subcommands' help list
# exactly these.
COMMANDS = {
    "validate", "plan", "apply", "diff", "get", "describe", "jobs", "jobs cancel", "serve", "version",
    "snapshot", "snapshot create", "snapshot list", "snapshot delete", "snapshot run", "snapshot restore",
    "backup", "backup run", "backup list", "backup verify", "backup delete", "backup restore",
    "power", "power start", "power stop", "power shutdown", "power reboot", "help", "completion",
    "import", "jobs abandon", "state", "state check",
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
            self.assertRegex(out.stdout, re.compile(rf"^Usage: gitvirt{''.join(' ' + p for p in path)}( |$)",
                                                    re.M), what)
            # Every command's help ends with examples, each a command line of gitvirt.
            examples = out.stdout.split("\nExamples:\n", 1)
            self.assertEqual(len(examples), 2, f"{what} --help has no Examples section")
            self.assertRegex(examples[1], re.compile(r"^  \$ gitvirt ", re.M), what)
            # `gitvirt help CMD` is the same text.
            self.assertEqual(self.gv("help", *path, config=False).stdout, out.stdout, f"gitvirt help {' '.join(path)}")
            HELP[path] = out.stdout
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
        self.assertIn("+  memory: 512MiB", before.stdout, "diff reads like the manifest (YAML, IEC units)")
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
        # A dry run refuses what the real run refuses: the job is over.
        for extra in ([], ["--dry-run"]):
            out = self.gv("jobs", "cancel", job_id, *extra)
            self.assertEqual(out.returncode, 1, extra)
            self.assertIn("has already finished", out.stderr)

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
        # The specs in the manifest's words and units, not the status JSON's bytes.
        self.assertIn("    memory: 512MiB", text)
        self.assertIn("\n  kind: VirtualMachine\n", text)
        self.assertNotIn('"memory"', text)

    def test_4_snapshot_and_backup_lists(self):
        self.ok("snapshot", "create", "web-01", "cli-test")
        snaps = self.structured("snapshot", "list")
        self.assertEqual([(s["vm"], s["name"]) for s in snaps], [("web-01", "cli-test")])
        self.assertEqual(self.structured("describe", "vm", "web-01")["snapshots"][0]["name"], "cli-test")

        target = os.path.join(self.dir, "backups")
        self.ok("backup", "run", "web-01", "--dir", target)
        backups = self.structured("backup", "list")
        self.assertEqual([b["vm"] for b in backups], ["web-01"])
        self.assertTrue(backups[0]["location"].startswith(target), backups)

    # ---- the flag grammar (docs/cli.md) ------------------------------------------------------

    def test_0_version_flag_and_did_you_mean(self):
        out = self.gv("--version", config=False)
        self.assertEqual((out.returncode, out.stdout), (0, self.ok("version")))
        for argv, message in ((["aply"], 'unknown command "aply" for "gitvirt" (did you mean "apply"?)'),
                              (["snapshot", "lst"], 'unknown command "lst" for "gitvirt snapshot" (did you mean "list"?)'),
                              (["plan", "--prun"], 'unknown flag "--prun" for "gitvirt plan" (did you mean "--prune"?)'),
                              (["help", "aply"], 'unknown command "aply" for "gitvirt" (did you mean "apply"?)')):
            out = self.gv(*argv)
            self.assertEqual(out.returncode, 1, argv)
            self.assertIn("gitvirt: " + message, out.stderr)
            self.assertEqual(out.stdout, "")
        self.assertEqual(self.gv("diff", "--prun").returncode, 2, "diff's usage errors are 2")
        # A swap of two letters is one typo (cobra, git).
        for argv, message in ((["plna"], '(did you mean "plan"?)'), (["jbos"], '(did you mean "jobs"?)'),
                              (["power", "strat", "web-01"], '(did you mean "start"?)')):
            out = self.gv(*argv)
            self.assertEqual(out.returncode, 1, argv)
            self.assertIn(message, out.stderr, argv)
        # The flag that is wrong is named, not the word after it; an old format name points at its
        # new one; "gitvirt" is said once.
        out = self.gv("diff", "-o", "json")
        self.assertEqual(out.returncode, 2)
        self.assertIn('unknown flag "-o" for "gitvirt diff"', out.stderr)
        out = self.gv("plan", "-o", "text")
        self.assertEqual(out.returncode, 1)
        self.assertIn('(did you mean "table"?)', out.stderr)
        out = self.gv("jobs", "--status", "bogus")
        self.assertNotIn("gitvirt: gitvirt", out.stderr)

    def test_0_completion_and_man_pages(self):
        bash = self.ok("completion", "bash")
        self.assertIn("complete -F _gitvirt gitvirt", bash)
        self.assertEqual(subprocess.run(["bash", "-n"], input=bash, text=True).returncode, 0, "bash syntax")
        # What the table offers after `gitvirt snapshot` and for `plan -o`.
        probe = bash + '\nCOMP_WORDS=(gitvirt snapshot ""); COMP_CWORD=2; _gitvirt; echo "${COMPREPLY[*]}"\n' \
                       'COMP_WORDS=(gitvirt plan -o ""); COMP_CWORD=3; _gitvirt; echo "${COMPREPLY[*]}"\n'
        lines = subprocess.run(["bash"], input=probe, text=True, capture_output=True).stdout.splitlines()
        self.assertEqual(lines[0].split(), ["create", "list", "delete", "run", "restore"])
        self.assertEqual(lines[1].split(), ["table", "json", "yaml", "name"])
        self.assertTrue(self.ok("completion", "zsh").startswith("#compdef gitvirt\n"))
        fish = self.ok("completion", "fish")
        self.assertIn("complete -c gitvirt", fish)
        if shutil.which("zsh"):
            self.assertEqual(subprocess.run(["zsh", "-n"], input=self.ok("completion", "zsh"), text=True).returncode, 0)
        if shutil.which("fish"):
            self.assertEqual(subprocess.run(["fish", "-n"], input=fish, text=True).returncode, 0)
        self.assertEqual(self.gv("completion", "tcsh").returncode, 1)
        man = os.path.join(self.dir, "man")
        self.ok("man-pages", man)
        pages = sorted(os.listdir(man))
        self.assertIn("gitvirt.1", pages)
        self.assertIn("gitvirt-snapshot-create.1", pages)
        self.assertEqual(len(pages), len(COMMANDS) + 1, pages)
        with open(os.path.join(man, "gitvirt-plan.1")) as f:
            page = f.read()
        for section in (".TH GITVIRT\\-PLAN 1", ".SH SYNOPSIS", ".SH OPTIONS", ".SH EXAMPLES", "\\-\\-detailed\\-exitcode"):
            self.assertIn(section, page)
        self.assertNotIn("man-pages", self.ok("--help"), "the man page writer is hidden")

    def test_0_gitvirt_config_like_kubeconfig(self):
        env = dict(os.environ, GITVIRT_CONFIG=self.config)
        elsewhere = tempfile.mkdtemp(dir=self.dir)
        out = subprocess.run([GITVIRT, "get", "nodes", "-o", "name"], capture_output=True, text=True, env=env,
                             cwd=elsewhere, stdin=subprocess.DEVNULL, timeout=120)
        self.assertEqual((out.returncode, out.stdout), (0, "Node/hv1\n"), out.stderr)
        # The flag wins over the environment; a missing file is named.
        env["GITVIRT_CONFIG"] = os.path.join(self.dir, "nope.yaml")
        out = subprocess.run([GITVIRT, "get", "nodes"], capture_output=True, text=True, env=env, cwd=elsewhere,
                             stdin=subprocess.DEVNULL, timeout=120)
        self.assertEqual(out.returncode, 1)
        self.assertIn("nope.yaml does not exist", out.stderr)
        out = subprocess.run([GITVIRT, "--config", self.config, "get", "nodes", "-o", "name"], capture_output=True,
                             text=True, env=env, cwd=elsewhere, stdin=subprocess.DEVNULL, timeout=120)
        self.assertEqual(out.stdout, "Node/hv1\n", out.stderr)

    def test_5_every_output_format_parses(self):
        """Each command's -o choices, read from its help, each run and parsed."""
        self.assertTrue(HELP, "test_0_help_of_every_command runs first")
        runs = {("plan",): [], ("get",): ["vms"], ("describe",): ["vm", "web-01"], ("jobs",): [],
                ("version",): [], ("validate",): ["-f", "manifests"], ("snapshot", "list"): [],
                ("backup", "list"): [], ("apply",): ["--dry-run"], ("state", "check"): []}
        for path, text in HELP.items():
            m = re.search(r"-o,--output TEXT:\{([^}]*)\}", text)
            if not m:
                continue
            self.assertIn(path, runs, f"gitvirt {' '.join(path)} has -o: add it to this test")
            formats = m.group(1).split(",")
            self.assertNotIn("text", formats, "the human form is called table")
            for fmt in formats:
                out = self.ok(*path, *runs[path], "-o", fmt)
                if fmt == "json":
                    json.loads(out)
                elif fmt == "yaml":
                    yaml.safe_load(out)
                elif fmt == "name":
                    for line in out.splitlines():
                        self.assertRegex(line, r"^[A-Z][A-Za-z]+/\S+$", f"{path} -o name")
                else:
                    self.assertTrue(out.strip(), f"{path} -o {fmt} printed nothing")
            bad = self.gv(*path, *runs[path], "-o", "bogus")
            self.assertEqual(bad.returncode, 1, path)
            self.assertIn('"bogus" is not one of', bad.stderr)
        wide = self.ok("get", "nodes", "-o", "wide")
        self.assertNotEqual(wide, self.ok("get", "nodes"), "get nodes -o wide adds columns")
        self.assertIn("URI", wide.splitlines()[0])
        self.assertEqual(self.ok("get", "vms", "web-01", "-o", "name"), "VirtualMachine/web-01\n")
        saved = self.gv("plan", "-o", "plan.json")
        self.assertEqual(saved.returncode, 1, "-o is a format; a file is --out")
        self.assertIn("--out FILE", saved.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "plan.json")))

    def test_5_not_found_with_the_closest_names(self):
        cases = [
            (["power", "start", "web-1", "-y"], 'VirtualMachine "web-1" not found (did you mean "web-01"?)'),
            (["plan", "--target", "VirtualMachine/web-1"], 'VirtualMachine "web-1" not found (did you mean "web-01"?)'),
            (["apply", "--target", "VirtualMachine/web-1", "-y"], 'VirtualMachine "web-1" not found'),
            (["snapshot", "list", "web-1"], 'VirtualMachine "web-1" not found (did you mean "web-01"?)'),
            (["snapshot", "create", "web-1"], 'VirtualMachine "web-1" not found'),
            (["snapshot", "delete", "web-01", "cli-tset", "-y"], 'not found (did you mean "cli-test"?)'),
            (["snapshot", "restore", "web-01", "cli-tset", "-y"], 'not found (did you mean "cli-test"?)'),
            (["backup", "run", "web-1", "--dir", self.dir], 'not found (did you mean "web-01"?)'),
            (["describe", "vm", "web-1"], 'VirtualMachine "web-1" not found (did you mean "web-01"?)'),
            (["describe", "node", "hv2"], 'Node "hv2" not found (did you mean "hv1"?)'),
            (["get", "vms", "web-1"], 'VirtualMachine "web-1" not found (did you mean "web-01"?)'),
            (["get", "nodes", "hv2"], 'Node "hv2" not found (did you mean "hv1"?)'),
            (["jobs", "no-such-job"], 'Job "no-such-job" not found'),
            (["jobs", "cancel", "no-such-job"], 'Job "no-such-job" not found'),
            (["backup", "verify", "no-such-backup"], 'Backup "no-such-backup" not found'),
        ]
        for argv, message in cases:
            out = self.gv(*argv)
            self.assertEqual(out.returncode, 1, f"{argv}: {out.stdout}{out.stderr}")
            self.assertTrue(out.stderr.startswith("gitvirt: "), out.stderr)
            self.assertIn(message, out.stderr, argv)
        status = self.gv("jobs", "--status", "bogus")
        self.assertEqual(status.returncode, 1)
        self.assertIn('"bogus" is not one of', status.stderr)
        self.assertEqual(self.gv("jobs", "--status", "succeeded").returncode, 0)

    def test_5_colour_rules(self):
        import pty
        self.write_vm(VM.replace("vcpus: 1", "vcpus: 2"))
        try:
            def on_terminal(extra_env, *args):
                env = dict(os.environ)
                env.pop("NO_COLOR", None)
                env.update({"TERM": "xterm", **extra_env})
                pid, fd = pty.fork()
                if pid == 0:
                    os.chdir(self.dir)
                    os.execve(GITVIRT, [GITVIRT, "--config", self.config, "plan", *args], env)
                chunks = []
                while True:
                    try:
                        data = os.read(fd, 65536)
                    except OSError:
                        break
                    if not data:
                        break
                    chunks.append(data)
                os.waitpid(pid, 0)
                return b"".join(chunks).decode()
            self.assertIn("\x1b[", on_terminal({}), "colour on a terminal")
            self.assertNotIn("\x1b[", on_terminal({}, "--no-color"))
            self.assertNotIn("\x1b[", on_terminal({"NO_COLOR": ""}), "NO_COLOR, any value")
            self.assertNotIn("\x1b[", on_terminal({"TERM": "dumb"}))
            self.assertNotIn("\x1b[", self.ok("plan"), "not a terminal")
            self.assertNotIn("\x1b[", self.ok("--no-color", "get", "vms"))
        finally:
            self.write_vm(VM)

    def test_6_manifests_from_a_file_or_stdin(self):
        one = os.path.join(self.manifests, "vm.yaml")
        self.assertIn("No changes.", self.ok("plan", "-f", one))
        out = subprocess.run([GITVIRT, "--config", self.config, "plan", "-f", "-", "--detailed-exitcode"],
                             input=VM.replace("vcpus: 1", "vcpus: 2"), capture_output=True, text=True,
                             cwd=self.dir, timeout=120)
        self.assertEqual(out.returncode, 2, out.stderr)
        self.assertIn("vcpus: 1 -> 2", out.stdout)
        bad = subprocess.run([GITVIRT, "--config", self.config, "validate", "-f", "-"], input="kind: Nope\n",
                             capture_output=True, text=True, cwd=self.dir, timeout=120)
        self.assertEqual(bad.returncode, 1)
        self.assertIn("<stdin>:1:", bad.stderr)
        for given in ("manifests", one):
            out = self.gv("apply", given)
            self.assertEqual(out.returncode, 1, out.stderr)
            self.assertIn(f"gitvirt apply -f {given if given == 'manifests' else 'manifests/vm.yaml'}", out.stderr)
            self.assertNotIn("terminate", out.stderr)
        # Manifests named on the command line that do not exist are an error everywhere, not an
        # empty desired state; a plan from stdin cannot be saved (apply could not check it).
        for argv in (["get", "vms", "-f", "nope"], ["describe", "vm", "web-01", "-f", "nope"],
                     ["plan", "-f", "nope"]):
            out = self.gv(*argv)
            self.assertEqual(out.returncode, 1, f"{argv}: {out.stdout}{out.stderr}")
            self.assertIn("nope", out.stderr, argv)
            self.assertNotIn("without the manifests", out.stderr, argv)
        self.assertEqual(self.gv("diff", "-f", "nope").returncode, 2)
        saved = subprocess.run([GITVIRT, "--config", self.config, "plan", "-f", "-", "--out", "stdin.json"],
                               input=VM, capture_output=True, text=True, cwd=self.dir, timeout=120)
        self.assertEqual(saved.returncode, 1, saved.stdout)
        self.assertIn("a plan made from standard input cannot be saved", saved.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "stdin.json")))

    def test_6_apply_prints_its_job_as_a_document(self):
        out = self.gv("power", "start", "web-01", "--max-parallel", "2", "--dry-run")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("--max-parallel is deprecated; use --parallel", out.stderr)
        self.write_vm(VM.replace("tier: web", "tier: app"))  # a label: changed in place
        try:
            dry = self.gv("apply", "--dry-run", "-o", "json")
            self.assertEqual(dry.returncode, 2, dry.stderr)
            self.assertEqual(json.loads(dry.stdout)["summary"]["change"], 1)
            asks = self.gv("apply", "-o", "json")
            self.assertEqual(asks.returncode, 1)
            self.assertIn("pass -y", asks.stderr)
            out = self.gv("apply", "-y", "-o", "json")
            self.assertEqual(out.returncode, 0, out.stderr)
            job = json.loads(out.stdout)
            self.assertEqual((job["kind"], job["status"]), ("apply", "succeeded"), job)
            self.assertIn(f"Job {job['id']} succeeded", out.stderr)
        finally:
            self.write_vm(VM)
            self.ok("apply", "-y")
        self.assertEqual(self.gv("apply", "-y", "-o", "name").stdout, "", "in sync: nothing to name")

    def test_6_preflight_in_the_plan(self):
        # A node the configuration lacks: validate and plan name the field and list the nodes.
        self.write_vm(VM.replace("node: hv1", "node: hv9"))
        try:
            for argv in (["validate"], ["plan"]):
                out = self.gv(*argv)
                self.assertEqual(out.returncode, 1, argv)
                self.assertIn('manifests/vm.yaml:5:9: error: spec.node: node "hv9" is not in the configuration '
                              '(did you mean "hv1"?) (its nodes: hv1)', out.stderr, argv)
        finally:
            self.write_vm(VM)
        # A snapshot name taken: a plan error, not a failed job.
        before = len(json.loads(self.ok("jobs", "-o", "json", "--limit", "0"))["items"])
        dup = self.gv("snapshot", "create", "web-01", "cli-test")
        self.assertEqual(dup.returncode, 1)
        self.assertIn('web-01 already has a snapshot named "cli-test"', dup.stderr)
        self.assertEqual(len(json.loads(self.ok("jobs", "-o", "json", "--limit", "0"))["items"]), before,
                         "no job for a plan error")

    def test_6_pending_is_not_no_changes(self):
        self.write_vm(VM.replace("memory: 512MiB", "memory: 1GiB\n  updatePolicy: {restart: Never}"))
        try:
            plan = self.gv("plan", "--detailed-exitcode")
            self.assertEqual(plan.returncode, 2, "pending: desired and observed differ")
            self.assertNotIn("No changes", plan.stdout)
            self.assertIn("1 pending", plan.stdout)
            self.assertEqual(self.gv("apply", "--dry-run").returncode, 2)
            applied = self.gv("apply", "-y")
            self.assertEqual(applied.returncode, 2, applied.stdout + applied.stderr)
            self.assertIn("still differ", applied.stdout)
            self.assertEqual(self.gv("diff").returncode, 1)
        finally:
            self.write_vm(VM)
        self.assertEqual(self.gv("plan", "--detailed-exitcode").returncode, 0)
        self.assertEqual(self.gv("apply", "--dry-run").returncode, 0)

    def test_6_prune_only_with_the_flag(self):
        pruning = os.path.join(self.dir, "pruning.yaml")
        with open(self.config) as f, open(pruning, "w") as out:
            out.write(f.read().replace("source: {path: manifests}", "source: {path: manifests}\nsync: {prune: true}"))
        empty = os.path.join(self.dir, "empty")
        os.makedirs(empty, exist_ok=True)
        with open(os.path.join(empty, "other.yaml"), "w") as f:
            f.write(VM.replace("web-01", "other-01"))
        def plan(*args):
            return self.gv("--config", pruning, "plan", "-f", empty, *args)
        kept = plan()
        self.assertEqual(kept.returncode, 0, kept.stderr)
        self.assertNotIn("destroy VirtualMachine/web-01", kept.stdout)
        self.assertIn("deletes only with --prune (sync.prune is for serve)", kept.stdout)
        self.assertIn("0 to destroy", kept.stdout)
        self.assertIn("1 to destroy", plan("--prune").stdout)
        self.assertIn("0 to destroy", plan("--prune", "--no-prune").stdout)
        self.assertIn("0 to destroy", self.gv("--config", pruning, "apply", "-f", empty, "--dry-run").stdout)

    def test_6_unreachable_node_is_an_error(self):
        down = os.path.join(self.dir, "down.yaml")
        with open(self.config) as f, open(down, "w") as out:
            out.write(f.read().replace("state: state/gitvirt.db",
                                       "  - name: remote\n    uri: qemu+tcp://127.0.0.9:1/system\n"
                                       "state: state/gitvirt.db"))
        for argv in (["plan"], ["apply", "-y"], ["apply", "--dry-run"], ["power", "start", "web-01", "-y"],
                     ["snapshot", "create", "web-01", "--dry-run"], ["snapshot", "list"]):
            out = self.gv("--config", down, *argv)
            self.assertEqual(out.returncode, 1, f"{argv}: {out.stdout}")
            self.assertIn("gitvirt: node remote is unreachable: ", out.stderr, argv)
            self.assertIn("Connection refused", out.stderr, "libvirt's reason")
            self.assertNotIn("No changes", out.stdout)
        self.assertEqual(self.gv("--config", down, "diff").returncode, 2)
        around = self.gv("--config", down, "plan", "--ignore-unreachable", "--detailed-exitcode")
        self.assertEqual(around.returncode, 2, around.stderr)
        self.assertIn("node remote is unreachable", around.stdout)
        self.assertIn("1 node not seen", around.stdout)
        self.assertNotIn("No changes", around.stdout)
        table = self.gv("--config", down, "get", "nodes")
        self.assertEqual(table.returncode, 0)
        self.assertIn("warning: node remote is unreachable", table.stderr)

    def test_6_a_failed_step_is_said_once(self):
        # The progress line says it; the log does not repeat it as a timestamped error.
        self.write_vm(VM.replace("tier: web", "tier: fail"))
        try:
            env = dict(os.environ, GITVIRT_FAULTS="any:1+")
            out = subprocess.run([GITVIRT, "--config", self.config, "apply", "-y", "--rollback", "NONE"],
                                 capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300,
                                 cwd=self.dir, env=env)
            self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
            self.assertRegex(out.stdout, r"\[1/1\] \S+: failed: ")
            self.assertNotRegex(out.stderr, r"\d\d:\d\d:\d\d\S* error job=", out.stderr)
        finally:
            self.write_vm(VM)
            self.ok("apply", "-y")

    def test_6_state_check_and_abandon(self):
        # A process killed in the middle of a step leaves its job unfinished; abandon gives it
        # up without touching the node, and the next apply starts clean.
        self.write_vm(VM.replace("tier: web", "tier: killed"))
        try:
            env = dict(os.environ, GITVIRT_FAULTS="kill:1")
            subprocess.run([GITVIRT, "--config", self.config, "apply", "-y"], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=300, cwd=self.dir, env=env)
            unfinished = [j for j in self.structured("jobs", "--limit", "0")["items"] if not j["finished"]]
            self.assertEqual(len(unfinished), 1, unfinished)
            job = unfinished[0]["id"]
            check = self.ok("state", "check")
            self.assertIn("is sound (SQLite integrity_check: ok)", check)
            self.assertIn("1 unfinished", check)
            self.assertIn("Would mark job", self.ok("jobs", "abandon", job, "--dry-run"))
            self.assertIn(f"Job {job} abandoned", self.ok("jobs", "abandon", job))
            record = self.structured("jobs", job)
            self.assertEqual(record["status"], "failed")
            self.assertIn("abandoned by hand (gitvirt jobs abandon)", record["error"])
            again = self.gv("jobs", "abandon", job)
            self.assertEqual(again.returncode, 1)
            self.assertIn("has already finished", again.stderr)
            self.assertEqual(json.loads(self.ok("state", "check", "-o", "json"))["unfinishedJobs"], 0)
        finally:
            self.write_vm(VM)
            self.ok("apply", "-y")
        # A state file that is not a database: refused by name, by every command.
        junk = os.path.join(self.dir, "junk.yaml")
        with open(os.path.join(self.dir, "state", "junk.db"), "w") as f:
            f.write("not a database\n" * 1000)
        with open(self.config) as f:
            text = f.read()
        with open(junk, "w") as f:
            f.write(text.replace("state: state/gitvirt.db", "state: state/junk.db"))
        for argv in (["state", "check"], ["jobs"], ["apply", "-y"]):
            out = self.gv("--config", junk, *argv, config=False)
            self.assertEqual(out.returncode, 1, argv)
            self.assertIn("junk.db", out.stderr, argv)

    def test_7_interrupt_then_undo_counter(self):
        """Off a terminal the first SIGINT lets the running step finish, then FULL undoes, with
        its own counter; two SIGINTs leave the job interrupted for the next apply."""
        import signal
        import time
        for name in ("int-01", "int-02", "int-03"):
            with open(os.path.join(self.manifests, name + ".yaml"), "w") as f:
                f.write(VM.replace("web-01", name).replace("tier: web", "tier: int"))
        env = dict(os.environ, GITVIRT_STEP_DELAY_MS="700")
        try:
            def interrupted_apply(signals):
                p = subprocess.Popen([GITVIRT, "--config", self.config, "apply", "-y", "--parallel", "1",
                                      "--rollback", "FULL"], cwd=self.dir, env=env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
                lines = []
                for line in p.stdout:
                    lines.append(line)
                    if line.startswith("[1/"):
                        # The next step is running now (each holds 700 ms before its side effect).
                        time.sleep(0.3)
                        for _ in range(signals):
                            p.send_signal(signal.SIGINT)
                            time.sleep(0.1)
                        break
                rest, err = p.communicate(timeout=120)
                return p.returncode, "".join(lines) + rest, err
            code, out, err = interrupted_apply(1)
            self.assertEqual(code, 1, out + err)
            # The running step finished; then FULL undid both, latest first, on its own counter.
            self.assertIn("[2/6] create/int-02: succeeded", out)
            self.assertIn("[undo 1/2] create/int-02: undone", out)
            self.assertIn("[undo 2/2] create/int-01: undone", out)
            self.assertNotRegex(out, re.compile(r"^\[\d+/\d+\] \S+: undone$", re.M), "undo has its own counter")
            self.assertRegex(out, r"Job JOB cancelled: .*rolled back 2, could not undo 0".replace("JOB", r"\S+"))
            code, out, err = interrupted_apply(2)
            self.assertEqual(code, 1, out + err)
            self.assertIn("interrupted", out)
            self.assertNotIn("[undo", out)
            jobs = json.loads(self.ok("jobs", "-o", "json"))["items"]
            self.assertEqual(jobs[0]["status"], "interrupted", jobs[0])
            resumed = self.gv("apply", "-y")
            self.assertEqual(resumed.returncode, 0, resumed.stdout + resumed.stderr)
            self.assertIn(jobs[0]["id"], resumed.stderr, "the next apply recovers the interrupted job")

            # On a terminal: it shows what FULL would undo and asks; "no" keeps what is done.
            import pty
            self.gv("apply", "-y", "--prune", "-f", os.path.join(self.manifests, "vm.yaml"))
            pid, fd = pty.fork()
            if pid == 0:
                os.chdir(self.dir)
                os.execve(GITVIRT, [GITVIRT, "--config", self.config, "apply", "-y", "--parallel", "1",
                                    "--rollback", "FULL"], env)
            seen, asked = b"", False
            deadline = time.time() + 120
            while time.time() < deadline:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    break
                if not data:
                    break
                seen += data
                if b" 1/6 " in seen and b"interrupted" not in seen:
                    os.kill(pid, signal.SIGINT)
                    seen += b"interrupted-sent"
                if b"Roll back? (yes/no)" in seen and not asked:
                    asked = True
                    os.write(fd, b"no\n")
            _, status = os.waitpid(pid, 0)
            text = seen.decode(errors="replace")
            self.assertTrue(asked, text)
            self.assertIn("The FULL strategy would undo", text)
            self.assertIn("Keeping what is done", text)
            self.assertNotIn("undo 1/", text)
            self.assertEqual(os.waitstatus_to_exitcode(status), 1, text)
        finally:
            for name in ("int-01", "int-02", "int-03"):
                os.remove(os.path.join(self.manifests, name + ".yaml"))
            self.gv("apply", "-y", "--prune")


if __name__ == "__main__":
    GITVIRT = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
