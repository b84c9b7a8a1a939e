"""The long-lived renderer against its reference: for every scenario the suites render, chartproof-render prints
what `helm template` prints, byte for byte (stdout, stderr, exit code), and the run's render cache answers
a second process without rendering again, and renders an edited chart anew."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from chartproof import render_server
from chartproof.charts import ChartCatalog
from chartproof.errors import RenderError, UsageError
from chartproof.helm import Helm, HelmResult
from chartproof.manifest import Manifest
from chartproof.paths import scenarios
from chartproof.redaction import MASK, Redactor
from chartproof.render_server import RenderClient, RendererProcess, request_from_args
from chartproof.toolchain import Toolchain
from chartproof.toolchain.pins import load_pins

REPO = Path(__file__).resolve().parent.parent
CHARTS = {  # chart -> (release, namespace, extra flags), as the suites render them
    "adaptive": ("adaptive", "default", []),
    "monitoring": ("adaptive-monitoring", "default", []),
    "hyperpod": ("dependencies", "kube-system", ["--include-crds"]),
}


def suite_scenarios() -> list[tuple[str, list[str]]]:
    """(id, helm template arguments) for every render the suites make of our charts, and refusals of each."""
    cases = []
    for chart, (release, namespace, extra) in CHARTS.items():
        base = ["template", release, f"charts/{chart}", "--namespace", namespace, *extra]
        cases.append((f"{chart}-defaults", base))
        for path in scenarios(chart):
            cases.append((f"{chart}-{path.parent.name}-{path.stem}", [*base, "-f", str(path.relative_to(REPO))]))
    adaptive, monitoring = ["template", "adaptive", "charts/adaptive"], ["template", "m", "charts/monitoring"]
    team = ["template", "dependencies", "charts/hyperpod/charts/team-role-and-bindings", "--namespace", "default"]
    cases += [
        ("adaptive-set", [*adaptive, "--set", "harmony.gpusPerReplica=4", "--set", "secrets.dbUrl=postgres://u:p@h/d"]),
        ("adaptive-set-string-json", [*adaptive, "--set-string", "harmony.group=007",
                                      "--set-json", 'harmony.nodeSelector={"pool":"gpu"}']),
        ("adaptive-kube-1.26", [*adaptive, "--kube-version", "1.26.0"]),
        ("monitoring-kube-1.26", [*monitoring, "--kube-version", "1.26.0"]),
        ("refusal-adaptive-kube-1.25", [*adaptive, "--kube-version", "1.25.0"]),
        ("refusal-adaptive-required-secret", [*adaptive, "--set", "secrets.cookiesSecret="]),
        ("refusal-adaptive-schema", [*adaptive, "--set", "secrets.cookiesSecret=short"]),
        ("refusal-monitoring-kube-1.25", [*monitoring, "--kube-version", "1.25.0"]),
        ("hyperpod-team-subchart", [*team, "--set", "computeQuotaTarget.targetId=solo"]),
        ("refusal-hyperpod-team-without-target", team),
    ]
    return cases


def flag_scenarios(chart: Path) -> list[tuple[str, list[str]]]:
    """Every flag the renderer handles, and helm's refusals, on a chart made to show them."""
    base = ["template", "demo", str(chart)]
    return [
        ("defaults", base),
        ("include-crds", [*base, "--include-crds"]),
        ("skip-tests", [*base, "--skip-tests"]),
        ("no-hooks", [*base, "--no-hooks"]),
        ("is-upgrade", [*base, "--is-upgrade"]),
        ("api-versions", [*base, "--api-versions", "example.com/v1,other.io/v2", "-a", "third.io/v1"]),
        ("kube-version", [*base, "--kube-version", "v1.30.4"]),
        ("show-only", [*base, "--show-only", "templates/config.yaml", "-s", "charts/sub/templates/*"]),
        ("subchart-off", [*base, "--set", "sub.enabled=false"]),
        ("alias-on", [*base, "--set", "second.enabled=true", "--set", "second.greeting=hi"]),
        ("set-family", [*base, "--set", "a.b=1,a.c=x", "--set-string", "num=007", "--set-json", "list=[1,2]",
                        "--set-literal", "lit={not,a,list}", f"--set-file=note={chart.parent / 'note.txt'}"]),
        ("values-list", [*base, "-f", f"{chart.parent / 'one.yaml'},{chart.parent / 'two.yaml'}"]),
        ("namespace-equals", [*base, "--namespace=team-a", "--skip-schema-validation"]),
        ("refusal-bad-kube-version", [*base, "--kube-version", "one.two"]),
        ("refusal-show-only-missing", [*base, "--show-only", "templates/nothing.yaml"]),
        ("refusal-bad-yaml-values", [*base, "-f", str(chart.parent / "broken.yaml")]),
        ("refusal-invalid-yaml-output", [*base, "--set", "breakYaml=true"]),
        ("refusal-release-name", ["template", "Bad_Name", str(chart)]),
        ("refusal-fail", [*base, "--set", "mustFail=true"]),
        ("refusal-schema", [*base, "--set", "replicas=many"]),
        ("refusal-schema-again", [*base, "--set", "replicas=lots"]),  # the compiled schema, remembered
        ("refusal-subchart-schema", [*base, "--set", "sub.greeting=5"]),
        ("refusal-subchart-values-not-a-map", [*base, "--set-json", "sub=[1]", "--skip-schema-validation=false"]),
        ("schema-with-file-ref", ["template", "refs", str(chart.parent / "refs")]),
        ("refusal-schema-with-file-ref", ["template", "refs", str(chart.parent / "refs"), "--set", "size=big"]),
        ("deprecated", ["template", "old", str(chart.parent / "deprecated")]),
        ("refusal-library", ["template", "lib", str(chart.parent / "library")]),
        ("refusal-missing-dependency", ["template", "needy", str(chart.parent / "needy")]),
    ]


def write_chart(root: Path) -> Path:
    """A chart with what `helm template` treats specially: hooks and a test hook, a CRD, Capabilities, an
    enabled and an aliased subchart with import-values, a schema, a NOTES.txt, a failing and a broken template."""
    chart = root / "demo"
    files = {
        "Chart.yaml": "apiVersion: v2\nname: demo\nversion: 1.2.3\nappVersion: '9'\n"
                      "dependencies:\n- name: sub\n  version: 0.1.0\n  condition: sub.enabled\n"
                      "  import-values: [{child: exported, parent: fromSub}]\n"
                      "- name: sub\n  alias: second\n  version: 0.1.0\n  condition: second.enabled\n",
        "values.yaml": "replicas: 1\nmustFail: false\nbreakYaml: false\nsub: {enabled: true}\nsecond: {enabled: false}\n",
        "values.schema.json": '{"type": "object", "properties": {"replicas": {"type": "integer"}}}',
        "crds/thing.yaml": "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
                           "metadata:\n  name: things.example.com\n",
        "templates/NOTES.txt": "notes for {{ .Release.Name }}\n",
        "templates/config.yaml": (
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-config\n"
            "  namespace: {{ .Release.Namespace }}\ndata:\n"
            "  kube: {{ .Capabilities.KubeVersion.Version | quote }}\n"
            "  helm: {{ .Capabilities.HelmVersion.Version | quote }}\n"
            "  example: {{ .Capabilities.APIVersions.Has \"example.com/v1\" | quote }}\n"
            "  upgrade: {{ .Release.IsUpgrade | quote }}\n"
            "  values: {{ omit .Values \"sub\" \"second\" | toJson | quote }}\n"
            "  imported: {{ .Values.fromSub | toJson | quote }}\n"),
        "templates/deployment.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n"
                                     "spec:\n  replicas: {{ .Values.replicas }}\n",
        "templates/hook.yaml": "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {{ .Release.Name }}-migrate\n"
                               "  annotations:\n    helm.sh/hook: pre-install,pre-upgrade\n"
                               "    helm.sh/hook-weight: \"-5\"\n",
        "templates/tests/test.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {{ .Release.Name }}-test\n"
                                     "  annotations:\n    helm.sh/hook: test\n",
        # Several documents a file, kinds in and out of helm's install order, one kind in two files, and an
        # unknown hook: the order helm sorts them into and what it logs.
        "templates/mixed.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: {{ .Release.Name }}-b\n---\n"
                                "apiVersion: x.io/v1\nkind: Zebra\nmetadata:\n  name: z1\n---\n"
                                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-a\n---\n"
                                "apiVersion: x.io/v1\nkind: Apple\nmetadata:\n  name: a1\n---\n"
                                "apiVersion: x.io/v1\nkind: Zebra\nmetadata:\n  name: z2\n---\n"
                                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: odd-hook\n"
                                "  annotations:\n    helm.sh/hook: not-a-hook\n",
        "templates/more.yaml": "apiVersion: x.io/v1\nkind: Apple\nmetadata:\n  name: a0\n---\n"
                               "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-0\n",
        "templates/fail.yaml": "{{ if .Values.mustFail }}{{ fail \"mustFail is set: refusing\" }}{{ end }}\n",
        "templates/broken.yaml": "{{ if .Values.breakYaml }}kind: [unclosed\n{{ end }}\n",
        "charts/sub/Chart.yaml": "apiVersion: v2\nname: sub\nversion: 0.1.0\n",
        "charts/sub/values.yaml": "greeting: hello\nexported: {colour: blue}\n",
        "charts/sub/values.schema.json": '{"$defs": {"word": {"type": "string", "minLength": 1}}, "type": "object", '
                                         '"properties": {"greeting": {"$ref": "#/$defs/word"}}}',
        "charts/sub/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
                                        "  name: {{ .Release.Name }}-{{ .Chart.Name }}-{{ .Values.greeting }}\n",
    }
    others = {
        "note.txt": "from a file\n",
        "one.yaml": "replicas: 2\nextra: {a: 1}\n",
        "two.yaml": "extra: {b: 2}\n",
        "broken.yaml": "replicas: [1\n",
        "deprecated/Chart.yaml": "apiVersion: v2\nname: old\nversion: 0.0.1\ndeprecated: true\n",
        "deprecated/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: old\n",
        "library/Chart.yaml": "apiVersion: v2\nname: lib\nversion: 0.0.1\ntype: library\n",
        "needy/Chart.yaml": "apiVersion: v2\nname: needy\nversion: 0.0.1\ndependencies:\n- name: absent\n"
                            "  version: 1.0.0\n  repository: https://example.invalid/charts\n",
    }
    # A schema that refers to a file outside itself (helm reads it at every render).
    others["refs/Chart.yaml"] = "apiVersion: v2\nname: refs\nversion: 0.0.1\n"
    others["refs/values.yaml"] = "size: 1\n"
    others["refs/values.schema.json"] = json.dumps(
        {"type": "object", "properties": {"size": {"$ref": f"file://{root / 'defs.json'}#/$defs/size"}}})
    others["refs/templates/cm.yaml"] = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: refs-{{ .Values.size }}\n"
    others["defs.json"] = '{"$defs": {"size": {"type": "integer"}}}'
    for base, table in ((chart, files), (root, others)):
        for name, text in table.items():
            (base / name).parent.mkdir(parents=True, exist_ok=True)
            (base / name).write_text(text)
    return chart


@pytest.fixture(scope="module")
def helm_binary() -> Path:
    return Toolchain().path("helm")


@pytest.fixture(scope="module")
def renderer_binary() -> Path:
    return Toolchain().path(render_server.TOOL)


@pytest.fixture(scope="module")
def helm_env(tmp_path_factory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("helm-home")
    return {**os.environ, "HELM_CACHE_HOME": str(home / "cache"), "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data")}


@pytest.fixture(scope="module")
def renderer(renderer_binary, helm_env, tmp_path_factory):
    process = RendererProcess(renderer_binary, env=helm_env, log_path=tmp_path_factory.mktemp("log") / "render.log")
    yield process
    process.stop()


@pytest.fixture(scope="module")
def demo_chart(tmp_path_factory) -> Path:
    return write_chart(tmp_path_factory.mktemp("charts"))


def helm_template(helm_binary: Path, env: dict, args: list[str]) -> HelmResult:
    proc = subprocess.run([str(helm_binary), *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    return HelmResult(args, proc.returncode, proc.stdout, proc.stderr)


def ours(renderer: RendererProcess, args: list[str]) -> HelmResult:
    request = request_from_args(args)
    assert request is not None, f"the renderer must handle every flag of {args}"
    answer = renderer.ask({**request, "cwd": str(REPO)})
    return HelmResult(args, answer["exit"], answer["stdout"], answer["stderr"])


def assert_same(expected: HelmResult, found: HelmResult, what: str) -> None:
    command = "helm " + " ".join(expected.args)
    assert found.returncode == expected.returncode, \
        f"{what}: `{command}` exits {expected.returncode}, the renderer {found.returncode}: {found.stderr[-300:]}"
    if expected.stdout != found.stdout:
        at = next((i for i, (a, b) in enumerate(zip(expected.stdout, found.stdout, strict=False)) if a != b),
                  min(len(expected.stdout), len(found.stdout)))
        start = max(0, at - 80)
        raise AssertionError(f"{what}: stdout differs from `{command}` at byte {at}: helm has "
                             f"{expected.stdout[start:at + 80]!r}, the renderer {found.stdout[start:at + 80]!r}")
    assert found.stderr == expected.stderr, f"{what}: stderr of `{command}` is {expected.stderr!r}, the renderer's {found.stderr!r}"
    if not expected.ok:
        assert found.error == expected.error, f"{what}: helm refuses with {expected.error!r}, the renderer with {found.error!r}"


SUITE_CASES = suite_scenarios()


@pytest.mark.parametrize("name, args", SUITE_CASES, ids=[name for name, _ in SUITE_CASES])
def test_every_suite_render_is_helm_template_byte_for_byte(helm_binary, helm_env, renderer, name, args):
    expected = helm_template(helm_binary, helm_env, args)
    assert expected.ok == (not name.startswith("refusal")), f"{name}: helm's own outcome is not what the case means: {expected.stderr}"
    assert_same(expected, ours(renderer, args), name)


def test_suite_scenarios_cover_every_fixture_and_ci_file_of_every_chart():
    covered = {arg for _, args in SUITE_CASES for arg in args}
    for chart in CHARTS:
        missing = [str(p.relative_to(REPO)) for p in scenarios(chart) if str(p.relative_to(REPO)) not in covered]
        assert not missing, f"scenarios of {chart} that the byte-for-byte comparison leaves out: {missing}"
    refused = {name.split("-")[1] for name, _ in SUITE_CASES if name.startswith("refusal-")}
    assert refused == set(CHARTS), f"a refusal case per chart: expected {sorted(CHARTS)}, found {sorted(refused)}"


@pytest.mark.parametrize("name", [name for name, _ in flag_scenarios(Path("demo"))])
def test_every_flag_and_refusal_is_helm_template_byte_for_byte(helm_binary, helm_env, renderer, demo_chart, name):
    args = dict(flag_scenarios(demo_chart))[name]
    expected = helm_template(helm_binary, helm_env, args)
    assert expected.ok == (not name.startswith("refusal")), f"{name}: helm's own outcome is not what the case means: {expected.stderr}"
    assert_same(expected, ours(renderer, args), name)


def test_one_renderer_gives_the_same_answers_in_any_order(helm_binary, helm_env, renderer, demo_chart):
    """Rendering changes a loaded chart (disabled subcharts dropped, aliases renamed, values imported): each
    render works on its own copy, so the answers do not depend on what was rendered before."""
    cases = flag_scenarios(demo_chart) + SUITE_CASES[:6]
    expected = {name: helm_template(helm_binary, helm_env, args) for name, args in cases}
    for name, args in [*reversed(cases), *cases, *reversed(cases)]:
        assert_same(expected[name], ours(renderer, args), f"{name} after other renders")


def test_default_kube_version_and_helm_version_are_helms(helm_binary, helm_env, renderer, demo_chart):
    args = ["template", "demo", str(demo_chart), "--show-only", "templates/config.yaml"]
    found = ours(renderer, args).stdout
    minor, helm_version = load_pins()["helm"].extra["kube_minor"], load_pins()["helm"].version
    assert f'kube: "v1.{minor}.0"' in found and f'helm: "{helm_version}"' in found, \
        f"expected helm's defaults (Kubernetes v1.{minor}.0, helm {helm_version}) in the render, found:\n{found}"
    assert found == helm_template(helm_binary, helm_env, args).stdout


def test_pin_links_the_pinned_helm():
    pins = load_pins()
    ours_pin, helm_pin = pins[render_server.TOOL], pins["helm"]
    gomod = (ours_pin.source_dir / "go.mod").read_text()
    assert f"helm.sh/helm/v3 {helm_pin.version}" in gomod, f"go.mod must require helm {helm_pin.version}:\n{gomod}"
    assert ours_pin.module_version == helm_pin.version and ours_pin.extra.get("ldflags_from") == "helm"
    assert ours_pin.version.startswith(helm_pin.version + "-cp"), f"renderer version {ours_pin.version} must name helm's"


@pytest.mark.skipif(shutil.which("go") is None, reason="no Go toolchain here: the renderer's own tests are Go tests")
def test_the_renderers_go_tests_pass(tmp_path):
    """chartproof-render's Go tests, in each of its modules: its split of a file into documents is helm's
    (200,000 generated files and hand-made edge cases), its share of each file is SortManifests', its template
    engine renders what helm's engine.Render renders (this repository's charts under every scenario, and small
    charts for one behaviour each, and helm's own test charts, errors included) and its toYaml writes what sigs.k8s.io/yaml writes, and
    valuecopy's deep copy, which stands in for copystructure in its build, returns what copystructure returns.
    A copy is tested (go.sum stays as it is); the engine's comparison reads the charts of this checkout."""
    from chartproof.toolchain.gobuild import go_binary, go_env

    work = tmp_path / "chartproof-render"
    shutil.copytree(load_pins()[render_server.TOOL].source_dir, work)
    # -trimpath as the toolchain builds it: the helm SDK packages come from the Go build cache that build filled
    # (measured with a Go cache holding only the renderer's build: 19 s with it, 105 s without, 210 s in a CI run).
    modules = sorted(gomod.parent for gomod in work.rglob("go.mod"))
    assert work / "valuecopy" in modules, f"expected the valuecopy module among {modules}"
    assert (work / "engine" / "engine_test.go").is_file(), "expected the engine's comparison with helm's engine"
    for module in modules:
        proc = subprocess.run([go_binary(), "test", "-trimpath", "-count=1", "./..."], cwd=module,
                              env={**go_env(), "CHARTPROOF_REPO": str(Path(__file__).resolve().parent.parent)},
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, \
            f"go test of {module.relative_to(tmp_path)} failed:\n{(proc.stdout + proc.stderr)[-4000:]}"


def test_renderer_reports_its_pinned_version(renderer_binary):
    out = subprocess.run([str(renderer_binary), "--version"], capture_output=True, text=True, timeout=30).stdout
    assert load_pins()[render_server.TOOL].version in out, f"--version printed {out!r}"


@pytest.mark.parametrize("args, expected", [
    (["template", "r", "c", "-f", "a.yaml,b.yaml", "--values=c.yaml", "--set", "x=1", "--set=y=2"],
     {"values": ["a.yaml", "b.yaml", "c.yaml"], "set": ["x=1", "y=2"]}),
    (["template", "r", "c", "--include-crds", "--skip-tests=false", "-n", "ns", "--timeout", "600s"],
     {"include_crds": True, "skip_tests": False, "namespace": "ns"}),
    (["template", "r", "c", "--api-versions", "a/v1,b/v1", "-a", "c/v1", "--kube-version=1.30.0"],
     {"api_versions": ["a/v1", "b/v1", "c/v1"], "kube_version": "1.30.0"}),
])
def test_template_arguments_become_a_request(args, expected):
    request = request_from_args(args)
    assert request is not None and {k: request.get(k) for k in expected} == expected, f"{args} -> {request}"


@pytest.mark.parametrize("args", [
    ["template", "r", "c", "--post-renderer", "./x"], ["template", "r", "c", "--output-dir", "out"],
    ["template", "r", "c", "--validate"], ["template", "r", "c", "--dependency-update"], ["template", "c"],
    ["template", "r", "c", "--set"], ["template", "r", "c", "--include-crds=maybe"],
])
def test_arguments_the_renderer_does_not_handle_go_to_helm(args):
    assert request_from_args(args) is None, f"{args} must be left to helm template"


# -- the driver, the cache and the process -----------------------------------------------------------------
def driver(tmp_path: Path, charts: dict[str, str], cache: Path) -> Helm:
    return Helm(Toolchain().path("helm"), ChartCatalog(charts, workdir=tmp_path / "work"), workdir=tmp_path / "work",
                redactor=Redactor(), render_cache=cache)


@pytest.fixture
def client(monkeypatch) -> RenderClient:
    """A fresh renderer client for this test (its own process, its own counters)."""
    fresh = RenderClient()
    monkeypatch.setattr(render_server, "CLIENT", fresh)
    monkeypatch.delenv(render_server.CHOICE_ENV, raising=False)
    yield fresh
    fresh.stop()


def test_driver_renders_through_the_renderer_as_helm_does(tmp_path, client, monkeypatch, renderer_binary):
    helm = driver(tmp_path, {"adaptive": str(REPO / "charts/adaptive")}, tmp_path / "cache")
    values = REPO / "fixtures/adaptive/autoscaling-on.yaml"
    ours_text = helm.template("adaptive", [values], {"harmony.gpusPerReplica": 4}).text
    with pytest.raises(RenderError) as ours_refusal:
        helm.template("adaptive", kube_version="1.25.0")
    assert client.stats["renders"] == 2 and client.stats["started"] == 1, f"expected two renders by one renderer: {client.stats}"
    monkeypatch.setenv(render_server.CHOICE_ENV, "helm")
    reference = driver(tmp_path / "helm", {"adaptive": str(REPO / "charts/adaptive")}, tmp_path / "cache")
    assert reference.template("adaptive", [values], {"harmony.gpusPerReplica": 4}).text == ours_text
    with pytest.raises(RenderError) as helm_refusal:
        reference.template("adaptive", kube_version="1.25.0")
    assert ours_refusal.value.message == helm_refusal.value.message
    assert client.stats["renders"] == 2 and client.stats["cache_hits"] == 0, \
        f"CHARTPROOF_RENDERER=helm must not use the renderer or its cache: {client.stats}"


def test_refusal_from_the_renderer_is_redacted(tmp_path, client, tiny_chart, renderer_binary):
    (tiny_chart / "templates" / "echo.yaml").write_text("{{ if .Values.echo }}{{ fail (printf \"bad password %s\" .Values.password) }}{{ end }}\n")
    helm = driver(tmp_path, {"tiny": str(tiny_chart)}, tmp_path / "cache")
    secret = "Zq8-unguessable-canary-71"
    with pytest.raises(RenderError) as info:
        helm.template("tiny", {"password": secret}, {"echo": True}, release="demo")
    assert client.stats["renders"] == 1, f"the refusal was expected from the renderer: {client.stats}"
    message = info.value.message
    assert "bad password" in message and secret not in message and MASK in message, \
        f"the refusal must keep helm's words and mask the password: {message}"


def test_bad_renderer_choice_is_refused(monkeypatch):
    monkeypatch.setenv(render_server.CHOICE_ENV, "helmm")
    with pytest.raises(UsageError, match="CHARTPROOF_RENDERER"):
        render_server.choice()


def test_missing_renderer_falls_back_to_helm_and_says_so_once(tmp_path, client, monkeypatch, capsys, tiny_chart):
    missing = tmp_path / "no-renderer"
    missing.write_text("")  # not executable
    monkeypatch.setenv("CHARTPROOF_CHARTPROOF_RENDER", str(missing))
    helm = driver(tmp_path, {"tiny": str(tiny_chart)}, tmp_path / "cache")
    first = helm.template("tiny", {"password": "x"}, release="a")
    second = helm.template("tiny", {"password": "y"}, release="b")
    notes = [ln for ln in capsys.readouterr().err.splitlines() if "rendering with helm template" in ln]
    assert len(notes) == 1 and str(missing) in notes[0], f"expected one note naming {missing}, found {notes}"
    assert first.get("Deployment", "a") and second.get("Deployment", "b")
    assert client.stats["fallbacks"] == 2 and client.stats["renders"] == 0, client.stats


CACHE_PROBE = """
import json, sys
from pathlib import Path
from chartproof import render_server
from chartproof.charts import ChartCatalog
from chartproof.helm import Helm
from chartproof.toolchain import Toolchain
work, cache, chart, values = map(Path, sys.argv[1:5])
helm = Helm(Toolchain().path("helm"), ChartCatalog({"adaptive": str(chart)}, workdir=work), workdir=work, render_cache=cache)
text = helm.template("adaptive", [values], {"harmony.gpusPerReplica": 4}).text
print(json.dumps({"stats": render_server.CLIENT.stats, "text": text}))
"""


def probe(tmp_path: Path, name: str, cache: Path, chart: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", CACHE_PROBE, str(tmp_path / name), str(cache), str(chart),
                           str(REPO / "fixtures/adaptive/autoscaling-on.yaml")],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, f"render process {name} failed: {proc.stderr[-2000:]}"
    return json.loads(proc.stdout.splitlines()[-1])


def test_a_second_process_gets_the_render_from_the_cache(tmp_path, renderer_binary):
    cache = tmp_path / "cache"
    first = probe(tmp_path, "worker-1", cache, REPO / "charts/adaptive")
    second = probe(tmp_path, "worker-2", cache, REPO / "charts/adaptive")
    assert first["stats"]["renders"] == 1 and first["stats"]["started"] == 1, f"first process: {first['stats']}"
    assert second["stats"]["cache_hits"] == 1 and second["stats"]["renders"] == 0 and second["stats"]["started"] == 0, \
        f"the second process was expected to answer from the cache without starting a renderer: {second['stats']}"
    assert second["text"] == first["text"]
    entries = list(cache.rglob("*.render"))
    assert len(entries) == 1 and oct(entries[0].stat().st_mode & 0o777) == "0o600", \
        f"expected one private cache entry, found {[(p, oct(p.stat().st_mode)) for p in entries]}"


def test_a_cached_answer_comes_back_exactly_as_rendered(tmp_path):
    cache = render_server.RenderCache(tmp_path / "cache")
    key = "ab" + "0" * 62
    text = '---\n# Source: c/templates/x.yaml\ndata: "\u00e9\r\n"\r\nline: "\u2028"\rend\n'
    cache.put(key, {"chart": "/a/chart", "values": ["/a/v.yaml"]},
              render_server.Rendered(text, "Error: in /a/v.yaml\n", 1, "renderer"))
    back = cache.get(key, {"chart": "/b/chart", "values": ["/b/v.yaml"]})
    assert back == render_server.Rendered(text, "Error: in /b/v.yaml\n", 1, "cache"), \
        f"expected the manifest byte for byte and helm's message naming this request's paths, found {back}"
    assert cache.get("cd" + "0" * 62, {"chart": "/a/chart"}) is None, "a key never stored is a miss"


def test_an_answer_on_its_way_to_the_cache_is_served_from_memory_and_written_by_exit(tmp_path):
    release = threading.Event()

    class SlowDisk(render_server.RenderCache):
        def put(self, *args):
            release.wait(10)
            super().put(*args)

    cache = SlowDisk(tmp_path / "cache")
    writer = render_server.CacheWriter()
    key = "ef" + "0" * 62
    writer.put(cache, key, {"chart": "/a/c", "values": ["/a/v.yaml"]},
               render_server.Rendered("kind: ConfigMap\n", "Error: in /a/v.yaml\n", 1, "renderer"))
    expected = render_server.Rendered("kind: ConfigMap\n", "Error: in /b/v.yaml\n", 1, "cache")
    pending = writer.get(cache, key, {"chart": "/b/c", "values": ["/b/v.yaml"]})
    assert pending == expected, f"expected the unwritten answer from memory, naming this request's paths: {pending}"
    assert cache.get(key, {"chart": "/b/c", "values": ["/b/v.yaml"]}) is None, "not on disk yet"
    release.set()
    writer.flush()
    on_disk = cache.get(key, {"chart": "/b/c", "values": ["/b/v.yaml"]})
    assert on_disk == expected, f"expected the answer on disk once flushed, found {on_disk}"
    assert not writer.pending, "written answers leave memory"


def test_an_edited_chart_copy_is_rendered_anew(tmp_path, client, renderer_binary):
    chart = tmp_path / "adaptive"
    shutil.copytree(REPO / "charts/adaptive", chart)
    helm = driver(tmp_path, {"adaptive": str(chart)}, tmp_path / "cache")
    before = helm.template("adaptive")
    template = chart / "templates" / "zz-edit.yaml"
    template.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: edited-copy\n")
    after = helm.template("adaptive")
    assert not before.select("ConfigMap", name="edited-copy") and after.get("ConfigMap", "edited-copy"), \
        "the edit (a new ConfigMap edited-copy) was expected in the second render only"
    assert client.stats["renders"] == 2 and client.stats["chart_loads"] == 2, \
        f"the renderer was expected to load the edited chart again: {client.stats}"
    time.sleep(0.01)
    template.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: edited-again\n")  # same size
    again = helm.template("adaptive")
    assert again.get("ConfigMap", "edited-again") and not again.select("ConfigMap", name="edited-copy")
    assert client.stats["chart_loads"] == 3, f"the same-size edit was expected to load the chart again: {client.stats}"
    reference = helm_template(helm.binary, helm.env(), ["template", "adaptive", str(chart), "--namespace", "default"])
    assert again.text == Manifest(reference.stdout).text, "the edited copy renders otherwise than helm template renders it"


STOP_PROBE = """
import os, sys, time
from chartproof import render_server
from chartproof.render_server import CLIENT
from pathlib import Path
work = Path(sys.argv[1])
CLIENT.template(["template", "t", sys.argv[2]], env=dict(os.environ), cache_dir=work / "cache", log_path=work / "log")
print(CLIENT._process.proc.pid, flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_renderer_stops_with_its_process(tmp_path, tiny_chart, renderer_binary, how):
    """SIGTERM stops the renderer through the handler; even a SIGKILL'd parent leaves none (stdin closes)."""
    (tiny_chart / "values.yaml").write_text("replicas: 1\npassword: x\n")
    proc = subprocess.Popen([sys.executable, "-c", STOP_PROBE, str(tmp_path), str(tiny_chart)], stdout=subprocess.PIPE,
                            text=True, cwd=REPO)
    pid = int(proc.stdout.readline())
    os.kill(proc.pid, how)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    assert not _alive(pid), f"renderer {pid} still runs after its parent got {how.name}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


# -- the peer's suites ------------------------------------------------------------------------------------
def test_peer_suites_pass_on_our_chart_and_fail_on_a_broken_copy(tmp_path):
    """The helm-unittest suites the bench times are real checks: they pass on charts/adaptive, and a copy whose
    control plane lost its migrations flag fails the tests that read it."""
    from chartproof.bench_render import helm_unittest_tier

    binary = Toolchain().path("helm-unittest")
    good = helm_unittest_tier(binary, tmp_path)
    assert good["tests"] >= 20 and good["failed"] == 0, f"the peer suites on charts/adaptive: {good}"
    broken = tmp_path / "adaptive"
    shutil.copytree(REPO / "charts/adaptive", broken)
    template = broken / "templates" / "control-plane.yaml"
    text = template.read_text()
    assert "ADAPTIVE_DB__RUN_MIGRATIONS" in text
    template.write_text(text.replace("ADAPTIVE_DB__RUN_MIGRATIONS", "ADAPTIVE_DB__MIGRATIONS"))
    (tmp_path / "broken").mkdir()
    bad = helm_unittest_tier(binary, tmp_path / "broken", chart=broken)
    assert bad["failed"] == 2, f"the two migration-flag tests were expected to fail on the broken copy: {bad}"


def test_mirror_of_the_peer_suites_is_the_same_checks(tmp_path):
    """The bench's same-checks figure is fair: our twin of the helm-unittest suites has as many tests, passes on
    charts/adaptive, and fails the same two tests on the copy that lost its migrations flag."""
    from chartproof.bench_render import MIRROR, PEER_SUITES, junit_tests

    peer_tests = sum(text.count("\n  - it: ") for text in (p.read_text() for p in PEER_SUITES.glob("*_test.yaml")))
    broken = tmp_path / "adaptive"
    shutil.copytree(REPO / "charts/adaptive", broken)
    template = broken / "templates" / "control-plane.yaml"
    template.write_text(template.read_text().replace("ADAPTIVE_DB__RUN_MIGRATIONS", "ADAPTIVE_DB__MIGRATIONS"))
    counts = {}
    for name, extra in (("good", []), ("broken", ["--chart", f"adaptive={broken}"])):
        junit = tmp_path / f"{name}.xml"
        subprocess.run([sys.executable, "-m", "pytest", str(MIRROR), "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                        f"--junitxml={junit}", "--report-dir", str(tmp_path / f"reports-{name}"), *extra],
                       capture_output=True, text=True, cwd=REPO, timeout=600)
        counts[name] = junit_tests(junit)
    assert counts["good"]["tests"] == peer_tests == 20 and counts["good"]["failed"] == 0, counts
    assert counts["broken"]["failed"] == 2, f"the two migration-flag checks were expected to fail: {counts['broken']}"


def test_warm_up_loads_the_chart_before_the_first_render(tmp_path, client, helm_env, renderer_binary):
    """A session warms its renderer up while pytest collects: the chart is read then, and the first render
    finds it in memory (and still answers what helm template prints)."""
    chart = REPO / "charts" / "adaptive"
    client.warm([chart], env=helm_env, log_path=tmp_path / "render.log")
    assert client.stats["started"] == 1 and client.stats["chart_loads"] == 1, client.stats
    args = ["template", "adaptive", str(chart), "--kube-version", "1.36.1"]
    rendered = client.template(args, env=helm_env, cache_dir=tmp_path / "cache", log_path=tmp_path / "render.log")
    assert rendered is not None and rendered.exit == 0, rendered
    assert client.stats["chart_loads"] == 1, f"the first render read the chart again: {client.stats}"
    assert "kind: Deployment" in rendered.stdout


def test_tree_stamp_sees_edits_links_and_packages_and_ends_on_a_link_loop(tmp_path):
    chart = tmp_path / "c"
    (chart / "templates").mkdir(parents=True)
    (chart / "templates" / "cm.yaml").write_text("a")
    package = tmp_path / "c-0.1.0.tgz"
    package.write_bytes(b"one")
    stamps = [render_server.tree_stamp(chart)]
    (chart / "templates" / "cm.yaml").write_text("ab")  # edited in place
    stamps.append(render_server.tree_stamp(chart))
    (chart / "shared").symlink_to(chart / "templates")  # a linked folder is read as the loader reads it
    stamps.append(render_server.tree_stamp(chart))
    (chart / "templates" / "up").symlink_to(chart)  # a loop: stamped once, not followed forever
    stamps.append(render_server.tree_stamp(chart))
    assert len(set(stamps)) == 4
    before = render_server.tree_stamp(package)
    package.write_bytes(b"other")
    assert render_server.tree_stamp(package) != before
