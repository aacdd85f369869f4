#!/usr/bin/python3
"""End to end with a real guest OS: cloud-init and readiness on QEMU (TCG).

usage: guest_test.py GITVIRT_BINARY HARNESS_SCRIPT BUILD_IMAGE_SCRIPT

A private libvirtd (tests/harness/libvirtd.sh) runs the Debian 12 guest image built and cached by
tests/guest/build-image.sh (built here when missing), on a libvirt network the test defines
(DHCP by dnsmasq, no firewall rules). gitvirt applies one VM from that image with a hostname, a
user with an SSH key, a password from a secret file and a static IP, and `readiness: {agent:
true, tcp: 22}`. Everything is then checked from outside gitvirt:

  test_1  the apply succeeds only once the VM is Ready: the start step journals that it waited
          and what it found; `get vms -o wide`, `describe vm` and the status API show the address
          the guest agent reports and Ready=True
  test_2  through the guest agent (guest-exec, guest-file-*): the hostname, the user's
          authorized_keys, the static address, and /etc/shadow holding a SHA-512 crypt hash that
          verifies against the secret
  test_3  the plaintext password appears in none of: the seed ISO (which holds the hash), the
          domain XML (inactive and live), the plan (text and JSON), the journal (SQLite file
          bytes, WAL included), the logs (gitvirt's at debug level, serve's, libvirtd's, QEMU's,
          the guest console), the API responses, or any other file the test or the daemon wrote
  test_4  changing the hostname is a needs-restart update (shutdown -> update-restart -> start);
          after it cloud-init runs again (new instance-id) and the new hostname is read back
  test_5  a second VM with DHCP, no guest agent and `readiness: {tcp: 22}`: gitvirt finds its
          address in the network's DHCP lease (libvirt's lease source), waits for ssh there, and
          shows the leased address (within the DHCP range, in `virsh net-dhcp-leases`)

Times are printed as [timing] lines. Under TCG a boot takes 1-4 minutes depending on the load.
"""
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # deprecated in 3.11, still the stdlib's way to verify a crypt(3) hash

from e2e_lib import Libvirtd, Serve, run, wait_for
from guest_lib import Agent, Network, files_under, guest_image, journal

GITVIRT = ""
HARNESS = ""
BUILD_IMAGE = ""
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHNkOinIIqlyQ5qMwPxwz7KjZX1zlGsoe/GJTEFZls/9 e2e@gitvirt"
VM = "gv-guest"
DHCP_VM = "gv-dhcp"


def timing(what, seconds):
    print(f"[timing] {what}: {seconds:.1f} s", flush=True)


class GuestEndToEnd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.image, seconds = guest_image(BUILD_IMAGE)
        timing("guest image (build-image.sh; cached when fast)", seconds)
        cls.dir = tempfile.mkdtemp(prefix="gvg-")
        cls.libvirtd = Libvirtd(HARNESS, os.path.join(cls.dir, "lv"), keep_test_driver=False)
        cls.uri = cls.libvirtd.env["QEMU_URI"]
        cls.network = Network(cls.uri, "gvnet-" + os.path.basename(cls.dir)[4:].lower())
        cls.ip = cls.network.address(50)
        # The secret: a plaintext that must never be written anywhere by gitvirt.
        cls.plaintext = "Gv-plain-" + os.urandom(9).hex()
        os.makedirs(os.path.join(cls.dir, "secrets"))
        with open(os.path.join(cls.dir, "secrets", "guest-password"), "w") as f:
            f.write(cls.plaintext + "\n")
        cls.config = os.path.join(cls.dir, "gitvirt.yaml")
        with open(cls.config, "w") as f:
            f.write(f"""apiVersion: gitvirt.dev/v1
kind: ControllerConfig
source: {{path: manifests}}
nodes:
  - name: hv1
    uri: "{cls.uri}"
    pools: [{{name: default, path: {cls.dir}/pool}}]
apply: {{stepTimeout: 30m}}
state: state/gitvirt.db
secretsDir: secrets
api: {{listen: "127.0.0.1:0"}}
""")
        os.makedirs(os.path.join(cls.dir, "manifests"))
        os.makedirs(os.path.join(cls.dir, "state"))
        sha = run("sha256sum", cls.image["IMAGE"]).stdout.split()[0]
        cls.write("image.yaml", f"""apiVersion: gitvirt.dev/v1
kind: Image
metadata: {{name: guest-base}}
spec: {{source: {cls.image["IMAGE"]}, sha256: {sha}, format: qcow2}}
""")
        cls.write_vm("guest-one")
        cls.env = dict(os.environ, GITVIRT_VIRT_TYPE="qemu")
        cls.outputs = []  # everything gitvirt printed, for the plaintext scan

    @classmethod
    def tearDownClass(cls):
        if os.environ.get("GITVIRT_KEEP_GUEST_DIR") == "1":
            print(f"kept {cls.dir}")
        cls.network.destroy()
        cls.libvirtd.stop()
        if os.environ.get("GITVIRT_KEEP_GUEST_DIR") != "1":
            shutil.rmtree(cls.dir, ignore_errors=True)

    @classmethod
    def write(cls, name, text):
        with open(os.path.join(cls.dir, "manifests", name), "w") as f:
            f.write(text)

    @classmethod
    def write_vm(cls, hostname):
        cls.write("vm.yaml", cls.vm_yaml(
            VM, hostname, vcpus=2, memory="1GiB",
            user="        passwordFrom: {file: guest-password}\n        sudo: \"ALL=(ALL) NOPASSWD:ALL\"\n",
            ip_config=f"ip={cls.ip}/24,gw={cls.network.gateway}",
            extra=f"""    nameservers: [{cls.network.gateway}]
  readiness: {{agent: true, tcp: 22, timeout: 20m}}
  updatePolicy: {{restart: Allowed, shutdownTimeout: 3m, forceOff: true}}
"""))

    @classmethod
    def vm_yaml(cls, name, hostname, vcpus, memory, user, ip_config, extra):
        """A VM from the guest image on the test's network, with cloud-init's user `gitvirt`
        (SSH key, plus `user` lines) and one ipConfig; `extra` continues the cloudInit block."""
        return f"""apiVersion: gitvirt.dev/v1
kind: VirtualMachine
metadata: {{name: {name}}}
spec:
  node: hv1
  vcpus: {vcpus}
  memory: {memory}
  boot:
    kernel: {cls.image["KERNEL"]}
    initrd: {cls.image["INITRD"]}
    cmdline: "{cls.image["CMDLINE"]}"
  disks:
    - {{name: root, size: 6GiB, source: {{image: guest-base}}}}
  networks:
    - {{network: {cls.network.name}}}
  cloudInit:
    hostname: {hostname}
    users:
      - name: gitvirt
        sshAuthorizedKeys: ["{SSH_KEY}"]
{user}    ipConfigs: ["{ip_config}"]
{extra}"""

    def gitvirt(self, *args, check=True, timeout=3600):
        p = subprocess.run([GITVIRT, "--config", self.config, *args], capture_output=True, text=True,
                           env=self.env, timeout=timeout)
        type(self).outputs.append(p.stdout + p.stderr)
        if check and p.returncode != 0:
            self.fail(f"gitvirt {' '.join(args)} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
        return p

    def agent(self):
        return Agent(self.uri, VM)

    def last_job(self):
        steps, events = journal(os.path.join(self.dir, "state", "gitvirt.db"))
        job = max(s["job_id"] for s in steps)
        return [s for s in steps if s["job_id"] == job], [e for e in events if e["job_id"] == job]

    def wait_agent_hostname(self, want, seconds):
        def current():
            try:
                return self.agent().command("guest-get-host-name")["host-name"] == want
            except subprocess.CalledProcessError:
                return False
        wait_for(f"the guest agent to report hostname {want}", current, seconds)

    # ---- 1 ------------------------------------------------------------------------------

    def test_1_apply_waits_for_readiness(self):
        plan = self.gitvirt("plan", "--no-color")
        self.assertIn(f"create VirtualMachine/{VM}", plan.stdout)
        self.gitvirt("plan", "--out", os.path.join(self.dir, "plan.json"))
        started = time.time()
        apply = self.gitvirt("-vv", "apply", "--auto-approve")
        seconds = time.time() - started
        timing("apply: image import + create + boot to Ready (agent, tcp 22), TCG", seconds)
        steps, events = self.last_job()
        start = next(s for s in steps if s["step_id"] == f"start/{VM}")
        self.assertEqual(start["status"], "succeeded", apply.stdout)
        result = json.loads(start["result_json"])
        self.assertEqual(result["ready"], True)
        self.assertEqual(result["address"], self.ip)
        self.assertEqual(result["addressSource"], "agent")
        timing("start step: domain start to Ready", result["seconds"])
        messages = [e["message"] for e in events if e["step_id"] == f"start/{VM}"]
        self.assertIn(f"waiting up to 20m for {VM} to be Ready (guest agent, tcp 22)", messages)
        self.assertTrue(any(m.startswith("not Ready yet after") for m in messages), messages)
        ready = [m for m in messages if m.startswith(f"{VM} is Ready after")]
        self.assertEqual(len(ready), 1, messages)
        self.assertIn(f"the guest agent answers and reports {self.ip}", ready[0])
        self.assertIn(f"port 22 on {self.ip} accepts connections", ready[0])

        wide = self.gitvirt("get", "vms", "-o", "wide").stdout
        row = next(line for line in wide.splitlines() if line.startswith(VM + " "))
        self.assertIn(self.ip, row)
        self.assertIn("Healthy", row)
        describe = self.gitvirt("describe", "vm", VM).stdout
        self.assertIn(f"Address:     {self.ip} (agent)", describe)
        self.assertRegex(describe, r"Ready=True  ReadinessPassed: the guest agent answers and reports " + re.escape(self.ip))

        serve = Serve(GITVIRT, self.config, env=self.env)
        try:
            wait_for("the first reconcile pass", lambda: serve.status().get("ready"), 300)
            code, body = serve.get(f"/api/v1/resources/VirtualMachine/{VM}")
            self.assertEqual(code, 200)
            vm = json.loads(body)
            self.assertEqual(vm["address"], self.ip)
            self.assertEqual(vm["addressSource"], "agent")
            self.assertEqual(vm["ready"], True)
            self.assertEqual(vm["health"], "Healthy")
            ready_condition = next(c for c in vm["conditions"] if c["type"] == "Ready")
            self.assertEqual(ready_condition["reason"], "ReadinessPassed")
            # Every API answer goes into the plaintext scan of test_3.
            job = max(s["job_id"] for s in journal(os.path.join(self.dir, "state", "gitvirt.db"))[0])
            for path in ["/api/v1/status", "/api/v1/resources", f"/api/v1/resources/VirtualMachine/{VM}",
                         "/api/v1/nodes", "/api/v1/jobs", f"/api/v1/jobs/{job}", "/api/v1/plans/latest",
                         "/api/v1/clusters", "/api/v1/snapshots", "/api/v1/backups", "/metrics", "/"]:
                code, body = serve.get(path)
                self.assertEqual(code, 200, path)
                type(self).outputs.append(body)
        finally:
            serve.stop()
        with open(serve.log_path) as f:
            type(self).outputs.append(f.read())

    # ---- 2 ------------------------------------------------------------------------------

    def test_2_the_guest_is_configured_as_declared(self):
        agent = self.agent()
        self.assertEqual(agent.command("guest-get-host-name")["host-name"], "guest-one")
        code, out = agent.exec("/bin/hostname")
        self.assertEqual((code, out.strip()), (0, "guest-one"))
        keys = agent.read_file("/home/gitvirt/.ssh/authorized_keys")
        self.assertEqual([line for line in keys.splitlines() if line.strip()], [SSH_KEY])
        code, out = agent.exec("/usr/sbin/ip", "-4", "-o", "addr", "show")
        self.assertEqual(code, 0)
        self.assertRegex(out, rf"\sinet {re.escape(self.ip)}/24\s")
        code, out = agent.exec("/usr/sbin/ip", "-4", "route", "show", "default")
        self.assertIn(f"default via {self.network.gateway}", out)
        shadow = agent.read_file("/etc/shadow")
        entry = next(line for line in shadow.splitlines() if line.startswith("gitvirt:"))
        hashed = entry.split(":")[1]
        self.assertTrue(hashed.startswith("$6$"), entry)
        self.assertEqual(crypt.crypt(self.plaintext, hashed), hashed,
                         "the password in the guest is the secret's, as a SHA-512 crypt hash")
        type(self).shadow_hash = hashed

    # ---- 3 ------------------------------------------------------------------------------

    def test_3_the_plaintext_password_is_nowhere(self):
        secret = self.plaintext.encode()
        # The seed ISO: holds the hash, not the password.
        pool = os.path.join(self.dir, "pool")
        seeds = [f for f in os.listdir(pool) if "cidata" in f or f.endswith(".iso")]
        self.assertEqual(len(seeds), 1, os.listdir(pool))
        with open(os.path.join(pool, seeds[0]), "rb") as f:
            iso = f.read()
        self.assertNotIn(secret, iso)
        hashed = re.search(rb'"passwd": ?"(\$6\$[^"]+)"', iso)
        self.assertIsNotNone(hashed, "the ISO's user-data carries the password hash")
        self.assertEqual(crypt.crypt(self.plaintext, hashed.group(1).decode()), hashed.group(1).decode())
        # The domain XML, inactive and live, with security info.
        for flags in ([], ["--inactive"], ["--security-info"]):
            xml = run("virsh", "-c", self.uri, "dumpxml", *flags, VM).stdout
            self.assertIn("gitvirt", xml)
            self.assertNotIn(self.plaintext, xml, flags)
        # The plan, as text and as JSON (made before the apply in test_1, and now).
        plan_text = self.gitvirt("plan", "--no-color").stdout
        self.gitvirt("plan", "--out", os.path.join(self.dir, "plan-after.json"))
        self.assertNotIn(self.plaintext, plan_text)
        for name in ("plan.json", "plan-after.json"):
            with open(os.path.join(self.dir, name)) as f:
                text = f.read()
            if name == "plan.json":  # the create: it carries the VM's spec
                self.assertIn("guest-password", text, "the plan names the secret")
            self.assertNotIn(self.plaintext, text)
        # Logs and API responses collected so far (gitvirt -vv, serve, every API answer).
        self.assertGreater(len(self.outputs), 8)
        for out in self.outputs:
            self.assertNotIn(self.plaintext, out)
        # Every file the test, gitvirt and the daemon wrote (journal + WAL, caches, console and
        # QEMU logs, libvirtd's log, the guest's disk overlay), except the secret file itself.
        # The scan finds the plaintext where it is: in the secret file, and nowhere else.
        scanned = 0
        holding = []
        for path, data in files_under(self.dir):
            scanned += 1
            if secret in data:
                holding.append(os.path.relpath(path, self.dir))
        self.assertEqual(holding, [os.path.join("secrets", "guest-password")])
        names = {os.path.basename(p) for p, _ in files_under(self.dir)}
        for expected in ("gitvirt.db", "libvirtd.log", f"{VM}.log"):
            self.assertIn(expected, names)
        print(f"plaintext absent from {scanned} files and {len(self.outputs)} outputs", flush=True)

    # ---- 4 ------------------------------------------------------------------------------

    def test_4_hostname_change_restarts_and_cloud_init_runs_again(self):
        agent = self.agent()
        before = agent.read_file("/var/lib/cloud/data/instance-id").strip()
        self.write_vm("guest-two")
        plan = self.gitvirt("plan", "--no-color").stdout
        self.assertRegex(plan, rf"shutdown VirtualMachine/{VM}")
        self.assertRegex(plan, rf"update-restart VirtualMachine/{VM}")
        self.assertIn("cloudInit", plan)
        self.assertNotRegex(plan, rf"replace VirtualMachine/{VM}")
        started = time.time()
        self.gitvirt("apply", "--auto-approve")
        timing("hostname change: shutdown + redefine + boot to Ready, TCG", time.time() - started)
        steps, _ = self.last_job()
        self.assertEqual([s["type"] for s in steps], ["shutdown", "update-restart", "start"])
        self.assertTrue(all(s["status"] == "succeeded" for s in steps), steps)
        self.assertEqual(json.loads(steps[-1]["result_json"])["ready"], True)
        self.wait_agent_hostname("guest-two", 120)
        code, out = self.agent().exec("/bin/hostname")
        self.assertEqual(out.strip(), "guest-two")
        after = self.agent().read_file("/var/lib/cloud/data/instance-id").strip()
        self.assertNotEqual(before, after, "a new instance-id: cloud-init ran its per-instance modules again")
        self.assertEqual(self.gitvirt("plan", "--detailed-exitcode", "--no-color", check=False).returncode, 0)

    # ---- 5 ------------------------------------------------------------------------------

    def test_5_a_dhcp_vm_is_ready_on_its_lease(self):
        # No guest agent and no static address: the only way gitvirt learns where the guest is,
        # is the libvirt network's DHCP lease (dnsmasq), and readiness waits for ssh there.
        self.write("vm-dhcp.yaml", self.vm_yaml(DHCP_VM, DHCP_VM, vcpus=1, memory="768MiB", user="",
                                                ip_config="ip=dhcp", extra="  readiness: {tcp: 22, timeout: 20m}\n"))
        started = time.time()
        self.gitvirt("apply", "--auto-approve")
        timing("DHCP VM: create + boot to Ready (tcp 22 on its lease), TCG", time.time() - started)
        steps, events = self.last_job()
        start = next(s for s in steps if s["step_id"] == f"start/{DHCP_VM}")
        result = json.loads(start["result_json"])
        self.assertEqual(result["ready"], True)
        self.assertEqual(result["addressSource"], "lease")
        leased = ipaddress.ip_address(result["address"])
        dhcp_range = list(self.network.subnet.hosts())[99:200]
        self.assertIn(leased, dhcp_range, "an address from the network's DHCP range")
        # libvirt's own view of the lease agrees.
        leases = run("virsh", "-c", self.uri, "net-dhcp-leases", self.network.name).stdout
        self.assertIn(str(leased), leases)
        messages = [e["message"] for e in events if e["step_id"] == f"start/{DHCP_VM}"]
        ready = [m for m in messages if m.startswith(f"{DHCP_VM} is Ready after")]
        self.assertEqual(len(ready), 1, messages)
        self.assertIn(f"port 22 on {leased} accepts connections", ready[0])
        describe = self.gitvirt("describe", "vm", DHCP_VM).stdout
        self.assertIn(f"Address:     {leased} (lease)", describe)
        self.assertEqual(self.gitvirt("plan", "--detailed-exitcode", "--no-color", check=False).returncode, 0)


if __name__ == "__main__":
    GITVIRT, HARNESS, BUILD_IMAGE = sys.argv[1], sys.argv[2], sys.argv[3]
    if os.geteuid() != 0:
        print("skipped: needs root (private libvirtd, guest image build)")
        sys.exit(0)
    unittest.main(argv=sys.argv[:1], verbosity=2, failfast=True)
