"""``chartproof certify``: certify a chart build on a real GPU cluster before shipping it.

1. Preflight, read-only (``chartproof.preflight``): versions, accelerators and their device plugins,
   storage classes and CRDs the values need, whether the Adaptive pools' GPUs fit, HyperPod node health,
   and the RBAC of the identity running it. Each check is a row of the report, with its evidence.
2. Unless ``--read-only``: a smoke certification. The live suites of the charts under test run against
   the cluster (``--cluster existing``), ``real_cluster`` tests included, each install in a namespace of its
   own that Chartproof creates and labels, plus one GPU smoke pod per GPU instance type; then everything is
   uninstalled. Nothing else on the cluster is changed; the HyperPod chart's ``kube-system`` install needs
   ``--allow-kube-system``.

Exit codes: 0 certified (every check passed, every test passed or skipped), 1 a check or a test failed,
and the documented codes of ``chartproof.errors`` for bad input.
"""

from __future__ import annotations

import sys
from pathlib import Path

from chartproof.clusters.existing import ExistingProvider, detect_simulated
from chartproof.field import ChartInputs, FieldRun, interrupted, print_checks, pulling_catalog
from chartproof.run import RunOptions
from chartproof.toolchain import Toolchain

SUITES = {"adaptive": "suites/adaptive", "monitoring": "suites/monitoring", "hyperpod": "suites/hyperpod"}
GPU_SMOKE = "suites/cluster/test_gpu_smoke.py"


def add_parser(sub) -> None:
    p = sub.add_parser("certify", help="preflight (read-only) and smoke certification of a chart build on a real cluster")
    p.add_argument("--kube-context", default=None, help="the cluster's context (default: the kubeconfig's current one)")
    p.add_argument("--kubeconfig", default=None, help="default: $KUBECONFIG, else ~/.kube/config")
    p.add_argument("--chart", action="append", default=[], metavar="NAME=REF",
                   help="the build to certify: a directory, a .tgz or oci://REF@VERSION (repeatable)")
    p.add_argument("--values", action="append", default=[], metavar="CHART=FILE", help="values to certify with (repeatable)")
    p.add_argument("--read-only", action="store_true", help="stop after the preflight: change nothing on the cluster")
    p.add_argument("--allow-kube-system", action="store_true", help="let the HyperPod smoke install into kube-system")
    p.add_argument("--report-dir", default=None, help="default: reports/")


def main(args, argv: list[str]) -> int:
    from chartproof import preflight

    toolchain = Toolchain()
    provider = ExistingProvider(toolchain, kubeconfig=Path(args.kubeconfig) if args.kubeconfig else None,
                                context=args.kube_context)
    run = FieldRun("certify", argv, Path(args.report_dir) if args.report_dir else None)
    charts = RunOptions.parse_list(args.chart, "--chart")
    values = RunOptions.parse_list(args.values, "--values")
    catalog = pulling_catalog(dict(charts), toolchain, run.directory / "work")
    inputs = ChartInputs.load(catalog, [name for name, _ in charts] or list(SUITES), values)
    cluster = provider.up(None, None, owner="certify")  # a wrong context or an unreachable server: exit here
    try:
        facts = preflight.gather(cluster.kubectl)
        facts.simulated = detect_simulated(cluster)
        checks = preflight.run_checks(facts, charts=inputs.metadata, values=inputs.merged,
                                      helm_version=toolchain.pin("helm").version)
        rows = [c.as_dict() for c in checks]
        run.field["preflight"] = rows
        run.field["cluster"] = {"context": cluster.name, "kubernetes": facts.server_version,
                                "nodes": len(facts.nodes), "simulated": facts.simulated}
        print_checks(rows)
        preflight_failed = [c for c in checks if c.status == "fail"]
        if args.read_only or preflight_failed:
            report = run.write_report(cluster=cluster.describe())
            if preflight_failed and not args.read_only:
                print(f"chartproof: preflight failed ({len(preflight_failed)} check(s)); nothing was installed",
                      file=sys.stderr)
            print(f"chartproof report: {report}", file=sys.stderr)
            return 1 if preflight_failed else 0
        suites = [SUITES[name] for name in inputs.names if name in SUITES] + [GPU_SMOKE]
        extra = list(args.pytest_args)
        pytest_args = ["-m", "cluster", "--chartproof-cluster", "existing", "--chartproof-kubeconfig",
                       str(cluster.kubeconfig), "--chartproof-kube-context", cluster.name, *inputs.pytest_args(),
                       *(["--chartproof-allow-kube-system"] if args.allow_kube_system else []), *extra]
        code = run.run_suites(suites, pytest_args)
        print(f"chartproof report: {run.directory / 'report.md'}", file=sys.stderr)
        return 0 if code in (0, 5) else 1
    except KeyboardInterrupt:
        return interrupted()

