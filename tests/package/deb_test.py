#!/usr/bin/python3
"""The Debian package, installed into this very system and taken out again.

    /usr/bin/python3 tests/package/deb_test.py BUILD_DIR

Needs root and dpkg (Debian). Packages the build tree's own binary with cpack (no second
compile: the build's precompiled headers keep ccache from serving another tree's objects, so a
second tree would cost a whole build), twice: as the project's version and as a bumped one. Then:

  install   dpkg -i: the binary in /usr/bin, the unit in /usr/lib/systemd/system, the example
            config in /usr/share/doc/gitvirt, /etc/gitvirt/gitvirt.yaml (a conffile), the
            completions in bash-completion's, zsh's and fish's vendor directories, man pages;
            the postinst made /var/lib/gitvirt and nothing else; depends on the runtime
            libraries (shlibdeps); `gitvirt version` and an apply on a simulated node work
            from the installed binary
  upgrade   dpkg -i of the bumped package: the state kept (the first version's job still
            listed), a changed /etc/gitvirt/gitvirt.yaml kept
  remove    dpkg -r: the files gone, the state and the configuration kept; dpkg -P: the
            configuration gone too, the state still kept

Refuses to run (fails) when a gitvirt package is installed already: it would be replaced.
"""
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

BUILD = ""
INSTALLED = [
    "/usr/bin/gitvirt",
    "/usr/lib/systemd/system/gitvirt.service",
    "/usr/share/doc/gitvirt/gitvirt.example.yaml",
    "/usr/share/bash-completion/completions/gitvirt",
    "/usr/share/zsh/vendor-completions/_gitvirt",
    "/usr/share/fish/vendor_completions.d/gitvirt.fish",
    "/usr/share/man/man1/gitvirt.1",
    "/usr/share/man/man1/gitvirt-plan.1",
    "/usr/share/man/man1/gitvirt-snapshot-create.1",
]
CONFIG = "/etc/gitvirt/gitvirt.yaml"
STATE_DIR = "/var/lib/gitvirt"


def run(*argv, check=True, **kw):
    out = subprocess.run(list(argv), capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600, **kw)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {out.returncode}\n{out.stdout}\n{out.stderr}")
    return out


def package_version():
    out = run("dpkg-query", "-W", "-f=${Status} ${Version}", "gitvirt", check=False)
    return out.stdout.split()[-1] if out.returncode == 0 and "installed" in out.stdout.split()[:3] else None


class DebianPackage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root: installs a package")
        if run("dpkg-query", "-W", "gitvirt", check=False).returncode == 0:
            raise AssertionError("a gitvirt package is installed on this machine; this test would replace it")
        cls.dir = tempfile.mkdtemp(prefix="gvdeb-")
        cls.state_existed = os.path.isdir(STATE_DIR)
        with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
            cls.version = next(line.split("=", 1)[1].strip() for line in f
                               if line.startswith("GITVIRT_VERSION_STRING:"))
        cls.bumped = cls.version + "+1"
        cls.debs = {}
        for version in (cls.version, cls.bumped):
            out_dir = os.path.join(cls.dir, "pkg-" + version)
            run("cpack", "-G", "DEB", "--config", os.path.join(BUILD, "CPackConfig.cmake"), "-B", out_dir,
                "-D", f"CPACK_PACKAGE_VERSION={version}", cwd=cls.dir)
            found = glob.glob(os.path.join(out_dir, "*.deb"))
            assert len(found) == 1, found
            cls.debs[version] = found[0]
        # A simulated node and a state file of this test's own under /var/lib/gitvirt.
        cls.state = os.path.join(STATE_DIR, f"package-test-{os.getpid()}.db")
        os.makedirs(os.path.join(cls.dir, "manifests"))
        with open(os.path.join(cls.dir, "manifests", "vm.yaml"), "w") as f:
            f.write("apiVersion: gitvirt.dev/v1\nkind: VirtualMachine\nmetadata: {name: pkg-01}\n"
                    "spec: {node: hv1, vcpus: 1, memory: 512MiB, disks: [{name: root, size: 1GiB}]}\n")
        cls.config = os.path.join(cls.dir, "gitvirt.yaml")
        with open(cls.config, "w") as f:
            f.write(f"apiVersion: gitvirt.dev/v1\nkind: ControllerConfig\nsource: {{path: manifests}}\n"
                    f"nodes:\n  - name: hv1\n    uri: sim:{cls.dir}/hv1.xml\n"
                    f"    pools: [{{name: default, path: {cls.dir}/pool}}]\nstate: {cls.state}\n")

    @classmethod
    def tearDownClass(cls):
        if not hasattr(cls, "dir"):
            return
        if package_version() is not None or run("dpkg-query", "-W", "gitvirt", check=False).returncode == 0:
            run("dpkg", "-P", "gitvirt", check=False)
        for f in glob.glob(cls.state + "*"):
            os.remove(f)
        if not cls.state_existed and os.path.isdir(STATE_DIR) and not os.listdir(STATE_DIR):
            os.rmdir(STATE_DIR)
        shutil.rmtree(cls.dir, ignore_errors=True)

    def gv(self, *args):
        return run("/usr/bin/gitvirt", "--config", self.config, *args, cwd=self.dir)

    def test_install_upgrade_remove(self):
        deb = self.debs[self.version]
        self.assertEqual(os.path.basename(deb), f"gitvirt_{self.version}_amd64.deb")
        control = run("dpkg-deb", "-f", deb, "Depends").stdout
        for library in ("libvirt0", "libgit2", "libsqlite3", "libyaml-cpp"):
            self.assertIn(library, control, "shlibdeps: the runtime libraries")
        self.assertEqual(run("dpkg-deb", "--ctrl-tarfile", deb).returncode, 0)
        conffiles = run("sh", "-c", f"dpkg-deb --ctrl-tarfile {deb} | tar -xO ./conffiles").stdout.split()
        self.assertEqual(conffiles, [CONFIG])

        # ---- install ----
        run("dpkg", "-i", deb)
        self.assertEqual(package_version(), self.version)
        for path in INSTALLED + [CONFIG]:
            self.assertTrue(os.path.isfile(path), path)
        self.assertTrue(os.path.isdir(STATE_DIR))
        with open("/usr/lib/systemd/system/gitvirt.service") as f:
            self.assertIn("ExecStart=/usr/bin/gitvirt --config /etc/gitvirt/gitvirt.yaml serve", f.read())
        self.assertEqual(run("/usr/bin/gitvirt", "version").stdout, f"gitvirt {self.version}\n")
        with open(INSTALLED[3]) as f:
            self.assertIn("complete -F _gitvirt gitvirt", f.read())
        plan = self.gv("plan")
        self.assertIn("+ create VirtualMachine/pkg-01 on hv1", plan.stdout)
        self.gv("apply", "--auto-approve")
        jobs = json.loads(self.gv("jobs", "-o", "json").stdout)["items"]
        self.assertEqual([j["kind"] for j in jobs], ["apply"])
        first_job = jobs[0]["id"]

        # ---- upgrade: the state and a changed configuration kept ----
        with open(CONFIG, "a") as f:
            f.write("# changed by the package test\n")
        run("dpkg", "-i", self.debs[self.bumped])
        self.assertEqual(package_version(), self.bumped)
        with open(CONFIG) as f:
            self.assertIn("# changed by the package test", f.read())
        jobs = json.loads(self.gv("jobs", "-o", "json").stdout)["items"]
        self.assertIn(first_job, [j["id"] for j in jobs], "the first version's job is still listed")
        self.assertEqual(self.gv("plan", "--detailed-exitcode").returncode, 0)

        # ---- remove: files gone, state and configuration kept; purge: configuration gone ----
        run("dpkg", "-r", "gitvirt")
        for path in INSTALLED:
            self.assertFalse(os.path.exists(path), path)
        self.assertTrue(os.path.isfile(CONFIG), "dpkg -r keeps the configuration")
        self.assertTrue(os.path.isfile(self.state), "dpkg -r keeps the state")
        run("dpkg", "-P", "gitvirt")
        self.assertFalse(os.path.exists(CONFIG), "dpkg -P removes the configuration")
        self.assertTrue(os.path.isfile(self.state), "the state outlives even a purge")


if __name__ == "__main__":
    BUILD = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
