#!/usr/bin/python3
"""Checks the JSON Schemas in schemas/ against the examples and the test corpus.

Run with Debian's interpreter (it has python3-jsonschema and python3-yaml):

    /usr/bin/python3 tests/schemas/test_schemas.py [-v]

It checks that
  1. every schemas/*.schema.json is a valid draft 2020-12 schema, and is what
     tests/schemas/gen_schemas.py generates;
  2. every document in examples/manifests/, examples/*.yaml, deploy/*.yaml, tests/corpus/good/
     and tests/corpus/config/ is valid against the schema of its kind (and has no duplicate keys);
     examples carry a `# yaml-language-server: $schema=...` line naming that schema;
  3. every tests/corpus/bad/ file has a well-formed header (case / expect / schema); the
     schemas reject each file marked `schema: invalid`, and accept each file marked
     `schema: n/a` that YAML can parse (else the header should say invalid);
  4. each bad file's expected line:column points at a node the message's field path names
     (a key, a value or a list item on that path, the key of the mapping that lacks a required
     field, or the document's first key), so miscounted positions are caught early;
  5. every enum value and every field name of the schemas is used by some valid document;
  6. the valid documents also keep the loader's cross-field and cross-document rules (names
     unique per kind, references and dependsOn targets exist, no dependsOn cycle, unique disk
     names and bootOrders, ipConfigs <= NICs, maxVcpus/maxMemory, CPU topology), each good
     file on its own and examples/manifests/ as one repository; and every example Image
     whose source is a file in the repository has that file's sha256.

It prints one line per failure and a summary, and exits non-zero on any failure.
"""

import argparse
import json
import pathlib
import re
import sys

import jsonschema
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas"
EXAMPLES = ROOT / "examples"
CORPUS = ROOT / "tests" / "corpus"
GENERATOR = pathlib.Path(__file__).resolve().parent / "gen_schemas.py"

KIND_SCHEMAS = {
    "VirtualMachine": "virtualmachine.schema.json",
    "Cluster": "cluster.schema.json",
    "SnapshotPolicy": "snapshotpolicy.schema.json",
    "BackupPolicy": "backuppolicy.schema.json",
    "Image": "image.schema.json",
    "SyncWindow": "syncwindow.schema.json",
    "DisruptionBudget": "disruptionbudget.schema.json",
    "ControllerConfig": "controllerconfig.schema.json",
}
MANIFEST_KINDS = [k for k in KIND_SCHEMAS if k != "ControllerConfig"]
HEADER_RE = {
    "case": re.compile(r"^# case: (\S.*)$"),
    "expect": re.compile(r"^# expect: (\d+)(?::(\d+))? (\S.*)$"),
    "schema": re.compile(r"^# schema: (invalid|n/a)$"),
}
BAD_NAME_RE = re.compile(r"^(\d{3})-[a-z0-9][a-z0-9-]*\.yaml$")
PATH_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:\.[A-Za-z][A-Za-z0-9_-]*|\[\d+\])*$")


class Report:
    def __init__(self, verbose: bool):
        self.verbose = verbose
        self.failures = []
        self.checks = 0

    def ok(self, what: str):
        self.checks += 1
        if self.verbose:
            print(f"ok    {what}")

    def fail(self, what: str, why: str):
        self.checks += 1
        self.failures.append(what)
        print(f"FAIL  {what}: {why}")


def rel(path: pathlib.Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


# ---------------------------------------------------------------------------------------------
# Schemas and validators

def load_schemas() -> dict:
    return {p.name: json.loads(p.read_text()) for p in sorted(SCHEMAS.glob("*.schema.json"))}


def make_validators(schemas: dict) -> dict:
    """One Draft 2020-12 validator per kind, resolving the relative $refs between the files
    through a registry (jsonschema >= 4.18) or a RefResolver store (older versions)."""
    cls = jsonschema.Draft202012Validator
    validators = {}
    try:
        from referencing import Registry, Resource  # jsonschema >= 4.18
        from referencing.jsonschema import DRAFT202012
        registry = Registry().with_resources(
            (s["$id"], Resource.from_contents(s, default_specification=DRAFT202012))
            for s in schemas.values())
        for kind, name in KIND_SCHEMAS.items():
            validators[kind] = cls(schemas[name], registry=registry)
    except ImportError:
        store = {s["$id"]: s for s in schemas.values()}
        for kind, name in KIND_SCHEMAS.items():
            schema = schemas[name]
            resolver = jsonschema.RefResolver(base_uri=schema["$id"], referrer=schema,
                                              store=store)
            validators[kind] = cls(schema, resolver=resolver)
    return validators


def schema_errors(validators: dict, doc) -> list:
    """The schema errors of one document, chosen by its kind (a document of no known kind
    is rejected by every schema, since each fixes `kind`)."""
    kind = doc.get("kind") if isinstance(doc, dict) else None
    if kind not in validators:
        return [f"no schema accepts kind {kind!r}"]
    out = []
    for err in sorted(validators[kind].iter_errors(doc), key=lambda e: list(e.absolute_path)):
        where = ".".join(str(p) for p in err.absolute_path) or "<document>"
        out.append(f"{where}: {err.message[:200]}")
    return out


# ---------------------------------------------------------------------------------------------
# YAML

class StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys in a mapping."""


def _construct_mapping(loader, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                f"found duplicate key {key!r}", key_node.start_mark)
        seen[key] = True
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_docs(path: pathlib.Path, strict: bool = True) -> list:
    loader = StrictLoader if strict else yaml.SafeLoader
    with open(path, "rb") as f:
        return [d for d in yaml.load_all(f, Loader=loader) if d is not None]


# ---------------------------------------------------------------------------------------------
# 1. schemas are valid and up to date

def check_schemas(report: Report, schemas: dict):
    expected = set(KIND_SCHEMAS.values()) | {"common.schema.json"}
    missing = expected - set(schemas)
    if missing:
        report.fail("schemas/", f"missing {sorted(missing)}")
    for name, schema in schemas.items():
        what = f"schemas/{name}"
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as e:
            report.fail(what, f"not a valid draft 2020-12 schema: {e.message}")
            continue
        if schema.get("$schema") != "https://json-schema.org/draft/2020-12/schema":
            report.fail(what, "$schema is not draft 2020-12")
        elif schema.get("$id") != f"https://gitvirt.dev/schemas/v1/{name}":
            report.fail(what, f"$id is {schema.get('$id')!r}")
        else:
            report.ok(what)
    if GENERATOR.exists():
        sys.dont_write_bytecode = True
        sys.path.insert(0, str(GENERATOR.parent))
        import gen_schemas  # noqa: E402
        for name, text in gen_schemas.render().items():
            path = SCHEMAS / name
            if not path.exists() or path.read_text() != text:
                report.fail(f"schemas/{name}", "differs from what tests/schemas/gen_schemas.py "
                                               "generates: run it and commit the result")


# ---------------------------------------------------------------------------------------------
# 2. valid documents

SCHEMA_LINE_RE = re.compile(r"^# yaml-language-server: \$schema=(\S+)$")


def check_valid_file(report: Report, validators: dict, path: pathlib.Path, used: list,
                     need_schema_line: bool, kinds) -> None:
    what = rel(path)
    try:
        docs = load_docs(path)
    except yaml.YAMLError as e:
        report.fail(what, f"YAML error: {e}")
        return
    if not docs:
        report.fail(what, "no documents")
        return
    ok = True
    for i, doc in enumerate(docs):
        kind = doc.get("kind") if isinstance(doc, dict) else None
        if kind not in kinds:
            report.fail(f"{what} #{i + 1}", f"kind {kind!r} is not one of {list(kinds)}")
            ok = False
            continue
        errors = schema_errors(validators, doc)
        if errors:
            ok = False
            for err in errors:
                report.fail(f"{what} #{i + 1} ({kind})", err)
        used.append(doc)
    if need_schema_line:
        first = path.read_text().splitlines()[0]
        m = SCHEMA_LINE_RE.match(first)
        doc_kinds = {d.get("kind") for d in docs if isinstance(d, dict)}
        if not m:
            report.fail(what, "first line is not '# yaml-language-server: $schema=...'")
            ok = False
        else:
            target = (path.parent / m.group(1)).resolve()
            wanted = {(SCHEMAS / KIND_SCHEMAS[k]).resolve() for k in doc_kinds if k in KIND_SCHEMAS}
            if not target.exists():
                report.fail(what, f"$schema {m.group(1)} does not exist")
                ok = False
            elif wanted != {target}:
                report.fail(what, f"$schema {m.group(1)} does not match kinds {sorted(doc_kinds)}")
                ok = False
    if ok:
        report.ok(f"{what} ({len(docs)} document{'s' if len(docs) != 1 else ''})")


def valid_files():
    """(path, needs a $schema line, allowed kinds) for every file that must validate."""
    out = []
    for p in sorted((EXAMPLES / "manifests").rglob("*")):
        if p.suffix in (".yaml", ".yml"):
            out.append((p, True, MANIFEST_KINDS))
    # The shipped controller configurations: examples/gitvirt.yaml, gitvirt-git.yaml and
    # deploy/gitvirt.example.yaml (tests/manifest/config_examples_test.cc loads the same
    # files through the config loader).
    for p in sorted(EXAMPLES.glob("*.yaml")) + sorted((ROOT / "deploy").glob("*.yaml")):
        out.append((p, True, ["ControllerConfig"]))
    for p in sorted((CORPUS / "good").rglob("*")):
        if p.suffix in (".yaml", ".yml"):
            out.append((p, False, MANIFEST_KINDS))
    for p in sorted((CORPUS / "config").rglob("*")):
        if p.suffix in (".yaml", ".yml"):
            out.append((p, False, ["ControllerConfig"]))
    return out


# ---------------------------------------------------------------------------------------------
# 3 and 4. bad documents

def parse_header(data: bytes):
    """Returns (case, line, column or None, substring, schema) or raises ValueError."""
    lines = data.split(b"\n")[:3]
    if len(lines) < 3:
        raise ValueError("fewer than 3 header lines")
    text = [ln.decode("utf-8", "replace").rstrip("\r") for ln in lines]
    got = {}
    for (key, rx), ln in zip(HEADER_RE.items(), text):
        m = rx.match(ln)
        if not m:
            raise ValueError(f"header line for '{key}' should match {rx.pattern!r}, got {ln!r}")
        got[key] = m
    e = got["expect"]
    return (got["case"].group(1), int(e.group(1)), int(e.group(2)) if e.group(2) else None,
            e.group(3), got["schema"].group(1))


def node_positions(node, path, out, key_mark=None):
    """Collects (path, kind, line, column) for a composed YAML node tree (1-based)."""
    line, col = node.start_mark.line + 1, node.start_mark.column + 1
    out.append((path, "value", line, col))
    if key_mark is not None:
        out.append((path, "key", key_mark.line + 1, key_mark.column + 1))
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            name = k.value if isinstance(k, yaml.ScalarNode) else "?"
            node_positions(v, f"{path}.{name}" if path else name, out, k.start_mark)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            node_positions(v, f"{path}[{i}]", out)


def parent_paths(path: str):
    parts = re.findall(r"[^.\[\]]+|\[\d+\]", path)
    out = []
    acc = ""
    for p in parts[:-1]:
        acc = acc + p if p.startswith("[") else (f"{acc}.{p}" if acc else p)
        out.append(acc)
    return out


def check_position(path: pathlib.Path, data: bytes, line: int, col, substring: str):
    """None when the expected position names a node of the path, else a reason."""
    substring = substring.split(": ", 1)[0]  # "spec.memroy: unknown field ...": the path
    if not PATH_RE.match(substring):
        return None  # not a field path (yaml, file, mapping, ...): nothing to check
    try:
        roots = list(yaml.compose_all(data.decode("utf-8"), Loader=yaml.SafeLoader))
    except (yaml.YAMLError, UnicodeDecodeError):
        return None
    candidates = []
    for root in roots:
        if root is None:
            continue
        pos = []
        node_positions(root, "", pos)
        doc_start = (root.start_mark.line + 1, root.start_mark.column + 1)
        for p, _, ln, cl in pos:
            if p == substring or p.startswith(substring + ".") or p.startswith(substring + "["):
                candidates.append((ln, cl))
        # a missing field: the key of the mapping that lacks it, or the document
        parents = parent_paths(substring)
        for p, kind, ln, cl in pos:
            if parents and p == parents[-1]:
                candidates.append((ln, cl))
        if not parents:
            candidates.append(doc_start)
    if not candidates or any(ln == line and (col is None or cl == col) for ln, cl in candidates):
        return None
    near = sorted(set(candidates))[:8]
    return (f"expect {line}:{col if col else '*'} is not a key, value or item of {substring} "
            f"(nor where it would be missing); candidates: {near}")


def check_bad(report: Report, validators: dict) -> int:
    files = sorted(p for p in (CORPUS / "bad").glob("*") if p.is_file())
    numbers = {}
    for path in files:
        what = rel(path)
        m = BAD_NAME_RE.match(path.name)
        if not m:
            report.fail(what, "name should be NNN-short-slug.yaml")
        else:
            if m.group(1) in numbers:
                report.fail(what, f"number {m.group(1)} also used by {numbers[m.group(1)]}")
            numbers[m.group(1)] = path.name
        data = path.read_bytes()
        try:
            _case, line, col, substring, mode = parse_header(data)
        except ValueError as e:
            report.fail(what, f"bad header: {e}")
            continue
        nlines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
        if line < 1 or line > max(nlines, 1):
            report.fail(what, f"expect line {line} is outside the file ({nlines} lines)")
            continue
        why = check_position(path, data, line, col, substring)
        if why:
            report.fail(what, why)
            continue
        try:
            docs = [d for d in yaml.load_all(data.decode("utf-8"), Loader=yaml.SafeLoader)
                    if d is not None]
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            if mode == "invalid":
                report.fail(what, f"marked 'schema: invalid' but YAML cannot parse it: {e}")
            else:
                report.ok(f"{what} (n/a, not parseable YAML)")
            continue
        errors = []
        for doc in docs:
            errors += schema_errors(validators, doc)
        if mode == "invalid" and not errors:
            report.fail(what, "marked 'schema: invalid' but the schemas accept it")
        elif mode == "n/a" and errors:
            report.fail(what, "marked 'schema: n/a' but the schemas reject it (mark it invalid, "
                              f"or fix the case): {errors[0]}")
        else:
            detail = errors[0] if errors else "accepted, as n/a expects"
            report.ok(f"{what} ({mode}: {detail})")
    return len(files)


# ---------------------------------------------------------------------------------------------
# 5. coverage of enums and field names

def resolve(ref: str, current: str, schemas: dict):
    """("file", subschema) for a "$ref" made in schemas[current]."""
    file, _, pointer = ref.partition("#")
    file = file or current
    target = schemas[file]
    for part in pointer.strip("/").split("/"):
        if part:
            target = target[part]
    return file, target


def walk_schema(node, current, schemas, enums, fields, seen):
    """Collects (field, enum value) pairs and field names reachable from a schema."""
    if isinstance(node, dict):
        if "$ref" in node:
            file, target = resolve(node["$ref"], current, schemas)
            key = (file, node["$ref"].partition("#")[2])
            if key not in seen:
                seen.add(key)
                walk_schema(target, file, schemas, enums, fields, seen)
        props = node.get("properties")
        if isinstance(props, dict):
            for name, sub in props.items():
                if sub is False:
                    continue
                fields.add(name)
                for v in enum_values(sub, current, schemas):
                    enums.add((name, v))
        for key, value in node.items():
            if key != "$defs":
                walk_schema(value, current, schemas, enums, fields, seen)
    elif isinstance(node, list):
        for item in node:
            walk_schema(item, current, schemas, enums, fields, seen)


def enum_values(sub, current, schemas):
    if isinstance(sub, dict):
        yield from sub.get("enum", [])
        if "$ref" in sub:
            file, target = resolve(sub["$ref"], current, schemas)
            yield from enum_values(target, file, schemas)


def walk_instance(node, keys, pairs):
    if isinstance(node, dict):
        for k, v in node.items():
            keys.add(k)
            if isinstance(v, (str, int, float, bool)):
                pairs.add((k, v))
            walk_instance(v, keys, pairs)
    elif isinstance(node, list):
        for item in node:
            walk_instance(item, keys, pairs)


def check_coverage(report: Report, schemas: dict, used_docs: list):
    keys, pairs = set(), set()
    for doc in used_docs:
        walk_instance(doc, keys, pairs)
    missing_fields, missing_enums = [], []
    for name in sorted(set(KIND_SCHEMAS.values())):
        enums, fields = set(), set()
        walk_schema(schemas[name], name, schemas, enums, fields, set())
        missing_fields += [f for f in sorted(fields) if f not in keys]
        missing_enums += [f"{k}: {v}" for k, v in sorted(enums) if (k, v) not in pairs]
    if missing_fields:
        report.fail("coverage", f"fields no valid document uses: {sorted(set(missing_fields))}")
    else:
        report.ok("coverage: every field is used by a valid document")
    if missing_enums:
        report.fail("coverage", f"enum values no valid document uses: {sorted(set(missing_enums))}")
    else:
        report.ok("coverage: every enum value is used by a valid document")


# ---------------------------------------------------------------------------------------------
# 6. the loader's semantic rules, for documents that must be valid

SIZE_UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
              "PiB": 1 << 50, "KB": 10 ** 3, "MB": 10 ** 6, "GB": 10 ** 9, "TB": 10 ** 12}


def parse_size(text: str) -> int:
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)([A-Za-z]+)", str(text))
    from fractions import Fraction
    return int(Fraction(m.group(1)) * SIZE_UNITS[m.group(2)])


def expand_pattern(pattern: str, index: int, values: dict) -> str:
    def one(m):
        expr = m.group(1).strip()
        if expr in values:
            return str(values[expr])
        if expr == "NN":
            return f"{index + 1:02d}"
        if not re.fullmatch(r"[-+*/%() 0-9index]+", expr):
            raise ValueError(f"bad expression {{{expr}}}")
        return str(eval(expr.replace("/", "//"), {"__builtins__": {}}, {"index": index}))
    return re.sub(r"\{([^{}]*)\}", one, pattern)


def vm_specs(docs):
    """(name, spec, where) for every VirtualMachine, including Cluster members."""
    out = []
    for d in docs:
        if d["kind"] == "VirtualMachine":
            out.append((d["metadata"]["name"], d["spec"], f"VirtualMachine/{d['metadata']['name']}"))
        elif d["kind"] == "Cluster":
            cname = d["metadata"]["name"]
            for g in d["spec"]["nodeGroups"]:
                pattern = g.get("namePattern", "{cluster}-{group}-{NN}")
                for i in range(g["count"]):
                    values = {"cluster": cname, "group": g["name"], "role": g.get("role", g["name"]),
                              "index": i}
                    name = expand_pattern(pattern, i, values)
                    out.append((name, g["template"], f"Cluster/{cname} group {g['name']}"))
    return out


def semantic_problems(docs) -> list:
    docs = [d for d in docs if isinstance(d, dict) and d.get("kind") in MANIFEST_KINDS]
    problems = []
    names = {}
    for d in docs:
        key = ("VirtualMachine" if d["kind"] == "VirtualMachine" else d["kind"], d["metadata"]["name"])
        if key in names:
            problems.append(f"duplicate {key[0]} name {key[1]}")
        names[key] = d
    images = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Image"}
    clusters = {d["metadata"]["name"] for d in docs if d["kind"] == "Cluster"}
    try:
        vms = vm_specs(docs)
    except ValueError as e:
        return problems + [str(e)]
    vm_names = [n for n, _, _ in vms]
    for n in {n for n in vm_names if vm_names.count(n) > 1}:
        problems.append(f"VirtualMachine name {n} is used twice (Cluster members included)")
    for n in vm_names:
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", n) or len(n) > 63:
            problems.append(f"VirtualMachine name {n!r} is not a valid name")
    graph = {}
    for name, spec, where in vms:
        def bad(msg):
            problems.append(f"{where}: {msg}")
        disks = spec.get("disks", [])
        dn = [x["name"] for x in disks]
        if len(dn) != len(set(dn)):
            bad("duplicate disk names")
        boots = [x["bootOrder"] for group in ("disks", "cdroms", "networks")
                 for x in spec.get(group, []) if "bootOrder" in x]
        if len(boots) != len(set(boots)):
            bad("duplicate bootOrder")
        for x in disks:
            ref = x.get("source", {}).get("image")
            if ref is not None and ref not in images:
                bad(f"disk {x['name']} uses unknown Image {ref}")
        for x in spec.get("cdroms", []):
            ref = x.get("image")
            if ref is not None and ref not in images:
                bad(f"cdrom {x['name']} uses unknown Image {ref}")
            elif ref is not None and images[ref]["spec"].get("format", "qcow2") != "iso":
                bad(f"cdrom {x['name']} uses Image {ref}, which is not an iso")
        ci = spec.get("cloudInit", {})
        if len(ci.get("ipConfigs", [])) > len(spec.get("networks", [])):
            bad("more ipConfigs than NICs")
        vcpus = spec.get("vcpus", 1)
        if spec.get("maxVcpus", vcpus) < vcpus:
            bad("maxVcpus < vcpus")
        if "maxMemory" in spec and parse_size(spec["maxMemory"]) < parse_size(spec["memory"]):
            bad("maxMemory < memory")
        if parse_size(spec["memory"]) % (1 << 20):
            bad("memory is not a whole number of MiB")
        topo = spec.get("cpu", {}).get("topology")
        if topo:
            product = topo.get("sockets", 1) * topo.get("cores", 1) * topo.get("threads", 1)
            if product != spec.get("maxVcpus", vcpus):
                bad(f"topology product {product} != maxVcpus (or vcpus)")
        edges = []
        for dep in spec.get("dependsOn", []):
            kind, _, target = dep.rpartition("/")
            kind = kind or "VirtualMachine"
            exists = {"VirtualMachine": target in vm_names, "Image": target in images,
                      "Cluster": target in clusters}.get(kind, (kind, target) in names)
            if not exists:
                bad(f"dependsOn {dep} does not exist")
            if kind == "VirtualMachine":
                edges.append(target)
        graph[name] = edges
    state = {}

    def visit(n, stack):
        state[n] = 1
        for m in graph.get(n, []):
            if state.get(m) == 1:
                problems.append(f"dependsOn cycle: {' -> '.join(stack + [n, m])}")
            elif m not in state:
                visit(m, stack + [n])
        state[n] = 2
    for n in graph:
        if n not in state:
            visit(n, [])
    return problems


def check_semantics(report: Report):
    import hashlib
    groups = [(rel(p), [p]) for p in sorted((CORPUS / "good").glob("*.y*ml"))]
    groups.append(("examples/manifests/", sorted((EXAMPLES / "manifests").rglob("*.y*ml"))))
    for what, paths in groups:
        try:
            docs = [d for p in paths for d in load_docs(p)]
            problems = semantic_problems(docs)
        except (yaml.YAMLError, KeyError, TypeError, AttributeError) as e:
            problems = [f"cannot check: {e!r}"]
        for pr in problems:
            report.fail(f"{what} (semantics)", pr)
        if not problems:
            report.ok(f"{what}: semantic rules")
    for p in sorted((EXAMPLES / "manifests").rglob("*.y*ml")):
        try:
            docs = load_docs(p)
        except yaml.YAMLError:
            continue  # reported by check_valid_file
        for d in docs:
            if not isinstance(d, dict) or d.get("kind") != "Image" or "spec" not in d:
                continue
            src = str(d["spec"].get("source", ""))
            if re.match(r"^[a-z][a-z0-9+.-]*://", src) and not src.startswith("file://"):
                report.fail(rel(p), f"example Image source {src} is not a file in the repository")
                continue
            file = pathlib.Path(src[len("file://"):] if src.startswith("file://") else src)
            file = file if file.is_absolute() else (p.parent / file)
            if not file.is_file():
                report.fail(rel(p), f"Image source {src} does not exist")
                continue
            digest = hashlib.sha256(file.read_bytes()).hexdigest()
            if digest != str(d["spec"].get("sha256", "")).lower():
                report.fail(rel(p), f"Image {d['metadata']['name']}: sha256 {digest} of {src} "
                                    f"!= {d['spec']['sha256']}")
            else:
                report.ok(f"{rel(p)}: Image {d['metadata']['name']} sha256 matches {src}")


# ---------------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-v", "--verbose", action="store_true", help="print passing checks too")
    args = ap.parse_args()
    report = Report(args.verbose)

    schemas = load_schemas()
    check_schemas(report, schemas)
    try:
        validators = make_validators(schemas)
    except (KeyError, jsonschema.SchemaError) as e:
        report.fail("schemas/", f"cannot build validators: {e}")
        print(f"\n0 passed, {len(report.failures)} failed")
        return 1

    used = []
    counts = {"examples": 0, "good": 0, "config": 0}
    for path, need_line, kinds in valid_files():
        check_valid_file(report, validators, path, used, need_line, kinds)
        part = rel(path).split("/")
        counts["examples" if part[0] in ("examples", "deploy") else part[2]] += 1
    n_bad = check_bad(report, validators)
    check_coverage(report, schemas, used)
    check_semantics(report)

    failed = len(report.failures)
    print(f"\nschemas: {len(schemas)}, examples: {counts['examples']} files, "
          f"good: {counts['good']} files, config: {counts['config']} files, "
          f"bad: {n_bad} files, valid documents: {len(used)}")
    print(f"{report.checks - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
