#!/usr/bin/python3
"""Generates schemas/*.schema.json from one description of the manifest language.

The schemas are committed; this script is how they are made, so the long regular
expressions (IPv6, cron, tag expressions, index arithmetic) are built from readable parts
instead of being edited by hand. After changing it, run

    /usr/bin/python3 tests/schemas/gen_schemas.py

and commit the regenerated schemas together with it. tests/schemas/test_schemas.py fails
when the committed schemas differ from what this script produces.

The reference is docs/manifests.md: field names, enums, defaults and ranges follow it.
Rules that need more than one document (unknown Images, dependsOn cycles, duplicate names)
or arithmetic between fields (maxVcpus >= vcpus, topology product, unique bootOrder) are
checked by the loader only.
"""

import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "schemas"
BASE = "https://gitvirt.dev/schemas/v1/"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
API_VERSION = "gitvirt.dev/v1"


# ---------------------------------------------------------------------------------------------
# Regular-expression building blocks (ECMA-262 and Python `re` compatible: no lookbehind,
# no flags, so keywords are spelled case-insensitively with character classes).

def int_range(lo: int, hi: int, leading_zero: bool = False) -> str:
    """A regex (without anchors) matching the decimal integers lo..hi, no leading zeros
    (except an optional single leading 0 for one-digit values when leading_zero)."""
    alts = []
    for digits in range(len(str(lo)), len(str(hi)) + 1):
        a = max(lo, 0 if digits == 1 else 10 ** (digits - 1))
        b = min(hi, 10 ** digits - 1)
        if a > b:
            continue
        cap = 10 ** (digits - 1)
        while a <= b:
            step = 1
            while step < cap and a % (step * 10) == 0 and a + step * 10 - 1 <= b:
                step *= 10
            boundary = (a // (step * 10) + 1) * (step * 10)
            end = min(b + 1, boundary)
            n = (end - a) // step
            head = str(a // step)
            first, last = int(head[-1]), int(head[-1]) + n - 1
            digit = str(first) if first == last else f"[{first}-{last}]"
            zeros = "[0-9]" * (len(str(step)) - 1)
            alt = head[:-1] + digit + zeros
            if leading_zero and digits == 1:
                alt = "0?" + alt
            alts.append(alt)
            a += n * step
    return "(?:" + "|".join(alts) + ")"


def ci(word: str) -> str:
    """Case-insensitive spelling of a keyword: AND -> [Aa][Nn][Dd]."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word)


def anchored(rx: str) -> str:
    return "^" + rx + "$"


NAME = r"[a-z0-9](?:[-a-z0-9.]*[a-z0-9])?"
DNS_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
LABEL_KEY = (r"(?:" + DNS_LABEL + r"(?:\." + DNS_LABEL + r")*/)?"
             r"[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?")
LABEL_VALUE = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
TAG = r"[A-Za-z0-9_][A-Za-z0-9_.+-]*"

OCTET = int_range(0, 255)
IPV4 = rf"{OCTET}(?:\.{OCTET}){{3}}"
H16 = r"[0-9A-Fa-f]{1,4}"
LS32 = rf"(?:{H16}:{H16}|{IPV4})"


def _ipv6() -> str:
    h = H16
    alts = [
        rf"(?:{h}:){{6}}{LS32}",
        rf"::(?:{h}:){{5}}{LS32}",
        rf"(?:{h})?::(?:{h}:){{4}}{LS32}",
        rf"(?:(?:{h}:){{0,1}}{h})?::(?:{h}:){{3}}{LS32}",
        rf"(?:(?:{h}:){{0,2}}{h})?::(?:{h}:){{2}}{LS32}",
        rf"(?:(?:{h}:){{0,3}}{h})?::{h}:{LS32}",
        rf"(?:(?:{h}:){{0,4}}{h})?::{LS32}",
        rf"(?:(?:{h}:){{0,5}}{h})?::{h}",
        rf"(?:(?:{h}:){{0,6}}{h})?::",
    ]
    return "(?:" + "|".join(alts) + ")"


IPV6 = _ipv6()
IP = rf"(?:{IPV4}|{IPV6})"
CIDR4 = rf"{IPV4}/{int_range(0, 32)}"
CIDR6 = rf"{IPV6}/{int_range(0, 128)}"
CIDR = rf"(?:{CIDR4}|{CIDR6})"
IPCONFIG = (rf"ip=(?:dhcp|{CIDR4}(?:,gw={IPV4})?)"
            rf"(?:,ip6=(?:dhcp|auto|{CIDR6}(?:,gw6={IPV6})?))?")

SIZE_NUMBER = r"(?:0|[1-9][0-9]*)"
SIZE = rf"(?:{SIZE_NUMBER}(?:\.[0-9]+)?(?:KiB|MiB|GiB|TiB|PiB|KB|MB|GB|TB)|{SIZE_NUMBER}B)"
# memory: 64MiB..1TiB. Exact for MiB (whole numbers only), GiB and TiB; other units are only
# checked for syntax (the loader checks the byte value).
MEMORY = ("(?:"
          + int_range(64, 1048576) + "MiB"
          + r"|(?:0\.(?:06(?:2[5-9]|[3-9])|0[7-9]|[1-9])[0-9]*|" + int_range(1, 1023) + r"(?:\.[0-9]+)?|1024(?:\.0+)?)GiB"
          + r"|(?:1(?:\.0+)?|0\.(?:0000[6-9]|000[1-9]|00[1-9]|0[1-9]|[1-9])[0-9]*)TiB"
          + rf"|{SIZE_NUMBER}(?:\.[0-9]+)?(?:KiB|KB|MB|GB|TB|PiB)|{SIZE_NUMBER}B"
          + ")")
DURATION = r"(?:[0-9]+[smhdw])+"


def _cron() -> str:
    months = "JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC"
    days = "SUN|MON|TUE|WED|THU|FRI|SAT"
    names_m = "|".join([months, months.lower()])
    names_d = "|".join([days, days.lower()])

    def field(lo: int, hi: int, names: str = "") -> str:
        value = int_range(lo, hi, leading_zero=True)
        if names:
            value = f"(?:{value}|{names})"
        item = rf"(?:\*|{value}(?:-{value})?)(?:/[1-9][0-9]*)?"
        return rf"{item}(?:,{item})*"

    sec = field(0, 59)
    minute = field(0, 59)
    hour = field(0, 23)
    dom = field(1, 31)
    mon = field(1, 12, names_m)
    dow = field(0, 7, names_d)
    year = field(1970, 2099)
    dom_q = rf"(?:{dom}|\?)"
    dow_q = rf"(?:{dow}|\?)"
    five = " +".join([minute, hour, dom, mon, dow])
    six_seven = " +".join([sec, minute, hour, dom_q, mon, dow_q]) + rf"(?: +{year})?"
    macros = "@yearly|@monthly|@weekly|@daily|@hourly"
    return f"(?:{five}|{six_seven}|{macros})"


CRON = _cron()


def _tag_expression(depth: int = 3) -> str:
    word_end = r"(?![A-Za-z0-9_.+/=!-])"
    reserved = rf"(?!(?:{ci('and')}|{ci('or')}|{ci('not')}){word_end})"
    term = rf"{reserved}(?:{LABEL_KEY}!?={LABEL_VALUE}|{TAG})"
    nots = rf"(?:{ci('not')}(?:\s+|(?=\()))*"
    binop = rf"\s+(?:{ci('and')}|{ci('or')})(?:\s+|(?=\())"
    expr = None
    for _ in range(depth + 1):
        atom = term if expr is None else rf"(?:{term}|\(\s*{expr}\s*\))"
        unary = nots + atom
        expr = rf"{unary}(?:{binop}{unary})*"
    return rf"\s*{expr}\s*"


TAG_EXPRESSION = _tag_expression()

ARITH_OPERAND = r"\s*[-(\s]*(?:index|[0-9]+)[\s)]*"
ARITH = rf"{ARITH_OPERAND}(?:[-+*/%]{ARITH_OPERAND})*"
IP_PATTERN = rf"ip6?=(?:[^{{}}\s]|\{{(?:{ARITH}|\s*(?:name|NN)\s*)\}})*"
MEMBER_NAME_PATTERN = rf"(?:[a-z0-9.-]|\{{(?:\s*(?:cluster|group|role|NN)\s*|{ARITH})\}})+"
SNAPSHOT_NAME_PATTERN = r"(?:[A-Za-z0-9._:+-]|\{(?:vm|date|time|datetime|policy)\})+"
GLOB = r"[-a-z0-9.*?\[\]!^]+"
KIND = "VirtualMachine|Cluster|SnapshotPolicy|BackupPolicy|Image"
RESOURCE_REF = rf"(?:(?:{KIND})/)?{NAME}"
MAC_UNICAST = r"[0-9A-Fa-f][02468ACEace](?::[0-9A-Fa-f]{2}){5}"
PCI_ADDRESS = r"(?:[0-9A-Fa-f]{4}:)?[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7]"
UUID = r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
HOSTNAME = (r"[A-Za-z0-9](?:[-A-Za-z0-9]*[A-Za-z0-9])?"
            r"(?:\.[A-Za-z0-9](?:[-A-Za-z0-9]*[A-Za-z0-9])?)*")
TIME_ZONE = r"(?:UTC|[A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9][A-Za-z0-9_+-]*)*)"
ABS_PATH = r"/.*"
POOL_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
IMAGE_SOURCE = r"(?:(?:https?|file)://\S+|[^\s:]+)"
LISTEN = rf"(?:{IPV4}|\[{IPV6}\]|{HOSTNAME})?:{int_range(1, 65535)}"


# ---------------------------------------------------------------------------------------------
# Schema helpers.

def ref(name: str, file: str = "common.schema.json") -> dict:
    return {"$ref": f"{file}#/$defs/{name}"}


def local(name: str) -> dict:
    return {"$ref": f"#/$defs/{name}"}


def obj(properties: dict, required=(), description: str = "", **extra) -> dict:
    out = {"type": "object"}
    if description:
        out["description"] = description
    out["properties"] = properties
    if required:
        out["required"] = list(required)
    out["additionalProperties"] = False
    out.update(extra)
    return out


def string(pattern: str = "", description: str = "", **extra) -> dict:
    out = {"type": "string"}
    if description:
        out["description"] = description
    if pattern == ".+":
        out["minLength"] = 1
    elif pattern:
        out["pattern"] = anchored(pattern)
    out.update(extra)
    return out


def enum(values, default=None, description: str = "") -> dict:
    out = {"type": "string"}
    if description:
        out["description"] = description
    out["enum"] = list(values)
    if default is not None:
        out["default"] = default
    return out


def integer(lo=None, hi=None, description: str = "", **extra) -> dict:
    out = {"type": "integer"}
    if description:
        out["description"] = description
    if lo is not None:
        out["minimum"] = lo
    if hi is not None:
        out["maximum"] = hi
    out.update(extra)
    return out


def boolean(description: str = "", default=None) -> dict:
    out = {"type": "boolean"}
    if description:
        out["description"] = description
    if default is not None:
        out["default"] = default
    return out


def array(items: dict, description: str = "", **extra) -> dict:
    out = {"type": "array"}
    if description:
        out["description"] = description
    out["items"] = items
    out.update(extra)
    return out


def strings(description: str = "", pattern: str = "", **extra) -> dict:
    return array(string(pattern) if pattern else {"type": "string"}, description, **extra)


BOOT_ORDER = integer(1, description="Boot priority; unique across disks, cdroms and NICs.")


# ---------------------------------------------------------------------------------------------
# common.schema.json

def common() -> dict:
    d = {}
    d["name"] = string(NAME, "[a-z0-9]([-a-z0-9.]*[a-z0-9])?, at most 63 characters.",
                       maxLength=63)
    d["labels"] = {
        "type": "object",
        "description": "string -> string; keys as in Kubernetes (prefix/name).",
        "propertyNames": {"pattern": anchored(LABEL_KEY), "maxLength": 317},
        "additionalProperties": {"type": "string"},
    }
    d["annotations"] = {
        "type": "object",
        "description": "string -> string, free text.",
        "additionalProperties": {"type": "string"},
    }
    d["tag"] = string(TAG, "A Proxmox-style tag, matched by tag expressions.")
    d["tags"] = array(local("tag"), "Proxmox-style tags, matched by tag expressions.",
                      uniqueItems=True)
    d["metadata"] = obj({
        "name": local("name"),
        "labels": local("labels"),
        "annotations": local("annotations"),
        "tags": local("tags"),
    }, required=["name"])
    d["size"] = string(SIZE, "A number and a unit: IEC KiB MiB GiB TiB PiB, SI KB MB GB TB, or B "
                             "(512MiB, 20GiB, 1.5TiB, 100GB).")
    d["memory"] = string(MEMORY, "64MiB..1TiB, a whole number of MiB.")
    d["duration"] = string(DURATION, "One or more number+unit groups, units s m h d w "
                                     "(30s, 5m, 1h30m, 7d, 2w).")
    d["cron"] = string(CRON, "5 fields (min hour dom mon dow); 6/7 fields with seconds first "
                             "and an optional year ('?' allowed in dom/dow); or @yearly "
                             "@monthly @weekly @daily @hourly.")
    d["timeZone"] = string(TIME_ZONE, "IANA time zone (default UTC).", default="UTC")
    d["ip"] = string(IP, "An IPv4 or IPv6 address.")
    d["cidr"] = string(CIDR, "IPv4 a.b.c.d/len or IPv6 x::y/len.")
    d["ipConfig"] = string(IPCONFIG, "Proxmox-style: ip=dhcp or ip=CIDR[,gw=IP], optionally "
                                     "followed by ,ip6=dhcp|auto|CIDR[,gw6=IP].")
    d["ipConfigPattern"] = string(
        IP_PATTERN, "An ipConfig with {expr} placeholders: integer arithmetic over index "
                    "(+ - * / % and parentheses), {index}, {name} or {NN}.")
    d["secretRef"] = obj({
        "file": string(".+", "A file, absolute or relative to the config's secretsDir."),
        "env": string(r"[A-Za-z_][A-Za-z0-9_]*", "An environment variable."),
    }, description="Exactly one of file or env; read at apply time, never stored.",
        oneOf=[{"required": ["file"]}, {"required": ["env"]}])
    d["nodeSelector"] = {**local("labels"),
                         "description": "Node labels that must match."}
    d["selector"] = obj({
        "matchLabels": local("labels"),
        "names": strings("Globs on VM names: * ? [abc].", GLOB, minItems=1),
        "tags": string(TAG_EXPRESSION, "Tag expression: tags or label tests (env=prod, "
                                       "env!=prod) with AND, OR, NOT (any case) and "
                                       "parentheses."),
        "all": boolean("Every managed VM."),
        "clusters": strings("Members of these Clusters.", NAME, minItems=1),
    }, description="All given criteria must hold; at least one is required.", minProperties=1)
    d["maxUnavailable"] = {
        "description": "How many at once: a number (2) or a percentage (\"25%\", rounded down, "
                       "at least 1).",
        "oneOf": [{"type": "integer", "minimum": 1},
                  {"type": "string", "pattern": anchored("(" + int_range(1, 999999) + "|" +
                                                         int_range(1, 100) + "%)")}],
    }
    d["ignorePath"] = string(anchored(r"[A-Za-z]+(\[[^\].\[]+\])?(\.[A-Za-z]+(\[[^\].\[]+\])?)*"),
                             "A field path of a VM spec: memory, disks[*].size, networks[0].mac.")
    d["retention"] = obj({
        "keep": integer(1, description="Keep at most N of this policy's items per VM."),
        "maxAge": local("duration"),
    }, minProperties=1)
    d["resourceRef"] = string(RESOURCE_REF, "Kind/name, or a bare VirtualMachine name.")

    # -- the VirtualMachine spec, shared with Cluster node group templates ----------------
    d["vmPlacement"] = obj({"nodeSelector": local("nodeSelector")},
                           description="Used only when node is omitted.")
    d["cpu"] = obj({
        "mode": enum(["host-passthrough", "host-model", "custom", "maximum"]),
        "model": string(".+", "CPU model name; only with mode: custom."),
        "topology": obj({
            "sockets": integer(1),
            "cores": integer(1),
            "threads": integer(1),
        }, description="The product must equal maxVcpus (or vcpus)."),
    }, **{"if": {"required": ["model"]},
          "then": {"properties": {"mode": {"const": "custom"}}, "required": ["mode"]}})
    d["firmware"] = obj({
        "type": enum(["bios", "uefi"], "bios"),
        "secureBoot": boolean("UEFI only.", False),
        "tpm": boolean("Emulated TPM 2.0.", False),
    }, **{"if": {"properties": {"secureBoot": {"const": True}}, "required": ["secureBoot"]},
          "then": {"properties": {"type": {"const": "uefi"}}, "required": ["type"]}})
    d["vmOs"] = obj({
        "type": {"type": "string"},
        "variant": {"type": "string", "description": "libosinfo id, e.g. debian12."},
    })
    d["diskSource"] = obj({
        "image": {**local("name"), "description": "An Image by name (clone: linked by default)."},
        "volume": string(".+", "An existing volume in the disk's pool (clone: none by default)."),
        "path": string(ABS_PATH, "An existing file on the node (clone: none by default)."),
        "clone": enum(["linked", "full", "none"],
                      description="linked (qcow2 backing file) | full (copy) | none (use in "
                                  "place)."),
    }, description="Omit for a new empty disk; else exactly one of image, volume, path.",
        oneOf=[{"required": ["image"]}, {"required": ["volume"]}, {"required": ["path"]}])
    d["disk"] = obj({
        "name": string(r"[a-z0-9-]+", "Unique in the VM."),
        "size": {**local("size"),
                 "description": "Required for new disks; for clones, grows the clone."},
        "pool": string(POOL_NAME, "libvirt pool on the node.", default="default"),
        "bus": enum(["virtio", "scsi", "sata", "ide"], "virtio"),
        "format": enum(["qcow2", "raw"], "qcow2"),
        "source": local("diskSource"),
        "cache": enum(["default", "none", "writethrough", "writeback", "directsync", "unsafe"]),
        "discard": boolean("Pass TRIM/discard to the image."),
        "ssd": boolean("Report non-rotational media to the guest."),
        "iothread": boolean("Give this disk its own I/O thread."),
        "readonly": boolean(),
        "bootOrder": BOOT_ORDER,
        "backup": boolean("Include in backups.", True),
    }, required=["name"], allOf=[
        {"if": {"not": {"required": ["source"]}},
         "then": {"required": ["size"]}},
        {"if": {"required": ["source"],
                "properties": {"source": {"anyOf": [
                    {"required": ["clone"], "properties": {"clone": {"const": "linked"}}},
                    {"required": ["image"], "not": {"required": ["clone"]}},
                ]}}},
         "then": {"properties": {"format": {"const": "qcow2"}}}},
    ])
    d["cdrom"] = obj({
        "name": string(r"[a-z0-9-]+"),
        "image": {**local("name"), "description": "An Image of format iso."},
        "path": string(ABS_PATH, "An ISO file on the node."),
        "bus": enum(["sata", "ide", "scsi"], "sata"),
        "bootOrder": BOOT_ORDER,
    }, required=["name"], oneOf=[{"required": ["image"]}, {"required": ["path"]}])
    d["nic"] = obj({
        "network": string(".+", "A libvirt network."),
        "bridge": string(".+", "A host bridge."),
        "user": {"const": True, "description": "QEMU user-mode networking (SLIRP): no host network; "
                                               "no vlan or filter."},
        "model": enum(["virtio", "e1000", "e1000e", "rtl8139"], "virtio"),
        "vlan": integer(1, 4094),
        "mac": string(MAC_UNICAST, "A unicast xx:xx:xx:xx:xx:xx; libvirt generates one "
                                   "otherwise."),
        "filter": string(".+", "A libvirt nwfilter."),
        "bootOrder": BOOT_ORDER,
    }, oneOf=[{"required": ["network"]}, {"required": ["bridge"]},
              {"required": ["user"], "not": {"anyOf": [{"required": ["vlan"]}, {"required": ["filter"]}]}}])
    d["cloudInitUser"] = obj({
        "name": string(r"[a-z_][a-z0-9_-]*\$?"),
        "sshAuthorizedKeys": strings(),
        "passwordHash": string(".+", "A crypt(3) hash."),
        "passwordFrom": {**local("secretRef"),
                         "description": "A plain password, hashed with SHA-512 crypt at apply."},
        "sudo": {"type": "string"},
        "groups": strings(),
        "shell": {"type": "string"},
    }, required=["name"], dependentSchemas={
        "passwordHash": {"not": {"required": ["passwordFrom"]}}})
    d["cloudInit"] = obj({
        "hostname": string(HOSTNAME, "Default: metadata.name.", maxLength=253),
        "users": array(local("cloudInitUser")),
        "ipConfigs": array(local("ipConfig"), "One per NIC, in NIC order.", maxItems=8),
        "nameservers": array(local("ip")),
        "searchDomains": strings(pattern=HOSTNAME),
        "userData": string(description="Raw #cloud-config merged into (or replacing) the "
                                        "generated one."),
        "userDataMode": enum(["merge", "replace"], "merge"),
    }, description="NoCloud seed ISO, attached as a read-only SATA cdrom.")
    d["graphics"] = obj({
        "type": enum(["none", "vnc", "spice"], "none"),
        "listen": {**local("ip"), "default": "127.0.0.1"},
        "port": {"anyOf": [{"const": "auto"}, integer(5900, 65535)], "default": "auto"},
        "passwordFrom": local("secretRef"),
        "video": enum(["virtio", "qxl", "vga", "cirrus", "bochs", "none"], "virtio"),
    })
    d["gpu"] = obj({
        "pci": string(PCI_ADDRESS, "PCI passthrough address, e.g. 0000:65:00.0."),
        "mdev": obj({
            "type": string(".+", "Mediated device type, e.g. nvidia-63."),
            "uuid": string(UUID),
        }, required=["type"]),
    }, oneOf=[{"required": ["pci"]}, {"required": ["mdev"]}])
    d["updatePolicy"] = obj({
        "restart": enum(["Allowed", "Never"], "Never",
                        "May gitvirt restart the VM to apply a change."),
        "shutdownTimeout": {**local("duration"), "default": "2m"},
        "forceOff": boolean("After the timeout, force the power off.", False),
        "snapshot": {
            "description": "Snapshot the VM before a restart, replace or disk change; a FULL "
                           "rollback reverts to it. true, or {keep: 24h}.",
            "oneOf": [{"type": "boolean"}, obj({"keep": {**local("duration"), "default": "24h"}})],
        },
    })
    d["readiness"] = obj({
        "agent": boolean("The guest agent answers."),
        "tcp": integer(1, 65535, "A TCP port on the VM's address accepts connections."),
        "consoleMarker": string(".+", "Text on the serial console log."),
        "timeout": local("duration"),
    })
    d["migration"] = obj({
        "live": boolean("Live when running.", True),
        "allowOffline": boolean("Fall back to offline when live fails.", False),
        "copyStorage": boolean("Copy local disks to the target.", False),
        "bandwidth": {**local("size"), "description": "Per second."},
    })
    d["vmSpec"] = obj({
        "node": {**local("name"), "description": "Node name from gitvirt.yaml; omit to let "
                                                 "placement choose."},
        "placement": local("vmPlacement"),
        "description": {"type": "string"},
        "vcpus": integer(1, 128),
        "maxVcpus": integer(1, 128, "Ceiling for live vCPU changes (>= vcpus)."),
        "memory": local("memory"),
        "maxMemory": {**local("size"),
                      "description": "Ceiling for live memory changes (>= memory)."},
        "cpu": local("cpu"),
        "machine": string(r"[A-Za-z0-9][A-Za-z0-9_.-]*", "q35 | pc | any libvirt machine type.",
                          default="q35"),
        "firmware": local("firmware"),
        "os": local("vmOs"),
        "boot": obj({
            "kernel": string(ABS_PATH, "Kernel to boot directly (a path on the node)."),
            "initrd": string(ABS_PATH, "Initial ramdisk (a path on the node)."),
            "cmdline": {"type": "string", "description": "Kernel command line."},
        }, required=["kernel"]),
        "guestAgent": boolean("Add the qemu-guest-agent channel."),
        "disks": array(local("disk"), maxItems=32),
        "cdroms": array(local("cdrom"), maxItems=4),
        "networks": array(local("nic"), maxItems=8),
        "cloudInit": local("cloudInit"),
        "graphics": local("graphics"),
        "gpus": array(local("gpu")),
        "autostart": boolean("Start with the host.", False),
        "powerState": enum(["Running", "Stopped", "Paused"], "Running"),
        "updatePolicy": local("updatePolicy"),
        "deletionPolicy": enum(["Delete", "Retain", "Protect", "KeepDisks"], "Delete",
                               "What pruning does once the VM leaves the repository: Delete (domain and "
                               "the volumes gitvirt made), Retain (gitvirt lets go; VM and disks stay), "
                               "Protect (nothing; the plan says so), KeepDisks (the domain is undefined, "
                               "every disk and volume stays)."),
        "dependsOn": array(local("resourceRef"), "Kind/name, or a bare VM name."),
        "readiness": local("readiness"),
        "migration": local("migration"),
        "ignoreDifferences": array(local("ignorePath"), "Field paths whose drift is shown as "
                                                        "ignored and never acted on."),
        "adopt": boolean("Take over a same-name domain gitvirt does not own, as it runs: the plan's adopt "
                         "action writes the owner metadata only (no redefinition, no restart). "
                         "VirtualMachine documents only.", False),
    }, required=["memory"])
    return {
        "$schema": DRAFT,
        "$id": BASE + "common.schema.json",
        "title": "gitvirt common definitions",
        "$comment": "Generated by tests/schemas/gen_schemas.py from docs/manifests.md.",
        "$defs": d,
    }


def document(kind: str, spec: dict, description: str) -> dict:
    file = kind.lower() + ".schema.json"
    return {
        "$schema": DRAFT,
        "$id": BASE + file,
        "title": f"gitvirt {kind}",
        "description": description,
        "$comment": "Generated by tests/schemas/gen_schemas.py from docs/manifests.md.",
        "type": "object",
        "properties": {
            "apiVersion": {"const": API_VERSION},
            "kind": {"const": kind},
            "metadata": ref("metadata"),
            "spec": spec,
        },
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
    }


def virtual_machine() -> dict:
    return document("VirtualMachine", ref("vmSpec"), "A libvirt domain managed by gitvirt.")


def cluster() -> dict:
    template = {**ref("vmSpec"),
                "description": "A VirtualMachine spec, without node (placement decides) or adopt (a "
                               "VirtualMachine's own choice).",
                "properties": {"node": False, "adopt": False}}
    group = obj({
        "name": string(DNS_LABEL),
        "role": string(".+", "Free text; becomes the gitvirt.dev/role label."),
        "count": integer(0, 100),
        "namePattern": string(MEMBER_NAME_PATTERN,
                              "{cluster} {group} {role} {index} (0-based) {NN} (1-based, two "
                              "digits), or integer arithmetic over index.",
                              default="{cluster}-{group}-{NN}"),
        "scaleDown": boolean("Allow removing members when count drops, without --prune.",
                             False),
        "labels": ref("labels"),
        "tags": ref("tags"),
        "placement": obj({
            "antiAffinity": enum(["NONE", "SOFT", "HARD"], "NONE"),
            "topologyKey": string(LABEL_KEY, "Spread over this node label instead of node "
                                             "names."),
            "nodeSelector": ref("nodeSelector"),
        }),
        "ipConfigPatterns": array(ref("ipConfigPattern"), "One per NIC.", maxItems=8),
        "maxUnavailable": {**ref("maxUnavailable"), "default": "1"},
        "template": template,
    }, required=["name", "count", "template"])
    spec = obj({
        "rollbackStrategy": enum(["FULL", "PARTIAL", "NONE", "MARK_FAILED"], "FULL"),
        "maxParallel": integer(1, description="Members created at once (default: apply's "
                                              "--parallel)."),
        "cloudInit": {**ref("cloudInit"),
                      "description": "Defaults merged into every member's cloudInit."},
        "nodeGroups": array(group, "Created in this order; each waits for the previous to be "
                                   "Ready.", minItems=1),
    }, required=["nodeGroups"])
    return document("Cluster", spec, "Expands into VirtualMachines, one per member of each "
                                     "node group.")


def sync_window() -> dict:
    spec = obj({
        "type": enum(["allow", "deny"], description="allow: changes only while open; deny: "
                                                     "no changes while open."),
        "schedule": {**ref("cron"), "description": "When the window opens."},
        "duration": {**ref("duration"), "description": "How long it stays open."},
        "timeZone": ref("timeZone"),
        "selector": ref("selector"),
        "manualSync": boolean("`gitvirt apply --override-windows` may apply while the window "
                              "blocks.", False),
    }, required=["type", "schedule", "duration", "selector"])
    return document("SyncWindow", spec, "When the selected VMs may be changed.")


def disruption_budget() -> dict:
    spec = obj({
        "selector": ref("selector"),
        "maxUnavailable": ref("maxUnavailable"),
    }, required=["selector", "maxUnavailable"])
    return document("DisruptionBudget", spec, "How many of the selected VMs a restart or "
                                              "replace may take down at once.")


def policy_common() -> dict:
    return {
        "selector": ref("selector"),
        "schedule": {**ref("cron"), "description": "Omit for manual runs only."},
        "timeZone": ref("timeZone"),
        "suspend": boolean("Pause the schedule.", False),
        "retention": ref("retention"),
        "maxParallel": integer(1, 20, default=3),
        "description": {"type": "string"},
    }


def snapshot_policy() -> dict:
    props = policy_common()
    props.update({
        "namePattern": string(SNAPSHOT_NAME_PATTERN,
                              "{vm} {date}=YYYYMMDD {time}=HHMMSS {datetime}=YYYYMMDDTHHMMSS "
                              "{policy}"),
        "memory": boolean("Include RAM state.", False),
        "quiesce": boolean("Freeze filesystems through the guest agent when it answers."),
    })
    return document("SnapshotPolicy", obj(props, required=["selector"]),
                    "Scheduled snapshots with retention.")


def backup_policy() -> dict:
    props = policy_common()
    props.update({
        # A pool on the VM's node (target.pool) is not supported yet: the loader refuses it.
        "target": obj({
            "directory": string(".+", "On the controller host."),
        }, required=["directory"]),
        "mode": enum(["snapshot", "suspend", "stop"]),
        "compression": enum(["zstd", "gzip", "none"], "zstd"),
        "compressionLevel": integer(1, 19, "zstd 1..19, gzip 1..9."),
        "protect": boolean("Backups made by this policy are never deleted by retention.", False),
        "verify": boolean("Re-read and check checksums after writing."),
    })
    spec = obj(props, required=["selector", "target"], **{
        "if": {"required": ["compression"], "properties": {"compression": {"const": "gzip"}}},
        "then": {"properties": {"compressionLevel": {"maximum": 9}}},
    })
    return document("BackupPolicy", spec, "Scheduled backups with retention.")


def image() -> dict:
    spec = obj({
        "source": string(IMAGE_SOURCE, "http(s):// or file:// URL, or a path (relative paths "
                                       "are relative to the manifest file)."),
        "sha256": string(r"[0-9A-Fa-f]{64}", "64 hex digits; verified on import."),
        "format": enum(["qcow2", "raw", "iso"], "qcow2"),
        "pool": string(POOL_NAME, "Pool the image is imported into on each node that needs it.",
                       default="default"),
        "os": obj({
            "type": {"type": "string"},
            "variant": {"type": "string"},
            "arch": string(r"[A-Za-z0-9_]+", default="x86_64"),
            "firmware": enum(["bios", "uefi"]),
        }),
        "description": {"type": "string"},
    }, required=["source", "sha256"])
    return document("Image", spec, "A named base image or ISO.")


def controller_config() -> dict:
    repo_only = ["ref", "subPath", "tokenFile", "sshKeyFile", "caFile"]
    source = obj({
        "path": string(".+", "A working copy (relative to this file)."),
        "repo": string(r"\S+", "A git URL."),
        "ref": string(r"\S+", "Branch, tag or commit."),
        "subPath": string(".+"),
        "tokenFile": string(".+", "https token."),
        "sshKeyFile": string(".+", "ssh key."),
        "caFile": string(".+", "https: PEM bundle of the CAs trusted for the server, instead of the system's."),
        "interval": ref("duration"),
    }, oneOf=[
        {"required": ["path"], "not": {"anyOf": [{"required": [k]} for k in ["repo"] + repo_only]}},
        {"required": ["repo"], "not": {"required": ["path"]}},
    ])
    node = obj({
        "name": ref("name"),
        "uri": string(r"(?:sim:\S+|[a-z][a-z0-9+.-]*://\S*)",
                      "sim:FILE (simulated), qemu:///system, qemu+ssh://host/system, ..."),
        "labels": ref("labels"),
        "capacity": obj({"vcpus": integer(1), "memory": ref("size")},
                        description="Override what libvirt reports."),
        "overcommit": obj({"cpu": {"type": "number", "exclusiveMinimum": 0, "default": 4.0},
                           "memory": {"type": "number", "exclusiveMinimum": 0, "default": 1.0}},
                          description="Placement ratios."),
        "pools": array(obj({"name": string(POOL_NAME), "path": string(".+"),
                            "shared": boolean("The same storage on every node that declares this "
                                              "pool shared: migrations copy none of its volumes.",
                                              False)},
                           required=["name", "path"])),
        "drain": boolean("Move every VM off this node.", False),
        "maxParallel": integer(1),
        "migration": obj({"address": string(".+", "Address this node receives live migrations on.")}),
        "consoleDir": string("/.*", "Directory on the node for serial console logs "
                                    "(<vm>.log); absolute."),
    }, required=["name", "uri"])
    return {
        "$schema": DRAFT,
        "$id": BASE + "controllerconfig.schema.json",
        "title": "gitvirt controller configuration (gitvirt.yaml)",
        "$comment": "Generated by tests/schemas/gen_schemas.py from docs/manifests.md.",
        "type": "object",
        "properties": {
            "apiVersion": {"const": API_VERSION},
            "kind": {"const": "ControllerConfig"},
            "source": source,
            "nodes": array(node, minItems=1),
            "sync": obj({"auto": boolean(), "prune": boolean(), "selfHeal": boolean()}),
            "apply": obj({"parallel": integer(1),
                          "rollback": enum(["FULL", "PARTIAL", "NONE", "MARK_FAILED"]),
                          "stepTimeout": ref("duration")}),
            "state": string(".+", "SQLite journal (relative to this file)."),
            "secretsDir": string(".+", "Base for relative secret files."),
            "ignoreDifferences": array(obj({
                "selector": ref("selector"),
                "paths": array(ref("ignorePath"), minItems=1),
            }, required=["selector", "paths"]), "Drift ignored on every VM the selector "
                                                "selects."),
            "api": obj({
                "listen": string(LISTEN, "host:port"),
                "tokensFile": string(".+", "Bearer tokens, one per line."),
                "tls": obj({"cert": string(".+"), "key": string(".+")},
                           required=["cert", "key"]),
            }),
        },
        "required": ["apiVersion", "kind", "source", "nodes"],
        "additionalProperties": False,
    }


SCHEMAS = {
    "common.schema.json": common,
    "virtualmachine.schema.json": virtual_machine,
    "cluster.schema.json": cluster,
    "snapshotpolicy.schema.json": snapshot_policy,
    "backuppolicy.schema.json": backup_policy,
    "image.schema.json": image,
    "syncwindow.schema.json": sync_window,
    "disruptionbudget.schema.json": disruption_budget,
    "controllerconfig.schema.json": controller_config,
}


def render() -> dict:
    return {name: json.dumps(build(), indent=2, ensure_ascii=False) + "\n"
            for name, build in SCHEMAS.items()}


def main() -> int:
    OUT.mkdir(exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
        print(f"wrote schemas/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
