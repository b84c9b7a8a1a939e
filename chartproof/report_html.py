"""``report.html``: one self-contained page per run, for a person (a support engineer sends it to a customer).

Built from ``summary.json`` alone. No network: no scripts at all, inline CSS, system fonts, and a Content
Security Policy that forbids every fetch (``default-src 'none'``). Links are relative (diagnostics under
``diagnostics/<test>/``, the other report files beside it), so the folder can be zipped and sent.

Layout: a header with the run's verdict, the totals, the charts under test (ref, version) and the cluster
(provider, Kubernetes version, GPU inventory per instance type); then, per chart and section, one row per
contract behaviour with its README statement and status badges (promise and extension apart); a failing
behaviour is expanded with what its test expected and found, and links to its diagnostics.
"""

from __future__ import annotations

import html
import re
from urllib.parse import quote

from chartproof.contracts import catalog
from chartproof.redaction import REDACTOR, Redactor

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
CHART_ORDER = ("adaptive", "monitoring", "hyperpod")
PROBLEMS = ("failed", "error")
TEST_LABELS = {"passed": "passed", "failed": "failed", "error": "suite error", "skipped": "skipped"}
LABELS = {"passed": "kept", "failed": "broken", "error": "suite error", "skipped": "skipped",
          "not-covered": "not covered"}

STYLE = """
:root{--ink:#1f2328;--muted:#59636e;--line:#d1d9e0;--soft:#f6f8fa;--bg:#ffffff;
--pass:#1a7f37;--pass-bg:#dafbe1;--fail:#cf222e;--fail-bg:#ffebe9;--err:#9a3d00;--err-bg:#fff1e5;
--skip:#59636e;--skip-bg:#eff2f5;--none:#8c959f;--accent:#0969da;--head:#0d1b2a}
*{box-sizing:border-box}
html{background:var(--soft)}
body{margin:0;color:var(--ink);font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,"SF Mono",Menlo,Consolas,"Liberation Mono",monospace;font-size:12.5px}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
.top{background:linear-gradient(135deg,#0d1b2a 0%,#1b3a5c 100%);color:#fff;padding:28px 40px 84px}
.top .brand{font-size:13px;letter-spacing:.12em;text-transform:uppercase;opacity:.75}
.top h1{margin:6px 0 4px;font-size:30px;font-weight:650;letter-spacing:-.01em}
.top .meta{opacity:.8;font-size:13px}
.top .sub{opacity:.9;font-size:15px;margin:-2px 0 6px}
.top .meta span+span:before{content:"·";margin:0 8px;opacity:.6}
.wrap{max-width:1240px;margin:0 auto;padding:0 40px}
.tiles{display:grid;grid-template-columns:repeat(4,1fr) 2fr;gap:14px;margin-top:-60px}
.tile{background:var(--bg);border-radius:12px;padding:16px 18px;box-shadow:0 1px 3px rgba(13,27,42,.12),0 8px 24px rgba(13,27,42,.06)}
.tile .n{font-size:30px;font-weight:700;line-height:1.1}
.tile .l{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.06em}
.tile.passed .n{color:var(--pass)}.tile.failed .n{color:var(--fail)}.tile.error .n{color:var(--err)}.tile.skipped .n{color:var(--skip)}
.tile.bar .l{margin-bottom:8px}
.stack{display:flex;height:12px;border-radius:6px;overflow:hidden;background:var(--skip-bg)}
.stack i{display:block}.stack .passed{background:var(--pass)}.stack .failed{background:var(--fail)}
.stack .error{background:#e16f24}.stack .skipped{background:#afb8c1}.stack .not-covered{background:#eaeef2}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;margin-top:8px;font-size:12px;color:var(--muted)}
.legend b{color:var(--ink)}
.dot{display:inline-block;width:9px;height:9px;border-radius:50%;margin-right:5px;vertical-align:0}
.dot.passed{background:var(--pass)}.dot.failed{background:var(--fail)}.dot.error{background:#e16f24}
.dot.skipped{background:#afb8c1}.dot.not-covered{background:#eaeef2;border:1px solid #c8d1da}
.cards{display:grid;grid-template-columns:1fr 1fr;gap:14px;margin:14px 0 8px}
.card{background:var(--bg);border:1px solid var(--line);border-radius:12px;padding:16px 18px}
.card h2{margin:0 0 10px;font-size:13px;text-transform:uppercase;letter-spacing:.08em;color:var(--muted)}
table{border-collapse:collapse;width:100%}
.kv td,.kv th{padding:5px 8px 5px 0;text-align:left;vertical-align:top;border-bottom:1px solid #eef1f4}
.kv th{color:var(--muted);font-weight:500;font-size:12px}
.kv tr:last-child td{border-bottom:0}
.pill{display:inline-block;padding:1px 8px;border-radius:999px;background:var(--skip-bg);color:var(--muted);font-size:12px}
.pill.gpu{background:#ddf4ff;color:#0550ae}
nav.bar{position:sticky;top:0;z-index:2;background:rgba(246,248,250,.94);backdrop-filter:blur(6px);
border-bottom:1px solid var(--line);margin:18px -40px 0;padding:10px 40px;display:flex;gap:18px;align-items:center}
nav.bar a{font-weight:600}
nav.bar .count{color:var(--muted);font-weight:400}
nav.bar label{margin-left:auto;color:var(--muted);cursor:pointer;user-select:none}
.chart{margin:26px 0 10px}
.chart>h2{font-size:22px;margin:0 0 2px;display:flex;align-items:baseline;gap:12px}
.chart>h2 small{font-size:13px;font-weight:400;color:var(--muted)}
.chart h3{font-size:14px;margin:20px 0 8px;color:var(--head)}
.contracts{background:var(--bg);border:1px solid var(--line);border-radius:10px;overflow:hidden;border-collapse:separate;border-spacing:0}
.contracts td{padding:9px 12px;border-top:1px solid #eef1f4;vertical-align:top}
.contracts tr:first-child td{border-top:0}
.contracts td.id{width:150px;white-space:nowrap}
.contracts td.id a{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px;color:var(--ink);font-weight:600}
.contracts td.id .tiers{color:var(--muted);font-size:11px}
.contracts td.badges{width:230px;text-align:right;white-space:nowrap}
.contracts tr.contract{border-left:4px solid transparent}
.contracts tr.contract td:first-child{border-left:4px solid transparent}
.contracts tr.s-passed td:first-child{border-left-color:var(--pass)}
.contracts tr.s-failed td:first-child,.contracts tr.failure td:first-child{border-left-color:var(--fail)}
.contracts tr.s-error td:first-child{border-left-color:#e16f24}
.contracts tr.s-skipped td:first-child{border-left-color:#afb8c1}
.contracts tr.s-not-covered{color:var(--muted)}
.contracts tr.s-failed,.contracts tr.failure{background:#fffafa}
.statement code{background:var(--soft);border:1px solid #eef1f4;border-radius:4px;padding:0 4px}
.statement em.inferred{color:var(--muted);font-style:normal;font-size:12px;border:1px dashed var(--line);border-radius:4px;padding:0 4px}
.badge{display:inline-block;padding:2px 10px;border-radius:999px;font-size:12px;font-weight:600;margin-left:4px}
.badge.passed{background:var(--pass-bg);color:var(--pass)}
.badge.failed{background:var(--fail);color:#fff}
.badge.error{background:var(--err-bg);color:var(--err);border:1px solid #f3c9a5}
.badge.skipped{background:var(--skip-bg);color:var(--skip)}
.badge.not-covered{background:transparent;color:var(--none);border:1px dashed #c8d1da;font-weight:500}
.badge .k{font-weight:400;opacity:.8;margin-right:4px}
tr.failure>td{padding:0 12px 14px 166px;border-top:0}
.fail-card{border:1px solid #ffcecb;background:#fff;border-radius:8px;padding:12px 14px;margin-top:2px}
.fail-card+.fail-card{margin-top:10px}
.fail-card .t{display:flex;gap:10px;align-items:baseline;flex-wrap:wrap}
.fail-card .t code{font-weight:600}
.fail-card h4{margin:10px 0 4px;font-size:11px;text-transform:uppercase;letter-spacing:.08em;color:var(--muted)}
.fail-card pre{margin:0;background:#0d1117;color:#e6edf3;border-radius:6px;padding:10px 12px;overflow:auto;max-height:340px;white-space:pre-wrap;word-break:break-word}
.fail-card .promise{margin:8px 0 0;padding:8px 10px;background:var(--soft);border-left:3px solid var(--accent);border-radius:0 6px 6px 0}
.diag{display:flex;flex-wrap:wrap;gap:6px}
.diag a{display:inline-block;border:1px solid var(--line);border-radius:6px;padding:2px 8px;background:var(--soft);font-size:12.5px}
details summary{cursor:pointer;color:var(--muted);margin-top:10px}
.tests td,.tests th{padding:6px 10px;border-top:1px solid #eef1f4;text-align:left;font-size:13px}
.tests{background:var(--bg);border:1px solid var(--line);border-radius:10px;border-collapse:separate;border-spacing:0}
.notes li{margin:3px 0}
footer{color:var(--muted);font-size:12px;padding:30px 0 50px;border-top:1px solid var(--line);margin-top:30px}
footer a{margin-right:14px}
.attention{margin:0 0 8px;border-color:#ffcecb;border-left:4px solid var(--fail)}
.attention ul{list-style:none;margin:0;padding:0}
.attention li{padding:7px 0;border-top:1px solid #f3f4f6}.attention li:first-child{border-top:0}
.attention .badge{margin:0 8px 0 0;min-width:82px;text-align:center}
.attention a.mono{font-weight:600;margin-right:8px}
.attention .what{color:var(--muted)}
.attention .found1{margin:3px 0 0 94px;color:var(--fail);white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
#only-problems{margin-right:6px;vertical-align:-1px}
body:has(#only-problems:checked) tr.contract:not(.problem){display:none}
body:has(#only-problems:checked) .chart:not(.has-problem){display:none}
body:has(#only-problems:checked) h3.clean{display:none}
body:has(#only-problems:checked) table.contracts.clean{display:none}
@media (max-width:900px){.tiles{grid-template-columns:1fr 1fr}.cards{grid-template-columns:1fr}tr.failure>td{padding-left:12px}}
@media print{nav.bar{position:static}.top{padding-bottom:30px}.tiles{margin-top:10px}}
"""


def render_html(summary: dict, *, redactor: Redactor = REDACTOR) -> str:
    """The page for ``summary`` (the summary.json document), redacted throughout."""

    def e(text) -> str:
        return html.escape(redactor(str(text)), quote=True)

    known = catalog()
    tests = summary.get("tests") or []
    failing_by_contract: dict[str, list[dict]] = {}
    for test in tests:
        if test["outcome"] in PROBLEMS:
            for cid in test["contracts"]:
                failing_by_contract.setdefault(cid, []).append(test)
    promise = summary.get("contracts") or {}
    extension = summary.get("extensions") or {}
    totals = summary.get("totals") or {}

    problem_tests = [t for t in tests if t["outcome"] in PROBLEMS]
    parts = []
    for verdicts_, noun in ((promise, "promise"), (extension, "extension")):
        broken = sum(1 for s in verdicts_.values() if s == "failed")
        if broken:
            parts.append(f"{broken} {noun}{'s' if broken != 1 else ''} broken")
    errors = sum(1 for t in tests if t["outcome"] == "error")
    if errors:
        parts.append(f"{errors} suite error{'s' if errors != 1 else ''}")
    preflight = (summary.get("field") or {}).get("preflight") or []
    failed_checks = sum(1 for row in preflight if row.get("status") == "fail")
    if failed_checks:
        parts.insert(0, f"{failed_checks} preflight check{'s' if failed_checks != 1 else ''} failed")
    if not parts and problem_tests:
        parts.append(f"{len(problem_tests)} test{'s' if len(problem_tests) != 1 else ''} failed")
    if parts:
        headline = " · ".join(parts)
    elif preflight and not tests:
        headline = f"Preflight passed: {sum(1 for row in preflight if row.get('status') == 'pass')} checks, none failed"
    else:
        kept = sum(1 for s in promise.values() if s == "passed")
        headline = f"All {kept} tested promise{'s' if kept != 1 else ''} kept"

    out: list[str] = []
    w = out.append
    w("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>")
    w(f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">")
    w("<meta name='viewport' content='width=device-width, initial-scale=1'><meta name='referrer' content='no-referrer'>")
    w(f"<title>{e(headline)} · Chartproof {e(summary.get('run', ''))}</title><style>{STYLE}</style></head><body>")

    # -- header --------------------------------------------------------------------------------------
    chart_names = ", ".join(f"{n} {c.get('version') or ''}".strip() for n, c in (summary.get("charts") or {}).items())
    w("<header class='top'><div class='wrap'><div class='brand'>Chartproof · conformance report</div>")
    readme = [cid for cid in promise if not (known.get(cid) and known[cid].inferred)]
    untested = sum(1 for cid in readme if promise[cid] == "not-covered")
    if untested:
        headline_note = f"{untested} of {len(readme)} README promises not tested by this run"
    w(f"<h1 id='headline'>{e(headline)}</h1>"
      + (f"<div class='sub'>{e(headline_note)}</div>" if untested else "") + f"<div class='meta'><span>run {e(summary.get('run', ''))}</span>"
      f"<span>{e(summary.get('started', ''))}</span><span>{e(_duration(summary.get('duration_s')))}</span>"
      + (f"<span>{e(chart_names)}</span>" if chart_names else "") + "</div></div></header>")

    w("<div class='wrap'><section class='tiles' id='totals'>")
    for key, label in (("passed", "tests passed"), ("failed", "tests failed"), ("error", "suite errors"),
                       ("skipped", "skipped")):
        w(f"<div class='tile {key}' data-total='{key}'><div class='n'>{int(totals.get(key, 0))}</div>"
          f"<div class='l'>{label}</div></div>")
    counts = {s: 0 for s in ("passed", "failed", "error", "skipped", "not-covered")}
    for cid, status in promise.items():
        if not (known.get(cid) and known[cid].inferred):
            counts[status] = counts.get(status, 0) + 1
    total = sum(counts.values()) or 1
    w("<div class='tile bar'><div class='l'>README promises</div><div class='stack'>")
    for status, n in counts.items():
        if n:
            w(f"<i class='{status}' style='width:{100 * n / total:.3f}%' title='{n} {status}'></i>")
    w("</div><div class='legend'>")
    for status, n in counts.items():
        w(f"<span><span class='dot {status}'></span><b>{n}</b> {LABELS[status]}</span>")
    w("</div></div></section>")

    # -- charts and cluster ----------------------------------------------------------------------------
    w("<section class='cards'><div class='card' id='charts'><h2>Charts under test</h2><table class='kv'>"
      "<tr><th>chart</th><th>reference</th><th>version</th></tr>")
    for name, chart in (summary.get("charts") or {}).items():
        version = chart.get("version") or chart.get("error") or "?"
        app = f" <span class='pill'>app {e(chart['appVersion'])}</span>" if chart.get("appVersion") else ""
        w(f"<tr><td><b>{e(name)}</b></td><td class='mono'>{e(chart.get('ref') or '')}</td><td>{e(version)}{app}</td></tr>")
    w("</table></div>")
    cluster = summary.get("cluster")
    w("<div class='card' id='cluster'><h2>Cluster</h2>")
    if not cluster:
        w("<p>No cluster was needed: every test of this run rendered templates only.</p>")
    elif cluster.get("error"):
        w(f"<p>The cluster could not be started: <code>{e(cluster['error'])}</code></p>")
    else:
        sim = " <span class='pill'>simulated nodes (kwok)</span>" if cluster.get("simulated") else ""
        w(f"<table class='kv'><tr><th>provider</th><td><b>{e(cluster.get('provider'))}</b>{sim}</td></tr>"
          f"<tr><th>Kubernetes</th><td>{e(cluster.get('kubernetes') or '?')}</td></tr>"
          f"<tr><th>nodes</th><td>{len(cluster.get('nodes') or [])}</td></tr></table>")
        gpus = cluster.get("gpus") or []
        if gpus:
            w("<h2 style='margin-top:14px'>GPU inventory</h2><table class='kv' id='gpu-inventory'>"
              "<tr><th>instance type</th><th>nodes</th><th>per node</th><th>total</th></tr>")
            for group in gpus:
                per = " ".join(f"<span class='pill gpu'>{e(v)} {e(_short(k))}</span>" for k, v in group["per-node"].items()) \
                    or "<span class='pill'>no accelerators</span>"
                tot = ", ".join(f"{e(v)} {e(_short(k))}" for k, v in group["total"].items()) or "–"
                w(f"<tr data-instance-type='{e(group['instance-type'])}'><td class='mono'>{e(group['instance-type'])}</td>"
                  f"<td>{group['nodes']}</td><td>{per}</td><td>{tot}</td></tr>")
            w("</table>")
    w("</div></section>")

    # -- certify / reproduce: the command and its preflight ------------------------------------------
    field = summary.get("field")
    if field:
        w(f"<section class='card' id='field'><h2>{e(str(field.get('kind', 'field')).capitalize())}</h2>"
          f"<p class='mono'>{e(field.get('command', ''))}</p>"
          + (f"<p>Rerun: <code>{e(field['rerun'])}</code></p>" if field.get("rerun") else ""))
        findings = field.get("findings") or []
        if findings:
            w("<ul id='findings'>" + "".join(
                f"<li><span class='badge {'failed' if f.get('level') == 'error' else 'skipped'}'>{e(f.get('level'))}</span> "
                f"{e(f.get('message'))}" + (f" <small>line {e(f['line'])}</small>" if f.get("line") else "") + "</li>"
                for f in findings) + "</ul>")
        rows = field.get("preflight") or []
        if rows:
            w("<table class='tests' id='preflight'><tr><th>status</th><th>check</th><th>chart</th><th>evidence</th></tr>")
            badge = {"pass": "passed", "fail": "failed", "warn": "error", "skip": "skipped"}
            for row in rows:
                lines = "".join(f"<div class='mono'>{e(d)}</div>" for d in row.get("details") or [])
                # What passed needs no reading; what did not is shown open.
                details = (f"<details><summary>{len(row['details'])} lines</summary>{lines}</details>"
                           if lines and row.get("status") == "pass" else lines)
                w(f"<tr data-check='{e(row.get('name'))}' data-status='{e(row.get('status'))}'>"
                  f"<td><span class='badge {badge.get(row.get('status'), 'skipped')}'>{e(row.get('status'))}</span></td>"
                  f"<td>{e(row.get('name'))}</td><td>{e(row.get('chart', ''))}</td>"
                  f"<td>{e(row.get('evidence', ''))}{details}</td></tr>")
            w("</table>")
        w("</section>")

    # -- what needs attention, first -------------------------------------------------------------------
    attention = [cid for cid in promise if promise.get(cid) in PROBLEMS or extension.get(cid) in PROBLEMS]
    if attention or problem_tests:
        w("<section class='card attention' id='attention'><h2>Needs attention</h2><ul>")
        for cid in attention:
            contract = known.get(cid)
            status = promise.get(cid) if promise.get(cid) in PROBLEMS else extension.get(cid)
            first = next((t.get("message", "") for t in failing_by_contract.get(cid, []) if t.get("message")), "")
            first = first.strip().splitlines()[0] if first.strip() else ""
            w(f"<li><span class='badge {status}'>{LABELS[status]}</span> <a class='mono' href='#{e(cid)}'>{e(cid)}</a> "
              f"<span class='what'>{_markdown(contract.quote(150), e) if contract else ''}</span>"
              + (f"<div class='found1 mono'>{e(first[:220])}</div>" if first else "") + "</li>")
        for test in problem_tests:
            if not test["contracts"]:
                w(f"<li><span class='badge {test['outcome']}'>{TEST_LABELS[test['outcome']]}</span> "
                  f"<a class='mono' href='#uncontracted'>{e(test['nodeid'])}</a></li>")
        w("</ul></section>")

    # -- contracts by chart and section ----------------------------------------------------------------
    by_chart: dict[str, dict[str, list]] = {}
    for cid in promise:
        contract = known.get(cid)
        chart = contract.chart if contract else cid.split("-")[0].lower()
        section = contract.section if contract else "Other"
        by_chart.setdefault(chart, {}).setdefault(section, []).append(cid)
    order = [c for c in CHART_ORDER if c in by_chart] + sorted(c for c in by_chart if c not in CHART_ORDER)

    w("<nav class='bar'>")
    for chart in order:
        ids = [cid for section in by_chart[chart].values() for cid in section]
        bad = sum(1 for cid in ids if promise.get(cid) in PROBLEMS or extension.get(cid) in PROBLEMS)
        w(f"<a href='#chart-{e(chart)}'>{e(chart)} <span class='count'>{len(ids)}"
          + (f" · <span style='color:var(--fail)'>{bad} broken</span>" if bad else "") + "</span></a>")
    w("<label><input type='checkbox' id='only-problems'>only what needs attention</label></nav>")

    for chart in order:
        sections = by_chart[chart]
        chart_ids = [cid for ids in sections.values() for cid in ids]
        chart_bad = any(promise.get(c) in PROBLEMS or extension.get(c) in PROBLEMS for c in chart_ids)
        tested = sum(1 for c in chart_ids if promise.get(c) != "not-covered" or extension.get(c) != "not-covered")
        w(f"<section class='chart{' has-problem' if chart_bad else ''}' id='chart-{e(chart)}'>"
          f"<h2>{e(chart)} <small>{len(chart_ids)} behaviours, {tested} tested</small></h2>")
        for section, ids in sections.items():
            bad = any(promise.get(c) in PROBLEMS or extension.get(c) in PROBLEMS for c in ids)
            clean = "" if bad else " clean"
            w(f"<h3 class='section{clean}'>{e(section)}</h3><table class='contracts{clean}'>")
            for cid in ids:
                w(_contract_row(cid, known.get(cid), promise.get(cid, "not-covered"),
                                extension.get(cid, "not-covered"), failing_by_contract.get(cid, []), e))
            w("</table>")
        w("</section>")

    orphans = [t for t in problem_tests if not t["contracts"]]
    if orphans:
        w("<section class='chart has-problem' id='uncontracted'><h2>Tests that name no contract</h2>"
          "<table class='contracts'><tr class='failure problem'><td>")
        for test in orphans:
            w(_failure_card(test, e))
        w("</td></tr></table></section>")

    # -- every test, notes, files ----------------------------------------------------------------------
    w(f"<details class='all-tests'><summary>All {len(tests)} tests</summary><table class='tests' id='tests'>"
      "<tr><th>outcome</th><th>test</th><th>contracts</th><th>seconds</th></tr>")
    for test in sorted(tests, key=lambda t: (t["outcome"] not in PROBLEMS, t["nodeid"])):
        w(f"<tr data-outcome='{e(test['outcome'])}'><td><span class='badge {e(test['outcome'])}'>{e(test['outcome'])}</span></td>"
          f"<td class='mono'>{e(test['nodeid'])}</td><td class='mono'>{e(', '.join(test['contracts']))}</td>"
          f"<td>{test.get('duration_s', 0):.2f}</td></tr>")
    w("</table></details>")
    if summary.get("notes"):
        w("<h3>Notes</h3><ul class='notes'>" + "".join(f"<li>{e(n)}</li>" for n in summary["notes"]) + "</ul>")
    files = summary.get("files") or {}
    w("<footer>Also in this folder: " + "".join(f"<a href='{quote(v)}'>{e(v)}</a>" for v in files.values() if v != "report.html")
      + "<br>Secrets from the values files are redacted in every file of this folder. "
        "Generated by Chartproof; this page loads nothing from the network.</footer></div></body></html>")
    return redactor("".join(out))


def _contract_row(cid: str, contract, promise: str, extension: str, failing: list[dict], e) -> str:
    inferred = bool(contract and contract.inferred)
    worst = extension if inferred else promise
    if not inferred and promise in ("passed", "skipped", "not-covered") and extension in PROBLEMS:
        worst = extension
    problem = promise in PROBLEMS or extension in PROBLEMS
    badges = []
    if inferred:
        badges.append(f"<span class='badge {extension}' data-side='extension'><span class='k'>extension</span>"
                      f"{LABELS[extension]}</span>")
    else:
        badges.append(f"<span class='badge {promise}' data-side='promise'><span class='k'>promise</span>"
                      f"{LABELS[promise]}</span>")
        if extension != "not-covered":
            badges.append(f"<span class='badge {extension}' data-side='extension'><span class='k'>extension</span>"
                          f"{LABELS[extension]}</span>")
    statement = _markdown(contract.statement, e) if contract else "<em>not in the contract catalog</em>"
    tiers = f"<div class='tiers'>{e(contract.tiers)}</div>" if contract and contract.tiers else ""
    row = (f"<tr class='contract s-{worst}{' problem' if problem else ''}' id='{e(cid)}' data-contract='{e(cid)}' "
           f"data-status='{e(promise)}' data-extension='{e(extension)}'>"
           f"<td class='id'><a href='#{e(cid)}'>{e(cid)}</a>{tiers}</td>"
           f"<td class='statement'>{statement}</td><td class='badges'>{''.join(badges)}</td></tr>")
    if problem and failing:
        row += (f"<tr class='failure problem' data-failure-for='{e(cid)}'><td colspan='3'>"
                + "".join(_failure_card(t, e) for t in failing) + "</td></tr>")
    return row


def _failure_card(test: dict, e) -> str:
    outcome = test["outcome"]
    found = test.get("message") or "(no message)"
    parts = [f"<div class='fail-card' data-test='{e(test['nodeid'])}'><div class='t'>"
             f"<span class='badge {e(outcome)}'>{e('suite error' if outcome == 'error' else 'failed')}</span>"
             f"<code>{e(test['nodeid'])}</code></div>"]
    if test.get("promise") and not test.get("contracts"):
        parts.append(f"<div class='promise'>{e(test['promise'])}</div>")
    parts.append(f"<h4>Expected versus found</h4><pre class='found'>{e(found)}</pre>")
    diagnostics = test.get("diagnostics") or []
    if diagnostics:
        parts.append("<h4>Diagnostics</h4><div class='diag'>")
        for path in diagnostics:
            label = "/".join(path.split("/")[2:]) or path
            parts.append(f"<a class='diagnostic' href='{quote(path)}'>{e(label)}</a>")
        parts.append("</div>")
    if test.get("details") and test["details"].strip() != found.strip():
        parts.append(f"<details><summary>Full report</summary><pre>{e(test['details'])}</pre></details>")
    parts.append("</div>")
    return "".join(parts)


def _markdown(text: str, e) -> str:
    """The little markdown contract statements use: `code`, **bold**, and the (inferred) marks."""
    out = e(re.sub(r"\s+", " ", text).strip())
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)
    return out.replace("(inferred)", "<em class='inferred'>inferred</em>")


def _short(resource: str) -> str:
    return {"nvidia.com/gpu": "GPU", "aws.amazon.com/neuron": "Neuron", "aws.amazon.com/neuroncore": "NeuronCore",
            "vpc.amazonaws.com/efa": "EFA"}.get(resource, resource)


def _duration(seconds) -> str:
    try:
        s = float(seconds)
    except (TypeError, ValueError):
        return ""
    return f"{s:.1f} s" if s < 120 else f"{int(s // 60)} min {int(s % 60)} s"
