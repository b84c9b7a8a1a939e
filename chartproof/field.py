"""What ``chartproof certify`` and ``chartproof reproduce`` share: the charts and values under test, the
run folder with its field report (the command, the preflight rows, how to rerun), and the pytest run of
the suites that writes the rest of the report into the same folder."""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from chartproof.charts import ChartCatalog, chart_metadata
from chartproof.errors import INTERRUPTED_EXIT_CODE
from chartproof.helm import Helm, load_values_file
from chartproof.paths import REPO, REPORTS
from chartproof.redaction import REDACTOR
from chartproof.reports import ReportWriter
from chartproof.toolchain import Toolchain

STATUS_MARK = {"pass": "PASS", "fail": "FAIL", "warn": "WARN", "skip": "skip"}


def pulling_catalog(overrides: dict[str, str], toolchain: Toolchain, workdir: Path) -> ChartCatalog:
    """The charts a field command works on, pulled (oci://, REPO/CHART) through the helm driver."""
    catalog = ChartCatalog(overrides, workdir=workdir / "charts", pull=lambda ref, dest: helm.pull(ref, dest))
    helm = Helm(toolchain.path("helm"), catalog, workdir=workdir / "helm")
    return catalog


@dataclass
class ChartInputs:
    """The charts a field command works on: resolved directories, Chart.yaml, values (user and merged)."""

    catalog: ChartCatalog
    names: list[str]
    user_values: dict[str, list[Path]] = field(default_factory=dict)
    metadata: dict[str, dict] = field(default_factory=dict)
    merged: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def load(cls, catalog: ChartCatalog, names: list[str], values: list[tuple[str, str]]) -> ChartInputs:
        from chartproof.helm import merge_values

        inputs = cls(catalog, list(dict.fromkeys(names)))
        for chart, path in values:
            catalog.ref(chart)  # an unknown chart name: exit 4
            REDACTOR.add_values(load_values_file(Path(path)))  # malformed: exit 3; its secrets are known from now
            inputs.user_values.setdefault(chart, []).append(Path(path))
            if chart not in inputs.names:
                inputs.names.append(chart)
        for name in inputs.names:
            directory = catalog.local_dir(name)
            inputs.metadata[name] = chart_metadata(directory)
            merged = load_values_file(directory / "values.yaml") if (directory / "values.yaml").is_file() else {}
            for path in inputs.user_values.get(name, []):
                merged = merge_values(merged, load_values_file(path))
            inputs.merged[name] = merged
        return inputs

    def pytest_args(self) -> list[str]:
        args = [a for name in self.names for a in ("--chart", f"{name}={self.catalog.ref(name)}")]
        for chart, paths in self.user_values.items():
            args += [a for p in paths for a in ("--chartproof-values", f"{chart}={p}")]
        return args


class FieldRun:
    """One certify or reproduce run: ``reports/<run-id>/`` holds its field report and the suites' report."""

    def __init__(self, kind: str, argv: list[str], report_root: Path | None = None):
        self.kind = kind
        self.command = shlex.join(["chartproof", kind, *argv])
        self.report_root = Path(report_root) if report_root else REPORTS
        self.run_id = time.strftime("%Y%m%d-%H%M%S-") + kind + "-" + secrets.token_hex(2)
        self.directory = self.report_root / self.run_id
        self.field: dict = {"kind": kind, "command": self.command, "preflight": [], "findings": []}

    def cleanup(self) -> None:
        """Remove the scratch space, and the run folder itself if nothing was written (bad input)."""
        shutil.rmtree(self.directory / "work", ignore_errors=True)
        try:
            self.directory.rmdir()
        except OSError:
            pass

    def save(self) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / "field.json"
        path.write_text(REDACTOR(json.dumps(REDACTOR.redact_object(self.field), indent=2, default=str)) + "\n")
        return path

    def write_report(self, cluster: dict | None = None) -> Path:
        """The report when no suite runs (read-only certify, a reproduce that stopped before installing)."""
        self.save()
        writer = ReportWriter(self.directory)
        writer.field = self.field
        return writer.write(run_id=self.run_id, options={"command": self.command}, charts=[], cluster=cluster, notes=[])

    def run_suites(self, paths: list[str], args: list[str], *, env: dict | None = None) -> int:
        """pytest on ``paths`` in a child process that writes its report into this run's folder, with the
        field report merged. Ctrl-C reaches the child (which removes what it created) and is waited for."""
        field_file = self.save()
        # Prefixed option names: they hold even where another plugin took the short ones.
        cmd = [sys.executable, "-m", "pytest", *paths, "-p", "no:cacheprovider",
               "--chartproof-report-dir", str(self.report_root), "--chartproof-run-id", self.run_id,
               "--chartproof-field-report", str(field_file), *args]
        proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **(env or {})})
        try:
            return proc.wait()
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=300)
            except (subprocess.TimeoutExpired, KeyboardInterrupt):
                proc.kill()
                proc.wait()
            raise


def print_checks(rows: list[dict], out=sys.stdout) -> None:
    """The preflight as a table: STATUS CHECK CHART EVIDENCE (detail lines indented below)."""
    width = max([len(r["name"]) for r in rows] + [5])
    chart_width = max([len(r.get("chart") or "") for r in rows] + [5])
    print(f"{'STATUS':<6}  {'CHECK':<{width}}  {'CHART':<{chart_width}}  EVIDENCE", file=out)
    for row in rows:
        print(REDACTOR(f"{STATUS_MARK.get(row['status'], row['status']):<6}  {row['name']:<{width}}  "
                       f"{row.get('chart') or '-':<{chart_width}}  {row['evidence']}"), file=out)
        if row["status"] == "pass" and row["name"] != "accelerator inventory":
            continue  # the evidence line says enough; every detail is in the report
        for line in row.get("details") or []:
            print(REDACTOR(f"{'':<6}  {'':<{width}}  {'':<{chart_width}}    {line}"), file=out)


def interrupted() -> int:
    print("chartproof: interrupted; what this run created was removed", file=sys.stderr)
    return INTERRUPTED_EXIT_CODE
