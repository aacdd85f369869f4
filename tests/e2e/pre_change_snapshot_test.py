#!/usr/bin/python3
"""Pre-change snapshots with automatic revert on real QEMU (issue 16), with the Debian 12 guest
image and its guest agent.

usage: pre_change_snapshot_test.py GITVIRT HARNESS BUILD_IMAGE

One VM from the guest image (tests/guest/build-image.sh) on a private libvirtd, on a libvirt
network with DHCP, with `updatePolicy: {restart: Allowed, snapshot: {keep: 1h}}` and
`readiness: {consoleMarker: GV-SNAP-READY}`: its cloud-init user-data prints that marker on the
serial console at every boot (bootcmd). The manifests come from a git repository.

  1. apply: the VM boots and is Ready (the marker appeared on its console).
  2. Through the guest agent (guest-file-write, guest-exec sync) a marker file is written, and the
     guest's boot_id read.
  3. A commit raises the memory beyond its maximum and replaces the user-data with one that
     removes the marker file and never prints the readiness marker: a restart, whose cloud-init
     breaks readiness. The plan takes `pre-change-...` first. `apply -y --rollback FULL`: the
     start is not Ready within the readiness timeout, the job fails and is rolled back, the
     VM is reverted to the snapshot (the job's events say "reverted to its pre-change
     snapshot"), and through the guest agent: the marker file is back with its content, in the
     same boot as before the change (the snapshot holds the running guest's memory), and the
     domain has its previous memory.
  4. `gitvirt snapshot list` shows the snapshot (policy updatePolicy.snapshot). With the breaking
     commit reverted, a plan made just before its keep ends (GITVIRT_FAKE_NOW, test builds) keeps
     it; one made after deletes it, and nothing else; applied, the snapshot is gone from libvirt.

Times are printed as [timing] lines. Under TCG a boot takes 1-4 minutes depending on the load.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from datetime import datetime, timedelta, timezone

from e2e_lib import Libvirtd, Repo, newest_job, remove_unless_kept, run, timing, wait_for
from guest_lib import Agent, Network, guest_image

GITVIRT = HARNESS = BUILD_IMAGE = ""
VM = "gv-snap"
READY_MARKER = "GV-SNAP-READY"
MARKER_FILE = "/var/lib/gitvirt-e2e-marker"
# Long enough for a TCG boot to print the marker on a loaded machine (about 2.5 minutes at a load
# of 15 on 2 cores); the failing start waits all of it.
READINESS_TIMEOUT = "5m"


def rfc3339(moment):
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class PreChangeSnapshot(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.image, seconds = guest_image(BUILD_IMAGE)
        timing("guest image (build-image.sh; cached when fast)", seconds)
        cls.dir = tempfile.mkdtemp(prefix="gvps-")
        cls.libvirtd = Libvirtd(HARNESS, os.path.join(cls.dir, "lv"), keep_test_driver=False)
        cls.uri = cls.libvirtd.env["QEMU_URI"]
        try:
            cls.network = Network(cls.uri, "gvnet-" + os.path.basename(cls.dir)[5:].lower())
        except BaseException:
            cls.libvirtd.stop()
            raise
        cls.repo = Repo(os.path.join(cls.dir, "repo"))
        cls.config = os.path.join(cls.dir, "gitvirt.yaml")
        with open(cls.config, "w") as f:
            f.write(f"""apiVersion: gitvirt.dev/v1
kind: ControllerConfig
source: {{repo: {cls.repo.path}, ref: main}}
nodes:
  - name: hv1
    uri: "{cls.uri}"
    pools: [{{name: default, path: {cls.dir}/pool}}]
apply: {{stepTimeout: 30m}}
state: {cls.dir}/gitvirt.db
""")
        sha = run("sha256sum", cls.image["IMAGE"]).stdout.split()[0]
        cls.repo.write("image.yaml", f"""apiVersion: gitvirt.dev/v1
kind: Image
metadata: {{name: guest-base}}
spec: {{source: {cls.image["IMAGE"]}, sha256: {sha}, format: qcow2}}
""")
        cls.env = dict(os.environ, GITVIRT_VIRT_TYPE="qemu")
        cls.env.pop("GITVIRT_FAKE_NOW", None)

    @classmethod
    def tearDownClass(cls):
        cls.network.destroy()
        cls.libvirtd.stop()
        remove_unless_kept(cls.dir)

    def vm_yaml(self, memory, user_data):
        indented = "".join("      " + line + "\n" for line in user_data.strip().splitlines())
        return f"""apiVersion: gitvirt.dev/v1
kind: VirtualMachine
metadata: {{name: {VM}}}
spec:
  node: hv1
  vcpus: 1
  memory: {memory}
  boot:
    kernel: {self.image["KERNEL"]}
    initrd: {self.image["INITRD"]}
    cmdline: "{self.image["CMDLINE"]}"
  disks:
    - {{name: root, size: 6GiB, source: {{image: guest-base}}}}
  networks:
    - {{network: {self.network.name}}}
  guestAgent: true
  cloudInit:
    ipConfigs: ["ip=dhcp"]
    userData: |
{indented}  readiness: {{consoleMarker: {READY_MARKER}, timeout: {READINESS_TIMEOUT}}}
  updatePolicy: {{restart: Allowed, shutdownTimeout: 2m, forceOff: true, snapshot: {{keep: 1h}}}}
"""

    def gitvirt(self, *args, expect=0, env=None):
        p = subprocess.run([GITVIRT, "--config", self.config, *args], capture_output=True, text=True,
                           env=env or self.env, timeout=3600)
        self.assertEqual(p.returncode, expect, f"gitvirt {' '.join(args)}:\n{p.stdout}\n{p.stderr}")
        return p.stdout

    def last_job(self):
        return newest_job(self.gitvirt)

    def agent(self):
        return Agent(self.uri, VM)

    def wait_agent(self, seconds):
        def answers():
            try:
                self.agent().command("guest-ping", timeout=5)
                return True
            except subprocess.CalledProcessError:
                return False
        wait_for(f"the guest agent of {VM} to answer", answers, seconds)

    def boot_id(self):
        return self.agent().read_file("/proc/sys/kernel/random/boot_id").strip()

    def snapshots(self):
        return json.loads(self.gitvirt("snapshot", "list", VM, "-o", "json"))

    def libvirt_snapshots(self):
        return run("virsh", "-c", self.uri, "snapshot-list", VM, "--name").stdout.split()

    def test_reverted_to_the_pre_change_snapshot_when_not_ready(self):
        good = f"bootcmd:\n  - echo {READY_MARKER} > /dev/ttyS0\n"
        self.repo.write("vm.yaml", self.vm_yaml("1GiB", good))
        self.repo.commit("a guest that prints its readiness marker at every boot")
        started = time.time()
        self.gitvirt("apply", "-y")
        timing("apply: image import + create + boot to Ready (console marker), TCG", time.time() - started)
        start = next(s for s in self.last_job()["steps"] if s["id"] == f"start/{VM}")
        self.assertEqual((start["result"]["ready"], start["result"]["checked"]), (True, True), start)
        timing("start step: domain start to Ready", start["result"]["seconds"])
        self.assertEqual(self.snapshots(), [], "no change yet, no pre-change snapshot")

        # 2. A marker in the guest, through the guest agent.
        self.wait_agent(300)
        content = "written before the change " + os.urandom(8).hex()
        agent = self.agent()
        agent.write_file(MARKER_FILE, content)
        self.assertEqual(agent.exec("/bin/sync")[0], 0)
        self.assertEqual(agent.read_file(MARKER_FILE), content)
        boot = self.boot_id()

        # 3. A restart whose cloud-init breaks readiness.
        broken = f"bootcmd:\n  - rm -f {MARKER_FILE}\n  - echo GV-SNAP-CHANGED > /dev/ttyS0\n"
        self.repo.write("vm.yaml", self.vm_yaml("1280MiB", broken))
        self.repo.commit("more memory, and a user-data that never prints the readiness marker")
        plan = self.gitvirt("plan", "--no-color")
        for step in ("snapshot", "shutdown", "update-restart", "start"):
            self.assertIn(f"{step} VirtualMachine/{VM}", plan)
        self.assertIn("pre-change snapshot (updatePolicy.snapshot)", plan)
        # The console of the boot after the change (truncated at every start; the rollback starts
        # the VM again): watched while the job runs.
        console = os.path.join(self.dir, "gitvirt.db.cache", "console", VM + ".log")
        seen = {"changed": False, "ready_with_it": False}
        done = threading.Event()

        def watch():
            while not done.wait(1):
                try:
                    with open(console, errors="replace") as f:
                        text = f.read()
                except OSError:
                    continue
                if "GV-SNAP-CHANGED" in text:
                    seen["changed"] = True
                    seen["ready_with_it"] |= READY_MARKER in text
        watcher = threading.Thread(target=watch)
        watcher.start()
        started = time.time()
        try:
            out = self.gitvirt("apply", "-y", "--rollback", "FULL", expect=1)
        finally:
            done.set()
            watcher.join()
        timing(f"failed change (readiness timeout {READINESS_TIMEOUT}) and its FULL rollback, TCG",
               time.time() - started)
        job = self.last_job()
        self.assertEqual(job["status"], "rolled-back", out)
        steps = {s["id"]: s for s in job["steps"]}
        self.assertEqual([(s["id"], s["status"]) for s in job["steps"]],
                         [(f"snapshot/{VM}", "undone"), (f"shutdown/{VM}", "undone"),
                          (f"update-restart/{VM}", "undone"), (f"start/{VM}", "failed")])
        taken = [re.fullmatch(rf"internal snapshot (pre-change-\d{{8}}-\d{{6}}) of {VM} created "
                              r"\(policy updatePolicy.snapshot\)", e["message"]) for e in job["events"]]
        taken = [m.group(1) for m in taken if m]
        self.assertEqual(len(taken), 1, job["events"])
        name = taken[0]
        self.assertIn(f"{VM} was not Ready within {READINESS_TIMEOUT}", steps[f"start/{VM}"]["error"])
        self.assertIn(f'"{READY_MARKER}" has not appeared on the console yet', steps[f"start/{VM}"]["error"])
        messages = [e["message"] for e in job["events"]]
        self.assertIn(f"{VM} reverted to its pre-change snapshot {name}: the job failed and its rollback "
                      "strategy undoes the change", messages)
        # The boot after the change ran the new user-data, which never printed the marker.
        self.assertEqual(seen, {"changed": True, "ready_with_it": False})
        # The VM runs again as it was: the previous definition, the same boot, the marker back.
        info = run("virsh", "-c", self.uri, "dominfo", VM).stdout
        self.assertRegex(info, r"State:\s+running")
        self.assertRegex(info, r"Max memory:\s+1048576 KiB")
        self.wait_agent(300)
        self.assertEqual(self.agent().read_file(MARKER_FILE), content,
                         "the marker file the broken cloud-init removed is back")
        self.assertEqual(self.boot_id(), boot, "the guest resumed where the snapshot was taken")

        # 4. The snapshot stays until its keep is over, then a plan deletes it.
        listed = self.snapshots()
        self.assertEqual([(s["name"], s["policy"]) for s in listed], [(name, "updatePolicy.snapshot")])
        self.assertIn(name, self.gitvirt("snapshot", "list"))
        self.assertEqual(self.libvirt_snapshots(), [name])
        self.repo.git("revert", "--no-edit", "HEAD")
        created = datetime.strptime(listed[0]["created"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        early = dict(self.env, GITVIRT_FAKE_NOW=rfc3339(created + timedelta(minutes=59)))
        self.assertIn("No changes", self.gitvirt("plan", "--detailed-exitcode", "--no-color", env=early))
        late = dict(self.env, GITVIRT_FAKE_NOW=rfc3339(created + timedelta(hours=1, minutes=1)))
        plan = self.gitvirt("plan", "--detailed-exitcode", "--no-color", expect=2, env=late)
        self.assertIn(f"snapshot-delete VirtualMachine/{VM}", plan)
        self.assertIn(name, plan)
        self.assertIn("Plan: 0 to add, 0 to change, 0 to replace, 1 to destroy.", plan)
        self.gitvirt("apply", "-y", env=late)
        self.assertEqual(self.libvirt_snapshots(), [])
        self.assertEqual(self.snapshots(), [])
        self.assertEqual(self.agent().read_file(MARKER_FILE), content)


if __name__ == "__main__":
    GITVIRT, HARNESS, BUILD_IMAGE = sys.argv[1:4]
    if os.geteuid() != 0:
        print("skipped: needs root (private libvirtd, guest image build)")
        sys.exit(0)
    unittest.main(argv=sys.argv[:1], verbosity=2)
