#!/usr/bin/python3
"""End to end: a git source over ssh:// with a key file (`source.sshKeyFile`), against a private
sshd on 127.0.0.1 (Debian's openssh-server, run as root with a temporary host key and an
authorized_keys holding one throwaway key). The repository is on local disk.

usage: ssh_source_test.py GITVIRT_BINARY

  plan and `serve --once` read the commit over ssh with the key; a key the server does not know
  and a server key not in known_hosts are errors that say so.
Skipped only when the libgit2 gitvirt links was built without ssh (git_libgit2_features()).
gitvirt runs with HOME in the test's directory: ~/.ssh/known_hosts is the test's.
"""
import ctypes
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

from e2e_lib import Repo, run, vm_manifest, write_git_source_config

GITVIRT = ""
GIT_FEATURE_SSH = 1 << 2  # git2/common.h


def libgit2_has_ssh(binary):
    """Asks the libgit2 the binary links whether it was built with ssh."""
    libs = run("ldd", binary).stdout
    m = re.search(r"(libgit2\.so\S*) => (\S+)", libs)
    if not m:
        raise AssertionError("gitvirt does not link libgit2 dynamically:\n" + libs)
    lib = ctypes.CDLL(m.group(2))
    return bool(lib.git_libgit2_features() & GIT_FEATURE_SSH)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path):
    run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "gitvirt-e2e", "-f", path)
    with open(path + ".pub") as f:
        return f.read().strip()


class SshSourceEndToEnd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not libgit2_has_ssh(GITVIRT):
            raise unittest.SkipTest("libgit2 was built without ssh support")
        if not os.path.exists("/usr/sbin/sshd"):
            raise AssertionError("/usr/sbin/sshd missing: install openssh-server (deploy/setup.sh)")
        if os.geteuid() != 0:
            raise AssertionError("the private sshd runs as root (it logs in as root)")
        cls.dir = tempfile.mkdtemp(prefix="gve2essh-")
        os.chmod(cls.dir, 0o755)
        cls.repo = Repo(os.path.join(cls.dir, "repo"))
        cls.repo.write("vm-a.yaml", vm_manifest("vm-a", network=False, node="hv1"))
        cls.commit = cls.repo.commit("vm-a")
        host_key = os.path.join(cls.dir, "host_ed25519")
        cls.host_pub = keygen(host_key)
        cls.key = os.path.join(cls.dir, "id_ed25519")
        authorized = os.path.join(cls.dir, "authorized_keys")
        with open(authorized, "w") as f:
            f.write(keygen(cls.key) + "\n")
        cls.stranger = os.path.join(cls.dir, "stranger_ed25519")
        keygen(cls.stranger)
        cls.port = free_port()
        sshd_config = os.path.join(cls.dir, "sshd_config")
        with open(sshd_config, "w") as f:
            f.write(f"""ListenAddress 127.0.0.1
HostKey {host_key}
AuthorizedKeysFile {authorized}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
PidFile {cls.dir}/sshd.pid
""")
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        cls.sshd_log = open(os.path.join(cls.dir, "sshd.log"), "w")
        cls.sshd = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", sshd_config, "-p", str(cls.port)],
                                    stdout=cls.sshd_log, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", cls.port), timeout=1).close()
                break
            except OSError:
                if cls.sshd.poll() is not None or time.time() > deadline:
                    cls.tearDownClass()
                    raise AssertionError("sshd did not start")
                time.sleep(0.1)
        cls.home = os.path.join(cls.dir, "home")
        os.makedirs(os.path.join(cls.home, ".ssh"), mode=0o700)
        cls.url = f"ssh://root@127.0.0.1:{cls.port}{cls.repo.path}"

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "sshd", None) and cls.sshd.poll() is None:
            cls.sshd.terminate()
            cls.sshd.wait(timeout=10)
        if getattr(cls, "sshd_log", None):
            cls.sshd_log.close()
        if getattr(cls, "dir", None):
            shutil.rmtree(cls.dir, ignore_errors=True) if not os.environ.get("KEEP") else print(cls.dir)

    def trust_host(self, trusted):
        known = os.path.join(self.home, ".ssh", "known_hosts")
        with open(known, "w") as f:
            if trusted:
                f.write(f"[127.0.0.1]:{self.port} {self.host_pub}\n")

    def gv(self, key, *args):
        name = os.path.basename(key)
        config = os.path.join(self.dir, f"gitvirt-{name}.yaml")
        write_git_source_config(config, f'{{repo: "{self.url}", ref: main, sshKeyFile: {key}}}',
                                f"{self.dir}/state-{name}", f"{self.dir}/pool")
        env = {**os.environ, "HOME": self.home}
        env.pop("SSH_AUTH_SOCK", None)
        return run(GITVIRT, "--config", config, *args, check=False, stdin=subprocess.DEVNULL, env=env, timeout=120)

    def test_1_plan_and_serve_read_the_commit_over_ssh(self):
        self.trust_host(True)
        out = self.gv(self.key, "plan", "-o", "json")
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        plan = json.loads(out.stdout)
        self.assertEqual(plan["revision"], self.commit)
        self.assertEqual([a["target"]["name"] for a in plan["actions"] if a["type"] == "create"], ["vm-a"])
        out = self.gv(self.key, "serve", "--once")
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn(f"revision {self.commit}: synced", out.stdout)

    def test_2_a_key_the_server_does_not_know_is_refused(self):
        self.trust_host(True)
        out = self.gv(self.stranger, "plan")
        self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
        self.assertIn(f"the server refused the credentials (ssh key {self.stranger})", out.stderr)

    def test_3_an_unknown_host_key_is_refused(self):
        self.trust_host(False)
        out = self.gv(self.key, "plan")
        self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
        self.assertIn("known_hosts", out.stderr)
        self.assertNotIn(self.commit, out.stdout)


if __name__ == "__main__":
    GITVIRT = sys.argv[1]
    unittest.main(argv=[sys.argv[0], "-v"])
