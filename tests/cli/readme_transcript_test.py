#!/usr/bin/python3
"""The README's walkthrough, run: every ```console block's commands, in order, in a copy of the
tree, and every line the README shows compared with what the binary prints.

    /usr/bin/python3 tests/cli/readme_transcript_test.py BUILD/gitvirt

`gv` is `BUILD/gitvirt --config examples/gitvirt.yaml`, as the README says. A block is a run
of `$ COMMAND` lines, each followed by what it shows (stdout and stderr together, as on a
terminal). The rules (the ones tests/cli/validate_examples_test.py used for validate, made
general):

  * a block's shown lines are printed lines, in the printed order; "..." stands for any lines;
  * a block with no "..." shows the whole output, and one that does not end with "..." ends
    where the output ends;
  * progress lines (`[3/24] start/x: succeeded`) are matched whatever their number and place:
    steps run in parallel, and the README says their order varies;
  * job ids (20261207-062507-f9d6) match any job id.
"""
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

ROOT = pathlib.Path(__file__).resolve().parents[2]
GITVIRT = ""
PROGRESS = re.compile(r"^\[(undo )?\d+/(\d+)\] (.*)$")
JOB_ID = re.compile(r"\b\d{8}-\d{6}-[0-9a-f]{4}\b")


def blocks():
    """[(first command, [(command, shown lines)])] for every console block that runs gv."""
    text = (ROOT / "README.md").read_text()
    found = []
    for block in re.findall(r"```console\n(.*?)```", text, re.S):
        steps = []
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            elif steps:
                steps[-1][1].append(line)
        if steps and all(cmd.startswith("gv ") for cmd, _ in steps):
            found.append(steps)
    return found


def normal(line):
    line = JOB_ID.sub("JOB", line)
    m = PROGRESS.match(line)
    return f"[{m.group(1) or ''}*/{m.group(2)}] {m.group(3)}" if m else line


class ReadmeTranscript(unittest.TestCase):
    def test_every_console_block(self):
        found = blocks()
        self.assertGreaterEqual(len(found), 4, "the walkthrough's blocks")
        with tempfile.TemporaryDirectory(prefix="gitvirt-readme-") as tmp:
            shutil.copytree(ROOT / "examples", pathlib.Path(tmp) / "examples",
                            ignore=shutil.ignore_patterns("state", "*.db*"))
            shutil.copytree(ROOT / "tests" / "corpus", pathlib.Path(tmp) / "tests" / "corpus")
            ran = 0
            for steps in found:
                for command, shown in steps:
                    script = f'gv() {{ "{GITVIRT}" --config examples/gitvirt.yaml "$@"; }}\n{command}\n'
                    out = subprocess.run(["bash", "-c", script], cwd=tmp, capture_output=True, text=True,
                                         stdin=subprocess.DEVNULL, timeout=300)
                    printed = (out.stdout + out.stderr).splitlines()
                    self.compare(command, shown, printed)
                    ran += 1
            self.assertGreaterEqual(ran, 6)

    def compare(self, command, shown, printed):
        where = f"README.md's `$ {command}`"
        got = [normal(line) for line in printed]
        if "..." not in [s.strip() for s in shown]:
            self.assertEqual([normal(s) for s in shown], got, f"{where} shows the whole output")
            return
        at = 0
        for line in shown:
            if line.strip() == "...":
                continue
            want = normal(line)
            if PROGRESS.match(line):
                self.assertIn(want, got, f"{where}: progress line {line!r} not printed")
                continue
            try:
                at = got.index(want, at) + 1
            except ValueError:
                self.fail(f"{where} shows a line the binary does not print (after printed line {at}): "
                          f"{line!r}\nprinted:\n" + "\n".join(printed))
        if shown[-1].strip() != "...":
            self.assertEqual(normal(shown[-1]), got[-1], f"{where}: the block ends where the output ends")


if __name__ == "__main__":
    GITVIRT = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
