#!/usr/bin/python3
"""Checks that `gitvirt validate` agrees with the test corpus, file by file.

    /usr/bin/python3 tests/schemas/test_agreement.py BUILD/gitvirt [-k FILTER] [-j JOBS] [-v]

For every file in tests/corpus/good/ and tests/corpus/bad/, it copies that one file into an
empty temporary directory and runs

    BINARY validate -f TMPDIR -o json

  - a good file must exit 0 and report no diagnostics;
  - a bad file must exit 1 and report a diagnostic whose file is that file, whose line (and
    column, when the header gives one) is the header's `# expect: LINE[:COLUMN] SUBSTRING`,
    and whose message contains SUBSTRING (a diagnostic's "path: message" also counts, so a
    JSON diagnostic that carries the field path in "path" rather than in "message" matches).

The JSON form is {"ok": bool, "diagnostics": [{"file", "line", "column", "path", "message",
"severity"}], "summary": {...}}; when stdout is not that JSON, lines of the text form
`file:line:column: error: message` (or `file:line: error: message`) on stdout and stderr are
read instead.

A bad file's header takes its first lines, so a file of zero bytes cannot be in the corpus: it
is made here (`zero-bytes.yaml`, expected at 1:1 with "empty", like 198-empty-file.yaml) and
checked the same way.

Every disagreement is printed, then a summary line; the exit status is 0 only when every
file agrees (2 for a usage error such as a missing binary). Only the standard library is
used, so any Python 3.9+ runs it.
"""

import argparse
import concurrent.futures
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "corpus"
EXPECT_RE = re.compile(rb"^# expect: (\d+)(?::(\d+))? (\S.*?)\s*$", re.M)
TEXT_RE = re.compile(r"^(?P<file>.+?):(?P<line>\d+)(?::(?P<column>\d+))?: "
                     r"(?P<severity>error|warning|note)(?:\[[^\]]*\])?: (?P<message>.*)$")


# The cases no file can carry a header for: name -> (content, expected line, column, substring).
SYNTHETIC = {"zero-bytes.yaml": (b"", 1, 1, "empty")}


def corpus_files(filter_text: str, synthetic_dir: pathlib.Path):
    out = []
    for kind in ("good", "bad"):
        for p in sorted((CORPUS / kind).glob("*")):
            if p.is_file() and p.suffix in (".yaml", ".yml") and filter_text in p.name:
                out.append((kind, p))
    for name, (content, *_expect) in SYNTHETIC.items():
        if filter_text in name:
            path = synthetic_dir / name
            path.write_bytes(content)
            out.append(("bad", path))
    return out


def parse_expect(path: pathlib.Path):
    if path.name in SYNTHETIC and path.parent.name.startswith("gitvirt-synthetic-"):
        return SYNTHETIC[path.name][1:]
    head = b"\n".join(path.read_bytes().split(b"\n")[:3])
    m = EXPECT_RE.search(head)
    if not m:
        return None
    return (int(m.group(1)), int(m.group(2)) if m.group(2) else None,
            m.group(3).decode("utf-8", "replace"))


def as_int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def parse_diagnostics(stdout: str, stderr: str):
    """Returns (diagnostics, form) where form is 'json' or 'text'."""
    candidates = [stdout.strip()]
    if "{" in stdout:
        candidates.append(stdout[stdout.index("{"):stdout.rindex("}") + 1])
    for text in candidates:
        try:
            data = json.loads(text)
        except ValueError:
            continue
        if isinstance(data, dict) and isinstance(data.get("diagnostics"), list):
            diags = []
            for d in data["diagnostics"]:
                if not isinstance(d, dict):
                    continue
                diags.append({
                    "file": str(d.get("file") or ""),
                    "line": as_int(d.get("line")),
                    "column": as_int(d.get("column")),
                    "path": str(d.get("path") or ""),
                    "message": str(d.get("message") or ""),
                    "severity": str(d.get("severity") or "error"),
                })
            return diags, "json", data.get("ok")
    diags = []
    for line in (stdout + "\n" + stderr).splitlines():
        m = TEXT_RE.match(line.strip())
        if m:
            diags.append({
                "file": m.group("file"),
                "line": int(m.group("line")),
                "column": as_int(m.group("column")),
                "path": "",
                "message": m.group("message"),
                "severity": m.group("severity"),
            })
    return diags, "text", None


def same_file(reported: str, name: str) -> bool:
    reported = reported.replace("\\", "/")
    return reported == name or reported.endswith("/" + name)


def describe(d) -> str:
    col = f":{d['column']}" if d.get("column") else ""
    path = f" [{d['path']}]" if d.get("path") else ""
    return f"{d['file']}:{d['line']}{col}: {d['severity']}:{path} {d['message']}"


def run_one(binary: str, kind: str, path: pathlib.Path, timeout: float):
    """Returns (agrees, explanation lines)."""
    expect = parse_expect(path) if kind == "bad" else None
    if kind == "bad" and expect is None:
        return False, ["no '# expect: LINE[:COLUMN] SUBSTRING' header"]
    tmp = tempfile.mkdtemp(prefix="gitvirt-agree-")
    try:
        shutil.copyfile(path, os.path.join(tmp, path.name))
        cmd = [binary, "validate", "-f", tmp, "-o", "json"]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return False, [f"timed out after {timeout:g}s: {' '.join(cmd)}"]
        except OSError as e:
            return False, [f"cannot run {binary}: {e}"]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    stdout = proc.stdout.decode("utf-8", "replace")
    stderr = proc.stderr.decode("utf-8", "replace")
    diags, form, ok_field = parse_diagnostics(stdout, stderr)
    rc = proc.returncode

    def output_tail():
        lines = [f"  got exit {rc}, {len(diags)} diagnostic(s) ({form} output)"]
        lines += [f"    {describe(d)}" for d in diags[:8]]
        if len(diags) > 8:
            lines.append(f"    ... {len(diags) - 8} more")
        if not diags:
            raw = (stdout.strip() + "\n" + stderr.strip()).strip()
            for ln in raw.splitlines()[:6]:
                lines.append(f"    | {ln[:200]}")
        return lines

    if kind == "good":
        problems = []
        if rc != 0:
            problems.append(f"expected exit 0, got {rc}")
        if diags:
            problems.append("expected no diagnostics")
        if ok_field is False:
            problems.append('JSON says "ok": false')
        if problems:
            return False, ["; ".join(problems)] + output_tail()
        return True, []

    line, column, substring = expect
    want = f"{path.name}:{line}{':' + str(column) if column else ''} containing {substring!r}"

    def matches(d):
        if not same_file(d["file"], path.name) or d["line"] != line:
            return False
        if column is not None and d["column"] != column:
            return False
        text = d["message"]
        return substring in text or substring in f"{d['path']}: {text}"

    problems = []
    if rc != 1:
        problems.append(f"expected exit 1, got {rc}")
    if not any(matches(d) for d in diags):
        problems.append(f"no diagnostic at {want}")
    if problems:
        return False, ["; ".join(problems)] + output_tail()
    return True, []


def main() -> int:
    ap = argparse.ArgumentParser(description="Checks gitvirt validate against tests/corpus.")
    ap.add_argument("binary", help="path to the gitvirt binary")
    ap.add_argument("-k", "--filter", default="", help="only files whose name contains this")
    ap.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 4)
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per run")
    ap.add_argument("-v", "--verbose", action="store_true", help="print agreeing files too")
    args = ap.parse_args()

    binary = shutil.which(args.binary) or args.binary
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        print(f"test_agreement: {args.binary} is not an executable file", file=sys.stderr)
        return 2
    binary = os.path.abspath(binary)
    with tempfile.TemporaryDirectory(prefix="gitvirt-synthetic-") as synthetic_dir:
        files = corpus_files(args.filter, pathlib.Path(synthetic_dir))
        if not files:
            print("test_agreement: no corpus files selected", file=sys.stderr)
            return 2
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            results = list(pool.map(lambda kf: run_one(binary, kf[0], kf[1], args.timeout), files))

    failed = 0
    for (kind, path), (agrees, lines) in zip(files, results):
        name = f"{kind}/{path.name}"
        if agrees:
            if args.verbose:
                print(f"ok    {name}")
            continue
        failed += 1
        print(f"FAIL  {name}: {lines[0]}")
        for ln in lines[1:]:
            print(ln)
    good = sum(1 for k, _ in files if k == "good")
    made = sum(1 for _, p in files if p.name in SYNTHETIC and p.parent.name.startswith("gitvirt-synthetic-"))
    print(f"\ncorpus: {good} good, {len(files) - good} bad files ({made} made here); binary: {binary}")
    print(f"{len(files) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
