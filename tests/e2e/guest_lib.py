"""Helpers for tests with a real guest OS: the cached Debian 12 image (tests/guest/build-image.sh),
a libvirt network on a private libvirtd, the guest agent, and a tiny direct-kernel-boot guest
whose only job is to print a console marker. Standard library only."""
import base64
import gzip
import io
import ipaddress
import json
import os
import random
import stat
import subprocess
import time

from e2e_lib import run


def guest_image(build_script):
    """KERNEL, INITRD, CMDLINE and IMAGE of the cached guest image, building it when missing.
    Returns (values, seconds the script took)."""
    started = time.time()
    out = run(build_script, timeout=3600).stdout
    values = {}
    for line in out.splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            values[key] = value.strip("'")
    for key in ("IMAGE", "KERNEL", "INITRD", "CMDLINE"):
        if key not in values:
            raise RuntimeError(f"{build_script} printed no {key}: {out[-2000:]}")
    return values, time.time() - started


def free_subnet():
    """A /24 in 10.200-250.x.0 that no interface or route of this machine uses."""
    used = run("ip", "-4", "-o", "route", "show", "table", "all").stdout + run("ip", "-4", "-o", "addr").stdout
    nets = []
    for word in used.split():
        try:
            nets.append(ipaddress.ip_network(word, strict=False))
        except ValueError:
            pass
    for _ in range(200):
        candidate = ipaddress.ip_network(f"10.{random.randint(200, 250)}.{random.randint(0, 255)}.0/24")
        if not any(candidate.overlaps(n) for n in nets if n.prefixlen > 0):
            return candidate
    raise RuntimeError("no free 10.x subnet")


class Network:
    """A libvirt network with DHCP (dnsmasq) and no firewall rules (`forward mode='open'`: this
    machine has no iptables), on the private daemon. Its bridge lives in the host's network
    namespace, so the controller reaches guests directly; destroy() removes it."""

    def __init__(self, uri, name):
        self.uri = uri
        self.name = name
        self.subnet = free_subnet()
        hosts = list(self.subnet.hosts())
        self.gateway = str(hosts[0])
        self.bridge = "gvbr" + format(random.randint(0, 0xFFFFF), "05x")
        xml = f"""<network>
  <name>{name}</name>
  <forward mode='open'/>
  <bridge name='{self.bridge}' stp='off'/>
  <ip address='{self.gateway}' netmask='255.255.255.0'>
    <dhcp><range start='{hosts[99]}' end='{hosts[199]}'/></dhcp>
  </ip>
</network>"""
        path = f"/tmp/{name}.xml"
        with open(path, "w") as f:
            f.write(xml)
        try:
            run("virsh", "-c", uri, "net-define", path)
            run("virsh", "-c", uri, "net-start", name)
        finally:
            os.remove(path)

    def address(self, host):
        return str(list(self.subnet.hosts())[host - 1])

    def destroy(self):
        run("virsh", "-c", self.uri, "net-destroy", self.name, check=False)
        run("virsh", "-c", self.uri, "net-undefine", self.name, check=False)
        # If the daemon is gone the bridge would stay in the host's namespace.
        run("ip", "link", "del", self.bridge, check=False)


class Agent:
    """The guest agent of a domain, through libvirt (virsh qemu-agent-command)."""

    def __init__(self, uri, domain):
        self.uri = uri
        self.domain = domain

    def command(self, execute, arguments=None, timeout=30):
        cmd = {"execute": execute}
        if arguments is not None:
            cmd["arguments"] = arguments
        out = run("virsh", "-c", self.uri, "qemu-agent-command", "--timeout", str(timeout), self.domain,
                  json.dumps(cmd)).stdout
        return json.loads(out)["return"]

    def exec(self, path, *args, timeout=60):
        """Runs a program in the guest (guest-exec) and returns (exit code, stdout)."""
        pid = self.command("guest-exec", {"path": path, "arg": list(args), "capture-output": True})["pid"]
        deadline = time.time() + timeout
        while time.time() < deadline:
            status = self.command("guest-exec-status", {"pid": pid})
            if status.get("exited"):
                out = base64.b64decode(status.get("out-data", "")).decode(errors="replace")
                return status.get("exitcode", -1), out
            time.sleep(0.5)
        raise AssertionError(f"{path} {args} did not finish in the guest within {timeout}s")

    def write_file(self, path, text):
        """Writes `text` to a file through guest-file-open/write/close (created or truncated)."""
        handle = self.command("guest-file-open", {"path": path, "mode": "w"})
        try:
            self.command("guest-file-write", {"handle": handle, "buf-b64": base64.b64encode(text.encode()).decode()})
        finally:
            self.command("guest-file-close", {"handle": handle})

    def read_file(self, path):
        """A file's content through guest-file-open/read/close."""
        handle = self.command("guest-file-open", {"path": path, "mode": "r"})
        try:
            data = b""
            while True:
                chunk = self.command("guest-file-read", {"handle": handle, "count": 65536})
                data += base64.b64decode(chunk.get("buf-b64", ""))
                if chunk.get("eof") or chunk.get("count", 0) == 0:
                    return data.decode(errors="replace")
        finally:
            self.command("guest-file-close", {"handle": handle})


TINY_INIT = r"""
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* PID 1 of the tiny guest: says it is up, waits DELAY seconds (so that "started" and "Ready"
   are distinguishable from the outside), prints the marker, and idles forever. */
int main(void) {
  mkdir("/dev", 0755);
  mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
  int fd = open("/dev/ttyS0", O_WRONLY | O_NOCTTY);
  if (fd < 0) fd = 1;
  char line[160];
  int n = snprintf(line, sizeof line, "\r\ntiny guest: init running, marker in %d s\r\n", DELAY);
  write(fd, line, n);
  sleep(DELAY);
  n = snprintf(line, sizeof line, "%s\r\n", MARKER);
  write(fd, line, n);
  for (;;) pause();
}
"""


def _cpio_newc(entries):
    """An uncompressed newc cpio archive from (name, mode, data, rdev_major, rdev_minor)."""
    out = io.BytesIO()

    def put(name, mode, data, major=0, minor=0, ino=[1]):
        name_b = name.encode() + b"\0"
        header = "070701" + "".join(f"{v:08x}" for v in (
            ino[0], mode, 0, 0, 1, 0, len(data), 0, 0, major, minor, len(name_b), 0))
        ino[0] += 1
        out.write(header.encode() + name_b)
        out.write(b"\0" * ((4 - (110 + len(name_b)) % 4) % 4))
        out.write(data)
        out.write(b"\0" * ((4 - len(data) % 4) % 4))

    for entry in entries:
        put(*entry)
    put("TRAILER!!!", 0, b"")
    return out.getvalue()


def tiny_initrd(directory, marker, delay):
    """Builds an initrd (gzip'ed newc cpio) whose static /init prints `marker` on ttyS0 `delay`
    seconds after boot. Needs gcc and glibc's static libc (libc6-dev)."""
    os.makedirs(directory, exist_ok=True)
    source = os.path.join(directory, "init.c")
    binary = os.path.join(directory, "init")
    with open(source, "w") as f:
        f.write(TINY_INIT)
    run("gcc", "-static", "-Os", "-s", f"-DDELAY={int(delay)}", f'-DMARKER="{marker}"', "-o", binary, source)
    with open(binary, "rb") as f:
        init = f.read()
    archive = _cpio_newc([
        ("dev", stat.S_IFDIR | 0o755, b""),
        ("dev/console", stat.S_IFCHR | 0o600, b"", 5, 1),
        ("init", stat.S_IFREG | 0o755, init),
    ])
    path = os.path.join(directory, "initrd.cpio.gz")
    with gzip.open(path, "wb") as f:
        f.write(archive)
    return path


def journal(db):
    """Steps and events of every job in a gitvirt state file (read-only)."""
    import sqlite3
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    steps = [dict(r) for r in con.execute("SELECT * FROM steps ORDER BY job_id, seq")]
    events = [dict(r) for r in con.execute("SELECT * FROM events ORDER BY job_id, seq")]
    con.close()
    return steps, events


def files_under(root):
    """Every regular file under root, as (path, bytes)."""
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            try:
                if os.path.isfile(path) and not os.path.islink(path):
                    with open(path, "rb") as f:
                        yield path, f.read()
            except OSError:
                pass

