"""The shareable report of a run: ``reports/<run-id>/report.md`` and ``results.json``, redacted."""

from __future__ import annotations

import json
import time
from pathlib import Path

from chartproof import verdicts
from chartproof.contracts import catalog
from chartproof.redaction import REDACTOR


class ReportWriter:
    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.results: list[dict] = []
        self.started = time.time()

    def add(self, report) -> None:
        """A pytest TestReport: keep the call phase, and setup/teardown when they failed or skipped."""
        if report.when != "call" and not (report.failed or report.skipped):
            return
        contracts = verdicts.report_contracts(report)
        entry = {"test": report.nodeid, "contracts": contracts, "contract": ",".join(contracts),
                 "extension": verdicts.report_is_extension(report), "outcome": verdicts.outcome(report),
                 "phase": report.when, "seconds": round(report.duration, 3)}
        if report.skipped and isinstance(report.longrepr, tuple):
            entry["reason"] = REDACTOR(str(report.longrepr[2]))
        elif report.failed:
            entry["reason"] = REDACTOR(str(getattr(report, "longreprtext", "") or report.longrepr))[-3000:]
        self.results.append(entry)

    def write(self, *, run_id: str, options: dict, charts: list[dict], cluster: dict | None, notes: list[str]) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        counts: dict[str, int] = {}
        for entry in self.results:
            counts[entry["outcome"]] = counts.get(entry["outcome"], 0) + 1
        payload = {"contracts": self.contract_verdicts(), "run": run_id, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
                   "seconds": round(time.time() - self.started, 1), "options": options, "charts": charts,
                   "cluster": cluster, "counts": counts, "notes": notes, "results": self.results}
        text = REDACTOR(json.dumps(payload, indent=2, default=str))
        (self.directory / "results.json").write_text(text + "\n")
        (self.directory / "report.md").write_text(REDACTOR(self.markdown(payload)))
        latest = self.directory.parent / "latest"
        try:
            if latest.is_symlink() or latest.exists():
                latest.unlink()
            latest.symlink_to(self.directory.name)
        except OSError:
            pass
        return self.directory / "report.md"

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
                 "", "## Charts under test", "", "| name | reference | chart | version |", "|---|---|---|---|"]
        for c in p["charts"]:
            lines.append(f"| {c.get('name')} | {c.get('reference')} | {c.get('chart', '')} | {c.get('version', c.get('error', ''))} |")
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
            note = (r.get("reason") or "").strip().splitlines()
            lines.append(f"| {r['outcome']} | {r['contract']} | `{r['test']}` | {note[-1][:160].replace('|', '/') if note else ''} |")
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


def _verdict(outcomes: list[str]) -> str:
    if not outcomes:
        return "not-covered"
    for worst in ("failed", "error"):
        if worst in outcomes:
            return worst
    if all(o == "skipped" for o in outcomes):
        return "skipped"
    return "passed"
