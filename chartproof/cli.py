"""``chartproof``: the toolchain and cluster commands, and the field workflows ``certify`` (a chart build
on a real GPU cluster) and ``reproduce`` (a customer's values on their node shape). The suites themselves
run through pytest / nox.

Every user error ends with one line on stderr and its own exit code (chartproof.errors); Ctrl-C
removes what was being created and exits 130.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from chartproof import __version__, certify, reproduce
from chartproof.clusters import PROVIDERS, ClusterRecord, provider_for
from chartproof.errors import INTERRUPTED_EXIT_CODE, ChartproofError, ClusterError, UsageError
from chartproof.toolchain import Toolchain


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        raise UsageError(f"{message} (see: {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="chartproof", description="Conformance tests for GPU ML Helm charts: toolchain and clusters.")
    parser.add_argument("--version", action="version", version=f"chartproof {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    tc = sub.add_parser("toolchain", help="the pinned binaries (helm, kubectl, control plane, kwok, kind)")
    tcs = tc.add_subparsers(dest="action", required=True, parser_class=_Parser)
    install = tcs.add_parser("install", help="obtain tools (all by default): cache, release download, or Go build")
    install.add_argument("tools", nargs="*")
    install.add_argument("--force", action="store_true", help="obtain again even when cached")
    tcs.add_parser("list", help="each pinned tool, its version, and where it resolves")
    path = tcs.add_parser("path", help="print the path of a tool, obtaining it first if needed")
    path.add_argument("tool")

    cl = sub.add_parser("cluster", help="test clusters")
    cls = cl.add_subparsers(dest="action", required=True, parser_class=_Parser)
    up = cls.add_parser("up", help="bring a cluster up and print its name and kubeconfig")
    up.add_argument("--provider", default="embedded", choices=sorted(PROVIDERS))
    up.add_argument("--name", default=None)
    up.add_argument("--nodes", default=None, help="PROFILE[:STATE]=COUNT,... or a shape name (default: default)")
    up.add_argument("--kube-context", default=None, help="for --provider existing")
    up.add_argument("--kubeconfig", default=None, help="for --provider existing")
    down = cls.add_parser("down", help="remove clusters Chartproof created")
    down.add_argument("names", nargs="*")
    down.add_argument("--leaked", action="store_true", help="remove every cluster whose run is gone")
    down.add_argument("--all", action="store_true", help="remove every cluster Chartproof created")
    cls.add_parser("list", help="clusters Chartproof created, and which of them leaked")
    kc = cls.add_parser("kubeconfig", help="print the kubeconfig path of a cluster")
    kc.add_argument("name")
    certify.add_parser(sub)
    reproduce.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        # certify / reproduce: what follows `--` goes to pytest as it is
        own, extra = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
        args = build_parser().parse_args(own)
        args.pytest_args = extra
        if args.command == "toolchain":
            return toolchain_command(args)
        if args.command == "certify":
            return certify.main(args, argv[1:])
        if args.command == "reproduce":
            return reproduce.main(args, argv[1:])
        return cluster_command(args)
    except ChartproofError as err:
        print(err.one_line(), file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("chartproof: interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT_CODE


def toolchain_command(args) -> int:
    toolchain = Toolchain()
    if args.action == "list":
        rows = [("TOOL", "VERSION", "SOURCE", "PATH"), *toolchain.table()]
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        for row in rows:
            print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3])
        return 0
    if args.action == "path":
        print(toolchain.path(args.tool))
        return 0
    started = time.monotonic()
    for resolved in toolchain.install(args.tools or None, force=args.force):
        print(f"{resolved.tool:<24} {resolved.version:<9} {resolved.source:<16} {resolved.path}")
    print(f"toolchain ready in {time.monotonic() - started:.1f}s", file=sys.stderr)
    return 0


def print_inventory(cluster) -> None:
    """The accelerators each node offers (allocatable), on stderr so stdout stays JSON."""
    rows = cluster.gpu_inventory()
    if not rows:
        return
    keys = list(rows[0])
    widths = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in keys}
    for row in [dict(zip(keys, keys, strict=True)), *rows]:
        print("  ".join(str(row[k]).ljust(widths[k]) for k in keys), file=sys.stderr)


def cluster_command(args) -> int:
    if args.action == "up":
        provider = provider_for(args.provider, kubeconfig=args.kubeconfig, context=args.kube_context)
        reason = provider.unavailable()
        if reason:
            from chartproof.errors import ProviderUnavailableError
            raise ProviderUnavailableError(reason)
        started = time.monotonic()
        cluster = provider.up(args.name, args.nodes, owner="cli")
        print(json.dumps({"name": cluster.name, "provider": cluster.provider, "kubeconfig": str(cluster.kubeconfig),
                          "context": cluster.context, "server_version": cluster.server_version(),
                          "nodes": len(cluster.nodes()), "seconds": round(time.monotonic() - started, 2)}, indent=2))
        print_inventory(cluster)
        if args.provider != "existing":
            print(f"remove it with: chartproof cluster down {cluster.name}", file=sys.stderr)
        return 0
    records = ClusterRecord.load_all()
    if args.action == "list":
        known = {r.name for r in records}
        print(f"{'NAME':<22} {'PROVIDER':<9} {'STATE':<9} {'SHAPE':<40} KUBECONFIG")
        for r in records:
            print(f"{r.name:<22} {r.provider:<9} {r.state:<9} {r.shape[:40]:<40} {r.kubeconfig}")
        embedded = provider_for("embedded")
        for name in embedded.known_names():
            if name not in known:
                print(f"{name:<22} {'embedded':<9} {'orphan':<9} {'(kwokctl cluster without a record)':<40} -")
        return 0
    if args.action == "kubeconfig":
        for r in records:
            if r.name == args.name:
                print(r.kubeconfig)
                return 0
        raise ClusterError(f"no cluster named {args.name}; see: chartproof cluster list")
    # down
    if not (args.names or args.leaked or args.all):
        raise UsageError("name the clusters to remove, or pass --leaked or --all")
    chosen = [r for r in records if args.all or r.name in args.names or (args.leaked and r.state == "leaked")]
    missing = set(args.names) - {r.name for r in records}
    embedded = provider_for("embedded")
    orphans = [n for n in embedded.known_names() if n not in {r.name for r in records}]
    for name in sorted(missing):
        if name in orphans:
            embedded.down(name)
            print(f"removed {name}")
        else:
            raise ClusterError(f"no cluster named {name}; see: chartproof cluster list")
    if args.all or args.leaked:
        for name in orphans:
            embedded.down(name)
            print(f"removed {name}")
    for record in chosen:
        provider_for(record.provider).down(record.name)
        print(f"removed {record.name}")
    return 0
