#!/usr/bin/env python3
"""The dependency rules of docs/architecture.md, checked on the source tree.

The compiler already enforces that a folder sees only the headers of the libraries it links
(each folder is its own include root). This checks what it cannot:

  1. The folders link each other in the documented direction, with no circle:
     core <- manifest, source, hypervisor, store <- engine <- cli, and core <- api <- cli.
  2. core links nothing of gitvirt and, outside the standard library, only its JSON library;
     api links only core (it reads the status through core/status.h, never the engine or the
     writable journal).
  3. No include circle between the files of the tree: a file's "module" is its stem (x.h and
     x.cc are one module), and no module reaches itself through the headers it includes.
  4. Every #include "gitvirt/F/..." names a folder F the including folder links (directly or
     through a PUBLIC dependency), so a header moved between folders cannot go unnoticed.

Exit 0 when every rule holds; otherwise each violation on its own line and exit 1.
"""
import os
import re
import sys

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", ".."))
CONTROLLER = os.path.join(ROOT, "controller")
FOLDERS = ["core", "manifest", "source", "hypervisor", "store", "engine", "api", "cli"]
# What each folder may link (the documented direction); anything else is a violation.
ALLOWED = {
    "core": set(),
    "manifest": {"core"},
    "source": {"core"},
    "hypervisor": {"core"},
    "store": {"core"},
    "engine": {"core", "manifest", "source", "hypervisor", "store"},
    "api": {"core"},
    "cli": {"core", "manifest", "source", "hypervisor", "store", "engine", "api"},
}
CORE_EXTERNAL = {"nlohmann_json::nlohmann_json"}

problems = []


def link_libraries(folder):
    """(public, private) sets of what controller/<folder>/CMakeLists.txt links."""
    text = open(os.path.join(CONTROLLER, folder, "CMakeLists.txt")).read()
    text = re.sub(r"#[^\n]*", "", text)
    public, private = set(), set()
    for m in re.finditer(r"target_link_libraries\(\s*gitvirt_%s\b(.*?)\)" % folder, text, re.S):
        mode = public
        for word in m.group(1).split():
            if word in ("PUBLIC", "INTERFACE"):
                mode = public
            elif word == "PRIVATE":
                mode = private
            else:
                mode.add(word)
    return public, private


links = {f: link_libraries(f) for f in FOLDERS}


def gitvirt_deps(names):
    return {n[len("gitvirt_"):] for n in names if n.startswith("gitvirt_")}


# 1 and 2: the folder graph.
for f in FOLDERS:
    public, private = links[f]
    deps = gitvirt_deps(public | private)
    for d in sorted(deps - ALLOWED[f]):
        problems.append(f"controller/{f} links gitvirt_{d}, against the direction (allowed: {sorted(ALLOWED[f]) or 'none'})")
core_public, core_private = links["core"]
for name in sorted((core_public | core_private) - CORE_EXTERNAL):
    problems.append(f"controller/core links {name}: core links the standard library and its JSON library only")


def visible(folder, seen=None):
    """Folders whose headers `folder` sees: itself, what it links, and their PUBLIC deps."""
    out = {folder}
    public, private = links[folder]
    for d in gitvirt_deps(public | private):
        out |= visible_public(d)
    return out


def visible_public(folder):
    out = {folder}
    public, _ = links[folder]
    for d in gitvirt_deps(public):
        out |= visible_public(d)
    return out


# 3 and 4: the files.
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
modules = {}  # module id -> set of module ids it includes
header_module = {}  # include spelling -> module id
files = []
for f in FOLDERS:
    for dirpath, _, names in os.walk(os.path.join(CONTROLLER, f)):
        for name in names:
            if not name.endswith((".h", ".cc")):
                continue
            path = os.path.join(dirpath, name)
            stem = os.path.splitext(name)[0]
            module = f"{f}/{stem}"
            files.append((f, path, module))
            rel = os.path.relpath(path, os.path.join(CONTROLLER, f))
            if rel.startswith("include" + os.sep):
                header_module[os.path.relpath(path, os.path.join(CONTROLLER, f, "include"))] = module
            elif name.endswith(".h"):
                header_module[(f, name)] = module  # a private header, included by its bare name

for f, path, module in files:
    deps = modules.setdefault(module, set())
    for inc in INCLUDE.findall(open(path, encoding="utf-8", errors="replace").read()):
        if inc.startswith("gitvirt/"):
            target = inc.split("/")[1]
            if target not in visible(f):
                problems.append(f"{os.path.relpath(path, ROOT)} includes {inc}, but controller/{f} does not link gitvirt_{target}")
            dep = header_module.get(inc)
        else:
            dep = header_module.get((f, os.path.basename(inc)))
        if dep and dep != module:
            deps.add(dep)

# Tarjan's strongly connected components: every component of more than one module is a circle.
index, low, stack, on_stack, counter = {}, {}, [], set(), [0]
sys.setrecursionlimit(10000)


def strongconnect(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on_stack.add(v)
    for w in sorted(modules.get(v, ())):
        if w not in index:
            strongconnect(w)
            low[v] = min(low[v], low[w])
        elif w in on_stack:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        component = []
        while True:
            w = stack.pop()
            on_stack.discard(w)
            component.append(w)
            if w == v:
                break
        if len(component) > 1:
            problems.append("include circle: " + " -> ".join(sorted(component)))


for v in sorted(modules):
    if v not in index:
        strongconnect(v)

for p in problems:
    print(p)
print(f"layering: {len(FOLDERS)} folders, {len(modules)} modules, {len(problems)} problem(s)")
sys.exit(1 if problems else 0)
