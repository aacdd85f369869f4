#!/usr/bin/python3
"""The README's first command, deploy/demo.sh, after its set-up and build.

usage: demo_test.py BUILD_DIR SOURCE_DIR

demo.sh works inside the source tree (examples/state, examples/gitvirt.db), so it runs here in a
copy of deploy/ and examples/ whose build/ is the build under test. GITVIRT_DEMO_BUILD=0 skips
set-up and build (test.sh did them); GITVIRT_DEMO_ONCE=1 ends with one reconcile pass of serve
instead of serving. Checked: every step exits 0, the summaries it prints, the second plan is
empty, and serve reads the local git repository it made and finds nothing to change.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

BUILD = SOURCE = ""


class Demo(unittest.TestCase):
    def test_demo_runs_as_the_readme_says(self):
        work = tempfile.mkdtemp(prefix="gvdemo-")
        try:
            for d in ("deploy", "examples", "schemas"):
                shutil.copytree(os.path.join(SOURCE, d), os.path.join(work, d),
                                ignore=shutil.ignore_patterns("state", "gitvirt.db*"))
            os.symlink(BUILD, os.path.join(work, "build"))
            env = dict(os.environ, GITVIRT_DEMO_BUILD="0", GITVIRT_DEMO_ONCE="1", NO_COLOR="1")
            out = subprocess.run([os.path.join(work, "deploy", "demo.sh")], env=env, capture_output=True,
                                 text=True, timeout=600, stdin=subprocess.DEVNULL)
            text = out.stdout + out.stderr
            self.assertEqual(out.returncode, 0, text)
            for expected in ("== gitvirt validate", "VirtualMachines after cluster expansion: 10",
                             "== gitvirt apply", "== gitvirt get clusters", "6/6",
                             "== gitvirt plan --detailed-exitcode", "No changes",
                             "== gitvirt serve: reconciling examples/state/demo-repo"):
                self.assertIn(expected, text)
            # serve --once read the git repository demo.sh made, and what apply did already matches it.
            self.assertRegex(out.stdout.strip().splitlines()[-1], r"^revision [0-9a-f]{40}: synced$")
            self.assertTrue(os.path.isdir(os.path.join(work, "examples", "state", "demo-repo", ".git")))
            # Run again: the repository is reused and everything is in sync already.
            again = subprocess.run([os.path.join(work, "deploy", "demo.sh")], env=env, capture_output=True,
                                   text=True, timeout=600, stdin=subprocess.DEVNULL)
            self.assertEqual(again.returncode, 0, again.stdout + again.stderr)
            self.assertIn("No changes", again.stdout)
        finally:
            if os.environ.get("GITVIRT_KEEP_TEMP") == "1":
                print("kept", work)
            else:
                shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    BUILD, SOURCE = sys.argv[1:3]
    unittest.main(argv=sys.argv[:1], verbosity=2)
