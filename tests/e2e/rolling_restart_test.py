#!/usr/bin/python3
"""Rolling restarts behind readiness on real QEMU (issue 16): at most maxUnavailable members of a
set are down at any instant, each comes back Ready before the next goes down, and a member that
does not become Ready stops the rollout.

usage: rolling_restart_test.py GITVIRT HARNESS BUILD_IMAGE

Three private libvirtd daemons (hv1..hv3, zones a..c) run tiny guests under TCG: the guest image's
kernel with an initrd whose static /init prints a marker on the serial console a few seconds after
boot (guest_lib.tiny_initrd); readiness is that `consoleMarker`. The manifests come from a git
repository the test commits to; `gitvirt apply -y` applies its head.

  test_1  a Cluster with one node group of 3 members, maxUnavailable: 2. A commit raises the
          template's memory beyond its maximum (a restart: shutdown -> update-restart -> start
          for each member). From `gitvirt jobs JOB -o json`: with each member down from the start
          of its shutdown step until its start step finished (the start waits until the member
          is Ready), at no instant are more than 2 down, by the steps' timestamps (seconds) and,
          strictly, by the order of the job's events; the third member goes down only after one
          of the first two is back and Ready.
  test_2  three labelled VMs under a DisruptionBudget of maxUnavailable: 2. A commit restarts all
          three, and gives the first an initrd that never prints its marker (readiness timeout
          30s). Applied with --rollback FULL: its start fails (not Ready), the third member,
          which waits for it, never goes down (its domain keeps running, untouched), and the job
          is rolled back: the first two run their previous definition again.

Times are printed as [timing] lines.
"""
import os
import subprocess
import sys
import tempfile
import time
import unittest
from datetime import datetime

import yaml

from e2e_lib import Libvirtd, Repo, newest_job, remove_unless_kept, run, timing
from guest_lib import guest_image, tiny_initrd

GITVIRT = HARNESS = BUILD_IMAGE = ""
MARKER = "GITVIRT-TINY-READY"
DELAY = 4  # seconds between the tiny guest's init starting and its marker
MAX_UNAVAILABLE = 2


def epoch(rfc3339):
    return datetime.strptime(rfc3339, "%Y-%m-%dT%H:%M:%SZ").timestamp()


class Downtime:
    """One member's time down in a job: from the start of its shutdown step to the end of its
    start step (which ends once the member is Ready), in seconds and in the job's event order."""

    def __init__(self, job, vm):
        steps = {s["id"]: s for s in job["steps"]}
        self.vm = vm
        self.shutdown = steps.get(f"shutdown/{vm}")
        self.start = steps.get(f"start/{vm}")
        events = job["events"]
        self.down_seq = next((e["seq"] for e in events if e["stepId"] == f"shutdown/{vm}"
                              and e["message"].startswith(f"shutdown VirtualMachine/{vm} on ")), None)
        self.up_seq = next((e["seq"] for e in events if e["stepId"] == f"start/{vm}"
                            and e["message"] == f"start VirtualMachine/{vm} succeeded"), None)
        self.down_at = epoch(self.shutdown["startedAt"]) if self.shutdown and self.shutdown["startedAt"] else None
        self.up_at = (epoch(self.start["finishedAt"]) if self.start and self.start["status"] == "succeeded"
                      else None)


def most_down_at_once(intervals):
    """The largest number of half-open intervals [down, up) that overlap (up None: never back)."""
    points = []
    for down, up in intervals:
        if down is None:
            continue
        points.append((down, 1))
        if up is not None:
            points.append((up, -1))
    # At one instant a member coming back is counted before one going down: [down, up).
    points.sort(key=lambda p: (p[0], p[1]))
    most = count = 0
    for _, delta in points:
        count += delta
        most = max(most, count)
    return most


class RollingRestart(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="gvrr-")
        cls.daemons = []
        try:
            image, seconds = guest_image(BUILD_IMAGE)
            timing("guest image (for its kernel)", seconds)
            cls.kernel = image["KERNEL"]
            cls.initrd = tiny_initrd(os.path.join(cls.dir, "tiny"), MARKER, DELAY)
            # Boots the same, prints another marker: readiness never passes.
            cls.silent_initrd = tiny_initrd(os.path.join(cls.dir, "silent"), "GITVIRT-TINY-OTHER", DELAY)
            nodes = []
            for i, zone in enumerate("abc"):
                daemon = Libvirtd(HARNESS, os.path.join(cls.dir, f"lv{i}"), keep_test_driver=False)
                cls.daemons.append(daemon)
                nodes.append({"name": f"hv{i + 1}", "uri": daemon.env["QEMU_URI"], "labels": {"zone": zone},
                              "pools": [{"name": "default", "path": os.path.join(cls.dir, f"pool{i}")}]})
        except BaseException:
            cls.tearDownClass()
            raise
        cls.repo = Repo(os.path.join(cls.dir, "repo"))
        cls.config = os.path.join(cls.dir, "gitvirt.yaml")
        with open(cls.config, "w") as f:
            yaml.safe_dump({"apiVersion": "gitvirt.dev/v1", "kind": "ControllerConfig",
                            "source": {"repo": cls.repo.path, "ref": "main"}, "nodes": nodes,
                            "state": os.path.join(cls.dir, "gitvirt.db")}, f)
        cls.env = dict(os.environ, GITVIRT_VIRT_TYPE="qemu")

    @classmethod
    def tearDownClass(cls):
        for d in cls.daemons:
            d.stop()
        remove_unless_kept(cls.dir)

    def gitvirt(self, *args, expect=0):
        p = subprocess.run([GITVIRT, "--config", self.config, *args], capture_output=True, text=True, env=self.env,
                           timeout=1800)
        self.assertEqual(p.returncode, expect, f"gitvirt {' '.join(args)}:\n{p.stdout}\n{p.stderr}")
        return p.stdout

    def last_job(self):
        return newest_job(self.gitvirt)

    def tiny(self, memory, initrd=None, timeout="10m"):
        return {"vcpus": 1, "memory": memory,
                "boot": {"kernel": self.kernel, "initrd": initrd or self.initrd,
                         "cmdline": "console=ttyS0,115200n8 panic=-1 quiet"},
                "disks": [{"name": "root", "size": "64MiB"}],
                "readiness": {"consoleMarker": MARKER, "timeout": timeout},
                "updatePolicy": {"restart": "Allowed", "shutdownTimeout": "5s", "forceOff": True}}

    def commit(self, name, docs, message):
        self.repo.write(name, yaml.safe_dump_all(docs, sort_keys=False))
        return self.repo.commit(message)

    def domain(self, vm):
        """(daemon index, domain id, max memory, state) of a VM, from `virsh dominfo` on the daemons."""
        for i, d in enumerate(self.daemons):
            p = run("virsh", "-c", d.env["QEMU_URI"], "dominfo", vm, check=False)
            if p.returncode != 0:
                continue
            info = dict(line.split(":", 1) for line in p.stdout.splitlines() if ":" in line)
            return i, info["Id"].strip(), info["Max memory"].strip(), info["State"].strip()
        self.fail(f"{vm} is on no daemon")

    def assert_ready_start(self, job, vm):
        start = next(s for s in job["steps"] if s["id"] == f"start/{vm}")
        self.assertEqual(start["status"], "succeeded", start)
        self.assertEqual(start["result"]["ready"], True)
        self.assertEqual(start["result"]["checked"], True)
        messages = [e["message"] for e in job["events"] if e["stepId"] == f"start/{vm}"]
        ready = [m for m in messages if m.startswith(f"{vm} is Ready after")]
        self.assertEqual(len(ready), 1, messages)
        self.assertIn(f'"{MARKER}" appeared on the console', ready[0])

    # ---- 1 ------------------------------------------------------------------------------

    def cluster(self, memory):
        return {"apiVersion": "gitvirt.dev/v1", "kind": "Cluster", "metadata": {"name": "roll"},
                "spec": {"rollbackStrategy": "FULL", "maxParallel": 3,
                         "nodeGroups": [{"name": "web", "count": 3, "maxUnavailable": MAX_UNAVAILABLE,
                                         "placement": {"antiAffinity": "HARD", "topologyKey": "zone"},
                                         "template": self.tiny(memory)}]}}

    def test_1_a_group_restarts_at_most_max_unavailable_at_a_time(self):
        members = ["roll-web-01", "roll-web-02", "roll-web-03"]
        self.commit("cluster.yaml", [self.cluster("512MiB")], "a group of three tiny guests")
        started = time.time()
        self.gitvirt("apply", "-y")
        timing("create 3 tiny guests to Ready (TCG)", time.time() - started)
        before = {vm: self.domain(vm) for vm in members}
        self.assertEqual(sorted(b[0] for b in before.values()), [0, 1, 2], "HARD anti-affinity: one per daemon")

        self.commit("cluster.yaml", [self.cluster("640MiB")], "more memory than the maximum: a restart")
        plan = self.gitvirt("plan", "--no-color")
        for vm in members:
            for step in ("shutdown", "update-restart", "start"):
                self.assertIn(f"{step} VirtualMachine/{vm}", plan)
        started = time.time()
        out = self.gitvirt("apply", "-y")
        timing("rolling restart of 3 members, maxUnavailable 2 (TCG)", time.time() - started)
        self.assertIn("succeeded", out)
        job = self.last_job()
        self.assertEqual(job["status"], "succeeded", job.get("errors"))

        downs = [Downtime(job, vm) for vm in members]
        for d in downs:
            self.assertIsNotNone(d.shutdown, d.vm)
            self.assert_ready_start(job, d.vm)
            self.assertIsNotNone(d.down_seq, d.vm)
            self.assertIsNotNone(d.up_seq, d.vm)
            print(f"  {d.vm}: down {d.shutdown['startedAt']} (event {d.down_seq}) -> "
                  f"Ready {d.start['finishedAt']} (event {d.up_seq})", flush=True)
        # At no instant more than maxUnavailable down: by the timestamps (whole seconds, which
        # keep the order of the instants they round down)...
        self.assertLessEqual(most_down_at_once([(d.down_at, d.up_at) for d in downs]), MAX_UNAVAILABLE)
        # ... and strictly, by the journal's order of the events.
        self.assertLessEqual(most_down_at_once([(d.down_seq, d.up_seq) for d in downs]), MAX_UNAVAILABLE)
        # Really two at once (the limit is 2, not 1), and the third only after one was Ready.
        self.assertEqual(most_down_at_once([(d.down_seq, d.up_seq) for d in downs]), MAX_UNAVAILABLE)
        by_down = sorted(downs, key=lambda d: d.down_seq)
        first_two, third = by_down[:2], by_down[2]
        self.assertEqual(third.vm, "roll-web-03", "members go down in name order")
        self.assertGreater(third.down_seq, min(d.up_seq for d in first_two))
        self.assertGreaterEqual(third.down_at, min(d.up_at for d in first_two))
        # The wait was real: a member is Ready only DELAY seconds after its init starts.
        for d in downs:
            self.assertGreaterEqual(d.start["result"]["seconds"], DELAY - 1, d.vm)
        # Every member runs the new definition, in a new QEMU process.
        for vm in members:
            node, domid, max_memory, state = self.domain(vm)
            self.assertEqual((node, max_memory, state), (before[vm][0], "655360 KiB", "running"), vm)
            self.assertNotEqual(domid, before[vm][1], f"{vm} was restarted")
        self.assertIn("No changes", self.gitvirt("plan", "--no-color"))

    # ---- 2 ------------------------------------------------------------------------------

    def budget_vms(self, memory, silent_first=False):
        docs = [{"apiVersion": "gitvirt.dev/v1", "kind": "DisruptionBudget", "metadata": {"name": "rb"},
                 "spec": {"selector": {"matchLabels": {"rollout": "rb"}}, "maxUnavailable": MAX_UNAVAILABLE}}]
        for i, name in enumerate(["rb-a", "rb-b", "rb-c"]):
            spec = self.tiny(memory)
            if silent_first and i == 0:
                spec = self.tiny(memory, initrd=self.silent_initrd, timeout="30s")
            docs.append({"apiVersion": "gitvirt.dev/v1", "kind": "VirtualMachine",
                         "metadata": {"name": name, "labels": {"rollout": "rb"}},
                         "spec": {"node": f"hv{i + 1}", **spec}})
        return docs

    def test_2_a_member_that_is_not_ready_stops_the_rollout(self):
        members = ["rb-a", "rb-b", "rb-c"]
        self.commit("budget.yaml", self.budget_vms("512MiB"), "three labelled VMs under a budget of 2")
        started = time.time()
        self.gitvirt("apply", "-y")
        timing("create 3 tiny guests to Ready (TCG)", time.time() - started)
        before = {vm: self.domain(vm) for vm in members}

        self.commit("budget.yaml", self.budget_vms("640MiB", silent_first=True),
                    "a restart for all three; rb-a's new initrd never prints its marker")
        started = time.time()
        out = self.gitvirt("apply", "-y", "--rollback", "FULL", expect=1)
        timing("failed rollout (30s readiness timeout) and its FULL rollback (TCG)", time.time() - started)
        job = self.last_job()
        self.assertEqual(job["status"], "rolled-back", out)
        steps = {s["id"]: s for s in job["steps"]}
        # rb-a never became Ready: its start failed with the reason.
        self.assertIn("rb-a was not Ready within", steps["start/rb-a"]["error"])
        self.assertIn('"GITVIRT-TINY-READY" has not appeared on the console yet', steps["start/rb-a"]["error"])
        # rb-c waits for rb-a (maxUnavailable 2: the third waits for the first): it never went down.
        for step in ("shutdown/rb-c", "update-restart/rb-c", "start/rb-c"):
            self.assertIsNone(steps[step]["startedAt"], steps[step])
            self.assertNotIn(steps[step]["status"], ("succeeded", "failed", "undone"), steps[step])
        self.assertFalse([e for e in job["events"] if e["stepId"].endswith("/rb-c")],
                         "no step of rb-c ran or was undone")
        self.assertEqual(self.domain("rb-c"), before["rb-c"], "rb-c kept running, untouched")
        # At most two were down at once in the rollout itself (rb-a never came back on its own).
        downs = [Downtime(job, vm) for vm in members]
        self.assertLessEqual(most_down_at_once([(d.down_seq, d.up_seq) for d in downs]), MAX_UNAVAILABLE)
        # FULL: what rb-a and rb-b went through is undone, each runs its previous definition.
        for vm in ("rb-a", "rb-b"):
            for step in ("shutdown", "update-restart"):
                self.assertEqual(steps[f"{step}/{vm}"]["status"], "undone", steps[f"{step}/{vm}"])
            node, domid, max_memory, state = self.domain(vm)
            self.assertEqual((node, max_memory, state), (before[vm][0], "524288 KiB", "running"), vm)
        self.assertEqual(steps["start/rb-b"]["status"], "undone", steps["start/rb-b"])
        # The commit is still to be applied: the next plan offers the same restart.
        plan = self.gitvirt("plan", "--no-color")
        self.assertIn("update-restart VirtualMachine/rb-a", plan)


if __name__ == "__main__":
    GITVIRT, HARNESS, BUILD_IMAGE = sys.argv[1:4]
    if os.geteuid() != 0:
        print("skipped: needs root (private libvirtd daemons)")
        sys.exit(0)
    unittest.main(argv=sys.argv[:1], verbosity=2)
