"""The shareable report of a run, under ``reports/<run-id>/`` (``reports/latest`` points at the newest):

- ``summary.json``: the verdicts, one source of truth for the files below: duration, cluster (provider,
  Kubernetes version, nodes, GPU inventory per instance type), charts (ref, version), one entry per test
  (nodeid, outcome, contracts, duration, message, diagnostics), ``contracts`` (ID -> status of its README
  promise), ``extensions`` (ID -> status of its inferred parts) and totals;
- ``results.json``: the same run phase by phase (kept for tools: ``results[].test/contracts/outcome``);
- ``report.md``: the short text form; ``report.html``: the page to read or send (see ``report_html``);
- ``junit.xml``: pytest's own (``--junitxml``, defaulted into this directory by the plugin);
- ``diagnostics/<test>/<namespace>/``: what failed cluster tests left (events, describe, logs, helm status).

A run started by ``chartproof certify`` or ``chartproof reproduce`` also carries their ``field`` section:
the command, its preflight rows (check, status pass/fail/warn/skip, evidence) and, for reproduce, the
bundle that reruns it.

Everything written goes through the run's redactor, on top of the reports being redacted at the source.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from chartproof import verdicts
from chartproof.contracts import catalog
from chartproof.diagnostics import folder_of
from chartproof.redaction import REDACTOR, Redactor

STATUSES = ("passed", "failed", "error", "skipped", "not-covered")


class ReportWriter:
    def __init__(self, directory: Path, redactor: Redactor = REDACTOR):
        self.directory = Path(directory)
        self.redactor = redactor
        self.results: list[dict] = []
        self.started = time.time()
        self.field: dict | None = None  # certify / reproduce: {"command", "preflight": [rows], "bundle", ...}

    def add(self, report) -> None:
        """A pytest TestReport: keep the call phase, and setup/teardown when they failed or skipped."""
        if report.when != "call" and not (report.failed or report.skipped):
            return
        contracts = verdicts.report_contracts(report)
        entry = {"test": report.nodeid, "contracts": contracts, "contract": ",".join(contracts),
                 "extension": verdicts.report_is_extension(report), "outcome": verdicts.outcome(report),
                 "phase": report.when, "seconds": round(report.duration, 3)}
        if report.skipped and isinstance(report.longrepr, tuple):
            entry["reason"] = entry["message"] = self.redactor(str(report.longrepr[2]))
        elif report.failed:
            entry["reason"] = self.redactor(str(getattr(report, "longreprtext", "") or report.longrepr))[-3000:]
            crash = getattr(report.longrepr, "reprcrash", None)
            message = getattr(crash, "message", None) or raised_line(entry["reason"])
            entry["message"] = self.redactor(message)[:4000]
            promise = [content for title, content in report.sections if title == "chartproof promise"]
            if promise:
                entry["promise"] = self.redactor(promise[0])
        self.results.append(entry)

    # -- the outputs -------------------------------------------------------------------------------------
    def write(self, *, run_id: str, options: dict, charts: list[dict], cluster: dict | None, notes: list[str]) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        counts: dict[str, int] = {}
        for entry in self.results:
            counts[entry["outcome"]] = counts.get(entry["outcome"], 0) + 1
        contract_verdicts = self.contract_verdicts()
        payload = {"contracts": contract_verdicts, "run": run_id,
                   "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
                   "seconds": round(time.time() - self.started, 1), "options": options, "charts": charts,
                   "cluster": cluster, "counts": counts, "notes": notes, "results": self.results,
                   "field": self.field}
        summary = self.summary(payload)
        self._write("results.json", self._json(payload))
        self._write("summary.json", self._json(summary))
        self._write("report.md", self.markdown(payload))
        from chartproof.report_html import render_html
        self._write("report.html", render_html(summary, redactor=self.redactor))
        latest = self.directory.parent / "latest"
        try:
            if latest.is_symlink() or latest.exists():
                latest.unlink()
            latest.symlink_to(self.directory.name)
        except OSError:
            pass
        return self.directory / "report.md"

    def _json(self, data) -> str:
        return json.dumps(self.redactor.redact_object(data), indent=2, default=str) + "\n"

    def _write(self, name: str, text: str) -> None:
        path = self.directory / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(self.redactor(text))
        tmp.replace(path)

    def summary(self, p: dict) -> dict:
        """The ``summary.json`` document (see the module docstring)."""
        tests = self.tests()
        totals = {k: 0 for k in ("passed", "failed", "skipped", "error")}
        for test in tests:
            totals[test["outcome"]] += 1
        cluster = p.get("cluster")
        cluster_out = None
        if cluster:
            cluster_out = {"provider": cluster.get("provider"), "kubernetes": cluster.get("server_version"),
                           "nodes": cluster.get("nodes") or [], "name": cluster.get("name"),
                           "simulated": cluster.get("simulated"), "gpus": gpu_inventory(cluster.get("nodes") or [])}
            if "error" in cluster:
                cluster_out["error"] = cluster["error"]
        charts = {c.get("name"): {"ref": c.get("reference"), "version": c.get("version"), "chart": c.get("chart"),
                                  "appVersion": c.get("appVersion"), **({"error": c["error"]} if "error" in c else {})}
                  for c in p.get("charts") or []}
        verdict = p["contracts"]
        return {"run": p["run"], "started": p["started"], "duration_s": p["seconds"], "cluster": cluster_out,
                "charts": charts, "tests": tests, "totals": totals,
                "contracts": {cid: v["promise"] for cid, v in verdict.items()},
                "extensions": {cid: v["extension"] for cid, v in verdict.items()},
                "notes": p.get("notes") or [],
                **({"field": p["field"]} if p.get("field") else {}),
                "files": {"junit": "junit.xml", "results": "results.json", "markdown": "report.md", "html": "report.html"}}

    def tests(self) -> list[dict]:
        """One entry per test, its phases merged: failed if a phase failed on a verdict, else error if one
        errored, else passed if its call passed, else skipped."""
        merged: dict[str, dict] = {}
        for entry in self.results:
            test = merged.setdefault(entry["test"], {"nodeid": entry["test"], "outcome": None, "contracts": [],
                                                     "extension": entry["extension"], "duration_s": 0.0,
                                                     "message": "", "phases": []})
            test["contracts"] += [c for c in entry["contracts"] if c not in test["contracts"]]
            test["duration_s"] = round(test["duration_s"] + entry["seconds"], 3)
            test["phases"].append({"phase": entry["phase"], "outcome": entry["outcome"]})
            rank = {"failed": 3, "error": 2, "passed": 1, "skipped": 0}
            if test["outcome"] is None or rank[entry["outcome"]] > rank[test["outcome"]]:
                test["outcome"] = entry["outcome"]
                if entry.get("message"):
                    test["message"] = entry["message"]
                if entry.get("reason") and entry["outcome"] != "passed":
                    test["details"] = entry["reason"]
                if entry.get("promise"):
                    test["promise"] = entry["promise"]
            elif not test["message"] and entry.get("message"):
                test["message"] = entry["message"]
        for test in merged.values():
            test["diagnostics"] = self.diagnostics_files(test["nodeid"])
        return list(merged.values())

    def diagnostics_files(self, nodeid: str) -> list[str]:
        """The diagnostics a test left, as paths relative to the report directory."""
        where = self.directory / "diagnostics" / folder_of(nodeid)
        if not where.is_dir():
            return []
        return sorted(str(p.relative_to(self.directory)) for p in where.rglob("*") if p.is_file())

    def contract_verdicts(self) -> dict[str, dict]:
        """Per contract id: the verdict on the README promise and, apart, on our extensions.

        failed if any of its tests failed, error if one crashed, passed if all that ran passed, skipped if
        none ran, not-covered if no test names it.
        """
        runs: dict[str, dict[str, list[str]]] = {}
        for entry in self.results:
            for cid in entry["contracts"]:
                side = "extension" if entry["extension"] else "promise"
                runs.setdefault(cid, {"promise": [], "extension": []})[side].append(entry["outcome"])
        out = {}
        for cid, contract in catalog().items():
            sides = runs.get(cid, {"promise": [], "extension": []})
            out[cid] = {"promise": _verdict(sides["promise"]), "extension": _verdict(sides["extension"]),
                        "inferred": contract.inferred}
        return out

    @staticmethod
    def markdown(p: dict) -> str:
        lines = [f"# Chartproof report {p['run']}", "",
                 f"Started {p['started']}, {p['seconds']} s. " + ", ".join(f"{v} {k}" for k, v in sorted(p["counts"].items())),
                 "", "Also here: `report.html` (the page to read), `summary.json` (verdicts), `junit.xml`, `results.json`.",
                 "", "## Charts under test", "", "| name | reference | chart | version |", "|---|---|---|---|"]
        for c in p["charts"]:
            lines.append(f"| {c.get('name')} | {c.get('reference')} | {c.get('chart', '')} | {c.get('version', c.get('error', ''))} |")
        field = p.get("field")
        if field:
            lines += field_markdown(field)
        cluster = p.get("cluster")
        lines += ["", "## Cluster", ""]
        if not cluster:
            lines.append("No cluster was needed (render-only run).")
        elif "error" in cluster:
            lines.append(f"Could not start: {cluster['error']}")
        else:
            lines.append(f"{cluster.get('provider')} `{cluster.get('name')}`, Kubernetes {cluster.get('server_version')}"
                         + (", simulated nodes (kwok)" if cluster.get("simulated") else ""))
            nodes = cluster.get("nodes") or []
            if nodes:
                keys = list(nodes[0].keys())
                lines += ["", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
                lines += ["| " + " | ".join(str(n.get(k, "")) for k in keys) + " |" for n in nodes]
        lines += ["", "## Results", "", "| outcome | contract | test | note |", "|---|---|---|---|"]
        for r in sorted(p["results"], key=lambda r: (r["outcome"] != "failed", r["test"])):
            lines.append(f"| {r['outcome']} | {r['contract']} | `{r['test']}` | {result_note(r)[:160].replace('|', '/')} |")
        verdict_counts: dict[str, int] = {}
        extension_counts: dict[str, int] = {}
        for v in p["contracts"].values():
            if v["promise"] != "not-covered" or not v["inferred"]:
                verdict_counts[v["promise"]] = verdict_counts.get(v["promise"], 0) + 1
            if v["extension"] != "not-covered":
                extension_counts[v["extension"]] = extension_counts.get(v["extension"], 0) + 1
        lines += ["", "## Contract behaviours", "",
                  "README promises: " + (", ".join(f"{n} {k}" for k, n in sorted(verdict_counts.items())) or "none"),
                  "", "Extensions (inferred, our design decisions): "
                  + (", ".join(f"{n} {k}" for k, n in sorted(extension_counts.items())) or "none"), "",
                  "| id | promise | extension |", "|---|---|---|"]
        lines += [f"| {cid} | {v['promise']} | {v['extension']} |" for cid, v in p["contracts"].items()
                  if v["promise"] != "not-covered" or v["extension"] != "not-covered"]
        if p["notes"]:
            lines += ["", "## Notes", ""] + [f"- {n}" for n in p["notes"]]
        return "\n".join(lines) + "\n"


def raised_line(traceback: str) -> str:
    """What a pytest traceback says was raised: its first ``E`` line (``E   RenderError: ...``), else its last
    line (the crash location, where no ``E`` line was kept)."""
    lines = [line.strip() for line in traceback.strip().splitlines() if line.strip()]
    raised = [line[1:].strip() for line in lines if line.startswith("E ")]
    return raised[0] if raised else (lines[-1] if lines else "")


def result_note(entry: dict) -> str:
    """One line saying why a result is what it is: the first line of its message (the exception or the skip
    reason), else what its traceback says was raised; "" for a pass."""
    message = [line.strip() for line in str(entry.get("message") or "").splitlines() if line.strip()]
    return message[0] if message else raised_line(str(entry.get("reason") or ""))


def field_markdown(field: dict) -> list[str]:
    """The certify / reproduce section: the command, how to rerun it, and the preflight table."""
    lines = ["", f"## {field.get('kind', 'field').capitalize()}", "", f"Command: `{field.get('command', '')}`"]
    if field.get("rerun"):
        lines.append(f"Rerun: `{field['rerun']}`")
    for finding in field.get("findings") or []:
        lines.append(f"- {finding.get('level')}: {finding.get('message')}"
                     + (f" (line {finding['line']})" if finding.get("line") else ""))
    rows = field.get("preflight") or []
    if rows:
        lines += ["", "### Preflight", "", "| status | check | chart | evidence |", "|---|---|---|---|"]
        for row in rows:
            evidence = str(row.get("evidence", "")).replace("|", "/")
            lines.append(f"| {row.get('status')} | {row.get('name')} | {row.get('chart', '')} | {evidence[:400]} |")
    return lines


def gpu_inventory(nodes: list[dict]) -> list[dict]:
    """Nodes grouped by instance type: how many, and the accelerators of each and in total."""
    groups: dict[str, dict] = {}
    for node in nodes:
        kind = str(node.get("instance-type", "?"))
        group = groups.setdefault(kind, {"instance-type": kind, "nodes": 0, "per-node": {}, "total": {}})
        group["nodes"] += 1
        for resource, amount in node.items():
            if resource in ("node", "instance-type"):
                continue
            try:
                count = int(str(amount))
            except ValueError:
                continue
            if count:
                group["per-node"][resource] = max(group["per-node"].get(resource, 0), count)
                group["total"][resource] = group["total"].get(resource, 0) + count
    return sorted(groups.values(), key=lambda g: (-sum(g["total"].values()), g["instance-type"]))


def _verdict(outcomes: list[str]) -> str:
    if not outcomes:
        return "not-covered"
    for worst in ("failed", "error"):
        if worst in outcomes:
            return worst
    if all(o == "skipped" for o in outcomes):
        return "skipped"
    return "passed"
