"""``chartproof reproduce VALUES.yaml --chart NAME[=REF] [--nodes SHAPE]``: a customer's configuration,
reproduced on an embedded cluster of their node shape, with a report and a bundle to share.

1. The values file is validated: YAML errors with line and column, schema errors with the key path, keys
   the chart does not know (helm ignores them silently) as warnings with the closest known key.
2. Every secret in it is replaced by a placeholder of the same length and shape; only that copy is used
   from here on (render, install, reports, bundle), so no customer secret can leak.
3. The preflight runs against the node shape (``--nodes``, default: the shape the values imply): do the
   GPUs per replica divide the nodes' GPUs, does every pool fit at its minimum.
4. The suites run the customer's configuration: render and lint, the README promises their values touch,
   install on an embedded cluster of that shape, ready, uninstall.
5. The report (``report.md``, ``report.html``, ``summary.json``, ``junit.xml``) and ``bundle/``: the redacted
   values, the chart build as tested (with its digest), the node shape, the tool versions, the verdicts and
   the command that reruns it: ``chartproof reproduce --bundle DIR`` gives the same verdicts anywhere.
"""

from __future__ import annotations

import gzip
import json
import math
import sys
import tarfile
from pathlib import Path

from chartproof import __version__, yamlio
from chartproof.charts import DEFAULT_CHARTS, chart_metadata, sha256_file
from chartproof.clusters.nodes import load_profiles, parse_shape
from chartproof.errors import BadValuesError, ChartNotFoundError, UsageError
from chartproof.field import FieldRun, interrupted, print_checks, pulling_catalog
from chartproof.helm import merge_values, set_args
from chartproof.preflight import gpu_workloads
from chartproof.redaction import REDACTOR
from chartproof.toolchain import Toolchain

INSTANCE_TYPE = "node.kubernetes.io/instance-type"
GPU = "nvidia.com/gpu"
BUNDLE_TOOLS = ("helm", "kubectl", "kube-apiserver", "kwok")


def add_parser(sub) -> None:
    p = sub.add_parser("reproduce", help="a customer's values on their node shape: validate, preflight, install, "
                                         "report and a shareable bundle")
    p.add_argument("values", nargs="?", help="the customer's values.yaml")
    p.add_argument("--chart", default=None, metavar="NAME[=REF]",
                   help="adaptive, monitoring or hyperpod, optionally =their build (directory, .tgz, oci://REF@VERSION)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="set_values",
                   help="a value on top of the file, as helm --set (dotted keys; repeatable)")
    p.add_argument("--nodes", default=None, help="node shape PROFILE[:STATE]=COUNT,... (default: what the values imply)")
    p.add_argument("--bundle", default=None, metavar="DIR", help="rerun a bundle written by an earlier reproduce")
    p.add_argument("--report-dir", default=None, help="default: reports/")


# -- the node shape the values imply -------------------------------------------------------------------
def implied_shape(chart: str, values: dict) -> str:
    """GPU nodes of the instance type the node selectors name, else the smallest GPU profile whose GPU
    count the GPUs per replica divide; as many as the workloads need at their minimum; plus CPU nodes."""
    if chart == "hyperpod":
        return "ml.p5.48xlarge=1,ml.trn1.32xlarge=1,cpu=1"
    profiles = load_profiles()
    gpu_profiles = sorted((int(p.capacity.get(GPU, 0)), p.name) for p in profiles.values() if int(p.capacity.get(GPU, 0)))
    demand: dict[str, int] = {}  # profile -> GPUs wanted at the workloads' minimum
    for work in gpu_workloads(values) if chart == "adaptive" else []:
        wanted = (work.pod.get("nodeSelector") or {}).get(INSTANCE_TYPE)
        name = wanted if wanted in profiles else next(
            (n for gpus, n in gpu_profiles if gpus >= work.gpus and gpus % work.gpus == 0), None)
        if name is None or not work.min_replicas:
            continue  # nothing fits: the preflight says so
        demand[name] = demand.get(name, 0) + work.min_replicas * work.gpus
    # The GPUs per replica divide each chosen node's GPUs, so replicas of one type pack without waste.
    counts = {name: math.ceil(gpus / int(profiles[name].capacity.get(GPU, 1))) for name, gpus in demand.items()}
    counts["cpu"] = 2 if chart == "monitoring" else 1
    return ",".join(f"{name}={count}" for name, count in counts.items())


# -- the bundle ----------------------------------------------------------------------------------------
def package_chart(directory: Path, dest: Path) -> Path:
    """The chart as tested, as a .tgz (one top-level directory named after the chart)."""
    meta = chart_metadata(directory)
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"{meta.get('name', directory.name)}-{meta.get('version', '0')}.tgz"

    def clean(info: tarfile.TarInfo) -> tarfile.TarInfo:  # the same chart gives the same bytes, hence digest
        info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
        info.mode = 0o755 if info.isdir() else 0o644
        return info

    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w") as tar:
        tar.add(directory, arcname=str(meta.get("name", directory.name)), filter=clean)
    return path


def read_bundle(directory: Path) -> dict:
    meta = directory / "bundle.json"
    try:
        bundle = json.loads(meta.read_text())
    except OSError:
        raise UsageError(f"{directory} is not a reproduce bundle (no bundle.json)") from None
    except ValueError as exc:
        raise UsageError(f"{meta} is not valid JSON: {exc}") from None
    package = directory / bundle["chart"]["file"]
    if not package.is_file():
        raise ChartNotFoundError(f"bundle {directory}: chart package {bundle['chart']['file']} is missing")
    if sha256_file(package).removeprefix("sha256:") != bundle["chart"]["sha256"]:
        raise ChartNotFoundError(f"bundle {directory}: {bundle['chart']['file']} does not match its recorded digest")
    return bundle


# -- the command ---------------------------------------------------------------------------------------
def main(args, argv: list[str]) -> int:
    from chartproof import preflight, values_check

    previous = None
    if args.bundle:
        if args.values or args.chart:
            raise UsageError("--bundle reruns a bundle as it is: give no values file or --chart with it")
        bundle_dir = Path(args.bundle)
        previous = read_bundle(bundle_dir)
        chart, ref = previous["chart"]["name"], str(bundle_dir / previous["chart"]["file"])
        values_path, nodes = bundle_dir / "values.yaml", args.nodes or previous["nodes"]
    else:
        if not args.values:
            raise UsageError("name the customer's values file: chartproof reproduce VALUES.yaml --chart NAME")
        if not args.chart:
            raise UsageError("name the chart: --chart adaptive (or --chart adaptive=./their-build.tgz)")
        chart, _, ref = args.chart.partition("=")
        chart, ref = chart.strip(), ref.strip() or None
        if chart not in DEFAULT_CHARTS:
            raise ChartNotFoundError(f"no chart named '{chart}'; known: {', '.join(sorted(DEFAULT_CHARTS))}")
        values_path, nodes = Path(args.values), args.nodes

    values, lines = values_check.load_values(values_path)  # a YAML error: exit 3, with line and column
    values = merge_values(values, set_overrides(args.set_values))  # a malformed --set: exit 3
    if nodes:
        parse_shape(nodes)  # an unknown node profile: exit 2, before anything is written
    REDACTOR.add_values(values)
    run = FieldRun("reproduce", argv, Path(args.report_dir) if args.report_dir else None)
    toolchain = Toolchain()
    catalog = pulling_catalog({chart: ref} if ref else {}, toolchain, run.directory / "work")
    try:
        chart_dir = catalog.local_dir(chart)  # an unknown or unreachable reference: exit 4 before anything runs
        findings = values_check.check_values(values, chart_dir, lines=lines)
        run.field["findings"] = [f.as_dict() for f in findings]
        for finding in findings:
            print(REDACTOR(f"{finding.level}: {finding.message}" + (f" (line {finding.line})" if finding.line else "")),
                  file=sys.stderr)

        # From here on only the placeholder copy exists for the run.
        bundle = run.directory / "bundle"
        bundle.mkdir(parents=True, exist_ok=True)
        placeholders, replaced = values_check.placeholder_values(values)
        (bundle / "values.yaml").write_text(yamlio.dump(placeholders, sort_keys=False))
        package = package_chart(chart_dir, bundle / "chart")
        defaults = values_check.load_values(chart_dir / "values.yaml")[0] if (chart_dir / "values.yaml").is_file() else {}
        merged = merge_values(defaults, placeholders)
        shape = nodes or implied_shape(chart, merged)
        groups = parse_shape(shape)  # an unknown node profile: exit 2
        facts = preflight.facts_from_shape(groups)
        meta = chart_metadata(chart_dir)
        checks = preflight.run_checks(facts, charts={chart: meta}, values={chart: merged},
                                      helm_version=toolchain.pin("helm").version)
        run.field["preflight"] = [c.as_dict() for c in checks]
        run.field["nodes"] = shape
        rerun = f"chartproof reproduce --bundle {bundle}"
        run.field["rerun"] = rerun
        print(f"node shape: {shape}", file=sys.stderr)
        print_checks(run.field["preflight"])
        record = {"chartproof": __version__, "chart": {"name": chart, "reference": str(catalog.ref(chart)),
                                                       "version": meta.get("version"), "file": str(package.relative_to(bundle)),
                                                       "sha256": sha256_file(package).removeprefix("sha256:")},
                  "nodes": shape, "values": "values.yaml", "secrets_replaced": replaced,
                  "tools": {t: toolchain.pin(t).version for t in BUNDLE_TOOLS}, "rerun": rerun,
                  "findings": run.field["findings"]}
        (bundle / "bundle.json").write_text(json.dumps(record, indent=2) + "\n")

        extra = list(args.pytest_args)
        code = run.run_suites(["suites/customer"], ["--chartproof-cluster", "embedded", "--chartproof-nodes", shape,
                                                    "--chart", f"{chart}={package}",
                                                    "--chartproof-values", f"{chart}={bundle / 'values.yaml'}", *extra])
        verdicts = _verdicts(run.directory / "summary.json")
        record["verdicts"] = verdicts
        (bundle / "bundle.json").write_text(json.dumps(record, indent=2) + "\n")
        same = True
        if previous is not None and previous.get("verdicts"):
            changed = {t: (previous["verdicts"].get(t, "absent"), verdicts.get(t, "absent"))
                       for t in sorted(set(previous["verdicts"]) | set(verdicts))
                       if previous["verdicts"].get(t) != verdicts.get(t)}
            same = not changed
            print("verdicts: " + ("the same as the bundle's" if same else
                                  f"{len(changed)} differ from the bundle's: "
                                  + "; ".join(f"{t}: {a} -> {b}" for t, a, b in ((t, *ab) for t, ab in changed.items()))),
                  file=sys.stderr)
        print(f"chartproof report: {run.directory / 'report.md'}\nbundle: {bundle} (rerun: {rerun})", file=sys.stderr)
        failed = any(c.status == "fail" for c in checks) or any(f.level == "error" for f in findings)
        return 0 if code in (0, 5) and not failed and same else 1
    except KeyboardInterrupt:
        return interrupted()
    finally:
        run.cleanup()


def set_overrides(items: list[str]) -> dict:
    """``--set a.b=1`` items as a values tree (values typed as YAML reads them, like helm's --set)."""
    tree: dict = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep:
            raise BadValuesError(f"bad --set '{item}': expected KEY=VALUE, e.g. harmony.gpusPerReplica=4")
        set_args({key: text})  # the same key rules as everywhere else: exit 3
        if "[" in key:
            raise BadValuesError(f"bad --set key {key!r}: list entries cannot be set here; put the list in the values file")
        value = yamlio.load(text) if text else ""
        node = tree
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise BadValuesError(f"bad --set {item!r}: {part} is set both to a value and to a map")
        node[parts[-1]] = value
    return tree


def _verdicts(summary: Path) -> dict[str, str]:
    try:
        data = json.loads(summary.read_text())
    except (OSError, ValueError):
        return {}
    return {t["nodeid"]: t["outcome"] for t in data.get("tests") or []}
