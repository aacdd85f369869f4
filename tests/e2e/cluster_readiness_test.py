#!/usr/bin/python3
"""The 3+3 example cluster (examples/manifests/k8s-cluster.yaml) with readiness: the workers are
created only after every control-plane member is Ready, checked from the job's step timestamps
(and, to the second's precision they lack, from the order of the journal's events).

usage: cluster_readiness_test.py GITVIRT HARNESS BUILD_IMAGE EXAMPLES_DIR sim|qemu

sim   The examples as they are, on the example configuration's three simulated nodes (libvirt's
      test driver). No guest runs there: readiness (agent) is reported as not checkable and
      treated as Ready, and the start steps journal that warning (docs/manifests.md, Readiness).
qemu  The same Cluster on three private libvirtd daemons (zones a, b, c) running real QEMU (TCG).
      Six Debian guests under TCG on two cores would take a quarter of an hour, so each member
      is a tiny guest instead: the guest image's kernel with an initrd whose static /init prints
      a marker on the serial console a few seconds after boot. The Cluster keeps the example's
      groups, counts, placement (HARD anti-affinity by zone for the control plane), maxParallel
      and rollback; the template's hardware becomes 1 vCPU, 512 MiB, a 64 MiB disk and direct
      kernel boot, and readiness is `consoleMarker` (there is no guest agent in a tiny guest).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import yaml

from e2e_lib import Libvirtd, run
from guest_lib import guest_image, journal, tiny_initrd

GITVIRT = HARNESS = BUILD_IMAGE = EXAMPLES = ""
MODE = "sim"
MARKER = "GITVIRT-TINY-READY"
DELAY = 4  # seconds between the tiny guest's init starting and its marker


def timing(what, seconds):
    print(f"[timing] {what}: {seconds:.1f} s", flush=True)


class ClusterReadiness(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="gvcr-")
        self.daemons = []
        self.env = dict(os.environ, GITVIRT_VIRT_TYPE="qemu")

    def tearDown(self):
        for d in self.daemons:
            d.stop()
        if os.environ.get("GITVIRT_KEEP_GUEST_DIR") == "1":
            print(f"kept {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def gitvirt(self, config, *args):
        p = subprocess.run([GITVIRT, "--config", config, *args], capture_output=True, text=True, env=self.env,
                           timeout=3000)
        self.assertEqual(p.returncode, 0, f"gitvirt {' '.join(args)}:\n{p.stdout}\n{p.stderr}")
        return p.stdout

    def check_order(self, db, expect_checked):
        steps, events = journal(db)
        job = max(s["job_id"] for s in steps)
        steps = [s for s in steps if s["job_id"] == job]
        events = [e for e in events if e["job_id"] == job]
        self.assertTrue(all(s["status"] == "succeeded" for s in steps),
                        [(s["step_id"], s["status"], s["error"]) for s in steps if s["status"] != "succeeded"])
        cp_starts = [s for s in steps if s["type"] == "start" and "-cp-" in s["target"]]
        worker_steps = [s for s in steps if "-worker-" in s["target"]]
        self.assertEqual(len(cp_starts), 3)
        self.assertEqual(len({s["target"] for s in worker_steps}), 3)
        # Timestamps (seconds): no worker step starts before the last control-plane member is Ready.
        last_cp_ready = max(s["finished_at"] for s in cp_starts)
        first_worker = min(s["started_at"] for s in worker_steps)
        self.assertGreaterEqual(first_worker, last_cp_ready)
        # The same, strictly, from the journal's event order.
        ready_seq = [next(e["seq"] for e in events if e["step_id"] == s["step_id"] and
                          e["message"].endswith(" succeeded")) for s in cp_starts]
        first_worker_seq = min(e["seq"] for e in events if "-worker-" in e["step_id"])
        self.assertLess(max(ready_seq), first_worker_seq)
        for s in cp_starts:
            result = json.loads(s["result_json"])
            self.assertEqual(result["ready"], True)
            self.assertEqual(result["checked"], expect_checked)
            messages = [e["message"] for e in events if e["step_id"] == s["step_id"]]
            vm = s["target"].split("/")[1]
            if expect_checked:
                ready = [m for m in messages if m.startswith(f"{vm} is Ready after")]
                self.assertEqual(len(ready), 1, messages)
                self.assertIn(f'"{MARKER}" appeared on the console', ready[0])
                # The wait was real: the marker comes DELAY seconds after init starts.
                self.assertGreaterEqual(result["seconds"], DELAY - 1)
                self.assertGreaterEqual(s["finished_at"] - s["started_at"], DELAY - 1)
            else:
                self.assertTrue(any("cannot be checked on node" in m and "treated as Ready" in m for m in messages),
                                messages)
        for s in cp_starts:
            print(f"  {s['target']}: start {s['started_at']} -> Ready {s['finished_at']}", flush=True)
        print(f"  first worker step at {first_worker} (last control plane Ready at {last_cp_ready})", flush=True)
        return cp_starts

    def test_workers_wait_for_a_ready_control_plane(self):
        if MODE == "sim":
            self.run_sim()
        else:
            self.run_qemu()

    def run_sim(self):
        shutil.copytree(os.path.join(EXAMPLES, "manifests"), os.path.join(self.dir, "manifests"))
        shutil.copytree(os.path.join(EXAMPLES, "images"), os.path.join(self.dir, "images"))
        with open(os.path.join(EXAMPLES, "gitvirt.yaml")) as f:
            config = yaml.safe_load(f)
        for node in config["nodes"]:
            node["pools"] = [{"name": p["name"], "path": os.path.join(self.dir, "pools", p["name"])}
                             for p in node.get("pools", [])]
        config_path = os.path.join(self.dir, "gitvirt.yaml")
        with open(config_path, "w") as f:
            yaml.safe_dump(config, f)
        with open(os.path.join(self.dir, "manifests", "k8s-cluster.yaml")) as f:
            cluster = yaml.safe_load(f)
        for group in cluster["spec"]["nodeGroups"]:
            self.assertTrue(group["template"].get("readiness"), "the example cluster declares readiness")
        self.gitvirt(config_path, "apply", "--auto-approve")
        self.check_order(os.path.join(self.dir, "gitvirt.db"), expect_checked=False)
        clusters = self.gitvirt(config_path, "get", "clusters")
        self.assertIn("6/6", clusters)

    def run_qemu(self):
        image, seconds = guest_image(BUILD_IMAGE)
        timing("guest image (for its kernel)", seconds)
        initrd = tiny_initrd(os.path.join(self.dir, "tiny"), MARKER, DELAY)
        nodes = []
        for i, zone in enumerate("abc"):
            daemon = Libvirtd(HARNESS, os.path.join(self.dir, f"lv{i}"), keep_test_driver=False)
            self.daemons.append(daemon)
            nodes.append({"name": f"hv{i + 1}", "uri": daemon.env["QEMU_URI"], "labels": {"zone": zone},
                          "pools": [{"name": "default", "path": os.path.join(self.dir, f"pool{i}")}]})
        config_path = os.path.join(self.dir, "gitvirt.yaml")
        with open(config_path, "w") as f:
            yaml.safe_dump({"apiVersion": "gitvirt.dev/v1", "kind": "ControllerConfig",
                            "source": {"path": "manifests"}, "nodes": nodes, "state": "gitvirt.db"}, f)
        with open(os.path.join(EXAMPLES, "manifests", "k8s-cluster.yaml")) as f:
            cluster = yaml.safe_load(f)
        cluster["spec"].pop("cloudInit", None)
        for group in cluster["spec"]["nodeGroups"]:
            group.pop("ipConfigPatterns", None)
            group["template"] = {
                "vcpus": 1,
                "memory": "512MiB",
                "boot": {"kernel": image["KERNEL"], "initrd": initrd,
                         "cmdline": "console=ttyS0,115200n8 panic=-1 quiet"},
                "disks": [{"name": "root", "size": "64MiB"}],
                "readiness": {"consoleMarker": MARKER, "timeout": "10m"},
                "updatePolicy": {"restart": "Allowed", "shutdownTimeout": "5s", "forceOff": True},
            }
        os.makedirs(os.path.join(self.dir, "manifests"))
        with open(os.path.join(self.dir, "manifests", "k8s-cluster.yaml"), "w") as f:
            yaml.safe_dump(cluster, f)
        started = time.time()
        self.gitvirt(config_path, "apply", "--auto-approve")
        timing("3+3 tiny guests, control plane then workers, each to Ready (TCG)", time.time() - started)
        cp_starts = self.check_order(os.path.join(self.dir, "gitvirt.db"), expect_checked=True)
        for s in cp_starts:
            timing(f"{s['target']} start to Ready", json.loads(s["result_json"])["seconds"])
        # HARD anti-affinity by zone: one control-plane member per daemon.
        for daemon in self.daemons:
            names = run("virsh", "-c", daemon.env["QEMU_URI"], "list", "--name").stdout.split()
            self.assertEqual(len([n for n in names if "-cp-" in n]), 1, names)
        # The console logs gitvirt reads are in its cache and hold this boot's marker.
        console = os.path.join(self.dir, "gitvirt.db.cache", "console")
        for s in cp_starts:
            with open(os.path.join(console, s["target"].split("/")[1] + ".log"), errors="replace") as f:
                self.assertIn(MARKER, f.read())
        status = self.gitvirt(config_path, "get", "clusters")
        self.assertIn("6/6", status)


if __name__ == "__main__":
    GITVIRT, HARNESS, BUILD_IMAGE, EXAMPLES, MODE = sys.argv[1:6]
    if MODE == "qemu" and os.geteuid() != 0:
        print("skipped: needs root (private libvirtd daemons)")
        sys.exit(0)
    unittest.main(argv=sys.argv[:1], verbosity=2)
