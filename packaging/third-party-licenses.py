#!/usr/bin/env python3
"""Writes OUT.gz: the crates linked into /usr/sbin/vrrpd, each with its
license expression, then the license files those crates ship, each text
once with the crates it comes from.

The crates are what cargo resolves for this host: the vrrpd package's
normal dependencies, transitively, without proc-macro crates (they run at
build time and are not in the binary) and without the workspace's own
crates (covered by debian/copyright's "Files: *").

Usage: third-party-licenses.py OUT.gz (from the workspace root)
"""

import gzip
import json
import os
import subprocess
import sys

LICENSE_PREFIXES = ("LICENSE", "LICENCE", "COPYING", "COPYRIGHT", "NOTICE", "UNLICENSE")


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    host = next(
        line.split(": ", 1)[1]
        for line in subprocess.check_output(["rustc", "-vV"], text=True).splitlines()
        if line.startswith("host: ")
    )
    meta = json.loads(
        subprocess.check_output(
            ["cargo", "metadata", "--format-version", "1", "--locked", "--filter-platform", host],
            text=True,
        )
    )
    packages = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    root = next(p["id"] for p in meta["packages"] if p["name"] == "vrrpd" and p["source"] is None)

    def is_proc_macro(pkg):
        return any("proc-macro" in t["kind"] for t in pkg["targets"])

    seen, todo = set(), [root]
    while todo:
        node = nodes[todo.pop()]
        for dep in node["deps"]:
            normal = any(k["kind"] is None for k in dep["dep_kinds"])
            if normal and dep["pkg"] not in seen and not is_proc_macro(packages[dep["pkg"]]):
                seen.add(dep["pkg"])
                todo.append(dep["pkg"])
    crates = sorted(
        (packages[i] for i in seen if packages[i]["source"] is not None),
        key=lambda p: (p["name"], p["version"]),
    )

    texts = {}  # license text -> [(crate, file)]
    lines = [
        "/usr/sbin/vrrpd is statically linked with these Rust crates",
        "(name version: license), from crates.io:",
        "",
    ]
    for pkg in crates:
        label = f"{pkg['name']} {pkg['version']}"
        lines.append(f"  {label}: {pkg.get('license') or 'see its license file'}")
        directory = os.path.dirname(pkg["manifest_path"])
        files = sorted(
            f for f in os.listdir(directory)
            if f.upper().startswith(LICENSE_PREFIXES) and os.path.isfile(os.path.join(directory, f))
        )
        if pkg.get("license_file"):
            extra = os.path.relpath(os.path.join(directory, pkg["license_file"]), directory)
            if extra not in files and os.path.isfile(os.path.join(directory, extra)):
                files.append(extra)
        for name in files:
            with open(os.path.join(directory, name), encoding="utf-8", errors="replace") as f:
                texts.setdefault(f.read().strip(), []).append(f"{label} ({name})")
    lines.append("")
    for text, sources in sorted(texts.items(), key=lambda kv: kv[1][0]):
        lines.append("=" * 72)
        lines.append("From: " + ", ".join(sources))
        lines.append("=" * 72)
        lines.append(text)
        lines.append("")
    data = "\n".join(lines).encode("utf-8")
    # No name and no time in the header: the same crates give the same bytes.
    with open(sys.argv[1], "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as out:
            out.write(data)
    print(f"{sys.argv[1]}: {len(crates)} crates, {len(texts)} distinct license texts")


if __name__ == "__main__":
    main()
