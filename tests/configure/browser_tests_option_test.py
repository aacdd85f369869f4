#!/usr/bin/python3
"""Configure refuses a test build without the browser tests' tools, unless told to skip them.

    /usr/bin/python3 tests/configure/browser_tests_option_test.py SOURCE_DIR CXX_COMPILER

Configures SOURCE_DIR into temporary build directories with node pointed at a file that does
not exist (-DGITVIRT_NODE=...), which find_program then keeps, as if node were missing:

  1. with the tests on and GITVIRT_BROWSER_TESTS at its default, configure must fail and say
     to run deploy/setup.sh (or to pass -DGITVIRT_BROWSER_TESTS=OFF);
  2. with -DGITVIRT_BROWSER_TESTS=OFF it must succeed, and `ctest -N` must list the other
     tests but no browser test.
"""

import os
import subprocess
import sys
import tempfile


def configure(source, cxx, build, *extra):
    cmd = ["cmake", "-S", source, "-B", build, "-G", "Ninja", f"-DCMAKE_CXX_COMPILER={cxx}",
           "-DGITVIRT_BUILD_TESTS=ON", "-DGITVIRT_NODE=/nonexistent/gitvirt-test/node", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)


def main() -> int:
    source, cxx = sys.argv[1], sys.argv[2]
    failures = []
    with tempfile.TemporaryDirectory(prefix="gitvirt-configure-") as tmp:
        on = configure(source, cxx, os.path.join(tmp, "on"))
        said = on.stdout + on.stderr
        if on.returncode == 0:
            failures.append("configure without node succeeded; it must fail")
        for needle in ("node", "deploy/setup.sh", "-DGITVIRT_BROWSER_TESTS=OFF"):
            if needle not in " ".join(said.split()):
                failures.append(f"configure's message does not mention {needle!r}")
        if failures:
            print(said[-3000:])

        off_dir = os.path.join(tmp, "off")
        off = configure(source, cxx, off_dir, "-DGITVIRT_BROWSER_TESTS=OFF")
        if off.returncode != 0:
            failures.append("configure with -DGITVIRT_BROWSER_TESTS=OFF failed")
            print((off.stdout + off.stderr)[-3000:])
        else:
            listed = subprocess.run(["ctest", "-N"], cwd=off_dir, capture_output=True, text=True).stdout
            if "schemas.loader_agreement" not in listed:
                failures.append("ctest -N lists no tests at all: " + listed[-500:])
            for browser_test in ("api.dashboard_browser", "e2e.dashboard_during_apply"):
                if browser_test in listed:
                    failures.append(f"{browser_test} is registered although the browser tests are OFF")
    for f in failures:
        print("FAIL", f)
    print("ok" if not failures else f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
