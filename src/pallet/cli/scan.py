"""``pallet scan``: inventory, SBOM and vulnerabilities of images, nothing run (see docs/scan.md).

Exit codes as atomic's scan and podman: 0 clean, 3 when a finding at or above ``--fail-on``
exists, 125 when the scan itself failed.
"""

from __future__ import annotations

VERBS = ("scan",)
SCAN_EXIT = {"default": 125}
FORMATS = ("table", "json", "cyclonedx", "spdx", "sarif")


def register(sub, only: str | None = None) -> None:
    if only not in (None, "scan"):
        return
    p = sub.add_parser("scan", help="scan images without running them (inventory, SBOM, vulnerabilities)",
                       description="Scan images read-only, nothing from them executed: the OS, the packages "
                                   "(dpkg, apk, rpm, Python, npm, Go modules, Java archives) with the layer that brought each, the vulnerabilities "
                                   "of the offline OSV database, and SBOMs. A TARGET is an image in the store or a "
                                   "transport reference (docker://, oci:, oci-archive:, docker-archive:, dir:), "
                                   "scanned without being added to the store. 'pallet scan db import PATH...' loads "
                                   "OSV records (JSON files, directories, OSV's zips); 'pallet scan db status' says "
                                   "what is loaded. Exit: 0 clean, 3 a finding at or above --fail-on, 125 failure.")
    p.usage_exit = 125
    p.set_defaults(exit_map=SCAN_EXIT, usage_exit=125, func=cmd_scan)
    p.add_argument("targets", nargs="*", metavar="TARGET", help="images, transport references, or 'db import|status'")
    p.add_argument("--all", "-a", action="store_true", help="scan every image and container in the store")
    p.add_argument("--images", action="store_true", help="scan every image in the store")
    p.add_argument("--containers", action="store_true",
                   help="scan every container in the store (working containers and run containers)")
    p.add_argument("--format", default="table", choices=FORMATS, help="table (default), json, cyclonedx, spdx or sarif")
    p.add_argument("--output", "-o", metavar="FILE", help="write the report to FILE instead of stdout")
    p.add_argument("--fail-on", metavar="SEV", choices=("low", "medium", "high", "critical"),
                   help="exit 3 when a finding at or above SEV exists (low, medium, high, critical)")
    p.add_argument("--results-dir", metavar="DIR",
                   help="where results are kept: DIR/SCANNER/TIMESTAMP/IMAGE-ID/ (default GRAPHROOT/scan-results)")
    # dest: the global --policy (before the verb) is the trust policy of pulls
    p.add_argument("--policy", dest="scan_policy", metavar="FILE",
                   help="a scan policy file (YAML or JSON): rules disabled, severities changed, paths allowed "
                        "(the trust policy is the global 'pallet --policy FILE scan')")
    p.add_argument("--scanner", default="builtin", metavar="NAME",
                   help="builtin (default), openscap, or a scanner image declared in /etc/pallet/scanners.d; "
                        "--list lists them")
    p.add_argument("--scan-type", metavar="TYPE", help="a scanner image's scan type (default: its default_scan)")
    p.add_argument("--list", action="store_true", help="list the scanners and their scan types")
    p.add_argument("--profile", metavar="ID", help="openscap: the XCCDF profile (default: the content's standard profile)")
    p.add_argument("--content", metavar="FILE",
                   help="openscap: the SCAP data stream or XCCDF file (default: picked from the image's os-release)")
    p.add_argument("--oval", metavar="FILE", help="openscap: evaluate this OVAL definitions file")
    from .common import add_registry_flags

    add_registry_flags(p)
    p.add_argument("--authfile", metavar="PATH", help="registry credentials file")


def _warn(path: str, message: str) -> None:
    import sys

    print(f"warning: {path}: {message}", file=sys.stderr)


def _db(args, store) -> int:
    from ..errors import UsageError
    from ..scan import vulndb

    sub = args.targets[1:]
    if sub[:1] == ["import"] and len(sub) > 1:
        n = vulndb.import_records(store, sub[1:], _warn)
        print(f"imported {n} records into {vulndb.db_path(store)}")
        return 0
    if sub == ["status"]:
        import time

        st = vulndb.status(store)
        if st is None:
            print("no vulnerability database (pallet scan db import PATH)")
            return 0
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(st["imported"])) if st["imported"] else "unknown"
        age = int((time.time() - st["imported"]) // 86400) if st["imported"] else None
        print(f"database: {st['path']}")
        print(f"records: {st['records']}")
        for eco, n in st["ecosystems"].items():
            print(f"  {eco}: {n}")
        print(f"imported: {when}" + (f" ({age} days ago)" if age is not None else ""))
        print(f"newest record modified: {st['newest_modified'] or 'unknown'}")
        return 0
    raise UsageError("usage: pallet scan db import PATH... | pallet scan db status")


def _list() -> str:
    import shutil

    from ..scan import plugins

    rows = [("NAME", "IMAGE", "SCAN TYPES", "DEFAULT SCAN"),
            ("builtin", "-", "inventory,sbom,vulnerabilities,policy", "all"),
            ("openscap", "-" if shutil.which("oscap") else "- (oscap not installed: openscap-scanner)", "xccdf,oval",
             "xccdf")]
    for name, s in sorted(plugins.declared(_warn).items()):
        rows.append((name, s["image"], ",".join(x["name"] for x in s["scans"]), s["default_scan"]))
    from ..scan.report import columns

    return "\n".join(columns(rows))


def cmd_scan(args) -> int:
    import os
    import time

    from .. import _fs
    from .._std import json
    from ..errors import UsageError
    from ..scan import report, results_dir, scan_one, scan_openscap
    from ..transports.copy import CopyOptions, Progress
    from . import common
    from .store import open_store

    if args.list:
        print(_list())
        return 0
    if args.targets[:1] == ["db"]:
        return _db(args, open_store(args))
    plugin = args.scanner not in ("builtin", "openscap")
    if plugin:
        from ..scan import plugins

        plugins.find(args.scanner)  # a scanner that is not declared: said before anything is done
        if args.format not in ("table", "json"):
            raise UsageError(f"--format {args.format}: a scanner image's results are its files (table or json)")
    elif args.scan_type:
        raise UsageError("--scan-type is an option of scanner images")
    if args.scanner != "builtin" and args.scan_policy:
        raise UsageError("--policy is an option of the builtin scanner")
    if args.scanner != "openscap" and (args.profile or args.content or args.oval):
        raise UsageError("--profile, --content and --oval are options of --scanner openscap")
    if args.scanner == "openscap" and args.format not in ("table", "json", "sarif"):
        raise UsageError(f"--format {args.format}: --scanner openscap writes table, json or sarif (its ARF and HTML "
                         "reports are in the results directory)")
    store = open_store(args)
    if args.all or args.images or args.containers:
        if args.targets:
            raise UsageError("--all, --images and --containers take no TARGET")
        targets = []
        if args.all or args.images:
            targets += [(i, "image") for i in sorted(rec["id"] for rec in store.images())]
        if args.all or args.containers:
            targets += [(i, "container") for i in sorted(c["id"] for c in store.containers())]
        if not targets:
            print("nothing to scan in the store")
            return 0
    elif not args.targets:
        raise UsageError("scan needs a TARGET (an image, a container, a transport reference), --all, --images "
                         "or --containers")
    else:
        targets = [(t, None) for t in args.targets]
    ctx = common.context(args)
    base = args.results_dir or os.path.join(store.graphroot, "scan-results")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    runs: dict = {}

    def run(scanner: str) -> str:  # made when the first result is written, then reused
        from ..scan import run_dir

        if scanner not in runs:
            runs[scanner] = run_dir(base, scanner, stamp)
        return runs[scanner]

    opts = CopyOptions(progress=Progress(None))
    if plugin:
        from ..scan import scan_with_image

        def pull_fn(image: str) -> str:
            from ..images.pull import pull

            return pull(store, image, ctx, opts)[0]["id"]

        def outdir() -> str:
            return run(args.scanner)

        results = scan_with_image(store, args.scanner, args.scan_type, targets, ctx, opts, outdir, pull_fn, _warn)
        return _emit(args, results, args.scanner)
    if args.scanner == "openscap":
        results = []
        for t, kind in targets:
            r = scan_openscap(store, t, ctx, opts, lambda i: results_dir(run("openscap"), i),
                              profile=args.profile, content=args.content, oval=args.oval, kind=kind)
            for w in r["warnings"]:
                _warn(w["file"], w["message"])
            _fs.write_atomic(os.path.join(r["results_dir"], "scan.json"),
                             json.dumps(r, indent=2, sort_keys=True).encode() + b"\n", 0o644)
            results.append(r)
        return _emit(args, results, "openscap")
    pol = None
    if args.scan_policy:
        from ..scan import policy

        pol = policy.load(args.scan_policy)
        args.fail_on = args.fail_on or pol.fail_on
    results = [scan_one(store, t, ctx, opts, _warn, pol, kind) for t, kind in targets]
    for r in results:
        d = results_dir(run("builtin"), r["image"]["id"])
        _fs.write_atomic(os.path.join(d, "scan.json"), json.dumps(r, indent=2, sort_keys=True).encode() + b"\n", 0o644)
        _fs.write_atomic(os.path.join(d, "cyclonedx.json"),
                         json.dumps(report.cyclonedx(r), indent=2, sort_keys=True).encode() + b"\n", 0o644)
        _fs.write_atomic(os.path.join(d, "spdx.json"),
                         json.dumps(report.spdx(r), indent=2, sort_keys=True).encode() + b"\n", 0o644)
        _fs.write_atomic(os.path.join(d, "sarif.json"),
                         json.dumps(report.sarif([r]), indent=2, sort_keys=True).encode() + b"\n", 0o644)
    return _emit(args, results, "builtin")


def _emit(args, results: list[dict], scanner: str) -> int:
    from .. import _fs
    from .._std import json
    from ..scan import SEVERITIES, report, worst

    if args.format == "table":
        text = report.table(results)
    elif args.format == "json":
        text = json.dumps(report.to_json(results, scanner), indent=2, sort_keys=True) + "\n"
    elif args.format == "sarif":
        text = json.dumps(report.sarif(results), indent=2, sort_keys=True) + "\n"
    else:
        make = report.cyclonedx if args.format == "cyclonedx" else report.spdx
        docs = [make(r) for r in results]
        text = json.dumps(docs[0] if len(docs) == 1 else docs, indent=2, sort_keys=True) + "\n"
    if args.output:
        _fs.write_output(args.output, text.encode(), 0o644, what="--output")
    else:
        import sys

        sys.stdout.write(text)
    if args.fail_on and max(worst(r) for r in results) >= SEVERITIES.index(args.fail_on):
        return 3
    return 0


def gate(store, image_id: str, names: list[str], policy_file: str, ctx, say) -> None:
    """``build --scan[=POLICY]`` and ``builder commit --scan``: scan the image just made
    (untagged) with the built-in scanner and ``policy_file`` (""/None: the default policy,
    failing on high); tag it with ``names`` when the policy passes, else report the findings
    on stderr, remove the image (unless something else already named it) and raise."""
    import sys

    from ..errors import ScanError
    from ..scan import SEVERITIES, policy, report, scan_one, worst
    from ..transports.copy import CopyOptions, Progress

    pol = policy.load(policy_file) if policy_file else None
    fail_on = (pol.fail_on if pol else None) or "high"
    r = scan_one(store, image_id, ctx, CopyOptions(progress=Progress(None)), _warn, pol, "image")
    if worst(r) >= SEVERITIES.index(fail_on):
        sys.stderr.write(report.table([r]))
        bad = [f for f in (r.get("vulnerabilities") or []) + r["policy"]
               if f["severity"] in SEVERITIES and max(SEVERITIES.index(f["severity"]), 1) >= SEVERITIES.index(fail_on)]
        try:
            if not store.image(image_id).get("names"):
                store.remove_image(image_id)
        except Exception:  # noqa: BLE001 - the refusal is the error to report
            pass
        raise ScanError(f"the scan refused image {image_id[:12]}: {len(bad)} finding(s) at or above {fail_on}"
                        + (f" (policy {policy_file})" if policy_file else "") + ": nothing tagged")
    if names:
        rec = store.tag(image_id, names)
        for n in rec["names"]:
            say(f"Successfully tagged {n}")
