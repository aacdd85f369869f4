#!/usr/bin/python3
"""End to end: the imperative commands of issue 7 and what serve shows of policies.

usage: policy_test.py GITVIRT_BINARY

The binary against a simulated node (sim:FILE: libvirt's test driver, its state kept in a file
between runs), so it needs no daemon. Checked from outside: exit codes, `-o json` output, the
backup directories on disk, the state file with sqlite3, and serve's HTTP API.

  power      --dry-run changes nothing; confirmation is asked (refused without a terminal) and
             skipped with -y; --parallel (from the journal's event order); VMs already in
             the state are skipped; shutdown, reboot, reboot --force (off + start), shutdown
             --force; jobs
  snapshots  create/list/delete by hand, `snapshot run POLICY` with retention keep 2 that never
             touches the hand-made one; a name taken by hand is refused
  backups    `backup run POLICY|VM`, list, verify (and a tampered file failing it), restore --as
             with and without confirmation, a damaged backup restoring nothing, the catalog
             rebuilt by `backup list --rescan` after it was lost
  serve      scheduled runs (6-field cron with seconds and ?): /api/v1/snapshots, /api/v1/backups,
             policy last/next run in /api/v1/status, backup bytes/durations/failures in /metrics,
             which count the CLI's runs too (they are in the state file)
  failures   a `backup run` that fails is in the catalog (status failed, its error; kept by a
             rescan), in /api/v1/backups?status=failed and in serve's failure counter and gauge
"""
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

from e2e_lib import Serve, run, wait_for

GITVIRT = ""


def vm(name, tier):
    return f"""apiVersion: gitvirt.dev/v1
kind: VirtualMachine
metadata: {{name: {name}, labels: {{tier: {tier}}}}}
spec:
  node: hv1
  vcpus: 1
  memory: 512MiB
  disks: [{{name: root, size: 1GiB}}, {{name: data, size: 2GiB}}]
"""


class PolicyEndToEnd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="gve2epol-")
        cls.manifests = os.path.join(cls.dir, "manifests")
        cls.backups = os.path.join(cls.dir, "backups")
        cls.manual = os.path.join(cls.dir, "manual")
        os.makedirs(cls.manifests)
        cls.write("vms.yaml", "---\n".join([vm("web-01", "web"), vm("web-02", "web"), vm("db-01", "db")]))
        cls.write("policies.yaml", f"""apiVersion: gitvirt.dev/v1
kind: SnapshotPolicy
metadata: {{name: hourly}}
spec:
  selector: {{matchLabels: {{tier: web}}}}
  namePattern: "{{policy}}-{{vm}}-{{datetime}}"
  retention: {{keep: 2}}
---
apiVersion: gitvirt.dev/v1
kind: BackupPolicy
metadata: {{name: nightly}}
spec:
  selector: {{names: [db-01]}}
  target: {{directory: {cls.backups}}}
  compression: zstd
  verify: true
  retention: {{keep: 2}}
""")
        cls.config = os.path.join(cls.dir, "gitvirt.yaml")
        with open(cls.config, "w") as f:
            f.write(f"""apiVersion: gitvirt.dev/v1
kind: ControllerConfig
source: {{path: manifests, interval: 1s}}
nodes:
  - name: hv1
    uri: sim:state/hv1.xml
    pools: [{{name: default, path: {cls.dir}/pool}}]
sync: {{auto: true}}
state: state/gitvirt.db
api: {{listen: "127.0.0.1:0"}}
""")
        os.makedirs(os.path.join(cls.dir, "state"))
        out = cls.gv("apply", "--auto-approve")
        assert out.returncode == 0, out.stdout + out.stderr

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True) if not os.environ.get("KEEP") else print(cls.dir)

    @classmethod
    def write(cls, name, text):
        with open(os.path.join(cls.manifests, name), "w") as f:
            f.write(text)

    @classmethod
    def gv(cls, *args):
        # stdin is not a terminal: a command that needs confirmation must refuse.
        return run(GITVIRT, "--config", cls.config, *args, check=False, stdin=subprocess.DEVNULL, timeout=300)

    def ok(self, *args):
        out = self.gv(*args)
        self.assertEqual(out.returncode, 0, f"gitvirt {' '.join(args)}\n{out.stdout}\n{out.stderr}")
        return out.stdout

    def power(self):
        # The table, which also lists the domains gitvirt does not own (a restored copy).
        rows = [line.split() for line in self.ok("get", "vms").splitlines()[1:] if line.strip()]
        return {row[0]: row[2] for row in rows}

    def jobs(self, kind):
        return [line for line in self.ok("jobs", "--kind", kind, "--limit", "100").splitlines()[1:] if line.strip()]

    # ---- power -------------------------------------------------------------------------

    def test_1_power(self):
        self.assertEqual(self.power(), {"web-01": "Running", "web-02": "Running", "db-01": "Running"})
        jobs_before = len(self.jobs("power"))
        dry = self.ok("power", "stop", "-l", "tier=web", "--dry-run")
        self.assertIn("web-01", dry)
        self.assertIn("web-02", dry)
        self.assertNotIn("db-01", dry)
        self.assertEqual(self.power()["web-01"], "Running", "--dry-run changes nothing")

        refused = self.gv("power", "stop", "-l", "tier=web")
        self.assertEqual(refused.returncode, 1)
        self.assertIn("confirmation", refused.stderr)
        self.assertEqual(self.power()["web-01"], "Running")

        self.ok("power", "stop", "-l", "tier=web", "-y", "--parallel", "1")
        self.assertEqual(self.power(), {"web-01": "Stopped", "web-02": "Stopped", "db-01": "Running"})
        self.assertEqual(len(self.jobs("power")), jobs_before + 1, "one job for the whole selector")

        again = self.ok("power", "stop", "-l", "tier=web", "--auto-approve")
        self.assertIn("skipping web-01", again)
        self.assertIn("Nothing to do", again)
        self.assertEqual(len(self.jobs("power")), jobs_before + 1, "nothing to do is no job")

        self.ok("power", "start", "-l", "tier=web")  # start asks nothing
        self.assertEqual(self.power(), {"web-01": "Running", "web-02": "Running", "db-01": "Running"})
        forced = self.ok("power", "start", "web-01", "--no-skip-if-in-state")
        self.assertNotIn("skipping", forced)
        self.assertEqual(len(self.jobs("power")), jobs_before + 3)

    def last_job_steps(self):
        """The steps and events of the newest job in the state file, in journal order."""
        con = sqlite3.connect(f"file:{os.path.join(self.dir, 'state', 'gitvirt.db')}?mode=ro", uri=True)
        con.row_factory = sqlite3.Row
        # The rowid breaks ties between jobs created in the same second (schema.cc).
        job = con.execute("SELECT id FROM jobs ORDER BY created_at DESC, rowid DESC LIMIT 1").fetchone()[0]
        self.last_plan = json.loads(con.execute("SELECT plan_json FROM jobs WHERE id = ?", (job,)).fetchone()[0])
        steps = [dict(r) for r in con.execute("SELECT * FROM steps WHERE job_id = ? ORDER BY seq", (job,))]
        events = [dict(r) for r in con.execute("SELECT * FROM events WHERE job_id = ? ORDER BY seq", (job,))]
        con.close()
        return steps, events

    def most_at_once(self, events):
        """How many steps of a job ran at the same time, from the order of their journal events."""
        # A step's first event says it began (after it was journaled started); its last says
        # it succeeded or why it failed.
        seen, running, most = set(), set(), 0
        for e in events:
            step = e["step_id"]
            if not step:
                continue
            if step not in seen:
                seen.add(step)
                running.add(step)
                most = max(most, len(running))
            elif e["message"].endswith(" succeeded") or e["level"] == "error":
                running.discard(step)
        return most

    def test_1b_power_shutdown_reboot_force(self):
        self.assertEqual(self.power(), {"web-01": "Running", "web-02": "Running", "db-01": "Running"})
        # --parallel bounds the steps running at once; every step holds for 500 ms.
        env = dict(os.environ, GITVIRT_STEP_DELAY_MS="500")
        out = run(GITVIRT, "--config", self.config, "power", "shutdown", "-l", "tier=web", "-y",
                  "--parallel", "1", check=False, env=env, stdin=subprocess.DEVNULL, timeout=300)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertEqual(self.power(), {"web-01": "Stopped", "web-02": "Stopped", "db-01": "Running"})
        steps, events = self.last_job_steps()
        self.assertEqual(sorted(s["type"] for s in steps), ["shutdown", "shutdown"])
        self.assertEqual(self.most_at_once(events), 1, [e["message"] for e in events])
        out = run(GITVIRT, "--config", self.config, "power", "start", "-l", "tier=web", "--parallel", "2",
                  check=False, env=env, stdin=subprocess.DEVNULL, timeout=300)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        steps, events = self.last_job_steps()
        self.assertEqual(self.most_at_once(events), 2, [e["message"] for e in events])

        # reboot: one reboot step; with --force a hard reset (power off, then start).
        self.ok("power", "reboot", "web-01", "-y")
        steps, _ = self.last_job_steps()
        self.assertEqual([s["type"] for s in steps], ["reboot"])
        self.assertEqual(self.power()["web-01"], "Running")
        self.ok("power", "reboot", "web-01", "-y", "--force")
        steps, _ = self.last_job_steps()
        self.assertEqual([s["type"] for s in steps], ["stop", "start"])
        self.assertTrue(all(s["status"] == "succeeded" for s in steps), steps)
        self.assertEqual(self.power()["web-01"], "Running")
        # shutdown --force: the step may power off after the VM's shutdownTimeout.
        self.ok("power", "shutdown", "db-01", "-y", "--force")
        steps, _ = self.last_job_steps()
        self.assertEqual([s["type"] for s in steps], ["shutdown"])
        self.assertEqual(self.last_plan["actions"][0]["params"].get("forceOff"), "true", self.last_plan)
        self.assertEqual(self.power()["db-01"], "Stopped")
        self.ok("power", "start", "db-01")
        self.assertEqual(self.power(), {"web-01": "Running", "web-02": "Running", "db-01": "Running"})

    # ---- snapshots ---------------------------------------------------------------------

    def snapshots(self, vm_name):
        listed = json.loads(self.ok("snapshot", "list", vm_name, "-o", "json"))
        return {s["name"]: s["policy"] for s in listed}

    def test_2_snapshots(self):
        self.ok("snapshot", "create", "web-01", "keep-me", "--description", "by hand")
        taken = self.gv("snapshot", "create", "web-01", "keep-me")
        self.assertEqual(taken.returncode, 1, "a name taken (by hand) is refused, not taken over")
        # A hand-made snapshot cannot wear a policy's mark (retention would take it for its own).
        forged = self.gv("snapshot", "create", "web-01", "forged", "--description", "[gitvirt policy=hourly] x")
        self.assertEqual(forged.returncode, 1, forged.stdout + forged.stderr)
        self.assertIn("marks the snapshots a SnapshotPolicy owns", forged.stdout + forged.stderr)
        self.assertNotIn("forged", self.snapshots("web-01"))
        for _ in range(3):
            self.ok("snapshot", "run", "hourly")
            time.sleep(1.1)  # names and creation times have one-second resolution
        for name in ["web-01", "web-02"]:
            snaps = self.snapshots(name)
            own = sorted(s for s, policy in snaps.items() if policy == "hourly")
            self.assertEqual(len(own), 2, f"keep 2 of its own on {name}: {snaps}")
            self.assertTrue(all(s.startswith("hourly-" + name + "-") for s in own), own)
        self.assertEqual(self.snapshots("web-01")["keep-me"], "", "the hand-made one survives")
        self.assertEqual(self.snapshots("db-01"), {}, "not selected")
        listed = json.loads(self.ok("get", "snapshots", "-o", "json"))
        self.assertEqual(listed["kind"], "snapshots")
        self.assertEqual(len(listed["items"]), 5)
        self.assertIn("keep-me", self.ok("get", "snapshots"))
        self.assertIn("name: \"keep-me\"", self.ok("get", "snapshots", "-o", "yaml"))

        refused = self.gv("snapshot", "delete", "web-01", "keep-me")
        self.assertEqual(refused.returncode, 1)
        self.assertIn("keep-me", self.snapshots("web-01"))
        self.ok("snapshot", "delete", "web-01", "keep-me", "--auto-approve")
        self.assertNotIn("keep-me", self.snapshots("web-01"))
        self.assertGreaterEqual(len(self.jobs("snapshot")), 5)

    # ---- backups -----------------------------------------------------------------------

    def catalog(self):
        return {b["id"]: b for b in json.loads(self.ok("backup", "list", "-o", "json"))}

    def test_3_backups(self):
        self.ok("backup", "run", "nightly")
        self.ok("backup", "run", "db-01", "--dir", self.manual, "--compression", "gzip")
        catalog = self.catalog()
        self.assertEqual(len(catalog), 2)
        by_policy = {b["policy"]: b for b in catalog.values()}
        nightly, manual = by_policy["nightly"], by_policy[""]
        self.assertTrue(nightly["verified"])
        self.assertEqual(nightly["compression"], "zstd")
        self.assertEqual(manual["compression"], "gzip")
        self.assertTrue(os.path.isfile(os.path.join(nightly["location"], "manifest.json")))
        with open(os.path.join(nightly["location"], "manifest.json")) as f:
            manifest = json.load(f)
        self.assertEqual(manifest["vm"], "db-01")
        self.assertIn("<name>db-01</name>", manifest["domainXml"])
        self.assertEqual({f["disk"] for f in manifest["files"]}, {"root", "data", ""})
        self.assertTrue(all(len(f["sha256"]) == 64 for f in manifest["files"]))
        got = json.loads(self.ok("get", "backups", "-o", "json"))["items"]
        self.assertEqual({b["id"] for b in got}, set(catalog))
        self.assertIn(nightly["id"], self.ok("get", "backups"))
        self.ok("backup", "verify", nightly["id"])

        # Restore: asks first, then recreates the VM under a new name, as a job.
        refused = self.gv("backup", "restore", nightly["id"], "--as", "db-copy")
        self.assertEqual(refused.returncode, 1)
        self.assertNotIn("db-copy", self.power())
        self.ok("backup", "restore", nightly["id"], "--as", "db-copy", "-y")
        self.assertEqual(self.power()["db-copy"], "Stopped")
        self.assertTrue(self.jobs("restore"))

        # A damaged backup fails verification and restores nothing.
        with open(os.path.join(manual["location"], "domain.xml"), "a") as f:
            f.write("<!-- tampered -->")
        self.assertEqual(self.gv("backup", "verify", manual["id"]).returncode, 1)
        bad = self.gv("backup", "restore", manual["id"], "--as", "db-bad", "-y")
        self.assertEqual(bad.returncode, 1)
        self.assertNotIn("db-bad", self.power())

        # The catalog is an index over the directories: lost, it is rebuilt by a rescan.
        with sqlite3.connect(os.path.join(self.dir, "state", "gitvirt.db")) as db:
            db.execute("DELETE FROM backups")
        self.assertEqual(self.catalog(), {})
        rescanned = self.gv("backup", "list", "--rescan", "--dir", self.manual, "-o", "json")
        self.assertEqual(rescanned.returncode, 0, rescanned.stderr)
        self.assertIn("catalog rebuilt", rescanned.stderr)
        self.assertEqual({b["id"] for b in json.loads(rescanned.stdout)}, set(catalog))

    # ---- serve: scheduled runs and what the API shows -----------------------------------

    def test_4_serve_runs_schedules_and_shows_them(self):
        with open(os.path.join(self.manifests, "policies.yaml")) as f:
            text = f.read()
        # Quartz-style 6 fields with seconds and `?`: every 2 seconds.
        text = text.replace("  namePattern:", '  schedule: "*/2 * * * * ?"\n  namePattern:')
        text = text.replace("  target:", '  schedule: "*/2 * * * * ?"\n  target:')
        self.write("policies.yaml", text)
        taken_by_cli, _ = self.run_totals()
        self.assertGreaterEqual(taken_by_cli, 2, "test_3's `backup run`s")
        serve = Serve(GITVIRT, self.config)
        try:
            def policies():
                return {p["name"]: p for p in serve.status().get("policies", [])}

            # The counter starts from what the CLI did (the state file), then adds serve's runs.
            self.assertGreaterEqual(self.metric(serve, "gitvirt_backups_total"), taken_by_cli)
            wait_for("two scheduled runs of each policy",
                     lambda: self.metric(serve, "gitvirt_backups_total") >= taken_by_cli + 2
                     and all(v.get("lastRun") for v in policies().values()), 60,
                     lambda: json.dumps(serve.status().get("policies")))
            status = policies()
            for name in ["hourly", "nightly"]:
                self.assertEqual(status[name]["schedule"], "*/2 * * * * ?")
                self.assertTrue(status[name]["nextRun"], status[name])
                self.assertTrue(status[name]["lastResult"].startswith("succeeded"), status[name])
            code, body = serve.get("/api/v1/snapshots?policy=hourly")
            self.assertEqual(code, 200)
            snaps = json.loads(body)
            self.assertEqual(snaps["total"], 4, "keep 2 on each of the two web VMs")
            self.assertEqual({s["vm"] for s in snaps["items"]}, {"web-01", "web-02"})
            code, body = serve.get("/api/v1/backups?policy=nightly")
            self.assertEqual(code, 200)
            self.assertEqual(json.loads(body)["total"], 2, "keep 2")
            self.assertGreater(self.metric(serve, "gitvirt_backup_bytes_total"), 0)
            self.assertGreaterEqual(self.metric(serve, "gitvirt_snapshots_total"), 4)
            self.assertEqual(self.metric(serve, "gitvirt_backups_failed_total"), 0)
            self.assertGreater(self.metric(serve, "gitvirt_backup_duration_seconds_sum"), 0)
        finally:
            serve.stop()

    # ---- failures: in the catalog, counted whoever ran them ------------------------------

    def test_5_failed_backups_are_recorded_and_counted(self):
        # A target that cannot be created: a regular file stands where its directory would go.
        blocker = os.path.join(self.dir, "not-a-directory")
        with open(blocker, "w") as f:
            f.write("in the way\n")
        taken_before, failed_before = self.run_totals()
        out = self.gv("backup", "run", "web-01", "--dir", os.path.join(blocker, "backups"))
        self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
        self.assertEqual(self.run_totals(), (taken_before, failed_before + 1))

        def failed():
            return [b for b in json.loads(self.ok("backup", "list", "-o", "json")) if b["status"] == "failed"]

        records = failed()
        self.assertEqual(len(records), 1, records)
        self.assertEqual(records[0]["vm"], "web-01")
        self.assertEqual(records[0]["node"], "hv1")
        self.assertIn("not-a-directory", records[0]["error"])
        self.assertIn("failed", self.ok("backup", "list"))
        self.assertFalse(os.path.exists(os.path.join(blocker, "backups")))
        # History, not a backup: a rescan (which trusts only directories) keeps it.
        self.ok("backup", "list", "--rescan")
        self.assertEqual([r["id"] for r in failed()], [records[0]["id"]])

        serve = Serve(GITVIRT, self.config)
        try:
            # The counters, from the start: the CLI's runs are in the state file.
            self.assertEqual(self.metric(serve, "gitvirt_backups_failed_total"), failed_before + 1)
            self.assertGreaterEqual(self.metric(serve, "gitvirt_backups_total"), taken_before)
            # The catalog, from the first pass on.
            wait_for("the catalog in /metrics", lambda: 'gitvirt_backups{status="failed"} 1\n' in serve.get("/metrics")[1],
                     30, lambda: serve.get("/metrics")[1][-2000:])
            code, body = serve.get("/api/v1/backups?status=failed")
            self.assertEqual(code, 200, body)
            items = json.loads(body)["items"]
            self.assertEqual([b["id"] for b in items], [records[0]["id"]])
            self.assertEqual(items[0]["status"], "failed")
            self.assertIn("not-a-directory", items[0]["error"])
        finally:
            serve.stop()
        # Nothing to verify or restore; deleting it removes the record (the counters keep it).
        refused = self.gv("backup", "verify", records[0]["id"])
        self.assertEqual(refused.returncode, 1)
        self.assertIn("failed attempt", refused.stderr)
        self.ok("backup", "delete", records[0]["id"], "--yes")
        self.assertEqual(failed(), [])
        self.assertEqual(self.run_totals()[1], failed_before + 1)

    def run_totals(self):
        """(taken, failed) over every backup attempt, from the state file."""
        with sqlite3.connect(os.path.join(self.dir, "state", "gitvirt.db")) as db:
            taken, failed = db.execute("SELECT count(*) - total(failed), total(failed) FROM backup_runs").fetchone()
        return int(taken), int(failed)

    @staticmethod
    def metric(serve, name):
        code, body = serve.get("/metrics")
        if code != 200:
            return -1
        for line in body.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return -1


if __name__ == "__main__":
    GITVIRT = sys.argv[1]
    unittest.main(argv=[sys.argv[0], "-v"])
