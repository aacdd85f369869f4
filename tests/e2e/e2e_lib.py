"""Helpers for gitvirt's end-to-end tests: a private libvirtd, a git repository, a running
`gitvirt serve` and its HTTP API. Standard library only (Debian's /usr/bin/python3)."""
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request


def run(*argv, check=True, **kw):
    return subprocess.run(argv, check=check, capture_output=True, text=True, **kw)


class Libvirtd:
    """A private libvirtd from tests/harness/libvirtd.sh (stopped by stop())."""

    def __init__(self, harness, directory, keep_test_driver=True):
        self.harness = harness
        self.dir = directory
        out = run(harness, "start", directory, timeout=180).stdout
        self.env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        self.keeper = None
        if keep_test_driver:
            # The daemon keeps test-driver state only while a connection is open.
            self.keeper = subprocess.Popen(["virsh", "-c", self.env["TEST_URI"], "event", "--loop", "--all"],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)

    def stop(self):
        if self.keeper:
            self.keeper.terminate()
            self.keeper.wait()
        run(self.harness, "stop", self.dir, check=False, timeout=180)


class Repo:
    """A git repository in a directory, committed to with a fixed identity."""

    def __init__(self, path):
        self.path = path
        os.makedirs(path, exist_ok=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args):
        return run("git", "-C", self.path, "-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid",
                   *args).stdout.strip()

    def write(self, name, content):
        with open(os.path.join(self.path, name), "w") as f:
            f.write(content)

    def remove(self, name):
        os.remove(os.path.join(self.path, name))

    def commit(self, message):
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")


def vm_manifest(name, vcpus=1, network=True, node=None):
    nic = "  networks:\n    - network: default\n" if network else ""
    pinned = f"  node: {node}\n" if node else ""
    return f"""apiVersion: gitvirt.dev/v1
kind: VirtualMachine
metadata:
  name: {name}
  labels: {{app: e2e}}
spec:
{pinned}  vcpus: {vcpus}
  memory: 512MiB
  disks:
    - {{name: root, size: 1GiB}}
{nic}  updatePolicy: {{restart: Allowed, shutdownTimeout: 2s, forceOff: true}}
"""


def write_git_source_config(path, source, state_dir, pool_dir):
    """A gitvirt.yaml reading `source` (the flow mapping of `source:`) onto one simulated node."""
    with open(path, "w") as f:
        f.write(f"""apiVersion: gitvirt.dev/v1
kind: ControllerConfig
source: {source}
nodes:
  - name: hv1
    uri: sim:{state_dir}/hv1.xml
    pools: [{{name: default, path: {pool_dir}}}]
sync: {{auto: true}}
state: {state_dir}/gitvirt.db
""")


class Serve:
    """A running `gitvirt serve`, its URL parsed from what it prints."""

    def __init__(self, gitvirt, config, env=None):
        self.log_path = config + ".serve.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([gitvirt, "--config", config, "serve"], stdout=subprocess.PIPE,
                                     stderr=self.log, text=True, env=env)
        self.url = None
        deadline = time.time() + 60
        while time.time() < deadline and self.url is None:
            line = self.proc.stdout.readline()
            if not line:
                break
            m = re.search(r"Dashboard:\s+(\S+?)/?$", line.strip())
            if m:
                self.url = m.group(1)
        if self.url is None:
            self.stop()
            with open(self.log_path) as log:
                raise RuntimeError("serve did not print its URL; log: " + log.read()[-3000:])

    def get(self, path, token=None, method="GET"):
        req = urllib.request.Request(self.url + path, method=method)
        if token:
            req.add_header("Authorization", "Bearer " + token)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def status(self):
        code, body = self.get("/api/v1/status")
        return json.loads(body) if code == 200 else {}

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.log.close()


def wait_for(what, predicate, seconds, explain=lambda: ""):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}. {explain()}")


def timing(what, seconds):
    """A [timing] line in the test's output."""
    print(f"[timing] {what}: {seconds:.1f} s", flush=True)


def remove_unless_kept(directory):
    """Removes a test's directory, unless GITVIRT_KEEP_GUEST_DIR=1 asks to keep it."""
    if os.environ.get("GITVIRT_KEEP_GUEST_DIR") == "1":
        print(f"kept {directory}")
    else:
        shutil.rmtree(directory, ignore_errors=True)


def newest_job(gitvirt):
    """The newest job as `gitvirt jobs ID -o json` shows it (steps, events); `gitvirt(*args)` runs
    the binary and returns what it printed."""
    jobs = json.loads(gitvirt("jobs", "-o", "json"))["items"]
    newest = max(jobs, key=lambda j: (j["createdAt"], j["id"]))
    return json.loads(gitvirt("jobs", newest["id"], "-o", "json"))
