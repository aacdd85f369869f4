#!/usr/bin/python3
"""`gitvirt validate` on the shipped examples, and the README's walkthrough output.

    /usr/bin/python3 tests/cli/validate_examples_test.py BUILD/gitvirt

Runs the binary from the repository root, as the README does:

  * `validate -f examples/manifests`: exit 0 and exactly the summary below (files, documents,
    each kind, VMs after cluster expansion), the directory named as typed;
  * `--config examples/gitvirt.yaml validate` (the configuration's source.path, which the
    config loader makes absolute): the same text, the directory shown relative to here;
  * from another directory, an absolute path outside it is printed as it is;
  * `-o json`: the same counts, no diagnostics, "ok": true.

The README's blocks (validate's among them) are cli.readme_transcript's.
"""
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import unittest

ROOT = pathlib.Path(__file__).resolve().parents[2]
GITVIRT = ""

SUMMARY = """examples/manifests: 7 files, 9 documents, valid
  BackupPolicy    1
  Cluster         1
  Image           2
  SnapshotPolicy  1
  VirtualMachine  4
  VirtualMachines after cluster expansion: 10 (6 from clusters)
"""
BY_KIND = {"BackupPolicy": 1, "Cluster": 1, "Image": 2, "SnapshotPolicy": 1, "VirtualMachine": 4}


def gitvirt(*args, cwd=ROOT):
    return subprocess.run([GITVIRT, *args], cwd=cwd, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)


class ValidateExamples(unittest.TestCase):
    def test_text_summary(self):
        out = gitvirt("validate", "-f", "examples/manifests")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout, SUMMARY)
        self.assertEqual(out.stderr, "")

    def test_directory_from_the_configuration_is_shown_relative(self):
        out = gitvirt("--config", "examples/gitvirt.yaml", "validate")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout, SUMMARY)
        absolute = gitvirt("validate", "-f", str(ROOT / "examples" / "manifests"))
        self.assertEqual(absolute.stdout, SUMMARY, "an absolute path under the current directory")

    def test_path_outside_the_current_directory_stays_as_given(self):
        with tempfile.TemporaryDirectory() as elsewhere:
            manifests = str(ROOT / "examples" / "manifests")
            out = gitvirt("validate", "-f", manifests, cwd=elsewhere)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertEqual(out.stdout.splitlines()[0], f"{manifests}: 7 files, 9 documents, valid")

    def test_json(self):
        out = gitvirt("validate", "-f", "examples/manifests", "-o", "json")
        self.assertEqual(out.returncode, 0, out.stderr)
        doc = json.loads(out.stdout)
        self.assertIs(doc["ok"], True)
        self.assertEqual(doc["directory"], "examples/manifests")
        self.assertEqual(doc["diagnostics"], [])
        self.assertEqual(doc["summary"], {"files": 7, "documents": 9, "byKind": BY_KIND,
                                          "virtualMachines": 10, "clusterMembers": 6})

    def test_diagnostics_name_files_relative_to_here(self):
        with tempfile.TemporaryDirectory(dir=ROOT, prefix=".validate-test-") as tmp:
            name = pathlib.Path(tmp).name
            pathlib.Path(tmp, "vm.yaml").write_text(
                "apiVersion: gitvirt.dev/v1\nkind: VirtualMachine\nmetadata: {name: a}\n"
                "spec:\n  vcpus: 1\n  memroy: 1GiB\n")
            for given in (name, tmp):  # as typed, and absolute
                out = gitvirt("validate", "-f", given)
                self.assertEqual(out.returncode, 1)
                self.assertIn(f"{name}/vm.yaml:6:3: error: spec.memroy: unknown field \"memroy\" in spec "
                              f"(did you mean \"memory\"?)", out.stderr.splitlines())
                self.assertEqual(out.stderr.splitlines()[-1], f"{name}: 2 errors; nothing was planned")
                doc = json.loads(gitvirt("validate", "-f", given, "-o", "json").stdout)
                self.assertEqual({d["file"] for d in doc["diagnostics"]}, {f"{name}/vm.yaml"})


if __name__ == "__main__":
    GITVIRT = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
