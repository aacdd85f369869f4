#!/usr/bin/python3
"""The dashboard in headless Chromium while `gitvirt serve` runs REAL applies.

usage: dashboard_test.py GITVIRT_BINARY HARNESS_SCRIPT BROWSER_RUN_SCRIPT

A private libvirtd runs real QEMU domains (no guest OS needed: they start and stop). While the
browser test watches the dashboard, this script keeps committing changes to the repository
(six VMs added, then pruned again), each of which `serve` applies as a job with one step at a
time, so the progress bar has something to show. The browser test (tests/browser) checks the page
shows the resources and that the progress bar moves during a job and ends at 100.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from e2e_lib import Libvirtd, Repo, Serve, vm_manifest, wait_for


def main(gitvirt, harness, browser):
    work = tempfile.mkdtemp(prefix="gvdash-")
    libvirtd = Libvirtd(harness, os.path.join(work, "lv"), keep_test_driver=False)
    serve = None
    try:
        repo = Repo(os.path.join(work, "repo"))
        repo.write("base.yaml", vm_manifest("base-01", network=False))
        repo.commit("one VM")
        config = os.path.join(work, "gitvirt.yaml")
        with open(config, "w") as f:
            f.write(f"""apiVersion: gitvirt.dev/v1
kind: ControllerConfig
source: {{repo: {repo.path}, ref: main, interval: 1s}}
nodes:
  - name: hv1
    uri: "{libvirtd.env['QEMU_URI']}"
    pools: [{{name: default, path: {libvirtd.env['POOL_DIR']}}}]
    maxParallel: 1
sync: {{auto: true, prune: true, selfHeal: false}}
apply: {{parallel: 1}}
state: {work}/gitvirt.db
api: {{listen: "127.0.0.1:0"}}
""")
        serve = Serve(gitvirt, config)
        wait_for("the first sync", lambda: serve.status().get("lastSyncResult") == "synced", 120,
                 lambda: str(serve.status()))
        print("serve at", serve.url, flush=True)

        stop = threading.Event()

        def keep_committing():
            # Alternate: six VMs in, six VMs out; each commit is one job of a dozen steps.
            grow = True
            while not stop.is_set():
                for i in range(1, 7):
                    name = f"wave-{i:02d}.yaml"
                    if grow:
                        repo.write(name, vm_manifest(f"wave-{i:02d}", network=False))
                    elif os.path.exists(os.path.join(repo.path, name)):
                        repo.remove(name)
                revision = repo.commit("grow" if grow else "shrink")
                grow = not grow
                try:
                    wait_for("the commit applied", lambda: serve.status().get("revision") == revision and
                             serve.status().get("lastSyncResult") in ("synced", "failed") and
                             not serve.status().get("currentJob"), 180)
                except AssertionError as e:
                    print("warning:", e, flush=True)
                stop.wait(2)

        committer = threading.Thread(target=keep_committing, daemon=True)
        time.sleep(1)
        committer.start()
        env = dict(os.environ, GITVIRT_JOB_TIMEOUT_MS="240000")
        result = subprocess.run([browser, serve.url], env=env, timeout=600)
        stop.set()
        committer.join(timeout=200)
        return result.returncode
    finally:
        if serve:
            serve.stop()
        libvirtd.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
