#!/usr/bin/env python3
"""Writes N VirtualMachine manifests for loader and planner benchmarks.

usage: gen_manifests.py DIR N [--files F] [--nodes K] [--image FILE --sha256 HEX] [--plain]
Documents are spread over F files (default 100), multi-document, realistic in size: two disks
(one a linked clone of an Image), two NICs, cloud-init with a static address, labels and tags.
VMs are pinned round-robin to nodes hv1..hvK when --nodes is given, else placed.
--image/--sha256: the Image's real source (so the manifests can be applied);
--plain: one NIC on the `default` network and no cloud-init (what simulated nodes can apply
without a bridge or an ISO per VM).
"""
import argparse
import os

p = argparse.ArgumentParser()
p.add_argument("dir")
p.add_argument("count", type=int)
p.add_argument("--files", type=int, default=100)
p.add_argument("--nodes", type=int, default=0)
p.add_argument("--image", default="/var/lib/gitvirt/bench/base.qcow2")
p.add_argument("--sha256", default="0" * 64)
p.add_argument("--plain", action="store_true")
args = p.parse_args()
os.makedirs(args.dir, exist_ok=True)

image = """apiVersion: gitvirt.dev/v1
kind: Image
metadata:
  name: base
spec:
  source: {src}
  sha256: "{sha}"
  format: qcow2
""".format(src=args.image, sha=args.sha256)
with open(os.path.join(args.dir, "image.yaml"), "w") as f:
    f.write(image)

per_file = (args.count + args.files - 1) // args.files
for fi in range(args.files):
    docs = []
    for i in range(fi * per_file, min(args.count, (fi + 1) * per_file)):
        node = f"  node: hv{i % args.nodes + 1}\n" if args.nodes else ""
        a, b = divmod(i, 250)
        if args.plain:
            networks = "  networks:\n    - network: default\n"
        else:
            networks = f"""  networks:
    - network: default
    - bridge: br0
      vlan: 100
  cloudInit:
    users:
      - name: ops
        sshAuthorizedKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGLmQqfp8X5DUVxLruBsCmJ7m4mDGcr5V7e2BXMkNPDp ops@example.com"]
    ipConfigs: ["ip=10.{a // 250 + 1}.{a % 250}.{b + 2}/16,gw=10.{a // 250 + 1}.0.1"]
"""
        docs.append(f"""apiVersion: gitvirt.dev/v1
kind: VirtualMachine
metadata:
  name: vm-{i:05d}
  labels: {{tier: bench, shard: "s{i % 16}"}}
  tags: [bench, env-test]
spec:
{node}  vcpus: 2
  memory: 1GiB
  disks:
    - name: root
      size: 20GiB
      source: {{image: base}}
    - name: data
      size: 10GiB
      cache: none
      discard: true
{networks}  updatePolicy: {{restart: Allowed}}
""")
    if docs:
        with open(os.path.join(args.dir, f"vms-{fi:03d}.yaml"), "w") as f:
            f.write("---\n".join(docs))
